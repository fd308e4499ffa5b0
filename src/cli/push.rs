//! `layer push [TARGETS]`: the current builds of the targets (and, deep, of their ancestors)
//! that the remote cache does not have yet, uploaded and signed. Needs a signing key.

use std::io::IsTerminal;
use std::time::Instant;

use clap::Args;

use super::args::Global;
use super::resolve::{open, required_remote, resolve_targets, signer};
use crate::error::{Error, ErrorKind, Result};
use crate::model::Strategy;
use crate::progress::{Bars, Event, Plain, Progress, TransferMeter};
use crate::record::Lookup;
use crate::render::{transfer_text, Moved, Transfer, TransferOutcome};
use crate::workspace::Workspace;

/// The flags of `layer push`.
#[derive(Args, Debug)]
pub struct PushArgs {
    /// Images to push, with their ancestors in deep builds [default: all]
    targets: Vec<String>,
}

pub fn run(g: &Global, args: &PushArgs) -> Result<i32> {
    let ws = open(g, None)?;
    let remote = required_remote(g, &ws.project)?;
    let Some(signer) = signer()? else {
        return Err(Error::Remote {
            kind: ErrorKind::SigningKey,
            message: "`layer push` needs a signing key: `LAYER_SIGNING_KEY` is not set".into(),
            hint: Some(
                "set `LAYER_SIGNING_KEY` to the key file `layer keygen` wrote, or to the key itself"
                    .into(),
            ),
        });
    };
    let progress = transfer_progress(g);
    let mut rows = Vec::new();
    for i in selected(&ws, &resolve_targets(&ws.project, &args.targets)?) {
        let name = ws.project.images[i].name.clone();
        let record = match &ws.lookups[i] {
            Lookup::Found(r) if ws.cached_locally(i) => r,
            _ => {
                rows.push(Transfer {
                    name,
                    version: None,
                    outcome: TransferOutcome::NotBuilt,
                    moved: None,
                });
                continue;
            }
        };
        progress.event(Event::Pushing {
            image: &name,
            version: &record.version,
        });
        let started = Instant::now();
        let meter = TransferMeter::new(&*progress, &name);
        let pushed = remote.push_metered(record, &ws.cache, &signer, &meter);
        let moved = moved(&meter, started);
        // Ends the transfer's bar.
        progress.event(match &pushed {
            Ok(true) => Event::Pushed {
                image: &name,
                version: &record.version,
                elapsed: started.elapsed(),
                bytes: moved.bytes,
            },
            _ => Event::NotPushed {
                image: &name,
                version: &record.version,
                error: None,
            },
        });
        let outcome = match pushed {
            Ok(true) => TransferOutcome::Pushed,
            Ok(false) => TransferOutcome::OnRemote,
            Err(e) if e.kind() == ErrorKind::RemoteUnreachable => return Err(e),
            Err(e) => TransferOutcome::Failed(e.to_string()),
        };
        rows.push(Transfer {
            name,
            version: Some(record.version.clone()),
            moved: matches!(outcome, TransferOutcome::Pushed).then_some(moved),
            outcome,
        });
    }
    progress.finish();
    finish(g, &rows)
}

/// Bars of the transfers on a terminal (their closing lines are the command's table);
/// nothing otherwise.
pub(super) fn transfer_progress(g: &Global) -> Box<dyn Progress> {
    if !g.no_progress && !g.quiet && std::io::stderr().is_terminal() {
        Box::new(Bars::transfers())
    } else {
        Box::new(Plain { quiet: true })
    }
}

/// What `meter` counted since `started`.
pub(super) fn moved(meter: &TransferMeter, started: Instant) -> Moved {
    Moved {
        bytes: meter.bytes(),
        millis: started.elapsed().as_millis() as u64,
    }
}

/// The targets by index in topological order, with their ancestors in deep builds; every
/// image when there are no targets.
pub(super) fn selected(ws: &Workspace, targets: &[usize]) -> Vec<usize> {
    let n = ws.project.images.len();
    let mut keep = vec![targets.is_empty(); n];
    for &t in targets {
        keep[t] = true;
        if ws.strategy == Strategy::Deep {
            for a in ws.graph.chain(crate::graph::ImageId::new(t)) {
                keep[a.index()] = true;
            }
        }
    }
    (0..n).filter(|&i| keep[i]).collect()
}

/// Prints what was moved on stderr; exit code 1 when a transfer failed.
pub(super) fn finish(g: &Global, rows: &[Transfer]) -> Result<i32> {
    if !g.quiet {
        eprint!("{}", transfer_text(rows));
    }
    let failed = rows
        .iter()
        .any(|r| matches!(r.outcome, TransferOutcome::Failed(_)));
    Ok(i32::from(failed))
}
