//! A pre-scan of kiln.kdl's text before the `kdl` crate parses it.
//!
//! The crate's parser recurses once per level of `{ … }` and once per piece
//! of a `/* … */` comment (each `*`, `/` or run of other text), so 1,400
//! nested blocks or a long comment banner overflow the stack: an abort that
//! no diagnostic can follow. This lexer knows just enough KDL v2 (quoted,
//! multi-line and raw strings, line and nested block comments) to measure
//! both on the text itself and refuse input beyond the limits, with a span.
//!
//! It must never count less than the parser recurses. On valid KDL it agrees
//! with the parser; where a string is malformed it ends the string at the
//! first doubtful character, so what follows is counted rather than hidden.
//! The parse also runs on a thread with a large stack ([`PARSE_STACK`]), a
//! margin far beyond these limits. No IO.

use super::error::{Problem, ProblemKind, label};

/// Levels of `{ … }`: a kiln.kdl needs two or three.
pub(crate) const MAX_DEPTH: usize = 64;
/// Pieces of one block comment, nested ones included (hundreds of lines of
/// commented-out KDL stay well below this).
pub(crate) const MAX_COMMENT_PARTS: usize = 20_000;
/// The stack the parser runs on: room for many times the recursion the
/// limits above allow, even in a debug build (about 20 KiB per level).
pub(crate) const PARSE_STACK: usize = 256 << 20;

/// The first place `text` nests deeper than the parser can be trusted with.
pub(crate) fn check(text: &str) -> Option<Problem> {
    let scanner = Scanner {
        text,
        at: 0,
        depth: 0,
    };
    match scanner.run() {
        Ok(()) => None,
        Err(Refusal::TooDeep(at)) => Some(too_deep(at)),
        Err(Refusal::CommentTooLong(at)) => Some(comment_too_long(at)),
    }
}

/// What the scan refuses, and the byte offset where.
enum Refusal {
    TooDeep(usize),
    CommentTooLong(usize),
}

struct Scanner<'t> {
    text: &'t str,
    /// Byte offset of the next character.
    at: usize,
    depth: usize,
}

impl Scanner<'_> {
    fn run(mut self) -> Result<(), Refusal> {
        while let Some(c) = self.peek() {
            let start = self.at;
            match c {
                '"' => self.quoted_string(),
                '#' => self.maybe_raw_string(),
                '/' if self.rest().starts_with("//") => self.line_comment(),
                '/' if self.rest().starts_with("/*") => self.block_comment(start)?,
                '{' => {
                    self.bump();
                    self.depth += 1;
                    if self.depth > MAX_DEPTH {
                        return Err(Refusal::TooDeep(start));
                    }
                }
                '}' => {
                    self.bump();
                    self.depth = self.depth.saturating_sub(1);
                }
                _ => {
                    self.bump();
                }
            }
        }
        Ok(())
    }

    fn rest(&self) -> &str {
        &self.text[self.at..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.at += c.len_utf8();
        Some(c)
    }

    fn eat(&mut self, s: &str) -> bool {
        let found = self.rest().starts_with(s);
        if found {
            self.at += s.len();
        }
        found
    }

    /// `"…"` or `"""⏎…"""`, escapes included.
    fn quoted_string(&mut self) {
        if self.eat("\"\"\"") {
            if !self.peek().is_some_and(is_newline) {
                return; // malformed: what follows is counted
            }
            while let Some(c) = self.peek() {
                if self.eat("\"\"\"") {
                    return;
                }
                if c == '\\' {
                    if !self.escape() {
                        return;
                    }
                } else if is_disallowed(c) {
                    return;
                } else {
                    self.bump();
                }
            }
            return;
        }
        self.bump();
        while let Some(c) = self.peek() {
            match c {
                '"' => {
                    self.bump();
                    return;
                }
                '\\' => {
                    if !self.escape() {
                        return;
                    }
                }
                // The parser stops a single-line string here, with an error.
                c if is_newline(c) || is_disallowed(c) => return,
                _ => {
                    self.bump();
                }
            }
        }
    }

    /// One escape after `\`; false (and nothing eaten) if it is malformed.
    fn escape(&mut self) -> bool {
        let after = &self.rest()[1..];
        let Some(next) = after.chars().next() else {
            return false;
        };
        if matches!(next, '\\' | '"' | 'b' | 'f' | 'n' | 'r' | 't' | 's') {
            self.at += 1 + next.len_utf8();
            return true;
        }
        if is_space(next) || is_newline(next) {
            // A whitespace escape swallows all the whitespace that follows.
            self.bump();
            while self.peek().is_some_and(|c| is_space(c) || is_newline(c)) {
                self.bump();
            }
            return true;
        }
        if let Some(hex) = after.strip_prefix("u{") {
            let digits = hex.chars().take_while(char::is_ascii_hexdigit).count();
            if (1..=6).contains(&digits) && hex[digits..].starts_with('}') {
                self.at += 1 + "u{".len() + digits + 1;
                return true;
            }
        }
        false
    }

    /// `#"…"#`, `##"…"##`, `#"""⏎…"""#`; else `#` starts a keyword.
    fn maybe_raw_string(&mut self) {
        let hashes = self.rest().bytes().take_while(|&b| b == b'#').count();
        let quote_at = self.at + hashes;
        if !self.text[quote_at..].starts_with('"') {
            self.at = quote_at;
            return;
        }
        let close_hashes = &self.text[self.at..quote_at];
        self.at = quote_at;
        if self.eat("\"\"\"") {
            let close = format!("\"\"\"{close_hashes}");
            match self.rest().find(&close) {
                Some(end) => self.at += end + close.len(),
                None => self.at = self.text.len(),
            }
            return;
        }
        self.bump();
        let close = format!("\"{close_hashes}");
        while let Some(c) = self.peek() {
            if self.eat(&close) {
                return;
            }
            if is_newline(c) || is_disallowed(c) {
                return;
            }
            self.bump();
        }
    }

    fn line_comment(&mut self) {
        while let Some(c) = self.bump() {
            if is_newline(c) {
                return;
            }
        }
    }

    /// `/* … */`, nested; counts the pieces the parser recurses on.
    fn block_comment(&mut self, start: usize) -> Result<(), Refusal> {
        self.at += 2;
        let mut open = 1usize;
        let mut parts = 0usize;
        while open > 0 && self.at < self.text.len() {
            parts += 1;
            if parts > MAX_COMMENT_PARTS {
                return Err(Refusal::CommentTooLong(start));
            }
            if self.eat("*/") {
                open -= 1;
            } else if self.eat("/*") {
                open += 1;
            } else if self.eat("*") || self.eat("/") {
            } else {
                let run = self.rest().find(['*', '/']).unwrap_or(self.rest().len());
                self.at += run;
            }
        }
        Ok(())
    }
}

fn too_deep(at: usize) -> Problem {
    Problem::new(
        ProblemKind::TooDeep { max: MAX_DEPTH },
        vec![label(
            (at, 1).into(),
            format!("block {} levels deep", MAX_DEPTH + 1),
        )],
    )
}

fn comment_too_long(at: usize) -> Problem {
    Problem::new(
        ProblemKind::CommentTooLong {
            max: MAX_COMMENT_PARTS,
        },
        vec![label((at, 2).into(), "this comment")],
    )
}

/// KDL v2 newlines; `\r\n` is `\r` then `\n`, which ends a line all the same.
fn is_newline(c: char) -> bool {
    matches!(
        c,
        '\r' | '\n' | '\u{85}' | '\u{0B}' | '\u{0C}' | '\u{2028}' | '\u{2029}'
    )
}

fn is_space(c: char) -> bool {
    matches!(
        c,
        '\t' | ' ' | '\u{A0}' | '\u{1680}' | '\u{2000}'
            ..='\u{200A}' | '\u{202F}' | '\u{205F}' | '\u{3000}'
    )
}

/// Code points KDL forbids in literals (and DEL, which the spec forbids too).
fn is_disallowed(c: char) -> bool {
    matches!(c,
        '\u{0}'..='\u{8}'
        | '\u{E}'..='\u{1F}'
        | '\u{7F}'
        | '\u{200E}'..='\u{200F}'
        | '\u{202A}'..='\u{202E}'
        | '\u{2066}'..='\u{2069}'
        | '\u{FEFF}'
    )
}

#[cfg(test)]
mod tests {
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
}
