//! `layer plan --format matrix|gitlab`: the images to build, spread over CI jobs. A job per
//! image runs `layer build IMAGE` against the remote cache: it pulls its parent's build, builds
//! the image and pushes it, so an image's job can start once its parent's job has finished.
//!
//! - `matrix`: the plan's waves for GitHub Actions, `{"waves": [["IMAGE", ...], ...],
//!   "count": N}` on one line (a step output is one line), each wave a job matrix.
//! - `gitlab`: a GitLab CI child pipeline, one job per image with `needs:` on its parent's job
//!   when the parent is built too; GitLab runs the DAG itself. Written by hand: it is a few
//!   lines of YAML, and every string in it is a name (`[a-z0-9][a-z0-9_-]*`) or ours.

use std::fmt::Write;

use serde::Serialize;

use crate::model::Strategy;
use crate::plan::{Plan, PlannedImage};

/// The images to build, by wave, in plan order within a wave.
fn waves(plan: &Plan) -> Vec<Vec<&PlannedImage>> {
    let mut waves: Vec<Vec<&PlannedImage>> = Vec::new();
    for img in plan.to_build() {
        let w = img.wave.expect("an image to build has a wave");
        if waves.len() <= w {
            waves.resize_with(w + 1, Vec::new);
        }
        waves[w].push(img);
    }
    waves
}

#[derive(Serialize)]
struct Matrix<'a> {
    waves: Vec<Vec<&'a str>>,
    count: usize,
}

/// `{"waves": [["IMAGE", ...], ...], "count": N}` and a newline: the images to build grouped
/// by wave (wave 0 first), `count` of them in all. Nothing to build is `{"waves": [],
/// "count": 0}`.
pub fn plan_matrix(plan: &Plan) -> String {
    let matrix = Matrix {
        waves: waves(plan)
            .iter()
            .map(|w| w.iter().map(|i| i.name.as_str()).collect())
            .collect(),
        count: plan.summary.build,
    };
    let mut out = serde_json::to_string(&matrix).expect("the matrix serializes");
    out.push('\n');
    out
}

/// A double-quoted YAML string.
fn quoted(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The name of the job that builds `image`.
fn job(image: &str) -> String {
    quoted(&format!("build:{image}"))
}

/// A GitLab CI child pipeline: a stage per wave, a job per image to build running `layer
/// build --strategy S IMAGE`, with `needs:` on the job of its parent when the parent is built
/// too (deep plans; a shallow build needs no parent) and `needs: []` otherwise, so each job
/// starts as soon as what it builds on is pushed. The file holds only `stages` and jobs, so a
/// file of `default:` settings (image, tags, `before_script`) can be put in front of it.
///
/// With nothing to build the pipeline is one job that does nothing: GitLab refuses a child
/// pipeline without jobs.
pub fn plan_gitlab(plan: &Plan) -> String {
    let strategy = plan.strategy.as_str();
    let waves = waves(plan);
    let mut out = String::new();
    if waves.is_empty() {
        let _ = writeln!(
            out,
            "# layer plan ({strategy}): nothing to build.\n\
             # GitLab refuses a child pipeline without jobs, so this one has a job that does nothing.\n\
             \"nothing to build\":\n  script:\n    - echo \"nothing to build\""
        );
        return out;
    }
    let count = plan.summary.build;
    let _ = writeln!(
        out,
        "# layer plan ({strategy}): {count} {} to build in {} {}, a job each.\n\
         # Each job runs `layer build` against the remote cache: it pulls the build its image\n\
         # is made on, builds the image and pushes it. Made by `layer plan --format gitlab`.\n",
        if count == 1 { "image" } else { "images" },
        waves.len(),
        if waves.len() == 1 { "wave" } else { "waves" },
    );
    out.push_str("stages:\n");
    for w in 0..waves.len() {
        let _ = writeln!(out, "  - wave-{w}");
    }
    for (w, images) in waves.iter().enumerate() {
        for img in images {
            let needs = match (&img.parent, plan.strategy) {
                (Some(p), Strategy::Deep) if w > 0 => format!("[{}]", job(p)),
                _ => "[]".to_string(),
            };
            let _ = write!(
                out,
                "\n{}:\n  stage: wave-{w}\n  needs: {needs}\n  script:\n    - layer build --strategy {strategy} {}\n",
                job(&img.name),
                img.name
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Action, Summary, PLAN_SCHEMA};

    fn image(name: &str, parent: Option<&str>, wave: Option<usize>) -> PlannedImage {
        PlannedImage {
            name: name.into(),
            key: "0".repeat(64),
            action: if wave.is_some() {
                Action::Build
            } else {
                Action::Fresh
            },
            reasons: vec![],
            parent: parent.map(str::to_string),
            origin: None,
            roles: vec![],
            wave,
            pin: None,
            cached: None,
        }
    }

    fn plan(strategy: Strategy, images: Vec<PlannedImage>) -> Plan {
        let build = images.iter().filter(|i| i.wave.is_some()).count();
        Plan {
            schema: PLAN_SCHEMA,
            strategy,
            since: None,
            summary: Summary {
                build,
                fresh: images.len() - build,
                skip: 0,
            },
            images,
        }
    }

    #[test]
    fn waves_keep_plan_order_and_skip_fresh_images() {
        let p = plan(
            Strategy::Deep,
            vec![
                image("base", None, None),
                image("app", Some("base"), Some(0)),
                image("node", Some("base"), Some(0)),
                image("svc", Some("app"), Some(1)),
            ],
        );
        assert_eq!(
            plan_matrix(&p),
            "{\"waves\":[[\"app\",\"node\"],[\"svc\"]],\"count\":3}\n"
        );
        assert_eq!(
            plan_matrix(&plan(Strategy::Deep, vec![image("base", None, None)])),
            "{\"waves\":[],\"count\":0}\n"
        );
    }

    #[test]
    fn a_job_needs_its_parent_only_when_the_parent_is_built_in_a_deep_plan() {
        let p = plan(
            Strategy::Deep,
            vec![
                image("base", None, None),
                image("app", Some("base"), Some(0)),
                image("svc", Some("app"), Some(1)),
            ],
        );
        let y = plan_gitlab(&p);
        assert!(
            y.contains("\"build:app\":\n  stage: wave-0\n  needs: []\n"),
            "{y}"
        );
        assert!(
            y.contains("\"build:svc\":\n  stage: wave-1\n  needs: [\"build:app\"]\n"),
            "{y}"
        );
        assert!(!y.contains("build:base"), "{y}");
        // Shallow: every image is built on its origin, in wave 0, needing nothing.
        let p = plan(
            Strategy::Shallow,
            vec![
                image("base", None, Some(0)),
                image("app", Some("base"), Some(0)),
            ],
        );
        let y = plan_gitlab(&p);
        assert_eq!(y.matches("needs: []").count(), 2, "{y}");
        assert!(y.contains("layer build --strategy shallow app\n"), "{y}");
    }
}
