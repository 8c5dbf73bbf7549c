//! End-to-end: the remote build cache through a private registry
//! (`common::registry`). Two projects with their own stores share one
//! cache repository; what one built and pushed, the other pulls instead of
//! running. Entries kiln must not use (a record that lies about its tree,
//! a damaged tree blob, an unsigned or foreign-signed entry when keys are
//! trusted, an unreachable cache) are warnings, and the stage is built.

use std::process::Output;

use crate::common::build_said as build;
use crate::common::registry::Registry;
use crate::common::{Project, Report};
use kiln::hash::Digest;

/// A stage whose output differs on every run (the time in nanoseconds): if
/// a second store has the first one's bytes, it pulled them. And an image
/// made from it.
const SPEC: &str = r#"
stage stamp {
    run "date +%s%N > $out/stamp && mkdir $out/bin && printf '#!/bin/sh\necho hi\n' > $out/bin/hi && chmod +x $out/bin/hi && ln -s bin/hi $out/hi"
}
stage copy { use stamp; run "cp $stamp/stamp $out/again" }
image app {
    from scratch
    copy stamp "." to="/stamp"
    copy copy "again" to="/again"
}
"#;

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stamp(report: &Report) -> String {
    let out = report.0["stages"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == "stamp"))
        .and_then(|s| s["output"].as_str())
        .expect("stamp's output");
    std::fs::read_to_string(format!("{out}/stamp")).expect("stamp file")
}

fn image_digest(report: &Report) -> String {
    report.0["images"][0]["digest"]
        .as_str()
        .expect("image digest")
        .to_owned()
}

#[test]
fn a_second_store_pulls_every_stage_and_makes_the_same_image() {
    let Some(registry) = Registry::start() else {
        return;
    };
    let cache = format!("{}/team/cache", registry.host());
    let first = Project::new(SPEC);
    let (built, _) = build(&first, &["--cache", &cache, "--cache-push"]);
    assert_eq!(
        (built.status("stamp"), built.status("copy")),
        ("built".into(), "built".into())
    );

    let second = Project::new(SPEC);
    let (pulled, _) = build(&second, &["--cache", &cache, "stamp", "copy", "app"]);
    assert_eq!(pulled.status("stamp"), "pulled", "{}", pulled.0);
    assert_eq!(pulled.status("copy"), "pulled");
    // The image too: nothing is run or assembled here.
    assert_eq!(pulled.0["pulled"], 3);
    assert_eq!(pulled.0["images"][0]["status"], "pulled");
    assert_eq!(stamp(&pulled), stamp(&built), "the first store's bytes");
    assert_eq!(
        image_digest(&pulled),
        image_digest(&built),
        "byte-identical image"
    );
    // Pulled entries are ordinary entries: the next build is a no-op, and
    // `store verify` finds them sound (the executable bit and the symlink
    // came through).
    let (again, _) = build(&second, &[]);
    assert_eq!(again.status("stamp"), "cached");
    second.ok(&["store", "verify"]);
    let root = again.0["stages"][0]["output"]
        .as_str()
        .expect("output")
        .to_owned();
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(format!("{root}/bin/hi"))
            .expect("bin/hi")
            .permissions(),
    );
    assert_ne!(mode & 0o111, 0, "bin/hi is executable");
    assert_eq!(
        std::fs::read_link(format!("{root}/hi"))
            .expect("hi")
            .to_str(),
        Some("bin/hi")
    );
}

/// Bazel's builds without the bytes: `kiln build` from a warm cache pulls
/// the spec's products (what no other node needs), and leaves the stages
/// they were made from in the cache, known by what they built to. The
/// store remembers that, so later commands find the same keys offline; a
/// stage asked for by name is downloaded.
#[test]
fn a_build_from_a_warm_cache_downloads_only_the_products() {
    let Some(registry) = Registry::start() else {
        return;
    };
    let cache = format!("{}/cache", registry.host());
    let first = Project::new(SPEC);
    let (built, _) = build(&first, &["--cache", &cache, "--cache-push"]);

    let second = Project::new(SPEC);
    let (lazy, err) = build(&second, &["--cache", &cache]);
    assert_eq!(lazy.0["images"][0]["status"], "pulled", "{}", lazy.0);
    assert_eq!(
        (lazy.status("stamp"), lazy.status("copy")),
        ("remote".into(), "remote".into())
    );
    assert_eq!(
        (lazy.0["pulled"].clone(), lazy.0["remote"].clone()),
        (1.into(), 2.into())
    );
    assert!(lazy.0["stages"][0]["output"].is_null(), "{}", lazy.0);
    assert_eq!(lazy.key("stamp"), built.key("stamp"));
    assert_eq!(image_digest(&lazy), image_digest(&built));
    assert!(err.contains("pulled 1, 2 left in the cache"), "{err}");

    // Without the cache, the same keys: a no-op, and the image exports.
    drop(registry);
    let (again, err) = build(&second, &[]);
    assert_eq!(again.0["images"][0]["status"], "cached", "{err}");
    assert_eq!(again.status("stamp"), "remote");
    assert!(err.contains("nothing to build"), "{err}");
    let tar = second.dir.path().join("app.tar");
    second.ok(&["export", "app", "-o", tar.to_str().expect("utf-8")]);

    // Asked for by name, a stage must be here: with the cache gone, it is
    // built (and so is what needs it, which the cache knew by the old bytes).
    let (named, err) = build(&second, &["copy"]);
    assert_eq!(named.status("stamp"), "built", "{err}");
    assert_eq!(named.status("copy"), "built", "{err}");
    assert_ne!(stamp(&named), stamp(&built), "a new stamp");

    // What the cache said is collected like the entries.
    let known = second.store.join("v2/known");
    assert!(std::fs::read_dir(&known).expect("known/").count() >= 2);
    second.ok(&["store", "gc", "--keep-days", "0"]);
    assert_eq!(std::fs::read_dir(&known).expect("known/").count(), 0);
}

/// The product's entry is damaged: it cannot be pulled, and the stages it
/// is made from were left in the cache. The build goes on in a second
/// round that pulls them and assembles the image here: the same image.
#[test]
fn a_product_that_cannot_be_pulled_is_made_here_from_what_it_needs() {
    let Some(registry) = Registry::start() else {
        return;
    };
    let cache = format!("{}/cache", registry.host());
    let (built, _) = build(&Project::new(SPEC), &["--cache", &cache, "--cache-push"]);
    let app = built.0["images"][0]["key"].as_str().expect("app's key");
    let manifest = registry.get_manifest("cache", &format!("kiln2-{app}"));
    let tree: Digest = manifest["layers"][0]["digest"]
        .as_str()
        .and_then(|d| d.parse().ok())
        .expect("tree digest");
    std::fs::write(registry.blob(&tree), b"not a zstd tar").expect("tamper");

    let second = Project::new(SPEC);
    let (report, warnings) = build(&second, &["--cache", &cache]);
    assert_eq!(report.0["images"][0]["status"], "built", "{warnings}");
    assert_eq!(
        (report.status("stamp"), report.status("copy")),
        ("pulled".into(), "pulled".into()),
        "{warnings}"
    );
    assert_eq!(image_digest(&report), image_digest(&built));
    assert!(warnings.contains(&tree.to_string()), "{warnings}");
    // Each node once in the summary, whatever the rounds.
    assert!(
        warnings.contains("built 1, cached 0, pulled 2 ("),
        "{warnings}"
    );
}

#[test]
fn without_cache_push_nothing_is_pushed() {
    let Some(registry) = Registry::start() else {
        return;
    };
    let cache = format!("{}/cache", registry.host());
    build(&Project::new(SPEC), &["--cache", &cache]);
    let (report, _) = build(&Project::new(SPEC), &["--cache", &cache]);
    assert_eq!(report.status("stamp"), "built");
}

#[test]
fn an_entry_whose_record_lies_about_its_output_is_refused_and_built_here() {
    let Some(registry) = Registry::start() else {
        return;
    };
    let repo = "cache";
    let cache = format!("{}/{repo}", registry.host());
    let (built, _) = build(&Project::new(SPEC), &["--cache", &cache, "--cache-push"]);
    let key = built.key("stamp");
    // Rewrite the record to claim another output hash (the tree is intact).
    let mut manifest = registry.get_manifest(repo, &format!("kiln2-{key}"));
    let config = manifest["config"]["digest"]
        .as_str()
        .expect("config")
        .to_owned();
    let mut record: serde_json::Value =
        serde_json::from_slice(&registry.get_blob(repo, &config)).expect("record");
    record["output_hash"] = serde_json::json!("ab".repeat(32));
    let forged = serde_json::to_vec(&record).expect("JSON");
    let digest = registry.put_blob(repo, &forged);
    manifest["config"]["digest"] = serde_json::json!(digest.to_string());
    manifest["config"]["size"] = serde_json::json!(forged.len());
    registry.put_manifest(repo, &format!("kiln2-{key}"), &manifest);

    let (report, warnings) = build(&Project::new(SPEC), &["--cache", &cache]);
    assert_eq!(report.status("stamp"), "built", "{warnings}");
    assert!(
        warnings.contains("does not match its recorded output hash"),
        "{warnings}"
    );
    assert!(
        warnings.contains(&key) && warnings.contains("`stamp`"),
        "{warnings}"
    );
    // `copy` (whose key covers stamp's new output) is not in the cache either.
    assert_eq!(report.status("copy"), "built");
}

#[test]
fn a_damaged_tree_blob_is_refused_and_built_here() {
    let Some(registry) = Registry::start() else {
        return;
    };
    let cache = format!("{}/cache", registry.host());
    let (built, _) = build(&Project::new(SPEC), &["--cache", &cache, "--cache-push"]);
    let manifest = registry.get_manifest("cache", &format!("kiln2-{}", built.key("stamp")));
    let tree: Digest = manifest["layers"][0]["digest"]
        .as_str()
        .expect("tree")
        .parse()
        .expect("digest");
    std::fs::write(registry.blob(&tree), b"not a zstd tar").expect("tamper");

    // Asked for by name: its files are needed here.
    let second = Project::new(SPEC);
    let (report, warnings) = build(&second, &["--cache", &cache, "stamp"]);
    assert_eq!(report.status("stamp"), "built", "{warnings}");
    assert!(
        warnings.contains("warning") && warnings.contains(&tree.to_string()),
        "{warnings}"
    );
    second.ok(&["store", "verify"]);
}

#[test]
fn with_trusted_keys_only_entries_signed_by_one_are_used() {
    let Some(registry) = Registry::start() else {
        return;
    };
    let keys = tempfile::tempdir().expect("temp dir");
    let keygen = |name: &str| {
        let file = keys.path().join(name);
        let out =
            Project::new("").ok(&["cache", "keygen", name, "-o", file.to_str().expect("utf-8")]);
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&file).expect("key file").permissions(),
        );
        assert_eq!(mode & 0o777, 0o600, "a secret key is private");
        (file, out.trim().to_owned())
    };
    let (team_secret, team_public) = keygen("team-1");
    let (_, other_public) = keygen("other-1");
    assert!(team_public.starts_with("team-1:"), "{team_public}");

    let signed = format!("{}/signed", registry.host());
    let sign = team_secret.to_str().expect("utf-8");
    build(
        &Project::new(SPEC),
        &["--cache", &signed, "--cache-push", "--cache-sign-key", sign],
    );
    let unsigned = format!("{}/unsigned", registry.host());
    build(&Project::new(SPEC), &["--cache", &unsigned, "--cache-push"]);

    let (trusted, _) = build(
        &Project::new(SPEC),
        &["--cache", &signed, "--cache-trust", &team_public, "stamp"],
    );
    assert_eq!(trusted.status("stamp"), "pulled");
    let (foreign, warnings) = build(
        &Project::new(SPEC),
        &["--cache", &signed, "--cache-trust", &other_public, "stamp"],
    );
    assert_eq!(foreign.status("stamp"), "built");
    assert!(
        warnings.contains("not signed by a trusted key (signed by: team-1)"),
        "{warnings}"
    );
    let (bare, warnings) = build(
        &Project::new(SPEC),
        &["--cache", &unsigned, "--cache-trust", &team_public, "stamp"],
    );
    assert_eq!(bare.status("stamp"), "built");
    assert!(warnings.contains("it is not signed"), "{warnings}");
    // Without trusted keys, a signed entry is used like any other.
    let (open, _) = build(&Project::new(SPEC), &["--cache", &signed, "stamp"]);
    assert_eq!(open.status("stamp"), "pulled");
}

#[test]
fn an_unreachable_cache_is_a_warning_and_the_build_goes_on() {
    // A port nothing listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let cache = format!("127.0.0.1:{port}/cache");
    let (report, warnings) = build(&Project::new(SPEC), &["--cache", &cache, "--cache-push"]);
    assert_eq!(report.status("stamp"), "built");
    assert!(warnings.contains("goes on without the cache"), "{warnings}");
    // Said once, not once per node: the cache is not asked again.
    assert_eq!(warnings.matches("warning:").count(), 1, "{warnings}");
}

/// The survey looks up the nodes of a wave at once: six independent
/// stages, and an unreachable cache is still said once. (The survey now
/// asks one at a time until the cache has answered once, so the six no
/// longer reach it together; `down.swap` still covers a cache that goes
/// down mid-build.)
#[test]
fn an_unreachable_cache_is_said_once_though_its_lookups_run_together() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let spec: String = (0..6)
        .map(|i| format!("stage s{i} {{ run \"echo {i} > $out/n\" }}\n"))
        .collect();
    let p = Project::new(&spec);
    let (report, warnings) = build(&p, &["--cache", &format!("127.0.0.1:{port}/cache")]);
    for i in 0..6 {
        assert_eq!(report.status(&format!("s{i}")), "built");
    }
    assert_eq!(warnings.matches("warning:").count(), 1, "{warnings}");
}

/// Review finding 1: with a wave's lookups in flight at once, the one
/// warning for an unreachable cache named whichever node's request failed
/// first (`s4` one run, `s0` the next, with that node's key in the URL).
/// The same build must say the same thing: the first node in plan order.
#[test]
fn an_unreachable_cache_is_said_for_the_first_node_every_time() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let spec: String = (0..12)
        .map(|i| format!("stage s{i} {{ run \"echo {i} > $out/n\" }}\n"))
        .collect();
    let cache = format!("127.0.0.1:{port}/cache");
    for run in 0..4 {
        let (_, warnings) = build(&Project::new(&spec), &["--cache", &cache]);
        assert_eq!(warnings.matches("warning:").count(), 1, "{warnings}");
        assert!(
            warnings.contains("building `s0` here"),
            "run {run}: the warning names another node than the first:\n{warnings}"
        );
    }
}

/// Review finding 2: the survey said a refused entry's warning wave by
/// wave, so `c` (no dependencies) came before `b` (after `a`), where a
/// build had always said them in plan order (`b`, then `c`).
#[test]
fn refused_entries_are_said_in_plan_order() {
    let Some(registry) = Registry::start() else {
        return;
    };
    use crate::common::cache_entry::{genuine, replace_record};
    let spec = r#"
stage a { run "echo a > $out/f" }
stage b { use a; run "cat $a/f > $out/f" }
stage c { run "echo c > $out/f" }
"#;
    let cache = format!("{}/order", registry.host());
    let (built, _) = build(&Project::new(spec), &["--cache", &cache, "--cache-push"]);
    for name in ["b", "c"] {
        let key = built.key(name);
        let (m, mut record) = genuine(&registry, "order", &key);
        record["format"] = 3.into();
        replace_record(&registry, "order", &format!("kiln2-{key}"), m, &record);
    }
    let p = Project::new(spec);
    let (report, warnings) = build(&p, &["--cache", &cache]);
    assert_eq!(
        (report.status("a"), report.status("b"), report.status("c")),
        ("pulled".into(), "built".into(), "built".into()),
        "{warnings}"
    );
    let at = |name: &str| {
        warnings
            .find(&format!("building `{name}` here"))
            .unwrap_or_else(|| panic!("no warning for `{name}`:\n{warnings}"))
    };
    assert!(at("b") < at("c"), "not in plan order:\n{warnings}");
}

/// Review finding 3: the survey's 16 lookup threads were started with
/// `expect`, so a user who may start no more threads (RLIMIT_NPROC, a
/// pids cgroup) got a panic from any build with `--cache`, where the build
/// without it (and before the survey went parallel) succeeded. Without
/// them, the lookups go one after another.
#[test]
fn a_cache_build_where_no_more_threads_may_start_still_builds() {
    if !crate::common::skip::require_root() || !crate::common::skip::require("prlimit") {
        return;
    }
    // A cache that answers (an empty one), so that the survey asks for
    // the twenty stages' records at once.
    let Some(registry) = Registry::start() else {
        return;
    };
    let spec: String = (0..20)
        .map(|i| format!("stage s{i} {{ run \"echo {i} > $out/n\" }}\n"))
        .collect();
    let p = Project::new(&spec);
    // A uid of this test's own: RLIMIT_NPROC counts every process of the
    // uid, and other tests run kiln as `nobody` meanwhile.
    p.give_to_nobody();
    let id = "54321";
    let chown = std::process::Command::new("chown")
        .args(["-R", "54321:54321"])
        .arg(p.dir.path())
        .status()
        .expect("chown");
    assert!(chown.success());
    // Room for kiln's own threads and a stage's sandbox, not for 16 more.
    let out = std::process::Command::new("setpriv")
        .args(["--reuid", id, "--regid", id, "--clear-groups", "--"])
        .args(["prlimit", "--nproc=14", "--"])
        .arg(p.dir.path().join("bin/kiln"))
        .args(["build", "--json", "--jobs", "1", "--cache"])
        .arg(format!("{}/cache", registry.host()))
        .current_dir(p.root())
        .env("KILN_HOME", &p.store)
        .env("HOME", p.dir.path())
        .env("NO_COLOR", "1")
        .output()
        .expect("run kiln");
    assert!(out.status.success(), "kiln build failed:\n{}", stderr(&out));
    let report = Report::parse(&out.stdout);
    assert_eq!(report.with_status("built").len(), 20, "{}", stderr(&out));
}

/// Review finding 5: one file imported twice with the same args makes two
/// nodes of one key (`a.s`, `b.s`), and the survey asked the cache for
/// both at once: two requests, and a refused entry said twice, where one
/// after the other the second found the first's answer remembered.
#[test]
fn two_nodes_of_one_key_ask_the_cache_once() {
    let Some(registry) = Registry::start() else {
        return;
    };
    use crate::common::cache_entry::{genuine, replace_record};
    let project = || {
        let p = Project::new(
            r#"
stage first { run "echo first > $out/f" }
import "tc.kdl" as=a
import "tc.kdl" as=b
stage top { use a.s; use b.s; run "cat $a_s/f $b_s/f > $out/f" }
"#,
        );
        p.write(
            "tc.kdl",
            "stage base { run \"echo base > $out/f\" }\nstage s { use base; run \"cat $base/f > $out/f\" }\n",
        );
        p
    };
    let cache = format!("{}/twice", registry.host());
    let (built, _) = build(&project(), &["--cache", &cache, "--cache-push"]);
    let key = built.key("a.s");
    assert_eq!(key, built.key("b.s"), "one key for both");
    let (m, mut record) = genuine(&registry, "twice", &key);
    record["format"] = 3.into();
    replace_record(&registry, "twice", &format!("kiln2-{key}"), m, &record);
    for run in 0..3 {
        let (_, warnings) = build(&project(), &["--cache", &cache]);
        assert_eq!(
            warnings.matches(&format!("kiln2-{key}")).count(),
            1,
            "run {run}: the refused entry is said once:\n{warnings}"
        );
    }
}

#[test]
fn a_bad_trusted_key_is_a_usage_error() {
    let p = Project::new(SPEC);
    let out = p.kiln(&[
        "build",
        "--cache",
        "127.0.0.1:1/c",
        "--cache-trust",
        "nameless",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("is not a public key"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn explain_says_what_the_cache_has_and_diffs_against_a_collected_build_it_keeps() {
    let Some(registry) = Registry::start() else {
        return;
    };
    let cache = format!("{}/cache", registry.host());
    let built = Project::new(SPEC);
    build(&built, &["--cache", &cache, "--cache-push"]);

    // A fresh store: nothing here, everything there.
    let fresh = Project::new(SPEC);
    let said = fresh.ok(&["explain", "stamp", "--cache", &cache]);
    assert!(
        said.contains("is not in the store, but the cache has it"),
        "{said}"
    );

    // The build is collected here; the spec changes; the cache still knows
    // what the old key's inputs were.
    built.ok(&["store", "gc", "--keep-days", "0"]);
    built.write("kiln.kdl", &SPEC.replace("date +%s%N", "date +%s"));
    let said = built.ok(&["explain", "stamp", "--cache", &cache]);
    assert!(said.contains("is not cached: key"), "{said}");
    assert!(
        said.contains("date +%s%N") && said.contains("date +%s "),
        "{said}"
    );
    let without = built.ok(&["explain", "stamp"]);
    assert!(without.contains("has never been built here"), "{without}");
}
