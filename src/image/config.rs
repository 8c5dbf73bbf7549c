//! The OCI config, manifest and index, and the docker-archive manifest, as
//! pure functions of data: no filesystem, no clock, no host state except the
//! architecture passed in. JSON goes out with sorted keys and no whitespace
//! (oci-spec keeps maps in `HashMap`s; a round trip through `serde_json::Value`,
//! whose maps are sorted, makes the bytes stable).

use std::collections::HashMap;

use oci_spec::image::{
    Arch, ConfigBuilder, Descriptor, HistoryBuilder, ImageConfigurationBuilder, ImageIndexBuilder,
    ImageManifestBuilder, MediaType, Os, RootFsBuilder,
};
use serde::Serialize;

use super::model::{ConfigSummary, Layer};
use crate::hash::Digest;
use crate::spec::{Command, Image};

pub(crate) const OCI_LAYOUT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;
pub(crate) const TITLE_LABEL: &str = "org.opencontainers.image.title";
const REF_NAME: &str = "org.opencontainers.image.ref.name";

pub(crate) fn argv(command: &Command) -> Vec<String> {
    match command {
        Command::Exec(argv) => argv.clone(),
        Command::Shell(script) => vec!["/bin/sh".into(), "-c".into(), script.clone()],
    }
}

/// `image`'s settings over its parent's: scalars replace, env and labels
/// merge by key, ports and volumes add up. As in a Dockerfile, setting an
/// entrypoint drops an inherited cmd. `title`: the image's name as its own
/// file writes it (what its key holds, not an importer's alias).
pub(crate) fn merge(parent: Option<&ConfigSummary>, image: &Image, title: &str) -> ConfigSummary {
    let mut c = parent.cloned().unwrap_or_default();
    if let Some(ep) = &image.entrypoint {
        c.entrypoint = Some(argv(ep));
        c.cmd = None;
    }
    if let Some(cmd) = &image.cmd {
        c.cmd = Some(argv(cmd));
    }
    c.env.extend(image.env.clone());
    let or = |mine: &Option<crate::spec::Spanned<String>>, theirs: Option<String>| {
        mine.as_ref().map(|s| s.value.clone()).or(theirs)
    };
    c.workdir = or(&image.workdir, c.workdir.take());
    c.user = or(&image.user, c.user.take());
    c.stop_signal = image.stop_signal.clone().or(c.stop_signal.take());
    c.exposed_ports.extend(image.expose.iter().cloned());
    c.volumes.extend(image.volumes.iter().cloned());
    c.labels.insert(TITLE_LABEL.into(), title.to_owned());
    c.labels.extend(image.labels.clone());
    c
}

/// The image config blob.
pub(crate) fn config_json(c: &ConfigSummary, layers: &[Layer], epoch: u64, arch: &str) -> Vec<u8> {
    let mut b = ConfigBuilder::default();
    if let Some(v) = &c.entrypoint {
        b = b.entrypoint(v.clone());
    }
    if let Some(v) = &c.cmd {
        b = b.cmd(v.clone());
    }
    if !c.env.is_empty() {
        b = b.env(
            c.env
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>(),
        );
    }
    if let Some(v) = &c.workdir {
        b = b.working_dir(v.clone());
    }
    if let Some(v) = &c.user {
        b = b.user(v.clone());
    }
    if !c.exposed_ports.is_empty() {
        b = b.exposed_ports(c.exposed_ports.iter().cloned().collect::<Vec<_>>());
    }
    if !c.volumes.is_empty() {
        b = b.volumes(c.volumes.iter().cloned().collect::<Vec<_>>());
    }
    if !c.labels.is_empty() {
        b = b.labels(c.labels.clone().into_iter().collect::<HashMap<_, _>>());
    }
    if let Some(v) = &c.stop_signal {
        b = b.stop_signal(v.clone());
    }
    let created = rfc3339(epoch);
    let rootfs = RootFsBuilder::default()
        .typ("layers")
        .diff_ids(
            layers
                .iter()
                .map(|l| l.diff_id.to_string())
                .collect::<Vec<_>>(),
        )
        .build()
        .expect("kiln bug: rootfs has every field");
    let history = layers.iter().map(|l| {
        HistoryBuilder::default()
            .created(created.clone())
            .created_by(l.created_by.clone())
            .build()
            .expect("kiln bug: history has every field")
    });
    let config = ImageConfigurationBuilder::default()
        .created(created.clone())
        .architecture(Arch::from(arch))
        .os(Os::Linux)
        .config(b.build().expect("kiln bug: config has every field"))
        .rootfs(rootfs)
        .history(history.collect::<Vec<_>>())
        .build()
        .expect("kiln bug: image config has every field");
    canonical_json(&config)
}

/// The OCI image manifest blob.
pub(crate) fn manifest_json(config: &Digest, config_size: u64, layers: &[Layer]) -> Vec<u8> {
    let layers = layers.iter().map(|l| {
        Descriptor::new(
            l.compression.oci_media_type(),
            l.size,
            oci_digest(&l.digest),
        )
    });
    let manifest = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(Descriptor::new(
            MediaType::ImageConfig,
            config_size,
            oci_digest(config),
        ))
        .layers(layers.collect::<Vec<_>>())
        .build()
        .expect("kiln bug: manifest has every field");
    canonical_json(&manifest)
}

/// `index.json`: the manifest once per tag, named by the tag (a full
/// reference, which the OCI `ref.name` grammar allows and podman expects).
pub(crate) fn index_json(manifest: &Digest, size: u64, tags: &[String]) -> Vec<u8> {
    let descriptor = |tag: &String| {
        let mut d = Descriptor::new(MediaType::ImageManifest, size, oci_digest(manifest));
        d.set_annotations(Some(HashMap::from([(REF_NAME.to_owned(), tag.clone())])));
        d
    };
    let index = ImageIndexBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageIndex)
        .manifests(tags.iter().map(descriptor).collect::<Vec<_>>())
        .build()
        .expect("kiln bug: index has every field");
    canonical_json(&index)
}

/// docker-archive's `manifest.json`, pointing at the OCI layout's blobs.
pub(crate) fn docker_manifest_json(config: &Digest, tags: &[String], layers: &[Layer]) -> Vec<u8> {
    #[derive(Serialize)]
    #[serde(rename_all = "PascalCase")]
    struct Entry {
        config: String,
        repo_tags: Vec<String>,
        layers: Vec<String>,
    }
    let blob = |d: &Digest| format!("blobs/sha256/{}", d.hex());
    let entry = Entry {
        config: blob(config),
        repo_tags: tags.to_vec(),
        layers: layers.iter().map(|l| blob(&l.digest)).collect(),
    };
    canonical_json(&[entry])
}

fn oci_digest(d: &Digest) -> oci_spec::image::Digest {
    d.to_string()
        .parse()
        .expect("kiln bug: a sha256 digest is a valid OCI digest")
}

fn canonical_json(value: &impl Serialize) -> Vec<u8> {
    let value = serde_json::to_value(value).expect("kiln bug: OCI types serialize");
    serde_json::to_vec(&value).expect("kiln bug: a JSON value serializes")
}

/// The Go architecture name of the host, as OCI configs spell it.
pub(crate) fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        other => other,
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ` for Unix seconds (proleptic Gregorian, UTC).
pub(crate) fn rfc3339(epoch: u64) -> String {
    let days = (epoch / 86_400) as i64;
    let secs = epoch % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}Z")
}

#[cfg(test)]
mod tests;
