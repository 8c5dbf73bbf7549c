//! Path lookups confined to a root filesystem, the way the kernel resolves
//! paths after `chroot(root)`: `..` stops at the root and an absolute symlink
//! target starts again at the root, so nothing outside it is ever read.
//! Every symlink met on the way is reported, since the image needs it too.

use std::io::ErrorKind;
use std::path::{Component, Path, PathBuf};

use super::ClosureError;

/// The kernel's limit (MAXSYMLINKS) before ELOOP.
const MAX_LINKS: usize = 40;

/// A root filesystem: the host `/` or an unpacked image.
#[derive(Debug)]
pub(super) struct RootFs {
    root: PathBuf,
}

/// A symlink met on the way to a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Link {
    /// Its path in the image, whose parents are real directories.
    pub image: String,
    /// Where it is on disk now.
    pub disk: PathBuf,
    /// Its text, as is.
    pub target: String,
}

/// What a lookup led to: the real path and every symlink on the way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Found {
    pub image: String,
    pub disk: PathBuf,
    pub links: Vec<Link>,
    /// Whether it ended inside the root (where `$ORIGIN` lookups are
    /// confined too) rather than beside a program.
    pub in_root: bool,
}

impl RootFs {
    pub(super) fn new(root: &Path) -> Self {
        RootFs {
            root: root.to_path_buf(),
        }
    }

    /// Where the absolute in-root `path` is on disk, without resolving it.
    pub(super) fn disk_path(&self, path: &str) -> PathBuf {
        self.root.join(path.trim_start_matches('/'))
    }

    /// Resolves the absolute `path` inside the root; `None` when nothing is
    /// there (or a parent is not a directory), as ENOENT/ENOTDIR would say.
    pub(super) fn lookup(&self, path: &str) -> Result<Option<Found>, ClosureError> {
        self.lookup_with(path, Vec::new())
    }

    fn lookup_with(&self, path: &str, mut links: Vec<Link>) -> Result<Option<Found>, ClosureError> {
        // A stack of components still to walk, the next one on top.
        let mut pending: Vec<String> = components(path).rev().collect();
        let mut real: Vec<String> = Vec::new();
        while let Some(part) = pending.pop() {
            if part == ".." {
                real.pop();
                continue;
            }
            real.push(part);
            let image = image_path(&real);
            let disk = self.disk_path(&image);
            let Some(meta) = symlink_metadata(&disk)? else {
                return Ok(None);
            };
            if !meta.file_type().is_symlink() {
                continue;
            }
            if links.len() == MAX_LINKS {
                return Err(ClosureError::SymlinkLoop {
                    root: self.root.clone(),
                    path: path.to_owned(),
                });
            }
            let target = read_link(&disk)?;
            real.pop();
            if target.starts_with('/') {
                real.clear();
            }
            pending.extend(components(&target).rev());
            links.push(Link {
                image,
                disk,
                target,
            });
        }
        let image = image_path(&real);
        let disk = self.disk_path(&image);
        Ok(Some(Found {
            image,
            disk,
            links,
            in_root: true,
        }))
    }

    /// Resolves `rel` against a directory of a copied program: `image_dir`
    /// where it lands, `disk_dir` where its files are now (what `$ORIGIN`
    /// means for a program not yet in any root). The two sides move in step,
    /// lexically: relative symlinks are followed on both, and an absolute
    /// one continues inside the root, where it will point in the image.
    pub(super) fn lookup_beside(
        &self,
        image_dir: &str,
        disk_dir: &Path,
        rel: &str,
    ) -> Result<Option<Found>, ClosureError> {
        let rel = rel.trim_start_matches('/');
        let mut image = normalize_image(&format!("{image_dir}/{rel}"));
        let mut disk = normalize_disk(&disk_dir.join(rel));
        let mut links = Vec::new();
        loop {
            let Some(meta) = symlink_metadata(&disk)? else {
                return Ok(None);
            };
            if !meta.file_type().is_symlink() {
                return Ok(Some(Found {
                    image,
                    disk,
                    links,
                    in_root: false,
                }));
            }
            if links.len() == MAX_LINKS {
                return Err(ClosureError::SymlinkLoop {
                    root: disk_dir.to_path_buf(),
                    path: rel.to_owned(),
                });
            }
            let target = read_link(&disk)?;
            let next_image = normalize_image(&format!("{}/../{target}", image));
            let next_disk = normalize_disk(&disk.join("..").join(&target));
            links.push(Link {
                image,
                disk,
                target: target.clone(),
            });
            if target.starts_with('/') {
                return self.lookup_with(&target, links);
            }
            (image, disk) = (next_image, next_disk);
        }
    }
}

/// The non-empty, non-`.` components of a `/`-separated path.
fn components(path: &str) -> impl DoubleEndedIterator<Item = String> + '_ {
    path.split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .map(str::to_owned)
}

fn image_path(parts: &[String]) -> String {
    format!("/{}", parts.join("/"))
}

/// `a/b/../c` → `/a/c`, without touching the disk; `..` stops at `/`.
pub(super) fn normalize_image(path: &str) -> String {
    let mut parts: Vec<String> = Vec::new();
    for part in components(path) {
        if part == ".." {
            parts.pop();
        } else {
            parts.push(part);
        }
    }
    image_path(&parts)
}

fn normalize_disk(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// `None` for ENOENT and ENOTDIR: a path that is not there, for ld.so.
fn symlink_metadata(path: &Path) -> Result<Option<std::fs::Metadata>, ClosureError> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) => Ok(Some(meta)),
        Err(e) if e.kind() == ErrorKind::NotFound || e.raw_os_error() == Some(libc::ENOTDIR) => {
            Ok(None)
        }
        Err(e) => Err(ClosureError::io(path)(e)),
    }
}

fn read_link(path: &Path) -> Result<String, ClosureError> {
    let target = std::fs::read_link(path).map_err(ClosureError::io(path))?;
    target
        .into_os_string()
        .into_string()
        .map_err(|_| ClosureError::NonUtf8 {
            path: path.to_path_buf(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn root_with(links: &[(&str, &str)], files: &[&str]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        for file in files {
            let path = dir.path().join(file);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            std::fs::write(&path, "x").expect("write");
        }
        for (link, target) in links {
            let path = dir.path().join(link);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            symlink(target, &path).expect("symlink");
        }
        dir
    }

    #[test]
    fn absolute_symlinks_restart_at_the_root_not_the_host() {
        let dir = root_with(
            &[
                ("lib", "usr/lib"),
                ("usr/lib/libz.so.1", "/etc/libz.so.1.2"),
            ],
            &["etc/libz.so.1.2"],
        );
        let found = RootFs::new(dir.path())
            .lookup("/lib/libz.so.1")
            .expect("lookup")
            .expect("found");
        assert_eq!(found.image, "/etc/libz.so.1.2");
        assert_eq!(found.disk, dir.path().join("etc/libz.so.1.2"));
        let links: Vec<_> = found
            .links
            .iter()
            .map(|l| (l.image.as_str(), l.target.as_str()))
            .collect();
        assert_eq!(
            links,
            [
                ("/lib", "usr/lib"),
                ("/usr/lib/libz.so.1", "/etc/libz.so.1.2")
            ]
        );
    }

    #[test]
    fn dotdot_stops_at_the_root() {
        let dir = root_with(&[("lib/escape", "../../../../etc/f")], &["etc/f"]);
        let found = RootFs::new(dir.path())
            .lookup("/../../lib/escape")
            .expect("lookup")
            .expect("found");
        assert_eq!(found.image, "/etc/f");
        assert!(found.disk.starts_with(dir.path()));
    }

    #[test]
    fn missing_paths_and_file_parents_are_none() {
        let dir = root_with(&[], &["lib/file"]);
        let fs = RootFs::new(dir.path());
        assert_eq!(fs.lookup("/lib/nothing").expect("lookup"), None);
        assert_eq!(fs.lookup("/lib/file/below").expect("lookup"), None);
    }

    #[test]
    fn symlink_loops_are_an_error() {
        let dir = root_with(&[("a", "b"), ("b", "a")], &[]);
        let err = RootFs::new(dir.path()).lookup("/a").expect_err("loop");
        assert!(matches!(err, ClosureError::SymlinkLoop { .. }), "{err:?}");
    }

    #[test]
    fn beside_a_program_both_sides_move_in_step() {
        let dir = root_with(
            &[("out/lib/libfoo.so.1", "libfoo.so.1.0")],
            &["out/lib/libfoo.so.1.0"],
        );
        let found = RootFs::new(Path::new("/nonexistent-root"))
            .lookup_beside(
                "/app/bin",
                &dir.path().join("out/bin"),
                "../lib/libfoo.so.1",
            )
            .expect("lookup")
            .expect("found");
        assert_eq!(found.image, "/app/lib/libfoo.so.1.0");
        assert_eq!(found.disk, dir.path().join("out/lib/libfoo.so.1.0"));
        assert_eq!(found.links.len(), 1);
        assert_eq!(found.links[0].image, "/app/lib/libfoo.so.1");
        assert_eq!(found.links[0].target, "libfoo.so.1.0");
    }
}
