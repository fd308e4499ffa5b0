//! Scheduling overhead of `layer build` (issue: build engine, "Speed").
//!
//! 200 images in a DAG of depth 5 whose builds each take 50 ms, built at `-j 8`. The bound is
//! max(critical path, total work / 8) = max(5 x 50 ms, 200 x 50 ms / 8) = 1.25 s; the ratio
//! wall / bound is the overhead. Measured in the same run, interleaved, each round on fresh
//! projects (`ROUNDS`, default 5; medians):
//!
//! - in process: a builder that sleeps 50 ms (the scheduler, locks, logs, records alone);
//! - through the CLI: the `command` backend running `sleep 0.05` (adds a process per build);
//! - plain processes, the CLI row's anchor: the same 200 commands with the same dependencies,
//!   each started as soon as its parent is done, 8 at a time, by threads of this example and
//!   nothing else. A shell and a `sleep` take a few ms to start (2 ms on a quiet machine, 10
//!   on a loaded one), which no scheduler can save: the CLI row is also given against this.
//!
//! Run: `cargo run --release --example schedule`

use std::collections::{BTreeMap, VecDeque};
use std::fs;
use std::path::Path;
use std::sync::atomic::AtomicI32;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use layer::backend::{Builder, Built, Job, Log, Procs};
use layer::exec::{self, Env, Options};
use layer::plan::Selection;
use layer::progress::Plain;
use layer::workspace::Workspace;

const IMAGES: usize = 200;
const DEPTH: usize = 5;
const BUILD: Duration = Duration::from_millis(50);
const JOBS: usize = 8;

struct Sleep;

impl Builder for Sleep {
    fn build(&self, job: &Job, _log: Log, _procs: &Procs) -> Result<Built, String> {
        std::thread::sleep(BUILD);
        Ok(Built {
            id: format!("id-{}", job.image),
            local: None,
            remote: None,
            packages: None,
        })
    }
}

/// Writes the project: level 0 has 40 roots on one origin; each image of level k > 0 is
/// built from an image of level k - 1.
fn write_project(root: &Path, command: &str) {
    fs::create_dir_all(root.join("images")).unwrap();
    fs::create_dir_all(root.join("roles/r")).unwrap();
    fs::write(root.join("roles/r/provision.sh"), "true\n").unwrap();
    fs::write(
        root.join("layer.toml"),
        format!(
            "[project]\nbackend = \"b\"\n[origins.o]\nid = \"ami-0\"\n[backends.b]\nkind = \"command\"\ncommand = [\"sh\", \"-c\", {command:?}]\n"
        ),
    )
    .unwrap();
    let per_level = IMAGES / DEPTH;
    for level in 0..DEPTH {
        for k in 0..per_level {
            let name = format!("l{level}-{k:03}");
            let base = if level == 0 {
                "origin = \"o\"".to_string()
            } else {
                format!("from = \"l{}-{:03}\"", level - 1, (k * 7) % per_level)
            };
            fs::write(
                root.join(format!("images/{name}.toml")),
                format!("{base}\nroles = [\"r\"]\n"),
            )
            .unwrap();
        }
    }
}

fn main() {
    let rounds: usize = std::env::var("ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(5);
    let dir = std::env::temp_dir().join("layer-schedule-bench");
    // Leftovers of an interrupted run only: a run removes its projects when it ends, not right
    // before it measures (on ext4 without a journal, files deleted in the last 30 s slow down
    // every file made after them, which would charge one row for the other's clean-up).
    let _ = fs::remove_dir_all(&dir);
    let bound = (BUILD * DEPTH as u32).max(BUILD * IMAGES as u32 / JOBS as u32);
    let (mut inproc, mut cli, mut plain) = (Vec::new(), Vec::new(), Vec::new());
    // Interleaved: the machine is shared, so each round measures both rows, each on a project
    // of its own that nothing has built yet.
    for round in 0..rounds {
        inproc.push(in_process(&dir.join(format!("inproc-{round}"))));
        cli.push(through_cli(&dir.join(format!("cli-{round}"))));
        plain.push(plain_processes(&dir.join(format!("plain-{round}"))));
    }
    let _ = fs::remove_dir_all(&dir);

    println!(
        "scheduling overhead: {IMAGES} images, depth {DEPTH}, {} ms builds, -j {JOBS}, median of {rounds} rounds (interleaved)",
        BUILD.as_millis()
    );
    println!(
        "bound max(critical path, work / jobs) = {} ms",
        bound.as_millis()
    );
    // Each round's CLI run beside the plain run taken right after it: the load of the moment
    // weighs on both.
    let mut paired: Vec<f64> = cli
        .iter()
        .zip(&plain)
        .map(|(c, p)| c.as_secs_f64() / p.as_secs_f64())
        .collect();
    paired.sort_by(f64::total_cmp);
    let mut rows = [
        ("in process (sleeping builder)", inproc),
        ("CLI, command backend (sleep 0.05)", cli),
        ("plain processes (the same commands)", plain),
    ];
    let mut medians = [Duration::ZERO; 3];
    for ((what, times), median) in rows.iter_mut().zip(&mut medians) {
        times.sort();
        *median = times[times.len() / 2];
        println!(
            "{what:36} {:6} ms  ratio {:.3}  (min {:.3}, max {:.3})",
            median.as_millis(),
            median.as_secs_f64() / bound.as_secs_f64(),
            times[0].as_secs_f64() / bound.as_secs_f64(),
            times[times.len() - 1].as_secs_f64() / bound.as_secs_f64()
        );
    }
    println!(
        "CLI / plain processes: {:.3} (the scheduler's overhead beyond the commands' own)",
        medians[1].as_secs_f64() / medians[2].as_secs_f64()
    );
    println!(
        "CLI / plain processes, round by round: median {:.3} (min {:.3}, max {:.3})",
        paired[paired.len() / 2],
        paired[0],
        paired[paired.len() - 1]
    );
}

/// The CLI row's commands, run with the same dependencies and at most `JOBS` at a time by
/// threads of this process that do nothing else: each image starts as soon as its parent is
/// done (level 0 at once), in the order the images became ready.
fn plain_processes(root: &Path) -> Duration {
    fs::create_dir_all(root).unwrap();
    let per_level = IMAGES / DEPTH;
    let mut children = vec![Vec::new(); IMAGES];
    for level in 1..DEPTH {
        for k in 0..per_level {
            let parent = (level - 1) * per_level + (k * 7) % per_level;
            children[parent].push(level * per_level + k);
        }
    }
    // Ready images and how many are done.
    let state = Mutex::new(((0..per_level).collect::<VecDeque<_>>(), 0usize));
    let changed = Condvar::new();
    let t = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..JOBS {
            scope.spawn(|| loop {
                let mut s = state.lock().unwrap();
                let i = loop {
                    if s.1 == IMAGES {
                        return;
                    }
                    if let Some(i) = s.0.pop_front() {
                        break i;
                    }
                    s = changed.wait(s).unwrap();
                };
                drop(s);
                let (level, k) = (i / per_level, i % per_level);
                let status = std::process::Command::new("sh")
                    .args(["-c", "sleep 0.05; echo id-$LAYER_IMAGE > $LAYER_OUTPUT"])
                    .env("LAYER_IMAGE", format!("l{level}-{k:03}"))
                    .env("LAYER_OUTPUT", root.join(format!("out-{i}")))
                    .status()
                    .expect("sh runs");
                assert!(status.success());
                let mut s = state.lock().unwrap();
                s.0.extend(&children[i]);
                s.1 += 1;
                changed.notify_all();
            });
        }
    });
    t.elapsed()
}

/// One build of the project at `root` (written here) with a builder that sleeps, in process:
/// the scheduler, locks, logs and records alone.
fn in_process(root: &Path) -> Duration {
    write_project(root, "unused");
    let ws = Workspace::open(root, None, None).expect("project loads");
    let plan = ws.plan(&Selection::default());
    assert_eq!(plan.summary.build, IMAGES);
    let mut builders: BTreeMap<String, Box<dyn Builder>> = BTreeMap::new();
    builders.insert("b".into(), Box::new(Sleep));
    let run = ws.cache.start_run().unwrap();
    let procs = Procs::default();
    let interrupt = AtomicI32::new(0);
    let progress = Plain { quiet: true };
    let env = Env {
        ws: &ws,
        builders: &builders,
        progress: &progress,
        procs: &procs,
        interrupt: &interrupt,
        work_dir: &run.dir,
        commit: "bench".into(),
        secrets: vec![Vec::new(); IMAGES],
        remote: None,
    };
    let t = Instant::now();
    let report = exec::execute(
        &env,
        &plan,
        &Options {
            jobs: JOBS,
            keep_going: false,
            force: false,
            pull: false,
            keep_failed: false,
            reheat: None,
        },
    );
    let took = t.elapsed();
    assert_eq!(report.count(exec::Done::Built), IMAGES);
    took
}

/// One `layer build` of the project at `root` (written here) with the command backend, which
/// adds a process per build.
fn through_cli(root: &Path) -> Duration {
    write_project(root, "sleep 0.05; echo id-$LAYER_IMAGE > $LAYER_OUTPUT");
    let exe = std::env::current_exe().unwrap();
    let layer = exe.parent().unwrap().parent().unwrap().join("layer");
    let t = Instant::now();
    let status = std::process::Command::new(&layer)
        .args([
            "-C",
            root.to_str().unwrap(),
            "build",
            "-q",
            "-j",
            &JOBS.to_string(),
        ])
        .status()
        .expect("target/release/layer exists: run `cargo build --release` first");
    let took = t.elapsed();
    assert!(status.success());
    took
}
