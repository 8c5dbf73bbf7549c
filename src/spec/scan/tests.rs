//! The pre-scan against hand-made cases, and against the `kdl` crate on
//! what it accepts and refuses.

use super::*;

fn depth_ok(text: &str) -> bool {
    check(text).is_none()
}

fn nested(n: usize) -> String {
    format!("a {}{}", "{ a ".repeat(n), "}".repeat(n))
}

#[test]
fn counts_blocks_and_points_at_the_first_too_deep_brace() {
    assert!(depth_ok(&nested(MAX_DEPTH)));
    let text = nested(MAX_DEPTH + 1);
    let problem = check(&text).expect("too deep");
    let brace = 2 + 4 * MAX_DEPTH;
    assert_eq!(problem.offset(), brace);
    assert_eq!(&text[brace..=brace], "{");
}

#[test]
fn braces_in_strings_and_comments_do_not_count() {
    let open = "{".repeat(MAX_DEPTH + 1);
    for text in [
        format!("a \"{open}\""),
        format!("a \"\\\"{open}\""),
        format!("a #\"{open}\"#"),
        format!("a ##\"\"#{open}\"##"),
        format!("a \"\"\"\n{open}\n\"\"\""),
        format!("a #\"\"\"\n\"\"\" {open}\n\"\"\"#"),
        format!("// {open}\na"),
        format!("/* /* */ {open} */ a"),
        format!("a \"\\u{{41}}{open}\""),
    ] {
        assert!(depth_ok(&text), "{text}");
    }
}

#[test]
fn a_malformed_string_does_not_hide_braces() {
    let deep = nested(MAX_DEPTH + 1);
    for text in [
        format!("a \"unclosed\n{deep}"),
        format!("a \"bad \\q escape {deep}\""),
        format!("a #\"raw\n{deep}\"#"),
        format!("a \"\"\"{deep}\"\"\""),
        format!("a \"\u{1}{deep}\""),
    ] {
        assert!(!depth_ok(&text), "{text}");
    }
}

#[test]
fn well_formed_strings_pass() {
    for text in [
        "a \"x\\\n   y\"",
        "a \"\\u{10FFFF} \\\" \\s\"",
        "a \"\"\"\n    one\n    \"two\" \"\"\n    \"\"\"",
        "a #\"\"\"\n  raw \"\"\" inside\n  \"\"\"#",
        "a #\"\"\"x\"#",
        "a ##\"a \"# b\"##",
        "a /* /* */ */ b",
    ] {
        assert!(depth_ok(text), "{text}");
        let parsed = kdl::KdlDocument::parse(text);
        assert!(parsed.is_ok(), "the parser refuses {text:?}: {parsed:?}");
    }
}

#[test]
fn malformed_strings_and_comments_are_syntax_errors() {
    for (text, message) in [
        ("a \"open\nb", "Unclosed string"),
        ("a #\"open\"\nb", "Unclosed string"),
        ("a \"\"\"\nnever", "Unclosed multi-line string"),
        ("a \"\"\"x\n\"\"\"", "Multi-line string opening"),
        ("a \"\"\"\n  x \"\"\"", "Multi-line string closing"),
        ("a \"\\q\"", "Invalid escape"),
        ("a \"\\u{110000}\"", "Invalid escape"),
        ("a \"\u{7}\"", "A control"),
        ("a /* /* */", "Unclosed comment"),
    ] {
        assert!(
            kdl::KdlDocument::parse(text).is_err(),
            "the parser accepts {text:?}"
        );
        let problem = check(text).expect(text);
        assert!(
            problem.to_string().starts_with(message),
            "{text}: {problem}"
        );
    }
}

#[test]
fn closing_braces_do_not_go_below_zero() {
    let text = format!("}}}}}}\n{}", nested(MAX_DEPTH + 1));
    assert!(!depth_ok(&text));
}

#[test]
fn counts_the_pieces_of_a_block_comment() {
    let fits = format!("/* {} */", "*".repeat(MAX_COMMENT_PARTS - 3));
    assert!(depth_ok(&fits));
    let long = format!("/* {} */", "* ".repeat(MAX_COMMENT_PARTS));
    assert!(!depth_ok(&long));
    let unclosed = "/*".repeat(MAX_COMMENT_PARTS + 2);
    assert!(!depth_ok(&unclosed));
}

#[test]
fn a_multi_line_string_closed_after_a_multi_byte_newline_does_not_panic() {
    // U+2028 is a newline in KDL and three bytes in UTF-8: the closing
    // quotes' line starts after all three (a fuzz run found the slice).
    for text in [
        "a \"\"\"\n  x\n\u{2028}  \"\"\"",
        "a \"\"\"\n  x\u{2028}  \"\"\"",
        "a #\"\"\"\n\u{2028}x \"\"\"#",
    ] {
        let _ = check(text);
    }
}
