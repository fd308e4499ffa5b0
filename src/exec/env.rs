//! What a run is given besides the plan: the [`Options`] of `layer build`, and the [`Env`] the
//! command prepares before anything starts (with the remote cache, [`Shared`], when there is
//! one), with the secrets it reads from the environment
//! ([`resolve_secrets`]) and the `Commit` tag ([`git_commit`]).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::AtomicI32;

use crate::backend::{Builder, Procs};
use crate::error::{Error, ErrorKind, Result};
use crate::model::Project;
use crate::plan::{Action, Plan};
use crate::progress::Progress;
use crate::remote::{Remote, Signer};
use crate::workspace::Workspace;

/// How to run the plan's builds.
#[derive(Debug, Clone)]
pub struct Options {
    /// `-j`: at most this many builds at once (at least one).
    pub jobs: usize,
    /// `-k`: build every image that does not stand on a failure.
    pub keep_going: bool,
    /// `--force`: build even a key another run recorded meanwhile.
    pub force: bool,
    /// `--pull`: download the selected images the remote cache makes fresh, not only the
    /// parents a build stands on.
    pub pull: bool,
    /// `--keep-failed`: keep a failed build's work folder (`cache/failed/IMAGE`) for `layer
    /// shell --failed IMAGE`.
    pub keep_failed: bool,
    /// `--reheat`: the image's earlier build that the plan's one image to build stands on,
    /// instead of its parent or origin (its key is the workspace's, made by `key::reheat`).
    pub reheat: Option<Box<crate::record::Record>>,
}

/// The remote cache of a run: builds are pulled from it, and with a signing key each new
/// build is pushed to it.
pub struct Shared<'a> {
    pub remote: &'a Remote,
    /// `LAYER_SIGNING_KEY`: none makes the run read-only.
    pub signer: Option<&'a Signer>,
}

/// What the executor needs besides the plan.
pub struct Env<'a> {
    pub ws: &'a Workspace,
    /// Builders by backend name.
    pub builders: &'a BTreeMap<String, Box<dyn Builder + 'a>>,
    pub progress: &'a dyn Progress,
    pub procs: &'a Procs,
    /// Set to a signal number by the signal handler.
    pub interrupt: &'a AtomicI32,
    /// The run's private work folder.
    pub work_dir: &'a Path,
    /// The `Commit` tag.
    pub commit: String,
    /// Per image index: secret variable name and value.
    pub secrets: Vec<Vec<(String, String)>>,
    /// The remote cache, when the run has one it could reach.
    pub remote: Option<Shared<'a>>,
}

/// Reads the `[secrets]` of the images to build from the environment; a missing variable, or
/// a value shorter than [`crate::error::MIN_SECRET`] characters, is an error before anything
/// starts.
pub fn resolve_secrets(project: &Project, plan: &Plan) -> Result<Vec<Vec<(String, String)>>> {
    let mut out = vec![Vec::new(); project.images.len()];
    let mut missing = Vec::new();
    let mut short = Vec::new();
    for (i, img) in project.images.iter().enumerate() {
        if plan.images[i].action != Action::Build {
            continue;
        }
        for (var, env) in &img.secrets {
            match std::env::var(env) {
                Ok(v) if v.trim().chars().count() < crate::error::MIN_SECRET => {
                    short.push(format!("`{env}` (secret `{var}` of `{}`)", img.name));
                }
                Ok(v) => out[i].push((var.clone(), v)),
                Err(_) => missing.push(format!("`{env}` (secret `{var}` of `{}`)", img.name)),
            }
        }
    }
    if !short.is_empty() {
        return Err(Error::Usage {
            kind: ErrorKind::SecretTooShort,
            message: format!(
                "secret values shorter than {} characters: {}",
                crate::error::MIN_SECRET,
                short.join(", ")
            ),
            hint: Some(
                "a value that short cannot be masked in logs without destroying them; use a longer secret".into(),
            ),
        });
    }
    if !missing.is_empty() {
        return Err(Error::Usage {
            kind: ErrorKind::SecretsMissing,
            message: format!("secret variables are not set: {}", missing.join(", ")),
            hint: Some("export them in the environment that runs `layer build`".into()),
        });
    }
    Ok(out)
}

/// The `Commit` tag: `git rev-parse HEAD`, with `-dirty` when the work tree differs (the
/// cache folder, which layer itself writes, does not count); `none` outside a git checkout.
pub fn git_commit(root: &Path, cache_dir: &Path) -> String {
    let git = |args: &[&str]| {
        Command::new("git")
            .arg("-C")
            .arg(root)
            .args(args)
            .env("GIT_OPTIONAL_LOCKS", "0")
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    match git(&["rev-parse", "HEAD"]) {
        Some(head) if !head.is_empty() => {
            let exclude = cache_dir
                .canonicalize()
                .ok()
                .and_then(|c| {
                    c.strip_prefix(root)
                        .ok()
                        .map(|r| format!(":(exclude){}", r.display()))
                })
                .filter(|e| e != ":(exclude)");
            let mut args = vec!["status", "--porcelain", "--", "."];
            if let Some(e) = &exclude {
                args.push(e);
            }
            let dirty = git(&args).is_some_and(|s| !s.is_empty());
            if dirty {
                format!("{head}-dirty")
            } else {
                head
            }
        }
        _ => "none".into(),
    }
}
