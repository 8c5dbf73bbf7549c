//! The registry's HTTP API, spoken by hand (ureq): what a test needs to
//! read or plant manifests and blobs as a hostile writer would.

use std::time::Duration;

use kiln::hash::Digest;

use super::{Registry, agent};

const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

impl Registry {
    /// The OCI manifest `repo:tag`.
    pub fn get_manifest(&self, repo: &str, tag: &str) -> serde_json::Value {
        let url = format!("http://{}/v2/{repo}/manifests/{tag}", self.host());
        let mut r = (agent(Duration::from_secs(30)).get(&url))
            .header("Accept", MANIFEST)
            .call()
            .expect("manifest");
        serde_json::from_slice(&r.body_mut().read_to_vec().expect("body")).expect("manifest JSON")
    }

    /// Tags `manifest` (an OCI image manifest) as `repo:tag`.
    pub fn put_manifest(&self, repo: &str, tag: &str, manifest: &serde_json::Value) {
        let url = format!("http://{}/v2/{repo}/manifests/{tag}", self.host());
        let done = (agent(Duration::from_secs(30)).put(&url))
            .header("Content-Type", MANIFEST)
            .send(serde_json::to_vec(manifest).expect("JSON").as_slice())
            .expect("put manifest");
        assert_eq!(done.status(), 201, "manifest upload");
    }

    /// The blob `digest` (`sha256:…`) of `repo`.
    pub fn get_blob(&self, repo: &str, digest: &str) -> Vec<u8> {
        let url = format!("http://{}/v2/{repo}/blobs/{digest}", self.host());
        let mut r = (agent(Duration::from_secs(30)).get(&url))
            .call()
            .expect("blob");
        r.body_mut().read_to_vec().expect("blob body")
    }

    /// Uploads `bytes` as a blob of `repo` (monolithic: POST, then PUT).
    pub fn put_blob(&self, repo: &str, bytes: &[u8]) -> Digest {
        let http = agent(Duration::from_secs(30));
        let host = self.host();
        let started = (http.post(&format!("http://{host}/v2/{repo}/blobs/uploads/")))
            .send_empty()
            .expect("start upload");
        let location = (started.headers().get("Location"))
            .expect("Location")
            .to_str()
            .expect("ascii")
            .to_owned();
        let location = match location.starts_with('/') {
            true => format!("http://{host}{location}"),
            false => location,
        };
        let digest = Digest::of(bytes);
        let sep = if location.contains('?') { '&' } else { '?' };
        let done = (http.put(&format!("{location}{sep}digest={digest}")))
            .header("Content-Type", "application/octet-stream")
            .send(bytes)
            .expect("finish upload");
        assert_eq!(done.status(), 201, "blob upload");
        digest
    }
}
