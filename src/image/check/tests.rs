use super::*;
use crate::image::config::merge;
use crate::image::model::{Entry, Kind};
use crate::image::testutil::{exec, image, sp, spec};
use crate::spec::{Command, Owner};

fn file(path: &str, mode: u32) -> Entry {
    let kind = Kind::File {
        disk: "/nonexistent".into(),
        size: 0,
        content: [0; 32],
    };
    Entry {
        path: path.into(),
        kind,
        mode,
        owner: Owner::default(),
    }
}

fn link(path: &str, target: &str) -> Entry {
    let kind = Kind::Symlink {
        target: target.into(),
    };
    Entry {
        path: path.into(),
        kind,
        mode: 0o777,
        owner: Owner::default(),
    }
}

fn dir(path: &str) -> Entry {
    Entry {
        path: path.into(),
        kind: Kind::Dir,
        mode: 0o755,
        owner: Owner::default(),
    }
}

fn files(entries: &[Entry]) -> FileSet {
    let mut set = FileSet::default();
    set.add(entries);
    set
}

fn check(img: &Image, set: &FileSet) -> Result<(), ExportError> {
    let s = spec(std::path::Path::new("/"), vec![]);
    entrypoint(&s, img, &merge(None, img, img.name.value.as_str()), set)
}

fn goapp() -> FileSet {
    files(&[dir("app"), file("app/goapp", 0o755)])
}

#[test]
fn an_exec_entrypoint_present_in_the_image_passes() {
    let mut img = image("app");
    img.entrypoint = exec(&["/app/goapp", "--port", "80"]);
    check(&img, &goapp()).unwrap();
}

#[test]
fn a_missing_program_is_refused_and_the_help_lists_what_is_there() {
    let mut img = image("app");
    img.entrypoint = exec(&["/app/server"]);
    let err = check(&img, &goapp()).unwrap_err();
    let ExportError::Entrypoint {
        reason, help, what, ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(*what, "entrypoint");
    assert_eq!(reason, "`/app/server` is not in the image");
    assert_eq!(help, "Executables in the image: /app/goapp");
}

#[test]
fn shell_form_on_scratch_is_refused_with_an_exec_form_hint() {
    // The trap of `ENTRYPOINT ./goapp` on `FROM scratch`.
    let mut img = image("app");
    img.workdir = Some(sp("/app".into()));
    img.entrypoint = Some(sp(Command::Shell("./goapp".into())));
    let err = check(&img, &goapp()).unwrap_err();
    let ExportError::Entrypoint { reason, help, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(reason, "the image has no `/bin/sh` to run its shell form");
    assert_eq!(
        help,
        "Use the exec form, which needs no shell: `entrypoint \"./goapp\"`"
    );
}

#[test]
fn shell_form_passes_when_the_shell_is_a_symlink_into_usr() {
    let set = files(&[
        link("bin", "usr/bin"),
        dir("usr"),
        dir("usr/bin"),
        file("usr/bin/busybox", 0o755),
        link("usr/bin/sh", "/usr/bin/busybox"),
    ]);
    let mut img = image("app");
    img.entrypoint = Some(sp(Command::Shell("echo hi".into())));
    check(&img, &set).unwrap();
}

#[test]
fn a_relative_program_resolves_against_the_workdir() {
    let mut img = image("app");
    img.entrypoint = exec(&["./goapp"]);
    assert!(check(&img, &goapp()).is_err(), "workdir defaults to /");
    img.workdir = Some(sp("/app".into()));
    check(&img, &goapp()).unwrap();
}

#[test]
fn a_bare_name_is_found_through_the_images_path() {
    let mut img = image("app");
    img.cmd = exec(&["goapp"]);
    assert!(
        check(&img, &goapp()).is_err(),
        "/app is not on the default PATH"
    );
    img.env.insert("PATH".into(), "/usr/bin:/app".into());
    check(&img, &goapp()).unwrap();
    let on_default = files(&[
        dir("usr"),
        dir("usr/local"),
        dir("usr/local/bin"),
        file("usr/local/bin/goapp", 0o755),
    ]);
    img.env.clear();
    check(&img, &on_default).unwrap();
}

#[test]
fn a_non_executable_file_or_a_directory_is_refused() {
    let mut img = image("app");
    img.entrypoint = exec(&["/app/data"]);
    let set = files(&[dir("app"), file("app/data", 0o644)]);
    let err = check(&img, &set).unwrap_err();
    assert!(
        err.to_string().contains("`/app/data` is not executable"),
        "{err}"
    );
    img.entrypoint = exec(&["/app"]);
    let err = check(&img, &set).unwrap_err();
    assert!(err.to_string().contains("`/app` is a directory"), "{err}");
}

#[test]
fn a_symlink_loop_is_missing_not_a_hang() {
    let set = files(&[link("a", "b"), link("b", "a")]);
    let mut img = image("app");
    img.entrypoint = exec(&["/a"]);
    assert!(check(&img, &set).is_err());
}

#[test]
fn an_image_without_entrypoint_or_cmd_needs_nothing() {
    check(&image("data"), &FileSet::default()).unwrap();
}
