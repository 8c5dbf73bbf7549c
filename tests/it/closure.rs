//! Runtime closure analysis on real ELF files compiled by the tests with the
//! host's gcc, in temp dirs: nothing is downloaded.

use std::collections::BTreeMap;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::skip::{require_debian_x86_64, require_user_namespaces};
use kiln::closure::{ClosureError, NeededKind, Program, Root, resolve};

const ZLIB_PROGRAM: &str = r#"
#include <stdio.h>
#include <zlib.h>
int main(void) { printf("zlib %s\n", zlibVersion()); return 0; }
"#;

fn gcc(dir: &Path, source: &str, out: &Path, args: &[&str]) {
    let c = dir.join(format!(
        "{}.c",
        out.file_name().expect("name").to_string_lossy()
    ));
    std::fs::write(&c, source).expect("write source");
    let status = Command::new("gcc")
        .arg(&c)
        .arg("-o")
        .arg(out)
        .args(args)
        .status()
        .expect("run gcc");
    assert!(status.success(), "gcc {c:?} {args:?} failed");
}

/// `file` as the one program copied, from a stage output that is the
/// `out/` directory above it, else the directory holding it.
fn program(file: &Path, image_path: &str) -> Vec<Program> {
    let parent = file.parent().expect("parent");
    let tree = file.ancestors().find(|a| a.ends_with("out"));
    vec![Program {
        file: file.to_path_buf(),
        image_path: image_path.to_owned(),
        tree: tree.unwrap_or(parent).to_path_buf(),
    }]
}

/// The host, as the sandbox shows it to a `from host` stage without tools.
fn host() -> Root {
    Root::Host {
        shown: kiln::build::sandbox::host_paths(&[]).expect("host paths"),
    }
}

fn image(dir: &Path) -> Root {
    Root::Image(dir.to_path_buf())
}

/// The closure as `path → "file"` or `path → "-> target"`, for whole-set asserts.
fn shape(files: &BTreeMap<String, kiln::closure::Needed>) -> BTreeMap<String, String> {
    files
        .iter()
        .map(|(path, needed)| {
            let kind = match &needed.kind {
                NeededKind::File => "file".to_owned(),
                NeededKind::Symlink { target } => format!("-> {target}"),
            };
            (path.clone(), kind)
        })
        .collect()
}

fn entries(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(p, k)| ((*p).to_owned(), (*k).to_owned()))
        .collect()
}

#[test]
fn zlib_program_on_the_host_needs_ld_so_libc_and_libz_with_their_symlinks() {
    if !require_debian_x86_64() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let exe = dir.path().join("zprog");
    gcc(dir.path(), ZLIB_PROGRAM, &exe, &["-lz"]);
    let closure = resolve(&host(), &program(&exe, "/app/zprog")).expect("resolve");

    let libz = std::fs::read_link("/usr/lib/x86_64-linux-gnu/libz.so.1").expect("libz link");
    let libz = libz.to_str().expect("utf-8");
    let libz_real = format!("/usr/lib/x86_64-linux-gnu/{libz}");
    let expected = entries(&[
        ("/lib", "-> usr/lib"),
        ("/lib64", "-> usr/lib64"),
        (
            "/usr/lib64/ld-linux-x86-64.so.2",
            "-> /lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
        ),
        ("/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", "file"),
        ("/usr/lib/x86_64-linux-gnu/libc.so.6", "file"),
        ("/usr/lib/x86_64-linux-gnu/libz.so.1", &format!("-> {libz}")),
        (&libz_real, "file"),
    ]);
    assert_eq!(shape(&closure.files), expected);

    let why = |path: &str| closure.files[path].chain.clone();
    assert_eq!(
        why("/lib64"),
        ["/app/zprog", "interpreter /lib64/ld-linux-x86-64.so.2"]
    );
    assert_eq!(why(&libz_real), ["/app/zprog", "libz.so.1"]);
    assert_eq!(
        why("/usr/lib/x86_64-linux-gnu/libc.so.6"),
        ["/app/zprog", "libc.so.6"]
    );
    assert_eq!(
        closure.files[&libz_real].source,
        PathBuf::from(&libz_real),
        "found in root `/`, so read from there"
    );

    run_in_image(&exe, "/app/zprog", &closure, "zlib ");
}

/// Copies the program and its closure into an empty root and runs it there
/// (user namespace + chroot): the real proof that nothing is missing.
fn run_in_image(exe: &Path, image_path: &str, closure: &kiln::closure::Closure, expect: &str) {
    if !require_user_namespaces() {
        return;
    }
    let image = tempfile::tempdir().expect("tempdir");
    let put = |path: &str| image.path().join(path.trim_start_matches('/'));
    for (path, needed) in &closure.files {
        std::fs::create_dir_all(put(path).parent().expect("parent")).expect("mkdir");
        match &needed.kind {
            NeededKind::File => {
                std::fs::copy(&needed.source, put(path)).expect("copy");
            }
            NeededKind::Symlink { target } => symlink(target, put(path)).expect("symlink"),
        }
    }
    std::fs::create_dir_all(put(image_path).parent().expect("parent")).expect("mkdir");
    std::fs::copy(exe, put(image_path)).expect("copy program");
    // ld.so expands a program's `$ORIGIN` through /proc/self/exe, as in a
    // container: the root needs a /proc.
    std::fs::create_dir(image.path().join("proc")).expect("mkdir /proc");
    let out = Command::new("unshare")
        .args(["-r", "-p", "-f", "--mount-proc"])
        .arg(format!("--root={}", image.path().display()))
        .arg(image_path)
        .output()
        .expect("run unshare");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.starts_with(expect),
        "program failed in its image: {out:?}"
    );
}

#[test]
fn a_static_binary_needs_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let exe = dir.path().join("static");
    gcc(
        dir.path(),
        "int main(void) { return 0; }",
        &exe,
        &["-static"],
    );
    let closure = resolve(&host(), &program(&exe, "/static")).expect("resolve");
    assert!(closure.files.is_empty(), "{:?}", closure.files);
}

#[test]
fn a_non_elf_program_needs_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let script = dir.path().join("run.sh");
    std::fs::write(&script, "#!/bin/sh\n").expect("write");
    let closure = resolve(&host(), &program(&script, "/run.sh")).expect("resolve");
    assert!(closure.files.is_empty());
}

/// Builds `lib<name>.so` (soname `lib<name>.so.1`, file `.so.1.0`, link
/// `.so.1`) in `dir` with `source`, linked with `args`.
fn shared_lib(dir: &Path, name: &str, source: &str, args: &[&str]) {
    let real = dir.join(format!("lib{name}.so.1.0"));
    let soname = format!("-Wl,-soname,lib{name}.so.1");
    let mut all = vec!["-shared", "-fPIC", soname.as_str()];
    all.extend(args);
    gcc(dir, source, &real, &all);
    symlink(
        format!("lib{name}.so.1.0"),
        dir.join(format!("lib{name}.so.1")),
    )
    .expect("symlink");
    symlink(
        format!("lib{name}.so.1.0"),
        dir.join(format!("lib{name}.so")),
    )
    .expect("symlink");
}

#[test]
fn a_missing_library_is_not_found_naming_program_library_and_places() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lib = dir.path().join("lib");
    std::fs::create_dir(&lib).expect("mkdir");
    shared_lib(&lib, "kilnmissing", "int missing(void) { return 1; }", &[]);
    let exe = dir.path().join("prog");
    let l = format!("-L{}", lib.display());
    gcc(
        dir.path(),
        "int missing(void); int main(void) { return missing(); }",
        &exe,
        &[&l, "-lkilnmissing"],
    );
    std::fs::remove_dir_all(&lib).expect("delete the library");

    let err = resolve(&host(), &program(&exe, "/app/prog")).expect_err("missing lib");
    let ClosureError::NotFound {
        program,
        library,
        searched,
    } = &err
    else {
        panic!("expected NotFound, got {err:?}");
    };
    assert_eq!(
        (program.as_str(), library.as_str()),
        ("/app/prog", "libkilnmissing.so.1")
    );
    assert!(
        searched.ends_with(&["/lib64", "/usr/lib64", "/lib", "/usr/lib"].map(String::from)),
        "{searched:?}"
    );
    let message = err.to_string();
    assert!(
        message.contains("`/app/prog`") && message.contains("`libkilnmissing.so.1`"),
        "{message}"
    );
    assert!(message.contains("/usr/lib"), "{message}");
    let diagnostic: &dyn miette::Diagnostic = &err;
    assert_eq!(
        diagnostic.code().map(|c| c.to_string()).as_deref(),
        Some("kiln::closure::not_found")
    );
    assert!(
        diagnostic
            .help()
            .expect("help")
            .to_string()
            .contains("closure=#false")
    );
}

const FOO: &str = "int bar(void); int foo(void) { return bar(); }";
const BAR: &str = "int bar(void) { return 0; }";
const MAIN_FOO: &str = "int foo(void); int main(void) { return foo(); }";

/// A stage output `out/` with `bin/prog` needing `libfoo`, which needs
/// `libbar`, both in `out/lib`; the program's search path is
/// `$ORIGIN/../lib`, as RUNPATH or (with `old_dtags`) RPATH.
fn origin_output(old_dtags: bool) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (bin, lib) = (dir.path().join("out/bin"), dir.path().join("out/lib"));
    std::fs::create_dir_all(&bin).expect("mkdir");
    std::fs::create_dir_all(&lib).expect("mkdir");
    let l = format!("-L{}", lib.display());
    shared_lib(&lib, "bar", BAR, &[]);
    shared_lib(&lib, "foo", FOO, &[&l, "-lbar"]);
    let exe = bin.join("prog");
    let dtags = if old_dtags {
        "-Wl,--disable-new-dtags"
    } else {
        "-Wl,--enable-new-dtags"
    };
    let rpath_link = format!("-Wl,-rpath-link,{}", lib.display());
    gcc(
        dir.path(),
        MAIN_FOO,
        &exe,
        &[&l, "-lfoo", "-Wl,-rpath,$ORIGIN/../lib", dtags, &rpath_link],
    );
    (dir, exe)
}

#[test]
fn origin_runpath_finds_libraries_beside_the_program_at_their_image_path() {
    let (dir, exe) = origin_output(true);
    let closure = resolve(&host(), &program(&exe, "/app/bin/prog")).expect("resolve");
    let lib = dir.path().join("out/lib");
    let foo = &closure.files["/app/lib/libfoo.so.1"];
    assert_eq!(
        foo.kind,
        NeededKind::Symlink {
            target: "libfoo.so.1.0".into()
        }
    );
    assert_eq!(foo.source, lib.join("libfoo.so.1"));
    let foo_real = &closure.files["/app/lib/libfoo.so.1.0"];
    assert_eq!(
        (&foo_real.kind, &foo_real.source),
        (&NeededKind::File, &lib.join("libfoo.so.1.0"))
    );
    assert_eq!(foo_real.chain, ["/app/bin/prog", "libfoo.so.1"]);
    // libfoo has no search path: libbar comes from the program's RPATH.
    let bar = &closure.files["/app/lib/libbar.so.1.0"];
    assert_eq!(bar.chain, ["/app/bin/prog", "libfoo.so.1", "libbar.so.1"]);
    assert!(
        closure.files.keys().all(|k| !k.contains("out/")),
        "{:?}",
        closure.files.keys()
    );
    if require_debian_x86_64() {
        run_in_image(&exe, "/app/bin/prog", &closure, "");
    }
}

#[test]
fn runpath_is_not_inherited_by_the_libraries_a_program_loads() {
    let (_dir, exe) = origin_output(false);
    let err = resolve(&host(), &program(&exe, "/app/bin/prog")).expect_err("libbar unreachable");
    assert!(
        matches!(&err, ClosureError::NotFound { library, .. } if library == "libbar.so.1"),
        "{err:?}"
    );
}

/// A root that is not the host: ld.so.conf pointing at /opt/mylib, an
/// absolute symlink inside it, and a library of another machine first in
/// the search path, which ld.so would skip.
fn fake_root(with_libz: bool) -> tempfile::TempDir {
    let root = tempfile::tempdir().expect("tempdir");
    let put = |path: &str| {
        let p = root.path().join(path);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        p
    };
    let host = |name: &str| {
        std::fs::canonicalize(Path::new("/lib/x86_64-linux-gnu").join(name)).expect("host lib")
    };
    std::fs::write(put("etc/ld.so.conf"), "include ld.so.conf.d/*.conf\n").expect("write");
    std::fs::write(put("etc/ld.so.conf.d/0.conf"), "/opt/other\n/opt/mylib\n").expect("write");
    std::fs::copy(
        host("ld-linux-x86-64.so.2"),
        put("lib64/ld-linux-x86-64.so.2"),
    )
    .expect("copy");
    std::fs::copy(host("libc.so.6"), put("usr/lib/libc.so.6")).expect("copy");
    if with_libz {
        std::fs::copy(host("libz.so.1"), put("opt/mylib/libz.so.1.2")).expect("copy");
        symlink("/opt/mylib/libz.so.1.2", put("opt/mylib/libz.so.1")).expect("symlink");
        // Same name, wrong machine (EM_AARCH64 at offset 18).
        let mut other = std::fs::read(host("libz.so.1")).expect("read");
        other[18..20].copy_from_slice(&183u16.to_le_bytes());
        std::fs::write(put("opt/other/libz.so.1"), other).expect("write");
    }
    root
}

#[test]
fn lookups_stay_inside_a_fake_root_and_skip_other_machines() {
    if !require_debian_x86_64() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let exe = dir.path().join("zprog");
    gcc(dir.path(), ZLIB_PROGRAM, &exe, &["-lz"]);
    let root = fake_root(true);
    let closure = resolve(&image(root.path()), &program(&exe, "/zprog")).expect("resolve");
    let expected = entries(&[
        ("/lib64/ld-linux-x86-64.so.2", "file"),
        ("/opt/mylib/libz.so.1", "-> /opt/mylib/libz.so.1.2"),
        ("/opt/mylib/libz.so.1.2", "file"),
        ("/usr/lib/libc.so.6", "file"),
    ]);
    assert_eq!(shape(&closure.files), expected);
    assert!(
        closure
            .files
            .values()
            .all(|n| n.source.starts_with(root.path()))
    );

    let err = resolve(&image(fake_root(false).path()), &program(&exe, "/zprog"))
        .expect_err("no libz in root");
    let ClosureError::NotFound {
        library, searched, ..
    } = &err
    else {
        panic!("expected NotFound, got {err:?}");
    };
    assert_eq!(library, "libz.so.1");
    assert_eq!(
        searched,
        &[
            "/opt/other",
            "/opt/mylib",
            // ld.so's built-in path on Debian, then upstream glibc's.
            "/lib/x86_64-linux-gnu",
            "/usr/lib/x86_64-linux-gnu",
            "/lib64",
            "/usr/lib64",
            "/lib",
            "/usr/lib"
        ]
    );
}

/// Regression: a file loaded once under one name and needed again under
/// another (no soname to match) must bring both names' symlinks, or ld.so
/// in the image cannot find it by the second.
#[test]
fn a_library_needed_under_two_names_keeps_both_symlinks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (bin, lib) = (dir.path().join("out/bin"), dir.path().join("out/lib"));
    std::fs::create_dir_all(&bin).expect("mkdir");
    std::fs::create_dir_all(&lib).expect("mkdir");
    gcc(
        dir.path(),
        BAR,
        &lib.join("libq.so.1.0"),
        &["-shared", "-fPIC"],
    );
    symlink("libq.so.1.0", lib.join("libq.so.1")).expect("symlink");
    symlink("libq.so.1.0", lib.join("libq.so")).expect("symlink");
    let l = format!("-L{}", lib.display());
    shared_lib(&lib, "foo", FOO, &[&l, "-l:libq.so"]);
    let exe = bin.join("prog");
    let args = [
        "-Wl,--no-as-needed",
        &l,
        "-lfoo",
        "-l:libq.so.1",
        "-Wl,-rpath,$ORIGIN/../lib",
        "-Wl,--disable-new-dtags",
    ];
    gcc(dir.path(), MAIN_FOO, &exe, &args);

    let closure = resolve(&host(), &program(&exe, "/app/bin/prog")).expect("resolve");
    let link = |name: &str| closure.files.get(name).map(|n| n.kind.clone());
    let to_real = Some(NeededKind::Symlink {
        target: "libq.so.1.0".into(),
    });
    assert_eq!(link("/app/lib/libq.so.1"), to_real);
    assert_eq!(link("/app/lib/libq.so"), to_real);
    assert_eq!(link("/app/lib/libq.so.1.0"), Some(NeededKind::File));
}

/// Issue 9 item 5: an image root's `/etc/shadow`, or a loader built for
/// another machine, named as `PT_INTERP` is refused, not copied.
#[test]
fn an_interpreter_that_is_not_an_elf_for_this_machine_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(root.path().join("etc")).expect("mkdir");
    std::fs::write(root.path().join("etc/shadow"), "root:secret:1::::::\n").expect("write");
    let mut other = std::fs::read("/proc/self/exe").expect("read an ELF");
    // Same file, another machine: EM_S390 (22) at offset 18.
    other[18..20].copy_from_slice(&22u16.to_le_bytes());
    std::fs::write(root.path().join("etc/ld.so"), other).expect("write");
    for interp in ["/etc/shadow", "/etc/ld.so"] {
        let exe = dir.path().join("prog");
        let flag = format!("-Wl,--dynamic-linker={interp}");
        gcc(dir.path(), "int main(void) { return 0; }", &exe, &[&flag]);
        let err = resolve(&image(root.path()), &program(&exe, "/prog")).expect_err("refused");
        assert!(
            matches!(&err, ClosureError::BadInterpreter { interpreter, .. } if interpreter == interp),
            "{err:?}"
        );
    }
}
