//! Eval: a [`Spec`] → a [`Plan`]: the stages a build needs, in dependency
//! order, each with its inputs gathered and hashed.
//!
//! A stage's [`Key`] is blake3 over its [`Inputs`] plus the *output* hashes of
//! the stages it uses, which are only known once those are built (or found in
//! the store): that is what gives early cutoff. So eval gathers everything
//! else, and the build step finishes each key as its dependencies complete.

mod archive;
mod error;
mod inputs;
mod order;
mod plan;

pub use inputs::{Inputs, fetch_file_name};
pub use order::Work;

pub use error::EvalError;
pub use plan::{Plan, PlanEnv, PlannedNode, plan};
