//! `layer pull [TARGETS]`: the remote cache's trusted builds of the current keys of the
//! targets (and, deep, of their ancestors) that the local cache lacks, downloaded and
//! verified.

use std::time::Instant;

use clap::Args;

use super::args::Global;
use super::push::{finish, moved, selected, transfer_progress};
use super::resolve::{open, required_remote, resolve_targets};
use crate::error::{ErrorKind, Result};
use crate::progress::{Event, TransferMeter};
use crate::record::Lookup;
use crate::remote::Found;
use crate::render::{Transfer, TransferOutcome};

/// The flags of `layer pull`.
#[derive(Args, Debug)]
pub struct PullArgs {
    /// Images to pull, with their ancestors in deep builds [default: all]
    targets: Vec<String>,
}

pub fn run(g: &Global, args: &PullArgs) -> Result<i32> {
    let ws = open(g, None)?;
    let remote = required_remote(g, &ws.project)?;
    let images = selected(&ws, &resolve_targets(&ws.project, &args.targets)?);
    let missing: Vec<usize> = images
        .iter()
        .copied()
        .filter(|&i| !ws.cached_locally(i))
        .collect();
    let wanted: Vec<(String, String)> = missing
        .iter()
        .map(|&i| (ws.project.images[i].name.clone(), ws.keys[i].key.clone()))
        .collect();
    let answers = remote.lookup_all(&wanted)?;
    let mut found = missing.iter().copied().zip(answers);
    let progress = transfer_progress(g);
    let mut rows = Vec::new();
    for i in images {
        let name = ws.project.images[i].name.clone();
        if ws.cached_locally(i) {
            let version = match &ws.lookups[i] {
                Lookup::Found(r) => Some(r.version.clone()),
                _ => None,
            };
            rows.push(Transfer {
                name,
                version,
                outcome: TransferOutcome::Local,
                moved: None,
            });
            continue;
        }
        let (_, answer) = found.next().expect("an answer per missing image");
        let (version, outcome, moved) = match answer {
            Found::Miss => (None, TransferOutcome::NotOnRemote, None),
            Found::Refused(why) => {
                if !g.quiet {
                    eprintln!("warning: {why}");
                }
                (None, TransferOutcome::Refused(why), None)
            }
            Found::Hit(record) => {
                let _lock = ws.cache.lock_image(&name, &mut || {
                    super::print::waiting(g, &format!("another layer run (`{name}`)"));
                })?;
                progress.event(Event::Pulling {
                    image: &name,
                    version: &record.version,
                });
                let started = Instant::now();
                let meter = TransferMeter::new(&*progress, &name);
                let pulled = remote.pull_metered(&record, &ws.cache, &meter);
                let moved = moved(&meter, started);
                progress.event(Event::Pulled {
                    image: &name,
                    version: &record.version,
                    elapsed: started.elapsed(),
                    bytes: moved.bytes,
                });
                let (outcome, moved) = match pulled {
                    Ok(()) => (TransferOutcome::Pulled, Some(moved)),
                    Err(e) if e.kind() == ErrorKind::RemoteUnreachable => return Err(e),
                    Err(e) => (TransferOutcome::Failed(e.to_string()), None),
                };
                (Some(record.version.clone()), outcome, moved)
            }
        };
        rows.push(Transfer {
            name,
            version,
            outcome,
            moved,
        });
    }
    progress.finish();
    finish(g, &rows)
}
