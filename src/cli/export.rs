//! `layer export`: a `rootfs` build written out as a tar archive, an OCI layout or a disk
//! image.

use std::path::PathBuf;

use clap::Args;

use super::args::{Global, StrategyArg};
use super::print::waiting;
use super::resolve::{open, resolve_targets};
use crate::error::{Error, ErrorKind, Result};
use crate::export::{self, ExportSpec, Format};
use crate::model::BackendKind;
use crate::record::{Lookup, Record};

/// The flags of `layer export`.
#[derive(Args, Debug)]
pub struct ExportArgs {
    /// IMAGE or IMAGE@VERSION [default: the build of the current inputs, else the newest]
    target: String,
    #[arg(long, value_name = "FORMAT", value_parser = clap::value_parser!(crate::export::Format))]
    format: Format,
    /// Where to write it (a file; a new or empty folder for `oci`; `-` streams a `tar` to
    /// standard output)
    #[arg(short = 'o', long = "output", value_name = "PATH")]
    output: PathBuf,
    /// Without a VERSION: the build of the current inputs under this strategy
    /// [default: `[project].strategy`]
    #[arg(long, value_enum)]
    strategy: Option<StrategyArg>,
}

pub fn run(g: &Global, args: &ExportArgs) -> Result<i32> {
    let (format, output) = (args.format, &args.output);
    let to_stdout = output.as_os_str() == "-";
    if to_stdout && format != Format::Tar {
        return Err(Error::Usage {
            kind: ErrorKind::ExportOutput,
            message: format!("a `{format}` export cannot be streamed to standard output (`-o -`)"),
            hint: Some(format!(
                "give a path (an OCI layout is a folder, a disk image a file), or stream a tar: `layer export {} --format tar -o -`",
                args.target
            )),
        });
    }
    let ws = open(g, args.strategy.map(crate::model::Strategy::from))?;
    let (name, spec) = crate::version::split_target(&args.target);
    let i = resolve_targets(&ws.project, &[name.to_string()])?[0];
    let records = ws.cache.records(name);
    let record = match (spec, &ws.lookups[i]) {
        (None, Lookup::Found(r)) => (**r).clone(),
        _ => crate::release::find(&records, name, spec)?.clone(),
    };
    exportable(name, &record)?;
    let _shared = ws
        .cache
        .lock_shared(&mut || waiting(g, "`layer cache gc`"))?;
    let backend = crate::backend::rootfs::RootfsBackend::new(&ws.project, &ws.scanned, &ws.cache);
    let log = std::sync::Mutex::new(std::io::stderr());
    let procs = crate::backend::Procs::default();
    let stack = backend
        .stack_of_record(&record, &log, &procs)
        .map_err(|message| Error::Usage {
            kind: ErrorKind::StackUnavailable,
            message,
            hint: None,
        })?;
    let mtime = record
        .built_at_time()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs() as i64);
    // What the build is, not what became of it: a status change must not change the bytes.
    let mut tags = record.tags.clone();
    tags.retain(|k, _| !crate::release::MUTABLE_TAGS.contains(&k.as_str()));
    let spec = ExportSpec {
        layers: &stack.trees,
        layer_names: &stack.names,
        image: name,
        version: &record.version,
        mtime,
        tags: &tags,
    };
    if to_stdout {
        export::export_tar_to(&spec, &mut std::io::stdout().lock())?;
    } else {
        export::export(&spec, format, output)?;
    }
    if !g.quiet {
        eprintln!(
            "exported {name} {} ({} layers) as {format} to {}",
            record.version,
            stack.trees.len(),
            if to_stdout {
                "standard output".to_string()
            } else {
                output.display().to_string()
            }
        );
    }
    Ok(0)
}

/// Only local `rootfs` builds can be written out.
fn exportable(name: &str, record: &Record) -> Result<()> {
    if record.artifact.path.is_none() {
        return Err(Error::Usage {
            kind: ErrorKind::NotRootfs,
            message: format!(
                "{name} {} is a remote artifact (`{}`): `layer export` writes out `rootfs` builds",
                record.version, record.artifact.id
            ),
            hint: None,
        });
    }
    if record.inputs.backend.kind != BackendKind::Rootfs {
        return Err(Error::Usage { kind: ErrorKind::NotRootfs,
            message: format!(
                "{name} {} was built by the `{}` backend: `layer export` writes out `rootfs` builds",
                record.version,
                record.inputs.backend.kind.as_str()
            ),
            hint: None,
        });
    }
    Ok(())
}
