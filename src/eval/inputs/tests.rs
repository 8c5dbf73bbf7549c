use super::*;
use crate::hash::testing::assert_each_change_is_keyed;
use crate::spec::{Root, Spanned, SrcPath};
use crate::tree::{Entry, EntryKind};

fn sp<T>(value: T) -> Spanned<T> {
    Spanned {
        value,
        span: (0, 0).into(),
    }
}

fn name(s: &str) -> Name {
    Name::new(s).expect("valid name")
}

fn strings(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    (pairs.iter())
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// What `of_stage` reads: the stage, its resolved root, its scanned
/// sources and its tools' hashes.
#[derive(Clone)]
struct Given {
    stage: Stage,
    root: String,
    sources: Tree,
    tools: BTreeMap<String, String>,
}

fn given() -> Given {
    let file = Entry {
        path: "src/main.c".to_owned(),
        kind: EntryKind::File {
            executable: false,
            size: 4,
            content: *blake3::hash(b"main").as_bytes(),
        },
    };
    Given {
        stage: Stage {
            name: sp(name("app")),
            scope: String::new(),
            from: sp(Root::Host),
            srcs: vec![sp(SrcPath::new("src").expect("valid path"))],
            uses: vec![sp(name("lib"))],
            tools: vec![sp("gcc".to_owned())],
            env: strings(&[("CC", "gcc")]),
            runs: vec![sp("make".to_owned())],
            run_args: strings(&[("version", "1.0")]),
            timeout: None,
            caches: Vec::new(),
        },
        root: "host".to_owned(),
        sources: Tree {
            entries: vec![file],
        },
        tools: strings(&[("gcc", "abc")]),
    }
}

fn key_of(g: &Given) -> Key {
    let inputs = Inputs::of_stage(&g.stage, &g.root, &g.sources, &g.tools);
    inputs.key(&[]).0
}

fn source_content(g: &mut Given) {
    if let EntryKind::File { content, .. } = &mut g.sources.entries[0].kind {
        content[0] ^= 1;
    }
}

#[test]
fn every_stage_input_is_keyed() {
    let src = |p: &str| sp(SrcPath::new(p).expect("valid path"));
    assert_each_change_is_keyed(
        &given(),
        key_of,
        &[
            ("name", &|g| g.stage.name = sp(name("app2"))),
            ("srcs", &|g| g.stage.srcs.push(src("include"))),
            ("a src path", &|g| g.stage.srcs[0] = src("lib")),
            ("uses", &|g| g.stage.uses.push(sp(name("zlib")))),
            ("a use", &|g| g.stage.uses[0] = sp(name("zlib"))),
            ("env value", &|g| g.stage.env = strings(&[("CC", "clang")])),
            ("env key", &|g| g.stage.env = strings(&[("CXX", "gcc")])),
            ("runs", &|g| {
                g.stage.runs.push(sp("make install".to_owned()))
            }),
            ("a run", &|g| g.stage.runs[0] = sp("make all".to_owned())),
            ("run_args", &|g| {
                g.stage.run_args = strings(&[("version", "2.0")])
            }),
            ("root (from)", &|g| g.root = "base sha256:00".to_owned()),
            ("a tool's hash (tools)", &|g| {
                g.tools = strings(&[("gcc", "abd")])
            }),
            ("a tool's name (tools)", &|g| {
                g.tools = strings(&[("cc", "abc")])
            }),
            ("a source's content", &source_content),
            ("a source's path", &|g| {
                g.sources.entries[0].path = "src/lib.c".to_owned();
            }),
        ],
    );
}

#[test]
fn a_timeout_is_not_keyed() {
    let mut g = given();
    g.stage.timeout = Some(sp(std::time::Duration::from_secs(60)));
    assert_eq!(key_of(&g), key_of(&given()));
}

#[test]
fn a_cache_its_path_id_and_sharing_are_not_keyed() {
    use crate::spec::{CacheDir, CacheSharing};
    let cache = |path: &str, id: Option<&str>, sharing| CacheDir {
        path: sp(path.to_owned()),
        id: id.map(|id| sp(id.to_owned())),
        sharing,
    };
    let plain = key_of(&given());
    for caches in [
        vec![cache("/tmp/go-cache", None, CacheSharing::Locked)],
        vec![cache("/tmp/other", Some("go"), CacheSharing::Shared)],
        vec![
            cache("/tmp/a", None, CacheSharing::Private),
            cache("/cache/b", Some("b"), CacheSharing::Locked),
        ],
    ] {
        let mut g = given();
        g.stage.caches = caches;
        assert_eq!(key_of(&g), plain);
    }
}

#[test]
fn bytes_moved_between_inputs_change_the_key() {
    let mut a = given();
    a.stage.env = strings(&[("ab", "c")]);
    let mut b = given();
    b.stage.env = strings(&[("a", "bc")]);
    assert_ne!(key_of(&a), key_of(&b));
    let mut one = given();
    one.stage.runs = vec![sp("ab".to_owned())];
    let mut two = given();
    two.stage.runs = vec![sp("a".to_owned()), sp("b".to_owned())];
    assert_ne!(key_of(&one), key_of(&two));
}

#[test]
fn dependency_outputs_enter_the_key_under_their_name() {
    let g = given();
    let inputs = Inputs::of_stage(&g.stage, &g.root, &g.sources, &g.tools);
    let lib = name("lib");
    let zlib = name("zlib");
    let one = OutputHash::from(blake3::hash(b"one"));
    let two = OutputHash::from(blake3::hash(b"two"));
    let (k1, shown) = inputs.key(&[(&lib, one)]);
    assert_ne!(k1, inputs.key(&[(&lib, two)]).0);
    assert_ne!(k1, inputs.key(&[(&zlib, one)]).0);
    assert_ne!(k1, inputs.key(&[]).0);
    assert_eq!(shown.get("output lib"), Some(&one.to_string()));
}

#[test]
fn set_root_completes_the_key() {
    let g = given();
    let inputs = Inputs::of_stage(&g.stage, "image rt", &g.sources, &g.tools);
    let mut completed = inputs.clone();
    completed.set_root("image rt sha256:00".to_owned());
    let (key, shown) = completed.key(&[]);
    assert_ne!(key, inputs.key(&[]).0);
    assert_eq!(
        shown.get("from").map(String::as_str),
        Some("image rt sha256:00")
    );
}

#[test]
fn each_input_is_shown_under_the_label_explain_prints() {
    let g = given();
    let inputs = Inputs::of_stage(&g.stage, &g.root, &g.sources, &g.tools);
    let (_, shown) = inputs.key(&[]);
    let main = blake3::hash(b"main").to_hex();
    let expected = strings(&[
        ("arg version", "1.0"),
        ("env CC", "gcc"),
        ("file src/main.c", &format!("file {main}")),
        ("from", "host"),
        ("kiln", &STAGE.version().to_string()),
        ("name", "app"),
        ("platform", &platform()),
        ("run 0", "make"),
        ("src 0", "src"),
        ("tool gcc", "abc"),
        ("use 0", "lib"),
    ]);
    assert_eq!(shown, expected);
}

fn fetch() -> Fetch {
    Fetch {
        name: sp(name("zlib")),
        scope: String::new(),
        url: sp("https://x.org/a/zlib-1.3.tar.gz".to_owned()),
        sha256: sp(crate::hash::Digest::of(b"zlib")),
    }
}

fn fetch_key(f: &Fetch) -> Key {
    Inputs::of_fetch(f, &crate::spec::Local::default())
        .key(&[])
        .0
}

#[test]
fn every_fetch_input_is_keyed() {
    assert_each_change_is_keyed(
        &fetch(),
        fetch_key,
        &[
            ("name", &|f| f.name = sp(name("zlib2"))),
            ("sha256", &|f| {
                f.sha256 = sp(crate::hash::Digest::of(b"other"))
            }),
            ("the url's file name", &|f| {
                f.url = sp("https://x.org/a/zlib-1.3.1.tar.gz".to_owned());
            }),
        ],
    );
}

#[test]
fn a_mirror_of_the_same_file_is_the_same_fetch() {
    let mut mirror = fetch();
    mirror.url = sp("https://mirror.example/zlib/zlib-1.3.tar.gz?x=1".to_owned());
    assert_eq!(fetch_key(&mirror), fetch_key(&fetch()));
}

#[test]
fn a_fetch_and_a_stage_with_the_same_name_have_different_keys() {
    let g = given();
    let mut f = fetch();
    f.name = g.stage.name.clone();
    assert_ne!(fetch_key(&f), key_of(&g));
}

#[test]
fn a_fetch_is_stored_under_its_urls_last_segment() {
    assert_eq!(
        fetch_file_name("https://x.org/a/zlib-1.3.tar.gz"),
        "zlib-1.3.tar.gz"
    );
    assert_eq!(fetch_file_name("https://x.org/a/b.txt?sig=1#top"), "b.txt");
    assert_eq!(fetch_file_name("https://x.org/dir/"), "dir");
    assert_eq!(fetch_file_name("https://"), "https:");
}
