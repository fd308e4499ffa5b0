//! `layer audit --osv PATH [--inventory FILE] [--exit-code]`: recorded builds, and the running
//! instances of an inventory, that carry a package version an OSV advisory affects.

use std::path::PathBuf;

use clap::Args;

use super::args::{Global, TextFormat};
use super::print::out;
use super::resolve::cache_of;
use crate::audit;
use crate::error::Result;

/// The flags of `layer audit`.
#[derive(Args, Debug)]
pub struct AuditArgs {
    /// OSV advisories: a JSON file, or a folder of them (read recursively); local files only
    #[arg(long, value_name = "FILE|DIR")]
    osv: PathBuf,
    /// Running instances (the file of `layer report`): list those to rebuild
    #[arg(long, value_name = "FILE")]
    inventory: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = TextFormat::Text)]
    format: TextFormat,
    /// Exit 1 when any build is affected
    #[arg(long)]
    exit_code: bool,
}

pub fn run(g: &Global, args: &AuditArgs) -> Result<i32> {
    let cache = cache_of(g)?;
    let advisories = audit::read_advisories(&args.osv)?;
    let instances = match &args.inventory {
        Some(path) => Some(crate::report::read_inventory(path)?),
        None => None,
    };
    let records = cache.all_records();
    let a = audit::make(&records, &advisories, instances.as_deref());
    if !g.quiet {
        for (at, what) in &a.unmatched {
            eprintln!("warning: {at}: {what}");
        }
    }
    match args.format {
        TextFormat::Text => out(&audit::text(&a))?,
        TextFormat::Markdown => out(&audit::markdown(&a))?,
        TextFormat::Json => out(&audit::json(&a))?,
    };
    Ok(i32::from(args.exit_code && !a.affected.is_empty()))
}
