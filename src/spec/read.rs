//! Reading kiln.kdl from disk, within limits: only a regular file, and at
//! most [`MAX_SPEC_BYTES`]. `-f /dev/zero` or a FIFO must not read forever
//! or wait for a writer, and a file that grows while kiln reads it must not
//! exhaust memory. Does IO: opens and reads the one file.

use std::io::Read;
use std::path::Path;

use fs_err::os::unix::fs::OpenOptionsExt;

use super::error::ProblemKind;

/// The largest spec kiln reads: far above any hand-written kiln.kdl, small
/// enough that parsing and reporting on it stay quick.
pub const MAX_SPEC_BYTES: u64 = 4 << 20;

/// Why a spec's text cannot be had.
#[derive(Debug)]
pub(crate) enum Unreadable {
    /// It cannot be read at all.
    Problem(ProblemKind),
    /// It is not UTF-8 from offset `at` (the byte there is `byte`); `text`
    /// is it with the bad bytes replaced, to show where.
    NotUtf8 { text: String, at: usize, byte: u8 },
}

impl From<ProblemKind> for Unreadable {
    fn from(kind: ProblemKind) -> Self {
        Unreadable::Problem(kind)
    }
}

/// The text of the spec at `path`, or why it cannot be had.
pub(crate) fn read_spec(path: &Path) -> Result<String, Unreadable> {
    let read_error = |source| ProblemKind::Read {
        path: path.to_path_buf(),
        source,
    };
    // O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused
    // below. Regular files ignore the flag.
    let file = fs_err::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(read_error)?;
    // The type of what was opened, not of what the path named a moment ago.
    let meta = file.metadata().map_err(read_error)?;
    if !meta.is_file() {
        return Err(ProblemKind::NotAFile {
            path: path.to_path_buf(),
            what: file_type_name(&meta.file_type()),
        }
        .into());
    }
    let too_big = || ProblemKind::TooBig {
        path: path.to_path_buf(),
        max: MAX_SPEC_BYTES,
    };
    if meta.len() > MAX_SPEC_BYTES {
        return Err(too_big().into());
    }
    // The size can change after the stat (or lie, on some filesystems):
    // never read more than one byte past the limit.
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(MAX_SPEC_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    if bytes.len() as u64 > MAX_SPEC_BYTES {
        return Err(too_big().into());
    }
    String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        Unreadable::NotUtf8 {
            // Valid up to `at`, so offsets up to the bad byte are the same
            // in this text, which miette can show.
            text: String::from_utf8_lossy(e.as_bytes()).into_owned(),
            at,
            byte: e.as_bytes()[at],
        }
    })
}

fn file_type_name(kind: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if kind.is_dir() {
        "a directory"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}
