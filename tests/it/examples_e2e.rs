//! The examples under `examples/` (the five seed tutorials, done with kiln),
//! end to end through the `kiln` binary: build, export, `docker load`,
//! `docker run`. The four examples that compile in kiln's own Go toolchain
//! image import it from one file (`examples/toolchains/go.kdl`) and share
//! one store, as a user's machine would, so the toolchain is built once;
//! the SQLite web server builds `from host` in its own.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use crate::common::engine::DockerEngine;
use serde_json::Value;

/// One example copied into a temp directory, with a store that several
/// examples may share.
struct Example {
    dir: PathBuf,
    store: PathBuf,
}

impl Example {
    /// `examples/NAME` copied to `parent/NAME`, with the shared files it
    /// imports (`examples/toolchains`) beside it, using the store `store`.
    fn copy(name: &str, parent: &Path, store: &Path) -> Example {
        let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
        let dir = parent.join(name);
        copy_tree(&examples.join(name), &dir);
        if !parent.join("toolchains").exists() {
            copy_tree(&examples.join("toolchains"), &parent.join("toolchains"));
        }
        Example {
            dir,
            store: store.to_owned(),
        }
    }

    fn kiln(&self, args: &[&str]) -> Output {
        std::process::Command::new(env!("CARGO_BIN_EXE_kiln"))
            .args(args)
            .current_dir(&self.dir)
            .env("KILN_HOME", &self.store)
            .env("NO_COLOR", "1")
            .output()
            .expect("run kiln")
    }

    /// `kiln ARGS`, asserting success; its stdout.
    fn kiln_ok(&self, args: &[&str]) -> String {
        crate::common::ok(self.kiln(args), args)
    }

    /// `kiln build --json ARGS`: its exit code and report, success or not.
    fn build_json(&self, args: &[&str]) -> (Option<i32>, Value) {
        let mut all = vec!["build", "--json"];
        all.extend_from_slice(args);
        let out = self.kiln(&all);
        let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "bad JSON ({e}); stderr:\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (out.status.code(), report)
    }

    /// Exports `image` and loads it into `engine`.
    fn load(&self, image: &str, engine: &DockerEngine) {
        let tar = self.dir.join(format!("{image}.tar"));
        let tar = tar.to_str().expect("utf-8 path");
        self.kiln_ok(&["export", image, "-o", tar]);
        engine.docker_ok(&["load", "-i", tar]);
    }

    /// `kiln inspect IMAGE --json` with uncompressed layers: what `docker
    /// images` calls the size.
    fn inspect(&self, image: &str) -> Value {
        let out = self.kiln_ok(&["inspect", image, "--json", "--compression", "none"]);
        serde_json::from_str(&out).expect("inspect JSON")
    }
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read example dir") {
        let entry = entry.expect("dir entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy example file");
        }
    }
}

/// The entry of stage `name` in a `kiln build --json` report.
fn stage<'a>(report: &'a Value, name: &str) -> &'a Value {
    (report["stages"].as_array().expect("stages"))
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no stage {name} in {report}"))
}

fn image_size(inspect: &Value) -> u64 {
    (inspect["layers"].as_array().expect("layers"))
        .iter()
        .map(|l| l["size"].as_u64().expect("layer size"))
        .sum()
}

const GO_EXAMPLES: [&str; 4] = [
    "hello-builder",
    "hello-scratch",
    "go-module",
    "size-compare",
];

/// The stages of `examples/toolchains/go.kdl`, as the examples import it.
const TOOLCHAIN_STAGES: [&str; 2] = ["go.go-dist", "go.busybox"];

#[test]
fn the_go_examples_share_the_toolchains_store_entries() {
    // Two examples in two directories, one store: the second builds none
    // of the toolchain's stages, whose keys are the first's.
    let tmp = tempfile::tempdir().expect("temp dir");
    let store = tmp.path().join("store");
    let first = Example::copy(GO_EXAMPLES[0], &tmp.path().join("a"), &store);
    let (code, built) = first.build_json(&TOOLCHAIN_STAGES);
    assert_eq!(code, Some(0), "{built}");
    let second = Example::copy(GO_EXAMPLES[1], &tmp.path().join("b/c"), &store);
    let (code, again) = second.build_json(&TOOLCHAIN_STAGES);
    assert_eq!(code, Some(0), "{again}");
    for name in TOOLCHAIN_STAGES {
        assert_eq!(stage(&built, name)["status"], "built", "{name}");
        assert_eq!(stage(&again, name)["status"], "cached", "{name}");
        assert_eq!(stage(&again, name)["key"], stage(&built, name)["key"]);
        assert_eq!(stage(&again, name)["file"], "../toolchains/go.kdl");
    }
    // Every Go example keys the toolchain's stages the same: what
    // `kiln explain` says of them, unbuilt, in a store of their own.
    let key_line = |name: &str, stage: &str| {
        let ex = Example::copy(name, &tmp.path().join("each"), &tmp.path().join(name));
        let out = ex.kiln_ok(&["explain", stage]);
        out.lines().nth(1).expect("a key line").to_owned()
    };
    for stage in TOOLCHAIN_STAGES {
        let first = key_line(GO_EXAMPLES[0], stage);
        assert!(first.contains("has never been built here (key "), "{first}");
        for name in &GO_EXAMPLES[1..] {
            assert_eq!(key_line(name, stage), first, "{name}: {stage}");
        }
    }
}

#[test]
fn the_go_examples_build_in_one_store_and_run_in_docker() {
    let Some(engine) = DockerEngine::start() else {
        return;
    };
    let tmp = tempfile::tempdir().expect("temp dir");
    let store = tmp.path().join("store");
    let started = Instant::now();
    hello_builder(&Example::copy("hello-builder", tmp.path(), &store), &engine);
    eprintln!("hello-builder: {:?}", started.elapsed());
    let scratch = Example::copy("hello-scratch", tmp.path(), &store);
    hello_scratch(&scratch, &engine);
    go_module(&Example::copy("go-module", tmp.path(), &store), &engine);
    size_compare(&Example::copy("size-compare", tmp.path(), &store));
    eprintln!("four examples: {:?}", started.elapsed());
    // The same example in another directory with a clean store: the same
    // image, byte for byte (its digest covers config and layers).
    let other = tempfile::tempdir().expect("temp dir");
    let again = Example::copy("hello-scratch", other.path(), &other.path().join("store"));
    assert_eq!(
        again.inspect("hello-scratch")["digest"],
        scratch.inspect("hello-scratch")["digest"]
    );
    eprintln!("with a second clean store: {:?}", started.elapsed());
}

fn hello_builder(ex: &Example, engine: &DockerEngine) {
    let (code, first) = ex.build_json(&[]);
    assert_eq!(code, Some(0), "{first}");
    ex.load("hello-builder", engine);
    let out = engine.docker_ok(&["run", "--rm", "--network", "none", "hello-builder:1"]);
    assert_eq!(out, "Hello, world! (built in a kiln builder stage)\n");
    // The runtime base is the busybox image kiln made: a shell and applets.
    let out = engine.docker_ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "hello-builder:1",
        "sh",
        "-c",
        "pwd; ls",
    ]);
    assert_eq!(out, "/root\nmain\n");

    // Docker's ARG CODE_VERSION: the same value keeps every key...
    let (code, same) = ex.build_json(&["--arg", "go-version=1.19"]);
    assert_eq!(code, Some(0), "{same}");
    for name in ["go.go-dist", "go.busybox", "hello.build"] {
        assert_eq!(stage(&same, name)["status"], "cached", "{name}");
        assert_eq!(stage(&same, name)["key"], stage(&first, name)["key"]);
    }
    // ...another changes the key of go-dist, whose script mentions it, and
    // of nothing else (this machine has no Go 0.0, so it fails, saying so).
    let (code, other) = ex.build_json(&["--arg", "go-version=0.0"]);
    assert_eq!(code, Some(1), "{other}");
    let go_dist = stage(&other, "go.go-dist");
    assert_eq!(go_dist["status"], "failed");
    assert_ne!(go_dist["key"], stage(&first, "go.go-dist")["key"]);
    assert_eq!(stage(&other, "go.busybox")["status"], "cached");
    assert_eq!(
        stage(&other, "go.busybox")["key"],
        stage(&first, "go.busybox")["key"]
    );
    assert_eq!(stage(&other, "hello.build")["status"], "skipped");
    let stderr = String::from_utf8_lossy(&ex.kiln(&["build", "--arg", "go-version=0.0"]).stderr)
        .into_owned();
    assert!(stderr.contains("apt-get install golang-0.0-go"), "{stderr}");
}

fn hello_scratch(ex: &Example, engine: &DockerEngine) {
    ex.load("hello-scratch", engine);
    let out = engine.docker_ok(&["run", "--rm", "--network", "none", "hello-scratch:latest"]);
    assert_eq!(out, "Hello world!\n");
    let inspect = ex.inspect("hello-scratch");
    assert_eq!(
        inspect["layers"].as_array().expect("layers").len(),
        1,
        "scratch plus the program: {inspect}"
    );

    // The tutorial's bonus exercise: a shell-form entrypoint on scratch
    // builds with Docker and cannot start; kiln refuses it up front.
    let spec = crate::common::read(&ex.dir.join("kiln.kdl"));
    let shell = spec.replace(
        r#"entrypoint "/app/goapp""#,
        r#"entrypoint "./goapp" shell=#true"#,
    );
    assert_ne!(shell, spec);
    std::fs::write(ex.dir.join("shell.kdl"), shell).expect("write spec");
    let out = ex.kiln(&["-f", "shell.kdl", "export", "hello-scratch", "-o", "x.tar"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("/bin/sh"), "{stderr}");
    assert!(stderr.contains("shell=#true"), "{stderr}");
    assert!(!ex.dir.join("x.tar").exists());
}

fn go_module(ex: &Example, engine: &DockerEngine) {
    ex.load("go-module", engine);
    let out = engine.docker_ok(&["run", "--rm", "--network", "none", "go-module:latest"]);
    assert_eq!(out, "DevOps is the \u{1F410}\n");
    let out = engine.docker_ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "go-module:latest",
        "ls",
        "-l",
        "/root/app",
        "/etc/ssl/certs/ca-certificates.crt",
    ]);
    let line = |path: &str| {
        (out.lines())
            .find(|l| l.ends_with(path))
            .unwrap_or_else(|| panic!("no {path} in\n{out}"))
            .to_owned()
    };
    assert!(line("/root/app").starts_with("-rwxr-xr-x"), "{out}");
    let certs = line("/etc/ssl/certs/ca-certificates.crt");
    let size: u64 = certs
        .split_whitespace()
        .nth(4)
        .expect("size")
        .parse()
        .expect("number");
    assert!(size > 10_000, "a real certificate bundle: {certs}");
}

fn size_compare(ex: &Example) {
    let fat = image_size(&ex.inspect("app-fat"));
    let multi = image_size(&ex.inspect("app-multi"));
    eprintln!("size-compare: fat {fat} bytes, multi-stage {multi} bytes");
    assert!(
        fat >= 50 * multi,
        "the multi-stage image should be at least 50x smaller: {fat} vs {multi}"
    );
}

#[test]
fn http_sqlite_serves_its_template_with_rows_from_its_database() {
    let Some(engine) = DockerEngine::start() else {
        return;
    };
    let tmp = tempfile::tempdir().expect("temp dir");
    let ex = Example::copy("http-sqlite", tmp.path(), &tmp.path().join("store"));
    ex.load("go-http-demo", &engine);
    let config = engine.docker_ok(&["inspect", "--format", "{{json .Config}}", "go-http-demo:v2"]);
    let config: Value = serde_json::from_str(&config).expect("inspect JSON");
    assert_eq!(config["Labels"]["description"], "Demo GoLang App");
    assert!(config["Labels"]["maintainer"].is_string(), "{config}");
    assert!(config["ExposedPorts"]["8080/tcp"].is_object(), "{config}");
    assert!(
        (config["Env"].as_array().expect("env"))
            .iter()
            .any(|e| e == "PORT=8080"),
        "{config}"
    );

    // The engine has no bridge: the server shares the host's network, on a
    // free port (PORT, as a user would set it), and the test is its client.
    let port = free_port();
    let id = engine.docker_ok(&[
        "run",
        "-d",
        "--network",
        "host",
        "-e",
        &format!("PORT={port}"),
        "go-http-demo:v2",
    ]);
    let page = http_get(port, Duration::from_secs(30));
    let logs = engine.docker(&["logs", id.trim()]);
    engine.docker(&["rm", "-f", id.trim()]);
    let page = page.unwrap_or_else(|e| {
        panic!(
            "no answer on port {port} ({e}); server log:\n{}",
            String::from_utf8_lossy(&logs.stderr)
        )
    });
    assert!(page.starts_with("HTTP/1.0 200"), "{page}");
    assert!(page.contains("<title>Demo GoLang App</title>"), "{page}");
    assert!(
        page.contains(r#"<li id="note-2">kiln builds each stage once, keyed by its inputs.</li>"#),
        "{page}"
    );
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address").port()
}

/// `GET /` on localhost:`port`, retried until the server answers.
fn http_get(port: u16, patience: Duration) -> std::io::Result<String> {
    let deadline = Instant::now() + patience;
    loop {
        let attempt = (|| {
            let mut conn = std::net::TcpStream::connect(("127.0.0.1", port))?;
            conn.write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
            let mut page = String::new();
            conn.read_to_string(&mut page)?;
            Ok(page)
        })();
        match attempt {
            Ok(page) => return Ok(page),
            Err(e) if Instant::now() > deadline => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}
