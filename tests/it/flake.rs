//! `flake.nix` parses (`nix-instantiate --parse`, Debian's nix-bin) and
//! has an app for every example (a directory of `examples/` with a
//! kiln.kdl: `examples/toolchains` holds files the examples import). Without nix-instantiate the test is
//! skipped, unless `KILN_E2E=1` demands it.

use std::path::Path;
use std::process::Command;

use crate::common::skip::require;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn flake_nix_parses() {
    if !require("nix-instantiate") {
        return;
    }
    let out = Command::new("nix-instantiate")
        .arg("--parse")
        .arg(repo().join("flake.nix"))
        .output()
        .expect("run nix-instantiate");
    assert!(
        out.status.success(),
        "flake.nix does not parse:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn flake_nix_has_an_app_for_every_example() {
    let flake = std::fs::read_to_string(repo().join("flake.nix")).expect("read flake.nix");
    for entry in std::fs::read_dir(repo().join("examples")).expect("examples/") {
        let entry = entry.expect("dir entry");
        if !entry.path().join("kiln.kdl").exists() {
            continue;
        }
        let name = entry.file_name();
        let name = name.to_str().expect("utf-8 name");
        assert!(
            flake.contains(&format!("\"{name}\"")),
            "flake.nix has no app for examples/{name}"
        );
    }
}
