//! An image `from` an imported base: the base's layers become its bottom
//! layers verbatim (same blobs, same digests: an engine or registry that has
//! the base already has them), and the base's config is what the image's own
//! settings override. The build imports the base (a node of its own,
//! verified against its pinned digest); this lists what it holds.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use super::error::ExportError;
use super::model::{Assembled, ConfigSummary, Entry, FileSet, Kind, Layer, Origin, Role, Via};
use crate::base::{self, BaseError, ImportedImage, LayerPath};
use crate::fsx::IoContext;
use crate::hash::{Digest, Sha256Reader};
use crate::spec::{Base, Owner, Spec};

/// How many top-level paths `kiln inspect` names per layer.
const TOP: usize = 5;

/// An imported base as an image every later layer can stack on: its layers
/// listed (the base is untrusted input: every blob is hashed on the way),
/// each path's origin the `base` node that declared it.
pub fn from_base(
    spec: &Spec,
    decl: &Base,
    imported: &ImportedImage,
) -> Result<Assembled, ExportError> {
    from_base_listed(spec, decl, imported, Vec::new())
}

/// [`from_base`], with the listings of some layers made already (`None`,
/// or a short list, for those to list from their blob now): a pull lists
/// each layer as it downloads.
pub fn from_base_listed(
    spec: &Spec,
    decl: &Base,
    imported: &ImportedImage,
    mut listed: Vec<Option<Listing>>,
) -> Result<Assembled, ExportError> {
    let name = &decl.name.value;
    // The name as the base's own file writes it (`busybox`, not
    // `go.busybox`): what its key holds, so that its entry, and an image
    // keyed by that key (a registry base's), does not depend on the alias.
    let written = spec.local(decl.name.span, &decl.scope);
    let written = written.name(name.as_str());
    let origin = Origin {
        node: format!("base {written}"),
        ..Origin::of_node(spec, decl.name.span, Via::Base)
    };
    let mut files = FileSet::default();
    let mut origins = BTreeMap::new();
    let mut layers = Vec::new();
    // A layer kiln refuses to unpack is refused here too.
    let refused = |cause| ExportError::Base {
        base: name.clone(),
        src: spec.snippet(decl.pin_span()).0,
        span: spec.snippet(decl.pin_span()).1,
        cause: vec![cause],
    };
    listed.resize_with(imported.layers.len(), || None);
    for (layer, listing) in imported.layers.iter().zip(listed) {
        let listing = match listing {
            Some(listing) => listing,
            None => list(layer, &refused)?,
        };
        for gone in &listing.whiteouts {
            files.remove(gone);
        }
        for dir in &listing.opaque {
            files.remove_under(dir);
        }
        files.add(&listing.entries);
        for e in &listing.entries {
            origins.insert(e.path.clone(), origin.clone());
        }
        layers.push(reused(written, layer, &listing));
    }
    Ok(Assembled {
        name: name.clone(),
        tags: Vec::new(),
        layers,
        config: config_of(imported),
        config_json: imported.config_json.clone(),
        config_digest: imported.config_digest,
        // A parent is only ever stacked on, never written out itself.
        manifest_json: Vec::new(),
        manifest_digest: imported.config_digest,
        files,
        origins,
        closure: Default::default(),
        // A base is only ever stacked on: its children set their own times.
        epoch: 0,
    })
}

/// Makes a refused layer entry the error of the `base` node.
type Refused<'a> = dyn Fn(BaseError) -> ExportError + 'a;

/// What one layer tar holds, and what it deletes from the layers below.
pub struct Listing {
    entries: Vec<Entry>,
    whiteouts: Vec<String>,
    opaque: Vec<String>,
    uncompressed: u64,
    /// The sha256 of the tar: the layer's diff_id, if it is what it says.
    pub tar: Digest,
}

/// Lists `layer`, hashing its blob on the way: a blob damaged in the store
/// fails here, before anything is written, and is called damaged whatever
/// the tar reader made of it.
fn list(layer: &base::Layer, refused: &Refused) -> Result<Listing, ExportError> {
    let file = fs_err::File::open(&layer.blob).at(&layer.blob)?;
    let mut hashing = Sha256Reader::new(std::io::BufReader::new(file));
    let listing = list_from(layer, &mut hashing).map_err(|e| e.into_export(layer, refused));
    let (actual, size) = hashing.finish().at(&layer.blob)?;
    if actual != layer.digest {
        return Err(ExportError::DamagedBlob {
            path: layer.blob.clone(),
            expected: layer.digest,
            actual,
            size,
        });
    }
    listing
}

impl Listing {
    /// The paths of the files and directories it adds.
    pub fn paths(&self) -> Vec<&str> {
        self.entries.iter().map(|e| e.path.as_str()).collect()
    }
}

/// Why a layer could not be listed: an entry kiln refuses, or a stream
/// that is not a (compressed) tar.
pub enum ListError {
    Refused(BaseError),
    Io(std::io::Error),
}

impl ListError {
    fn into_export(self, layer: &base::Layer, refused: &Refused) -> ExportError {
        match self {
            ListError::Refused(e) => refused(e),
            ListError::Io(source) => ExportError::Io {
                path: layer.blob.clone(),
                source,
            },
        }
    }
}

/// Lists the layer whose (compressed) bytes `blob` yields, hashing its tar
/// on the way; `layer` says how it is compressed and names it in messages.
pub fn list_from(layer: &base::Layer, blob: &mut (impl Read + Send)) -> Result<Listing, ListError> {
    // Decompressing is about half of it: beside hashing and listing.
    (layer.compression).decode_beside(blob, |tar| list_tar(layer, tar))
}

fn list_tar(layer: &base::Layer, tar: &mut dyn Read) -> Result<Listing, ListError> {
    let io = ListError::Io;
    let mut counted = Sha256Reader::new(tar);
    let mut listing = Listing {
        entries: Vec::new(),
        whiteouts: Vec::new(),
        opaque: Vec::new(),
        uncompressed: 0,
        tar: Digest::of(b""),
    };
    for entry in tar::Archive::new(&mut counted).entries().map_err(io)? {
        let entry = entry.map_err(io)?;
        let raw = entry.path().map_err(io)?.to_string_lossy().into_owned();
        let path = raw
            .trim_start_matches("./")
            .trim_start_matches('/')
            .trim_end_matches('/')
            .to_owned();
        let refuse = |reason| BaseError::UnsafeEntry {
            within: format!("layer {}", layer.digest),
            entry: PathBuf::from(&path),
            reason,
        };
        match base::classify(Path::new(&path)).map_err(|r| ListError::Refused(refuse(r)))? {
            LayerPath::Root => continue,
            LayerPath::Opaque { dir } => {
                listing.opaque.push(lossy(dir));
                continue;
            }
            LayerPath::Whiteout { dir, name } => {
                listing.whiteouts.push(lossy(&dir.join(name)));
                continue;
            }
            LayerPath::Entry { .. } => {}
        }
        let header = entry.header();
        let kind = match header.entry_type() {
            tar::EntryType::Directory => Kind::Dir,
            tar::EntryType::Symlink => {
                let target = entry.link_name().map_err(io)?.unwrap_or_default();
                Kind::Symlink {
                    target: target.to_string_lossy().into_owned(),
                }
            }
            // Only what a path is matters here, not its bytes: the blob is reused.
            _ => Kind::File {
                disk: PathBuf::new(),
                size: header.size().unwrap_or(0),
                content: [0; 32],
            },
        };
        let mode = header.mode().unwrap_or(0o644);
        listing.entries.push(Entry {
            path,
            kind,
            mode,
            owner: Owner::default(),
        });
    }
    // Drain the tar's end padding so the count is the whole stream.
    let (tar, uncompressed) = counted.finish().map_err(io)?;
    listing.uncompressed = uncompressed;
    listing.tar = tar;
    Ok(listing)
}

fn reused(name: &str, layer: &base::Layer, listing: &Listing) -> Layer {
    let mut top: Vec<String> = (listing.entries.iter())
        .map(|e| format!("/{}", e.path.split('/').next().unwrap_or_default()))
        .collect();
    top.dedup();
    top.truncate(TOP);
    Layer {
        digest: layer.digest,
        size: layer.size,
        diff_id: layer.diff_id,
        uncompressed_size: listing.uncompressed,
        compression: layer.compression,
        blob: layer.blob.clone(),
        created_by: format!("kiln: from base {name}"),
        role: Role::Base,
        files: listing
            .entries
            .iter()
            .filter(|e| !matches!(e.kind, Kind::Dir))
            .count() as u64,
        top,
        cached: true,
    }
}

/// The base's runtime settings, in the form an image's own override.
fn config_of(image: &ImportedImage) -> ConfigSummary {
    let Some(c) = image.config.config() else {
        return ConfigSummary::default();
    };
    let env = (c.env().iter().flatten())
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    ConfigSummary {
        entrypoint: c.entrypoint().clone(),
        cmd: c.cmd().clone(),
        env,
        workdir: c.working_dir().clone(),
        user: c.user().clone(),
        exposed_ports: c.exposed_ports().iter().flatten().cloned().collect(),
        labels: c
            .labels()
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        volumes: c.volumes().iter().flatten().cloned().collect(),
        stop_signal: c.stop_signal().clone(),
    }
}

fn lossy(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::hash::Digest;
    use crate::spec::Name;

    /// A layer whose tar holds `names` (empty files), stored in `dir`.
    fn layer_of(dir: &Path, names: &[&str]) -> base::Layer {
        let mut b = tar::Builder::new(Vec::new());
        for name in names {
            let mut h = tar::Header::new_gnu();
            h.set_size(0);
            h.set_mode(0o644);
            b.append_data(&mut h, name, &[][..]).expect("in memory");
        }
        let tar = b.into_inner().expect("in memory");
        let blob = dir.join("blob");
        std::fs::write(&blob, &tar).expect("write blob");
        base::Layer {
            digest: Digest::of(&tar),
            diff_id: Digest::of(&tar),
            media_type: base::Compression::None.media_type().to_owned(),
            compression: base::Compression::None,
            size: tar.len() as u64,
            blob,
        }
    }

    #[test]
    fn a_base_layer_with_a_whiteout_of_its_parent_is_refused_as_unpacking_refuses_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        let refused = |cause| ExportError::Base {
            base: Name::new("b").expect("a name"),
            src: Arc::new(miette::NamedSource::new("kiln.kdl", String::new())),
            span: (0, 0).into(),
            cause: vec![cause],
        };
        let listed = list(&layer_of(dir.path(), &["d/.wh.x", "d/y"]), &refused);
        let listing = listed.map_err(|e| e.to_string()).expect("lists");
        assert_eq!(listing.whiteouts, ["d/x"]);
        let Err(ExportError::Base { cause, .. }) =
            list(&layer_of(dir.path(), &["d/.wh.."]), &refused)
        else {
            panic!("`d/.wh..` listed");
        };
        assert!(
            matches!(
                &cause[..],
                [BaseError::UnsafeEntry {
                    reason: base::Unsafe::WhiteoutOfParent,
                    ..
                }]
            ),
            "{cause:?}"
        );
    }
}
