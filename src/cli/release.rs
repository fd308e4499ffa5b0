//! `layer promote` and `layer revoke`: a build's release status changed, under the cache's
//! and the image's locks.

use clap::Args;

use super::args::Global;
use super::print::{out, waiting};
use super::resolve::{cache_in, project_root, resolve_targets};
use crate::decl;
use crate::error::{Error, ErrorKind, Result};
use crate::record::Lookup;
use crate::release::{Change, Status};
use crate::version;
use crate::workspace::Workspace;

/// The flags of `layer promote`.
#[derive(Args, Debug)]
pub struct PromoteArgs {
    /// IMAGE or IMAGE@VERSION (`1.0.4` or `1.0.4-20200229_0420`)
    #[arg(value_name = "IMAGE[@VERSION]")]
    target: String,
    /// Promote a build that has not been tested
    #[arg(long)]
    force: bool,
}

/// The argument of `layer revoke`: the build to revoke.
#[derive(Args, Debug)]
pub struct RevokeArgs {
    #[arg(value_name = "IMAGE@VERSION")]
    target: String,
}

pub fn promote(g: &Global, args: &PromoteArgs) -> Result<i32> {
    change(
        g,
        &args.target,
        false,
        Change::Promote { force: args.force },
    )
}

pub fn revoke(g: &Global, args: &RevokeArgs) -> Result<i32> {
    change(g, &args.target, true, Change::Revoke)
}

/// Applies `change` to the build `target` names; loads the project to check the image name.
fn change(g: &Global, target: &str, spec_needed: bool, change: Change) -> Result<i32> {
    let root = project_root(g)?;
    let project = decl::load(&root)?;
    let (image, spec) = version::split_target(target);
    resolve_targets(&project, &[image.to_string()])?;
    if spec_needed && spec.is_none() {
        return Err(Error::Usage {
            kind: ErrorKind::RevokeNeedsVersion,
            message: format!("`layer revoke` needs the version to revoke: `{image}@VERSION`"),
            hint: Some(format!("`layer versions {image}` lists the builds")),
        });
    }
    let cache = cache_in(g, &project.root);
    // No version: the build of the image's current inputs (what `layer list` shows), or the
    // newest build when there is none (or the project cannot be keyed, say an unresolvable pin).
    let current = match spec {
        Some(_) => None,
        None => Workspace::open(&root, g.cache.clone(), None)
            .ok()
            .and_then(|ws| {
                let i = ws.index(image)?;
                match &ws.lookups[i] {
                    Lookup::Found(r) => Some(r.version.clone()),
                    _ => None,
                }
            }),
    };
    let spec = spec.or(current.as_deref());
    let done = crate::cache::release::apply(&cache, image, spec, change, &mut || {
        waiting(g, "another run");
    })?;
    let v = &done.record.version;
    let mut line = if done.changed {
        format!(
            "{image} {v}: {} -> {}",
            done.from.as_str(),
            done.to.as_str()
        )
    } else {
        format!("{image} {v}: already {}", done.to.as_str())
    };
    if done.changed && done.from == Status::Candidate && done.to == Status::Released {
        line.push_str(" (forced: it was not tested)");
    }
    line.push('\n');
    out(&line)
}
