//! `layer watch`: with a live watcher a no-op plan reads only what changed, and never calls a
//! changed file unchanged: edits between and during plans, an overflowed event queue, a
//! watcher killed with SIGKILL and an edit that keeps its mtime (`touch -r`) are all seen.
//!
//! Each story waits out the stat cache's racy window first, so the stat cache holds the files
//! and the plan really takes them from it: a file written in the last two seconds is read by
//! every plan, watcher or not.

use std::fs;
use std::time::Duration;

use serde_json::json;

use crate::common::{wait_until, Project, Running};

/// Past the stat cache's racy window: files written before are kept in it.
fn settle() {
    std::thread::sleep(Duration::from_millis(2100));
}

/// `layer watch` started, and its watches made.
fn watching(p: &Project) -> Running {
    let w = p.spawn_layer(&["watch"], &[]);
    w.wait_for_stderr("the watcher to start", "watching ");
    w
}

/// `layer plan -v --format json`: its line about the watcher, and `(action, reasons)` of `app`.
fn plan(p: &Project) -> (String, (String, serde_json::Value)) {
    let out = p.layer(&["plan", "-v", "--format", "json"]).expect(0);
    let line = out
        .stderr
        .lines()
        .find(|l| l.starts_with("watch: "))
        .unwrap_or_else(|| panic!("plan -v says what the watcher did:\n{}", out.stderr))
        .to_string();
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let app = v["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == "app")
        .unwrap();
    (
        line,
        (
            app["action"].as_str().unwrap().to_string(),
            app["reasons"].clone(),
        ),
    )
}

fn fresh() -> (String, serde_json::Value) {
    ("fresh".into(), json!([]))
}

fn java_changed() -> (String, serde_json::Value) {
    (
        "build".into(),
        json!([{"kind": "role-changed", "role": "java", "paths": ["roles/java/provision.sh"]}]),
    )
}

/// A plan whose line about the watcher says `says` and whose verdict on `app` is `want`.
#[track_caller]
fn plan_says(p: &Project, says: &str, want: &(String, serde_json::Value)) {
    let (line, app) = plan(p);
    assert!(line.contains(says), "{line}");
    assert_eq!(&app, want, "{line}");
}

/// After a watcher that missed events: the next plan checks every file, the one after trusts
/// the watcher again, and both see `JAVA` changed.
#[track_caller]
fn checked_in_full_then_vouched(p: &Project) {
    plan_says(p, "saw less than the stat cache needs", &java_changed());
    plan_says(p, "vouched", &java_changed());
}

const JAVA: &str = "roles/java/provision.sh";
const ORIGINAL: &str = "#!/bin/sh\necho java\n";
/// As long as `ORIGINAL`, so only the content tells them apart.
const EDITED: &str = "#!/bin/sh\necho jav2\n";

/// The estate recorded as built, settled, with a watcher whose mark the stat cache carries.
fn watched_estate() -> (Project, Running) {
    let p = Project::estate();
    p.record(&[]);
    settle();
    let w = watching(&p);
    // The first plan under a new watcher checks every file, and marks the stat cache.
    plan_says(&p, "every file checked", &fresh());
    let (line, app) = plan(&p);
    assert!(line.contains("vouched"), "{line}");
    assert!(line.contains(" 0 changed paths"), "{line}");
    assert_eq!(app, fresh());
    (p, w)
}

#[test]
fn a_watched_plan_sees_every_edit_between_and_during_plans() {
    let (p, _w) = watched_estate();
    // Between plans: the file was in the stat cache, unchanged, before this edit.
    p.file(JAVA, EDITED);
    plan_says(&p, "vouched", &java_changed());
    settle();
    plan_says(&p, "vouched", &java_changed());

    // Back to what was recorded, with the mtime of the edit kept: the watcher still says so.
    p.edit_keeping_mtime(JAVA, ORIGINAL);
    plan_says(&p, "vouched", &fresh());

    // During plans: edits made while a plan runs are seen by that plan or the next one.
    for (i, content) in [EDITED, ORIGINAL, EDITED, ORIGINAL].into_iter().enumerate() {
        settle();
        let running = p.spawn_layer(&["plan", "--format", "json"], &[]);
        std::thread::sleep(Duration::from_millis(5 * i as u64));
        p.file(JAVA, content);
        running.wait().expect(0);
        let (line, app) = plan(&p);
        assert!(line.contains("vouched"), "{line}");
        let want = if content == EDITED {
            java_changed()
        } else {
            fresh()
        };
        assert_eq!(app, want, "after edit {i}");
    }
}

#[test]
fn an_edit_keeping_its_mtime_is_seen_with_and_without_a_watcher() {
    let (p, w) = watched_estate();
    p.edit_keeping_mtime(JAVA, EDITED);
    plan_says(&p, "vouched", &java_changed());

    // Without a watcher the edit is caught by the file's ctime, as git does.
    settle();
    plan(&p);
    drop(w);
    p.edit_keeping_mtime(JAVA, ORIGINAL);
    plan_says(&p, "no live `layer watch`", &fresh());
}

#[test]
fn a_watcher_killed_with_sigkill_leaves_plans_checking_every_file() {
    let (p, w) = watched_estate();
    w.signal(libc::SIGKILL);
    let out = w.wait();
    assert_eq!(out.code, 128 + libc::SIGKILL);
    // Its files are still there; its lock is not held.
    assert!(p.path("cache/watch/state").exists());
    p.edit_keeping_mtime(JAVA, EDITED);
    plan_says(&p, "no live `layer watch`", &java_changed());

    // A new watcher does not trust the stat cache its predecessor marked.
    settle();
    let _w = watching(&p);
    checked_in_full_then_vouched(&p);
}

#[test]
fn an_overflowed_event_queue_makes_the_next_plan_check_every_file() {
    let (p, w) = watched_estate();
    // A stopped watcher reads no events: more changes than the kernel queues for it overflow
    // its queue (each write is a modify and a close-write event).
    let queued: usize = fs::read_to_string("/proc/sys/fs/inotify/max_queued_events")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    w.signal(libc::SIGSTOP);
    for i in 0..queued {
        p.file(JAVA, if i % 2 == 0 { ORIGINAL } else { EDITED });
    }
    p.file(JAVA, EDITED);
    w.signal(libc::SIGCONT);
    w.wait_for_stderr("the watcher to see the overflow", "overflowed");
    wait_until("the watcher to watch again", || {
        w.stderr_so_far()
            .lines()
            .filter(|l| l.starts_with("watching "))
            .count()
            == 2
    });
    checked_in_full_then_vouched(&p);
}

#[test]
fn a_second_watcher_of_a_cache_is_refused() {
    let (p, _w) = watched_estate();
    let out = p.layer(&["watch"]).expect(2);
    out.stderr_has("another `layer watch` is running for the cache");
    assert!(out
        .stderr
        .contains("hint: one watcher serves every plan of a cache"));
}

#[test]
fn roles_added_after_the_watcher_started_are_checked_in_full() {
    let (p, _w) = watched_estate();
    p.exec("roles/db/provision.sh", "#!/bin/sh\necho db\n");
    p.file(
        "images/db.toml",
        "version = \"1.0\"\nfrom = \"base-linux\"\nroles = [\"db\"]\n",
    );
    p.record(&[]);
    settle();
    plan(&p);
    assert_eq!(p.verdict(&[], "db"), fresh());
    p.edit_keeping_mtime("roles/db/provision.sh", "#!/bin/sh\necho DB\n");
    let (line, _) = plan(&p);
    assert!(line.contains("vouched"), "{line}");
    assert_eq!(
        p.verdict(&[], "db"),
        (
            "build".into(),
            json!([{"kind": "role-changed", "role": "db", "paths": ["roles/db/provision.sh"]}])
        )
    );
}

#[test]
fn a_roles_folder_swapped_under_the_watcher_is_checked_in_full() {
    let (p, w) = watched_estate();
    // A copy of `roles` takes its place; the watched folders are now under `roles.old`.
    let copy = std::process::Command::new("cp")
        .args(["-a", "roles", "roles.new"])
        .current_dir(p.root())
        .status()
        .unwrap();
    assert!(copy.success());
    fs::rename(p.path("roles"), p.path("roles.old")).unwrap();
    fs::rename(p.path("roles.new"), p.path("roles")).unwrap();
    settle();
    p.edit_keeping_mtime(JAVA, EDITED);
    w.wait_for_stderr("the watcher to watch again", "was moved");
    let (_, app) = plan(&p);
    assert_eq!(app, java_changed());
}
