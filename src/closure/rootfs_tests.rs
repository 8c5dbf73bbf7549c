//! Unit tests of [`super`]: lookups in temp dirs, no host paths read.

use super::*;
use std::os::unix::fs::symlink;

fn root_with(links: &[(&str, &str)], files: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for file in files {
        let path = dir.path().join(file);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, "x").expect("write");
    }
    for (link, target) in links {
        let path = dir.path().join(link);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        symlink(target, &path).expect("symlink");
    }
    dir
}

#[test]
fn absolute_symlinks_restart_at_the_root_not_the_host() {
    let dir = root_with(
        &[
            ("lib", "usr/lib"),
            ("usr/lib/libz.so.1", "/etc/libz.so.1.2"),
        ],
        &["etc/libz.so.1.2"],
    );
    let found = RootFs::new(dir.path())
        .lookup("/lib/libz.so.1")
        .expect("lookup")
        .expect("found");
    assert_eq!(found.image, "/etc/libz.so.1.2");
    assert_eq!(found.disk, dir.path().join("etc/libz.so.1.2"));
    let links: Vec<_> = found
        .links
        .iter()
        .map(|l| (l.image.as_str(), l.target.as_str()))
        .collect();
    assert_eq!(
        links,
        [
            ("/lib", "usr/lib"),
            ("/usr/lib/libz.so.1", "/etc/libz.so.1.2")
        ]
    );
}

#[test]
fn dotdot_stops_at_the_root() {
    let dir = root_with(&[("lib/escape", "../../../../etc/f")], &["etc/f"]);
    let found = RootFs::new(dir.path())
        .lookup("/../../lib/escape")
        .expect("lookup")
        .expect("found");
    assert_eq!(found.image, "/etc/f");
    assert!(found.disk.starts_with(dir.path()));
}

#[test]
fn missing_paths_and_file_parents_are_none() {
    let dir = root_with(&[], &["lib/file"]);
    let fs = RootFs::new(dir.path());
    assert_eq!(fs.lookup("/lib/nothing").expect("lookup"), None);
    assert_eq!(fs.lookup("/lib/file/below").expect("lookup"), None);
}

#[test]
fn symlink_loops_are_an_error() {
    let dir = root_with(&[("a", "b"), ("b", "a")], &[]);
    let err = RootFs::new(dir.path()).lookup("/a").expect_err("loop");
    assert!(matches!(err, ClosureError::SymlinkLoop { .. }), "{err:?}");
}

#[test]
fn beside_a_program_both_sides_move_in_step() {
    let dir = root_with(
        &[("out/lib/libfoo.so.1", "libfoo.so.1.0")],
        &["out/lib/libfoo.so.1.0", "out/bin/prog"],
    );
    let found = RootFs::new(Path::new("/nonexistent-root"))
        .lookup_beside(
            &dir.path().join("out"),
            "/app/bin",
            &dir.path().join("out/bin"),
            "../lib/libfoo.so.1",
        )
        .expect("lookup")
        .expect("found");
    let real = dir.path().canonicalize().expect("canonical");
    assert_eq!(found.image, "/app/lib/libfoo.so.1.0");
    assert_eq!(found.disk, real.join("out/lib/libfoo.so.1.0"));
    assert_eq!(found.links.len(), 1);
    assert_eq!(found.links[0].image, "/app/lib/libfoo.so.1");
    assert_eq!(found.links[0].target, "libfoo.so.1.0");
}

#[test]
fn beside_a_program_nothing_above_its_stage_output_is_found() {
    let up = "../".repeat(20);
    let dir = root_with(
        &[
            ("out/lib", &format!("{up}secret/lib") as &str),
            ("out/rel", "../secret/lib"),
        ],
        &["secret/lib/libs.so", "out/bin/prog"],
    );
    let fs = RootFs::new(Path::new("/nonexistent-root"));
    let (tree, bin) = (dir.path().join("out"), dir.path().join("out/bin"));
    for rel in [
        "../../secret/lib/libs.so",
        &format!("{up}{}/secret/lib/libs.so", dir.path().display()),
        "../lib/libs.so",
        "../rel/libs.so",
    ] {
        let found = fs.lookup_beside(&tree, "/a/b/c/d/bin", &bin, rel);
        assert_eq!(found.expect("lookup"), None, "{rel}");
    }
}

#[test]
fn on_the_host_only_what_the_sandbox_shows_is_there() {
    let dir = root_with(
        &[("lib", "usr/lib"), ("usr/lib/libx.so", "/etc/libx.so")],
        &[
            "usr/lib/liby.so",
            "etc/libx.so",
            "etc/ssl/cert.pem",
            "etc/passwd",
        ],
    );
    let mut fs = RootFs::new(dir.path());
    fs.shown = Some(vec!["/usr".into(), "/lib".into(), "/etc/ssl".into()]);
    let image = |path: &str| fs.lookup(path).expect("lookup").map(|f| f.image);
    assert_eq!(image("/lib/liby.so").as_deref(), Some("/usr/lib/liby.so"));
    assert_eq!(
        image("/etc/ssl/cert.pem").as_deref(),
        Some("/etc/ssl/cert.pem")
    );
    assert_eq!(image("/lib/libx.so"), None);
    assert_eq!(image("/etc/passwd"), None);
    assert_eq!(image("/etc"), None);
    assert_eq!(image("/usr/../etc/libx.so"), None);
    assert!(
        fs.unconfined()
            .lookup("/etc/passwd")
            .expect("lookup")
            .is_some()
    );
}
