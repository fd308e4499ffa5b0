//! Errors: one enum for the library, and `Diagnostics`, the list of declaration errors that a
//! load collects so that a user sees every problem of a project in one run.

use std::fmt;
use std::path::{Path, PathBuf};

/// One problem in one declaration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file, relative to the project root (`images/app.toml`).
    pub file: String,
    /// 1-based line, where the parser or a span gives one.
    pub line: Option<usize>,
    pub message: String,
    pub hint: Option<String>,
}

impl Diagnostic {
    pub fn new(file: impl Into<String>, message: impl Into<String>) -> Self {
        Diagnostic {
            file: file.into(),
            line: None,
            message: message.into(),
            hint: None,
        }
    }

    pub fn at(mut self, line: Option<usize>) -> Self {
        self.line = line;
        self
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn maybe_hint(mut self, hint: Option<String>) -> Self {
        self.hint = hint;
        self
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{}: {}", self.file, line, self.message)?,
            None => write!(f, "{}: {}", self.file, self.message)?,
        }
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

/// Every declaration error of one load, sorted by file and line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    pub fn push(&mut self, d: Diagnostic) {
        self.0.push(d);
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// `Ok(())` when empty, otherwise the sorted list as an error.
    pub fn into_result(mut self) -> Result<(), Error> {
        if self.0.is_empty() {
            return Ok(());
        }
        self.0
            .sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
        self.0.dedup();
        Err(Error::Declarations(self))
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
                write!(f, "error: ")?;
            }
            write!(f, "{d}")?;
        }
        if self.0.len() > 1 {
            write!(
                f,
                "\n{} declaration errors; nothing was built",
                self.0.len()
            )?;
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The first line is printed after `error: `; the rest follow as they are.
    #[error("{0}")]
    Declarations(Diagnostics),

    #[error("no `layer.toml` in `{}` or any folder above it", start.display())]
    NoProject { start: PathBuf },

    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("unknown image `{name}`")]
    UnknownImage {
        name: String,
        suggestion: Option<String>,
    },

    /// A request that cannot be carried out as asked (nothing was built); `kind` names which.
    #[error("{message}")]
    Usage {
        kind: ErrorKind,
        message: String,
        hint: Option<String>,
    },

    /// The cache is not in a state this run can use.
    #[error("cache `{}`: {message}", path.display())]
    Cache {
        kind: ErrorKind,
        path: PathBuf,
        message: String,
    },

    /// A project file that cannot be an input (a fifo in a role, a missing origin file).
    #[error("{path}: {message}")]
    Input {
        kind: ErrorKind,
        path: String,
        message: String,
        hint: Option<String>,
    },

    /// The remote cache: a bad `[remote]` setting or signing key, a store that cannot be
    /// reached, or a transfer that failed or did not verify.
    #[error("{message}")]
    Remote {
        kind: ErrorKind,
        message: String,
        hint: Option<String>,
    },
}

/// The fewest characters a secret's value may have (SPEC §1.2).
pub const MIN_SECRET: usize = 6;

/// Which failure an [`Error`] is. The message says it to people, with the names and paths of
/// the case; the kind says it to code: the CLI, tests and library users match on
/// [`Error::kind`] instead of on wording.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Declarations do not validate ([`Error::Declarations`]).
    Declarations,
    /// No `layer.toml` here or above ([`Error::NoProject`]).
    NoProject,
    /// A file system operation failed ([`Error::Io`]).
    Io,
    /// A target names no image ([`Error::UnknownImage`]).
    UnknownImage,
    /// `-C DIR` names no folder.
    NoSuchFolder,

    // Versions, release status and pins.
    /// An image has no recorded build to act on.
    NoBuilds,
    /// A version is not `MAJOR.MINOR.BUILD` or `MAJOR.MINOR.BUILD-YYYYMMDD_HHMM`.
    NotAVersion,
    /// An image has no build of the version named.
    NoSuchBuild,
    /// `layer revoke` without a version.
    RevokeNeedsVersion,
    /// A promotion the release rules refuse (untested, failed or revoked build).
    PromotionRefused,
    /// A promotion of a build made on a revoked parent build.
    RevokedParent,
    /// A pin that no released build of the parent matches.
    PinUnmatched,
    /// A pinned parent asked of a shallow build.
    PinNeedsDeep,
    /// `build --reheat` without `--from`, of an image with no released build to reheat.
    NoReleasedBuild,
    /// `build --reheat` of an image or a build that is not a local `rootfs` build.
    ReheatNotRootfs,
    /// `build --reheat` naming no image, several, or with flags it cannot take.
    ReheatTargets,
    /// `build --reheat --from` a revoked build.
    ReheatRevoked,

    // Inputs.
    /// An origin's file was not scanned, or leads out of the project, or cannot be read.
    OriginFile,
    /// A `resolve` origin without an id in `layer.lock`.
    OriginUnresolved,
    /// A `resolve` command failed, or printed no single id.
    ResolveFailed,
    /// A Debian suite's `Release` file could not be fetched or read.
    ReleaseFetch,
    /// `layer lock` could not resolve an image's packages in a sandbox of its origin (a
    /// package no archive serves, conflicting dependencies, an origin that cannot be made).
    PackagesUnresolved,
    /// An image to build on a `debian` origin has no package versions in `layer.lock`.
    PackagesNotLocked,
    /// A package version `layer.lock` pins is no longer served by the mirror, or the suite's
    /// `Release` an origin must be made from moved.
    LockedVersionGone,
    /// A backend's project file leads out of the project.
    BackendFile,
    /// A role holds what cannot be an input: a name or link target that is not UTF-8, a
    /// socket, fifo or device, a git submodule.
    RoleEntry,
    /// A secret variable is not set in the environment.
    SecretsMissing,
    /// A secret's value is shorter than [`crate::error::MIN_SECRET`] characters: masking it
    /// would destroy the log and protect nothing.
    SecretTooShort,
    /// An inventory for `layer report` cannot be read as CSV or JSON.
    Inventory,
    /// An inventory file for `layer report` that is not there or cannot be opened.
    InventoryUnreadable,

    // `--since REF`.
    /// The project is not in a git repository, or outside its work tree.
    NotInRepository,
    /// REF names no commit (or the clone is too shallow to hold it).
    NoSuchRevision,
    /// An object of REF cannot be read (a partial clone), or a tree is corrupt.
    GitObject,
    /// The project at REF does not load.
    SinceLoad,

    // Builds, tests and exports.
    /// The rootfs backend without root.
    NeedsRoot,
    /// Packages asked of a `busybox` origin, which has no package manager.
    PackagesOnBusybox,
    /// A tool a backend or export needs is not installed.
    ToolMissing,
    /// A backend reported success without an artifact id.
    NoArtifactId,
    /// A backend reported an artifact id that holds a secret's value (or a line of one).
    SecretInArtifactId,
    /// `layer test` or `layer export` of an image another backend builds, or of a remote
    /// artifact.
    NotRootfs,
    /// `layer test` of images not built at their current inputs.
    NotBuilt,
    /// `layer shell`'s throwaway instance could not be made or started.
    InstanceFailed,
    /// `layer shell --failed` of an image with no failed build kept (`build --keep-failed`).
    NoKeptBuild,
    /// A build's stack (its origin and parent layers) cannot be put together: missing, damaged
    /// or not made.
    StackUnavailable,
    /// An export with nothing to write, or a stack whose layers and names disagree.
    NothingToExport,
    /// An export's output path cannot be written: missing folder, existing file, a folder.
    ExportOutput,

    // Everyday commands (SPEC §10).
    /// `layer logs` of an image or version without a log of the kind asked.
    NoLog,
    /// `layer init` in a folder that already holds one of the files it writes.
    InitExists,
    /// `layer validate`: `packer validate` refused a backend's template.
    TemplateInvalid,
    /// `--var IMAGE.KEY=VALUE` of a variable the image does not declare.
    UnknownVar,

    // The cache.
    /// A record expected on disk is not there.
    NoRecord,
    /// A record names an artifact outside the cache's `artifacts/NAME/FILE`.
    ArtifactPath,
    /// `layer cache gc` while a build uses the cache.
    CacheBusy,
    /// A tree to remove holds a mount point.
    MountPoint,
    /// The cache folder (or a file in it) cannot be written by this user.
    CacheNotWritable,
    /// The cache folder is a link, not a folder, or owned by another user: a project could
    /// commit one to make layer read or write elsewhere.
    CacheFolder,
    /// `layer cache gc --keep 0` without `--all`: it could remove every build of an image.
    GcKeepZero,
    /// A role's files changed between the plan and its build's staging.
    RoleChanged,

    // The remote cache.
    /// A remote URL or trusted key that cannot be used.
    RemoteConfig,
    /// The remote store cannot be reached (connection refused, timeout, denied).
    RemoteUnreachable,
    /// A signing key that cannot be read, or a key file that would be overwritten.
    SigningKey,
    /// A pull or push that failed: a record refused, a blob missing, truncated or not matching
    /// its digest, a local artifact missing or damaged.
    RemoteTransfer,

    // Packages, SBOMs and audits.
    /// An `--osv` file that is not an OSV advisory.
    Advisory,
    /// A build without a package manifest, where one is needed (`layer packages`, `layer sbom`).
    NoManifest,

    // `layer watch`.
    /// Another `layer watch` holds the cache's watch lock.
    WatchRunning,
    /// inotify refuses another watch (`fs.inotify.max_user_watches` reached).
    WatchLimit,
}

impl Error {
    pub fn io(path: impl AsRef<Path>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.as_ref().to_path_buf(),
            source,
        }
    }

    /// An [`Error::Remote`] of `kind` without a hint.
    pub fn remote(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error::Remote {
            kind,
            message: message.into(),
            hint: None,
        }
    }

    /// A [`Error::Usage`] of `kind` without a hint.
    pub fn usage(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error::Usage {
            kind,
            message: message.into(),
            hint: None,
        }
    }

    /// Which failure this is.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Declarations(_) => ErrorKind::Declarations,
            Error::NoProject { .. } => ErrorKind::NoProject,
            Error::Io { .. } => ErrorKind::Io,
            Error::UnknownImage { .. } => ErrorKind::UnknownImage,
            Error::Usage { kind, .. }
            | Error::Cache { kind, .. }
            | Error::Input { kind, .. }
            | Error::Remote { kind, .. } => *kind,
        }
    }

    /// A `hint:` line to print under the message.
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::NoProject { .. } => {
                Some("run `layer` inside a project, or name its root with `-C DIR`".to_string())
            }
            Error::UnknownImage {
                suggestion: Some(s),
                ..
            } => Some(format!("did you mean `{s}`?")),
            Error::UnknownImage {
                suggestion: None, ..
            } => Some("`layer list` shows the images of this project".to_string()),
            Error::Usage { hint, .. } | Error::Input { hint, .. } | Error::Remote { hint, .. } => {
                hint.clone()
            }
            _ => None,
        }
    }

    /// SPEC §5.2: 2 for usage and declaration errors (nothing was built), 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Declarations(_)
            | Error::NoProject { .. }
            | Error::UnknownImage { .. }
            | Error::Usage { .. }
            | Error::Input { .. } => 2,
            Error::Remote { kind, .. } => match kind {
                ErrorKind::RemoteTransfer => 1,
                _ => 2,
            },
            Error::Io { .. } | Error::Cache { .. } => 1,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An I/O error in words for a message: `no such file or directory`, `permission denied`
/// (the standard library's description, lowercase, without the OS error number).
pub fn io_words(e: &std::io::Error) -> String {
    let s = e.kind().to_string();
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => {
            let text = e.to_string();
            let text = text.split(" (os error").next().unwrap_or(&text).to_string();
            if text.is_empty() {
                s
            } else {
                text[..1].to_lowercase() + &text[1..]
            }
        }
    }
}

/// The closest of `candidates` to `name`, when it is close enough to be a likely typo: at most
/// a third of the longer name's length (and at least one) edits away; of equally close names,
/// the first in byte order. An edit is an insertion, a deletion, a substitution or a swap of two
/// neighbouring characters (`form` -> `from`): optimal string alignment distance.
pub fn did_you_mean<'a, I>(name: &str, candidates: I) -> Option<String>
where
    I: IntoIterator<Item = &'a str>,
{
    let mut best: Option<(usize, &str)> = None;
    for c in candidates {
        let limit = (name.len().max(c.len()) / 3).max(1);
        // Lengths alone rule most names out, cheaply: each edit changes the length by one.
        if name.len().abs_diff(c.len()) > limit {
            continue;
        }
        let d = strsim::osa_distance(name, c);
        if d <= limit && best.is_none_or(|(bd, bc)| (d, c) < (bd, bc)) {
            best = Some((d, c));
        }
    }
    best.map(|(_, c)| c.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_has_a_kind_and_usage_errors_exit_2() {
        let io = Error::io("/x", std::io::Error::other("boom"));
        assert_eq!(io.kind(), ErrorKind::Io);
        assert_eq!(io.exit_code(), 1);
        let e = Error::usage(ErrorKind::NotBuilt, "not built");
        assert_eq!(
            (e.kind(), e.exit_code(), e.to_string()),
            (ErrorKind::NotBuilt, 2, "not built".into())
        );
        let e = Error::UnknownImage {
            name: "x".into(),
            suggestion: None,
        };
        assert_eq!(e.kind(), ErrorKind::UnknownImage);
    }

    #[test]
    fn suggestions_are_close_names_only() {
        assert_eq!(
            did_you_mean("strtegy", ["strategy", "backend"]),
            Some("strategy".into())
        );
        assert_eq!(
            did_you_mean("form", ["from", "origin"]),
            Some("from".into())
        );
        assert_eq!(did_you_mean("zzz", ["from", "origin"]), None);
        assert_eq!(did_you_mean("bse", ["base", "java"]), Some("base".into()));
    }

    #[test]
    fn diagnostics_sort_and_count() {
        let mut d = Diagnostics::default();
        d.push(Diagnostic::new("images/b.toml", "second").at(Some(2)));
        d.push(Diagnostic::new("images/a.toml", "first").hint("fix it"));
        let err = d.into_result().unwrap_err();
        assert_eq!(
            err.to_string(),
            "images/a.toml: first\n  hint: fix it\nerror: images/b.toml:2: second\n2 declaration errors; nothing was built"
        );
        assert_eq!(err.exit_code(), 2);
    }
}
