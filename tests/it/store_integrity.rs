//! End-to-end: the store keeps what it holds whole and can always clean up
//! after itself (issue 9 items 7, 8 and the gc part of 16).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::Project;
use crate::common::skip::{require_root, require_sandbox};

/// Makes a directory 2,500 levels deep in `$out` (by `cd`, since a full
/// path would pass PATH_MAX), with a file at the bottom, and leaves its
/// bottom read-only.
const DEEP: &str = "cd -P $out; i=0; while [ $i -lt 250 ]; do mkdir -p d/d/d/d/d/d/d/d/d/d && cd -P d/d/d/d/d/d/d/d/d/d || exit 2; i=$((i+1)); done; echo deep > f; chmod 555 .";

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A diagnostic without miette's line wrapping and frame, to look for a path.
fn unwrapped(text: &str) -> String {
    text.replace(['\n', '│', ' '], "")
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Issue 9 item 8: the failed build's directory could not be deleted ("File
/// name too long"), the key never built again and gc failed on it forever.
#[test]
fn a_failed_stage_that_made_a_2500_deep_tree_leaves_nothing_behind() {
    let p = Project::new(&format!("stage deep {{ run \"{DEEP}; exit 1\" }}\n"));
    let build = p.kiln(&["build"]);
    assert_eq!(build.status.code(), Some(1), "{}", stderr(&build));
    assert!(
        stderr(&build).contains("exited with"),
        "the script's failure is what is reported:\n{}",
        stderr(&build)
    );
    assert_eq!(names(&p.store.join("v2/tmp")), Vec::<String>::new());
    let again = p.kiln(&["build"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        !stderr(&again).contains("too long"),
        "the key builds again:\n{}",
        stderr(&again)
    );
    let gc = p.kiln(&["store", "gc", "--keep-days", "0"]);
    assert!(gc.status.success(), "{}", stderr(&gc));
}

/// A stage may succeed with such a tree: it is hashed, stored, verified and
/// collected like any other.
#[test]
fn a_2500_deep_output_is_stored_verified_and_collected() {
    let p = Project::new(&format!("stage deep {{ run \"{DEEP}\" }}\n"));
    let report = p.build(&[]);
    let entry = report.output("deep");
    assert!(entry.join("d/d/d").is_dir());
    let verify = p.kiln(&["store", "verify"]);
    assert!(verify.status.success(), "{}", stderr(&verify));
    assert_eq!(p.build(&[]).status("deep"), "cached");
    let gc = p.kiln(&["store", "gc", "--keep-days", "0"]);
    assert!(gc.status.success(), "{}", stderr(&gc));
    assert!(!entry.exists());
    assert_eq!(names(&p.store.join("v2/tmp")), Vec::<String>::new());
}

/// Unmounts on drop, so a failing test leaves no mount behind.
/// Unmounts, when dropped, every `kiln-test` tmpfs under a directory:
/// wherever it is by then (gc moves the entry that holds it into its trash
/// before it fails to delete it).
struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
        let under = (mounts.lines())
            .filter_map(|line| match line.split(' ').collect::<Vec<_>>()[..] {
                ["kiln-test", at, "tmpfs", ..] => Some(PathBuf::from(at)),
                _ => None,
            })
            .filter(|at| at.starts_with(&self.0));
        for at in under {
            let _ = Command::new("umount").arg("-l").arg(at).status();
        }
    }
}

/// gc met an entry it could not delete (here: something is mounted in it)
/// and stopped there, collecting nothing after it. It must say what it could
/// not delete, and collect the rest.
#[test]
fn gc_reports_an_entry_it_cannot_remove_and_collects_the_rest() {
    // It mounts a tmpfs.
    if !require_root() {
        return;
    }
    let p = Project::new(
        "stage stuck { run \"mkdir $out/mnt\" }\nstage other { run \"echo > $out/x\" }\n",
    );
    let report = p.build(&[]);
    let stuck = report.output("stuck");
    let mnt = stuck.join("mnt");
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "kiln-test", mnt.to_str().expect("utf-8")])
        .status()
        .expect("mount");
    assert!(mounted.success());
    let _guard = Mounted(p.dir.path().to_path_buf());
    // Garbage gc also collects, after the entries: a dead build's directory.
    let stale = p
        .store
        .join("v2/tmp/0123456789abcdef0123456789abcdef-x.999999");
    std::fs::create_dir_all(stale.join("out")).expect("stale build dir");

    let gc = p.kiln(&["store", "gc", "--keep-days", "0"]);
    assert_eq!(gc.status.code(), Some(1), "{}", stderr(&gc));
    let err = stderr(&gc);
    assert!(err.contains("Cannot remove"), "{err}");
    assert!(!report.output("other").exists(), "{err}");
    assert!(!stale.exists(), "gc went on after the failure: {err}");
}

/// A project with a busybox base (docker-archive `bb.tar`), a stage that
/// runs in it and an image on it that copies the stage's output.
fn base_project() -> (Project, crate::common::images::Image) {
    use crate::common::images::{Compress, busybox_image_with, write_docker_archive};
    let image = busybox_image_with(Compress::Gzip);
    let p = Project::new(&format!(
        r#"
        base busybox {{
            archive "bb.tar" digest="{}"
        }}
        stage greet {{
            from busybox
            run "cat /etc/hello > $out/hello"
        }}
        image app {{
            from busybox
            copy greet "hello" to="/app/hello"
        }}
        "#,
        image.id()
    ));
    write_docker_archive(&image, &p.root().join("bb.tar"));
    (p, image)
}

/// Flips two bytes in the middle of `file` (read-only, as the store keeps it).
fn flip_two_bytes(file: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let mut bytes = std::fs::read(file).expect("read blob");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    bytes[mid + 1] ^= 0xff;
    std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    std::fs::write(file, bytes).expect("tamper");
}

/// Issue 9 item 7: two flipped bytes in a base layer blob in the store went
/// unnoticed by `kiln store verify`, and `kiln export` wrote them into an
/// image whose layer no longer matched its digest, exit 0.
#[test]
fn a_damaged_base_blob_fails_verify_and_export() {
    if !require_sandbox() {
        return;
    }
    let (p, image) = base_project();
    let first = p.kiln(&["export", "app", "-o", "app.tar"]);
    assert!(first.status.success(), "{}", stderr(&first));
    let verify = p.kiln(&["store", "verify"]);
    assert!(verify.status.success(), "{}", stderr(&verify));

    let layer = kiln::hash::Digest::of(&image.layers[0].bytes);
    let blob = p.store.join("v2/blobs/sha256").join(layer.hex());
    flip_two_bytes(&blob);

    let verify = p.kiln(&["store", "verify"]);
    assert_eq!(verify.status.code(), Some(1), "{}", stderr(&verify));
    assert!(
        stderr(&verify).contains(&blob.display().to_string()),
        "verify names the blob:\n{}",
        stderr(&verify)
    );
    let export = p.kiln(&["export", "app", "-o", "bad.tar"]);
    assert_ne!(export.status.code(), Some(0));
    let err = stderr(&export);
    // The stored image holds the blob as a hard link to the damaged file:
    // the export names that link and the digest it should have.
    let stored = format!("blobs/sha256/{}", layer.hex());
    assert!(
        unwrapped(&err).contains(&stored) && unwrapped(&err).contains(&layer.to_string()),
        "the error names the blob and the digest it should have:\n{err}"
    );
    assert!(!p.root().join("bad.tar").exists(), "no image was written");
}

/// A cached layer damaged the same way: verify reports it, export refuses it.
#[test]
fn a_damaged_cached_layer_fails_verify_and_export() {
    let p = Project::new(
        "stage note { run \"echo note > $out/note\" }\nimage app { copy note \"note\" to=\"/note\" }\n",
    );
    let first = p.kiln(&["export", "app", "-o", "app.tar"]);
    assert!(first.status.success(), "{}", stderr(&first));
    let cache = p.store.join("v2/layers/v1");
    let blob = names(&cache)
        .into_iter()
        .find(|n| n.ends_with(".blob"))
        .map(|n| cache.join(n))
        .expect("a cached layer");
    flip_two_bytes(&blob);
    let verify = p.kiln(&["store", "verify"]);
    assert_eq!(verify.status.code(), Some(1), "{}", stderr(&verify));
    assert!(stderr(&verify).contains(&blob.display().to_string()));
    let export = p.kiln(&["export", "app", "-o", "bad.tar"]);
    assert_ne!(export.status.code(), Some(0));
    // The stored image holds the layer as a hard link to the cached blob.
    assert!(
        unwrapped(&stderr(&export)).contains("inkiln'sstoreisdamaged"),
        "{}",
        stderr(&export)
    );
    assert!(!p.root().join("bad.tar").exists());
    // A stream cannot be taken back: not one byte of it goes out.
    let streamed = p.kiln(&["export", "app", "-o", "-"]);
    assert_ne!(streamed.status.code(), Some(0));
    assert!(
        unwrapped(&stderr(&streamed)).contains("inkiln'sstoreisdamaged"),
        "{}",
        stderr(&streamed)
    );
    assert_eq!(
        streamed.stdout.len(),
        0,
        "bytes of a damaged export went out"
    );
}

/// Issue 9 item 16: gc never collected imported blobs, unpacked root
/// filesystems or cached layers; the store only grew.
#[test]
fn gc_collects_unused_blobs_root_filesystems_and_layers_and_they_come_back() {
    if !require_sandbox() {
        return;
    }
    let (p, _) = base_project();
    let first = p.kiln(&["export", "app", "-o", "app.tar"]);
    assert!(first.status.success(), "{}", stderr(&first));
    let layout = p.store.join("v2");
    for dir in ["blobs/sha256", "rootfs", "layers/v1"] {
        assert!(!names(&layout.join(dir)).is_empty(), "{dir} is used");
    }
    let kept = p.kiln(&["store", "gc"]);
    assert!(kept.status.success(), "{}", stderr(&kept));
    for dir in ["blobs/sha256", "rootfs", "layers/v1"] {
        assert!(!names(&layout.join(dir)).is_empty(), "{dir} was used today");
    }

    let gc = p.kiln(&["store", "gc", "--keep-days", "0"]);
    assert!(gc.status.success(), "{}", stderr(&gc));
    for dir in [
        "blobs/sha256",
        "blobs/imports",
        "blobs/tmp",
        "rootfs",
        "layers/v1",
        "store",
        "tmp",
    ] {
        assert_eq!(
            names(&layout.join(dir)),
            Vec::<String>::new(),
            "{dir} after gc"
        );
    }

    let again = p.kiln(&["export", "app", "-o", "again.tar"]);
    assert!(again.status.success(), "{}", stderr(&again));
    assert_eq!(
        std::fs::read(p.root().join("app.tar")).expect("first image"),
        std::fs::read(p.root().join("again.tar")).expect("second image"),
        "the same image, from a re-imported base"
    );
    let verify = p.kiln(&["store", "verify"]);
    assert!(verify.status.success(), "{}", stderr(&verify));
}

/// An unpacked root filesystem changed after unpacking (what issue 9 item 1
/// did from inside a stage) is reported by verify.
#[test]
fn a_modified_root_filesystem_fails_verify() {
    if !require_sandbox() {
        return;
    }
    let (p, image) = base_project();
    p.build(&["greet"]);
    let root = p.store.join("v2/rootfs").join(image.id().hex());
    let verify = p.kiln(&["store", "verify"]);
    assert!(verify.status.success(), "{}", stderr(&verify));
    std::fs::write(root.join("etc/hello"), "trojan\n").expect("tamper");
    let verify = p.kiln(&["store", "verify"]);
    assert_eq!(verify.status.code(), Some(1), "{}", stderr(&verify));
    assert!(
        stderr(&verify).contains(&root.display().to_string()),
        "{}",
        stderr(&verify)
    );
}
