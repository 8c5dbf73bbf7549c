//! Images as nodes of the build graph (issue 10): `kiln build` makes and
//! stores them, everything after it reads the stored image, and a stage
//! `from` an image sees what `kiln export` ships.

use std::path::Path;

use crate::common::skip::{require_debian_x86_64, require_sandbox};
use crate::common::{Project, Report};

const WORDS: &str = r#"
stage gen {
    run "mkdir -p $out/data && printf 'b\na\n' > $out/data/words"
}
image app {
    copy gen "data" to="/data"
    env GREETING="hi"
    tag "app:1"
}
"#;

fn image<'r>(report: &'r Report, name: &str) -> &'r serde_json::Value {
    (report.0["images"].as_array().expect("images list").iter())
        .find(|i| i["name"] == name)
        .unwrap_or_else(|| panic!("no image {name} in {}", report.0))
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn kiln_build_without_a_target_builds_and_lists_every_image() {
    let p = Project::new(WORDS);
    let first = p.build(&[]);
    let app = image(&first, "app");
    assert_eq!(app["status"], "built", "{}", first.0);
    assert!(
        app["digest"]
            .as_str()
            .expect("digest")
            .starts_with("sha256:")
    );
    assert_eq!(app["tags"], serde_json::json!(["app:1"]));
    assert_eq!(app["layers"], 1);
    assert!(app["size"].as_u64().expect("size") > 0);

    let again = p.build(&[]);
    assert_eq!(image(&again, "app")["status"], "cached");
    assert_eq!(image(&again, "app")["digest"], app["digest"]);
    // The human summary names the image, its digest and its tags.
    let out = p.kiln(&["build"]);
    let digest = app["digest"].as_str().expect("digest");
    assert!(
        stderr(&out).contains(&format!("image app {digest}")),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("app:1"), "{}", stderr(&out));
}

/// After `kiln build`, export, inspect and why read the stored image: they
/// pack no layer (nothing is put back in the emptied layer cache) and give
/// the digest the build reported.
#[test]
fn export_inspect_and_why_after_a_build_pack_nothing() {
    let p = Project::new(WORDS);
    let built = p.build(&["app"]);
    let digest = image(&built, "app")["digest"].clone();
    let layers = p.store.join("v2/layers");
    std::fs::remove_dir_all(&layers).expect("drop the layer cache");

    let export = p.kiln(&["export", "app", "-o", "app.tar"]);
    assert!(export.status.success(), "{}", stderr(&export));
    let inspect = p.kiln(&["inspect", "app", "--json"]);
    assert!(inspect.status.success(), "{}", stderr(&inspect));
    let inspection: serde_json::Value = serde_json::from_slice(&inspect.stdout).expect("json");
    assert_eq!(inspection["digest"], digest);
    let why = p.kiln(&["why", "app", "/data/words"]);
    assert!(why.status.success(), "{}", stderr(&why));
    assert!(String::from_utf8_lossy(&why.stdout).contains("copy gen"));
    let packed = walkdir(&layers);
    assert!(
        packed.is_empty(),
        "something packed a layer again: {packed:?}"
    );
}

#[test]
fn an_entrypoint_that_is_not_in_the_image_fails_kiln_build_at_its_line() {
    let p = Project::new(&WORDS.replace(
        "tag \"app:1\"",
        "tag \"app:1\"\n    entrypoint \"/bin/app\"",
    ));
    let out = p.kiln(&["build"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("kiln::export::entrypoint"), "{err}");
    assert!(
        err.contains("entrypoint \"/bin/app\""),
        "the entrypoint line: {err}"
    );
}

#[test]
fn explain_says_which_setting_of_an_image_changed() {
    let p = Project::new(WORDS);
    p.build(&[]);
    let cached = p.kiln(&["explain", "app"]);
    assert!(String::from_utf8_lossy(&cached.stdout).starts_with("image `app` is cached"));
    p.write(
        "kiln.kdl",
        &WORDS.replace("GREETING=\"hi\"", "GREETING=\"hello\""),
    );
    let out = p.kiln(&["explain", "app"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(text.starts_with("image `app` is not cached"), "{text}");
    assert!(text.contains("changed env GREETING: hi → hello"), "{text}");
}

#[test]
fn layer_compression_and_source_date_epoch_are_part_of_an_images_key() {
    let p = Project::new(WORDS);
    let gzip = p.build(&["app"]);
    let zstd = p.build(&["app", "--compression", "zstd"]);
    let (g, z) = (image(&gzip, "app"), image(&zstd, "app"));
    assert_eq!(z["status"], "built");
    assert_ne!(g["key"], z["key"]);
    assert_ne!(g["digest"], z["digest"]);
    // The config (and so what a stage running in it sees) is the same.
    assert_eq!(g["config_digest"], z["config_digest"]);
    // explain and store path find the image built with the same settings.
    let explained = p.ok(&["explain", "app", "--compression", "zstd"]);
    assert!(
        explained.starts_with("image `app` is cached"),
        "{explained}"
    );
    let path = p.ok(&["store", "path", "app", "--compression", "zstd"]);
    assert_eq!(path.trim(), z["output"].as_str().expect("output"));
    let mut cmd = p.cmd(&["build", "--json", "app"]);
    cmd.env("SOURCE_DATE_EPOCH", "1700000000");
    let epoch = crate::common::built(cmd);
    assert_eq!(image(&epoch, "app")["status"], "built");
    assert_ne!(image(&epoch, "app")["config_digest"], g["config_digest"]);
}

/// A stage `from` an image that copies a dynamically linked program from a
/// stage that itself ran `from` an image: the runtime closure is resolved in
/// the root that stage ran in. Before images were nodes, `kiln export` of
/// such an image worked but a stage could not run `from` it (RootUnknown).
#[test]
fn a_stage_runs_from_an_image_whose_closure_comes_from_a_non_host_root() {
    if !require_sandbox() || !require_debian_x86_64() {
        return;
    }
    let busybox = which("busybox");
    let p = Project::new(&format!(
        r#"
stage bb {{
    run "mkdir -p $out/bin && cp {busybox} $out/bin/busybox && for a in sh cp mkdir cat; do ln -s busybox $out/bin/$a; done"
}}
stage host-ls {{
    run "mkdir -p $out/bin && cp /bin/ls $out/bin/ls"
}}
image tools {{
    copy bb "." to="/"
    copy host-ls "bin/ls" to="/usr/bin/ls"
}}
stage inner {{
    from tools
    run "mkdir -p $out/bin && cp /usr/bin/ls $out/bin/ls"
}}
image second {{
    copy bb "." to="/"
    copy inner "bin/ls" to="/usr/bin/ls"
}}
stage user {{
    from second
    run "/usr/bin/ls / > $out/listing"
}}
"#
    ));
    let report = p.build(&["user"]);
    let listing = std::fs::read_to_string(report.output("user").join("listing")).expect("listing");
    assert!(listing.contains("usr"), "{listing}");
    // `kiln export` ships the same image the stage ran in.
    let built = p.build(&["second"]);
    let inspect = p.kiln(&["inspect", "second", "--json"]);
    let inspection: serde_json::Value = serde_json::from_slice(&inspect.stdout).expect("json");
    assert_eq!(inspection["digest"], image(&built, "second")["digest"]);
    assert_eq!(image(&built, "second")["status"], "cached");
}

/// Every file under `dir` (none when it does not exist).
fn walkdir(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            match entry.file_type().is_ok_and(|t| t.is_dir()) {
                true => todo.push(entry.path()),
                false => files.push(entry.path()),
            }
        }
    }
    files
}

fn which(program: &str) -> String {
    let out = std::process::Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .expect("sh");
    let path = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(Path::new(&path).is_file(), "{program} not found");
    path
}
