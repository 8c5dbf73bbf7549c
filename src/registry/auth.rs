//! Credentials the way Docker keeps them: `$DOCKER_CONFIG/config.json`
//! (else `~/.docker/config.json`): `credHelpers` for the host, else
//! `credsStore`, each asked through its `docker-credential-NAME get`
//! program, else `auths` (a base64 `user:password`). Without any, anonymous
//! (the registry's bearer-token flow still runs, as Docker's does). Reads
//! files and runs helpers; never prints or stores a secret.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use base64::Engine;
use oci_client::secrets::RegistryAuth;

/// What [`for_registry`] consults, for a "denied" message.
pub(super) const SOURCES: &str =
    "Docker's config.json ($DOCKER_CONFIG or ~/.docker: credHelpers, credsStore, auths)";

/// The credentials for `registry` (`host[:port]`), anonymous when none is
/// configured or a helper fails.
pub(super) fn for_registry(registry: &str) -> RegistryAuth {
    let Some(config) = read_config() else {
        return RegistryAuth::Anonymous;
    };
    // Docker Hub is keyed by its legacy URL in config.json.
    let keys: Vec<String> = match registry {
        "docker.io" | "index.docker.io" => vec![
            "https://index.docker.io/v1/".to_owned(),
            "index.docker.io".to_owned(),
            "docker.io".to_owned(),
        ],
        host => vec![
            host.to_owned(),
            format!("https://{host}"),
            format!("http://{host}"),
        ],
    };
    let helper = keys
        .iter()
        .find_map(|k| config["credHelpers"][k].as_str())
        .or_else(|| config["credsStore"].as_str());
    if let Some(helper) = helper
        && let Some(auth) = from_helper(helper, &keys[0])
    {
        return auth;
    }
    keys.iter()
        .find_map(|k| from_auths(&config["auths"][k]))
        .unwrap_or(RegistryAuth::Anonymous)
}

fn read_config() -> Option<serde_json::Value> {
    let dir = match std::env::var_os("DOCKER_CONFIG") {
        Some(dir) => PathBuf::from(dir),
        None => std::env::home_dir()?.join(".docker"),
    };
    let text = std::fs::read(dir.join("config.json")).ok()?;
    serde_json::from_slice(&text).ok()
}

/// `auths.HOST`: `{"auth": base64("user:password")}` or the two fields.
fn from_auths(entry: &serde_json::Value) -> Option<RegistryAuth> {
    if let Some(encoded) = entry["auth"].as_str() {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .ok()?;
        let text = String::from_utf8(decoded).ok()?;
        let (user, password) = text.split_once(':')?;
        return Some(RegistryAuth::Basic(user.to_owned(), password.to_owned()));
    }
    let user = entry["username"].as_str()?;
    let password = entry["password"].as_str()?;
    Some(RegistryAuth::Basic(user.to_owned(), password.to_owned()))
}

/// `docker-credential-HELPER get`, the server on stdin; JSON
/// `{"Username", "Secret"}` on stdout. A user `<token>` means the secret is
/// an identity token, which the token flow takes as a bearer token.
fn from_helper(helper: &str, server: &str) -> Option<RegistryAuth> {
    let mut child = Command::new(format!("docker-credential-{helper}"))
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    child.stdin.take()?.write_all(server.as_bytes()).ok()?;
    let out = child.wait_with_output().ok()?;
    if !out.status.success() {
        return None;
    }
    let creds: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    let (user, secret) = (creds["Username"].as_str()?, creds["Secret"].as_str()?);
    Some(match user {
        "<token>" => RegistryAuth::Bearer(secret.to_owned()),
        user => RegistryAuth::Basic(user.to_owned(), secret.to_owned()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auths_entries_decode_either_spelling() {
        let encoded = serde_json::json!({ "auth": "dXNlcjpwYTpzcw==" });
        assert!(matches!(
            from_auths(&encoded),
            Some(RegistryAuth::Basic(u, p)) if u == "user" && p == "pa:ss"
        ));
        let fields = serde_json::json!({ "username": "u", "password": "p" });
        assert!(matches!(from_auths(&fields), Some(RegistryAuth::Basic(u, _)) if u == "u"));
        assert!(from_auths(&serde_json::json!({})).is_none());
    }
}
