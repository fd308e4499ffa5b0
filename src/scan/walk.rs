//! The walk of one role folder into a [`Tree`]: [`scan_tree`]. Folders are read through
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
    let root = Dir::open(dir).map_err(|e| Error::io(dir, e))?;
    let stamp = Stamp::of_stat(&root.stat_self().map_err(|e| Error::io(dir, e))?);
    let record = hasher.dir_record(&walk.abs);
    walk.dir(&root, 0, stamp, true, record)?;
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
        kind: EntryKind::File {
            exec: stamp.mode & 0o100 != 0,
            blake3: FileDigest(hash),
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

/// How walking a folder's entries ended.
enum Walked {
    Done,
    /// A cached listing no longer matches the folder (an entry is gone or changed type, which
    /// its stamp should have shown): the folder must be read.
    Stale,
}

impl Walk<'_, '_> {
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
        let mut stamp = stamp;
        if self.hasher.vouched(&self.abs) {
            if let Some((listing, files)) = self.hasher.quiet_listing(record) {
                let mark = (self.entries.len(), self.misses.len());
                if let Walked::Done = self.quiet_entries(base, base_len, listing, files)? {
                    return Ok(());
                }
                self.entries.truncate(mark.0);
                self.misses.truncate(mark.1);
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
            let mark = (self.entries.len(), self.misses.len());
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
                self.entries
                    .push(file_entry(self.rel.clone(), &stamp, hash));
            }
            Kind::Dir => {
                let record = self.hasher.dir_record(&self.abs);
                let Some(stamp) = self.hasher.quiet_dir_stamp(record) else {
                    return Ok(None);
                };
                self.entries.push(Entry {
                    path: self.rel.clone(),
                    kind: EntryKind::Dir,
                });
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
                self.entries.push(Entry {
                    path: self.rel.clone(),
                    kind: EntryKind::Dir,
                });
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
                    Some(hash) => self
                        .entries
                        .push(file_entry(self.rel.clone(), &stamp, hash)),
                    None => self.misses.push((self.rel.clone(), self.abs_path(), stamp)),
                }
            }
            Kind::Dir => {
                let stamp = Stamp::of_stat(st.as_ref().expect("folders are stat'ed"));
                self.entries.push(Entry {
                    path: self.rel.clone(),
                    kind: EntryKind::Dir,
                });
                let record = record.unwrap_or_else(|| self.hasher.dir_record(&self.abs));
                self.dir(base, base_len, stamp, false, record)?;
            }
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
                self.entries.push(Entry {
                    path: self.rel.clone(),
                    kind: EntryKind::Symlink { target },
                });
            }
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
mod tests {
    use std::fs;
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::scan::StatCache;

    /// Scans `dir` through `cache` as if long after its files were written (nothing racy);
    /// returns the tree and the next cache, if it changed.
    fn scan_with(dir: &Path, cache: &StatCache) -> (Tree, Option<StatCache>) {
        let later = SystemTime::now() + Duration::from_secs(3600);
        let hasher = Hasher::new_at(cache, later);
        let tree = scan_tree(dir, "roles/r", &hasher).unwrap();
        (tree, hasher.finish())
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
        let fifo =
            std::ffi::CString::new(dir.join("tests/pipe").into_os_string().into_encoded_bytes())
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
}
