//! `layer build` through the real binary with the `command` backend: shell scripts written by
//! each test build "images" by appending to `out/marks` and printing an artifact id.

use crate::common;
use crate::common::{
    json, name_actions, processes_with, wait_until, Output, Project, SCRIPT_DONE, SCRIPT_START,
    SCRIPT_WAIT_FOR_GO,
};
use crate::needs::{self, Need};

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use layer::cache::Cache;
use layer::record::Record;
use serde_json::Value;

/// A script that builds every image at once.
fn plain_script() -> String {
    format!("{SCRIPT_START}{SCRIPT_DONE}")
}

/// A script that holds the build of `image` until `out/go` exists.
fn holding(image: &str) -> String {
    format!(
        "{SCRIPT_START}if [ \"$LAYER_IMAGE\" = {image} ]; then\n{SCRIPT_WAIT_FOR_GO}fi\n{SCRIPT_DONE}"
    )
}

/// `name -> action` of a `layer build --json` output.
fn actions(out: &Output) -> BTreeMap<String, String> {
    name_actions(&json(out)).into_iter().collect()
}

fn entry(out: &Output, name: &str) -> Value {
    json(out)
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == name)
        .unwrap_or_else(|| panic!("`{name}` in {}", out.stdout))
        .clone()
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn cache(p: &Project) -> Cache {
    Cache::new(p.path("cache"))
}

/// Every file below `cache/records`, parsed as a record.
fn all_records(p: &Project) -> Vec<(PathBuf, Record)> {
    let dir = p.path("cache/records");
    if !dir.exists() {
        return vec![];
    }
    walkdir::WalkDir::new(&dir)
        .into_iter()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            let bytes = fs::read(e.path()).unwrap();
            let r: Record = serde_json::from_slice(&bytes).unwrap_or_else(|err| {
                panic!(
                    "{} is not a whole record: {err}\n{}",
                    e.path().display(),
                    String::from_utf8_lossy(&bytes)
                )
            });
            (e.path().to_path_buf(), r)
        })
        .collect()
}

fn recorded_images(p: &Project) -> BTreeSet<String> {
    all_records(p).into_iter().map(|(_, r)| r.name).collect()
}

/// The entries of `cache/runs`.
fn runs(p: &Project) -> Vec<String> {
    fs::read_dir(p.path("cache/runs"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// `name -> key` from `layer hash --json`.
fn hashes(p: &Project) -> BTreeMap<String, String> {
    let out = p.layer(&["hash", "--json"]).expect(0);
    json(&out)
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["name"].as_str().unwrap().to_string(),
                i["key"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Whether `v` is `MAJOR.MINOR.BUILD-YYYYMMDD_HHMM` with the given MAJOR.MINOR and BUILD.
fn is_version(v: &str, major_minor: &str, build: u64) -> bool {
    let Some(stamp) = v.strip_prefix(&format!("{major_minor}.{build}-")) else {
        return false;
    };
    let b = stamp.as_bytes();
    b.len() == 13
        && b.iter().enumerate().all(|(i, c)| {
            if i == 8 {
                *c == b'_'
            } else {
                c.is_ascii_digit()
            }
        })
}

/// The actions of every image in `layer plan --format json`.
fn plan_actions(p: &Project) -> BTreeMap<String, String> {
    p.actions(&[]).into_iter().collect()
}

fn all_fresh(p: &Project) -> BTreeMap<String, String> {
    plan_actions(p)
        .into_keys()
        .map(|n| (n, "fresh".to_string()))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// A backend that claims success without an artifact.

#[test]
fn a_backend_that_exits_0_without_an_id_fails_and_is_not_recorded_until_fixed() {
    let p = Project::command_estate(&format!("{SCRIPT_START}echo 'forgot the id'\n"));
    let out = p.layer(&["build", "--json"]).expect(1);
    out.stderr_has("`./build.sh` exited 0 but wrote no artifact id to $LAYER_OUTPUT");
    assert_eq!(
        actions(&out),
        map(&[("base", "failed"), ("app", "skipped"), ("svc", "skipped")])
    );
    assert_eq!(entry(&out, "app")["cause"], "`base` failed");
    let log = entry(&out, "base")["log"].as_str().unwrap().to_string();
    assert!(fs::read_to_string(&log).unwrap().contains("forgot the id"));
    assert!(recorded_images(&p).is_empty());
    assert_eq!(p.count_lines("out/marks", "start base"), 1);
    assert_eq!(p.count_lines("out/marks", "start app"), 0);
    // Nothing was recorded: the plan still builds everything.
    assert!(plan_actions(&p).values().all(|a| a == "build"));

    p.exec("build.sh", &plain_script());
    let out = p.layer(&["build", "--json"]).expect(0);
    assert_eq!(
        actions(&out),
        map(&[("base", "built"), ("app", "built"), ("svc", "built")])
    );
    assert_eq!(plan_actions(&p), all_fresh(&p));

    // A role edit rebuilds the images below it; putting the role back as it was when they
    // were built makes them fresh again, and a build builds nothing.
    let provision = p.read("roles/app/provision.sh");
    p.file(
        "roles/app/provision.sh",
        "echo \"role=$LAYER_ROLE v2\" >> /provisioned\n",
    );
    let out = p.layer(&["build", "--json"]).expect(0);
    assert_eq!(
        actions(&out),
        map(&[("base", "fresh"), ("app", "built"), ("svc", "built")])
    );
    p.file("roles/app/provision.sh", &provision);
    assert_eq!(plan_actions(&p), all_fresh(&p));
    let out = p.layer(&["build", "--json"]).expect(0);
    assert_eq!(
        actions(&out),
        map(&[("base", "fresh"), ("app", "fresh"), ("svc", "fresh")])
    );
    assert_eq!(p.count_lines("out/marks", "done base"), 1);
    assert_eq!(p.count_lines("out/marks", "done app"), 2);
    assert_eq!(p.count_lines("out/marks", "done svc"), 2);
}

#[test]
fn a_failure_is_summed_up_with_its_log_and_what_it_kept_from_building() {
    let p = Project::command_estate(&format!(
        "{SCRIPT_START}if [ \"$LAYER_IMAGE\" = app ]; then echo 'no java for you' >&2; exit 3; fi\n{SCRIPT_DONE}"
    ));
    p.file(
        "images/tools.toml",
        "version = \"1.0\"\norigin = \"cloud\"\nroles = [\"web\"]\n",
    );
    let out = p.layer(&["build", "-k", "-j", "1"]).expect(1);
    assert_eq!(out.stdout, "");
    let stderr = common::redact(&p, &out.stderr);
    insta::with_settings!({filters => vec![
        (r"\d{8}_\d{4}", "[STAMP]"),
        (r"in \d+\.\ds", "in [T]s"),
    ]}, {
        insta::assert_snapshot!("build_failure_with_keep_going", stderr);
    });
    assert_eq!(
        recorded_images(&p),
        BTreeSet::from(["base".into(), "tools".into()])
    );
}

/// A run makes a work folder per worker, not per build (issue 15), yet every build starts
/// with an empty `HOME` and an empty `$LAYER_OUTPUT`: what the build before it left in the
/// same folder (a file, a folder, the id it wrote) never reaches it.
#[test]
fn builds_in_a_reused_work_folder_start_empty() {
    let p = Project::command_estate(&format!(
        "{SCRIPT_START}ls -A \"$HOME\" > \"out/home-$LAYER_IMAGE\"\nwc -c < \"$LAYER_OUTPUT\" > \"out/output-$LAYER_IMAGE\"\necho \"$HOME\" >> out/homes\ntouch \"$HOME/left-by-$LAYER_IMAGE\"\nmkdir \"$TMPDIR/dir-$LAYER_IMAGE\"\nif [ \"$LAYER_IMAGE\" != svc ]; then\n{SCRIPT_DONE}fi\n"
    ));
    let out = p.layer(&["build", "-j", "1"]).expect(1);
    assert!(
        out.stderr
            .contains("`./build.sh` exited 0 but wrote no artifact id to $LAYER_OUTPUT"),
        "svc wrote nothing and saw nothing of app's id: {}",
        out.stderr
    );
    let homes = p.read("out/homes");
    let homes: Vec<&str> = homes.lines().collect();
    assert_eq!(homes.len(), 3, "{homes:?}");
    assert!(
        homes.iter().all(|h| *h == homes[0]),
        "one folder: {homes:?}"
    );
    for image in ["base", "app", "svc"] {
        assert_eq!(p.read(&format!("out/home-{image}")), "", "{image}");
        assert_eq!(
            p.read(&format!("out/output-{image}")).trim(),
            "0",
            "{image}"
        );
    }
    assert_eq!(
        recorded_images(&p),
        BTreeSet::from(["base".into(), "app".into()])
    );
    assert!(runs(&p).is_empty(), "{:?}", runs(&p));
}

// ---------------------------------------------------------------------------------------------
// Two runs, one cache.

#[test]
fn two_concurrent_builds_build_each_image_once() {
    let p = Project::command_estate(&holding("base"));
    let first = p.spawn_layer(&["build", "--json"], &[]);
    wait_until("the first run to start base", || {
        p.count_lines("out/marks", "start base") == 1
    });
    let second = p.spawn_layer(&["build", "--json"], &[]);
    second.wait_for_stderr(
        "the second run to wait for base",
        "waiting: another layer run is building `base`",
    );
    p.file("out/go", "");
    let first = first.wait().expect(0);
    let second = second.wait().expect(0);

    for image in ["base", "app", "svc"] {
        assert_eq!(
            p.count_lines("out/marks", &format!("start {image}")),
            1,
            "{image}"
        );
        assert_eq!(
            p.count_lines("out/marks", &format!("done {image}")),
            1,
            "{image}"
        );
        let both: BTreeSet<String> = [&first, &second]
            .iter()
            .map(|o| actions(o)[image].clone())
            .collect();
        assert_eq!(
            both,
            BTreeSet::from(["built".to_string(), "fresh".to_string()]),
            "{image}: built by one run, fresh in the other"
        );
        // Both runs report the same build.
        assert_eq!(
            entry(&first, image)["version"],
            entry(&second, image)["version"]
        );
    }
    assert_eq!(actions(&first)["base"], "built");
    assert_eq!(actions(&second)["base"], "fresh");
    assert_eq!(
        entry(&second, "base")["cause"],
        "built meanwhile by another run"
    );
    second.stderr_has("reused base ");
    for image in ["base", "app", "svc"] {
        assert_eq!(cache(&p).records(image).len(), 1, "{image}");
    }
    assert!(runs(&p).is_empty(), "{:?}", runs(&p));
}

// ---------------------------------------------------------------------------------------------
// Killed and interrupted runs.

#[test]
fn a_killed_run_leaves_no_partial_record_and_the_next_run_builds_only_what_it_did_not_finish() {
    let p = Project::command_estate(&holding("app"));
    p.file(
        "images/tools.toml",
        "version = \"1.0\"\norigin = \"cloud\"\nroles = [\"web\"]\n",
    );
    let root = p.root().display().to_string();
    let run = p.spawn_layer(&["build", "-j", "2"], &[]);
    wait_until("app to start, base and tools to be recorded", || {
        p.count_lines("out/marks", "start app") == 1
            && cache(&p).latest("base").is_some()
            && cache(&p).latest("tools").is_some()
    });
    assert_eq!(
        recorded_images(&p),
        BTreeSet::from(["base".into(), "tools".into()])
    );
    let dead_runs = runs(&p);
    assert!(!dead_runs.is_empty());
    assert!(!processes_with(&root).is_empty(), "the script of app runs");

    run.signal(libc::SIGKILL);
    let out = run.wait();
    assert_eq!(out.code, 128 + libc::SIGKILL);
    // The script dies with layer.
    wait_until("the build script to die with layer", || {
        processes_with(&root).is_empty()
    });
    // Every record is whole; app has none.
    assert_eq!(
        recorded_images(&p),
        BTreeSet::from(["base".into(), "tools".into()])
    );
    assert_eq!(runs(&p), dead_runs, "the dead run's folder is still there");

    p.file("out/go", "");
    let out = p.layer(&["build", "--json"]).expect(0);
    assert_eq!(
        actions(&out),
        map(&[
            ("base", "fresh"),
            ("tools", "fresh"),
            ("app", "built"),
            ("svc", "built")
        ])
    );
    for (image, starts) in [("base", 1), ("tools", 1), ("app", 2), ("svc", 1)] {
        assert_eq!(
            p.count_lines("out/marks", &format!("start {image}")),
            starts,
            "{image}"
        );
        assert_eq!(
            p.count_lines("out/marks", &format!("done {image}")),
            1,
            "{image}"
        );
    }
    assert_eq!(all_records(&p).len(), 4);
    assert!(runs(&p).is_empty(), "{:?}", runs(&p));
}

#[test]
fn sigint_and_sigterm_stop_the_build_record_nothing_of_it_and_leave_no_process() {
    for (sig, code) in [(libc::SIGINT, 130), (libc::SIGTERM, 143)] {
        let p = Project::command_estate(&holding("app"));
        let root = p.root().display().to_string();
        let run = p.spawn_layer(&["build", "--json"], &[]);
        wait_until("app to start", || {
            p.count_lines("out/marks", "start app") == 1
        });
        run.signal(sig);
        let out = run.wait();
        assert_eq!(out.code, code, "signal {sig}\n{}", out.stderr);
        out.stderr_has(&format!("interrupted by signal {sig}"));
        assert_eq!(
            actions(&out),
            map(&[("base", "built"), ("app", "failed"), ("svc", "skipped")])
        );
        assert_eq!(entry(&out, "app")["error"], "interrupted");
        assert_eq!(entry(&out, "svc")["cause"], "interrupted");
        assert_eq!(recorded_images(&p), BTreeSet::from(["base".into()]));
        assert_eq!(p.count_lines("out/marks", "done app"), 0);
        assert_eq!(processes_with(&root), Vec::<u32>::new(), "signal {sig}");
        assert!(runs(&p).is_empty(), "signal {sig}: {:?}", runs(&p));
    }
}

#[test]
fn a_process_a_build_leaves_running_is_stopped_with_it() {
    // The script leaves a loop running in the background that holds its stdout open.
    let p = Project::command_estate(&format!(
        "{SCRIPT_START}sh -c \"n=0; while [ \\$n -lt 2000 ]; do n=\\$((n+1)); sleep 0.05; done # $PWD-daemon\" &\n{SCRIPT_DONE}"
    ));
    let marker = format!("{}-daemon", p.root().display());
    let out = p
        .spawn_layer(&["build", "--json", "base"], &[])
        .wait()
        .expect(0);
    assert_eq!(actions(&out)["base"], "built");
    wait_until("the background loop to be stopped", || {
        processes_with(&marker).is_empty()
    });
}

// ---------------------------------------------------------------------------------------------
// Secrets.

const SECRET: &str = "hunter2-XYZZY-0451";

/// Prints `$TOKEN` whole, one byte at a time (a process and a flush per byte), and split
/// across stdout and stderr.
const PRINT_TOKEN: &str = r#"echo "length ${#TOKEN}" >> out/marks
echo "whole: $TOKEN"
s=$TOKEN
printf 'bytes: '
while [ -n "$s" ]; do
    rest=${s#?}
    env printf '%s' "${s%"$rest"}"
    s=$rest
    sleep 0.01
done
echo
rest=${TOKEN#??????}
printf 'split: %s' "${TOKEN%"$rest"}"
sleep 0.05
printf '%s\n' "$rest" >&2
"#;

#[test]
fn a_secret_never_reaches_output_logs_or_the_cache() {
    let p = Project::command_estate(&format!(
        "{SCRIPT_START}{PRINT_TOKEN}if [ \"$LAYER_IMAGE\" = vault ]; then exit 3; fi\n{SCRIPT_DONE}"
    ));
    let secrets = "\n[secrets]\nTOKEN = { env = \"T\" }\n";
    p.file(
        "images/base.toml",
        &format!("{}{secrets}", p.read("images/base.toml")),
    );
    p.file(
        "images/vault.toml",
        &format!("version = \"1.0\"\norigin = \"cloud\"\n{secrets}"),
    );
    let out = p.layer_env(
        &["build", "-k", "--json", "base", "vault"],
        &[("T", SECRET)],
    );
    let out = out.expect(1);
    assert_eq!(actions(&out)["base"], "built");
    assert_eq!(actions(&out)["vault"], "failed");
    // The builds saw the secret.
    assert_eq!(
        p.count_lines("out/marks", &format!("length {}", SECRET.len())),
        2
    );

    assert!(!out.stdout.contains(SECRET), "{}", out.stdout);
    assert!(!out.stderr.contains(SECRET), "{}", out.stderr);
    // The failure's log tail is shown, masked.
    out.stderr_has("| whole: [secret]");
    let files = p.cache_files();
    let logs: Vec<&(String, Vec<u8>)> = files
        .iter()
        .filter(|(f, _)| f.starts_with("logs/"))
        .collect();
    assert_eq!(logs.len(), 2, "{:?}", p.cache_paths());
    for (name, content) in &files {
        let text = String::from_utf8_lossy(content);
        assert!(!text.contains(SECRET), "{name}: {text}");
    }
    for (name, content) in logs {
        let text = String::from_utf8_lossy(content);
        assert!(text.contains("whole: [secret]\n"), "{name}: {text}");
        assert!(text.contains("bytes: [secret]\n"), "{name}: {text}");
    }
    // Secrets are not part of keys: a new value does not make anything stale.
    assert_eq!(
        p.layer_env(&["plan", "--format", "json"], &[("T", "rotated")])
            .expect(0)
            .stdout,
        p.layer(&["plan", "--format", "json"]).expect(0).stdout
    );
}

#[test]
fn a_missing_secret_is_a_usage_error_before_anything_is_built() {
    let p = Project::command_estate(&plain_script());
    p.file(
        "images/app.toml",
        &format!(
            "{}\n[secrets]\nTOKEN = {{ env = \"LAYER_TEST_UNSET_SECRET\" }}\n",
            p.read("images/app.toml")
        ),
    );
    let out = p.layer(&["build"]).expect(2);
    out.stderr_has(
        "secret variables are not set: `LAYER_TEST_UNSET_SECRET` (secret `TOKEN` of `app`)",
    );
    assert!(!p.path("out/marks").exists(), "no build started");
    assert!(recorded_images(&p).is_empty());
    // An image that is not built needs no secret.
    p.layer(&["build", "base"]).expect(0);
}

// ---------------------------------------------------------------------------------------------
// What the command backend is handed.

/// Saves the environment and a copy of the bundle under `out/`, by key.
const SAVE_ENV: &str =
    "env > \"out/env-$LAYER_KEY\"\ncp -R \"$LAYER_BUNDLE\" \"out/bundle-$LAYER_KEY\"\n";

fn env_of(p: &Project, key: &str) -> BTreeMap<String, String> {
    p.read(&format!("out/env-{key}"))
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn staged_roles(p: &Project, key: &str) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(p.path(&format!("out/bundle-{key}/roles")))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    v.sort();
    v
}

fn check_clean_env(env: &BTreeMap<String, String>, extra: &[&str]) {
    let allowed: BTreeSet<&str> = [
        "PATH",
        "HOME",
        "TMPDIR",
        "LANG",
        "PWD",
        "SHLVL",
        "OLDPWD",
        "_",
        "LAYER_IMAGE",
        "LAYER_VERSION",
        "LAYER_KEY",
        "LAYER_SOURCE",
        "LAYER_BUNDLE",
        "LAYER_OUTPUT",
    ]
    .into_iter()
    .chain(extra.iter().copied())
    .collect();
    for k in env.keys() {
        assert!(
            allowed.contains(k.as_str()),
            "`{k}` leaked into the build: {env:?}"
        );
    }
    for k in ["PATH", "HOME", "TMPDIR", "LAYER_OUTPUT"] {
        assert!(env.contains_key(k), "{k}: {env:?}");
    }
}

#[test]
#[cfg_attr(
    any(missing = "root", missing = "busybox"),
    ignore = "needs root and a static busybox: apt-get install busybox-static"
)]
fn the_command_backend_gets_its_environment_deep_and_shallow() {
    needs::check(&[Need::Root, Need::Busybox]);
    let p = Project::command_estate(&format!("{SCRIPT_START}{SAVE_ENV}{SCRIPT_DONE}"));
    let leak = [("LEAK", "1")];

    // Deep: each image on its parent's artifact, with its own roles.
    let out = p.layer_env(&["build", "--json"], &leak).expect(0);
    let keys = hashes(&p);
    let mut versions = BTreeMap::new();
    for (image, mm, roles, extra) in [
        ("base", "1.0", vec!["01-base"], vec![]),
        ("app", "2.3", vec!["01-app"], vec!["PORT"]),
        ("svc", "0.4", vec!["01-web"], vec![]),
    ] {
        let key = &keys[image];
        assert_eq!(entry(&out, image)["key"], key.as_str());
        let env = env_of(&p, key);
        check_clean_env(&env, &extra);
        assert_eq!(env["LAYER_IMAGE"], image);
        assert_eq!(&env["LAYER_KEY"], key);
        assert!(is_version(&env["LAYER_VERSION"], mm, 0), "{env:?}");
        assert_eq!(entry(&out, image)["version"], env["LAYER_VERSION"].as_str());
        assert_eq!(staged_roles(&p, key), roles);
        let apply = p.path(&format!("out/bundle-{key}/apply.sh"));
        assert!(fs::metadata(&apply).unwrap().permissions().mode() & 0o111 != 0);
        versions.insert(image, env["LAYER_VERSION"].clone());
    }
    assert_eq!(env_of(&p, &keys["app"])["PORT"], "8080");
    assert_eq!(env_of(&p, &keys["base"])["LAYER_SOURCE"], "ami-0abc");
    assert_eq!(
        env_of(&p, &keys["app"])["LAYER_SOURCE"],
        format!("art-base-{}", versions["base"])
    );
    assert_eq!(
        env_of(&p, &keys["svc"])["LAYER_SOURCE"],
        format!("art-app-{}", versions["app"])
    );
    // The version is the build's time.
    let rec = cache(&p).latest("base").unwrap();
    let digits: String = rec.built_at.chars().filter(char::is_ascii_digit).collect();
    assert!(versions["base"].ends_with(&format!("{}_{}", &digits[..8], &digits[8..12])));

    // Shallow: every image from the origin, with the roles of its whole chain.
    p.file(
        "layer.toml",
        &p.read("layer.toml")
            .replace("strategy = \"deep\"", "strategy = \"shallow\""),
    );
    let out = p.layer_env(&["build", "--json"], &leak).expect(0);
    let keys = hashes(&p);
    for (image, mm, roles, extra) in [
        ("base", "1.0", vec!["01-base"], vec![]),
        ("app", "2.3", vec!["01-base", "02-app"], vec!["PORT"]),
        (
            "svc",
            "0.4",
            vec!["01-base", "02-app", "03-web"],
            vec!["PORT"],
        ),
    ] {
        let key = &keys[image];
        assert_eq!(entry(&out, image)["action"], "built");
        let env = env_of(&p, key);
        check_clean_env(&env, &extra);
        assert_eq!(&env["LAYER_KEY"], key);
        assert_eq!(env["LAYER_SOURCE"], "ami-0abc");
        // The second build of each image under its MAJOR.MINOR.
        assert!(is_version(&env["LAYER_VERSION"], mm, 1), "{env:?}");
        assert_eq!(staged_roles(&p, key), roles);
    }
    assert_eq!(env_of(&p, &keys["svc"])["PORT"], "8080");

    // The bundle's apply.sh applies the roles to a root folder, in order.
    apply_bundle_to_a_busybox_root(&p, &keys["svc"]);
}

fn busybox() -> PathBuf {
    needs::busybox().expect("a static busybox (apt-get install busybox-static)")
}

fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

fn apply_bundle_to_a_busybox_root(p: &Project, key: &str) {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    fs::create_dir_all(r.join("bin")).unwrap();
    fs::copy(busybox(), r.join("bin/sh")).unwrap();
    fs::set_permissions(r.join("bin/sh"), fs::Permissions::from_mode(0o755)).unwrap();

    let apply = p.path(&format!("out/bundle-{key}/apply.sh"));
    let out = std::process::Command::new(&apply)
        .arg(r)
        .env_clear()
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "apply.sh failed\n{stderr}");
    for role in ["base", "app", "web"] {
        assert!(stderr.contains(&format!("==> role {role}")), "{stderr}");
    }

    // files/ copied with their modes.
    assert_eq!(fs::read_to_string(r.join("etc/motd")).unwrap(), "welcome\n");
    assert_eq!(mode(&r.join("etc/motd")), 0o644);
    assert_eq!(mode(&r.join("usr/local/bin/hello")), 0o755);
    assert_eq!(mode(&r.join("etc/base.key")), 0o600);
    // The provisioners ran inside the root, in order, after their files were copied, with
    // the role's and the image's variables.
    assert_eq!(
        fs::read_to_string(r.join("provisioned")).unwrap(),
        "role=base image=svc pwd=/.layer/role greeting=hello motd=yes\nrole=app port=8080\nrole=web\n"
    );
    assert!(!r.join(".layer").exists(), "the staging area is removed");
}

// ---------------------------------------------------------------------------------------------
// Versions and provenance.

/// git in the project, its output trimmed.
fn git(p: &Project, args: &[&str]) -> String {
    common::git(p.root(), args).trim().to_string()
}

fn versions_json(p: &Project, image: &str) -> Vec<(String, bool)> {
    let out = p.layer(&["versions", image, "--json"]).expect(0);
    json(&out)
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["version"].as_str().unwrap().to_string(),
                v["forced"].as_bool().unwrap(),
            )
        })
        .collect()
}

#[test]
fn builds_are_numbered_per_image_and_version_and_records_carry_their_provenance() {
    let p = Project::command_estate(&plain_script());
    git(&p, &["init", "-q"]);
    git(&p, &["add", "-A"]);
    git(&p, &["commit", "-q", "-m", "estate"]);
    let head = git(&p, &["rev-parse", "HEAD"]);

    // -n prints the plan and builds nothing.
    let plan = p.layer(&["plan"]).expect(0).stdout;
    assert_eq!(p.layer(&["build", "-n"]).expect(0).stdout, plan);
    let plan_json = p.layer(&["plan", "--format", "json"]).expect(0).stdout;
    assert_eq!(
        p.layer(&["build", "-n", "--json"]).expect(0).stdout,
        plan_json
    );
    assert!(!p.path("out").exists(), "nothing ran");
    assert!(all_records(&p).is_empty());

    let out = p.layer(&["build", "--json"]).expect(0);
    let keys = hashes(&p);
    for (image, mm) in [("base", "1.0"), ("app", "2.3"), ("svc", "0.4")] {
        let e = entry(&out, image);
        let fields: BTreeSet<&str> = e.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            fields,
            BTreeSet::from([
                "name",
                "key",
                "action",
                "version",
                "artifact",
                "duration_ms",
                "log"
            ]),
            "{e}"
        );
        assert_eq!(e["key"], keys[image].as_str());
        assert_eq!(e["action"], "built");
        let version = e["version"].as_str().unwrap();
        assert!(is_version(version, mm, 0), "{e}");
        assert_eq!(e["artifact"], format!("art-{image}-{version}"));
        assert!(e["duration_ms"].is_u64(), "{e}");
        let log = PathBuf::from(e["log"].as_str().unwrap());
        assert!(log.is_file(), "{e}");
        assert!(log.ends_with(format!("logs/{image}/{version}.log")), "{e}");
    }
    let base0 = cache(&p).latest("base").unwrap();
    let app0 = cache(&p).latest("app").unwrap();
    assert_eq!(
        base0.tags,
        map(&[
            ("Name", "base"),
            ("Version", &base0.version),
            ("Commit", &head),
            ("Key", &keys["base"]),
            ("Origin", "ami-0abc"),
            ("Release_Status", "candidate"),
        ])
    );
    assert_eq!(app0.tags["Parent"], format!("base {}", base0.version));
    assert_eq!(app0.tags["Origin"], "ami-0abc");
    assert_eq!(app0.tags["Commit"], head);
    assert!(!base0.forced);

    // Nothing to do the second time.
    let out = p.layer(&["build", "--json"]).expect(0);
    let fresh = entry(&out, "base");
    assert_eq!(fresh["action"], "fresh");
    assert_eq!(fresh["version"], base0.version.as_str());
    assert!(
        fresh["duration_ms"].is_null() && fresh["log"].is_null(),
        "{fresh}"
    );

    // --force builds the same key again, with the next number.
    let out = p.layer(&["build", "--json", "--force", "base"]).expect(0);
    assert_eq!(
        actions(&out),
        map(&[("base", "built"), ("app", "skipped"), ("svc", "skipped")])
    );
    assert_eq!(entry(&out, "app")["cause"], "not selected");
    let base1 = cache(&p).latest("base").unwrap();
    assert!(is_version(&base1.version, "1.0", 1), "{}", base1.version);
    assert_eq!(base1.key, base0.key);
    assert!(base1.forced);
    assert_eq!(
        base1.tags["Commit"], head,
        "out/ and cache/ are ignored by git"
    );
    assert_eq!(
        versions_json(&p, "base"),
        [
            (base1.version.clone(), true),
            (base0.version.clone(), false)
        ]
    );
    let text = p.layer(&["versions", "base"]).expect(0).stdout;
    let rows: Vec<&str> = text.lines().collect();
    assert_eq!(rows.len(), 3, "{text}");
    assert!(rows[0].starts_with("VERSION "), "{text}");
    assert!(
        rows[1].starts_with(&format!("{} ", base1.version)),
        "{text}"
    );
    assert!(
        rows[2].starts_with(&format!("{} ", base0.version)),
        "{text}"
    );
    assert!(
        rows[1].contains("candidate") && rows[1].contains("art-base-"),
        "{text}"
    );

    // A new MAJOR.MINOR starts at 0 again; the uncommitted change makes the commit dirty.
    p.file(
        "images/base.toml",
        &p.read("images/base.toml").replace("1.0", "1.1"),
    );
    let plan = p.layer(&["plan"]).expect(0).stdout;
    assert_eq!(p.layer(&["build", "-n"]).expect(0).stdout, plan);
    assert_eq!(cache(&p).records("base").len(), 2, "-n builds nothing");
    let out = p.layer(&["build", "--json"]).expect(0);
    assert_eq!(
        actions(&out),
        map(&[("base", "built"), ("app", "built"), ("svc", "built")])
    );
    let base2 = cache(&p).latest("base").unwrap();
    let app1 = cache(&p).latest("app").unwrap();
    assert!(is_version(&base2.version, "1.1", 0), "{}", base2.version);
    assert!(is_version(&app1.version, "2.3", 1), "{}", app1.version);
    assert_eq!(base2.tags["Commit"], format!("{head}-dirty"));
    assert_eq!(app1.tags["Parent"], format!("base {}", base2.version));
    assert_eq!(app1.parent.as_ref().unwrap().version, base2.version);
    assert!(!app1.forced);
    assert_eq!(
        versions_json(&p, "base")
            .into_iter()
            .map(|(v, _)| v)
            .collect::<Vec<_>>(),
        [base2.version, base1.version, base0.version]
    );
    assert_eq!(
        versions_json(&p, "app")
            .into_iter()
            .map(|(v, _)| v)
            .collect::<Vec<_>>(),
        [app1.version, app0.version]
    );
}

#[test]
fn stage_lines_of_a_build_show_as_its_current_stage_after_redaction() {
    // apply.sh prints `==> role NAME`; any backend may print `==> STAGE` lines.
    let p = Project::command_estate(
        "#!/bin/sh\necho \"==> role first-$LAYER_IMAGE\" >&2\necho \"==> pushing $DB_TOKEN\" >&2\necho \"ami-$LAYER_IMAGE\" > \"$LAYER_OUTPUT\"\n",
    );
    p.file(
        "images/base.toml",
        &format!(
            "{}\n[secrets]\nDB_TOKEN = {{ env = \"STAGE_TOKEN\" }}\n",
            p.read("images/base.toml")
        ),
    );
    let out = p
        .layer_env(
            &["build", "--no-progress", "-j", "1", "base"],
            &[("STAGE_TOKEN", "s3cr3t-value")],
        )
        .expect(0);
    out.stderr_has("base: role first-base\n");
    out.stderr_has("base: pushing [secret]\n");
    assert!(!out.stderr.contains("s3cr3t-value"), "{}", out.stderr);
}

#[test]
fn a_bundle_is_shared_by_builds_and_a_build_that_writes_into_it_harms_no_other() {
    // Each build notes its bundle and what it found in it, then writes into it.
    let p = Project::command_estate(&format!(
        "{SCRIPT_START}echo \"$LAYER_BUNDLE\" >> out/bundles\n\
         cat \"$LAYER_BUNDLE/roles/01-base/files/etc/motd\" >> out/seen\n\
         echo tampered > \"$LAYER_BUNDLE/roles/01-base/files/etc/motd\"\n{SCRIPT_DONE}"
    ));
    p.layer(&["build", "base"]).expect(0);
    p.layer(&["build", "--force", "base"]).expect(0);
    assert_eq!(p.read("out/seen"), "welcome\nwelcome\n");
    assert_eq!(p.read("roles/base/files/etc/motd"), "welcome\n");
    let bundles = p.read("out/bundles");
    let lines: Vec<&str> = bundles.lines().collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(
        lines[0], lines[1],
        "the same content is staged in the same place"
    );
    assert!(lines[0].contains("/cache/staged/bundles/"), "{bundles}");
    // `cache gc` removes every staging; the next build stages again.
    p.layer(&["cache", "gc"]).expect(0);
    assert!(!p.path("cache/staged").exists());
    p.layer(&["build", "--force", "base"]).expect(0);
    assert_eq!(p.read("out/seen"), "welcome\nwelcome\nwelcome\n");
}
