//! A test helper for every key family: each keyed field, changed alone,
//! changes the key, and no two changes give the same key.

use std::fmt::Debug;

/// A named change to one field of a value.
pub(crate) type Change<'a, T> = (&'a str, &'a dyn Fn(&mut T));

/// Applies each named change to a copy of `base` and checks that the key
/// differs from `base`'s and from every other change's; `key(base)` must
/// also be stable. Panics naming the field whose change was not keyed.
#[track_caller]
pub(crate) fn assert_each_change_is_keyed<T: Clone, K: PartialEq + Debug>(
    base: &T,
    key: impl Fn(&T) -> K,
    changes: &[Change<'_, T>],
) {
    let base_key = key(base);
    assert_eq!(key(base), base_key, "the same value gives the same key");
    let mut seen: Vec<(&str, K)> = Vec::new();
    for (field, change) in changes {
        let mut changed = base.clone();
        change(&mut changed);
        let changed_key = key(&changed);
        assert_ne!(
            changed_key, base_key,
            "changing `{field}` left the key as it was"
        );
        if let Some((other, _)) = seen.iter().find(|(_, k)| *k == changed_key) {
            panic!("changing `{field}` gives the same key as changing `{other}`");
        }
        seen.push((field, changed_key));
    }
}
