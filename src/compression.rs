//! How an image layer's tar is compressed: one type for the layers kiln
//! writes (export) and the layers it reads (base images, image roots).

use std::io::{self, Read};

use oci_spec::image::MediaType;

/// A layer blob's compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    Zstd,
    /// The default for layers kiln writes: Docker before 23.0 (Debian 12
    /// ships 20.10) cannot load zstd layers, and an archive that
    /// `docker load` refuses is no default.
    #[default]
    Gzip,
    None,
}

impl Compression {
    pub fn name(self) -> &'static str {
        match self {
            Compression::Zstd => "zstd",
            Compression::Gzip => "gzip",
            Compression::None => "none",
        }
    }

    /// Recognises gzip and zstd by their magic numbers; anything else is
    /// taken for a plain tar (the tar reader reports it if it is not one).
    /// docker-archive layers carry no media type, and a wrong one must not
    /// mislead the unpacker.
    pub fn sniff(head: &[u8]) -> Compression {
        match head {
            [0x1f, 0x8b, ..] => Compression::Gzip,
            [0x28, 0xb5, 0x2f, 0xfd, ..] => Compression::Zstd,
            _ => Compression::None,
        }
    }

    /// The OCI layer media type for a tar compressed this way.
    pub fn media_type(self) -> &'static str {
        match self {
            Compression::None => "application/vnd.oci.image.layer.v1.tar",
            Compression::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
            Compression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
        }
    }

    pub(crate) fn oci_media_type(self) -> MediaType {
        match self {
            Compression::Zstd => MediaType::ImageLayerZstd,
            Compression::Gzip => MediaType::ImageLayerGzip,
            Compression::None => MediaType::ImageLayer,
        }
    }

    /// A reader of the uncompressed stream.
    pub(crate) fn decoder<'a>(self, r: impl Read + 'a) -> io::Result<Box<dyn Read + 'a>> {
        Ok(match self {
            Compression::None => Box::new(r),
            Compression::Gzip => Box::new(flate2::read::GzDecoder::new(r)),
            Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(r)?),
        })
    }
}
