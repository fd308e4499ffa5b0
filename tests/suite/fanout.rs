//! CI fan-out: `layer plan --format matrix|gitlab` (the images to build as CI jobs), the jobs
//! run as a CI would run them, what `--since` says of a pull request on a runner without a
//! cache, and doc/ci.md's YAML.

use std::collections::BTreeMap;

use serde_json::json;

use crate::common::{self, git, Project};

/// `cloud -> base -> app -> svc`, and `node` on `base`, built by the `command` backend.
fn estate() -> Project {
    let p = Project::command_estate(&format!("{}{}", common::SCRIPT_START, common::SCRIPT_DONE));
    p.file(
        "images/node.toml",
        "version = \"1.0\"\nfrom = \"base\"\nroles = [\"web\"]\n",
    );
    p
}

/// `layer ARGS`, exit 0, stdout; stderr must be empty.
fn stdout(p: &Project, args: &[&str]) -> String {
    let out = p.layer(args).expect(0);
    assert_eq!(out.stderr, "", "{args:?}: nothing on stderr");
    out.stdout
}

fn matrix(p: &Project, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["plan", "--format", "matrix"];
    args.extend_from_slice(extra);
    let out = stdout(p, &args);
    assert_eq!(out.lines().count(), 1, "one line, for a step output: {out}");
    serde_json::from_str(&out).unwrap()
}

/// A job of a GitLab pipeline, as GitLab reads it.
#[derive(Debug, PartialEq)]
struct Job {
    stage: Option<String>,
    needs: Option<Vec<String>>,
    script: Vec<String>,
}

/// `layer plan --format gitlab` parsed back as YAML, checked as GitLab checks a pipeline: every
/// job has a script, a declared stage, and needs that name jobs of the pipeline. Jobs by name.
fn gitlab(p: &Project, extra: &[&str]) -> (String, BTreeMap<String, Job>) {
    let mut args = vec!["plan", "--format", "gitlab"];
    args.extend_from_slice(extra);
    let yaml = stdout(p, &args);
    let doc: serde_json::Value =
        serde_norway::from_str(&yaml).unwrap_or_else(|e| panic!("{e}:\n{yaml}"));
    let top = doc.as_object().expect("a mapping");
    let stages: Vec<String> = top
        .get("stages")
        .map(|s| serde_json::from_value(s.clone()).unwrap())
        .unwrap_or_default();
    let strings =
        |v: &serde_json::Value| -> Vec<String> { serde_json::from_value(v.clone()).unwrap() };
    let jobs: BTreeMap<String, Job> = top
        .iter()
        .filter(|(k, _)| *k != "stages")
        .map(|(name, job)| {
            let job = Job {
                stage: job.get("stage").map(|s| s.as_str().unwrap().to_string()),
                needs: job.get("needs").map(strings),
                script: strings(&job["script"]),
            };
            (name.clone(), job)
        })
        .collect();
    assert!(
        !jobs.is_empty(),
        "GitLab refuses a pipeline without jobs:\n{yaml}"
    );
    for (name, job) in &jobs {
        assert!(!job.script.is_empty(), "{name}: a script");
        if let Some(stage) = &job.stage {
            assert!(
                stages.contains(stage),
                "{name}: stage `{stage}` is declared"
            );
        }
        for need in job.needs.iter().flatten() {
            assert!(
                jobs.contains_key(need),
                "{name}: needs `{need}`, a job here"
            );
        }
    }
    (yaml, jobs)
}

fn job(stage: &str, needs: &[&str], script: &str) -> Job {
    Job {
        stage: Some(stage.into()),
        needs: Some(needs.iter().map(ToString::to_string).collect()),
        script: vec![script.into()],
    }
}

#[test]
fn never_built_every_image_is_a_job_in_its_wave() {
    let p = estate();
    let m = matrix(&p, &[]);
    assert_eq!(
        m,
        json!({"waves": [["base"], ["app", "node"], ["svc"]], "count": 4})
    );
    let (yaml, jobs) = gitlab(&p, &[]);
    insta::assert_snapshot!("gitlab_never_built", yaml);
    let expect = BTreeMap::from([
        (
            "build:base".to_string(),
            job("wave-0", &[], "layer build --strategy deep base"),
        ),
        (
            "build:app".to_string(),
            job("wave-1", &["build:base"], "layer build --strategy deep app"),
        ),
        (
            "build:node".to_string(),
            job(
                "wave-1",
                &["build:base"],
                "layer build --strategy deep node",
            ),
        ),
        (
            "build:svc".to_string(),
            job("wave-2", &["build:app"], "layer build --strategy deep svc"),
        ),
    ]);
    assert_eq!(jobs, expect);
}

#[test]
fn a_partly_stale_estate_builds_the_stale_images_only() {
    let p = estate();
    p.record(&[]);
    p.file(
        "roles/app/provision.sh",
        "echo \"role=$LAYER_ROLE 2\" >> /provisioned\n",
    );
    insta::assert_snapshot!(stdout(&p, &["plan", "--format", "matrix"]), @r#"{"waves":[["app"],["svc"]],"count":2}"#);
    let (yaml, jobs) = gitlab(&p, &[]);
    insta::assert_snapshot!("gitlab_partly_stale", yaml);
    // `app`'s parent is fresh: its job needs nothing.
    assert_eq!(jobs["build:app"].needs, Some(vec![]));
    assert_eq!(jobs["build:svc"].needs, Some(vec!["build:app".to_string()]));
    assert_eq!(jobs.len(), 2);
    // doc/ci.md shows this very pipeline.
    assert!(doc_ci().contains(&yaml), "doc/ci.md shows:\n{yaml}");
}

#[test]
fn nothing_to_build_is_still_a_valid_pipeline() {
    let p = estate();
    p.record(&[]);
    assert_eq!(matrix(&p, &[]), json!({"waves": [], "count": 0}));
    let (yaml, jobs) = gitlab(&p, &[]);
    insta::assert_snapshot!(yaml, @r#"
    # layer plan (deep): nothing to build.
    # GitLab refuses a child pipeline without jobs, so this one has a job that does nothing.
    "nothing to build":
      script:
        - echo "nothing to build"
    "#);
    assert_eq!(jobs.len(), 1);
    // The job runs a shell command that succeeds.
    let only = &jobs["nothing to build"];
    assert_eq!(only.needs, None);
    let status = std::process::Command::new("sh")
        .args(["-c", &only.script[0]])
        .output()
        .unwrap();
    assert!(status.status.success());
}

#[test]
fn shallow_plans_are_one_wave_and_need_no_parent() {
    let p = estate();
    assert_eq!(
        matrix(&p, &["--strategy", "shallow"]),
        json!({"waves": [["base", "app", "node", "svc"]], "count": 4})
    );
    let (_, jobs) = gitlab(&p, &["--strategy", "shallow"]);
    assert_eq!(jobs.len(), 4);
    for (name, job) in &jobs {
        assert_eq!(job.needs, Some(vec![]), "{name}");
        assert_eq!(job.stage.as_deref(), Some("wave-0"));
        assert!(job.script[0].starts_with("layer build --strategy shallow "));
    }
}

#[test]
fn targets_and_changed_narrow_the_jobs() {
    let p = estate();
    assert_eq!(
        matrix(&p, &["svc"]),
        json!({"waves": [["base"], ["app"], ["svc"]], "count": 3})
    );
    p.record(&[]);
    p.file("roles/web/provision.sh", "echo web 2 >> /provisioned\n");
    assert_eq!(
        matrix(&p, &["--changed"]),
        json!({"waves": [["node", "svc"]], "count": 2})
    );
    let (_, jobs) = gitlab(&p, &["--changed"]);
    assert_eq!(jobs.keys().collect::<Vec<_>>(), ["build:node", "build:svc"]);
}

/// Builds started so far: the `start IMAGE` lines the backend wrote.
fn starts(p: &Project) -> usize {
    std::fs::read_to_string(p.path("out/marks"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with("start "))
        .count()
}

/// The `layer build ...` line of a job, as arguments of the binary.
fn layer_args(line: &str) -> Vec<&str> {
    let words: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(words[0], "layer", "{line}");
    words[1..].to_vec()
}

#[test]
fn the_jobs_build_each_image_once_as_a_ci_runs_them() {
    // One cache stands for the remote: each job finds its parent built by an earlier job.
    let p = estate();
    let (_, jobs) = gitlab(&p, &[]);
    let mut done: Vec<String> = Vec::new();
    while done.len() < jobs.len() {
        // The jobs whose needs are done, as GitLab starts them.
        let ready: Vec<&String> = jobs
            .iter()
            .filter(|(n, j)| {
                !done.contains(n) && j.needs.iter().flatten().all(|x| done.contains(x))
            })
            .map(|(n, _)| n)
            .collect();
        assert!(!ready.is_empty(), "jobs wait on each other: {jobs:?}");
        for name in ready {
            let image = name.strip_prefix("build:").unwrap();
            p.layer(&layer_args(&jobs[name].script[0])).expect(0);
            // The job built its image, and nothing else.
            assert_eq!(p.count_lines("out/marks", &format!("start {image}")), 1);
            done.push(name.clone());
            assert_eq!(starts(&p), done.len());
        }
    }
    assert_eq!(matrix(&p, &[]), json!({"waves": [], "count": 0}));

    // The matrix, a wave after the other, does the same.
    let p = estate();
    let m = matrix(&p, &[]);
    let mut built = 0;
    for wave in m["waves"].as_array().unwrap() {
        for image in wave.as_array().unwrap() {
            p.layer(&["build", image.as_str().unwrap()]).expect(0);
            built += 1;
            assert_eq!(starts(&p), built);
        }
    }
    assert_eq!(built, m["count"]);
    assert_eq!(matrix(&p, &[])["count"], 0);
}

// ---------------------------------------------------------------------------------------------
// `--since`: the change itself, and what is built only for want of a cache

fn commit_all(p: &Project, message: &str) {
    git(p.root(), &["add", "-A"]);
    git(p.root(), &["commit", "-q", "--allow-empty", "-m", message]);
}

/// The estate committed, then `app`'s role edited in the work tree; no cache.
fn pull_request() -> Project {
    let p = estate();
    git(p.root(), &["init", "-q"]);
    commit_all(&p, "one");
    p.file(
        "roles/app/provision.sh",
        "echo \"role=$LAYER_ROLE 2\" >> /provisioned\n",
    );
    p
}

/// `layer plan --since HEAD ARGS`, the commit's name replaced by `[COMMIT]`.
fn since(p: &Project, extra: &[&str]) -> String {
    let mut args = vec!["plan", "--since", "HEAD"];
    args.extend_from_slice(extra);
    let head = git(p.root(), &["rev-parse", "HEAD"]);
    stdout(p, &args).replace(&head.trim()[..12], "[COMMIT]")
}

#[test]
fn without_a_cache_the_headline_counts_the_change_and_lists_the_rest_as_not_cached() {
    let p = pull_request();
    // `base` is unchanged, but a runner without a cache builds it: `not cached`, apart.
    insta::assert_snapshot!(since(&p, &[]), @r"
    deep plan: 3 to build, 0 fresh, 1 skipped
    since HEAD ([COMMIT]): 2 changed, 1 not cached, 0 removed
      build  base  wave 0  not cached
      build  app   wave 1  role `app` changed: roles/app/provision.sh
      skip   node  not cached
      build  svc   wave 2  parent `app` changed
    ");
    insta::assert_snapshot!(
        "since_not_cached_markdown",
        since(&p, &["--format", "markdown"])
    );
    let plan = p.plan_json(&["--since", "HEAD"]);
    assert_eq!(plan["since"]["changed"], json!(["app", "svc"]));
    assert_eq!(
        plan["images"][0]["reasons"],
        json!([{"kind": "not-cached"}])
    );

    // With main's builds in the cache, only the change is built, and nothing is `not cached`.
    git(p.root(), &["stash", "-q"]);
    p.record(&[]);
    git(p.root(), &["stash", "pop", "-q"]);
    let text = since(&p, &[]);
    assert!(
        text.starts_with("deep plan: 2 to build, 1 fresh, 1 skipped\nsince HEAD ([COMMIT]): 2 changed, 0 not cached, 0 removed\n"),
        "{text}"
    );
    let md = since(&p, &["--format", "markdown"]);
    assert!(
        md.contains("**2 of 4 images changed** since `HEAD` (`[COMMIT]`): `app` (role `app` changed); 1 more built on a changed parent.\n"),
        "{md}"
    );
    assert!(!md.contains("Not cached"), "{md}");
}

#[test]
fn a_new_image_is_a_change_and_a_removed_one_is_listed() {
    let p = pull_request();
    p.remove("images/node.toml");
    p.file(
        "images/edge.toml",
        "version = \"1.0\"\nfrom = \"base\"\nroles = [\"web\"]\n",
    );
    let text = since(&p, &[]);
    assert!(
        text.contains("since HEAD ([COMMIT]): 3 changed, 1 not cached, 1 removed\n"),
        "{text}"
    );
    assert!(
        text.contains("  build  edge  wave 1  never built\n"),
        "{text}"
    );
    let md = since(&p, &["--format", "markdown"]);
    assert!(
        md.contains("**3 of 4 images changed** since `HEAD` (`[COMMIT]`): `app` (role `app` changed); `edge` (never built); 1 more built on a changed parent.\n"),
        "{md}"
    );
    assert!(md.contains("\n**Not cached** (unchanged since `HEAD`, built only because no cache holds them): `base`.\n"), "{md}");
    assert!(md.contains("\nRemoved: `node`.\n"), "{md}");
}

#[test]
fn changed_images_already_built_are_counted_and_nothing_is_to_build() {
    let p = pull_request();
    p.record(&[]);
    let md = since(&p, &["--format", "markdown"]);
    assert!(
        md.contains("**Nothing to build** since `HEAD` (`[COMMIT]`): 2 of 4 images changed, all built already.\n"),
        "{md}"
    );
    let text = since(&p, &[]);
    assert!(
        text.contains("since HEAD ([COMMIT]): 2 changed, 0 not cached, 0 removed\n"),
        "{text}"
    );
    // Nothing changed at all.
    commit_all(&p, "two");
    let md = since(&p, &["--format", "markdown"]);
    assert!(
        md.contains("**Nothing to build** since `HEAD` (`[COMMIT]`): 0 of 4 images fresh, 4 not selected.\n"),
        "{md}"
    );
}

#[test]
fn an_unchanged_image_built_for_another_reason_is_named_apart() {
    let p = pull_request();
    git(p.root(), &["stash", "-q"]);
    p.record_at(&[], "2026-01-01T00:00:00Z");
    git(p.root(), &["stash", "pop", "-q"]);
    // `base` is unchanged and cached, but older than `--max-age`.
    let md = since(&p, &["--format", "markdown", "--max-age", "1d"]);
    assert!(
        md.contains("**2 of 4 images changed** since `HEAD` (`[COMMIT]`): `app` (role `app` changed); 1 more built on a changed parent.\n"),
        "{md}"
    );
    assert!(
        md.contains("\nAlso to build, unchanged since `HEAD` (`[COMMIT]`): `base` (expired: built 2026-01-01T00:00:00Z, older than 1d).\n"),
        "{md}"
    );
    assert!(!md.contains("Not cached"), "{md}");
}

// ---------------------------------------------------------------------------------------------
// doc/ci.md

fn doc_ci() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/doc/ci.md")).unwrap()
}

/// The fenced YAML blocks of doc/ci.md.
fn yaml_blocks(doc: &str) -> Vec<&str> {
    let mut blocks = Vec::new();
    let mut rest = doc;
    while let Some(start) = rest.find("```yaml\n") {
        let body = &rest[start + 8..];
        let end = body.find("\n```").expect("a closed block");
        blocks.push(&body[..=end]);
        rest = &body[end..];
    }
    blocks
}

#[test]
fn the_yaml_examples_of_doc_ci_parse() {
    let doc = doc_ci();
    let blocks = yaml_blocks(&doc);
    assert!(
        blocks.len() >= 4,
        "doc/ci.md shows its workflows: {}",
        blocks.len()
    );
    for yaml in &blocks {
        let parsed: serde_json::Value =
            serde_norway::from_str(yaml).unwrap_or_else(|e| panic!("{e}:\n{yaml}"));
        assert!(parsed.is_object(), "a mapping:\n{yaml}");
    }
    // The defaults put in front of a generated pipeline make one pipeline with both.
    let find = |first: &str| {
        *blocks
            .iter()
            .find(|b| b.starts_with(first))
            .unwrap_or_else(|| panic!("a block starting `{first}`"))
    };
    let whole = format!(
        "{}{}",
        find("# .gitlab/layer-defaults.yml"),
        find("# layer plan (deep)")
    );
    let parsed: serde_json::Value = serde_norway::from_str(&whole).unwrap();
    assert!(parsed["default"]["image"].is_string(), "{whole}");
    assert_eq!(
        parsed["build:svc"]["needs"],
        json!(["build:app"]),
        "{whole}"
    );
}
