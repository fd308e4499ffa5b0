//! What each command prints, on the estate: never built, fresh, and partly stale.

use crate::common;
use crate::common::{record_images, redact, run_layer, Project};

/// `layer ARGS`, exit 0, stdout with paths redacted; stderr must be empty.
fn stdout(p: &Project, args: &[&str]) -> String {
    let out = p.layer(args).expect(0);
    assert_eq!(out.stderr, "", "{args:?}: nothing on stderr");
    redact(p, &out.stdout)
}

/// The estate recorded as built, then `java` edited: `app` and `svc` stale, the rest fresh.
fn partly_stale() -> Project {
    let p = Project::estate();
    p.record(&[]);
    p.file("roles/java/provision.sh", "#!/bin/sh\necho java 21\n");
    p
}

fn is_key(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

// ---------------------------------------------------------------------------------------------
// plan

#[test]
fn plan_never_built() {
    let p = Project::estate();
    insta::assert_snapshot!("plan_never_built_text", stdout(&p, &["plan"]));
    insta::assert_snapshot!(
        "plan_never_built_json",
        stdout(&p, &["plan", "--format", "json"])
    );
    insta::assert_snapshot!(
        "plan_never_built_markdown",
        stdout(&p, &["plan", "--format", "markdown"])
    );
}

#[test]
fn plan_fresh() {
    let p = Project::estate();
    p.record(&[]);
    insta::assert_snapshot!("plan_fresh_text", stdout(&p, &["plan"]));
    insta::assert_snapshot!(
        "plan_fresh_markdown",
        stdout(&p, &["plan", "--format", "markdown"])
    );
    let plan: serde_json::Value =
        serde_json::from_str(&stdout(&p, &["plan", "--format", "json"])).unwrap();
    assert_eq!(
        plan["summary"],
        serde_json::json!({"build": 0, "fresh": 4, "skip": 0})
    );
}

#[test]
fn plan_partly_stale() {
    let p = partly_stale();
    insta::assert_snapshot!("plan_partly_stale_text", stdout(&p, &["plan"]));
    insta::assert_snapshot!(
        "plan_partly_stale_json",
        stdout(&p, &["plan", "--format", "json"])
    );
    insta::assert_snapshot!(
        "plan_partly_stale_markdown",
        stdout(&p, &["plan", "--format", "markdown"])
    );
}

#[test]
fn plan_with_skipped_images() {
    let p = partly_stale();
    insta::assert_snapshot!(stdout(&p, &["plan", "--changed"]));
}

#[test]
fn plan_json_has_the_documented_shape() {
    let p = partly_stale();
    let plan: serde_json::Value =
        serde_json::from_str(&stdout(&p, &["plan", "--format", "json"])).unwrap();
    let top: Vec<&str> = plan
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(top, ["images", "schema", "strategy", "summary"]);
    assert_eq!(plan["schema"], 1);
    assert_eq!(plan["strategy"], "deep");
    for img in plan["images"].as_array().unwrap() {
        let mut fields: Vec<&str> = img
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        fields.sort();
        // `cached` only on fresh images (SPEC §8): `local` here, as the cache is local.
        let mut expected = vec![
            "action", "key", "name", "origin", "parent", "reasons", "roles", "wave",
        ];
        if img["action"] == "fresh" {
            assert_eq!(img["cached"], "local", "{img}");
            expected.insert(1, "cached");
        }
        assert_eq!(fields, expected);
        assert!(is_key(img["key"].as_str().unwrap()), "{img}");
    }
}

#[test]
fn markdown_escapes_table_cells() {
    let p = Project::estate();
    p.record(&[]);
    p.file("roles/web/a|b<c>.sh", "true\n");
    let md = stdout(&p, &["plan", "--format", "markdown"]);
    assert!(
        md.contains("role `web` changed: roles/web/a\\|b&lt;c&gt;.sh"),
        "{md}"
    );
}

// ---------------------------------------------------------------------------------------------
// list

#[test]
fn list_never_built() {
    let p = Project::estate();
    insta::assert_snapshot!(stdout(&p, &["list"]));
}

#[test]
fn list_partly_stale() {
    let p = partly_stale();
    insta::assert_snapshot!("list_partly_stale_text", stdout(&p, &["list"]));
    insta::assert_snapshot!("list_partly_stale_json", stdout(&p, &["list", "--json"]));
}

// ---------------------------------------------------------------------------------------------
// graph

#[test]
fn graph_formats() {
    let p = Project::estate();
    let dot = stdout(&p, &["graph"]);
    assert_eq!(dot, stdout(&p, &["graph", "--format", "dot"]));
    insta::assert_snapshot!("graph_dot", dot);
    insta::assert_snapshot!(
        "graph_mermaid",
        stdout(&p, &["graph", "--format", "mermaid"])
    );
    insta::assert_snapshot!("graph_json", stdout(&p, &["graph", "--format", "json"]));
}

#[test]
fn graph_of_a_target_shows_its_ancestors_only() {
    let p = Project::estate();
    insta::assert_snapshot!(stdout(&p, &["graph", "svc", "--format", "mermaid"]));
}

#[test]
fn graph_needs_no_origin_file() {
    // `graph` reads declarations only.
    let p = Project::estate();
    p.remove("origins/base.tar");
    p.layer(&["graph"]).expect(0);
}

// ---------------------------------------------------------------------------------------------
// hash

#[test]
fn hash_prints_one_key_per_image() {
    let p = Project::estate();
    let text = stdout(&p, &["hash"]);
    insta::assert_snapshot!("hash_text", text);
    let lines: Vec<(&str, &str)> = text.lines().map(|l| l.split_once("  ").unwrap()).collect();
    let names: Vec<&str> = lines.iter().map(|(_, n)| *n).collect();
    assert_eq!(names, ["base-linux", "app", "node", "svc"]);
    for (k, _) in &lines {
        assert!(is_key(k), "{k}");
    }
    let one = stdout(&p, &["hash", "node"]);
    assert_eq!(one, format!("{}\n", text.lines().nth(2).unwrap()));
}

#[test]
fn hash_inputs_json() {
    let p = Project::estate();
    let json = stdout(&p, &["hash", "app", "--inputs", "--json"]);
    insta::assert_snapshot!(json);
    let rows: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert!(is_key(rows[0]["key"].as_str().unwrap()));
    // Without --inputs, JSON has names and keys only.
    let rows: serde_json::Value = serde_json::from_str(&stdout(&p, &["hash", "--json"])).unwrap();
    for r in rows.as_array().unwrap() {
        assert_eq!(r.as_object().unwrap().len(), 2, "{r}");
        assert!(is_key(r["key"].as_str().unwrap()));
    }
}

#[test]
fn hash_inputs_text_shows_key_and_inputs() {
    let p = Project::estate();
    let text = stdout(&p, &["hash", "base-linux", "--inputs"]);
    insta::assert_snapshot!(text);
}

#[test]
fn a_key_changes_with_an_input_and_only_below_it() {
    let p = Project::estate();
    let keys = |p: &Project| -> Vec<String> {
        stdout(p, &["hash"])
            .lines()
            .map(|l| l[..64].to_string())
            .collect()
    };
    let before = keys(&p);
    p.file(
        "images/app.toml",
        "version = \"2.0\"\nfrom = \"base-linux\"\nroles = [\"java\"]\n[vars]\nPORT = \"9090\"\n",
    );
    let after = keys(&p);
    // base-linux, app, node, svc
    assert_eq!(before[0], after[0]);
    assert_ne!(before[1], after[1]);
    assert_eq!(before[2], after[2]);
    assert_ne!(before[3], after[3]);
    p.file(
        "images/app.toml",
        "version = \"2.0\"\nfrom = \"base-linux\"\nroles = [\"java\"]\n[vars]\nPORT = \"8080\"\n",
    );
    assert_eq!(keys(&p), before);
}

#[test]
fn the_environment_is_not_an_input() {
    let p = Project::estate();
    let before = stdout(&p, &["hash"]);
    let out = run_layer(
        p.root(),
        &["hash"],
        &[
            ("PORT", std::path::Path::new("1")),
            ("HOME", std::path::Path::new("/nowhere")),
        ],
    )
    .expect(0);
    assert_eq!(out.stdout, before);
}

// ---------------------------------------------------------------------------------------------
// explain

#[test]
fn explain_never_built() {
    let p = Project::estate();
    insta::assert_snapshot!(stdout(&p, &["explain", "app"]));
}

#[test]
fn explain_fresh() {
    let p = Project::estate();
    p.record(&[]);
    insta::assert_snapshot!(stdout(&p, &["explain", "app"]));
}

#[test]
fn explain_stale() {
    let p = Project::estate();
    p.symlink("/usr/share/zoneinfo/UTC", "roles/java/files/etc/localtime");
    p.record(&[]);
    p.file("roles/java/provision.sh", "#!/bin/sh\necho java 21\n");
    p.file("roles/java/files/etc/java.conf", "heap=1g\n");
    p.symlink(
        "/usr/share/zoneinfo/Europe/Paris",
        "roles/java/files/etc/localtime",
    );
    p.file(
        "images/app.toml",
        "version = \"2.1\"\nfrom = \"base-linux\"\nroles = [\"java\"]\npackages = [\"curl\"]\n[vars]\nPORT = \"9090\"\nDEBUG = \"1\"\n",
    );
    insta::assert_snapshot!("explain_stale_app", stdout(&p, &["explain", "app"]));
    insta::assert_snapshot!("explain_stale_svc", stdout(&p, &["explain", "svc"]));
    insta::assert_snapshot!(
        "explain_stale_app_plan",
        stdout(&p, &["plan", "app", "svc"])
    );
}

#[test]
fn explain_an_origin_change() {
    let p = Project::estate();
    p.record(&[]);
    p.file("origins/base.tar", "another rootfs\n");
    insta::assert_snapshot!(stdout(&p, &["explain", "base-linux"]));
}

#[test]
fn explain_a_corrupt_record() {
    let p = Project::estate();
    p.record(&[]);
    std::fs::write(p.record_path("node"), "{").unwrap();
    insta::assert_snapshot!(stdout(&p, &["explain", "node"]));
}

#[test]
fn explain_a_rebuilt_parent() {
    let p = Project::estate();
    p.record(&[]);
    p.record(&["app"]);
    insta::assert_snapshot!(stdout(&p, &["explain", "svc"]));
}

// ---------------------------------------------------------------------------------------------
// Finding the project and the cache.

#[test]
fn dash_c_names_the_project_from_anywhere() {
    let p = partly_stale();
    let elsewhere = tempfile::tempdir().unwrap();
    let root = p.root().to_str().unwrap();
    let here = p.layer(&["plan", "--format", "json"]).expect(0).stdout;
    for args in [
        &["-C", root, "plan", "--format", "json"][..],
        &["plan", "-C", root, "--format", "json"],
        &["plan", "--format", "json", "-C", root],
    ] {
        let out = run_layer(elsewhere.path(), args, &[]).expect(0);
        assert_eq!(out.stdout, here, "{args:?}");
    }
    // `-C` into a subfolder walks up from there.
    let sub = format!("{root}/roles/java");
    let out = run_layer(
        elsewhere.path(),
        &["-C", &sub, "plan", "--format", "json"],
        &[],
    )
    .expect(0);
    assert_eq!(out.stdout, here);
    // A relative `-C` is relative to the current folder.
    let out = run_layer(
        p.root().parent().unwrap(),
        &[
            "-C",
            p.root().file_name().unwrap().to_str().unwrap(),
            "plan",
            "--format",
            "json",
        ],
        &[],
    )
    .expect(0);
    assert_eq!(out.stdout, here);
    assert_eq!(std::fs::read_dir(elsewhere.path()).unwrap().count(), 0);
}

#[test]
fn the_root_is_found_by_walking_up_from_a_subfolder() {
    let p = partly_stale();
    let here = p.layer(&["plan", "--format", "json"]).expect(0).stdout;
    for sub in ["roles/java", "roles/base/files/etc", "images"] {
        let out = p
            .layer_in(&p.path(sub), &["plan", "--format", "json"])
            .expect(0);
        assert_eq!(out.stdout, here, "{sub}");
        assert!(!p.path(sub).join("cache").exists(), "{sub}");
    }
}

#[test]
fn cache_flag_and_layer_cache_name_another_cache() {
    let p = Project::estate();
    let cache = tempfile::tempdir().unwrap();
    record_images(
        p.root(),
        Some(cache.path().to_path_buf()),
        &[],
        "2026-11-20T10:00:00Z",
    );
    assert!(!p.path("cache").exists());
    let dir = cache.path().to_str().unwrap();

    let fresh = |out: common::Output| {
        let plan: serde_json::Value = serde_json::from_str(&out.expect(0).stdout).unwrap();
        plan["summary"]["fresh"].as_u64().unwrap()
    };
    assert_eq!(fresh(p.layer(&["plan", "--format", "json"])), 0);
    assert_eq!(
        fresh(p.layer(&["--cache", dir, "plan", "--format", "json"])),
        4
    );
    assert_eq!(
        fresh(p.layer(&["plan", "--format", "json", "--cache", dir])),
        4
    );
    assert_eq!(
        fresh(run_layer(
            p.root(),
            &["plan", "--format", "json"],
            &[("LAYER_CACHE", cache.path())]
        )),
        4
    );
    // The flag wins over the environment.
    let empty = tempfile::tempdir().unwrap();
    assert_eq!(
        fresh(run_layer(
            p.root(),
            &[
                "plan",
                "--format",
                "json",
                "--cache",
                empty.path().to_str().unwrap()
            ],
            &[("LAYER_CACHE", cache.path())]
        )),
        0
    );
    let list = run_layer(p.root(), &["list"], &[("LAYER_CACHE", cache.path())]).expect(0);
    list.stdout_has("app-2.0.0");

    // A project-relative cache is not created by the runs above that named another one.
    let p2 = Project::estate();
    p2.layer(&["--cache", empty.path().to_str().unwrap(), "plan"])
        .expect(0);
    assert!(!p2.path("cache").exists());
}

#[test]
fn help_and_version() {
    let p = Project::estate();
    let help = p.layer(&["--help"]).expect(0).stdout;
    for cmd in ["list", "graph", "plan", "hash", "explain"] {
        assert!(help.contains(cmd), "{cmd}: {help}");
    }
    let version = p.layer(&["--version"]).expect(0).stdout;
    // The commit it was built from follows (see `daily::version_names_the_commit_...`).
    assert!(
        version.starts_with(&format!("layer {} ", env!("CARGO_PKG_VERSION"))),
        "{version}"
    );
}

#[test]
fn color_is_off_unless_asked_for() {
    let p = partly_stale();
    assert!(!stdout(&p, &["plan"]).contains('\x1b'));
    assert!(!stdout(&p, &["plan", "--color", "auto"]).contains('\x1b'));
    let painted = stdout(&p, &["plan", "--color", "always"]);
    assert!(painted.contains("\x1b[1;33mbuild\x1b[0m"), "{painted:?}");
    assert!(!stdout(&p, &["list", "--color", "never"]).contains('\x1b'));
    // Machine-readable output is never painted.
    assert!(!stdout(&p, &["plan", "--format", "json", "--color", "always"]).contains('\x1b'));
    assert!(!stdout(&p, &["list", "--json", "--color", "always"]).contains('\x1b'));
}

#[test]
fn explain_mentions_secrets_only_for_images_that_have_them() {
    let p = Project::estate();
    p.file(
        "images/app.toml",
        "version = \"2.0\"\nfrom = \"base-linux\"\nroles = [\"java\"]\n[secrets]\nDB_PASSWORD = { env = \"APP_DB_PASSWORD\" }\n",
    );
    let app = p.layer(&["explain", "app"]).expect(0);
    app.stdout_has("note: `[secrets]` are not part of keys");
    let svc = p.layer(&["explain", "svc"]).expect(0);
    assert!(!svc.stdout.contains("[secrets]"), "{}", svc.stdout);
}
