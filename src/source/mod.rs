//! The project as files: the work tree on disk, or a git revision read in-process for
//! `--since REF`. Declarations are read through [`files::ProjectFiles`] from either.

pub mod files;
pub mod gittrees;
pub mod snapshot;
pub mod gitread;
pub mod recorded;
