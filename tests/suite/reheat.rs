//! `layer build IMAGE --reheat [--from VERSION]`: a new version built on the image's own
//! earlier build, for real. On a `debian` origin with the local archive of `debian.rs` (a
//! security update: `layer-hello` 1.0 then 2.0), and on a busybox origin (no packages: the
//! roles applied again). The refusals need no build.

use std::path::{Path, PathBuf};

use crate::apt_repo::{hello_image, AptRepo};
use crate::common::Project;
use crate::debian::{layer, project, shared_cache, unique};
use crate::needs::{self, Need};

/// Every record of `image` in `cache`, as JSON.
fn records(cache: &Path, image: &str) -> Vec<serde_json::Value> {
    let dir = cache.join("records").join(image);
    std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .map(|e| serde_json::from_slice(&std::fs::read(e.path()).unwrap()).unwrap())
        .collect()
}

/// The one record of `image` tagged `Reheated_From`.
fn reheated(cache: &Path, image: &str) -> serde_json::Value {
    let mut found: Vec<serde_json::Value> = records(cache, image)
        .into_iter()
        .filter(|r| r["tags"].get("Reheated_From").is_some())
        .collect();
    assert_eq!(found.len(), 1, "{found:?}");
    found.remove(0)
}

/// The record of `image` whose version starts with `short` (`1.0.0`).
fn build(cache: &Path, image: &str, short: &str) -> serde_json::Value {
    records(cache, image)
        .into_iter()
        .find(|r| {
            r["version"]
                .as_str()
                .unwrap()
                .starts_with(&format!("{short}-"))
        })
        .unwrap_or_else(|| panic!("no build {short} of {image}"))
}

#[test]
#[cfg_attr(
    any(missing = "root", missing = "mmdebstrap", missing = "apt-ftparchive"),
    ignore = "needs root, mmdebstrap and apt-ftparchive: apt-get install mmdebstrap apt-utils"
)]
fn a_reheat_brings_the_locked_versions_onto_the_old_build_and_keeps_what_roles_no_longer_make() {
    needs::check(&[Need::Root, Need::Mmdebstrap, Need::AptFtparchive]);
    let repo = AptRepo::with("1.0");
    let name = unique("reheat");
    let p = project(&[(
        &name,
        &hello_image(
            &repo.source(),
            "version = \"1.0\"\nroles = [\"web\"]\n\n[[test]]\nname = \"reheated\"\nrun = \"grep -qx 2.0 /usr/share/layer-hello/version && test -f /etc/web-old && test -f /etc/web-new\"\n",
        ),
    )]);
    p.exec(
        "roles/web/provision.sh",
        "set -eu\necho old > /etc/web-old\n",
    );
    let cache = PathBuf::from(shared_cache());
    layer(&p, &["lock"]).expect(0);
    layer(&p, &["build"]).expect(0);
    layer(&p, &["promote", "--force", &format!("{name}@1.0.0")]).expect(0);
    let old = build(&cache, &name, "1.0.0");

    // A security update, and a role that no longer writes `/etc/web-old`.
    repo.publish("2.0");
    layer(&p, &["lock", "--update"]).expect(0);
    p.exec(
        "roles/web/provision.sh",
        "set -eu\necho new > /etc/web-new\n",
    );
    let out = layer(&p, &["build", &name, "--reheat"]).expect(0);
    out.stderr_has("built 1, fresh 0, failed 0, skipped 0");

    let new = reheated(&cache, &name);
    assert_eq!(new["tags"]["Reheated_From"], old["version"]);
    assert_eq!(new["tags"]["Release_Status"], "candidate");
    assert_eq!(new["tags"]["Origin"], old["tags"]["Origin"]);
    assert_eq!(new["parent"]["name"], name.as_str());
    assert_eq!(new["parent"]["version"], old["version"]);
    assert_eq!(new["inputs"]["base"]["kind"], "reheat");
    assert_ne!(new["key"], old["key"]);
    let version = new["version"].as_str().unwrap();
    assert!(version.starts_with("1.0.1-"), "{version}");
    let hello = |r: &serde_json::Value| {
        r["packages"]["packages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "layer-hello")
            .map(|p| p["version"].as_str().unwrap().to_string())
    };
    assert_eq!(hello(&old).as_deref(), Some("1.0"));
    assert_eq!(hello(&new).as_deref(), Some("2.0"));

    let diff = layer(
        &p,
        &[
            "packages",
            "--diff",
            &format!("{name}@1.0.0"),
            &format!("{name}@1.0.1"),
        ],
    )
    .expect(0);
    assert!(
        diff.stdout.starts_with("~ layer-hello 1.0 -> 2.0 (all)\n"),
        "{}",
        diff.stdout
    );
    // What the old build's role wrote and the role no longer makes is still there.
    layer(&p, &["test", &format!("{name}@1.0.1")]).expect(0);

    // Out of band: the plan still compares the fresh key, so the image is stale.
    let plan = p.layer_env(
        &["plan", "--format", "json"],
        &[("LAYER_CACHE", &shared_cache())],
    );
    let plan: serde_json::Value = serde_json::from_str(&plan.stdout).unwrap();
    assert_eq!(plan["images"][0]["action"], "build", "{plan}");

    let out = layer(&p, &["build", &name, "--reheat", "--from", "9.9.9"]).expect(2);
    out.stderr_has(&format!(
        "error: `{name}` has no build 9.9.9; its builds: 1.0.1 (tested), 1.0.0 (released)"
    ));
}

/// A busybox image whose role writes a file, built once.
fn busybox_project() -> Project {
    let p = Project::on_busybox(&needs::busybox().expect("checked"), "");
    p.file(
        "images/app.toml",
        "version = \"1.0\"\norigin = \"bb\"\nroles = [\"app\"]\n\n[[test]]\nname = \"both\"\nrun = \"test -f /etc/one && test -f /etc/two\"\n",
    );
    p.exec("roles/app/provision.sh", "set -eu\necho 1 > /etc/one\n");
    p
}

#[test]
#[cfg_attr(
    any(missing = "root", missing = "busybox"),
    ignore = "needs root and a static busybox: apt-get install busybox-static"
)]
fn a_reheat_of_a_busybox_image_applies_its_roles_again_on_the_old_build() {
    needs::check(&[Need::Root, Need::Busybox]);
    let p = busybox_project();
    p.layer(&["build", "--no-progress"]).expect(0);
    let out = p.layer(&["build", "app", "--reheat"]).expect(2);
    out.stderr_has("error: `app` has no released build to reheat; its builds: 1.0.0 (candidate)");
    out.stderr_has("hint: name the build to reheat with `layer build app --reheat --from VERSION`, or promote one first (`layer promote app@VERSION`)",
    );

    p.exec("roles/app/provision.sh", "set -eu\necho 2 > /etc/two\n");
    p.layer(&[
        "build",
        "app",
        "--reheat",
        "--from",
        "1.0.0",
        "--no-progress",
    ])
    .expect(0);
    let cache = p.path("cache");
    let new = reheated(&cache, "app");
    assert!(new["version"].as_str().unwrap().starts_with("1.0.1-"));
    // The same reheat again is the same key: nothing to build.
    let again = p
        .layer(&["build", "app", "--reheat", "--from", "1.0.0", "--json"])
        .expect(0);
    let again: serde_json::Value = serde_json::from_str(&again.stdout).unwrap();
    assert_eq!(again[0]["action"], "fresh", "{again}");
    // The old file and the new one, in an instance of the reheat.
    p.layer(&["test", "app@1.0.1"]).expect(0);
    // The reheat is a fix of app in its own right: built on app 1.0.0, it is not "built on an
    // older app".
    p.file(
        "inventory.csv",
        "instance,image,version\ni-old,app,1.0.0\ni-new,app,1.0.1\n",
    );
    let report = p
        .layer(&[
            "report",
            "--inventory",
            "inventory.csv",
            "--fixed-in",
            "app=1.0.1",
            "--format",
            "json",
        ])
        .expect(0);
    let report: serde_json::Value = serde_json::from_str(&report.stdout).unwrap();
    assert_eq!(
        report["rebuild"]["instances"],
        serde_json::json!(["i-old"]),
        "{report}"
    );
    // A revoked build is never reheated.
    p.layer(&["revoke", "app@1.0.0"]).expect(0);
    let out = p
        .layer(&["build", "app", "--reheat", "--from", "1.0.0"])
        .expect(2);
    out.stderr_has(
        "error: `app` 1.0.0 is revoked: a reheat stands on all of it, and could never be promoted",
    );
    out.stderr_has("hint: reheat another build, or bake it fresh: `layer build --force app`");
    // The fresh build of the current inputs lacks the old file: its test fails.
    p.layer(&["build", "--no-progress"]).expect(0);
    p.layer(&["test", "app"]).expect(1);
}

#[test]
fn a_reheat_names_one_image_of_the_rootfs_backend_and_an_existing_build() {
    let p = Project::new();
    p.file(
        "layer.toml",
        "[project]\n\n[origins.bb]\nid = \"img-0\"\n\n[backends.ext]\nkind = \"command\"\ncommand = [\"./build.sh\"]\n",
    );
    p.file("images/app.toml", "origin = \"bb\"\n");
    p.file("images/cloud.toml", "origin = \"bb\"\nbackend = \"ext\"\n");
    p.exec(
        "build.sh",
        "#!/bin/sh\necho \"id-$LAYER_IMAGE\" > \"$LAYER_OUTPUT\"\n",
    );

    let out = p.layer(&["build", "--reheat"]).expect(2);
    out.stderr_has("error: `--reheat` builds one image, and none was named");
    out.stderr_has("hint: name the image to reheat: `layer build IMAGE --reheat`");
    let out = p.layer(&["build", "app", "cloud", "--reheat"]).expect(2);
    out.stderr_has("error: `--reheat` builds one image, and 2 were named");

    let out = p.layer(&["build", "cloud", "--reheat"]).expect(2);
    out.stderr_has("error: `cloud` is built with the `command` backend; `--reheat` rebuilds `rootfs` images on their own earlier build");
    out.stderr_has("hint: bake it fresh instead: `layer lock --update`, then `layer build cloud`");

    let out = p
        .layer(&["build", "app", "--reheat", "--from", "1.0.4"])
        .expect(2);
    out.stderr_has("error: `app` has no build 1.0.4; its builds: none");
    let out = p.layer(&["build", "app", "--reheat"]).expect(2);
    out.stderr_has("error: `app` has no released build to reheat; its builds: none");

    // A build of another backend cannot be reheated.
    p.file("images/app.toml", "origin = \"bb\"\nbackend = \"ext\"\n");
    p.layer(&["build", "app"]).expect(0);
    p.file("images/app.toml", "origin = \"bb\"\n");
    let out = p
        .layer(&["build", "app", "--reheat", "--from", "0.1.0"])
        .expect(2);
    out.stderr_has("error: app 0.1.0 is not a local `rootfs` build (it was built with the `command` backend), so it cannot be reheated");
    out.stderr_has("hint: name a `rootfs` build with `--from` (`layer versions app` lists them), or bake it fresh with `layer build app`");
    assert_eq!(records(&p.path("cache"), "app").len(), 1);
}
