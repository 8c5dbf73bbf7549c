//! Adversarial review, round 2 (issue 12): builds without the bytes
//! (`Status::Remote`, rounds, realisations), `cache` directories in
//! stages, and `kiln build --rebuild`, each attacked through the real
//! binary. A test that is `#[ignore]`d names the finding it shows and is
//! not fixed yet.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Output};

use crate::common::build_said as build;
use crate::common::cache_entry::{assert_no_terminal_controls, pushed_entry, replace_record};
use crate::common::nobody::NOBODY;
use crate::common::registry::Registry;
use crate::common::skip::require_root;
use crate::common::{Project, Report};

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `kiln build --json ARGS` in `p`, which must succeed.
/// Two stages, the second made from the first: a lazy build pulls only
/// `b` (the product) and leaves `a` in the cache.
const CHAIN: &str = r#"
stage a { run "echo a > $out/a" }
stage b { use a; run "cat $a/a > $out/b" }
"#;

// --- finding 1: `--rebuild` after a lazy build ---------------------------

/// `kiln build --rebuild --cache …` on an empty store: the build pulls `b`
/// and leaves `a` in the cache, then the rebuild runs `b` again without
/// `a`'s files. It panicked (a missing dependency in the rebuild's `done`)
/// and never checked `a`. Every stage must be here and checked.
#[test]
fn rebuild_with_a_cache_checks_every_stage_without_leaving_any_in_the_cache() {
    let Some(registry) = Registry::start() else {
        return;
    };
    let cache = format!("{}/cache", registry.host());
    build(&Project::new(CHAIN), &["--cache", &cache, "--cache-push"]);

    let p = Project::new(CHAIN);
    let out = p.kiln(&["build", "--rebuild", "--json", "--cache", &cache]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let report = Report::parse(&out.stdout);
    let checked: Vec<(String, String)> = (report.0["rebuild"].as_array().expect("rebuild list"))
        .iter()
        .map(|c| {
            let name = c["name"].as_str().expect("name").to_owned();
            (name, c["status"].as_str().expect("status").to_owned())
        })
        .collect();
    assert_eq!(
        checked,
        [("a".into(), "same".into()), ("b".into(), "same".into())],
        "{err}"
    );
    assert_eq!(report.0["remote"], 0, "{}", report.0);
}

// --- finding 2: what `--rebuild` keeps is out of other users' reach -------

/// The rebuilt `$out` of a stage that did not reproduce is kept under the
/// store's `tmp/` for the user to compare. It was moved there as the
/// script left it: a setuid program of the sandbox's id, in a directory
/// any user could reach in a store other users can traverse. Kept, it must
/// be as harmless as a committed entry (no setuid bit, the owner's).
#[test]
fn a_setuid_program_in_a_rebuilt_output_is_out_of_other_users_reach() {
    if !require_root() {
        return;
    }
    let p = Project::new(
        r#"stage atk {
            run "cp /usr/bin/id $out/id; chmod 6755 $out/id; chmod 755 $out; date +%s%N > $out/nonce"
        }"#,
    );
    // A store other users can traverse (`--store /var/cache/kiln`, say).
    std::fs::set_permissions(p.dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let out = p.kiln(&["build", "--rebuild", "--sandbox", "on"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("is not reproducible"), "{err}");
    let kept: Vec<PathBuf> = std::fs::read_dir(p.store.join("v2/tmp"))
        .expect("tmp/")
        .map(|e| e.expect("entry").path())
        .filter(|d| d.to_string_lossy().ends_with(".rebuilt"))
        .collect();
    assert_eq!(kept.len(), 1, "{err}");
    let program = kept[0].join("id");
    assert!(program.exists(), "{}", program.display());
    let id = NOBODY.to_string();
    // Through a shell: setpriv would look the program up as root.
    let ran = Command::new("setpriv")
        .args(["--reuid", &id, "--regid", &id, "--clear-groups", "--"])
        .args(["/bin/sh", "-c", "exec \"$0\" -u"])
        .arg(&program)
        .output()
        .expect("setpriv");
    let uid = String::from_utf8_lossy(&ran.stdout).trim().to_owned();
    assert!(
        uid.is_empty() || uid == id,
        "nobody ran {} as uid {uid}",
        program.display()
    );
    let mode = std::fs::metadata(&program)
        .expect("stat")
        .permissions()
        .mode();
    assert_eq!(mode & 0o6000, 0, "setuid/setgid kept: {mode:o}");
    // And the next gc still removes it.
    p.ok(&["store", "gc"]);
    assert!(!kept[0].exists());
}

// --- finding 3: a base in the graph makes everything after it download ----

/// A project with a busybox base, a stage that runs in it and an image on
/// it (as `store_integrity::base_project`).
fn base_project() -> Project {
    base_project_shipped_on("busybox")
}

/// [`base_project`] with the image made from `root` (a base, or `scratch`).
fn base_project_shipped_on(root: &str) -> Project {
    use crate::common::images::{Compress, busybox_image_with, write_docker_archive};
    let image = busybox_image_with(Compress::Gzip);
    let base = format!(r#"archive "bb.tar" digest="{}""#, image.id());
    let p = Project::new(&builder_spec(&base, root));
    write_docker_archive(&image, &p.root().join("bb.tar"));
    p
}

/// A base `busybox` from `source`, a stage run in it, an image from `root`
/// that ships the stage's file.
fn builder_spec(source: &str, root: &str) -> String {
    format!(
        r#"
        base busybox {{
            {source}
        }}
        stage greet {{
            from busybox
            run "cat /etc/hello > $out/hello"
        }}
        image app {{
            from {root}
            copy greet "hello" to="/app/hello"
        }}
        "#
    )
}

/// Builds `spec()` with a cache, pushing; then again from a fresh store
/// with that cache: the second build's report, summary, and the number of
/// blobs each store imported.
fn built_twice_through(
    cache: &str,
    spec: impl Fn() -> Project,
) -> (Report, String, Project, [usize; 2]) {
    let blobs = |p: &Project| {
        let dir = p.store.join("v2/blobs/sha256");
        std::fs::read_dir(&dir).map_or(0, |d| d.count())
    };
    let first = spec();
    build(&first, &["--cache", cache, "--cache-push"]);
    let second = spec();
    let (lazy, err) = build(&second, &["--cache", cache]);
    let imported = [blobs(&first), blobs(&second)];
    (lazy, err, second, imported)
}

/// The Docker multi-stage shape: a builder stage run in a base, the
/// product an image from scratch. A stage run in a base is keyed by the
/// base's config, which its pin gives, so on a fresh store with a warm
/// cache the stage stays in the cache and the base is not even imported.
#[test]
fn a_stage_run_from_a_base_stays_in_the_cache_and_the_base_is_not_pulled() {
    if !crate::common::skip::require_sandbox() {
        return;
    }
    let Some(registry) = Registry::start() else {
        return;
    };
    let cache = format!("{}/cache", registry.host());
    let (lazy, err, second, imported) =
        built_twice_through(&cache, || base_project_shipped_on("scratch"));
    assert!(imported[0] > 0, "the first build imported the base here");
    assert_eq!(lazy.0["images"][0]["status"], "pulled", "{err}");
    assert_eq!(lazy.status("greet"), "remote", "{}", lazy.0);
    assert_eq!(lazy.0["bases"][0]["status"], "remote", "{}", lazy.0);
    assert!(
        err.contains("1 left in the cache, 1 base not pulled"),
        "{err}"
    );
    assert_eq!(imported[1], 0, "the base was imported");
    // And `kiln explain` keys the stage offline, from what the build
    // remembered of the base's pin and of the stage's record.
    drop(registry);
    let explain = second.ok(&["explain", "app"]);
    assert!(explain.contains("image `app` is cached"), "{explain}");
}

/// The same with the base in a registry, and the image made from it too:
/// the stage is keyed by the config its manifest names (two small
/// requests), the image by the base's key, whose manifest digest pins
/// every byte of the base. Nothing but the image is downloaded.
#[test]
fn a_stage_and_an_image_from_a_registry_base_stay_in_the_cache_and_the_base_is_not_pulled() {
    use crate::common::images::{Compress, busybox_image_with, write_docker_archive};
    if !crate::common::skip::require_sandbox() {
        return;
    }
    let Some(registry) = Registry::start() else {
        return;
    };
    let tmp = tempfile::tempdir().expect("temp dir");
    let archive = tmp.path().join("bb.tar");
    write_docker_archive(&busybox_image_with(Compress::Gzip), &archive);
    let digest = registry.push_archive(&archive, "docker-archive", "bb:1");
    let source = format!(r#"image "{}/bb:1@{digest}""#, registry.host());
    let cache = format!("{}/cache", registry.host());
    let (lazy, err, _, imported) =
        built_twice_through(&cache, || Project::new(&builder_spec(&source, "busybox")));
    assert!(imported[0] > 0, "the first build pulled the base here");
    assert_eq!(lazy.0["images"][0]["status"], "pulled", "{err}");
    assert_eq!(lazy.status("greet"), "remote", "{err}");
    assert_eq!(lazy.0["bases"][0]["status"], "remote", "{}", lazy.0);
    assert_eq!(imported[1], 0, "the base was pulled");
}

/// README: "a stage [the products] were made from stays in the cache
/// (status `remote`) unless something built here needs its files". An
/// image made from an archive base was keyed by the base's output hash (it
/// carries the base's layers as they were stored, which an archive's
/// config digest does not pin), known only once the base was imported; the
/// image was then made here, and the stage it copies from downloaded. It
/// is now keyed by the base's key, which holds the archive's content, as
/// one from a registry base is (the test above): see `base_keys.rs`.
#[test]
fn a_stage_run_from_a_base_stays_in_the_cache_when_only_the_image_is_wanted() {
    if !crate::common::skip::require_sandbox() {
        return;
    }
    let Some(registry) = Registry::start() else {
        return;
    };
    let cache = format!("{}/cache", registry.host());
    build(&base_project(), &["--cache", &cache, "--cache-push"]);
    let second = base_project();
    let (lazy, err) = build(&second, &["--cache", &cache]);
    assert_eq!(lazy.0["images"][0]["status"], "pulled", "{err}");
    assert_eq!(lazy.status("greet"), "remote", "{}", lazy.0);
}

// --- finding 4: `store path` and `explain` after a lazy build ------------

/// The SPEC of `cache.rs`: a stage, a stage made from it, an image of both.
const LAZY: &str = r#"
stage stamp { run "date +%s%N > $out/stamp" }
stage copy { use stamp; run "cp $stamp/stamp $out/again" }
image app {
    from scratch
    copy stamp "." to="/stamp"
    copy copy "again" to="/again"
}
"#;

/// After a lazy build, `kiln build` and `kiln export` find the image's key
/// without the cache (from the realisations the store keeps); `kiln store
/// path` and `kiln explain` keyed nodes from store entries only, so they
/// said the image was "not built" / "cannot be keyed yet" while it sat in
/// the store.
#[test]
fn store_path_and_explain_find_a_lazily_built_image_without_the_cache() {
    let Some(registry) = Registry::start() else {
        return;
    };
    let cache = format!("{}/cache", registry.host());
    build(&Project::new(LAZY), &["--cache", &cache, "--cache-push"]);
    let p = Project::new(LAZY);
    let (lazy, err) = build(&p, &["--cache", &cache]);
    assert_eq!(lazy.status("stamp"), "remote", "{err}");
    let app = lazy.0["images"][0]["output"]
        .as_str()
        .expect("app's output")
        .to_owned();
    drop(registry);

    let path = p.kiln(&["store", "path", "app"]);
    assert!(path.status.success(), "{}", stderr(&path));
    assert_eq!(String::from_utf8_lossy(&path.stdout).trim(), app);
    let explain = p.ok(&["explain", "app"]);
    assert!(explain.contains("image `app` is cached"), "{explain}");
    // A stage left in the cache has no path here, as before.
    let stamp = p.kiln(&["store", "path", "stamp"]);
    assert_eq!(stamp.status.code(), Some(1), "{}", stderr(&stamp));
}

// --- finding 5: `--rebuild` overwrote the stored build's log -------------

/// The log of the build that made an entry is the store's record of how it
/// was made (`the whole log is at …`). Running the stage again wrote its
/// log over it: after a rebuild that found a difference, the original
/// run's output was gone. The rebuild now logs beside what it keeps.
#[test]
fn a_rebuild_keeps_the_log_of_the_build_that_made_the_entry() {
    let p = Project::new(r#"stage s { run "echo run-$(date +%s%N); date +%s%N > $out/n" }"#);
    let (report, _) = build(&p, &["--sandbox", "off"]);
    let key = report.key("s");
    let log = p.store.join(format!("v2/logs/{}-s.log", &key[..32]));
    let first = std::fs::read_to_string(&log).expect("the build's log");
    assert!(first.starts_with("run-"), "{first}");
    let out = p.kiln(&["build", "--rebuild", "--sandbox", "off"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(&log).expect("the build's log"),
        first,
        "the stored build's log was overwritten"
    );
    let rebuilt = p.store.join(format!("v2/tmp/{}-s.rebuild.log", &key[..32]));
    let again = std::fs::read_to_string(&rebuilt).expect("the rebuild's log");
    assert!(again.starts_with("run-") && again != first, "{again}");
    // Swept with the rebuilt output.
    p.ok(&["store", "gc"]);
    assert!(!rebuilt.exists());
}

// --- finding 6: `--rebuild --json` printed nothing when the build failed --

/// `kiln build --json` prints its report whatever happened (a failed
/// stage has status `failed`); with `--rebuild`, a failed build printed no
/// JSON at all, so a CI job reading stdout got nothing to parse.
#[test]
fn rebuild_json_reports_a_failed_build_as_build_json_does() {
    let p = Project::new(r#"stage s { run "exit 3" }"#);
    let out = p.kiln(&["build", "--rebuild", "--json", "--sandbox", "off"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report = Report::parse(&out.stdout);
    assert_eq!(report.status("s"), "failed");
    assert_eq!(report.0["failed"], 1);
}

// --- finding 7: `explain --cache` on a fresh store ------------------------

/// README: `kiln explain NODE` "with `--cache`, whether the cache has it".
/// For a node made from others, on a store that has none of them, explain
/// keyed nodes from the store only and said "cannot be keyed yet", though
/// the build (which keys through the cache's records) would pull it. It
/// now keys through the records as the build's survey does.
#[test]
fn explain_with_a_cache_says_the_cache_has_an_image_on_a_fresh_store() {
    let Some(registry) = Registry::start() else {
        return;
    };
    let cache = format!("{}/cache", registry.host());
    build(&Project::new(LAZY), &["--cache", &cache, "--cache-push"]);
    let p = Project::new(LAZY);
    let explain = p.ok(&["explain", "app", "--cache", &cache]);
    assert!(explain.contains("the cache has it"), "{explain}");
}

// --- held: rounds with a failure --------------------------------------------

/// A product whose entry is damaged (`b`, deferred to a second round) next
/// to a stage that fails (`f`): without `--fail-fast` the second round
/// makes `b` here and `f` is not run again; with it, the build stops after
/// the first round and `b` is skipped. Each node is reported once.
#[test]
fn a_deferred_product_next_to_a_failing_stage_is_reported_once() {
    let Some(registry) = Registry::start() else {
        return;
    };
    let cache = format!("{}/cache", registry.host());
    let (built, _) = build(&Project::new(CHAIN), &["--cache", &cache, "--cache-push"]);
    let b = built.key("b");
    let manifest = registry.get_manifest("cache", &format!("kiln2-{b}"));
    let tree: kiln::hash::Digest = manifest["layers"][0]["digest"]
        .as_str()
        .and_then(|d| d.parse().ok())
        .expect("tree digest");
    std::fs::write(registry.blob(&tree), b"not a zstd tar").expect("tamper");

    let spec = format!("{CHAIN}\nstage f {{ run \"echo ran-f >&2; exit 1\" }}\n");
    for fail_fast in [false, true] {
        let p = Project::new(&spec);
        let mut args = vec!["build", "--json", "-j1", "--cache", &cache];
        if fail_fast {
            args.push("--fail-fast");
        }
        let out = p.kiln(&args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{err}");
        let report = Report::parse(&out.stdout);
        assert_eq!(report.status("f"), "failed", "{err}");
        assert_eq!(err.matches("Stage `f` failed").count(), 1, "{err}");
        let counts = ["built", "cached", "pulled", "remote", "failed", "skipped"]
            .map(|s| report.0[s].as_u64().expect("count"));
        assert_eq!(counts.iter().sum::<u64>(), 3, "{}", report.0);
        match fail_fast {
            false => {
                assert_eq!(
                    (report.status("a"), report.status("b")),
                    ("pulled".into(), "built".into()),
                    "{err}"
                );
                assert_eq!(read_log_runs(&p, "f"), 1);
            }
            true => assert_eq!(report.status("b"), "skipped", "{err}"),
        }
    }
}

/// How many times stage `name`'s log says it ran (`ran-NAME`).
fn read_log_runs(p: &Project, name: &str) -> usize {
    std::fs::read_dir(p.store.join("v2/logs"))
        .expect("logs/")
        .map(|e| e.expect("entry").path())
        .filter(|l| l.to_string_lossy().ends_with(&format!("-{name}.log")))
        .map(|l| {
            std::fs::read_to_string(l)
                .expect("log")
                .matches(&format!("ran-{name}"))
                .count()
        })
        .sum()
}

// --- finding 8: a stage killed by its `timeout` left its cache to be read --

/// A cache is "dropped if a build was killed using it", so that what a
/// killed tool half wrote is never read. A `timeout` kills every process
/// of the stage just as `kill -9` of kiln does; kiln lived on and released
/// the cache as if the tool had finished, so the next build read the
/// half-written file. Now a timed-out stage leaves its mark, as a killed
/// build does.
#[test]
fn a_stage_killed_by_its_timeout_leaves_its_cache_to_be_dropped_not_read() {
    if !crate::common::skip::require_sandbox() {
        return;
    }
    let p = Project::new(
        r#"
arg n default="1"
stage s {
    cache "/tmp/c"
    timeout "2s"
    run "ls /tmp/c > $TMPDIR/seen; echo half > /tmp/c/written-$n; [ $n != 1 ] || sleep 60; cp $TMPDIR/seen $out/seen"
}
"#,
    );
    let killed = p.kiln(&["build"]);
    assert_eq!(killed.status.code(), Some(1), "{}", stderr(&killed));
    assert!(
        stderr(&killed).contains("killed after"),
        "{}",
        stderr(&killed)
    );
    let (report, err) = build(&p, &["--arg", "n=2"]);
    assert_eq!(
        crate::common::read(&report.output("s").join("seen")),
        "",
        "the killed stage's file was read: {err}"
    );
    assert!(err.contains("killed while using it"), "{err}");
}

/// Review 1, finding 6: a tool killed by a signal (here the script's own
/// shell, as the OOM killer would kill it) mid-write left the cache to be
/// read, as a timeout did before. Now it is dropped; a script that merely
/// fails keeps it (the tool's own writes are atomic).
#[test]
fn tools_killed_by_a_signal_leave_their_cache_to_be_dropped_and_a_failure_keeps_it() {
    if !crate::common::skip::require_sandbox() {
        return;
    }
    let p = Project::new(
        r#"
arg n default="1"
arg end default="true"
stage s {
    cache "/tmp/c"
    run "ls /tmp/c > $TMPDIR/seen; echo half > /tmp/c/written-$n; eval \"$end\"; cp $TMPDIR/seen $out/seen"
}
"#,
    );
    let failed = p.kiln(&["build", "--arg", "end=exit 3"]);
    assert_eq!(failed.status.code(), Some(1), "{}", stderr(&failed));
    let (report, err) = build(&p, &["--arg", "n=2"]);
    let seen = crate::common::read(&report.output("s").join("seen"));
    assert_eq!(
        seen, "written-1\n",
        "a failed script's cache was dropped: {err}"
    );

    let killed = p.kiln(&["build", "--arg", "n=3", "--arg", "end=kill -9 $$"]);
    assert_eq!(killed.status.code(), Some(1), "{}", stderr(&killed));
    let (report, err) = build(&p, &["--arg", "n=4"]);
    let seen = crate::common::read(&report.output("s").join("seen"));
    assert_eq!(seen, "", "the killed tools' cache was read: {err}");
    assert!(err.contains("killed while using it"), "{err}");
}

/// Review finding 4: when the next user of a cache a stage's `timeout`
/// abandoned is a stage of the same build, the warning said the cache
/// "was left by a build that was killed using it", when no build was.
#[test]
fn a_cache_dropped_after_a_timeout_in_the_same_build_does_not_blame_a_killed_build() {
    if !crate::common::skip::require_sandbox() {
        return;
    }
    // `t1` holds cache `x` until its timeout; `t2` (after `slow`) waits
    // for it, then finds t1's mark.
    let p = Project::new(
        r#"
stage t1 {
    cache "/tmp/c" id="x"
    timeout "2s"
    run "echo half > /tmp/c/f; sleep 60"
}
stage slow { run "sleep 1; echo > $out/n" }
stage t2 {
    use slow
    cache "/tmp/c" id="x"
    run "ls /tmp/c > $out/seen"
}
"#,
    );
    let out = p.kiln(&["build", "--json", "--jobs", "2"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report = Report::parse(&out.stdout);
    assert_eq!(report.status("t2"), "built", "{}", stderr(&out));
    assert_eq!(crate::common::read(&report.output("t2").join("seen")), "");
    let err = stderr(&out);
    let warning = (err.lines())
        .find(|l| l.contains("cache `x`"))
        .unwrap_or_else(|| panic!("no warning for cache `x`:\n{err}"));
    assert!(!warning.contains("a build that was killed"), "{warning}");
    assert!(warning.contains("timeout"), "{warning}");
}

// --- finding 9: `explain` printed a cache record's inputs raw ------------

/// `kiln explain NODE --cache …` diffs against the inputs a cache record
/// names when the store has collected the last build. A record is written
/// by whoever can push to the cache (unsigned, without trusted keys): its
/// labels and values reached the terminal as they were, escape sequences
/// (retitle the window, write the clipboard, rewrite lines) included.
#[test]
fn explain_does_not_print_control_characters_from_a_cache_record() {
    let Some(registry) = Registry::start() else {
        return;
    };
    let cache = format!("{}/cache", registry.host());
    let spec = r#"stage s { run "echo one > $out/f" }"#;
    let p = Project::new(spec);
    let (tag, m, mut record) = pushed_entry(&registry, "cache", &p);
    record["inputs"] = serde_json::json!({
        "run\u{1b}]0;PWNED\u{7}": "\u{1b}]52;c;cHduZWQ=\u{7}\u{1b}[1A\u{1b}[2Kforged\r",
    });
    replace_record(&registry, "cache", &tag, m, &record);

    p.ok(&["store", "gc", "--keep-days", "0"]);
    p.write("kiln.kdl", &spec.replace("one", "two"));
    let said = p.ok(&["explain", "s", "--cache", &cache]);
    assert!(said.contains("is not cached: key"), "{said}");
    assert!(
        said.contains("PWNED"),
        "the record's inputs are shown: {said}"
    );
    assert_no_terminal_controls(&said);
}

// --- finding 10: a record's unknown field name reached the terminal -------

/// A record that does not parse is refused with a warning that quotes the
/// parser, and serde's "unknown field `…`" quotes the field name: the
/// cache writer's bytes, escape sequences included, reached stderr.
#[test]
fn a_record_that_does_not_parse_cannot_write_terminal_escapes() {
    let Some(registry) = Registry::start() else {
        return;
    };
    let cache = format!("{}/cache", registry.host());
    let spec = r#"stage s { run "echo one > $out/f" }"#;
    let (tag, m, mut record) = pushed_entry(&registry, "cache", &Project::new(spec));
    record["\u{1b}]0;PWNED\u{7}\u{1b}[2K\r"] = serde_json::json!(1);
    replace_record(&registry, "cache", &tag, m, &record);

    let (report, err) = build(&Project::new(spec), &["--cache", &cache]);
    assert_eq!(report.status("s"), "built", "{err}");
    assert!(err.contains("does not parse"), "{err}");
    assert_no_terminal_controls(&err);
}

// --- finding 11: an unsafe tree entry's name reached the terminal ---------

/// A tree entry kiln refuses (here an absolute path) is named in the
/// warning, and the name is the cache writer's bytes.
#[test]
fn an_unsafe_tree_entry_cannot_write_terminal_escapes() {
    use crate::common::images::{Compress, layer, raw_entry};
    let Some(registry) = Registry::start() else {
        return;
    };
    let cache = format!("{}/cache", registry.host());
    let spec = r#"stage s { run "echo one > $out/f" }"#;
    let (tag, mut m, mut record) = pushed_entry(&registry, "cache", &Project::new(spec));
    let tree = layer(Compress::Zstd, |b| {
        raw_entry(b, tar::EntryType::Regular, "/\u{1b}]0;PWNED\u{7}\r", "");
    })
    .bytes;
    let tree_digest = registry.put_blob("cache", &tree);
    let blob = serde_json::json!({ "digest": tree_digest.to_string(), "size": tree.len() });
    record["tree"] = blob.clone();
    m["layers"][0]["digest"] = blob["digest"].clone();
    m["layers"][0]["size"] = blob["size"].clone();
    replace_record(&registry, "cache", &tag, m, &record);

    let (report, err) = build(&Project::new(spec), &["--cache", &cache]);
    assert_eq!(report.status("s"), "built", "{err}");
    assert!(err.contains("PWNED"), "the entry is named: {err}");
    assert_no_terminal_controls(&err);
}

// --- held: what reads an image after a lazy build ---------------------------

/// After a lazy build and without the cache, every command that reads the
/// image (not the stages it was made from) works: `inspect`, `why`,
/// `export`, and a second `build` is a no-op.
#[test]
fn commands_that_read_a_lazily_pulled_image_work_without_the_cache() {
    let Some(registry) = Registry::start() else {
        return;
    };
    let cache = format!("{}/cache", registry.host());
    build(&Project::new(LAZY), &["--cache", &cache, "--cache-push"]);
    let p = Project::new(LAZY);
    let (lazy, err) = build(&p, &["--cache", &cache]);
    assert_eq!(lazy.status("copy"), "remote", "{err}");
    drop(registry);
    let inspect = p.ok(&["inspect", "app"]);
    assert!(inspect.contains("/again"), "{inspect}");
    let why = p.ok(&["why", "app", "/again"]);
    assert!(why.contains("copy"), "{why}");
    let tar = p.dir.path().join("app.tar");
    p.ok(&["export", "app", "-o", tar.to_str().expect("utf-8")]);
    let (again, err) = build(&p, &[]);
    assert!(err.contains("nothing to build"), "{err}");
    assert_eq!(again.0["remote"], 2, "{}", again.0);
}

// --- finding 12: `--rebuild` named a script's file names raw --------------

/// The first differing path and a symlink's target are what the script
/// wrote: a file named with escape sequences (valid UTF-8) reached the
/// terminal in the "not reproducible" diagnostic, where a failed stage's
/// log never does.
#[test]
fn a_rebuild_difference_cannot_write_terminal_escapes() {
    let p = Project::new(
        r##"stage s {
            run #"n=$(date +%s%N); printf x > "$out/$(printf '\033]0;PWNED\007\r')"; ln -s "$(printf '\033[2K')$n" "$out/$(printf 'l\033[1A')""#
        }"##,
    );
    build(&p, &["--sandbox", "off"]);
    let out = p.kiln(&["build", "--rebuild", "--json", "--sandbox", "off"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("is not reproducible"), "{err}");
    assert_no_terminal_controls(&err);
}
