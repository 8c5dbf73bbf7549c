//! Adversarial tests of `import` and `template` (spec/reuse.md): keys that
//! must not hold an alias or an instance's name, a spec cache that must
//! notice every change to what an import reads, and hostile nesting.

use std::io::{Read, Write};
use std::net::TcpListener;

use crate::common::Project;

const BODY: &[u8] = b"pinned bytes\n";

/// Serves `BODY` to up to `requests` connections on 127.0.0.1; the thread
/// is left waiting if fewer come.
fn serve(requests: usize) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
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
        }
    });
    port
}

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Finding 1: the spec cache compared the imported file's canonical path,
/// so retargeting a symlink the import goes through (the file, or a
/// directory on its path) left a stale spec: the old file's nodes.
#[test]
fn a_cached_spec_notices_an_import_symlink_retargeted() {
    let p = Project::new("import \"lib.kdl\" as=l\nimport \"d/t.kdl\" as=m\n");
    p.write("a.kdl", "stage one { run \"true\" }\n");
    p.write("b.kdl", "stage two { run \"true\" }\n");
    p.write("da/t.kdl", "stage three { run \"true\" }\n");
    p.write("db/t.kdl", "stage four { run \"true\" }\n");
    let root = p.root();
    std::os::unix::fs::symlink("a.kdl", root.join("lib.kdl")).expect("symlink");
    std::os::unix::fs::symlink("da", root.join("d")).expect("symlink");
    let graph = p.ok(&["graph"]);
    assert!(
        graph.contains("l.one") && graph.contains("m.three"),
        "{graph}"
    );
    fs_err::remove_file(root.join("lib.kdl")).expect("rm");
    fs_err::remove_file(root.join("d")).expect("rm");
    std::os::unix::fs::symlink("b.kdl", root.join("lib.kdl")).expect("symlink");
    std::os::unix::fs::symlink("db", root.join("d")).expect("symlink");
    let graph = p.ok(&["graph"]);
    assert!(graph.contains("l.two"), "stale spec: {graph}");
    assert!(graph.contains("m.four"), "stale spec: {graph}");
}

/// Finding 2: a fetch was keyed by its name with the alias (or instance)
/// before it: `x.data` and `y.data` of one file, or `a.data` and `b.data`
/// of one template with equal params, are the same fetch but had two keys
/// (and two downloads), against "never the alias, never the instance's
/// name".
#[test]
fn a_fetch_is_keyed_without_its_alias_or_instance_name() {
    let port = serve(8);
    let sha = kiln::hash::Digest::of(BODY).hex();
    let fetch = format!(
        "fetch data url=\"http://127.0.0.1:{port}/data.txt\" sha256=\"{sha}\"\n\
         stage r {{ use data; run \"cat $data/data.txt > $out/x\"; }}\n"
    );
    let p = Project::new(
        "import \"plain.kdl\" as=x\nimport \"plain.kdl\" as=y\n\
         import \"t.kdl\" as=u\nimport \"t.kdl\" as=v\nu.t a\nu.t b\nv.t c\n",
    );
    p.write("plain.kdl", &fetch);
    p.write("t.kdl", &format!("template t {{\n    {fetch}}}\n"));
    let report = p.build(&[]);
    let key = report.key("x.data");
    for other in ["y.data", "a.data", "b.data", "c.data"] {
        assert_eq!(report.key(other), key, "{other}");
    }
}

/// Finding 3: a chain of 3,000 templates, each instantiating the next (far
/// below the instance limit), overflowed the stack after a minute of work
/// (`kiln check` aborted). Nesting is bounded, with a diagnostic.
#[test]
fn a_deep_chain_of_instances_neither_crashes_nor_hangs() {
    let n = 3000;
    let mut spec = String::new();
    for i in 0..n {
        spec += &format!(
            "template t{i} {{\n    stage s{i} {{ run \"true\" }}\n    t{} n\n}}\n",
            i + 1
        );
    }
    spec += &format!("template t{n} {{\n    stage last {{ run \"true\" }}\n}}\nt0 top\n");
    let p = Project::new(&spec);
    let started = std::time::Instant::now();
    let out = p.kiln(&["check"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
    let stderr = stderr_of(&out);
    assert!(
        stderr.contains("kiln::spec::instances_too_deep"),
        "{stderr}"
    );
    assert!(started.elapsed().as_secs() < 30, "{:?}", started.elapsed());
}

/// Finding 4: a body is copied per instance, so 45 KB of text (a template
/// of 1,000 stages, 2,000 instances) made 2,000,000 stages: 97 s and 2.2 GB
/// in a debug build, and 20,000 instances (within the limit) 10 times that.
/// What all instances make together is bounded.
#[test]
fn instances_of_a_big_body_are_bounded_in_what_they_make() {
    let mut spec = String::from("template t {\n");
    for j in 0..1000 {
        spec += &format!("    stage s{j} {{ run \"true\" }}\n");
    }
    spec += "}\n";
    for k in 0..2000 {
        spec += &format!("t i{k}\n");
    }
    let p = Project::new(&spec);
    let started = std::time::Instant::now();
    let out = p.kiln(&["check"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
    let stderr = stderr_of(&out);
    assert!(
        stderr.contains("kiln::spec::too_many_instance_nodes"),
        "{stderr}"
    );
    assert!(started.elapsed().as_secs() < 30, "{:?}", started.elapsed());
}

/// Held: 64 nested instances, the most allowed, load.
#[test]
fn instances_nested_as_deep_as_allowed_load() {
    let n = 63;
    let mut spec = String::new();
    for i in 0..n {
        spec += &format!(
            "template t{i} {{\n    stage s{i} {{ run \"true\" }}\n    t{} n\n}}\n",
            i + 1
        );
    }
    spec += &format!("template t{n} {{\n    stage last {{ run \"true\" }}\n}}\nt0 top\n");
    let p = Project::new(&spec);
    let out = p.kiln(&["check"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        stderr_of(&out)
    );
    assert!(said.contains("ok (64 stage(s)"), "{said}");
}

/// Held: what an import names must be a regular UTF-8 file of at most
/// 4 MiB; a FIFO, a directory or a device is refused at once.
#[test]
fn hostile_import_targets_are_refused_without_blocking() {
    let p = Project::new(
        "import \"fifo\" as=a\nimport \"d\" as=b\nimport \"/dev/zero\" as=c\n\
         import \"bad.kdl\" as=e\n",
    );
    let root = p.root();
    let mkfifo = std::process::Command::new("mkfifo")
        .arg(root.join("fifo"))
        .status()
        .expect("mkfifo");
    assert!(mkfifo.success());
    fs_err::create_dir(root.join("d")).expect("mkdir");
    fs_err::write(root.join("bad.kdl"), b"\xff\xfe").expect("write");
    let out = p.kiln(&["check"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = stderr_of(&out);
    for what in ["a FIFO", "a directory", "a character device", "not UTF-8"] {
        assert!(stderr.contains(what), "{what}: {stderr}");
    }
}

/// A chain of 250 files, each importing the next: within the 256-file
/// limit, so it must load (or be refused), not overflow the stack.
#[test]
fn a_deep_chain_of_imports_neither_crashes_nor_hangs() {
    let n = 250;
    let p = Project::new("import \"l0.kdl\" as=a\n");
    for i in 0..n {
        let text = format!(
            "import \"l{}.kdl\" as=x\nstage s{i} {{ run \"true\" }}\n",
            i + 1
        );
        p.write(&format!("l{i}.kdl"), &text);
    }
    p.write(&format!("l{n}.kdl"), "stage s { run \"true\" }\n");
    let out = p.kiln(&["check"]);
    let code = out.status.code();
    assert!(matches!(code, Some(0 | 2)), "{code:?}: {}", stderr_of(&out));
}
