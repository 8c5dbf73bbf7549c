//! Bad input through the real binary: exit code 2, a diagnostic, no panic.

use std::path::Path;

use crate::common::Project;

#[test]
fn every_fail_fixture_exits_2_with_a_diagnostic_and_never_panics() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/spec");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).expect("tests/spec") {
        let path = entry.expect("entry").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        if !(name.starts_with("fail-") && name.ends_with(".kdl")) {
            continue;
        }
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_kiln"))
            .args(["check", "-f", &name])
            .current_dir(&dir)
            .env("NO_COLOR", "1")
            .output()
            .expect("run kiln");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}: {stderr}");
        assert!(
            stderr.contains("kiln::"),
            "{name}: no diagnostic code in\n{stderr}"
        );
        assert!(!stderr.contains("panicked"), "{name} panicked:\n{stderr}");
        checked += 1;
    }
    assert!(checked >= 25, "only {checked} fail fixtures");
}

#[test]
fn unknown_build_target_is_a_usage_error_with_a_suggestion() {
    let p = Project::new("stage compile { run \"true\" }\n");
    let out = p.kiln(&["build", "compil"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("did you mean `compile`?"));
}

#[test]
fn missing_spec_file_is_exit_2_not_a_panic() {
    let p = Project::new("");
    let out = p.kiln(&["check", "-f", "nope.kdl"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
}

#[test]
fn host_tools_in_a_stage_that_runs_from_an_image_are_refused() {
    let p = Project::new(
        r#"
        stage s { run "echo x > $out/x" }
        image img { copy s "x" to="/x" }
        stage inner { from img; tools "gcc"; run "gcc --version" }
        "#,
    );
    let out = p.kiln(&["build", "inner"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("kiln::eval::tools_need_host"));
}
