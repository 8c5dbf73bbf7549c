//! The lockfile's model and how it is written: one node per line, sorted
//! (bases, then fetches, then tools, each by name), every string quoted,
//! so the same lock is always the same bytes and a change is a one-line
//! diff. The text is KDL (a subset `parse.rs` reads back: no children, no
//! multi-line strings). Pure: no IO.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::hash::Digest;
use crate::spec::{Name, SrcPath};

/// The version line every lock starts with; a lock of another version is
/// refused rather than half-read.
pub const VERSION: u32 = 1;

/// What kiln.lock pins: for every base the digest it resolved to, every
/// fetch's sha256, every host tool's content hash.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Lockfile {
    pub bases: BTreeMap<Name, LockedBase>,
    /// Fetch name → the sha256 kiln.kdl pins it by.
    pub fetches: BTreeMap<Name, Digest>,
    /// Tool name (as `tools` lists it) → blake3 of the program PATH gave.
    pub tools: BTreeMap<String, blake3::Hash>,
}

/// A base's entry: where it comes from, and the digest that pins it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockedBase {
    pub source: LockedSource,
    /// A registry image's manifest or index digest; an archive's config digest.
    pub digest: Digest,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockedSource {
    /// `host/repository[:tag]`, as Docker's rules spell it in full: an entry
    /// pins a tag only while kiln.kdl names the same reference.
    Image(String),
    Archive(SrcPath),
}

const HEADER: &str = "\
// kiln.lock: what the inputs of kiln.kdl resolved to, written by `kiln lock`.
// Commit it. Builds take the digest of a base given by tag from here, and
// `kiln build --locked` fails when an input no longer matches.
";

impl Lockfile {
    /// The lock as text: header, version, then one sorted line per entry.
    pub fn render(&self) -> String {
        let Lockfile {
            bases,
            fetches,
            tools,
        } = self;
        let mut out = format!("{HEADER}version {VERSION}\n");
        // Writing to a String cannot fail.
        for (name, LockedBase { source, digest }) in bases {
            let (key, value) = match source {
                LockedSource::Image(reference) => ("image", reference.as_str()),
                LockedSource::Archive(path) => ("archive", path.as_str()),
            };
            let _ = writeln!(
                out,
                "base {} {key}={} digest={}",
                quote(name.as_str()),
                quote(value),
                quote(&digest.to_string())
            );
        }
        for (name, sha256) in fetches {
            let _ = writeln!(
                out,
                "fetch {} sha256={}",
                quote(name.as_str()),
                quote(&sha256.hex())
            );
        }
        for (name, hash) in tools {
            let _ = writeln!(out, "tool {} blake3={}", quote(name), quote(&hash.to_hex()));
        }
        out
    }
}

/// `s` as a KDL string: quotes, backslashes and control characters escaped
/// (an archive path may hold any of them).
pub(super) fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
