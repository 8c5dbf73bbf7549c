//! Credentials the way Docker keeps them: `$DOCKER_CONFIG/config.json`
//! (else `~/.docker/config.json`): `credHelpers` for the host, else
//! `credsStore`, each asked through its `docker-credential-NAME get`
//! program, else `auths` (a base64 `user:password`). Without any, anonymous
//! (the registry's bearer-token flow still runs, as Docker's does). Reads
//! files and runs helpers; never prints or stores a secret: what it returns
//! besides the credentials ([`Source`]) says where they came from, for a
//! "denied" message, and holds no part of them.

use std::fmt;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use base64::Engine;
use oci_client::secrets::RegistryAuth;

/// Where the credentials for a registry came from, or why there were none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Source {
    /// `docker-credential-NAME`, named by `credHelpers` (or `credsStore`).
    Helper {
        program: String,
        store: bool,
        config: PathBuf,
    },
    /// The `auths` entry `key` of `config`.
    Auths { key: String, config: PathBuf },
    /// Anonymous, because of `why`.
    Nothing {
        config: Option<PathBuf>,
        why: Missing,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Missing {
    /// Neither `$DOCKER_CONFIG` nor a home directory.
    NoConfigDir,
    NoFile,
    /// The file exists but cannot be read or is not JSON.
    Unreadable,
    /// No entry names the host (`key` is how it was looked up).
    NoEntry {
        key: String,
    },
    /// The helper `program` failed, and `auths` has nothing for the host.
    HelperFailed {
        program: String,
    },
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = |p: &Option<PathBuf>| match p {
            Some(p) => p.display().to_string(),
            None => "config.json".to_owned(),
        };
        match self {
            Source::Helper {
                program,
                store,
                config,
            } => {
                let key = if *store { "credsStore" } else { "credHelpers" };
                write!(f, "`{program}` (`{key}` in {})", config.display())
            }
            Source::Auths { key, config } => {
                write!(f, "the `auths` entry for `{key}` in {}", config.display())
            }
            Source::Nothing { config, why } => {
                let config = shown(config);
                match why {
                    Missing::NoConfigDir => write!(
                        f,
                        "no credentials (neither $DOCKER_CONFIG nor a home directory is set)"
                    ),
                    Missing::NoFile => write!(f, "no credentials ({config} does not exist)"),
                    Missing::Unreadable => {
                        write!(f, "no credentials ({config} cannot be read as JSON)")
                    }
                    Missing::NoEntry { key } => write!(
                        f,
                        "no credentials (no `credHelpers`, `credsStore` or `auths` entry for \
                         `{key}` in {config})"
                    ),
                    Missing::HelperFailed { program } => write!(
                        f,
                        "no credentials (`{program}` from {config} failed, and `auths` has no \
                         entry for the host)"
                    ),
                }
            }
        }
    }
}

/// The credentials for `registry` (`host[:port]`) and where they came
/// from; anonymous when none is configured or a helper fails.
pub(super) fn for_registry(registry: &str) -> (RegistryAuth, Source) {
    let anonymous =
        |config: Option<PathBuf>, why| (RegistryAuth::Anonymous, Source::Nothing { config, why });
    let Some(path) = config_path() else {
        return anonymous(None, Missing::NoConfigDir);
    };
    let config = match std::fs::read(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return anonymous(Some(path), Missing::NoFile);
        }
        Err(_) => return anonymous(Some(path), Missing::Unreadable),
        Ok(text) => match serde_json::from_slice::<serde_json::Value>(&text) {
            Ok(config) => config,
            Err(_) => return anonymous(Some(path), Missing::Unreadable),
        },
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
    let helper = match keys.iter().find_map(|k| config["credHelpers"][k].as_str()) {
        Some(helper) => Some((helper, false)),
        None => config["credsStore"].as_str().map(|h| (h, true)),
    };
    let mut failed = None;
    if let Some((helper, store)) = helper {
        let program = format!("docker-credential-{helper}");
        match from_helper(&program, &keys[0]) {
            Some(auth) => {
                let source = Source::Helper {
                    program,
                    store,
                    config: path,
                };
                return (auth, source);
            }
            None => failed = Some(program),
        }
    }
    if let Some((key, auth)) =
        (keys.iter()).find_map(|k| Some((k, from_auths(&config["auths"][k])?)))
    {
        let source = Source::Auths {
            key: key.clone(),
            config: path,
        };
        return (auth, source);
    }
    let why = match failed {
        Some(program) => Missing::HelperFailed { program },
        None => Missing::NoEntry {
            key: keys[0].clone(),
        },
    };
    anonymous(Some(path), why)
}

fn config_path() -> Option<PathBuf> {
    let dir = match std::env::var_os("DOCKER_CONFIG") {
        Some(dir) => PathBuf::from(dir),
        None => std::env::home_dir()?.join(".docker"),
    };
    Some(dir.join("config.json"))
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

/// `PROGRAM get`, the server on stdin; JSON `{"Username", "Secret"}` on
/// stdout. A user `<token>` means the secret is an identity token, which
/// the token flow takes as a bearer token.
fn from_helper(program: &str, server: &str) -> Option<RegistryAuth> {
    let mut child = Command::new(program)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        // A helper's complaint may quote what it was given; kiln says only
        // that it failed.
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

    #[test]
    fn sources_name_the_file_and_entry_but_hold_no_secret() {
        let config = PathBuf::from("/tmp/x/config.json");
        let auths = Source::Auths {
            key: "127.0.0.1:5001".into(),
            config: config.clone(),
        };
        assert_eq!(
            auths.to_string(),
            "the `auths` entry for `127.0.0.1:5001` in /tmp/x/config.json"
        );
        let helper = Source::Helper {
            program: "docker-credential-pass".into(),
            store: true,
            config: config.clone(),
        };
        assert_eq!(
            helper.to_string(),
            "`docker-credential-pass` (`credsStore` in /tmp/x/config.json)"
        );
        let none = Source::Nothing {
            config: Some(config),
            why: Missing::NoEntry {
                key: "ghcr.io".into(),
            },
        };
        assert_eq!(
            none.to_string(),
            "no credentials (no `credHelpers`, `credsStore` or `auths` entry for `ghcr.io` \
             in /tmp/x/config.json)"
        );
    }
}
