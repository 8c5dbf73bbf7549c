//! `kiln inspect`: what an assembled image is made of, for humans (Display)
//! and machines (Serialize).

use std::fmt;

use serde::Serialize;

use crate::hash::Digest;
use crate::image::{Assembled, ClosureSummary, Compression, ConfigSummary, Role};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Inspection {
    pub image: String,
    pub tags: Vec<String>,
    /// The manifest digest.
    pub digest: Digest,
    pub config_digest: Digest,
    pub architecture: String,
    /// Compressed size of all layers.
    pub size: u64,
    pub layers: Vec<LayerSummary>,
    /// What the runtime closure added, in all closure layers.
    pub closure: ClosureSummary,
    pub config: ConfigSummary,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LayerSummary {
    pub digest: Digest,
    pub diff_id: Digest,
    pub compression: Compression,
    pub size: u64,
    pub uncompressed_size: u64,
    pub created_by: String,
    /// What made it: `copy`, `add`, `closure`, or `merged`.
    pub role: Role,
    pub files: u64,
    pub top: Vec<String>,
}

pub fn inspect(img: &Assembled) -> Inspection {
    let layers = img.layers.iter().map(|l| LayerSummary {
        digest: l.digest,
        diff_id: l.diff_id,
        compression: l.compression,
        size: l.size,
        uncompressed_size: l.uncompressed_size,
        created_by: l.created_by.clone(),
        role: l.role,
        files: l.files,
        top: l.top.clone(),
    });
    Inspection {
        image: img.name.to_string(),
        tags: img.tags.clone(),
        digest: img.manifest_digest,
        config_digest: img.config_digest,
        architecture: crate::image::config::host_arch().to_owned(),
        size: img.layers.iter().map(|l| l.size).sum(),
        layers: layers.collect(),
        closure: img.closure,
        config: img.config.clone(),
    }
}

impl fmt::Display for Inspection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "image   {} ({})", self.image, self.tags.join(", "))?;
        writeln!(f, "digest  {}", self.digest)?;
        writeln!(f, "config  {}", self.config_digest)?;
        writeln!(
            f,
            "size    {} in {} layers, linux/{}",
            bytes(self.size),
            self.layers.len(),
            self.architecture
        )?;
        if self.closure.files > 0 {
            writeln!(
                f,
                "closure {} files, {}",
                self.closure.files,
                bytes(self.closure.bytes)
            )?;
        }
        for (i, l) in self.layers.iter().enumerate() {
            let role = serde_json::to_value(l.role).expect("kiln bug: a role serializes");
            let role = role.as_str().unwrap_or_default().to_owned();
            writeln!(f, "\nlayer {}  {role}  {}", i + 1, l.digest)?;
            writeln!(f, "  {}", l.created_by)?;
            writeln!(
                f,
                "  {} {}, {} uncompressed, {} files: {}",
                bytes(l.size),
                l.compression.name(),
                bytes(l.uncompressed_size),
                l.files,
                l.top.join(" ")
            )?;
        }
        let c = &self.config;
        writeln!(f)?;
        let list = |v: &[String]| format!("{v:?}");
        if let Some(v) = &c.entrypoint {
            writeln!(f, "entrypoint  {}", list(v))?;
        }
        if let Some(v) = &c.cmd {
            writeln!(f, "cmd         {}", list(v))?;
        }
        for (k, v) in &c.env {
            writeln!(f, "env         {k}={v}")?;
        }
        for (name, v) in [
            ("workdir", &c.workdir),
            ("user", &c.user),
            ("stop-signal", &c.stop_signal),
        ] {
            if let Some(v) = v {
                writeln!(f, "{name:<12}{v}")?;
            }
        }
        for p in &c.exposed_ports {
            writeln!(f, "expose      {p}")?;
        }
        for v in &c.volumes {
            writeln!(f, "volume      {v}")?;
        }
        for (k, v) in &c.labels {
            writeln!(f, "label       {k}={v}")?;
        }
        Ok(())
    }
}

/// `1.2 MiB`-style sizes.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut size = n as f64;
    let mut unit = 0;
    while size >= 1024.0 && unit < UNITS.len() - 1 {
        size /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{size:.1} {}", UNITS[unit])
    }
}
