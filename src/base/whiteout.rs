//! OCI whiteouts: what a layer tar entry's path means for the layers below
//! it (image-spec `layer.md`, "Whiteouts"). Read in one place for the two
//! readers of layers: `unpack` applies them to a directory, and
//! `image::parent` lists them. Pure, no IO.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::error::Unsafe;

const OPAQUE: &[u8] = b".wh..wh..opq";
const WHITEOUT: &[u8] = b".wh.";

/// What one path of a layer tar stands for.
#[derive(Debug, PartialEq, Eq)]
pub enum LayerPath<'a> {
    /// The layer's root directory itself (`./`): nothing to do.
    Root,
    /// `dir/name`, an entry the layer adds (or replaces).
    Entry { dir: &'a Path, name: &'a OsStr },
    /// `dir/.wh.name`: `dir/name` of the layers below is deleted.
    Whiteout { dir: &'a Path, name: &'a OsStr },
    /// `dir/.wh..wh..opq`: what the layers below hold under `dir` is hidden.
    Opaque { dir: &'a Path },
}

/// Classifies `rel`, a layer path already made relative by the caller.
/// `.wh..` and `.wh...` are refused: they would delete the directory they
/// are in, or its parent.
pub fn classify(rel: &Path) -> Result<LayerPath<'_>, Unsafe> {
    let (Some(dir), Some(name)) = (rel.parent(), rel.file_name()) else {
        return Ok(LayerPath::Root);
    };
    let bytes = name.as_bytes();
    if bytes == OPAQUE {
        return Ok(LayerPath::Opaque { dir });
    }
    match bytes.strip_prefix(WHITEOUT) {
        Some(b"" | b"." | b"..") => Err(Unsafe::WhiteoutOfParent),
        Some(hidden) => Ok(LayerPath::Whiteout {
            dir,
            name: OsStr::from_bytes(hidden),
        }),
        None => Ok(LayerPath::Entry { dir, name }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_layer_path_is_an_entry_a_whiteout_an_opaque_marker_or_refused() {
        let p = Path::new;
        let whiteout = |dir, name| LayerPath::Whiteout {
            dir: p(dir),
            name: OsStr::new(name),
        };
        assert_eq!(classify(p("")), Ok(LayerPath::Root));
        let entry = LayerPath::Entry {
            dir: p("etc"),
            name: OsStr::new("passwd"),
        };
        assert_eq!(classify(p("etc/passwd")), Ok(entry));
        assert_eq!(classify(p("etc/.wh.passwd")), Ok(whiteout("etc", "passwd")));
        assert_eq!(classify(p(".wh.etc")), Ok(whiteout("", "etc")));
        assert_eq!(
            classify(p("etc/.wh..profile")),
            Ok(whiteout("etc", ".profile"))
        );
        let opaque = LayerPath::Opaque {
            dir: p("var/cache"),
        };
        assert_eq!(classify(p("var/cache/.wh..wh..opq")), Ok(opaque));
        for refused in ["etc/.wh.", "etc/.wh..", "etc/.wh..."] {
            assert_eq!(
                classify(p(refused)),
                Err(Unsafe::WhiteoutOfParent),
                "{refused}"
            );
        }
    }
}
