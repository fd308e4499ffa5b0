//! Scheduling overhead of `layer build` (issue: build engine, "Speed").
//!
//! 200 images in a DAG of depth 5 whose builds each take 50 ms, built at `-j 8`. The bound is
//! max(critical path, total work / 8) = max(5 x 50 ms, 200 x 50 ms / 8) = 1.25 s; the ratio
//! wall / bound is the overhead. Measured twice in the same run:
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
    let _ = fs::remove_dir_all(root);
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
    let dir = std::env::temp_dir().join("layer-schedule-bench");
    let bound = (BUILD * DEPTH as u32).max(BUILD * IMAGES as u32 / JOBS as u32);

    // In process.
    let root = dir.join("inproc");
    write_project(&root, "unused");
    let ws = Workspace::open(&root, None, None).expect("project loads");
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
    let inproc = t.elapsed();
    assert_eq!(report.count(exec::Done::Built), IMAGES);

    // Through the CLI with the command backend.
    let root = dir.join("cli");
    write_project(&root, "sleep 0.05; echo id-$LAYER_IMAGE > $LAYER_OUTPUT");
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
    let cli = t.elapsed();
    assert!(status.success());

    println!(
        "scheduling overhead: {IMAGES} images, depth {DEPTH}, {} ms builds, -j {JOBS}",
        BUILD.as_millis()
    );
    println!(
        "bound max(critical path, work / jobs) = {} ms",
        bound.as_millis()
    );
    for (what, t) in [
        ("in process (sleeping builder)", inproc),
        ("CLI, command backend (sleep 0.05)", cli),
    ] {
        println!(
            "{what:36} {:6} ms  ratio {:.3}",
            t.as_millis(),
            t.as_secs_f64() / bound.as_secs_f64()
        );
    }
}
