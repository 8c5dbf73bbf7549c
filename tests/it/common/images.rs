//! Image fixtures written by hand: a busybox rootfs in three layers (plain,
//! gzip, zstd) as a docker-archive, an oci-archive or an OCI layout
//! directory, and the tar helpers to make hostile layers.

use std::io::Write;
use std::path::Path;

use kiln::hash::Digest;

/// A layer blob: its bytes (as stored) and the sha256 of its uncompressed tar.
pub struct Blob {
    pub bytes: Vec<u8>,
    pub diff_id: Digest,
    /// The OCI layer media type suffix: `tar`, `tar+gzip` or `tar+zstd`.
    pub media: &'static str,
}

/// An image: config JSON and layer blobs.
pub struct Image {
    pub config: Vec<u8>,
    pub layers: Vec<Blob>,
}

impl Image {
    pub fn new(layers: Vec<Blob>) -> Image {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            other => other,
        };
        let diff_ids: Vec<String> = layers.iter().map(|l| l.diff_id.to_string()).collect();
        let config = serde_json::json!({
            "architecture": arch,
            "os": "linux",
            "config": { "Cmd": ["/bin/sh"], "Env": ["PATH=/bin"] },
            "rootfs": { "type": "layers", "diff_ids": diff_ids },
        });
        Image {
            config: serde_json::to_vec(&config).unwrap(),
            layers,
        }
    }

    pub fn id(&self) -> Digest {
        Digest::of(&self.config)
    }
}

pub enum Compress {
    None,
    Gzip,
    Zstd,
}

pub fn layer(compress: Compress, build: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> Blob {
    let mut b = tar::Builder::new(Vec::new());
    build(&mut b);
    let tar = b.into_inner().unwrap();
    let diff_id = Digest::of(&tar);
    let (bytes, media) = match compress {
        Compress::None => (tar, "tar"),
        Compress::Gzip => {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(&tar).unwrap();
            (gz.finish().unwrap(), "tar+gzip")
        }
        Compress::Zstd => (zstd::encode_all(&tar[..], 3).unwrap(), "tar+zstd"),
    };
    Blob {
        bytes,
        diff_id,
        media,
    }
}

pub fn header(kind: tar::EntryType, mode: u32) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(0);
    h
}

pub fn dir(b: &mut tar::Builder<Vec<u8>>, path: &str) {
    b.append_data(&mut header(tar::EntryType::Directory, 0o755), path, &[][..])
        .unwrap();
}

pub fn file(b: &mut tar::Builder<Vec<u8>>, path: &str, mode: u32, data: &[u8]) {
    let mut h = header(tar::EntryType::Regular, mode);
    h.set_size(data.len() as u64);
    b.append_data(&mut h, path, data).unwrap();
}

pub fn symlink(b: &mut tar::Builder<Vec<u8>>, path: &str, target: &str) {
    b.append_link(&mut header(tar::EntryType::Symlink, 0o777), path, target)
        .unwrap();
}

/// An entry whose name the tar builder would refuse to write (`..`, `/…`).
pub fn raw_entry(b: &mut tar::Builder<Vec<u8>>, kind: tar::EntryType, name: &str, link: &str) {
    let mut h = header(kind, 0o644);
    h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    h.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
    h.set_cksum();
    b.append(&h, &[][..]).unwrap();
}

/// busybox + `sh`/`echo` links, then a layer of whiteouts, then a file.
pub fn busybox_image() -> Image {
    busybox_image_with(Compress::Zstd)
}

pub fn busybox_image_with(top: Compress) -> Image {
    let busybox =
        std::fs::read("/bin/busybox").expect("busybox-static is installed at /bin/busybox");
    let base = layer(Compress::None, |b| {
        dir(b, "bin");
        file(b, "bin/busybox", 0o755, &busybox);
        symlink(b, "bin/sh", "busybox");
        symlink(b, "bin/echo", "busybox");
        dir(b, "etc");
        file(b, "etc/gone", 0o644, b"deleted by a whiteout");
        dir(b, "opt/old");
        file(b, "opt/old/file", 0o644, b"hidden by an opaque dir");
        file(b, "opt/old/sub/x", 0o644, b"hidden too");
    });
    let whiteouts = layer(Compress::Gzip, |b| {
        file(b, "etc/.wh.gone", 0o644, b"");
        dir(b, "opt/old");
        file(b, "opt/old/new", 0o644, b"kept");
        file(b, "opt/old/.wh..wh..opq", 0o644, b"");
    });
    let top = layer(top, |b| file(b, "etc/hello", 0o600, b"hi\n"));
    Image::new(vec![base, whiteouts, top])
}

pub fn tar_of(files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in files {
        file(&mut b, name, 0o644, data);
    }
    b.into_inner().unwrap()
}

pub fn write_docker_archive(image: &Image, path: &Path) {
    let config_name = format!("{}.json", image.id().hex());
    let mut files = vec![(config_name.clone(), image.config.clone())];
    let mut names = Vec::new();
    for (i, l) in image.layers.iter().enumerate() {
        names.push(format!("layer{i}/layer.tar"));
        files.push((names[i].clone(), l.bytes.clone()));
    }
    let manifest =
        serde_json::json!([{ "Config": config_name, "RepoTags": ["bb:latest"], "Layers": names }]);
    files.push((
        "manifest.json".into(),
        serde_json::to_vec(&manifest).unwrap(),
    ));
    std::fs::write(path, tar_of(&files)).unwrap();
}

/// The files of an OCI layout, by path.
pub fn oci_layout(image: &Image) -> Vec<(String, Vec<u8>)> {
    let blob = |bytes: &[u8]| {
        (
            format!("blobs/sha256/{}", Digest::of(bytes).hex()),
            bytes.to_vec(),
        )
    };
    let descriptor = |media: &str, bytes: &[u8]| serde_json::json!({ "mediaType": media, "digest": Digest::of(bytes).to_string(), "size": bytes.len() });
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": descriptor("application/vnd.oci.image.config.v1+json", &image.config),
        "layers": image.layers.iter().map(|l| {
            descriptor(&format!("application/vnd.oci.image.layer.v1.{}", l.media), &l.bytes)
        }).collect::<Vec<_>>(),
    });
    let manifest = serde_json::to_vec(&manifest).unwrap();
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [descriptor("application/vnd.oci.image.manifest.v1+json", &manifest)],
    });
    let mut files = vec![
        (
            "oci-layout".into(),
            br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
        ),
        ("index.json".into(), serde_json::to_vec(&index).unwrap()),
        blob(&manifest),
        blob(&image.config),
    ];
    files.extend(image.layers.iter().map(|l| blob(&l.bytes)));
    files
}

pub fn write_oci_dir(image: &Image, dir: &Path) {
    for (name, data) in oci_layout(image) {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, data).unwrap();
    }
}

pub fn write_oci_archive(image: &Image, path: &Path) {
    std::fs::write(path, tar_of(&oci_layout(image))).unwrap();
}
