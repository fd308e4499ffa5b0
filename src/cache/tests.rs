//! The cache's unit tests: record rewrites, leftovers of killed builds, version numbering,
//! rebuilds of a key.

use super::*;
use crate::record::tests::record_of;

fn record(name: &str, version: &str, built_at: &str, salt: &str) -> Record {
    Record {
        version: version.into(),
        built_at: built_at.into(),
        ..record_of(name, salt)
    }
}

/// A build of `img` written to `cache`, and a rebuild of its key an hour later (`--force`).
fn built_twice(cache: &Cache) -> (Record, Record) {
    let first = record("img", "1.0.0-20261122_0400", "2026-11-22T04:00:00Z", "a");
    let mut second = first.clone();
    second.version = "1.0.1-20261122_0500".into();
    second.built_at = "2026-11-22T05:00:00Z".into();
    cache.write_record(&first, &[]).unwrap();
    cache.write_record(&second, &[]).unwrap();
    (first, second)
}

#[test]
fn a_rewritten_record_stays_where_it_was_current_or_old() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::new(dir.path());
    let (first, second) = built_twice(&cache); // `first` moves to old/
    for (r, status) in [(&first, "revoked"), (&second, "tested")] {
        let mut r = r.clone();
        r.tags.insert("Release_Status".into(), status.into());
        cache.rewrite_record(&r).unwrap();
    }
    let statuses: Vec<(String, String)> = cache
        .records("img")
        .into_iter()
        .map(|r| (r.version, r.tags["Release_Status"].clone()))
        .collect();
    assert_eq!(
        statuses,
        [
            ("1.0.1-20261122_0500".to_string(), "tested".to_string()),
            ("1.0.0-20261122_0400".to_string(), "revoked".to_string()),
        ]
    );
    let mut ghost = first.clone();
    ghost.version = "9.9.9-20261122_0400".into();
    assert!(cache.rewrite_record(&ghost).is_err());
}

#[test]
fn an_artifact_left_by_a_killed_build_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::new(dir.path().join("cache"));
    // A build killed after storing its layer, before writing its record.
    let left = dir.path().join("cache/artifacts/img/img-1.0.0-k");
    fs::create_dir_all(left.join("etc")).unwrap();
    fs::write(left.join("etc/old"), "old").unwrap();
    let new = dir.path().join("cache/runs/layer");
    fs::create_dir_all(new.join("etc")).unwrap();
    fs::write(new.join("etc/new"), "new").unwrap();
    let rel = cache.store_artifact("img", "img-1.0.0-k", &new).unwrap();
    assert_eq!(rel, "artifacts/img/img-1.0.0-k");
    assert!(left.join("etc/new").is_file() && !left.join("etc/old").exists());
}

#[test]
fn versions_sort_numerically_and_number_per_major_minor() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::new(dir.path());
    // Same second: build 10 is newer than build 9.
    for (v, salt) in [
        ("1.0.9-20261122_0400", "a"),
        ("1.0.10-20261122_0400", "b"),
        ("0.9.99-20261122_0400", "c"),
    ] {
        cache
            .write_record(&record("img", v, "2026-11-22T04:00:00Z", salt), &[])
            .unwrap();
    }
    let versions: Vec<String> = cache
        .records("img")
        .into_iter()
        .map(|r| r.version)
        .collect();
    assert_eq!(
        versions,
        [
            "1.0.10-20261122_0400",
            "1.0.9-20261122_0400",
            "0.9.99-20261122_0400"
        ]
    );
    assert_eq!(cache.next_build("img", "1.0"), 11);
    assert_eq!(cache.next_build("img", "0.9"), 100);
    assert_eq!(cache.next_build("img", "1.1"), 0);
    assert_eq!(build_number("1.4.12-20261122_0400"), Some(12));
}

#[test]
fn a_rebuild_of_a_key_keeps_the_earlier_version_and_logs_are_never_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::new(dir.path());
    let (first, second) = built_twice(&cache);
    let versions: Vec<String> = cache
        .records("img")
        .into_iter()
        .map(|r| r.version)
        .collect();
    assert_eq!(versions, ["1.0.1-20261122_0500", "1.0.0-20261122_0400"]);
    assert!(
        matches!(cache.lookup("img", &first.key), Lookup::Found(r) if r.version == second.version)
    );

    let (a, _) = cache.create_log("img", "1.0.2-20261122_0600").unwrap();
    let (b, _) = cache.create_log("img", "1.0.2-20261122_0600").unwrap();
    assert_ne!(a, b);
    assert!(b.ends_with("1.0.2-20261122_0600.1.log"));
}
