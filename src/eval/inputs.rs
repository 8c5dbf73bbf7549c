//! The canonical encoding of what goes into a key.
//!
//! Inputs are a sorted map of labelled strings (`run 0` → script text,
//! `file src/main.c` → `file <blake3>`, …). Keeping them labelled, rather than
//! folding them into one hash early, is what lets `kiln explain` say which
//! input changed. The key is blake3 over a versioned, length-prefixed
//! encoding of that map: a map is sorted by construction, and the length
//! prefixes make `("ab","c")` and `("a","bc")` encode differently.

use std::collections::BTreeMap;

use crate::hash::{Key, OutputHash};
use crate::spec::{Fetch, Name, Stage};
use crate::tree::Tree;

/// Bump whenever the meaning of a key's inputs changes: every key changes.
pub const KEY_FORMAT_VERSION: u64 = 1;

/// Everything but dependency outputs that goes into a key, label → value.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Inputs(BTreeMap<String, String>);

impl Inputs {
    /// Gathers a stage's inputs. Destructures `Stage` so that a field added to
    /// it later cannot be forgotten here without a compile error.
    pub(super) fn of_stage(
        stage: &Stage,
        root: &str,
        sources: &Tree,
        tools: &BTreeMap<String, String>,
    ) -> Self {
        let Stage {
            name,
            from: _,
            srcs,
            uses,
            tools: _,
            env,
            runs,
            run_args,
            // How long a build may take cannot change what it produces.
            timeout: _,
        } = stage;
        let mut m = BTreeMap::new();
        m.insert("kiln".to_owned(), KEY_FORMAT_VERSION.to_string());
        m.insert("platform".to_owned(), platform());
        m.insert("name".to_owned(), name.value.to_string());
        m.insert("from".to_owned(), root.to_owned());
        for (i, src) in srcs.iter().enumerate() {
            m.insert(format!("src {i}"), src.value.to_string());
        }
        for (i, dep) in uses.iter().enumerate() {
            m.insert(format!("use {i}"), dep.value.to_string());
        }
        for (tool, hash) in tools {
            m.insert(format!("tool {tool}"), hash.clone());
        }
        for (k, v) in env {
            m.insert(format!("env {k}"), v.clone());
        }
        for (i, run) in runs.iter().enumerate() {
            m.insert(format!("run {i}"), run.value.clone());
        }
        for (k, v) in run_args {
            m.insert(format!("arg {k}"), v.clone());
        }
        for (path, entry) in sources.manifest() {
            m.insert(format!("file {path}"), entry);
        }
        Inputs(m)
    }

    /// A fetch is fixed-output: its key is its name, the hash it must
    /// produce, and the file name it is stored under (`$NAME/<file>`). The
    /// rest of the URL is not an input: a mirror of the same bytes is the
    /// same fetch, as in Nix.
    pub(super) fn of_fetch(fetch: &Fetch) -> Self {
        let Fetch { name, url, sha256 } = fetch;
        let mut m = BTreeMap::new();
        m.insert("kiln".to_owned(), KEY_FORMAT_VERSION.to_string());
        m.insert("name".to_owned(), name.value.to_string());
        m.insert("fetch sha256".to_owned(), sha256.value.to_string());
        m.insert("fetch file".to_owned(), fetch_file_name(url).to_owned());
        Inputs(m)
    }

    /// Replaces one input: for what only the build step can know (the
    /// digest of an image a stage runs from, assembled from built stages).
    pub fn set(&mut self, label: &str, value: String) {
        self.0.insert(label.to_owned(), value);
    }

    pub fn as_map(&self) -> &BTreeMap<String, String> {
        &self.0
    }

    /// The final key and the full manifest: these inputs plus one
    /// `output NAME` entry per used stage, holding that stage's output hash.
    pub fn key(&self, deps: &[(&Name, OutputHash)]) -> (Key, BTreeMap<String, String>) {
        let mut manifest = self.0.clone();
        for (name, output) in deps {
            manifest.insert(format!("output {name}"), output.to_string());
        }
        (key_of(&manifest), manifest)
    }
}

/// The name a fetched file is stored under: the URL's last path segment.
pub fn fetch_file_name(url: &str) -> &str {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    path.rsplit('/')
        .find(|s| !s.is_empty())
        .unwrap_or("download")
}

/// blake3 over the versioned, length-prefixed encoding of `manifest`.
pub fn key_of(manifest: &BTreeMap<String, String>) -> Key {
    let mut h = blake3::Hasher::new();
    h.update(b"kiln-key\0");
    h.update(&KEY_FORMAT_VERSION.to_le_bytes());
    h.update(&(manifest.len() as u64).to_le_bytes());
    for (label, value) in manifest {
        for part in [label, value] {
            h.update(&(part.len() as u64).to_le_bytes());
            h.update(part.as_bytes());
        }
    }
    Key::from(h.finalize())
}

/// The platform stage outputs are built for: `x86_64-linux`.
fn platform() -> String {
    format!("{}-{}", std::env::consts::ARCH, std::env::consts::OS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_fetch_is_stored_under_its_urls_last_segment() {
        assert_eq!(
            fetch_file_name("https://x.org/a/zlib-1.3.tar.gz"),
            "zlib-1.3.tar.gz"
        );
        assert_eq!(fetch_file_name("https://x.org/a/b.txt?sig=1#top"), "b.txt");
        assert_eq!(fetch_file_name("https://x.org/dir/"), "dir");
        assert_eq!(fetch_file_name("https://"), "https:");
    }

    #[test]
    fn length_prefixes_keep_label_and_value_apart() {
        assert_ne!(
            key_of(&manifest(&[("ab", "c")])),
            key_of(&manifest(&[("a", "bc")]))
        );
    }

    #[test]
    fn key_changes_with_any_input_and_not_with_insertion_order() {
        let a = manifest(&[("run 0", "make"), ("env CC", "gcc")]);
        let mut b = BTreeMap::new();
        b.insert("env CC".to_owned(), "gcc".to_owned());
        b.insert("run 0".to_owned(), "make".to_owned());
        assert_eq!(key_of(&a), key_of(&b));
        b.insert("run 0".to_owned(), "make all".to_owned());
        assert_ne!(key_of(&a), key_of(&b));
    }

    #[test]
    fn dependency_outputs_enter_the_key() {
        let inputs = Inputs(manifest(&[("run 0", "cat $dep/x")]));
        let dep = Name::new("dep").expect("valid name");
        let one = OutputHash::from(blake3::hash(b"one"));
        let two = OutputHash::from(blake3::hash(b"two"));
        let (k1, m1) = inputs.key(&[(&dep, one)]);
        let (k2, _) = inputs.key(&[(&dep, two)]);
        assert_ne!(k1, k2);
        assert_eq!(m1.get("output dep"), Some(&one.to_string()));
    }
}
