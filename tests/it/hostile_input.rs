//! Hostile input through the real binary (issue 9, items 9 to 11): a spec
//! built to exhaust the stack, the terminal, the CPU or memory is refused
//! with a diagnostic (exit 2); stdout that goes away ends kiln quietly, and
//! stdout that cannot be written is an error, never a panic.

use std::io::Read;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::Project;

/// A hang guard, not a benchmark: debug builds on a busy CI machine.
const QUICK: Duration = Duration::from_secs(10);

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Exit 2, a diagnostic with `code`, no panic and no abort.
fn assert_diagnostic(out: &Output, code: &str) {
    let err = stderr(out);
    let head: String = err.chars().take(4000).collect();
    assert_eq!(
        out.status.code(),
        Some(2),
        "status {:?}:\n{head}",
        out.status
    );
    assert!(err.contains(code), "no `{code}` in:\n{head}");
    assert!(!err.contains("panicked"), "panicked:\n{head}");
}

fn timed_check(p: &Project) -> (Output, Duration) {
    let start = Instant::now();
    let out = p.kiln(&["check"]);
    (out, start.elapsed())
}

#[test]
fn deeply_nested_blocks_are_a_diagnostic_not_a_stack_overflow() {
    let n = 1400;
    let spec = format!("stage a {}{}\n", "{ x ".repeat(n), "}".repeat(n));
    let p = Project::new(&spec);
    let out = p.kiln(&["check"]);
    assert_diagnostic(&out, "kiln::spec::too_deep");
    let err = stderr(&out);
    assert!(err.contains("kiln.kdl:1:"), "no span into kiln.kdl:\n{err}");
}

#[test]
fn unclosed_nested_blocks_are_a_diagnostic_not_a_stack_overflow() {
    let p = Project::new(&"a{".repeat(50_000));
    assert_diagnostic(&p.kiln(&["check"]), "kiln::spec::too_deep");
}

#[test]
fn braces_inside_strings_and_comments_do_not_count_as_nesting() {
    let spec = format!(
        "// {open}\n/* {open} */\nstage a {{\n    run \"echo '{open}'\"\n    run #\"{open}\"#\n}}\n",
        open = "{".repeat(5000)
    );
    let p = Project::new(&spec);
    let out = p.kiln(&["check"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn a_long_block_comment_is_not_a_stack_overflow() {
    // The KDL parser recurses once per `*`, `/` or run of text in a comment.
    let banner = format!("/* {} */\nstage a {{ run \"true\" }}\n", "* ".repeat(5000));
    let p = Project::new(&banner);
    let out = p.kiln(&["check"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let huge = format!(
        "/* {} */\nstage a {{ run \"true\" }}\n",
        "* / ".repeat(100_000)
    );
    let p = Project::new(&huge);
    assert_diagnostic(&p.kiln(&["check"]), "kiln::spec::too_deep");
}

#[test]
fn nested_parentheses_print_a_bounded_diagnostic() {
    let spec = format!("{}{}\n", "(".repeat(10_000), ")".repeat(10_000));
    let p = Project::new(&spec);
    let (out, took) = timed_check(&p);
    assert_diagnostic(&out, "kiln::spec::syntax");
    assert!(
        out.stderr.len() < 64 * 1024,
        "{} bytes of diagnostics",
        out.stderr.len()
    );
    assert!(took < QUICK, "took {took:?}");
}

#[test]
fn a_long_line_of_unclosed_strings_is_reported_quickly() {
    // The KDL parser rescans the rest of the line after each unclosed `#"`.
    let spec = format!("stage a {{\n    run {}\n}}\n", "run #\" ".repeat(5_000));
    let p = Project::new(&spec);
    let (out, took) = timed_check(&p);
    assert_diagnostic(&out, "kiln::spec::syntax");
    assert!(stderr(&out).contains("Unclosed string"), "{}", stderr(&out));
    assert!(took < QUICK, "took {took:?}");
}

#[test]
fn twenty_thousand_bad_stages_are_reported_quickly_and_briefly() {
    let spec: String = (0..20_000)
        .map(|i| format!("stage s{i} {{ frob \"x\" }}\n"))
        .collect();
    let p = Project::new(&spec);
    let (out, took) = timed_check(&p);
    assert_diagnostic(&out, "kiln::spec::unknown_node");
    let err = stderr(&out);
    assert!(err.contains("has 40000 problems"), "{}", &err[..500]);
    assert!(
        err.contains("and 39980 more"),
        "no `and N more` in the tail"
    );
    assert!(took < QUICK, "took {took:?}");
}

#[test]
fn many_unknown_names_do_not_make_did_you_mean_quadratic() {
    let spec: String = (0..20_000)
        .map(|i| format!("stage s{i} {{ use missing{i}; run \"true\" }}\n"))
        .collect();
    let p = Project::new(&spec);
    let (out, took) = timed_check(&p);
    assert_diagnostic(&out, "kiln::spec::unknown_name");
    assert!(took < QUICK, "took {took:?}");
}

#[test]
fn many_cycles_through_a_long_chain_are_reported_quickly() {
    // s0 → s1 → … → s(n-1), and every stage also uses s0: n cycles, each as
    // long as the chain so far.
    let n = 5_000;
    let spec: String = (0..n)
        .map(|i| {
            let next = (i + 1) % n;
            format!("stage s{i} {{ use s{next} s0; run \"true\" }}\n")
        })
        .collect();
    let p = Project::new(&spec);
    let (out, took) = timed_check(&p);
    assert_diagnostic(&out, "kiln::spec::cycle");
    assert!(out.stderr.len() < 1 << 20, "{} bytes", out.stderr.len());
    assert!(took < QUICK, "took {took:?}");
}

#[test]
fn a_spec_that_is_a_character_device_is_refused() {
    let p = Project::new("");
    let (out, took) = {
        let start = Instant::now();
        (p.kiln(&["check", "-f", "/dev/zero"]), start.elapsed())
    };
    assert_diagnostic(&out, "kiln::spec::not_a_file");
    assert!(took < QUICK, "took {took:?}");
}

#[test]
fn a_spec_that_is_a_directory_is_refused() {
    let p = Project::new("");
    std::fs::create_dir(p.root().join("dir.kdl")).expect("mkdir");
    assert_diagnostic(
        &p.kiln(&["check", "-f", "dir.kdl"]),
        "kiln::spec::not_a_file",
    );
}

#[test]
fn a_spec_that_is_a_fifo_is_refused_without_waiting_for_a_writer() {
    let p = Project::new("");
    let fifo = p.root().join("fifo.kdl");
    let status = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
    assert!(status.success());
    let mut child = p
        .cmd(&["check", "-f", "fifo.kdl"])
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn kiln");
    let start = Instant::now();
    while child.try_wait().expect("wait").is_none() {
        if start.elapsed() > QUICK {
            child.kill().expect("kill");
            panic!("kiln waits for a writer on a FIFO");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_diagnostic(
        &child.wait_with_output().expect("output"),
        "kiln::spec::not_a_file",
    );
}

#[test]
fn a_spec_over_the_size_limit_is_refused() {
    let p = Project::new("");
    let line = "// padding padding padding padding padding padding padding padding\n";
    p.write("big.kdl", &line.repeat(5 * 1024 * 1024 / line.len() + 1));
    let out = p.kiln(&["check", "-f", "big.kdl"]);
    assert_diagnostic(&out, "kiln::spec::too_big");
}

/// `kiln ARGS` with its stdout a pipe whose reader is gone before kiln writes.
fn into_closed_pipe(p: &Project, args: &[&str]) -> Output {
    let mut child = p
        .cmd(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn kiln");
    drop(child.stdout.take());
    let mut err = Vec::new();
    let mut pipe = child.stderr.take().expect("stderr");
    pipe.read_to_end(&mut err).expect("read stderr");
    let status = child.wait().expect("wait");
    Output {
        status,
        stdout: Vec::new(),
        stderr: err,
    }
}

fn assert_quiet_exit(out: &Output) {
    let err = stderr(out);
    assert_ne!(out.status.code(), Some(101), "panicked:\n{err}");
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.is_empty(), "said something on stderr:\n{err}");
}

const TWO_STAGES: &str = r#"
stage lib { run "echo lib > $out/lib" }
stage app { use lib; run "cp $lib/lib $out/app" }
image img { copy app "app" to="/app" }
"#;

#[test]
fn graph_into_a_closed_pipe_ends_quietly() {
    let p = Project::new(TWO_STAGES);
    assert_quiet_exit(&into_closed_pipe(&p, &["graph"]));
    assert_quiet_exit(&into_closed_pipe(&p, &["graph", "--dot"]));
}

#[test]
fn inspect_into_a_closed_pipe_ends_quietly() {
    let p = Project::new(TWO_STAGES);
    let args = ["--sandbox", "off", "--quiet", "inspect", "img"];
    assert_quiet_exit(&into_closed_pipe(&p, &args));
}

#[test]
fn export_to_stdout_into_a_closed_pipe_ends_quietly() {
    let p = Project::new(TWO_STAGES);
    let args = ["--sandbox", "off", "--quiet", "export", "img", "-o", "-"];
    assert_quiet_exit(&into_closed_pipe(&p, &args));
}

#[test]
fn build_json_to_a_full_disk_is_an_error_naming_stdout() {
    let p = Project::new(TWO_STAGES);
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("/dev/full");
    let out = p
        .cmd(&["--sandbox", "off", "build", "--json"])
        .stdout(full)
        .output()
        .expect("run kiln");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.contains("stdout"), "does not name stdout:\n{err}");
    assert!(err.contains("No space left on device"), "no cause:\n{err}");
}

/// `kiln build 2>&1 | head -1`: progress and the summary go to stderr, which
/// closes under kiln; a failing stage's diagnostic too.
#[test]
fn a_build_whose_stderr_is_a_closed_pipe_does_not_panic() {
    for (spec, code) in [(TWO_STAGES, 0), ("stage bad { run \"exit 3\" }", 1)] {
        let p = Project::new(spec);
        let mut child = p
            .cmd(&["--sandbox", "off", "build"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn kiln");
        drop(child.stderr.take());
        let status = child.wait().expect("wait");
        assert_eq!(status.code(), Some(code), "{spec}");
    }
}

/// A chain of `use` as long as the size limit allows is planned without
/// recursion: 10,000 links overflowed the planner's stack (exit 134).
#[test]
fn a_long_use_chain_is_planned_without_overflowing_the_stack() {
    let mut spec = String::from("stage s0 { run \"true\" }\n");
    for i in 1..10_000 {
        spec.push_str(&format!(
            "stage s{i} {{ use \"s{}\"; run \"true\" }}\n",
            i - 1
        ));
    }
    let p = Project::new(&spec);
    let started = std::time::Instant::now();
    let out = p.kiln(&["explain", "s9999"]);
    assert_ne!(out.status.code(), None, "killed by a signal: {out:?}");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(started.elapsed() < std::time::Duration::from_secs(60));
}
