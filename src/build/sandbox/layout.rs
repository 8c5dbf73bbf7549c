//! Reads what a job's root holds (IO): the host's system directories or the
//! top level of an unpacked image, as a [`Layout`] for the planner.

use std::io;
use std::path::{Component, Path, PathBuf};

use super::plan::{Layout, PROC_HIDDEN, PROC_READ_ONLY, RootEntry};
use crate::build::{Job, JobRoot};

/// The host directories a `from host` build sees, where they exist.
const HOST_DIRS: [&str; 7] = ["usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32"];

/// Top-level names of an image that kiln mounts itself (or leaves absent).
const RESERVED: [&str; 7] = ["dev", "proc", "sys", "tmp", "src", "out", "deps"];

/// CA certificates: a `fetch` needs them, nothing else in `/etc` is shown.
const HOST_CERTS: &str = "/etc/ssl";

pub fn layout(job: &Job<'_>) -> io::Result<Layout> {
    let mut layout = match &job.root {
        JobRoot::Host => host(&job.tool_dirs)?,
        JobRoot::Rootfs(dir) => rootfs(dir)?,
    };
    layout.proc = proc_entries();
    Ok(layout)
}

/// Which protected `/proc` entries this kernel has: the sandbox's `/proc`
/// shows the same kernel's.
fn proc_entries() -> Vec<(&'static str, bool)> {
    PROC_READ_ONLY
        .iter()
        .chain(&PROC_HIDDEN)
        .filter_map(|name| {
            let meta = std::fs::symlink_metadata(Path::new("/proc").join(name)).ok()?;
            Some((*name, meta.is_dir()))
        })
        .collect()
}

/// What a `from host` stage sees of the host, as absolute paths: the shown
/// top-level entries (`/usr`, `/lib64`, …), `/etc/ssl` and the directories
/// of its tools. Its programs' runtime closure is looked up there and
/// nowhere else (`crate::closure::Root::Host`).
pub fn host_paths(tool_dirs: &[PathBuf]) -> io::Result<Vec<PathBuf>> {
    let layout = host(tool_dirs)?;
    let top = layout.entries.iter().map(|e| match e {
        RootEntry::Dir { name, .. }
        | RootEntry::File { name, .. }
        | RootEntry::Symlink { name, .. } => Path::new("/").join(name),
    });
    Ok(top.chain(layout.extra).collect())
}

fn host(tool_dirs: &[PathBuf]) -> io::Result<Layout> {
    let mut entries = Vec::new();
    for name in HOST_DIRS {
        if let Some(entry) = entry(Path::new("/"), name)? {
            entries.push(entry);
        }
    }
    let mut extra = Vec::new();
    if Path::new(HOST_CERTS).is_dir() {
        extra.push(PathBuf::from(HOST_CERTS));
    }
    for dir in tool_dirs {
        if dir.is_absolute() && dir.is_dir() && !covered(dir, &entries, &extra) {
            extra.push(dir.clone());
        }
    }
    Ok(Layout {
        entries,
        synthetic_etc: true,
        extra,
        proc: Vec::new(),
    })
}

/// Whether `dir` already resolves inside the sandbox as on the host: it
/// lies under a shown top-level entry (symlinked ones point into `/usr`) or
/// under a directory already bound.
fn covered(dir: &Path, entries: &[RootEntry], extra: &[PathBuf]) -> bool {
    let first = match dir.components().nth(1) {
        Some(Component::Normal(first)) => first,
        _ => return true, // `/` itself: nothing to add
    };
    let shown = entries.iter().any(|e| match e {
        RootEntry::Dir { name, .. } | RootEntry::Symlink { name, .. } => first == name.as_str(),
        RootEntry::File { .. } => false,
    });
    shown || extra.iter().any(|x| dir.starts_with(x))
}

fn rootfs(dir: &Path) -> io::Result<Layout> {
    let mut names: Vec<String> = Vec::new();
    for item in fs_err::read_dir(dir)? {
        let name = item?.file_name();
        // A name that is not UTF-8 cannot be a path kiln plans with; an
        // image root has none that matter.
        if let Some(name) = name.to_str().filter(|n| !RESERVED.contains(n)) {
            names.push(name.to_owned());
        }
    }
    names.sort();
    let mut entries = Vec::new();
    for name in &names {
        if let Some(entry) = entry(dir, name)? {
            entries.push(entry);
        }
    }
    Ok(Layout {
        entries,
        synthetic_etc: false,
        extra: Vec::new(),
        proc: Vec::new(),
    })
}

/// `parent/name` as a root entry; `None` when absent or not a file,
/// directory or symlink.
fn entry(parent: &Path, name: &str) -> io::Result<Option<RootEntry>> {
    let path = parent.join(name);
    let meta = match fs_err::symlink_metadata(&path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let name = name.to_owned();
    let kind = meta.file_type();
    Ok(if kind.is_symlink() {
        let target = fs_err::read_link(&path)?;
        Some(RootEntry::Symlink { name, target })
    } else if kind.is_dir() {
        Some(RootEntry::Dir { name, source: path })
    } else if kind.is_file() {
        Some(RootEntry::File { name, source: path })
    } else {
        None
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_image_root_is_listed_by_name_without_the_directories_kiln_mounts() {
        let root = tempfile::tempdir().expect("temp dir");
        for dir in ["bin", "etc", "tmp", "proc", "dev"] {
            fs_err::create_dir(root.path().join(dir)).expect("mkdir");
        }
        fs_err::write(root.path().join("marker"), "x").expect("write");
        std::os::unix::fs::symlink("bin", root.path().join("sbin")).expect("symlink");
        let layout = rootfs(root.path()).expect("layout");
        let r = root.path();
        assert_eq!(
            layout.entries,
            vec![
                RootEntry::Dir {
                    name: "bin".into(),
                    source: r.join("bin")
                },
                RootEntry::Dir {
                    name: "etc".into(),
                    source: r.join("etc")
                },
                RootEntry::File {
                    name: "marker".into(),
                    source: r.join("marker")
                },
                RootEntry::Symlink {
                    name: "sbin".into(),
                    target: "bin".into()
                },
            ]
        );
        assert!(!layout.synthetic_etc);
    }

    #[test]
    fn host_paths_are_the_shown_entries_the_certificates_and_the_tools() {
        let tools = tempfile::tempdir().expect("temp dir");
        let paths = host_paths(&[tools.path().to_path_buf(), "/usr/bin".into()]).expect("paths");
        let shown: Vec<PathBuf> = HOST_DIRS
            .iter()
            .map(|d| Path::new("/").join(d))
            .filter(|p| p.symlink_metadata().is_ok())
            .chain(Path::new(HOST_CERTS).is_dir().then(|| HOST_CERTS.into()))
            .chain([tools.path().to_path_buf()])
            .collect();
        assert_eq!(paths, shown);
    }

    #[test]
    fn tool_dirs_under_shown_entries_are_not_bound_again() {
        let entries = vec![
            RootEntry::Dir {
                name: "usr".into(),
                source: "/usr".into(),
            },
            RootEntry::Symlink {
                name: "bin".into(),
                target: "usr/bin".into(),
            },
        ];
        let extra = vec![PathBuf::from("/etc/ssl")];
        assert!(covered(Path::new("/usr/lib/go/bin"), &entries, &extra));
        assert!(covered(Path::new("/bin"), &entries, &extra));
        assert!(covered(Path::new("/etc/ssl/certs"), &entries, &extra));
        assert!(!covered(Path::new("/opt/go/bin"), &entries, &extra));
        assert!(!covered(Path::new("/usrlocal/bin"), &entries, &extra));
    }
}
