//! `layers max=N`: while an image has more layers of its own than it may,
//! the two adjacent layers with the smallest combined size become one.
//!
//! Only adjacent layers merge: the merged layer sits where the pair sat, and
//! within it the upper layer wins as it did when the engine stacked them (a
//! file or symlink over a directory hides the directory's contents), so the
//! image's filesystem is the same, only cut into fewer layers. Small layers
//! go first because they cost the least sharing: a big layer (a toolchain,
//! a program) stays alone, with the digest other images share.

use std::collections::BTreeMap;

use super::model::{Entry, Kind, Planned, Role};

/// Merges `plans` (in image order) down to at most `max` (at least 1).
pub(super) fn limit(mut plans: Vec<Planned>, max: usize) -> Vec<Planned> {
    let max = max.max(1);
    while plans.len() > max {
        let sizes: Vec<u64> = plans.iter().map(Planned::size).collect();
        let i = (0..plans.len() - 1)
            .min_by_key(|&i| sizes[i] + sizes[i + 1])
            .expect("kiln bug: more than one layer to merge");
        let upper = plans.remove(i + 1);
        let lower = plans.remove(i);
        plans.insert(i, merge(lower, upper));
    }
    plans
}

fn merge(lower: Planned, upper: Planned) -> Planned {
    let mut entries: BTreeMap<String, Entry> = (lower.entries.into_iter())
        .map(|e| (e.path.clone(), e))
        .collect();
    let mut origins = lower.origins;
    for e in upper.entries {
        if !matches!(e.kind, Kind::Dir) {
            let below = format!("{}/", e.path);
            entries.retain(|path, _| !path.starts_with(&below));
            origins.retain(|path, _| !path.starts_with(&below));
        }
        entries.insert(e.path.clone(), e);
    }
    origins.extend(upper.origins);
    Planned {
        entries: entries.into_values().collect(),
        created_by: format!("{}; {}", lower.created_by, upper.created_by),
        dest: common_dir(&lower.dest, &upper.dest),
        role: Role::Merged,
        origins,
    }
}

/// The deepest directory holding both.
fn common_dir(a: &str, b: &str) -> String {
    let common: Vec<&str> = (a.split('/').zip(b.split('/')))
        .take_while(|(x, y)| x == y)
        .map(|(x, _)| x)
        .collect();
    common.join("/")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Owner;

    fn entry(path: &str, kind: Kind) -> Entry {
        Entry {
            path: path.into(),
            kind,
            mode: 0o644,
            owner: Owner::default(),
        }
    }

    fn file(path: &str, size: u64) -> Entry {
        let disk = "/nonexistent".into();
        entry(
            path,
            Kind::File {
                disk,
                size,
                content: [0; 32],
            },
        )
    }

    fn plan(name: &str, entries: Vec<Entry>) -> Planned {
        Planned {
            entries,
            created_by: name.into(),
            dest: String::new(),
            role: Role::Copy,
            origins: BTreeMap::new(),
        }
    }

    #[test]
    fn the_smallest_adjacent_pair_merges_first() {
        let plans = vec![
            plan("big", vec![file("a", 1 << 20)]),
            plan("small1", vec![file("b", 10)]),
            plan("small2", vec![file("c", 10)]),
            plan("mid", vec![file("d", 1 << 10)]),
        ];
        let names = |plans: &[Planned]| -> Vec<String> {
            plans.iter().map(|p| p.created_by.clone()).collect()
        };
        let three = limit(plans, 3);
        assert_eq!(names(&three), ["big", "small1; small2", "mid"]);
        assert_eq!(three[1].role, Role::Merged);
        let two = limit(three, 2);
        assert_eq!(names(&two), ["big", "small1; small2; mid"]);
        assert_eq!(limit(two, 0).len(), 1);
    }

    #[test]
    fn the_upper_layer_wins_and_a_file_over_a_directory_hides_its_contents() {
        let lower = plan(
            "lower",
            vec![
                entry("lib", Kind::Dir),
                file("lib/libold.so", 5),
                file("x", 1),
            ],
        );
        let link = Kind::Symlink {
            target: "usr/lib".into(),
        };
        let upper = plan("upper", vec![entry("lib", link), file("x", 2)]);
        let merged = limit(vec![lower, upper], 1);
        let got: Vec<(&str, &Kind)> = (merged[0].entries.iter())
            .map(|e| (e.path.as_str(), &e.kind))
            .collect();
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(matches!(got[0], ("lib", Kind::Symlink { .. })));
        assert!(matches!(got[1], ("x", Kind::File { size: 2, .. })));
    }
}
