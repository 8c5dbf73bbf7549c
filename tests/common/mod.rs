//! Helpers shared by the integration tests.
#![allow(dead_code)] // each test binary uses a different subset

pub mod engine;
