//! Bugs found on a day of using `layer` as a new user would (issue 13), each pinned by the test
//! that failed before its fix: `--force` of one target, declaration errors of one file, exits of
//! missing files and unwritable caches, the instance report and revoked builds, reasons across
//! strategies, role tests and keys. (`cache gc` and its test logs are in `cache_cmd`; the
//! rootfs ones — no tests, `export -o -`, OCI digests and tags — in `regressions_rootfs`.)

use crate::common::{redact, Project, SCRIPT_DONE, SCRIPT_START};

use std::fs;
use std::os::unix::fs::PermissionsExt;

use layer::model::Strategy;
use serde_json::{json, Value};

// ---------------------------------------------------------------------------------------------
// `--force` forces the named targets; `--force-deps` their chain too.

#[test]
fn force_rebuilds_the_named_targets_only_and_force_deps_their_chain() {
    let p = Project::command_estate(&format!("{SCRIPT_START}{SCRIPT_DONE}"));
    p.layer(&["build", "--no-progress"]).expect(0);
    p.layer(&["build", "--force", "app", "--no-progress"])
        .expect(0);
    assert_eq!(p.count_lines("out/marks", "start base"), 1, "base is fresh");
    assert_eq!(p.count_lines("out/marks", "start app"), 2);
    assert_eq!(p.count_lines("out/marks", "start svc"), 1, "not selected");

    // svc was built on the build of app's same inputs that --force replaced: a rebuild of the
    // same inputs, not a change.
    let (action, reasons) = p.verdict(&[], "svc");
    assert_eq!(action, "build");
    assert_eq!(
        reasons,
        json!([{"kind": "parent-rebuilt", "parent": "app"}])
    );
    let explain = p.layer(&["explain", "svc"]).expect(0).stdout;
    assert!(
        explain.contains("parent `app` was rebuilt from the same inputs"),
        "{explain}"
    );
    assert!(!explain.contains("parent `app` changed"), "{explain}");
    let plan = p.layer(&["plan"]).expect(0).stdout;
    assert!(
        plan.contains("parent `app` was rebuilt from the same inputs"),
        "{plan}"
    );

    // --force-deps: the target and everything it is built on.
    p.layer(&["build", "--force-deps", "app", "--no-progress"])
        .expect(0);
    assert_eq!(p.count_lines("out/marks", "start base"), 2);
    assert_eq!(p.count_lines("out/marks", "start app"), 3);
    let help = p.layer(&["build", "--help"]).expect(0).stdout;
    assert!(help.contains("--force-deps"), "{help}");
}

// ---------------------------------------------------------------------------------------------
// Every problem of one declaration file in one run.

/// `layer plan` failing with exit 2; stderr with paths redacted.
fn plan_error(p: &Project) -> String {
    let out = p.layer(&["plan"]).expect(2);
    redact(p, &out.stderr)
}

#[test]
fn every_unknown_key_of_an_image_file_is_reported_in_one_run() {
    let p = Project::estate();
    p.file(
        "images/node.toml",
        "version = \"1.0\"\nform = \"base-linux\"\nrolez = [\"web\"]\n\n[vars]\nA = \"1\"\n\n[[test]]\nname = \"t\"\nrun = \"true\"\ntimeout = 3\n",
    );
    let err = plan_error(&p);
    assert!(
        err.contains("images/node.toml:2: unknown key `form`"),
        "{err}"
    );
    assert!(
        err.contains("images/node.toml:3: unknown key `rolez`"),
        "{err}"
    );
    assert!(
        err.contains("images/node.toml:11: unknown key `timeout`"),
        "{err}"
    );
    assert!(err.contains("did you mean `from`?"), "{err}");
    assert!(err.contains("did you mean `roles`?"), "{err}");
}

#[test]
fn every_unknown_key_of_layer_toml_is_reported_in_one_run() {
    let p = Project::estate();
    p.file(
        "layer.toml",
        "[project]\nstrategi = \"deep\"\nbakend = \"rootfs\"\n\n[origins.bb]\ntarr = \"origins/base.tar\"\n",
    );
    let err = plan_error(&p);
    for (line, key) in [(2, "strategi"), (3, "bakend"), (6, "tarr")] {
        assert!(
            err.contains(&format!("layer.toml:{line}: unknown key `{key}`")),
            "{err}"
        );
    }
}

#[test]
fn a_duplicate_key_is_named() {
    let p = Project::estate();
    p.file(
        "images/node.toml",
        "version = \"1.0\"\nfrom = \"base-linux\"\nversion = \"1.1\"\n",
    );
    let err = plan_error(&p);
    assert!(
        err.contains("images/node.toml:3: duplicate key `version`"),
        "{err}"
    );
}

#[test]
fn a_key_after_a_table_header_gets_a_hint_about_toml_tables() {
    let p = Project::estate();
    p.file(
        "roles/java/role.toml",
        "packages = [\"openjdk\"]\n\n[vars]\nJAVA_OPTS = \"-Xmx1g\"\ndepends = [\"base\"]\n",
    );
    let err = plan_error(&p);
    assert!(err.contains("roles/java/role.toml:5:"), "{err}");
    assert!(err.contains("`depends`"), "{err}");
    assert!(err.contains("[vars]"), "{err}");
    assert!(err.contains("belongs to the table"), "{err}");
    assert!(!err.contains("quote the value"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// Exit codes: a missing file, an unwritable cache.

#[test]
fn a_missing_inventory_is_a_usage_error() {
    let p = Project::estate();
    let out = p.layer(&["report", "--inventory", "nowhere.csv"]).expect(2);
    assert_eq!(
        out.stderr,
        "error: nowhere.csv: cannot read the inventory: no such file or directory\n  hint: give the path of a CSV or JSON inventory with `--inventory FILE`\n"
    );
}

/// `layer ARGS` in `p` as the user `nobody`, with `--cache cache`.
pub(crate) fn as_nobody(p: &Project, cache: &std::path::Path, args: &[&str]) -> (i32, String) {
    let out = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(env!("CARGO_BIN_EXE_layer"))
        .arg("-C")
        .arg(p.root())
        .arg("--cache")
        .arg(cache)
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
#[cfg_attr(
    missing = "root",
    ignore = "needs root (mounts, chroot, owners, device nodes)"
)]
fn a_cache_the_user_cannot_write_is_a_usage_error_that_says_so() {
    crate::needs::check(&[crate::needs::Need::Root]);
    let p = Project::command_estate(&format!("{SCRIPT_START}{SCRIPT_DONE}"));
    fs::set_permissions(p.root(), fs::Permissions::from_mode(0o777)).unwrap();
    p.chmod("roles/base/files/etc/base.key", 0o644);
    let cache = tempfile::tempdir().unwrap();
    // Another user's cache is refused before anything is tried (a project could commit one).
    fs::set_permissions(cache.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let (code, stderr) = as_nobody(&p, cache.path(), &["build", "--no-progress"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("the cache folder is owned by user 0"),
        "{stderr}"
    );
    // The user's own cache that it may not write: a usage error that says so.
    std::os::unix::fs::chown(cache.path(), Some(65534), Some(65534)).unwrap();
    fs::set_permissions(cache.path(), fs::Permissions::from_mode(0o555)).unwrap();
    let (code, stderr) = as_nobody(&p, cache.path(), &["build", "--no-progress"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("cannot write to the cache"), "{stderr}");
    assert!(stderr.contains("permission denied"), "{stderr}");
    assert!(stderr.contains("hint:"), "{stderr}");
}

#[test]
#[cfg_attr(
    missing = "root",
    ignore = "needs root (mounts, chroot, owners, device nodes)"
)]
fn a_rootfs_build_without_root_says_so_whatever_the_cache() {
    crate::needs::check(&[crate::needs::Need::Root]);
    let p = Project::estate();
    fs::set_permissions(p.root(), fs::Permissions::from_mode(0o755)).unwrap();
    for mode in [0o700, 0o755] {
        let cache = tempfile::tempdir().unwrap();
        std::os::unix::fs::chown(cache.path(), Some(65534), Some(65534)).unwrap();
        fs::set_permissions(cache.path(), fs::Permissions::from_mode(mode)).unwrap();
        let (code, stderr) = as_nobody(&p, cache.path(), &["build", "--no-progress"]);
        assert_eq!(code, 2, "{stderr}");
        assert!(
            stderr.contains("is built with the `rootfs` backend, which needs root"),
            "{stderr}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The instance report and revoked builds.

#[test]
fn instances_on_revoked_builds_are_to_rebuild_with_the_reason() {
    let p = Project::estate();
    p.record(&[]);
    let app = p.layer(&["versions", "app", "--json"]).expect(0).stdout;
    let app: Value = serde_json::from_str(&app).unwrap();
    let version = app[0]["version"].as_str().unwrap().to_string();
    p.layer(&["revoke", &format!("app@{version}")]).expect(0);
    let base: Value = serde_json::from_str(
        &p.layer(&["versions", "base-linux", "--json"])
            .expect(0)
            .stdout,
    )
    .unwrap();
    let base_version = base[0]["version"].as_str().unwrap().to_string();
    p.layer(&["revoke", &format!("base-linux@{base_version}")])
        .expect(0);
    p.file(
        "inventory.csv",
        "instance,image,version\ni-1,app,2.0.0\ni-2,node,1.0.0\ni-3,svc,1.0.0\n",
    );
    let out = p
        .layer(&["report", "--inventory", "inventory.csv", "--format", "json"])
        .expect(0);
    let r: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(r["rebuild"]["count"], 3, "{}", out.stdout);
    assert_eq!(r["rebuild"]["instances"], json!(["i-1", "i-2", "i-3"]));
    let text = p
        .layer(&["report", "--inventory", "inventory.csv"])
        .expect(0)
        .stdout;
    assert!(text.contains("app 2.0.0 is revoked"), "{text}");
    assert!(text.contains("built on revoked base-linux 1.0.0"), "{text}");
}

// ---------------------------------------------------------------------------------------------
// Reasons compare builds of the same strategy.

#[test]
fn reasons_and_explain_compare_with_the_latest_build_of_the_same_strategy() {
    let p = Project::estate();
    p.record(&[]);
    p.record_with(Strategy::Shallow, &[]);
    p.file(
        "images/app.toml",
        "version = \"2.0\"\nfrom = \"base-linux\"\nroles = [\"java\"]\n[vars]\nPORT = \"9090\"\n",
    );
    let (_, reasons) = p.verdict(&[], "app");
    assert_eq!(
        reasons,
        json!([{"kind": "declaration-changed", "fields": ["vars.PORT"]}])
    );
    let (_, reasons) = p.verdict(&[], "svc");
    assert_eq!(
        reasons,
        json!([{"kind": "parent-changed", "parent": "app"}])
    );
    let (_, reasons) = p.verdict(&["--strategy", "shallow"], "svc");
    assert_eq!(
        reasons,
        json!([{"kind": "declaration-changed", "fields": ["app.vars.PORT"]}])
    );
    let explain = p.layer(&["explain", "app"]).expect(0).stdout;
    assert!(explain.contains("vars.PORT"), "{explain}");
    assert!(!explain.contains("strategy"), "{explain}");
    assert!(!explain.contains("no longer applied"), "{explain}");

    // Which strategy each build used.
    let v: Value =
        serde_json::from_str(&p.layer(&["versions", "app", "--json"]).expect(0).stdout).unwrap();
    let strategies: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["strategy"].as_str().unwrap())
        .collect();
    assert_eq!(strategies, ["shallow", "deep"]);
    let text = p.layer(&["versions", "app"]).expect(0).stdout;
    assert!(text.contains("STRATEGY"), "{text}");

    // hash, export and test take --strategy.
    let deep = p.layer(&["hash", "app"]).expect(0).stdout;
    let shallow = p
        .layer(&["hash", "app", "--strategy", "shallow"])
        .expect(0)
        .stdout;
    assert_ne!(deep, shallow);
    for args in [
        &[
            "export",
            "app",
            "--strategy",
            "shallow",
            "--format",
            "tar",
            "-o",
            "x.tar",
        ][..],
        &["test", "app", "--strategy", "shallow"][..],
    ] {
        let out = p.layer(args);
        assert!(
            !out.stderr.contains("unexpected argument"),
            "{}",
            out.stderr
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Role tests are not part of the key.

#[test]
fn a_role_test_leaves_the_keys_of_the_images_that_apply_the_role() {
    let p = Project::estate();
    let before = p.layer(&["hash"]).expect(0).stdout;
    p.file("roles/web/tests/more.sh", "true\n");
    p.file("roles/base/tests/motd.sh", "grep -q welcome /etc/motd\n");
    assert_eq!(p.layer(&["hash"]).expect(0).stdout, before);
    p.file("roles/base/files/etc/motd", "changed\n");
    assert_ne!(p.layer(&["hash"]).expect(0).stdout, before);
}
