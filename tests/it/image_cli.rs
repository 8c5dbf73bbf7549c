//! What `kiln inspect`, `kiln why` and `kiln export` print and write for an
//! image of plain files (no ELF program, so no closure and no host layout to
//! depend on), through the real binary and without an engine: whole-output
//! snapshots of the human reports, `export -o -` against a file export, the
//! layer limit and `SOURCE_DATE_EPOCH`.

use std::io::Read;

use crate::common::Project;

/// Three stages and an image with every kind of layer content: a copied
/// file (made executable for `cmd`), a copied directory with its own mode
/// and owner, a file added from the build context.
const WORDS: &str = r#"
stage gen {
    src "words.txt"
    run "sort words.txt > $out/sorted.txt"
}
stage upper {
    use gen
    run "tr a-z A-Z < $gen/sorted.txt > $out/upper.txt"
}
image words {
    copy upper "upper.txt" to="/data/upper.txt" mode=0o755
    copy gen "." to="/data/gen" mode=0o600 owner="1000:1000"
    add "notes.txt" to="/etc/notes"
    env LANG="C.UTF-8"
    cmd "/data/upper.txt"
    label org.example.name="words"
    tag "words:1"
}
"#;

pub fn words_project() -> Project {
    let p = Project::new(WORDS);
    p.write("words.txt", "pear\napple\n");
    p.write("notes.txt", "remember\n");
    p
}

/// `kiln ARGS`, asserting success; its stdout.
fn stdout_of(p: &Project, args: &[&str]) -> String {
    let out = p.kiln(args);
    assert!(
        out.status.success(),
        "kiln {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 stdout")
}

#[test]
fn inspect_shows_layers_sizes_contents_and_config() {
    let p = words_project();
    crate::snapshot!("inspect_text", &p, stdout_of(&p, &["inspect", "words"]));
}

#[test]
fn why_names_the_copy_or_add_that_put_a_path_there() {
    let p = words_project();
    crate::snapshot!(
        "why_copy",
        &p,
        stdout_of(&p, &["why", "words", "/data/gen/sorted.txt"])
    );
    crate::snapshot!(
        "why_add",
        &p,
        stdout_of(&p, &["why", "words", "/etc/notes"])
    );
    let out = p.kiln(&["why", "words", "/etc/passwd"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "/etc/passwd is not in image `words`\n"
    );
}

#[test]
fn export_to_stdout_streams_the_same_bytes_as_a_file_export() {
    let p = words_project();
    let file = p.kiln(&["export", "words", "-o", "words.tar"]);
    assert!(
        file.status.success(),
        "{}",
        String::from_utf8_lossy(&file.stderr)
    );
    assert!(
        file.stdout.is_empty(),
        "a file export writes nothing to stdout"
    );
    let streamed = p.kiln(&["export", "words", "-o", "-"]);
    assert!(
        streamed.status.success(),
        "{}",
        String::from_utf8_lossy(&streamed.stderr)
    );
    let written = std::fs::read(p.root().join("words.tar")).expect("read the export");
    assert!(!written.is_empty());
    assert!(
        streamed.stdout == written,
        "stdout ({} bytes) differs from the file ({} bytes)",
        streamed.stdout.len(),
        written.len()
    );
}
