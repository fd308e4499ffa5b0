//! The everyday interface (SPEC §10): `-v` streaming, logs and their names, summaries.

use crate::common::{
    run_layer, run_ok, wait_until, Project, SCRIPT_DONE, SCRIPT_START, SCRIPT_WAIT_FOR_GO,
};
use crate::needs::{self, Need};

/// A script that prints a line, holds `app` until `out/go` exists, then prints another.
fn chatty() -> String {
    format!(
        "{SCRIPT_START}echo \"hello from $LAYER_IMAGE\"\nif [ \"$LAYER_IMAGE\" = app ]; then\n{SCRIPT_WAIT_FOR_GO}fi\necho \"bye from $LAYER_IMAGE\" >&2\n{SCRIPT_DONE}"
    )
}

#[test]
fn verbose_streams_each_line_live_prefixed_with_its_image() {
    let p = Project::command_estate(&chatty());
    let run = p.spawn_layer(&["build", "-v", "app"], &[]);
    run.wait_for_stderr("app's first line to be streamed", "app | hello from app\n");
    assert!(!run.stderr_so_far().contains("bye from app"));
    p.file("out/go", "");
    let out = run.wait().expect(0);
    for line in [
        "base | hello from base",
        "base | bye from base",
        "app | bye from app",
    ] {
        assert!(
            out.stderr.contains(&format!("{line}\n")),
            "{line}:\n{}",
            out.stderr
        );
    }
    // Without -v, no output is shown.
    p.file("roles/app/provision.sh", "echo changed\n");
    let quiet = p.layer(&["build", "app"]).expect(0);
    assert!(!quiet.stderr.contains(" | "), "{}", quiet.stderr);
    let summary = quiet
        .stderr
        .lines()
        .find(|l| l.starts_with("built 1, fresh 1, failed 0,"));
    assert!(
        summary.is_some_and(|l| l.ends_with('s') && l.contains(" in ")),
        "{}",
        quiet.stderr
    );
}

#[test]
fn every_summary_line_of_a_failure_names_its_log() {
    let p = Project::command_estate(&format!(
        "{SCRIPT_START}if [ \"$LAYER_IMAGE\" = app ]; then echo 'no java' >&2; exit 3; fi\n{SCRIPT_DONE}"
    ));
    let out = p.layer(&["build", "app"]).expect(1);
    let line = out
        .stderr
        .lines()
        .find(|l| l.starts_with("  failed   app:"))
        .unwrap_or_else(|| panic!("no failed line:\n{}", out.stderr));
    let log = line
        .rsplit_once("(log: ")
        .and_then(|(_, l)| l.strip_suffix(')'))
        .unwrap_or_else(|| panic!("no log in {line}"));
    assert!(
        log.starts_with(&p.path("cache/logs/app/2.3.0-").display().to_string()),
        "{log}"
    );
    assert!(std::fs::read_to_string(log).unwrap().contains("no java"));
}

#[test]
fn logs_prints_the_newest_build_log_or_the_one_asked_for() {
    let p = Project::command_estate(&format!(
        "{SCRIPT_START}echo \"hello from $LAYER_IMAGE $LAYER_VERSION\"\n[ ! -e out/fail ] || {{ echo 'no java' >&2; exit 3; }}\n{SCRIPT_DONE}"
    ));
    p.layer(&["build", "base"]).expect(0);
    let first = p.layer(&["logs", "base"]).expect(0);
    let stamp = regex_free_stamp(&first.stdout);
    insta::assert_snapshot!("logs_of_a_build", first.stdout.replace(&stamp, "[STAMP]"));
    assert_eq!(
        p.layer(&["logs", "base@1.0.0"]).expect(0).stdout,
        first.stdout
    );

    // A failed build has no record, but its log is the newest.
    p.file("out/fail", "");
    p.file("roles/base/provision.sh", "echo changed\n");
    p.layer(&["build", "base"]).expect(1);
    let failed = p.layer(&["logs", "base"]).expect(0);
    failed.stdout_has("no java");
    failed.stdout_has("layer: build of base failed");

    let none = p.layer(&["logs", "base", "--test"]).expect(2);
    assert_eq!(
        none.stderr,
        "error: `base` has no test logs\n  hint: run its tests: `layer test base`\n"
    );
    let missing = p.layer(&["logs", "base@1.0.7"]).expect(2);
    assert!(
        missing
            .stderr
            .starts_with("error: `base` has no build log of 1.0.7; its build logs: 1.0.1-"),
        "{}",
        missing.stderr
    );
}

/// The `YYYYMMDD_HHMM` of the first version in `s`.
fn regex_free_stamp(s: &str) -> String {
    let i = s.find("1.0.0-").expect("a version") + 6;
    s[i..i + 13].to_string()
}

#[test]
fn logs_follow_prints_a_running_build_until_it_ends() {
    let p = Project::command_estate(&chatty());
    let build = p.spawn_layer(&["build", "app"], &[]);
    wait_until("app to start", || {
        p.count_lines("out/marks", "start app") == 1
    });
    let follow = p.spawn_layer(&["logs", "app", "--follow"], &[]);
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(
        !follow.stderr_so_far().contains("error"),
        "{}",
        follow.stderr_so_far()
    );
    p.file("out/go", "");
    build.wait().expect(0);
    let out = follow.wait().expect(0);
    assert_eq!(out.stdout, "hello from app\nbye from app\n");
}

#[test]
fn every_data_command_takes_format_json_and_json_as_its_alias() {
    let p = Project::command_estate(&format!("{SCRIPT_START}{SCRIPT_DONE}"));
    p.file("inventory.csv", "instance,image,version\ni-1,base,1.0.0\n");
    let build = p.layer(&["build", "--format", "json"]).expect(0);
    let results: serde_json::Value = serde_json::from_str(&build.stdout).unwrap();
    assert_eq!(
        results.as_array().map(Vec::len),
        Some(3),
        "{}",
        build.stdout
    );
    let commands: [&[&str]; 10] = [
        &["list"],
        &["graph"],
        &["plan"],
        &["build", "-n"],
        &["hash"],
        &["versions", "base"],
        &["report", "--inventory", "inventory.csv"],
        &["cache", "ls"],
        &["cache", "verify"],
        &["build"],
    ];
    for args in commands {
        let with = |extra: &[&str]| {
            let all: Vec<&str> = args.iter().chain(extra).copied().collect();
            p.layer(&all).expect(0).stdout
        };
        let json = with(&["--format", "json"]);
        assert!(
            serde_json::from_str::<serde_json::Value>(&json).is_ok(),
            "{args:?} --format json:\n{json}"
        );
        assert_eq!(with(&["--json"]), json, "{args:?} --json");
    }
    let both = p.layer(&["list", "--json", "--format", "text"]).expect(2);
    both.stderr_has("cannot be used with");
}

/// Every file under `root` with its text, the busybox path made neutral.
fn tree_text(root: &std::path::Path) -> String {
    let mut out = String::new();
    for e in walkdir::WalkDir::new(root).sort_by_file_name() {
        let e = e.unwrap();
        if e.file_type().is_file() {
            let rel = e.path().strip_prefix(root).unwrap().display().to_string();
            let text = std::fs::read_to_string(e.path()).unwrap();
            let text = text.replace("/usr/bin/busybox", "/bin/busybox");
            out.push_str(&format!("=== {rel}\n{text}"));
        }
    }
    out
}

#[test]
fn init_writes_a_project_and_never_overwrites_one() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_layer(dir.path(), &["init", "proj", "--origin", "busybox"], &[]).expect(0);
    assert_eq!(
        out.stderr,
        "wrote a new project of 8 files in `proj`; as root, build and test it:\n  cd proj && layer build && layer test\n"
    );
    let root = dir.path().join("proj");
    insta::assert_snapshot!("init_busybox", tree_text(&root));
    let before = tree_text(&root);
    std::fs::remove_file(root.join("images/app.toml")).unwrap();
    let again = run_layer(&root, &["init"], &[]).expect(2);
    again.stderr_has("already holds `layer.toml`, `.gitignore`, `images/base.toml`,");
    assert!(again
        .stderr
        .contains("hint: run it in a new or empty folder: `layer init DIR`"));
    assert!(!root.join("images/app.toml").exists(), "wrote nothing");
    assert_ne!(tree_text(&root), before);

    let debian = run_layer(dir.path(), &["init", "deb"], &[]).expect(0);
    assert!(debian.stderr.contains("`deb`"));
    let toml = std::fs::read_to_string(dir.path().join("deb/layer.toml")).unwrap();
    assert!(
        toml.contains("debian = { suite = \"bookworm\", variant = \"minbase\" }"),
        "{toml}"
    );
    // Declarations that load (planning would read the Debian mirror).
    let graph = run_layer(
        &dir.path().join("deb"),
        &["graph", "--format", "mermaid"],
        &[],
    )
    .expect(0);
    graph.stdout_has("base");
}

#[test]
#[cfg_attr(
    any(missing = "root", missing = "busybox"),
    ignore = "needs root and a static busybox: apt-get install busybox-static"
)]
fn init_busybox_builds_and_tests_as_it_is() {
    needs::check(&[Need::Root, Need::Busybox]);
    let dir = tempfile::tempdir().unwrap();
    run_layer(dir.path(), &["init", "--origin", "busybox"], &[]).expect(0);
    let build = run_layer(dir.path(), &["build"], &[]).expect(0);
    build.stderr_has("built 2, fresh 0, failed 0, skipped 0 in ");
    let test = run_layer(dir.path(), &["test", "--format", "json"], &[]).expect(0);
    let results: serde_json::Value = serde_json::from_str(&test.stdout).unwrap();
    let results = results.as_array().unwrap();
    assert_eq!(results.len(), 2);
    for r in results {
        assert_eq!(r["result"], "passed", "{r}");
        assert!(r["tests"].as_array().unwrap().len() >= 2, "{r}");
    }
    run_layer(dir.path(), &["logs", "app", "--test"], &[]).expect(0);

    // An inherited test of base runs in app too, without a rebuild (tests are not inputs).
    let base = std::fs::read_to_string(dir.path().join("images/base.toml")).unwrap();
    let base = base.replace(
        "run = 'grep -q \"^Welcome to base\" /etc/greeting'",
        "run = 'grep -q \"^Welcome to base\" /etc/greeting'\ninherit = true",
    );
    std::fs::write(dir.path().join("images/base.toml"), base).unwrap();
    let again = run_layer(dir.path(), &["test", "app", "--json"], &[]).expect(0);
    let app: serde_json::Value = serde_json::from_str(&again.stdout).unwrap();
    let names: Vec<&str> = app[0]["tests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "motd/motd.sh",
            "base/the greeting names the image",
            "the app is in place on the base's files"
        ]
    );
}

#[test]
fn completions_are_valid_shell_and_man_is_a_man_page() {
    let p = Project::new();
    let bash = p.layer(&["completions", "bash"]).expect(0);
    assert!(
        bash.stdout.contains("logs") && bash.stdout.contains("--format"),
        "{}",
        bash.stdout
    );
    p.file("layer.bash", &bash.stdout);
    run_ok(
        std::process::Command::new("bash")
            .args(["-n", "layer.bash"])
            .current_dir(p.root()),
    );
    for shell in ["zsh", "fish"] {
        let out = p.layer(&["completions", shell]).expect(0);
        assert!(out.stdout.contains("init"), "{shell}");
    }
    let man = p.layer(&["man"]).expect(0);
    assert!(
        man.stdout.starts_with(".ie") || man.stdout.contains(".TH layer 1"),
        "{}",
        &man.stdout[..200]
    );
    let bad = p.layer(&["completions", "tcsh"]).expect(2);
    bad.stderr_has("invalid value 'tcsh'");
}

#[test]
fn version_names_the_commit_it_was_built_from() {
    let out = Project::new().layer(&["--version"]).expect(0);
    let line = out.stdout.trim_end();
    let commit = line
        .strip_prefix(&format!("layer {} (commit ", env!("CARGO_PKG_VERSION")))
        .and_then(|rest| rest.strip_suffix(')'))
        .unwrap_or_else(|| panic!("{line}"));
    assert_eq!(commit.len(), 12);
    assert!(commit.bytes().all(|b| b.is_ascii_hexdigit()), "{line}");
}

#[test]
fn validate_checks_declarations_without_planning() {
    let p = Project::estate();
    let ok = p.layer(&["validate"]).expect(0);
    assert_eq!(
        ok.stderr,
        "valid: 4 images, 3 roles, 1 origins, 1 backends\n"
    );
    assert!(!p.path("cache").exists(), "nothing scanned or written");
    p.file(
        "images/app.toml",
        "version = \"2.0\"\nfrom = \"base-linux\"\nrole = [\"java\"]\n",
    );
    let bad = p.layer(&["validate"]).expect(2);
    bad.stderr_has("images/app.toml");
}

#[test]
#[cfg_attr(missing = "packer", ignore = "needs `packer`: apt-get install packer")]
fn validate_runs_packer_validate_on_templates() {
    needs::check(&[Need::Packer]);
    let p = Project::new();
    p.file(
        "layer.toml",
        "[project]\nbackend = \"local\"\n\n[origins.ubuntu]\nid = \"ami-0origin\"\n\n[backends.local]\nkind = \"packer\"\ntemplate = \"packer/local.pkr.hcl\"\n",
    );
    p.file(
        "images/base.toml",
        "version = \"1.0\"\norigin = \"ubuntu\"\n",
    );
    p.file("packer/local.pkr.hcl", "source \"file\" \"x\" {\n  content = \"a\"\n  target = \"out/a\"\n}\nbuild {\n  sources = [\"source.file.x\"]\n}\n");
    p.layer(&["validate"]).expect(0);
    p.file("packer/local.pkr.hcl", "build {\n  sources = [\n");
    let bad = p.layer(&["validate"]).expect(2);
    assert!(
        bad.stderr.starts_with(
            "error: backend `local`: `packer validate` of `packer/local.pkr.hcl` failed:\n"
        ),
        "{}",
        bad.stderr
    );
}

#[test]
fn list_shows_each_images_release_status_and_latest_version() {
    let p = Project::command_estate(&format!("{SCRIPT_START}{SCRIPT_DONE}"));
    p.layer(&["build", "base"]).expect(0);
    p.layer(&["promote", "base", "--force"]).expect(0);
    let json: serde_json::Value =
        serde_json::from_str(&p.layer(&["list", "--format", "json"]).expect(0).stdout).unwrap();
    let base = &json[0];
    assert_eq!(base["name"], "base");
    assert_eq!(base["latest"]["release_status"], "released");
    assert!(base["latest"]["version"]
        .as_str()
        .unwrap()
        .starts_with("1.0.0-"));
    assert_eq!(json[1]["latest"], serde_json::Value::Null);
    let text = p.layer(&["list"]).expect(0).stdout;
    let row = text.lines().find(|l| l.starts_with("base ")).unwrap();
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        cells[..7],
        ["base", "origin", "cloud", "1.0", "fresh", "1.0.0", "released"],
        "{text}"
    );
}

#[test]
fn var_overrides_a_vars_entry_for_one_run_and_is_part_of_the_key() {
    let p = Project::command_estate(&format!("{SCRIPT_START}{SCRIPT_DONE}"));
    p.layer(&["build"]).expect(0);
    let plan = p
        .layer(&["plan", "--var", "app.PORT=9090"])
        .expect(0)
        .stdout;
    let json = p.plan_json(&["--var", "app.PORT=9090"]);
    let app = &json["images"][1];
    assert_eq!(
        (app["name"].as_str(), app["action"].as_str()),
        (Some("app"), Some("build")),
        "{plan}"
    );
    assert!(
        app["reasons"].to_string().contains("PORT"),
        "{}",
        app["reasons"]
    );
    assert!(plan.contains("PORT"), "{plan}");
    p.layer(&["build", "--var", "app.PORT=9090"]).expect(0);
    assert_eq!(
        p.plan_json(&["--var", "app.PORT=9090"])["summary"]["build"],
        0
    );
    // Without it, the declared value's builds are still the cached ones.
    assert_eq!(p.plan_json(&[])["summary"]["build"], 0);
    assert_ne!(
        p.layer(&["hash", "app"]).expect(0).stdout,
        p.layer(&["hash", "app", "--var", "app.PORT=9090"])
            .expect(0)
            .stdout
    );

    let typo = p.layer(&["plan", "--var", "app.PROT=1"]).expect(2);
    assert_eq!(
        typo.stderr,
        "error: `--var app.PROT`: `app` declares no variable `PROT` in `[vars]`\n  hint: did you mean `app.PORT`?\n"
    );
    let bad = p.layer(&["plan", "--var", "PORT=1"]).expect(2);
    bad.stderr_has("`PORT=1` is not IMAGE.KEY=VALUE: write, say, `app.PORT=8081`");
    p.layer(&["plan", "--var", "nope.PORT=1"]).expect(2);
}
