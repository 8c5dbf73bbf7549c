//! Build-time checks on an assembled image: an entrypoint (or, without one,
//! a cmd) must name a program the image holds, so kiln never ships a
//! container that cannot start. Pure: works on the image's planned file set.

use super::error::ExportError;
use super::model::{ConfigSummary, FileSet, Resolved};
use crate::spec::{Image, Spec};

/// What engines use when the image sets no `PATH`.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Refuses an image whose entrypoint (or cmd, without one) cannot start.
pub(crate) fn entrypoint(
    spec: &Spec,
    image: &Image,
    config: &ConfigSummary,
    files: &FileSet,
) -> Result<(), ExportError> {
    let (what, argv, node) = match (&config.entrypoint, &config.cmd) {
        (Some(argv), _) => ("entrypoint", argv, &image.entrypoint),
        (None, Some(argv)) => ("cmd", argv, &image.cmd),
        (None, None) => return Ok(()),
    };
    let fail = |reason: String, help: String| ExportError::Entrypoint {
        image: image.name.value.clone(),
        what,
        reason,
        src: spec
            .snippet(node.as_ref().map_or(image.name.span, |n| n.span))
            .0,
        span: spec
            .snippet(node.as_ref().map_or(image.name.span, |n| n.span))
            .1,
        help,
    };
    let Some(program) = argv.first() else {
        return Err(fail(
            "it is empty".into(),
            format!("Give `{what}` a program to run"),
        ));
    };
    let shell_script = match argv.as_slice() {
        [sh, c, script] if sh == "/bin/sh" && c == "-c" => Some(script),
        _ => None,
    };
    let has_shell = || {
        matches!(
            files.resolve("/bin/sh"),
            Resolved::File {
                executable: true,
                ..
            }
        )
    };
    if let Some(script) = shell_script.filter(|_| !has_shell()) {
        let exec: Vec<String> = script
            .split_whitespace()
            .map(|w| format!("\"{w}\""))
            .collect();
        return Err(fail(
            "the image has no `/bin/sh` to run its shell form".into(),
            format!(
                "Use the exec form, which needs no shell: `{what} {}`",
                exec.join(" ")
            ),
        ));
    }
    match find_program(files, program, config) {
        Resolved::File {
            executable: true, ..
        } => Ok(()),
        Resolved::File { path, .. } => Err(fail(
            format!("`{path}` is not executable"),
            "Give it an executable mode, e.g. `mode=0o755` on its `copy`".into(),
        )),
        Resolved::Dir(path) => Err(fail(
            format!("`{path}` is a directory"),
            format!("Point `{what}` at a program inside it"),
        )),
        Resolved::Missing => {
            let held: Vec<String> = files.executables().take(5).collect();
            let help = if held.is_empty() {
                "The image holds no executable: `copy` the program in".to_owned()
            } else {
                format!("Executables in the image: {}", held.join(", "))
            };
            Err(fail(format!("`{program}` is not in the image"), help))
        }
    }
}

/// An absolute program as is, a relative one against the workdir, a bare
/// name through the image's `PATH`.
fn find_program(files: &FileSet, program: &str, config: &ConfigSummary) -> Resolved {
    if program.starts_with('/') {
        return files.resolve(program);
    }
    if program.contains('/') {
        let workdir = config.workdir.as_deref().unwrap_or("/");
        return files.resolve(&format!("{workdir}/{program}"));
    }
    let path = config.env.get("PATH").map_or(DEFAULT_PATH, String::as_str);
    let mut found = Resolved::Missing;
    for dir in path.split(':').filter(|d| d.starts_with('/')) {
        match files.resolve(&format!("{dir}/{program}")) {
            hit @ Resolved::File {
                executable: true, ..
            } => return hit,
            other @ Resolved::File { .. } if found == Resolved::Missing => found = other,
            _ => {}
        }
    }
    found
}

#[cfg(test)]
mod tests;
