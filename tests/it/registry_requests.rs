//! What kiln asks a registry for: in one build, each manifest or index of
//! a base once, though the survey reads it for the base's config digest
//! before the pull reads it again. Counted in the registry's access log.

use crate::common::Project;
use crate::common::registry::{Registry, arch_image};
use crate::common::skip::require_sandbox;

/// `GET` requests for `/v2/REPO/manifests/DIGEST` in the registry's log.
fn manifest_gets(registry: &Registry, repo: &str, digest: &kiln::hash::Digest) -> usize {
    let asked = format!("\"GET /v2/{repo}/manifests/{digest} ");
    registry.log().matches(&asked).count()
}

/// A base from `reference`, a stage run in it: a build with a cache looks
/// the stage up (so reads the base's config digest from its manifest),
/// misses, and pulls the base to run the stage.
fn stage_in(reference: &str) -> String {
    format!(
        r#"
base multi {{
    image "{reference}"
}}
stage arch {{
    from multi
    run "cat /etc/arch > $out/arch"
}}
"#
    )
}

#[test]
fn a_base_surveyed_then_pulled_has_its_index_and_manifest_asked_for_once() {
    let Some(registry) = Registry::start() else {
        return;
    };
    if !require_sandbox() {
        return;
    }
    let pushed = registry.push_index(&arch_image("amd64"), &arch_image("arm64"), "multi:1");
    let host_manifest = match std::env::consts::ARCH {
        "aarch64" => pushed.arm64,
        _ => pushed.amd64,
    };
    let before = (
        manifest_gets(&registry, "multi", &pushed.index),
        manifest_gets(&registry, "multi", &host_manifest),
    );
    let p = Project::new(&stage_in(&format!(
        "{}/multi:1@{}",
        registry.host(),
        pushed.index
    )));
    let cache = format!("{}/cache", registry.host());
    let report = p.build(&["--cache", &cache]);
    assert_eq!(report.status("arch"), "built", "{}", report.0);
    let asked = (
        manifest_gets(&registry, "multi", &pushed.index) - before.0,
        manifest_gets(&registry, "multi", &host_manifest) - before.1,
    );
    assert_eq!(
        asked,
        (1, 1),
        "GETs of (index, manifest):\n{}",
        registry.log()
    );
}
