//! Scheduling overhead of `layer build` (issue: build engine, "Speed").
//!
//! 200 images in a DAG of depth 5 whose builds each take 50 ms, built at `-j 8`. The bound is
//! max(critical path, total work / 8) = max(5 x 50 ms, 200 x 50 ms / 8) = 1.25 s; the ratio
//! wall / bound is the overhead. Measured in the same run, interleaved, each round on fresh
//! projects (`ROUNDS`, default 5; medians):
//!
//! - in process: a builder that sleeps 50 ms (the scheduler, locks, logs, records alone);
//! - through the CLI: the `command` backend running `sleep 0.05` (adds a process per build).
//!
//! Run: `cargo run --release --example schedule`

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::sync::atomic::AtomicI32;
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
    let (mut inproc, mut cli) = (Vec::new(), Vec::new());
    // Interleaved: the machine is shared, so each round measures both rows, each on a project
    // of its own that nothing has built yet.
    for round in 0..rounds {
        inproc.push(in_process(&dir.join(format!("inproc-{round}"))));
        cli.push(through_cli(&dir.join(format!("cli-{round}"))));
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
    for (what, mut times) in [
        ("in process (sleeping builder)", inproc),
        ("CLI, command backend (sleep 0.05)", cli),
    ] {
        times.sort();
        let median = times[times.len() / 2];
        println!(
            "{what:36} {:6} ms  ratio {:.3}  (min {:.3}, max {:.3})",
            median.as_millis(),
            median.as_secs_f64() / bound.as_secs_f64(),
            times[0].as_secs_f64() / bound.as_secs_f64(),
            times[times.len() - 1].as_secs_f64() / bound.as_secs_f64()
        );
    }
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
