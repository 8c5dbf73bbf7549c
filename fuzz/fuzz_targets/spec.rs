//! Spec text → `kiln::spec::load_str`, and the diagnostic rendered: must
//! never panic, hang or exhaust memory, whatever the bytes. The corpus is
//! `fuzz/corpus/spec/`, which `tests/it/fuzz_spec.rs` replays on stable Rust.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use miette::{GraphicalReportHandler, GraphicalTheme};

/// A build context with a file and a directory, so `src` paths can resolve.
fn context() -> &'static PathBuf {
    static CONTEXT: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    &CONTEXT
        .get_or_init(|| {
            let dir = tempfile::tempdir().expect("temp dir");
            std::fs::write(dir.path().join("main.c"), "int main;").expect("file");
            std::fs::create_dir(dir.path().join("src")).expect("dir");
            let path = dir.path().canonicalize().expect("canonical");
            (dir, path)
        })
        .1
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data).into_owned();
    let overrides = [("version".to_owned(), "1.0".to_owned())];
    if let Err(error) = kiln::spec::load_str("kiln.kdl", text, context().clone(), &overrides) {
        let mut out = String::new();
        GraphicalReportHandler::new_themed(GraphicalTheme::unicode_nocolor())
            .render_report(&mut out, &error)
            .expect("rendering to a String");
        assert!(out.len() < 1 << 20, "{} bytes of diagnostics", out.len());
    }
});
