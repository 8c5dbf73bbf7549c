//! Attacks on images as nodes of the build graph (issue 10 review): what
//! `kiln build` stores for an image or base must be a function of its key
//! (never stale, never different for the same inputs), and a stored image
//! must never hold a blob that does not match its digest.

use std::path::{Path, PathBuf};

use crate::common::Project;
use crate::common::images::{Compress, Image, file, layer, write_docker_archive};

/// A base, a stage, an image from the base copying the stage, and an image
/// from that image.
fn layered(base_digest: &str) -> String {
    format!(
        r#"
base b {{
    archive "b.tar" digest="{base_digest}"
}}
stage gen {{
    run "mkdir -p $out/data && echo x > $out/data/x && printf '#!/data/x' > $out/data/run && chmod +x $out/data/run"
}}
image app {{
    from b
    copy gen "data" to="/data"
    cmd "/data/run"
}}
image child {{
    from app
    env A="1"
}}
"#
    )
}

fn project() -> Project {
    let base = Image::new(vec![layer(Compress::Gzip, |b| {
        file(b, "etc/hello", 0o644, b"hi\n")
    })]);
    let p = Project::new(&layered(&base.id().to_string()));
    write_docker_archive(&base, &p.root().join("b.tar"));
    p
}

fn node<'r>(report: &'r crate::common::Report, list: &str, name: &str) -> &'r serde_json::Value {
    (report.0[list].as_array().expect("a list").iter())
        .find(|n| n["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {}", report.0))
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The same kiln.kdl named by another path (`-f /abs/kiln.kdl`, or from
/// another directory) is the same spec: its images and bases keep their
/// keys (before: the path as typed was in every image and base key, so
/// each way of naming the file re-imported every base and re-assembled
/// every image, and no two checkouts shared an image key).
#[test]
fn an_images_key_does_not_depend_on_the_path_that_names_the_spec() {
    let p = project();
    let first = p.build(&[]);
    let spec = p.root().join("kiln.kdl");
    let spec_path = spec.to_str().expect("utf-8");
    let absolute = crate::common::built(p.cmd(&["-f", spec_path, "build", "--json"]));
    let mut from_parent = p.cmd(&["-f", "project/kiln.kdl", "build", "--json"]);
    from_parent.current_dir(p.dir.path());
    let relative = crate::common::built(from_parent);
    for report in [&absolute, &relative] {
        for (list, name) in [("bases", "b"), ("images", "app"), ("images", "child")] {
            let (was, now) = (node(&first, list, name), node(report, list, name));
            assert_eq!(now["status"], "cached", "{name}: {}", report.0);
            assert_eq!(now["key"], was["key"], "{name}");
        }
    }
    // What `kiln why` reports names the file as the user knows it.
    let why = p.kiln(&["-f", spec_path, "why", "app", "/data/x"]);
    let text = String::from_utf8_lossy(&why.stdout);
    assert!(text.contains("(kiln.kdl:10)"), "{text}{}", stderr(&why));
}

/// `kiln why` answers from the stored image: the text it quotes of a
/// `copy` line must be what kiln.kdl says now (before: reformatting the
/// line kept the key, and `why` quoted the old text; the entry stored
/// under one key depended on the order of edits).
#[test]
fn kiln_why_never_quotes_a_copy_line_as_it_was_before_an_edit() {
    let p = project();
    p.build(&[]);
    let spec = layered(&read_digest(&p));
    let edited = spec.replace(
        r#"copy gen "data" to="/data""#,
        r#"copy gen   "data"   to="/data""#,
    );
    assert_ne!(spec, edited);
    p.write("kiln.kdl", &edited);
    p.build(&[]);
    let why = p.kiln(&["why", "app", "/data/x"]);
    let text = String::from_utf8_lossy(&why.stdout);
    assert!(
        text.contains(r#"`copy gen   "data"   to="/data"`"#),
        "{text}{}",
        stderr(&why)
    );
}

/// A layer blob damaged in place (bit rot in the layer cache, which the
/// stored images share by hard link) must not be committed into a new
/// image entry: its output hash would be taken over the damaged bytes, so
/// `kiln store verify` would call it intact while `kiln export` refuses it.
/// Following the help (delete what verify names) must then be enough.
#[test]
fn a_damaged_layer_blob_is_never_committed_into_a_new_image() {
    let p = project();
    p.build(&[]);
    let cached = layer_cache_blobs(&p.store);
    assert!(!cached.is_empty(), "a layer was packed");
    for blob in &cached {
        flip_a_byte(blob);
    }
    // A new key for `child`: it is assembled again, from `app`'s blobs.
    let spec = layered(&read_digest(&p)).replace(r#"A="1""#, r#"A="2""#);
    p.write("kiln.kdl", &spec);
    let out = p.kiln(&["build"]);
    if out.status.success() {
        // Then what it stored must at least be what verify checks.
        let verify = p.kiln(&["store", "verify"]);
        assert!(!verify.status.success(), "verify found nothing");
    } else {
        assert!(stderr(&out).contains("damaged"), "{}", stderr(&out));
    }
    // As the help says: delete everything `kiln store verify` names.
    let verify = p.kiln(&["store", "verify"]);
    for line in stderr(&verify).lines() {
        let Some(rest) = line
            .strip_prefix("modified: ")
            .or_else(|| line.strip_prefix("damaged: "))
        else {
            continue;
        };
        let path = rest.split(" (").next().expect("a path");
        remove(Path::new(path));
    }
    let verify = p.kiln(&["store", "verify"]);
    assert!(verify.status.success(), "{}", stderr(&verify));
    let build = p.kiln(&["build"]);
    assert!(build.status.success(), "{}", stderr(&build));
    let export = p.kiln(&["export", "child", "-o", "child.tar"]);
    assert!(
        export.status.success(),
        "verify says the store is whole, yet: {}",
        stderr(&export)
    );
}

fn read_digest(p: &Project) -> String {
    let spec = std::fs::read_to_string(p.root().join("kiln.kdl")).expect("spec");
    let at = spec.find("sha256:").expect("a digest");
    spec[at..at + 71].to_owned()
}

fn layer_cache_blobs(store: &Path) -> Vec<PathBuf> {
    let dir = store.join("v2/layers/v1");
    let mut blobs: Vec<PathBuf> = (std::fs::read_dir(&dir).expect("layer cache").flatten())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "blob"))
        .collect();
    blobs.sort();
    blobs
}

/// Flips one byte of `path` in place (the inode every hard link shares).
fn flip_a_byte(path: &Path) {
    use std::io::{Read, Seek, SeekFrom, Write};
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let mut f = std::fs::File::options()
        .read(true)
        .write(true)
        .open(path)
        .expect("open");
    let len = f.metadata().expect("stat").len();
    let at = len / 2;
    let mut byte = [0u8];
    f.seek(SeekFrom::Start(at)).expect("seek");
    f.read_exact(&mut byte).expect("read");
    f.seek(SeekFrom::Start(at)).expect("seek");
    f.write_all(&[byte[0] ^ 0x55]).expect("write");
}

/// What the help says: its directories writable, then `rm -rf` (`chmod -R`
/// would change the mode of blobs other entries share by hard link, and
/// `kiln store verify` would then name those too).
fn remove(path: &Path) {
    let _ = std::process::Command::new("find")
        .arg(path)
        .args(["-type", "d", "-exec", "chmod", "u+w", "{}", "+"])
        .status();
    let _ = match path.is_dir() {
        true => std::fs::remove_dir_all(path),
        false => std::fs::remove_file(path),
    };
}

/// A stage's file names and symlink targets go into what `kiln inspect`
/// and `kiln why` print: one holding an escape sequence must not reach the
/// user's terminal (before: `inspect` printed `ESC]0;…BEL ESC[2J` as is,
/// retitling the terminal and clearing the screen).
#[test]
fn a_hostile_file_name_cannot_drive_the_terminal_through_inspect_or_why() {
    let p = Project::new(
        r#"
stage gen {
    run "mkdir -p $out/d && touch \"$out/$(printf 'x\\033]0;PWNED\\007\\033[2J')\" && ln -s \"/d/$(printf 'y\\033[2J')\" $out/link"
}
image app {
    copy gen "." to="/"
}
"#,
    );
    p.build(&[]);
    let inspect = p.kiln(&["inspect", "app"]);
    assert!(inspect.status.success(), "{}", stderr(&inspect));
    let text = String::from_utf8_lossy(&inspect.stdout);
    assert!(text.contains("/x"), "the file is listed: {text}");
    assert!(
        !text.contains('\u{1b}'),
        "an escape reached stdout: {text:?}"
    );
    let why = p.kiln(&["why", "app", "/link"]);
    let text = format!("{}{}", String::from_utf8_lossy(&why.stdout), stderr(&why));
    assert!(text.contains("/link"), "{text}");
    assert!(
        !text.contains('\u{1b}'),
        "an escape reached the terminal: {text:?}"
    );
    // `--json` keeps the name as it is, escaped by JSON.
    let json = p.kiln(&["inspect", "app", "--json"]);
    assert!(String::from_utf8_lossy(&json.stdout).contains(r"x\u001b]0;PWNED"));
}

/// Two clean stores in two directories, one spec with everything an image
/// can hold (a base, an `add`, a program whose runtime closure comes from
/// the host, an image from that image): the same key and digest for every
/// image and base. A child's key holds its parent's output hash, so equal
/// child keys also mean the stored parents are byte for byte the same.
#[test]
fn two_clean_stores_in_two_directories_give_the_same_image_keys_and_digests() {
    let make = || {
        let p = project();
        let spec = std::fs::read_to_string(p.root().join("kiln.kdl")).expect("spec");
        let spec = spec.replace(
            r#"    copy gen "data" to="/data"
"#,
            r#"    copy gen "data" to="/data"
    copy ls "bin/ls" to="/bin/ls"
    add "notes" to="/notes"
"#,
        ) + r#"
stage ls {
    run "mkdir -p $out/bin && cp /bin/ls $out/bin/ls"
}
"#;
        p.write("kiln.kdl", &spec);
        p.write("notes/a.txt", "a\n");
        p
    };
    let (a, b) = (make(), make());
    let ra = a.build(&[]);
    let spec_b = b.root().join("kiln.kdl");
    let mut cmd = b.cmd(&["-f", spec_b.to_str().expect("utf-8"), "build", "--json"]);
    cmd.current_dir("/");
    let rb = crate::common::built(cmd);
    for (list, name) in [("bases", "b"), ("images", "app"), ("images", "child")] {
        let (x, y) = (node(&ra, list, name), node(&rb, list, name));
        assert_eq!(x["key"], y["key"], "{name}");
        assert_eq!(x["digest"], y["digest"], "{name}");
        assert_eq!(x["config_digest"], y["config_digest"], "{name}");
    }
    assert!(
        node(&ra, "images", "app")["layers"].as_u64() > Some(3),
        "{}",
        ra.0
    );
}
