//! `layer test`: each built image in a throwaway instance — a fresh overlay over its layers,
//! in namespaces of its own, a network namespace with only loopback among them — running the
//! tests of every role of its chain (`roles/NAME/tests/*.sh`) and its own `[[test]]` entries.
//! The instance's upper folder is thrown away, so the artifact is never changed; the record's
//! `Release_Status` becomes `tested` or `failed`, and `Tested_With` holds the digest of the
//! tests that ran ([`tests_digest`]): role tests are not part of keys, so a build can be
//! `tested` with other tests than it has now, and `layer list` and `layer test` say so. An
//! image without tests is not tested: it stays as it is (`no-tests`).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use serde::Serialize;

use super::sandbox::{self, Step, TestResult};
use super::RootfsBackend;
use crate::backend::Procs;
use crate::error::{Error, ErrorKind, Result};
use crate::model::BackendKind;
use crate::record::{Lookup, Record};
use crate::release;
use crate::workspace::Workspace;

/// The tests of one image, as `layer test --json` prints them.
#[derive(Debug, Clone, Serialize)]
pub struct ImageTests {
    pub name: String,
    pub version: String,
    /// `passed`, `failed`, `error` (the instance could not run), or `no-tests` (none
    /// declared: the status stays as it was).
    pub result: String,
    pub tests: Vec<TestOutcome>,
    pub duration_ms: u64,
    pub log: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The record's status afterwards.
    pub release_status: String,
    /// The build was tested before with other tests than it has now.
    pub tests_changed: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct TestOutcome {
    pub name: String,
    pub passed: bool,
    pub status: String,
    pub duration_ms: u64,
    pub output: String,
}

/// A test as the image declares it: its name, the role folder it runs from (role tests), and
/// its script (a file of the role's, or a command).
fn tests_of(ws: &Workspace, i: usize) -> Vec<(String, Option<PathBuf>, String)> {
    let p = &ws.project;
    let mut out = Vec::new();
    let id = crate::graph::ImageId::new(i);
    for role in ws.graph.applied_roles(id, crate::model::Strategy::Shallow) {
        let dir = p.root.join(&p.roles[role].dir);
        let Ok(rd) = fs::read_dir(dir.join("tests")) else {
            continue;
        };
        let mut files: Vec<String> = rd
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| n.ends_with(".sh"))
            .collect();
        files.sort();
        for f in files {
            out.push((
                format!("{role}/{f}"),
                Some(dir.clone()),
                format!("tests/{f}"),
            ));
        }
    }
    // The inherited tests of its ancestors, the farthest first, then its own.
    let chain = ws.graph.chain(id);
    for &a in &chain[..chain.len() - 1] {
        let ancestor = &p.images[a.index()];
        for t in ancestor.tests.iter().filter(|t| t.inherit) {
            out.push((format!("{}/{}", ancestor.name, t.name), None, t.run.clone()));
        }
    }
    for t in &p.images[i].tests {
        out.push((t.name.clone(), None, t.run.clone()));
    }
    out
}

/// The digest of the tests image `i` has now (see [`crate::release::tests_digest`]); a role
/// test that cannot be read counts as empty, and fails when it runs.
pub fn tests_digest(ws: &Workspace, i: usize) -> String {
    digest_of(&tests_of(ws, i))
}

fn digest_of(tests: &[(String, Option<PathBuf>, String)]) -> String {
    let scripts: Vec<(&str, Vec<u8>)> = tests
        .iter()
        .map(|(name, role, script)| {
            let bytes = match role {
                Some(dir) => fs::read(dir.join(script)).unwrap_or_default(),
                None => script.as_bytes().to_vec(),
            };
            (name.as_str(), bytes)
        })
        .collect();
    release::tests_digest(scripts.iter().map(|(n, b)| (*n, b.as_slice())))
}

/// Whether `record` was tested with other tests than `digest` (never, when it was not tested).
pub fn tests_changed(record: &Record, digest: &str) -> bool {
    record
        .tags
        .get(release::TESTED_WITH_TAG)
        .is_some_and(|d| d != digest)
}

/// Checks, before anything runs, that every target is a `rootfs` image built at its current
/// inputs; returns their records.
pub fn records_to_test(ws: &Workspace, targets: &[usize]) -> Result<Vec<(usize, Record)>> {
    let mut out = Vec::new();
    let mut unbuilt = Vec::new();
    for &i in targets {
        let image = &ws.project.images[i];
        let backend = ws.project.backend_of(image);
        if backend.kind != BackendKind::Rootfs {
            if targets.len() == 1 {
                return Err(Error::Usage { kind: ErrorKind::NotRootfs,
                    message: format!(
                        "`{}` is built with the `{}` backend; `layer test` runs images of the `rootfs` backend",
                        image.name,
                        backend.kind.as_str()
                    ),
                    hint: Some("test cloud images in your pipeline after `layer build`".into()),
                });
            }
            continue;
        }
        match &ws.lookups[i] {
            Lookup::Found(r) if ws.cache.artifact_exists(r) => out.push((i, (**r).clone())),
            _ => unbuilt.push(image.name.clone()),
        }
    }
    if !unbuilt.is_empty() {
        return Err(Error::Usage {
            kind: ErrorKind::NotBuilt,
            message: format!(
                "not built at their current inputs: {}",
                unbuilt
                    .iter()
                    .map(|n| format!("`{n}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            hint: Some(format!("run `layer build {}` first", unbuilt.join(" "))),
        });
    }
    Ok(out)
}

/// Runs the tests of each image (up to `jobs` at once) and records the outcome.
pub fn run(
    ws: &Workspace,
    images: &[(usize, Record)],
    jobs: usize,
    timeout_secs: u64,
    procs: &Procs,
    on_done: &(dyn Fn(&ImageTests) + Sync),
) -> Result<Vec<ImageTests>> {
    let backend = RootfsBackend::new(&ws.project, &ws.scanned, &ws.cache);
    let run_dir = ws.cache.start_run()?;
    let next = Mutex::new(0usize);
    let results: Mutex<Vec<Option<ImageTests>>> = Mutex::new(vec![None; images.len()]);
    std::thread::scope(|s| {
        for _ in 0..jobs.max(1).min(images.len().max(1)) {
            s.spawn(|| loop {
                let n = {
                    let mut g = next.lock().expect("no panics while locked");
                    let n = *g;
                    *g += 1;
                    n
                };
                let Some((i, record)) = images.get(n) else {
                    break;
                };
                let r = test_one(ws, &backend, *i, record, &run_dir.dir, timeout_secs, procs);
                on_done(&r);
                results.lock().expect("no panics while locked")[n] = Some(r);
            });
        }
    });
    drop(run_dir);
    Ok(results
        .into_inner()
        .expect("no panics while locked")
        .into_iter()
        .map(|r| r.expect("every image ran"))
        .collect())
}

fn test_one(
    ws: &Workspace,
    backend: &RootfsBackend,
    i: usize,
    record: &Record,
    run_dir: &std::path::Path,
    timeout_secs: u64,
    procs: &Procs,
) -> ImageTests {
    let started = Instant::now();
    let image = &ws.project.images[i];
    let declared = tests_of(ws, i);
    let digest = digest_of(&declared);
    let tests_changed = tests_changed(record, &digest);
    if declared.is_empty() {
        return ImageTests {
            result: "no-tests".into(),
            log: String::new(),
            error: None,
            tests_changed,
            ..failed(record, started, String::new(), String::new())
        };
    }
    let (log_path, file) = match ws
        .cache
        .create_log(&image.name, &format!("{}.test", record.version))
    {
        Ok(l) => l,
        Err(e) => return failed(record, started, String::new(), e.to_string()),
    };
    let log = Mutex::new(file);
    let log_str = log_path.display().to_string();
    let work = run_dir.join(format!("test-{}", image.name));
    let outcome = (|| -> std::result::Result<Vec<TestOutcome>, String> {
        let stack = backend.stack_of_record(record, &log, procs)?;
        let mut env = sandbox::base_env(&image.vars);
        env.extend([
            ("LAYER_IMAGE".to_string(), image.name.clone()),
            ("LAYER_VERSION".to_string(), record.version.clone()),
        ]);
        // A fresh instance for every test: one test's traces (a first boot's host keys, a
        // started service) never reach another.
        let mut outcomes = Vec::new();
        for (n, test) in declared.iter().enumerate() {
            let dir = work.join(format!("{n:03}"));
            let instance = Instance {
                backend,
                stack: &stack,
                hostname: &image.name,
                env: &env,
                timeout_secs,
                log: &log,
                procs,
            };
            outcomes.push(instance.run(test, &dir)?);
            let _ = crate::fsutil::remove_tree(&dir);
        }
        Ok(outcomes)
    })();
    let _ = crate::fsutil::remove_tree(&work);
    let (tests, error) = match outcome {
        Ok(t) => (t, None),
        Err(e) => (vec![], Some(e)),
    };
    let passed = error.is_none() && tests.iter().all(|t| t.passed);
    if let Some(e) = &error {
        let _ = writeln!(log.lock().expect("no panics while locked"), "layer: {e}");
    }
    let status = set_status(ws, record, passed, digest);
    ImageTests {
        name: image.name.clone(),
        version: record.version.clone(),
        result: match (&error, passed) {
            (Some(_), _) => "error",
            (None, true) => "passed",
            (None, false) => "failed",
        }
        .into(),
        tests,
        duration_ms: started.elapsed().as_millis() as u64,
        log: log_str,
        error,
        release_status: status,
        tests_changed,
    }
}

/// A throwaway instance of a build for one test: its stack, environment and limits.
struct Instance<'a> {
    backend: &'a RootfsBackend<'a>,
    stack: &'a super::Stack,
    hostname: &'a str,
    env: &'a [(String, String)],
    timeout_secs: u64,
    log: &'a Mutex<fs::File>,
    procs: &'a Procs,
}

impl Instance<'_> {
    /// Runs test `(name, role, script)` in a new instance made in `dir`, and reads its result.
    fn run(
        &self,
        (name, role, script): &(String, Option<PathBuf>, String),
        dir: &std::path::Path,
    ) -> std::result::Result<TestOutcome, String> {
        let results_dir = dir.join("results");
        fs::create_dir_all(&results_dir).map_err(|e| format!("{}: {e}", results_dir.display()))?;
        let spec = sandbox::Spec {
            root: PathBuf::new(),
            overlay: None,
            hostname: self.hostname.to_string(),
            host_network: false,
            env: self.env.to_vec(),
            secret_names: vec![],
            steps: vec![Step::Test {
                name: name.clone(),
                role: role.clone(),
                script: script.clone(),
                timeout_secs: self.timeout_secs,
            }],
            results: Some(results_dir.clone()),
            binds: Vec::new(),
            apt: None,
        };
        let ok = self.backend.run_sandbox(
            self.stack,
            None,
            &dir.join("sandbox"),
            spec,
            &[],
            self.log,
            self.procs,
        )?;
        let parsed: Vec<TestResult> = fs::read(results_dir.join("results.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        let Some(t) = parsed.into_iter().next() else {
            return Err(format!(
                "the instance for test `{name}` failed{}; see the log",
                if ok { "" } else { " to start" }
            ));
        };
        Ok(TestOutcome {
            output: String::from_utf8_lossy(
                &fs::read(results_dir.join("000.out")).unwrap_or_default(),
            )
            .into_owned(),
            name: t.name,
            passed: t.passed,
            status: t.status,
            duration_ms: t.duration_ms,
        })
    }
}

fn failed(record: &Record, started: Instant, log: String, error: String) -> ImageTests {
    ImageTests {
        name: record.name.clone(),
        version: record.version.clone(),
        result: "error".into(),
        tests: vec![],
        duration_ms: started.elapsed().as_millis() as u64,
        log,
        error: Some(error),
        release_status: release::Status::of(record).as_str().to_string(),
        tests_changed: false,
    }
}

/// Records the outcome of the tests on the build (see [`release::Change::Tested`]); returns the
/// status afterwards, or the status before when the record could not be rewritten.
fn set_status(ws: &Workspace, record: &Record, passed: bool, digest: String) -> String {
    let change = release::Change::Tested { passed };
    match crate::cache::release::apply_with(
        &ws.cache,
        &record.name,
        Some(&record.version),
        change,
        &[(release::TESTED_WITH_TAG, digest)],
        &mut || {},
    ) {
        Ok(done) => done.to.as_str().to_string(),
        Err(_) => release::Status::of(record).as_str().to_string(),
    }
}

/// `layer shell`: `/bin/sh` in a throwaway instance of `record`, with the mounts a build has
/// (the host's network, a small `/dev`, `/proc`, `/sys`, tmpfs `/run` and `/tmp`). The shell
/// has layer's stdin, stdout and stderr; nothing of it is logged, and its changes go with the
/// instance. Returns the shell's exit code.
pub fn shell(ws: &Workspace, i: usize, record: &Record) -> Result<i32> {
    let backend = RootfsBackend::new(&ws.project, &ws.scanned, &ws.cache);
    let procs = Procs::default();
    let sink: Mutex<std::io::Stderr> = Mutex::new(std::io::stderr());
    let stack = backend
        .stack_of_record(record, &sink, &procs)
        .map_err(|e| instance_error(ws, i, &e))?;
    run_shell(ws, &backend, i, &stack, &record.version)
}

/// `layer shell --failed`: [`shell`] of the failed build kept in `kept`
/// ([`crate::cache::Cache::keep_failed`]): its upper layer (`layer/`) on the stack its image
/// builds on now, or where trees are copied, the whole tree it composed (`sandbox/root`).
pub fn shell_failed(ws: &Workspace, i: usize, kept: &Path) -> Result<i32> {
    let backend = RootfsBackend::new(&ws.project, &ws.scanned, &ws.cache);
    let procs = Procs::default();
    let sink: Mutex<std::io::Stderr> = Mutex::new(std::io::stderr());
    let name = "the kept failed build".to_string();
    let stack = if kept.join("sandbox/overlay-work").exists() {
        let mut s =
            stack_below(ws, &backend, i, &sink, &procs).map_err(|e| instance_error(ws, i, &e))?;
        s.trees.push(kept.join("layer"));
        s.names.push(name);
        s
    } else {
        super::Stack {
            trees: vec![kept.join("sandbox/root")],
            names: vec![name],
        }
    };
    run_shell(ws, &backend, i, &stack, "failed")
}

fn instance_error(ws: &Workspace, i: usize, message: &str) -> Error {
    Error::Usage {
        kind: ErrorKind::InstanceFailed,
        message: format!(
            "cannot make an instance of `{}`: {message}",
            ws.project.images[i].name
        ),
        hint: None,
    }
}

fn run_shell(
    ws: &Workspace,
    backend: &RootfsBackend,
    i: usize,
    stack: &super::Stack,
    version: &str,
) -> Result<i32> {
    let image = &ws.project.images[i];
    let mut env = sandbox::base_env(&image.vars);
    if let Ok(term) = std::env::var("TERM") {
        env.push(("TERM".into(), term));
    }
    env.extend([
        ("LAYER_IMAGE".to_string(), image.name.clone()),
        ("LAYER_VERSION".to_string(), version.to_string()),
    ]);
    let spec = sandbox::Spec {
        root: PathBuf::new(),
        overlay: None,
        hostname: image.name.clone(),
        host_network: true,
        env,
        secret_names: vec![],
        steps: vec![Step::Shell],
        results: None,
        binds: Vec::new(),
        apt: None,
    };
    let run_dir = ws.cache.start_run()?;
    let work = run_dir.dir.join(format!("shell-{}", image.name));
    let status = backend.run_sandbox_as(stack, None, &work, spec, &[], super::Attach::Terminal);
    let _ = crate::fsutil::remove_tree(&work);
    drop(run_dir);
    Ok(sandbox::exit_code(
        status.map_err(|e| instance_error(ws, i, &e))?,
    ))
}

/// The stack image `i` is built on now: its parent's current build (deep) or its origin.
fn stack_below(
    ws: &Workspace,
    backend: &RootfsBackend,
    i: usize,
    log: crate::backend::Log,
    procs: &Procs,
) -> std::result::Result<super::Stack, String> {
    let chain = ws.graph.chain(crate::graph::ImageId::new(i));
    let deep = ws.strategy == crate::model::Strategy::Deep;
    if let (true, [.., parent, _]) = (deep, chain.as_slice()) {
        return match &ws.lookups[parent.index()] {
            Lookup::Found(r) => backend.stack_of_record(r, log, procs),
            _ => Err(format!(
                "its parent `{}` is not built at its current inputs",
                ws.project.images[parent.index()].name
            )),
        };
    }
    let origin = ws.project.images[chain[0].index()]
        .origin()
        .unwrap_or_default()
        .to_string();
    backend.origin_stack(&origin, log, procs)
}
