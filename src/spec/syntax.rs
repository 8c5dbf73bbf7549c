//! KDL syntax errors as kiln's problems, pointing at the offending token
//! and naming the mistakes kiln.kdl writers make most. Pure.

use kdl::KdlDocument;
use miette::SourceSpan;

use super::error::{Problem, ProblemKind, label};

/// The kdl crate's diagnostics for `text`, as problems.
pub(super) fn problems(error: kdl::KdlError, text: &str) -> Vec<Problem> {
    error
        .diagnostics
        .into_iter()
        .map(|d| {
            let message = d.message.unwrap_or_else(|| "Invalid KDL".to_owned());
            let (span, token) = offending_token(text, d.span);
            let help = usual_mistake(token).or(d.help);
            let label_text = d.label.unwrap_or_else(|| "here".to_owned());
            let kind = ProblemKind::Syntax { message, help };
            Problem::new(kind, vec![label(span, label_text)])
        })
        .collect()
}

/// Where a KDL error really is. The parser's span can run from the start
/// of the node to the token it choked on (`env GOPATH=/usr/…` underlined
/// from `stage` on): then the token that follows the span is the culprit.
fn offending_token(text: &str, span: SourceSpan) -> (SourceSpan, &str) {
    let token_at = |at: usize| {
        let rest = text.get(at..).unwrap_or("");
        let len = rest
            .find(|c: char| c.is_whitespace() || matches!(c, ';' | '{' | '}'))
            .unwrap_or(rest.len());
        &rest[..len]
    };
    let (start, len) = (span.offset(), span.len());
    let spanned = text.get(start..start + len).unwrap_or("");
    if !spanned.contains('\n') {
        return (span, spanned);
    }
    let end = start + len;
    let at = end
        + text
            .get(end..)
            .map_or(0, |rest| rest.len() - rest.trim_start().len());
    let token = token_at(at);
    if token.is_empty() {
        return (span, spanned);
    }
    ((at, token.len()).into(), token)
}

/// The help for a syntax error a kiln.kdl writer makes again and again.
fn usual_mistake(token: &str) -> Option<String> {
    let value = token.rsplit_once('=').map_or(token, |(_, v)| v);
    let path_like = value.starts_with(['/', '.'])
        || value.starts_with(|c: char| c.is_ascii_digit()) && value.contains(['/', ':']);
    match value {
        "true" | "false" | "null" => Some(format!(
            "KDL v2 writes `#{value}`: a bare `{value}` is KDL v1"
        )),
        _ if path_like => Some(format!(
            "Quote a value that starts with `/` or `.` (or looks like a path): `\"{value}\"`"
        )),
        _ => None,
    }
}

/// Parses on a thread with a stack far larger than `scan`'s limits need: the
/// parser recurses, and a stack overflow aborts the process.
pub(super) fn parse_kdl(text: &str) -> Result<KdlDocument, kdl::KdlError> {
    std::thread::scope(|scope| {
        let parser = std::thread::Builder::new()
            .name("kdl-parse".into())
            .stack_size(super::scan::PARSE_STACK)
            .spawn_scoped(scope, || KdlDocument::parse(text));
        match parser {
            Ok(handle) => handle
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
            // No thread to be had (a tight `ulimit -v`, say): the limits of
            // `scan` keep the recursion within the usual main-thread stack in
            // a release build.
            Err(_) => KdlDocument::parse(text),
        }
    })
}

/// Moves every span of `doc` (nodes, their names, entries and their names,
/// blocks) `by` bytes later: a document parsed alone, as it sits in a
/// longer text. Recursion is bounded by `scan`'s nesting limit.
pub(super) fn shift(doc: &mut KdlDocument, by: usize) {
    let moved = |span: SourceSpan| SourceSpan::new((span.offset() + by).into(), span.len());
    doc.set_span(moved(doc.span()));
    for node in doc.nodes_mut() {
        node.set_span(moved(node.span()));
        let name = node.name_mut();
        name.set_span(moved(name.span()));
        for entry in node.entries_mut() {
            entry.set_span(moved(entry.span()));
            if let Some(key) = entry.name_mut() {
                key.set_span(moved(key.span()));
            }
        }
        if let Some(children) = node.children_mut() {
            shift(children, by);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shifted_spans_are_where_the_text_sits_in_a_longer_one() {
        let text = "stage a x=1 {\n    run \"b\"\n}\n";
        let mut alone = parse_kdl(text).expect("parses");
        shift(&mut alone, 7);
        let padded = parse_kdl(&format!("{}{text}", " ".repeat(7))).expect("parses");
        let spans = |doc: &KdlDocument| {
            let node = &doc.nodes()[0];
            let entries: Vec<_> = node.entries().iter().map(|e| e.span()).collect();
            let key = node.entries()[1].name().map(|k| k.span());
            let children = node.children().expect("block");
            let run = &children.nodes()[0];
            (
                node.name().span(),
                entries,
                key,
                children.span(),
                run.entries()[0].span(),
            )
        };
        assert_eq!(spans(&alone), spans(&padded));
    }
}
