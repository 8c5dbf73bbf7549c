//! `cache "/path" id="…" sharing="…"` in a stage → [`CacheDir`]: where
//! the directory is mounted, which store cache it is, how builds share it.
//! The store keeps the directory (`store::caches`); the sandbox mounts it.

use std::collections::BTreeMap;

use kdl::KdlNode;
use miette::SourceSpan;

use super::cx::Cx;
use super::error::{CachePathError, ProblemKind, label};
use super::paths::{AbsError, normalize_abs};
use super::{CacheDir, CacheSharing, Spanned, Stage};

/// Paths a cache may not be: what kiln mounts itself there.
const IS: [(&str, &str); 2] = [("/", "the root"), ("/tmp", "the stage's `$TMPDIR`")];

/// kiln's own mounts: a cache can be neither one of them nor inside one.
const INSIDE: [(&str, &str); 6] = [
    ("/out", "`/out`, the stage's output"),
    ("/src", "`/src`, the stage's sources"),
    ("/deps", "`/deps`, the used stages"),
    ("/proc", "`/proc`"),
    ("/dev", "`/dev`"),
    ("/sys", "`/sys`"),
];

/// The longest `id=`.
const MAX_ID: usize = 100;

impl Cx {
    /// One `cache` line of a stage; `earlier`: the paths of the stage's
    /// caches so far (a map, so that many lines cost no more than linear).
    pub(super) fn cache_dir(
        &mut self,
        node: &KdlNode,
        earlier: &mut BTreeMap<String, SourceSpan>,
    ) -> Option<CacheDir> {
        self.check_props(node, &["id", "sharing"]);
        let example = "cache \"/tmp/go-cache\"";
        let args = self.args(node, (1, 1), "a path", example);
        let path = args.first().and_then(|e| self.string(node, e));
        let id = match self.prop(node, "id") {
            Some(entry) => Some(self.string(node, entry).and_then(|id| self.cache_id(id))?),
            None => None,
        };
        let sharing = match self.prop(node, "sharing") {
            Some(entry) => {
                let value = self.string(node, entry)?;
                match CacheSharing::parse(&value.value) {
                    Some(sharing) => sharing,
                    None => {
                        let kind = ProblemKind::BadSharing { value: value.value };
                        self.report(kind, vec![label(value.span, "unknown mode")]);
                        return None;
                    }
                }
            }
            None => CacheSharing::Locked,
        };
        let path = self.cache_path(path?, earlier)?;
        Some(CacheDir { path, id, sharing })
    }

    fn cache_id(&mut self, id: Spanned<String>) -> Option<Spanned<String>> {
        let ok = !id.value.is_empty()
            && id.value.len() <= MAX_ID
            && (id.value.chars()).all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
        if !ok {
            let kind = ProblemKind::BadCacheId {
                id: id.value.clone(),
            };
            self.report(kind, vec![label(id.span, "invalid id")]);
            return None;
        }
        Some(id)
    }

    fn cache_path(
        &mut self,
        path: Spanned<String>,
        earlier: &mut BTreeMap<String, SourceSpan>,
    ) -> Option<Spanned<String>> {
        let fail = |cx: &mut Cx, why: CachePathError, text: &str| {
            let kind = ProblemKind::BadCachePath {
                path: path.value.clone(),
                why,
            };
            cx.report(kind, vec![label(path.span, text)]);
        };
        let value = match normalize_abs(&path.value) {
            Ok(value) => value,
            Err(AbsError::Relative) => {
                fail(self, CachePathError::Relative, "relative");
                return None;
            }
            Err(AbsError::Escapes) => {
                fail(self, CachePathError::Escapes, "climbs above `/`");
                return None;
            }
        };
        if let Some((_, what)) = IS.iter().find(|(at, _)| *at == value) {
            fail(self, CachePathError::Is(what), "kiln mounts this");
            return None;
        }
        if let Some((at, what)) = INSIDE.iter().find(|(at, _)| within(&value, at)) {
            let why = match value == *at {
                true => CachePathError::Is(what),
                false => CachePathError::Inside(what),
            };
            fail(self, why, "a mount of kiln's");
            return None;
        }
        if let Some(&first) = earlier.get(&value) {
            self.duplicate_key("Cache path", &value, first, path.span);
            return None;
        }
        // A cache above this one (an ancestor), or one inside it (the
        // first key after `value/` in order).
        let inside = format!("{value}/");
        let above = ancestors(&value).find_map(|a| earlier.get_key_value(a));
        let below =
            (earlier.range(inside.clone()..).next()).filter(|(p, _)| p.starts_with(&inside));
        if let Some((other, &span)) = above.or(below) {
            let kind = ProblemKind::BadCachePath {
                path: path.value.clone(),
                why: CachePathError::Nested(other.clone()),
            };
            let labels = vec![label(span, "this cache"), label(path.span, "overlaps it")];
            self.report(kind, labels);
            return None;
        }
        earlier.insert(value.clone(), path.span);
        Some(Spanned {
            value,
            span: path.span,
        })
    }

    /// An `id=` is one directory at one path, in every stage that names it.
    pub(super) fn check_cache_ids(&mut self, stages: &[Stage]) {
        let mut seen: BTreeMap<&str, (&str, SourceSpan)> = BTreeMap::new();
        let mut clashes = Vec::new();
        for cache in stages.iter().flat_map(|s| &s.caches) {
            let Some(id) = &cache.id else { continue };
            let path = cache.path.value.as_str();
            match seen.get(id.value.as_str()) {
                Some(&(first, span)) if first != path => {
                    let kind = ProblemKind::CacheIdClash {
                        id: id.value.clone(),
                        first: first.to_owned(),
                        second: path.to_owned(),
                    };
                    let labels = vec![
                        label(span, "first at this path"),
                        label(cache.path.span, "then at this one"),
                    ];
                    clashes.push((kind, labels));
                }
                Some(_) => {}
                None => {
                    seen.insert(&id.value, (path, cache.path.span));
                }
            }
        }
        for (kind, labels) in clashes {
            self.report(kind, labels);
        }
    }
}

/// `/a/b/c` → `/a/b`, `/a` (not `/`, which no cache is).
fn ancestors(path: &str) -> impl Iterator<Item = &str> {
    let mut rest = path;
    std::iter::from_fn(move || {
        let cut = rest.rfind('/').filter(|&i| i > 0)?;
        rest = &rest[..cut];
        Some(rest)
    })
}

/// Whether `path` is `dir` or lies inside it (both normalized, absolute).
fn within(path: &str, dir: &str) -> bool {
    path == dir || (path.strip_prefix(dir)).is_some_and(|rest| rest.starts_with('/') || dir == "/")
}

#[cfg(test)]
mod tests {
    use super::{ancestors, within};

    #[test]
    fn ancestors_stop_above_the_root() {
        assert_eq!(ancestors("/a/b/c").collect::<Vec<_>>(), ["/a/b", "/a"]);
        assert_eq!(ancestors("/a").count(), 0);
    }

    #[test]
    fn within_is_by_component() {
        assert!(within("/out", "/out"));
        assert!(within("/out/x", "/out"));
        assert!(!within("/outside", "/out"));
        assert!(!within("/tmp/a", "/tmp/ab"));
        assert!(within("/tmp/a/b", "/tmp/a"));
    }
}
