//! Hand-made specs for unit tests: no kiln.kdl parsing involved.

use std::path::Path;
use std::sync::Arc;

use crate::spec::{Command, Content, ContentAttrs, Image, Name, Owner, Spanned, Spec, SrcPath};

pub(crate) fn sp<T>(value: T) -> Spanned<T> {
    Spanned {
        value,
        span: (0..0).into(),
    }
}

pub(crate) fn name(s: &str) -> Name {
    Name::new(s).expect("test names are valid")
}

pub(crate) fn spec(context: &Path, images: Vec<Image>) -> Spec {
    Spec {
        source: Arc::new(miette::NamedSource::new("kiln.kdl", String::new())),
        context: context.to_owned(),
        files: Vec::new(),
        instance_dirs: Default::default(),
        args: Vec::new(),
        stages: Vec::new(),
        bases: Vec::new(),
        fetches: Vec::new(),
        images,
        names: Default::default(),
    }
}

pub(crate) fn image(n: &str) -> Image {
    Image::new(sp(name(n)))
}

pub(crate) fn attrs(to: &str) -> ContentAttrs {
    ContentAttrs {
        to: sp(to.to_owned()),
        mode: None,
        owner: Owner::default(),
        closure: false,
        closure_extra: Vec::new(),
        span: (0..0).into(),
    }
}

pub(crate) fn copy(stage: &str, path: &str, to: &str) -> Content {
    Content::Copy {
        stage: sp(name(stage)),
        path: sp(SrcPath::new(path).expect("test paths are relative")),
        attrs: attrs(to),
    }
}

pub(crate) fn add(src: &str, to: &str) -> Content {
    Content::Add {
        src: sp(SrcPath::new(src).expect("test paths are relative")),
        attrs: attrs(to),
    }
}

pub(crate) fn exec(argv: &[&str]) -> Option<Spanned<Command>> {
    Some(sp(Command::Exec(
        argv.iter().map(|s| s.to_string()).collect(),
    )))
}
