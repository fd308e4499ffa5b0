//! The commands about the life of a build after it: `promote`, `revoke`, `report` and
//! `cache ls|verify|gc`.

use std::fmt::Write;
use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::{out, parse_age, project_root, resolve_targets, Global, PlanFormat};
use crate::cache::{gc, Cache};
use crate::decl;
use crate::error::{Error, Result};
use crate::record::Lookup;
use crate::release::{self, Change};
use crate::report;
use crate::version;

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
            if crate::model::valid_name(i)
                && (version::valid_pin(v) || version::valid_version(v)) =>
        {
            Ok((i.to_string(), version::short(v).to_string()))
        }
        _ => Err(format!(
            "`{s}` is not IMAGE=VERSION: write, say, `base-linux=2.1.4`"
        )),
    }
}

#[derive(Subcommand, Debug)]
pub(super) enum CacheCommand {
    /// Every recorded build with its release status and artifact size
    Ls {
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Re-hash every local artifact; a corrupt one is moved aside and counts as missing
    Verify {
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Remove the builds that no current key, released or pinned version, or --keep needs
    Gc {
        /// Also keep the N newest builds of every image
        #[arg(long, value_name = "N", default_value_t = 0)]
        keep: usize,
        /// Say what would be removed, and remove nothing
        #[arg(short = 'n', long)]
        dry_run: bool,
        /// Fail instead of waiting when a build holds the cache
        #[arg(long)]
        no_wait: bool,
    },
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
    let (image, spec) = version::split_target(target);
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
    // No version: the build of the image's current inputs (what `layer list` shows), or the
    // newest build when there is none (or the project cannot be keyed, say an unresolvable pin).
    let current = match spec {
        Some(_) => None,
        None => crate::workspace::Workspace::open(&root, g.cache.clone(), None)
            .ok()
            .and_then(|ws| {
                let i = ws.index(image)?;
                match &ws.lookups[i] {
                    crate::record::Lookup::Found(r) => Some(r.version.clone()),
                    _ => None,
                }
            }),
    };
    let spec = spec.or(current.as_deref());
    let done = crate::cache::release::apply(&cache, image, spec, change, &mut || {
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

/// `1 build`, `2 builds`.
fn plural(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// `1.5 MiB`.
fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

pub(super) fn cache(g: &Global, cmd: &CacheCommand) -> Result<i32> {
    match cmd {
        CacheCommand::Ls { json } => {
            let cache = cache_of(g)?;
            let rows = cache.list();
            if *json {
                return out(&crate::render::json(&rows));
            }
            let cells: Vec<[String; 6]> = rows
                .iter()
                .map(|r| {
                    [
                        r.image.clone(),
                        r.version.clone(),
                        r.status.to_string(),
                        r.built_at.clone(),
                        match (&r.path, r.size) {
                            (None, _) => "remote".into(),
                            (Some(_), None) => "missing".into(),
                            (Some(_), Some(s)) => human(s),
                        },
                        r.artifact.clone(),
                    ]
                })
                .collect();
            let header = ["IMAGE", "VERSION", "STATUS", "BUILT", "SIZE", "ARTIFACT"];
            let mut w = header.map(str::len);
            for c in &cells {
                for (w, s) in w.iter_mut().zip(c) {
                    *w = (*w).max(s.len());
                }
            }
            let mut s = String::new();
            for c in std::iter::once(header.map(str::to_string)).chain(cells) {
                let mut line = String::new();
                for (k, (cell, w)) in c.iter().zip(w).enumerate() {
                    if k == 4 {
                        let _ = write!(line, "{cell:>w$}  ");
                    } else {
                        let _ = write!(line, "{cell:w$}  ");
                    }
                }
                s.push_str(line.trim_end());
                s.push('\n');
            }
            let total: u64 = rows.iter().filter_map(|r| r.size).sum();
            let images = rows
                .iter()
                .map(|r| &r.image)
                .collect::<std::collections::BTreeSet<_>>()
                .len();
            let _ = writeln!(
                s,
                "{} of {}; local artifacts: {}",
                plural(rows.len(), "build"),
                plural(images, "image"),
                human(total)
            );
            out(&s)
        }
        CacheCommand::Verify { json } => {
            let cache = cache_of(g)?;
            let results = cache.verify(&mut |what| waiting(g, what))?;
            let bad = results.iter().filter(|r| r.verdict.is_bad()).count();
            if *json {
                out(&crate::render::json(&results))?;
            } else {
                let w = results
                    .iter()
                    .map(|r| r.image.len() + r.version.len() + 1)
                    .max()
                    .unwrap_or(0);
                let mut s = String::new();
                for r in &results {
                    let name = format!("{} {}", r.image, r.version);
                    let _ = writeln!(s, "{name:w$}  {}", r.verdict.sentence());
                }
                let count = |f: &dyn Fn(&gc::Verdict) -> bool| {
                    results.iter().filter(|r| f(&r.verdict)).count()
                };
                let _ = writeln!(
                    s,
                    "{}: {} ok, {} corrupt, {} missing, {} remote, {} without a digest",
                    plural(results.len(), "build"),
                    count(&|v| *v == gc::Verdict::Ok),
                    count(&|v| matches!(v, gc::Verdict::Corrupt { .. })),
                    count(&|v| *v == gc::Verdict::Missing),
                    count(&|v| *v == gc::Verdict::Remote),
                    count(&|v| *v == gc::Verdict::NoDigest),
                );
                out(&s)?;
            }
            if bad > 0 && !g.quiet {
                eprintln!(
                    "error: {} failed verification; `layer plan` rebuilds the current ones",
                    plural(bad, "build")
                );
            }
            Ok(if bad > 0 { 1 } else { 0 })
        }
        CacheCommand::Gc {
            keep,
            dry_run,
            no_wait,
        } => {
            let root = project_root(g)?;
            let cache = Cache::new(g.cache.clone().unwrap_or_else(|| root.join("cache")));
            let Some(_lock) =
                cache.lock_exclusive(!no_wait, &mut || waiting(g, "running builds"))?
            else {
                return Err(Error::Cache {
                    path: cache.dir().to_path_buf(),
                    message:
                        "a build is using the cache; `layer cache gc` runs when it has finished"
                            .into(),
                });
            };
            // What the project needs now: the records of current keys and pinned parents.
            let ws = crate::workspace::Workspace::open(&root, g.cache.clone(), None)?;
            let mut roots = gc::Roots::new();
            for (i, l) in ws.lookups.iter().enumerate() {
                if let Lookup::Found(r) = l {
                    roots.insert((ws.project.images[i].name.clone(), r.version.clone()));
                }
            }
            for r in ws.pinned_records() {
                roots.insert((r.name.clone(), r.version.clone()));
            }
            let origins: Vec<_> = ws
                .project
                .origins
                .keys()
                .filter_map(|o| crate::key::origin_identity(&ws.project, o, &ws.scanned).ok())
                .collect();
            let report = cache.gc(&roots, &origins, *keep, *dry_run)?;
            let verb = if *dry_run { "would remove" } else { "removed" };
            let mut s = String::new();
            for b in &report.removed {
                let _ = writeln!(
                    s,
                    "{verb} {} {} ({}): {}",
                    b.image,
                    b.version,
                    b.status,
                    human(b.bytes)
                );
            }
            for p in &report.other_paths {
                let _ = writeln!(s, "{verb} {p}");
            }
            let _ = writeln!(
                s,
                "{} {} bytes ({}): {}, {}{}; kept {}",
                if *dry_run { "would free" } else { "freed" },
                report.bytes,
                human(report.bytes),
                plural(report.removed.len(), "build"),
                plural(report.other_paths.len(), "other file"),
                if report.dead_runs > 0 {
                    format!(", {}", plural(report.dead_runs, "dead run folder"))
                } else {
                    String::new()
                },
                plural(report.kept, "build")
            );
            out(&s)
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
