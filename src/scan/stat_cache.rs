//! The stat cache: what the last scan saw, so the next one can skip work. A file's digest is
//! kept under its [`Stamp`]; a folder's listing under the folder's own. [`StatCache`] is kept
//! as the bytes of its file format (read and written by `cache`) plus tables of offsets into
//! them; a listing is a type byte (`DT_*`), a name and a NUL per entry.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use rustix::fs::Stat;

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

/// `FxHash` over 8-byte words with a splitmix64 finish: paths are not attacker-chosen (they are
/// the user's own files), so `SipHash`'s flood resistance buys nothing here and costs a fifth of
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

    /// Whether it holds neither files nor folders.
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

    /// The encoding, borrowed.
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

    /// The slot of the file at `path` (absolute, as bytes) in the file table, if it has one.
    pub(super) fn find_file(&self, path: &[u8]) -> Option<usize> {
        self.files.find(&self.bytes, path)
    }

    /// The slot of the folder at `path` (absolute, as bytes) in the folder table, if it has one.
    pub(super) fn find_dir(&self, path: &[u8]) -> Option<usize> {
        self.dirs.find(&self.bytes, path)
    }

    /// The number of slots of the file table: every slot is below it.
    pub(super) fn file_slots(&self) -> usize {
        self.files.slots.len()
    }

    /// The number of slots of the folder table: every slot is below it.
    pub(super) fn dir_slots(&self) -> usize {
        self.dirs.slots.len()
    }

    /// The slots of the file table that hold a file.
    pub(super) fn files(&self) -> impl Iterator<Item = usize> + '_ {
        self.files.occupied()
    }

    /// The slots of the folder table that hold a folder.
    pub(super) fn dirs(&self) -> impl Iterator<Item = usize> + '_ {
        self.dirs.occupied()
    }

    /// The file in slot `i` of the file table.
    pub(super) fn file(&self, i: usize) -> FileRecord<'_> {
        let b = &self.bytes;
        let path = path_at(b, self.files.slots[i]);
        let at = self.files.slots[i] as usize + 4 + path.len();
        let hash = b[at + STAMP_LEN..at + STAMP_LEN + 32]
            .try_into()
            .expect("32 bytes");
        (path, Stamp::decode(b, at), hash)
    }

    /// The folder in slot `i` of the folder table.
    pub(super) fn dir(&self, i: usize) -> DirRecord<'_> {
        let b = &self.bytes;
        let path = path_at(b, self.dirs.slots[i]);
        let at = self.dirs.slots[i] as usize + 4 + path.len();
        let len = u32_at(b, at + STAMP_LEN) as usize;
        let listing = &b[at + STAMP_LEN + 4..at + STAMP_LEN + 4 + len];
        (path, Stamp::decode(b, at), listing)
    }

    /// The stamp and digest recorded for the file at `path` (absolute).
    pub fn get(&self, path: &Path) -> Option<(Stamp, [u8; 32])> {
        let i = self.find_file(path.as_os_str().as_encoded_bytes())?;
        let (_, s, h) = self.file(i);
        Some((s, h))
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

#[cfg(test)]
mod tests {
    use super::*;

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
