//! End-to-end: `kiln build` on real specs, each project in a temp dir with
//! its own store.

use crate::common::{Project, read};

/// gen → (upper, count) → report: a diamond-ish three-level graph.
const THREE_STAGES: &str = r#"
stage gen {
    src "words.txt"
    run "sort words.txt > $out/sorted.txt"
}
stage upper {
    use gen
    run "tr a-z A-Z < $gen/sorted.txt > $out/upper.txt"
}
stage notes {
    src "notes.txt"
    run "cp notes.txt $out/"
}
"#;

fn three_stage_project() -> Project {
    let p = Project::new(THREE_STAGES);
    p.write("words.txt", "pear\napple\n");
    p.write("notes.txt", "remember\n");
    p
}

#[test]
fn second_build_runs_nothing_and_a_changed_source_reruns_exactly_its_dependents() {
    let p = three_stage_project();
    let first = p.build(&[]);
    assert_eq!(first.with_status("built"), ["gen", "notes", "upper"]);
    assert_eq!(
        read(&first.output("upper").join("upper.txt")),
        "APPLE\nPEAR\n"
    );

    let second = p.kiln(&["build", "--json"]);
    assert!(second.status.success());
    let report = crate::common::Report::parse(&second.stdout);
    assert_eq!(report.with_status("cached"), ["gen", "notes", "upper"]);
    assert!(String::from_utf8_lossy(&second.stderr).contains("nothing to build"));

    p.write("words.txt", "pear\napple\nfig\n");
    let third = p.build(&[]);
    assert_eq!(third.with_status("built"), ["gen", "upper"]);
    assert_eq!(third.with_status("cached"), ["notes"]);
    assert_eq!(
        read(&third.output("upper").join("upper.txt")),
        "APPLE\nFIG\nPEAR\n"
    );
}

#[test]
fn a_byte_identical_rebuild_stops_there_early_cutoff() {
    let p = three_stage_project();
    p.build(&[]);
    // Same words, other order: `gen` must rerun, but its sorted output is the same.
    p.write("words.txt", "apple\npear\n");
    let report = p.build(&[]);
    assert_eq!(report.status("gen"), "built");
    assert_eq!(report.status("upper"), "cached");
}

#[test]
fn same_spec_in_two_directories_and_stores_gives_the_same_keys_and_outputs() {
    let (a, b) = (three_stage_project(), three_stage_project());
    let (ra, rb) = (a.build(&[]), b.build(&[]));
    assert_ne!(a.root(), b.root());
    for stage in ["gen", "upper", "notes"] {
        assert_eq!(ra.key(stage), rb.key(stage), "key of {stage}");
        assert_eq!(
            ra.output_hash(stage),
            rb.output_hash(stage),
            "output of {stage}"
        );
    }
}

#[test]
fn an_arg_changes_only_the_stages_that_mention_it() {
    let p = Project::new(
        r#"
        arg greeting default="hello"
        stage says { run "echo $greeting > $out/said" }
        stage quiet { run "echo shh > $out/said" }
        "#,
    );
    let first = p.build(&[]);
    let second = p.build(&["--arg", "greeting=bonjour"]);
    assert_eq!(second.with_status("built"), ["says"]);
    assert_ne!(first.key("says"), second.key("says"));
    assert_eq!(first.key("quiet"), second.key("quiet"));
    assert_eq!(read(&second.output("says").join("said")), "bonjour\n");
}

#[test]
fn independent_stages_run_at_the_same_time() {
    let script = |n: &str| {
        format!(
            "stage {n} {{ run \"date +%s.%N > $out/start; sleep 1; date +%s.%N > $out/end\" }}\n"
        )
    };
    let p = Project::new(&(script("one") + &script("two")));
    let report = p.build(&["--jobs", "2"]);
    let time = |stage: &str, file: &str| -> f64 {
        read(&report.output(stage).join(file))
            .trim()
            .parse()
            .expect("a timestamp")
    };
    let (s1, e1, s2, e2) = (
        time("one", "start"),
        time("one", "end"),
        time("two", "start"),
        time("two", "end"),
    );
    assert!(
        s1 < e2 && s2 < e1,
        "runs did not overlap: one {s1}..{e1}, two {s2}..{e2}"
    );
}

#[test]
fn the_run_environment_is_cleared_and_used_outputs_are_read_only() {
    let p = Project::new(
        r#"
        stage dep { run "echo data > $out/file" }
        stage probe {
            use dep
            env GREETING="hi"
            run "env | sort > $out/env; if echo x > $dep/file 2>/dev/null; then echo writable > $out/dep; else echo read-only > $out/dep; fi"
        }
        "#,
    );
    let report = p
        .cmd(&["build", "--json"])
        .env("LEAKED", "yes")
        .output()
        .expect("kiln");
    assert!(
        report.status.success(),
        "{}",
        String::from_utf8_lossy(&report.stderr)
    );
    let report = crate::common::Report::parse(&report.stdout);
    let env = read(&report.output("probe").join("env"));
    assert!(!env.contains("LEAKED"), "{env}");
    for expected in [
        "HOME=/homeless-shelter",
        "TZ=UTC",
        "LC_ALL=C",
        "SOURCE_DATE_EPOCH=0",
        "GREETING=hi",
    ] {
        assert!(
            env.lines().any(|l| l == expected),
            "missing {expected} in\n{env}"
        );
    }
    assert_eq!(read(&report.output("probe").join("dep")), "read-only\n");
}

#[test]
fn a_failing_stage_shows_its_log_and_run_line_and_independent_stages_finish() {
    let p = Project::new(
        r#"
        stage broken {
            run "echo compiling"
            run "echo 'error: no such file' >&2; exit 3"
        }
        stage after { use broken; run "true" }
        stage fine { run "echo ok > $out/ok" }
        "#,
    );
    // One job: the report's lines come in plan order.
    let out = p.kiln(&["build", "--jobs", "1"]);
    assert_eq!(out.status.code(), Some(1));
    crate::snapshot!(
        "build_failure_report",
        &p,
        String::from_utf8_lossy(&out.stderr)
    );

    let out = p.kiln(&["build", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let report = crate::common::Report::parse(&out.stdout);
    assert_eq!(report.status("broken"), "failed");
    assert_eq!(report.status("after"), "skipped");
    assert_eq!(report.status("fine"), "cached");
}

#[test]
fn explain_names_the_input_that_changed() {
    let p = three_stage_project();
    p.build(&[]);
    let explain = |stage: &str| {
        let out = p.kiln(&["explain", stage]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    crate::snapshot!("explain_cached", &p, explain("gen"));
    p.write("words.txt", "kiwi\n");
    // Only words.txt is named: notes.txt is not an input of `gen`.
    crate::snapshot!("explain_changed_file", &p, explain("gen"));
    crate::snapshot!("explain_unbuilt_dependency", &p, explain("upper"));
}

/// The summary a user reads (stderr) and the `--json` report (stdout), of
/// a first build, a no-op and a partial rebuild.
#[test]
fn the_build_summary_and_json_report_say_what_was_built_and_cached() {
    let p = three_stage_project();
    let human = |p: &Project| {
        let out = p.kiln(&["build", "--jobs", "1"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.stdout.is_empty(), "stdout carries data only");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    crate::snapshot!("build_summary_first", &p, human(&p));
    crate::snapshot!("build_summary_noop", &p, human(&p));
    p.write("words.txt", "fig\n");
    let out = p.kiln(&["build", "--json", "--jobs", "1"]);
    assert!(out.status.success());
    crate::snapshot_json!("build_json_partial", &p, out.stdout);
}

/// Every kind of edge: `use` of a stage and of a fetch, a stage `from` an
/// image, an image `from` a base and `from` an image, `copy` from stages.
const GRAPH: &str = r#"
base debian {
    archive "debian.tar" digest="sha256:0000000000000000000000000000000000000000000000000000000000000000"
}
fetch greeting url="https://example.com/greeting.txt" sha256="0000000000000000000000000000000000000000000000000000000000000000"
stage tool { run "echo tool > $out/tool" }
stage app {
    use tool
    use greeting
    run "cat $greeting/greeting.txt > $out/app"
}
image runtime {
    from debian
    copy app "app" to="/app/app"
}
stage smoke {
    from runtime
    run "test -f /app/app"
}
image final {
    from runtime
    copy smoke "." to="/smoke"
    copy tool "tool" to="/tool"
}
"#;

#[test]
fn graph_prints_every_node_and_edge_as_text_and_dot() {
    let p = Project::new(GRAPH);
    // `graph` reads the spec only: the base archive must exist, not be valid.
    p.write("debian.tar", "");
    let graph = |args: &[&str]| {
        let out = p.kiln(args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8")
    };
    crate::snapshot!("graph_text", &p, graph(&["graph"]));
    crate::snapshot!("graph_dot", &p, graph(&["graph", "--dot"]));
}

#[test]
fn fail_fast_starts_nothing_after_the_first_failure() {
    let spec = r#"
        stage broken { run "exit 1" }
        stage later { run "echo ran > $out/ran" }
    "#;
    // One job: `broken` (first in the file) runs before `later` could start.
    let p = Project::new(spec);
    let out = p.kiln(&["build", "--json", "--jobs", "1", "--fail-fast"]);
    assert_eq!(out.status.code(), Some(1));
    let report = crate::common::Report::parse(&out.stdout);
    assert_eq!(report.status("broken"), "failed");
    assert_eq!(report.status("later"), "skipped");

    let out = Project::new(spec).kiln(&["build", "--json", "--jobs", "1"]);
    assert_eq!(
        crate::common::Report::parse(&out.stdout).status("later"),
        "built"
    );
}
