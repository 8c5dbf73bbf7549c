//! `import`: a shared spec file's nodes are keyed as written in that file,
//! so projects in different directories, importing it under different
//! aliases, share its store entries; an arg set at the import rekeys only
//! the nodes that mention it.

use std::path::Path;

use crate::common::{Project, Report, built};

/// The shared file: a stage with a source next to it, one that uses it and
/// mentions the file's arg, and one that neither uses nor mentions.
const SHARED: &str = r#"
arg greeting default="hello"

stage data {
    src "data.txt"
    run "cp data.txt $out/"
}

stage hello {
    use data
    run "cat $data/data.txt > $out/x && echo $greeting >> $out/x"
}

stage other {
    run "echo other > $out/o"
}

image tool {
    copy hello "x" to="/x"
}
"#;

/// A project importing `../shared/t.kdl` as `alias`, with `args` set at the
/// import, and a stage of its own using the imported `hello`.
fn importer(alias: &str, args: &str) -> String {
    format!(
        r#"
import "../shared/t.kdl" as={alias} {{
    {args}
}}

stage top {{
    use {alias}.hello
    run "cat ${alias}_hello/x > $out/y"
}}

image app {{
    from {alias}.tool
    copy top "y" to="/y"
}}
"#
    )
}

/// A project in `dir/project` importing the shared file (in `dir/shared`).
fn project(spec: &str) -> Project {
    let p = Project::new(spec);
    let shared = p.dir.path().join("shared");
    fs_err::create_dir_all(&shared).expect("shared dir");
    fs_err::write(shared.join("t.kdl"), SHARED).expect("shared file");
    fs_err::write(shared.join("data.txt"), "data\n").expect("shared source");
    p
}

/// `kiln build --json` of the spec in `dir`, with `p`'s store.
fn build_in(p: &Project, dir: &Path) -> Report {
    let mut cmd = p.cmd(&["build", "--json"]);
    cmd.current_dir(dir);
    built(cmd)
}

fn image_key(report: &Report, name: &str) -> String {
    let images = report.0["images"].as_array().expect("images array");
    let image = (images.iter()).find(|i| i["name"] == name);
    let image = image.unwrap_or_else(|| panic!("no image {name} in {}", report.0));
    image["key"].as_str().expect("key").to_owned()
}

#[test]
fn an_imported_node_has_one_key_in_every_importer_and_builds_once() {
    let p = project(&importer("t", ""));
    let first = p.build(&[]);
    assert_eq!(
        first.with_status("built"),
        ["t.data", "t.hello", "t.other", "top"]
    );
    // A second project, in another directory, another alias, same store.
    let second_dir = p.dir.path().join("elsewhere/project");
    fs_err::create_dir_all(&second_dir).expect("second project");
    fs_err::write(second_dir.join("kiln.kdl"), importer("lib", "")).expect("spec");
    let shared = p.dir.path().join("elsewhere/shared");
    fs_err::create_dir_all(&shared).expect("second copy of the shared dir");
    fs_err::write(shared.join("t.kdl"), SHARED).expect("shared file");
    fs_err::write(shared.join("data.txt"), "data\n").expect("shared source");
    let second = build_in(&p, &second_dir);
    for name in ["data", "hello", "other"] {
        assert_eq!(
            second.key(&format!("lib.{name}")),
            first.key(&format!("t.{name}"))
        );
    }
    assert_eq!(
        second.with_status("cached"),
        ["lib.data", "lib.hello", "lib.other"]
    );
    assert_eq!(image_key(&second, "lib.tool"), image_key(&first, "t.tool"));
    // The importer's own stage says `lib_hello` where the first said `t_hello`.
    assert_ne!(second.key("top"), first.key("top"));
}

#[test]
fn an_imported_stages_sources_are_its_files_and_rekey_it() {
    let p = project(&importer("t", ""));
    let first = p.build(&[]);
    fs_err::write(p.dir.path().join("shared/data.txt"), "changed\n").expect("edit");
    let second = p.build(&[]);
    assert_eq!(second.with_status("cached"), ["t.other"]);
    assert_ne!(second.key("t.data"), first.key("t.data"));
    let x = fs_err::read_to_string(second.output("t.hello").join("x")).expect("output");
    assert_eq!(x, "changed\nhello\n");
}

#[test]
fn an_arg_set_at_the_import_rekeys_only_what_mentions_it() {
    let p = project(&importer("t", ""));
    let default = p.build(&[]);
    p.write("kiln.kdl", &importer("t", "arg greeting=\"hi\""));
    let set = p.build(&[]);
    assert_eq!(set.key("t.data"), default.key("t.data"));
    assert_eq!(set.key("t.other"), default.key("t.other"));
    assert_ne!(set.key("t.hello"), default.key("t.hello"));
    assert_eq!(set.with_status("built"), ["t.hello", "top"]);
    let x = fs_err::read_to_string(set.output("t.hello").join("x")).expect("output");
    assert_eq!(x, "data\nhi\n");
    // Set to its default, the arg gives the default's key back.
    p.write("kiln.kdl", &importer("t", "arg greeting=\"hello\""));
    assert_eq!(p.build(&[]).key("t.hello"), default.key("t.hello"));
}

#[test]
fn a_cached_spec_notices_an_imported_file_changed() {
    let p = project(&importer("t", ""));
    p.ok(&["check"]);
    let shared = p.dir.path().join("shared/t.kdl");
    fs_err::write(&shared, SHARED.replace("stage other", "stage otter")).expect("edit");
    let graph = p.ok(&["graph"]);
    assert!(graph.contains("t.otter"), "{graph}");
    fs_err::write(&shared, SHARED.replace("use data", "use nothing")).expect("edit");
    let out = p.kiln(&["check"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("[../shared/t.kdl:10:9]"), "{stderr}");
}

#[test]
fn graph_explain_and_build_json_say_where_each_node_is_defined() {
    let p = project(&importer("t", ""));
    let graph = p.ok(&["graph"]);
    let hello = "stage t.hello\n  defined in ../shared/t.kdl:9, imported as `t`\n  uses t.data\n";
    assert!(graph.contains(hello), "{graph}");
    assert!(graph.contains("stage top\n  uses t.hello\n"), "{graph}");
    let dot = p.ok(&["graph", "--dot"]);
    let node = "\"t.tool\" [shape=box3d, tooltip=\"../shared/t.kdl:18, imported as `t`\"];";
    assert!(dot.contains(node), "{dot}");
    let report = p.build(&[]);
    let stages = report.0["stages"].as_array().expect("stages");
    let file = |name: &str| {
        let stage = stages.iter().find(|s| s["name"] == name).expect("stage");
        stage["file"].as_str().expect("file").to_owned()
    };
    assert_eq!(file("t.hello"), "../shared/t.kdl");
    assert_eq!(file("top"), "kiln.kdl");
    let images = report.0["images"].as_array().expect("images");
    let app = images.iter().find(|i| i["name"] == "app").expect("app");
    assert_eq!(app["file"], "kiln.kdl");
    let explain = p.ok(&["explain", "t.hello"]);
    assert!(
        explain.starts_with("stage `t.hello` is defined in ../shared/t.kdl:9, imported as `t`\n"),
        "{explain}"
    );
}

#[test]
fn imports_and_instances_that_multiply_are_bounded() {
    // Each file imports the next twice: 2^10 files, more than a spec reads.
    let p = Project::new("import \"l0.kdl\" as=a\n");
    for i in 0..10 {
        let next = format!("l{}.kdl", i + 1);
        let text = format!("import \"{next}\" as=x\nimport \"{next}\" as=y\n");
        p.write(&format!("l{i}.kdl"), &text);
    }
    p.write("l10.kdl", "stage s { run \"true\" }\n");
    let out = p.kiln(&["check"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("kiln::spec::too_many_imports"), "{stderr}");
    // Each template instantiates the next twice: 2^16 instances.
    let mut spec = String::new();
    for i in 0..16 {
        spec += &format!("template t{i} {{\n    t{} a\n    t{} b\n}}\n", i + 1, i + 1);
    }
    spec += "template t16 {\n    stage s { run \"true\" }\n}\nt0 top\n";
    p.write("kiln.kdl", &spec);
    let out = p.kiln(&["check"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("kiln::spec::too_many_instances"),
        "{stderr}"
    );
}
