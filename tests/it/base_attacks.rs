//! Hostile or oversized base images through the real binary (issue 9, items
//! 12 to 14): a base with more layers than Docker loads, an image directory
//! whose files are symlinks to host files, a store that fills up while a
//! base is imported or unpacked.

use std::path::{Path, PathBuf};

use crate::common::Project;
use crate::common::images::*;
use crate::common::skip::skip;
use kiln::hash::Digest;

fn stderr_of(out: &std::process::Output) -> String {
    // miette wraps long lines; join the words back for `contains`.
    String::from_utf8_lossy(&out.stderr)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// An image of `n` layers, each holding one tiny file; the first also holds
/// the `/bin/sh` its config's `Cmd` names (a stand-in: nothing runs it).
fn many_layers(n: usize) -> Image {
    let layers = (0..n)
        .map(|i| {
            layer(Compress::None, |b| {
                if i == 0 {
                    dir(b, "bin");
                    file(b, "bin/sh", 0o755, b"#!stand-in\n");
                }
                file(b, &format!("f{i}"), 0o644, b"x");
            })
        })
        .collect();
    Image::new(layers)
}

fn base_spec(archive: &str, image: &Image, rest: &str) -> String {
    format!(
        "base b {{\n    archive \"{archive}\" digest=\"{}\"\n}}\n{rest}",
        image.id()
    )
}

// ---- item 12: `layers max` counts the base's layers too ----

#[test]
fn an_image_with_no_layers_of_its_own_over_a_130_layer_base_is_refused() {
    let image = many_layers(130);
    let p = Project::new(&base_spec("b.tar", &image, "image i {\n    from b\n}\n"));
    write_docker_archive(&image, &p.root().join("b.tar"));
    let out = p.kiln(&["export", "i", "-o", "i.tar"]);
    let stderr = stderr_of(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("kiln::export::too_many_layers"), "{stderr}");
    assert!(stderr.contains("base `b`"), "{stderr}");
    assert!(stderr.contains("130 layers"), "{stderr}");
    assert!(stderr.contains("at most 100"), "{stderr}");
    assert!(stderr.contains("flatten"), "{stderr}");
    assert!(!p.root().join("i.tar").exists());
}

#[test]
fn a_base_that_fills_layers_max_leaves_no_room_for_a_layer_of_its_own() {
    let image = many_layers(5);
    let spec = "stage s {\n    run \"echo hi > $out/hi\"\n}\nimage i {\n    from b\n    layers max=5\n    copy s \"hi\" to=\"/hi\"\n}\n";
    let p = Project::new(&base_spec("b.tar", &image, spec));
    write_docker_archive(&image, &p.root().join("b.tar"));
    let out = p.kiln(&["--sandbox", "off", "export", "i", "-o", "i.tar"]);
    let stderr = stderr_of(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("base `b` already has 5 layers"), "{stderr}");

    // The base alone at exactly `max` exports: nothing to add.
    let p = Project::new(&base_spec(
        "b.tar",
        &image,
        "image i {\n    from b\n    layers max=5\n}\n",
    ));
    write_docker_archive(&image, &p.root().join("b.tar"));
    let out = p.kiln(&["export", "i", "-o", "i.tar"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
}

#[test]
fn layers_max_above_dockers_limit_of_127_is_a_spec_error() {
    let p = Project::new("image i {\n    layers max=128\n}\n");
    let out = p.kiln(&["export", "i", "-o", "i.tar"]);
    let stderr = stderr_of(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("kiln::spec::bad_layers"), "{stderr}");
    assert!(stderr.contains("127"), "{stderr}");
}

// ---- item 13: no symlink in an image directory is followed ----

/// A secret outside the build context, and the hashes that would betray it.
struct Secret {
    path: PathBuf,
    sha256: String,
}

fn secret(p: &Project, bytes: &[u8]) -> Secret {
    let path = p.dir.path().join("secret");
    std::fs::write(&path, bytes).unwrap();
    Secret {
        path,
        sha256: Digest::of(bytes).hex().to_owned(),
    }
}

/// Replaces `dir/rel` by a symlink to `target`.
fn link(dir: &Path, rel: &str, target: &Path) {
    let path = dir.join(rel);
    std::fs::remove_file(&path).unwrap();
    std::os::unix::fs::symlink(target, &path).unwrap();
}

/// Exports `image i { from b }` and checks that importing `b` is refused as
/// a symlink, at the base's own declaration, without a hash of any host file.
fn assert_link_refused(p: &Project, leaks: &[&str]) {
    let out = p.kiln(&["export", "i", "-o", "i.tar"]);
    let stderr = stderr_of(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("kiln::base::not_regular"), "{stderr}");
    assert!(stderr.contains("symlink"), "{stderr}");
    assert!(
        stderr.contains("imported from here"),
        "the base's span: {stderr}"
    );
    assert!(stderr.contains("base b {"), "the base's span: {stderr}");
    for leak in leaks {
        assert!(!stderr.contains(leak), "{leak} leaked: {stderr}");
    }
}

fn layout_project(image: &Image) -> Project {
    let p = Project::new(&base_spec("layout", image, "image i {\n    from b\n}\n"));
    write_oci_dir(image, &p.root().join("layout"));
    p
}

#[test]
fn an_oci_layout_index_json_symlinked_to_etc_shadow_is_not_read() {
    let image = many_layers(3);
    let p = layout_project(&image);
    link(
        &p.root().join("layout"),
        "index.json",
        Path::new("/etc/shadow"),
    );
    let shadow = std::fs::read("/etc/shadow").map(|b| Digest::of(&b).hex().to_owned());
    let leaks: Vec<&str> = shadow.as_deref().into_iter().collect();
    assert_link_refused(&p, &leaks);
}

#[test]
fn an_oci_layout_blob_symlinked_to_a_host_file_does_not_print_its_hash() {
    let image = many_layers(3);
    for blob in [
        Digest::of(&image.config),
        Digest::of(&image.layers[0].bytes),
    ] {
        let p = layout_project(&image);
        let secret = secret(&p, b"the host's secret\n");
        let rel = format!("blobs/sha256/{}", blob.hex());
        link(&p.root().join("layout"), &rel, &secret.path);
        assert_link_refused(&p, &[&secret.sha256]);
    }
    // A directory on the way is a link too: `blobs -> /`.
    let p = layout_project(&image);
    let layout = p.root().join("layout");
    std::fs::rename(layout.join("blobs"), p.dir.path().join("blobs")).unwrap();
    std::os::unix::fs::symlink(p.dir.path().join("blobs"), layout.join("blobs")).unwrap();
    assert_link_refused(&p, &[]);
}

#[test]
fn a_docker_archive_directory_layer_symlinked_to_a_host_file_is_not_hashed() {
    let image = many_layers(3);
    let p = Project::new(&base_spec("bb", &image, "image i {\n    from b\n}\n"));
    let dir = p.root().join("bb");
    let tar = p.dir.path().join("bb.tar");
    write_docker_archive(&image, &tar);
    std::fs::create_dir(&dir).unwrap();
    tar::Archive::new(std::fs::File::open(&tar).unwrap())
        .unpack(&dir)
        .unwrap();
    let secret = secret(&p, b"an uncompressed host file\n");
    link(&dir, "layer0/layer.tar", &secret.path);
    assert_link_refused(&p, &[&secret.sha256]);
}

// ---- item 14: a full store is reported at the store's path ----

/// A 1 MiB tmpfs mounted on a project's store, unmounted when dropped.
struct SmallStore(PathBuf);

impl SmallStore {
    /// `None` (the test skips, as `common::skip` says) when mounting is not
    /// permitted.
    fn mount(p: &Project) -> Option<SmallStore> {
        std::fs::create_dir_all(&p.store).unwrap();
        let out = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                "size=1m",
                "kiln-test",
                &p.store.to_string_lossy(),
            ])
            .output();
        match out {
            Ok(o) if o.status.success() => Some(SmallStore(p.store.clone())),
            other => {
                skip(format_args!("a tmpfs cannot be mounted ({other:?})"));
                None
            }
        }
    }
}

impl Drop for SmallStore {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// A base whose one layer holds 2 MiB of zeros, the layer compressed or not.
fn two_mib_image(compress: Compress) -> Image {
    Image::new(vec![layer(compress, |b| {
        dir(b, "bin");
        file(b, "bin/sh", 0o755, b"#!stand-in\n");
        file(b, "big", 0o644, &vec![0u8; 2 << 20]);
    })])
}

fn assert_no_space_in_store(p: &Project, out: &std::process::Output, under: &str) {
    let stderr = stderr_of(out);
    // The machine failed, not kiln.kdl: exit code 1.
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("No space left on device"), "{stderr}");
    let store = p.store.join("v2").join(under);
    assert!(
        stderr.contains(&format!("`{}/", store.display())),
        "the error names a path under {}: {stderr}",
        store.display()
    );
    let archive = p.root().join("b.tar");
    assert!(
        !stderr.contains(&format!("`{}`", archive.display())),
        "not the archive's path: {stderr}"
    );
}

#[test]
fn a_full_store_while_importing_a_base_names_the_store_not_the_archive() {
    let image = two_mib_image(Compress::None);
    let p = Project::new(&base_spec("b.tar", &image, "image i {\n    from b\n}\n"));
    write_docker_archive(&image, &p.root().join("b.tar"));
    let Some(_mounted) = SmallStore::mount(&p) else {
        return;
    };
    let out = p.kiln(&["export", "i", "-o", "i.tar"]);
    assert_no_space_in_store(&p, &out, "blobs");
}

#[test]
fn a_full_store_while_unpacking_a_base_names_the_rootfs_path() {
    // Compressed, the layer fits in the store; unpacked, it does not.
    let image = two_mib_image(Compress::Gzip);
    let spec = "stage s {\n    from b\n    run \"true\"\n}\n";
    let p = Project::new(&base_spec("b.tar", &image, spec));
    write_docker_archive(&image, &p.root().join("b.tar"));
    let Some(_mounted) = SmallStore::mount(&p) else {
        return;
    };
    let out = p.kiln(&["build"]);
    assert_no_space_in_store(&p, &out, "rootfs");
}
