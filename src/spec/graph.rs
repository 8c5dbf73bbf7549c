//! Cycle detection over the dependency graph of stages and images: a stage
//! `use`s stages and runs `from` an image; an image is built `from` an image
//! and `copy`s from stages. A cycle is one diagnostic with every edge labelled.

use std::collections::BTreeMap;

use miette::SourceSpan;

use super::cx::Cx;
use super::error::{MAX_SHOWN, ProblemKind, label};
use super::{Content, Image, ImageRoot, Root, Stage};

/// An edge `from → to`, with where kiln.kdl says so and how to say it.
struct Edge {
    to: String,
    span: SourceSpan,
    text: String,
}

fn edges(stages: &[Stage], images: &[Image]) -> BTreeMap<String, Vec<Edge>> {
    let mut graph: BTreeMap<String, Vec<Edge>> = BTreeMap::new();
    for stage in stages {
        let name = stage.name.value.to_string();
        let out = graph.entry(name.clone()).or_default();
        for used in &stage.uses {
            let text = format!("`{name}` uses `{}`", used.value);
            out.push(Edge {
                to: used.value.to_string(),
                span: used.span,
                text,
            });
        }
        if let Root::Image(image) = &stage.from.value {
            let text = format!("`{name}` runs from image `{image}`");
            out.push(Edge {
                to: image.to_string(),
                span: stage.from.span,
                text,
            });
        }
    }
    for image in images {
        let name = image.name.value.to_string();
        let out = graph.entry(name.clone()).or_default();
        if let ImageRoot::Image(base) = &image.from.value {
            let text = format!("`{name}` is built from image `{base}`");
            out.push(Edge {
                to: base.to_string(),
                span: image.from.span,
                text,
            });
        }
        for content in &image.contents {
            if let Content::Copy { stage, .. } = content {
                let text = format!("`{name}` copies from stage `{}`", stage.value);
                out.push(Edge {
                    to: stage.value.to_string(),
                    span: stage.span,
                    text,
                });
            }
        }
    }
    graph
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mark {
    Active,
    Done,
}

impl Cx {
    /// Reports the cycles found by a depth-first walk (one per back edge),
    /// up to [`MAX_SHOWN`]: each names its whole path, so reporting all the
    /// back edges of a long chain would be quadratic. Breaking these shows
    /// the rest on the next run.
    pub fn check_cycles(&mut self, stages: &[Stage], images: &[Image]) {
        let graph = edges(stages, images);
        let mut reported = 0;
        let mut marks: BTreeMap<&str, Mark> = BTreeMap::new();
        for start in graph.keys() {
            if marks.contains_key(start.as_str()) {
                continue;
            }
            // An explicit stack, not recursion: a long chain must not overflow.
            let mut stack: Vec<(&str, usize)> = vec![(start, 0)];
            marks.insert(start, Mark::Active);
            while let Some((node, next)) = stack.last_mut() {
                let out = graph.get(*node).map(Vec::as_slice).unwrap_or_default();
                let Some(edge) = out.get(*next) else {
                    marks.insert(node, Mark::Done);
                    stack.pop();
                    continue;
                };
                *next += 1;
                match marks.get(edge.to.as_str()) {
                    None => {
                        marks.insert(&edge.to, Mark::Active);
                        stack.push((&edge.to, 0));
                    }
                    Some(Mark::Active) if reported < MAX_SHOWN => {
                        reported += 1;
                        self.report_cycle(&graph, &stack, edge);
                    }
                    Some(Mark::Active) => {}
                    Some(Mark::Done) => {}
                }
            }
        }
    }

    fn report_cycle(
        &mut self,
        graph: &BTreeMap<String, Vec<Edge>>,
        stack: &[(&str, usize)],
        back: &Edge,
    ) {
        let from = stack.iter().position(|(n, _)| *n == back.to).unwrap_or(0);
        let cycle = &stack[from..];
        let mut labels = Vec::new();
        // The first edges are enough to find the cycle; labelling thousands
        // would print thousands of snippets.
        for (node, next) in cycle.iter().take(MAX_CYCLE_LABELS) {
            // `next` was advanced past the edge the walk followed out of `node`.
            let taken = graph
                .get(*node)
                .and_then(|out| out.get(next.wrapping_sub(1)));
            if let Some(edge) = taken {
                labels.push(label(edge.span, edge.text.clone()));
            }
        }
        let mut path: Vec<String> = cycle.iter().map(|(node, _)| (*node).to_owned()).collect();
        if path.len() > MAX_CYCLE_PATH {
            let hidden = path.len() - MAX_CYCLE_PATH;
            path.splice(
                MAX_CYCLE_PATH / 2..path.len() - MAX_CYCLE_PATH / 2,
                [format!("… {hidden} more …")],
            );
        }
        path.push(back.to.clone());
        self.report(ProblemKind::Cycle { path }, labels);
    }
}

/// Edges of one cycle given a label, and names spelled out in its message.
const MAX_CYCLE_LABELS: usize = 8;
const MAX_CYCLE_PATH: usize = 16;
