//! The lock's text (round trip, stable bytes, malformed files as
//! diagnostics) and how it meets a spec and a plan (`pin`, `Lockfile::of`,
//! `verify`).

use std::str::FromStr;

use super::*;
use crate::eval::{EvalError, PlanEnv};
use crate::hash::Digest;
use crate::spec::{BaseSource, Name, Spec, SrcPath};
use crate::tree::StatCache;

fn digest(byte: char) -> Digest {
    Digest::from_str(&format!("sha256:{}", byte.to_string().repeat(64))).unwrap()
}

fn sample() -> Lockfile {
    let mut lock = Lockfile::default();
    let name = |s: &str| Name::new(s).unwrap();
    lock.bases.insert(
        name("go"),
        LockedBase {
            source: LockedSource::Image("127.0.0.1:5000/golang:1.19".into()),
            digest: digest('a'),
        },
    );
    lock.bases.insert(
        name("deb"),
        LockedBase {
            source: LockedSource::Archive(SrcPath::new("vendor/a \"b\"\\c.tar").unwrap()),
            digest: digest('b'),
        },
    );
    lock.fetches.insert(name("zlib"), digest('c'));
    lock.tools.insert("gcc".into(), blake3::hash(b"gcc"));
    lock.tools.insert("cc".into(), blake3::hash(b"cc"));
    lock
}

#[test]
fn a_lock_reads_back_as_written_and_is_sorted_line_by_line() {
    let lock = sample();
    let text = lock.render();
    assert_eq!(parse("kiln.lock", &text).unwrap(), lock);
    let lines: Vec<&str> = text.lines().filter(|l| !l.starts_with("//")).collect();
    let h = |s: &[u8]| blake3::hash(s).to_hex().to_string();
    assert_eq!(
        lines,
        [
            "version 1".to_owned(),
            format!(
                "base \"deb\" archive=\"vendor/a \\\"b\\\"\\\\c.tar\" digest=\"{}\"",
                digest('b')
            ),
            format!(
                "base \"go\" image=\"127.0.0.1:5000/golang:1.19\" digest=\"{}\"",
                digest('a')
            ),
            format!("fetch \"zlib\" sha256=\"{}\"", digest('c').hex()),
            format!("tool \"cc\" blake3=\"{}\"", h(b"cc")),
            format!("tool \"gcc\" blake3=\"{}\"", h(b"gcc")),
        ]
    );
}

#[test]
fn the_same_lock_is_the_same_bytes_whatever_the_insertion_order() {
    let mut reversed = Lockfile::default();
    let lock = sample();
    for (k, v) in lock.tools.iter().rev() {
        reversed.tools.insert(k.clone(), *v);
    }
    for (k, v) in lock.bases.iter().rev() {
        reversed.bases.insert(k.clone(), v.clone());
    }
    reversed.fetches = lock.fetches.clone();
    assert_eq!(reversed.render(), lock.render());
    // Read back and written again: not a byte moves.
    let again = parse("kiln.lock", &lock.render()).unwrap().render();
    assert_eq!(again, lock.render());
}

#[test]
fn writing_an_unchanged_lock_leaves_the_file_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kiln.lock");
    assert!(write(&path, &sample()).unwrap(), "first write");
    let before = std::fs::metadata(&path).unwrap().modified().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    assert!(!write(&path, &sample()).unwrap(), "same lock");
    assert_eq!(
        std::fs::metadata(&path).unwrap().modified().unwrap(),
        before
    );
    assert_eq!(read(&path).unwrap(), Some(sample()));
    assert_eq!(read(&dir.path().join("none.lock")).unwrap(), None);
    assert_eq!(
        path_beside(std::path::Path::new("dir/other.kdl")),
        std::path::Path::new("dir/other.lock")
    );
}

/// The message and the text the label points at, for a malformed lock.
fn malformed(text: &str) -> (String, String) {
    match parse("kiln.lock", text) {
        Err(e @ LockError::Malformed { span, .. }) => {
            assert!(e.is_user_error());
            let at = &text[span.offset()..span.offset() + span.len()];
            (e.to_string(), at.to_owned())
        }
        other => panic!("{text:?}: {other:?}"),
    }
}

#[test]
fn a_malformed_lock_is_a_diagnostic_pointing_at_the_mistake() {
    let d = digest('a');
    let cases: Vec<(String, &str, &str)> = vec![
        (
            "base \"x\" image=\"a\" digest=\"x\"\n".into(),
            "must start with `version 1`",
            "base",
        ),
        (
            "version 2\n".into(),
            "version 2; this kiln reads version 1",
            "2",
        ),
        (
            "version 1\nstage \"x\"\n".into(),
            "unknown kind `stage`",
            "stage",
        ),
        (
            format!("version 1\nbase \"x\" image=\"a\" digest=\"{d}\" os=\"l\"\n"),
            "`base` has no `os`",
            "os=\"l\"",
        ),
        (
            "version 1\nfetch \"f\" sha256=\"12\"\n".into(),
            "invalid digest",
            "sha256=\"12\"",
        ),
        (
            "version 1\ntool \"t\" blake3=\"XY\"\n".into(),
            "invalid blake3 `XY`",
            "blake3=\"XY\"",
        ),
        (
            "version 1\ntool \"t\"\n".into(),
            "`tool t` has no `blake3`",
            "tool \"t\"",
        ),
        (
            format!("version 1\nbase \"1x\" image=\"a\" digest=\"{d}\"\n"),
            "`1x` is not a name",
            "\"1x\"",
        ),
        (
            format!("version 1\nbase \"x\" digest=\"{d}\"\n"),
            "one of `image` or `archive`",
            "base",
        ),
        (
            format!("version 1\nbase \"x\" archive=\"../a\" digest=\"{d}\"\n"),
            "not a normalized",
            "archive=\"../a\"",
        ),
        (
            "version 1\nfetch \"f\" sha256=\"ab\n".into(),
            "not closed",
            "\"ab",
        ),
        (
            "version 1\nfetch \"f\" sha256=\"\\q\"\n".into(),
            "invalid escape",
            "\\q",
        ),
        (
            "version 1\nversion 1\n".into(),
            "`version` is given twice",
            "version",
        ),
        ("// only a comment\n".into(), "no `version 1` line", ""),
    ];
    for (text, message, at) in cases {
        let (got, pointed) = malformed(&text);
        assert!(got.contains(message), "{text:?}: {got}");
        assert!(
            pointed.starts_with(at),
            "{text:?}: points at {pointed:?}, not {at:?}"
        );
    }
    let twice = format!(
        "version 1\nfetch \"f\" sha256=\"{0}\"\nfetch \"f\" sha256=\"{0}\"\n",
        d.hex()
    );
    assert_eq!(
        malformed(&twice),
        (
            "kiln.lock is malformed: `fetch f` appears twice".into(),
            "\"f\"".into()
        )
    );
}

fn spec_in(dir: &std::path::Path, text: &str) -> Spec {
    crate::spec::load_str("kiln.kdl", text.to_owned(), dir.to_path_buf(), &[]).unwrap()
}

fn plan<'s>(spec: &'s Spec, dir: &std::path::Path) -> Result<crate::eval::Plan<'s>, EvalError> {
    let cache = StatCache::load(dir.join("statcache"));
    let env = PlanEnv {
        stat_cache: &cache,
        layers: crate::image::LayerSettings {
            compression: crate::image::Compression::Gzip,
            epoch: 0,
        },
    };
    crate::eval::plan(spec, &[], &env)
}

const TAGGED: &str = r#"
base go { image "127.0.0.1:5000/golang:1.19"; }
stage s { from go; run "true"; }
"#;

#[test]
fn a_tag_is_pinned_by_its_entry_for_the_same_reference_and_refused_without_one() {
    let dir = tempfile::tempdir().unwrap();
    let mut lock = Lockfile::default();
    let entry = |reference: &str| LockedBase {
        source: LockedSource::Image(reference.into()),
        digest: digest('d'),
    };
    let go = Name::new("go").unwrap();
    // The lock pins another tag of the same base: not this one.
    lock.bases
        .insert(go.clone(), entry("127.0.0.1:5000/golang:1.20"));
    let mut spec = spec_in(dir.path(), TAGGED);
    pin(&mut spec, &lock);
    assert!(matches!(spec.bases[0].source, BaseSource::Tagged { .. }));
    match plan(&spec, dir.path()) {
        Err(e @ EvalError::Unlocked { span, .. }) => {
            assert_eq!(
                &TAGGED[span.offset()..][..span.len()],
                "\"127.0.0.1:5000/golang:1.19\""
            );
            assert!(e.to_string().contains("Base `go` is given by tag"), "{e}");
        }
        other => panic!("{other:?}"),
    }
    lock.bases.insert(go, entry("127.0.0.1:5000/golang:1.19"));
    pin(&mut spec, &lock);
    match &spec.bases[0].source {
        BaseSource::Registry { image, .. } => assert_eq!(
            image.value.to_string(),
            format!("127.0.0.1:5000/golang:1.19@{}", digest('d'))
        ),
        other => panic!("{other:?}"),
    }
    let planned = plan(&spec, dir.path()).unwrap();
    assert_eq!(Lockfile::of(&spec, &planned).bases, lock.bases);
}

#[test]
fn locked_fails_naming_each_input_that_no_longer_matches() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("deb.tar"), "x").unwrap();
    let text = format!(
        r#"
base deb {{ archive "deb.tar" digest="{}"; }}
fetch f url="https://example.invalid/f" sha256="{}"
stage s {{ tools "sh"; use f; run "true"; }}
stage t {{ from deb; run "true"; }}
"#,
        digest('a'),
        digest('b').hex()
    );
    let spec = spec_in(dir.path(), &text);
    let planned = plan(&spec, dir.path()).unwrap();
    let lock = Lockfile::of(&spec, &planned);
    assert_eq!(
        (lock.bases.len(), lock.fetches.len(), lock.tools.len()),
        (1, 1, 1)
    );
    verify(&spec, &planned, &lock).unwrap();
    let failure = |edit: &dyn Fn(&mut Lockfile)| {
        let mut stale = lock.clone();
        edit(&mut stale);
        let e = verify(&spec, &planned, &stale).unwrap_err();
        let span = match &e {
            LockError::Changed { span, .. } | LockError::NotLocked { span, .. } => *span,
            other => panic!("{other:?}"),
        };
        assert!(e.is_user_error());
        (
            e.to_string(),
            text[span.offset()..][..span.len()].to_owned(),
        )
    };
    let (message, at) = failure(&|l| {
        l.tools.insert("sh".into(), blake3::hash(b"other"));
    });
    assert!(
        message.starts_with("`--locked`: host tool `sh` (`/"),
        "{message}"
    );
    assert!(
        message.ends_with("no longer matches kiln.lock"),
        "{message}"
    );
    assert_eq!(at, "\"sh\"");
    let (message, at) = failure(&|l| {
        l.tools.clear();
    });
    assert!(message.ends_with("is not in kiln.lock"), "{message}");
    assert_eq!(at, "\"sh\"");
    let (message, at) = failure(&|l| {
        l.fetches.insert(Name::new("f").unwrap(), digest('c'));
    });
    assert_eq!(
        message,
        "`--locked`: the sha256 of fetch `f` no longer matches kiln.lock"
    );
    assert_eq!(at, format!("sha256=\"{}\"", digest('b').hex()));
    let (message, at) = failure(&|l| {
        l.bases.values_mut().for_each(|b| b.digest = digest('e'));
    });
    assert_eq!(
        message,
        "`--locked`: base `deb` no longer matches kiln.lock"
    );
    assert_eq!(at, format!("digest=\"{}\"", digest('a')));
}
