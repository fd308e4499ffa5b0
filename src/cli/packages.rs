//! `layer packages IMAGE[@VERSION]` and `layer packages --diff IMAGE@A IMAGE@B`: the installed
//! packages a build recorded, and what changed between two builds.

use clap::Args;

use super::args::{Global, TextFormat};
use super::print::out;
use super::resolve::{open, resolve_targets};
use crate::error::{Error, ErrorKind, Result};
use crate::packages::Manifest;
use crate::record::{Lookup, Record};
use crate::workspace::Workspace;

/// The flags of `layer packages`.
#[derive(Args, Debug)]
pub struct PackagesArgs {
    /// IMAGE or IMAGE@VERSION [default: the build of the current inputs, else the newest]
    #[arg(required_unless_present = "diff", conflicts_with = "diff")]
    target: Option<String>,
    /// What changed from build A to build B (each IMAGE or IMAGE@VERSION)
    #[arg(long, num_args = 2, value_names = ["A", "B"])]
    diff: Option<Vec<String>>,
    #[arg(long, value_enum, default_value_t = TextFormat::Text)]
    format: TextFormat,
}

/// The build `target` names (`IMAGE` or `IMAGE@VERSION`): without a version, the build of the
/// image's current inputs, else its newest.
pub(super) fn find_build(ws: &Workspace, target: &str) -> Result<Record> {
    let (name, spec) = crate::version::split_target(target);
    let i = resolve_targets(&ws.project, &[name.to_string()])?[0];
    let records = ws.cache.records(name);
    Ok(match (spec, &ws.lookups[i]) {
        (None, Lookup::Found(r)) => (**r).clone(),
        _ => crate::release::find(&records, name, spec)?.clone(),
    })
}

/// The manifest of a build, or why it has none.
pub(super) fn manifest_of(r: &Record) -> Result<&Manifest> {
    r.packages.as_ref().ok_or_else(|| {
        let why = match r.inputs.backend.kind {
            crate::model::BackendKind::Rootfs => "its image has no package database layer reads (dpkg's, apk's or rpm's `rpmdb.sqlite`), or it was built before layer recorded packages",
            _ => "only `rootfs` builds record their packages",
        };
        Error::Usage {
            kind: ErrorKind::NoManifest,
            message: format!("{} {} has no package manifest: {why}", r.name, r.version),
            hint: Some(format!(
                "a build of a `debian` or `tar` origin with dpkg, apk or rpm (≥ 4.16) records one; rebuild with `layer build --force {}`",
                r.name
            )),
        }
    })
}

pub fn run(g: &Global, args: &PackagesArgs) -> Result<i32> {
    let ws = open(g, None)?;
    if let Some(pair) = &args.diff {
        let a = find_build(&ws, &pair[0])?;
        let b = find_build(&ws, &pair[1])?;
        let d = crate::packages::diff(&manifest_of(&a)?.packages, &manifest_of(&b)?.packages);
        let (from, to) = (
            format!("{} {}", a.name, a.version),
            format!("{} {}", b.name, b.version),
        );
        match args.format {
            TextFormat::Json => out(&crate::render::json(&d))?,
            _ => out(&crate::render::packages_diff_text(&d, &from, &to))?,
        };
        return Ok(0);
    }
    let target = args.target.as_deref().expect("clap requires a target");
    let r = find_build(&ws, target)?;
    let m = manifest_of(&r)?;
    match args.format {
        TextFormat::Json => out(&crate::render::json(m))?,
        _ => out(&crate::render::packages_text(m))?,
    };
    Ok(0)
}
