//! The exit-code contract of `build`, `export`, `inspect` and `why`: a
//! mistake in kiln.kdl exits 2, a failure of IO or of a stage exits 1,
//! success exits 0. Scripts and CI branch on these codes.

use crate::common::Project;
use crate::image_cli::words_project;

/// One invocation of each command on the image `words`.
const COMMANDS: [&[&str]; 4] = [
    &["build", "words"],
    &["export", "words", "-o", "words.tar"],
    &["inspect", "words"],
    &["why", "words", "/etc/notes"],
];

/// `kiln ARGS`'s exit code, with its stderr for a failure message.
fn code(p: &Project, args: &[&str]) -> (Option<i32>, String) {
    let out = p.kiln(args);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn success_exits_0() {
    let p = words_project();
    for args in COMMANDS {
        let (code, stderr) = code(&p, args);
        assert_eq!(code, Some(0), "kiln {args:?}:\n{stderr}");
    }
}

#[test]
fn a_syntax_error_in_the_spec_exits_2_from_every_command() {
    let p = words_project();
    p.write("kiln.kdl", "stage {\n");
    for args in COMMANDS.iter().chain([&["build"][..]].iter()) {
        let (code, stderr) = code(&p, args);
        assert_eq!(code, Some(2), "kiln {args:?}:\n{stderr}");
        assert!(stderr.contains("kiln::spec"), "kiln {args:?}:\n{stderr}");
    }
}

/// A mistake only the image assembly finds (a `cmd` that is not
/// executable) is still a mistake in kiln.kdl.
#[test]
fn an_image_that_cannot_start_exits_2_from_export_inspect_and_why() {
    let p = words_project();
    let spec = std::fs::read_to_string(p.root().join("kiln.kdl")).expect("spec");
    p.write("kiln.kdl", &spec.replace(" mode=0o755", ""));
    for args in &COMMANDS[1..] {
        let (code, stderr) = code(&p, args);
        assert_eq!(code, Some(2), "kiln {args:?}:\n{stderr}");
        assert!(stderr.contains("cannot start"), "kiln {args:?}:\n{stderr}");
    }
}

#[test]
fn an_image_that_cannot_start_exits_2_from_build() {
    let p = words_project();
    let spec = std::fs::read_to_string(p.root().join("kiln.kdl")).expect("spec");
    p.write("kiln.kdl", &spec.replace(" mode=0o755", ""));
    let (code, stderr) = code(&p, COMMANDS[0]);
    assert_eq!(code, Some(2), "{stderr}");
}

/// A store that cannot be opened (here: `KILN_HOME` is a file) is an
/// environment failure, not the spec's.
#[test]
fn a_store_that_cannot_be_opened_exits_1_from_every_command() {
    let p = words_project();
    p.write("not-a-dir", "");
    for args in COMMANDS {
        let out = p
            .cmd(args)
            .env("KILN_HOME", p.root().join("not-a-dir"))
            .output()
            .expect("run kiln");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "kiln {args:?}:\n{stderr}");
        assert!(stderr.contains("kiln::store"), "kiln {args:?}:\n{stderr}");
    }
}

#[test]
fn an_export_that_cannot_be_written_and_a_failing_stage_exit_1() {
    let p = words_project();
    let (code_, stderr) = code(&p, &["export", "words", "-o", "no/such/dir/words.tar"]);
    assert_eq!(code_, Some(1), "{stderr}");
    assert!(stderr.contains("kiln::io"), "{stderr}");

    p.write("words.txt", "");
    let spec = std::fs::read_to_string(p.root().join("kiln.kdl")).expect("spec");
    p.write(
        "kiln.kdl",
        &spec.replace("sort words.txt", "exit 7; sort words.txt"),
    );
    for args in COMMANDS {
        let (code, stderr) = code(&p, args);
        assert_eq!(code, Some(1), "kiln {args:?}:\n{stderr}");
        assert!(
            stderr.contains("Stage `gen` failed"),
            "kiln {args:?}:\n{stderr}"
        );
    }
}
