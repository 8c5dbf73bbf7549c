//! Tampering with the remote cache's entries in a test registry, and what
//! every attack on them checks: that the words kiln prints carry none of
//! the attacker's control characters.

use super::Project;
use super::registry::Registry;

/// Builds stage `s` of `p` and pushes it to the cache `repo` of
/// `registry`: the entry's tag, and its genuine manifest and record, to
/// tamper with.
pub fn pushed_entry(
    registry: &Registry,
    repo: &str,
    p: &Project,
) -> (String, serde_json::Value, serde_json::Value) {
    let cache = format!("{}/{repo}", registry.host());
    let key = p.build(&["--cache", &cache, "--cache-push"]).key("s");
    let (m, record) = genuine(registry, repo, &key);
    (format!("kiln2-{key}"), m, record)
}

/// The manifest and record of the genuine entry for `key`, to tamper with.
pub fn genuine(
    registry: &Registry,
    repo: &str,
    key: &str,
) -> (serde_json::Value, serde_json::Value) {
    let m = registry.get_manifest(repo, &format!("kiln2-{key}"));
    let config = m["config"]["digest"].as_str().expect("config digest");
    let record = serde_json::from_slice(&registry.get_blob(repo, config)).expect("record JSON");
    (m, record)
}

/// Re-uploads `record` and points `tag`'s manifest `m` at it.
pub fn replace_record(
    registry: &Registry,
    repo: &str,
    tag: &str,
    mut m: serde_json::Value,
    record: &serde_json::Value,
) {
    let bytes = serde_json::to_vec(record).expect("JSON");
    let digest = registry.put_blob(repo, &bytes);
    m["config"]["digest"] = serde_json::json!(digest.to_string());
    m["config"]["size"] = serde_json::json!(bytes.len());
    registry.put_manifest(repo, tag, &m);
}

/// Fails if `said` holds an escape, a bell or a carriage return.
pub fn assert_no_terminal_controls(said: &str) {
    for control in ['\u{1b}', '\u{7}', '\r'] {
        assert!(
            !said.contains(control),
            "{control:?} reached the terminal: {said:?}"
        );
    }
}
