//! The executor: runs the images a [`Plan`] marks `build`, in parallel topological order.
//!
//! The main thread owns the state and a ready queue; up to `-j` worker threads each build one
//! image and send the result back over a channel. Deep: an image is ready once its parent is
//! recorded. Shallow: every image is ready at once. Without `-k`, the first failure starts no
//! new build and lets the running ones finish (and be recorded); with `-k`, every image that
//! does not depend on a failure is built.
//!
//! A worker takes the image's lock in the cache (an OS lock, so a killed holder frees it),
//! checks again whether another run recorded the key meanwhile, numbers the version, runs the
//! backend with its output going through the secret redactor into the image's log, verifies
//! the artifact, and only then writes the record.

use std::collections::{BTreeMap, BinaryHeap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{mpsc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;

use crate::backend::redact::Redactor;
use crate::backend::{Builder, Built, Job, JobRole, Procs};
use crate::error::{Error, Result};
use crate::graph::ImageId;
use crate::model::{OriginSource, Project, Strategy};
use crate::plan::{Action, Plan};
use crate::progress::{Event, Progress};
use crate::record::{Artifact, Lookup, ParentRef, Record, RECORD_FORMAT};
use crate::workspace::Workspace;

#[derive(Debug, Clone)]
pub struct Options {
    pub jobs: usize,
    pub keep_going: bool,
    pub force: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Done {
    Built,
    Fresh,
    Failed,
    Skipped,
}

/// What became of one image; `layer build --json` prints these.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImageResult {
    pub name: String,
    pub key: String,
    pub action: Done,
    pub version: Option<String>,
    pub artifact: Option<String>,
    pub duration_ms: Option<u64>,
    pub log: Option<String>,
    /// Skipped: why (`parent \`app\` failed`, `not selected`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
    /// Failed: the one-line reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug)]
pub struct Report {
    pub images: Vec<ImageResult>,
    /// The signal that interrupted the run.
    pub interrupted: Option<i32>,
}

impl Report {
    pub fn count(&self, d: Done) -> usize {
        self.images.iter().filter(|i| i.action == d).count()
    }

    /// SPEC §5.2, and 128 + the signal after an interrupt.
    pub fn exit_code(&self) -> i32 {
        match self.interrupted {
            Some(sig) => 128 + sig,
            None if self.count(Done::Failed) > 0 => 1,
            None => 0,
        }
    }
}

/// What the executor needs besides the plan.
pub struct Env<'a> {
    pub ws: &'a Workspace,
    /// Builders by backend name.
    pub builders: &'a BTreeMap<String, Box<dyn Builder + 'a>>,
    pub progress: &'a dyn Progress,
    pub procs: &'a Procs,
    /// Set to a signal number by the signal handler.
    pub interrupt: &'a AtomicI32,
    /// The run's private work folder.
    pub work_dir: &'a Path,
    /// The `Commit` tag.
    pub commit: String,
    /// Per image index: secret variable name and value.
    pub secrets: Vec<Vec<(String, String)>>,
}

/// Reads the `[secrets]` of the images to build from the environment; a missing variable is
/// an error before anything starts.
pub fn resolve_secrets(project: &Project, plan: &Plan) -> Result<Vec<Vec<(String, String)>>> {
    let mut out = vec![Vec::new(); project.images.len()];
    let mut missing = Vec::new();
    for (i, img) in project.images.iter().enumerate() {
        if plan.images[i].action != Action::Build {
            continue;
        }
        for (var, env) in &img.secrets {
            match std::env::var(env) {
                Ok(v) => out[i].push((var.clone(), v)),
                Err(_) => missing.push(format!("`{env}` (secret `{var}` of `{}`)", img.name)),
            }
        }
    }
    if !missing.is_empty() {
        return Err(Error::Usage {
            message: format!("secret variables are not set: {}", missing.join(", ")),
            hint: Some("export them in the environment that runs `layer build`".into()),
        });
    }
    Ok(out)
}

/// The `Commit` tag: `git rev-parse HEAD`, with `-dirty` when the work tree differs (the
/// cache folder, which layer itself writes, does not count); `none` outside a git checkout.
pub fn git_commit(root: &Path, cache_dir: &Path) -> String {
    let git = |args: &[&str]| {
        Command::new("git")
            .arg("-C")
            .arg(root)
            .args(args)
            .env("GIT_OPTIONAL_LOCKS", "0")
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    match git(&["rev-parse", "HEAD"]) {
        Some(head) if !head.is_empty() => {
            let exclude = cache_dir
                .canonicalize()
                .ok()
                .and_then(|c| {
                    c.strip_prefix(root)
                        .ok()
                        .map(|r| format!(":(exclude){}", r.display()))
                })
                .filter(|e| e != ":(exclude)");
            let mut args = vec!["status", "--porcelain", "--", "."];
            if let Some(e) = &exclude {
                args.push(e);
            }
            let dirty = git(&args).is_some_and(|s| !s.is_empty());
            if dirty {
                format!("{head}-dirty")
            } else {
                head
            }
        }
        _ => "none".into(),
    }
}

/// A readable id of an origin, for `LAYER_SOURCE` and the `Origin` tag.
pub fn origin_id(project: &Project, name: &str) -> String {
    let Some(o) = project.origins.get(name) else {
        return name.to_string();
    };
    match &o.source {
        OriginSource::Id { id } => id.clone(),
        OriginSource::Resolve { .. } => project
            .lock
            .origins
            .get(name)
            .and_then(|l| l.id.clone())
            .unwrap_or_default(),
        OriginSource::Busybox { path } => format!("busybox:{}", path.display()),
        OriginSource::TarFile { path } => format!("tar:{path}"),
        OriginSource::TarUrl { url, .. } => url.clone(),
        OriginSource::Debian { suite, variant, .. } => format!("debian:{suite}/{variant}"),
    }
}

/// `YYYYMMDD_HHMM` and RFC 3339 of a moment, in UTC.
fn stamps(t: SystemTime) -> (String, String) {
    let rfc = humantime::format_rfc3339_seconds(t).to_string();
    let digits: String = rfc.chars().filter(char::is_ascii_digit).collect();
    (format!("{}_{}", &digits[..8], &digits[8..12]), rfc)
}

/// Everything a worker needs for one image, prepared by the main thread.
struct Task {
    index: usize,
    parent: Option<Record>,
    /// The plan found no record: another run may have built the key since.
    recheck: bool,
}

enum Outcome {
    Built(Box<Record>, PathBuf, Duration),
    Reused(Box<Record>),
    Failed {
        error: String,
        log: Option<PathBuf>,
        duration: Duration,
    },
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Waiting,
    Running,
    Finished,
}

/// Runs the plan's builds.
pub fn execute(env: &Env, plan: &Plan, opts: &Options) -> Report {
    let ws = env.ws;
    let g = &ws.graph;
    let n = plan.images.len();
    let deep = ws.strategy == Strategy::Deep;
    let to_build: Vec<bool> = plan
        .images
        .iter()
        .map(|i| i.action == Action::Build)
        .collect();
    let mut records: Vec<Option<Record>> = ws
        .lookups
        .iter()
        .map(|l| match l {
            Lookup::Found(r) => Some((**r).clone()),
            _ => None,
        })
        .collect();
    let mut results: Vec<Option<ImageResult>> = vec![None; n];
    let mut state = vec![State::Waiting; n];

    // Priority: the longest chain of builds below an image first, then topological order.
    let mut height = vec![0usize; n];
    for i in (0..n).rev() {
        if deep {
            if let Some(p) = g.parent[ImageId::new(i)].map(ImageId::index) {
                if to_build[i] && to_build[p] {
                    height[p] = height[p].max(height[i] + 1);
                }
            }
        }
    }
    let mut ready = BinaryHeap::new();
    for i in 0..n {
        let waits_for_parent =
            deep && g.parent[ImageId::new(i)].is_some_and(|p| to_build[p.index()]);
        if to_build[i] && !waits_for_parent {
            ready.push((height[i], std::cmp::Reverse(i)));
        }
    }
    env.progress.start(to_build.iter().filter(|b| **b).count());

    let (tx, rx) = mpsc::channel::<(usize, Outcome)>();
    let mut first_failure: Option<usize> = None;
    let mut interrupted = None;
    std::thread::scope(|s| {
        let mut running = 0usize;
        let mut stop = false;
        loop {
            let sig = env.interrupt.load(Ordering::SeqCst);
            if sig != 0 && interrupted.is_none() {
                interrupted = Some(sig);
                stop = true;
                env.procs.cancel();
            }
            while !stop && running < opts.jobs.max(1) {
                let Some((_, std::cmp::Reverse(i))) = ready.pop() else {
                    break;
                };
                state[i] = State::Running;
                running += 1;
                let task = Task {
                    index: i,
                    parent: if deep {
                        g.parent[ImageId::new(i)]
                            .and_then(|p| records[p.index()].clone())
                            .or_else(|| ws.pins[i].as_ref().map(|p| (*p.record).clone()))
                    } else {
                        None
                    },
                    recheck: !matches!(ws.lookups[i], Lookup::Found(_)),
                };
                let tx = tx.clone();
                s.spawn(move || {
                    let outcome = run_task(env, &task, opts);
                    let _ = tx.send((task.index, outcome));
                });
            }
            if running == 0 {
                break;
            }
            let (i, outcome) = match rx.recv_timeout(Duration::from_millis(50)) {
                Ok(r) => r,
                Err(mpsc::RecvTimeoutError::Timeout) => continue,
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            };
            running -= 1;
            state[i] = State::Finished;
            let name = &plan.images[i].name;
            let key = plan.images[i].key.clone();
            match outcome {
                Outcome::Built(record, log, elapsed) => {
                    env.progress.event(Event::Built {
                        image: name,
                        version: &record.version,
                        elapsed,
                    });
                    results[i] = Some(ImageResult {
                        name: name.clone(),
                        key,
                        action: Done::Built,
                        version: Some(record.version.clone()),
                        artifact: Some(record.artifact.id.clone()),
                        duration_ms: Some(elapsed.as_millis() as u64),
                        log: Some(log.display().to_string()),
                        cause: None,
                        error: None,
                    });
                    records[i] = Some(*record);
                }
                Outcome::Reused(record) => {
                    env.progress.event(Event::Reused {
                        image: name,
                        version: &record.version,
                    });
                    results[i] = Some(ImageResult {
                        name: name.clone(),
                        key,
                        action: Done::Fresh,
                        version: Some(record.version.clone()),
                        artifact: Some(record.artifact.id.clone()),
                        duration_ms: None,
                        log: None,
                        cause: Some("built meanwhile by another run".into()),
                        error: None,
                    });
                    records[i] = Some(*record);
                }
                Outcome::Failed {
                    error,
                    log,
                    duration,
                } => {
                    let tail = log.as_deref().map(log_tail).unwrap_or_default();
                    let log_s = log.as_ref().map(|l| l.display().to_string());
                    if interrupted.is_none() {
                        env.progress.event(Event::Failed {
                            image: name,
                            error: &error,
                            log: log_s.as_deref(),
                            tail: &tail,
                        });
                    }
                    results[i] = Some(ImageResult {
                        name: name.clone(),
                        key,
                        action: Done::Failed,
                        version: None,
                        artifact: None,
                        duration_ms: Some(duration.as_millis() as u64),
                        log: log_s,
                        cause: None,
                        error: Some(error),
                    });
                    first_failure.get_or_insert(i);
                    if !opts.keep_going {
                        stop = true;
                    }
                    if deep {
                        let mut below = crate::graph::ImageMap::filled(n, false);
                        g.mark_descendants(ImageId::new(i), &mut below);
                        let doomed: Vec<usize> = (0..n)
                            .filter(|&d| {
                                d != i
                                    && below[ImageId::new(d)]
                                    && to_build[d]
                                    && results[d].is_none()
                            })
                            .collect();
                        for d in doomed {
                            let cause = match interrupted {
                                Some(_) => "interrupted".to_string(),
                                None => format!("`{name}` failed"),
                            };
                            env.progress.event(Event::Skipped {
                                image: &plan.images[d].name,
                                cause: &cause,
                            });
                            results[d] = Some(skipped(plan, d, cause));
                            state[d] = State::Finished;
                        }
                    }
                    continue;
                }
            }
            if deep {
                for c in g.children[ImageId::new(i)].iter().map(|c| c.index()) {
                    if to_build[c] && state[c] == State::Waiting && results[c].is_none() {
                        ready.push((height[c], std::cmp::Reverse(c)));
                    }
                }
            }
        }
    });
    env.progress.finish();

    let images = (0..n)
        .map(|i| match results[i].take() {
            Some(r) => r,
            None if to_build[i] => {
                let cause = match (interrupted, first_failure) {
                    (Some(_), _) => "interrupted".to_string(),
                    (None, Some(f)) => format!("not started: `{}` failed", plan.images[f].name),
                    (None, None) => "not started".to_string(),
                };
                skipped(plan, i, cause)
            }
            None => match (&plan.images[i].action, &records[i]) {
                (Action::Fresh, Some(r)) => ImageResult {
                    name: plan.images[i].name.clone(),
                    key: plan.images[i].key.clone(),
                    action: Done::Fresh,
                    version: Some(r.version.clone()),
                    artifact: Some(r.artifact.id.clone()),
                    duration_ms: None,
                    log: None,
                    cause: None,
                    error: None,
                },
                _ => skipped(plan, i, "not selected".into()),
            },
        })
        .collect();
    Report {
        images,
        interrupted,
    }
}

fn skipped(plan: &Plan, i: usize, cause: String) -> ImageResult {
    ImageResult {
        name: plan.images[i].name.clone(),
        key: plan.images[i].key.clone(),
        action: Done::Skipped,
        version: None,
        artifact: None,
        duration_ms: None,
        log: None,
        cause: Some(cause),
        error: None,
    }
}

/// Passes a build's output (already redacted) to its log, and reports lines of the form
/// `==> STAGE` (`apply.sh` prints `==> role NAME`) as the build's current stage.
struct StageSniffer<'a, W: Write> {
    inner: W,
    line: Vec<u8>,
    on_stage: &'a (dyn Fn(&str) + Sync),
}

impl<W: Write> Write for StageSniffer<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        for &b in &buf[..n] {
            if b == b'\n' {
                if let Some(stage) = self.line.strip_prefix(b"==> ") {
                    (self.on_stage)(String::from_utf8_lossy(stage).trim());
                }
                self.line.clear();
            } else if self.line.len() < 200 {
                self.line.push(b);
            }
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// The last lines of a log, for showing next to a failure.
fn log_tail(path: &Path) -> Vec<String> {
    const LINES: usize = 20;
    let text = std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    // The last line is layer's own, already printed above the tail.
    let mut lines: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with("layer: build of "))
        .collect();
    while lines.last().is_some_and(|l| l.trim().is_empty()) {
        lines.pop();
    }
    lines[lines.len().saturating_sub(LINES)..]
        .iter()
        .map(|l| l.to_string())
        .collect()
}

/// The roles, packages and variables of image `i`'s build under the workspace's strategy.
fn job_inputs(ws: &Workspace, i: usize) -> (Vec<JobRole>, Vec<String>, BTreeMap<String, String>) {
    let p = &ws.project;
    let roles: Vec<JobRole> = ws
        .graph
        .applied_roles(ImageId::new(i), ws.strategy)
        .iter()
        .map(|r| {
            let role = &p.roles[r];
            (r.clone(), p.root.join(&role.dir), role.vars.clone())
        })
        .collect();
    let chain = match ws.strategy {
        Strategy::Deep => vec![ImageId::new(i)],
        Strategy::Shallow => ws.graph.chain(ImageId::new(i)),
    };
    let mut packages: Vec<String> = Vec::new();
    let mut vars = BTreeMap::new();
    for &c in &chain {
        let img = &p.images[c.index()];
        packages.extend(img.packages.iter().cloned());
        vars.extend(img.vars.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    for (r, _, _) in &roles {
        packages.extend(p.roles[r].packages.iter().cloned());
    }
    let mut seen = std::collections::BTreeSet::new();
    packages.retain(|x| seen.insert(x.clone()));
    (roles, packages, vars)
}

fn run_task(env: &Env, task: &Task, opts: &Options) -> Outcome {
    let started = Instant::now();
    let fail = |error: String, log: Option<PathBuf>| Outcome::Failed {
        error,
        log,
        duration: started.elapsed(),
    };
    let ws = env.ws;
    let i = task.index;
    let image = &ws.project.images[i];
    let key = &ws.keys[i];
    let cache = &ws.cache;

    let _lock = match cache.lock_image(&image.name, &mut || {
        env.progress.event(Event::Waiting { image: &image.name })
    }) {
        Ok(l) => l,
        Err(e) => return fail(e.to_string(), None),
    };
    if task.recheck && !opts.force {
        if let Lookup::Found(r) = cache.lookup(&image.name, &key.key) {
            if cache.artifact_exists(&r) {
                return Outcome::Reused(r);
            }
        }
    }
    let now = SystemTime::now();
    let (stamp, built_at) = stamps(now);
    let build = cache.next_build(&image.name, &image.version);
    let version = format!("{}.{build}-{stamp}", image.version);
    let artifact_name = format!("{}-{}.{build}", image.name, image.version);
    env.progress.event(Event::Started {
        image: &image.name,
        version: &version,
    });

    let (log_path, file) = match cache.create_log(&image.name, &version) {
        Ok(l) => l,
        Err(e) => return fail(e.to_string(), None),
    };
    let secrets = &env.secrets[i];
    let on_stage = |stage: &str| {
        env.progress.event(Event::Stage {
            image: &image.name,
            stage,
        })
    };
    let sniffer = StageSniffer {
        inner: file,
        line: Vec::new(),
        on_stage: &on_stage,
    };
    let log = Mutex::new(Redactor::new(
        sniffer,
        secrets.iter().map(|(_, v)| v.clone()),
    ));
    // Made by the backend if it needs one (inside the run's private folder); removed after.
    let work = env.work_dir.join(&image.name);
    let root_origin = ws.project.images[ws.graph.chain(ImageId::new(i))[0].index()]
        .origin()
        .unwrap_or_default()
        .to_string();
    let source = match (&task.parent, ws.strategy) {
        (Some(p), Strategy::Deep) => p.artifact.id.clone(),
        _ => origin_id(&ws.project, &root_origin),
    };
    let (roles, packages, vars) = job_inputs(ws, i);
    let job = Job {
        image: image.name.clone(),
        key: key.key.clone(),
        version: version.clone(),
        artifact_name: artifact_name.clone(),
        source,
        roles,
        packages,
        vars,
        secrets: secrets.clone(),
        work: work.clone(),
        project_root: ws.project.root.clone(),
        origin: root_origin.clone(),
        parent: match ws.strategy {
            Strategy::Deep => task.parent.clone(),
            Strategy::Shallow => None,
        },
    };
    let backend_name = &ws.project.backend_of(image).name;
    let builder = &env.builders[backend_name];
    let result = builder.build(&job, &log, env.procs);

    let outcome = match result {
        _ if env.procs.cancelled() => Err("interrupted".to_string()),
        Ok(built) => {
            finish_build(env, task, &job, built, &built_at, now, opts).map_err(|e| e.to_string())
        }
        Err(e) => Err(e),
    };
    {
        let mut l = log.lock().expect("no panics while locked");
        if let Err(e) = &outcome {
            let _ = writeln!(l, "\nlayer: build of {} failed: {e}", image.name);
        }
    }
    let _ = log.into_inner().map(|r| r.finish());
    let _ = crate::fsutil::remove_tree(&work);
    match outcome {
        Ok(record) => Outcome::Built(Box::new(record), log_path, started.elapsed()),
        Err(e) => fail(e, Some(log_path)),
    }
}

/// Verifies the artifact, moves a local one into the cache and writes the record.
fn finish_build(
    env: &Env,
    task: &Task,
    job: &Job,
    built: Built,
    built_at: &str,
    started: SystemTime,
    opts: &Options,
) -> Result<Record> {
    let ws = env.ws;
    let i = task.index;
    let image = &ws.project.images[i];
    let key = &ws.keys[i];
    if built.id.trim().is_empty() {
        return Err(Error::usage(
            "the backend reported success but no artifact id",
        ));
    }
    let mut artifact = Artifact {
        id: built.id.clone(),
        path: None,
        blake3: None,
        size: None,
        remote: built.remote.clone(),
    };
    if let Some(local) = &built.local {
        let (digest, size) = crate::cache::artifact_digest(local)?;
        let rel = ws.cache.store_artifact(
            &image.name,
            &format!("{}-{}", job.artifact_name, &key.key[..16]),
            local,
        )?;
        artifact.path = Some(rel);
        artifact.blake3 = Some(digest);
        artifact.size = Some(size);
    }
    let parent = match (&task.parent, image.parent(), ws.strategy) {
        (Some(p), Some(name), Strategy::Deep) => Some(ParentRef {
            name: name.to_string(),
            key: p.key.clone(),
            version: p.version.clone(),
        }),
        _ => None,
    };
    let mut tags = image.tags.clone();
    tags.insert("Name".into(), image.name.clone());
    tags.insert("Version".into(), job.version.clone());
    tags.insert("Commit".into(), env.commit.clone());
    tags.insert("Key".into(), key.key.clone());
    match (&parent, image.parent()) {
        (Some(p), _) => {
            tags.insert("Parent".into(), format!("{} {}", p.name, p.version));
        }
        (None, Some(name)) => {
            tags.insert("Parent".into(), name.to_string());
        }
        (None, None) => {}
    }
    // A pinned image has no chain up to an origin: it keeps its pinned parent's.
    let origin = match (&task.parent, image.pin.is_some()) {
        (Some(p), true) => p.tags.get("Origin").cloned().unwrap_or_default(),
        _ => origin_id(&ws.project, &job.origin),
    };
    tags.insert("Origin".into(), origin);
    tags.insert("Release_Status".into(), "candidate".into());
    let forced = opts.force && !task.recheck;
    let record = Record {
        format: RECORD_FORMAT,
        name: image.name.clone(),
        key: key.key.clone(),
        version: job.version.clone(),
        built_at: built_at.to_string(),
        duration_ms: started.elapsed().unwrap_or_default().as_millis() as u64,
        forced,
        artifact,
        parent,
        tags,
        inputs: key.inputs.clone(),
    };
    let trees: Vec<&crate::scan::Tree> = key
        .inputs
        .roles
        .iter()
        .map(|r| &ws.scanned.trees[&r.name])
        .collect();
    ws.cache.write_record(&record, &trees)?;
    Ok(record)
}
