//! End-to-end: fixed-output fetches from a local HTTP server.

use std::io::{Read, Write};
use std::net::TcpListener;

use crate::common::{Project, read};

const BODY: &[u8] = b"pinned bytes\n";

/// Serves `BODY` to `requests` connections on 127.0.0.1, then stops.
fn serve(requests: usize) -> (u16, std::thread::JoinHandle<usize>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let handle = std::thread::spawn(move || {
        let mut served = 0;
        for stream in listener.incoming().take(requests) {
            let mut stream = stream.expect("accept");
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                BODY.len()
            );
            stream.write_all(head.as_bytes()).expect("write");
            stream.write_all(BODY).expect("write");
            served += 1;
        }
        served
    });
    (port, handle)
}

fn sha256_hex(data: &[u8]) -> String {
    kiln::hash::Digest::of(data).hex()
}

fn spec(port: u16, sha: &str) -> String {
    format!(
        r#"
        fetch data url="http://127.0.0.1:{port}/files/data.txt" sha256="{sha}"
        stage reader {{
            use data
            run "cat $data/data.txt > $out/copy"
        }}
        "#
    )
}

#[test]
fn a_fetch_with_the_right_hash_is_downloaded_once_and_usable() {
    let (port, server) = serve(1);
    let p = Project::new(&spec(port, &sha256_hex(BODY)));
    let report = p.build(&[]);
    assert_eq!(report.status("data"), "built");
    assert_eq!(
        read(&report.output("reader").join("copy")),
        "pinned bytes\n"
    );
    assert_eq!(server.join().expect("server"), 1);
    // Cached: no second request (the server is gone; a request would fail).
    assert_eq!(p.build(&[]).status("data"), "cached");
}

#[test]
fn a_fetch_with_the_wrong_hash_fails_showing_both_hashes_and_stores_nothing() {
    let (port, server) = serve(1);
    let wrong = sha256_hex(b"something else");
    let p = Project::new(&spec(port, &wrong));
    let out = p.kiln(&["build"]);
    assert_eq!(out.status.code(), Some(1));
    // The diagnostic wraps long lines: compare with whitespace folded.
    let stderr = String::from_utf8_lossy(&out.stderr)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        stderr.contains(&format!("expected sha256:{wrong}")),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("has sha256:{}", sha256_hex(BODY))),
        "{stderr}"
    );
    server.join().expect("server");
    let ls = p.kiln(&["store", "ls"]);
    assert!(!String::from_utf8_lossy(&ls.stdout).contains("data"));
}

#[test]
fn a_file_url_is_fetched_too() {
    let p = Project::new("");
    let file = p.dir.path().join("local.bin");
    std::fs::write(&file, BODY).expect("write");
    p.write(
        "kiln.kdl",
        &format!(
            "fetch local url=\"file://{}\" sha256=\"{}\"\nstage s {{ use local; run \"cp $local/local.bin $out/\" }}\n",
            file.display(),
            sha256_hex(BODY)
        ),
    );
    let report = p.build(&[]);
    assert_eq!(
        read(&report.output("s").join("local.bin")),
        "pinned bytes\n"
    );
}

#[test]
fn the_same_bytes_under_another_file_name_are_another_fetch() {
    let p = Project::new("");
    for name in ["a.txt", "b.txt"] {
        std::fs::write(p.dir.path().join(name), BODY).expect("write");
    }
    let spec = |name: &str| {
        format!(
            "fetch f url=\"file://{}\" sha256=\"{}\"\nstage s {{ use f; run \"cat $f/{name} > $out/x\" }}\n",
            p.dir.path().join(name).display(),
            sha256_hex(BODY)
        )
    };
    p.write("kiln.kdl", &spec("a.txt"));
    let a = p.build(&[]);
    p.write("kiln.kdl", &spec("b.txt"));
    let b = p.build(&[]);
    assert_ne!(a.key("f"), b.key("f"));
    assert_eq!(read(&b.output("s").join("x")), "pinned bytes\n");
}
