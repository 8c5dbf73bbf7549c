//! The scanned tree and its identity: pure data, no filesystem access.

use crate::hash::OutputHash;

/// Bumped whenever the encoding in [`Tree::hash`] changes, so old and new
/// hashes can never collide.
const TREE_FORMAT: &[u8] = b"kiln-tree-v1";

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
    /// blake3 over the canonical, length-prefixed encoding of every entry.
    pub fn hash(&self) -> OutputHash {
        let mut h = blake3::Hasher::new();
        write_bytes(&mut h, TREE_FORMAT);
        h.update(&(self.entries.len() as u64).to_le_bytes());
        for entry in &self.entries {
            write_bytes(&mut h, entry.path.as_bytes());
            match &entry.kind {
                EntryKind::Dir => {
                    h.update(&[0]);
                }
                EntryKind::File {
                    executable,
                    size,
                    content,
                } => {
                    h.update(&[1, u8::from(*executable)]);
                    h.update(&size.to_le_bytes());
                    h.update(content);
                }
                EntryKind::Symlink { target } => {
                    h.update(&[2]);
                    write_bytes(&mut h, target.as_bytes());
                }
            }
        }
        h.finalize().into()
    }

    /// `(path, "<kind> <hash or target>")` per entry: what `kiln explain` diffs.
    ///
    /// Kinds are `dir`, `file`, `exec` (an executable file) and `symlink`.
    pub fn manifest(&self) -> impl Iterator<Item = (String, String)> + '_ {
        self.entries.iter().map(|entry| {
            let what = match &entry.kind {
                EntryKind::Dir => "dir".to_owned(),
                EntryKind::File {
                    executable,
                    content,
                    ..
                } => {
                    let kind = if *executable { "exec" } else { "file" };
                    format!("{kind} {}", blake3::Hash::from_bytes(*content).to_hex())
                }
                EntryKind::Symlink { target } => format!("symlink {target}"),
            };
            (entry.path.clone(), what)
        })
    }
}

fn write_bytes(h: &mut blake3::Hasher, bytes: &[u8]) {
    h.update(&(bytes.len() as u64).to_le_bytes());
    h.update(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn manifest_names_kind_and_hash_or_target() {
        let tree = Tree {
            entries: vec![
                Entry {
                    path: "d".to_owned(),
                    kind: EntryKind::Dir,
                },
                file("d/x", true, b"x"),
                Entry {
                    path: "l".to_owned(),
                    kind: EntryKind::Symlink {
                        target: "d/x".to_owned(),
                    },
                },
            ],
        };
        let lines: Vec<_> = tree.manifest().collect();
        let x = blake3::hash(b"x").to_hex().to_string();
        assert_eq!(
            lines,
            [
                ("d".to_owned(), "dir".to_owned()),
                ("d/x".to_owned(), format!("exec {x}")),
                ("l".to_owned(), "symlink d/x".to_owned()),
            ]
        );
    }

    #[test]
    fn kinds_are_tagged() {
        let dir = Tree {
            entries: vec![Entry {
                path: "a".to_owned(),
                kind: EntryKind::Dir,
            }],
        };
        let link = Entry {
            path: "a".to_owned(),
            kind: EntryKind::Symlink {
                target: String::new(),
            },
        };
        let link = Tree {
            entries: vec![link],
        };
        let empty = Tree {
            entries: vec![file("a", false, b"")],
        };
        let exec = Tree {
            entries: vec![file("a", true, b"")],
        };
        let hashes = [dir.hash(), link.hash(), empty.hash(), exec.hash()];
        for (i, a) in hashes.iter().enumerate() {
            assert!(hashes[i + 1..].iter().all(|b| a != b), "{i} collides");
        }
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
