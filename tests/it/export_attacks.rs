//! Review 14: `kiln export`'s copy of layer blobs out of the store, attacked
//! through the real binary: blobs damaged, cut short, replaced or written to
//! while they are copied, outputs that are pipes, devices, full or closed,
//! other kiln processes working on the store meanwhile, and a process that
//! may start no thread. Each finding is named in its test's doc; the rest is
//! what held.
//!
//! A race is made deterministic by stalling the export: its stdout is a pipe
//! this test reads up to a few KiB into a layer of several MiB, then stops
//! reading; kiln is then blocked in the middle of that layer's copy (a pipe
//! holds 64 KiB) until the test reads on.

use std::io::Read;
use std::os::unix::fs::{FileTypeExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant, SystemTime};

use crate::common::Project;
use crate::common::skip::require_root;

/// A stage output of ~5.4 MB, copied into two images that share its layer
/// (one cached layer, hard-linked into both stored images).
const BIG: &str = r#"
stage big { run "seq 1 800000 > $out/big; echo hi > $out/small" }
image app { copy big "big" to="/big" }
image app2 {
    copy big "big" to="/big"
    tag "app2:v1"
}
"#;

/// Every command runs without the sandbox (nothing here is about it) and
/// with uncompressed layers (the layer stays larger than a pipe).
const FLAGS: &[&str] = &["--sandbox", "off"];

fn args<'a>(args: &[&'a str]) -> Vec<&'a str> {
    let mut all = FLAGS.to_vec();
    all.extend_from_slice(args);
    all.extend_from_slice(&["--compression", "none"]);
    all
}

fn kiln(p: &Project, a: &[&str]) -> Output {
    p.kiln(&args(a))
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A diagnostic without miette's line wrapping and frame.
fn unwrapped(text: &str) -> String {
    text.replace(['\n', '│', ' '], "")
}

fn ok(p: &Project, a: &[&str]) -> Vec<u8> {
    let out = kiln(p, a);
    assert!(out.status.success(), "kiln {a:?}:\n{}", stderr(&out));
    out.stdout
}

/// What a plain `kiln export app -o -` of the built store gives.
fn plain_stream(p: &Project, image: &str) -> Vec<u8> {
    ok(p, &["-q", "export", image, "-o", "-"])
}

/// The stored image entry `NAME` (`v2/store/<key>-NAME`).
fn entry(p: &Project, name: &str) -> PathBuf {
    let store = p.store.join("v2/store");
    let suffix = format!("-{name}");
    std::fs::read_dir(&store)
        .expect("store dir")
        .flatten()
        .map(|e| e.path())
        .find(|e| e.to_string_lossy().ends_with(&suffix))
        .unwrap_or_else(|| panic!("no entry of {name} in {}", store.display()))
}

/// The blob file `hex` of the stored image `name`.
fn stored_blob(p: &Project, name: &str, hex: &str) -> PathBuf {
    entry(p, name).join("blobs/sha256").join(hex)
}

/// Makes `path` writable (blobs are 0444 in the store).
fn writable(path: &Path) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
}

/// A `kiln export … -o -` blocked in the middle of copying its first layer
/// larger than 1 MiB, whose name (its digest's hex) is `layer`.
struct Stalled {
    child: Child,
    head: Vec<u8>,
    layer: String,
    stderr: std::thread::JoinHandle<String>,
}

// The child is waited for in `Stalled::finish`, which clippy does not see.
#[allow(clippy::zombie_processes)]
fn stall(p: &Project, a: &[&str]) -> Stalled {
    let mut child = p
        .cmd(&args(a))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn kiln");
    let mut err = child.stderr.take().expect("stderr");
    let stderr = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = err.read_to_string(&mut text);
        text
    });
    let out = child.stdout.as_mut().expect("stdout");
    let mut head = Vec::new();
    loop {
        let mut header = [0u8; 512];
        if out.read_exact(&mut header).is_err() {
            let _ = child.wait();
            panic!(
                "the export ended before a large layer:\n{}",
                stderr.join().expect("stderr reader")
            );
        }
        head.extend_from_slice(&header);
        let field = |r: std::ops::Range<usize>| {
            String::from_utf8_lossy(&header[r])
                .trim_matches(|c| c == '\0' || c == ' ')
                .to_owned()
        };
        let name = field(0..100);
        let size = u64::from_str_radix(&field(124..136), 8).unwrap_or(0);
        if size > 1 << 20 {
            let mut some = vec![0; 4096];
            out.read_exact(&mut some).expect("the layer's first bytes");
            head.extend_from_slice(&some);
            // kiln is now blocked writing into the full pipe.
            std::thread::sleep(Duration::from_millis(300));
            let layer = name.rsplit('/').next().expect("a name").to_owned();
            return Stalled {
                child,
                head,
                layer,
                stderr,
            };
        }
        let mut body = vec![0; size.next_multiple_of(512) as usize];
        out.read_exact(&mut body).expect("an entry");
        head.extend_from_slice(&body);
    }
}

impl Stalled {
    /// Reads the rest: how kiln ended, every byte it wrote, what it said.
    fn finish(mut self) -> (ExitStatus, Vec<u8>, String) {
        let mut all = std::mem::take(&mut self.head);
        let out = self.child.stdout.as_mut().expect("stdout");
        out.read_to_end(&mut all).expect("read the rest");
        let status = self.child.wait().expect("wait");
        (status, all, self.stderr.join().expect("stderr reader"))
    }
}

/// Waits for `child` at most `secs` seconds; kills it if it is still
/// running, and says so.
fn wait_at_most(mut child: Child, secs: u64) -> Result<Output, String> {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(secs) {
        if child.try_wait().expect("try_wait").is_some() {
            return Ok(child.wait_with_output().expect("output"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let out = child.wait_with_output().expect("output");
    Err(format!(
        "still running after {secs} s (killed):\n{}",
        stderr(&out)
    ))
}

// ---- Findings -----------------------------------------------------------

/// Finding 1 (2f9b570): a blob this process had packed a moment before is
/// copied unread, and the count the copy returned was dropped: a cached
/// layer cut short while the export copied it gave a tar whose entry was
/// shorter than its header said (every later entry misread), exit 0.
#[test]
fn a_fresh_layer_cut_short_while_it_is_copied_fails_the_export() {
    let p = Project::new(BIG);
    // Cold: the export packs the layer itself, so its blob is fresh.
    let stalled = stall(&p, &["export", "app", "-o", "-"]);
    let blob = stored_blob(&p, "app", &stalled.layer);
    let len = std::fs::metadata(&blob).expect("blob").len();
    writable(&blob);
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&blob)
        .expect("open blob");
    f.set_len(len / 2).expect("truncate");
    let (status, bytes, err) = stalled.finish();
    assert_ne!(
        status.code(),
        Some(0),
        "a {} byte stream of a {len} byte layer, exit 0:\n{err}",
        bytes.len()
    );
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(unwrapped(&err).contains("changedwhileitwascopied"), "{err}");
}

/// Finding 2 (2f9b570): a blob is the same file before and after its copy
/// if its change time is: but another kiln process linking the blob into a
/// new entry (a build of an image that shares the layer: a libc closure
/// layer, a base layer) changes it, and so the export failed
/// ("changed while it was copied") though not a byte had changed.
#[test]
fn another_build_linking_a_shared_layer_does_not_fail_an_export() {
    let p = Project::new(BIG);
    ok(&p, &["build", "app"]);
    let plain = plain_stream(&p, "app");
    let stalled = stall(&p, &["-q", "export", "app", "-o", "-"]);
    // app2 has the same layer: its build links the cached blob.
    ok(&p, &["build", "app2"]);
    let (status, bytes, err) = stalled.finish();
    assert!(status.success(), "{err}");
    assert!(bytes == plain, "the stream differs from a quiet export");
}

/// Finding 2, through gc: `kiln store gc` deleting an old image entry
/// whose layer blob is a hard link of the exported one (the same layer)
/// changes its change time too, and the export failed.
#[test]
fn gc_of_an_old_image_sharing_the_layer_does_not_fail_an_export() {
    let p = Project::new(BIG);
    ok(&p, &["build", "app"]);
    ok(&p, &["build", "app2"]);
    let plain = plain_stream(&p, "app");
    // app2 was last used 40 days ago.
    let short = entry(&p, "app2")
        .file_name()
        .expect("name")
        .to_string_lossy()
        .split('-')
        .next()
        .expect("short key")
        .to_owned();
    age(&p.store.join("v2/meta").join(format!("{short}.json")));
    let stalled = stall(&p, &["-q", "export", "app", "-o", "-"]);
    let gc = p.kiln(&["store", "gc"]);
    assert!(gc.status.success(), "{}", stderr(&gc));
    let (status, bytes, err) = stalled.finish();
    assert!(status.success(), "{err}");
    assert!(bytes == plain, "the stream differs from a quiet export");
}

/// Sets `path`'s modification time 40 days back (gc's "last used").
fn age(path: &Path) {
    let old = SystemTime::now() - Duration::from_secs(40 * 24 * 3600);
    std::fs::File::options()
        .write(true)
        .open(path)
        .and_then(|f| f.set_modified(old))
        .unwrap_or_else(|e| panic!("age {}: {e}", path.display()));
}

/// Finding 3: the export let go of the store before it wrote a byte (the
/// build report, whose holds keep an entry from gc, and the open store,
/// whose shared lock keeps gc off the layer cache, were dropped when the
/// image was found). A plain `kiln store gc` meanwhile deleted a cached
/// layer unused for 30 days (a cached image never touches its layers
/// again) whose blob the exported entry hard-links, and the export failed
/// (finding 2's change time); `--keep-days 0` deleted the very entry being
/// exported.
#[test]
fn gc_during_an_export_leaves_it_whole() {
    let p = Project::new(BIG);
    ok(&p, &["build", "app"]);
    let plain = plain_stream(&p, "app");
    let layers = p.store.join("v2/layers/v1");
    for meta in std::fs::read_dir(&layers).expect("layer cache").flatten() {
        if meta.path().extension().is_some_and(|e| e == "json") {
            age(&meta.path());
        }
    }
    let exported = entry(&p, "app");
    let stalled = stall(&p, &["-q", "export", "app", "-o", "-"]);
    let gc = p.kiln(&["store", "gc"]);
    assert!(gc.status.success(), "{}", stderr(&gc));
    let gc = p.kiln(&["store", "gc", "--keep-days", "0"]);
    assert!(gc.status.success(), "{}", stderr(&gc));
    let (status, bytes, err) = stalled.finish();
    assert!(status.success(), "{err}");
    assert!(bytes == plain, "the stream differs from a quiet export");
    assert!(exported.is_dir(), "gc deleted the entry being exported");
}

/// Finding 4 (since 669fc7b): `-o PATH` is written beside PATH and renamed
/// over it, whatever PATH is: a named pipe a reader waits on was replaced
/// by a regular file (the reader waited forever), and as root
/// `-o /dev/null` or `-o /dev/full` replaced the device node with the
/// archive. An output that exists and is not a regular file is written
/// to, as a stream.
#[test]
fn an_export_into_a_named_pipe_writes_through_it() {
    let p = Project::new(BIG);
    ok(&p, &["build", "app"]);
    let plain = plain_stream(&p, "app");
    let fifo = p.root().join("app.fifo");
    let made = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
    assert!(made.success());
    // A reader that can be killed: one replaced pipe leaves it waiting.
    let received = p.dir.path().join("received.tar");
    let reader = Command::new("cat")
        .arg(&fifo)
        .stdout(std::fs::File::create(&received).expect("create"))
        .spawn()
        .expect("spawn cat");
    let child = p
        .cmd(&args(&["-q", "export", "app", "-o", "app.fifo"]))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn kiln");
    let out = wait_at_most(child, 60);
    let kind = std::fs::symlink_metadata(&fifo).expect("stat").file_type();
    let read = wait_at_most(reader, 10);
    let out = out.unwrap_or_else(|e| panic!("{e}"));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(kind.is_fifo(), "the pipe was replaced by a {kind:?}");
    let read = read.unwrap_or_else(|e| panic!("the reader: {e}"));
    assert!(read.status.success());
    let read = std::fs::read(&received).expect("read");
    assert!(read == plain, "the pipe did not carry the archive");
}

/// Finding 4, with device nodes (made in the project, not /dev's): a full
/// device is an error naming it, a null device takes the archive; both
/// stay devices.
#[test]
fn an_export_into_a_device_writes_to_it_and_leaves_it_a_device() {
    if !require_root() {
        return;
    }
    let p = Project::new(BIG);
    ok(&p, &["build", "app"]);
    for (name, minor, code) in [("full", "7", Some(1)), ("null", "3", Some(0))] {
        let dev = p.root().join(name);
        let made = Command::new("mknod")
            .arg(&dev)
            .args(["c", "1", minor])
            .status()
            .expect("mknod");
        assert!(made.success());
        let out = kiln(&p, &["-q", "export", "app", "-o", name]);
        let kind = std::fs::symlink_metadata(&dev).expect("stat").file_type();
        assert!(kind.is_char_device(), "{name} became a {kind:?}");
        assert_eq!(out.status.code(), code, "-o {name}:\n{}", stderr(&out));
        if code == Some(1) {
            assert!(
                stderr(&out).contains("No space left on device"),
                "{}",
                stderr(&out)
            );
        }
    }
}

/// Finding 4, through symlinks: `-o /dev/stdout > app.tar` (here a link
/// to `/proc/self/fd/1` in the project, not /dev's) replaced the link with
/// the archive and left `app.tar` empty, exit 0. A link is written
/// through: the file it leads to is replaced, the link stays.
#[test]
fn an_export_through_a_symlink_replaces_what_it_leads_to() {
    let p = Project::new(BIG);
    ok(&p, &["build", "app"]);
    let plain = plain_stream(&p, "app");
    let stdout = p.root().join("stdout");
    std::os::unix::fs::symlink("/proc/self/fd/1", &stdout).expect("symlink");
    let redirected = p.dir.path().join("redirected.tar");
    let o = p
        .cmd(&args(&["-q", "export", "app", "-o", "stdout"]))
        .stdout(std::fs::File::create(&redirected).expect("create"))
        .output()
        .expect("run kiln");
    assert!(o.status.success(), "{}", stderr(&o));
    let link = std::fs::symlink_metadata(&stdout).expect("stat");
    assert!(link.file_type().is_symlink(), "the link was replaced");
    assert!(
        std::fs::read(&redirected).expect("read") == plain,
        "not the archive"
    );

    let real = p.root().join("real.tar");
    std::fs::write(&real, b"old").expect("write");
    std::os::unix::fs::symlink(&real, p.root().join("link.tar")).expect("symlink");
    ok(&p, &["-q", "export", "app", "-o", "link.tar"]);
    let link = std::fs::symlink_metadata(p.root().join("link.tar")).expect("stat");
    assert!(link.file_type().is_symlink(), "the link was replaced");
    assert!(std::fs::read(&real).expect("read") == plain);
}

/// Finding 4, as an OCI layout: `--format oci -o PATH` over a file that
/// is not a layout (a regular file, a named pipe; as root, `/dev/null`)
/// deleted it and put the layout there. It is refused, and left alone.
#[test]
fn an_oci_export_over_a_file_or_a_pipe_is_refused_and_leaves_it() {
    let p = Project::new(BIG);
    ok(&p, &["build", "app"]);
    p.write("notes.txt", "mine\n");
    let fifo = p.root().join("pipe");
    let made = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
    assert!(made.success());
    for name in ["notes.txt", "pipe"] {
        let o = kiln(&p, &["export", "app", "-o", name, "--format", "oci"]);
        assert_eq!(o.status.code(), Some(1), "{name}:\n{}", stderr(&o));
        assert!(
            unwrapped(&stderr(&o)).contains("isnotanOCIlayout"),
            "{name}:\n{}",
            stderr(&o)
        );
    }
    assert_eq!(crate::common::read(&p.root().join("notes.txt")), "mine\n");
    let kind = std::fs::symlink_metadata(&fifo).expect("stat").file_type();
    assert!(kind.is_fifo(), "the pipe became a {kind:?}");
}

/// Finding 5: a blob replaced by a named pipe in the store hung the
/// export forever in open(2) (`kiln store verify` reports it); it is now
/// an error naming the blob.
#[test]
fn a_blob_replaced_by_a_named_pipe_fails_the_export_without_hanging() {
    let p = Project::new(BIG);
    ok(&p, &["build", "app"]);
    let plain = plain_stream(&p, "app");
    let layer = layer_of(&plain);
    let blob = stored_blob(&p, "app", &layer);
    let dir = blob.parent().expect("blobs dir");
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::remove_file(&blob).expect("rm blob");
    let made = Command::new("mkfifo").arg(&blob).status().expect("mkfifo");
    assert!(made.success());
    for output in [["-o", "x.tar"], ["-o", "-"]] {
        let mut a = vec!["export", "app"];
        a.extend_from_slice(&output);
        let child = p
            .cmd(&args(&a))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn kiln");
        let out = wait_at_most(child, 30).unwrap_or_else(|e| panic!("{a:?}: {e}"));
        assert_eq!(out.status.code(), Some(1), "{a:?}:\n{}", stderr(&out));
        assert!(out.stdout.is_empty(), "{a:?}: bytes went out");
        assert!(
            unwrapped(&stderr(&out)).contains(&layer),
            "{a:?}: the error names the blob:\n{}",
            stderr(&out)
        );
    }
}

/// The name (digest hex) of the largest entry of `tar`: the layer.
fn layer_of(tar: &[u8]) -> String {
    let mut archive = tar::Archive::new(tar);
    let mut best = (0, String::new());
    for e in archive.entries().expect("entries") {
        let e = e.expect("entry");
        let path = e.path().expect("path").to_string_lossy().into_owned();
        if e.size() > best.0 {
            best = (e.size(), path.rsplit('/').next().expect("name").to_owned());
        }
    }
    best.1
}

/// Runs `kiln ARGS` as `nobody` with at most `nproc` processes and threads
/// for that user (`prlimit`), `bin` first on `PATH`.
fn limited(p: &Project, nproc: u32, bin: &Path, a: &[&str]) -> Output {
    let path = format!("{}:/usr/bin:/bin", bin.display());
    p.cmd_as_nobody_limited(nproc, &args(a))
        .env("PATH", path)
        .output()
        .expect("run kiln")
}

/// Finding 6 (load.rs, before today): `kiln load` writes the archive
/// from a thread it starts with `thread::scope`'s `spawn`, which panics
/// when no thread can be started (a user at its process limit): exit 101.
/// The export's own hashing thread fell back as it should.
#[test]
fn load_and_export_at_the_process_limit_do_not_panic() {
    if !require_root() {
        return;
    }
    let p = Project::new(BIG);
    let engine = p.root().join("engine");
    std::fs::create_dir(&engine).expect("mkdir");
    let docker = engine.join("docker");
    std::fs::write(
        &docker,
        "#!/bin/sh\ncat > /dev/null\necho 'Loaded image: app:latest'\n",
    )
    .expect("fake docker");
    std::fs::set_permissions(&docker, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    p.give_to_nobody();
    let build = limited(&p, 4096, &engine, &["build", "app"]);
    assert!(build.status.success(), "{}", stderr(&build));
    let plain = limited(&p, 4096, &engine, &["-q", "export", "app", "-o", "-"]);
    assert!(plain.status.success(), "{}", stderr(&plain));

    // No thread at all: the blob is hashed after its copy instead.
    let one = limited(&p, 1, &engine, &["-q", "export", "app", "-o", "-"]);
    assert_eq!(one.status.code(), Some(0), "{}", stderr(&one));
    assert!(one.stdout == plain.stdout);
    let file = limited(&p, 1, &engine, &["-q", "export", "app", "-o", "a.tar"]);
    assert_eq!(file.status.code(), Some(0), "{}", stderr(&file));

    let load = limited(&p, 4096, &engine, &["load", "app"]);
    assert!(load.status.success(), "{}", stderr(&load));
    // kiln and the engine, and no thread to write with.
    let load = limited(&p, 2, &engine, &["load", "app"]);
    let err = stderr(&load);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(load.status.code(), Some(1), "{err}");
}

/// Review 14 noted: a cold build at the process limit panicked where it
/// starts its build threads (`cannot start build threads`, exit 101). It
/// now builds on its own thread, and fails where a stage cannot start,
/// saying so.
#[test]
fn a_build_at_the_process_limit_fails_without_a_panic() {
    if !require_root() {
        return;
    }
    let p = Project::new(BIG);
    p.give_to_nobody();
    let none = p.root().join("no-engine");
    let build = limited(&p, 1, &none, &["build", "app"]);
    let err = stderr(&build);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(build.status.code(), Some(1), "{err}");
}

// ---- What held ----------------------------------------------------------

/// A blob damaged in place, its size and modification time restored
/// (`touch -d`), is found by its hash: no file, no layout, not one byte
/// of a stream.
#[test]
fn a_blob_damaged_in_place_with_its_times_restored_is_refused() {
    let p = Project::new(BIG);
    ok(&p, &["build", "app"]);
    let plain = plain_stream(&p, "app");
    let blob = stored_blob(&p, "app", &layer_of(&plain));
    let before = std::fs::metadata(&blob).expect("stat");
    let mut bytes = std::fs::read(&blob).expect("read");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    writable(&blob);
    std::fs::write(&blob, &bytes).expect("tamper");
    let f = std::fs::File::options()
        .write(true)
        .open(&blob)
        .expect("open");
    f.set_modified(before.modified().expect("mtime"))
        .expect("restore mtime");
    let after = std::fs::metadata(&blob).expect("stat");
    assert_eq!(after.modified().ok(), before.modified().ok());
    assert_eq!(after.len(), before.len());
    for out in ["x.tar", "-"] {
        let o = kiln(&p, &["export", "app", "-o", out]);
        assert_eq!(o.status.code(), Some(1), "-o {out}:\n{}", stderr(&o));
        assert!(
            unwrapped(&stderr(&o)).contains("isdamaged"),
            "{}",
            stderr(&o)
        );
        assert!(o.stdout.is_empty(), "-o {out}: bytes went out");
    }
    let o = kiln(&p, &["export", "app", "-o", "oci", "--format", "oci"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(!p.root().join("x.tar").exists() && !p.root().join("oci").exists());
}

/// A blob replaced by a symlink is read through it and hashed: to a copy
/// of the right bytes it exports the same archive, to other bytes it is
/// damaged; replaced by a directory it is an error, not a panic.
#[test]
fn a_blob_replaced_by_a_symlink_or_a_directory_is_hashed_or_refused() {
    let p = Project::new(BIG);
    ok(&p, &["build", "app"]);
    let plain = plain_stream(&p, "app");
    let blob = stored_blob(&p, "app", &layer_of(&plain));
    let dir = blob.parent().expect("blobs dir");
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let good = p.dir.path().join("good.blob");
    std::fs::copy(&blob, &good).expect("copy blob");
    let bad = p.dir.path().join("bad.blob");
    let mut bytes = std::fs::read(&blob).expect("read");
    bytes[100] ^= 1;
    std::fs::write(&bad, &bytes).expect("bad copy");

    std::fs::remove_file(&blob).expect("rm");
    std::os::unix::fs::symlink(&good, &blob).expect("symlink");
    assert!(plain_stream(&p, "app") == plain);
    std::fs::remove_file(&blob).expect("rm");
    std::os::unix::fs::symlink(&bad, &blob).expect("symlink");
    let o = kiln(&p, &["export", "app", "-o", "-"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        unwrapped(&stderr(&o)).contains("isdamaged"),
        "{}",
        stderr(&o)
    );
    assert!(o.stdout.is_empty());
    std::fs::remove_file(&blob).expect("rm");
    std::fs::create_dir(&blob).expect("mkdir");
    let o = kiln(&p, &["export", "app", "-o", "x.tar"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(!stderr(&o).contains("panicked"));
}

/// A stored blob written to while it is copied (same bytes, same size:
/// only its times tell), grown or cut short meanwhile, fails the export.
#[test]
fn a_stored_blob_written_to_grown_or_cut_while_it_is_copied_fails_the_export() {
    let p = Project::new(BIG);
    ok(&p, &["build", "app"]);
    for change in ["rewrite", "grow", "cut"] {
        let stalled = stall(&p, &["-q", "export", "app", "-o", "-"]);
        let blob = stored_blob(&p, "app", &stalled.layer);
        let bytes = std::fs::read(&blob).expect("read");
        let changed = match change {
            "grow" => [&bytes[..], b"more"].concat(),
            "cut" => bytes[..bytes.len() / 2].to_vec(),
            _ => bytes.clone(),
        };
        writable(&blob);
        std::fs::write(&blob, &changed).expect("change");
        let (status, _, err) = stalled.finish();
        assert_eq!(status.code(), Some(1), "{change}: {err}");
        assert!(
            unwrapped(&err).contains("changedwhileitwascopied"),
            "{change}: {err}"
        );
        // Back as it was for the next round.
        std::fs::write(&blob, &bytes).expect("restore");
    }
}

const TWO_LAYERS: &str = r#"
stage x { run "seq 1 500000 > $out/x" }
stage y { run "seq 2 500001 > $out/y" }
image app {
    copy x "x" to="/x"
    copy y "y" to="/y"
}
"#;

/// While a cold export copies its first large layer, flips a byte of the
/// other one (a plain write, or with its modification time put back):
/// how the export ends.
fn damage_the_second_fresh_layer(restore_mtime: bool) -> (ExitStatus, String) {
    let p = Project::new(TWO_LAYERS);
    let stalled = stall(&p, &["export", "app", "-o", "-"]);
    let blobs = entry(&p, "app").join("blobs/sha256");
    let other = std::fs::read_dir(&blobs)
        .expect("blobs")
        .flatten()
        .map(|e| e.path())
        .find(|b| {
            std::fs::metadata(b).is_ok_and(|m| m.len() > 1 << 20) && !b.ends_with(&stalled.layer)
        })
        .expect("the other layer");
    let before = std::fs::metadata(&other).expect("stat");
    let mut bytes = std::fs::read(&other).expect("read");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    writable(&other);
    std::fs::write(&other, &bytes).expect("tamper");
    if restore_mtime {
        std::fs::File::options()
            .write(true)
            .open(&other)
            .and_then(|f| f.set_modified(before.modified().expect("mtime")))
            .expect("restore mtime");
    }
    let (status, _, err) = stalled.finish();
    (status, err)
}

/// A fresh layer damaged in the store after it was packed, before it is
/// copied (a plain write: its modification time moves), is no longer
/// fresh and is hashed: the export fails.
#[test]
fn a_fresh_layer_written_to_before_its_copy_is_hashed_and_refused() {
    let (status, err) = damage_the_second_fresh_layer(false);
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(unwrapped(&err).contains("isdamaged"), "{err}");
}

/// Finding 8 (hash::fresh, 95d9e92; not today's change): a fresh blob is
/// known by inode, size and modification time, not its change time (a
/// rename or a link moves that). One damaged in place after it was packed
/// with its modification time put back (utimensat) is still "fresh", is
/// copied unread, and goes out damaged, exit 0. Only the store's owner can
/// do it, on purpose, between the pack and the copy of one process.
#[test]
#[ignore = "finding 8: a fresh blob damaged with its mtime restored is exported unread"]
fn a_fresh_layer_damaged_with_its_mtime_restored_is_refused() {
    let (status, err) = damage_the_second_fresh_layer(true);
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(unwrapped(&err).contains("isdamaged"), "{err}");
}

/// `kiln export -o - | head -c 10` in the middle of a large layer, cold
/// (the kernel copy of a fresh blob) and warm (the copy with its hashing
/// thread): exit 0, nothing on stderr. Into a full disk: exit 1 naming
/// stdout.
#[test]
fn a_large_layer_into_a_closed_pipe_or_a_full_disk() {
    let p = Project::new(BIG);
    for round in ["cold", "warm"] {
        let mut child = p
            .cmd(&args(&["-q", "export", "app", "-o", "-"]))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn kiln");
        let mut out = child.stdout.take().expect("stdout");
        let mut first = [0u8; 10];
        out.read_exact(&mut first).expect("10 bytes");
        drop(out);
        let o = child.wait_with_output().expect("wait");
        assert_eq!(o.status.code(), Some(0), "{round}: {}", stderr(&o));
        assert!(stderr(&o).is_empty(), "{round}: {}", stderr(&o));
    }
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("/dev/full");
    let o = p
        .cmd(&args(&["-q", "export", "app", "-o", "-"]))
        .stdout(full)
        .output()
        .expect("run kiln");
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("stdout"), "{}", stderr(&o));
    assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
}

/// An engine that exits before it has read the archive, with a failure or
/// with success: exit 1, the engine's words or a broken pipe, no panic.
#[test]
fn an_engine_that_exits_early_fails_the_load_cleanly() {
    let p = Project::new(BIG);
    ok(&p, &["build", "app"]);
    let engine = p.dir.path().join("engine");
    std::fs::create_dir(&engine).expect("mkdir");
    let docker = engine.join("docker");
    for (script, says) in [
        (
            "echo 'refused by the engine' >&2; exit 3",
            "refused by the engine",
        ),
        (
            "head -c 100 > /dev/null; echo 'Loaded image: app:latest'",
            "Broken pipe",
        ),
    ] {
        std::fs::write(&docker, format!("#!/bin/sh\n{script}\n")).expect("write");
        std::fs::set_permissions(&docker, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let path = format!(
            "{}:{}",
            engine.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let o = p
            .cmd(&args(&["load", "app"]))
            .env("PATH", path)
            .output()
            .expect("run kiln");
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        assert!(stderr(&o).contains(says), "{}", stderr(&o));
        assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
    }
}

/// Outputs on a filesystem full or read-only (tmpfs mounts): exit 1 and
/// nothing left behind, for an archive and an OCI layout.
#[test]
fn an_export_onto_a_full_or_read_only_filesystem_leaves_nothing() {
    if !require_root() {
        return;
    }
    let p = Project::new(BIG);
    ok(&p, &["build", "app"]);
    for (name, opts) in [("small", "size=1m"), ("ro", "ro")] {
        let dir = p.dir.path().join(name);
        std::fs::create_dir(&dir).expect("mkdir");
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", opts, "kiln-test"])
            .arg(&dir)
            .status()
            .expect("mount");
        assert!(mounted.success());
        let _guard = Unmount(dir.clone());
        for format in ["docker", "oci"] {
            let out = dir.join(format!("out-{format}"));
            let out = out.to_str().expect("utf-8");
            let o = kiln(&p, &["export", "app", "-o", out, "--format", format]);
            assert_eq!(o.status.code(), Some(1), "{name} {format}:\n{}", stderr(&o));
            assert!(!stderr(&o).contains("panicked"));
            // The error names where it could not write.
            let at = dir.to_string_lossy().replace(['/', ' '], "");
            assert!(
                unwrapped(&stderr(&o)).replace('/', "").contains(&at),
                "{name} {format}:\n{}",
                stderr(&o)
            );
            let left: Vec<_> = std::fs::read_dir(&dir).expect("list").collect();
            assert!(left.is_empty(), "{name} {format}: left {left:?}");
        }
    }
}

/// Unmounts (lazily) on drop.
struct Unmount(PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Four exports of one image into one path at once, as an archive and as
/// an OCI layout, three times over: each path ends holding the archive.
#[test]
fn concurrent_exports_into_one_path_leave_one_whole_archive() {
    let p = Project::new(BIG);
    ok(&p, &["build", "app"]);
    let plain = plain_stream(&p, "app");
    for _ in 0..3 {
        let children: Vec<Child> = (0..4)
            .flat_map(|_| {
                [
                    vec!["-q", "export", "app", "-o", "same.tar"],
                    vec!["-q", "export", "app", "-o", "same-oci", "--format", "oci"],
                ]
            })
            .map(|a| {
                p.cmd(&args(&a))
                    .stderr(Stdio::piped())
                    .spawn()
                    .expect("spawn")
            })
            .collect();
        for child in children {
            let o = child.wait_with_output().expect("wait");
            assert!(o.status.success(), "{}", stderr(&o));
        }
        assert!(std::fs::read(p.root().join("same.tar")).expect("read") == plain);
        assert_layout_is(&p.root().join("same-oci"), &plain);
    }
}

/// Every file of the OCI layout `dir` is the archive's member of that
/// name, and every member but docker's `manifest.json` is in the layout.
fn assert_layout_is(dir: &Path, tar: &[u8]) {
    let mut archive = tar::Archive::new(tar);
    let mut members = 0;
    for e in archive.entries().expect("entries") {
        let mut e = e.expect("entry");
        let path = e.path().expect("path").into_owned();
        if !e.header().entry_type().is_file() || path == Path::new("manifest.json") {
            continue;
        }
        let mut bytes = Vec::new();
        e.read_to_end(&mut bytes).expect("member");
        let file =
            std::fs::read(dir.join(&path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(file == bytes, "{} differs", path.display());
        members += 1;
    }
    let mut files = 0;
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).expect("list").flatten() {
            match e.file_type().expect("type").is_dir() {
                true => todo.push(e.path()),
                false => files += 1,
            }
        }
    }
    assert_eq!(files, members, "{} has other files", dir.display());
}

/// What `ef65425` (before today's change) wrote for [`PINNED`], by
/// compression: the sha256 of the archive.
const PINNED_SHA256: [(&str, &str); 3] = [
    (
        "gzip",
        "301a5cddd10d6e5b307bc70a4fcbb91ee2fa9344bb4e3c4374fcf8628d5a5ae9",
    ),
    (
        "zstd",
        "ddc29216b91248b6785fa693c34608ca1fd9e7680dbd0f2382cf64f33611c497",
    ),
    (
        "none",
        "162b0ae6493b6b8dd7e6bbf6c001d8d4261cb056431c30dfee4aee6746d3e179",
    ),
];

const PINNED: &str = r#"stage numbers { run "seq 1 300000 > $out/numbers; mkdir -p $out/d; echo hi > $out/d/hi" }
stage tiny { run "printf x > $out/x" }
image app {
    copy numbers "numbers" to="/numbers"
    copy numbers "d" to="/d"
    copy tiny "x" to="/x"
    tag "pinned:v1"
}
"#;

/// The archive is byte for byte what it was before today's change, for
/// each compression, whichever way it is copied: cold (the kernel copy of
/// a fresh blob) and warm (the copy with its hashing thread) into a file,
/// into a pipe, onto another filesystem (/dev/shm: copy_file_range fails
/// with EXDEV, sendfile copies), as an OCI layout, and from a second clean
/// store in another directory.
#[cfg(target_arch = "x86_64")]
#[test]
fn archives_are_the_bytes_they_were_before_the_kernel_copy() {
    let shm = tempfile::tempdir_in("/dev/shm").ok();
    for (compression, pinned) in PINNED_SHA256 {
        let sha = |bytes: &[u8]| kiln::hash::Digest::of(bytes).hex().to_owned();
        let export = |p: &Project, out: &str, extra: &[&str]| {
            let mut a = vec!["--sandbox", "off", "-q", "export", "app", "-o", out];
            a.extend_from_slice(&["--compression", compression]);
            a.extend_from_slice(extra);
            let o = p.kiln(&a);
            assert!(o.status.success(), "{a:?}:\n{}", stderr(&o));
            o.stdout
        };
        let one = Project::new(PINNED);
        export(&one, "cold.tar", &[]);
        let cold = std::fs::read(one.root().join("cold.tar")).expect("read");
        assert_eq!(sha(&cold), pinned, "{compression}: cold file");
        export(&one, "warm.tar", &[]);
        let warm = std::fs::read(one.root().join("warm.tar")).expect("read");
        assert_eq!(sha(&warm), pinned, "{compression}: warm file");
        assert_eq!(
            sha(&export(&one, "-", &[])),
            pinned,
            "{compression}: stream"
        );
        export(&one, "oci", &["--format", "oci"]);
        assert_layout_is(&one.root().join("oci"), &cold);
        if let Some(shm) = &shm {
            let out = shm.path().join(format!("{compression}.tar"));
            export(&one, out.to_str().expect("utf-8"), &[]);
            let bytes = std::fs::read(&out).expect("read");
            assert_eq!(sha(&bytes), pinned, "{compression}: on /dev/shm");
        }
        let two = Project::new(PINNED);
        assert_eq!(
            sha(&export(&two, "-", &[])),
            pinned,
            "{compression}: cold stream, second store"
        );
    }
}
