//! The spec corpus: every `tests/spec/ok-*.kdl` loads, every
//! `tests/spec/fail-*.kdl` fails with exactly the diagnostic in its
//! `.expected` file. `KILN_BLESS=1 cargo test --test it spec_corpus` rewrites
//! the expected files. Each fixture fails on its own, without `--arg`s (the
//! CLI tests run them through `kiln check` too).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use kiln::spec::{Command, Content, ImageRoot, Root, Spec, load};
use miette::{GraphicalReportHandler, GraphicalTheme};

const CORPUS: &str = "tests/spec";

/// Fixtures named `<prefix>*.kdl`, as paths relative to the crate root (so
/// diagnostics name them relatively, the way a user would type them).
fn fixtures(prefix: &str) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = fs_err::read_dir(CORPUS)
        .expect("the corpus directory exists")
        .map(|entry| entry.expect("readable corpus entry").file_name())
        .filter_map(|name| name.to_str().map(str::to_owned))
        .filter(|name| name.starts_with(prefix) && name.ends_with(".kdl"))
        .map(|name| Path::new(CORPUS).join(name))
        .collect();
    found.sort();
    found
}

fn load_fixture(path: &Path) -> Result<Spec, kiln::spec::SpecError> {
    load(path, &[])
}

fn render(error: &kiln::spec::SpecError) -> String {
    let mut out = String::new();
    GraphicalReportHandler::new_themed(GraphicalTheme::unicode_nocolor())
        .with_width(100)
        .render_report(&mut out, error)
        .expect("rendering to a String cannot fail");
    out
}

#[test]
fn every_ok_fixture_loads() {
    let failures: Vec<String> = fixtures("ok-")
        .iter()
        .filter_map(|path| load_fixture(path).err().map(|e| render(&e)))
        .collect();
    assert!(
        failures.is_empty(),
        "ok fixtures failed:\n{}",
        failures.join("\n")
    );
}

#[test]
fn every_fail_fixture_fails_with_its_expected_diagnostic() {
    let bless = std::env::var_os("KILN_BLESS").is_some();
    let cases = fixtures("fail-");
    assert!(
        cases.len() >= 30,
        "the corpus lost fail cases: {}",
        cases.len()
    );
    let mut mismatches = Vec::new();
    for path in &cases {
        let rendered = match load_fixture(path) {
            Ok(_) => {
                mismatches.push(format!("{}: loaded, expected a diagnostic", path.display()));
                continue;
            }
            Err(error) => render(&error),
        };
        let absolute = std::env::current_dir().expect("a working directory");
        assert!(
            !rendered.contains(&*absolute.to_string_lossy()),
            "absolute path in:\n{rendered}"
        );
        let expected_path = path.with_extension("expected");
        if bless {
            fs_err::write(&expected_path, &rendered).expect("writable corpus");
            continue;
        }
        let expected = fs_err::read_to_string(&expected_path).unwrap_or_default();
        if expected != rendered {
            mismatches.push(format!(
                "{}: diagnostic differs (KILN_BLESS=1 to accept)\n--- expected\n{expected}\n--- actual\n{rendered}",
                path.display()
            ));
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

#[test]
fn go_http_example_becomes_the_model() {
    let spec = load_fixture(Path::new("tests/spec/ok-go-http.kdl")).expect("valid");
    assert_eq!(spec.source.name(), "tests/spec/ok-go-http.kdl");
    assert_eq!(
        spec.context,
        fs_err::canonicalize(CORPUS).expect("corpus dir")
    );
    let server = spec.stage("server").expect("stage server");
    assert_eq!(
        server.from.value,
        Root::Base(kiln::spec::Name::new("golang").expect("name"))
    );
    let srcs: Vec<&str> = server.srcs.iter().map(|s| s.value.as_str()).collect();
    assert_eq!(srcs, ["go.mod", "src", "templates"]);
    assert_eq!(
        server.env,
        BTreeMap::from([("CGO_ENABLED".into(), "1".into())])
    );
    assert_eq!(
        server.run_args,
        BTreeMap::from([("goflags".into(), "-trimpath".into())])
    );
    let image = spec.image("go-http-demo").expect("image");
    assert_eq!(image.from.value, ImageRoot::Scratch);
    assert_eq!(image.contents.len(), 3);
    assert_eq!(image.expose, ["8080/tcp"]);
    assert_eq!(image.env["PORT"], "8080");
    assert_eq!(
        image.entrypoint.as_ref().map(|e| &e.value),
        Some(&Command::Exec(vec!["/app/goapp".into()]))
    );
    assert_eq!(image.max_layers, 100);
}

#[test]
fn args_substitute_everywhere_but_run_and_key_only_mentioning_stages() {
    let path = Path::new("tests/spec/ok-args.kdl");
    let spec = load(path, &[("version".into(), "2.0".into())]).expect("valid");
    let build = spec.stage("build").expect("stage build");
    assert_eq!(build.srcs[0].value.as_str(), "src/main.go");
    assert_eq!(build.env["VERSION"], "v2.0");
    assert_eq!(build.env["LITERAL"], "${version}");
    assert_eq!(
        build.runs[0].value,
        "go build ${go_flags} -o $out/app-${version} ."
    );
    let expected = BTreeMap::from([
        ("go_flags".into(), "-trimpath".into()),
        ("version".into(), "2.0".into()),
    ]);
    assert_eq!(build.run_args, expected);
    let image = spec.image("app").expect("image app");
    assert_eq!(image.tags[0].value, "app:2.0");
    assert_eq!(image.env["PORT"], "8080");
    let declared: Vec<&str> = spec.args.iter().map(|a| a.name.value.as_str()).collect();
    assert_eq!(
        declared,
        ["version", "go-flags", "port"],
        "unset, unmentioned args are left out"
    );
}

#[test]
fn image_fields_are_normalized() {
    let spec = load_fixture(Path::new("tests/spec/ok-chain.kdl")).expect("valid");
    let image = spec.image("runtime").expect("image runtime");
    assert_eq!(image.expose, ["53/udp", "443/tcp", "8080/tcp"]);
    assert_eq!(image.volumes, ["/data", "/var/log"]);
    assert_eq!(image.tags.len(), 2);
    assert_eq!(image.tags[1].value, "app:latest");
    assert_eq!(image.max_layers, 20);
    assert_eq!(
        image.cmd.as_ref().map(|c| &c.value),
        Some(&Command::Shell("serve --port 8080".into()))
    );
    let Content::Copy { attrs, .. } = &image.contents[0] else {
        panic!("a copy")
    };
    assert_eq!(
        (attrs.to.value.as_str(), attrs.mode, attrs.closure),
        ("/usr/local/bin/app", Some(0o755), false)
    );
    assert_eq!((attrs.owner.uid, attrs.owner.gid), (1000, 1000));
    let Content::Copy { attrs, path, .. } = &image.contents[1] else {
        panic!("a copy")
    };
    assert_eq!(
        (path.value.as_str(), attrs.mode, attrs.closure),
        (".", Some(0o644), true)
    );
    assert_eq!(
        attrs.closure_extra,
        ["/etc/ssl/certs/ca-certificates.crt", "/etc/passwd"]
    );
    let app = spec.stage("app").expect("stage app");
    let uses: Vec<&str> = app.uses.iter().map(|u| u.value.as_str()).collect();
    assert_eq!(uses, ["zlib", "deps"]);
    assert_eq!(
        app.srcs.len(),
        3,
        "sorted and deduplicated: go.mod, src, src/main.go"
    );
}

#[test]
fn a_missing_kiln_kdl_is_a_read_error_naming_the_path() {
    let error = load(Path::new("tests/spec/no-such-kiln.kdl"), &[]).expect_err("missing file");
    let rendered = render(&error);
    assert!(rendered.contains("kiln::spec::read"), "{rendered}");
    assert!(
        rendered.contains("Cannot read `tests/spec/no-such-kiln.kdl`"),
        "{rendered}"
    );
}

/// kiln never panics on user input: every prefix of the richest fixture, and
/// each of its lines dropped in turn, loads or fails with diagnostics.
#[test]
fn truncated_and_mangled_specs_never_panic() {
    let text = fs_err::read_to_string("tests/spec/ok-chain.kdl").expect("fixture");
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("kiln.kdl");
    let lines: Vec<&str> = text.lines().collect();
    let mut variants: Vec<String> = text
        .char_indices()
        .map(|(i, _)| text[..i].to_owned())
        .collect();
    variants.extend((0..lines.len()).map(|skip| {
        let kept = lines.iter().enumerate().filter(|(i, _)| *i != skip);
        kept.map(|(_, l)| *l).collect::<Vec<_>>().join("\n")
    }));
    for variant in variants {
        fs_err::write(&path, &variant).expect("write variant");
        if let Err(error) = load(&path, &[]) {
            render(&error);
        }
    }
}

#[test]
fn an_override_for_an_undeclared_arg_lists_the_declared_ones() {
    let path = Path::new("tests/spec/ok-args.kdl");
    let overrides = [("verison".to_owned(), "2".to_owned())];
    let error = load(path, &overrides).expect_err("undeclared arg");
    let expected = "kiln::spec::undeclared_arg

  × `--arg verison` sets an arg that kiln.kdl does not declare
  help: Declared args: `go-flags`, `port`, `unused`, `version`
";
    assert_eq!(render(&error), expected);
}
