use std::path::{Path, PathBuf};

use super::*;
use crate::spec::{SpecError, load, load_cached};

/// Every kind of node, every path a load checks, spans everywhere.
const SPEC: &str = r#"
arg goflags default="-trimpath"
arg version default="1"
base golang {
    archive "vendor/golang.tar" digest="sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
}
fetch zlib url="https://zlib.net/zlib-1.3.tar.gz" sha256="e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
stage server {
    from golang
    src "src" "./templates/" "go.mod"
    use zlib
    tools "sh"
    env CGO_ENABLED=1
    timeout "90s"
    run "go build $goflags -o $out/goapp ./src"
}
image demo {
    copy server "goapp" to="/app//goapp" mode=0o755 owner="1000:1000" closure=#false
    add "src/dev.db" to="/app/dev.db"
    workdir "/app"
    env PORT=8080
    expose "53/udp" 8080
    label version="${version}"
    volume "/data"
    stop-signal "SIGINT"
    user "1000:1000"
    entrypoint "/app/goapp"
    cmd "serve --port 8080" shell=#true
    tag "demo:${version}"
}
stage runner {
    from demo
    run "true"
}
"#;

struct Fixture {
    _dir: tempfile::TempDir,
    project: PathBuf,
    cache: PathBuf,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().expect("temp dir");
        let project = dir.path().join("project");
        for sub in ["src", "templates", "vendor"] {
            fs_err::create_dir_all(project.join(sub)).expect("mkdir");
        }
        for file in ["go.mod", "src/dev.db", "vendor/golang.tar"] {
            fs_err::write(project.join(file), "x").expect("write");
        }
        fs_err::write(project.join("kiln.kdl"), SPEC).expect("write");
        let cache = dir.path().join("cache");
        Fixture {
            _dir: dir,
            project,
            cache,
        }
    }

    fn spec_file(&self) -> PathBuf {
        self.project.join("kiln.kdl")
    }

    fn cached(&self, overrides: &[(String, String)]) -> Result<Spec, SpecError> {
        load_cached(&self.spec_file(), overrides, &self.cache)
    }

    fn cache_files(&self) -> Vec<PathBuf> {
        match fs_err::read_dir(&self.cache) {
            Ok(dir) => dir.map(|e| e.expect("entry").path()).collect(),
            Err(_) => Vec::new(),
        }
    }

    /// The one cache file, after a load stored it.
    fn cache_file(&self) -> PathBuf {
        let files = self.cache_files();
        assert_eq!(files.len(), 1, "{files:?}");
        files[0].clone()
    }

    /// The cache file `overrides` and the spec as it is would use.
    fn key_file(&self, name: &str, overrides: &[(String, String)]) -> PathBuf {
        let text = fs_err::read_to_string(self.spec_file()).expect("read");
        let source = NamedSource::new(name, text);
        let context = fs_err::canonicalize(&self.project).expect("canonical");
        file(&self.cache, &source, &context, overrides).expect("kiln's build is known")
    }
}

fn assert_same(a: &Spec, b: &Spec) {
    assert_eq!(a.source.name(), b.source.name());
    assert_eq!(a.source.inner(), b.source.inner());
    assert_eq!(a.context, b.context);
    assert_eq!(a.args, b.args);
    assert_eq!(a.stages, b.stages);
    assert_eq!(a.bases, b.bases);
    assert_eq!(a.fetches, b.fetches);
    assert_eq!(a.images, b.images);
}

fn arg(name: &str, value: &str) -> Vec<(String, String)> {
    vec![(name.to_owned(), value.to_owned())]
}

#[test]
fn a_hit_returns_the_spec_a_full_load_returns() {
    let f = Fixture::new();
    let full = load(&f.spec_file(), &[]).expect("valid");
    let first = f.cached(&[]).expect("valid");
    assert_same(&first, &full);

    // Read straight from the file the first load stored.
    let source = full.source.clone();
    let hit = lookup(&f.cache_file(), &source, &full.context).expect("a hit");
    assert_same(&hit, &full);
    assert!(hit.stage("runner").is_some() && hit.image("demo").is_some());
    assert_same(&f.cached(&[]).expect("valid"), &full);
}

#[test]
fn a_hit_is_served_without_parsing() {
    let f = Fixture::new();
    f.cached(&[]).expect("valid");
    // A stored spec the text does not say: only a hit can return it.
    let file = f.cache_file();
    let json = fs_err::read_to_string(&file).expect("read");
    let edited = json.replace("\"1000:1000\"", "\"1234:1234\"");
    assert_ne!(json, edited);
    fs_err::write(&file, edited).expect("write");
    let spec = f.cached(&[]).expect("valid");
    assert_eq!(
        spec.image("demo")
            .and_then(|i| i.user.clone())
            .map(|u| u.value)
            .as_deref(),
        Some("1234:1234")
    );
}

#[test]
fn any_change_of_text_name_context_or_overrides_misses() {
    let f = Fixture::new();
    let name = f.spec_file().display().to_string();
    let base = f.key_file(&name, &[]);
    assert_eq!(base, f.key_file(&name, &[]));
    assert_ne!(base, f.key_file("kiln.kdl", &[]));
    assert_ne!(base, f.key_file(&name, &arg("version", "2")));
    assert_ne!(
        f.key_file(&name, &arg("version", "2")),
        f.key_file(&name, &arg("version", "3"))
    );
    assert_ne!(
        f.key_file(&name, &arg("version", "2")),
        f.key_file(&name, &arg("goflags", "2"))
    );

    fs_err::write(f.spec_file(), format!("{SPEC}\n")).expect("write");
    assert_ne!(base, f.key_file(&name, &[]));

    let text = fs_err::read_to_string(f.spec_file()).expect("read");
    let source = NamedSource::new(&name, text);
    let other = fs_err::canonicalize(f.project.join("src")).expect("canonical");
    let context = fs_err::canonicalize(&f.project).expect("canonical");
    assert_ne!(
        file(&f.cache, &source, &context, &[]),
        file(&f.cache, &source, &other, &[])
    );
}

#[test]
fn overrides_are_keyed_and_each_gets_its_own_spec() {
    let f = Fixture::new();
    f.cached(&arg("version", "2")).expect("valid");
    let spec = f.cached(&arg("version", "3")).expect("valid");
    assert_eq!(f.cache_files().len(), 2);
    let full = load(&f.spec_file(), &arg("version", "3")).expect("valid");
    assert_same(&spec, &full);
    assert_eq!(
        spec.image("demo").map(|i| i.tags[0].value.as_str()),
        Some("demo:3")
    );
}

#[test]
fn a_corrupt_or_truncated_cache_file_falls_back_to_a_full_load() {
    let f = Fixture::new();
    let full = load(&f.spec_file(), &[]).expect("valid");
    f.cached(&[]).expect("valid");
    let file = f.cache_file();
    let json = fs_err::read(&file).expect("read");
    let not_a_name = String::from_utf8(json.clone())
        .expect("json is UTF-8")
        .replace("\"server\"", "\"1server\"");
    for bad in [
        b"not json".to_vec(),
        json[..json.len() / 2].to_vec(),
        not_a_name.into_bytes(),
        Vec::new(),
    ] {
        fs_err::write(&file, &bad).expect("write");
        assert!(lookup(&file, &full.source, &full.context).is_none());
        assert_same(&f.cached(&[]).expect("valid"), &full);
        // The full load stored the spec again.
        assert_eq!(fs_err::read(&file).expect("read"), json);
    }
}

#[test]
fn a_spec_error_is_never_cached() {
    let f = Fixture::new();
    fs_err::write(f.spec_file(), "stage a { use missing; run \"true\" }").expect("write");
    assert!(f.cached(&[]).is_err());
    assert!(f.cached(&arg("nope", "1")).is_err());
    assert_eq!(f.cache_files(), Vec::<PathBuf>::new());
}

/// What `load` reports, as the user sees it.
fn report(result: Result<Spec, SpecError>) -> String {
    let error = result.expect_err("an error");
    format!("{:?}", miette::Report::new(error))
}

#[test]
fn a_source_gone_or_escaping_after_caching_is_reported_as_without_the_cache() {
    type Break = fn(&Path);
    let breaks: [(&str, Break); 4] = [
        ("src/dev.db", |p| {
            fs_err::remove_file(p.join("src/dev.db")).expect("rm")
        }),
        ("go.mod", |p| {
            fs_err::remove_file(p.join("go.mod")).expect("rm")
        }),
        ("vendor/golang.tar", |p| {
            fs_err::remove_file(p.join("vendor/golang.tar")).expect("rm");
            std::os::unix::fs::symlink("/etc/passwd", p.join("vendor/golang.tar")).expect("ln");
        }),
        ("templates", |p| {
            fs_err::remove_dir(p.join("templates")).expect("rmdir");
            std::os::unix::fs::symlink("/", p.join("templates")).expect("ln");
        }),
    ];
    for (what, break_it) in breaks {
        let f = Fixture::new();
        let full = load(&f.spec_file(), &[]).expect("valid");
        f.cached(&[]).expect("valid");
        break_it(&f.project);
        assert!(
            lookup(&f.cache_file(), &full.source, &full.context).is_none(),
            "{what}"
        );
        let without = report(load(&f.spec_file(), &[]));
        assert_eq!(report(f.cached(&[])), without, "{what}");
        assert!(without.contains(what), "{without}");
    }
}

#[test]
fn a_spec_with_imports_is_a_hit_until_an_imported_file_changes() {
    let f = Fixture::new();
    let shared = f.project.parent().expect("parent").join("shared");
    fs_err::create_dir_all(shared.join("inner")).expect("mkdir");
    fs_err::write(
        shared.join("t.kdl"),
        "import \"inner/i.kdl\" as=i\nstage s { use i.x; run \"marker\" }\n",
    )
    .expect("write");
    fs_err::write(shared.join("inner/i.kdl"), "stage x { run \"true\" }\n").expect("write");
    let spec = "import \"../shared/t.kdl\" as=t\nstage top { use t.s; run \"true\" }\n";
    fs_err::write(f.spec_file(), spec).expect("write");
    let full = load(&f.spec_file(), &[]).expect("valid");
    assert_eq!(full.files.len(), 3);
    assert_same(&f.cached(&[]).expect("valid"), &full);
    // Mark the stored spec: only a hit returns the mark.
    let file = f.cache_file();
    let json = fs_err::read_to_string(&file).expect("read");
    fs_err::write(&file, json.replace("\"marker\"", "\"from the cache\"")).expect("write");
    let hit = f.cached(&[]).expect("valid");
    assert_eq!(
        hit.stage("t.s").expect("t.s").runs[0].value,
        "from the cache"
    );
    assert_eq!(hit.source.inner(), full.source.inner());
    assert_eq!(hit.files, full.files);
    // A file imported two levels down changes: a miss, loaded in full.
    fs_err::write(shared.join("inner/i.kdl"), "stage x { run \"false\" }\n").expect("write");
    let miss = f.cached(&[]).expect("valid");
    assert_eq!(miss.stage("t.s").expect("t.s").runs[0].value, "marker");
    assert_eq!(miss.stage("t.i.x").expect("t.i.x").runs[0].value, "false");
}
