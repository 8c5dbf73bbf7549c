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
use crate::image::LayerSettings;
use crate::spec::{
    Base, Command, Content, ContentAttrs, Fetch, Image, ImageRoot, Name, Spanned, Spec, Stage,
};
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

    /// A base is its pinned config digest: the archive it comes from is
    /// only where to find those bytes. Its line is an input because what
    /// `kiln why` says about the base's files names it.
    pub(super) fn of_base(spec: &Spec, base: &Base) -> Self {
        let Base {
            name,
            archive: _,
            digest,
        } = base;
        let mut m = BTreeMap::new();
        m.insert("kiln".to_owned(), KEY_FORMAT_VERSION.to_string());
        m.insert("name".to_owned(), name.value.to_string());
        m.insert("base digest".to_owned(), digest.value.to_string());
        m.insert("at".to_owned(), line_of(spec, name));
        Inputs(m)
    }

    /// Gathers an image's inputs: its definition (destructured, as for a
    /// stage), the content of what it `add`s, and how its layers are
    /// written. The parent and the copied stages enter at build time.
    pub(super) fn of_image(
        spec: &Spec,
        image: &Image,
        sources: &Tree,
        layers: &LayerSettings,
    ) -> Self {
        let Image {
            name,
            from,
            contents,
            entrypoint,
            cmd,
            env,
            workdir,
            user,
            expose,
            labels,
            volumes,
            stop_signal,
            tags,
            max_layers,
        } = image;
        let mut m = BTreeMap::new();
        let mut put = |label: String, value: String| m.insert(label, value);
        put("kiln".into(), KEY_FORMAT_VERSION.to_string());
        put("platform".into(), platform());
        put("name".into(), name.value.to_string());
        put("at".into(), line_of(spec, name));
        put("from".into(), image_root(&from.value));
        for (i, content) in contents.iter().enumerate() {
            put(format!("content {i}"), content_input(spec, content));
        }
        let command = |c: &Option<Spanned<Command>>| c.as_ref().map(|c| command_input(&c.value));
        if let Some(v) = command(entrypoint) {
            put("entrypoint".into(), v);
        }
        if let Some(v) = command(cmd) {
            put("cmd".into(), v);
        }
        for (k, v) in env {
            put(format!("env {k}"), v.clone());
        }
        for (k, v) in labels {
            put(format!("label {k}"), v.clone());
        }
        let text = |v: &Option<Spanned<String>>| v.as_ref().map(|v| v.value.clone());
        for (label, value) in [("workdir", text(workdir)), ("user", text(user))] {
            if let Some(value) = value {
                put(label.into(), value);
            }
        }
        if let Some(signal) = stop_signal {
            put("stop-signal".into(), signal.clone());
        }
        put("expose".into(), json(expose));
        put("volumes".into(), json(volumes));
        let tags: Vec<&str> = tags.iter().map(|t| t.value.as_str()).collect();
        put("tags".into(), json(&tags));
        put("layers max".into(), max_layers.to_string());
        let LayerSettings { compression, epoch } = layers;
        put("compression".into(), compression.name().to_owned());
        put("source-date-epoch".into(), epoch.to_string());
        for (path, entry) in sources.manifest() {
            m.insert(format!("file {path}"), entry);
        }
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

/// `kiln.kdl:12`: where a node is defined. What `kiln why` reports names
/// the lines of an image's nodes, so they are inputs of what it stores.
fn line_of(spec: &Spec, name: &Spanned<Name>) -> String {
    let text = spec.source.inner();
    let before = text.get(..name.span.offset()).unwrap_or_default();
    format!(
        "{}:{}",
        spec.source.name(),
        before.matches('\n').count() + 1
    )
}

fn image_root(root: &ImageRoot) -> String {
    match root {
        ImageRoot::Scratch => "scratch".to_owned(),
        ImageRoot::Base(name) => format!("base {name}"),
        ImageRoot::Image(name) => format!("image {name}"),
    }
}

fn content_input(spec: &Spec, content: &Content) -> String {
    let (what, attrs) = match content {
        Content::Copy { stage, path, attrs } => (
            format!("copy {} {}", stage.value, json(&path.value.as_str())),
            attrs,
        ),
        Content::Add { src, attrs } => (format!("add {}", json(&src.value.as_str())), attrs),
    };
    let ContentAttrs {
        to,
        mode,
        owner,
        closure,
        closure_extra,
        span,
    } = attrs;
    let text = spec.source.inner();
    let line = text
        .get(..span.offset())
        .unwrap_or_default()
        .matches('\n')
        .count()
        + 1;
    format!(
        "{what} to={} mode={} owner={}:{} closure={closure} closure-extra={} line={line}",
        json(&to.value),
        mode.map_or_else(|| "default".to_owned(), |m| format!("{m:o}")),
        owner.uid,
        owner.gid,
        json(closure_extra),
    )
}

fn command_input(command: &Command) -> String {
    match command {
        Command::Exec(argv) => format!("exec {}", json(argv)),
        Command::Shell(script) => format!("shell {}", json(script)),
    }
}

/// A value as JSON: quoted and escaped, so no two values read the same.
fn json<T: serde::Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string(value).expect("kiln bug: strings serialize")
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
