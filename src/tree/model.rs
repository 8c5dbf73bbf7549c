//! The scanned tree and its identity: pure data, no filesystem access.
//! The encoding is the tree's `StableHash` impl; its version is
//! `hash::TREE`'s.

use crate::hash::{KeyWriter, OutputHash, StableHash, TREE};

/// What one entry of a tree is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    Dir,
    File {
        executable: bool,
        size: u64,
        content: [u8; 32],
    },
    Symlink {
        target: String,
    },
}

/// One entry, its path relative to the tree root, `/`-separated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub path: String,
    pub kind: EntryKind,
}

/// A scanned tree: entries sorted by path (byte order), parents before children.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Tree {
    pub entries: Vec<Entry>,
}

impl Tree {
    /// The tree's identity: the [`TREE`] family's hash of every entry.
    pub fn hash(&self) -> OutputHash {
        TREE.key(self)
    }
}

/// Each entry shown under its path, as `dir`, `file <hash>`, `exec <hash>`
/// (an executable file) or `symlink <target>`: what `kiln explain` diffs
/// when a tree is part of a stage's key.
impl StableHash for Tree {
    fn write_key(&self, w: &mut KeyWriter) {
        let Tree { entries } = self;
        w.len(entries.len());
        for entry in entries {
            w.item(&entry.path, entry);
        }
    }
}

impl StableHash for Entry {
    fn write_key(&self, w: &mut KeyWriter) {
        let Entry { path, kind } = self;
        // Shown as the label `Tree` gives the entry.
        w.quiet(path);
        kind.write_key(w);
    }
}

impl StableHash for EntryKind {
    fn write_key(&self, w: &mut KeyWriter) {
        match self {
            EntryKind::Dir => w.tag("dir"),
            EntryKind::File {
                executable,
                size,
                content,
            } => {
                w.tag(if *executable { "exec" } else { "file" });
                // Implied by the content hash; keyed all the same, not shown.
                w.quiet(size);
                content.write_key(w);
            }
            EntryKind::Symlink { target } => {
                w.tag("symlink");
                w.str(target);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::testing::assert_each_change_is_keyed;

    fn file(path: &str, executable: bool, data: &[u8]) -> Entry {
        let content = *blake3::hash(data).as_bytes();
        let size = data.len() as u64;
        Entry {
            path: path.to_owned(),
            kind: EntryKind::File {
                executable,
                size,
                content,
            },
        }
    }

    fn dir(path: &str) -> Entry {
        Entry {
            path: path.to_owned(),
            kind: EntryKind::Dir,
        }
    }

    fn link(path: &str, target: &str) -> Entry {
        Entry {
            path: path.to_owned(),
            kind: EntryKind::Symlink {
                target: target.to_owned(),
            },
        }
    }

    #[test]
    fn each_entry_is_shown_under_its_path_with_kind_and_hash_or_target() {
        let tree = Tree {
            entries: vec![dir("d"), file("d/x", true, b"x"), link("l", "d/x")],
        };
        let (_, shown) = TREE.key_shown(&tree);
        let x = blake3::hash(b"x").to_hex().to_string();
        let shown: Vec<_> = shown.into_iter().filter(|(k, _)| k != "kiln").collect();
        assert_eq!(
            shown,
            [
                ("d".to_owned(), "dir".to_owned()),
                ("d/x".to_owned(), format!("exec {x}")),
                ("l".to_owned(), "symlink d/x".to_owned()),
            ]
        );
    }

    #[test]
    fn every_field_of_an_entry_is_keyed() {
        let base = Tree {
            entries: vec![dir("d"), file("d/f", false, b"data"), link("d/l", "f")],
        };
        fn kind(t: &mut Tree, i: usize) -> &mut EntryKind {
            &mut t.entries[i].kind
        }
        assert_each_change_is_keyed(
            &base,
            Tree::hash,
            &[
                ("path of a dir", &|t| t.entries[0].path = "e".to_owned()),
                ("path of a file", &|t| t.entries[1].path = "d/g".to_owned()),
                ("kind dir -> file", &|t| {
                    t.entries[0] = file("d", false, b"")
                }),
                ("kind file -> symlink", &|t| t.entries[1] = link("d/f", "")),
                ("executable", &|t| {
                    if let EntryKind::File { executable, .. } = kind(t, 1) {
                        *executable = true;
                    }
                }),
                ("size", &|t| {
                    if let EntryKind::File { size, .. } = kind(t, 1) {
                        *size += 1;
                    }
                }),
                ("content", &|t| {
                    if let EntryKind::File { content, .. } = kind(t, 1) {
                        content[0] ^= 1;
                    }
                }),
                ("symlink target", &|t| {
                    if let EntryKind::Symlink { target } = kind(t, 2) {
                        target.push('g');
                    }
                }),
                ("an entry more", &|t| t.entries.push(dir("e"))),
                ("an entry less", &|t| {
                    t.entries.pop();
                }),
            ],
        );
    }

    #[test]
    fn a_path_and_a_target_cannot_trade_bytes() {
        let a = Tree {
            entries: vec![link("ab", "c")],
        };
        let b = Tree {
            entries: vec![link("a", "bc")],
        };
        assert_ne!(a.hash(), b.hash());
    }

    #[test]
    fn the_empty_tree_has_a_stable_hash() {
        assert_eq!(Tree::default().hash(), Tree { entries: vec![] }.hash());
        assert_ne!(
            Tree::default().hash(),
            Tree {
                entries: vec![file("a", false, b"")]
            }
            .hash()
        );
    }
}
