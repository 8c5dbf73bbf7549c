//! Reading kiln.lock back: the lines `format.rs` writes, each checked into
//! the [`Lockfile`] model, every mistake a diagnostic pointing at the line
//! and value. Written by hand rather than with the `kdl` crate: a lock is a
//! flat list of one-line nodes, and a parser that reads exactly that needs
//! no bounds on nesting or size to be safe on a hostile file. Pure: no IO.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::Arc;

use miette::{NamedSource, SourceSpan};

use super::LockError;
use super::format::{LockedBase, LockedSource, Lockfile, VERSION};
use crate::hash::Digest;
use crate::spec::{Name, SrcPath};

/// One word, string or `key=value` of a line, with its span in the file.
#[derive(Debug)]
enum Token {
    Value(String, SourceSpan),
    Prop {
        key: String,
        value: String,
        span: SourceSpan,
    },
}

/// Parses the lock `text`, named `name` in diagnostics.
pub fn parse(name: &str, text: &str) -> Result<Lockfile, LockError> {
    let src = Arc::new(NamedSource::new(name, text.to_owned()));
    let fail = |span: SourceSpan, message: String, help: &str| LockError::Malformed {
        message,
        help: help.to_owned(),
        src: src.clone(),
        span,
    };
    let rewrite = "delete it and run `kiln lock` to write it again";
    let mut lock = Lockfile::default();
    let mut version_seen = false;
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let start = offset;
        offset += line.len();
        let body = line.trim_end_matches(['\n', '\r']);
        let trimmed = body.trim_start();
        if trimmed.is_empty() || trimmed.starts_with("//") {
            continue;
        }
        let tokens = tokenize(body, start).map_err(|(span, m)| fail(span, m, rewrite))?;
        let line_span = SourceSpan::from((start, body.len()));
        let (node, node_span, rest) = match tokens.split_first() {
            Some((Token::Value(node, span), rest)) => (node.as_str(), *span, rest),
            _ => {
                return Err(fail(
                    line_span,
                    "a line must start with its kind".into(),
                    rewrite,
                ));
            }
        };
        if !version_seen {
            match (node, rest) {
                ("version", [Token::Value(v, _)]) if v == &VERSION.to_string() => {
                    version_seen = true;
                    continue;
                }
                ("version", [Token::Value(v, span)]) => {
                    let help =
                        "it was written by another version of kiln: run `kiln lock` with this one";
                    return Err(fail(
                        *span,
                        format!("kiln.lock is version {v}; this kiln reads version {VERSION}"),
                        help,
                    ));
                }
                _ => {
                    return Err(fail(
                        node_span,
                        format!("kiln.lock must start with `version {VERSION}`"),
                        rewrite,
                    ));
                }
            }
        }
        let (arg, arg_span, props) = match rest.split_first() {
            Some((Token::Value(arg, span), props)) => (arg.as_str(), *span, props),
            _ => return Err(fail(line_span, format!("`{node}` needs a name"), rewrite)),
        };
        let mut found: BTreeMap<&str, (&str, SourceSpan)> = BTreeMap::new();
        for token in props {
            match token {
                Token::Prop { key, value, span } => {
                    if found.insert(key, (value, *span)).is_some() {
                        return Err(fail(*span, format!("`{key}` is given twice"), rewrite));
                    }
                }
                Token::Value(v, span) => {
                    return Err(fail(
                        *span,
                        format!("unexpected `{v}`: only `key=\"value\"` may follow the name"),
                        rewrite,
                    ));
                }
            }
        }
        let allowed: &[&str] = match node {
            "base" => &["image", "archive", "digest"],
            "fetch" => &["sha256"],
            "tool" => &["blake3"],
            "version" => return Err(fail(node_span, "`version` is given twice".into(), rewrite)),
            other => {
                let help = "a lock has `version`, `base`, `fetch` and `tool` lines; delete it and run `kiln lock` to write it again";
                return Err(fail(node_span, format!("unknown kind `{other}`"), help));
            }
        };
        if let Some((key, (_, span))) = found.iter().find(|(k, _)| !allowed.contains(k)) {
            return Err(fail(*span, format!("`{node}` has no `{key}`"), rewrite));
        }
        let need = |key: &str| {
            found
                .get(key)
                .copied()
                .ok_or_else(|| fail(line_span, format!("`{node} {arg}` has no `{key}`"), rewrite))
        };
        let digest = |(value, span): (&str, SourceSpan)| {
            Digest::from_str(value)
                .map_err(|e| fail(span, format!("invalid digest `{value}`: {e}"), rewrite))
        };
        let name = || {
            Name::new(arg).ok_or_else(|| fail(arg_span, format!("`{arg}` is not a name"), rewrite))
        };
        let duplicate = || fail(arg_span, format!("`{node} {arg}` appears twice"), rewrite);
        match node {
            "base" => {
                let source = match (found.get("image"), found.get("archive")) {
                    (Some((image, _)), None) => LockedSource::Image((*image).to_owned()),
                    (None, Some((path, span))) => LockedSource::Archive(
                        SrcPath::new(path)
                            .filter(|p| p.as_str() == *path)
                            .ok_or_else(|| {
                                fail(
                                    *span,
                                    format!("`{path}` is not a normalized relative path"),
                                    rewrite,
                                )
                            })?,
                    ),
                    _ => {
                        return Err(fail(
                            line_span,
                            "a base has one of `image` or `archive`".into(),
                            rewrite,
                        ));
                    }
                };
                let entry = LockedBase {
                    source,
                    digest: digest(need("digest")?)?,
                };
                if lock.bases.insert(name()?, entry).is_some() {
                    return Err(duplicate());
                }
            }
            "fetch" => {
                let (hex, span) = need("sha256")?;
                let sha256 = digest((&format!("sha256:{hex}"), span))?;
                if lock.fetches.insert(name()?, sha256).is_some() {
                    return Err(duplicate());
                }
            }
            _ => {
                let (hex, span) = need("blake3")?;
                let hash = (hex.len() == 64
                    && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
                .then(|| blake3::Hash::from_hex(hex).ok())
                .flatten()
                .ok_or_else(|| {
                    fail(
                        span,
                        format!("invalid blake3 `{hex}`: 64 lowercase hex digits"),
                        rewrite,
                    )
                })?;
                if arg.is_empty() {
                    return Err(fail(arg_span, "a tool's name is empty".into(), rewrite));
                }
                if lock.tools.insert(arg.to_owned(), hash).is_some() {
                    return Err(duplicate());
                }
            }
        }
    }
    if !version_seen {
        let span = SourceSpan::from((0, 0));
        return Err(fail(
            span,
            format!("kiln.lock has no `version {VERSION}` line"),
            rewrite,
        ));
    }
    Ok(lock)
}

/// Splits one line (starting at byte `start` of the file) into tokens.
fn tokenize(line: &str, start: usize) -> Result<Vec<Token>, (SourceSpan, String)> {
    let bytes = line.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let from = i;
        let first = value(line, &mut i, start)?;
        if bytes.get(i) == Some(&b'=') {
            i += 1;
            let second = value(line, &mut i, start)?;
            tokens.push(Token::Prop {
                key: first,
                value: second,
                span: (start + from, i - from).into(),
            });
        } else {
            tokens.push(Token::Value(first, (start + from, i - from).into()));
        }
        if i < bytes.len() && !bytes[i].is_ascii_whitespace() {
            return Err(((start + i, 1).into(), "expected a space here".into()));
        }
    }
    Ok(tokens)
}

/// A bare word or a quoted string at `*i`, which is moved past it.
fn value(line: &str, i: &mut usize, start: usize) -> Result<String, (SourceSpan, String)> {
    let rest = &line[*i..];
    let Some(body) = rest.strip_prefix('"') else {
        let len = rest
            .find(|c: char| c.is_whitespace() || c == '=' || c == '"')
            .unwrap_or(rest.len());
        if len == 0 {
            return Err(((start + *i, 1).into(), "expected a word or a string".into()));
        }
        *i += len;
        return Ok(rest[..len].to_owned());
    };
    let mut out = String::new();
    let mut chars = body.char_indices();
    while let Some((at, c)) = chars.next() {
        let here = start + *i + 1 + at;
        match c {
            '"' => {
                *i += at + 2;
                return Ok(out);
            }
            '\\' => match chars.next().map(|(_, c)| c) {
                Some('"') => out.push('"'),
                Some('\\') => out.push('\\'),
                Some('n') => out.push('\n'),
                Some('r') => out.push('\r'),
                Some('t') => out.push('\t'),
                Some('u') => {
                    let code: String = chars
                        .by_ref()
                        .map(|(_, c)| c)
                        .take_while(|&c| c != '}')
                        .collect();
                    let c = (code.strip_prefix('{'))
                        .and_then(|h| u32::from_str_radix(h, 16).ok())
                        .and_then(char::from_u32)
                        .ok_or(((here, 2).into(), "invalid `\\u{…}` escape".to_owned()))?;
                    out.push(c);
                }
                _ => return Err(((here, 2).into(), "invalid escape".into())),
            },
            c => out.push(c),
        }
    }
    Err((
        (start + *i, rest.len()).into(),
        "the string is not closed".into(),
    ))
}
