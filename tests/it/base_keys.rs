//! An image made from an archive base is keyed by the base's key, which
//! holds the archive's content (not its path): a build whose cache has the
//! image leaves the base unimported, an archive whose layers are stored
//! otherwise (same config) makes another image, and a moved archive keeps
//! every key.

use std::path::Path;

use kiln::hash::Digest;

use crate::common::build_said as build;
use crate::common::images::{
    Compress, Image, busybox_image_with, write_docker_archive, write_oci_archive, write_oci_dir,
};
use crate::common::registry::Registry;
use crate::common::{Project, Report};

/// A base read from `archive`, a stage from the host, an image made from
/// the base that ships the stage's file. Nothing runs in the base: no
/// sandbox needed.
fn spec(archive: &str, image: &Image) -> String {
    format!(
        r#"
        base busybox {{
            archive "{archive}" digest="{}"
        }}
        stage greet {{ run "echo hi > $out/hello" }}
        image app {{
            from busybox
            copy greet "hello" to="/app/hello"
        }}
        "#,
        image.id()
    )
}

/// How many blobs the store imported (or pulled) into its blob store.
fn blobs(p: &Project) -> usize {
    let dir = p.store.join("v2/blobs/sha256");
    std::fs::read_dir(&dir).map_or(0, |d| d.count())
}

/// The digests of the layers of the image the report calls `name`.
fn layer_digests(report: &Report, name: &str) -> Vec<String> {
    let images = report.0["images"].as_array().expect("images");
    let image = (images.iter())
        .find(|i| i["name"] == name)
        .unwrap_or_else(|| panic!("no image {name} in {}", report.0));
    let entry = Path::new(image["output"].as_str().expect("the image's output"));
    let record: serde_json::Value = serde_json::from_slice(
        &std::fs::read(entry.join("image.json")).expect("the image's record"),
    )
    .expect("a JSON record");
    (record["layers"].as_array().expect("layers").iter())
        .map(|l| l["digest"].as_str().expect("digest").to_owned())
        .collect()
}

fn image_key(report: &Report) -> String {
    report.0["images"][0]["key"]
        .as_str()
        .expect("key")
        .to_owned()
}

/// A fresh store whose cache has the image: the image is pulled, the
/// stage it copies stays in the cache, and the base is neither imported
/// nor even read past its content (it was imported, to key the image by
/// its output, before). `kiln explain` keys it the same way.
#[test]
fn an_image_from_an_archive_base_comes_from_the_cache_without_importing_the_base() {
    let Some(registry) = Registry::start() else {
        return;
    };
    let cache = format!("{}/cache", registry.host());
    let image = busybox_image_with(Compress::Gzip);
    let project = || {
        let p = Project::new(&spec("bb.tar", &image));
        write_docker_archive(&image, &p.root().join("bb.tar"));
        p
    };
    let first = project();
    let (built, _) = build(&first, &["--cache", &cache, "--cache-push"]);
    assert!(blobs(&first) > 0, "the first build imported the base");

    let explained = project();
    let explain = explained.ok(&["explain", "app", "--cache", &cache]);
    assert!(explain.contains("the cache has it"), "{explain}");
    assert_eq!(blobs(&explained), 0, "explain imported the base");

    let second = project();
    let (lazy, err) = build(&second, &["--cache", &cache]);
    assert_eq!(lazy.0["images"][0]["status"], "pulled", "{err}");
    assert_eq!(image_key(&lazy), image_key(&built));
    assert_eq!(lazy.status("greet"), "remote", "{}", lazy.0);
    assert_eq!(lazy.0["bases"][0]["status"], "remote", "{}", lazy.0);
    assert!(err.contains("1 base not pulled"), "{err}");
    assert_eq!(blobs(&second), 0, "the base was imported");
    // The image carries the base's layers all the same.
    let digests = layer_digests(&lazy, "app");
    for layer in &image.layers {
        assert!(digests.contains(&Digest::of(&layer.bytes).to_string()));
    }
    // And without the cache, from what the build remembered.
    drop(registry);
    let explain = second.ok(&["explain", "app"]);
    assert!(explain.contains("image `app` is cached"), "{explain}");
}

/// One config, its top layer stored uncompressed in a docker-archive, then
/// gzip-compressed in an oci-archive: two bases with one config digest but
/// other layer blobs. The image made from each carries that archive's
/// blobs, under a key of its own, in one store (the first base's entry
/// must not stand for the second).
#[test]
fn an_archive_with_the_same_config_but_other_layer_bytes_makes_another_image() {
    let plain = busybox_image_with(Compress::None);
    let gzip = busybox_image_with(Compress::Gzip);
    assert_eq!(plain.id(), gzip.id(), "one config");
    let top = |image: &Image| Digest::of(&image.layers[2].bytes).to_string();
    assert_ne!(top(&plain), top(&gzip), "other blobs");

    let p = Project::new(&spec("bb.tar", &plain));
    write_docker_archive(&plain, &p.root().join("bb.tar"));
    let (first, err) = build(&p, &[]);
    assert!(layer_digests(&first, "app").contains(&top(&plain)), "{err}");

    p.write("kiln.kdl", &spec("bb-oci.tar", &gzip));
    write_oci_archive(&gzip, &p.root().join("bb-oci.tar"));
    let (second, err) = build(&p, &[]);
    assert_ne!(image_key(&first), image_key(&second), "{err}");
    assert_eq!(second.0["images"][0]["status"], "built", "{err}");
    let digests = layer_digests(&second, "app");
    assert!(digests.contains(&top(&gzip)), "{digests:?}");
    assert!(!digests.contains(&top(&plain)), "{digests:?}");
    // The stage did not change: it is not built again.
    assert_eq!(second.status("greet"), "cached", "{err}");
}

/// The archive moved and renamed, as a tar and as an image directory:
/// the same bytes, the same keys, in the same store (nothing is made
/// again) and in a fresh one whose cache has the image (the base is not
/// imported to find that out).
#[test]
fn a_moved_archive_keeps_the_image_key() {
    let Some(registry) = Registry::start() else {
        return;
    };
    let image = busybox_image_with(Compress::Zstd);
    for (from, to) in [
        ("bb.tar", "vendor/images/busybox.tar"),
        ("bb-oci", "vendor/busybox-layout"),
    ] {
        let cache = format!("{}/cache-{}", registry.host(), from.replace('.', "-"));
        let write = |root: &Path, path: &str| {
            let at = root.join(path);
            std::fs::create_dir_all(at.parent().expect("a parent")).expect("mkdir");
            match path.ends_with(".tar") {
                true => write_docker_archive(&image, &at),
                false => write_oci_dir(&image, &at),
            }
        };
        let p = Project::new(&spec(from, &image));
        write(&p.root(), from);
        let (first, _) = build(&p, &["--cache", &cache, "--cache-push"]);

        std::fs::create_dir_all(p.root().join(to).parent().expect("a parent")).expect("mkdir");
        std::fs::rename(p.root().join(from), p.root().join(to)).expect("move");
        p.write("kiln.kdl", &spec(to, &image));
        let (moved, err) = build(&p, &[]);
        assert_eq!(image_key(&moved), image_key(&first), "{from}: {err}");
        assert!(err.contains("nothing to build"), "{from}: {err}");

        let fresh = Project::new(&spec(to, &image));
        write(&fresh.root(), to);
        let (lazy, err) = build(&fresh, &["--cache", &cache]);
        assert_eq!(image_key(&lazy), image_key(&first), "{from}: {err}");
        assert_eq!(lazy.0["images"][0]["status"], "pulled", "{from}: {err}");
        assert_eq!(blobs(&fresh), 0, "{from}: the base was imported");
    }
}
