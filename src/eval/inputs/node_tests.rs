//! The image and base keys: every setting of an image (and of how its
//! layers are written), changed alone, changes its key.

use std::path::PathBuf;

use super::*;
use crate::eval::archive::ArchiveContent;
use crate::hash::Key;
use crate::hash::testing::assert_each_change_is_keyed;
use crate::image::Compression;
use crate::spec::Name;

const SPEC: &str = r#"stage app { run "true" }
base deb {
    archive "deb.tar" digest="sha256:0000000000000000000000000000000000000000000000000000000000000000"
}
image img {
    from deb
    copy app "bin" to="/usr/bin" mode=0o755 owner="1:1" {
        closure-extra "/etc/ssl"
    }
    add "static" to="/srv"
    entrypoint "/usr/bin/app" "--serve"
    cmd "--port" "80"
    env A="1"
    label team="x"
    workdir "/srv"
    user "1000"
    expose 8080
    volume "/data"
    stop-signal "SIGTERM"
    tag "img:1"
    layers max=10
}
"#;

/// The text of kiln.kdl and how the image's layers are written.
#[derive(Clone)]
struct Given {
    text: String,
    layers: LayerSettings,
    parent: Option<String>,
    closure_root: Option<Digest>,
    copied: OutputHash,
}

fn given() -> Given {
    Given {
        text: SPEC.to_owned(),
        layers: LayerSettings::default(),
        parent: None,
        closure_root: None,
        copied: OutputHash::from(blake3::hash(b"app")),
    }
}

fn spec(text: &str) -> Spec {
    // `add` and `archive` paths are checked against the context.
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir(dir.path().join("static")).expect("static");
    std::fs::write(dir.path().join("deb.tar"), "").expect("archive");
    crate::spec::load_str("kiln.kdl", text.to_owned(), dir.path().to_path_buf(), &[])
        .unwrap_or_else(|e| panic!("{e:?}"))
}

fn image_key(g: &Given) -> Key {
    let spec = spec(&g.text);
    let mut inputs = Inputs::of_image(&spec, &spec.images[0], &Tree::default(), &g.layers);
    if let Some(parent) = &g.parent {
        inputs.set_root(parent.clone());
    }
    if let Some(config) = g.closure_root {
        inputs.set_closure_root(&Name::new("deb").expect("name"), config);
    }
    let app = Name::new("app").expect("name");
    inputs.key(&[(&app, g.copied)]).0
}

fn edit(from: &'static str, to: &'static str) -> impl Fn(&mut Given) {
    move |g: &mut Given| {
        assert!(g.text.contains(from), "{from}");
        g.text = g.text.replace(from, to);
    }
}

/// A named edit of what an image is made from.
type Edit = (&'static str, Box<dyn Fn(&mut Given)>);

#[test]
fn every_setting_of_an_image_is_keyed() {
    let changes: Vec<Edit> = vec![
        ("name", Box::new(edit("image img", "image img2"))),
        ("line", Box::new(edit("stage app", "\nstage app"))),
        ("from", Box::new(edit("    from deb\n", ""))),
        (
            "copy path",
            Box::new(edit("copy app \"bin\"", "copy app \"sbin\"")),
        ),
        ("copy to", Box::new(edit("to=\"/usr/bin\"", "to=\"/bin\""))),
        ("mode", Box::new(edit("mode=0o755", "mode=0o700"))),
        ("owner", Box::new(edit("owner=\"1:1\"", "owner=\"1:2\""))),
        (
            "closure",
            Box::new(edit("owner=\"1:1\"", "owner=\"1:1\" closure=#false")),
        ),
        (
            "closure-extra",
            Box::new(edit("\"/etc/ssl\"", "\"/etc/ssl/certs\"")),
        ),
        ("add", Box::new(edit("to=\"/srv\"", "to=\"/www\""))),
        ("entrypoint", Box::new(edit("\"--serve\"", "\"--run\""))),
        ("cmd", Box::new(edit("\"80\"", "\"81\""))),
        ("env", Box::new(edit("A=\"1\"", "A=\"2\""))),
        ("label", Box::new(edit("team=\"x\"", "team=\"y\""))),
        (
            "workdir",
            Box::new(edit("workdir \"/srv\"", "workdir \"/tmp\"")),
        ),
        ("user", Box::new(edit("user \"1000\"", "user \"1001\""))),
        ("expose", Box::new(edit("expose 8080", "expose 8081"))),
        ("volume", Box::new(edit("\"/data\"", "\"/var\""))),
        ("stop-signal", Box::new(edit("SIGTERM", "SIGINT"))),
        ("tag", Box::new(edit("img:1", "img:2"))),
        ("layers max", Box::new(edit("max=10", "max=11"))),
        (
            "compression",
            Box::new(|g| g.layers.compression = Compression::Zstd),
        ),
        ("epoch", Box::new(|g| g.layers.epoch = 1)),
        (
            "parent output",
            Box::new(|g| g.parent = Some("base deb x".into())),
        ),
        (
            "closure root",
            Box::new(|g| g.closure_root = Some(Digest::of(b"root"))),
        ),
        (
            "copied output",
            Box::new(|g| g.copied = OutputHash::from(blake3::hash(b"b"))),
        ),
    ];
    let changes: Vec<_> = changes.iter().map(|(f, c)| (*f, c.as_ref())).collect();
    assert_each_change_is_keyed(&given(), image_key, &changes);
}

/// An archive base's content as planning hashes it.
fn tar(bytes: &[u8]) -> Option<ArchiveContent> {
    Some(ArchiveContent::Tar(*blake3::hash(bytes).as_bytes()))
}

#[test]
fn a_base_is_keyed_by_its_digest_name_line_and_content_not_its_archive_path() {
    let key_of = |text: &str, content| {
        let spec = spec(text);
        Inputs::of_base(&spec, &spec.bases[0], content).key(&[]).0
    };
    let key = |text: &str| key_of(text, tar(b"deb"));
    let base = key(SPEC);
    let zeros = "0000000000000000000000000000000000000000000000000000000000000000";
    let ones = "1111111111111111111111111111111111111111111111111111111111111111";
    assert_ne!(base, key(&SPEC.replace(zeros, ones)), "digest");
    assert_ne!(
        base,
        key(&SPEC
            .replace("base deb", "base deb2")
            .replace("from deb", "from deb2"))
    );
    assert_ne!(base, key(&SPEC.replace("stage app", "\nstage app")), "line");
    // The same config, its layers stored otherwise (recompressed, another
    // format): another entry, so another key.
    assert_ne!(base, key_of(SPEC, tar(b"deb, gzip")), "content");
    let dir = ArchiveContent::Dir(OutputHash::from(blake3::hash(b"deb")));
    assert_ne!(base, key_of(SPEC, Some(dir)), "a directory, not a tar");
    let moved = SPEC.replace("\"deb.tar\"", "\"other.tar\"");
    let dir_spec = |text: &str| {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir(dir.path().join("static")).expect("static");
        std::fs::write(dir.path().join("other.tar"), "").expect("archive");
        let spec =
            crate::spec::load_str("kiln.kdl", text.to_owned(), PathBuf::from(dir.path()), &[])
                .unwrap_or_else(|e| panic!("{e:?}"));
        Inputs::of_base(&spec, &spec.bases[0], tar(b"deb"))
            .key(&[])
            .0
    };
    assert_eq!(base, dir_spec(&moved), "the archive's path is not keyed");
}

/// A registry base's key is what it was before archive bases were keyed by
/// their content (the key main computed): every image made from one
/// keeps its key.
#[test]
fn a_registry_base_keeps_its_key() {
    let spec = spec(
        r#"base deb {
    image "example.com/deb@sha256:1111111111111111111111111111111111111111111111111111111111111111" platform="linux/amd64"
}
"#,
    );
    let key = Inputs::of_base(&spec, &spec.bases[0], None).key(&[]).0;
    assert_eq!(
        key.to_string(),
        "4cd3cb051a6089398dda566ccdd43f67e3e6811f255d0702d3a60cacb71db3c4"
    );
}
