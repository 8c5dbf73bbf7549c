//! Whole-output snapshots of kiln's commands (insta), with what differs from
//! run to run or machine to machine replaced by placeholders:
//!
//! - the project's temp dir (which holds the project and its store): `[TMP]`;
//! - timings: `(0.03s)` → `([TIME])`, `"elapsed_ms": 12` → `"[MS]"`;
//! - hex hashes (keys, output hashes, file hashes, sha256 digests), which
//!   change with the platform and with any change to a key's encoding: each
//!   distinct hash becomes `[H1]`, `[H2]`… in order of first appearance, and
//!   its 32-digit store prefix `[H1:32]`, so a snapshot still says which
//!   hashes are equal and which changed.
//!
//! Bless after an intended change of output with
//! `INSTA_UPDATE=always cargo test --test it`, then read `git diff
//! tests/it/snapshots/`. Pure text processing, no IO.

use std::collections::HashMap;
use std::sync::LazyLock;

use regex::{Captures, Regex};

use super::Project;

static TIME: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\(\d+\.\d+s\)").expect("regex"));
static HASH: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\b([0-9a-f]{64}|[0-9a-f]{32})\b").expect("regex"));

/// `text` (an output of kiln in project `p`) with its unstable parts replaced.
pub fn redact(p: &Project, text: &str) -> String {
    let text = text.replace(&p.dir.path().display().to_string(), "[TMP]");
    let text = TIME.replace_all(&text, "([TIME])");
    let mut seen: HashMap<String, usize> = HashMap::new();
    HASH.replace_all(&text, |c: &Captures| {
        let hex = &c[1];
        let next = seen.len() + 1;
        let n = *seen.entry(hex[..32].to_owned()).or_insert(next);
        if hex.len() == 64 {
            format!("[H{n}]")
        } else {
            format!("[H{n}:32]")
        }
    })
    .into_owned()
}

/// A JSON report (stdout of a `--json` command), pretty-printed with sorted
/// keys, `elapsed_ms` replaced and then [`redact`]ed.
pub fn redact_json(p: &Project, stdout: &[u8]) -> String {
    let mut v: serde_json::Value = serde_json::from_slice(stdout)
        .unwrap_or_else(|e| panic!("bad JSON ({e}): {}", String::from_utf8_lossy(stdout)));
    if let Some(ms) = v.get_mut("elapsed_ms") {
        *ms = "[MS]".into();
    }
    redact(p, &serde_json::to_string_pretty(&v).expect("JSON"))
}

/// `insta::assert_snapshot!(NAME, redact(PROJECT, TEXT))`.
#[macro_export]
macro_rules! snapshot {
    ($name:expr, $p:expr, $text:expr) => {
        insta::assert_snapshot!($name, $crate::common::snapshot::redact($p, &$text))
    };
}

/// `insta::assert_snapshot!(NAME, redact_json(PROJECT, STDOUT))`.
#[macro_export]
macro_rules! snapshot_json {
    ($name:expr, $p:expr, $stdout:expr) => {
        insta::assert_snapshot!($name, $crate::common::snapshot::redact_json($p, &$stdout))
    };
}

#[test]
fn redact_numbers_hashes_and_keeps_their_prefixes_linked() {
    let p = Project::new("");
    let a = "a".repeat(64);
    let b = "b".repeat(64);
    let text = format!(
        "{}/store/{}-gen {a} was {b} ({} 1.25s) (0.03s)",
        p.dir.path().display(),
        &b[..32],
        "took"
    );
    assert_eq!(
        redact(&p, &text),
        "[TMP]/store/[H1:32]-gen [H2] was [H1] (took 1.25s) ([TIME])"
    );
}
