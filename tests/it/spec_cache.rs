//! The spec cache (`spec::load_cached`) through the real binary: what kiln
//! reports and refuses is the same with a cached spec as without one.

use std::process::Output;

use crate::common::Project;

const SPEC: &str = r#"
stage copy {
    src "data.txt"
    run "cp data.txt $out/"
}
"#;

/// A project built once, so its store holds the cached spec.
fn cached_project() -> Project {
    let p = Project::new(SPEC);
    p.write("data.txt", "data\n");
    p.build(&[]);
    let cached = p.store.join("v2/cache/spec");
    let files = std::fs::read_dir(&cached).expect("a spec cache").count();
    assert_eq!(files, 1, "one cached spec in {}", cached.display());
    p
}

/// `kiln build` with the project's store (holding the cached spec), and
/// with a fresh one: the same exit code and the same stderr.
fn same_with_and_without_the_cache(p: &Project) -> Output {
    let cached = p.kiln(&["build"]);
    let fresh = tempfile::tempdir().expect("temp dir");
    let uncached = p
        .cmd(&["build"])
        .env("KILN_HOME", fresh.path())
        .output()
        .expect("run kiln");
    assert_eq!(cached.status.code(), uncached.status.code());
    let stderr = |o: &Output| String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(stderr(&cached), stderr(&uncached));
    cached
}

fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_source_deleted_after_a_cached_load_is_reported_as_without_the_cache() {
    let p = cached_project();
    std::fs::remove_file(p.root().join("data.txt")).expect("rm");
    let out = same_with_and_without_the_cache(&p);
    assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
    assert!(stderr_of(&out).contains("not found"), "{}", stderr_of(&out));
}

#[test]
fn a_symlink_escape_added_after_a_cached_load_is_still_refused() {
    let p = cached_project();
    let outside = p.dir.path().join("secret.txt");
    std::fs::write(&outside, "secret\n").expect("write");
    let data = p.root().join("data.txt");
    std::fs::remove_file(&data).expect("rm");
    std::os::unix::fs::symlink(&outside, &data).expect("symlink");
    let out = same_with_and_without_the_cache(&p);
    assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
    let said = stderr_of(&out);
    assert!(
        said.contains("resolves outside the build context"),
        "{said}"
    );
}

#[test]
fn a_cached_spec_builds_the_same_keys_and_gc_drops_it_when_unused() {
    let p = cached_project();
    let fresh = tempfile::tempdir().expect("temp dir");
    let again = p.build(&[]);
    assert_eq!(again.status("copy"), "cached");
    let mut uncached = p.cmd(&["build", "--json"]);
    uncached.env("KILN_HOME", fresh.path());
    let uncached = crate::common::built(uncached);
    assert_eq!(again.key("copy"), uncached.key("copy"));

    let gc = p.kiln(&["store", "gc", "--keep-days", "0"]);
    assert!(gc.status.success(), "{}", stderr_of(&gc));
    let left = std::fs::read_dir(p.store.join("v2/cache/spec"))
        .expect("dir")
        .count();
    assert_eq!(left, 0);
}
