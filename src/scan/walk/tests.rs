//! The walk: listings reused only while their folder is unchanged, links never followed,
//! and tree memos used only while every entry is the stat cache's.

use std::fs;
use std::time::{Duration, SystemTime};

use super::*;
use crate::scan::StatCache;

/// `scan` of `dir` through `cache` as if long after its files were written (nothing racy);
/// returns what it found and the next cache, if it changed.
fn through<T>(
    dir: &Path,
    cache: &StatCache,
    scan: impl Fn(&Path, &str, &Hasher) -> Result<T>,
) -> (T, Option<StatCache>) {
    let later = SystemTime::now() + Duration::from_secs(3600);
    let hasher = Hasher::new_at(cache, later);
    let found = scan(dir, "roles/r", &hasher).unwrap();
    (found, hasher.finish())
}

/// [`scan_tree`] through `cache`, as [`through`] does.
fn scan_with(dir: &Path, cache: &StatCache) -> (Tree, Option<StatCache>) {
    through(dir, cache, scan_tree)
}

/// `cache` with the listing of the folder `dir` replaced by `listing`, under the stamp it
/// recorded: a listing that lies about its folder although the folder's stamp matches.
fn with_listing(cache: &StatCache, dir: &Path, listing: &[u8]) -> StatCache {
    let (stamp, _) = cache.get_dir(dir).unwrap();
    let files: Vec<_> = cache.files().map(|i| cache.file(i)).collect();
    let mut dirs: Vec<_> = cache.dirs().map(|i| cache.dir(i)).collect();
    let at = dir.as_os_str().as_encoded_bytes();
    dirs.retain(|d| d.0 != at);
    dirs.push((at, stamp, listing));
    StatCache::from_entries(files, dirs)
}

fn paths(t: &Tree) -> Vec<&str> {
    t.entries.iter().map(|e| e.path.as_str()).collect()
}

#[test]
fn a_roles_tests_and_declaration_are_not_looked_at() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    fs::write(dir.join("provision.sh"), "echo 1").unwrap();
    let (bare, _) = scan_with(dir, &StatCache::default());
    // A FIFO in `tests/` would fail a walk that looked at it, and `role.toml` would be
    // read; a `tests` or `role.toml` below the top is part of the tree.
    fs::create_dir_all(dir.join("tests")).unwrap();
    fs::write(dir.join("tests/check.sh"), "true").unwrap();
    let fifo = std::ffi::CString::new(dir.join("tests/pipe").into_os_string().into_encoded_bytes())
        .unwrap();
    // SAFETY: a NUL-terminated path and a mode.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    fs::write(dir.join("role.toml"), "").unwrap();
    let (with, cache) = scan_with(dir, &StatCache::default());
    assert_eq!(with, bare);
    assert_eq!(cache.unwrap().len(), 1, "only provision.sh was read");
    fs::create_dir_all(dir.join("files/tests")).unwrap();
    fs::write(dir.join("files/role.toml"), "").unwrap();
    let (deeper, _) = scan_with(dir, &StatCache::default());
    assert_eq!(
        paths(&deeper),
        ["files", "files/role.toml", "files/tests", "provision.sh"]
    );
}

#[test]
fn a_folder_opened_first_that_is_now_a_link_is_seen_as_one() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    fs::create_dir_all(dir.join("files/real")).unwrap();
    fs::write(dir.join("files/real/a"), "a").unwrap();
    fs::write(dir.join("files/real/b"), "b").unwrap();
    std::os::unix::fs::symlink("real", dir.join("files/etc")).unwrap();
    let (truth, cache) = scan_with(dir, &StatCache::default());
    let cache = cache.unwrap();
    // A listing of `files` under its current stamp that says `etc` is a folder (as if it
    // were replaced by a link without the folder's times changing): the walk opens `etc`
    // first, `O_NOFOLLOW` refuses the link, and the listing is found out of date.
    let files_dir = dir.join("files");
    let broken = with_listing(&cache, &files_dir, b"\x04etc\0\x04real\0");
    let (seen, next) = scan_with(dir, &broken);
    assert_eq!(seen, truth);
    assert!(paths(&seen).contains(&"files/etc"));
    assert!(
        !paths(&seen).contains(&"files/etc/a"),
        "the link is not followed"
    );
    let fixed = next.expect("the listing is replaced");
    assert_eq!(
        fixed.get_dir(&files_dir).unwrap().1,
        cache.get_dir(&files_dir).unwrap().1
    );
}

#[test]
fn folder_listings_are_reused_only_while_their_folder_is_unchanged() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    fs::create_dir_all(dir.join("files/usr/share")).unwrap();
    fs::create_dir_all(dir.join("files/etc")).unwrap();
    fs::write(dir.join("role.toml"), "").unwrap();
    fs::write(dir.join("provision.sh"), "echo 1").unwrap();
    fs::write(dir.join("files/etc/a.conf"), "a").unwrap();
    fs::write(dir.join("files/etc/b.conf"), "b").unwrap();
    fs::write(dir.join("files/usr/share/c"), "c").unwrap();
    std::os::unix::fs::symlink("../etc/a.conf", dir.join("files/usr/link")).unwrap();

    let (first, cache) = scan_with(dir, &StatCache::default());
    let cache = cache.expect("a first scan fills the cache");
    assert_eq!(cache.dirs_len(), 5);
    // `role.toml` is left out of the tree, so not looked at: four files.
    assert_eq!(cache.len(), 4);
    // Nothing changed: same tree, nothing to save.
    let (again, next) = scan_with(dir, &cache);
    assert_eq!(again, first);
    assert!(next.is_none());

    // A file added to a folder changes the folder's stamp: it is read again.
    fs::write(dir.join("files/usr/share/d"), "d").unwrap();
    let (added, next) = scan_with(dir, &cache);
    assert!(paths(&added).contains(&"files/usr/share/d"));
    assert_eq!(
        added,
        Tree::new(scan_with(dir, &StatCache::default()).0.entries)
    );
    let cache = next.expect("a new listing and file are saved");

    // A changed file is hashed again even though its folder is unchanged.
    fs::write(dir.join("files/etc/a.conf"), "A").unwrap();
    let (changed, _) = scan_with(dir, &cache);
    assert_ne!(changed.digest, added.digest);
    assert_eq!(changed, scan_with(dir, &StatCache::default()).0);

    // A listing that does not match its folder although the stamp does (a file system
    // that did not update the folder's times) is noticed when an entry is missing or of
    // another type, and the folder is read.
    let etc = dir.join("files/etc");
    let broken = with_listing(&cache, &etc, b"\x08a.conf\0\x08b.conf\0\x08ghost\0");
    let (recovered, next) = scan_with(dir, &broken);
    assert_eq!(recovered, scan_with(dir, &StatCache::default()).0);
    assert!(!paths(&recovered).iter().any(|p| p.ends_with("ghost")));
    let fixed = next.expect("the listing is replaced");
    assert_eq!(
        fixed.get_dir(&etc).unwrap().1,
        cache.get_dir(&etc).unwrap().1
    );
}

/// [`scan_known`] through `cache`, as [`through`] does.
fn known_with(dir: &Path, cache: &StatCache) -> (Scan, Option<StatCache>) {
    through(dir, cache, scan_known)
}

fn unchanged(scan: &Scan) -> Option<&str> {
    match scan {
        Scan::Unchanged(digest) => Some(digest),
        Scan::Tree(_) => None,
    }
}

#[test]
fn a_tree_memo_stands_only_while_every_entry_is_the_stat_caches() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    fs::create_dir_all(dir.join("files/etc/conf.d")).unwrap();
    fs::write(dir.join("provision.sh"), "echo 1").unwrap();
    fs::write(dir.join("files/etc/conf.d/a.conf"), "a").unwrap();
    fs::write(dir.join("files/etc/conf.d/b.conf"), "b").unwrap();
    let (first, cache) = scan_with(dir, &StatCache::default());
    let cache = cache.unwrap();
    assert_eq!(cache.memo_count(), 1, "a whole walk leaves a memo");

    // Unchanged: the digest alone, and nothing for the next cache.
    let (scan, next) = known_with(dir, &cache);
    assert_eq!(unchanged(&scan), Some(first.digest.as_str()));
    assert!(next.is_none());
    // A whole walk of the same folder keeps the memo as it is.
    assert!(scan_with(dir, &cache).1.is_none());

    // A changed file: the whole tree, its memo replaced, then the digest alone again.
    fs::write(dir.join("files/etc/conf.d/a.conf"), "A").unwrap();
    let (scan, next) = known_with(dir, &cache);
    let Scan::Tree(changed) = scan else {
        panic!("a changed file is not vouched for")
    };
    assert_eq!(changed, scan_with(dir, &StatCache::default()).0);
    let cache = next.expect("the file and the memo are saved");
    assert_eq!(cache.memo_count(), 1);
    assert_eq!(
        unchanged(&known_with(dir, &cache).0),
        Some(changed.digest.as_str())
    );

    // A file added below: its folder is read, so the whole tree.
    fs::write(dir.join("files/etc/conf.d/c.conf"), "c").unwrap();
    let (scan, next) = known_with(dir, &cache);
    let Scan::Tree(added) = scan else {
        panic!("a new file is not vouched for")
    };
    assert!(paths(&added).contains(&"files/etc/conf.d/c.conf"));
    let cache = next.unwrap();

    // A memo that does not count the tree's entries is not used.
    let d = cache.find_dir(dir.as_os_str().as_encoded_bytes()).unwrap();
    let (_, n, h) = cache.memo(d).unwrap();
    let files: Vec<_> = cache.files().map(|i| cache.file(i)).collect();
    let dirs: Vec<_> = cache.dirs().map(|i| cache.dir(i)).collect();
    let root = dir.as_os_str().as_encoded_bytes();
    let miscounted = StatCache::with_memos(files, dirs, [(root, n + 1, h)]);
    assert!(unchanged(&known_with(dir, &miscounted).0).is_none());

    // A tree with a link has no memo: the stat cache holds no link targets.
    std::os::unix::fs::symlink("conf.d/a.conf", dir.join("files/etc/a")).unwrap();
    let (_, next) = known_with(dir, &cache);
    let cache = next.unwrap();
    assert_eq!(cache.memo_count(), 0);
    let (scan, next) = known_with(dir, &cache);
    assert!(unchanged(&scan).is_none());
    assert!(next.is_none(), "nothing changed, so nothing to save");
}
