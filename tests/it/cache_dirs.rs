//! `cache "/path"` in a stage, through the real binary: the directory
//! survives between builds and is not in the key, concurrent builds take
//! turns, a build killed while using it leaves it dropped, `kiln store ls`
//! shows it and `kiln store gc` collects it. (The Go toolchain's own
//! evidence of reuse is `cache_dirs_go.rs`; attacks, `cache_dir_attacks.rs`.)

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::skip::require_sandbox;
use crate::common::{Project, read};

/// A stage that counts its runs in its cache, and copies the count out.
const COUNTER: &str = r#"
arg n default="1"
stage count {
    cache "/tmp/counter"
    run "echo $n >> /tmp/counter/runs; mkdir -p $out; wc -l < /tmp/counter/runs > $out/runs"
}
"#;

/// The one cache directory of the store.
fn cache_dirs(p: &Project) -> Vec<PathBuf> {
    let dir = p.store.join("v2/caches");
    let mut dirs: Vec<PathBuf> = (std::fs::read_dir(&dir).into_iter().flatten())
        .map(|e| e.expect("cache entry").path().join("data"))
        .collect();
    dirs.sort();
    dirs
}

#[test]
fn a_cache_outlives_its_build_and_is_not_part_of_the_key() {
    if !require_sandbox() {
        return;
    }
    let p = Project::new(COUNTER);
    let first = p.build(&[]);
    assert_eq!(read(&first.output("count").join("runs")).trim(), "1");
    let second = p.build(&["--arg", "n=2"]);
    assert_eq!(read(&second.output("count").join("runs")).trim(), "2");
    // Another path, an id, another sharing mode: the same key, nothing runs.
    p.write(
        "kiln.kdl",
        &COUNTER.replace(
            r#"cache "/tmp/counter""#,
            r#"cache "/tmp/elsewhere" id="other" sharing="shared""#,
        ),
    );
    let third = p.build(&["--arg", "n=2"]);
    assert_eq!(third.status("count"), "cached");
    assert_eq!(third.key("count"), second.key("count"));
    // No cache at all: still the same key.
    p.write("kiln.kdl", &COUNTER.replace(r#"cache "/tmp/counter""#, ""));
    assert_eq!(p.build(&["--arg", "n=2"]).key("count"), second.key("count"));
}

#[test]
fn store_ls_shows_each_cache_with_its_size_and_gc_collects_old_ones_or_all() {
    if !require_sandbox() {
        return;
    }
    let p = Project::new(
        r#"
stage a {
    cache "/tmp/a"
    run "head -c 100000 /dev/zero > /tmp/a/blob; touch $out/ok"
}
stage b {
    cache "/tmp/b" id="shared-b"
    run "echo b > /tmp/b/x; touch $out/ok"
}
"#,
    );
    p.build(&[]);
    let ls = p.ok(&["store", "ls"]);
    let caches: Vec<&str> = ls.lines().filter(|l| l.starts_with("cache ")).collect();
    assert_eq!(caches.len(), 2, "{ls}");
    // 100,000 bytes and a directory: about 100 KiB on disk.
    assert!(caches[0].starts_with("cache a:/tmp/a  "), "{ls}");
    assert!(caches[0].contains(" KiB  "), "{ls}");
    assert!(caches[1].starts_with("cache shared-b  "), "{ls}");
    // `a` was last used 40 days ago, `b` now.
    let old = (cache_dirs(&p).into_iter())
        .find(|d| d.join("blob").exists())
        .expect("the cache of a");
    let record = old.with_file_name("cache.json");
    let long_ago = std::time::SystemTime::now() - Duration::from_secs(40 * 24 * 3600);
    std::fs::File::options()
        .write(true)
        .open(&record)
        .and_then(|f| f.set_modified(long_ago))
        .expect("age the cache");
    let gc = p.ok(&["store", "gc"]);
    assert!(
        gc.contains(&*old.parent().expect("cache dir").to_string_lossy()),
        "{gc}"
    );
    assert!(!old.exists());
    assert_eq!(cache_dirs(&p).len(), 1);
    p.ok(&["store", "gc", "--caches"]);
    assert_eq!(cache_dirs(&p), Vec::<PathBuf>::new());
    assert!(!p.ok(&["store", "ls"]).contains("cache "));
}

#[test]
fn two_builds_sharing_a_locked_cache_take_turns_and_both_succeed() {
    if !require_sandbox() {
        return;
    }
    // Each script claims the cache for a second: seeing another's claim
    // means two builds were in it at once.
    let spec = r##"
arg who default="x"
stage s {
    cache "/tmp/shared" id="turns"
    run #"""
        [ ! -e /tmp/shared/claim ] || { echo "in use by $(cat /tmp/shared/claim)"; exit 3; }
        echo $who > /tmp/shared/claim
        sleep 1
        [ "$(cat /tmp/shared/claim)" = $who ]
        rm /tmp/shared/claim
        echo $who >> /tmp/shared/done
        touch $out/ok
        """#
}
"##;
    let p = Project::new(spec);
    let children: Vec<_> = ["one", "two"]
        .iter()
        .map(|who| {
            p.cmd(&["build", "--arg", &format!("who={who}")])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn kiln")
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().expect("wait for kiln");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let [dir] = cache_dirs(&p).try_into().expect("one cache");
    let mut done: Vec<String> = read(&dir.join("done")).lines().map(str::to_owned).collect();
    done.sort();
    assert_eq!(done, ["one", "two"]);
    assert!(!dir.join("claim").exists());
}

#[test]
fn a_build_killed_while_using_a_cache_leaves_it_to_be_dropped_not_read() {
    if !require_sandbox() {
        return;
    }
    let spec = r#"
arg n default="1"
stage s {
    cache "/tmp/c"
    run "ls /tmp/c > $TMPDIR/seen; echo half > /tmp/c/written-$n; [ $n != 1 ] || sleep 60; cp $TMPDIR/seen $out/seen"
}
"#;
    let p = Project::new(spec);
    let mut child = p
        .cmd(&["build"])
        .stderr(Stdio::null())
        .spawn()
        .expect("kiln");
    let started = Instant::now();
    let written = loop {
        if let Some(file) = cache_dirs(&p)
            .iter()
            .map(|d| d.join("written-1"))
            .find(|f| f.exists())
        {
            break file;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the stage never ran"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    child.kill().expect("kill -9 kiln");
    child.wait().expect("reap kiln");
    assert!(written.exists());
    let out = p.kiln(&["build", "--json", "--arg", "n=2"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = crate::common::Report::parse(&out.stdout);
    assert_eq!(
        read(&report.output("s").join("seen")),
        "",
        "the killed build's file was read"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("killed while using it"), "{stderr}");
    assert!(!written.exists());
}

#[test]
fn sandbox_off_refuses_a_stage_with_a_cache_before_building_anything() {
    let p = Project::new(COUNTER);
    let out = p.kiln(&["build", "--sandbox", "off"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("kiln::build::cache_without_sandbox"),
        "{stderr}"
    );
    assert!(stderr.contains(r#"cache "/tmp/counter""#), "{stderr}");
    assert!(
        stderr.contains("help: Build with `--sandbox on`"),
        "{stderr}"
    );
    assert!(
        !Path::new(&p.store.join("v2/caches"))
            .read_dir()
            .is_ok_and(|mut d| d.next().is_some())
    );
}
