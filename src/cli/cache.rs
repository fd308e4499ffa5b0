//! `layer cache ls|verify|gc`: inspect, re-hash and prune the cache.

use clap::{Args, Subcommand};

use super::args::{Global, Json};
use super::print::{out, waiting};
use super::resolve::{cache_in, cache_of, project_root, required_remote};
use crate::cache::gc;
use crate::error::{Error, ErrorKind, Result};
use crate::record::Lookup;
use crate::render;
use crate::workspace::Workspace;

/// `layer cache` and its subcommand.
#[derive(Args, Debug)]
pub struct CacheArgs {
    #[command(subcommand)]
    command: CacheCommand,
}

/// `layer cache ls|verify|gc`.
#[derive(Subcommand, Debug)]
enum CacheCommand {
    /// Every recorded build with its release status and artifact size; with --remote, every
    /// record of the remote cache with its signer and whether it is trusted
    Ls {
        #[command(flatten)]
        json: Json,
    },
    /// Re-hash every local artifact; a corrupt one is moved aside and counts as missing; with
    /// --remote, check every record's signature and every blob's digest on the remote cache
    Verify {
        #[command(flatten)]
        json: Json,
    },
    /// Remove the builds that no current key, released or pinned version, or --keep needs
    Gc(GcArgs),
}

/// The flags of `layer cache gc`.
#[derive(Args, Debug)]
struct GcArgs {
    /// Also keep the N newest builds of every image (at least 1 without --all)
    #[arg(long, value_name = "N", default_value_t = 1)]
    keep: usize,
    /// Keep only what the project needs now (current, released and pinned builds, their
    /// parents): images whose current build is missing lose every build
    #[arg(long, conflicts_with = "keep")]
    all: bool,
    /// Say what would be removed, and remove nothing
    #[arg(short = 'n', long)]
    dry_run: bool,
    /// Fail instead of waiting when a build holds the cache
    #[arg(long)]
    no_wait: bool,
    /// Also remove the apt downloads (lists and packages) shared by builds on the origins
    /// kept; those of origins gc removes always go
    #[arg(long)]
    apt: bool,
}

pub fn run(g: &Global, args: &CacheArgs) -> Result<i32> {
    match &args.command {
        CacheCommand::Ls { json } if g.remote.is_some() => remote_entries(g, json.json(), false),
        CacheCommand::Verify { json } if g.remote.is_some() => remote_entries(g, json.json(), true),
        CacheCommand::Ls { json } => ls(g, json.json()),
        CacheCommand::Verify { json } => verify(g, json.json()),
        CacheCommand::Gc(args) => run_gc(g, args),
    }
}

/// `layer cache ls --remote`, and with `verify` every blob downloaded and checked too:
/// exit code 1 when a record is not trusted.
fn remote_entries(g: &Global, json: bool, verify: bool) -> Result<i32> {
    let project = crate::decl::load(&project_root(g)?)?;
    let remote = required_remote(g, &project)?;
    let entries = if verify {
        remote.verify()?
    } else {
        remote.list()?
    };
    out(&if json {
        render::json(&entries)
    } else {
        render::remote_entries_text(&entries)
    })?;
    let bad = entries.iter().any(|e| e.verdict != crate::remote::TRUSTED);
    Ok(i32::from(verify && bad))
}

/// `layer cache ls`.
fn ls(g: &Global, json: bool) -> Result<i32> {
    let cache = cache_of(g)?;
    let rows = cache.list();
    out(&if json {
        render::json(&rows)
    } else {
        render::cache_ls_text(&rows)
    })
}

/// `layer cache verify`: exit code 1 when a build is corrupt or missing.
fn verify(g: &Global, json: bool) -> Result<i32> {
    let cache = cache_of(g)?;
    let results = cache.verify(&mut |what| waiting(g, what))?;
    let bad = results.iter().filter(|r| r.verdict.is_bad()).count();
    out(&if json {
        render::json(&results)
    } else {
        render::cache_verify_text(&results)
    })?;
    if bad > 0 && !g.quiet {
        eprintln!("{}", render::cache_verify_failed(bad));
    }
    Ok(if bad > 0 { 1 } else { 0 })
}

/// `layer cache gc`: under the cache-wide lock, keeps what the project needs now (the
/// records of current keys and pinned parents, the origins it uses) and removes the rest.
fn run_gc(g: &Global, args: &GcArgs) -> Result<i32> {
    if args.keep == 0 && !args.all {
        return Err(Error::Usage {
            kind: ErrorKind::GcKeepZero,
            message: "`--keep 0` would remove every build of an image whose current build is missing (after an uncommitted role edit, say)".into(),
            hint: Some("to remove those too, use `layer cache gc --all`".into()),
        });
    }
    let keep = if args.all { 0 } else { args.keep };
    let root = project_root(g)?;
    let cache = cache_in(g, &root);
    let Some(_lock) = cache.lock_exclusive(!args.no_wait, &mut || waiting(g, "running builds"))?
    else {
        return Err(Error::Cache {
            kind: ErrorKind::CacheBusy,
            path: cache.dir().to_path_buf(),
            message: "a build is using the cache; `layer cache gc` runs when it has finished"
                .into(),
        });
    };
    let ws = Workspace::open(&root, g.cache.clone(), None)?;
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
    let report = cache.gc(&roots, &origins, keep, args.dry_run, args.apt)?;
    out(&render::cache_gc_text(&report, args.dry_run))
}
