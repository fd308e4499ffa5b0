//! `layer`: make for server images.
//!
//! Modules in the order data flows through them:
//! declarations (`decl`, TOML) -> `model` -> `graph` -> `scan` (file trees -> digests) -> `key`
//! -> `plan` -> `cache`; `workspace` runs that pipeline, `render` prints what the commands produce and `cli` wires them together.
//! See `doc/ARCHITECTURE.md` for the invariants.

pub mod backend;
pub mod bundle;
pub mod cache;
pub mod cli;
pub mod decl;
pub mod error;
pub mod exec;
pub mod export;
pub mod files;
pub mod gitread;
pub mod graph;
pub mod key;
pub mod layerfs;
pub mod lock;
pub mod model;
pub mod packer;
pub mod plan;
pub mod progress;
pub mod redact;
pub mod release;
pub mod render;
pub mod report;
pub mod rootfs;
pub mod scan;
pub mod since;
pub mod workspace;

pub use error::{Error, Result};
