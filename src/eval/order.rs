//! The order nodes are planned and built in: each after every node it
//! needs, each once. Pure.
//!
//! A depth-first walk with a stack of its own, not recursion: a chain of
//! `use` (or of images `from` images) is as long as a spec makes it, and a
//! 4 MiB spec holds a chain of 100,000 stages.

use std::collections::HashSet;

use crate::spec::{
    Base, Content, Fetch, Image, ImageRoot, Name, NodeRef, Root, Spanned, Spec, Stage,
};

/// What producing a store entry takes: one node of the build graph.
#[derive(Debug, Clone, Copy)]
pub enum Work<'s> {
    /// Run a stage's scripts.
    Run(&'s Stage),
    /// Download a fixed-output file.
    Fetch(&'s Fetch),
    /// Import a base image, verified against its pinned digest.
    Import(&'s Base),
    /// Assemble an image of the spec from its parent and the stages it copies.
    Assemble(&'s Image),
}

impl<'s> Work<'s> {
    pub fn name(&self) -> &'s Spanned<Name> {
        match self {
            Work::Run(stage) => &stage.name,
            Work::Fetch(fetch) => &fetch.name,
            Work::Import(base) => &base.name,
            Work::Assemble(image) => &image.name,
        }
    }

    /// What the node is called in kiln.kdl: `stage`, `fetch`, `base`, `image`.
    pub fn kind(&self) -> &'static str {
        match self {
            Work::Run(_) => "stage",
            Work::Fetch(_) => "fetch",
            Work::Import(_) => "base",
            Work::Assemble(_) => "image",
        }
    }

    /// Whether the node makes an image (a base import or an assembly).
    pub fn is_image(&self) -> bool {
        matches!(self, Work::Import(_) | Work::Assemble(_))
    }
}

/// The node `name` resolves to, as a unit of work.
pub(crate) fn node<'s>(spec: &'s Spec, name: &Name) -> Work<'s> {
    match spec.resolve(name) {
        NodeRef::Stage(stage) => Work::Run(stage),
        NodeRef::Fetch(fetch) => Work::Fetch(fetch),
        NodeRef::Base(base) => Work::Import(base),
        NodeRef::Image(image) => Work::Assemble(image),
    }
}

/// The node a stage runs in, when not the host.
pub(crate) fn stage_root<'s>(spec: &'s Spec, stage: &Stage) -> Option<Work<'s>> {
    match &stage.from.value {
        Root::Host => None,
        Root::Base(name) | Root::Image(name) => Some(node(spec, name)),
    }
}

/// The node an image is stacked on, when not `scratch`.
pub(crate) fn image_parent<'s>(spec: &'s Spec, image: &Image) -> Option<Work<'s>> {
    match &image.from.value {
        ImageRoot::Scratch => None,
        ImageRoot::Base(name) | ImageRoot::Image(name) => Some(node(spec, name)),
    }
}

/// The stages an image copies from, each once, in first-copy order.
pub(crate) fn copied<'s>(spec: &'s Spec, image: &Image) -> Vec<&'s Stage> {
    let mut seen = HashSet::new();
    let copies = image.contents.iter().filter_map(|content| match content {
        Content::Copy { stage, .. } if seen.insert(stage.value.as_str()) => Some(&stage.value),
        _ => None,
    });
    copies
        .filter_map(|name| match node(spec, name) {
            Work::Run(stage) => Some(stage),
            _ => None,
        })
        .collect()
}

/// Nodes in dependency order.
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
    pub(super) fn add(&mut self, start: Work<'s>) {
        if self.is_done(start) {
            return;
        }
        let mut stack = vec![(start, self.needs(start), 0)];
        while let Some((work, needs, next)) = stack.last_mut() {
            match needs.get(*next).copied() {
                Some(need) => {
                    *next += 1;
                    if !self.is_done(need) {
                        let needs = self.needs(need);
                        stack.push((need, needs, 0));
                    }
                }
                None => {
                    // A node reached twice on one path is a cycle, which
                    // spec validation refuses; `is_done` keeps it once.
                    let work = *work;
                    if self.done.insert(work.name().value.as_str()) {
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

    fn is_done(&self, work: Work<'s>) -> bool {
        self.done.contains(work.name().value.as_str())
    }

    /// What `work` needs first, in the order the walk takes it.
    fn needs(&self, work: Work<'s>) -> Vec<Work<'s>> {
        let spec = self.spec;
        match work {
            Work::Fetch(_) | Work::Import(_) => Vec::new(),
            Work::Run(stage) => {
                let uses = stage.uses.iter().map(|used| node(spec, &used.value));
                stage_root(spec, stage).into_iter().chain(uses).collect()
            }
            Work::Assemble(image) => {
                let stages = copied(spec, image);
                // A copied program's closure is resolved in the root its stage ran in.
                let roots = stages.iter().filter_map(|s| stage_root(spec, s));
                let stages = stages.iter().map(|s| Work::Run(s));
                (image_parent(spec, image).into_iter())
                    .chain(stages)
                    .chain(roots)
                    .collect()
            }
        }
    }
}
