//! `layer cache ls|verify|gc`.

use crate::common;
use crate::common::{wait_until, Project, SCRIPT_DONE, SCRIPT_START, SCRIPT_WAIT_FOR_GO};

use std::collections::BTreeSet;
use std::fs;

use layer::cache::{artifact_digest, Cache};
use layer::record::Record;
use serde_json::Value;

fn cache(p: &Project) -> Cache {
    Cache::new(p.path("cache"))
}

/// Every record the cache keeps, as `NAME MAJOR.MINOR.BUILD`.
fn kept_records(p: &Project) -> Vec<String> {
    cache(p)
        .all_records()
        .into_values()
        .flatten()
        .map(|r| format!("{} {}", r.name, &r.version[..5]))
        .collect()
}

/// Image `name` (version 3.0, on `base-linux`) recorded as built, then no longer declared.
fn recorded_then_undeclared(p: &Project, name: &str) {
    let file = format!("images/{name}.toml");
    p.file(&file, "version = \"3.0\"\nfrom = \"base-linux\"\n");
    p.record(&[name]);
    p.remove(&file);
}

fn find(p: &Project, image: &str, version: &str) -> Record {
    cache(p)
        .records(image)
        .into_iter()
        .find(|r| r.version.starts_with(&format!("{version}-")))
        .unwrap_or_else(|| panic!("{image} {version}"))
}

fn set_status(p: &Project, image: &str, version: &str, status: &str) {
    let mut r = find(p, image, version);
    r.tags.insert("Release_Status".into(), status.into());
    cache(p).rewrite_record(&r).unwrap();
}

/// Records the digest of the artifact of every build, as a build of a local artifact does.
fn digest_artifacts(p: &Project) {
    let c = cache(p);
    for image in c.recorded_images() {
        for mut r in c.records(&image) {
            let (d, size) =
                artifact_digest(&p.path(&format!("cache/{}", r.artifact.path.as_ref().unwrap())))
                    .unwrap();
            r.artifact.blake3 = Some(d);
            r.artifact.size = Some(size);
            c.rewrite_record(&r).unwrap();
        }
    }
}

/// The estate with two builds of `base-linux` (a new key each) and `app` on each, and
/// `node` and `svc` on the newest:
///
/// ```text
/// base-linux 1.0.0 <- app 2.0.0
/// base-linux 1.0.1 <- app 2.0.1 <- svc 1.0.0; node 1.0.0
/// ```
fn two_generations() -> Project {
    let p = Project::estate();
    p.file("roles/base/files/etc/motd", "welcome 0\n");
    p.record(&["base-linux", "app"]);
    p.file("roles/base/files/etc/motd", "welcome 1\n");
    p.record(&[]);
    p
}

// ---------------------------------------------------------------------------------------------
// ls

#[test]
fn ls_shows_every_build_with_status_and_size() {
    let p = two_generations();
    set_status(&p, "base-linux", "1.0.0", "released");
    // A build of a cloud image: no local artifact.
    let mut node = find(&p, "node", "1.0.0");
    node.artifact = layer::record::Artifact {
        id: "ami-0123".into(),
        path: None,
        blake3: None,
        size: None,
        remote: Some("mitchellh.amazonebs".into()),
    };
    cache(&p).rewrite_record(&node).unwrap();
    let out = p.layer(&["cache", "ls"]).expect(0);
    insta::assert_snapshot!("cache_ls", out.stdout);
    let rows: Value =
        serde_json::from_str(&p.layer(&["cache", "ls", "--json"]).expect(0).stdout).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 6);
    let base0 = rows
        .iter()
        .find(|r| r["image"] == "base-linux" && r["status"] == "released")
        .unwrap();
    assert_eq!(base0["size"], 22);
    assert_eq!(base0["superseded"], false);
    let node = rows.iter().find(|r| r["image"] == "node").unwrap();
    assert_eq!(node["size"], Value::Null);
    assert_eq!(node["path"], Value::Null);
}

// ---------------------------------------------------------------------------------------------
// verify

#[test]
fn verify_catches_a_flipped_byte_and_the_corrupt_artifact_counts_as_missing() {
    let p = two_generations();
    digest_artifacts(&p);
    let out = p.layer(&["cache", "verify"]).expect(0);
    assert!(
        out.stdout
            .ends_with("6 builds: 6 ok, 0 corrupt, 0 missing, 0 remote, 0 without a digest\n"),
        "{}",
        out.stdout
    );
    assert!(p.actions(&[]).iter().all(|(_, a)| a == "fresh"));

    // One byte of the current base-linux artifact flips.
    let base = find(&p, "base-linux", "1.0.1");
    let rel = base.artifact.path.clone().unwrap();
    let path = p.path(&format!("cache/{rel}"));
    let mut bytes = fs::read(&path).unwrap();
    bytes[3] ^= 0x01;
    fs::write(&path, &bytes).unwrap();

    let out = p.layer(&["cache", "verify"]).expect(1);
    let line = out
        .stdout
        .lines()
        .find(|l| l.starts_with("base-linux 1.0.1-"))
        .unwrap()
        .to_string();
    assert!(line.contains("  corrupt: blake3 "), "{line}");
    assert!(
        line.ends_with(&format!("moved to `{rel}.corrupt`")),
        "{line}"
    );
    assert!(
        out.stdout
            .ends_with("6 builds: 5 ok, 1 corrupt, 0 missing, 0 remote, 0 without a digest\n"),
        "{}",
        out.stdout
    );
    assert_eq!(
        out.stderr,
        "error: 1 build failed verification; `layer plan` rebuilds the current ones\n"
    );
    assert!(!path.exists() && p.path(&format!("cache/{rel}.corrupt")).exists());

    // From now on it is missing: base-linux is rebuilt, and everything built on it.
    let (action, reasons) = p.verdict(&[], "base-linux");
    assert_eq!(action, "build");
    assert_eq!(reasons[0]["kind"], "missing-artifact");
    assert_eq!(p.verdict(&[], "node").0, "build");
    // Reported once: from now on it is moved aside, and verify passes.
    let json: Value =
        serde_json::from_str(&p.layer(&["cache", "verify", "--json"]).expect(0).stdout).unwrap();
    let base = json
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["image"] == "base-linux" && r["version"].as_str().unwrap().starts_with("1.0.1"))
        .unwrap()
        .clone();
    assert_eq!(base["result"], "moved-aside");
    assert_eq!(base["moved_to"], format!("{rel}.corrupt"));
}

#[test]
fn verify_rehashes_folder_artifacts_and_says_what_it_cannot_check() {
    let p = two_generations();
    // `app` 2.0.1 has a root filesystem tree as its artifact.
    let mut app = find(&p, "app", "2.0.1");
    let tree = p.path("cache/artifacts/app/tree-2.0.1");
    fs::create_dir_all(tree.join("etc")).unwrap();
    fs::write(tree.join("etc/motd"), "hello\n").unwrap();
    std::os::unix::fs::symlink("motd", tree.join("etc/issue")).unwrap();
    app.artifact.path = Some("artifacts/app/tree-2.0.1".into());
    app.artifact.blake3 = Some(artifact_digest(&tree).unwrap().0);
    cache(&p).rewrite_record(&app).unwrap();
    // `node` is remote; the rest have no digest.
    let mut node = find(&p, "node", "1.0.0");
    node.artifact.path = None;
    node.artifact.id = "ami-0123".into();
    cache(&p).rewrite_record(&node).unwrap();

    let out = p.layer(&["cache", "verify"]).expect(0);
    insta::assert_snapshot!("cache_verify", out.stdout);

    fs::write(tree.join("etc/motd"), "hellO\n").unwrap();
    let out = p.layer(&["cache", "verify"]).expect(1);
    out.stdout_has("app 2.0.1-20261120_1000         corrupt");
    assert!(p
        .path("cache/artifacts/app/tree-2.0.1.corrupt/etc/motd")
        .exists());
    assert_eq!(p.verdict(&[], "app").1[0]["kind"], "missing-artifact");
}

// ---------------------------------------------------------------------------------------------
// gc

/// Paths under the cache, without the stat and model caches and lock files.
fn paths(p: &Project) -> BTreeSet<String> {
    p.cache_paths()
        .into_iter()
        .filter(|f| {
            f != "stat-cache" && f != "model-cache" && f != "cache.lock" && !f.starts_with("locks/")
        })
        .collect()
}

#[test]
fn gc_keeps_current_released_and_pinned_builds_their_parents_and_the_newest() {
    let p = two_generations();
    // app 2.0.0 is released: it stays, and so does base-linux 1.0.0, which it was built on.
    set_status(&p, "app", "2.0.0", "released");
    // Logs: of kept builds, and of a failed build with a retry (no record).
    for (image, v) in [
        ("app", "2.0.0-20261120_1000"),
        ("app", "2.0.1-20261120_1000"),
        ("base-linux", "1.0.0-20261120_1000"),
        ("base-linux", "1.0.1-20261120_1000"),
        ("app", "2.0.2-20261121_0900"),
    ] {
        p.file(
            &format!("cache/logs/{image}/{v}.log"),
            &format!("log of {image} {v}\n"),
        );
    }
    p.file("cache/logs/app/2.0.2-20261121_0900.1.log", "retry\n");
    // An image no longer declared, and folders gc does not know.
    recorded_then_undeclared(&p, "old");
    p.file("cache/origins/bookworm/rootfs.tar", "an origin\n");
    p.file("cache/layers/x/file", "a layer\n");
    assert!(p.actions(&[]).iter().all(|(_, a)| a == "fresh"));
    let before = paths(&p);
    let sizes: std::collections::BTreeMap<String, u64> = before
        .iter()
        .map(|f| {
            (
                f.clone(),
                fs::metadata(p.path(&format!("cache/{f}"))).unwrap().len(),
            )
        })
        .collect();

    // Dry run: says everything, removes nothing.
    // `old` has one build, the newest of its image: the default keeps it, `--all` does not.
    let kept = p.layer(&["cache", "gc", "--dry-run"]).expect(0).stdout;
    assert!(!kept.contains("would remove old "), "{kept}");
    let dry = p
        .layer(&["cache", "gc", "--all", "--dry-run"])
        .expect(0)
        .stdout;
    assert_eq!(paths(&p), before);

    let out = p.layer(&["cache", "gc", "--all"]).expect(0);
    assert_eq!(
        out.stdout
            .replace("removed", "would remove")
            .replace("freed", "would free"),
        dry
    );
    let after = paths(&p);
    let gone: Vec<&String> = before.difference(&after).collect();
    assert_eq!(
        gone,
        [
            "artifacts/old/".to_string() + &key_of_gone(&before, &after, "old"),
            "logs/app/2.0.2-20261121_0900.1.log".into(),
            "logs/app/2.0.2-20261121_0900.log".into(),
            "records/old/".to_string() + &key_of_gone(&before, &after, "old") + ".json",
        ]
        .iter()
        .collect::<Vec<_>>()
    );
    // Kept: current builds; app 2.0.0, released, and base-linux 1.0.0 it was built on.
    let kept = kept_records(&p);
    assert_eq!(
        kept,
        [
            "app 2.0.1",
            "app 2.0.0",
            "base-linux 1.0.1",
            "base-linux 1.0.0",
            "node 1.0.0",
            "svc 1.0.0"
        ]
    );
    assert!(p.path("cache/origins/bookworm/rootfs.tar").exists());
    assert!(p.path("cache/layers/x/file").exists());
    assert!(
        out.stdout
            .starts_with("removed old 3.0.0-20261120_1000 (candidate): "),
        "{}",
        out.stdout
    );
    let freed: u64 = gone.iter().map(|f| sizes[*f]).sum();
    assert!(
        out.stdout.ends_with(&format!(
            "freed {freed} bytes (1.2 KiB): 1 build, 2 other files; kept 6 builds\n"
        )),
        "{}",
        out.stdout
    );
    assert!(p.actions(&[]).iter().all(|(_, a)| a == "fresh"));

    // Without the release, app 2.0.0 and base-linux 1.0.0 go, with their logs and trees.
    set_status(&p, "app", "2.0.0", "tested");
    // --keep 2 keeps them (the two newest of each image).
    let kept = p.layer(&["cache", "gc", "--keep", "2"]).expect(0).stdout;
    assert!(
        kept.ends_with("freed 0 bytes (0 B): 0 builds, 0 other files; kept 6 builds\n"),
        "{kept}"
    );
    let trees_before = tree_files(&p);
    let out = p.layer(&["cache", "gc"]).expect(0).stdout;
    let removed: Vec<&str> = out.lines().filter(|l| l.starts_with("removed")).collect();
    assert_eq!(removed.len(), 5, "{out}");
    assert!(
        removed[0].starts_with("removed app 2.0.0-20261120_1000 (tested): "),
        "{out}"
    );
    assert!(
        removed[1].starts_with("removed base-linux 1.0.0-20261120_1000 (candidate): "),
        "{out}"
    );
    assert!(
        out.contains("removed logs/app/2.0.0-20261120_1000.log\n"),
        "{out}"
    );
    assert!(
        out.contains("removed logs/base-linux/1.0.0-20261120_1000.log\n"),
        "{out}"
    );
    assert!(p.path("cache/logs/app/2.0.1-20261120_1000.log").exists());
    // The tree of base's first motd was named by base-linux 1.0.0 only.
    let trees_after = tree_files(&p);
    assert_eq!(trees_before.len() - trees_after.len(), 1, "{out}");
    assert!(p.actions(&[]).iter().all(|(_, a)| a == "fresh"));
    assert_eq!(cache(&p).all_records().values().flatten().count(), 4);
}

fn tree_files(p: &Project) -> Vec<String> {
    p.cache_paths()
        .into_iter()
        .filter(|f| f.starts_with("trees/"))
        .collect()
}

/// The key of the one record of `image` that went.
fn key_of_gone(before: &BTreeSet<String>, after: &BTreeSet<String>, image: &str) -> String {
    before
        .difference(after)
        .find_map(|f| f.strip_prefix(&format!("records/{image}/")))
        .and_then(|f| f.strip_suffix(".json"))
        .unwrap()
        .to_string()
}

#[test]
fn gc_keeps_a_pinned_parent() {
    let p = two_generations();
    set_status(&p, "base-linux", "1.0.0", "released");
    // node pinned to base-linux 1.0.0 and recorded on it.
    p.file(
        "images/node.toml",
        "version = \"1.0\"\nfrom = \"base-linux@1.0\"\nroles = [\"web\"]\n",
    );
    p.record(&["node"]);
    // (The test records build on the parent's current build: this one is on the pinned one.)
    let c = cache(&p);
    let mut node = find(&p, "node", "1.0.1");
    let base = find(&p, "base-linux", "1.0.0");
    node.parent = Some(layer::record::ParentRef {
        name: "base-linux".into(),
        key: base.key.clone(),
        version: base.version.clone(),
    });
    c.rewrite_record(&node).unwrap();
    // Released builds are kept anyway; what the pin adds is that base-linux 1.0.0 stays while
    // released, and node's own current build.
    let out = p.layer(&["cache", "gc"]).expect(0).stdout;
    let kept = kept_records(&p);
    assert_eq!(
        kept,
        [
            "app 2.0.1",
            "base-linux 1.0.1",
            "base-linux 1.0.0",
            "node 1.0.1",
            "svc 1.0.0"
        ],
        "{out}"
    );
    assert!(p.actions(&[]).iter().all(|(_, a)| a == "fresh"));
}

#[test]
fn gc_waits_for_or_refuses_to_run_beside_a_build() {
    let script = format!("{SCRIPT_START}{SCRIPT_WAIT_FOR_GO}{SCRIPT_DONE}");
    let p = Project::command_estate(&script);
    let build = p.spawn_layer(&["build", "base"], &[]);
    wait_until("the build to start", || {
        p.count_lines("out/marks", "start base") == 1
    });

    let out = p.layer(&["cache", "gc", "--no-wait"]).expect(1);
    assert_eq!(
        common::redact(&p, &out.stderr),
        "error: cache `[ROOT]/cache`: a build is using the cache; `layer cache gc` runs when it has finished\n"
    );
    let gc = p.spawn_layer(&["cache", "gc"], &[]);
    gc.wait_for_stderr(
        "gc to wait",
        "waiting for running builds to finish with the cache",
    );
    p.file("out/go", "");
    build.wait().expect(0);
    let out = gc.wait().expect(0);
    assert!(out.stdout.ends_with("kept 1 build\n"), "{}", out.stdout);
    assert_eq!(cache(&p).records("base").len(), 1);

    // And a build waits for a gc holding the cache.
    let lock = cache(&p)
        .lock_exclusive(false, &mut || {})
        .unwrap()
        .unwrap();
    let build = p.spawn_layer(&["build"], &[]);
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(p.count_lines("out/marks", "start app"), 0);
    drop(lock);
    p.file("out/go", "");
    build.wait().expect(0);
    assert_eq!(p.count_lines("out/marks", "done svc"), 1);
}

#[test]
fn gc_keeps_the_test_logs_of_kept_builds() {
    let p = two_generations();
    set_status(&p, "app", "2.0.0", "released");
    // Test logs (`VERSION.test.log`, a second run's `VERSION.test.1.log`) of a released build
    // and of current ones; and of a build gc removes (`--all`: the build of an image no
    // longer declared is not kept as its newest).
    let kept = [
        "logs/app/2.0.0-20261120_1000.test.log",
        "logs/app/2.0.0-20261120_1000.test.1.log",
        "logs/app/2.0.1-20261120_1000.test.log",
        "logs/svc/1.0.0-20261120_1000.test.log",
    ];
    for f in kept {
        p.file(&format!("cache/{f}"), "tests\n");
    }
    recorded_then_undeclared(&p, "old");
    p.file("cache/logs/old/3.0.0-20261120_1000.test.log", "tests\n");

    let dry = p
        .layer(&["cache", "gc", "--all", "--dry-run"])
        .expect(0)
        .stdout;
    for f in kept {
        assert!(!dry.contains(f), "{f} is kept:\n{dry}");
    }
    assert!(
        dry.contains("would remove logs/old/3.0.0-20261120_1000.test.log\n"),
        "{dry}"
    );
    p.layer(&["cache", "gc", "--all"]).expect(0);
    for f in kept {
        assert!(p.path(&format!("cache/{f}")).exists(), "{f} is kept");
    }
    assert!(!p
        .path("cache/logs/old/3.0.0-20261120_1000.test.log")
        .exists());
}

#[test]
fn gc_removes_the_apt_downloads_of_origins_it_drops_and_with_apt_all_of_them() {
    let p = Project::estate();
    p.record(&[]);
    let c = cache(&p);
    // The estate's origin, and one no longer declared.
    let ws = layer::workspace::Workspace::open(&p.path(""), Some(p.path("cache")), None).unwrap();
    let identity = layer::key::origin_identity(&ws.project, "bb", &ws.scanned).unwrap();
    let kept = c.apt_dir(&identity).unwrap();
    fs::write(kept.join("archives/hello_1_all.deb"), "a package\n").unwrap();
    let gone = p.path("cache/apt/0123456789abcdef0123456789abcdef");
    fs::create_dir_all(gone.join("archives")).unwrap();
    fs::write(gone.join("archives/hello_1_all.deb"), "a package\n").unwrap();

    let out = p.layer(&["cache", "gc"]).expect(0).stdout;
    assert!(!gone.exists(), "{out}");
    assert!(kept.join("archives/hello_1_all.deb").exists(), "{out}");
    let out = p.layer(&["cache", "gc", "--apt"]).expect(0).stdout;
    assert!(!kept.exists(), "{out}");
    assert!(out.contains("apt/"), "{out}");
}
