//! cargo-fuzz target: bytes → an image archive → kiln's base import and
//! unpack (see `../harness/base_import.rs` for what the bytes mean). Must
//! never panic, hang or write outside its temporary directory; errors are
//! expected. Seeds: `corpus/base_import/`. Run from `fuzz/`, with a scratch
//! directory first so that libFuzzer's finds do not land in the committed
//! corpus:
//! `cargo +nightly fuzz run base_import /tmp/base_import corpus/base_import -- -max_total_time=60`
#![no_main]

#[path = "../harness/base_import.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dirs = harness::Dirs::new(tmp.path());
    let _ = harness::run(data, &dirs);
    harness::check(&dirs);
});
