//! The root of a stage that runs `from` an image of the same spec.
//!
//! The image is assembled from its already-built stages exactly as
//! `kiln export` would (same layers, same layer cache), then handed to the
//! base-image unpacker as if it had been imported: one way to turn layers
//! into a root filesystem, whoever made them.

use std::collections::BTreeMap;

use crate::base::{self, ImportedImage};
use crate::eval::Inputs;
use crate::export::{self, Compression, ExportOptions, StageOutput};
use crate::spec::{Name, Spec};
use crate::store::Store;

#[derive(Debug, thiserror::Error)]
pub enum ImageRootError {
    #[error(transparent)]
    Export(#[from] export::ExportError),
    #[error("The config kiln wrote for image `{image}` does not parse")]
    Config {
        image: String,
        #[source]
        source: oci_spec::OciSpecError,
    },
}

/// `inputs` completed with the identity of the image the stage runs in: its
/// config digest covers every layer's content and the whole config.
pub fn keyed(inputs: &Inputs, name: &Name, image: &ImportedImage) -> Inputs {
    let mut inputs = inputs.clone();
    inputs.set_root(format!("image {name} {}", image.config_digest));
    inputs
}

/// Assembles image `name`; `outputs` holds the store path of every stage it
/// is made of. Uncompressed layers: they are only ever unpacked locally.
pub fn assemble(
    spec: &Spec,
    store: &Store,
    name: &Name,
    outputs: &BTreeMap<Name, StageOutput>,
) -> Result<ImportedImage, ImageRootError> {
    let image = spec
        .image(name.as_str())
        .expect("kiln bug: planned root image not in spec");
    let opts = ExportOptions {
        compression: Compression::None,
        source_date_epoch: 0,
        blobs_dir: store.blobs_dir(),
    };
    let img = export::assemble(spec, image, outputs, &store.layer_cache_dir(), &opts)?;
    let config = oci_spec::image::ImageConfiguration::from_reader(img.config_json.as_slice())
        .map_err(|source| ImageRootError::Config {
            image: name.to_string(),
            source,
        })?;
    let layers = (img.layers().iter())
        .map(|l| base::Layer {
            digest: l.digest,
            diff_id: l.diff_id,
            media_type: base::Compression::None.media_type().to_owned(),
            compression: base::Compression::None,
            size: l.size,
            blob: l.blob.clone(),
        })
        .collect();
    Ok(ImportedImage {
        config_digest: img.config_digest(),
        config,
        config_json: img.config_json.clone(),
        layers,
    })
}
