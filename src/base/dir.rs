//! Opening files inside an image directory (an OCI layout, or a
//! docker-archive unpacked into a directory) without following any symlink.
//! Does IO.
//!
//! `spec` checked that the directory itself resolves inside the build
//! context; what it holds was not checked, and it is untrusted input: a
//! `index.json -> /etc/shadow` or `blobs -> /` would make kiln read, parse
//! and hash host files (and print their sha256 in a checksum error). So
//! every file is opened relative to a descriptor of the directory, one
//! component at a time, each with `O_NOFOLLOW` (parents also `O_DIRECTORY`),
//! and must be a regular file. A symlink anywhere on the way is refused,
//! even one that would stay inside the directory: image layouts written by
//! `skopeo`, `docker save` or `oras` hold none, and refusing them all is the
//! rule that needs no resolution logic to be sound.
//!
//! Why not `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)`: it says the
//! same in one call, but needs Linux 5.6 and is often denied by container
//! seccomp profiles (it takes a struct, so filters cannot inspect it); the
//! component walk is portable and just as strict, since names are already
//! normalised (no `..`, not absolute) by `archive::normalise`.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// An open image directory.
pub(crate) struct ImageDir {
    fd: OwnedFd,
}

/// Why a file of an image directory was not opened.
#[derive(Debug)]
pub(crate) enum Refused {
    /// Nothing at that path.
    Missing,
    /// The path goes through, or ends at, this symlink (a prefix of the name).
    Symlink(String),
    /// A parent on the way is not a directory.
    NotDirectory(String),
    /// The file is not a regular file (a fifo, a device, a directory).
    NotRegular,
    Io(io::Error),
}

impl ImageDir {
    pub(crate) fn open(path: &Path) -> io::Result<ImageDir> {
        let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC;
        let c = CString::new(path.as_os_str().as_bytes())
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        // SAFETY: `c` is a valid NUL-terminated string; the result is checked.
        let fd = unsafe { libc::open(c.as_ptr(), flags) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just opened and is owned by nobody else.
        Ok(ImageDir {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// The regular file at `rel` (a normalised relative path, `/`-separated).
    pub(crate) fn open_file(&self, rel: &str) -> Result<File, Refused> {
        let parts: Vec<&str> = rel.split('/').filter(|p| !p.is_empty()).collect();
        let Some((last, parents)) = parts.split_last() else {
            return Err(Refused::NotRegular);
        };
        let mut dir: Option<OwnedFd> = None;
        for (i, part) in parents.iter().enumerate() {
            let at = dir.as_ref().unwrap_or(&self.fd);
            let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;
            let next = openat(at, part, flags).map_err(|e| {
                classify(at, part, e, || parts[..=i].join("/"), Refused::NotDirectory)
            })?;
            dir = Some(next);
        }
        let at = dir.as_ref().unwrap_or(&self.fd);
        // O_NONBLOCK: opening a fifo for reading must not wait for a writer;
        // it is refused below. O_NOCTTY: a tty never becomes kiln's terminal.
        let flags =
            libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK | libc::O_NOCTTY;
        let fd = openat(at, last, flags)
            .map_err(|e| classify(at, last, e, || rel.to_owned(), |_| Refused::NotRegular))?;
        let file = File::from(fd);
        let meta = file.metadata().map_err(Refused::Io)?;
        if !meta.file_type().is_file() {
            return Err(Refused::NotRegular);
        }
        // A regular file ignores O_NONBLOCK; nothing to undo.
        Ok(file)
    }
}

fn openat(dir: &OwnedFd, name: &str, flags: libc::c_int) -> io::Result<OwnedFd> {
    let c = CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::NotFound))?;
    // SAFETY: `dir` is an open descriptor, `c` a valid NUL-terminated string.
    let fd = unsafe { libc::openat(dir.as_raw_fd(), c.as_ptr(), flags) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just opened and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Why `name` in `dir` did not open: `lstat` tells a symlink (`ELOOP` or
/// `ENOTDIR` under `O_NOFOLLOW`, depending on the flags) from the rest.
fn classify(
    dir: &OwnedFd,
    name: &str,
    err: io::Error,
    prefix: impl FnOnce() -> String,
    other: impl FnOnce(String) -> Refused,
) -> Refused {
    if err.kind() == io::ErrorKind::NotFound {
        return Refused::Missing;
    }
    let Ok(c) = CString::new(name) else {
        return Refused::Missing;
    };
    // SAFETY: an all-zero `stat` is a valid value for the kernel to fill.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid descriptor, string and out-pointer; the result is checked.
    let rc = unsafe {
        libc::fstatat(
            dir.as_raw_fd(),
            c.as_ptr(),
            &mut st,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if rc != 0 {
        return Refused::Io(err);
    }
    match st.st_mode & libc::S_IFMT {
        libc::S_IFLNK => Refused::Symlink(prefix()),
        libc::S_IFDIR => Refused::Io(err),
        _ if matches!(err.raw_os_error(), Some(libc::ENOTDIR | libc::ELOOP)) => other(prefix()),
        _ => Refused::Io(err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(dir: &ImageDir, rel: &str) -> String {
        format!("{:?}", dir.open_file(rel).map(|_| ()).unwrap_err())
    }

    #[test]
    fn only_regular_files_reached_without_a_symlink_open() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let root = tmp.path().join("layout");
        std::fs::create_dir_all(root.join("blobs/sha256")).expect("mkdir");
        std::fs::write(root.join("blobs/sha256/ab"), b"blob").expect("write");
        std::fs::write(tmp.path().join("secret"), b"host").expect("write");
        let link = |target: &Path, at: &str| std::os::unix::fs::symlink(target, root.join(at));
        link(&tmp.path().join("secret"), "index.json").expect("symlink");
        link(Path::new("blobs/sha256/ab"), "inside").expect("symlink");
        link(tmp.path(), "up").expect("symlink");
        std::fs::write(root.join("file"), b"").expect("write");
        let dir = ImageDir::open(&root).expect("open");

        let mut read = String::new();
        io::Read::read_to_string(
            &mut dir.open_file("blobs/sha256/ab").expect("a blob"),
            &mut read,
        )
        .expect("read");
        assert_eq!(read, "blob");
        assert_eq!(refused(&dir, "index.json"), r#"Symlink("index.json")"#);
        assert_eq!(refused(&dir, "inside"), r#"Symlink("inside")"#);
        assert_eq!(refused(&dir, "up/secret"), r#"Symlink("up")"#);
        assert_eq!(refused(&dir, "file/x"), r#"NotDirectory("file")"#);
        assert_eq!(refused(&dir, "blobs"), "NotRegular");
        assert_eq!(refused(&dir, "nothing"), "Missing");
        assert_eq!(refused(&dir, "blobs/nothing/x"), "Missing");
    }
}
