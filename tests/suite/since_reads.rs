//! `--since REF` reads only what changed (issue 15): role digests kept by git tree id, role
//! folders the index holds digested from the index and the stat cache, the revision's parsed
//! declarations kept by blob ids. Every way of knowing gives the plan that reading every
//! object of the revision gives.

use crate::common::git;
use crate::common::Project;
use crate::since::{commit_all, repo};
use serde_json::json;

/// `plan --since REV --format json` read three ways: from git objects alone (no index, no
/// `since-cache`), with the index and the stat cache, and with the `since-cache` that run
/// kept. All three must be the same plan; returns it.
fn same_every_way(p: &Project, rev: &str) -> serde_json::Value {
    let index = p.path(".git/index");
    let aside = p.path(".git/index-aside");
    let since = ["--since", rev];
    let _ = std::fs::remove_file(p.path("cache/since-cache"));
    if index.exists() {
        std::fs::rename(&index, &aside).unwrap();
    }
    let objects = p.plan_json(&since);
    if aside.exists() {
        std::fs::rename(&aside, &index).unwrap();
    }
    let _ = std::fs::remove_file(p.path("cache/since-cache"));
    let learned = p.plan_json(&since);
    assert!(
        p.path("cache/since-cache").is_file(),
        "what it learned is kept"
    );
    let kept = p.plan_json(&since);
    assert_eq!(
        learned, objects,
        "the index and stat cache say what the objects say"
    );
    assert_eq!(kept, objects, "the kept digests say what the objects say");
    objects
}

/// `(name, reasons)` of the images the plan builds.
fn builds(plan: &serde_json::Value) -> Vec<(String, serde_json::Value)> {
    plan["images"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["action"] == "build")
        .map(|i| {
            (
                i["name"].as_str().unwrap().to_string(),
                i["reasons"].clone(),
            )
        })
        .collect()
}

fn wait_out_racy_window(p: &Project) {
    // The stat cache keeps only files older than its racy window, and git's index vouches
    // only for files older than itself.
    std::thread::sleep(std::time::Duration::from_millis(2500));
    p.layer(&["plan"]).expect(0);
}

#[test]
fn every_change_reads_the_same_from_objects_the_index_and_the_kept_digests() {
    let p = repo();
    wait_out_racy_window(&p);
    // A dirty work tree: one role file edited, not committed.
    p.file("roles/web/provision.sh", "#!/bin/sh\necho www\n");
    let plan = same_every_way(&p, "HEAD");
    let names: Vec<String> = builds(&plan).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["node", "svc"]);
    assert_eq!(
        builds(&plan)[0].1,
        json!([{"kind": "role-changed", "role": "web", "paths": ["roles/web/provision.sh"]}])
    );

    // Committed, with a changed `role.toml`: the revision's declarations differ.
    p.file(
        "roles/java/role.toml",
        "depends = [\"base\"]\npackages = [\"openjdk\", \"maven\"]\n",
    );
    commit_all(&p, "two");
    wait_out_racy_window(&p);
    let plan = same_every_way(&p, "HEAD~1");
    let names: Vec<String> = builds(&plan).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["app", "node", "svc"]);

    // A role folder renamed, one added, one removed.
    git(p.root(), &["mv", "roles/web", "roles/www"]);
    for image in ["svc", "node"] {
        let text = p.read(&format!("images/{image}.toml"));
        p.file(&format!("images/{image}.toml"), &text.replace("web", "www"));
    }
    p.file("roles/extra/files/etc/extra", "x\n");
    p.file(
        "images/app.toml",
        "version = \"2.0\"\nfrom = \"base-linux\"\nroles = [\"extra\"]\n[vars]\nPORT = \"8080\"\n",
    );
    p.remove("roles/java");
    commit_all(&p, "three");
    wait_out_racy_window(&p);
    let plan = same_every_way(&p, "HEAD~1");
    let names: Vec<String> = builds(&plan).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["app", "node", "svc"]);
    assert_eq!(
        builds(&plan)[1].1,
        json!([{"kind": "declaration-changed", "fields": ["roles"]}])
    );
    let three = same_every_way(&p, "HEAD~2");

    // Packed objects, then loose ones, then an index without its cache-tree extension.
    git(p.root(), &["gc", "-q"]);
    assert_eq!(same_every_way(&p, "HEAD~2"), three);
    let packs = p.path(".git/objects/pack");
    for pack in std::fs::read_dir(&packs).unwrap() {
        let pack = pack.unwrap().path();
        if pack.extension().is_some_and(|e| e == "pack") {
            let aside = p.path("pack-aside");
            std::fs::rename(&pack, &aside).unwrap();
            let input = std::fs::File::open(&aside).unwrap();
            let status = std::process::Command::new("git")
                .args(["unpack-objects", "-q"])
                .current_dir(p.root())
                .stdin(input)
                .status()
                .unwrap();
            assert!(status.success());
            std::fs::remove_file(&aside).unwrap();
        }
    }
    assert_eq!(same_every_way(&p, "HEAD~2"), three);
    git(p.root(), &["read-tree", "HEAD"]);
    assert_eq!(same_every_way(&p, "HEAD~2"), three);
}

/// The ids of the role folder `dir` at `rev` and of every folder below it.
fn tree_ids(p: &Project, rev: &str, dir: &str) -> Vec<String> {
    let mut ids = vec![git(p.root(), &["rev-parse", &format!("{rev}:{dir}")])
        .trim()
        .to_string()];
    let listing = git(p.root(), &["ls-tree", "-r", "-t", &format!("{rev}:{dir}")]);
    for line in listing.lines() {
        let mut fields = line.split_whitespace();
        if let (_, Some("tree"), Some(id)) = (fields.next(), fields.next(), fields.next()) {
            ids.push(id.to_string());
        }
    }
    ids
}

fn remove_object(p: &Project, id: &str) {
    std::fs::remove_file(p.path(&format!(".git/objects/{}/{}", &id[..2], &id[2..]))).unwrap();
}

#[test]
fn role_folders_the_index_holds_are_not_read_and_a_kept_revision_reads_no_declaration() {
    let p = repo();
    p.file("roles/web/provision.sh", "#!/bin/sh\necho www\n");
    commit_all(&p, "two");
    wait_out_racy_window(&p);
    let expected = same_every_way(&p, "HEAD~1");
    assert_eq!(builds(&expected).len(), 2, "{expected:#}");
    let declarations: Vec<String> = [
        "layer.toml",
        "images/app.toml",
        "images/base-linux.toml",
        "images/node.toml",
        "images/svc.toml",
        "roles/java/role.toml",
    ]
    .iter()
    .map(|f| {
        git(p.root(), &["rev-parse", &format!("HEAD~1:{f}")])
            .trim()
            .to_string()
    })
    .collect();
    let _ = std::fs::remove_file(p.path("cache/since-cache"));
    // The unchanged roles' trees are gone (loose objects, never packed here): the index
    // holds the same folders, and the stat cache the digests of their files.
    for role in ["roles/base", "roles/java"] {
        for id in tree_ids(&p, "HEAD~1", role) {
            remove_object(&p, &id);
        }
    }
    assert_eq!(p.plan_json(&["--since", "HEAD~1"]), expected);
    // Kept from that run: the digest of every role folder of HEAD~1 and its declarations,
    // parsed. Their blobs go too (the changed role's tree stays: it is read whole, to name
    // the file that changed).
    for id in &declarations {
        remove_object(&p, id);
    }
    assert_eq!(p.plan_json(&["--since", "HEAD~1"]), expected);
    // Without what was kept, the revision cannot be read: the objects were needed.
    std::fs::remove_file(p.path("cache/since-cache")).unwrap();
    let out = p.layer(&["plan", "--since", "HEAD~1"]).expect(2);
    assert!(out.stderr.contains("cannot read object"), "{}", out.stderr);
}

#[test]
fn a_damaged_since_cache_is_ignored_and_replaced() {
    let p = repo();
    p.file("roles/base/files/etc/motd", "hello\n");
    commit_all(&p, "two");
    let expected = same_every_way(&p, "HEAD~1");
    assert_eq!(builds(&expected).len(), 4, "{expected:#}");
    let kept = p.path("cache/since-cache");
    let good = std::fs::read(&kept).unwrap();
    let mut flipped = good.clone();
    flipped[good.len() / 2] ^= 0x40;
    let mut digest_flipped = good.clone();
    *digest_flipped.last_mut().unwrap() ^= 1;
    for bad in [
        flipped,
        digest_flipped,
        good[..good.len() - 1].to_vec(),
        b"garbage".to_vec(),
        Vec::new(),
    ] {
        std::fs::write(&kept, &bad).unwrap();
        assert_eq!(p.plan_json(&["--since", "HEAD~1"]), expected);
        assert_ne!(std::fs::read(&kept).unwrap(), bad, "replaced");
    }
}

/// `plan --since REV --format json` with the `since-cache` the last run left, which must be
/// the plan without it; returns it.
fn kept_then_fresh(p: &Project, args: &[&str]) -> serde_json::Value {
    let kept = p.plan_json(args);
    let _ = std::fs::remove_file(p.path("cache/since-cache"));
    let fresh = p.plan_json(args);
    assert_eq!(
        kept, fresh,
        "{args:?}: the kept keys say what keying again says"
    );
    fresh
}

#[test]
fn kept_revision_keys_go_stale_with_any_input() {
    let p = repo();
    // Two revisions with the same declarations and role trees: only the origin's file, which
    // is no declaration, differs.
    p.file("origins/base.tar", "another tarball\n");
    commit_all(&p, "two");
    let older = kept_then_fresh(&p, &["--since", "HEAD~1"]);
    assert_eq!(builds(&older).len(), 4, "{older:#}");
    let head = kept_then_fresh(&p, &["--since", "HEAD~1"]);
    assert_eq!(head, older, "kept, then used");
    let head = kept_then_fresh(&p, &["--since", "HEAD"]);
    assert_eq!(builds(&head).len(), 0, "{head:#}");
    // The strategy asked for.
    let shallow = kept_then_fresh(&p, &["--since", "HEAD~1", "--strategy", "shallow"]);
    assert_ne!(shallow, older);
    // A declaration: a backend's file is named, then changed in the next commit.
    p.file(
        "layer.toml",
        "[project]\nstrategy = \"deep\"\nbackend = \"sh\"\n\n[origins.bb]\ntar = \"origins/base.tar\"\n\n\
         [backends.sh]\nkind = \"command\"\ncommand = [\"./scripts/build.sh\"]\n",
    );
    p.exec("scripts/build.sh", "#!/bin/sh\necho one\n");
    commit_all(&p, "three");
    kept_then_fresh(&p, &["--since", "HEAD~1"]);
    p.exec("scripts/build.sh", "#!/bin/sh\necho two\n");
    commit_all(&p, "four");
    kept_then_fresh(&p, &["--since", "HEAD~1"]);
    let four = kept_then_fresh(&p, &["--since", "HEAD"]);
    assert_eq!(builds(&four).len(), 0, "{four:#}");
}
