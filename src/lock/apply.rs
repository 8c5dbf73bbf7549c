//! The lock meets the spec and the plan: [`pin`] gives each base by tag
//! the digest kiln.lock holds for it, [`Lockfile::of`] is what `kiln lock`
//! writes for a spec, and [`verify`] is `--locked`: every planned input must
//! be what kiln.lock says. Pure: the plan has already read the host.

use super::LockError;
use super::format::{LockedBase, LockedSource, Lockfile};
use crate::eval::{Plan, PlannedNode, Work};
use crate::spec::{Base, BaseSource, ImageRef, Spanned, Spec};

/// Replaces every base by tag whose lock entry names the same reference
/// with that reference pinned by the locked digest. A base the lock does
/// not pin stays by tag, and planning refuses it (`eval::EvalError::Unlocked`).
pub fn pin(spec: &mut Spec, lock: &Lockfile) {
    for base in &mut spec.bases {
        let BaseSource::Tagged { image, platform } = &base.source else {
            continue;
        };
        let Some(entry) = lock.bases.get(&base.name.value) else {
            continue;
        };
        // The tag in kiln.kdl changed since `kiln lock`: the old digest is
        // of another image.
        if entry.source != LockedSource::Image(image.value.to_string()) {
            continue;
        }
        base.source = BaseSource::Registry {
            image: Spanned {
                value: image.value.pin(entry.digest),
                span: image.span,
            },
            platform: platform.clone(),
        };
    }
}

/// `host/repository[:tag]`: a registry reference without its digest, as
/// the lock keys it.
fn unpinned(image: &ImageRef) -> String {
    let mut s = format!("{}/{}", image.registry, image.repository);
    if let Some(tag) = &image.tag {
        s = format!("{s}:{tag}");
    }
    s
}

/// The entry kiln.lock has for `base`, pinned; `None` for a base by tag
/// that nothing pinned.
fn entry(base: &Base) -> Option<LockedBase> {
    match &base.source {
        BaseSource::Archive { path, digest } => Some(LockedBase {
            source: LockedSource::Archive(path.value.clone()),
            digest: digest.value,
        }),
        BaseSource::Registry { image, .. } => Some(LockedBase {
            source: LockedSource::Image(unpinned(&image.value)),
            digest: image.value.digest,
        }),
        BaseSource::Tagged { .. } => None,
    }
}

impl Lockfile {
    /// What `kiln lock` writes: every base of `spec` (its tags pinned
    /// already), every fetch, and the tools of the stages `plan` holds.
    pub fn of(spec: &Spec, plan: &Plan<'_>) -> Lockfile {
        let mut lock = Lockfile::default();
        for base in &spec.bases {
            if let Some(entry) = entry(base) {
                lock.bases.insert(base.name.value.clone(), entry);
            }
        }
        for fetch in &spec.fetches {
            lock.fetches
                .insert(fetch.name.value.clone(), fetch.sha256.value);
        }
        for node in &plan.nodes {
            for (tool, hex) in node.inputs.tool_hashes() {
                let hash =
                    blake3::Hash::from_hex(hex).expect("kiln bug: a tool hash is blake3 hex");
                lock.tools.insert(tool.clone(), hash);
            }
        }
        lock
    }
}

/// `--locked`: the first input of `plan` that kiln.lock does not pin as it
/// is now: a host tool whose program hashes otherwise, a fetch whose
/// sha256 was edited, a base whose digest differs; or one it lacks.
pub fn verify(spec: &Spec, plan: &Plan<'_>, lock: &Lockfile) -> Result<(), LockError> {
    let not_locked = |input: String, span| LockError::NotLocked {
        input,
        src: spec.snippet(span).0,
        span: spec.snippet(span).1,
    };
    let changed = |input: String, locked: String, actual: String, span| LockError::Changed {
        input,
        locked,
        actual,
        src: spec.snippet(span).0,
        span: spec.snippet(span).1,
    };
    for node in &plan.nodes {
        match node.work {
            Work::Run(stage) => {
                for tool in &stage.tools {
                    let (path, actual) = tool_of(node, &tool.value);
                    let input = format!("host tool `{}` (`{path}`)", tool.value);
                    match lock.tools.get(&tool.value) {
                        None => return Err(not_locked(input, tool.span)),
                        Some(locked) if locked.to_hex().as_str() != actual => {
                            let (locked, actual) = (
                                format!("blake3 {}", locked.to_hex()),
                                format!("blake3 {actual}"),
                            );
                            return Err(changed(input, locked, actual, tool.span));
                        }
                        Some(_) => {}
                    }
                }
            }
            Work::Fetch(fetch) => {
                let input = format!("the sha256 of fetch `{}`", fetch.name.value);
                match lock.fetches.get(&fetch.name.value) {
                    None => return Err(not_locked(input, fetch.sha256.span)),
                    Some(locked) if *locked != fetch.sha256.value => {
                        let (locked, actual) = (locked.hex(), fetch.sha256.value.hex());
                        return Err(changed(input, locked, actual, fetch.sha256.span));
                    }
                    Some(_) => {}
                }
            }
            Work::Import(base) => {
                let input = format!("base `{}`", base.name.value);
                let actual = entry(base).expect("kiln bug: planning refuses an unpinned base");
                match lock.bases.get(&base.name.value) {
                    None => return Err(not_locked(input, base.pin_span())),
                    Some(locked) if *locked != actual => {
                        let (locked, actual) = (describe(locked), describe(&actual));
                        return Err(changed(input, locked, actual, base.pin_span()));
                    }
                    Some(_) => {}
                }
            }
            Work::Assemble(_) => {}
        }
    }
    Ok(())
}

/// Where a planned stage found `tool`, and the blake3 it keyed.
fn tool_of(node: &PlannedNode<'_>, tool: &str) -> (String, String) {
    let path = node
        .tools
        .get(tool)
        .expect("kiln bug: a planned tool has a path");
    let hash = node.inputs.tool_hashes().get(tool);
    let hash = hash.expect("kiln bug: a planned tool is hashed");
    (path.display().to_string(), hash.clone())
}

fn describe(entry: &LockedBase) -> String {
    match &entry.source {
        LockedSource::Image(reference) => format!("`{reference}@{}`", entry.digest),
        LockedSource::Archive(path) => format!("`{path}` with digest {}", entry.digest),
    }
}
