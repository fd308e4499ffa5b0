//! `--since REF`: keys at a git revision, read from git objects, compared with the work tree.

use crate::common;
use crate::common::git;
use crate::common::{redact, Project};
use serde_json::json;
use std::process::Command;

pub(crate) fn commit_all(p: &Project, message: &str) {
    git(p.root(), &["add", "-A"]);
    git(p.root(), &["commit", "-q", "--allow-empty", "-m", message]);
}

/// The estate in a git repository, committed once, with modes and links in its roles.
pub(crate) fn repo() -> Project {
    let p = Project::estate();
    p.file(".gitignore", "cache/\n");
    p.exec(
        "roles/base/files/usr/local/bin/hello",
        "#!/bin/sh\necho hi\n",
    );
    p.file("roles/base/files/etc/secret.key", "k\n");
    p.chmod("roles/base/files/etc/secret.key", 0o600);
    p.symlink("../motd", "roles/base/files/etc/issue/motd-link");
    p.symlink("/etc/hostname", "roles/web/files/etc/hostname-link");
    git(p.root(), &["init", "-q"]);
    commit_all(&p, "one");
    // Built as committed: what a changed image is built on is fresh.
    p.record(&[]);
    p
}

/// `(name, action, reasons)` of every image in `layer plan --since REF --format json`.
fn since(p: &Project, rev: &str) -> Vec<(String, String, serde_json::Value)> {
    let plan = p.plan_json(&["--since", rev]);
    plan["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["name"].as_str().unwrap().to_string(),
                i["action"].as_str().unwrap().to_string(),
                i["reasons"].clone(),
            )
        })
        .collect()
}

fn built(p: &Project, rev: &str) -> Vec<(String, serde_json::Value)> {
    since(p, rev)
        .into_iter()
        .filter(|(_, a, _)| a == "build")
        .map(|(n, _, r)| (n, r))
        .collect()
}

fn b(name: &str, reasons: serde_json::Value) -> (String, serde_json::Value) {
    (name.to_string(), reasons)
}

fn parent(p: &str) -> serde_json::Value {
    json!([{"kind": "parent-changed", "parent": p}])
}

#[test]
fn the_same_content_has_the_same_key_in_git_and_in_the_work_tree() {
    let p = repo();
    // Keys at HEAD, read from git objects, equal the keys of the work tree: modes, links
    // (inside and outside the role) and nested folders included.
    let plan = p.plan_json(&["--since", "HEAD"]);
    assert_eq!(
        plan["summary"],
        json!({"build": 0, "fresh": 0, "skip": 4}),
        "{plan:#}"
    );
    assert_eq!(plan["since"]["rev"], "HEAD");
    assert_eq!(
        plan["since"]["commit"].as_str().unwrap(),
        git(p.root(), &["rev-parse", "HEAD"]).trim()
    );
    // The same under shallow keys.
    let plan = p.plan_json(&["--since", "HEAD", "--strategy", "shallow"]);
    assert_eq!(plan["summary"]["build"], 0);

    // A role folder that links to another inside the project reads the same from git.
    p.symlink("web", "roles/www");
    p.file(
        "images/edge.toml",
        "version = \"1.0\"\nfrom = \"base-linux\"\nroles = [\"www\"]\n",
    );
    commit_all(&p, "www");
    let plan = p.plan_json(&["--since", "HEAD"]);
    assert_eq!(plan["summary"]["build"], 0, "{plan:#}");
    assert_eq!(plan["summary"]["skip"], 5, "{plan:#}");
    // And a change through the link shows under both names.
    p.file("roles/web/provision.sh", "#!/bin/sh\necho web 2\n");
    p.chmod("roles/web/provision.sh", 0o755);
    let changed: Vec<String> = built(&p, "HEAD").into_iter().map(|(n, _)| n).collect();
    assert_eq!(changed, ["edge", "node", "svc"]);
}

#[test]
fn a_role_file_edit_builds_its_images_and_their_descendants() {
    let p = repo();
    p.file("roles/java/provision.sh", "#!/bin/sh\necho java 21\n");
    assert_eq!(
        built(&p, "HEAD"),
        [
            b(
                "app",
                json!([{"kind": "role-changed", "role": "java", "paths": ["roles/java/provision.sh"]}])
            ),
            b("svc", parent("app")),
        ]
    );
    // Committed, it is the difference between two commits.
    commit_all(&p, "java 21");
    assert!(built(&p, "HEAD").is_empty());
    assert_eq!(built(&p, "HEAD~1").len(), 2);
}

#[test]
fn only_a_file_mode_is_a_change() {
    let p = repo();
    p.chmod("roles/web/provision.sh", 0o644);
    commit_all(&p, "not executable");
    assert_eq!(
        built(&p, "HEAD~1"),
        [
            b(
                "node",
                json!([{"kind": "role-changed", "role": "web", "paths": ["roles/web/provision.sh"]}])
            ),
            b(
                "svc",
                json!([{"kind": "role-changed", "role": "web", "paths": ["roles/web/provision.sh"]}])
            ),
        ]
    );
}

#[test]
fn an_image_file_edit_names_the_fields() {
    let p = repo();
    p.file(
        "images/app.toml",
        "version = \"2.0\"\nfrom = \"base-linux\"\nroles = [\"java\"]\ndescription = \"not in the key\"\n[vars]\nPORT = \"9090\"\n",
    );
    commit_all(&p, "port");
    assert_eq!(
        built(&p, "HEAD~1"),
        [
            b(
                "app",
                json!([{"kind": "declaration-changed", "fields": ["vars.PORT"]}])
            ),
            b("svc", parent("app")),
        ]
    );
    // A change outside the key changes nothing.
    p.file(
        "images/app.toml",
        "version = \"2.0\"\nfrom = \"base-linux\"\nroles = [\"java\"]\n[vars]\nPORT = \"9090\"\n",
    );
    assert!(built(&p, "HEAD").is_empty());
}

#[test]
fn a_layer_toml_change_to_an_origin_rebuilds_everything_on_it() {
    let p = repo();
    p.file("origins/other.tar", "another rootfs\n");
    p.file(
        "layer.toml",
        "[project]\nstrategy = \"deep\"\n\n[origins.bb]\ntar = \"origins/other.tar\"\n",
    );
    commit_all(&p, "other origin");
    assert_eq!(
        built(&p, "HEAD~1"),
        [
            b(
                "base-linux",
                json!([{"kind": "origin-changed", "origin": "bb"}])
            ),
            b("app", parent("base-linux")),
            b("node", parent("base-linux")),
            b("svc", parent("app")),
        ]
    );
    // And the strategy.
    p.file(
        "layer.toml",
        "[project]\nstrategy = \"shallow\"\n\n[origins.bb]\ntar = \"origins/other.tar\"\n",
    );
    let all = built(&p, "HEAD");
    assert_eq!(all.len(), 4);
    assert_eq!(
        all[0].1,
        json!([{"kind": "strategy-changed", "from": "deep", "to": "shallow"}])
    );
}

#[test]
fn a_layer_lock_change_rebuilds_the_images_on_the_origin() {
    let p = repo();
    p.file(
        "layer.toml",
        "[project]\n\n[origins.bb]\ntar = \"origins/base.tar\"\n\n[origins.cloud]\nresolve = [\"./latest.sh\"]\n",
    );
    p.file(
        "layer.lock",
        "version = 1\n\n[origins.cloud]\nid = \"ami-1\"\n",
    );
    p.file(
        "images/edge.toml",
        "origin = \"cloud\"\nroles = [\"web\"]\n",
    );
    commit_all(&p, "cloud image");
    p.file(
        "layer.lock",
        "version = 1\n\n[origins.cloud]\nid = \"ami-2\"\n",
    );
    commit_all(&p, "lock");
    assert_eq!(
        built(&p, "HEAD~1"),
        [b(
            "edge",
            json!([{"kind": "origin-changed", "origin": "cloud"}])
        )]
    );
    // Since the first commit, `edge` is new.
    assert_eq!(built(&p, "HEAD~2"), [b("edge", json!([{"kind": "new"}]))]);
}

#[test]
fn a_renamed_role_changes_the_images_that_apply_it() {
    let p = repo();
    git(p.root(), &["mv", "roles/web", "roles/www"]);
    p.file(
        "images/svc.toml",
        "version = \"1.0\"\nfrom = \"app\"\nroles = [\"www\"]\n",
    );
    p.file(
        "images/node.toml",
        "version = \"1.0\"\nfrom = \"base-linux\"\nroles = [\"www\"]\n",
    );
    commit_all(&p, "rename");
    let fields = json!([{"kind": "declaration-changed", "fields": ["roles"]}]);
    assert_eq!(
        built(&p, "HEAD~1"),
        [b("node", fields.clone()), b("svc", fields)]
    );
}

#[test]
fn deleted_and_new_images() {
    let p = repo();
    p.remove("images/node.toml");
    p.file(
        "images/cache-node.toml",
        "version = \"1.0\"\nfrom = \"base-linux\"\nroles = [\"web\"]\n",
    );
    commit_all(&p, "rename node");
    let plan = p.plan_json(&["--since", "HEAD~1"]);
    assert_eq!(plan["since"]["removed"], json!(["node"]));
    assert_eq!(
        built(&p, "HEAD~1"),
        [b("cache-node", json!([{"kind": "new"}]))]
    );
    let text = p.layer(&["plan", "--since", "HEAD~1"]).expect(0).stdout;
    assert!(text.contains("\n  gone   node\n"), "{text}");
}

#[test]
fn a_revision_without_the_project_makes_every_image_new() {
    let p = Project::estate();
    git(p.root(), &["init", "-q"]);
    p.file("README", "before layer\n");
    git(p.root(), &["add", "README"]);
    git(p.root(), &["commit", "-q", "-m", "readme"]);
    let all = built(&p, "HEAD");
    assert_eq!(all.len(), 4);
    assert!(all.iter().all(|(_, r)| r == &json!([{"kind": "new"}])));
}

#[test]
fn a_project_in_a_subfolder_of_the_repository() {
    let outer = tempfile::tempdir().unwrap();
    let p = repo();
    let sub = outer.path().join("infra/images");
    std::fs::create_dir_all(sub.parent().unwrap()).unwrap();
    // Move the estate (without its .git) into a subfolder of a new repository.
    std::fs::remove_dir_all(p.path(".git")).unwrap();
    let copy = p.clone_project();
    std::fs::rename(copy.root(), &sub).unwrap_or_else(|_| {
        Command::new("cp")
            .args(["-a", copy.root().to_str().unwrap(), sub.to_str().unwrap()])
            .status()
            .unwrap();
    });
    git(outer.path(), &["init", "-q"]);
    git(outer.path(), &["add", "-A"]);
    git(outer.path(), &["commit", "-q", "-m", "one"]);
    std::fs::write(sub.join("roles/web/provision.sh"), "#!/bin/sh\necho www\n").unwrap();
    let out =
        common::run_layer(&sub, &["plan", "--since", "HEAD", "--format", "json"], &[]).expect(0);
    let plan: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(plan["summary"]["build"], 2, "{plan:#}");
}

#[test]
fn a_shallow_clone_without_the_revision_says_to_fetch_more() {
    let p = repo();
    p.file("roles/web/provision.sh", "#!/bin/sh\necho www\n");
    commit_all(&p, "two");
    let clone = tempfile::tempdir().unwrap();
    let url = format!("file://{}", p.root().display());
    git(
        clone.path(),
        &["clone", "-q", "--depth", "1", &url, "shallow"],
    );
    let out = common::run_layer(
        &clone.path().join("shallow"),
        &["plan", "--since", "HEAD~1"],
        &[],
    )
    .expect(2);
    insta::assert_snapshot!(out.stderr, @r"
    error: `--since HEAD~1`: this is a shallow clone and `HEAD~1` is not in it
      hint: fetch more history: `git fetch --deepen=50` (or `git fetch --unshallow`); in CI, check out with `fetch-depth: 0`
    ");
    // With the history fetched, it works.
    git(
        &clone.path().join("shallow"),
        &["fetch", "-q", "--unshallow"],
    );
    let out = common::run_layer(
        &clone.path().join("shallow"),
        &["plan", "--since", "HEAD~1", "--format", "json"],
        &[],
    )
    .expect(0);
    let plan: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    // The clone has no cache: `base-linux` and `app` are built too, as not cached.
    let changed: Vec<&str> = plan["images"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["reasons"][0]["kind"] == "role-changed")
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(changed, ["node", "svc"]);
    assert_eq!(plan["summary"]["build"], 4);
}

#[test]
fn errors_outside_git_and_for_unknown_revisions() {
    let p = Project::estate();
    let out = p.layer(&["plan", "--since", "HEAD"]).expect(2);
    let err = redact(&p, &out.stderr);
    assert!(
        err.starts_with("error: `--since HEAD`: `[ROOT]` is not in a git repository"),
        "{err}"
    );
    let p = repo();
    let out = p.layer(&["plan", "--since", "no-such-branch"]).expect(2);
    insta::assert_snapshot!(out.stderr, @r"
    error: `--since no-such-branch`: no commit is named `no-such-branch`
      hint: name a commit, branch or tag, such as `origin/main` or `HEAD~1`
    ");
}

#[test]
fn since_combines_with_targets_and_the_cache() {
    let p = repo();
    p.file("roles/base/files/etc/motd", "hello again\n");
    // Targets narrow the selection: `node` and its ancestor.
    let plan = p.plan_json(&["--since", "HEAD", "node"]);
    let actions: Vec<(&str, &str)> = plan["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["name"].as_str().unwrap(), i["action"].as_str().unwrap()))
        .collect();
    assert_eq!(
        actions,
        [
            ("base-linux", "build"),
            ("app", "skip"),
            ("node", "build"),
            ("svc", "skip")
        ]
    );
    // An image whose current key the cache already holds is fresh: nothing to build.
    p.record(&["base-linux", "app"]);
    let plan = p.plan_json(&["--since", "HEAD"]);
    assert_eq!(
        plan["summary"],
        json!({"build": 2, "fresh": 2, "skip": 0}),
        "{plan:#}"
    );
}

#[test]
fn build_since_builds_only_what_changed() {
    let p = Project::command_estate(&format!("{}{}", common::SCRIPT_START, common::SCRIPT_DONE));
    git(p.root(), &["init", "-q"]);
    commit_all(&p, "one");
    p.layer(&["build"]).expect(0);
    p.file(
        "roles/web/provision.sh",
        "echo \"role=$LAYER_ROLE web\" >> /provisioned\n",
    );
    p.chmod("roles/web/provision.sh", 0o755);
    let out = p.layer(&["build", "--since", "HEAD", "--json"]).expect(0);
    let results: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let actions: Vec<(&str, &str)> = results
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["name"].as_str().unwrap(), i["action"].as_str().unwrap()))
        .collect();
    assert_eq!(
        actions,
        [("base", "fresh"), ("app", "fresh"), ("svc", "built")]
    );
    assert_eq!(p.count_lines("out/marks", "start svc"), 2);
    assert_eq!(p.count_lines("out/marks", "start base"), 1);
}

#[test]
fn markdown_for_a_pull_request() {
    let p = repo();
    p.file("roles/java/provision.sh", "#!/bin/sh\necho java 21\n");
    p.remove("images/node.toml");
    commit_all(&p, "java 21, no node");
    let out = p
        .layer(&["plan", "--since", "HEAD~1", "--format", "markdown"])
        .expect(0);
    let commit = git(p.root(), &["rev-parse", "HEAD~1"]);
    let md = out.stdout.replace(&commit.trim()[..12], "[COMMIT]");
    insta::assert_snapshot!(md);
}

#[test]
fn markdown_of_500_images_stays_short() {
    let p = Project::new();
    p.file("layer.toml", "[project]\n\n[origins.o]\nid = \"ami-1\"\n");
    for r in 0..20 {
        for f in 0..10 {
            p.file(&format!("roles/r{r}/files/etc/f{f}"), "x\n");
        }
    }
    // 25 chains of 20 images; every chain applies roles.
    for c in 0..25 {
        for d in 0..20 {
            let base = if d == 0 {
                "origin = \"o\"".to_string()
            } else {
                format!("from = \"c{c}-d{}\"", d - 1)
            };
            p.file(
                &format!("images/c{c}-d{d}.toml"),
                &format!("{base}\nroles = [\"r{}\"]\n", (c + d) % 20),
            );
        }
    }
    git(p.root(), &["init", "-q"]);
    commit_all(&p, "one");
    p.record(&[]);
    // Every file of role r0 changes: many images to build, with long reasons.
    for f in 0..10 {
        p.file(&format!("roles/r0/files/etc/f{f}"), "y\n");
    }
    let out = p
        .layer(&["plan", "--since", "HEAD", "--format", "markdown"])
        .expect(0);
    let md = out.stdout;
    assert!(md.len() < 20_000, "{} bytes:\n{md}", md.len());
    assert!(md.contains("images changed** since `HEAD`"), "{md}");
    assert!(md.contains("<details><summary>"), "{md}");
    assert!(md.contains("and 7 more"), "{md}");
    // Every image to build is named somewhere.
    let plan = p.plan_json(&["--since", "HEAD"]);
    for i in plan["images"].as_array().unwrap() {
        if i["action"] == "build" {
            assert!(md.contains(&format!("`{}`", i["name"].as_str().unwrap())));
        }
    }
}

#[test]
fn a_partial_clone_lacking_blobs_of_the_revision_says_so_and_fetches_nothing() {
    let p = repo();
    git(p.root(), &["config", "uploadpack.allowFilter", "true"]);
    p.file("roles/web/provision.sh", "#!/bin/sh\necho www\n");
    commit_all(&p, "two");
    let clone = tempfile::tempdir().unwrap();
    let url = format!("file://{}", p.root().display());
    git(
        clone.path(),
        &["clone", "-q", "--filter=blob:none", &url, "partial"],
    );
    let out = common::run_layer(
        &clone.path().join("partial"),
        &["plan", "--since", "HEAD~1"],
        &[],
    )
    .expect(2);
    assert!(
        out.stderr.contains("at `HEAD~1`: cannot read object")
            && out
                .stderr
                .contains("hint: this clone lacks objects of `HEAD~1`"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_pinned_image_follows_its_pin_not_its_parent() {
    let p = repo();
    p.layer(&["promote", "--force", "base-linux"]).expect(0);
    p.file(
        "images/app.toml",
        "version = \"2.0\"\nfrom = \"base-linux@1.0\"\nroles = [\"java\"]\n[vars]\nPORT = \"8080\"\n",
    );
    // base-linux moves on past the released build app is pinned to.
    p.file("roles/base/files/etc/motd", "hello\n");
    commit_all(&p, "pin app");
    // Nothing changed since that commit: app is keyed on its pin on both sides.
    let all = since(&p, "HEAD");
    assert!(all.iter().all(|(_, a, _)| a == "skip"), "{all:?}");
    // A change to base-linux's role rebuilds base-linux and node; app stays on its pin.
    p.file("roles/base/files/etc/motd", "hello again\n");
    let changed: Vec<String> = built(&p, "HEAD").into_iter().map(|(n, _)| n).collect();
    assert_eq!(changed, ["base-linux", "node"]);
}

#[test]
fn a_revision_whose_project_does_not_load_is_an_error() {
    let p = repo();
    p.file(
        "images/node.toml",
        "version = \"1.0\"\nfrom = \"base-linux\"\nrole = [\"web\"]\n",
    );
    commit_all(&p, "typo");
    p.file(
        "images/node.toml",
        "version = \"1.0\"\nfrom = \"base-linux\"\nroles = [\"web\"]\n",
    );
    let out = p.layer(&["plan", "--since", "HEAD"]).expect(2);
    insta::assert_snapshot!(out.stderr, @r"
    error: `--since HEAD`: the project at that revision does not load:
    images/node.toml:3: unknown key `role`
      hint: did you mean `roles`?
    ");
}

#[test]
fn since_reads_no_blob_of_a_role_file_unchanged_since_it_was_committed() {
    let p = repo();
    let blob = |rel: &str| git(p.root(), &["rev-parse", &format!("HEAD:{rel}")]);
    let motd = blob("roles/base/files/etc/motd");
    let motd = motd.trim();
    // The stat cache keeps only files older than its racy window.
    std::thread::sleep(std::time::Duration::from_millis(2500));
    p.layer(&["plan"]).expect(0);
    // The blob of an unchanged file is gone from the repository: it must not be needed.
    let object = p.path(&format!(".git/objects/{}/{}", &motd[..2], &motd[2..]));
    std::fs::remove_file(&object).unwrap();
    let plan = p.plan_json(&["--since", "HEAD"]);
    assert_eq!(plan["summary"]["build"], 0, "{plan:#}");
    // A file edited with its mtime and size kept (`touch -r`) is read at the revision: its
    // ctime differs from the index's.
    let key = "roles/base/files/etc/secret.key";
    let stamp = p.path("stamp");
    std::fs::copy(p.path(key), &stamp).unwrap();
    p.file(key, "K\n");
    let touched = Command::new("touch")
        .arg("-r")
        .arg(&stamp)
        .arg(p.path(key))
        .status()
        .unwrap();
    assert!(touched.success());
    std::thread::sleep(std::time::Duration::from_millis(2500));
    p.layer(&["plan"]).expect(0);
    let base = since(&p, "HEAD")
        .into_iter()
        .find(|(n, _, _)| n == "base-linux")
        .unwrap();
    assert!(base.2.to_string().contains("secret.key"), "{base:?}");
}
