//! End-to-end: what a stage cannot do in the sandbox, stages that run in
//! an imported base image, and `--sandbox auto` where namespaces are
//! refused, through the real `kiln` binary.

use std::net::TcpListener;

use crate::common::images::{
    busybox_image, write_docker_archive, write_oci_archive, write_oci_dir,
};
use crate::common::skip::{require_sandbox, require_user_namespaces};
use crate::common::{Project, read};

#[test]
fn a_stage_cannot_reach_a_listener_on_the_hosts_loopback() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let port = listener.local_addr().expect("addr").port();
    let p = Project::new(&format!(
        r#"stage probe {{
            run "if timeout 5 busybox nc 127.0.0.1 {port} </dev/null; then echo reached > $out/net; else echo refused > $out/net; fi"
        }}"#
    ));
    if !require_sandbox() {
        return;
    }
    let report = p.build(&["--sandbox", "on"]);
    assert_eq!(read(&report.output("probe").join("net")), "refused\n");
    assert!(
        listener.accept().is_err(),
        "the stage connected to the host"
    );
}

#[test]
fn a_stage_sees_only_declared_files_and_writes_only_its_output() {
    let p = Project::new(
        r#"
        stage probe {
            src "declared.txt"
            run "cat declared.txt > $out/declared"
            run "if cat \"$SECRET\" 2>/dev/null; then echo read > $out/secret; else echo unreadable > $out/secret; fi"
            run "for d in /etc /usr /; do if touch $d/kiln-was-here 2>/dev/null; then echo \"$d writable\"; fi; done > $out/writes"
            run "ls /proc | grep -c '^[0-9]' > $out/pids"
        }
        "#,
    );
    if !require_sandbox() {
        return;
    }
    p.write("declared.txt", "ok\n");
    // A file next to the project, outside its build context: undeclared.
    let secret = p.dir.path().join("secret.txt");
    std::fs::write(&secret, "do not read").expect("write");
    p.write(
        "kiln.kdl",
        &read(&p.root().join("kiln.kdl")).replace(
            "stage probe {",
            &format!("stage probe {{\n env SECRET=\"{}\"", secret.display()),
        ),
    );
    let report = p.build(&["--sandbox", "on"]);
    let out = report.output("probe");
    assert_eq!(read(&out.join("declared")), "ok\n");
    assert_eq!(read(&out.join("secret")), "unreadable\n");
    assert_eq!(read(&out.join("writes")), "");
    let pids: u32 = read(&out.join("pids")).trim().parse().expect("a count");
    // kiln's init (pid 1), the script's shell, `ls` and `grep`.
    assert!(pids <= 4, "the stage saw {pids} processes");
    assert!(!std::path::Path::new("/etc/kiln-was-here").exists());
}

const FROM_BUSYBOX: &str = r#"
base busybox {
    archive "ARCHIVE" digest="DIGEST"
}
stage greet {
    from busybox
    run "echo hello from $(cat /etc/hello | tr -d '\n') > $out/greeting; ls /usr > $out/usr 2>&1 || true"
}
"#;

#[test]
fn a_stage_runs_from_a_base_image_in_every_archive_format() {
    let image = busybox_image();
    let mut keys = Vec::new();
    for (format, name) in [
        ("docker", "bb.tar"),
        ("oci-archive", "bb-oci.tar"),
        ("oci-dir", "bb-oci"),
    ] {
        let p = Project::new("");
        let path = p.root().join(name);
        match format {
            "docker" => write_docker_archive(&image, &path),
            "oci-archive" => write_oci_archive(&image, &path),
            _ => write_oci_dir(&image, &path),
        }
        p.write(
            "kiln.kdl",
            &FROM_BUSYBOX
                .replace("ARCHIVE", name)
                .replace("DIGEST", &image.id().to_string()),
        );
        if !require_sandbox() {
            return;
        }
        let report = p.build(&[]);
        let out = report.output("greet");
        assert_eq!(read(&out.join("greeting")), "hello from hi\n", "{format}");
        // The image has no /usr: the host's is not there.
        assert!(read(&out.join("usr")).contains("No such file"), "{format}");
        keys.push(report.key("greet"));
    }
    // The key follows the image (its config digest), not the archive format.
    assert!(keys.windows(2).all(|w| w[0] == w[1]), "{keys:?}");
}

#[test]
fn a_wrong_base_digest_is_refused_showing_both_digests() {
    let image = busybox_image();
    let p = Project::new("");
    write_docker_archive(&image, &p.root().join("bb.tar"));
    let wrong = kiln::hash::Digest::of(b"not this image");
    p.write(
        "kiln.kdl",
        &FROM_BUSYBOX
            .replace("ARCHIVE", "bb.tar")
            .replace("DIGEST", &wrong.to_string()),
    );
    let out = p.kiln(&["build"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert!(stderr.contains(&wrong.to_string()), "{stderr}");
    assert!(stderr.contains(&image.id().to_string()), "{stderr}");
}

#[test]
fn an_image_from_a_base_reuses_its_layers_verbatim_and_runs_in_docker() {
    let Some(engine) = crate::common::engine::DockerEngine::start() else {
        return;
    };
    // gzip and plain layers only: Docker 20.10 cannot load zstd ones.
    let image = crate::common::images::busybox_image_with(crate::common::images::Compress::Gzip);
    let p = Project::new(&format!(
        r#"
        base busybox {{
            archive "bb.tar" digest="{}"
        }}
        stage note {{
            run "echo from kiln > $out/note"
        }}
        image app {{
            from busybox
            copy note "note" to="/app/note"
            entrypoint "/bin/sh" "-c" "cat /etc/hello /app/note"
            tag "kiln-e2e-on-busybox:v1"
        }}
        "#,
        image.id()
    ));
    write_docker_archive(&image, &p.root().join("bb.tar"));
    let out = p.kiln(&["export", "app", "-o", "app.tar"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tar = p.root().join("app.tar");

    let inspect = std::process::Command::new("skopeo")
        .args(["inspect", &format!("oci-archive:{}", tar.display())])
        .output()
        .expect("skopeo");
    assert!(
        inspect.status.success(),
        "{}",
        String::from_utf8_lossy(&inspect.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&inspect.stdout).expect("skopeo JSON");
    let layers: Vec<String> = (v["Layers"].as_array().expect("layers").iter())
        .map(|l| l.as_str().expect("digest").to_owned())
        .collect();
    let base_layers: Vec<String> = image
        .layers
        .iter()
        .map(|l| kiln::hash::Digest::of(&l.bytes).to_string())
        .collect();
    assert_eq!(
        layers[..base_layers.len()],
        base_layers[..],
        "base layers not reused verbatim"
    );
    assert_eq!(layers.len(), base_layers.len() + 1);

    engine.docker_ok(&["load", "-i", tar.to_str().expect("utf-8 path")]);
    let out = engine.docker_ok(&["run", "--rm", "--network", "none", "kiln-e2e-on-busybox:v1"]);
    assert_eq!(out, "hi\nfrom kiln\n");
    // The base's config is inherited where the image does not override it.
    let env = engine.docker_ok(&[
        "inspect",
        "--format",
        "{{json .Config.Env}}",
        "kiln-e2e-on-busybox:v1",
    ]);
    assert!(env.contains("PATH=/bin"), "{env}");
}

/// `kiln ARGS` in a user namespace that may create no further user
/// namespace (`user.max_user_namespaces` is per namespace): a kernel that
/// refuses kiln its sandbox, without changing the host's setting.
fn kiln_without_namespaces(p: &Project, args: &[&str]) -> std::process::Output {
    let mut cmd = std::process::Command::new("unshare");
    cmd.args(["--user", "--map-root-user", "sh", "-c"])
        .arg("echo 0 > /proc/sys/user/max_user_namespaces && exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_kiln"))
        .args(args)
        .current_dir(p.root())
        .env("KILN_HOME", &p.store)
        .env("NO_COLOR", "1");
    cmd.output().expect("run unshare")
}

#[test]
fn sandbox_auto_warns_and_builds_without_it_where_namespaces_are_refused() {
    if !(require_user_namespaces() && require_sandbox()) {
        return;
    }
    let spec = "stage s { run \"echo built > $out/s\" }\n";
    let warning = |stderr: &str| {
        (stderr.lines()).any(|l| {
            l.starts_with("warning: namespaces unavailable (")
                && l.ends_with("); building without the sandbox")
        })
    };
    // Where the sandbox works, auto uses it and says nothing.
    let p = Project::new(spec);
    let out = p.kiln(&["build", "--sandbox", "auto"]);
    assert!(out.status.success());
    assert!(!warning(&String::from_utf8_lossy(&out.stderr)));

    let p = Project::new(spec);
    let out = kiln_without_namespaces(&p, &["build", "--json", "--sandbox", "auto"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(warning(&stderr), "no fallback warning:\n{stderr}");
    let report = crate::common::Report::parse(&out.stdout);
    assert_eq!(read(&report.output("s").join("s")), "built\n");

    let p = Project::new(spec);
    let out = kiln_without_namespaces(&p, &["build", "--sandbox", "on"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("The build sandbox is unavailable"),
        "{stderr}"
    );
}

/// `--sandbox auto` builds without the sandbox only where the kernel
/// refuses namespaces. A probe that fails for want of a process (the user
/// at its process limit, which another build, a hostile one perhaps, can
/// bring about) is no such machine: every stage fails, saying why, and
/// none runs without isolation. (It fell back with the "namespaces
/// unavailable" warning.)
#[test]
fn sandbox_auto_at_the_process_limit_does_not_build_without_the_sandbox() {
    if !(crate::common::skip::require_root() && require_sandbox()) {
        return;
    }
    let p = Project::new("stage s { run \"echo built > $out/s\" }\n");
    p.give_to_nobody();
    let out = p
        .cmd_as_nobody_limited(1, &["build", "--sandbox", "auto"])
        .output()
        .expect("run kiln");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("building without the sandbox"), "{stderr}");
    assert!(stderr.contains("the sandbox cannot start"), "{stderr}");
}
