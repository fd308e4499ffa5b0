//! The life of a build after it: release status (`promote`, `revoke`), images on revoked
//! parents, pinned parents, and age limits.

use crate::common::{Output, Project, SCRIPT_DONE, SCRIPT_START};

use layer::cache::Cache;
use layer::record::Record;
use serde_json::{json, Value};

fn cache(p: &Project) -> Cache {
    Cache::new(p.path("cache"))
}

/// The release status tags of every build of `image`, newest first: `(MAJOR.MINOR.BUILD,
/// status, forced)`.
fn statuses(p: &Project, image: &str) -> Vec<(String, String, bool)> {
    cache(p)
        .records(image)
        .into_iter()
        .map(|r| {
            (
                r.version.split('-').next().unwrap().to_string(),
                r.tags
                    .get("Release_Status")
                    .cloned()
                    .unwrap_or_else(|| "candidate".into()),
                r.tags.get("Release_Forced").is_some_and(|v| v == "true"),
            )
        })
        .collect()
}

/// Sets the release status of build `version` (MAJOR.MINOR.BUILD) of `image`, as `layer test`
/// would.
fn set_status(p: &Project, image: &str, version: &str, status: &str) {
    let c = cache(p);
    let mut r = c
        .records(image)
        .into_iter()
        .find(|r| r.version.starts_with(&format!("{version}-")))
        .unwrap();
    r.tags.insert("Release_Status".into(), status.into());
    c.rewrite_record(&r).unwrap();
}

fn record_of(p: &Project, image: &str, version: &str) -> Record {
    cache(p)
        .records(image)
        .into_iter()
        .find(|r| r.version.starts_with(&format!("{version}-")))
        .unwrap_or_else(|| panic!("{image} {version} is recorded"))
}

fn fails(out: Output, code: i32) -> String {
    let out = out.expect(code);
    assert!(out.stdout.is_empty(), "{}", out.stdout);
    out.stderr
}

/// The estate with `base-linux` built three times (1.0.0, 1.0.1, 1.0.2, each a new key) and
/// the rest once, on 1.0.2.
fn three_bases() -> Project {
    let p = Project::estate();
    for n in 0..3 {
        p.file("roles/base/files/etc/motd", &format!("welcome {n}\n"));
        p.record(&["base-linux"]);
    }
    p.record(&["app", "node", "svc"]);
    p
}

// ---------------------------------------------------------------------------------------------
// promote and revoke

#[test]
fn every_release_status_transition() {
    let p = three_bases();
    let cand = |v: &str| (v.to_string(), "candidate".to_string(), false);
    assert_eq!(
        statuses(&p, "base-linux"),
        [cand("1.0.2"), cand("1.0.1"), cand("1.0.0")]
    );

    // candidate -> released: only with --force, which the record keeps.
    let err = fails(p.layer(&["promote", "base-linux"]), 2);
    assert_eq!(
        err,
        "error: `base-linux` 1.0.2 is an untested candidate\n  hint: run `layer test base-linux` first, or promote it anyway with `layer promote --force base-linux@1.0.2`\n"
    );
    let out = p.layer(&["promote", "--force", "base-linux"]).expect(0);
    assert_eq!(
        out.stdout,
        "base-linux 1.0.2-20261120_1000: candidate -> released (forced: it was not tested)\n"
    );
    assert_eq!(
        statuses(&p, "base-linux")[0],
        ("1.0.2".into(), "released".into(), true)
    );

    // tested -> released, named by MAJOR.MINOR.BUILD; not forced.
    set_status(&p, "base-linux", "1.0.1", "tested");
    let out = p.layer(&["promote", "base-linux@1.0.1"]).expect(0);
    assert_eq!(
        out.stdout,
        "base-linux 1.0.1-20261120_1000: tested -> released\n"
    );
    assert_eq!(
        statuses(&p, "base-linux")[1],
        ("1.0.1".into(), "released".into(), false)
    );
    // released -> released changes nothing.
    let out = p.layer(&["promote", "base-linux@1.0.1"]).expect(0);
    assert_eq!(
        out.stdout,
        "base-linux 1.0.1-20261120_1000: already released\n"
    );

    // failed -> released: never, not even with --force.
    set_status(&p, "base-linux", "1.0.0", "failed");
    for args in [
        &["promote", "base-linux@1.0.0"][..],
        &["promote", "--force", "base-linux@1.0.0"],
    ] {
        let err = fails(p.layer(args), 2);
        assert!(
            err.starts_with("error: `base-linux` 1.0.0 failed its tests and cannot be promoted\n"),
            "{err}"
        );
    }

    // Anything -> revoked, named in full; revoked -> released never.
    let out = p
        .layer(&["revoke", "base-linux@1.0.1-20261120_1000"])
        .expect(0);
    assert_eq!(
        out.stdout,
        "base-linux 1.0.1-20261120_1000: released -> revoked\n"
    );
    p.layer(&["revoke", "base-linux@1.0.0"]).expect(0);
    let out = p.layer(&["revoke", "app@2.0.0"]).expect(0);
    assert_eq!(
        out.stdout,
        "app 2.0.0-20261120_1000: candidate -> revoked\n"
    );
    let out = p.layer(&["revoke", "app@2.0.0"]).expect(0);
    assert_eq!(out.stdout, "app 2.0.0-20261120_1000: already revoked\n");
    let err = fails(p.layer(&["promote", "--force", "base-linux@1.0.1"]), 2);
    assert_eq!(
        err,
        "error: `base-linux` 1.0.1 is revoked and cannot be promoted again\n  hint: build a new version with `layer build --force base-linux`\n"
    );
    assert_eq!(
        statuses(&p, "base-linux"),
        [
            ("1.0.2".into(), "released".into(), true),
            ("1.0.1".into(), "revoked".into(), false),
            ("1.0.0".into(), "revoked".into(), false)
        ]
    );
    // `versions` shows the statuses.
    let v = p.layer(&["versions", "base-linux"]).expect(0).stdout;
    assert!(v.contains("1.0.2-20261120_1000  released"), "{v}");
    assert!(v.contains("1.0.1-20261120_1000  revoked"), "{v}");
}

#[test]
fn release_errors_name_what_is_wrong() {
    let p = three_bases();
    let err = fails(p.layer(&["revoke", "base-linux"]), 2);
    assert_eq!(
        err,
        "error: `layer revoke` needs the version to revoke: `base-linux@VERSION`\n  hint: `layer versions base-linux` lists the builds\n"
    );
    let err = fails(p.layer(&["promote", "base-linux@1.0.7"]), 2);
    assert_eq!(
        err,
        "error: `base-linux` has no build 1.0.7; its builds: 1.0.2 (candidate), 1.0.1 (candidate), 1.0.0 (candidate)\n"
    );
    let err = fails(p.layer(&["promote", "base-linux@1.0"]), 2);
    assert!(
        err.starts_with("error: `1.0` is not a version of a build\n"),
        "{err}"
    );
    let err = fails(p.layer(&["promote", "bsae-linux"]), 2);
    assert_eq!(
        err,
        "error: unknown image `bsae-linux`\n  hint: did you mean `base-linux`?\n"
    );
    let fresh = Project::estate();
    let err = fails(fresh.layer(&["promote", "app"]), 2);
    assert_eq!(
        err,
        "error: `app` has no recorded builds\n  hint: build it first: `layer build app`\n"
    );
}

#[test]
fn a_promotion_waits_for_a_build_holding_the_image() {
    let p = three_bases();
    let c = cache(&p);
    let lock = c.lock_image("base-linux", &mut || {}).unwrap();
    let run = p.spawn_layer(&["promote", "--force", "base-linux"], &[]);
    run.wait_for_stderr("promote to wait", "waiting for another run");
    assert_eq!(statuses(&p, "base-linux")[0].1, "candidate");
    drop(lock);
    let out = run.wait().expect(0);
    out.stdout_has("candidate -> released");
}

// ---------------------------------------------------------------------------------------------
// Revoked parents

#[test]
fn images_built_on_a_revoked_parent_are_flagged_and_rebuilt() {
    let p = Project::estate();
    p.record(&[]);
    p.layer(&["revoke", "base-linux@1.0.0"]).expect(0);
    let revoked = json!([{"kind": "parent-revoked", "parent": "base-linux", "version": "1.0.0"}]);
    assert_eq!(
        p.verdict(&[], "base-linux"),
        (
            "build".into(),
            json!([{"kind": "revoked", "version": "1.0.0"}])
        )
    );
    assert_eq!(p.verdict(&[], "app"), ("build".into(), revoked.clone()));
    assert_eq!(p.verdict(&[], "node"), ("build".into(), revoked.clone()));
    assert_eq!(
        p.verdict(&[], "svc"),
        (
            "build".into(),
            json!([{"kind": "parent-rebuilt", "parent": "app"}])
        )
    );
    let plan = p.layer(&["plan"]).expect(0).stdout;
    assert!(
        plan.contains("  build  app         wave 1  built on revoked base-linux 1.0.0\n"),
        "{plan}"
    );
    assert!(
        plan.contains("  build  base-linux  wave 0  build 1.0.0 is revoked\n"),
        "{plan}"
    );
    // A build on a revoked parent is never promoted.
    let err = fails(p.layer(&["promote", "--force", "app"]), 2);
    assert_eq!(
        err,
        "error: `app` 2.0.0 is built on revoked base-linux 1.0.0 and cannot be promoted\n  hint: rebuild it on a good parent: `layer build app`\n"
    );
    let list = p.layer(&["list"]).expect(0).stdout;
    assert!(
        list.ends_with(
            "base-linux: build 1.0.0 is revoked\napp: built on revoked base-linux 1.0.0\nnode: built on revoked base-linux 1.0.0\n"
        ),
        "{list}"
    );
    let listed: Value =
        serde_json::from_str(&p.layer(&["list", "--json"]).expect(0).stdout).unwrap();
    assert_eq!(listed[1]["reasons"], revoked);

    // base-linux rebuilt (a new version of the same key): app and node are still on the
    // revoked build until they are rebuilt too.
    p.record(&["base-linux"]);
    assert_eq!(p.verdict(&[], "base-linux"), ("fresh".into(), json!([])));
    assert_eq!(p.verdict(&[], "app"), ("build".into(), revoked.clone()));
    p.record(&["app", "node", "svc"]);
    assert!(p.actions(&[]).iter().all(|(_, a)| a == "fresh"));
    assert!(!p.layer(&["list"]).expect(0).stdout.contains("revoked"));

    // An image whose key changed since is flagged too, before its other reasons.
    p.layer(&["revoke", "base-linux@1.0.1"]).expect(0);
    p.file("roles/web/provision.sh", "#!/bin/sh\necho web 2\n");
    let (_, reasons) = p.verdict(&[], "node");
    assert_eq!(
        reasons[0],
        json!({"kind": "parent-revoked", "parent": "base-linux", "version": "1.0.1"})
    );
}

// ---------------------------------------------------------------------------------------------
// Pinned parents

/// `app` pinned: `from = "base-linux@PIN"`.
fn pin_app(p: &Project, pin: &str) {
    p.file(
        "images/app.toml",
        &format!("version = \"2.0\"\nfrom = \"base-linux@{pin}\"\nroles = [\"java\"]\n[vars]\nPORT = \"8080\"\n"),
    );
}

#[test]
fn a_pin_matching_no_released_build_is_an_error_naming_the_builds() {
    let p = three_bases();
    pin_app(&p, "1.0");
    let err = fails(p.layer(&["plan"]), 2);
    assert_eq!(
        err,
        "error: `app` is pinned to `base-linux@1.0`, but no released build of `base-linux` matches; its builds: 1.0.2 (candidate), 1.0.1 (candidate), 1.0.0 (candidate)\n  hint: promote a 1.0 build with `layer promote base-linux@VERSION`, or change the pin in `images/app.toml`\n"
    );
    p.layer(&["promote", "--force", "base-linux@1.0.1"])
        .expect(0);
    pin_app(&p, "2");
    let err = fails(p.layer(&["plan"]), 2);
    assert!(err.contains("no released build of `base-linux` matches; its builds: 1.0.2 (candidate), 1.0.1 (released)"), "{err}");
    // promote and revoke still work: they do not need the pins resolved.
    p.layer(&["promote", "--force", "base-linux@1.0.2"])
        .expect(0);
    pin_app(&p, "x.1");
    let err = fails(p.layer(&["plan"]), 2);
    assert_eq!(
        err,
        "error: images/app.toml:2: `x.1` in `from = \"base-linux@x.1\"` is not a version pin\n  hint: pin a major version (`base-linux@2`), a minor one (`base-linux@2.1`) or one build (`base-linux@2.1.3`)\n"
    );
}

#[test]
fn a_pin_resolves_to_the_newest_released_build_under_it_and_warns_when_behind() {
    let p = three_bases();
    for v in ["1.0.0", "1.0.1"] {
        p.layer(&["promote", "--force", &format!("base-linux@{v}")])
            .expect(0);
    }
    // A 1.1 build, released, and a newer 1.0 build that is not.
    p.file(
        "images/base-linux.toml",
        "version = \"1.1\"\norigin = \"bb\"\nroles = [\"base\"]\n",
    );
    p.record(&["base-linux"]);
    // (The test records number builds across MAJOR.MINOR: this is the fourth build.)
    p.layer(&["promote", "--force", "base-linux@1.1.3"])
        .expect(0);
    let key_of = |v: &str| record_of(&p, "base-linux", v).key;

    pin_app(&p, "1.0");
    let out = p.layer(&["plan", "--format", "json"]).expect(0);
    assert_eq!(
        out.stderr,
        "warning: `app`: pinned base-linux 1.0.1 is behind 1.1.3\n"
    );
    let plan: Value = serde_json::from_str(&out.stdout).unwrap();
    let app = crate::common::planned_in(&plan, "app");
    assert_eq!(
        app["pin"],
        json!({"parent": "base-linux", "pin": "1.0", "version": "1.0.1-20261120_1000", "behind": "1.1.3-20261120_1000"})
    );
    assert_eq!(app["parent"], "base-linux");
    // The pinned build's key is the base of app's key.
    let hashed: Value = serde_json::from_str(
        &p.layer(&["hash", "app", "--inputs", "--json"])
            .expect(0)
            .stdout,
    )
    .unwrap();
    assert_eq!(hashed[0]["inputs"]["base"]["key"], json!(key_of("1.0.1")));
    // The text plan shows the pin.
    let text = p.layer(&["plan"]).expect(0).stdout;
    assert!(
        text.contains("(pinned to base-linux 1.0.1, `@1.0`)\n"),
        "{text}"
    );

    // `@1` takes 1.1.3, the newest released 1.x: not behind.
    pin_app(&p, "1");
    let out = p.layer(&["plan", "--format", "json"]).expect(0);
    assert_eq!(out.stderr, "");
    let app = p.planned(&[], "app");
    assert_eq!(app["pin"]["version"], "1.1.3-20261120_1000");
    assert_eq!(app["pin"]["behind"], Value::Null);
    // One build pinned exactly.
    pin_app(&p, "1.0.0");
    assert_eq!(
        p.planned(&[], "app")["pin"]["version"],
        "1.0.0-20261120_1000"
    );
    // Revoking the pinned build moves the pin to the next released one.
    pin_app(&p, "1.0");
    p.layer(&["revoke", "base-linux@1.0.1"]).expect(0);
    assert_eq!(
        p.planned(&[], "app")["pin"]["version"],
        "1.0.0-20261120_1000"
    );
}

#[test]
fn a_pinned_image_does_not_follow_its_parents_code() {
    let p = Project::estate();
    p.record(&["base-linux"]);
    p.layer(&["promote", "--force", "base-linux"]).expect(0);
    pin_app(&p, "1");
    p.record(&["app", "node", "svc"]);
    assert!(
        p.actions(&[]).iter().all(|(_, a)| a == "fresh"),
        "{:?}",
        p.actions(&[])
    );

    // The parent's code changes: the parent and its unpinned child are stale; the pinned
    // image and its child are not, and do not wait for the parent.
    p.file("roles/base/files/etc/motd", "welcome, again\n");
    let actions = p.actions(&[]);
    assert_eq!(
        actions,
        [
            ("base-linux".to_string(), "build".to_string()),
            ("app".into(), "fresh".into()),
            ("node".into(), "build".into()),
            ("svc".into(), "fresh".into())
        ]
    );
    // Targeting the pinned image does not bring its parent.
    assert_eq!(
        p.actions(&["app"])[0],
        ("base-linux".to_string(), "skip".to_string())
    );
    // A pinned app that is stale builds in wave 0, beside its parent.
    p.file("roles/java/provision.sh", "#!/bin/sh\necho java 21\n");
    assert_eq!(p.planned(&[], "app")["wave"], 0);
    assert_eq!(p.planned(&[], "svc")["wave"], 1);
    // Shallow builds have no artifacts to pin to.
    let err = fails(p.layer(&["plan", "--strategy", "shallow"]), 2);
    assert_eq!(
        err,
        "error: `app` is pinned to `base-linux@1`: pinned parents need deep builds\n  hint: build with `--strategy deep`, or remove the pin\n"
    );
}

#[test]
fn a_build_of_a_pinned_image_starts_from_the_released_artifact() {
    let script = format!(
        "{SCRIPT_START}echo \"$LAYER_IMAGE from $LAYER_SOURCE\" >> out/sources\n{SCRIPT_DONE}"
    );
    let p = Project::command_estate(&script);
    p.layer(&["build", "base"]).expect(0);
    p.layer(&["promote", "--force", "base"]).expect(0);
    p.file(
        "images/app.toml",
        "version = \"2.3\"\nfrom = \"base@1.0\"\nroles = [\"app\"]\n\n[vars]\nPORT = \"8080\"\n",
    );
    p.file("roles/base/provision.sh", "echo changed >> /provisioned\n");
    let out = p.layer(&["build", "--json", "-j", "1"]).expect(0);
    let built: Value = serde_json::from_str(&out.stdout).unwrap();
    let versions: Vec<(String, String)> = built
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["name"].as_str().unwrap().into(),
                i["version"].as_str().unwrap()[..5].into(),
            )
        })
        .collect();
    assert_eq!(
        versions,
        [
            ("base".to_string(), "1.0.1".to_string()),
            ("app".into(), "2.3.0".into()),
            ("svc".into(), "0.4.0".into())
        ]
    );
    let sources = p.read("out/sources");
    assert!(sources.contains("app from art-base-1.0.0-"), "{sources}");
    let app = cache(&p).latest("app").unwrap();
    assert!(app.parent.as_ref().unwrap().version.starts_with("1.0.0-"));
    assert!(
        app.tags["Parent"].starts_with("base 1.0.0-"),
        "{:?}",
        app.tags
    );
    assert_eq!(app.tags["Origin"], "ami-0abc");
    // Built on the pinned build: fresh afterwards, though `base` moved on.
    assert!(p.actions(&[]).iter().all(|(_, a)| a == "fresh"));
}

// ---------------------------------------------------------------------------------------------
// Age limits

#[test]
fn build_max_age_rebuilds_what_is_older_and_image_max_age_expires() {
    let p = Project::command_estate(&format!("{SCRIPT_START}{SCRIPT_DONE}"));
    p.layer(&["build"]).expect(0);
    // `base` built ten days ago.
    let c = cache(&p);
    let mut base = c.latest("base").unwrap();
    let ten_days_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(10 * 86_400);
    base.built_at = humantime::format_rfc3339_seconds(ten_days_ago).to_string();
    c.rewrite_record(&base).unwrap();

    assert!(p.actions(&[]).iter().all(|(_, a)| a == "fresh"));
    let (action, reasons) = p.verdict(&["--max-age", "7d"], "base");
    assert_eq!(action, "build");
    assert_eq!(reasons[0]["kind"], "expired");
    assert_eq!(reasons[0]["max_age"], "7d");
    assert_eq!(p.verdict(&["--max-age", "7d"], "app").0, "build");
    assert_eq!(p.verdict(&["--max-age", "11d"], "base").0, "fresh");

    // The image's own limit.
    p.file(
        "images/base.toml",
        "version = \"1.0\"\norigin = \"cloud\"\nroles = [\"base\"]\nmax_age = \"1w\"\n",
    );
    assert_eq!(p.verdict(&[], "base").1[0]["max_age"], "1w");

    // `build --max-age` rebuilds the expired image and those built on it.
    p.file(
        "images/base.toml",
        "version = \"1.0\"\norigin = \"cloud\"\nroles = [\"base\"]\n",
    );
    let out = p.layer(&["build", "--max-age", "7d", "--json"]).expect(0);
    let built: Vec<String> = serde_json::from_str::<Value>(&out.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["action"] == "built")
        .map(|i| i["version"].as_str().unwrap()[..5].to_string())
        .collect();
    assert_eq!(built, ["1.0.1", "2.3.1", "0.4.1"]);
    p.layer(&["build", "--max-age", "7d", "--json"]).expect(0);
    assert!(p
        .actions(&["--max-age", "7d"])
        .iter()
        .all(|(_, a)| a == "fresh"));
}

#[test]
fn promote_without_a_version_takes_the_build_of_the_current_inputs() {
    let p = Project::estate();
    p.record(&["base-linux"]);
    // A newer build of another strategy: not what this (deep) project builds now.
    p.record_with(layer::model::Strategy::Shallow, &["base-linux"]);
    let newest = cache(&p).latest("base-linux").unwrap().version;
    assert!(newest.starts_with("1.0.1-"), "{newest}");
    let out = p.layer(&["promote", "--force", "base-linux"]).expect(0);
    assert!(
        out.stdout.starts_with("base-linux 1.0.0-"),
        "{}",
        out.stdout
    );
    assert_eq!(
        statuses(&p, "base-linux"),
        [
            ("1.0.1".to_string(), "candidate".to_string(), false),
            ("1.0.0".to_string(), "released".to_string(), true),
        ]
    );
}
