//! What the global flags and the names on the command line resolve to: the project root, the
//! workspace, the cache, the number of jobs, the indices of target images; the remote cache
//! (`--remote`, `--no-remote`, `--remote-required`, `[remote]`) and the signing key.

use std::path::PathBuf;

use super::args::Global;
use crate::cache::Cache;
use crate::decl;
use crate::error::{did_you_mean, Error, ErrorKind, Result};
use crate::model::{Project, Strategy};
use crate::remote::{Remote, Signer};
use crate::workspace::Workspace;

/// The project root: from `-C DIR` or the current folder, the first folder upwards holding
/// `layer.toml`.
pub fn project_root(g: &Global) -> Result<PathBuf> {
    let start = match &g.dir {
        Some(d) => {
            if !d.is_dir() {
                return Err(Error::Usage {
                    kind: ErrorKind::NoSuchFolder,
                    message: format!("`-C {}`: no such folder", d.display()),
                    hint: None,
                });
            }
            d.clone()
        }
        None => std::env::current_dir().map_err(|e| Error::io(".", e))?,
    };
    decl::find_root(&start)
}

/// The workspace of the project: loaded, scanned, keyed and looked up.
pub fn open(g: &Global, strategy: Option<Strategy>) -> Result<Workspace> {
    Workspace::open_with(&project_root(g)?, g.cache.clone(), strategy, &g.vars)
}

/// The cache `--cache` names, else `cache/` in the project `root`.
pub fn cache_in(g: &Global, root: &std::path::Path) -> Cache {
    Cache::new(g.cache.clone().unwrap_or_else(|| root.join("cache")))
}

/// The cache of the project, or the one `--cache` names (which needs no project).
pub fn cache_of(g: &Global) -> Result<Cache> {
    match &g.cache {
        Some(c) => Ok(Cache::new(c)),
        None => Ok(Cache::new(project_root(g)?.join("cache"))),
    }
}

/// Builds or tests at once: `-j N`, or the number of cores.
pub fn jobs(g: &Global) -> usize {
    g.jobs.map(|j| j as usize).unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    })
}

/// The indices of the images `names` names, or an error with the nearest name for one that is
/// not declared.
pub fn resolve_targets(project: &Project, names: &[String]) -> Result<Vec<usize>> {
    names
        .iter()
        .map(|n| {
            project
                .images
                .iter()
                .position(|i| &i.name == n)
                .ok_or_else(|| Error::UnknownImage {
                    name: n.clone(),
                    suggestion: did_you_mean(n, project.images.iter().map(|i| i.name.as_str())),
                })
        })
        .collect()
}

/// Keeps `v` alive until the process exits instead of dropping it.
///
/// A workspace of a large project is millions of small heap objects (paths, role trees, keys'
/// inputs, records): freeing them one by one took 130 ms of a 1.5 s `layer plan` at 10,000
/// images, for memory the operating system takes back at exit anyway. The planning commands
/// (`plan`, `list`, `hash`, `explain`) only print what they computed and return an exit code,
/// after which `main` calls `std::process::exit`, so nothing is lost by not dropping: no
/// workspace type owns a lock, a temporary folder or unflushed output (stdout is flushed by
/// `out`). Never use this for values with such `Drop` duties (`Run`, held locks) or in
/// `build`, which runs for long and owns those.
pub fn no_teardown<T>(v: T) -> std::mem::ManuallyDrop<T> {
    std::mem::ManuallyDrop::new(v)
}

/// The remote cache of this run: `--remote URL`, else `LAYER_REMOTE`, else `[remote].url`;
/// none with `--no-remote` or when nothing names one. Trusted keys come from `[remote]`
/// only: a URL on the command line never brings its own trust.
pub fn remote(g: &Global, project: &Project) -> Result<Option<Remote>> {
    if g.no_remote {
        return Ok(None);
    }
    let url = g
        .remote
        .clone()
        .filter(|u| !u.is_empty())
        .or_else(|| std::env::var("LAYER_REMOTE").ok().filter(|u| !u.is_empty()))
        .or_else(|| project.remote.as_ref().map(|r| r.url.clone()));
    let Some(url) = url else {
        return Ok(None);
    };
    let trusted = project
        .remote
        .as_ref()
        .map(|r| r.trusted_keys.clone())
        .unwrap_or_default();
    Remote::open(&url, &trusted).map(Some)
}

/// [`remote`], for the commands that are about it (`push`, `pull`, `cache ls|verify
/// --remote`): none is an error.
pub fn required_remote(g: &Global, project: &Project) -> Result<Remote> {
    remote(g, project)?.ok_or_else(|| Error::Remote {
        kind: ErrorKind::RemoteConfig,
        message: if g.no_remote {
            "`--no-remote`: this command needs the remote cache".into()
        } else {
            "no remote cache: `layer.toml` has no `[remote]`".into()
        },
        hint: Some(
            "add `[remote]` with `url = \"s3://BUCKET/PREFIX\"` to `layer.toml`, or give `--remote URL`"
                .into(),
        ),
    })
}

/// The signing key `LAYER_SIGNING_KEY` names (a path, or the key itself): with one, a run
/// writes to the remote; without, it only reads.
pub fn signer() -> Result<Option<Signer>> {
    match std::env::var("LAYER_SIGNING_KEY") {
        Ok(v) if !v.trim().is_empty() => Signer::from_env_value(v.trim()).map(Some),
        _ => Ok(None),
    }
}

/// Connects the workspace to the run's remote cache: asks it for the images the local cache
/// lacks and warns of every record it refuses. A remote that cannot be reached is one warning
/// and no remote for the rest of the run, or with `--remote-required` the error.
pub fn connect(g: &Global, ws: &mut Workspace) -> Result<Option<Remote>> {
    let remote = if g.remote_required {
        Some(required_remote(g, &ws.project)?)
    } else {
        remote(g, &ws.project)?
    };
    let Some(remote) = remote else {
        return Ok(None);
    };
    match ws.ask_remote(&remote) {
        Ok(refused) => {
            if !g.quiet {
                for why in refused {
                    eprintln!("warning: {why}");
                }
            }
            Ok(Some(remote))
        }
        Err(e) if e.kind() == ErrorKind::RemoteUnreachable && !g.remote_required => {
            if !g.quiet {
                eprintln!("warning: {e}");
                // What to fix, when it is more than "it is down" (no credentials).
                if let Some(hint) = e.hint().filter(|h| h != crate::remote::UNREACHABLE_HINT) {
                    eprintln!("  hint: {hint}");
                }
                eprintln!("  note: going on with the local cache only (`--remote-required` makes this an error)");
            }
            Ok(None)
        }
        Err(e) => Err(e),
    }
}
