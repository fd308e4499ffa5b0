//! A worker's part of a run: one image's build, on a worker thread. It takes the image's lock
//! in the cache (an OS lock, so a killed holder frees it), checks again whether another run
//! recorded the key meanwhile, numbers the version, runs the backend with its output going
//! through the secret redactor into the image's log, verifies the artifact, and only then
//! writes the record.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use super::env::{Env, Options};
use super::log::StageSniffer;
use crate::backend::redact::Redactor;
use crate::backend::{Built, Job, JobRole};
use crate::error::{Error, ErrorKind, Result};
use crate::graph::ImageId;
use crate::model::{OriginSource, Project, Strategy};
use crate::progress::Event;
use crate::record::{Artifact, Lookup, ParentRef, Record, RECORD_FORMAT};
use crate::workspace::Workspace;

/// Everything a worker needs for one image, prepared by the main thread.
#[derive(Clone)]
pub(super) struct Task {
    pub id: ImageId,
    /// Deep: the record of the parent build it is built on (this run's, the cache's, or the
    /// pinned one).
    pub parent: Option<Record>,
    /// The plan found no record: another run may have built the key since.
    pub recheck: bool,
    /// Fresh on the remote cache: download it (`transfer::pull`) rather than build it.
    pub pull: bool,
    /// The build's private folder (`Job::work`), in the run's folder: absent or empty. The
    /// executor hands the folders of finished builds, emptied, to later ones (`WorkFolders`).
    pub work: PathBuf,
}

/// What a worker did with its image.
pub(super) enum Outcome {
    /// Built, verified and recorded; the log and how long it took.
    Built(Box<Record>, PathBuf, Duration),
    /// Another run recorded the key while this one waited for the lock.
    Reused(Box<Record>),
    /// Downloaded from the remote cache and verified; how long it took.
    Pulled(Box<Record>, Duration, u64),
    /// Not built: the one-line reason, the log if one was started, how long it took.
    Failed {
        error: String,
        log: Option<PathBuf>,
        duration: Duration,
    },
}

impl Outcome {
    /// The record it built or found.
    pub(super) fn record(&self) -> Option<&Record> {
        match self {
            Outcome::Built(record, ..) | Outcome::Reused(record) | Outcome::Pulled(record, ..) => {
                Some(record)
            }
            Outcome::Failed { .. } => None,
        }
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
        OriginSource::Busybox { path, .. } => format!("busybox:{}", path.display()),
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

/// The role trees a build of image `id` applied, hashed again after it: a build that changed
/// its own inputs (a provisioner that got write access to its role folder, a backend script
/// writing into `roles/`) made an artifact its key does not describe, and fails.
fn roles_unchanged(ws: &Workspace, id: ImageId) -> Result<(), String> {
    // Through the scan's stat cache: a write changes a file's ctime, which no build can set
    // back, so only what was touched is read again (racy stamps are never trusted).
    let hasher = crate::scan::Hasher::new(&ws.stat);
    for r in ws.graph.applied_roles(id, ws.strategy) {
        let role = &ws.project.roles[r];
        // The tree the build applied (`Workspace::tree` keeps what the job was given).
        let before = ws.tree(r).map_err(|e| e.to_string())?;
        let now = crate::scan::scan_tree(&ws.project.root.join(&role.dir), &role.dir, &hasher)
            .map_err(|e| e.to_string())?;
        if now.digest != before.digest {
            let changed: Vec<String> = crate::scan::diff_trees(&before, &now)
                .into_iter()
                .map(|(path, _)| format!("{}/{path}", role.dir))
                .collect();
            return Err(format!(
                "role `{r}` changed during the build ({}): a build must not change its inputs; nothing was recorded",
                changed.join(", ")
            ));
        }
    }
    Ok(())
}

/// What image `id`'s build applies under the workspace's strategy.
struct JobInputs {
    roles: Vec<JobRole>,
    packages: Vec<String>,
    sources: Vec<String>,
    binds: Vec<PathBuf>,
    vars: BTreeMap<String, String>,
}

/// The roles, packages, apt sources and variables of image `id`'s build under the workspace's
/// strategy. On a `debian` origin the packages are the locked `NAME=VERSION`s (the image's
/// own, or in a shallow build or a `reheat` the chain's, later images winning): a reheat
/// stands on an old build of the whole chain, whose every locked package it brings up to date.
fn job_inputs(ws: &Workspace, id: ImageId, reheat: bool) -> JobInputs {
    let p = &ws.project;
    let roles: Vec<JobRole> = ws
        .graph
        .applied_roles(id, ws.strategy)
        .iter()
        .map(|r| {
            let role = &p.roles[r];
            (r.clone(), p.root.join(&role.dir), role.vars.clone())
        })
        .collect();
    let whole_chain = reheat || ws.strategy == Strategy::Shallow;
    let chain = match whole_chain {
        false => vec![id],
        true => ws.graph.chain(id),
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
    let root = &p.images[ws.graph.chain(id)[0].index()];
    let origin = root.origin().and_then(|o| p.origins.get(o));
    let (mut sources, mut binds) = (Vec::new(), Vec::new());
    if let Some(o) = origin.filter(|o| matches!(o.source, OriginSource::Debian { .. })) {
        let mut locked: BTreeMap<&str, &str> = BTreeMap::new();
        for &c in &chain {
            for pkg in p.lock.packages_of(&p.images[c.index()].name) {
                let (n, v) = pkg.split_once('=').unwrap_or((pkg, ""));
                locked.insert(n, v);
            }
        }
        packages = locked.iter().map(|(n, v)| format!("{n}={v}")).collect();
        let whole = crate::lock::request(p, &ws.graph, id.index()).sources;
        sources = match whole_chain {
            false => crate::lock::own_sources(p, &ws.graph, id.index()),
            true => whole.clone(),
        };
        let mut lines: Vec<String> = crate::lock::archive::origin_archives(&o.source)
            .into_iter()
            .map(|a| a.source.line())
            .collect();
        lines.extend(whole);
        for l in lines {
            if let Some(dir) = crate::model::AptSource::parse(&l)
                .ok()
                .and_then(|a| a.local_dir().map(PathBuf::from))
            {
                if !binds.contains(&dir) {
                    binds.push(dir);
                }
            }
        }
    }
    JobInputs {
        roles,
        packages,
        sources,
        binds,
        vars,
    }
}

/// Builds one image: everything from taking its lock to writing its record.
pub(super) fn run_task(env: &Env, task: &Task, opts: &Options) -> Outcome {
    let started = Instant::now();
    let fail = |error: String, log: Option<PathBuf>| Outcome::Failed {
        error,
        log,
        duration: started.elapsed(),
    };
    let ws = env.ws;
    let i = task.id.index();
    let image = &ws.project.images[i];
    let key = &ws.keys[i];
    let cache = &ws.cache;

    let _lock = match cache.lock_image(&image.name, &mut || {
        env.progress.event(Event::Waiting { image: &image.name });
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
        });
    };
    let on_line = |line: &str| {
        env.progress.event(Event::Output {
            image: &image.name,
            line,
        });
    };
    let streaming = env.progress.streams_output();
    let sniffer = StageSniffer::new(file, &on_stage)
        .streaming(streaming.then_some(&on_line as &(dyn Fn(&str) + Sync)));
    let log = Mutex::new(Redactor::new(
        sniffer,
        secrets.iter().map(|(_, v)| v.clone()),
    ));
    // Made by the backend if it needs one (inside the run's private folder); emptied after.
    let work = task.work.clone();
    let root_origin = ws.project.images[ws.graph.chain(task.id)[0].index()]
        .origin()
        .unwrap_or_default()
        .to_string();
    let reheat = opts.reheat.is_some();
    let source = match (&task.parent, ws.strategy) {
        (Some(p), Strategy::Deep) => p.artifact.id.clone(),
        (Some(p), _) if reheat => p.artifact.id.clone(),
        _ => origin_id(&ws.project, &root_origin),
    };
    let JobInputs {
        roles,
        packages,
        sources,
        binds,
        vars,
    } = job_inputs(ws, task.id, reheat);
    let trees = match roles.iter().map(|(r, _, _)| ws.tree(r)).collect() {
        Ok(trees) => trees,
        Err(e) => return fail(e.to_string(), None),
    };
    let job = Job {
        image: image.name.clone(),
        key: key.key.clone(),
        version: version.clone(),
        artifact_name: artifact_name.clone(),
        source,
        roles,
        trees,
        cache: ws.cache.clone(),
        packages,
        sources,
        binds,
        vars,
        secrets: secrets.clone(),
        work: work.clone(),
        project_root: ws.project.root.clone(),
        origin: root_origin.clone(),
        parent: match ws.strategy {
            _ if reheat => task.parent.clone(),
            Strategy::Deep => task.parent.clone(),
            Strategy::Shallow => None,
        },
    };
    let backend_name = &ws.project.backend_of(image).name;
    let builder = &env.builders[backend_name];
    let result = builder
        .build(&job, &log, env.procs)
        .and_then(|built| roles_unchanged(ws, task.id).map(|()| built));

    let outcome = match result {
        _ if env.procs.cancelled() => Err("interrupted".to_string()),
        Ok(built) => {
            finish_build(env, task, &job, &built, &built_at, now, opts).map_err(|e| e.to_string())
        }
        Err(e) => Err(e),
    };
    let outcome = match outcome {
        Err(e) if opts.keep_failed && !env.procs.cancelled() => {
            Err(keep_failed(ws, &image.name, &work, &e))
        }
        o => o,
    };
    {
        let mut l = log.lock().expect("no panics while locked");
        if let Err(e) = &outcome {
            let _ = writeln!(l, "\nlayer: build of {} failed: {e}", image.name);
        }
    }
    if let Ok(Ok(sniffer)) = log.into_inner().map(Redactor::finish) {
        sniffer.finish();
    }
    empty_work(&work);
    match outcome {
        Ok(record) => Outcome::Built(Box::new(record), log_path, started.elapsed()),
        Err(e) => fail(e, Some(log_path)),
    }
}

/// Empties a finished build's work folder for a later build of the run (made once per
/// worker rather than once per build: on ext4 without a journal every inode allocated scans
/// past the inodes deleted in the last 30 seconds, so a quick build's cost grows with the
/// folders made and removed before it, issue 15); one that cannot be emptied is removed.
fn empty_work(work: &Path) {
    let emptied = std::fs::read_dir(work).map(|entries| {
        entries
            .flatten()
            .all(|e| crate::fsutil::remove_tree(&e.path()).is_ok())
    });
    if !matches!(emptied, Ok(true)) {
        let _ = crate::fsutil::remove_tree(work);
    }
}

/// Keeps the work folder of a failed build of `image` (`--keep-failed`); the error, saying
/// where it is and how to enter it.
fn keep_failed(ws: &Workspace, image: &str, work: &Path, error: &str) -> String {
    match ws.cache.keep_failed(image, work) {
        Ok(kept) => format!(
            "{error}; its work folder is kept in `{}`: `layer shell --failed {image}` opens a shell in it",
            kept.display()
        ),
        Err(e) => format!("{error}; keeping its work folder failed: {e}"),
    }
}

/// Verifies the artifact, moves a local one into the cache and writes the record.
fn finish_build(
    env: &Env,
    task: &Task,
    job: &Job,
    built: &Built,
    built_at: &str,
    started: SystemTime,
    opts: &Options,
) -> Result<Record> {
    let ws = env.ws;
    let i = task.id.index();
    let image = &ws.project.images[i];
    let key = &ws.keys[i];
    if built.id.trim().is_empty() {
        return Err(Error::usage(
            ErrorKind::NoArtifactId,
            "the backend reported success but no artifact id",
        ));
    }
    if let Some((var, _)) = job
        .secrets
        .iter()
        .find(|(_, v)| crate::backend::redact::holds_secret(&built.id, v))
    {
        return Err(Error::usage(
            ErrorKind::SecretInArtifactId,
            format!(
                "the artifact id the backend reported holds the value of secret `{var}`; nothing was recorded"
            ),
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
    let reheated = opts.reheat.as_deref();
    let parent = match (&task.parent, image.parent(), ws.strategy) {
        // A reheat is built on its image's own earlier build: that is the record below it.
        (Some(p), _, _) if reheated.is_some() => Some(ParentRef {
            name: image.name.clone(),
            key: p.key.clone(),
            version: p.version.clone(),
        }),
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
        // A reheat keeps the parent build its chain stands on.
        _ if reheated.is_some() => {
            if let Some(p) = reheated.and_then(|r| r.tags.get("Parent")) {
                tags.insert("Parent".into(), p.clone());
            }
        }
        (Some(p), _) => {
            tags.insert("Parent".into(), format!("{} {}", p.name, p.version));
        }
        (None, Some(name)) => {
            tags.insert("Parent".into(), name.to_string());
        }
        (None, None) => {}
    }
    // A pinned image has no chain up to an origin: it keeps its pinned parent's; a reheat,
    // the build it reheats.
    let origin = match (&task.parent, image.pin.is_some() || reheated.is_some()) {
        (Some(p), true) => p.tags.get("Origin").cloned().unwrap_or_default(),
        _ => origin_id(&ws.project, &job.origin),
    };
    tags.insert("Origin".into(), origin);
    if let Some(from) = reheated {
        tags.insert("Reheated_From".into(), from.version.clone());
    }
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
        packages: built.packages.clone(),
    };
    let trees: Vec<crate::scan::Tree> = key
        .inputs
        .roles
        .iter()
        .map(|r| ws.tree(&r.name))
        .collect::<Result<_>>()?;
    ws.cache
        .write_record(&record, &trees.iter().collect::<Vec<_>>())?;
    Ok(record)
}
