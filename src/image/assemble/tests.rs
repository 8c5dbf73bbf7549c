use std::io::Read;
use std::os::unix::fs::PermissionsExt;

use super::*;
use crate::export::write_archive;
use crate::image::model::{Compression, Layer};
use crate::image::testutil::{add, copy, exec, image, name, sp, spec};
use crate::spec::Owner;

/// A project dir with a stage output holding `bin/app` (executable) and
/// `share/data.txt`, plus a source file `static/index.html`.
fn project(root: &Path, mtime_offset: i64) -> (Spec, BTreeMap<Name, StageOutput>) {
    let out = root.join("store/server");
    std::fs::create_dir_all(out.join("bin")).unwrap();
    std::fs::create_dir_all(out.join("share")).unwrap();
    std::fs::write(out.join("bin/app"), "#!/bin/true\n").unwrap();
    std::fs::set_permissions(out.join("bin/app"), std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::write(out.join("share/data.txt"), "data").unwrap();
    let ctx = root.join("ctx");
    std::fs::create_dir_all(ctx.join("static")).unwrap();
    std::fs::write(ctx.join("static/index.html"), "<p>hi</p>").unwrap();
    for p in [
        "store/server/bin/app",
        "store/server/share/data.txt",
        "ctx/static/index.html",
    ] {
        let t = std::time::SystemTime::UNIX_EPOCH
            + std::time::Duration::from_secs((1_600_000_000 + mtime_offset) as u64);
        std::fs::File::options()
            .write(true)
            .open(root.join(p))
            .unwrap()
            .set_modified(t)
            .unwrap();
    }
    let mut img = image("web");
    img.contents = vec![
        copy("server", "bin/app", "/app/app"),
        copy("server", ".", "/opt/server"),
        add("static", "/www"),
    ];
    img.entrypoint = exec(&["/app/app"]);
    img.tags = vec![sp("web:v1".into())];
    let outputs = BTreeMap::from([(name("server"), StageOutput::scan(&out).unwrap())]);
    (spec(&ctx, vec![img]), outputs)
}

fn archive_of(root: &Path, opts: &LayerSettings, mtime_offset: i64) -> (Vec<u8>, Assembled) {
    let (spec, outputs) = project(root, mtime_offset);
    let img = assemble(&spec, &spec.images[0], &outputs, &root.join("layers"), opts).unwrap();
    let mut bytes = Vec::new();
    write_archive(&img, &mut bytes).unwrap();
    (bytes, img)
}

#[test]
fn the_same_inputs_in_two_directories_give_identical_archives() {
    for compression in [Compression::Zstd, Compression::Gzip, Compression::None] {
        let opts = LayerSettings {
            compression,
            epoch: 1_700_000_000,
        };
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (bytes_a, img_a) = archive_of(a.path(), &opts, 0);
        let (bytes_b, img_b) = archive_of(b.path(), &opts, 12_345);
        assert_eq!(img_a.digest(), img_b.digest(), "{compression:?}");
        assert!(bytes_a == bytes_b, "archives differ for {compression:?}");
    }
}

#[test]
fn a_second_export_takes_every_layer_from_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let opts = LayerSettings::default();
    let (_, first) = archive_of(dir.path(), &opts, 0);
    assert!(first.layers().iter().all(|l| !l.cached));
    let (_, second) = archive_of(dir.path(), &opts, 0);
    assert!(second.layers().iter().all(|l| l.cached));
    assert_eq!(first.digest(), second.digest());
    // A changed file misses for its layer only.
    let (spec, outputs) = project(dir.path(), 0);
    std::fs::write(dir.path().join("ctx/static/index.html"), "<p>new</p>").unwrap();
    let third = assemble(
        &spec,
        &spec.images[0],
        &outputs,
        &dir.path().join("layers"),
        &opts,
    )
    .unwrap();
    let cached: Vec<bool> = third.layers().iter().map(|l| l.cached).collect();
    assert_eq!(cached, [true, true, false]);
    assert_ne!(third.digest(), first.digest());
}

/// The entries of a layer blob: (path, mode, uid, gid, mtime, type).
fn layer_entries(layer: &Layer) -> Vec<(String, u32, u64, u64, u64, tar::EntryType)> {
    let blob = std::fs::read(&layer.blob).unwrap();
    let tar_bytes = match layer.compression {
        Compression::Zstd => zstd::decode_all(blob.as_slice()).unwrap(),
        Compression::Gzip => {
            let mut out = Vec::new();
            std::io::Read::read_to_end(
                &mut flate2::read::GzDecoder::new(blob.as_slice()),
                &mut out,
            )
            .unwrap();
            out
        }
        Compression::None => blob,
    };
    assert_eq!(Digest::of(&tar_bytes), layer.diff_id);
    let mut archive = tar::Archive::new(tar_bytes.as_slice());
    let entries = archive.entries().unwrap().map(|e| {
        let e = e.unwrap();
        let h = e.header();
        let path = e.path().unwrap().to_string_lossy().into_owned();
        (
            path,
            h.mode().unwrap(),
            h.uid().unwrap(),
            h.gid().unwrap(),
            h.mtime().unwrap(),
            h.entry_type(),
        )
    });
    entries.collect()
}

#[test]
fn layers_hold_parents_normalized_modes_owner_and_the_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let (mut spec, outputs) = project(dir.path(), 0);
    if let Content::Copy { attrs, .. } = &mut spec.images[0].contents[1] {
        attrs.owner = Owner {
            uid: 1000,
            gid: 1001,
        };
    }
    let opts = LayerSettings {
        compression: Compression::Zstd,
        epoch: 42,
    };
    let img = assemble(
        &spec,
        &spec.images[0],
        &outputs,
        &dir.path().join("l"),
        &opts,
    )
    .unwrap();
    let dir_t = tar::EntryType::Directory;
    let file_t = tar::EntryType::Regular;
    assert_eq!(
        layer_entries(&img.layers()[0]),
        [
            ("app/".into(), 0o755, 0, 0, 42, dir_t),
            ("app/app".into(), 0o755, 0, 0, 42, file_t)
        ]
    );
    let second = layer_entries(&img.layers()[1]);
    let got: Vec<_> = second
        .iter()
        .map(|(p, m, u, g, _, _)| (p.as_str(), *m, *u, *g))
        .collect();
    assert_eq!(
        got,
        [
            ("opt/", 0o755, 0, 0),
            ("opt/server/", 0o755, 1000, 1001),
            ("opt/server/bin/", 0o755, 1000, 1001),
            ("opt/server/bin/app", 0o755, 1000, 1001),
            ("opt/server/share/", 0o755, 1000, 1001),
            ("opt/server/share/data.txt", 0o644, 1000, 1001),
        ]
    );
    assert_eq!(
        img.layers()[1].created_by,
        "kiln: copy server . to=/opt/server owner=1000:1001"
    );
    assert_eq!(
        img.layers()[1].top,
        ["/opt/server", "/opt/server/bin", "/opt/server/share"]
    );
    assert_eq!(img.layers()[1].files, 2);
}

#[test]
fn long_paths_survive_the_tar() {
    let dir = tempfile::tempdir().unwrap();
    let deep = "d".repeat(120);
    let out = dir.path().join("out");
    std::fs::create_dir_all(out.join(&deep)).unwrap();
    std::fs::write(out.join(&deep).join("f"), "x").unwrap();
    std::os::unix::fs::symlink(format!("{deep}/f"), out.join("l")).unwrap();
    let mut img = image("deep");
    img.contents = vec![copy("s", ".", "/")];
    let s = spec(dir.path(), vec![img]);
    let outputs = BTreeMap::from([(name("s"), StageOutput::scan(&out).unwrap())]);
    let img = assemble(
        &s,
        &s.images[0],
        &outputs,
        &dir.path().join("l"),
        &Default::default(),
    )
    .unwrap();
    let paths: Vec<String> = layer_entries(&img.layers()[0])
        .into_iter()
        .map(|e| e.0)
        .collect();
    assert_eq!(paths, [format!("{deep}/"), format!("{deep}/f"), "l".into()]);
}

#[test]
fn an_image_from_another_image_reuses_its_layers_and_config() {
    let dir = tempfile::tempdir().unwrap();
    let (mut spec, outputs) = project(dir.path(), 0);
    let mut child = image("child");
    child.from = sp(ImageRoot::Image(name("web")));
    child.contents = vec![add("static", "/more")];
    spec.images.push(child);
    let opts = LayerSettings::default();
    let cache = dir.path().join("l");
    let parent = assemble(&spec, &spec.images[0], &outputs, &cache, &opts).unwrap();
    let child = assemble(&spec, &spec.images[1], &outputs, &cache, &opts).unwrap();
    assert_eq!(child.layers().len(), 4);
    let digests = |layers: &[Layer]| layers.iter().map(|l| l.digest).collect::<Vec<_>>();
    assert_eq!(digests(&child.layers()[..3]), digests(parent.layers()));
    assert!(
        child.layers()[..3].iter().all(|l| l.cached),
        "the parent's blobs are reused"
    );
    assert_eq!(child.config.entrypoint, Some(vec!["/app/app".to_owned()]));
    assert_eq!(child.tags(), ["child:latest"]);
}

#[test]
fn a_missing_copy_source_or_a_base_image_is_a_spanned_error() {
    let dir = tempfile::tempdir().unwrap();
    let (mut spec, outputs) = project(dir.path(), 0);
    spec.images[0]
        .contents
        .push(copy("server", "bin/nope", "/x"));
    let err = assemble(
        &spec,
        &spec.images[0],
        &outputs,
        dir.path(),
        &Default::default(),
    )
    .unwrap_err();
    assert!(
        matches!(err, ExportError::CopySourceMissing { ref path, .. } if path == "bin/nope"),
        "{err:?}"
    );
}

#[test]
fn the_archive_is_an_oci_layout_and_a_docker_archive_over_the_same_blobs() {
    let dir = tempfile::tempdir().unwrap();
    let (bytes, img) = archive_of(dir.path(), &LayerSettings::default(), 0);
    let mut archive = tar::Archive::new(bytes.as_slice());
    let mut files = BTreeMap::new();
    for e in archive.entries().unwrap() {
        let mut e = e.unwrap();
        let path = e.path().unwrap().to_string_lossy().into_owned();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        files.insert(path, data);
    }
    let paths: Vec<&str> = files.keys().map(String::as_str).collect();
    assert_eq!(&paths[..2], ["blobs/", "blobs/sha256/"]);
    assert_eq!(
        &paths[paths.len() - 3..],
        ["index.json", "manifest.json", "oci-layout"]
    );
    for (path, data) in &files {
        if let Some(hex) = path.strip_prefix("blobs/sha256/").filter(|h| !h.is_empty()) {
            assert_eq!(Digest::of(data).hex(), hex, "blob {path} matches its name");
        }
    }
    let docker: serde_json::Value = serde_json::from_slice(&files["manifest.json"]).unwrap();
    assert_eq!(docker[0]["RepoTags"][0], "web:v1");
    for layer in docker[0]["Layers"].as_array().unwrap() {
        assert!(files.contains_key(layer.as_str().unwrap()));
    }
    let index: serde_json::Value = serde_json::from_slice(&files["index.json"]).unwrap();
    assert_eq!(index["manifests"][0]["digest"], img.digest().to_string());
    assert!(files.contains_key(&format!("blobs/sha256/{}", img.config_digest().hex())));
}

#[test]
fn the_archive_frames_its_entries_as_tar_builder_does() {
    let dir = tempfile::tempdir().unwrap();
    let (bytes, _) = archive_of(dir.path(), &LayerSettings::default(), 0);
    let mut rebuilt = tar::Builder::new(Vec::new());
    let mut archive = tar::Archive::new(bytes.as_slice());
    for e in archive.entries().unwrap() {
        let mut e = e.unwrap();
        let (mut header, path) = (e.header().clone(), e.path().unwrap().into_owned());
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        rebuilt
            .append_data(&mut header, path, data.as_slice())
            .unwrap();
    }
    // Padding, checksums and the two end blocks, byte for byte.
    assert!(rebuilt.into_inner().unwrap() == bytes);
}

#[test]
fn a_layer_blob_cut_short_fails_the_export_before_a_byte_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let (_, img) = archive_of(dir.path(), &LayerSettings::default(), 0);
    let layer = &img.layers()[0];
    let blob = std::fs::read(&layer.blob).unwrap();
    let writable = std::fs::Permissions::from_mode(0o644);
    std::fs::set_permissions(&layer.blob, writable).unwrap();
    std::fs::write(&layer.blob, &blob[..blob.len() / 2]).unwrap();
    let mut out = Vec::new();
    let err = write_archive(&img, &mut out).unwrap_err();
    match err {
        ExportError::DamagedBlob { size, actual, .. } => {
            assert_eq!(
                (size, actual),
                (blob.len() as u64 / 2, Digest::of(&blob[..blob.len() / 2]))
            );
        }
        other => panic!("expected a damaged blob, got {other:?}"),
    }
    // Blobs are written in digest order: nothing of a damaged one goes out.
    assert!(!out.windows(64).any(|w| w == &blob[..64]));
}

/// A blob of the right size with a flipped byte is found while it is
/// copied: the archive fails, and the OCI layout (built aside) is never
/// put in place. A blob this process has just packed is copied unread.
#[test]
fn a_layer_blob_damaged_in_place_fails_the_archive_and_the_layout() {
    let dir = tempfile::tempdir().unwrap();
    let (good, img) = archive_of(dir.path(), &LayerSettings::default(), 0);
    let layer = &img.layers()[0];
    let mut again = Vec::new();
    write_archive(&img, &mut again).unwrap();
    assert!(again == good, "a fresh blob copies as it was packed");

    let mut blob = std::fs::read(&layer.blob).unwrap();
    let last = blob.len() - 1;
    blob[last] ^= 0xff;
    std::fs::set_permissions(&layer.blob, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::write(&layer.blob, &blob).unwrap();
    let damaged = |err| match err {
        ExportError::DamagedBlob { size, actual, .. } => {
            assert_eq!((size, actual), (blob.len() as u64, Digest::of(&blob)));
        }
        other => panic!("expected a damaged blob, got {other:?}"),
    };
    damaged(write_archive(&img, &mut Vec::new()).unwrap_err());
    let layout = dir.path().join("layout");
    damaged(crate::export::write_oci_dir(&img, &layout).unwrap_err());
    assert!(!layout.exists(), "no layout was put in place");
    damaged(crate::export::check_blobs(&img).unwrap_err());
}

/// The assembly as the build runs it for an image of `spec`: its parent
/// image assembled first, every copied stage's root unknown.
fn assemble(
    spec: &Spec,
    image: &Image,
    outputs: &BTreeMap<Name, StageOutput>,
    cache: &Path,
    opts: &LayerSettings,
) -> Result<Assembled, ExportError> {
    let parent = match &image.from.value {
        ImageRoot::Image(name) => {
            let parent = spec.image(name.as_str()).expect("parent in spec");
            Some(assemble(spec, parent, outputs, cache, opts)?)
        }
        _ => None,
    };
    let roots = BTreeMap::new();
    super::assemble(spec, image, parent.as_ref(), outputs, &roots, cache, opts)
}
