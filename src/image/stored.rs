//! An image as the store keeps it: the entry a build commits for an image
//! or base node, and reads back for `export`, `inspect`, `why`, a stage's
//! root and a child image. Does IO.
//!
//! ```text
//! <entry>/image.json           the record: name, tags, digests, layers, settings
//! <entry>/files.json           every path and why it is there (why, child images)
//! <entry>/config.json          the OCI config, byte for byte
//! <entry>/manifest.json        the OCI manifest (absent for a base)
//! <entry>/blobs/sha256/<hex>   the layer blobs, hard links to the caches
//! ```
//!
//! Everything an export writes is in the entry, so exporting or pushing is
//! copying, and gc of the layer cache cannot take a blob from a stored image.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::error::ExportError;
use super::model::{Assembled, ClosureSummary, ConfigSummary, FileSet, Layer, Origin};
use crate::fsx::IoContext;
use crate::hash::Digest;
use crate::spec::Name;

/// Bumped when the record's meaning changes; an older record is not read.
const RECORD_VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
struct Record {
    version: u32,
    name: String,
    tags: Vec<String>,
    config_digest: Digest,
    manifest_digest: Digest,
    layers: Vec<Layer>,
    config: ConfigSummary,
    closure: ClosureSummary,
    epoch: u64,
}

#[derive(Serialize, Deserialize)]
struct Files {
    files: FileSet,
    origins: BTreeMap<String, Origin>,
}

/// How much of a stored image to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The record, config and manifest: enough to export, inspect, or run in.
    Record,
    /// Also every path and its origin: for `why` and for a child image.
    WithFiles,
}

/// Writes `img` into `dir` (a build's output directory).
pub fn write(img: &Assembled, dir: &Path) -> Result<(), ExportError> {
    let blobs = dir.join("blobs/sha256");
    fs_err::create_dir_all(&blobs).at(&blobs)?;
    for layer in &img.layers {
        let to = blobs.join(layer.digest.hex());
        if !to.exists() {
            link_or_copy(&layer.blob, &to)?;
            // Not packed just now (the layer cache's, a parent entry's):
            // hashed, as the entry's output hash is taken over what it
            // holds, and a blob damaged before this commit would pass
            // `kiln store verify` ever after.
            if layer.cached {
                check(&to, layer)?;
            }
        }
    }
    let record = Record {
        version: RECORD_VERSION,
        name: img.name.to_string(),
        tags: img.tags.clone(),
        config_digest: img.config_digest,
        manifest_digest: img.manifest_digest,
        layers: img.layers.clone(),
        config: img.config.clone(),
        closure: img.closure,
        epoch: img.epoch,
    };
    let files = Files {
        files: img.files.clone(),
        origins: img.origins.clone(),
    };
    write_file(&dir.join("image.json"), &to_json(&record))?;
    write_file(&dir.join("files.json"), &to_json(&files))?;
    write_file(&dir.join("config.json"), &img.config_json)?;
    if !img.manifest_json.is_empty() {
        write_file(&dir.join("manifest.json"), &img.manifest_json)?;
    }
    Ok(())
}

/// Reads the image stored in `dir`. A record kiln cannot read (damaged, or
/// written by another version) is an error, never a guess.
pub fn read(dir: &Path, part: Part) -> Result<Assembled, ExportError> {
    let record: Record = read_json(&dir.join("image.json"))?;
    if record.version != RECORD_VERSION {
        return Err(damaged(dir, "a record of another kiln version"));
    }
    let name = Name::new(&record.name).ok_or_else(|| damaged(dir, "a bad name"))?;
    let (files, origins) = match part {
        Part::Record => (FileSet::default(), BTreeMap::new()),
        Part::WithFiles => {
            let f: Files = read_json(&dir.join("files.json"))?;
            (f.files, f.origins)
        }
    };
    let read = |file: &str| fs_err::read(dir.join(file)).map_err(ExportError::io(dir.join(file)));
    let manifest_json = match dir.join("manifest.json").exists() {
        true => read("manifest.json")?,
        false => Vec::new(),
    };
    let layers = (record.layers.into_iter())
        .map(|layer| Layer {
            blob: dir.join("blobs/sha256").join(layer.digest.hex()),
            cached: true,
            ..layer
        })
        .collect();
    Ok(Assembled {
        name,
        tags: record.tags,
        layers,
        config: record.config,
        config_json: read("config.json")?,
        config_digest: record.config_digest,
        manifest_json,
        manifest_digest: record.manifest_digest,
        files,
        origins,
        closure: record.closure,
        epoch: record.epoch,
    })
}

/// An error naming where the blob came from if `blob` is not `layer`'s.
fn check(blob: &Path, layer: &Layer) -> Result<(), ExportError> {
    let file = fs_err::File::open(blob).map_err(ExportError::io(blob))?;
    let (actual, size) =
        crate::hash::sha256_of(std::io::BufReader::new(file)).map_err(ExportError::io(blob))?;
    if actual == layer.digest && size == layer.size {
        return Ok(());
    }
    Err(ExportError::DamagedBlob {
        path: layer.blob.clone(),
        expected: layer.digest,
        actual,
        size,
    })
}

fn link_or_copy(from: &Path, to: &Path) -> Result<(), ExportError> {
    if std::fs::hard_link(from, to).is_ok() {
        return Ok(());
    }
    fs_err::copy(from, to).at(to)?;
    Ok(())
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), ExportError> {
    fs_err::write(path, bytes).map_err(ExportError::io(path))
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, ExportError> {
    let bytes = fs_err::read(path).at(path)?;
    serde_json::from_slice(&bytes).map_err(|_| damaged(path, "JSON kiln cannot read"))
}

fn damaged(path: &Path, what: &str) -> ExportError {
    ExportError::Io {
        path: PathBuf::from(path),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, format!("holds {what}")),
    }
}

fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("kiln bug: an image record serializes")
}

/// `img` as the base unpacker takes it, to make a stage's root from it.
pub fn as_imported(img: &Assembled) -> Result<crate::base::ImportedImage, ExportError> {
    let config = oci_spec::image::ImageConfiguration::from_reader(img.config_json.as_slice())
        .map_err(|_| ExportError::Io {
            path: PathBuf::from("config.json"),
            source: std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "an unreadable OCI config",
            ),
        })?;
    let layers = (img.layers.iter())
        .map(|l| crate::base::Layer {
            digest: l.digest,
            diff_id: l.diff_id,
            media_type: l.compression.media_type().to_owned(),
            compression: l.compression,
            size: l.size,
            blob: l.blob.clone(),
        })
        .collect();
    Ok(crate::base::ImportedImage {
        config_digest: img.config_digest,
        config,
        config_json: img.config_json.clone(),
        layers,
    })
}
