//! End-to-end against registries that want TLS and credentials: Debian's
//! distribution 2.8 with a certificate signed by a CA made here, behind
//! htpasswd basic auth or the bearer-token flow (a token server of the
//! test's own, [`token_server`]). Each test has its own registry, project
//! and store; credentials come from a `config.json` of its own
//! (`DOCKER_CONFIG`), CAs from `KILN_CERTS_D` or `--registry-ca`.

mod pki;
mod setup;
mod token_server;

use base64::Engine;

use crate::common::registry::skopeo;
use pki::Ca;
use setup::*;

// ---- TLS and basic auth -----------------------------------------------

#[test]
fn a_tls_registry_with_basic_auth_serves_a_base_given_its_ca_and_credentials() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let Some((registry, ca, digest)) = tls_basic_registry(tmp.path()) else {
        return;
    };
    let host = registry.host();
    let reference = format!("{host}/bb:1@{digest}");
    let config = docker_config(tmp.path(), "docker", &host, USER, PASSWORD);

    // The CA through Docker's certs.d layout.
    let certs = certs_d(tmp.path(), "certs.d", &host, &ca.cert);
    let p = project(&reference);
    let env = [
        ("DOCKER_CONFIG", config.as_path()),
        ("KILN_CERTS_D", &certs),
    ];
    assert_ok(&kiln(&p, &["build", "child"], &env));
    let layers = inspected(&p, &env)["layers"].as_array().map(Vec::len);
    assert_eq!(layers, Some(3), "busybox's three layers");

    // The CA given on the command line, to a fresh store.
    let p = project(&reference);
    let env = [("DOCKER_CONFIG", config.as_path())];
    let ca_flag = ca.cert.to_str().expect("UTF-8");
    assert_ok(&kiln(
        &p,
        &["--registry-ca", ca_flag, "build", "child"],
        &env,
    ));
}

#[test]
fn a_tls_registry_refuses_a_pull_without_credentials_naming_what_was_tried() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let Some((registry, ca, digest)) = tls_basic_registry(tmp.path()) else {
        return;
    };
    let host = registry.host();
    let certs = certs_d(tmp.path(), "certs.d", &host, &ca.cert);
    let p = project(&format!("{host}/bb:1@{digest}"));

    // No config.json at all.
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).expect("mkdir");
    let out = kiln(
        &p,
        &["build", "child"],
        &[("DOCKER_CONFIG", &empty), ("KILN_CERTS_D", &certs)],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(said(&err, "refused"), "{err}");
    assert!(said(&err, &format!("{host}/bb")), "{err}");
    let config_json = empty.join("config.json");
    assert!(
        said(
            &err,
            &format!("no credentials ({} does not exist)", config_json.display())
        ),
        "{err}"
    );

    // A wrong password: the entry is named, the password is not printed.
    let wrong = "not-the-Pa55word";
    let config = docker_config(tmp.path(), "wrong", &host, USER, wrong);
    let out = kiln(
        &p,
        &["build", "child"],
        &[("DOCKER_CONFIG", &config), ("KILN_CERTS_D", &certs)],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(said(&err, "refused"), "{err}");
    let named = format!(
        "the `auths` entry for `{host}` in {}",
        config.join("config.json").display()
    );
    assert!(said(&err, &named), "{err}");
    for secret in [wrong, PASSWORD] {
        assert!(!err.contains(secret), "a password in: {err}");
    }
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{wrong}"));
    assert!(!said(&err, &encoded), "the encoded password in: {err}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains(wrong));
}

#[test]
fn a_tls_registry_whose_ca_is_not_trusted_fails_naming_the_host() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let Some((registry, _ca, digest)) = tls_basic_registry(tmp.path()) else {
        return;
    };
    let host = registry.host();
    let config = docker_config(tmp.path(), "docker", &host, USER, PASSWORD);
    let p = project(&format!("{host}/bb:1@{digest}"));
    // Another CA: configured (so kiln speaks HTTPS to this loopback
    // registry) but not the one that signed its certificate.
    let other = Ca::new(tmp.path(), "other");
    let certs = certs_d(tmp.path(), "certs.d", &host, &other.cert);
    let other_flag = other.cert.to_str().expect("UTF-8");
    for (args, env) in [
        (
            vec!["build", "child"],
            vec![
                ("DOCKER_CONFIG", config.as_path()),
                ("KILN_CERTS_D", &certs),
            ],
        ),
        (
            vec!["--registry-ca", other_flag, "build", "child"],
            vec![("DOCKER_CONFIG", config.as_path())],
        ),
    ] {
        let out = kiln(&p, &args, &env);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(
            said(
                &err,
                &format!("Cannot verify the TLS certificate of `{host}`")
            ),
            "{err}"
        );
        assert!(said(&err, "UnknownIssuer"), "{err}");
        assert!(said(&err, "--registry-ca"), "the help: {err}");
    }
}

#[test]
fn a_registry_ca_that_is_not_a_certificate_is_an_error_naming_the_file() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let Some((registry, _ca, digest)) = tls_basic_registry(tmp.path()) else {
        return;
    };
    let host = registry.host();
    let p = project(&format!("{host}/bb:1@{digest}"));
    let bad = tmp.path().join("bad.crt");
    std::fs::write(&bad, "not a certificate\n").expect("write");
    // Given on the command line, and found in certs.d.
    let certs = certs_d(tmp.path(), "certs.d", &host, &bad);
    let in_certs_d = certs.join(&host).join("ca.crt");
    let bad_flag = bad.to_str().expect("UTF-8");
    for (args, env, file) in [
        (
            vec!["--registry-ca", bad_flag, "build", "child"],
            vec![],
            &bad,
        ),
        (
            vec!["build", "child"],
            vec![("KILN_CERTS_D", certs.as_path())],
            &in_certs_d,
        ),
    ] {
        let out = kiln(&p, &args, &env);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(
            said(
                &err,
                &format!("Cannot use `{}` as a registry CA", file.display())
            ),
            "{err}"
        );
    }
}

#[test]
fn kiln_push_to_a_tls_registry_with_credentials_is_what_skopeo_reads() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let Some((registry, ca, digest)) = tls_basic_registry(tmp.path()) else {
        return;
    };
    let host = registry.host();
    let config = docker_config(tmp.path(), "docker", &host, USER, PASSWORD);
    let certs = certs_d(tmp.path(), "certs.d", &host, &ca.cert);
    let target = format!("{host}/child:v1");
    let p = project(&format!("{host}/bb:1@{digest}"));
    let env = [
        ("DOCKER_CONFIG", config.as_path()),
        ("KILN_CERTS_D", &certs),
    ];
    let out = kiln(&p, &["push", "child", &target], &env);
    assert_ok(&out);
    let digest = inspected(&p, &env)["digest"]
        .as_str()
        .expect("digest")
        .to_owned();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("{target}@{digest}\n")
    );
    let mut args = vec!["inspect".to_owned()];
    args.extend(registry.skopeo_flags("--"));
    args.push(format!("docker://{target}"));
    let seen = skopeo(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let seen: serde_json::Value = serde_json::from_slice(&seen).expect("JSON");
    assert_eq!(seen["Digest"], digest);

    // Without credentials the push is refused, naming what was tried.
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).expect("mkdir");
    let out = kiln(
        &p,
        &["push", "child", &format!("{host}/child:v2")],
        &[("DOCKER_CONFIG", &empty), ("KILN_CERTS_D", &certs)],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        said(&err, "refused") && said(&err, "no credentials"),
        "{err}"
    );
}

// ---- the bearer-token flow --------------------------------------------

#[test]
fn a_base_is_pulled_and_an_image_pushed_through_the_token_flow() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let Some((registry, tokens, digest)) = token_registry(tmp.path()) else {
        return;
    };
    let host = registry.host();
    let config = docker_config(tmp.path(), "docker", &host, USER, PASSWORD);
    let env = [("DOCKER_CONFIG", config.as_path())];
    let p = project(&format!("{host}/bb:1@{digest}"));
    let before = tokens.issued();
    assert_ok(&kiln(&p, &["build", "child"], &env));
    assert!(tokens.issued() > before, "kiln got no token");

    // Pushed back under another name (scope pull,push), and read by skopeo
    // through the same flow.
    let target = format!("{host}/child:v1");
    let out = kiln(&p, &["push", "child", &target], &env);
    assert_ok(&out);
    let pushed = String::from_utf8_lossy(&out.stdout).into_owned();
    let seen = registry.manifest_digest("child:v1");
    assert_eq!(pushed, format!("{target}@{seen}\n"));
}

#[test]
fn wrong_credentials_for_the_token_flow_are_refused() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let Some((registry, tokens, digest)) = token_registry(tmp.path()) else {
        return;
    };
    let host = registry.host();
    let wrong = "wr0ng-token-pa55";
    let config = docker_config(tmp.path(), "wrong", &host, USER, wrong);
    let right = docker_config(tmp.path(), "right", &host, USER, PASSWORD);
    let reference = format!("{host}/bb:1@{digest}");
    // `pushed` has the base in its store already, so its push is refused
    // at the push itself, not at the pull before it.
    let pulled = project(&reference);
    let pushed = project(&reference);
    assert_ok(&kiln(
        &pushed,
        &["build", "child"],
        &[("DOCKER_CONFIG", &right)],
    ));
    let env = [("DOCKER_CONFIG", config.as_path())];
    let before = tokens.issued();
    let target = format!("{host}/child:v1");
    for (p, args) in [
        (&pulled, vec!["build", "child"]),
        (&pushed, vec!["push", "child", &target]),
    ] {
        let out = kiln(p, &args, &env);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(said(&err, "refused"), "{err}");
        assert!(
            said(&err, &format!("the `auths` entry for `{host}`")),
            "{err}"
        );
        assert!(!err.contains(wrong), "the password in: {err}");
    }
    assert_eq!(tokens.issued(), before, "a token for wrong credentials");
}
