//! kiln's integration tests, as one test binary (one compile, one link),
//! with one module per area and the shared helpers in `common`: a temporary
//! project with its own store, the real `kiln` binary, a private Docker
//! engine, a private registry, hand-written image fixtures and the skip
//! policy.
//!
//! Run one area with `cargo test --test it MODULE::` (for example
//! `cargo test --test it store::`). Data the tests read stays where it was:
//! the spec corpus in `tests/spec/`, the fuzz corpora in `fuzz/corpus/`.

mod common;

mod attacks_reuse;
mod attacks_round2;
mod base_attacks;
mod base_import;
mod base_keys;
mod build;
mod cache;
mod cache_attacks;
mod cache_dir_attacks;
mod cache_dirs;
mod cache_dirs_go;
mod cli_errors;
mod closure;
mod closure_attacks;
mod closure_e2e;
mod examples_e2e;
mod exit_codes;
mod export_attacks;
mod fetch;
mod flake;
mod fuzz_base_import;
mod fuzz_spec;
mod hermetic;
mod hostile_input;
mod image_attacks;
mod image_cli;
mod image_e2e;
mod image_nodes;
mod imports;
mod lock;
mod rebuild;
mod registry;
mod registry_auth;
mod registry_failures;
mod registry_push;
mod registry_requests;
mod review2;
mod sandbox;
mod sandbox_attacks;
mod sandbox_leaks;
mod sandbox_lifetime;
mod spec_cache;
mod spec_corpus;
mod store;
mod store_integrity;
mod templates;
mod toolchain;
