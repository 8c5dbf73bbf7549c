//! Refs: the key each node of a project was last built as, which `kiln
//! explain` compares against. Hints only, so cheap: one file per project
//! (`refs/<context-id>.refs`, a `name key` line each), read once per command and
//! written once, atomically, when the build is done ([`Refs::save`]); a
//! no-op build writes nothing. Two builds of one project finishing at once
//! keep the names the last one built, as with any hint.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::StoreError;
use super::layout::Layout;
use crate::fsx::{IoContext, write_atomic};
use crate::hash::Key;
use crate::spec::Name;

#[derive(Debug)]
pub(super) struct Refs {
    layout: Layout,
    loaded: Mutex<Option<Loaded>>,
}

/// One project's refs as read, with this command's changes.
#[derive(Debug)]
struct Loaded {
    context: PathBuf,
    file: PathBuf,
    keys: BTreeMap<String, Key>,
    changed: BTreeMap<String, Key>,
}

impl Refs {
    pub(super) fn new(layout: &Layout) -> Refs {
        Refs {
            layout: layout.clone(),
            loaded: Mutex::new(None),
        }
    }

    pub(super) fn get(&self, context: &Path, name: &Name) -> Result<Option<Key>, StoreError> {
        self.with(context, |loaded| loaded.keys.get(name.as_str()).copied())
    }

    /// Records `key` for `name`, in memory until [`Refs::save`].
    pub(super) fn set(&self, context: &Path, name: &Name, key: &Key) -> Result<(), StoreError> {
        self.with(context, |loaded| {
            if loaded.keys.get(name.as_str()) != Some(key) {
                loaded.keys.insert(name.to_string(), *key);
                loaded.changed.insert(name.to_string(), *key);
            }
        })
    }

    /// Writes what changed, over what the file holds now (another command
    /// may have written other names meanwhile).
    pub(super) fn save(&self) -> Result<(), StoreError> {
        match self.lock().as_mut() {
            Some(loaded) => self.write(loaded),
            None => Ok(()),
        }
    }

    /// Runs `f` on `context`'s refs, loading them first if need be.
    ///
    /// The check and the load are one critical section: the first nodes a
    /// build finishes call this from several threads at once, and a load
    /// made between another thread's check and its load was replaced by
    /// that one, changes and all (the ref of a node just built was lost).
    fn with<T>(&self, context: &Path, f: impl FnOnce(&mut Loaded) -> T) -> Result<T, StoreError> {
        let mut loaded = self.lock();
        if loaded.as_ref().is_none_or(|l| l.context != context) {
            // Another project in the same command: what changed is saved first.
            if let Some(other) = loaded.as_mut() {
                self.write(other)?;
            }
            let file = self.layout.ref_file(context);
            *loaded = Some(Loaded {
                context: context.to_owned(),
                keys: read(&file),
                file,
                changed: BTreeMap::new(),
            });
        }
        Ok(f(loaded.as_mut().expect("kiln bug: refs were just loaded")))
    }

    /// [`Refs::save`] with the lock held.
    fn write(&self, loaded: &mut Loaded) -> Result<(), StoreError> {
        if loaded.changed.is_empty() {
            return Ok(());
        }
        let mut keys = read(&loaded.file);
        keys.extend(loaded.changed.clone());
        let dir = self.layout.refs_dir();
        std::fs::create_dir_all(&dir).at(&dir)?;
        let text: String = keys
            .iter()
            .map(|(name, key)| format!("{name} {key}\n"))
            .collect();
        write_atomic(&loaded.file, text.as_bytes())?;
        // Only once written: a failed save keeps them for the next.
        loaded.changed.clear();
        loaded.keys = keys;
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Loaded>> {
        self.loaded
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The refs in `file`; none when it does not exist or cannot be read, and
/// a line kiln cannot read is skipped: a ref is a hint, and the next build
/// writes the file again.
fn read(file: &Path) -> BTreeMap<String, Key> {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    let parse = |line: &str| {
        let (name, key) = line.split_once(' ')?;
        Some((name.to_owned(), key.trim().parse().ok()?))
    };
    text.lines().filter_map(parse).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> Key {
        Key::from(blake3::hash(&[n]))
    }

    #[test]
    fn a_save_that_fails_keeps_the_refs_for_the_next() {
        let dir = tempfile::tempdir().expect("temp dir");
        let layout = Layout::new(dir.path());
        let project = dir.path().join("project");
        std::fs::create_dir(&project).expect("project");
        let a = Name::new("a").expect("name");
        let refs = Refs::new(&layout);
        refs.set(&project, &a, &key(1)).expect("set");
        // A file where the refs directory goes: the save cannot write.
        std::fs::create_dir_all(layout.refs_dir().parent().expect("parent")).expect("mkdir");
        std::fs::write(layout.refs_dir(), b"").expect("block");
        assert!(refs.save().is_err(), "the save cannot write");
        std::fs::remove_file(layout.refs_dir()).expect("unblock");
        refs.save().expect("save");
        let now = Refs::new(&layout);
        assert_eq!(now.get(&project, &a).expect("get"), Some(key(1)));
    }

    #[test]
    fn refs_are_written_once_by_save_over_what_another_command_wrote() {
        let dir = tempfile::tempdir().expect("temp dir");
        let layout = Layout::new(dir.path());
        let project = dir.path().join("project");
        std::fs::create_dir(&project).expect("project");
        let (a, b) = (Name::new("a").expect("name"), Name::new("b").expect("name"));

        let first = Refs::new(&layout);
        first.set(&project, &a, &key(1)).expect("set");
        assert!(!layout.ref_file(&project).exists(), "written before save");
        first.save().expect("save");

        // Another command sets `b` while this one still holds `a` changed.
        let mine = Refs::new(&layout);
        mine.set(&project, &a, &key(2)).expect("set");
        let other = Refs::new(&layout);
        other.set(&project, &b, &key(3)).expect("set");
        other.save().expect("save");
        mine.save().expect("save");

        let now = Refs::new(&layout);
        assert_eq!(now.get(&project, &a).expect("get"), Some(key(2)));
        assert_eq!(now.get(&project, &b).expect("get"), Some(key(3)));
        // A no-op (the same keys again) writes nothing.
        let before = std::fs::metadata(layout.ref_file(&project)).and_then(|m| m.modified());
        now.set(&project, &a, &key(2)).expect("set");
        now.save().expect("save");
        let after = std::fs::metadata(layout.ref_file(&project)).and_then(|m| m.modified());
        assert_eq!(before.ok(), after.ok());
    }

    /// The flake of `build::explain_names_the_input_that_changed`: the first
    /// two nodes a build finishes at once each found no refs loaded, each
    /// loaded the file, and the second load replaced the first one's
    /// changes, so `explain` later said `gen` had never been built here.
    #[test]
    fn refs_set_by_threads_at_once_are_all_saved() {
        const THREADS: usize = 4;
        let dir = tempfile::tempdir().expect("temp dir");
        let layout = Layout::new(dir.path());
        let names: Vec<Name> = (0..THREADS)
            .map(|t| Name::new(&format!("stage{t}")).expect("name"))
            .collect();
        // Each round is a fresh command's first sets; one lost set in any
        // round fails the test (before the fix, 10 runs of 10 failed, most
        // in their first round).
        for round in 0..100 {
            let project = dir.path().join(format!("project{round}"));
            std::fs::create_dir(&project).expect("project");
            let refs = Refs::new(&layout);
            let start = std::sync::Barrier::new(THREADS);
            std::thread::scope(|s| {
                for name in &names {
                    let (refs, start, project) = (&refs, &start, &project);
                    s.spawn(move || {
                        start.wait();
                        refs.set(project, name, &key(1)).expect("set");
                    });
                }
            });
            refs.save().expect("save");
            let saved = Refs::new(&layout);
            for name in &names {
                assert_eq!(
                    saved.get(&project, name).expect("get"),
                    Some(key(1)),
                    "round {round}: the ref of `{name}` was lost"
                );
            }
        }
    }
}
