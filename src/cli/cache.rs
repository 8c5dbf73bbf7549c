//! `--cache …` into a [`Remote`], and `kiln cache keygen`.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;

use super::CliError;
use super::args::{CacheCommand, Global};
use crate::cache::{PublicKey, Remote, SecretKey};
use crate::fsx::IoContext;

/// The remote cache the options name, if any; a bad key is a usage error.
pub fn remote(g: &Global) -> Result<Option<Remote>, CliError> {
    let Some(repository) = &g.cache.repository else {
        return Ok(None);
    };
    let usage = |message: String, help: &str| CliError::Usage {
        message,
        help: help.to_owned(),
    };
    let signer = match &g.cache.sign_key {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                usage(
                    format!("Cannot read the signing key `{}`: {e}", path.display()),
                    "make one with `kiln cache keygen NAME -o FILE`",
                )
            })?;
            Some(SecretKey::parse(&text).map_err(|e| {
                usage(
                    format!("`{}` is not a secret key: {e}", path.display()),
                    "make one with `kiln cache keygen NAME -o FILE`",
                )
            })?)
        }
        None => None,
    };
    let trusted = (g.cache.trust.iter())
        .map(|k| {
            PublicKey::parse(k).map_err(|e| {
                usage(
                    format!("`{k}` is not a public key: {e}"),
                    "`kiln cache keygen` prints one: `name:base64`",
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let access = g.registry_access();
    Ok(Some(Remote::new(
        repository,
        &access,
        g.cache.push,
        signer,
        trusted,
    )?))
}

pub fn run(command: &CacheCommand) -> Result<(), CliError> {
    match command {
        CacheCommand::Keygen { name, output } => {
            let (secret, public) = crate::cache::keygen(name);
            // Private from its first byte: the file is created 0600.
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(output)
                .at(output)?;
            writeln!(file, "{}", secret.to_text()).at(output)?;
            crate::outln!("{public}")?;
            Ok(())
        }
    }
}
