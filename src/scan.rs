//! Scanning: role folders and input files turned into digests.
//!
//! A role tree is the list of its entries (path relative to the role folder, type, executable
//! bit, content digest, symlink target), sorted by path. Symlinks are recorded as links and never
//! followed. File digests come from a stat cache when a file's (device, inode, size, mtime,
//! ctime, mode) are exactly those seen when it was last hashed, as git's index does; any
//! difference means the file is read and hashed again. Entries whose mtime or ctime is within
//! [`RACY_WINDOW`] of the scan are not kept, so a write in the same clock tick as a scan is
//! never trusted (git's "racy clean" problem).
//!
//! The stat cache also keeps each folder's listing under the folder's own stamp, as git's
//! untracked cache does: creating, removing or renaming an entry changes a folder's mtime and
//! ctime, so a folder whose stamp is unchanged (and not racy) is not read again. Its files are
//! still `lstat`ed one by one, and a listing that turns out not to match (an entry gone or of
//! another type) is dropped and the folder read.

use std::collections::HashMap;
use std::fs;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

pub const RACY_WINDOW: Duration = Duration::from_secs(2);

/// One entry of a role tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub path: String,
    #[serde(flatten)]
    pub kind: EntryKind,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum EntryKind {
    File { exec: bool, blake3: String },
    Dir,
    Symlink { target: String },
}

/// A role folder's content, with its digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tree {
    pub entries: Vec<Entry>,
    pub digest: String,
}

impl Tree {
    /// Sorts the entries by path and computes the digest over a canonical encoding:
    /// `layer-tree-v1\0` then, per entry, `f` + exec flag + digest, `d`, or `l` + target,
    /// each followed by `\0` + path + `\0`.
    pub fn new(mut entries: Vec<Entry>) -> Tree {
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        // The encoding is built whole and hashed at once: blake3 is many times faster over
        // one buffer than over a hundred small updates per entry.
        let mut enc = Vec::with_capacity(16 + entries.len() * 128);
        enc.extend_from_slice(b"layer-tree-v1\0");
        for e in &entries {
            match &e.kind {
                EntryKind::File { exec, blake3 } => {
                    enc.extend_from_slice(if *exec { b"fx" } else { b"f-" });
                    enc.extend_from_slice(blake3.as_bytes());
                }
                EntryKind::Dir => {
                    enc.push(b'd');
                }
                EntryKind::Symlink { target } => {
                    enc.push(b'l');
                    enc.extend_from_slice(target.as_bytes());
                }
            }
            enc.push(0);
            enc.extend_from_slice(e.path.as_bytes());
            enc.push(0);
        }
        Tree {
            entries,
            digest: blake3::hash(&enc).to_hex().to_string(),
        }
    }
}

/// What changed for one path between two trees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileChange {
    Added,
    Removed,
    Content,
    /// The executable bit; `true` when it is now set.
    Mode(bool),
    Retarget {
        old: String,
        new: String,
    },
    Type {
        old: &'static str,
        new: &'static str,
    },
}

fn type_name(k: &EntryKind) -> &'static str {
    match k {
        EntryKind::File { .. } => "file",
        EntryKind::Dir => "folder",
        EntryKind::Symlink { .. } => "symlink",
    }
}

/// The differences between two trees, by path.
pub fn diff_trees(old: &Tree, new: &Tree) -> Vec<(String, FileChange)> {
    let old_map: HashMap<&str, &EntryKind> = old
        .entries
        .iter()
        .map(|e| (e.path.as_str(), &e.kind))
        .collect();
    let new_map: HashMap<&str, &EntryKind> = new
        .entries
        .iter()
        .map(|e| (e.path.as_str(), &e.kind))
        .collect();
    let mut out = Vec::new();
    for e in &new.entries {
        let change = match old_map.get(e.path.as_str()) {
            None => Some(FileChange::Added),
            Some(o) => match (o, &e.kind) {
                (
                    EntryKind::File {
                        exec: x1,
                        blake3: b1,
                    },
                    EntryKind::File {
                        exec: x2,
                        blake3: b2,
                    },
                ) => {
                    if b1 != b2 {
                        Some(FileChange::Content)
                    } else if x1 != x2 {
                        Some(FileChange::Mode(*x2))
                    } else {
                        None
                    }
                }
                (EntryKind::Symlink { target: t1 }, EntryKind::Symlink { target: t2 }) => {
                    (t1 != t2).then(|| FileChange::Retarget {
                        old: t1.clone(),
                        new: t2.clone(),
                    })
                }
                (EntryKind::Dir, EntryKind::Dir) => None,
                (o, n) => Some(FileChange::Type {
                    old: type_name(o),
                    new: type_name(n),
                }),
            },
        };
        if let Some(c) = change {
            out.push((e.path.clone(), c));
        }
    }
    for e in &old.entries {
        if !new_map.contains_key(e.path.as_str()) {
            out.push((e.path.clone(), FileChange::Removed));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

// ---------------------------------------------------------------------------------------------
// The stat cache.

/// What `lstat` says of a file, as far as it decides whether its digest can be reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
    pub mode: u32,
}

impl Stamp {
    /// From `lstat` as the walk calls it (`fstatat`): the same values as [`Stamp::of`].
    fn of_stat(st: &libc::stat64) -> Stamp {
        let ns = |s: i64, n: i64| s.saturating_mul(1_000_000_000).saturating_add(n);
        Stamp {
            dev: st.st_dev,
            ino: st.st_ino,
            size: st.st_size as u64,
            mtime_ns: ns(st.st_mtime, st.st_mtime_nsec),
            ctime_ns: ns(st.st_ctime, st.st_ctime_nsec),
            mode: st.st_mode,
        }
    }

    pub fn of(m: &fs::Metadata) -> Stamp {
        Stamp {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime_ns: m
                .mtime()
                .saturating_mul(1_000_000_000)
                .saturating_add(m.mtime_nsec()),
            ctime_ns: m
                .ctime()
                .saturating_mul(1_000_000_000)
                .saturating_add(m.ctime_nsec()),
            mode: m.mode(),
        }
    }
}

/// What the last scan saw, so the next one can skip work: absolute file path -> (stamp,
/// blake3), and absolute folder path -> (stamp, listing). Encoded by [`StatCache::encode`];
/// stored by `cache`.
///
/// Kept as its encoding (the bytes of the file) plus open-addressing tables of entry offsets,
/// so loading 100,000 entries is one read and one pass over them, with no allocation per entry,
/// and dropping it is a few frees.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatCache {
    /// `STAT_MAGIC`, the file count, the files, the folder count, the folders. A file: path
    /// length (u32), path bytes, stamp (dev, ino, size, mtime, ctime as u64, mode as u32),
    /// blake3 (32 bytes). A folder: path length, path, stamp, listing length (u32), listing
    /// (per entry a `DT_*` type byte, the name, a NUL). Little endian.
    bytes: Vec<u8>,
    files: Table,
    dirs: Table,
}

/// Offsets into `StatCache::bytes` of entries, by hash of their path; `EMPTY` marks a free
/// slot. Empty, or a power of two at least twice the number of entries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Table {
    slots: Vec<u32>,
    len: usize,
}

const STAT_MAGIC: &[u8; 12] = b"layer-stat\0\x02";
/// The first format: files only. Still read, so an upgrade re-lists folders but re-hashes
/// nothing.
const STAT_MAGIC_V1: &[u8; 12] = b"layer-stat\0\x01";
/// Bytes of a stamp: five u64 and the mode.
const STAMP_LEN: usize = 5 * 8 + 4;
const EMPTY: u32 = u32::MAX;

/// FxHash over 8-byte words with a splitmix64 finish: paths are not attacker-chosen (they are
/// the user's own files), so SipHash's flood resistance buys nothing here and costs a fifth of
/// a 100,000-file scan.
fn path_hash(b: &[u8]) -> u64 {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    let mut h: u64 = b.len() as u64;
    let mut chunks = b.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_le_bytes(c.try_into().expect("8 bytes"));
        h = (h.rotate_left(5) ^ w).wrapping_mul(K);
    }
    let mut last = [0u8; 8];
    let rest = chunks.remainder();
    last[..rest.len()].copy_from_slice(rest);
    h = (h.rotate_left(5) ^ u64::from_le_bytes(last)).wrapping_mul(K);
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

fn path_at(b: &[u8], at: u32) -> &[u8] {
    let at = at as usize;
    &b[at + 4..at + 4 + u32_at(b, at) as usize]
}

impl Stamp {
    fn encode(&self, out: &mut Vec<u8>) {
        for v in [
            self.dev,
            self.ino,
            self.size,
            self.mtime_ns as u64,
            self.ctime_ns as u64,
        ] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&self.mode.to_le_bytes());
    }

    fn decode(b: &[u8], at: usize) -> Stamp {
        Stamp {
            dev: u64_at(b, at),
            ino: u64_at(b, at + 8),
            size: u64_at(b, at + 16),
            mtime_ns: u64_at(b, at + 24) as i64,
            ctime_ns: u64_at(b, at + 32) as i64,
            mode: u32_at(b, at + 40),
        }
    }
}

impl Table {
    fn with_capacity(n: usize) -> Table {
        Table {
            slots: vec![EMPTY; (n * 2).next_power_of_two().max(16)],
            len: 0,
        }
    }

    /// Indexes the entry at `at` of `b`; a duplicate path replaces the earlier one.
    fn insert(&mut self, b: &[u8], at: u32) {
        let path = path_at(b, at);
        let mask = self.slots.len() - 1;
        let mut i = path_hash(path) as usize & mask;
        loop {
            match self.slots[i] {
                EMPTY => {
                    self.slots[i] = at;
                    self.len += 1;
                    return;
                }
                o if path_at(b, o) == path => {
                    self.slots[i] = at;
                    return;
                }
                _ => i = (i + 1) & mask,
            }
        }
    }

    /// The slot of `path` in the table over `b`, if it has one.
    fn find(&self, b: &[u8], path: &[u8]) -> Option<usize> {
        if self.slots.is_empty() {
            return None;
        }
        let mask = self.slots.len() - 1;
        let mut i = path_hash(path) as usize & mask;
        loop {
            match self.slots[i] {
                EMPTY => return None,
                o if path_at(b, o) == path => return Some(i),
                _ => i = (i + 1) & mask,
            }
        }
    }

    fn occupied(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.slots.len()).filter(|&i| self.slots[i] != EMPTY)
    }
}

/// A cached file: path, stamp, blake3.
pub type FileRecord<'p> = (&'p [u8], Stamp, [u8; 32]);
/// A cached folder: path, stamp, listing.
pub type DirRecord<'p> = (&'p [u8], Stamp, &'p [u8]);

/// Sorts by path and drops all but the last of each path.
fn last_per_path<T>(mut v: Vec<(&[u8], T)>) -> Vec<(&[u8], T)> {
    // Stable, so among duplicates the last stays last; keep it.
    v.sort_by(|a, b| a.0.cmp(b.0));
    let mut keep: Vec<(&[u8], T)> = Vec::with_capacity(v.len());
    for e in v {
        match keep.last_mut() {
            Some(last) if last.0 == e.0 => *last = e,
            _ => keep.push(e),
        }
    }
    keep
}

impl StatCache {
    /// A cache of these files and folders (a later duplicate path wins).
    pub fn from_entries<'p>(
        files: impl IntoIterator<Item = FileRecord<'p>>,
        dirs: impl IntoIterator<Item = DirRecord<'p>>,
    ) -> StatCache {
        let files = last_per_path(files.into_iter().map(|(p, s, h)| (p, (s, h))).collect());
        let dirs = last_per_path(dirs.into_iter().map(|(p, s, l)| (p, (s, l))).collect());
        let size: usize = files
            .iter()
            .map(|(p, _)| 4 + p.len() + STAMP_LEN + 32)
            .chain(
                dirs.iter()
                    .map(|(p, (_, l))| 8 + p.len() + STAMP_LEN + l.len()),
            )
            .sum();
        let mut out = Vec::with_capacity(STAT_MAGIC.len() + 16 + size);
        out.extend_from_slice(STAT_MAGIC);
        out.extend_from_slice(&(files.len() as u64).to_le_bytes());
        for (p, (s, h)) in &files {
            out.extend_from_slice(&(p.len() as u32).to_le_bytes());
            out.extend_from_slice(p);
            s.encode(&mut out);
            out.extend_from_slice(h);
        }
        out.extend_from_slice(&(dirs.len() as u64).to_le_bytes());
        for (p, (s, l)) in &dirs {
            out.extend_from_slice(&(p.len() as u32).to_le_bytes());
            out.extend_from_slice(p);
            s.encode(&mut out);
            out.extend_from_slice(&(l.len() as u32).to_le_bytes());
            out.extend_from_slice(l);
        }
        Self::try_decode(out).unwrap_or_default()
    }

    /// The number of files.
    pub fn len(&self) -> usize {
        self.files.len
    }

    pub fn is_empty(&self) -> bool {
        self.files.len == 0 && self.dirs.len == 0
    }

    /// The number of folders.
    pub fn dirs_len(&self) -> usize {
        self.dirs.len
    }

    /// The encoding, as `cache` stores it.
    pub fn encode(&self) -> Vec<u8> {
        self.as_bytes().to_vec()
    }

    pub fn as_bytes(&self) -> &[u8] {
        if self.bytes.is_empty() {
            // The empty cache: the magic and two counts of zero.
            return b"layer-stat\0\x02\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0";
        }
        &self.bytes
    }

    /// Anything malformed gives an empty cache: the stat cache only ever saves work.
    pub fn decode(bytes: &[u8]) -> StatCache {
        Self::try_decode(bytes.to_vec()).unwrap_or_default()
    }

    /// Like [`StatCache::decode`], taking ownership of the buffer (no copy).
    pub fn decode_owned(bytes: Vec<u8>) -> StatCache {
        Self::try_decode(bytes).unwrap_or_default()
    }

    fn try_decode(bytes: Vec<u8>) -> Option<StatCache> {
        let b = &bytes[..];
        let v1 = match b.get(..STAT_MAGIC.len())? {
            m if m == STAT_MAGIC => false,
            m if m == STAT_MAGIC_V1 => true,
            _ => return None,
        };
        if b.len() >= EMPTY as usize {
            return None;
        }
        let mut at = STAT_MAGIC.len();
        // A count, checked against the bytes left: every entry takes at least `min` of them.
        let count = |at: &mut usize, min: usize| -> Option<usize> {
            let n = u64::from_le_bytes(b.get(*at..*at + 8)?.try_into().ok()?);
            *at += 8;
            (n <= ((b.len() - *at) / min) as u64).then_some(n as usize)
        };
        let path_end = |at: usize| -> Option<usize> {
            let len = u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?) as usize;
            let end = at.checked_add(4 + len + STAMP_LEN)?;
            (end <= b.len()).then_some(end)
        };
        let n = count(&mut at, 4 + STAMP_LEN + 32)?;
        let mut files = Table::with_capacity(n);
        for _ in 0..n {
            let end = path_end(at)?.checked_add(32)?;
            if end > b.len() {
                return None;
            }
            files.insert(b, at as u32);
            at = end;
        }
        let mut dirs = Table::default();
        if !v1 {
            let n = count(&mut at, 8 + STAMP_LEN)?;
            dirs = Table::with_capacity(n);
            for _ in 0..n {
                let listing = path_end(at)?;
                let len = u32::from_le_bytes(b.get(listing..listing + 4)?.try_into().ok()?);
                let end = (listing + 4).checked_add(len as usize)?;
                if end > b.len() || !valid_listing(&b[listing + 4..end]) {
                    return None;
                }
                dirs.insert(b, at as u32);
                at = end;
            }
        }
        if at != b.len() {
            return None;
        }
        Some(StatCache { bytes, files, dirs })
    }

    /// The file in slot `i` of the file table.
    fn file(&self, i: usize) -> FileRecord<'_> {
        let b = &self.bytes;
        let path = path_at(b, self.files.slots[i]);
        let at = self.files.slots[i] as usize + 4 + path.len();
        let hash = b[at + STAMP_LEN..at + STAMP_LEN + 32]
            .try_into()
            .expect("32 bytes");
        (path, Stamp::decode(b, at), hash)
    }

    /// The folder in slot `i` of the folder table.
    fn dir(&self, i: usize) -> DirRecord<'_> {
        let b = &self.bytes;
        let path = path_at(b, self.dirs.slots[i]);
        let at = self.dirs.slots[i] as usize + 4 + path.len();
        let len = u32_at(b, at + STAMP_LEN) as usize;
        let listing = &b[at + STAMP_LEN + 4..at + STAMP_LEN + 4 + len];
        (path, Stamp::decode(b, at), listing)
    }

    /// The stamp and digest recorded for the file at `path` (absolute).
    pub fn get(&self, path: &Path) -> Option<(Stamp, [u8; 32])> {
        let i = self
            .files
            .find(&self.bytes, path.as_os_str().as_encoded_bytes())?;
        let (_, s, h) = self.file(i);
        Some((s, h))
    }

    /// The stamp and listing recorded for the folder at `path` (absolute).
    pub fn get_dir(&self, path: &Path) -> Option<(Stamp, &[u8])> {
        let i = self
            .dirs
            .find(&self.bytes, path.as_os_str().as_encoded_bytes())?;
        let (_, s, l) = self.dir(i);
        Some((s, l))
    }
}

/// Whether `l` is a listing as [`sys::Dir::list`] writes it: entries of a type byte and a
/// non-empty name without `/`, each ending in a NUL.
fn valid_listing(mut l: &[u8]) -> bool {
    while let Some((_, rest)) = l.split_first() {
        let Some(end) = rest.iter().position(|&c| c == 0) else {
            return false;
        };
        let name = &rest[..end];
        if name.is_empty() || name == b"." || name == b".." || name.contains(&b'/') {
            return false;
        }
        l = &rest[end + 1..];
    }
    true
}

/// A file hashed (or re-hashed) by this run, for the next stat cache.
type Fresh = (Vec<u8>, Stamp, [u8; 32]);
/// A folder listed by this run: path, stamp, listing.
type FreshDir = (Vec<u8>, Stamp, Vec<u8>);

/// Hashes files through a stat cache, noting which entries it used for the next cache.
///
/// A hit marks its slot of the old cache (a flag: no lock, no allocation); files read
/// and folders listed this run are collected per role tree and merged in once. When every old
/// entry was hit and nothing was read or listed, [`Hasher::finish`] knows the cache is
/// unchanged without building anything.
pub struct Hasher<'a> {
    old: &'a StatCache,
    /// By slot of `old.files` / `old.dirs`: whether this run reused the entry.
    used_files: Vec<AtomicBool>,
    used_dirs: Vec<AtomicBool>,
    /// Whether anything makes the next cache differ from `old`: a file read or folder listed,
    /// or an entry left out because it is racy.
    dirty: AtomicBool,
    fresh: Mutex<(Vec<Fresh>, Vec<FreshDir>)>,
    racy_after_ns: i64,
}

impl<'a> Hasher<'a> {
    pub fn new(old: &'a StatCache) -> Self {
        Self::new_at(old, SystemTime::now())
    }

    /// A hasher for a scan that starts at `now` (racy entries are those of its last
    /// [`RACY_WINDOW`]).
    fn new_at(old: &'a StatCache, now: SystemTime) -> Self {
        let now = now.duration_since(UNIX_EPOCH).unwrap_or_default();
        let racy_after_ns = now.saturating_sub(RACY_WINDOW).as_nanos() as i64;
        let flags = |t: &Table| (0..t.slots.len()).map(|_| AtomicBool::new(false)).collect();
        Hasher {
            old,
            used_files: flags(&old.files),
            used_dirs: flags(&old.dirs),
            dirty: AtomicBool::new(false),
            fresh: Mutex::new(Default::default()),
            racy_after_ns,
        }
    }

    /// Whether `s` is too recent to vouch for content: a change in the same clock tick as the
    /// scan would not show in it.
    fn racy(&self, s: &Stamp) -> bool {
        s.mtime_ns >= self.racy_after_ns || s.ctime_ns >= self.racy_after_ns
    }

    /// Notes that the entry in `slot` of `used` was reused.
    fn hit(&self, used: &[AtomicBool], slot: usize, stamp: &Stamp) {
        if self.racy(stamp) {
            // Cannot happen unless the clock went back; never keep such an entry.
            self.dirty.store(true, Ordering::Relaxed);
        } else if !used[slot].load(Ordering::Relaxed) {
            // A plain store: no read-modify-write, and no shared counter for the two threads
            // to fight over (hits are counted once, in `finish`).
            used[slot].store(true, Ordering::Relaxed);
        }
    }

    /// The digest the old cache holds for the file at `path` (absolute, as bytes) if its stamp
    /// is exactly `stamp`.
    fn cached(&self, path: &[u8], stamp: &Stamp) -> Option<[u8; 32]> {
        let i = self.old.files.find(&self.old.bytes, path)?;
        let (_, s, h) = self.old.file(i);
        if s != *stamp {
            return None;
        }
        self.hit(&self.used_files, i, stamp);
        Some(h)
    }

    /// The listing the old cache holds for the folder at `path` (absolute, as bytes) if its
    /// stamp is exactly `stamp` and not racy: adding, removing or renaming an entry changes a
    /// folder's mtime and ctime.
    fn cached_listing(&self, path: &[u8], stamp: &Stamp) -> Option<&'a [u8]> {
        let old: &'a StatCache = self.old;
        let i = old.dirs.find(&old.bytes, path)?;
        let (_, s, listing) = old.dir(i);
        if s != *stamp || self.racy(stamp) {
            return None;
        }
        self.hit(&self.used_dirs, i, stamp);
        Some(listing)
    }

    /// Reads and hashes the regular file at `path`; returns the entry for the next cache
    /// unless the file is racy.
    fn read(&self, path: &Path, stamp: &Stamp) -> Result<([u8; 32], Option<Fresh>)> {
        self.dirty.store(true, Ordering::Relaxed);
        let hash = hash_file(path, stamp.size)?;
        let fresh = (!self.racy(stamp))
            .then(|| (path.as_os_str().as_encoded_bytes().to_vec(), *stamp, hash));
        Ok((hash, fresh))
    }

    fn add_fresh(&self, files: Vec<Fresh>, dirs: Vec<FreshDir>) {
        if files.is_empty() && dirs.is_empty() {
            return;
        }
        self.dirty.store(true, Ordering::Relaxed);
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
        let (files, dirs) = self.fresh.into_inner().expect("no panics while locked");
        let hits = |used: &[AtomicBool]| used.iter().filter(|u| u.load(Ordering::Relaxed)).count();
        let unchanged = !self.dirty.into_inner()
            && files.is_empty()
            && dirs.is_empty()
            && hits(&self.used_files) == self.old.files.len
            && hits(&self.used_dirs) == self.old.dirs.len;
        if unchanged {
            return None;
        }
        let (old, used_files, used_dirs) = (self.old, self.used_files, self.used_dirs);
        let kept_files = old
            .files
            .occupied()
            .filter(|&i| used_files[i].load(Ordering::Relaxed))
            .map(|i| old.file(i));
        let kept_dirs = old
            .dirs
            .occupied()
            .filter(|&i| used_dirs[i].load(Ordering::Relaxed))
            .map(|i| old.dir(i));
        Some(StatCache::from_entries(
            kept_files.chain(files.iter().map(|(p, s, h)| (&p[..], *s, *h))),
            kept_dirs.chain(dirs.iter().map(|(p, s, l)| (&p[..], *s, &l[..]))),
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

/// Scans the folder `dir` (absolute; `rel` is how messages name it) into a tree. The folder
/// itself may be a link (resolved by the caller's checks); nothing inside it is followed.
///
/// The walk is sequential (callers scan many trees in parallel). A folder whose stamp is the
/// one the stat cache recorded with its listing is not read again (git's untracked cache):
/// adding, removing or renaming an entry changes the folder's mtime and ctime. Every file is
/// still `lstat`ed, and read unless the stat cache vouches for it; those reads run in parallel.
pub fn scan_tree(dir: &Path, rel: &str, hasher: &Hasher) -> Result<Tree> {
    let mut walk = Walk {
        hasher,
        rel_root: rel,
        abs: dir.as_os_str().as_encoded_bytes().to_vec(),
        rel: String::new(),
        scratch: Vec::new(),
        cpath: Vec::new(),
        entries: Vec::new(),
        misses: Vec::new(),
        listed: Vec::new(),
    };
    let root = sys::Dir::open(dir).map_err(|e| Error::io(dir, e))?;
    let stamp = Stamp::of_stat(&root.stat_self().map_err(|e| Error::io(dir, e))?);
    walk.dir(&root, 0, stamp, true)?;
    let Walk {
        mut entries,
        misses,
        listed,
        ..
    } = walk;
    let mut fresh = Vec::new();
    if !misses.is_empty() {
        let read = misses
            .into_par_iter()
            .map(|(path, abs, stamp)| {
                let (hash, fresh) = hasher.read(&abs, &stamp)?;
                Ok((file_entry(path, &stamp, hash), fresh))
            })
            .collect::<Result<Vec<_>>>()?;
        fresh.reserve(read.len());
        for (e, f) in read {
            entries.push(e);
            fresh.extend(f);
        }
    }
    hasher.add_fresh(fresh, listed);
    Ok(Tree::new(entries))
}

fn file_entry(path: String, stamp: &Stamp, hash: [u8; 32]) -> Entry {
    Entry {
        path,
        kind: EntryKind::File {
            exec: stamp.mode & 0o100 != 0,
            blake3: blake3::Hash::from(hash).to_hex().to_string(),
        },
    }
}

/// One tree's walk: the absolute and relative paths of the folder being read, kept in buffers
/// that grow and shrink as the walk descends, so no entry costs a path allocation beyond its
/// own name in the tree.
struct Walk<'a, 'h> {
    hasher: &'a Hasher<'h>,
    rel_root: &'a str,
    abs: Vec<u8>,
    rel: String,
    /// Where folder listings are read into.
    scratch: Vec<u8>,
    /// Where paths passed to the kernel are built.
    cpath: Vec<u8>,
    entries: Vec<Entry>,
    /// Files to read: path in the tree, absolute path, stamp.
    misses: Vec<(String, PathBuf, Stamp)>,
    /// Folders read by this walk, for the next stat cache.
    listed: Vec<FreshDir>,
}

/// The entries of a listing as [`sys::Dir::list`] writes it: type byte and name.
fn listing_entries(listing: &[u8]) -> impl Iterator<Item = (u8, &[u8])> {
    let mut rest = listing;
    std::iter::from_fn(move || {
        let (&t, after) = rest.split_first()?;
        let end = after
            .iter()
            .position(|&c| c == 0)
            .expect("listings end names");
        rest = &after[end + 1..];
        Some((t, &after[..end]))
    })
}

/// How walking a folder's entries ended.
enum Walked {
    Done,
    /// A cached listing no longer matches the folder (an entry is gone or changed type, which
    /// its stamp should have shown): the folder must be read.
    Stale,
}

impl Walk<'_, '_> {
    fn abs_path(&self) -> PathBuf {
        PathBuf::from(std::ffi::OsStr::from_bytes(&self.abs))
    }

    /// The current path relative to the folder `base` (opened where `self.rel` was
    /// `base_len` long), NUL-terminated, in `self.cpath`.
    fn cpath(&mut self, base_len: usize) -> &std::ffi::CStr {
        let rel = self.rel[base_len..].trim_start_matches('/');
        self.cpath.clear();
        self.cpath.extend_from_slice(rel.as_bytes());
        self.cpath.push(0);
        std::ffi::CStr::from_bytes_with_nul(&self.cpath).expect("names hold no NUL")
    }

    /// Walks the folder at `self.abs`, whose stamp is `stamp`. `base` is the open folder that
    /// paths are resolved from: the folder itself when `is_base`, otherwise an ancestor,
    /// opened where `self.rel` was `base_len` long.
    ///
    /// A folder the stat cache has a listing for is not read, and is opened only when that
    /// saves work: when it holds two or more files, each then `stat`ed by its name alone.
    /// Folders that only lead to others (`files/usr/local/share`) are not opened at all; their
    /// entries are `stat`ed by a path from the nearest open folder above.
    fn dir(&mut self, base: &sys::Dir, base_len: usize, stamp: Stamp, is_base: bool) -> Result<()> {
        if let Some(listing) = self.hasher.cached_listing(&self.abs, &stamp) {
            let mark = (self.entries.len(), self.misses.len());
            let files = listing_entries(listing)
                .filter(|(t, _)| *t == libc::DT_REG || *t == libc::DT_UNKNOWN)
                .take(2)
                .count();
            let walked = if is_base || files < 2 {
                self.entries_of(base, base_len, listing, true)?
            } else {
                match base.open_at(self.cpath(base_len)) {
                    Ok(d) => self.entries_of(&d, self.rel.len(), listing, true)?,
                    Err(_) => Walked::Stale,
                }
            };
            match walked {
                Walked::Done => return Ok(()),
                Walked::Stale => {
                    self.entries.truncate(mark.0);
                    self.misses.truncate(mark.1);
                }
            }
        }
        // `stamp` was taken before the folder is opened and read: should the folder change in
        // between, the listing is kept under a stamp that the next run will not see again.
        let opened;
        let (d, d_len) = if is_base {
            (base, base_len)
        } else {
            let c = self.cpath(base_len);
            opened = base.open_at(c).map_err(|e| Error::io(self.abs_path(), e))?;
            (&opened, self.rel.len())
        };
        let mut listing = Vec::new();
        d.list(&mut self.scratch, &mut listing)
            .map_err(|e| Error::io(self.abs_path(), e))?;
        self.entries_of(d, d_len, &listing, false)?;
        // Kept only once walked without error, so a cached listing holds valid names.
        if !self.hasher.racy(&stamp) {
            self.listed.push((self.abs.clone(), stamp, listing));
        }
        Ok(())
    }

    /// Walks the entries of `listing`, the current folder's; `cached` when the listing comes
    /// from the stat cache rather than from reading the folder.
    fn entries_of(
        &mut self,
        base: &sys::Dir,
        base_len: usize,
        listing: &[u8],
        cached: bool,
    ) -> Result<Walked> {
        for (t, name) in listing_entries(listing) {
            let (abs_len, rel_len) = (self.abs.len(), self.rel.len());
            let walked = self.entry(base, base_len, t, name, cached);
            self.abs.truncate(abs_len);
            self.rel.truncate(rel_len);
            if let Walked::Stale = walked? {
                return Ok(Walked::Stale);
            }
        }
        Ok(Walked::Done)
    }

    /// One entry of the current folder: the type byte of its listing and its name.
    fn entry(
        &mut self,
        base: &sys::Dir,
        base_len: usize,
        t: u8,
        name: &[u8],
        cached: bool,
    ) -> Result<Walked> {
        // A failure on an entry of a cached listing means the listing is out of date.
        macro_rules! io {
            ($e:expr) => {
                match $e {
                    Ok(v) => v,
                    Err(_) if cached => return Ok(Walked::Stale),
                    Err(e) => return Err(Error::io(self.abs_path(), e)),
                }
            };
        }
        let listed = sys::Kind::of_dt(t);
        self.abs.push(b'/');
        self.abs.extend_from_slice(name);
        let Ok(name_str) = std::str::from_utf8(name) else {
            let shown = String::from_utf8_lossy(name);
            let path = if self.rel.is_empty() {
                format!("{}/{shown}", self.rel_root)
            } else {
                format!("{}/{}/{shown}", self.rel_root, self.rel)
            };
            return Err(Error::Input {
                path,
                message: "file name is not valid UTF-8".into(),
                hint: Some("rename the file".into()),
            });
        };
        if !self.rel.is_empty() {
            self.rel.push('/');
        }
        self.rel.push_str(name_str);
        // The listing's type saves a stat for links; files and folders need theirs for the
        // stat cache anyway.
        let mut st = None;
        let kind = match listed {
            sys::Kind::Unknown | sys::Kind::File | sys::Kind::Dir => {
                let c = self.cpath(base_len);
                let s = io!(base.stat(c));
                let k = sys::Kind::of_mode(s.st_mode);
                if cached && !matches!(listed, sys::Kind::Unknown) && k != listed {
                    return Ok(Walked::Stale);
                }
                st = Some(s);
                k
            }
            k => k,
        };
        match kind {
            sys::Kind::File => {
                let stamp = Stamp::of_stat(st.as_ref().expect("files are stat'ed"));
                match self.hasher.cached(&self.abs, &stamp) {
                    Some(hash) => self
                        .entries
                        .push(file_entry(self.rel.clone(), &stamp, hash)),
                    None => self.misses.push((self.rel.clone(), self.abs_path(), stamp)),
                }
            }
            sys::Kind::Dir => {
                let stamp = Stamp::of_stat(st.as_ref().expect("folders are stat'ed"));
                self.entries.push(Entry {
                    path: self.rel.clone(),
                    kind: EntryKind::Dir,
                });
                self.dir(base, base_len, stamp, false)?;
            }
            sys::Kind::Symlink => {
                let c = self.cpath(base_len);
                let target = io!(base.read_link(c));
                let Ok(target) = String::from_utf8(target) else {
                    return Err(Error::Input {
                        path: format!("{}/{}", self.rel_root, self.rel),
                        message: "symlink target is not valid UTF-8".into(),
                        hint: None,
                    });
                };
                self.entries.push(Entry {
                    path: self.rel.clone(),
                    kind: EntryKind::Symlink { target },
                });
            }
            sys::Kind::Other | sys::Kind::Unknown => {
                if cached {
                    return Ok(Walked::Stale);
                }
                return Err(Error::Input {
                    path: format!("{}/{}", self.rel_root, self.rel),
                    message: "is neither a file, a folder nor a symlink".into(),
                    hint: Some(
                        "remove it: sockets, fifos and devices cannot be part of a role".into(),
                    ),
                });
            }
        }
        Ok(Walked::Done)
    }
}

/// Folders read relative to an open folder (`openat`, `fstatat`, `readlinkat`): an entry costs
/// the kernel one path component to resolve rather than the whole absolute path, and folders
/// below the root are opened with `O_NOFOLLOW`, so a link swapped in for a folder during the
/// walk is an error rather than followed.
mod sys {
    use std::ffi::{CStr, CString};
    use std::io;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::os::unix::ffi::OsStrExt;
    use std::path::Path;

    #[derive(Clone, Copy, PartialEq, Eq)]
    pub enum Kind {
        File,
        Dir,
        Symlink,
        /// Sockets, fifos, devices.
        Other,
        /// The file system does not give types in listings: `stat` tells.
        Unknown,
    }

    impl Kind {
        /// The kind a listing's `DT_*` byte names.
        pub fn of_dt(t: u8) -> Kind {
            match t {
                libc::DT_REG => Kind::File,
                libc::DT_DIR => Kind::Dir,
                libc::DT_LNK => Kind::Symlink,
                libc::DT_UNKNOWN => Kind::Unknown,
                _ => Kind::Other,
            }
        }

        pub fn of_mode(mode: libc::mode_t) -> Kind {
            match mode & libc::S_IFMT {
                libc::S_IFREG => Kind::File,
                libc::S_IFDIR => Kind::Dir,
                libc::S_IFLNK => Kind::Symlink,
                _ => Kind::Other,
            }
        }
    }

    /// An open folder.
    pub struct Dir(OwnedFd);

    impl Dir {
        /// Opens the folder `path`, following a link there.
        pub fn open(path: &Path) -> io::Result<Dir> {
            let c = CString::new(path.as_os_str().as_bytes())?;
            // SAFETY: `c` is a valid NUL-terminated string.
            let fd = unsafe {
                libc::open(
                    c.as_ptr(),
                    libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
                )
            };
            Self::from_fd(fd)
        }

        /// Opens the folder at `path` below this one, never through a link at its end.
        pub fn open_at(&self, path: &CStr) -> io::Result<Dir> {
            // SAFETY: the fd is open for as long as `self`; `name` is NUL-terminated.
            let fd = unsafe {
                libc::openat(
                    self.fd(),
                    path.as_ptr(),
                    libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                )
            };
            Self::from_fd(fd)
        }

        fn from_fd(fd: libc::c_int) -> io::Result<Dir> {
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: `fd` was just opened and is owned by nothing else.
            Ok(Dir(unsafe { OwnedFd::from_raw_fd(fd) }))
        }

        fn fd(&self) -> libc::c_int {
            self.0.as_raw_fd()
        }

        /// Appends every entry but `.` and `..` to `out` as a type byte (`DT_*`), the name and
        /// a NUL. `scratch` is a buffer to read into, reused across calls. `getdents64`
        /// straight into it: `readdir` would add an `fstat` and an `fcntl` per folder.
        pub fn list(&self, scratch: &mut Vec<u8>, out: &mut Vec<u8>) -> io::Result<()> {
            scratch.resize(32 << 10, 0);
            loop {
                // SAFETY: `scratch` is writable for its length; the fd is an open folder.
                let n = unsafe {
                    libc::syscall(
                        libc::SYS_getdents64,
                        self.fd(),
                        scratch.as_mut_ptr(),
                        scratch.len(),
                    )
                };
                if n < 0 {
                    return Err(io::Error::last_os_error());
                }
                if n == 0 {
                    return Ok(());
                }
                // Records: d_ino (8 bytes), d_off (8), d_reclen (2), d_type (1), d_name (NUL
                // terminated, padded to d_reclen).
                let mut b = &scratch[..n as usize];
                while b.len() >= 19 {
                    let reclen = u16::from_ne_bytes([b[16], b[17]]) as usize;
                    if reclen < 19 || reclen > b.len() {
                        return Err(io::Error::other("malformed folder listing"));
                    }
                    let name = CStr::from_bytes_until_nul(&b[19..reclen])
                        .map_err(|_| io::Error::other("malformed folder listing"))?
                        .to_bytes();
                    if name != b"." && name != b".." {
                        out.push(b[18]);
                        out.extend_from_slice(name);
                        out.push(0);
                    }
                    b = &b[reclen..];
                }
            }
        }

        /// `fstat` of the folder itself.
        pub fn stat_self(&self) -> io::Result<libc::stat64> {
            let mut st = std::mem::MaybeUninit::<libc::stat64>::uninit();
            // SAFETY: `st` is written by a successful call; the fd is open.
            if unsafe { libc::fstat64(self.fd(), st.as_mut_ptr()) } != 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: the call succeeded.
            Ok(unsafe { st.assume_init() })
        }

        /// `lstat` of the entry `name`.
        pub fn stat(&self, name: &CStr) -> io::Result<libc::stat64> {
            let mut st = std::mem::MaybeUninit::<libc::stat64>::uninit();
            // SAFETY: `st` is written by a successful call; the fd and `name` are valid.
            let r = unsafe {
                libc::fstatat64(
                    self.fd(),
                    name.as_ptr(),
                    st.as_mut_ptr(),
                    libc::AT_SYMLINK_NOFOLLOW,
                )
            };
            if r != 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: the call succeeded.
            Ok(unsafe { st.assume_init() })
        }

        /// The target of the link `name`.
        pub fn read_link(&self, name: &CStr) -> io::Result<Vec<u8>> {
            let mut buf = vec![0u8; 256];
            loop {
                // SAFETY: `buf` is writable for its length; the fd and `name` are valid.
                let n = unsafe {
                    libc::readlinkat(self.fd(), name.as_ptr(), buf.as_mut_ptr().cast(), buf.len())
                };
                if n < 0 {
                    return Err(io::Error::last_os_error());
                }
                let n = n as usize;
                if n < buf.len() {
                    buf.truncate(n);
                    return Ok(buf);
                }
                // Possibly cut short: try again with more room.
                buf.resize(buf.len() * 4, 0);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, exec: bool, content: &str) -> Entry {
        Entry {
            path: path.into(),
            kind: EntryKind::File {
                exec,
                blake3: blake3::hash(content.as_bytes()).to_hex().to_string(),
            },
        }
    }

    #[test]
    fn digest_ignores_entry_order_and_sees_every_attribute() {
        let a = Tree::new(vec![file("b", false, "1"), file("a", false, "2")]);
        let b = Tree::new(vec![file("a", false, "2"), file("b", false, "1")]);
        assert_eq!(a.digest, b.digest);
        let mode = Tree::new(vec![file("a", true, "2"), file("b", false, "1")]);
        assert_ne!(a.digest, mode.digest);
        let link = |t: &str| {
            Tree::new(vec![Entry {
                path: "l".into(),
                kind: EntryKind::Symlink { target: t.into() },
            }])
        };
        assert_ne!(link("x").digest, link("y").digest);
        let dir = Tree::new(vec![Entry {
            path: "l".into(),
            kind: EntryKind::Dir,
        }]);
        assert_ne!(dir.digest, link("").digest);
    }

    #[test]
    fn tree_diff_names_each_kind_of_change() {
        let old = Tree::new(vec![
            file("a", false, "1"),
            file("b", false, "1"),
            file("c", false, "1"),
        ]);
        let new = Tree::new(vec![
            file("a", true, "1"),
            file("b", false, "2"),
            file("d", false, "1"),
        ]);
        assert_eq!(
            diff_trees(&old, &new),
            vec![
                ("a".to_string(), FileChange::Mode(true)),
                ("b".to_string(), FileChange::Content),
                ("c".to_string(), FileChange::Removed),
                ("d".to_string(), FileChange::Added),
            ]
        );
    }

    /// Scans `dir` through `cache` as if long after its files were written (nothing racy);
    /// returns the tree and the next cache, if it changed.
    fn scan_with(dir: &Path, cache: &StatCache) -> (Tree, Option<StatCache>) {
        let later = SystemTime::now() + Duration::from_secs(3600);
        let hasher = Hasher::new_at(cache, later);
        let tree = scan_tree(dir, "roles/r", &hasher).unwrap();
        (tree, hasher.finish())
    }

    fn paths(t: &Tree) -> Vec<&str> {
        t.entries.iter().map(|e| e.path.as_str()).collect()
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
        assert_eq!(cache.len(), 5);
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
        let (stamp, _) = cache.get_dir(&etc).unwrap();
        let files: Vec<_> = cache.files.occupied().map(|i| cache.file(i)).collect();
        let mut dirs: Vec<_> = cache.dirs.occupied().map(|i| cache.dir(i)).collect();
        let etc_bytes = etc.as_os_str().as_encoded_bytes();
        let bogus = b"\x08a.conf\0\x08b.conf\0\x08ghost\0".to_vec();
        dirs.retain(|d| d.0 != etc_bytes);
        dirs.push((etc_bytes, stamp, &bogus));
        let broken = StatCache::from_entries(files, dirs);
        let (recovered, next) = scan_with(dir, &broken);
        assert_eq!(recovered, scan_with(dir, &StatCache::default()).0);
        assert!(!paths(&recovered).iter().any(|p| p.ends_with("ghost")));
        let fixed = next.expect("the listing is replaced");
        assert_eq!(
            fixed.get_dir(&etc).unwrap().1,
            cache.get_dir(&etc).unwrap().1
        );
    }

    #[test]
    fn stat_cache_round_trips_and_rejects_garbage() {
        let s = Stamp {
            dev: 1,
            ino: 2,
            size: 3,
            mtime_ns: 4,
            ctime_ns: -5,
            mode: 0o100644,
        };
        let t = Stamp { ino: 9, ..s };
        let c = StatCache::from_entries(
            [
                (&b"/a/b"[..], s, [7; 32]),
                (&b"/a/c"[..], s, [8; 32]),
                (&b"/a/b"[..], t, [9; 32]),
            ],
            [(&b"/a"[..], t, &b"\x08b\0\x08c\0"[..])],
        );
        assert_eq!((c.len(), c.dirs_len()), (2, 1));
        assert_eq!(c.get(Path::new("/a/b")), Some((t, [9; 32])));
        assert_eq!(c.get(Path::new("/a/c")), Some((s, [8; 32])));
        assert_eq!(c.get(Path::new("/a")), None);
        assert_eq!(
            c.get_dir(Path::new("/a")),
            Some((t, &b"\x08b\0\x08c\0"[..]))
        );
        let bytes = c.encode();
        assert_eq!(StatCache::decode(&bytes), c);
        assert!(StatCache::decode(&StatCache::default().encode()).is_empty());
        // The first format (files only) is still read.
        let mut v1 = STAT_MAGIC_V1.to_vec();
        v1.extend_from_slice(
            &bytes[STAT_MAGIC.len()..bytes.len() - 8 - (4 + 2 + STAMP_LEN + 4 + 6)],
        );
        let old = StatCache::decode(&v1);
        assert_eq!((old.len(), old.dirs_len()), (2, 0));
        assert_eq!(old.get(Path::new("/a/b")), Some((t, [9; 32])));
        // A listing must be well formed.
        let mut bad = bytes.clone();
        let n = bad.len();
        bad[n - 1] = b'x';
        assert!(StatCache::decode(&bad).is_empty());
        assert_eq!(
            StatCache::decode(&bytes[..bytes.len() - 1]),
            StatCache::default()
        );
        assert_eq!(StatCache::decode(b"garbage"), StatCache::default());
    }
}

/// What key computation needs from the file system.
#[derive(Debug, Default)]
pub struct Scanned {
    /// Role name -> tree.
    pub trees: std::collections::BTreeMap<String, Tree>,
    /// Origin name -> blake3 of its file (`busybox`, `tar` in the project).
    pub origin_files: std::collections::BTreeMap<String, String>,
    /// Project-relative path -> blake3, for files that backends run.
    pub backend_files: std::collections::BTreeMap<String, String>,
}

/// Scans every role folder, the files of the origins images use, and the project files
/// backends run. Roles are scanned in parallel.
pub fn scan_project(project: &crate::model::Project, hasher: &Hasher) -> Result<Scanned> {
    use crate::model::OriginSource;
    let root = &project.root;
    let trees = project
        .roles
        .par_iter()
        .map(|(name, role)| {
            Ok((
                name.clone(),
                scan_tree(&root.join(&role.dir), &role.dir, hasher)?,
            ))
        })
        .collect::<Result<_>>()?;

    let hash_hex = |path: &Path| -> std::io::Result<String> {
        let meta = fs::metadata(path)?;
        if !meta.is_file() {
            return Err(std::io::Error::other("not a regular file"));
        }
        let h = hasher.file(path, &meta).map_err(|e| match e {
            Error::Io { source, .. } => source,
            other => std::io::Error::other(other.to_string()),
        })?;
        Ok(blake3::Hash::from(h).to_hex().to_string())
    };

    let mut origin_files = std::collections::BTreeMap::new();
    let used: std::collections::BTreeSet<&str> =
        project.images.iter().filter_map(|i| i.origin()).collect();
    for name in used {
        let (path, shown, hint) = match &project.origins[name].source {
            OriginSource::Busybox { path } => (
                path.clone(),
                path.display().to_string(),
                "install a static busybox (`apt-get install busybox-static`) or point `busybox` at one",
            ),
            OriginSource::TarFile { path } => {
                (root.join(path), path.clone(), "add the tarball to the project, or fix the path in `layer.toml`")
            }
            _ => continue,
        };
        // A `tar` path inside the project must not lead outside it through a link.
        if matches!(project.origins[name].source, OriginSource::TarFile { .. }) {
            if let Ok(real) = path.canonicalize() {
                if !real.starts_with(root) {
                    return Err(Error::Input {
                        path: crate::model::PROJECT_FILE.into(),
                        message: format!("origin `{name}`: `{shown}` leads outside the project"),
                        hint: Some("keep origin tarballs inside the project".into()),
                    });
                }
            }
        }
        let digest = hash_hex(&path).map_err(|e| Error::Input {
            path: crate::model::PROJECT_FILE.into(),
            message: format!("origin `{name}`: cannot read `{shown}`: {e}"),
            hint: Some(hint.into()),
        })?;
        origin_files.insert(name.to_string(), digest);
    }

    let mut backend_files = std::collections::BTreeMap::new();
    for backend in project.backends.values() {
        for f in backend.project_files() {
            let path = root.join(f);
            if let Ok(real) = path.canonicalize() {
                if !real.starts_with(root) {
                    return Err(Error::Input {
                        path: crate::model::PROJECT_FILE.into(),
                        message: format!(
                            "backend `{}`: `{f}` leads outside the project",
                            backend.name
                        ),
                        hint: Some("keep backend scripts and templates inside the project".into()),
                    });
                }
            }
            // A missing script is reported when the backend runs; its absence is still an input.
            let digest = hash_hex(&path).unwrap_or_else(|_| "missing".into());
            backend_files.insert(f.to_string(), digest);
        }
    }
    Ok(Scanned {
        trees,
        origin_files,
        backend_files,
    })
}
