//! The stat cache's tree memos (`scan::scan_known`): a role whose every file and folder is as
//! the last whole walk saw it is known by its digest alone, and its entries are walked again
//! only when a plan's reasons or a build need them. Seen from outside, nothing differs.

use std::time::Duration;

use crate::common::{planned_in, Project, SCRIPT_DONE, SCRIPT_START};
use serde_json::json;

/// Lets the project's files age past the racy window (2 s), so that the next scan keeps
/// every file and folder in the stat cache, and a memo of every role with them.
fn age() {
    std::thread::sleep(Duration::from_millis(2100));
}

#[test]
fn a_role_known_by_its_memo_still_names_the_files_that_changed() {
    let p = Project::estate();
    p.record(&[]);
    p.file("roles/base/files/etc/motd", "welcome, again\n");
    age();
    // The first plan walks `base` whole and leaves its memo; the second knows `base` by the
    // memo, and walks it again only for the reasons of the images it makes stale.
    let first = p.plan_json(&[]);
    let sealed = std::fs::read(p.path("cache/stat-cache")).unwrap();
    assert!(sealed.starts_with(b"layer-stat\0\x05"));
    let second = p.plan_json(&[]);
    assert_eq!(first, second);
    let base = planned_in(&second, "base-linux");
    assert_eq!(
        base["reasons"],
        json!([{"kind": "role-changed", "role": "base", "paths": ["roles/base/files/etc/motd"]}])
    );
    assert_eq!(
        std::fs::read(p.path("cache/stat-cache")).unwrap(),
        sealed,
        "nothing changed since the first plan: the stat cache is not written again"
    );
}

#[test]
fn a_build_applies_and_records_the_whole_tree_of_a_role_known_by_its_memo() {
    let p = Project::command_estate(&format!("{SCRIPT_START}{SCRIPT_DONE}"));
    p.layer(&["build"]).expect(0);
    p.exec(
        "roles/web/provision.sh",
        "echo \"role=$LAYER_ROLE v2\" >> /provisioned\n",
    );
    age();
    // This plan walks `web` whole and leaves its memo; the build's own scan knows `web` by it.
    assert_eq!(
        p.actions(&[]),
        [
            ("base".to_string(), "fresh".to_string()),
            ("app".into(), "fresh".into()),
            ("svc".into(), "build".into())
        ]
    );
    p.layer(&["build"]).expect(0);
    let marks = std::fs::read_to_string(p.path("out/marks")).unwrap();
    assert_eq!(marks.matches("start svc").count(), 2, "{marks}");
    // The record names the tree, and the tree is stored whole.
    let plan = p.plan_json(&[]);
    assert!(plan["images"]
        .as_array()
        .unwrap()
        .iter()
        .all(|i| i["action"] == "fresh"));
    let hash = p
        .layer(&["hash", "svc", "--inputs", "--json"])
        .expect(0)
        .stdout;
    let rows: serde_json::Value = serde_json::from_str(&hash).unwrap();
    let web = rows[0]["inputs"]["roles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "web")
        .and_then(|r| r["tree"].as_str())
        .expect("the inputs name web's tree")
        .to_string();
    let stored = std::fs::read(p.path(&format!("cache/trees/{web}.json"))).unwrap();
    let entries: serde_json::Value = serde_json::from_slice(&stored).unwrap();
    assert_eq!(entries[0]["path"], "provision.sh");
}
