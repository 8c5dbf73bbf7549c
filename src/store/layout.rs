//! Where each file of the store lives (the diagram in `store/mod.rs`), and
//! the small IO helpers every part of the store shares.

use std::ffi::OsString;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use super::StoreError;
use crate::fsx::IoContext;

/// The version in the root name: a layout change bumps it, and an old kiln
/// never misreads a new store.
/// v2: tree hashes (`hash::TREE` v2) changed, so the output hashes that v1
/// metas and rootfs records hold would not verify, under either kiln.
const VERSION_DIR: &str = "v2";

/// `$KILN_HOME`, else `$XDG_CACHE_HOME/kiln`, else `<home>/.cache/kiln`;
/// `var` reads the environment (a parameter so tests need not mutate it).
pub(super) fn root_from_env(
    var: impl Fn(&str) -> Option<OsString>,
    home: Option<PathBuf>,
) -> PathBuf {
    let set = |name| {
        var(name)
            .filter(|v: &OsString| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(root) = set("KILN_HOME") {
        return root;
    }
    // The XDG spec says to ignore a relative value.
    if let Some(cache) = set("XDG_CACHE_HOME").filter(|p| p.is_absolute()) {
        return cache.join("kiln");
    }
    match home {
        Some(home) => home.join(".cache").join("kiln"),
        // No home at all (a bare container): still a per-machine location.
        None => std::env::temp_dir().join("kiln"),
    }
}

/// The paths of one store's files; pure path arithmetic, no IO but `create`.
#[derive(Debug, Clone)]
pub(super) struct Layout {
    root: PathBuf,
}

impl Layout {
    pub fn new(root: &Path) -> Layout {
        Layout {
            root: root.join(VERSION_DIR),
        }
    }

    /// `<store root>/v2`: everything of this layout version lives below it.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Creates every directory of the layout (idempotent).
    pub fn create(&self) -> Result<(), StoreError> {
        for dir in [
            self.store_dir(),
            self.meta_dir(),
            self.logs_dir(),
            self.locks_dir(),
            self.refs_dir(),
            self.layers_dir(),
            self.tmp_dir(),
            self.caches_dir(),
        ] {
            std::fs::create_dir_all(&dir).at(&dir)?;
        }
        Ok(())
    }

    pub fn store_dir(&self) -> PathBuf {
        self.root.join("store")
    }

    pub fn meta_dir(&self) -> PathBuf {
        self.root.join("meta")
    }

    fn logs_dir(&self) -> PathBuf {
        self.root.join("logs")
    }

    fn locks_dir(&self) -> PathBuf {
        self.root.join("locks")
    }

    pub fn refs_dir(&self) -> PathBuf {
        self.root.join("refs")
    }

    pub fn layers_dir(&self) -> PathBuf {
        self.root.join("layers")
    }

    /// The directories of `cache` lines (`caches.rs`).
    pub fn caches_dir(&self) -> PathBuf {
        self.root.join("caches")
    }

    pub fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// Validated specs (`spec::load_cached`); made on the first write.
    pub fn spec_cache_dir(&self) -> PathBuf {
        self.root.join("cache").join("spec")
    }

    /// Realisations of keys this store holds no entry for (`known.rs`);
    /// made on the first write.
    pub fn known_dir(&self) -> PathBuf {
        self.root.join("known")
    }

    pub fn known_file(&self, short: &str) -> PathBuf {
        self.known_dir().join(format!("{short}.json"))
    }

    pub fn stat_cache(&self) -> PathBuf {
        self.root.join("stat-cache")
    }

    pub fn entry_dir(&self, short: &str, name: &str) -> PathBuf {
        self.store_dir().join(format!("{short}-{name}"))
    }

    pub fn meta_file(&self, short: &str) -> PathBuf {
        self.meta_dir().join(format!("{short}.json"))
    }

    pub fn log_file(&self, short: &str, name: &str) -> PathBuf {
        self.logs_dir().join(format!("{short}-{name}.log"))
    }

    /// The build lock of a key (see `lock.rs`).
    pub fn lock_file(&self, short: &str) -> PathBuf {
        self.locks_dir().join(format!("{short}.lock"))
    }

    /// Shared by every open `Store`; gc takes it exclusively to collect the
    /// caches.
    pub fn store_lock(&self) -> PathBuf {
        self.locks_dir().join("store.lock")
    }

    /// Shared by a store while it adds a root, exclusive while gc reads
    /// the roots and deletes (see `roots.rs`).
    pub fn gc_lock(&self) -> PathBuf {
        self.locks_dir().join("gc.lock")
    }

    /// `roots/<pid>-<n>`: the entries each open store uses (`roots.rs`).
    pub fn roots_dir(&self) -> PathBuf {
        self.root.join("roots")
    }

    /// A build directory of this process; `<short>-` starts the name so the
    /// key's next builder, and gc, can tell whose leftovers they are.
    pub fn build_dir(&self, short: &str, name: &str) -> PathBuf {
        self.tmp_dir()
            .join(format!("{short}-{name}.{}", std::process::id()))
    }

    /// `refs/<context-id>.refs`, the refs of one project: the same project
    /// directory gets the same id however it is spelled (relative, through a
    /// symlink).
    pub fn ref_file(&self, context: &Path) -> PathBuf {
        let canonical = std::fs::canonicalize(context).unwrap_or_else(|_| context.to_owned());
        let hash = blake3::hash(canonical.as_os_str().as_encoded_bytes());
        let id = &hash.to_hex()[..16];
        // `.refs`: an earlier layout kept a directory per project at `<id>`.
        self.refs_dir().join(format!("{id}.refs"))
    }
}

/// The key prefix (`Key::short`) of a file name `<short>-…` or `<short>.…`.
pub(super) fn short_key_of(file_name: &str) -> Option<&str> {
    let short = file_name.get(..32)?;
    let hex = short
        .bytes()
        .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    let sep = matches!(file_name.as_bytes().get(32), Some(b'-' | b'.'));
    (hex && sep).then_some(short)
}

/// Deletes the tree at `dir`, read-only or not; a missing `dir` is fine.
///
/// The tree is first renamed to `trash` (under `tmp/`, on the same
/// filesystem): a deletion cut short then never leaves a partial tree where
/// a reader could take it for a whole one.
pub(super) fn remove_tree(dir: &Path, trash: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = match std::fs::symlink_metadata(dir) {
        Ok(meta) => meta.permissions().mode(),
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(StoreError::Io {
                path: dir.to_owned(),
                source,
            });
        }
    };
    // Moving a directory to another parent rewrites its `..`: the top must
    // be writable first (entries are read-only); `tree::remove_tree` unlocks
    // the rest as it goes, at any depth.
    if mode & 0o700 != 0o700 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode | 0o700)).at(dir)?;
    }
    let target = if dir == trash {
        dir
    } else {
        std::fs::rename(dir, trash).at(dir)?;
        trash
    };
    Ok(crate::tree::remove_tree(target)?)
}

/// Deletes a file; a missing one is fine.
pub(super) fn remove_file(file: &Path) -> Result<(), StoreError> {
    match std::fs::remove_file(file) {
        Err(e) if e.kind() != ErrorKind::NotFound => Err(StoreError::Io {
            path: file.to_owned(),
            source: e,
        }),
        _ => Ok(()),
    }
}

/// The names in `dir`, skipping those that are not UTF-8 (kiln never makes
/// such names, so they are not kiln's to touch).
pub(super) fn read_names(dir: &Path) -> Result<Vec<String>, StoreError> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).at(dir)? {
        let entry = entry.at(dir)?;
        if let Ok(name) = entry.file_name().into_string() {
            names.push(name);
        }
    }
    Ok(names)
}
