//! Path lookups confined to a root filesystem, the way the kernel resolves
//! paths after `chroot(root)`: `..` stops at the root and an absolute symlink
//! target starts again at the root, so nothing outside it is ever read.
//! For the host, the root is what the sandbox shows a `from host` stage: a
//! path under none of the shown directories is not there, as in the sandbox,
//! whatever the host holds. Lookups beside a copied program stay inside its
//! stage output the same way. Every symlink met on the way is reported,
//! since the image needs it too.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use super::{ClosureError, Root};
use crate::fsx::IoContext;

/// The kernel's limit (MAXSYMLINKS) before ELOOP.
const MAX_LINKS: usize = 40;

/// A root filesystem: an unpacked image, or the host as the sandbox shows it.
#[derive(Debug, Clone)]
pub(super) struct RootFs {
    root: PathBuf,
    /// `None`: all of `root`. Else only these absolute in-root paths and
    /// what lies below them; their parents are bare directories, as the
    /// sandbox makes them to mount on.
    shown: Option<Vec<String>>,
}

/// What the sandbox shows at an in-root path.
enum Seen {
    /// The host's file, as it is.
    Shown,
    /// A directory the sandbox made to hold a shown path below it: neither
    /// a symlink nor a file of the host's.
    Passage,
    /// Nothing.
    Hidden,
}

/// A symlink met on the way to a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// Its path in the image, whose parents are real directories.
    pub image: String,
    /// Where it is on disk now.
    pub disk: PathBuf,
    /// Its text, as is.
    pub target: String,
}

/// What a lookup led to: the real path and every symlink on the way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub image: String,
    pub disk: PathBuf,
    pub links: Vec<Link>,
    /// Whether it ended inside the root (where `$ORIGIN` lookups are
    /// confined too) rather than beside a program.
    pub in_root: bool,
}

/// Resolves the absolute `path` inside the directory `root` (all of it),
/// as [`RootFs::lookup`]: for `closure-extra` paths.
pub fn lookup_in(root: &Path, path: &str) -> Result<Option<Found>, ClosureError> {
    RootFs::new(root).lookup(path)
}

impl RootFs {
    /// All of the directory `root`.
    pub(super) fn new(root: &Path) -> Self {
        RootFs {
            root: root.to_path_buf(),
            shown: None,
        }
    }

    pub(super) fn of(root: &Root) -> Self {
        match root {
            Root::Image(dir) => RootFs::new(dir),
            Root::Host { shown } => RootFs {
                root: PathBuf::from("/"),
                shown: Some(
                    (shown.iter())
                        .filter_map(|d| d.to_str())
                        .map(normalize_image)
                        .collect(),
                ),
            },
        }
    }

    /// The same root with nothing hidden: for reading configuration
    /// (`/etc/ld.so.conf`), never for what goes into an image.
    pub(super) fn unconfined(&self) -> Self {
        RootFs::new(&self.root)
    }

    /// Where the absolute in-root `path` is on disk, without resolving it.
    pub(super) fn disk_path(&self, path: &str) -> PathBuf {
        self.root.join(path.trim_start_matches('/'))
    }

    fn seen(&self, image: &str) -> Seen {
        let Some(shown) = &self.shown else {
            return Seen::Shown;
        };
        if shown.iter().any(|dir| is_under(image, dir)) {
            Seen::Shown
        } else if shown.iter().any(|dir| is_under(dir, image)) {
            Seen::Passage
        } else {
            Seen::Hidden
        }
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
            match self.seen(&image) {
                Seen::Hidden => return Ok(None),
                Seen::Passage => continue,
                Seen::Shown => {}
            }
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
        if !matches!(self.seen(&image), Seen::Shown) {
            // `/` itself, or a directory the sandbox made: nothing to load.
            return Ok(None);
        }
        let disk = self.disk_path(&image);
        Ok(Some(Found {
            image,
            disk,
            links,
            in_root: true,
        }))
    }

    /// Resolves `rel` against a directory of a copied program: `image_dir`
    /// where it lands, `disk_dir` where it is now, inside `tree` (its stage
    /// output); what `$ORIGIN` means for a program not in any root. The two
    /// sides move in step, one component at a time, each symlink followed by
    /// kiln rather than the kernel: a relative one on both sides, an absolute
    /// one inside the root, where it will point in the image. A path that
    /// climbs above `tree` on disk, or above `/` in the image, is not found:
    /// nothing kiln copies is there.
    pub(super) fn lookup_beside(
        &self,
        tree: &Path,
        image_dir: &str,
        disk_dir: &Path,
        rel: &str,
    ) -> Result<Option<Found>, ClosureError> {
        // Physical paths, so that the walk below starts where the kernel
        // would and every component after it is one kiln looked at.
        let tree = tree.canonicalize().at(tree)?;
        let start = disk_dir.canonicalize().at(disk_dir)?;
        let Ok(start) = start.strip_prefix(&tree) else {
            return Ok(None);
        };
        let mut disk: Vec<String> = Vec::new();
        for part in start.components() {
            let part = part
                .as_os_str()
                .to_str()
                .ok_or_else(|| ClosureError::NonUtf8 {
                    path: disk_dir.to_path_buf(),
                })?;
            disk.push(part.to_owned());
        }
        let mut image: Vec<String> = components(image_dir).collect();
        let mut pending: Vec<String> = components(rel).rev().collect();
        let mut links = Vec::new();
        while let Some(part) = pending.pop() {
            if part == ".." {
                if disk.pop().is_none() || image.pop().is_none() {
                    return Ok(None);
                }
                continue;
            }
            disk.push(part.clone());
            image.push(part);
            let on_disk = tree.join(disk.join("/"));
            let Some(meta) = symlink_metadata(&on_disk)? else {
                return Ok(None);
            };
            if !meta.file_type().is_symlink() {
                continue;
            }
            if links.len() == MAX_LINKS {
                return Err(ClosureError::SymlinkLoop {
                    root: disk_dir.to_path_buf(),
                    path: rel.to_owned(),
                });
            }
            let target = read_link(&on_disk)?;
            links.push(Link {
                image: image_path(&image),
                disk: on_disk,
                target: target.clone(),
            });
            disk.pop();
            image.pop();
            if target.starts_with('/') {
                let rest: Vec<String> = pending.into_iter().rev().collect();
                return self.lookup_with(&format!("{target}/{}", rest.join("/")), links);
            }
            pending.extend(components(&target).rev());
        }
        Ok(Some(Found {
            image: image_path(&image),
            disk: tree.join(disk.join("/")),
            links,
            in_root: false,
        }))
    }
}

/// Whether the absolute `path` is `dir` or below it.
fn is_under(path: &str, dir: &str) -> bool {
    dir == "/"
        || path
            .strip_prefix(dir)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
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
    let target = std::fs::read_link(path).at(path)?;
    target
        .into_os_string()
        .into_string()
        .map_err(|_| ClosureError::NonUtf8 {
            path: path.to_path_buf(),
        })
}

#[cfg(test)]
#[path = "rootfs_tests.rs"]
mod tests;
