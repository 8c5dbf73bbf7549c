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
