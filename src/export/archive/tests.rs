//! The archive writer against a store that changes under it.

use super::*;

/// An output that rewrites the blob it is being sent: the store
/// changing under an export.
struct Meddling<'a> {
    blob: &'a Path,
    out: Vec<u8>,
}

impl Write for Meddling<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.out.is_empty() {
            // Same bytes, same size: only the file's times tell (a
            // tick later: they may be as coarse as the kernel's clock).
            std::thread::sleep(std::time::Duration::from_millis(20));
            let bytes = std::fs::read(self.blob)?;
            std::fs::write(self.blob, bytes)?;
        }
        self.out.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_blob_written_to_while_it_is_copied_fails_the_copy() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("blob");
    std::fs::write(&path, b"layer bytes").expect("write");
    let blob = Blob::File {
        path: &path,
        size: 11,
        digest: Digest::of(b"layer bytes"),
    };
    let mut quiet = Vec::new();
    blob.open()
        .and_then(|b| b.copy_to(&mut quiet))
        .expect("copied");
    assert_eq!(quiet, b"layer bytes");

    let mut meddling = Meddling {
        blob: &path,
        out: Vec::new(),
    };
    let err = blob.open().and_then(|b| b.copy_to(&mut meddling));
    assert!(
        matches!(err, Err(ExportError::BlobChanged { .. })),
        "{err:?}"
    );
}

/// An output that cuts the blob it is being sent to half its size: a
/// file truncated in the store while an export copies it.
struct Truncating<'a> {
    blob: &'a Path,
    out: Vec<u8>,
}

impl Write for Truncating<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.out.is_empty() {
            let f = std::fs::OpenOptions::new().write(true).open(self.blob)?;
            f.set_len(f.metadata()?.len() / 2)?;
        }
        self.out.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A blob of `len` bytes at `dir/blob`, remembered as packed by this
/// process (as the layer cache does), and its digest.
fn fresh_blob(dir: &Path, len: usize) -> (PathBuf, Digest) {
    let path = dir.join("blob");
    let bytes: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
    std::fs::write(&path, &bytes).expect("write");
    let digest = Digest::of(&bytes);
    let meta = std::fs::metadata(&path).expect("stat");
    crate::hash::fresh::remember(&meta, digest);
    (path, digest)
}

/// Review 14, finding 1: a blob this process had packed was copied unread
/// and the count the copy returned dropped, so a blob cut short during the
/// copy gave a tar whose entry was shorter than its header said, exit 0.
#[test]
fn a_fresh_blob_cut_short_while_it_is_copied_fails_the_copy() {
    let dir = tempfile::tempdir().expect("temp dir");
    let len = 1 << 20;
    let (path, digest) = fresh_blob(dir.path(), len);
    let blob = Blob::File {
        path: &path,
        size: len as u64,
        digest,
    };
    let body = blob.open().expect("opened");
    assert!(matches!(&body, Body::File(f) if f.fresh), "a fresh blob");
    let mut out = Truncating {
        blob: &path,
        out: Vec::new(),
    };
    let err = body.copy_to(&mut out);
    assert!(
        matches!(err, Err(ExportError::BlobChanged { .. })),
        "{err:?} after {} of {len} bytes",
        out.out.len()
    );
}

/// The same for a fresh blob rewritten in place (same bytes, same size)
/// while it is copied: only its modification time tells.
#[test]
fn a_fresh_blob_written_to_while_it_is_copied_fails_the_copy() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (path, digest) = fresh_blob(dir.path(), 4096);
    let blob = Blob::File {
        path: &path,
        size: 4096,
        digest,
    };
    let body = blob.open().expect("opened");
    assert!(matches!(&body, Body::File(f) if f.fresh), "a fresh blob");
    let mut meddling = Meddling {
        blob: &path,
        out: Vec::new(),
    };
    let err = body.copy_to(&mut meddling);
    assert!(
        matches!(err, Err(ExportError::BlobChanged { .. })),
        "{err:?}"
    );
}

/// A 0-byte blob (no layer kiln packs is empty, but a base may hold one)
/// copies as nothing, fresh or not; a 0-byte file where the manifest says
/// more is damaged.
#[test]
fn a_zero_byte_blob_copies_and_an_emptied_one_is_damaged() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("empty");
    std::fs::write(&path, b"").expect("write");
    let empty = Digest::of(b"");
    let blob = Blob::File {
        path: &path,
        size: 0,
        digest: empty,
    };
    let mut out = Vec::new();
    blob.open()
        .and_then(|b| b.copy_to(&mut out))
        .expect("copied");
    assert!(out.is_empty());
    blob.open().and_then(Body::check).expect("checked");
    crate::hash::fresh::remember(&std::fs::metadata(&path).expect("stat"), empty);
    blob.open()
        .and_then(|b| b.copy_to(&mut out))
        .expect("copied fresh");
    let emptied = Blob::File {
        path: &path,
        size: 11,
        digest: Digest::of(b"layer bytes"),
    };
    let err = emptied.open().map(drop);
    assert!(
        matches!(err, Err(ExportError::DamagedBlob { size: 0, .. })),
        "{err:?}"
    );
}
