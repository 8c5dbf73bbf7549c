//! A `cache` directory under attack: it is the one writable directory a
//! hostile script finds again in a later build, and the one kiln itself
//! walks (`store ls`), chowns (as root) and deletes (`store gc`) after a
//! script wrote it. Links planted there must lead nowhere outside the
//! sandbox, for the next build and for kiln alike; what a script leaves
//! there is out of other users' reach. As root and as `nobody`.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use crate::common::skip::require_root;
use crate::common::{Project, built, read};

#[test]
fn links_planted_in_a_cache_lead_no_later_build_nor_kiln_outside_it() {
    if !require_root() {
        return;
    }
    for as_nobody in [false, true] {
        // A host directory anyone may write to: an escape would show here.
        let host = tempfile::tempdir_in("/var/tmp").expect("host dir");
        std::fs::write(host.path().join("keep"), "host file\n").expect("write");
        std::fs::set_permissions(host.path(), std::fs::Permissions::from_mode(0o777))
            .expect("chmod");
        crate::common::nobody::chown_tree(host.path());
        let dir = host.path().display();
        let p = Project::new(&format!(
            r#"
arg round default="plant"
stage evil {{
    cache "/tmp/c"
    run "if [ $round = plant ]; then ln -s {dir} /tmp/c/escape; ln -s {dir}/keep /tmp/c/file; ln -s / /tmp/c/root; cp /bin/busybox /tmp/c/suid 2>/dev/null || cp /bin/sh /tmp/c/suid; chmod 4755 /tmp/c/suid; fi"
    run "{{ echo pwned > /tmp/c/escape/pwned; echo pwned > /tmp/c/file; echo pwned > /tmp/c/root{dir}/rooted; }} 2>/dev/null || true; touch $out/done"
}}
"#
        ));
        if as_nobody {
            p.give_to_nobody();
        }
        let run = |args: &[&str]| match as_nobody {
            true => p.cmd_as_nobody(args).output().expect("kiln"),
            false => p.kiln(args),
        };
        for round in ["plant", "use"] {
            let arg = format!("round={round}");
            let args = ["build", "--json", "--sandbox", "on", "--arg", &arg];
            let report = built(match as_nobody {
                true => p.cmd_as_nobody(&args),
                false => p.cmd(&args),
            });
            assert!(report.output("evil").join("done").exists());
        }
        // What the script left is private to the store's owner.
        let caches = p.store.join("v2/caches");
        let [cache] = (std::fs::read_dir(&caches)
            .expect("caches")
            .map(|e| e.expect("e").path()))
        .collect::<Vec<_>>()
        .try_into()
        .expect("one cache");
        let mode = std::fs::metadata(&cache).expect("cache dir").mode();
        assert_eq!(mode & 0o077, 0, "{}: {mode:o}", cache.display());
        // kiln walks it, then deletes it.
        let ls = run(&["store", "ls"]);
        assert!(ls.status.success(), "{ls:?}");
        let gc = run(&["store", "gc", "--caches"]);
        assert!(gc.status.success(), "{gc:?}");
        assert!(!cache.exists());
        let mut left: Vec<String> = (std::fs::read_dir(host.path()).expect("host dir"))
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["keep"], "as nobody: {as_nobody}");
        assert_eq!(read(&host.path().join("keep")), "host file\n");
        assert!(Path::new("/bin/sh").exists());
    }
}
