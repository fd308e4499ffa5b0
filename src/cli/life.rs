//! The commands about the life of a build after it: `promote`, `revoke`, `report` and
//! `cache ls|verify|gc`.

use std::path::PathBuf;

use clap::Args;

use super::{out, parse_age, project_root, resolve_targets, Global, PlanFormat};
use crate::cache::Cache;
use crate::decl;
use crate::error::{Error, Result};
use crate::release::{self, Change};
use crate::report;

#[derive(Args, Debug)]
pub(super) struct ReportArgs {
    /// The running instances: CSV with a header row, or a JSON array of objects
    #[arg(long, value_name = "FILE")]
    inventory: PathBuf,
    /// List the instances on a version of IMAGE older than VERSION, or built on one (repeatable)
    #[arg(long = "fixed-in", value_name = "IMAGE=VERSION", value_parser = parse_fix)]
    fixed_in: Vec<(String, String)>,
    /// Count the instances on image versions built more than AGE (`30d`) ago
    #[arg(long, value_name = "AGE", value_parser = parse_age)]
    max_age: Option<(std::time::Duration, String)>,
    #[arg(long, value_enum, default_value_t = PlanFormat::Text)]
    format: PlanFormat,
}

fn parse_fix(s: &str) -> std::result::Result<(String, String), String> {
    match s.split_once('=') {
        Some((i, v))
            if decl::valid_name(i) && (release::valid_pin(v) || release::valid_version(v)) =>
        {
            Ok((i.to_string(), release::short(v).to_string()))
        }
        _ => Err(format!(
            "`{s}` is not IMAGE=VERSION: write, say, `base-linux=2.1.4`"
        )),
    }
}

/// The cache of the project, or the one `--cache` names (which needs no project).
fn cache_of(g: &Global) -> Result<Cache> {
    match &g.cache {
        Some(c) => Ok(Cache::new(c)),
        None => Ok(Cache::new(project_root(g)?.join("cache"))),
    }
}

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

pub(super) fn report(g: &Global, args: &ReportArgs) -> Result<i32> {
    let cache = cache_of(g)?;
    let instances = report::read_inventory(&args.inventory)?;
    let records = cache.all_records();
    let opts = report::Options {
        fixed_in: args.fixed_in.clone(),
        max_age: args.max_age.clone(),
        now: Some(std::time::SystemTime::now()),
    };
    let r = report::make(&instances, &records, &opts);
    match args.format {
        PlanFormat::Text => out(&report::text(&r)),
        PlanFormat::Markdown => out(&report::markdown(&r)),
        PlanFormat::Json => {
            if !g.quiet {
                for (at, what) in &r.unmatched {
                    eprintln!("warning: {at}: {what}");
                }
                if !r.undated.is_empty() {
                    eprintln!(
                        "warning: {} on versions with no record: build date unknown",
                        report::instances(r.undated.len())
                    );
                }
            }
            out(&report::json(&r))
        }
    }
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
