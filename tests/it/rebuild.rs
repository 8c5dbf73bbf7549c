//! `kiln build --rebuild`: every stage built again with empty caches and
//! compared with what the store holds, as `nix-build --check`. An example
//! rebuilds to the same bytes; a stage that stamps the time or random
//! bytes into its output, or whose output depends on what its cache held,
//! is named with its first differing file (exit 1).

use std::path::Path;

use crate::common::skip::{require, require_sandbox};
use crate::common::{Project, read};

/// A project holding a copy of `examples/NAME`.
fn example(name: &str) -> Project {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name);
    let p = Project::new(&read(&dir.join("kiln.kdl")));
    for entry in std::fs::read_dir(&dir).expect("example dir") {
        let name = entry.expect("entry").file_name();
        let name = name.to_str().expect("utf-8 name");
        p.write(name, &read(&dir.join(name)));
    }
    p
}

#[test]
fn the_hello_c_example_rebuilds_to_the_same_bytes() {
    if !require("gcc") {
        return;
    }
    let p = example("hello-c");
    let out = p.kiln(&["build", "--rebuild"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    for stage in ["header", "hello"] {
        assert!(
            stderr.contains(&format!("same output: {stage} (")),
            "{stderr}"
        );
    }
    // Nothing kept, nothing committed: the store holds what it held.
    let tmp = std::fs::read_dir(p.store.join("v2/tmp"))
        .expect("tmp")
        .count();
    assert_eq!(tmp, 0);
}

#[test]
fn a_stage_stamping_the_time_or_random_bytes_fails_naming_itself_and_the_file() {
    let p = Project::new(
        r#"
stage steady {
    run "echo same > $out/file"
}
stage clock {
    use steady
    run "mkdir $out/log && cp $steady/file $out/ && date +%N > $out/log/built-at"
}
stage noise {
    run "echo header > $out/a && head -c 16 /dev/urandom > $out/b"
}
"#,
    );
    p.build(&[]);
    let out = p.kiln(&["build", "--rebuild", "--json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("Stage `clock` is not reproducible: `log/built-at` differs"),
        "{stderr}"
    );
    assert!(
        stderr.contains("Stage `noise` is not reproducible: `b` differs"),
        "{stderr}"
    );
    assert!(stderr.contains("same output: steady ("), "{stderr}");
    assert!(stderr.contains("kiln::build::not_reproducible"), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let clock = (report["rebuild"].as_array().expect("rebuild"))
        .iter()
        .find(|c| c["name"] == "clock")
        .expect("clock checked");
    assert_eq!(clock["status"], "differs");
    assert_eq!(clock["first_difference"], "log/built-at");
    // The rebuilt tree is kept where the message says, for diffing.
    let kept = Path::new(clock["rebuilt"]["path"].as_str().expect("kept path"));
    let kept_name = kept.file_name().expect("name").to_string_lossy();
    assert!(kept_name.ends_with("-clock.rebuilt"), "{}", kept.display());
    // (miette wraps the path: compare without the white space.)
    let unwrapped: String = stderr.split_whitespace().collect();
    assert!(unwrapped.contains(&*kept.to_string_lossy()), "{stderr}");
    let stored = Path::new(clock["output"].as_str().expect("stored path"));
    assert_eq!(read(&kept.join("file")), read(&stored.join("file")));
    assert_ne!(
        read(&kept.join("log/built-at")),
        read(&stored.join("log/built-at"))
    );
}

#[test]
fn a_cache_that_changes_the_output_is_caught_by_a_rebuild_with_empty_caches() {
    if !require_sandbox() {
        return;
    }
    // Not a content-addressed cache: what the stage makes depends on it.
    let p = Project::new(
        r#"
arg n default="1"
stage leaky {
    cache "/tmp/c"
    run "echo $n > /dev/null; if [ -e /tmp/c/seen ]; then echo warm > $out/state; else echo cold > $out/state; fi; touch /tmp/c/seen"
}
"#,
    );
    p.build(&[]);
    let warm = p.build(&["--arg", "n=2"]);
    assert_eq!(read(&warm.output("leaky").join("state")), "warm\n");
    let out = p.kiln(&["build", "--rebuild", "--arg", "n=2"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("Stage `leaky` is not reproducible: `state` differs"),
        "{stderr}"
    );
    // The store's cache was not used, nor touched.
    let caches = p.store.join("v2/caches");
    let [cache] = (std::fs::read_dir(caches).expect("caches"))
        .map(|e| e.expect("entry").path())
        .collect::<Vec<_>>()
        .try_into()
        .expect("one cache");
    let names: Vec<_> = (std::fs::read_dir(cache.join("data")).expect("data"))
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(names, ["seen"]);
}
