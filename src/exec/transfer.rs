//! The remote cache's part of a run, around a worker's build: an image the remote makes fresh
//! is pulled (downloaded and verified into the local cache) instead of built, and, with a
//! signing key, each new build is pushed as soon as it is recorded. Neither can spoil a run:
//! a pull that fails falls back to building the image (when a builder for it was made), and
//! a push that fails is a warning.

use std::time::Instant;

use super::env::{Env, Options};
use super::worker::{run_task, Outcome, Task};
use crate::model::Strategy;
use crate::progress::{Event, TransferMeter};
use crate::record::{Lookup, Record};

/// One step of a run on a worker thread: a pull, or a build. Its outcome goes to `report`
/// as soon as it is known, so that the images waiting for it start; then a new build is
/// pushed (the run ends only when its workers have).
pub(super) fn run_step(env: &Env, task: &Task, opts: &Options, report: impl FnOnce(Outcome)) {
    let outcome = if task.pull {
        pull(env, task, opts)
    } else {
        run_task(env, task, opts)
    };
    let built = match &outcome {
        Outcome::Built(record, ..) => Some(record.clone()),
        _ => None,
    };
    report(outcome);
    if let Some(record) = built {
        push(env, &record);
    }
}

/// Downloads the remote's record of the image and what it names, under the image's lock.
fn pull(env: &Env, task: &Task, opts: &Options) -> Outcome {
    let ws = env.ws;
    let i = task.id.index();
    let image = &ws.project.images[i];
    let (Some(shared), Some(record)) = (&env.remote, &ws.remote[i]) else {
        unreachable!("the executor pulls only images the remote makes fresh")
    };
    // Deep: the remote's build stands on one parent build; when this run stands on another
    // (the parent's pull failed and it was built here), the image is built too.
    if ws.strategy == Strategy::Deep {
        if let Some(parent) = &task.parent {
            if record.parent.as_ref().map(|p| &p.version) != Some(&parent.version) {
                let why = format!(
                    "the remote's build of `{}` stands on another build of `{}` than this run's",
                    image.name, parent.name
                );
                return build_instead(env, task, opts, &why);
            }
        }
    }
    let started = Instant::now();
    let meter = TransferMeter::new(env.progress, &image.name);
    let pulled = {
        let _lock = match ws.cache.lock_image(&image.name, &mut || {
            env.progress.event(Event::Waiting { image: &image.name });
        }) {
            Ok(l) => l,
            Err(e) => {
                return Outcome::Failed {
                    error: e.to_string(),
                    log: None,
                    duration: started.elapsed(),
                }
            }
        };
        if let Lookup::Found(r) = ws.cache.lookup(&image.name, &record.key) {
            if ws.cache.artifact_exists(&r) {
                return Outcome::Reused(r);
            }
        }
        env.progress.event(Event::Pulling {
            image: &image.name,
            version: &record.version,
        });
        shared.remote.pull_metered(record, &ws.cache, &meter)
    };
    match pulled {
        Ok(()) => Outcome::Pulled(Box::new(record.clone()), started.elapsed(), meter.bytes()),
        Err(e) => build_instead(
            env,
            task,
            opts,
            &format!("pull of `{}` failed: {e}", image.name),
        ),
    }
}

/// Builds an image the plan meant to pull, with a warning saying `why`; fails it when the
/// run has no builder for its backend (it was made for the images to build only).
fn build_instead(env: &Env, task: &Task, opts: &Options, why: &str) -> Outcome {
    let ws = env.ws;
    let image = &ws.project.images[task.id.index()];
    if !env
        .builders
        .contains_key(&ws.project.backend_of(image).name)
    {
        return Outcome::Failed {
            error: format!("{why}; it cannot be built in this run (no builder for its backend)"),
            log: None,
            duration: std::time::Duration::ZERO,
        };
    }
    env.progress.event(Event::Warning {
        message: &format!("{why}: building it instead"),
    });
    run_task(
        env,
        &Task {
            pull: false,
            recheck: true,
            ..task.clone()
        },
        opts,
    )
}

/// Pushes a new build when the run has a signing key; a failure is a warning.
fn push(env: &Env, record: &Record) {
    let Some(shared) = &env.remote else {
        return;
    };
    let Some(signer) = shared.signer else {
        return;
    };
    env.progress.event(Event::Pushing {
        image: &record.name,
        version: &record.version,
    });
    let started = Instant::now();
    let meter = TransferMeter::new(env.progress, &record.name);
    match shared
        .remote
        .push_metered(record, &env.ws.cache, signer, &meter)
    {
        Ok(true) => env.progress.event(Event::Pushed {
            image: &record.name,
            version: &record.version,
            elapsed: started.elapsed(),
            bytes: meter.bytes(),
        }),
        // The remote already has a build of this key (another runner was first): fine.
        Ok(false) => env.progress.event(Event::NotPushed {
            image: &record.name,
            version: &record.version,
            error: None,
        }),
        Err(e) => env.progress.event(Event::NotPushed {
            image: &record.name,
            version: &record.version,
            error: Some(&e.to_string()),
        }),
    }
}
