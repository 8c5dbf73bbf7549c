//! Images through the real binary without an engine: what `kiln inspect`,
//! `kiln why` and `kiln export` print and write (whole-output snapshots of
//! the human reports, `export -o -` against a file export, the layer limit,
//! `SOURCE_DATE_EPOCH`), and the spec mistakes export refuses (entrypoints
//! that cannot start, copies that reach out of a stage's output, `add`'s
//! ignore rules). The fixture `words` is plain files, no ELF program, so no
//! closure and no host layout to depend on.

use std::io::Read;

use crate::common::Project;
use crate::image_e2e::{HELLO_C, HELLO_SPEC};

/// Three stages and an image with every kind of layer content: a copied
/// file (made executable for `cmd`), a copied directory with its own mode
/// and owner, a file added from the build context.
const WORDS: &str = r#"
stage gen {
    src "words.txt"
    run "sort words.txt > $out/sorted.txt"
}
stage upper {
    use gen
    run "tr a-z A-Z < $gen/sorted.txt > $out/upper.txt"
}
image words {
    copy upper "upper.txt" to="/data/upper.txt" mode=0o755
    copy gen "." to="/data/gen" mode=0o600 owner="1000:1000"
    add "notes.txt" to="/etc/notes"
    env LANG="C.UTF-8"
    cmd "/data/upper.txt"
    label org.example.name="words"
    tag "words:1"
}
"#;

pub fn words_project() -> Project {
    let p = Project::new(WORDS);
    p.write("words.txt", "pear\napple\n");
    p.write("notes.txt", "remember\n");
    p
}

#[test]
fn inspect_shows_layers_sizes_contents_and_config() {
    let p = words_project();
    crate::snapshot!("inspect_text", &p, p.ok(&["inspect", "words"]));
}

#[test]
fn why_names_the_copy_or_add_that_put_a_path_there() {
    let p = words_project();
    crate::snapshot!(
        "why_copy",
        &p,
        p.ok(&["why", "words", "/data/gen/sorted.txt"])
    );
    crate::snapshot!("why_add", &p, p.ok(&["why", "words", "/etc/notes"]));
    let out = p.kiln(&["why", "words", "/etc/passwd"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "/etc/passwd is not in image `words`\n"
    );
}

#[test]
fn export_to_stdout_streams_the_same_bytes_as_a_file_export() {
    let p = words_project();
    let file = p.kiln(&["export", "words", "-o", "words.tar"]);
    assert!(
        file.status.success(),
        "{}",
        String::from_utf8_lossy(&file.stderr)
    );
    assert!(
        file.stdout.is_empty(),
        "a file export writes nothing to stdout"
    );
    let streamed = p.kiln(&["export", "words", "-o", "-"]);
    assert!(
        streamed.status.success(),
        "{}",
        String::from_utf8_lossy(&streamed.stderr)
    );
    let written = std::fs::read(p.root().join("words.tar")).expect("read the export");
    assert!(!written.is_empty());
    assert!(
        streamed.stdout == written,
        "stdout ({} bytes) differs from the file ({} bytes)",
        streamed.stdout.len(),
        written.len()
    );
}

/// The config's `created` and every layer entry's mtime of `image`,
/// exported uncompressed with `SOURCE_DATE_EPOCH` = `epoch` (unset: `None`).
fn times_of_an_export(p: &Project, epoch: Option<&str>) -> (String, Vec<u64>) {
    let mut cmd = p.cmd(&["export", "words", "-o", "-", "--compression", "none"]);
    cmd.env_remove("SOURCE_DATE_EPOCH");
    if let Some(epoch) = epoch {
        cmd.env("SOURCE_DATE_EPOCH", epoch);
    }
    let out = cmd.output().expect("run kiln");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let members = members(&out.stdout);
    let manifest: serde_json::Value =
        serde_json::from_slice(&members["manifest.json"]).expect("manifest.json");
    let config = manifest[0]["Config"].as_str().expect("Config");
    let config: serde_json::Value = serde_json::from_slice(&members[config]).expect("config");
    let mut mtimes = Vec::new();
    for layer in manifest[0]["Layers"].as_array().expect("Layers") {
        let tar = &members[layer.as_str().expect("a layer path")];
        for entry in tar::Archive::new(&tar[..]).entries().expect("layer") {
            mtimes.push(entry.expect("entry").header().mtime().expect("mtime"));
        }
    }
    assert!(!mtimes.is_empty());
    (
        config["created"].as_str().expect("created").to_owned(),
        mtimes,
    )
}

/// Every member of a tar, by path.
fn members(tar: &[u8]) -> std::collections::BTreeMap<String, Vec<u8>> {
    let mut all = std::collections::BTreeMap::new();
    for entry in tar::Archive::new(tar).entries().expect("archive") {
        let mut entry = entry.expect("entry");
        let path = entry.path().expect("path").to_string_lossy().into_owned();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).expect("read");
        all.insert(path, bytes);
    }
    all
}

#[test]
fn source_date_epoch_sets_the_created_time_and_every_mtime() {
    let p = words_project();
    let (created, mtimes) = times_of_an_export(&p, None);
    assert_eq!(created, "1970-01-01T00:00:00Z");
    assert!(mtimes.iter().all(|&t| t == 0), "{mtimes:?}");

    let (created, mtimes) = times_of_an_export(&p, Some("1700000000"));
    assert_eq!(created, "2023-11-14T22:13:20Z");
    assert!(mtimes.iter().all(|&t| t == 1_700_000_000), "{mtimes:?}");
}

#[test]
fn a_source_date_epoch_that_is_not_a_number_is_a_usage_error() {
    let p = words_project();
    let out = p
        .cmd(&["export", "words", "-o", "words.tar"])
        .env("SOURCE_DATE_EPOCH", "yesterday")
        .output()
        .expect("run kiln");
    assert_eq!(out.status.code(), Some(2));
    assert!(!p.root().join("words.tar").exists());
    crate::snapshot!(
        "source_date_epoch_not_a_number",
        &p,
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_parent_image_with_more_layers_than_the_limit_is_refused() {
    let spec = format!(
        "{WORDS}\nimage top {{\n    from words\n    layers max=LIMIT\n    add \"notes.txt\" to=\"/more\"\n}}\n"
    );
    // `words` has 3 layers; `top` adds one, merged into none of its parent's.
    let p = words_project();
    p.write("kiln.kdl", &spec.replace("LIMIT", "2"));
    let out = p.kiln(&["export", "top", "-o", "top.tar"]);
    assert_eq!(out.status.code(), Some(2));
    crate::snapshot!("too_many_layers", &p, String::from_utf8_lossy(&out.stderr));

    p.write("kiln.kdl", &spec.replace("LIMIT", "4"));
    let out = p.kiln(&["export", "top", "-o", "top.tar"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_shell_form_entrypoint_on_scratch_is_refused_at_build_time() {
    // The tutorial's bonus exercise: `ENTRYPOINT ./goapp` on scratch builds
    // fine with Docker and then cannot start. kiln says so before shipping.
    let p = Project::new(&HELLO_SPEC.replace(
        r#"entrypoint "/app/hello""#,
        r#"entrypoint "./hello" shell=#true"#,
    ));
    p.write("hello.c", HELLO_C);
    let out = p.kiln(&["export", "hello-image", "-o", "x.tar"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("/bin/sh"), "{stderr}");
    assert!(
        stderr.contains("shell=#true"),
        "the diagnostic should point at the entrypoint line:\n{stderr}"
    );
    assert!(!p.root().join("x.tar").exists());
}

#[test]
fn an_exec_entrypoint_missing_from_the_image_is_refused() {
    let p = Project::new(
        &HELLO_SPEC.replace(r#"entrypoint "/app/hello""#, r#"entrypoint "/app/goapp""#),
    );
    p.write("hello.c", HELLO_C);
    let out = p.kiln(&["export", "hello-image", "-o", "x.tar"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/app/goapp"));
}

#[test]
fn a_copy_cannot_reach_host_files_through_a_symlink_in_the_stage_output() {
    let p = Project::new(
        r#"
        stage s { run "ln -s /etc $out/etc" }
        image leak {
            copy s "etc/hostname" to="/leak"
        }
        "#,
    );
    let out = p.kiln(&["export", "leak", "-o", "leak.tar"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("kiln::export::copy_outside"), "{stderr}");
    assert!(!p.root().join("leak.tar").exists());
}

#[test]
fn add_follows_the_same_ignore_rules_as_src() {
    let p = Project::new(
        r#"
        image site {
            add "." to="/www"
        }
        "#,
    );
    p.write("index.html", "<h1>hi</h1>\n");
    p.write("debug.log", "noise\n");
    p.write(".kilnignore", "*.log\n");
    p.write(".git/HEAD", "ref: refs/heads/main\n");
    let out = p.kiln(&["inspect", "site", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let why = |path: &str| p.kiln(&["why", "site", path]).status.code();
    assert_eq!(why("/www/index.html"), Some(0));
    assert_eq!(why("/www/debug.log"), Some(1), "an ignored file was added");
    assert_eq!(why("/www/.git/HEAD"), Some(1), ".git was added");
}

#[test]
fn a_copy_of_a_whole_output_and_of_a_link_inside_it_are_fine() {
    let p = Project::new(
        r#"
        stage s { run "mkdir $out/d && echo x > $out/d/f && ln -s d/f $out/link" }
        image whole {
            copy s "." to="/"
            copy s "link" to="/again"
        }
        "#,
    );
    let out = p.kiln(&["inspect", "whole"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
