//! The commands about the life of a build after it: `promote`, `revoke`, `report` and
//! `cache ls|verify|gc`.

use super::{out, project_root, resolve_targets, Global};
use crate::cache::Cache;
use crate::decl;
use crate::error::{Error, Result};
use crate::release::{self, Change};

fn waiting(g: &Global, what: &str) {
    if !g.quiet {
        eprintln!("waiting for {what} to finish with the cache");
    }
}

/// `layer promote` / `layer revoke`: loads the project to check the image name.
fn change(g: &Global, target: &str, spec_needed: bool, change: Change) -> Result<i32> {
    let root = project_root(g)?;
    let project = decl::load(&root)?;
    let (image, spec) = release::split_target(target);
    resolve_targets(&project, &[image.to_string()])?;
    if spec_needed && spec.is_none() {
        return Err(Error::Usage {
            message: format!("`layer revoke` needs the version to revoke: `{image}@VERSION`"),
            hint: Some(format!("`layer versions {image}` lists the builds")),
        });
    }
    let cache = Cache::new(
        g.cache
            .clone()
            .unwrap_or_else(|| project.root.join("cache")),
    );
    let done = release::apply(&cache, image, spec, change, &mut || {
        waiting(g, "another run")
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
    if done.changed
        && done.from == release::Status::Candidate
        && done.to == release::Status::Released
    {
        line.push_str(" (forced: it was not tested)");
    }
    line.push('\n');
    out(&line)
}

pub(super) fn promote(g: &Global, target: &str, force: bool) -> Result<i32> {
    change(g, target, false, Change::Promote { force })
}

pub(super) fn revoke(g: &Global, target: &str) -> Result<i32> {
    change(g, target, true, Change::Revoke)
}

/// `warning: \`app\`: pinned base-linux 2.1.3 is behind 2.1.5`, on stderr, for every pinned
/// image a newer released parent build exists for.
pub(super) fn pin_warnings(g: &Global, ws: &crate::workspace::Workspace) {
    if g.quiet {
        return;
    }
    for (i, pin) in ws.pins.iter().enumerate() {
        if let Some(w) = pin.as_ref().and_then(|p| p.warning()) {
            eprintln!("warning: `{}`: {w}", ws.project.images[i].name);
        }
    }
}
