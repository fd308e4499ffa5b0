//! Backends build one image each: the executor hands a [`Job`] to a [`Builder`] on a worker
//! thread and gets the new artifact's id back. Processes are started only here, each in its
//! own process group registered with [`Procs`], so a Ctrl-C can stop a build's whole tree.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;

pub mod redact;
pub mod bundle;
pub mod procs;
pub mod command;
pub mod packer;
pub mod rootfs;

pub use command::{job_env, stage_bundle, CommandBackend};
pub use procs::{find_program, Procs};

/// A role to apply: its name, its folder (absolute) and its `[vars]`.
pub type JobRole = (String, PathBuf, BTreeMap<String, String>);

/// One build, as a backend sees it.
#[derive(Debug, Clone)]
pub struct Job {
    pub image: String,
    pub key: String,
    /// `MAJOR.MINOR.BUILD-YYYYMMDD_HHMM`.
    pub version: String,
    /// `NAME-MAJOR.MINOR.BUILD`.
    pub artifact_name: String,
    /// The parent's artifact id, or the origin's id.
    pub source: String,
    /// The roles to apply, in order: name, folder (absolute), the role's `[vars]`.
    pub roles: Vec<JobRole>,
    /// The roles' trees as the workspace scanned them, in the same order: what a staged
    /// bundle must hold.
    pub trees: Vec<crate::scan::Tree>,
    /// The cache, where bundles are staged.
    pub cache: crate::cache::Cache,
    /// Installed before the roles run: names, or on `debian` origins the locked
    /// `NAME=VERSION`s.
    pub packages: Vec<String>,
    /// Extra apt sources the packages come from (`deb ...` lines).
    pub sources: Vec<String>,
    /// Host folders of `file://` apt archives the build must see (bound read-only).
    pub binds: Vec<PathBuf>,
    /// The image's `[vars]` (in shallow builds, the chain's, the image's own winning).
    pub vars: BTreeMap<String, String>,
    /// Secret variables and their values: environment only, never argv, files or records.
    pub secrets: Vec<(String, String)>,
    /// A private folder for this build, inside the run's 0700 folder: absent (a backend that
    /// needs one makes it) or empty; emptied afterwards and handed to a later build of the run.
    pub work: PathBuf,
    pub project_root: PathBuf,
    /// The origin at the root of the image's chain.
    pub origin: String,
    /// Deep builds: the parent's record, whose artifact this build starts from.
    pub parent: Option<crate::record::Record>,
}

/// What a successful build produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Built {
    pub id: String,
    /// A local artifact file or folder, to be moved into the cache.
    pub local: Option<PathBuf>,
    /// A remote artifact: where it lives (the Packer builder that made it).
    pub remote: Option<String>,
    /// The installed packages, where the backend can read the image's package database.
    pub packages: Option<crate::packages::Manifest>,
}

/// Where a build writes its output: the image's log (secrets redacted).
pub type Log<'a> = &'a Mutex<dyn Write + Send + 'a>;

pub trait Builder: Sync {
    /// Builds `job`; `Err` carries a one-line reason (the details are in the log).
    fn build(&self, job: &Job, log: Log, procs: &Procs) -> Result<Built, String>;
}
