//! `layer sbom IMAGE[@VERSION] --format spdx-json|cyclonedx-json [-o FILE]`.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use super::args::Global;
use super::packages::{find_build, manifest_of};
use super::print::out;
use super::resolve::open;
use crate::error::Result;
use crate::record::Record;
use crate::render::SbomInput;

/// `--format` of `layer sbom`.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum SbomFormat {
    /// SPDX 2.3, JSON
    SpdxJson,
    /// CycloneDX 1.5, JSON
    CyclonedxJson,
}

/// The flags of `layer sbom`.
#[derive(Args, Debug)]
pub struct SbomArgs {
    /// IMAGE or IMAGE@VERSION [default: the build of the current inputs, else the newest]
    target: String,
    #[arg(long, value_enum)]
    format: SbomFormat,
    /// Write the document to FILE (atomically) instead of stdout
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    output: Option<PathBuf>,
}

/// The builds `r` was made on, nearest first, as far as the cache still holds them.
fn chain_below(cache: &crate::cache::Cache, r: &Record) -> Vec<Record> {
    let mut chain: Vec<Record> = Vec::new();
    let mut next = r.parent.clone();
    while let Some(p) = next {
        let Some(found) = cache
            .records(&p.name)
            .into_iter()
            .find(|x| x.key == p.key && x.version == p.version)
        else {
            break;
        };
        next = found.parent.clone();
        chain.push(found);
    }
    chain
}

pub fn run(g: &Global, args: &SbomArgs) -> Result<i32> {
    let ws = open(g, None)?;
    let r = find_build(&ws, &args.target)?;
    let manifest = manifest_of(&r)?;
    let chain = chain_below(&ws.cache, &r);
    let input = SbomInput {
        record: &r,
        manifest,
        chain: &chain,
        tool_version: env!("CARGO_PKG_VERSION"),
    };
    let doc = match args.format {
        SbomFormat::SpdxJson => crate::render::spdx_json(&input),
        SbomFormat::CyclonedxJson => crate::render::cyclonedx_json(&input),
    };
    match &args.output {
        Some(path) => crate::fsutil::write_atomic(path, doc.as_bytes())?,
        None => {
            out(&doc)?;
        }
    }
    Ok(0)
}
