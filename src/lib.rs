//! `layer`: make for server images.
//!
//! Modules in the order data flows through them:
//! declarations (`decl`, TOML) -> `model` -> `graph` -> `scan` (file trees -> digests) -> `key`
//! -> `plan` -> `cache`; `render` prints what the commands produce and `cli` wires them together.
//! See `doc/ARCHITECTURE.md` for the invariants.

pub mod error;
pub mod model;
pub mod decl;
pub mod graph;
pub mod scan;
pub mod key;
pub mod plan;
pub mod cache;
pub mod render;
pub mod cli;

pub use error::{Error, Result};
