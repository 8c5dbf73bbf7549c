//! The layer cache key: every field that decides a blob's bytes is keyed,
//! so a cached blob is never served for a layer that would pack differently.

use std::path::PathBuf;

use super::*;
use crate::hash::testing::assert_each_change_is_keyed;

/// A layer as `key` sees it: entries, compression, SOURCE_DATE_EPOCH.
type Layer = (Vec<Entry>, Compression, u64);

fn entry(path: &str, kind: Kind, mode: u32) -> Entry {
    Entry {
        path: path.to_owned(),
        kind,
        mode,
        owner: Owner::default(),
    }
}

fn layer() -> Layer {
    let file = Kind::File {
        disk: PathBuf::from("/ctx/bin"),
        size: 4,
        content: *blake3::hash(b"bin!").as_bytes(),
    };
    let link = Kind::Symlink {
        target: "bin".to_owned(),
    };
    let entries = vec![
        entry("app", Kind::Dir, 0o755),
        entry("app/bin", file, 0o755),
        entry("app/l", link, 0o777),
    ];
    (entries, Compression::Gzip, 0)
}

fn key_of((entries, compression, epoch): &Layer) -> LayerKey {
    key(entries, *compression, *epoch)
}

fn file_kind(l: &mut Layer) -> (&mut u64, &mut [u8; 32], &mut PathBuf) {
    match &mut l.0[1].kind {
        Kind::File {
            size,
            content,
            disk,
        } => (size, content, disk),
        _ => unreachable!("entry 1 is the file"),
    }
}

#[test]
fn every_field_that_decides_the_blob_is_keyed() {
    assert_each_change_is_keyed(
        &layer(),
        key_of,
        &[
            ("path", &|l| l.0[1].path = "app/bim".to_owned()),
            ("kind dir -> file", &|l| {
                l.0[0].kind = Kind::File {
                    disk: PathBuf::from("/ctx/app"),
                    size: 0,
                    content: [0; 32],
                };
            }),
            ("content", &|l| file_kind(l).1[0] ^= 1),
            ("size", &|l| *file_kind(l).0 += 1),
            ("mode", &|l| l.0[1].mode = 0o4755),
            ("uid", &|l| l.0[1].owner.uid = 1000),
            ("gid", &|l| l.0[1].owner.gid = 1000),
            ("symlink target", &|l| {
                l.0[2].kind = Kind::Symlink {
                    target: "/app/bin".to_owned(),
                };
            }),
            ("SOURCE_DATE_EPOCH", &|l| l.2 = 1_700_000_000),
            ("compression gzip -> zstd", &|l| l.1 = Compression::Zstd),
            ("compression gzip -> none", &|l| l.1 = Compression::None),
            ("an entry more", &|l| {
                l.0.push(entry("app/m", Kind::Dir, 0o755))
            }),
            ("an entry less", &|l| {
                l.0.pop();
            }),
        ],
    );
}

#[test]
fn where_a_file_is_read_from_is_not_keyed() {
    let mut moved = layer();
    *file_kind(&mut moved).2 = PathBuf::from("/elsewhere/bin");
    assert_eq!(key_of(&moved), key_of(&layer()));
}

#[test]
fn a_path_and_a_target_cannot_trade_bytes() {
    let link = |path: &str, target: &str| {
        let kind = Kind::Symlink {
            target: target.to_owned(),
        };
        (vec![entry(path, kind, 0o777)], Compression::Gzip, 0)
    };
    assert_ne!(key_of(&link("ab", "c")), key_of(&link("a", "bc")));
}
