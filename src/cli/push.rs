//! `layer push [TARGETS]`: the current builds of the targets (and, deep, of their ancestors)
//! that the remote cache does not have yet, uploaded and signed. Needs a signing key.

use clap::Args;

use super::args::Global;
use super::resolve::{open, required_remote, resolve_targets, signer};
use crate::error::{Error, ErrorKind, Result};
use crate::model::Strategy;
use crate::record::Lookup;
use crate::render::{transfer_text, Transfer, TransferOutcome};
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
                });
                continue;
            }
        };
        let outcome = match remote.push(record, &ws.cache, &signer) {
            Ok(true) => TransferOutcome::Pushed,
            Ok(false) => TransferOutcome::OnRemote,
            Err(e) if e.kind() == ErrorKind::RemoteUnreachable => return Err(e),
            Err(e) => TransferOutcome::Failed(e.to_string()),
        };
        rows.push(Transfer {
            name,
            version: Some(record.version.clone()),
            outcome,
        });
    }
    finish(g, &rows)
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
