//! The scheduler, driven through the library with a fake backend that records every build it is
//! asked for and fails the images it is told to: which images build, in which order, on what,
//! and what becomes of the others when something fails.

use crate::common::{wait_until, Project};

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Mutex;

use layer::backend::{Builder, Built, Job, Log, Procs};
use layer::cache::Cache;
use layer::exec::{self, Done, Options, Report};
use layer::model::Strategy;
use layer::plan::{Plan, Selection};
use layer::progress::{Event, Plain, Progress};
use layer::record::Lookup;
use layer::workspace::Workspace;

/// One call of the fake backend.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Call {
    image: String,
    source: String,
    roles: Vec<String>,
    version: String,
}

type Hook<'a> = Box<dyn Fn(&Job, &Procs) + Sync + 'a>;

/// Records every job, and fails the images named in `fail`; `hook` runs inside a build,
/// before it returns.
struct Fake<'a> {
    calls: &'a Mutex<Vec<Call>>,
    fail: BTreeSet<String>,
    hook: Option<Hook<'a>>,
}

impl Builder for Fake<'_> {
    fn build(&self, job: &Job, log: Log, procs: &Procs) -> Result<Built, String> {
        self.calls.lock().unwrap().push(Call {
            image: job.image.clone(),
            source: job.source.clone(),
            roles: job.roles.iter().map(|(r, _, _)| r.clone()).collect(),
            version: job.version.clone(),
        });
        writeln!(log.lock().unwrap(), "fake build of {}", job.image).unwrap();
        if let Some(h) = &self.hook {
            h(job, procs);
        }
        if self.fail.contains(&job.image) {
            return Err(format!("{} was told to fail", job.image));
        }
        Ok(Built {
            id: format!("art-{}", job.image),
            local: None,
            remote: None,
            packages: None,
        })
    }
}

/// Two roots and a chain three deep:
///
/// ```text
/// one (id ami-one) -> base1 -> mid -> top
///                           \-> side
/// two (id ami-two) -> base2 -> leaf
/// ```
fn dag() -> Project {
    let p = Project::new();
    p.file(
        "layer.toml",
        "[project]\nstrategy = \"deep\"\n\n[origins.one]\nid = \"ami-one\"\n\n[origins.two]\nid = \"ami-two\"\n",
    );
    for role in ["base", "mid", "top", "side", "leaf"] {
        p.exec(
            &format!("roles/{role}/provision.sh"),
            &format!("#!/bin/sh\necho {role}\n"),
        );
    }
    p.file(
        "images/base1.toml",
        "version = \"1.0\"\norigin = \"one\"\nroles = [\"base\"]\n",
    );
    p.file(
        "images/mid.toml",
        "version = \"2.1\"\nfrom = \"base1\"\nroles = [\"mid\"]\n",
    );
    p.file(
        "images/top.toml",
        "version = \"1.0\"\nfrom = \"mid\"\nroles = [\"top\"]\n",
    );
    p.file(
        "images/side.toml",
        "version = \"1.0\"\nfrom = \"base1\"\nroles = [\"side\"]\n",
    );
    p.file(
        "images/base2.toml",
        "version = \"3.0\"\norigin = \"two\"\nroles = [\"base\"]\n",
    );
    p.file(
        "images/leaf.toml",
        "version = \"1.0\"\nfrom = \"base2\"\nroles = [\"leaf\"]\n",
    );
    p
}

const IMAGES: [&str; 6] = ["base1", "mid", "top", "side", "base2", "leaf"];

fn parent_of(name: &str) -> Option<&'static str> {
    match name {
        "mid" | "side" => Some("base1"),
        "top" => Some("mid"),
        "leaf" => Some("base2"),
        _ => None,
    }
}

/// `name`'s ancestors, root first, without `name`.
fn ancestors(name: &str) -> Vec<&'static str> {
    let mut out = Vec::new();
    let mut cur = parent_of(name);
    while let Some(p) = cur {
        out.insert(0, p);
        cur = parent_of(p);
    }
    out
}

struct Run {
    report: Report,
    calls: Vec<Call>,
}

/// Everything a run needs besides the workspace and the plan.
struct Setup<'a> {
    jobs: usize,
    keep_going: bool,
    force: bool,
    fail: &'a [&'a str],
    hook: Option<Hook<'a>>,
    progress: Option<&'a dyn Progress>,
    interrupt: Option<&'a AtomicI32>,
}

impl Default for Setup<'_> {
    fn default() -> Self {
        Setup {
            jobs: 1,
            keep_going: false,
            force: false,
            fail: &[],
            hook: None,
            progress: None,
            interrupt: None,
        }
    }
}

fn execute(ws: &Workspace, plan: &Plan, setup: Setup) -> Run {
    let calls = Mutex::new(Vec::new());
    let mut builders: BTreeMap<String, Box<dyn Builder + '_>> = BTreeMap::new();
    builders.insert(
        "rootfs".into(),
        Box::new(Fake {
            calls: &calls,
            fail: setup.fail.iter().map(ToString::to_string).collect(),
            hook: setup.hook,
        }),
    );
    let work = tempfile::tempdir().unwrap();
    let procs = Procs::default();
    let own_interrupt = AtomicI32::new(0);
    let silent = Events::default();
    let env = exec::Env {
        ws,
        builders: &builders,
        progress: setup.progress.unwrap_or(&silent),
        procs: &procs,
        interrupt: setup.interrupt.unwrap_or(&own_interrupt),
        work_dir: work.path(),
        commit: "test-commit".into(),
        secrets: vec![Vec::new(); ws.project.images.len()],
        remote: None,
    };
    let report = exec::execute(
        &env,
        plan,
        &Options {
            jobs: setup.jobs,
            keep_going: setup.keep_going,
            force: setup.force,
            pull: false,
            keep_failed: false,
            reheat: None,
        },
    );
    drop(builders);
    Run {
        report,
        calls: calls.into_inner().unwrap(),
    }
}

fn open(p: &Project, strategy: Strategy) -> Workspace {
    Workspace::open(p.root(), None, Some(strategy)).expect("project loads")
}

fn plan_all(ws: &Workspace) -> Plan {
    ws.plan(&Selection::default())
}

fn names(calls: &[Call]) -> Vec<String> {
    calls.iter().map(|c| c.image.clone()).collect()
}

/// `(action, cause)` of every image of a report, by name.
fn outcomes(r: &Report) -> BTreeMap<String, (Done, Option<String>)> {
    r.images
        .iter()
        .map(|i| (i.name.clone(), (i.action, i.cause.clone())))
        .collect()
}

fn is_version_of(v: &str, major_minor: &str, build: u64) -> bool {
    let Some(rest) = v.strip_prefix(&format!("{major_minor}.{build}-")) else {
        return false;
    };
    let b = rest.as_bytes();
    b.len() == 13
        && b[8] == b'_'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 8 || c.is_ascii_digit())
}

/// The images recorded in `cache` under their current keys.
fn recorded(ws: &Workspace, cache: &Cache) -> BTreeSet<String> {
    ws.project
        .images
        .iter()
        .zip(&ws.keys)
        .filter(|(img, k)| matches!(cache.lookup(&img.name, &k.key), Lookup::Found(_)))
        .map(|(img, _)| img.name.clone())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// What a build is handed.

#[test]
fn deep_builds_each_image_on_its_parents_artifact_with_its_own_roles() {
    let p = dag();
    let ws = open(&p, Strategy::Deep);
    let plain = Plain { quiet: true };
    let run = execute(
        &ws,
        &plan_all(&ws),
        Setup {
            progress: Some(&plain),
            ..Setup::default()
        },
    );
    assert_eq!(run.report.exit_code(), 0);
    assert_eq!(run.report.count(Done::Built), 6);

    let by_name: BTreeMap<&str, &Call> = run.calls.iter().map(|c| (c.image.as_str(), c)).collect();
    assert_eq!(by_name.len(), 6, "each image built once: {:?}", run.calls);
    let expect = [
        ("base1", "ami-one", "base", "1.0"),
        ("mid", "art-base1", "mid", "2.1"),
        ("top", "art-mid", "top", "1.0"),
        ("side", "art-base1", "side", "1.0"),
        ("base2", "ami-two", "base", "3.0"),
        ("leaf", "art-base2", "leaf", "1.0"),
    ];
    for (image, source, role, mm) in expect {
        let c = by_name[image];
        assert_eq!(c.source, source, "{image}");
        assert_eq!(c.roles, [role], "{image}");
        assert!(is_version_of(&c.version, mm, 0), "{image}: {}", c.version);
    }
    // Parents are built before their children.
    let order = names(&run.calls);
    for name in IMAGES {
        if let Some(parent) = parent_of(name) {
            let pos = |n: &str| order.iter().position(|x| x == n).unwrap();
            assert!(pos(parent) < pos(name), "{order:?}");
        }
    }

    // The results carry what the backend returned, and every image is recorded on its parent.
    for r in &run.report.images {
        assert_eq!(r.action, Done::Built);
        assert_eq!(
            r.artifact.as_deref(),
            Some(format!("art-{}", r.name).as_str())
        );
        assert_eq!(
            r.version.as_deref(),
            Some(by_name[r.name.as_str()].version.as_str())
        );
        assert!(Path::new(r.log.as_deref().unwrap()).is_file());
    }
    let again = open(&p, Strategy::Deep);
    for (i, img) in again.project.images.iter().enumerate() {
        let Lookup::Found(rec) = &again.lookups[i] else {
            panic!("{} is recorded", img.name);
        };
        assert!(!rec.forced);
        assert_eq!(rec.tags["Commit"], "test-commit");
        match parent_of(&img.name) {
            Some(parent) => {
                let pr = rec.parent.as_ref().unwrap();
                assert_eq!(pr.name, parent);
                assert_eq!(pr.version, by_name[parent].version);
                assert_eq!(
                    rec.tags["Parent"],
                    format!("{parent} {}", by_name[parent].version)
                );
            }
            None => assert!(rec.parent.is_none()),
        }
    }

    // A second run has nothing to do.
    let plan = plan_all(&again);
    assert_eq!(plan.summary.build, 0);
    let run = execute(&again, &plan, Setup::default());
    assert!(run.calls.is_empty());
    assert_eq!(run.report.count(Done::Fresh), 6);
    assert_eq!(run.report.exit_code(), 0);
}

#[test]
fn shallow_builds_every_image_from_its_root_origin_with_the_whole_chains_roles() {
    let p = dag();
    let ws = open(&p, Strategy::Shallow);
    let run = execute(&ws, &plan_all(&ws), Setup::default());
    assert_eq!(run.report.exit_code(), 0);
    let by_name: BTreeMap<&str, &Call> = run.calls.iter().map(|c| (c.image.as_str(), c)).collect();
    let expect: [(&str, &str, &[&str]); 6] = [
        ("base1", "ami-one", &["base"]),
        ("mid", "ami-one", &["base", "mid"]),
        ("top", "ami-one", &["base", "mid", "top"]),
        ("side", "ami-one", &["base", "side"]),
        ("base2", "ami-two", &["base"]),
        ("leaf", "ami-two", &["base", "leaf"]),
    ];
    for (image, source, roles) in expect {
        assert_eq!(by_name[image].source, source, "{image}");
        assert_eq!(by_name[image].roles, roles, "{image}");
    }
    let again = open(&p, Strategy::Shallow);
    for (i, img) in again.project.images.iter().enumerate() {
        let Lookup::Found(rec) = &again.lookups[i] else {
            panic!("{} is recorded", img.name);
        };
        assert!(
            rec.parent.is_none(),
            "shallow records are built on no parent"
        );
    }
}

#[test]
fn force_rebuilds_fresh_images_with_the_next_build_number_and_marks_them_forced() {
    let p = dag();
    let ws = open(&p, Strategy::Deep);
    execute(&ws, &plan_all(&ws), Setup::default());

    let ws = open(&p, Strategy::Deep);
    let i = ws.index("mid").unwrap();
    let sel = Selection {
        targets: vec![i],
        force: true,
        ..Selection::default()
    };
    let plan = ws.plan(&sel);
    let run = execute(
        &ws,
        &plan,
        Setup {
            force: true,
            ..Setup::default()
        },
    );
    // A target brings its ancestors along, built only when stale: `--force` forces the target.
    assert_eq!(names(&run.calls), ["mid"]);
    assert!(is_version_of(&run.calls[0].version, "2.1", 1));
    let ws = open(&p, Strategy::Deep);
    let Lookup::Found(rec) = &ws.lookups[i] else {
        panic!("mid is recorded");
    };
    assert!(rec.forced);
    assert_eq!(rec.version, run.calls[0].version);
    let versions: Vec<String> = ws
        .cache
        .records("mid")
        .iter()
        .map(|r| r.version.clone())
        .collect();
    assert_eq!(versions.len(), 2);
    assert!(
        is_version_of(&versions[0], "2.1", 1),
        "newest first: {versions:?}"
    );
    assert!(is_version_of(&versions[1], "2.1", 0), "{versions:?}");
}

// ---------------------------------------------------------------------------------------------
// Failures, for every combination of failing images.

/// Every subset of the images, as the names that fail.
fn subsets() -> Vec<Vec<&'static str>> {
    (0u32..1 << IMAGES.len())
        .map(|mask| {
            IMAGES
                .iter()
                .enumerate()
                .filter(|(i, _)| mask & (1 << i) != 0)
                .map(|(_, n)| *n)
                .collect()
        })
        .collect()
}

/// Runs the full plan of `ws` with `fail` failing, on an empty cache of its own.
fn run_failing(
    ws: &mut Workspace,
    plan: &Plan,
    fail: &[&str],
    jobs: usize,
    keep_going: bool,
) -> (Run, BTreeSet<String>, tempfile::TempDir) {
    // Hundreds of runs each write a few records with fsync: on tmpfs when there is one.
    let shm = Path::new("/dev/shm");
    let cache = if shm.is_dir() {
        tempfile::tempdir_in(shm).unwrap()
    } else {
        tempfile::tempdir().unwrap()
    };
    ws.cache = Cache::new(cache.path());
    let run = execute(
        ws,
        plan,
        Setup {
            jobs,
            keep_going,
            fail,
            ..Setup::default()
        },
    );
    let rec = recorded(ws, &ws.cache);
    (run, rec, cache)
}

fn check_exit_code(report: &Report, fail: &[&str], ctx: &str) {
    let failed = report.count(Done::Failed);
    assert_eq!(report.exit_code(), if failed > 0 { 1 } else { 0 }, "{ctx}");
    if !fail.is_empty() {
        assert!(failed > 0, "{ctx}: something that fails is always tried");
    }
}

#[test]
fn deep_keep_going_builds_exactly_what_is_not_below_a_failure() {
    let p = dag();
    let mut ws = open(&p, Strategy::Deep);
    let plan = plan_all(&ws);
    for fail in subsets() {
        for jobs in [1, 3] {
            let ctx = format!("-k -j {jobs}, failing {fail:?}");
            let (run, rec, _cache) = run_failing(&mut ws, &plan, &fail, jobs, true);
            let got = outcomes(&run.report);
            let mut want = BTreeMap::new();
            for name in IMAGES {
                let failed_above = ancestors(name).into_iter().find(|a| fail.contains(a));
                let o = match failed_above {
                    // The topmost failure above is the one that was tried.
                    Some(a) => (Done::Skipped, Some(format!("`{a}` failed"))),
                    None if fail.contains(&name) => (Done::Failed, None),
                    None => (Done::Built, None),
                };
                want.insert(name.to_string(), o);
            }
            assert_eq!(got, want, "{ctx}");
            // Only the images tried were handed to the backend, once each.
            let mut tried = names(&run.calls);
            tried.sort();
            let mut want_tried: Vec<String> = want
                .iter()
                .filter(|(_, (d, _))| matches!(d, Done::Built | Done::Failed))
                .map(|(n, _)| n.clone())
                .collect();
            want_tried.sort();
            assert_eq!(tried, want_tried, "{ctx}");
            let built: BTreeSet<String> = want
                .iter()
                .filter(|(_, (d, _))| *d == Done::Built)
                .map(|(n, _)| n.clone())
                .collect();
            assert_eq!(rec, built, "{ctx}: exactly the built images are recorded");
            check_exit_code(&run.report, &fail, &ctx);
        }
    }
}

/// The order of a sequential run (`-j 1`) without failures.
fn sequential_order(ws: &mut Workspace, plan: &Plan) -> Vec<String> {
    let (run, _, _cache) = run_failing(ws, plan, &[], 1, false);
    let order = names(&run.calls);
    assert_eq!(order.len(), IMAGES.len(), "{order:?}");
    order
}

#[test]
fn deep_without_keep_going_starts_nothing_after_the_first_failure() {
    let p = dag();
    let mut ws = open(&p, Strategy::Deep);
    let plan = plan_all(&ws);
    let order = sequential_order(&mut ws, &plan);
    // The sequential order is topological.
    for (pos, name) in order.iter().enumerate() {
        for a in ancestors(name) {
            assert!(order[..pos].iter().any(|x| x == a), "{order:?}");
        }
    }
    for fail in subsets() {
        let ctx = format!("-j 1, failing {fail:?}");
        let (run, rec, _cache) = run_failing(&mut ws, &plan, &fail, 1, false);
        let tried = names(&run.calls);
        // What was tried is the sequential order up to the first failure.
        let stop = order.iter().position(|n| fail.contains(&n.as_str()));
        let want_tried = match stop {
            Some(s) => &order[..=s],
            None => &order[..],
        };
        assert_eq!(tried, want_tried, "{ctx}");
        let got = outcomes(&run.report);
        for name in IMAGES {
            let pos = order.iter().position(|n| n == name).unwrap();
            let want = match stop {
                None => (Done::Built, None),
                Some(s) if pos < s => (Done::Built, None),
                Some(s) if pos == s => (Done::Failed, None),
                Some(s) => {
                    let first = &order[s];
                    if ancestors(name).contains(&first.as_str()) {
                        (Done::Skipped, Some(format!("`{first}` failed")))
                    } else {
                        (
                            Done::Skipped,
                            Some(format!("not started: `{first}` failed")),
                        )
                    }
                }
            };
            assert_eq!(got[name], want, "{ctx}: {name}");
        }
        let built: BTreeSet<String> = want_tried[..want_tried.len() - usize::from(stop.is_some())]
            .iter()
            .cloned()
            .collect();
        assert_eq!(rec, built, "{ctx}");
        check_exit_code(&run.report, &fail, &ctx);
    }
}

#[test]
fn shallow_keep_going_skips_nothing_because_of_another_image() {
    let p = dag();
    let mut ws = open(&p, Strategy::Shallow);
    let plan = plan_all(&ws);
    for fail in subsets() {
        for jobs in [1, 3] {
            let ctx = format!("shallow -k -j {jobs}, failing {fail:?}");
            let (run, rec, _cache) = run_failing(&mut ws, &plan, &fail, jobs, true);
            assert_eq!(run.calls.len(), IMAGES.len(), "{ctx}: every image is tried");
            let got = outcomes(&run.report);
            for name in IMAGES {
                let want = if fail.contains(&name) {
                    (Done::Failed, None)
                } else {
                    (Done::Built, None)
                };
                assert_eq!(got[name], want, "{ctx}: {name}");
            }
            assert_eq!(
                rec,
                IMAGES
                    .iter()
                    .filter(|n| !fail.contains(n))
                    .map(ToString::to_string)
                    .collect(),
                "{ctx}"
            );
            check_exit_code(&run.report, &fail, &ctx);
        }
    }
}

#[test]
fn shallow_without_keep_going_starts_nothing_after_the_first_failure() {
    let p = dag();
    let mut ws = open(&p, Strategy::Shallow);
    let plan = plan_all(&ws);
    let order = sequential_order(&mut ws, &plan);
    for fail in subsets() {
        let ctx = format!("shallow -j 1, failing {fail:?}");
        let (run, rec, _cache) = run_failing(&mut ws, &plan, &fail, 1, false);
        let stop = order.iter().position(|n| fail.contains(&n.as_str()));
        let want_tried = match stop {
            Some(s) => &order[..=s],
            None => &order[..],
        };
        assert_eq!(names(&run.calls), want_tried, "{ctx}");
        let got = outcomes(&run.report);
        for (pos, name) in order.iter().enumerate() {
            let want = match stop {
                Some(s) if pos == s => (Done::Failed, None),
                Some(s) if pos > s => (
                    Done::Skipped,
                    Some(format!("not started: `{}` failed", order[s])),
                ),
                _ => (Done::Built, None),
            };
            assert_eq!(got[name], want, "{ctx}: {name}");
        }
        assert_eq!(rec.len(), stop.unwrap_or(order.len()), "{ctx}");
        check_exit_code(&run.report, &fail, &ctx);
    }
}

/// Records the events of a run, and lets a build wait for one.
#[derive(Default)]
struct Events {
    failed: Mutex<Vec<String>>,
    started: Mutex<Vec<String>>,
}

impl Progress for Events {
    fn start(&self, _total: usize) {}
    fn event(&self, e: Event) {
        match e {
            Event::Failed { image, .. } => self.failed.lock().unwrap().push(image.to_string()),
            Event::Started { image, .. } => self.started.lock().unwrap().push(image.to_string()),
            _ => {}
        }
    }
    fn finish(&self) {}
}

#[test]
fn without_keep_going_a_running_build_finishes_and_is_recorded_after_a_failure() {
    let p = dag();
    let ws = open(&p, Strategy::Deep);
    let plan = plan_all(&ws);
    let events = Events::default();
    // base2 stays busy until the scheduler has seen base1 fail, then succeeds.
    let hook: Hook = Box::new(|job: &Job, _: &Procs| {
        if job.image == "base2" {
            wait_until("base1 to fail", || {
                events.failed.lock().unwrap().contains(&"base1".to_string())
            });
        }
    });
    let run = execute(
        &ws,
        &plan,
        Setup {
            jobs: 2,
            fail: &["base1"],
            hook: Some(hook),
            progress: Some(&events),
            ..Setup::default()
        },
    );
    let mut tried = names(&run.calls);
    tried.sort();
    assert_eq!(
        tried,
        ["base1", "base2"],
        "leaf does not start after the failure"
    );
    let got = outcomes(&run.report);
    assert_eq!(got["base2"], (Done::Built, None));
    assert_eq!(
        got["leaf"],
        (Done::Skipped, Some("not started: `base1` failed".into()))
    );
    for below in ["mid", "top", "side"] {
        assert_eq!(got[below], (Done::Skipped, Some("`base1` failed".into())));
    }
    assert_eq!(
        recorded(&ws, &ws.cache),
        BTreeSet::from(["base2".to_string()])
    );
    assert_eq!(run.report.exit_code(), 1);
    let failed = run
        .report
        .images
        .iter()
        .find(|i| i.name == "base1")
        .unwrap();
    assert_eq!(failed.error.as_deref(), Some("base1 was told to fail"));
    let log = std::fs::read_to_string(failed.log.as_deref().unwrap()).unwrap();
    assert!(log.contains("fake build of base1"), "{log}");
    assert!(log.contains("failed: base1 was told to fail"), "{log}");
}

#[test]
fn an_interrupt_records_nothing_of_the_running_build_and_starts_nothing_more() {
    let p = dag();
    let ws = open(&p, Strategy::Deep);
    let plan = plan_all(&ws);
    let interrupt = AtomicI32::new(0);
    // mid is interrupted while it runs, and would succeed but for that.
    let hook: Hook = Box::new(|job: &Job, procs: &Procs| {
        if job.image == "mid" {
            interrupt.store(libc::SIGINT, Ordering::SeqCst);
            wait_until("the scheduler to cancel", || procs.cancelled());
        }
    });
    let run = execute(
        &ws,
        &plan,
        Setup {
            jobs: 1,
            keep_going: true,
            hook: Some(hook),
            interrupt: Some(&interrupt),
            ..Setup::default()
        },
    );
    assert_eq!(run.report.interrupted, Some(libc::SIGINT));
    assert_eq!(run.report.exit_code(), 130);
    let got = outcomes(&run.report);
    assert_eq!(got["mid"].0, Done::Failed);
    let mid = run.report.images.iter().find(|i| i.name == "mid").unwrap();
    assert_eq!(mid.error.as_deref(), Some("interrupted"));
    let tried = names(&run.calls);
    assert_eq!(tried.last().map(String::as_str), Some("mid"), "{tried:?}");
    let rec = recorded(&ws, &ws.cache);
    assert!(!rec.contains("mid"));
    for name in IMAGES {
        if !tried.iter().any(|t| t == name) {
            assert_eq!(
                got[name],
                (Done::Skipped, Some("interrupted".into())),
                "{name}"
            );
        }
    }
    let built: BTreeSet<String> = tried[..tried.len() - 1].iter().cloned().collect();
    assert_eq!(rec, built);
}

#[test]
fn parallel_shallow_builds_sharing_a_role_all_record() {
    // Every image applies `base` and all of them start at once: their records share one
    // role tree file in the cache.
    let p = dag();
    for _ in 0..5 {
        let mut ws = open(&p, Strategy::Shallow);
        let plan = plan_all(&ws);
        let (run, rec, _cache) = run_failing(&mut ws, &plan, &[], 6, false);
        let errors: Vec<_> = run
            .report
            .images
            .iter()
            .filter_map(|i| i.error.clone())
            .collect();
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(rec.len(), 6);
    }
}
