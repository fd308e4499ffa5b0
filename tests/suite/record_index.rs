//! The record index (`cache/record-index`): plans take what they need of the records of
//! current keys from it, under the stamps of the record files, and it never makes a plan
//! wrong: a record written, revoked or removed by another process, an artifact removed, a
//! record edited in place and a damaged index are all seen.

use std::time::Duration;

use crate::common::{now_rfc3339, Project};

/// Lets the records age past the racy window (2 s), so that the next plan indexes them.
fn age() {
    std::thread::sleep(Duration::from_millis(2100));
}

fn index(p: &Project) -> Vec<u8> {
    std::fs::read(p.path("cache/record-index")).expect("the record index is saved")
}

fn build_names(p: &Project, extra: &[&str]) -> Vec<String> {
    p.actions(extra)
        .into_iter()
        .filter(|(_, a)| a == "build")
        .map(|(n, _)| n)
        .collect()
}

/// The estate recorded as built in 2020, its records indexed by a plan: every image fresh.
fn indexed_estate() -> Project {
    let p = Project::estate();
    p.record_at(&[], "2020-01-01T00:00:00Z");
    age();
    assert!(build_names(&p, &[]).is_empty(), "all fresh after recording");
    let first = index(&p);
    assert!(build_names(&p, &[]).is_empty());
    assert_eq!(index(&p), first, "a plan that reads nothing new leaves it");
    p
}

#[test]
fn plans_take_records_from_the_index() {
    let p = indexed_estate();
    // What the plan knows of `app`'s build comes from the index: a build time changed there
    // (and sealed again) is what `--max-age` sees.
    let bytes = index(&p);
    let body = String::from_utf8(bytes[..bytes.len() - 32].to_vec()).unwrap();
    assert!(body.starts_with("layer record-index 1 "), "{body}");
    let forged = body.replacen("2020-01-01T00:00:00Z", &now_rfc3339(), 1);
    assert_ne!(forged, body);
    let mut bytes = forged.into_bytes();
    let sum = *blake3::hash(&bytes).as_bytes();
    bytes.extend_from_slice(&sum);
    std::fs::write(p.path("cache/record-index"), &bytes).unwrap();
    assert_eq!(build_names(&p, &["--max-age", "30d"]).len(), 3);
}

#[test]
fn a_record_written_by_another_process_is_seen() {
    let p = indexed_estate();
    let all = ["base-linux", "app", "node", "svc"];
    assert_eq!(build_names(&p, &["--max-age", "30d"]), all, "built in 2020");
    // Another `layer` records new builds of the same keys: the index's entries are stale.
    p.record_at(&[], &now_rfc3339());
    assert!(build_names(&p, &["--max-age", "30d"]).is_empty());
    age();
    assert!(
        build_names(&p, &["--max-age", "30d"]).is_empty(),
        "indexed again"
    );
}

#[test]
fn a_record_removed_by_hand_is_seen() {
    let p = indexed_estate();
    let record = p.record_path("app");
    std::fs::remove_file(&record).unwrap();
    let (action, reasons) = p.verdict(&[], "app");
    assert_eq!(action, "build", "{reasons}");
    assert_eq!(reasons[0]["kind"], "new", "{reasons}");
}

#[test]
fn a_record_removed_by_cache_gc_is_seen() {
    let p = indexed_estate();
    let motd = p.read("roles/base/files/etc/motd");
    p.file("roles/base/files/etc/motd", "edited\n");
    age();
    assert_eq!(build_names(&p, &[]).len(), 4);
    // Nothing of the current keys is built: `gc --all` removes every record.
    p.layer(&["cache", "gc", "--all"]).expect(0);
    p.file("roles/base/files/etc/motd", &motd);
    assert_eq!(build_names(&p, &[]).len(), 4, "the records are gone");
}

#[test]
fn a_revoke_is_seen() {
    let p = indexed_estate();
    let version = p.planned(&[], "app");
    assert_eq!(version["action"], "fresh");
    let versions = p.layer(&["versions", "app", "--json"]).expect(0).stdout;
    let versions: serde_json::Value = serde_json::from_str(&versions).unwrap();
    let v = versions[0]["version"].as_str().unwrap().to_string();
    p.layer(&["revoke", &format!("app@{v}")]).expect(0);
    let (action, reasons) = p.verdict(&[], "app");
    assert_eq!(action, "build");
    assert_eq!(reasons[0]["kind"], "revoked", "{reasons}");
    let (action, reasons) = p.verdict(&[], "svc");
    assert_eq!(action, "build");
    assert_eq!(reasons[0]["kind"], "parent-revoked", "{reasons}");
}

#[test]
fn an_artifact_removed_is_seen() {
    let p = indexed_estate();
    let dir = p.path("cache/artifacts/app");
    for e in std::fs::read_dir(&dir).unwrap() {
        std::fs::remove_file(e.unwrap().path()).unwrap();
    }
    let (action, reasons) = p.verdict(&[], "app");
    assert_eq!(action, "build");
    assert_eq!(reasons[0]["kind"], "missing-artifact", "{reasons}");
}

#[test]
fn a_record_edited_in_place_with_its_mtime_kept_is_seen() {
    let p = indexed_estate();
    let path = p.record_path("app");
    let text = std::fs::read_to_string(&path).unwrap();
    let edited = text.replacen("2020-01-01T00:00:00Z", "2020-01-01T00:00:01Z", 1);
    assert_ne!(edited, text);
    let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
    std::fs::write(&path, &edited).unwrap();
    let f = std::fs::File::options().write(true).open(&path).unwrap();
    f.set_modified(mtime).unwrap();
    // Same inode, size and mtime: only the ctime shows it, and the checksum fails.
    let (action, reasons) = p.verdict(&[], "app");
    assert_eq!(action, "build");
    assert_eq!(reasons[0]["kind"], "missing-artifact", "{reasons}");
    assert!(
        reasons[0]["detail"]
            .as_str()
            .unwrap()
            .contains("checksum does not match"),
        "{reasons}"
    );
}

#[test]
fn a_damaged_index_is_ignored_and_made_again() {
    let p = indexed_estate();
    let good = index(&p);
    let plan = p.plan_json(&[]);
    let mut flipped = good.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x20;
    for damaged in [
        flipped,
        good[..good.len() - 40].to_vec(),
        b"garbage".to_vec(),
    ] {
        std::fs::write(p.path("cache/record-index"), &damaged).unwrap();
        assert_eq!(p.plan_json(&[]), plan);
        assert_eq!(index(&p), good, "made again, the same");
    }
}
