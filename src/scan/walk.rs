//! The walk of one role folder into a [`Tree`]: [`scan_tree`], or [`scan_known`], the tree's
//! digest alone while the stat cache's memo of it stands. Folders are read through
//! `dir::Dir` (relative to an open folder), listings reused from the stat cache while their
//! folder's stamp is unchanged, and files missing from it read in parallel at the end.

use std::ffi::{CStr, OsStr};
use std::ops::Range;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::dir::{Dir, Kind};
use super::hasher::{FreshDir, Hasher};
use super::stat_cache::{listing_entries, listing_names, Stamp};
use super::tree::{Entry, EntryKind, FileDigest, Tree};
use crate::error::{Error, ErrorKind, Result};

/// Scans the folder `dir` (absolute; `rel` is how messages name it) into a tree. The folder
/// itself may be a link (resolved by the caller's checks); nothing inside it is followed.
///
/// The walk is sequential (callers scan many trees in parallel). A folder whose stamp is the
/// one the stat cache recorded with its listing is not read again (git's untracked cache):
/// adding, removing or renaming an entry changes the folder's mtime and ctime. Every file is
/// still `lstat`ed, and read unless the stat cache vouches for it; those reads run in parallel.
pub fn scan_tree(dir: &Path, rel: &str, hasher: &Hasher) -> Result<Tree> {
    let (root, stamp, record) = open_root(dir, hasher)?;
    whole(dir, rel, hasher, &root, stamp, record)
}

/// What [`scan_known`] found: the tree, or only its digest.
#[derive(Debug)]
pub enum Scan {
    Tree(Tree),
    /// The tree the stat cache's memo names, by its digest: every folder listing and every
    /// file stamp is the one the last whole walk of the folder recorded.
    Unchanged(String),
}

/// [`scan_tree`], or only the tree's digest when the stat cache holds a memo of it that
/// still stands: the folder is walked as usual (every file `lstat`ed), but nothing of the
/// tree is built, sorted or hashed (git's cache-tree). A folder to read, a file to read, a
/// link, or a count of entries other than the memo's means a whole walk instead.
///
/// The memo stands for the tree when every listing and file stamp is the stat cache's:
/// the stat cache is written whole from one run, so its records of the folder are those of
/// the walk that wrote the memo (records the walk did not use are dropped), and the tree is
/// made of nothing else.
pub fn scan_known(dir: &Path, rel: &str, hasher: &Hasher) -> Result<Scan> {
    let (root, stamp, record) = open_root(dir, hasher)?;
    if let Some((m, count, digest)) = hasher.tree_memo(record) {
        let mut check = Walk::new(hasher, rel, dir, false);
        // An error is left to the whole walk to report.
        let walked = check.dir(&root, 0, stamp, true, record);
        if walked.is_ok() && check.clean && check.count == count {
            hasher.memo_used(m);
            return Ok(Scan::Unchanged(
                blake3::Hash::from(digest).to_hex().to_string(),
            ));
        }
    }
    whole(dir, rel, hasher, &root, stamp, record).map(Scan::Tree)
}

/// The folder `dir` opened, its stamp and its record in the stat cache.
fn open_root(dir: &Path, hasher: &Hasher) -> Result<(Dir, Stamp, Option<usize>)> {
    let root = Dir::open(dir).map_err(|e| Error::io(dir, e))?;
    let stamp = Stamp::of_stat(&root.stat_self().map_err(|e| Error::io(dir, e))?);
    let record = hasher.dir_record(dir.as_os_str().as_encoded_bytes());
    Ok((root, stamp, record))
}

/// The whole walk of [`scan_tree`], from the folder opened; notes the tree's memo for the
/// next stat cache.
fn whole(
    dir: &Path,
    rel: &str,
    hasher: &Hasher,
    root: &Dir,
    stamp: Stamp,
    record: Option<usize>,
) -> Result<Tree> {
    let mut walk = Walk::new(hasher, rel, dir, true);
    walk.dir(root, 0, stamp, true, record)?;
    let Walk {
        mut entries,
        misses,
        listed,
        abs,
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
    let tree = Tree::new(entries);
    note_memo(hasher, record, abs, &tree);
    Ok(tree)
}

/// Notes the memo of `tree`, walked whole from the folder `abs` (its stat cache record
/// `record`), for the next stat cache. A tree with a link gets none ([`scan_known`] checks
/// every entry against the stat cache, which holds no link targets). A memo the stat cache
/// holds already is kept as it is, so an unchanged folder walked whole changes nothing in the
/// next stat cache.
fn note_memo(hasher: &Hasher, record: Option<usize>, abs: Vec<u8>, tree: &Tree) {
    let links = tree
        .entries
        .iter()
        .any(|e| matches!(e.kind, EntryKind::Symlink { .. }));
    if links {
        return;
    }
    let (Ok(n), Ok(digest)) = (
        u32::try_from(tree.entries.len()),
        blake3::Hash::from_hex(&tree.digest),
    ) else {
        return;
    };
    let digest = *digest.as_bytes();
    match hasher.tree_memo(record) {
        Some((m, was_n, was)) if (was_n, was) == (n, digest) => hasher.memo_used(m),
        _ => hasher.add_memo((abs, n, digest)),
    }
}

/// Whether the folder `listing` names two or more files (or entries of unknown type).
fn two_files(listing: &[u8]) -> bool {
    listing_entries(listing)
        .filter(|(t, _)| matches!(Kind::of_dt(*t), Kind::File | Kind::Unknown))
        .nth(1)
        .is_some()
}

fn file_entry(path: String, stamp: &Stamp, hash: [u8; 32]) -> Entry {
    Entry {
        path,
        kind: file_kind(stamp, hash),
    }
}

fn file_kind(stamp: &Stamp, hash: [u8; 32]) -> EntryKind {
    EntryKind::File {
        exec: stamp.mode & 0o100 != 0,
        blake3: FileDigest(hash),
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
    /// Whether entries are kept in `entries` (a whole walk), or only counted in `count` (a
    /// check against the stat cache's tree memo: [`scan_known`]).
    build: bool,
    /// Entries walked so far (kept or counted).
    count: u32,
    /// In a check: whether everything so far came from the stat cache. Once not, the check
    /// stops looking (every step returns at once) and a whole walk follows.
    clean: bool,
    /// Files to read: path in the tree, absolute path, stamp.
    misses: Vec<(String, PathBuf, Stamp)>,
    /// Folders read by this walk, for the next stat cache.
    listed: Vec<FreshDir>,
}

/// Where a walk was, to go back to when a cached listing turns out stale.
type Mark = (usize, usize, u32);

/// How walking a folder's entries ended.
enum Walked {
    Done,
    /// A cached listing no longer matches the folder (an entry is gone or changed type, which
    /// its stamp should have shown): the folder must be read.
    Stale,
}

impl<'a, 'h> Walk<'a, 'h> {
    /// A walk of the folder `dir` (`rel` as messages name it); `build`: see [`Walk::build`].
    fn new(hasher: &'a Hasher<'h>, rel_root: &'a str, dir: &Path, build: bool) -> Self {
        Walk {
            hasher,
            rel_root,
            abs: dir.as_os_str().as_encoded_bytes().to_vec(),
            rel: String::new(),
            scratch: Vec::new(),
            cpath: Vec::new(),
            entries: Vec::new(),
            build,
            count: 0,
            clean: true,
            misses: Vec::new(),
            listed: Vec::new(),
        }
    }

    fn mark(&self) -> Mark {
        (self.entries.len(), self.misses.len(), self.count)
    }

    fn rewind(&mut self, (entries, misses, count): Mark) {
        self.entries.truncate(entries);
        self.misses.truncate(misses);
        self.count = count;
    }

    /// The entry at the current path, of `kind`: kept in a whole walk, counted in both.
    fn keep(&mut self, kind: EntryKind) {
        if self.build {
            self.entries.push(Entry {
                path: self.rel.clone(),
                kind,
            });
        }
        self.count += 1;
    }

    /// In a check: what is here is not what the stat cache holds (a folder to read, a file to
    /// read, a link, anything else), so the tree memo cannot stand for the tree.
    fn unclean(&mut self) {
        self.clean = false;
    }

    fn abs_path(&self) -> PathBuf {
        PathBuf::from(OsStr::from_bytes(&self.abs))
    }

    /// The current path relative to the folder `base` (opened where `self.rel` was
    /// `base_len` long), NUL-terminated, in `self.cpath`.
    fn cpath(&mut self, base_len: usize) -> &CStr {
        let rel = self.rel[base_len..].trim_start_matches('/');
        self.cpath.clear();
        self.cpath.extend_from_slice(rel.as_bytes());
        self.cpath.push(0);
        CStr::from_bytes_with_nul(&self.cpath).expect("names hold no NUL")
    }

    /// [`Walk::cpath`] of the entry `name` just entered: `name` itself, as its listing holds
    /// it, when `base` is its folder (the common case: no copy), else the path built.
    fn entry_cpath<'s>(&'s mut self, base_len: usize, name: &'s CStr) -> &'s CStr {
        if self.rel[base_len..].trim_start_matches('/').len() == name.count_bytes() {
            return name;
        }
        self.cpath(base_len)
    }

    /// Walks the folder at `self.abs`, whose stamp is `stamp`. `base` is the open folder that
    /// paths are resolved from: the folder itself when `is_base`, otherwise an ancestor,
    /// opened where `self.rel` was `base_len` long.
    ///
    /// A folder the stat cache has a listing for is not read, and is opened only when that
    /// saves work: when it holds two or more files, each then `stat`ed by its name alone.
    /// Folders that only lead to others (`files/usr/local/share`) are not opened at all; their
    /// entries are `stat`ed by a path from the nearest open folder above.
    ///
    /// A folder a live watcher vouches for ([`Hasher::vouched`]) is walked from the stat cache
    /// alone: its listing, its files' stamps and digests and its folders' stamps as recorded,
    /// with no system call but `readlinkat` for links; an entry the stat cache lacks is looked
    /// at as usual.
    ///
    /// `record` is the folder's in the stat cache (`Hasher::dir_record`), looked up once by
    /// the caller.
    fn dir(
        &mut self,
        base: &Dir,
        base_len: usize,
        stamp: Stamp,
        is_base: bool,
        record: Option<usize>,
    ) -> Result<()> {
        if !self.clean {
            return Ok(());
        }
        let mut stamp = stamp;
        if self.hasher.vouched(&self.abs) {
            if let Some((listing, files)) = self.hasher.quiet_listing(record) {
                let mark = self.mark();
                if let Walked::Done = self.quiet_entries(base, base_len, listing, files)? {
                    return Ok(());
                }
                self.rewind(mark);
                // The stamp passed in may be the recorded one: look at the folder itself.
                let st = if is_base {
                    base.stat_self()
                } else {
                    base.stat(self.cpath(base_len))
                };
                stamp = Stamp::of_stat(&st.map_err(|e| Error::io(self.abs_path(), e))?);
            }
        }
        if let Some((listing, files)) = self.hasher.cached_listing(record, &stamp) {
            let mark = self.mark();
            let walked = if is_base || !two_files(listing) {
                self.entries_of(base, base_len, listing, Some(files))?
            } else {
                match base.open_at(self.cpath(base_len)) {
                    Ok(d) => self.entries_of(&d, self.rel.len(), listing, Some(files))?,
                    Err(_) => Walked::Stale,
                }
            };
            match walked {
                Walked::Done => return Ok(()),
                Walked::Stale => self.rewind(mark),
            }
        }
        if !self.build {
            self.unclean();
            return Ok(());
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
        self.entries_of(d, d_len, &listing, None)?;
        // Kept only once walked without error, so a cached listing holds valid names.
        if !self.hasher.racy(&stamp) {
            self.listed.push((self.abs.clone(), stamp, listing));
        }
        Ok(())
    }

    /// Whether the entry `name` of the current folder is left out of the tree (the role's
    /// `role.toml` and `tests/`, see `tree::left_out`): not looked at, nor anything below it.
    /// A no-op plan of 10,000 images `stat`ed 2,000 `role.toml`s only for the tree to drop them.
    fn left_out(&self, name: &[u8]) -> bool {
        self.rel.is_empty() && std::str::from_utf8(name).is_ok_and(super::tree::left_out)
    }

    /// Walks the entries of `listing`, the current folder's. `files`, when the listing comes
    /// from the stat cache rather than from reading the folder: the records of its files, in
    /// the order of the listing.
    fn entries_of(
        &mut self,
        base: &Dir,
        base_len: usize,
        listing: &[u8],
        mut files: Option<Range<usize>>,
    ) -> Result<Walked> {
        for (t, name) in listing_names(listing) {
            if self.left_out(name.to_bytes()) {
                continue;
            }
            let (abs_len, rel_len) = (self.abs.len(), self.rel.len());
            let walked = self.entry(base, base_len, t, name, files.as_mut());
            self.abs.truncate(abs_len);
            self.rel.truncate(rel_len);
            if let Walked::Stale = walked? {
                return Ok(Walked::Stale);
            }
        }
        Ok(Walked::Done)
    }

    /// Walks the entries of `listing`, the stat cache's listing of a vouched-for folder
    /// (`files` the records of its files): files and folders the stat cache holds are taken
    /// from it, the rest looked at.
    fn quiet_entries(
        &mut self,
        base: &Dir,
        base_len: usize,
        listing: &[u8],
        mut files: Range<usize>,
    ) -> Result<Walked> {
        for (t, name) in listing_names(listing) {
            if self.left_out(name.to_bytes()) {
                continue;
            }
            let (abs_len, rel_len) = (self.abs.len(), self.rel.len());
            let quiet = self.quiet_entry(base, base_len, t, name.to_bytes(), &mut files);
            self.abs.truncate(abs_len);
            self.rel.truncate(rel_len);
            let walked = match quiet? {
                Some(w) => w,
                None => {
                    let w = self.entry(base, base_len, t, name, Some(&mut files));
                    self.abs.truncate(abs_len);
                    self.rel.truncate(rel_len);
                    w?
                }
            };
            if let Walked::Stale = walked {
                return Ok(Walked::Stale);
            }
        }
        Ok(Walked::Done)
    }

    /// One entry of a vouched-for folder taken from the stat cache, or `None` when the stat
    /// cache does not hold it (a link, a racy file) and it must be looked at.
    fn quiet_entry(
        &mut self,
        base: &Dir,
        base_len: usize,
        t: u8,
        name: &[u8],
        files: &mut Range<usize>,
    ) -> Result<Option<Walked>> {
        let Ok(name_str) = std::str::from_utf8(name) else {
            return Ok(None);
        };
        self.abs.push(b'/');
        self.abs.extend_from_slice(name);
        if !self.rel.is_empty() {
            self.rel.push('/');
        }
        self.rel.push_str(name_str);
        match Kind::of_dt(t) {
            Kind::File => {
                let Some((stamp, hash)) = self.hasher.quiet_file(files, name, &self.abs) else {
                    return Ok(None);
                };
                if Kind::of_mode(stamp.mode) != Kind::File {
                    return Ok(None);
                }
                self.keep(file_kind(&stamp, hash));
            }
            Kind::Dir => {
                let record = self.hasher.dir_record(&self.abs);
                let Some(stamp) = self.hasher.quiet_dir_stamp(record) else {
                    return Ok(None);
                };
                self.keep(EntryKind::Dir);
                self.dir(base, base_len, stamp, false, record)?;
            }
            _ => return Ok(None),
        }
        Ok(Some(Walked::Done))
    }

    /// One entry of the current folder: the type byte of its listing and its name. `files`
    /// when the listing is the stat cache's: what is left of the folder's file records.
    fn entry(
        &mut self,
        base: &Dir,
        base_len: usize,
        t: u8,
        name_c: &CStr,
        files: Option<&mut Range<usize>>,
    ) -> Result<Walked> {
        if !self.clean {
            return Ok(Walked::Done);
        }
        let name = name_c.to_bytes();
        let cached = files.is_some();
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
        let listed = Kind::of_dt(t);
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
                kind: ErrorKind::RoleEntry,
                path,
                message: "file name is not valid UTF-8".into(),
                hint: Some("rename the file".into()),
            });
        };
        if !self.rel.is_empty() {
            self.rel.push('/');
        }
        self.rel.push_str(name_str);
        // A folder the walk will open (one with no listing in the stat cache, to read it, or
        // one whose listing names two or more files, each then `stat`ed by its name alone) is
        // opened first and its stamp taken from it (`fstat`): one lookup of its path instead
        // of two (`lstat`, then `openat`). A listing that no longer matches (the name is now a
        // file or a link, which `O_NOFOLLOW` refuses), or any other failure, takes the way
        // below, which says what it is.
        let record = (listed == Kind::Dir).then(|| self.hasher.dir_record(&self.abs));
        let opens = |r: Option<usize>| r.is_none_or(|r| two_files(self.hasher.listing(r)));
        if let Some(record) = record.filter(|&r| opens(r)) {
            let c = self.entry_cpath(base_len, name_c);
            if let Ok(d) = base.open_at(c) {
                let st = io!(d.stat_self());
                let stamp = Stamp::of_stat(&st);
                self.keep(EntryKind::Dir);
                let d_len = self.rel.len();
                self.dir(&d, d_len, stamp, true, record)?;
                return Ok(Walked::Done);
            }
        }
        // The listing's type saves a stat for links; files and folders need theirs for the
        // stat cache anyway.
        let mut st = None;
        let kind = match listed {
            Kind::Unknown | Kind::File | Kind::Dir => {
                let c = self.entry_cpath(base_len, name_c);
                let s = io!(base.stat(c));
                let k = Kind::of_mode(s.st_mode);
                if cached && !matches!(listed, Kind::Unknown) && k != listed {
                    return Ok(Walked::Stale);
                }
                st = Some(s);
                k
            }
            k => k,
        };
        match kind {
            Kind::File => {
                let stamp = Stamp::of_stat(st.as_ref().expect("files are stat'ed"));
                let hit = match files {
                    Some(files) => self.hasher.cached_next(files, name, &self.abs, &stamp),
                    None => self.hasher.cached(&self.abs, &stamp),
                };
                match hit {
                    Some(hash) => self.keep(file_kind(&stamp, hash)),
                    None if !self.build => self.unclean(),
                    None => self.misses.push((self.rel.clone(), self.abs_path(), stamp)),
                }
            }
            Kind::Dir => {
                let stamp = Stamp::of_stat(st.as_ref().expect("folders are stat'ed"));
                self.keep(EntryKind::Dir);
                let record = record.unwrap_or_else(|| self.hasher.dir_record(&self.abs));
                self.dir(base, base_len, stamp, false, record)?;
            }
            // A link's target is in no stat cache record: the memo cannot vouch for it.
            Kind::Symlink if !self.build => self.unclean(),
            Kind::Symlink => {
                let c = self.entry_cpath(base_len, name_c);
                let target = io!(base.read_link(c));
                let Ok(target) = String::from_utf8(target) else {
                    return Err(Error::Input {
                        kind: ErrorKind::RoleEntry,
                        path: format!("{}/{}", self.rel_root, self.rel),
                        message: "symlink target is not valid UTF-8".into(),
                        hint: None,
                    });
                };
                self.keep(EntryKind::Symlink { target });
            }
            Kind::Other | Kind::Unknown if !self.build => self.unclean(),
            Kind::Other | Kind::Unknown => {
                if cached {
                    return Ok(Walked::Stale);
                }
                return Err(Error::Input {
                    kind: ErrorKind::RoleEntry,
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

#[cfg(test)]
mod tests;
