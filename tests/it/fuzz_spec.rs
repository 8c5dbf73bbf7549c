//! The spec parser under a bounded mutational fuzz on stable Rust, in every
//! CI run: the corpus `fuzz/corpus/spec/` (the fixtures of `tests/spec/` and
//! hostile inputs) replayed as is, then mutated with a seeded RNG, through
//! `spec::load_str` and the rendering of its diagnostic. No input may panic,
//! take longer than [`PER_INPUT`] or print more than [`MAX_RENDERED`].
//! `fuzz/fuzz_targets/spec.rs` is the same check for cargo-fuzz (nightly).
//! The context holds files to import (a shared file, one that imports
//! itself, one nested), and every other mutant is the text of an imported
//! file rather than of kiln.kdl.
//!
//! `KILN_FUZZ_SECS` sets the time spent mutating (default 20), and
//! `KILN_FUZZ_SEED` the seed (default: from the clock, printed). A failing
//! input is written to `target/fuzz-failures/spec-<hash>.kdl`; add it to the
//! corpus once fixed.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use miette::{GraphicalReportHandler, GraphicalTheme};

const CORPUS: &str = "fuzz/corpus/spec";
/// A hang guard for one input in a debug build on a busy machine.
const PER_INPUT: Duration = Duration::from_secs(5);
const MAX_RENDERED: usize = 1 << 20;
/// Mutants stay small enough that many run per second.
const MAX_INPUT: usize = 256 << 10;

/// KDL and kiln tokens that mutations insert, so mutants reach past the
/// lexer: delimiters of every string and comment form, and kiln's nodes.
const TOKENS: &[&str] = &[
    "{",
    "}",
    "{ ",
    " }",
    "\"",
    "\"\"\"\n",
    "#\"",
    "\"#",
    "##\"",
    "/*",
    "*/",
    "//",
    "/-",
    "(",
    ")",
    ";",
    "\n",
    "\r\n",
    "=",
    "\\",
    "\\u{",
    "${",
    "$${",
    "#true",
    "#null",
    "0o755",
    "-1",
    "stage s ",
    "image i ",
    "base b ",
    "fetch f ",
    "arg a ",
    "run \"x\"",
    "use s",
    "from ",
    "copy s \".\" to=\"/\"",
    "src \"main.c\"",
    "env A=\"1\"",
    "tag \"a:b\"",
    "layers max=3",
    "import \"lib.kdl\" as=l ",
    "import \"cycle.kdl\" as=c\n",
    "import \"../x.kdl\" as=x\n",
    " as=l",
    "{ arg g=\"2\" }",
    "from l.img",
    "use l.s",
    "copy l.s \".\" to=\"/\"",
    "template t { param p; stage s { run \"$p\" } }\n",
    "param q default=1 ",
    "t i p=\"x\"\n",
    "l.prog j name=\"j\" ",
    "use i.s j.build",
    "\u{2028}",
    "\u{feff}",
    "é",
    "\u{0}",
];

/// splitmix64: small, seedable, good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// One random edit of `input`; `other` is another corpus entry to splice.
fn mutate(rng: &mut Rng, input: &mut Vec<u8>, other: &[u8]) {
    let len = input.len();
    let at = rng.below(len + 1);
    match rng.below(8) {
        0 if len > 0 => input[at.min(len - 1)] ^= 1 << rng.below(8),
        1 => input.insert(at, rng.next() as u8),
        2 => {
            let token = TOKENS[rng.below(TOKENS.len())];
            input.splice(at..at, token.bytes());
        }
        3 if len > 0 => {
            let end = (at + 1 + rng.below(64)).min(len);
            input.drain(at.min(len - 1)..end);
        }
        4 if len > 0 => {
            // Repeat a slice many times: deep nesting, long lines, many nodes.
            let start = at.min(len - 1);
            let end = (start + 1 + rng.below(16)).min(len);
            let piece = input[start..end].to_vec();
            let times = 1 + rng.below(2000);
            let repeated: Vec<u8> = piece
                .iter()
                .copied()
                .cycle()
                .take(piece.len() * times)
                .collect();
            input.splice(end..end, repeated);
        }
        5 if !other.is_empty() => {
            let from = rng.below(other.len());
            let end = (from + 1 + rng.below(256)).min(other.len());
            input.splice(at..at, other[from..end].iter().copied());
        }
        6 => input.truncate(at),
        _ => input.push(b'\n'),
    }
    input.truncate(MAX_INPUT);
}

/// A shared file in the context, for mutants to import.
const LIB: &str = r#"arg g default="1"
import "inner/inner.kdl" as=i
stage s {
    src "main.c"
    use i.t
    run "echo $g"
}
image img {
    copy s "." to="/"
}
template prog {
    param name
    param port default=8080
    stage build {
        use s
        run "echo ${name} $port"
    }
}
prog inner name="inner"
"#;

/// What imports the mutant when the mutant is the imported file.
const IMPORTER: &str = r#"import "mutant.kdl" as=m {
    arg version="2"
}
stage top {
    use m.s
    run "true"
}
"#;

/// A build context with a file and a directory, so `src` paths can
/// resolve, and files to import.
fn context() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    fs_err::write(dir.path().join("main.c"), "int main;").expect("file");
    fs_err::create_dir(dir.path().join("src")).expect("dir");
    fs_err::write(dir.path().join("lib.kdl"), LIB).expect("file");
    fs_err::write(
        dir.path().join("cycle.kdl"),
        "import \"lib.kdl\" as=l\nimport \"cycle.kdl\" as=c\n",
    )
    .expect("file");
    fs_err::create_dir(dir.path().join("inner")).expect("dir");
    fs_err::write(
        dir.path().join("inner/inner.kdl"),
        "stage t { run \"true\" }\n",
    )
    .expect("file");
    fs_err::write(dir.path().join("inner/main.c"), "int main;").expect("file");
    let path = fs_err::canonicalize(dir.path()).expect("canonical");
    (dir, path)
}

/// Loads `input` and renders its diagnostic: the bytes rendered. With
/// `imported`, `input` is the text of a file kiln.kdl imports.
fn run_one(input: &[u8], context: &Path, imported: bool) -> usize {
    let mut text = String::from_utf8_lossy(input).into_owned();
    if imported {
        fs_err::write(context.join("mutant.kdl"), input).expect("write the mutant");
        text = IMPORTER.to_owned();
    }
    let overrides = [("version".to_owned(), "1.0".to_owned())];
    match kiln::spec::load_str("kiln.kdl", text, context.to_path_buf(), &overrides) {
        Ok(_) => 0,
        Err(error) => {
            let mut out = String::new();
            GraphicalReportHandler::new_themed(GraphicalTheme::unicode_nocolor())
                .render_report(&mut out, &error)
                .expect("rendering to a String");
            out.len()
        }
    }
}

/// Runs `input`; on a panic, a hang or a flood, saves it and says why.
fn check(input: &[u8], context: &Path, imported: bool, what: &str) -> Result<(), String> {
    let (done, outcome) = std::sync::mpsc::channel();
    let (owned, at) = (input.to_vec(), context.to_path_buf());
    let start = Instant::now();
    // On a thread, so that a hang is reported rather than waited for.
    std::thread::spawn(move || {
        let rendered = catch_unwind(AssertUnwindSafe(|| run_one(&owned, &at, imported)));
        let _ = done.send(rendered);
    });
    let why = match outcome.recv_timeout(PER_INPUT) {
        Err(_) => format!("did not finish in {PER_INPUT:?}"),
        Ok(Err(_)) => "panicked".to_owned(),
        Ok(Ok(n)) if n > MAX_RENDERED => format!("rendered {n} bytes"),
        Ok(Ok(_)) if start.elapsed() > PER_INPUT => format!("took {:?}", start.elapsed()),
        Ok(Ok(_)) => return Ok(()),
    };
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/fuzz-failures");
    fs_err::create_dir_all(&dir).expect("failure dir");
    let path = dir.join(format!("spec-{}.kdl", blake3::hash(input).to_hex()));
    fs_err::write(&path, input).expect("save failing input");
    Err(format!("{what} {why}; input saved to {}", path.display()))
}

fn corpus() -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(CORPUS);
    let mut entries: Vec<(String, Vec<u8>)> = fs_err::read_dir(&dir)
        .expect("the corpus directory")
        .map(|entry| {
            let path = entry.expect("corpus entry").path();
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
            (
                name.unwrap_or_default(),
                fs_err::read(&path).expect("corpus file"),
            )
        })
        .collect();
    entries.sort();
    entries
}

fn env_number(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    Some(
        value
            .parse()
            .unwrap_or_else(|_| panic!("{name}={value} is not a number")),
    )
}

#[test]
fn the_corpus_loads_without_panic_hang_or_flood() {
    let (_dir, context) = context();
    let corpus = corpus();
    assert!(
        corpus.len() >= 50,
        "the corpus lost entries: {}",
        corpus.len()
    );
    let failures: Vec<String> = (corpus.iter())
        .filter_map(|(name, input)| check(input, &context, false, name).err())
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn mutated_specs_never_panic_hang_or_flood() {
    let secs = env_number("KILN_FUZZ_SECS").unwrap_or(20);
    let seed = env_number("KILN_FUZZ_SEED").unwrap_or_else(|| {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
        now.map_or(0, |d| d.as_nanos() as u64)
    });
    eprintln!("fuzz_spec: seed {seed} (KILN_FUZZ_SEED), {secs}s (KILN_FUZZ_SECS)");
    let (_dir, context) = context();
    let corpus = corpus();
    let mut rng = Rng(seed);
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut runs = 0u64;
    while Instant::now() < deadline {
        let (name, base) = &corpus[rng.below(corpus.len())];
        let (_, other) = &corpus[rng.below(corpus.len())];
        let mut input = base.clone();
        for _ in 0..1 + rng.below(8) {
            mutate(&mut rng, &mut input, other);
        }
        // Every other mutant is a file kiln.kdl imports.
        let imported = runs % 2 == 1;
        let what = format!("seed {seed}, run {runs} (imported: {imported}), from {name}:");
        if let Err(failure) = check(&input, &context, imported, &what) {
            panic!("{failure}");
        }
        runs += 1;
    }
    eprintln!("fuzz_spec: {runs} mutated specs");
    assert!(secs == 0 || runs > 0, "no input ran");
}
