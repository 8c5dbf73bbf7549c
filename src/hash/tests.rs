use std::collections::BTreeMap;

use super::writer::KeyWriter;
use super::*;

/// Two string fields: the shape in which moving bytes between fields
/// would collide without length prefixes.
#[derive(Clone)]
struct Pair {
    a: String,
    b: String,
}

impl StableHash for Pair {
    fn write_key(&self, w: &mut KeyWriter) {
        let Pair { a, b } = self;
        w.field("a", a);
        w.field("b", b);
    }
}

fn pair(a: &str, b: &str) -> Pair {
    Pair {
        a: a.to_owned(),
        b: b.to_owned(),
    }
}

#[test]
fn the_same_value_gives_the_same_key_shown_or_not() {
    let (shown_key, _) = STAGE.key_shown(&pair("x", "y"));
    assert_eq!(STAGE.key(&pair("x", "y")), shown_key);
    assert_eq!(STAGE.key(&pair("x", "y")), STAGE.key(&pair("x", "y")));
}

#[test]
fn bytes_moved_between_fields_change_the_key() {
    assert_ne!(STAGE.key(&pair("ab", "c")), STAGE.key(&pair("a", "bc")));
    assert_ne!(STAGE.key(&pair("", "ab")), STAGE.key(&pair("ab", "")));
    let list = |items: &[&str]| STAGE.key(&items.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    assert_ne!(list(&["ab"]), list(&["a", "b"]));
    assert_ne!(list(&[]), list(&[""]));
    let map = |pairs: &[(&str, &str)]| {
        let m: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        STAGE.key(&m)
    };
    assert_ne!(map(&[("ab", "c")]), map(&[("a", "bc")]));
}

#[test]
fn none_and_some_of_an_empty_value_differ() {
    assert_ne!(STAGE.key(&None::<String>), STAGE.key(&Some(String::new())));
}

#[test]
fn families_and_versions_keep_keys_apart() {
    let value = pair("x", "y");
    assert_ne!(STAGE.key(&value), FETCH.key(&value));
    let at = |version| {
        let mut w = KeyWriter::new("kiln test key", version, false);
        value.write_key(&mut w);
        w.finish().0
    };
    assert_ne!(at(1), at(2));
}

#[test]
fn a_family_hash_is_not_the_plain_hash_of_its_bytes() {
    // A stored file's identity shares a field with files' content hashes.
    let mut w = KeyWriter::new("kiln test key", 1, false);
    w.str("x");
    let (keyed, _) = w.finish();
    let mut plain = blake3::Hasher::new();
    plain.update(&1u64.to_le_bytes());
    plain.update(&1u64.to_le_bytes());
    plain.update(b"x");
    assert_ne!(keyed, plain.finalize());
}

#[test]
fn recording_shows_each_leaf_under_its_label_path() {
    struct Stage {
        env: BTreeMap<String, String>,
        runs: Vec<String>,
        hidden: String,
        both: (String, u64),
    }
    impl StableHash for Stage {
        fn write_key(&self, w: &mut KeyWriter) {
            let Stage {
                env,
                runs,
                hidden,
                both,
            } = self;
            w.field("env", env);
            w.field("run", runs);
            w.quiet(hidden);
            w.item("both", &Both(both));
        }
    }
    struct Both<'a>(&'a (String, u64));
    impl StableHash for Both<'_> {
        fn write_key(&self, w: &mut KeyWriter) {
            w.tag("pair");
            w.str(&self.0.0);
            w.u64(self.0.1);
        }
    }
    let stage = Stage {
        env: [("CC".to_owned(), "gcc".to_owned())].into(),
        runs: vec!["make".to_owned(), "make install".to_owned()],
        hidden: "not shown".to_owned(),
        both: ("x".to_owned(), 7),
    };
    let (_, shown) = STAGE.key_shown(&stage);
    let version = STAGE.version().to_string();
    let shown: Vec<_> = shown
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        shown,
        [
            ("both", "pair x 7"),
            ("env CC", "gcc"),
            ("kiln", version.as_str()),
            ("run 0", "make"),
            ("run 1", "make install"),
        ]
    );
}
