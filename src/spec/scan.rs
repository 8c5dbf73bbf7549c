//! A pre-scan of kiln.kdl's text before the `kdl` crate parses it.
//!
//! The crate's parser recurses once per level of `{ … }` and once per piece
//! of a `/* … */` comment (each `*`, `/` or run of other text), so 1,400
//! nested blocks or a long comment banner overflow the stack: an abort that
//! no diagnostic can follow. And after a malformed string it rescans the
//! rest of the line or file, once per string: quadratic. This lexer knows
//! KDL v2's strings (quoted, multi-line, raw) and comments (line, nested
//! block), reports the first malformed one itself as a syntax error, and
//! measures nesting on text it has lexed exactly as the parser will, so the
//! parser only ever sees well-formed strings and bounded depth. The parse
//! also runs on a thread with a large stack ([`PARSE_STACK`]), a margin far
//! beyond these limits. No IO.

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
        Err(Refusal::Lexical(at, len, what)) => {
            let (message, text, help) = what.text();
            let kind = ProblemKind::Syntax {
                message: message.to_owned(),
                help: Some(help.to_owned()),
            };
            Some(Problem::new(kind, vec![label((at, len).into(), text)]))
        }
    }
}

/// What the scan refuses, and the byte offset where.
enum Refusal {
    TooDeep(usize),
    CommentTooLong(usize),
    /// A malformed string or comment: `(offset, length, what)`.
    Lexical(usize, usize, Lexical),
}

fn lexical(at: usize, len: usize, what: Lexical) -> Refusal {
    Refusal::Lexical(at, len, what)
}

/// Malformed strings and comments, reported here rather than left to the
/// parser: it rescans the rest of the line or file after each one, so a
/// line of 2,000 unclosed `#"` took seconds per 20 KB (quadratic).
#[derive(Clone, Copy)]
enum Lexical {
    Unclosed,
    UnclosedMultiLine,
    MultiLineOpening,
    MultiLineClosing,
    Escape,
    Disallowed,
    UnclosedComment,
}

impl Lexical {
    /// (message, label, help).
    fn text(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Lexical::Unclosed => (
                "Unclosed string",
                "not closed on this line",
                "Close it with `\"` on the same line; a string over several lines starts with `\"\"\"` and a newline",
            ),
            Lexical::UnclosedMultiLine => (
                "Unclosed multi-line string",
                "never closed",
                "Close it with `\"\"\"` on a line of its own",
            ),
            Lexical::MultiLineOpening => (
                "Multi-line string opening quotes must be immediately followed by a newline",
                "no newline after",
                "Start the text on the next line, or write a one-line string `\"…\"`",
            ),
            Lexical::MultiLineClosing => (
                "Multi-line string closing quotes must be on a line of their own",
                "text before them on this line",
                "Put the closing `\"\"\"` on its own line, indented like the text",
            ),
            Lexical::Escape => (
                "Invalid escape in a string",
                "invalid escape",
                "Escapes are `\\n`, `\\t`, `\\\"`, `\\\\`, `\\u{…}` and the others of KDL v2; or use a raw string `#\"…\"#`",
            ),
            Lexical::Disallowed => (
                "A control or direction character in a string",
                "not allowed here",
                "Write it as an escape, `\\u{…}`, or remove it",
            ),
            Lexical::UnclosedComment => (
                "Unclosed comment",
                "never closed",
                "Close it with `*/`; comments nest, so each `/*` needs its own `*/`",
            ),
        }
    }
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
                '"' => self.quoted_string()?,
                '#' => self.maybe_raw_string()?,
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

    /// `"…"` or `"""⏎…"""`, escapes included, from its opening quote.
    fn quoted_string(&mut self) -> Result<(), Refusal> {
        let start = self.at;
        if self.eat("\"\"\"") {
            if !self.peek().is_some_and(is_newline) {
                return Err(lexical(start, 3, Lexical::MultiLineOpening));
            }
            while let Some(c) = self.peek() {
                if self.rest().starts_with("\"\"\"") {
                    return self.close_multi_line(3);
                }
                self.string_char(c)?;
            }
            return Err(lexical(start, 3, Lexical::UnclosedMultiLine));
        }
        self.bump();
        while let Some(c) = self.peek() {
            if c == '"' {
                self.bump();
                return Ok(());
            }
            if is_newline(c) {
                break;
            }
            self.string_char(c)?;
        }
        Err(lexical(start, self.at - start, Lexical::Unclosed))
    }

    /// One character (or escape) of a quoted string's body.
    fn string_char(&mut self, c: char) -> Result<(), Refusal> {
        if c == '\\' {
            return self.escape();
        }
        if is_disallowed(c) {
            return Err(lexical(self.at, c.len_utf8(), Lexical::Disallowed));
        }
        self.bump();
        Ok(())
    }

    /// The closing quotes of a multi-line string (`len` bytes with the raw
    /// string's hashes), which must be alone on their line but for spaces.
    fn close_multi_line(&mut self, len: usize) -> Result<(), Refusal> {
        let line = &self.text[..self.at];
        // A newline may be more than a byte (U+2028 is three).
        let start = (line.char_indices().rev())
            .find(|&(_, c)| is_newline(c))
            .map_or(0, |(at, nl)| at + nl.len_utf8());
        let line = &line[start..];
        if !line.chars().all(|c| is_space(c) || c == '\\') {
            return Err(lexical(self.at, len, Lexical::MultiLineClosing));
        }
        self.at += len;
        Ok(())
    }

    /// One escape, from its `\\`.
    fn escape(&mut self) -> Result<(), Refusal> {
        let after = &self.rest()[1..];
        let next = after.chars().next();
        if let Some(next @ ('\\' | '"' | 'b' | 'f' | 'n' | 'r' | 't' | 's')) = next {
            self.at += 1 + next.len_utf8();
            return Ok(());
        }
        if next.is_some_and(|c| is_space(c) || is_newline(c)) {
            // A whitespace escape swallows all the whitespace that follows.
            self.bump();
            while self.peek().is_some_and(|c| is_space(c) || is_newline(c)) {
                self.bump();
            }
            return Ok(());
        }
        if let Some(hex) = after.strip_prefix("u{") {
            let digits = hex.chars().take_while(char::is_ascii_hexdigit).count();
            let value = u32::from_str_radix(&hex[..digits], 16).ok();
            if (1..=6).contains(&digits)
                && hex[digits..].starts_with('}')
                && value.and_then(char::from_u32).is_some()
            {
                self.at += 1 + "u{".len() + digits + 1;
                return Ok(());
            }
        }
        let len = 1 + next.map_or(0, char::len_utf8);
        Err(lexical(self.at, len, Lexical::Escape))
    }

    /// `#"…"#`, `##"…"##`, `#"""⏎…"""#`; else `#` starts a keyword.
    fn maybe_raw_string(&mut self) -> Result<(), Refusal> {
        let start = self.at;
        let hashes = self.rest().bytes().take_while(|&b| b == b'#').count();
        let quote_at = self.at + hashes;
        if !self.text[quote_at..].starts_with('"') {
            self.at = quote_at;
            return Ok(());
        }
        let close_hashes = &self.text[self.at..quote_at];
        self.at = quote_at;
        let multi_line = self.rest().starts_with("\"\"\"")
            && self.rest()[3..].chars().next().is_some_and(is_newline);
        if multi_line {
            self.at += 3;
            let close = format!("\"\"\"{close_hashes}");
            let Some(end) = self.rest().find(&close) else {
                return Err(lexical(start, hashes + 3, Lexical::UnclosedMultiLine));
            };
            self.at += end;
            return self.close_multi_line(close.len());
        }
        self.bump();
        let close = format!("\"{close_hashes}");
        while let Some(c) = self.peek() {
            if self.eat(&close) {
                return Ok(());
            }
            if is_newline(c) {
                break;
            }
            if is_disallowed(c) {
                return Err(lexical(self.at, c.len_utf8(), Lexical::Disallowed));
            }
            self.bump();
        }
        Err(lexical(start, self.at - start, Lexical::Unclosed))
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
        match open {
            0 => Ok(()),
            _ => Err(lexical(start, 2, Lexical::UnclosedComment)),
        }
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
mod tests;
