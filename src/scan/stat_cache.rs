//! The stat cache: what the last scan saw, so the next one can skip work. A file's digest is
//! kept under its [`Stamp`]; a folder's listing under the folder's own. [`StatCache`] is kept
//! as the bytes of its file format (read and written by `cache`), looked up in place; a
//! listing is a type byte (`DT_*`), a name and a NUL per entry.

use std::borrow::Cow;
use std::collections::HashMap;
use std::ffi::CStr;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use rustix::fs::Stat;

use crate::fsutil::FileBytes;

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
    /// From `lstat` as the walk calls it (`statat`): the same values as [`Stamp::of`].
    // The field types of `Stat` differ between architectures; the casts are no-ops on some.
    #[allow(clippy::unnecessary_cast)]
    pub fn of_stat(st: &Stat) -> Stamp {
        let ns = |s: i64, n: i64| s.saturating_mul(1_000_000_000).saturating_add(n);
        Stamp {
            dev: st.st_dev as u64,
            ino: st.st_ino as u64,
            size: st.st_size as u64,
            mtime_ns: ns(st.st_mtime as i64, st.st_mtime_nsec as i64),
            ctime_ns: ns(st.st_ctime as i64, st.st_ctime_nsec as i64),
            mode: st.st_mode as u32,
        }
    }

    /// From `std`'s `lstat` ([`fs::symlink_metadata`]) or `stat`.
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
/// Kept as its encoding, the bytes of the file, and looked up in place: fixed-size records,
/// names stored once per folder (a file's name is the one in its folder's listing), and the
/// open-addressing tables of both kinds of record stored with them, each slot a record number
/// and a tag of its path's hash. Loading 100,000 entries is one read and one pass that checks
/// every offset; nothing is allocated per entry, nor hashed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatCache {
    /// `STAT_MAGIC`, the header, the folder records, the file records, the file table, the
    /// folder table, the tree memos, the blob (below). Empty for the empty cache.
    bytes: FileBytes,
    /// Where the parts start in `bytes`, and their sizes, as the header gives them.
    layout: Layout,
}

/// The parts of an encoding. Little endian throughout:
///
/// - header: file count, folder count, folders with a listing, file slots, folder slots, tree
///   memos, blob length (u32 each);
/// - a folder record (`DIR_REC` bytes): path offset and length in the blob, stamp, listing
///   offset and length (`NO_LISTING` as the length: a folder known only as the one its files
///   are in, whose stamp means nothing), the number of its first file record and how many;
/// - a file record (`FILE_REC` bytes): its folder's record number, name offset and length in
///   the blob (most often inside the folder's listing), stamp, blake3. Its path is the
///   folder's, a `/` and the name. A folder's files are consecutive records, in the order of
///   its listing (those it does not list after), so a walk of a listing finds each file's
///   record next to the last one's ([`StatCache::next_file`]);
/// - a slot (`SLOT` bytes): a record number (`EMPTY` for a free slot) and the high half of the
///   hash of its path ([`path_hash`]); a table is empty or a power of two at least twice its
///   records, so a probe ends at a free slot;
/// - a tree memo (`MEMO_REC` bytes): the record number of a role's folder, the number of
///   entries of its tree and the tree's digest, as the last walk of the whole folder found
///   them; sorted by folder ([`StatCache::memo`]);
/// - the blob: folder paths, listings (per entry a `DT_*` type byte, the name, a NUL), and the
///   names of files whose folder has no listing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Layout {
    files: usize,
    dirs: usize,
    listed: usize,
    file_table: usize,
    dir_table: usize,
    dirs_at: usize,
    files_at: usize,
    file_table_at: usize,
    dir_table_at: usize,
    memos: usize,
    memos_at: usize,
    blob_at: usize,
}

const STAT_MAGIC: &[u8; 12] = b"layer-stat\0\x05";
/// Bytes of the header after the magic: seven u32.
const HEADER: usize = 7 * 4;
/// Bytes of a stamp: five u64 and the mode.
const STAMP_LEN: usize = 5 * 8 + 4;
const DIR_REC: usize = 8 + STAMP_LEN + 8 + 8;
const FILE_REC: usize = 12 + STAMP_LEN + 32;
const SLOT: usize = 8;
const MEMO_REC: usize = 8 + 32;
/// The empty cache: the magic and a header of zeros.
const EMPTY_CACHE: [u8; 12 + HEADER] = {
    let mut b = [0; 12 + HEADER];
    let mut i = 0;
    while i < STAT_MAGIC.len() {
        b[i] = STAT_MAGIC[i];
        i += 1;
    }
    b
};
const EMPTY: u32 = u32::MAX;
const NO_LISTING: u32 = u32::MAX;

/// `FxHash` over 8-byte words with a splitmix64 finish: paths are not attacker-chosen (they are
/// the user's own files), so `SipHash`'s flood resistance buys nothing here and costs a fifth of
/// a 100,000-file scan. Part of the format: the tables stored in the file are by it.
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

fn put32(out: &mut Vec<u8>, v: usize) {
    out.extend_from_slice(&(v as u32).to_le_bytes());
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

/// An open-addressing table of `n` records by the hash of their paths.
fn table(n: usize, hashes: impl Iterator<Item = u64>) -> Vec<(u32, u32)> {
    if n == 0 {
        return Vec::new();
    }
    let mut slots = vec![(EMPTY, 0); (n * 2).next_power_of_two().max(16)];
    let mask = slots.len() - 1;
    for (r, h) in hashes.enumerate() {
        let mut i = h as usize & mask;
        while slots[i].0 != EMPTY {
            i = (i + 1) & mask;
        }
        slots[i] = (r as u32, (h >> 32) as u32);
    }
    slots
}

/// A folder as it is encoded: path, stamp, listing (`None`: known only as its files' folder).
type Folder<'p> = (&'p [u8], Stamp, Option<&'p [u8]>);

/// A cached file: path, stamp, blake3.
pub type FileRecord<'p> = (Cow<'p, [u8]>, Stamp, [u8; 32]);
/// A cached folder: path, stamp, listing.
pub type DirRecord<'p> = (&'p [u8], Stamp, &'p [u8]);
/// A tree memo: the path of a role's folder, the number of entries of its tree, the tree's
/// digest.
pub(super) type TreeMemo<'p> = (&'p [u8], u32, [u8; 32]);

/// Sorts by path and drops all but the last of each path.
fn last_per_path<P: AsRef<[u8]>, T>(mut v: Vec<(P, T)>) -> Vec<(P, T)> {
    // Stable, so among duplicates the last stays last; keep it.
    v.sort_by(|a, b| a.0.as_ref().cmp(b.0.as_ref()));
    let mut keep: Vec<(P, T)> = Vec::with_capacity(v.len());
    for e in v {
        match keep.last_mut() {
            Some(last) if last.0.as_ref() == e.0.as_ref() => *last = e,
            _ => keep.push(e),
        }
    }
    keep
}

impl StatCache {
    /// A cache of these files and folders (a later duplicate path wins; a file path without
    /// a `/` is left out).
    pub fn from_entries<'p>(
        files: impl IntoIterator<Item = FileRecord<'p>>,
        dirs: impl IntoIterator<Item = DirRecord<'p>>,
    ) -> StatCache {
        Self::with_memos(files, dirs, [])
    }

    /// [`StatCache::from_entries`] with tree memos (a later duplicate folder wins; a memo of
    /// a folder without a listing here is left out).
    pub(super) fn with_memos<'p>(
        files: impl IntoIterator<Item = FileRecord<'p>>,
        dirs: impl IntoIterator<Item = DirRecord<'p>>,
        memos: impl IntoIterator<Item = TreeMemo<'p>>,
    ) -> StatCache {
        let files = last_per_path(
            files
                .into_iter()
                .filter(|(p, _, _)| p.contains(&b'/'))
                .map(|(p, s, h)| (p, (s, h)))
                .collect(),
        );
        let listed = last_per_path(dirs.into_iter().map(|(p, s, l)| (p, (s, l))).collect());
        // Folders: those with a listing, then those known only as their files' folder.
        let mut dirs: Vec<Folder> = listed
            .iter()
            .map(|(p, (s, l))| (*p, *s, Some(*l)))
            .collect();
        let mut dir_of: HashMap<&[u8], usize> = HashMap::with_capacity(dirs.len());
        for (i, d) in dirs.iter().enumerate() {
            dir_of.insert(d.0, i);
        }
        let no_stamp = Stamp {
            dev: 0,
            ino: 0,
            size: 0,
            mtime_ns: 0,
            ctime_ns: 0,
            mode: 0,
        };
        let file_dirs: Vec<(usize, &[u8])> = files
            .iter()
            .map(|(p, _)| {
                let cut = p
                    .iter()
                    .rposition(|&c| c == b'/')
                    .expect("kept paths have a /");
                let dir = &p[..cut];
                let d = *dir_of.entry(dir).or_insert_with(|| {
                    dirs.push((dir, no_stamp, None));
                    dirs.len() - 1
                });
                (d, &p[cut + 1..])
            })
            .collect();
        // The blob: folder paths and listings; a file's name is found in its folder's listing.
        let mut blob = Vec::new();
        let mut dir_recs = Vec::with_capacity(dirs.len() * DIR_REC);
        let mut names: HashMap<(usize, &[u8]), usize> = HashMap::with_capacity(files.len());
        for (d, (path, stamp, listing)) in dirs.iter().enumerate() {
            put32(&mut dir_recs, blob.len());
            put32(&mut dir_recs, path.len());
            blob.extend_from_slice(path);
            stamp.encode(&mut dir_recs);
            match listing {
                Some(l) => {
                    put32(&mut dir_recs, blob.len());
                    put32(&mut dir_recs, l.len());
                    let base = blob.len();
                    blob.extend_from_slice(l);
                    let mut at = base;
                    for (_, name) in listing_entries(l) {
                        names.insert((d, name), at + 1);
                        at += name.len() + 2;
                    }
                }
                None => {
                    put32(&mut dir_recs, 0);
                    put32(&mut dir_recs, NO_LISTING as usize);
                }
            }
            // Its files' records, filled in below.
            put32(&mut dir_recs, 0);
            put32(&mut dir_recs, 0);
        }
        // Where each file's name is: in its folder's listing, else added to the blob. Offsets
        // in a listing follow its order, and added names come after every listing, so files
        // ordered by (folder, offset) are each folder's in the order of its listing.
        let name_at: Vec<usize> = file_dirs
            .iter()
            .map(|&(d, name)| match names.get(&(d, name)) {
                Some(&at) => at,
                None => {
                    blob.extend_from_slice(name);
                    blob.len() - name.len()
                }
            })
            .collect();
        let mut order: Vec<usize> = (0..files.len()).collect();
        order.sort_unstable_by_key(|&f| (file_dirs[f].0, name_at[f]));
        let mut counts = vec![0usize; dirs.len()];
        for &(d, _) in &file_dirs {
            counts[d] += 1;
        }
        let mut first = 0;
        for (rec, n) in dir_recs.chunks_exact_mut(DIR_REC).zip(counts) {
            rec[DIR_REC - 8..DIR_REC - 4].copy_from_slice(&(first as u32).to_le_bytes());
            rec[DIR_REC - 4..].copy_from_slice(&(n as u32).to_le_bytes());
            first += n;
        }
        let mut file_recs = Vec::with_capacity(files.len() * FILE_REC);
        for &f in &order {
            let ((_, (stamp, hash)), (d, name)) = (&files[f], file_dirs[f]);
            put32(&mut file_recs, d);
            put32(&mut file_recs, name_at[f]);
            put32(&mut file_recs, name.len());
            stamp.encode(&mut file_recs);
            file_recs.extend_from_slice(hash);
        }
        let mut memo_recs: Vec<(usize, u32, [u8; 32])> = memos
            .into_iter()
            .filter_map(|(p, n, d)| Some((*dir_of.get(p).filter(|&&i| i < listed.len())?, n, d)))
            .collect();
        // Stable, so among duplicates the last stays last; keep it.
        memo_recs.sort_by_key(|m| m.0);
        let mut memo_bytes: Vec<u8> = Vec::with_capacity(memo_recs.len() * MEMO_REC);
        for (i, &(d, n, digest)) in memo_recs.iter().enumerate() {
            if memo_recs.get(i + 1).is_some_and(|next| next.0 == d) {
                continue;
            }
            put32(&mut memo_bytes, d);
            put32(&mut memo_bytes, n as usize);
            memo_bytes.extend_from_slice(&digest);
        }
        let file_table = table(files.len(), order.iter().map(|&f| path_hash(&files[f].0)));
        let dir_table = table(listed.len(), listed.iter().map(|(p, _)| path_hash(p)));
        let size = STAT_MAGIC.len()
            + HEADER
            + dir_recs.len()
            + file_recs.len()
            + (file_table.len() + dir_table.len()) * SLOT
            + memo_bytes.len()
            + blob.len();
        if size >= EMPTY as usize {
            return StatCache::default();
        }
        let mut out = Vec::with_capacity(size);
        out.extend_from_slice(STAT_MAGIC);
        for n in [
            files.len(),
            dirs.len(),
            listed.len(),
            file_table.len(),
            dir_table.len(),
            memo_bytes.len() / MEMO_REC,
            blob.len(),
        ] {
            put32(&mut out, n);
        }
        out.extend_from_slice(&dir_recs);
        out.extend_from_slice(&file_recs);
        for (r, tag) in file_table.iter().chain(&dir_table) {
            out.extend_from_slice(&r.to_le_bytes());
            out.extend_from_slice(&tag.to_le_bytes());
        }
        out.extend_from_slice(&memo_bytes);
        out.extend_from_slice(&blob);
        Self::try_decode(out.into()).unwrap_or_default()
    }

    /// The number of files.
    pub fn len(&self) -> usize {
        self.layout.files
    }

    /// Whether it holds neither files nor folders.
    pub fn is_empty(&self) -> bool {
        self.layout.files == 0 && self.layout.listed == 0
    }

    /// The number of folders (with a listing).
    pub fn dirs_len(&self) -> usize {
        self.layout.listed
    }

    /// The encoding, as `cache` stores it.
    pub fn encode(&self) -> Vec<u8> {
        self.as_bytes().to_vec()
    }

    /// The encoding, borrowed.
    pub fn as_bytes(&self) -> &[u8] {
        if self.bytes.is_empty() {
            return &EMPTY_CACHE;
        }
        &self.bytes
    }

    /// Anything malformed, or of another format, gives an empty cache: the stat cache only
    /// ever saves work.
    pub fn decode(bytes: &[u8]) -> StatCache {
        Self::try_decode(bytes.to_vec().into()).unwrap_or_default()
    }

    /// Like [`StatCache::decode`], taking ownership of the bytes (no copy).
    pub fn decode_owned(bytes: impl Into<FileBytes>) -> StatCache {
        Self::try_decode(bytes.into()).unwrap_or_default()
    }

    /// Checks every offset, length, record number and listing, so that lookups index the
    /// bytes without checks.
    fn try_decode(bytes: FileBytes) -> Option<StatCache> {
        let b = &bytes[..];
        if b.get(..STAT_MAGIC.len())? != STAT_MAGIC || b.len() >= EMPTY as usize {
            return None;
        }
        let h = STAT_MAGIC.len();
        let n = |i: usize| -> Option<usize> {
            Some(u32::from_le_bytes(b.get(h + 4 * i..h + 4 * i + 4)?.try_into().ok()?) as usize)
        };
        let (files, dirs, listed, file_slots, dir_slots, memos, blob_len) =
            (n(0)?, n(1)?, n(2)?, n(3)?, n(4)?, n(5)?, n(6)?);
        let dirs_at = h + HEADER;
        let files_at = dirs_at.checked_add(dirs.checked_mul(DIR_REC)?)?;
        let file_slots_at = files_at.checked_add(files.checked_mul(FILE_REC)?)?;
        let dir_slots_at = file_slots_at.checked_add(file_slots.checked_mul(SLOT)?)?;
        let memos_at = dir_slots_at.checked_add(dir_slots.checked_mul(SLOT)?)?;
        let blob_at = memos_at.checked_add(memos.checked_mul(MEMO_REC)?)?;
        if blob_at.checked_add(blob_len)? != b.len() || listed > dirs {
            return None;
        }
        let table_ok =
            |len: usize, n: usize| (len == 0 && n == 0) || (len.is_power_of_two() && len >= 2 * n);
        if !table_ok(file_slots, files) || !table_ok(dir_slots, listed) {
            return None;
        }
        let blob = &b[blob_at..];
        let in_blob = |off: u32, len: u32| {
            (off as usize)
                .checked_add(len as usize)
                .is_some_and(|end| end <= blob.len())
        };
        for d in 0..dirs {
            let at = dirs_at + d * DIR_REC;
            let (path_off, path_len) = (u32_at(b, at), u32_at(b, at + 4));
            let (list_off, list_len) = (
                u32_at(b, at + 8 + STAMP_LEN),
                u32_at(b, at + 12 + STAMP_LEN),
            );
            if !in_blob(path_off, path_len) || (list_len == NO_LISTING) != (d >= listed) {
                return None;
            }
            if list_len != NO_LISTING {
                let l = list_off as usize;
                if !in_blob(list_off, list_len) || !valid_listing(&blob[l..l + list_len as usize]) {
                    return None;
                }
            }
        }
        for f in 0..files {
            let at = files_at + f * FILE_REC;
            if u32_at(b, at) as usize >= dirs || !in_blob(u32_at(b, at + 4), u32_at(b, at + 8)) {
                return None;
            }
        }
        // Each folder's files are the records that name it as their folder, the folders' in
        // turn: together, every file record once.
        let mut next = 0;
        for d in 0..dirs {
            let at = dirs_at + d * DIR_REC + DIR_REC - 8;
            let (first, n) = (u32_at(b, at) as usize, u32_at(b, at + 4) as usize);
            if first != next
                || n > files - next
                || (first..first + n).any(|f| u32_at(b, files_at + f * FILE_REC) as usize != d)
            {
                return None;
            }
            next += n;
        }
        if next != files {
            return None;
        }
        let slots_ok = |from: usize, len: usize, n: usize| {
            let mut free = 0;
            for i in 0..len {
                match u32_at(b, from + i * SLOT) {
                    EMPTY => free += 1,
                    r if r as usize >= n => return false,
                    _ => {}
                }
            }
            len == 0 || free > 0
        };
        if !slots_ok(file_slots_at, file_slots, files) || !slots_ok(dir_slots_at, dir_slots, listed)
        {
            return None;
        }
        // Memos name folders with a listing, in increasing order.
        let memo_dirs = (0..memos).map(|m| u32_at(b, memos_at + m * MEMO_REC) as usize);
        if memo_dirs.clone().any(|d| d >= listed)
            || memo_dirs
                .clone()
                .zip(memo_dirs.skip(1))
                .any(|(a, b)| a >= b)
        {
            return None;
        }
        let layout = Layout {
            files,
            dirs,
            listed,
            file_table: file_slots,
            dir_table: dir_slots,
            dirs_at,
            files_at,
            file_table_at: file_slots_at,
            dir_table_at: dir_slots_at,
            memos,
            memos_at,
            blob_at,
        };
        Some(StatCache { bytes, layout })
    }

    /// The bytes of the blob at the offset and length stored at `at`.
    fn blob_at(&self, at: usize) -> &[u8] {
        let off = self.layout.blob_at + u32_at(&self.bytes, at) as usize;
        &self.bytes[off..off + u32_at(&self.bytes, at + 4) as usize]
    }

    /// The path of folder record `d`.
    fn dir_path(&self, d: usize) -> &[u8] {
        self.blob_at(self.layout.dirs_at + d * DIR_REC)
    }

    /// The record number of `path` in the table of `len` slots at `from`, if `is(record)`
    /// says a record with the path's hash is it.
    fn find(
        &self,
        from: usize,
        len: usize,
        path: &[u8],
        is: impl Fn(usize) -> bool,
    ) -> Option<usize> {
        if len == 0 {
            return None;
        }
        let h = path_hash(path);
        let tag = (h >> 32) as u32;
        let mask = len - 1;
        let mut i = h as usize & mask;
        loop {
            let at = from + i * SLOT;
            match u32_at(&self.bytes, at) {
                EMPTY => return None,
                r if u32_at(&self.bytes, at + 4) == tag && is(r as usize) => {
                    return Some(r as usize)
                }
                _ => i = (i + 1) & mask,
            }
        }
    }

    /// The record of the file at `path` (absolute, as bytes), if it has one.
    pub(super) fn find_file(&self, path: &[u8]) -> Option<usize> {
        let l = self.layout;
        self.find(l.file_table_at, l.file_table, path, |r| {
            let at = l.files_at + r * FILE_REC;
            let name = self.blob_at(at + 4);
            let dir = self.dir_path(u32_at(&self.bytes, at) as usize);
            path.len() == dir.len() + 1 + name.len()
                && path.ends_with(name)
                && path[dir.len()] == b'/'
                && path.starts_with(dir)
        })
    }

    /// The file records of folder record `d`, in the order of its listing.
    pub(super) fn dir_files(&self, d: usize) -> std::ops::Range<usize> {
        let at = self.layout.dirs_at + d * DIR_REC + DIR_REC - 8;
        let first = u32_at(&self.bytes, at) as usize;
        first..first + u32_at(&self.bytes, at + 4) as usize
    }

    /// The record of the file `name` when it is the first of `files` (what is left of a
    /// folder's [`StatCache::dir_files`] as its listing is walked), which then moves past it.
    /// A walk of the listing finds each file there unless the file was not recorded.
    pub(super) fn next_file(
        &self,
        files: &mut std::ops::Range<usize>,
        name: &[u8],
    ) -> Option<usize> {
        let i = files.start;
        if i >= files.end || self.blob_at(self.layout.files_at + i * FILE_REC + 4) != name {
            return None;
        }
        files.start += 1;
        Some(i)
    }

    /// The record of the folder at `path` (absolute, as bytes), if it has one.
    pub(super) fn find_dir(&self, path: &[u8]) -> Option<usize> {
        let l = self.layout;
        self.find(l.dir_table_at, l.dir_table, path, |r| {
            self.dir_path(r) == path
        })
    }

    /// The tree memo of folder record `d`, if it has one: the memo's number (below
    /// [`StatCache::memo_count`]), the number of entries of the tree and its digest.
    pub(super) fn memo(&self, d: usize) -> Option<(usize, u32, [u8; 32])> {
        let l = self.layout;
        let (mut lo, mut hi) = (0, l.memos);
        while lo < hi {
            let mid = (lo + hi) / 2;
            match (u32_at(&self.bytes, l.memos_at + mid * MEMO_REC) as usize).cmp(&d) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => {
                    let (_, n, h) = self.memo_at(mid);
                    return Some((mid, n, h));
                }
            }
        }
        None
    }

    /// Memo `m`: its folder's record number, the number of entries and the digest.
    pub(super) fn memo_at(&self, m: usize) -> (usize, u32, [u8; 32]) {
        let at = self.layout.memos_at + m * MEMO_REC;
        let digest = self.bytes[at + 8..at + MEMO_REC]
            .try_into()
            .expect("32 bytes");
        (
            u32_at(&self.bytes, at) as usize,
            u32_at(&self.bytes, at + 4),
            digest,
        )
    }

    /// The number of tree memos.
    pub(super) fn memo_count(&self) -> usize {
        self.layout.memos
    }

    /// The number of file records: every record number is below it.
    pub(super) fn file_slots(&self) -> usize {
        self.layout.files
    }

    /// The number of folder records: every record number is below it.
    pub(super) fn dir_slots(&self) -> usize {
        self.layout.listed
    }

    /// The record numbers of the files.
    pub(super) fn files(&self) -> impl Iterator<Item = usize> + '_ {
        0..self.layout.files
    }

    /// The record numbers of the folders.
    pub(super) fn dirs(&self) -> impl Iterator<Item = usize> + '_ {
        0..self.layout.listed
    }

    /// The stamp and digest of file record `i`.
    pub(super) fn file_stamp(&self, i: usize) -> (Stamp, [u8; 32]) {
        let at = self.layout.files_at + i * FILE_REC + 12;
        let hash = self.bytes[at + STAMP_LEN..at + STAMP_LEN + 32]
            .try_into()
            .expect("32 bytes");
        (Stamp::decode(&self.bytes, at), hash)
    }

    /// File record `i`, its path put together.
    pub(super) fn file(&self, i: usize) -> FileRecord<'_> {
        let at = self.layout.files_at + i * FILE_REC;
        let dir = self.dir_path(u32_at(&self.bytes, at) as usize);
        let name = self.blob_at(at + 4);
        let mut path = Vec::with_capacity(dir.len() + 1 + name.len());
        path.extend_from_slice(dir);
        path.push(b'/');
        path.extend_from_slice(name);
        let (s, h) = self.file_stamp(i);
        (Cow::Owned(path), s, h)
    }

    /// Folder record `i`.
    pub(super) fn dir(&self, i: usize) -> DirRecord<'_> {
        let at = self.layout.dirs_at + i * DIR_REC;
        let listing = self.blob_at(at + 8 + STAMP_LEN);
        (
            self.dir_path(i),
            Stamp::decode(&self.bytes, at + 8),
            listing,
        )
    }

    /// The stamp and digest recorded for the file at `path` (absolute).
    pub fn get(&self, path: &Path) -> Option<(Stamp, [u8; 32])> {
        let i = self.find_file(path.as_os_str().as_encoded_bytes())?;
        Some(self.file_stamp(i))
    }

    /// The stamp and listing recorded for the folder at `path` (absolute).
    pub fn get_dir(&self, path: &Path) -> Option<(Stamp, &[u8])> {
        let i = self.find_dir(path.as_os_str().as_encoded_bytes())?;
        let (_, s, l) = self.dir(i);
        Some((s, l))
    }
}

/// Whether `l` is a listing as `dir::Dir::list` writes it: entries of a type byte and a
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

/// The entries of a listing (checked by `valid_listing` when the cache is read, or written by
/// `dir::Dir::list`): type byte and name.
pub(super) fn listing_entries(listing: &[u8]) -> impl Iterator<Item = (u8, &[u8])> {
    listing_names(listing).map(|(t, name)| (t, name.to_bytes()))
}

/// [`listing_entries`], each name with the NUL that ends it in the listing: what the kernel
/// takes, with no copy.
pub(super) fn listing_names(listing: &[u8]) -> impl Iterator<Item = (u8, &CStr)> {
    let mut rest = listing;
    std::iter::from_fn(move || {
        let (&t, after) = rest.split_first()?;
        let name = CStr::from_bytes_until_nul(after).expect("listings end names");
        rest = &after[name.count_bytes() + 1..];
        Some((t, name))
    })
}

#[cfg(test)]
mod tests;
