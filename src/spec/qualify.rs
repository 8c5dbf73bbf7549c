//! The nodes one file declares (with those of the files it imports), and
//! how the importing file sees them: every name they hold, declared or
//! referenced, prefixed with the import's alias (`go-dist` → `go.go-dist`,
//! `c.x` → `go.c.x`). Pure.

use std::collections::BTreeMap;

use super::name_table::Kind;
use super::name_table::TemplateRef;
use super::{Arg, Base, Content, Fetch, Image, ImageRoot, Name, Root, Spanned, Stage};

/// What validating one file gives: its args and its nodes, those of the
/// files it imports already qualified by their aliases.
#[derive(Debug, Default)]
pub(crate) struct Parts {
    pub args: Vec<Arg>,
    pub stages: Vec<Stage>,
    pub bases: Vec<Base>,
    pub fetches: Vec<Fetch>,
    pub images: Vec<Image>,
    /// The templates the file defines or imports, by the name it uses.
    pub templates: BTreeMap<String, TemplateRef>,
}

impl Parts {
    /// Every node's name and kind.
    pub fn names(&self) -> impl Iterator<Item = (&Spanned<Name>, Kind)> {
        (self.stages.iter().map(|s| (&s.name, Kind::Stage)))
            .chain(self.bases.iter().map(|b| (&b.name, Kind::Base)))
            .chain(self.fetches.iter().map(|f| (&f.name, Kind::Fetch)))
            .chain(self.images.iter().map(|i| (&i.name, Kind::Image)))
    }

    /// Appends `other`'s nodes (not its args: a file's args are its own).
    pub fn extend(&mut self, other: Parts) {
        self.stages.extend(other.stages);
        self.bases.extend(other.bases);
        self.fetches.extend(other.fetches);
        self.images.extend(other.images);
    }

    /// These nodes (and templates) as a file that imports them `as=alias`
    /// sees them.
    pub fn qualified(self, alias: &str) -> Parts {
        let mut parts = self.renamed(|name| name.qualified(alias), alias);
        parts.args.clear();
        parts.templates = std::mem::take(&mut parts.templates)
            .into_iter()
            .map(|(name, mut at)| {
                at.alias = match at.alias.is_empty() {
                    true => alias.to_owned(),
                    false => format!("{alias}.{}", at.alias),
                };
                (format!("{alias}.{name}"), at)
            })
            .collect();
        parts
    }

    /// These nodes with every name they hold, declared or referenced,
    /// renamed by `rename`, and `scope` put before their scope.
    pub fn renamed(mut self, rename: impl Fn(&Name) -> Name, scope: &str) -> Parts {
        let q = |name: &mut Name| *name = rename(name);
        let s = |own: &mut String| {
            *own = match own.is_empty() {
                true => scope.to_owned(),
                false => format!("{scope}.{own}"),
            }
        };
        for stage in &mut self.stages {
            s(&mut stage.scope);
            q(&mut stage.name.value);
            match &mut stage.from.value {
                Root::Host => {}
                Root::Base(name) | Root::Image(name) => q(name),
            }
            stage.uses.iter_mut().for_each(|u| q(&mut u.value));
        }
        for base in &mut self.bases {
            s(&mut base.scope);
            q(&mut base.name.value);
        }
        for fetch in &mut self.fetches {
            s(&mut fetch.scope);
            q(&mut fetch.name.value);
        }
        for image in &mut self.images {
            s(&mut image.scope);
            q(&mut image.name.value);
            match &mut image.from.value {
                ImageRoot::Scratch => {}
                ImageRoot::Base(name) | ImageRoot::Image(name) => q(name),
            }
            for content in &mut image.contents {
                match content {
                    Content::Copy { stage, .. } => q(&mut stage.value),
                    Content::Add { .. } => {}
                }
            }
        }
        self
    }
}
