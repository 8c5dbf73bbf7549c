//! The order stages are planned and built in: each after every stage or
//! fetch it needs, each once. Pure.
//!
//! A depth-first walk with a stack of its own, not recursion: a chain of
//! `use` (or of images `from` images) is as long as a spec makes it, and a
//! 4 MiB spec holds a chain of 100,000 stages.

use std::collections::HashSet;

use crate::spec::{Content, Fetch, Image, ImageRoot, Name, NodeRef, Root, Spanned, Spec, Stage};

/// What producing a store entry takes.
#[derive(Debug, Clone, Copy)]
pub enum Work<'s> {
    /// Run a stage's scripts.
    Run(&'s Stage),
    /// Download a fixed-output file.
    Fetch(&'s Fetch),
}

impl<'s> Work<'s> {
    pub fn name(&self) -> &'s Spanned<Name> {
        match self {
            Work::Run(stage) => &stage.name,
            Work::Fetch(fetch) => &fetch.name,
        }
    }
}

/// What the walk visits: images are walked through, not built here.
#[derive(Debug, Clone, Copy)]
pub(super) enum Node<'s> {
    Work(Work<'s>),
    Image(&'s Image),
}

/// Stages and fetches in dependency order.
pub(super) struct Order<'s> {
    spec: &'s Spec,
    works: Vec<Work<'s>>,
    done: HashSet<&'s str>,
}

impl<'s> Order<'s> {
    pub(super) fn new(spec: &'s Spec) -> Self {
        Order {
            spec,
            works: Vec::new(),
            done: HashSet::new(),
        }
    }

    /// Adds `start` after everything it needs that is not in yet.
    pub(super) fn add(&mut self, start: Node<'s>) {
        if self.is_done(start) {
            return;
        }
        let mut stack = vec![(start, self.needs(start), 0)];
        while let Some((node, needs, next)) = stack.last_mut() {
            match needs.get(*next).copied() {
                Some(need) => {
                    *next += 1;
                    if !self.is_done(need) {
                        let needs = self.needs(need);
                        stack.push((need, needs, 0));
                    }
                }
                None => {
                    if let Node::Work(work) = *node {
                        self.done.insert(work.name().value.as_str());
                        self.works.push(work);
                    }
                    stack.pop();
                }
            }
        }
    }

    pub(super) fn into_works(self) -> Vec<Work<'s>> {
        self.works
    }

    fn is_done(&self, node: Node<'s>) -> bool {
        match node {
            Node::Work(work) => self.done.contains(work.name().value.as_str()),
            Node::Image(_) => false,
        }
    }

    /// What `node` needs first, in the order the walk takes it.
    fn needs(&self, node: Node<'s>) -> Vec<Node<'s>> {
        let spec = self.spec;
        match node {
            Node::Work(Work::Fetch(_)) => Vec::new(),
            Node::Work(Work::Run(stage)) => {
                let root = match &stage.from.value {
                    Root::Image(name) => Some(Node::Image(root_image(spec, name.as_str()))),
                    _ => None,
                };
                let uses = stage
                    .uses
                    .iter()
                    .map(|used| match spec.lookup(used.value.as_str()) {
                        Some(NodeRef::Stage(dep)) => Node::Work(Work::Run(dep)),
                        Some(NodeRef::Fetch(fetch)) => Node::Work(Work::Fetch(fetch)),
                        _ => {
                            unreachable!("kiln bug: spec validation let `use` name a base or image")
                        }
                    });
                root.into_iter().chain(uses).collect()
            }
            Node::Image(image) => {
                let parent = match &image.from.value {
                    ImageRoot::Image(parent) => spec.image(parent.as_str()).map(Node::Image),
                    _ => None,
                };
                let copied = image.contents.iter().filter_map(|content| match content {
                    Content::Copy { stage, .. } => spec.stage(stage.value.as_str()),
                    _ => None,
                });
                parent
                    .into_iter()
                    .chain(copied.map(|stage| Node::Work(Work::Run(stage))))
                    .collect()
            }
        }
    }
}

pub(super) fn root_image<'s>(spec: &'s Spec, name: &str) -> &'s Image {
    spec.image(name)
        .expect("kiln bug: spec validation let `from` name an unknown image")
}
