//! A private OCI registry for tests: Debian's `docker-registry`
//! (distribution 2.8) on a free loopback port, its storage, config and log
//! in a temp dir, deletes enabled. Stopped (by its pid) when dropped.
//! Without the program the test is skipped, as `common::skip` says (under
//! `KILN_E2E=1` it fails).
//!
//! Images go in with `skopeo copy` (plain HTTP: `--dest-tls-verify=false`),
//! and digests come out of `skopeo inspect --raw`: the sha256 of the raw
//! manifest or index bytes, which is what a `…@sha256:` reference pins.
//! Tests that tamper with blobs find them under [`Registry::blob`].
//!
//! [`Registry::start_secured`] adds HTTPS and auth ([`Secured`]); the
//! skopeo helpers then pass its CA and credentials.

mod api;
mod secured;

pub use secured::{Auth, Secured, Tls};

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kiln::hash::Digest;

use super::images::{Compress, Image, busybox_image_with, file, layer, oci_layout};
use super::skip::require_all;

pub struct Registry {
    dir: tempfile::TempDir,
    child: Child,
    port: u16,
    secured: Secured,
}

/// Why a start failed: the port was taken between picking and binding it
/// (try another), or anything else.
#[derive(Debug)]
pub enum StartError {
    PortTaken,
    Other(String),
}

impl Registry {
    /// A running registry, or `None` (after printing why) when the test
    /// should be skipped (a failure under `KILN_E2E=1`). A registry that is
    /// installed but does not start fails the test: it needs no privilege
    /// this machine could lack.
    #[track_caller]
    pub fn start() -> Option<Registry> {
        Self::start_secured(Secured::default())
    }

    /// [`Registry::start`], with TLS and auth as `secured` says.
    #[track_caller]
    pub fn start_secured(secured: Secured) -> Option<Registry> {
        if !require_all(&["docker-registry", "skopeo"]) {
            return None;
        }
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("a free loopback port")
                .port();
            match Self::start_on_secured(port, &secured) {
                Ok(registry) => return Some(registry),
                Err(StartError::PortTaken) => continue,
                Err(StartError::Other(why)) => panic!("the registry did not start: {why}"),
            }
        }
        panic!("the registry did not start: 5 free ports were taken before it bound them");
    }

    /// A registry on 127.0.0.1:`port`.
    pub fn start_on(port: u16) -> Result<Registry, StartError> {
        Self::start_on_secured(port, &Secured::default())
    }

    /// A registry on 127.0.0.1:`port`, secured as `secured` says.
    pub fn start_on_secured(port: u16, secured: &Secured) -> Result<Registry, StartError> {
        let other = |e: std::io::Error| StartError::Other(e.to_string());
        let dir = tempfile::Builder::new()
            .prefix("kiln-registry-")
            .tempdir_in("/tmp")
            .map_err(other)?;
        // Every answer carries this header: a registry of another test that
        // got the port first cannot pass for this one.
        let id = (dir.path().file_name())
            .expect("a temp dir name")
            .to_string_lossy()
            .into_owned();
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\n\
                 log:\n  level: warn\n\
                 storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
                 http:\n  addr: 127.0.0.1:{port}\n  secret: kiln-tests\n  \
                 headers:\n    X-Kiln-Registry: [{id}]\n{}",
                dir.path().join("storage").display(),
                secured.config()
            ),
        )
        .map_err(other)?;
        if let Some(tls) = &secured.tls {
            // skopeo's `--cert-dir` wants a directory of `*.crt` CAs.
            std::fs::create_dir(dir.path().join("certs")).map_err(other)?;
            std::fs::copy(&tls.ca, dir.path().join("certs/ca.crt")).map_err(other)?;
        }
        // distribution 2.8 logs (and writes its access log) to stderr only.
        let log = std::fs::File::create(dir.path().join("registry.log")).map_err(other)?;
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(log.try_clone().map_err(other)?)
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .map_err(|e| StartError::Other(format!("cannot run `docker-registry`: {e}")))?;
        let mut registry = Registry {
            dir,
            child,
            port,
            secured: secured.clone(),
        };
        // Readiness only: which registry answers is told by the header,
        // so the certificate need not be checked here.
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(1)))
            .http_status_as_error(false)
            .tls_config(
                ureq::tls::TlsConfig::builder()
                    .disable_verification(true)
                    .build(),
            )
            .build()
            .into();
        let url = format!("{}://{}/v2/", secured.scheme(), registry.host());
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = registry.child.try_wait() {
                let log = registry.log();
                return Err(if log.contains("address already in use") {
                    StartError::PortTaken
                } else {
                    StartError::Other(format!("it exited ({status}); its log:\n{log}"))
                });
            }
            // 401: a registry with auth asks for credentials even here.
            let ready = if secured.auth.is_some() { 401 } else { 200 };
            let ours = |r: &ureq::http::Response<ureq::Body>| {
                r.status() == ready && r.headers().get("X-Kiln-Registry").is_some_and(|h| h == &id)
            };
            if agent.get(&url).call().is_ok_and(|r| ours(&r)) {
                return Ok(registry);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(StartError::Other(format!(
            "GET {url} did not answer {} (with X-Kiln-Registry: {id}) within 30s; its log:\n{}",
            if secured.auth.is_some() { 401 } else { 200 },
            registry.log()
        )))
    }

    /// `127.0.0.1:PORT`, the host part of a reference.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The storage root (`filesystem.rootdirectory`).
    pub fn storage(&self) -> PathBuf {
        self.dir.path().join("storage")
    }

    /// Where the registry keeps the bytes of blob `digest` (a layer, a
    /// config, a manifest or an index).
    pub fn blob(&self, digest: &Digest) -> PathBuf {
        let hex = digest.hex();
        self.storage()
            .join("docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(&hex)
            .join("data")
    }

    /// What the registry logged so far (warnings, errors, its access log).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// Pushes `archive` (`format`: `docker-archive`, `oci-archive` or `oci`)
    /// to `REPO:TAG` here; the manifest digest the registry holds.
    pub fn push_archive(&self, archive: &Path, format: &str, repo_tag: &str) -> Digest {
        let source = format!("{format}:{}", archive.display());
        self.skopeo_copy(&[&source], repo_tag);
        self.manifest_digest(repo_tag)
    }

    /// The sha256 of the raw manifest (or index) that `REPO:TAG` (or
    /// `REPO@DIGEST`) names here, as `skopeo inspect --raw` reads it.
    pub fn manifest_digest(&self, reference: &str) -> Digest {
        Digest::of(&self.raw_manifest(reference))
    }

    /// The raw manifest or index bytes `REPO:TAG` names here.
    pub fn raw_manifest(&self, reference: &str) -> Vec<u8> {
        let mut args = vec!["inspect".to_owned(), "--raw".to_owned()];
        args.extend(self.skopeo_flags("--"));
        args.push(format!("docker://{}/{reference}", self.host()));
        skopeo(&args.iter().map(String::as_str).collect::<Vec<_>>())
    }

    /// skopeo's flags to reach this registry (CA or no TLS, credentials)
    /// as the source (`--src-`), the destination (`--dest-`) of a copy, or
    /// for `inspect` (`--`).
    pub fn skopeo_flags(&self, prefix: &str) -> Vec<String> {
        self.secured
            .skopeo_flags(prefix, &self.dir.path().join("certs"))
    }

    /// Pushes a two-platform image index to `REPO:TAG`: `amd` for
    /// linux/amd64 and `arm` for linux/arm64 (see [`arch_image`]). The
    /// digests are the registry's: skopeo compresses the busybox image's
    /// plain tar layer on the way, which rewrites each manifest and so the
    /// index.
    pub fn push_index(&self, amd: &Image, arm: &Image, repo_tag: &str) -> PushedIndex {
        let layout = tempfile::tempdir().expect("layout dir");
        write_index_layout(&[(amd, "amd64"), (arm, "arm64")], layout.path());
        let source = format!("oci:{}", layout.path().display());
        self.skopeo_copy(&["--all", &source], repo_tag);
        let raw = self.raw_manifest(repo_tag);
        let index: serde_json::Value = serde_json::from_slice(&raw).expect("index JSON");
        let manifest = |arch: &str| -> Digest {
            let manifests = index["manifests"].as_array().expect("manifests");
            let m = (manifests.iter())
                .find(|m| m["platform"]["architecture"] == arch)
                .unwrap_or_else(|| panic!("no {arch} manifest in {index}"));
            m["digest"]
                .as_str()
                .expect("digest")
                .parse()
                .expect("a digest")
        };
        PushedIndex {
            index: Digest::of(&raw),
            amd64: manifest("amd64"),
            arm64: manifest("arm64"),
        }
    }

    fn skopeo_copy(&self, source: &[&str], repo_tag: &str) {
        let flags = self.skopeo_flags("--dest-");
        let mut args = vec!["copy", "-q"];
        args.extend(flags.iter().map(String::as_str));
        args.extend_from_slice(source);
        let dest = format!("docker://{}/{repo_tag}", self.host());
        args.push(&dest);
        skopeo(&args);
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: signalling a child process we spawned and have not reaped.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The digests of an index [`Registry::push_index`] pushed.
pub struct PushedIndex {
    pub index: Digest,
    pub amd64: Digest,
    pub arm64: Digest,
}

/// An HTTP client that reports every status as a response (not an error)
/// and gives up after `timeout`.
pub fn agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .build()
        .into()
}

/// The busybox image (gzip layers, so that a docker-archive can carry it)
/// plus a layer with `/etc/arch` = `arch`, its config saying `arch` as its
/// `architecture` and in `ARCH=…` in its env. Its busybox is the host's, so
/// it runs here whatever it claims.
pub fn arch_image(arch: &str) -> Image {
    let mut layers = busybox_image_with(Compress::Gzip).layers;
    layers.push(layer(Compress::Gzip, |b| {
        file(b, "etc/arch", 0o644, format!("{arch}\n").as_bytes())
    }));
    let mut image = Image::new(layers);
    let mut config: serde_json::Value = serde_json::from_slice(&image.config).expect("config");
    config["architecture"] = arch.into();
    config["config"]["Env"] = serde_json::json!(["PATH=/bin", format!("ARCH={arch}")]);
    image.config = serde_json::to_vec(&config).expect("config JSON");
    image
}

/// Writes an OCI layout at `dir` holding one image index of one manifest
/// per `(image, architecture)`, each with its platform (`index.json` names
/// that index, as skopeo wants: each entry of `index.json` is an image).
pub fn write_index_layout(images: &[(&Image, &str)], dir: &Path) {
    let write = |name: &str, data: &[u8]| {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, data).expect("write layout file");
    };
    let mut manifests = Vec::new();
    for (image, arch) in images {
        for (name, data) in oci_layout(image) {
            if name == "index.json" {
                let index: serde_json::Value = serde_json::from_slice(&data).expect("index");
                let mut m = index["manifests"][0].clone();
                m["platform"] = serde_json::json!({ "architecture": arch, "os": "linux" });
                manifests.push(m);
            } else {
                write(&name, &data);
            }
        }
    }
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": manifests,
    }))
    .expect("index JSON");
    let digest = Digest::of(&index);
    write(&format!("blobs/sha256/{}", digest.hex()), &index);
    let top = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": digest.to_string(),
            "size": index.len(),
        }],
    });
    write("index.json", &serde_json::to_vec(&top).expect("index.json"));
}

/// `skopeo --insecure-policy ARGS…`, panicking with its stderr when it
/// fails; its stdout.
pub fn skopeo(args: &[&str]) -> Vec<u8> {
    let out = Command::new("skopeo")
        .arg("--insecure-policy")
        .args(args)
        .output()
        .expect("skopeo runs");
    assert!(
        out.status.success(),
        "skopeo {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}
