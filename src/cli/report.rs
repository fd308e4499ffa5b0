//! `layer report`: an inventory of running instances against the cache's records.

use std::path::PathBuf;

use clap::Args;

use super::args::{parse_age, Global, TextFormat};
use super::print::out;
use super::resolve::cache_of;
use crate::error::Result;
use crate::report;
use crate::version;

/// The flags of `layer report`.
#[derive(Args, Debug)]
pub struct ReportArgs {
    /// The running instances: CSV with a header row, or a JSON array of objects
    #[arg(long, value_name = "FILE")]
    inventory: PathBuf,
    /// List the instances on a version of IMAGE older than VERSION, or built on one (repeatable)
    #[arg(long = "fixed-in", value_name = "IMAGE=VERSION", value_parser = parse_fix)]
    fixed_in: Vec<(String, String)>,
    /// Count the instances on image versions built more than AGE (`30d`) ago
    #[arg(long, value_name = "AGE", value_parser = parse_age)]
    max_age: Option<(std::time::Duration, String)>,
    #[arg(long, value_enum, default_value_t = TextFormat::Text)]
    format: TextFormat,
    /// The same as `--format json`
    #[arg(long, conflicts_with = "format")]
    json: bool,
}

/// `--fixed-in IMAGE=VERSION`, the version cut to its short form.
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

pub fn run(g: &Global, args: &ReportArgs) -> Result<i32> {
    let cache = cache_of(g)?;
    let instances = report::read_inventory(&args.inventory)?;
    let records = cache.all_records();
    let opts = report::Options {
        fixed_in: args.fixed_in.clone(),
        max_age: args.max_age.clone(),
        now: Some(std::time::SystemTime::now()),
    };
    let r = report::make(&instances, &records, &opts);
    let format = if args.json {
        TextFormat::Json
    } else {
        args.format
    };
    match format {
        TextFormat::Text => out(&report::text(&r)),
        TextFormat::Markdown => out(&report::markdown(&r)),
        TextFormat::Json => {
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
