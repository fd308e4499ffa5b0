//! The integration tests, in one binary (one link of the crate instead of one per file):
//! `common` writes projects into temporary folders and runs the real `layer` binary on them,
//! `needs` says what a test needs of the machine, `apt_repo` makes Debian packages and apt
//! repositories, `version_pairs` generates versions to compare; each other module is one
//! subject.
//!
//! A test that needs root or a tool declares it twice, as an attribute that `cargo test` shows
//! and as its first line that fails it under `CI` (see `needs`):
//!
//! ```ignore
//! #[test]
//! #[cfg_attr(missing = "packer", ignore = "needs `packer`: apt-get install packer")]
//! fn a_packer_build() {
//!     needs::check(&[Need::Packer]);
//!     ...
//! }
//! ```
//!
//! A test that needs several tools has an attribute for each; on a machine missing more than
//! one, the first names what it lacks and the others repeat `ignore`, which is no error.
#![allow(unused_attributes)]

mod apt_repo;
mod common;
mod needs;
mod version_pairs;

mod architecture;
mod build;
mod cache_cmd;
mod commands;
mod daily;
mod debian;
mod engine;
mod errors;
mod export_lib;
mod fanout;
mod freshness;
mod hostile;
mod keys;
mod lock;
mod model_cache;
mod mutate;
mod packages;
mod packer;
mod readme;
mod recipe;
mod record_index;
mod regressions;
mod regressions_rootfs;
mod reheat;
mod release;
mod remote;
mod remote_http;
mod remote_use;
mod report;
mod rootfs;
mod rpm;
mod sandbox;
mod secrets;
mod shell_cmd;
mod since;
mod since_reads;
mod tree_memo;
mod trust;
mod untrusted;
mod watch;
