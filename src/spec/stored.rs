//! The stored form of a validated [`Spec`]: what the spec cache (`cache.rs`)
//! writes and reads back, with serde. Pure, no IO.
//!
//! A span is stored as its offset and length into the text. The text is
//! not stored: the cache key covers it, and the reader has it already, so
//! [`Spec::source`] is rebuilt from it; so is the context, which is keyed
//! too. The name index is left to build itself on the first lookup.
//! Reading checks what the model's constructors check (a name is a name, a
//! source path is normalized), so a stored value is one a load could make.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use miette::{NamedSource, SourceSpan};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{Arg, Base, Fetch, Image, Name, Spanned, Spec, SpecFile, SrcPath, Stage};

/// The parts of a [`Spec`] that are stored, borrowed to write them.
#[derive(Serialize)]
struct StoredRef<'a> {
    files: &'a [SpecFile],
    instance_dirs: &'a BTreeMap<String, PathBuf>,
    args: &'a [Arg],
    stages: &'a [Stage],
    bases: &'a [Base],
    fetches: &'a [Fetch],
    images: &'a [Image],
}

/// The parts of a [`Spec`] that are stored, owned as read back.
#[derive(Deserialize)]
struct Stored {
    files: Vec<SpecFile>,
    instance_dirs: BTreeMap<String, PathBuf>,
    args: Vec<Arg>,
    stages: Vec<Stage>,
    bases: Vec<Base>,
    fetches: Vec<Fetch>,
    images: Vec<Image>,
}

/// `spec` as JSON.
pub(super) fn to_json(spec: &Spec) -> Result<Vec<u8>, serde_json::Error> {
    // Destructured without `..`: a field added to `Spec` is a compile
    // error here until it is either stored or rebuilt in `from_json`.
    let Spec {
        source: _,
        context: _,
        files,
        instance_dirs,
        args,
        stages,
        bases,
        fetches,
        images,
        names: _,
    } = spec;
    serde_json::to_vec(&StoredRef {
        files,
        instance_dirs,
        args,
        stages,
        bases,
        fetches,
        images,
    })
}

/// The spec stored as `json`, of the text `source` holds in `context`:
/// what `to_json` was given, if `json` is what it wrote. A spec with
/// imports is returned with kiln.kdl's text alone in its source: the
/// caller reads the imported files again (`cache.rs`).
pub(super) fn from_json(
    json: &[u8],
    source: Arc<NamedSource<String>>,
    context: PathBuf,
) -> Result<Spec, serde_json::Error> {
    let Stored {
        files,
        instance_dirs,
        args,
        stages,
        bases,
        fetches,
        images,
    } = serde_json::from_slice(json)?;
    Ok(Spec {
        source,
        context,
        files,
        instance_dirs,
        args,
        stages,
        bases,
        fetches,
        images,
        names: Default::default(),
    })
}

/// A span as `[offset, length]`.
pub(super) mod span {
    use super::*;

    pub fn serialize<S: Serializer>(span: &SourceSpan, s: S) -> Result<S::Ok, S::Error> {
        (span.offset(), span.len()).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SourceSpan, D::Error> {
        let (offset, len) = <(usize, usize)>::deserialize(d)?;
        Ok((offset, len).into())
    }
}

/// An optional span as `null` or `[offset, length]`.
pub(super) mod opt_span {
    use super::*;

    pub fn serialize<S: Serializer>(span: &Option<SourceSpan>, s: S) -> Result<S::Ok, S::Error> {
        span.map(|span| (span.offset(), span.len())).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SourceSpan>, D::Error> {
        let span = <Option<(usize, usize)>>::deserialize(d)?;
        Ok(span.map(Into::into))
    }
}

/// A spanned value as `[value, offset, length]`.
impl<T: Serialize> Serialize for Spanned<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        (&self.value, self.span.offset(), self.span.len()).serialize(s)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Spanned<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (value, offset, len) = <(T, usize, usize)>::deserialize(d)?;
        Ok(Spanned {
            value,
            span: (offset, len).into(),
        })
    }
}

impl TryFrom<String> for Name {
    type Error = &'static str;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Name::new(&s).ok_or("not a name")
    }
}

impl From<Name> for String {
    fn from(name: Name) -> String {
        name.as_str().to_owned()
    }
}

impl TryFrom<String> for SrcPath {
    type Error = &'static str;
    /// Only a path `SrcPath::new` leaves as it is.
    fn try_from(s: String) -> Result<Self, Self::Error> {
        match SrcPath::new(&s) {
            Some(path) if path.as_str() == s => Ok(path),
            _ => Err("not a normalized source path"),
        }
    }
}

impl From<SrcPath> for String {
    fn from(path: SrcPath) -> String {
        path.as_str().to_owned()
    }
}
