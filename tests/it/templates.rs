//! `template`: a parameterised group of nodes, instantiated any number of
//! times. An instance's nodes are keyed as the template writes them, with
//! its params substituted: equal params give equal keys (whatever the
//! instance is called, wherever the project is), a param changes the keys
//! of the nodes that mention it and of no other.

use crate::common::Project;

const TEMPLATE: &str = r#"
template greeter {
    param greeting default="hello"
    param times type="integer" default=1
    stage words {
        run "echo some words > $out/words"
    }
    stage say {
        use words
        run "for i in $(seq $times); do echo $greeting; done > $out/said; cat $words/words >> $out/said"
    }
}
"#;

#[test]
fn instances_with_equal_params_share_keys_and_a_param_rekeys_only_what_mentions_it() {
    let spec = format!(
        "{TEMPLATE}\ngreeter a\ngreeter b greeting=\"hello\" times=1\ngreeter c greeting=\"yo\"\ngreeter d times=2\n"
    );
    let p = Project::new(&spec);
    let report = p.build(&[]);
    // `b` gives the defaults `a` takes: the same nodes, built once.
    assert_eq!(report.key("b.say"), report.key("a.say"));
    assert_eq!(report.key("b.words"), report.key("a.words"));
    // `words` mentions no param: one key for every instance.
    for other in ["c", "d"] {
        assert_eq!(report.key(&format!("{other}.words")), report.key("a.words"));
        assert_ne!(report.key(&format!("{other}.say")), report.key("a.say"));
    }
    assert_ne!(report.key("c.say"), report.key("d.say"));
    let said = |name: &str| fs_err::read_to_string(report.output(name).join("said")).expect("said");
    assert_eq!(said("c.say"), "yo\nsome words\n");
    assert_eq!(said("d.say"), "hello\nhello\nsome words\n");
    // Four instances, two distinct `say`s besides `a`'s, one `words`.
    let built = report.with_status("built").len();
    let cached = report.with_status("cached").len();
    assert_eq!((built + cached, built), (8, 4), "{}", report.0);
}

#[test]
fn an_instance_through_an_import_has_the_key_of_the_same_instance_anywhere() {
    let lib = format!("{TEMPLATE}\nstage shared {{ run \"echo > $out/s\" }}\n");
    let p = Project::new("import \"../lib/t.kdl\" as=lib\nlib.greeter first greeting=\"hey\"\n");
    let dir = p.dir.path();
    fs_err::create_dir_all(dir.join("lib")).expect("lib dir");
    fs_err::write(dir.join("lib/t.kdl"), &lib).expect("lib");
    let first = p.build(&[]);
    // Another project, another alias, another instance name, same params.
    p.write(
        "kiln.kdl",
        "import \"../lib/t.kdl\" as=t\nt.greeter second greeting=\"hey\"\n",
    );
    let second = p.build(&[]);
    assert_eq!(second.key("second.say"), first.key("first.say"));
    assert_eq!(second.key("second.words"), first.key("first.words"));
    assert!(second.with_status("built").is_empty(), "{}", second.0);
    let graph = p.ok(&["graph"]);
    assert!(
        graph.contains(
            "stage second.say\n  defined in ../lib/t.kdl:8, imported as `t`, instance `second`\n"
        ),
        "{graph}"
    );
}

#[test]
fn an_instances_sources_are_those_of_the_project_that_instantiates_it() {
    let lib = r#"
template copy-in {
    param file
    stage take {
        src "${file}"
        run "cp ${file} $out/"
    }
}
"#;
    let p = Project::new("import \"../lib/t.kdl\" as=lib\nlib.copy-in one file=\"data.txt\"\n");
    let dir = p.dir.path();
    fs_err::create_dir_all(dir.join("lib")).expect("lib dir");
    fs_err::write(dir.join("lib/t.kdl"), lib).expect("lib");
    fs_err::write(dir.join("lib/data.txt"), "the template's\n").expect("lib data");
    p.write("data.txt", "the project's\n");
    let first = p.build(&[]);
    let out = first.output("one.take").join("data.txt");
    assert_eq!(
        fs_err::read_to_string(out).expect("output"),
        "the project's\n"
    );
    // A spec cache hit keeps the instance's directory.
    let again = p.build(&[]);
    assert_eq!(again.with_status("cached"), ["one.take"]);
    p.write("data.txt", "changed\n");
    assert_ne!(p.build(&[]).key("one.take"), first.key("one.take"));
}
