//! Runtime closure: what a dynamically linked ELF needs to start in an image.
//!
//! When an image copies a program built in a stage into `from scratch`, the
//! program alone cannot run: the kernel needs its ELF interpreter (PT_INTERP)
//! and the interpreter needs every DT_NEEDED library, transitively. This module
//! finds them the way ld.so(8) would, inside the root filesystem the stage was
//! built in, as the stage saw it (for `from host`, the host directories the
//! sandbox shows; else the unpacked image rootfs), and nothing else. Export
//! adds the result to the image; `kiln why` prints the chains.
//!
//! It reads files but writes none. Every lookup is confined to the root:
//! absolute symlinks restart at the root, `..` stops there, and on the host
//! a path the sandbox hides is not there, so neither an image rootfs nor a
//! program's headers can send kiln to the host's other files. `$ORIGIN`
//! lookups beside a copied program stay inside its stage output. Only ELF
//! objects for the program's machine are taken: an interpreter that is not
//! one (`--dynamic-linker=/etc/shadow`) is an error, a library candidate that
//! is not one is skipped, as ld.so skips it.
//!
//! Symlinks are kept as symlinks. Every symlink met on the way to a file is
//! its own [`NeededKind::Symlink`] entry, directories included: on Debian's
//! merged /usr the closure holds `/lib64 -> usr/lib64`,
//! `/usr/lib64/ld-linux-x86-64.so.2 -> /lib/x86_64-linux-gnu/…`, `/lib -> usr/lib`
//! and the real files under `/usr/lib`. So each entry's parent directories are
//! real directories in the root, and every path ld.so uses in the image (the
//! one in PT_INTERP, the ones in its search path) works as it did in the root.
//!
//! Resolution order, as ld.so(8): a DT_NEEDED containing `/` is a path; else
//! DT_RPATH of the loading object and of its loaders up to the program (only
//! when the loading object has no DT_RUNPATH), DT_RUNPATH of the loading
//! object, the directories of `/etc/ld.so.conf` (with its `include`s), then the
//! default directories. A name already loaded (as a name or a soname) is not
//! searched again. Candidates of another ELF class or machine are skipped.

mod elf;
mod error;
mod ldconf;
mod model;
mod resolve;
mod rootfs;

pub use error::ClosureError;
pub use model::{Closure, Needed, NeededKind, Program, Root};
pub use resolve::resolve;
pub use rootfs::{Found, Link, lookup_in};
