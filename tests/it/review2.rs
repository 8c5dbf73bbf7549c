//! Adversarial review, round 2b: manifests read by kiln itself
//! (`registry/manifest.rs`), bases left at their registries, images keyed
//! by a registry base's key. A test that is `#[ignore]`d names the finding
//! it shows and is not fixed.

use crate::common::registry::Registry;
use crate::common::{Project, Report};

/// A busybox image pushed to `registry` as `bb:1`: its pinned reference.
fn pushed_base(registry: &Registry) -> String {
    use crate::common::images::{Compress, busybox_image_with, write_docker_archive};
    let tmp = tempfile::tempdir().expect("temp dir");
    let archive = tmp.path().join("bb.tar");
    write_docker_archive(&busybox_image_with(Compress::Gzip), &archive);
    let digest = registry.push_archive(&archive, "docker-archive", "bb:1");
    format!("{}/bb:1@{digest}", registry.host())
}

fn image<'a>(report: &'a Report, name: &str) -> &'a serde_json::Value {
    let images = report.0["images"].as_array().expect("images");
    (images.iter())
        .find(|i| i["name"] == name)
        .unwrap_or_else(|| panic!("no image {name} in {}", report.0))
}

/// An image from a registry base, both in a shared file imported under
/// `alias`.
fn importer(shared: &str, alias: &str) -> Project {
    let p = Project::new(&format!("import \"shared.kdl\" as={alias}\n"));
    p.write("shared.kdl", shared);
    p
}

/// Both projects' `app`: same key, and its config and `why` records.
fn app_under_two_aliases(registry: &Registry) -> [(String, serde_json::Value, String); 2] {
    let shared = format!(
        "base busybox {{\n    image \"{}\"\n}}\nimage app {{\n    from busybox\n    env A=\"1\"\n}}\n",
        pushed_base(registry)
    );
    ["one", "two"].map(|alias| {
        let p = importer(&shared, alias);
        let report = p.build(&[]);
        let app = image(&report, &format!("{alias}.app"));
        let out = std::path::Path::new(app["output"].as_str().expect("output"));
        let config = std::fs::read(out.join("config.json")).expect("config.json");
        let config: serde_json::Value = serde_json::from_slice(&config).expect("config");
        let files = std::fs::read_to_string(out.join("files.json")).expect("files.json");
        (app["key"].as_str().expect("key").to_owned(), config, files)
    })
}

/// An image made from a registry base is keyed by the base's key, which
/// takes the base's name as its file writes it (`busybox`, whatever the
/// alias): so two importers share the image (one store, one cache). What
/// the base brings into it (its layers' history lines, what `kiln why`
/// says of its files) named the base as the importer does
/// (`one.busybox`): one key, two images.
#[test]
fn an_image_from_a_registry_base_under_two_aliases_is_one_key_and_one_image() {
    let Some(registry) = Registry::start() else {
        return;
    };
    let [
        (key_one, config_one, why_one),
        (key_two, config_two, why_two),
    ] = app_under_two_aliases(&registry);
    assert_eq!(key_one, key_two, "the image is keyed without the alias");
    assert_eq!(config_one["history"], config_two["history"]);
    assert!(
        config_one["history"][0]["created_by"] == "kiln: from base busybox",
        "{}",
        config_one["history"]
    );
    assert_eq!(why_one, why_two, "what `kiln why` reports");
}

/// The same image's title label was its name as the importer writes it
/// (`one.app`), while its key holds the name as its file writes it
/// (`app`): two configs under one key (an image from `scratch` in an
/// imported file or a template instance had it too; `imports.rs` asserts
/// the shared key). The label is now the name as its file writes it.
#[test]
fn an_image_under_two_aliases_has_one_title() {
    let Some(registry) = Registry::start() else {
        return;
    };
    let [(key_one, config_one, _), (key_two, config_two, _)] = app_under_two_aliases(&registry);
    assert_eq!(key_one, key_two);
    assert_eq!(
        config_one["config"]["Labels"],
        config_two["config"]["Labels"]
    );
}
