//! The executor: runs the images a [`Plan`] marks `build`, in parallel topological order.
//!
//! The main thread owns the run: the `schedule::Scheduler` (each image's state and the ready
//! queue, plain data) and what each finished worker reported. Up to `-j` worker threads each
//! build one image (`worker::run_task`) and send the outcome back over a channel; the main
//! thread hands it to the scheduler, reports progress, and starts what is ready. An interrupt
//! cancels the running builds' processes and starts nothing more. At the end, each image's
//! [`ImageResult`] is made in one place, `image_result()`.

mod schedule;
mod result;
mod env;
mod log;
mod worker;
mod transfer;

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::Duration;

use crate::graph::{ImageId, ImageMap};
use crate::model::Strategy;
use crate::plan::{Action, Cached, Plan};
use crate::progress::Event;
use crate::record::{Lookup, Record};
use crate::workspace::Workspace;
use schedule::{Scheduler, Skip};
use worker::{Outcome, Task};

pub use env::{git_commit, resolve_secrets, Env, Options, Shared};
pub use result::{Done, ImageResult, Report};
pub use worker::origin_id;

/// Runs the plan's builds.
pub fn execute(env: &Env, plan: &Plan, opts: &Options) -> Report {
    let ws = env.ws;
    let pull = to_pull(env, plan, opts);
    // A pull is a step of the run as a build is: images built on it wait for it.
    let build: ImageMap<bool> = plan
        .images
        .iter()
        .zip(pull.values())
        .map(|(i, p)| i.action == Action::Build || *p)
        .collect();
    let mut schedule = Scheduler::new(
        &ws.graph.parent,
        &build,
        ws.strategy,
        opts.jobs,
        opts.keep_going,
    );
    // What each worker reported, by image.
    let mut outcomes: ImageMap<Option<Outcome>> = build.values().map(|_| None).collect();
    env.progress.start(build.values().filter(|b| **b).count());

    let (tx, rx) = mpsc::channel::<(ImageId, Outcome)>();
    let mut folders = WorkFolders::new(env.work_dir);
    let mut interrupted = None;
    std::thread::scope(|s| loop {
        let sig = env.interrupt.load(Ordering::SeqCst);
        if sig != 0 && interrupted.is_none() {
            interrupted = Some(sig);
            schedule.interrupt();
            env.procs.cancel();
        }
        while let Some(id) = schedule.start() {
            let task = task(ws, id, &outcomes, pull[id], opts, folders.take(id));
            let tx = tx.clone();
            s.spawn(move || {
                transfer::run_step(env, &task, opts, |outcome| {
                    let _ = tx.send((task.id, outcome));
                });
            });
        }
        if schedule.done() {
            break;
        }
        let (id, outcome) = match rx.recv_timeout(Duration::from_millis(50)) {
            Ok(r) => r,
            Err(mpsc::RecvTimeoutError::Timeout) => continue,
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        };
        folders.give_back(id);
        let name = &plan.images[id.index()].name;
        match &outcome {
            Outcome::Built(record, _, elapsed) => {
                env.progress.event(Event::Built {
                    image: name,
                    version: &record.version,
                    elapsed: *elapsed,
                });
                schedule.succeeded(id);
            }
            Outcome::Reused(record) => {
                env.progress.event(Event::Reused {
                    image: name,
                    version: &record.version,
                });
                schedule.succeeded(id);
            }
            Outcome::Pulled(record, elapsed, bytes) => {
                env.progress.event(Event::Pulled {
                    image: name,
                    version: &record.version,
                    elapsed: *elapsed,
                    bytes: *bytes,
                });
                schedule.succeeded(id);
            }
            Outcome::Failed { error, log, .. } => {
                if !schedule.interrupted() {
                    let tail = log.as_deref().map(log::log_tail).unwrap_or_default();
                    let log = log.as_ref().map(|l| l.display().to_string());
                    env.progress.event(Event::Failed {
                        image: name,
                        error,
                        log: log.as_deref(),
                        tail: &tail,
                    });
                }
                for d in schedule.failed(id) {
                    let skip = schedule.not_built(d).expect("skipped");
                    env.progress.event(Event::Skipped {
                        image: &plan.images[d.index()].name,
                        cause: &cause(skip, plan),
                    });
                }
            }
        }
        outcomes[id] = Some(outcome);
    });
    env.progress.finish();

    let images = outcomes
        .ids()
        .map(|id| {
            let outcome = outcomes[id].take();
            image_result(plan, id, &schedule, outcome, found(ws, id))
        })
        .collect();
    Report {
        images,
        interrupted,
    }
}

/// The images the run downloads from the remote cache: those it makes fresh that an image to
/// build stands on (deep: every one up its chain, as a layer stack needs them all), and with
/// `--pull` every one the plan made fresh from it.
fn to_pull(env: &Env, plan: &Plan, opts: &Options) -> ImageMap<bool> {
    let ws = env.ws;
    let remote_fresh = |id: ImageId| {
        env.remote.is_some() && plan.images[id.index()].cached == Some(Cached::Remote)
    };
    let mut pull: ImageMap<bool> = ws
        .graph
        .ids()
        .map(|id| opts.pull && remote_fresh(id))
        .collect();
    if ws.strategy == Strategy::Deep {
        for p in plan.to_build() {
            let id = ws.graph.index[&p.name];
            for a in ws.graph.chain(id) {
                if remote_fresh(a) {
                    pull[a] = true;
                }
            }
        }
    }
    pull
}

/// The record the plan found for image `id`: the local cache's, else the remote's.
fn found(ws: &Workspace, id: ImageId) -> Option<&Record> {
    match &ws.lookups[id.index()] {
        Lookup::Found(record) => Some(record),
        _ => ws.remote[id.index()].as_ref(),
    }
}

/// What a worker needs to build (or pull) image `id`, from the records as they stand: deep,
/// the parent's (built or pulled by this run, or found by the plan) or the pinned parent
/// build's; a reheat, the build it reheats.
fn task(
    ws: &Workspace,
    id: ImageId,
    outcomes: &ImageMap<Option<Outcome>>,
    pull: bool,
    opts: &Options,
    work: PathBuf,
) -> Task {
    let lookup = &ws.lookups[id.index()];
    let parent = match (&opts.reheat, ws.strategy) {
        (Some(from), _) => Some((**from).clone()),
        (None, Strategy::Deep) => ws.graph.parent[id]
            .and_then(|p| current_record(ws, outcomes, p).cloned())
            .or_else(|| ws.pins[id.index()].as_ref().map(|p| (*p.record).clone())),
        (None, Strategy::Shallow) => None,
    };
    Task {
        id,
        parent,
        recheck: !matches!(lookup, Lookup::Found(_)),
        pull,
        work,
    }
}

/// The builds' private folders of a run (`RUN/build-N`): a folder a build finished with
/// (emptied by its worker, or removed) goes to the next build that starts, so a run makes
/// about `-j` of them rather than one per build (see `worker::empty_work`).
struct WorkFolders<'a> {
    run: &'a Path,
    /// Folders no build holds, each absent or empty.
    free: Vec<PathBuf>,
    /// The folder each running build holds.
    held: std::collections::HashMap<ImageId, PathBuf>,
    made: usize,
}

impl<'a> WorkFolders<'a> {
    fn new(run: &'a Path) -> Self {
        WorkFolders {
            run,
            free: Vec::new(),
            held: std::collections::HashMap::new(),
            made: 0,
        }
    }

    /// A folder for image `id`'s build: a free one, or a new name.
    fn take(&mut self, id: ImageId) -> PathBuf {
        let work = self.free.pop().unwrap_or_else(|| {
            self.made += 1;
            self.run.join(format!("build-{}", self.made))
        });
        self.held.insert(id, work.clone());
        work
    }

    /// Image `id`'s build finished: its folder is free again if its worker left it empty (or
    /// removed it); one that is not stays where it is, for the run's end to remove.
    fn give_back(&mut self, id: ImageId) {
        let Some(work) = self.held.remove(&id) else {
            return;
        };
        let empty = match std::fs::read_dir(&work) {
            Ok(mut entries) => entries.next().is_none(),
            Err(e) => e.kind() == std::io::ErrorKind::NotFound,
        };
        if empty {
            self.free.push(work);
        }
    }
}

/// Image `id`'s record now: the one this run built or found, else the one the plan found.
fn current_record<'a>(
    ws: &'a Workspace,
    outcomes: &'a ImageMap<Option<Outcome>>,
    id: ImageId,
) -> Option<&'a Record> {
    match (
        outcomes[id].as_ref().and_then(Outcome::record),
        &ws.lookups[id.index()],
    ) {
        (Some(record), _) => Some(record),
        (None, Lookup::Found(record)) => Some(record),
        (None, _) => None,
    }
}

/// Why an image was not built, as its result and the progress line say it.
fn cause(skip: Skip, plan: &Plan) -> String {
    let name = |id: ImageId| &plan.images[id.index()].name;
    match skip {
        Skip::Failed(f) => format!("`{}` failed", name(f)),
        Skip::Interrupted => "interrupted".to_string(),
        Skip::NotStarted(Some(f)) => format!("not started: `{}` failed", name(f)),
        Skip::NotStarted(None) => "not started".to_string(),
    }
}

/// How image `id` ended: what its worker reported, or why it was not built, or what the plan
/// found for it.
fn image_result(
    plan: &Plan,
    id: ImageId,
    schedule: &Scheduler,
    outcome: Option<Outcome>,
    found: Option<&Record>,
) -> ImageResult {
    let image = &plan.images[id.index()];
    match outcome {
        Some(Outcome::Built(record, log, elapsed)) => {
            ImageResult::built(image, &record, &log, elapsed)
        }
        Some(Outcome::Reused(record)) => ImageResult::reused(image, &record),
        Some(Outcome::Pulled(record, elapsed, _)) => ImageResult::pulled(image, &record, elapsed),
        Some(Outcome::Failed {
            error,
            log,
            duration,
        }) => ImageResult::failed(image, error, log.as_deref(), duration),
        None => match (schedule.not_built(id), image.action, found) {
            (Some(skip), _, _) => ImageResult::skipped(image, cause(skip, plan)),
            (None, Action::Fresh, Some(record)) => ImageResult::fresh(image, record),
            (None, _, _) => ImageResult::skipped(image, "not selected".into()),
        },
    }
}
