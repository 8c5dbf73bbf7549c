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
        let tree = tree.canonicalize().map_err(ClosureError::io(tree))?;
        let start = disk_dir
            .canonicalize()
            .map_err(ClosureError::io(disk_dir))?;
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
            &["out/lib/libfoo.so.1.0", "out/bin/prog"],
        );
        let found = RootFs::new(Path::new("/nonexistent-root"))
            .lookup_beside(
                &dir.path().join("out"),
                "/app/bin",
                &dir.path().join("out/bin"),
                "../lib/libfoo.so.1",
            )
            .expect("lookup")
            .expect("found");
        let real = dir.path().canonicalize().expect("canonical");
        assert_eq!(found.image, "/app/lib/libfoo.so.1.0");
        assert_eq!(found.disk, real.join("out/lib/libfoo.so.1.0"));
        assert_eq!(found.links.len(), 1);
        assert_eq!(found.links[0].image, "/app/lib/libfoo.so.1");
        assert_eq!(found.links[0].target, "libfoo.so.1.0");
    }

    #[test]
    fn beside_a_program_nothing_above_its_stage_output_is_found() {
        let up = "../".repeat(20);
        let dir = root_with(
            &[
                ("out/lib", &format!("{up}secret/lib") as &str),
                ("out/rel", "../secret/lib"),
            ],
            &["secret/lib/libs.so", "out/bin/prog"],
        );
        let fs = RootFs::new(Path::new("/nonexistent-root"));
        let (tree, bin) = (dir.path().join("out"), dir.path().join("out/bin"));
        for rel in [
            "../../secret/lib/libs.so",
            &format!("{up}{}/secret/lib/libs.so", dir.path().display()),
            "../lib/libs.so",
            "../rel/libs.so",
        ] {
            let found = fs.lookup_beside(&tree, "/a/b/c/d/bin", &bin, rel);
            assert_eq!(found.expect("lookup"), None, "{rel}");
        }
    }

    #[test]
    fn on_the_host_only_what_the_sandbox_shows_is_there() {
        let dir = root_with(
            &[("lib", "usr/lib"), ("usr/lib/libx.so", "/etc/libx.so")],
            &[
                "usr/lib/liby.so",
                "etc/libx.so",
                "etc/ssl/cert.pem",
                "etc/passwd",
            ],
        );
        let mut fs = RootFs::new(dir.path());
        fs.shown = Some(vec!["/usr".into(), "/lib".into(), "/etc/ssl".into()]);
        let image = |path: &str| fs.lookup(path).expect("lookup").map(|f| f.image);
        assert_eq!(image("/lib/liby.so").as_deref(), Some("/usr/lib/liby.so"));
        assert_eq!(
            image("/etc/ssl/cert.pem").as_deref(),
            Some("/etc/ssl/cert.pem")
        );
        assert_eq!(image("/lib/libx.so"), None);
        assert_eq!(image("/etc/passwd"), None);
        assert_eq!(image("/etc"), None);
        assert_eq!(image("/usr/../etc/libx.so"), None);
        assert!(
            fs.unconfined()
                .lookup("/etc/passwd")
                .expect("lookup")
                .is_some()
        );
    }
}
