//! `kiln load`: streams the archive into `docker load` or `podman load`.
//! Spawns a process; the engine CLI picks up `DOCKER_HOST` and friends from
//! the environment kiln inherited.

use std::io::Write;
use std::process::{Command, Stdio};

use super::archive::{check_blobs, write_archive};
use crate::image::{Assembled, ExportError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Engine {
    #[default]
    Docker,
    Podman,
}

impl Engine {
    pub fn program(self) -> &'static str {
        match self {
            Engine::Docker => "docker",
            Engine::Podman => "podman",
        }
    }
}

/// Loads `img` into `engine`; returns the references the engine reports.
pub fn load(img: &Assembled, engine: Engine) -> Result<Vec<String>, ExportError> {
    // The engine would load whatever it is sent: nothing goes until every
    // blob is known good.
    check_blobs(img)?;
    let program = engine.program();
    let mut child = Command::new(program)
        .arg("load")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| ExportError::EngineSpawn {
            engine: program,
            source,
        })?;
    let stdin = child.stdin.take().expect("kiln bug: stdin is piped");
    // Write from another thread so an engine that talks before it has read
    // everything cannot deadlock us on a full stdout pipe.
    let (written, output) = std::thread::scope(|s| {
        let writer = std::thread::Builder::new().spawn_scoped(s, move || {
            let mut stdin = stdin;
            write_archive(img, &mut stdin)?;
            stdin
                .flush()
                .map_err(|source| ExportError::Write { source })
        });
        // A writer that could not start dropped the engine's stdin: the
        // engine reads an empty archive and ends.
        let output = child.wait_with_output();
        let written = match writer {
            Ok(writer) => Ok(writer.join().expect("kiln bug: archive writer panicked")),
            // No thread to spare (the user's process limit): that is the
            // failure, whatever the engine made of no input.
            Err(source) => Err(ExportError::Write { source }),
        };
        (written, output)
    });
    let written = written?;
    let output = output.map_err(|source| ExportError::EngineSpawn {
        engine: program,
        source,
    })?;
    if !output.status.success() {
        return Err(ExportError::EngineFailed {
            engine: program,
            status: output.status,
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        });
    }
    written?;
    Ok(loaded_refs(&String::from_utf8_lossy(&output.stdout)))
}

/// `Loaded image: a:b` (docker), `Loaded image(s): a:b,c:d` or
/// `Loaded image: localhost/a:b` (podman).
fn loaded_refs(stdout: &str) -> Vec<String> {
    let mut refs = Vec::new();
    for line in stdout.lines() {
        let rest = line
            .strip_prefix("Loaded image(s): ")
            .or(line.strip_prefix("Loaded image: "));
        if let Some(rest) = rest {
            refs.extend(
                rest.split(',')
                    .map(|r| r.trim().to_owned())
                    .filter(|r| !r.is_empty()),
            );
        }
    }
    refs
}

#[cfg(test)]
mod tests {
    #[test]
    fn loaded_references_are_read_from_docker_and_podman_output() {
        let docker = "Loaded image: app:v2\nLoaded image: app:latest\n";
        assert_eq!(super::loaded_refs(docker), ["app:v2", "app:latest"]);
        let podman = "Getting image source signatures\nLoaded image(s): localhost/app:v2,localhost/app:latest\n";
        assert_eq!(
            super::loaded_refs(podman),
            ["localhost/app:v2", "localhost/app:latest"]
        );
    }
}
