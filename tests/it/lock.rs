//! kiln.lock end to end: `kiln lock` records the digest a private registry
//! serves for a tag, builds use it (and keep using it when the tag moves,
//! until `kiln lock` runs again), a base by tag without an entry is refused,
//! and `--locked` fails before building when a host tool or a fetch's
//! sha256 no longer matches the lock.

use std::process::Output;

use crate::common::images::{
    Compress, Image, busybox_image_with, file, layer, write_docker_archive,
};
use crate::common::registry::Registry;
use crate::common::skip::require_sandbox;
use crate::common::{Project, host_tool, read};
use kiln::hash::Digest;

/// The busybox image plus `/etc/version` = `version`, pushed to `bb:1`.
fn push_version(registry: &Registry, version: &str) -> Digest {
    let mut layers = busybox_image_with(Compress::Gzip).layers;
    layers.push(layer(Compress::Gzip, |b| {
        file(b, "etc/version", 0o644, format!("{version}\n").as_bytes())
    }));
    let tmp = tempfile::tempdir().expect("temp dir");
    let archive = tmp.path().join("bb.tar");
    write_docker_archive(&Image::new(layers), &archive);
    registry.push_archive(&archive, "docker-archive", "bb:1")
}

fn by_tag(reference: &str) -> String {
    format!(
        r#"
base bb {{
    image "{reference}"
}}
stage v {{
    from bb
    run "cat /etc/version > $out/v"
}}
"#
    )
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `text` without whitespace or miette's wrapping gutter: long paths and
/// hashes wrap wherever the terminal width puts them.
fn squash(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_whitespace() && *c != '│')
        .collect()
}

/// The lock's lines, without its header comment.
fn lock_lines(p: &Project) -> Vec<String> {
    (read(&p.root().join("kiln.lock")).lines())
        .filter(|l| !l.starts_with("//"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn kiln_lock_pins_a_tag_and_builds_keep_it_until_kiln_lock_runs_again() {
    let Some(registry) = Registry::start() else {
        return;
    };
    if !require_sandbox() {
        return;
    }
    let one = push_version(&registry, "one");
    let reference = format!("{}/bb:1", registry.host());
    let p = Project::new(&by_tag(&reference));
    p.ok(&["lock"]);
    let entry = |d: &Digest| format!("base \"bb\" image=\"{reference}\" digest=\"{d}\"");
    assert_eq!(lock_lines(&p), ["version 1".to_owned(), entry(&one)]);
    let first = p.build(&[]);
    assert_eq!(read(&first.output("v").join("v")), "one\n");

    // Nothing changed: the same bytes, the file not even rewritten; and
    // `--locked` agrees.
    p.ok(&["lock", "--locked"]);
    let path = p.root().join("kiln.lock");
    let (bytes, mtime) = (
        read(&path),
        std::fs::metadata(&path).unwrap().modified().unwrap(),
    );
    p.ok(&["lock"]);
    assert_eq!(read(&path), bytes);
    assert_eq!(std::fs::metadata(&path).unwrap().modified().unwrap(), mtime);

    // The tag moves to another image: builds still use the locked one.
    let two = push_version(&registry, "two");
    assert_ne!(one, two);
    let again = p.build(&["--locked"]);
    assert_eq!(again.status("v"), "cached");
    assert_eq!(read(&again.output("v").join("v")), "one\n");

    // `kiln lock` again: `--locked` refuses to change the lock; without it,
    // the new digest, and the stage runs in it.
    let out = p.kiln(&["lock", "--locked"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("`--locked` forbids changing it"),
        "{}",
        stderr(&out)
    );
    assert_eq!(lock_lines(&p), ["version 1".to_owned(), entry(&one)]);
    p.ok(&["lock", "--update", "bb"]);
    assert_eq!(lock_lines(&p), ["version 1".to_owned(), entry(&two)]);
    let moved = p.build(&[]);
    assert_eq!(moved.status("v"), "built");
    assert_eq!(read(&moved.output("v").join("v")), "two\n");
}

#[test]
fn a_base_by_tag_without_a_lock_entry_is_refused_with_the_help() {
    // No registry is asked: planning refuses the tag first.
    let p = Project::new(&by_tag("127.0.0.1:9/bb:1"));
    let out = p.kiln(&["build"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert_eq!(
        stderr(&out),
        r#"kiln::eval::unlocked_base

  × Base `bb` is given by tag (`127.0.0.1:9/bb:1`) and kiln.lock does not pin
  │ it
   ╭─[kiln.kdl:3:11]
 2 │ base bb {
 3 │     image "127.0.0.1:9/bb:1"
   ·           ─────────┬────────
   ·                    ╰── a tag that kiln.lock does not pin
 4 │ }
   ╰────
  help: run `kiln lock` to resolve the tag to its digest and record it in
        kiln.lock (or pin it here: `127.0.0.1:9/bb:1@sha256:…`)

"#
    );
    // A lock that pins another tag of the base does not pin this one.
    p.write(
        "kiln.lock",
        &format!(
            "version 1\nbase \"bb\" image=\"127.0.0.1:9/bb:2\" digest=\"sha256:{}\"\n",
            "0".repeat(64)
        ),
    );
    let out = p.kiln(&["build"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("kiln::eval::unlocked_base"),
        "{}",
        stderr(&out)
    );
    // `--update` names a base by tag, or fails before any network.
    let out = p.kiln(&["lock", "--update", "v"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("`--update v`: kiln.kdl has no base `v` given by tag"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn locked_fails_before_building_when_a_tool_changes_naming_it() {
    let (tools, tool) = host_tool("/tmp", "kiln-lock-tool", "echo one");
    let p = Project::new(
        "stage s {\n    tools \"kiln-lock-tool\"\n    run \"kiln-lock-tool > $out/o\"\n}\n",
    );
    let path = format!(
        "{}:{}",
        tools.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let kiln = |args: &[&str]| p.cmd(args).env("PATH", &path).output().expect("run kiln");
    let out = kiln(&["--locked", "build"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("`--locked` needs `kiln.lock`, and there is none"),
        "{}",
        stderr(&out)
    );

    assert!(kiln(&["lock"]).status.success());
    let hash = |text: &str| {
        blake3::hash(format!("#!/bin/sh\n{text}\n").as_bytes())
            .to_hex()
            .to_string()
    };
    assert_eq!(
        lock_lines(&p)[1],
        format!("tool \"kiln-lock-tool\" blake3=\"{}\"", hash("echo one"))
    );
    std::fs::write(&tool, "#!/bin/sh\necho two\n").expect("edit the tool");
    let out = kiln(&["--locked", "build"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let shown = squash(&stderr(&out));
    let expected = format!(
        "`--locked`: host tool `kiln-lock-tool` (`{}`) no longer matches kiln.lock",
        tool.display()
    );
    assert!(shown.contains(&squash(&expected)), "{shown}");
    let both = format!(
        "kiln.lock has blake3 {}, now it is blake3 {};",
        hash("echo one"),
        hash("echo two")
    );
    assert!(shown.contains(&squash(&both)), "{shown}");
    assert!(out.stdout.is_empty());
    // Nothing was built; without `--locked` the new tool is keyed as usual.
    let out = kiln(&["build", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report = crate::common::Report::parse(&out.stdout);
    assert_eq!(report.status("s"), "built");
    assert_eq!(read(&report.output("s").join("o")), "two\n");
}

#[test]
fn locked_fails_when_a_fetch_sha256_is_edited_naming_it() {
    let p = Project::new("");
    let data = p.dir.path().join("data.bin");
    std::fs::write(&data, "payload").expect("write data");
    let spec = |sha: &str| {
        format!(
            "fetch f url=\"file://{}\" sha256=\"{sha}\"\nstage s {{ use f; run \"cat $f/data.bin > $out/x\" }}\n",
            data.display()
        )
    };
    let good = Digest::of(b"payload").hex();
    p.write("kiln.kdl", &spec(&good));
    p.ok(&["lock"]);
    assert_eq!(lock_lines(&p)[1], format!("fetch \"f\" sha256=\"{good}\""));
    p.build(&["--locked"]);
    let edited = "1".repeat(64);
    p.write("kiln.kdl", &spec(&edited));
    let out = p.kiln(&["--locked", "build"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let shown = squash(&stderr(&out));
    assert!(
        shown.contains(&squash(
            "`--locked`: the sha256 of fetch `f` no longer matches kiln.lock"
        )),
        "{shown}"
    );
    assert!(
        shown.contains(&squash(&format!(
            "kiln.lock has {good}, now it is {edited};"
        ))),
        "{shown}"
    );
}
