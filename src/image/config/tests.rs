use super::*;
use crate::image::model::Compression;
use crate::image::testutil::{exec, image, sp};
use std::collections::BTreeMap;

fn layer(n: u8) -> Layer {
    Layer {
        digest: Digest::of(&[n]),
        size: 10 + u64::from(n),
        diff_id: Digest::of(&[n, n]),
        uncompressed_size: 1024,
        compression: Compression::Zstd,
        blob: format!("/cache/{n}").into(),
        created_by: format!("kiln: copy s{n} . to=/"),
        role: crate::image::Role::Copy,
        files: 1,
        top: vec!["/x".into()],
        cached: false,
    }
}

#[test]
fn created_is_rfc3339_utc() {
    assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
    assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
    assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
}

#[test]
fn config_json_is_byte_stable_with_sorted_keys() {
    let mut img = image("app");
    img.entrypoint = exec(&["/app/goapp"]);
    img.labels = (0..20)
        .map(|i| (format!("l{i:02}"), i.to_string()))
        .collect();
    img.expose = (8000..8020).map(|p| format!("{p}/tcp")).collect();
    img.env = BTreeMap::from([("PORT".into(), "8080".into()), ("A".into(), "1".into())]);
    let c = merge(None, &img, img.name.value.as_str());
    let first = config_json(&c, &[layer(1), layer(2)], 0, "amd64");
    for _ in 0..10 {
        // HashMaps inside oci-spec iterate in a new order each time.
        assert_eq!(
            config_json(
                &merge(None, &img, img.name.value.as_str()),
                &[layer(1), layer(2)],
                0,
                "amd64"
            ),
            first
        );
    }
    let text = String::from_utf8(first).unwrap();
    assert!(text.contains(r#""Env":["A=1","PORT=8080"]"#), "{text}");
    assert!(
        text.contains(r#""created":"1970-01-01T00:00:00Z""#),
        "{text}"
    );
    assert!(
        text.contains(r#""created_by":"kiln: copy s2 . to=/""#),
        "{text}"
    );
    let l00 = text.find(r#""l00""#).unwrap();
    assert!(l00 < text.find(r#""l19""#).unwrap());
    assert!(text.contains(r#""8000/tcp":{}"#), "{text}");
}

#[test]
fn manifest_names_zstd_layers_and_the_config() {
    let cfg = Digest::of(b"cfg");
    let json = manifest_json(&cfg, 3, &[layer(1)]);
    let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(v["mediaType"], "application/vnd.oci.image.manifest.v1+json");
    assert_eq!(
        v["config"]["mediaType"],
        "application/vnd.oci.image.config.v1+json"
    );
    assert_eq!(v["config"]["digest"], cfg.to_string());
    assert_eq!(
        v["layers"][0]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+zstd"
    );
    assert_eq!(v["layers"][0]["size"], 11);
}

#[test]
fn docker_manifest_points_at_the_oci_blobs() {
    let json = docker_manifest_json(&Digest::of(b"c"), &["app:v2".into()], &[layer(1)]);
    let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(
        v[0]["Config"],
        format!("blobs/sha256/{}", Digest::of(b"c").hex())
    );
    assert_eq!(v[0]["RepoTags"][0], "app:v2");
    assert_eq!(
        v[0]["Layers"][0],
        format!("blobs/sha256/{}", Digest::of(&[1]).hex())
    );
}

#[test]
fn a_child_image_overrides_and_merges_its_parents_settings() {
    let mut parent = image("base");
    parent.entrypoint = exec(&["/bin/app"]);
    parent.cmd = exec(&["--serve"]);
    parent.env = BTreeMap::from([("A".into(), "1".into()), ("B".into(), "1".into())]);
    parent.workdir = Some(sp("/srv".into()));
    parent.labels = BTreeMap::from([("team".into(), "x".into())]);
    let p = merge(None, &parent, parent.name.value.as_str());
    assert_eq!(p.labels[TITLE_LABEL], "base");

    let mut child = image("child");
    child.env = BTreeMap::from([("B".into(), "2".into())]);
    child.entrypoint = Some(sp(Command::Shell("exec app".into())));
    child.labels = BTreeMap::from([(TITLE_LABEL.into(), "Mine".into())]);
    let c = merge(Some(&p), &child, child.name.value.as_str());
    assert_eq!(
        c.entrypoint.as_deref(),
        Some(&["/bin/sh".into(), "-c".into(), "exec app".into()][..])
    );
    assert_eq!(c.cmd, None, "a new entrypoint drops the inherited cmd");
    assert_eq!(c.env["A"], "1");
    assert_eq!(c.env["B"], "2");
    assert_eq!(c.workdir.as_deref(), Some("/srv"));
    assert_eq!(c.labels["team"], "x");
    assert_eq!(
        c.labels[TITLE_LABEL], "Mine",
        "user labels win over the default title"
    );
}

#[test]
fn index_names_the_manifest_once_per_tag() {
    let m = Digest::of(b"m");
    let v: serde_json::Value =
        serde_json::from_slice(&index_json(&m, 7, &["a:1".into(), "a:2".into()])).unwrap();
    assert_eq!(v["manifests"].as_array().unwrap().len(), 2);
    assert_eq!(v["manifests"][1]["annotations"][REF_NAME], "a:2");
    assert_eq!(v["manifests"][0]["digest"], m.to_string());
}
