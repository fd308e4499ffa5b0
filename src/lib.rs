//! `layer`: make for server images.
//!
//! The modules below are listed in the order data flows through them, and each imports only
//! modules listed before it (`tests/suite/architecture.rs` holds this):
//!
//! ```text
//! error fsutil process          errors and exit codes; atomic writes, tree removal; child setup
//! model version packages graph  validated declarations, names; versions and pins; installed packages; the image graph
//! scan layerfs export           file trees -> digests; layer trees on the host; tar, oci, disk
//! source decl                   the project as files (work tree or git); TOML -> model
//! key record release plan       inputs and keys; records as data; release rules; the plan (pure)
//! cache remote watch workspace lock since  the cache on disk; the remote cache; `layer watch`; load -> scan -> key -> plan; layer.lock; --since
//! progress backend exec         progress output; builders and processes; the executor
//! render report audit cli       output formats; `layer report`; `layer audit`; arguments and commands
//! ```
//!
//! See `doc/ARCHITECTURE.md` for the code map and the invariants.

pub mod error;
pub mod fsutil;
pub mod process;

pub mod model;
pub mod version;
pub mod packages;
pub mod graph;

pub mod scan;
pub mod layerfs;
pub mod export;

pub mod source;
pub mod decl;

pub mod key;
pub mod record;
pub mod release;
pub mod plan;

pub mod cache;
pub mod remote;
pub mod watch;
pub mod workspace;
pub mod lock;
pub mod since;

pub mod progress;
pub mod backend;
pub mod exec;

pub mod render;
pub mod report;
pub mod audit;
pub mod cli;

pub use error::{Error, Result};
