//! Everything that can go wrong importing or unpacking a base image.

use std::path::PathBuf;

use crate::hash::Digest;

/// Why a base image could not be imported or unpacked.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum BaseError {
    #[error("Base image I/O failed at `{path}`")]
    #[diagnostic(code(kiln::base::io))]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error(
        "Base image `{archive}` has config digest {actual}, but kiln.kdl pins {expected}",
        archive = archive.display()
    )]
    #[diagnostic(
        code(kiln::base::digest_mismatch),
        help(
            "If you trust this archive, pin what it holds: `digest=\"{actual}\"`; otherwise restore the archive that was pinned"
        )
    )]
    DigestMismatch {
        archive: PathBuf,
        expected: Digest,
        actual: Digest,
    },

    #[error(
        "Blob `{blob}` in `{archive}` is corrupt: its sha256 is {actual}, expected {expected}",
        archive = archive.display()
    )]
    #[diagnostic(
        code(kiln::base::blob_checksum),
        help("The archive was damaged or tampered with; export the image again")
    )]
    BlobChecksum {
        archive: PathBuf,
        blob: String,
        expected: Digest,
        actual: Digest,
    },

    #[error(
        "Blob `{blob}` in kiln's store is damaged: its sha256 is {actual}, not {expected}",
        blob = blob.display()
    )]
    #[diagnostic(
        code(kiln::base::damaged_blob),
        help(
            "Under `blobs/`: delete it (`rm -f` the path) and kiln imports it again from the archive. Inside a stored image: `kiln store verify` names the entry; delete it (`find ENTRY -type d -exec chmod u+w {{}} +`, then `rm -rf ENTRY`) and kiln makes it again"
        )
    )]
    Damaged {
        blob: PathBuf,
        expected: Digest,
        actual: Digest,
    },

    #[error(
        "Blob `{blob}` in `{archive}` has {actual} bytes, its descriptor says {expected}",
        archive = archive.display()
    )]
    #[diagnostic(code(kiln::base::blob_size))]
    BlobSize {
        archive: PathBuf,
        blob: String,
        expected: u64,
        actual: u64,
    },

    #[error(
        "Layer `{blob}` in `{archive}` unpacks to {actual}, but the image config lists diff_id {expected}",
        archive = archive.display()
    )]
    #[diagnostic(
        code(kiln::base::diff_id),
        help("The archive was damaged or tampered with; export the image again")
    )]
    DiffId {
        archive: PathBuf,
        blob: String,
        expected: String,
        actual: Digest,
    },

    #[error(
        "The image config in `{archive}` lists {diff_ids} diff_ids for {layers} layers",
        archive = archive.display()
    )]
    #[diagnostic(code(kiln::base::layer_count))]
    LayerCount {
        archive: PathBuf,
        diff_ids: usize,
        layers: usize,
    },

    #[error("Blob `{blob}` is missing from `{archive}`", archive = archive.display())]
    #[diagnostic(code(kiln::base::missing_blob))]
    MissingBlob { archive: PathBuf, blob: String },

    #[error(
        "`{file}` in image directory `{archive}` {why}",
        archive = archive.display()
    )]
    #[diagnostic(
        code(kiln::base::not_regular),
        help(
            "kiln reads an image directory as untrusted input: only regular files inside it, never through a symlink. Replace links by copies (`cp -rL`), or import the image as a tar archive"
        )
    )]
    NotRegular {
        archive: PathBuf,
        file: String,
        /// `is a symlink`, `is reached through the symlink `blobs``, …
        why: String,
    },

    #[error(
        "`{file}` in `{archive}` is over {limit} bytes, too large for image metadata",
        archive = archive.display()
    )]
    #[diagnostic(
        code(kiln::base::too_large),
        help("An index, manifest or config is a few kilobytes; the archive is damaged or hostile")
    )]
    TooLarge {
        archive: PathBuf,
        file: String,
        limit: u64,
    },

    #[error("`{archive}` is not an image archive", archive = archive.display())]
    #[diagnostic(
        code(kiln::base::unknown_format),
        help(
            "Expected a docker-archive tar (`docker save`), an oci-archive tar or an OCI layout directory (`skopeo copy … oci-archive:…`)"
        )
    )]
    UnknownFormat { archive: PathBuf },

    #[error("`{file}` in `{archive}` is not valid", archive = archive.display())]
    #[diagnostic(code(kiln::base::bad_json))]
    BadJson {
        archive: PathBuf,
        file: String,
        #[source]
        source: serde_json::Error,
    },

    #[error("`{archive}` holds no image for {platform}", archive = archive.display())]
    #[diagnostic(
        code(kiln::base::no_manifest),
        help("Export the image for this platform, e.g. `skopeo copy --override-arch …`")
    )]
    NoManifest { archive: PathBuf, platform: String },

    #[error(
        "`{archive}` holds {count} images for {platform}, none with config digest {expected}",
        archive = archive.display()
    )]
    #[diagnostic(
        code(kiln::base::ambiguous_manifest),
        help("Pin the config digest of the image you mean; its candidates are: {candidates}")
    )]
    AmbiguousManifest {
        archive: PathBuf,
        platform: String,
        count: usize,
        expected: Digest,
        candidates: String,
    },

    #[error("Unsafe entry `{entry}` in `{within}`: {reason}", entry = entry.display())]
    #[diagnostic(
        code(kiln::base::unsafe_entry),
        help(
            "kiln unpacks archives as untrusted input and refuses entries that could write outside the image"
        )
    )]
    UnsafeEntry {
        within: String,
        entry: PathBuf,
        reason: Unsafe,
    },

    #[error("Layer `{blob}` is not a readable tar", blob = blob.display())]
    #[diagnostic(code(kiln::base::bad_layer))]
    BadTar {
        blob: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl From<crate::fsx::PathError> for BaseError {
    fn from(e: crate::fsx::PathError) -> Self {
        BaseError::Io {
            path: e.path,
            source: e.source,
        }
    }
}

/// Why an archive entry is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unsafe {
    #[error("its path is absolute")]
    Absolute,
    #[error("its path contains `..`")]
    ParentDir,
    #[error("its path goes through the symlink `{}`", .0.display())]
    ThroughSymlink(PathBuf),
    #[error("its path goes through `{}`, which is not a directory", .0.display())]
    ThroughNonDirectory(PathBuf),
    #[error("it hard-links to `{}`, which is not a file inside the image", .0.display())]
    HardlinkTarget(PathBuf),
    #[error("it is a {0}, which an unprivileged build cannot create")]
    Special(&'static str),
    #[error("it is a whiteout of the directory itself or of its parent")]
    WhiteoutOfParent,
    #[error("it links outside the archive, to `{}`", .0.display())]
    LinkOutside(PathBuf),
    #[error("it goes past what the tree was said to hold ({0})")]
    OverBudget(String),
}

impl BaseError {
    /// A failure of the machine (a full disk, a permission), not of the
    /// archive or of kiln.kdl: exit code 1, not 2.
    pub fn is_environment(&self) -> bool {
        matches!(self, BaseError::Io { .. })
    }

    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> BaseError {
        let path = path.into();
        move |source| BaseError::Io { path, source }
    }
}
