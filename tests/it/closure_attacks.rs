//! Issue 9 item 5, through the `kiln` binary: a program built `from host`
//! cannot make export copy host files its stage could not read. Its ELF
//! interpreter (`-Wl,--dynamic-linker=…`) and its libraries are looked up
//! only in what the sandbox showed the stage (`/usr`, `/bin`, `/lib*`,
//! `/etc/ssl`, its tools' directories), must be ELF objects for this
//! machine, and `$ORIGIN` never leaves the stage's output.
//!
//! Each attack points at a secret file made by the test (under `/root` when
//! it can write there, as the issue's reproduction did; else in a temp dir,
//! which the sandbox hides just as well) holding a marker, and checks that
//! no byte of it reaches the archive.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::Project;
use crate::common::skip::require;

/// A secret directory on the host, outside everything a `from host` stage
/// sees, removed when dropped.
struct Secret {
    dir: PathBuf,
    marker: String,
    _temp: Option<tempfile::TempDir>,
}

impl Secret {
    fn new() -> Secret {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_nanos();
        let name = format!("kiln-test-secret-{}-{nanos}", std::process::id());
        let marker = format!("KILN-SECRET-MARKER-{nanos}");
        let in_root = Path::new("/root").join(&name);
        if std::fs::create_dir(&in_root).is_ok() {
            return Secret {
                dir: in_root,
                marker,
                _temp: None,
            };
        }
        let temp = tempfile::Builder::new()
            .prefix(&name)
            .tempdir()
            .expect("temp dir");
        Secret {
            dir: temp.path().to_path_buf(),
            marker,
            _temp: Some(temp),
        }
    }

    fn path(&self, rel: &str) -> String {
        self.dir.join(rel).to_str().expect("utf-8 path").to_owned()
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        if self._temp.is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Every byte the archive holds: each member as stored and, for a
/// compressed layer, decompressed.
fn archive_bytes(archive: &Path) -> Vec<u8> {
    let mut all = Vec::new();
    let mut ar = tar::Archive::new(std::fs::File::open(archive).expect("archive"));
    for entry in ar.entries().expect("entries") {
        let mut bytes = Vec::new();
        entry.expect("entry").read_to_end(&mut bytes).expect("read");
        let mut gz = Vec::new();
        if flate2::read::GzDecoder::new(&bytes[..])
            .read_to_end(&mut gz)
            .is_ok()
        {
            all.extend(gz);
        }
        if let Ok(zst) = zstd::decode_all(&bytes[..]) {
            all.extend(zst);
        }
        all.extend(bytes);
    }
    all
}

/// `text` without whitespace and miette's frame, which wraps long paths.
fn flat(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_whitespace() && !matches!(c, '│' | '╰' | '─' | '▶'))
        .collect()
}

/// Whether the diagnostic in `stderr` says `what`, however it is wrapped.
fn says(stderr: &str, what: &str) -> bool {
    flat(stderr).contains(&flat(what))
}

/// Exports `image` to `out.tar`: asserts that no byte of `secret` is in it
/// (if it was written at all) and that the export failed; returns stderr.
fn export_refused(p: &Project, image: &str, secret: Option<&Secret>) -> String {
    let out = p.kiln(&["export", image, "-o", "out.tar"]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let archive = p.root().join("out.tar");
    if let (Some(secret), true) = (secret, archive.exists()) {
        let bytes = archive_bytes(&archive);
        let leaked = bytes
            .windows(secret.marker.len())
            .any(|w| w == secret.marker.as_bytes());
        assert!(!leaked, "the host's secret file is in the archive");
    }
    assert_eq!(out.status.code(), Some(1), "export must fail:\n{stderr}");
    assert!(!archive.exists(), "a failed export writes no archive");
    stderr
}

const MAIN_C: &str = "int main(void) { return 0; }\n";

fn interpreter_project(interpreter: &str) -> Project {
    let p = Project::new(&format!(
        r#"
stage app {{
    tools "gcc"
    src "main.c"
    run "gcc -o $out/app main.c -Wl,--dynamic-linker={interpreter}"
}}

image img {{
    copy app "app" to="/app/app"
    entrypoint "/app/app"
}}
"#
    ));
    p.write("main.c", MAIN_C);
    p
}

#[test]
fn an_interpreter_the_sandbox_does_not_show_is_not_exported() {
    if !require("gcc") {
        return;
    }
    let secret = Secret::new();
    let interp = secret.path("ld.so");
    std::fs::write(&interp, format!("{}\n", secret.marker)).expect("write secret");
    let p = interpreter_project(&interp);
    let stderr = export_refused(&p, "img", Some(&secret));
    assert!(
        says(&stderr, &format!("`/app/app` needs `{interp}`")),
        "{stderr}"
    );
}

#[test]
fn dynamic_linker_etc_shadow_is_not_exported() {
    if !require("gcc") {
        return;
    }
    let p = interpreter_project("/etc/shadow");
    let stderr = export_refused(&p, "img", None);
    assert!(says(&stderr, "`/app/app` needs `/etc/shadow`"), "{stderr}");
}

/// A file the sandbox does show, but not an ELF object: ld.so could not
/// load it, so kiln refuses it rather than copy a text file as `PT_INTERP`.
#[test]
fn an_interpreter_that_is_not_elf_is_refused() {
    if !require("gcc") {
        return;
    }
    let header = "/usr/include/stdio.h";
    assert!(Path::new(header).is_file(), "gcc without libc headers");
    let p = interpreter_project(header);
    let stderr = export_refused(&p, "img", None);
    assert!(
        says(
            &stderr,
            &format!(
                "`/app/app` names `{header}` as its ELF interpreter, which is not an ELF object for this machine"
            )
        ),
        "{stderr}"
    );
}

/// A shared library `libkilnsecret.so` in `secret`/lib, holding the marker.
fn secret_library(secret: &Secret) {
    let lib = secret.dir.join("lib");
    std::fs::create_dir(&lib).expect("mkdir");
    let c = secret.dir.join("secret.c");
    let marker = &secret.marker;
    std::fs::write(&c, format!("const char *kiln_secret = \"{marker}\";\n")).expect("write");
    let status = Command::new("gcc")
        .args(["-shared", "-fPIC", "-Wl,-soname,libkilnsecret.so", "-o"])
        .arg(lib.join("libkilnsecret.so"))
        .arg(&c)
        .status()
        .expect("run gcc");
    assert!(status.success());
}

/// A stage whose `$out/bin/app` needs `libkilnsecret.so` with the search
/// path `runpath`, linked against a stub that stays in the stage's `$TMPDIR`;
/// `extra` runs after it.
fn origin_project(runpath: &str, extra: &str) -> Project {
    let p = Project::new(&format!(
        r#"
stage app {{
    tools "gcc"
    src "main.c" "stub.c"
    run "mkdir -p $out/bin && gcc -shared -fPIC -Wl,-soname,libkilnsecret.so -o $TMPDIR/libkilnsecret.so stub.c && gcc -o $out/bin/app main.c -L$TMPDIR -lkilnsecret '-Wl,-rpath,{runpath}' {extra}"
}}

image img {{
    copy app "bin/app" to="/app/bin/app"
    entrypoint "/app/bin/app"
}}
"#
    ));
    p.write(
        "main.c",
        "extern const char *kiln_secret;\nint main(void) { return kiln_secret[0] == 0; }\n",
    );
    p.write("stub.c", "const char *kiln_secret = \"stub\";\n");
    p
}

#[test]
fn origin_climbing_out_of_the_stage_output_is_not_followed() {
    if !require("gcc") {
        return;
    }
    let secret = Secret::new();
    secret_library(&secret);
    // More `..` than any store path is deep: lexically, they end at `/`.
    let up = "/..".repeat(40);
    let runpath = format!("$ORIGIN{up}{}", secret.path("lib"));
    let p = origin_project(&runpath, "");
    let stderr = export_refused(&p, "img", Some(&secret));
    assert!(
        says(&stderr, "`/app/bin/app` needs `libkilnsecret.so`"),
        "{stderr}"
    );
}

#[test]
fn a_symlink_in_the_output_cannot_lead_origin_out_of_it() {
    if !require("gcc") {
        return;
    }
    let secret = Secret::new();
    secret_library(&secret);
    let up = "../".repeat(40);
    let target = format!("{up}{}", secret.path("lib").trim_start_matches('/'));
    let p = origin_project("$ORIGIN/../lib", &format!("&& ln -s {target} $out/lib"));
    let stderr = export_refused(&p, "img", Some(&secret));
    assert!(
        says(&stderr, "`/app/bin/app` needs `libkilnsecret.so`"),
        "{stderr}"
    );
}

#[test]
fn an_absolute_symlink_in_the_output_stays_in_what_the_sandbox_shows() {
    if !require("gcc") {
        return;
    }
    let secret = Secret::new();
    secret_library(&secret);
    let p = origin_project(
        "$ORIGIN/../lib",
        &format!("&& ln -s {} $out/lib", secret.path("lib")),
    );
    let stderr = export_refused(&p, "img", Some(&secret));
    assert!(
        says(&stderr, "`/app/bin/app` needs `libkilnsecret.so`"),
        "{stderr}"
    );
}
