//! File digests through the stat cache: [`Hasher`] reuses a digest when a file's stamp is the
//! one recorded with it and is not racy, reads and hashes the file otherwise, and gathers what
//! the next stat cache keeps; [`hash_file`] is blake3 over a file's content.

use std::borrow::Cow;
use std::fs;
use std::io::Read;
use std::ops::Range;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::quiet::Quiet;
use super::stat_cache::{Stamp, StatCache};
use crate::error::{Error, Result};

/// A file or folder whose mtime or ctime is less than this before the start of a scan (or
/// after it) is not kept in the stat cache: a change in the same clock tick as the scan would
/// not show in its stamp.
pub const RACY_WINDOW: Duration = Duration::from_secs(2);

/// A file hashed (or re-hashed) by this run, for the next stat cache.
pub(super) type Fresh = (Vec<u8>, Stamp, [u8; 32]);
/// A folder listed by this run: path, stamp, listing.
pub(super) type FreshDir = (Vec<u8>, Stamp, Vec<u8>);
/// A role folder walked whole by this run: path, number of entries, tree digest.
pub(super) type FreshMemo = (Vec<u8>, u32, [u8; 32]);

/// Hashes files through a stat cache, noting which entries it used for the next cache.
///
/// A hit marks its slot of the old cache (a flag: no lock, no allocation); files read
/// and folders listed this run are collected per role tree and merged in once. When every old
/// entry was hit and nothing was read or listed, [`Hasher::finish`] knows the cache is
/// unchanged without building anything.
pub struct Hasher<'a> {
    old: &'a StatCache,
    /// By slot of the old cache's file and folder tables: whether this run reused the entry.
    used_files: Vec<AtomicBool>,
    used_dirs: Vec<AtomicBool>,
    /// By number of the old cache's tree memos: whether this run reused the memo.
    used_memos: Vec<AtomicBool>,
    fresh: Mutex<(Vec<Fresh>, Vec<FreshDir>, Vec<FreshMemo>)>,
    racy_after_ns: i64,
    /// What a live `layer watch` vouches for, when one does ([`Hasher::with_quiet`]).
    quiet: Option<&'a Quiet>,
}

impl<'a> Hasher<'a> {
    /// A hasher for a scan that starts now, reusing what `old` recorded.
    pub fn new(old: &'a StatCache) -> Self {
        Self::new_at(old, SystemTime::now())
    }

    /// A hasher for a scan that starts at `now` (racy entries are those of its last
    /// [`RACY_WINDOW`]).
    pub(super) fn new_at(old: &'a StatCache, now: SystemTime) -> Self {
        let now = now.duration_since(UNIX_EPOCH).unwrap_or_default();
        let racy_after_ns = now.saturating_sub(RACY_WINDOW).as_nanos() as i64;
        let flags = |slots: usize| (0..slots).map(|_| AtomicBool::new(false)).collect();
        Hasher {
            old,
            used_files: flags(old.file_slots()),
            used_dirs: flags(old.dir_slots()),
            used_memos: flags(old.memo_count()),
            fresh: Mutex::new(Default::default()),
            racy_after_ns,
            quiet: None,
        }
    }

    /// This hasher, taking the stamps and listings of the folders `quiet` vouches for from
    /// the stat cache instead of asking the file system.
    pub fn with_quiet(mut self, quiet: &'a Quiet) -> Self {
        self.quiet = Some(quiet);
        self
    }

    /// Whether a live watcher vouches that nothing at, above or below the folder `path`
    /// (absolute, as bytes) changed since the stat cache was taken.
    pub(super) fn vouched(&self, path: &[u8]) -> bool {
        self.quiet.is_some_and(|q| q.vouches(path))
    }

    /// For the file `name` at `path` in a vouched-for folder (`files` what is left of its
    /// records, as for [`Hasher::cached_next`]): the stamp and digest the stat cache recorded.
    pub(super) fn quiet_file(
        &self,
        files: &mut Range<usize>,
        name: &[u8],
        path: &[u8],
    ) -> Option<(Stamp, [u8; 32])> {
        let i = match self.old.next_file(files, name) {
            Some(i) => i,
            None => self.old.find_file(path)?,
        };
        let (s, h) = self.old.file_stamp(i);
        if self.racy(&s) {
            return None;
        }
        self.hit(&self.used_files, i, &s);
        Some((s, h))
    }

    /// For a vouched-for folder (its record `d`): the stamp the stat cache recorded with its
    /// listing.
    pub(super) fn quiet_dir_stamp(&self, d: Option<usize>) -> Option<Stamp> {
        Some(self.old.dir(d?).1)
    }

    /// For a vouched-for folder (its record `d`): the listing the stat cache recorded, and the
    /// records of its files.
    pub(super) fn quiet_listing(&self, d: Option<usize>) -> Option<(&'a [u8], Range<usize>)> {
        let old: &'a StatCache = self.old;
        let d = d?;
        let (_, s, listing) = old.dir(d);
        if self.racy(&s) {
            return None;
        }
        self.hit(&self.used_dirs, d, &s);
        Some((listing, old.dir_files(d)))
    }

    /// The old cache's record of the folder at `path` (absolute, as bytes), if it has one: the
    /// walk looks a folder up once and hands the record to the questions below.
    pub(super) fn dir_record(&self, path: &[u8]) -> Option<usize> {
        self.old.find_dir(path)
    }

    /// The listing of folder record `d`, whatever its stamp: what the walk will find there if
    /// nothing changed.
    pub(super) fn listing(&self, d: usize) -> &'a [u8] {
        let old: &'a StatCache = self.old;
        old.dir(d).2
    }

    /// The tree memo of folder record `d` (a role's folder): its number, the number of
    /// entries and the digest of the tree the last whole walk found there.
    pub(super) fn tree_memo(&self, d: Option<usize>) -> Option<(usize, u32, [u8; 32])> {
        self.old.memo(d?)
    }

    /// Notes that tree memo `m` was reused: the tree is the one it names.
    pub(super) fn memo_used(&self, m: usize) {
        self.used_memos[m].store(true, Ordering::Relaxed);
    }

    /// Adds the tree memo of a role folder walked whole to the next cache.
    pub(super) fn add_memo(&self, memo: FreshMemo) {
        self.fresh
            .lock()
            .expect("no panics while locked")
            .2
            .push(memo);
    }

    /// Whether `s` is too recent to vouch for content: a change in the same clock tick as the
    /// scan would not show in it.
    pub(super) fn racy(&self, s: &Stamp) -> bool {
        s.mtime_ns >= self.racy_after_ns || s.ctime_ns >= self.racy_after_ns
    }

    /// Notes that the entry in `slot` of `used` was reused.
    fn hit(&self, used: &[AtomicBool], slot: usize, stamp: &Stamp) {
        // A racy entry (the clock went back) is not marked: `finish` then drops it.
        if !self.racy(stamp) && !used[slot].load(Ordering::Relaxed) {
            // A plain store: no read-modify-write, and no shared counter for the two threads
            // to fight over (hits are counted once, in `finish`).
            used[slot].store(true, Ordering::Relaxed);
        }
    }

    /// The digest the old cache holds for the file at `path` (absolute, as bytes) if its stamp
    /// is exactly `stamp`.
    pub(super) fn cached(&self, path: &[u8], stamp: &Stamp) -> Option<[u8; 32]> {
        self.file_hit(self.old.find_file(path)?, stamp)
    }

    /// The digest of file record `i` if its stamp is exactly `stamp`.
    fn file_hit(&self, i: usize, stamp: &Stamp) -> Option<[u8; 32]> {
        let (s, h) = self.old.file_stamp(i);
        if s != *stamp {
            return None;
        }
        self.hit(&self.used_files, i, stamp);
        Some(h)
    }

    /// The listing the old cache holds for the folder of record `d` if its stamp is exactly
    /// `stamp` and not racy (adding, removing or renaming an entry changes a folder's mtime
    /// and ctime), and the records of its files, for [`Hasher::cached_next`].
    pub(super) fn cached_listing(
        &self,
        d: Option<usize>,
        stamp: &Stamp,
    ) -> Option<(&'a [u8], Range<usize>)> {
        let old: &'a StatCache = self.old;
        let i = d?;
        let (_, s, listing) = old.dir(i);
        if s != *stamp || self.racy(stamp) {
            return None;
        }
        self.hit(&self.used_dirs, i, stamp);
        Some((listing, old.dir_files(i)))
    }

    /// [`Hasher::cached`] of the file `name` at `path` in a folder whose cached listing is
    /// being walked, `files` what is left of its records: the file's record is most often the
    /// next one, found without hashing its path.
    pub(super) fn cached_next(
        &self,
        files: &mut Range<usize>,
        name: &[u8],
        path: &[u8],
        stamp: &Stamp,
    ) -> Option<[u8; 32]> {
        let i = match self.old.next_file(files, name) {
            Some(i) => i,
            None => self.old.find_file(path)?,
        };
        self.file_hit(i, stamp)
    }

    /// Reads and hashes the regular file at `path`; returns the entry for the next cache
    /// unless the file is racy. A read alone changes nothing in the next cache: a racy file
    /// is not kept, and an old record of the file, not being used, is dropped (`finish` sees
    /// it). So a plan run again and again within the racy window of an edit does not rewrite
    /// the whole stat cache each time (25 ms of a 90 ms plan at 1,000 images).
    pub(super) fn read(&self, path: &Path, stamp: &Stamp) -> Result<([u8; 32], Option<Fresh>)> {
        let hash = hash_file(path, stamp.size)?;
        let fresh = (!self.racy(stamp))
            .then(|| (path.as_os_str().as_encoded_bytes().to_vec(), *stamp, hash));
        Ok((hash, fresh))
    }

    /// Adds files read and folders listed by one walk to the next cache.
    pub(super) fn add_fresh(&self, files: Vec<Fresh>, dirs: Vec<FreshDir>) {
        if files.is_empty() && dirs.is_empty() {
            return;
        }
        let mut f = self.fresh.lock().expect("no panics while locked");
        f.0.extend(files);
        f.1.extend(dirs);
    }

    /// The blake3 of the regular file at `path` (absolute), whose `lstat` is `meta`.
    pub fn file(&self, path: &Path, meta: &fs::Metadata) -> Result<[u8; 32]> {
        let stamp = Stamp::of(meta);
        if let Some(h) = self.cached(path.as_os_str().as_encoded_bytes(), &stamp) {
            return Ok(h);
        }
        let (hash, fresh) = self.read(path, &stamp)?;
        self.add_fresh(fresh.into_iter().collect(), Vec::new());
        Ok(hash)
    }

    /// The cache for the next run, or `None` when it would be the one this run started with.
    pub fn finish(self) -> Option<StatCache> {
        let (files, dirs, memos) = self.fresh.into_inner().expect("no panics while locked");
        let hits = |used: &[AtomicBool]| used.iter().filter(|u| u.load(Ordering::Relaxed)).count();
        // Unchanged when nothing was added and every old entry was used: a file read again, a
        // folder listed again or a racy entry leaves its old record unused.
        let unchanged = files.is_empty()
            && dirs.is_empty()
            && memos.is_empty()
            && hits(&self.used_files) == self.old.len()
            && hits(&self.used_dirs) == self.old.dirs_len()
            && hits(&self.used_memos) == self.old.memo_count();
        if unchanged {
            return None;
        }
        let (old, used_files, used_dirs) = (self.old, self.used_files, self.used_dirs);
        // A reused memo is kept with its folder (dropped with it when the folder's listing
        // is not kept).
        let kept_memos = (0..old.memo_count())
            .filter(|&m| self.used_memos[m].load(Ordering::Relaxed))
            .map(|m| {
                let (d, n, h) = old.memo_at(m);
                (old.dir(d).0, n, h)
            });
        let kept_files = old
            .files()
            .filter(|&i| used_files[i].load(Ordering::Relaxed))
            .map(|i| old.file(i));
        let kept_dirs = old
            .dirs()
            .filter(|&i| used_dirs[i].load(Ordering::Relaxed))
            .map(|i| old.dir(i));
        Some(StatCache::with_memos(
            kept_files.chain(
                files
                    .iter()
                    .map(|(p, s, h)| (Cow::Borrowed(&p[..]), *s, *h)),
            ),
            kept_dirs.chain(dirs.iter().map(|(p, s, l)| (&p[..], *s, &l[..]))),
            kept_memos.chain(memos.iter().map(|(p, n, h)| (&p[..], *n, *h))),
        ))
    }
}

/// blake3 of a file's content.
pub fn hash_file(path: &Path, len: u64) -> Result<[u8; 32]> {
    let mut h = blake3::Hasher::new();
    if len > 8 << 20 {
        h.update_mmap_rayon(path).map_err(|e| Error::io(path, e))?;
    } else {
        let mut f = fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let mut buf = Vec::with_capacity(len as usize + 1);
        f.read_to_end(&mut buf).map_err(|e| Error::io(path, e))?;
        h.update(&buf);
    }
    Ok(*h.finalize().as_bytes())
}
