//! `layer test`: the tests of each built image, each in a throwaway instance; results on
//! stderr as they come, and with `--json` on stdout.

use clap::Args;

use super::args::{Global, JsonResults, StrategyArg};
use super::print::out;
use super::resolve::{jobs, open, resolve_targets};
use crate::backend::rootfs::check;
use crate::error::{Error, ErrorKind, Result};
use crate::model::Strategy;
use crate::record::Record;
use crate::render::{self, Style};

/// The flags of `layer test`.
#[derive(Args, Debug)]
pub struct TestArgs {
    /// Images to test, each its build of the current inputs, or `IMAGE@VERSION` for another
    /// build (a reheat, say) [default: all]
    targets: Vec<String>,
    #[command(flatten)]
    json: JsonResults,
    /// How long a test may run before it is stopped and fails (`90s`, `5m`, `2h`; a bare
    /// number is seconds)
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = super::args::parse_seconds)]
    timeout: u64,
    /// Test the builds of this strategy [default: `[project].strategy`]
    #[arg(long, value_enum)]
    strategy: Option<StrategyArg>,
}

/// The build `IMAGE@VERSION` names, to test: a local `rootfs` build.
fn named_build(ws: &crate::workspace::Workspace, target: &str) -> Result<(usize, Record)> {
    let (name, spec) = crate::version::split_target(target);
    let i = resolve_targets(&ws.project, &[name.to_string()])?[0];
    let records = ws.cache.records(name);
    let r = crate::release::find(&records, name, spec)?;
    if r.artifact.path.is_none() || !ws.cache.artifact_exists(r) {
        return Err(Error::Usage {
            kind: ErrorKind::NotRootfs,
            message: format!(
                "{name} {} has no local artifact: `layer test` runs builds of the `rootfs` backend",
                crate::version::short(&r.version)
            ),
            hint: Some("test cloud images in your pipeline after `layer build`".into()),
        });
    }
    Ok((i, r.clone()))
}

pub fn run(g: &Global, args: &TestArgs, style: Style) -> Result<i32> {
    let ws = open(g, args.strategy.map(Strategy::from))?;
    let (versioned, current): (Vec<&String>, Vec<&String>) =
        args.targets.iter().partition(|t| t.contains('@'));
    let current: Vec<String> = current.into_iter().cloned().collect();
    let mut selected = resolve_targets(&ws.project, &current)?;
    if selected.is_empty() && versioned.is_empty() {
        selected = (0..ws.project.images.len()).collect();
    }
    let mut images = check::records_to_test(&ws, &selected)?;
    for t in versioned {
        images.push(named_build(&ws, t)?);
    }
    if let Some((i, _)) = images.first() {
        crate::backend::rootfs::check_root(&ws.project.images[*i].name, "tested")?;
    }
    let started = std::time::Instant::now();
    let procs = crate::backend::Procs::default();
    let quiet = g.quiet;
    let print = |r: &check::ImageTests| {
        if !quiet {
            eprint!("{}", render::image_tests_text(r, style));
        }
    };
    let results = check::run(&ws, &images, jobs(g), args.timeout, &procs, &print)?;
    if args.json.json() {
        out(&render::json(&results))?;
    }
    let failed = results
        .iter()
        .filter(|r| r.result != "passed" && r.result != "no-tests")
        .count();
    let untested = results.iter().filter(|r| r.result == "no-tests").count();
    if !quiet {
        let tests: usize = results.iter().map(|r| r.tests.len()).sum();
        let passed: usize = results
            .iter()
            .map(|r| r.tests.iter().filter(|t| t.passed).count())
            .sum();
        eprintln!(
            "tested {} images: {passed} of {tests} tests passed, {failed} images failed{} in {:.1}s",
            results.len() - untested,
            match untested {
                0 => String::new(),
                1 => ", 1 image has no tests".into(),
                n => format!(", {n} images have no tests"),
            },
            started.elapsed().as_secs_f64()
        );
    }
    Ok(if failed > 0 { 1 } else { 0 })
}
