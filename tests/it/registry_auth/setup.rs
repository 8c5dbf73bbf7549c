//! The registries, Docker configs, certs.d layouts and projects the
//! `registry_auth` tests use, and how they run kiln and read its stderr.

use std::path::{Path, PathBuf};
use std::process::Output;

use base64::Engine;

use super::pki::{self, Ca};
use super::token_server::{Issuer, TokenServer};
use crate::common::Project;
use crate::common::images::{Compress, busybox_image_with, write_docker_archive};
use crate::common::registry::{Auth, Registry, Secured};
use crate::common::skip::require_all;
use kiln::hash::Digest;

pub const USER: &str = "kiln";
pub const PASSWORD: &str = "s3cret-pa55word";

/// A registry over TLS (a CA of this test signed its certificate) with
/// htpasswd basic auth, holding the busybox image as `bb:1`; its CA, and
/// the image's digest. `None`: skipped.
pub fn tls_basic_registry(tmp: &Path) -> Option<(Registry, Ca, Digest)> {
    if !require_all(&["openssl", "htpasswd"]) {
        return None;
    }
    let ca = Ca::new(tmp, "ca");
    let secured = Secured {
        tls: Some(ca.server_cert(tmp)),
        auth: Some(Auth::Htpasswd {
            file: pki::htpasswd(tmp, USER, PASSWORD),
            user: USER.into(),
            password: PASSWORD.into(),
        }),
    };
    let registry = Registry::start_secured(secured)?;
    let digest = push_busybox(&registry);
    Some((registry, ca, digest))
}

pub fn push_busybox(registry: &Registry) -> Digest {
    let tmp = tempfile::tempdir().expect("temp dir");
    let archive = tmp.path().join("bb.tar");
    write_docker_archive(&busybox_image_with(Compress::Gzip), &archive);
    registry.push_archive(&archive, "docker-archive", "bb:1")
}

/// A Docker config dir in `tmp/NAME` whose `config.json` has an `auths`
/// entry for `host` with `user:password`.
pub fn docker_config(tmp: &Path, name: &str, host: &str, user: &str, password: &str) -> PathBuf {
    let dir = tmp.join(name);
    std::fs::create_dir_all(&dir).expect("mkdir");
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let config = serde_json::json!({ "auths": { host: { "auth": auth } } });
    std::fs::write(dir.join("config.json"), config.to_string()).expect("write config.json");
    dir
}

/// A `certs.d` in `tmp/NAME` trusting `ca` for `host`, as Docker lays it
/// out.
pub fn certs_d(tmp: &Path, name: &str, host: &str, ca: &Path) -> PathBuf {
    let dir = tmp.join(name);
    std::fs::create_dir_all(dir.join(host)).expect("mkdir");
    std::fs::copy(ca, dir.join(host).join("ca.crt")).expect("copy the CA");
    dir
}

/// A project whose image `child` is the base `bb` pulled from `reference`.
pub fn project(reference: &str) -> Project {
    Project::new(&format!(
        r#"
base bb {{
    image "{reference}"
}}
image child {{
    from bb
    entrypoint "/bin/sh"
}}
"#
    ))
}

/// `kiln ARGS` in `p` with `env` set (and no `KILN_*` registry settings
/// from outside).
pub fn kiln(p: &Project, args: &[&str], env: &[(&str, &Path)]) -> Output {
    let mut cmd = p.cmd(args);
    for var in [
        "KILN_CERTS_D",
        "KILN_REGISTRY_CA",
        "KILN_INSECURE_REGISTRIES",
    ] {
        cmd.env_remove(var);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run kiln")
}

/// kiln's stderr with miette's wrapping undone: without whitespace and
/// margins (`│`), as [`said`] compares. miette breaks lines at spaces and
/// at the `/`s of a path.
pub fn stderr(out: &Output) -> String {
    squash(&String::from_utf8_lossy(&out.stderr))
}

pub fn squash(text: &str) -> String {
    (text.chars())
        .filter(|c| !c.is_whitespace() && *c != '│')
        .collect()
}

/// Whether `err` (from [`stderr`]) says `what`, whitespace aside.
pub fn said(err: &str, what: &str) -> bool {
    err.contains(&squash(what))
}

#[track_caller]
pub fn assert_ok(out: &Output) {
    assert!(out.status.success(), "kiln failed:\n{}", stderr(out));
}

/// `kiln inspect child --json`.
pub fn inspected(p: &Project, env: &[(&str, &Path)]) -> serde_json::Value {
    let out = kiln(p, &["inspect", "child", "--json"], env);
    assert_ok(&out);
    serde_json::from_slice(&out.stdout).expect("inspect JSON")
}

/// A plain-HTTP registry whose clients get tokens from a token server of
/// this test, which lets in [`USER`] with [`PASSWORD`]; busybox as `bb:1`.
pub fn token_registry(tmp: &Path) -> Option<(Registry, TokenServer, Digest)> {
    if !require_all(&["openssl"]) {
        return None;
    }
    let (cert, key) = pki::token_signer(tmp);
    let issuer = Issuer {
        user: USER.into(),
        password: PASSWORD.into(),
        service: "kiln-test-registry".into(),
        issuer: "kiln-test-issuer".into(),
        cert_der: pki::der(&cert),
        key,
    };
    let tokens = TokenServer::start(issuer.clone());
    let secured = Secured {
        tls: None,
        auth: Some(Auth::Token {
            realm: tokens.realm(),
            service: issuer.service,
            issuer: issuer.issuer,
            rootcertbundle: cert,
            user: USER.into(),
            password: PASSWORD.into(),
        }),
    };
    let registry = Registry::start_secured(secured)?;
    let digest = push_busybox(&registry);
    Some((registry, tokens, digest))
}
