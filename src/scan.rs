//! Scanning: role folders and input files turned into digests.
//!
//! A role tree is the list of its entries (path relative to the role folder, type, executable
//! bit, content digest, symlink target), sorted by path. Symlinks are recorded as links and never
//! followed. File digests come from a stat cache when a file's (device, inode, size, mtime,
//! ctime, mode) are exactly those seen when it was last hashed, as git's index does; any
//! difference means the file is read and hashed again. Entries whose mtime or ctime is within
//! [`RACY_WINDOW`] of the scan are not kept, so a write in the same clock tick as a scan is
//! never trusted (git's "racy clean" problem).

use std::collections::HashMap;
use std::fs;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
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
        let mut h = blake3::Hasher::new();
        h.update(b"layer-tree-v1\0");
        for e in &entries {
            match &e.kind {
                EntryKind::File { exec, blake3 } => {
                    h.update(if *exec { b"fx" } else { b"f-" });
                    h.update(blake3.as_bytes());
                }
                EntryKind::Dir => {
                    h.update(b"d");
                }
                EntryKind::Symlink { target } => {
                    h.update(b"l");
                    h.update(target.as_bytes());
                }
            }
            h.update(b"\0");
            h.update(e.path.as_bytes());
            h.update(b"\0");
        }
        Tree {
            entries,
            digest: h.finalize().to_hex().to_string(),
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

/// Absolute path -> (stamp, blake3). Encoded by [`StatCache::encode`]; stored by `cache`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatCache {
    pub entries: HashMap<PathBuf, (Stamp, [u8; 32])>,
}

const STAT_MAGIC: &[u8; 12] = b"layer-stat\0\x01";

impl StatCache {
    pub fn encode(&self) -> Vec<u8> {
        let mut paths: Vec<&PathBuf> = self.entries.keys().collect();
        paths.sort();
        let mut out = Vec::with_capacity(16 + paths.len() * 128);
        out.extend_from_slice(STAT_MAGIC);
        out.extend_from_slice(&(paths.len() as u64).to_le_bytes());
        for p in paths {
            let (s, h) = &self.entries[p];
            let bytes = p.as_os_str().as_encoded_bytes();
            out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
            out.extend_from_slice(bytes);
            for v in [s.dev, s.ino, s.size, s.mtime_ns as u64, s.ctime_ns as u64] {
                out.extend_from_slice(&v.to_le_bytes());
            }
            out.extend_from_slice(&s.mode.to_le_bytes());
            out.extend_from_slice(h);
        }
        out
    }

    /// Anything malformed gives an empty cache: the stat cache only ever saves work.
    pub fn decode(bytes: &[u8]) -> StatCache {
        Self::try_decode(bytes).unwrap_or_default()
    }

    fn try_decode(mut b: &[u8]) -> Option<StatCache> {
        fn take<'a>(b: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
            if b.len() < n {
                return None;
            }
            let (h, t) = b.split_at(n);
            *b = t;
            Some(h)
        }
        fn u64_(b: &mut &[u8]) -> Option<u64> {
            Some(u64::from_le_bytes(take(b, 8)?.try_into().ok()?))
        }
        if take(&mut b, STAT_MAGIC.len())? != STAT_MAGIC {
            return None;
        }
        let n = u64_(&mut b)? as usize;
        let mut entries = HashMap::with_capacity(n.min(1 << 22));
        for _ in 0..n {
            let len = u32::from_le_bytes(take(&mut b, 4)?.try_into().ok()?) as usize;
            let path = std::str::from_utf8(take(&mut b, len)?).ok()?;
            let stamp = Stamp {
                dev: u64_(&mut b)?,
                ino: u64_(&mut b)?,
                size: u64_(&mut b)?,
                mtime_ns: u64_(&mut b)? as i64,
                ctime_ns: u64_(&mut b)? as i64,
                mode: u32::from_le_bytes(take(&mut b, 4)?.try_into().ok()?),
            };
            let hash: [u8; 32] = take(&mut b, 32)?.try_into().ok()?;
            entries.insert(PathBuf::from(path), (stamp, hash));
        }
        b.is_empty().then_some(StatCache { entries })
    }
}

/// Hashes files through a stat cache, collecting the entries it used for the next cache.
pub struct Hasher<'a> {
    old: &'a StatCache,
    used: Mutex<Vec<(PathBuf, Stamp, [u8; 32])>>,
    rehashed: std::sync::atomic::AtomicUsize,
    racy_after_ns: i64,
}

impl<'a> Hasher<'a> {
    pub fn new(old: &'a StatCache) -> Self {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let racy_after_ns = now.saturating_sub(RACY_WINDOW).as_nanos() as i64;
        Hasher {
            old,
            used: Mutex::new(Vec::new()),
            rehashed: Default::default(),
            racy_after_ns,
        }
    }

    /// The blake3 of the regular file at `path` (absolute), whose `lstat` is `meta`.
    pub fn file(&self, path: &Path, meta: &fs::Metadata) -> Result<[u8; 32]> {
        let stamp = Stamp::of(meta);
        let hash = match self.old.entries.get(path) {
            Some((s, h)) if *s == stamp => *h,
            _ => {
                self.rehashed
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                hash_file(path, meta.len())?
            }
        };
        if stamp.mtime_ns < self.racy_after_ns && stamp.ctime_ns < self.racy_after_ns {
            self.used.lock().expect("no panics while locked").push((
                path.to_path_buf(),
                stamp,
                hash,
            ));
        }
        Ok(hash)
    }

    /// The cache for the next run, and whether it differs from the one this run started with.
    pub fn finish(self) -> (StatCache, bool) {
        let used = self.used.into_inner().expect("no panics while locked");
        let changed = self.rehashed.into_inner() > 0 || used.len() != self.old.entries.len();
        let entries = used.into_iter().map(|(p, s, h)| (p, (s, h))).collect();
        (StatCache { entries }, changed)
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
pub fn scan_tree(dir: &Path, rel: &str, hasher: &Hasher) -> Result<Tree> {
    enum Pending {
        Ready(Entry),
        File {
            path: String,
            abs: PathBuf,
            meta: fs::Metadata,
        },
    }
    let mut pending = Vec::new();
    for entry in walkdir::WalkDir::new(dir).follow_links(false).min_depth(1) {
        let entry = entry.map_err(|e| {
            let path = e
                .path()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| dir.to_path_buf());
            let io = e
                .into_io_error()
                .unwrap_or_else(|| std::io::Error::other("walk failed"));
            Error::io(path, io)
        })?;
        let rel_path = entry
            .path()
            .strip_prefix(dir)
            .expect("walkdir stays below its root");
        let Some(path) = rel_path.to_str().map(str::to_string) else {
            return Err(Error::Input {
                path: format!("{rel}/{}", rel_path.to_string_lossy()),
                message: "file name is not valid UTF-8".into(),
                hint: Some("rename the file".into()),
            });
        };
        let meta = entry.metadata().map_err(|e| {
            Error::io(
                entry.path(),
                e.into_io_error()
                    .unwrap_or_else(|| std::io::Error::other("stat failed")),
            )
        })?;
        let ft = meta.file_type();
        if ft.is_symlink() {
            let target = fs::read_link(entry.path()).map_err(|e| Error::io(entry.path(), e))?;
            let Some(target) = target.to_str().map(str::to_string) else {
                return Err(Error::Input {
                    path: format!("{rel}/{path}"),
                    message: "symlink target is not valid UTF-8".into(),
                    hint: None,
                });
            };
            pending.push(Pending::Ready(Entry {
                path,
                kind: EntryKind::Symlink { target },
            }));
        } else if ft.is_dir() {
            pending.push(Pending::Ready(Entry {
                path,
                kind: EntryKind::Dir,
            }));
        } else if ft.is_file() {
            pending.push(Pending::File {
                path,
                abs: entry.path().to_path_buf(),
                meta,
            });
        } else {
            return Err(Error::Input {
                path: format!("{rel}/{path}"),
                message: "is neither a file, a folder nor a symlink".into(),
                hint: Some("remove it: sockets, fifos and devices cannot be part of a role".into()),
            });
        }
    }
    let entries = pending
        .into_par_iter()
        .map(|p| match p {
            Pending::Ready(e) => Ok(e),
            Pending::File { path, abs, meta } => {
                let hash = hasher.file(&abs, &meta)?;
                let exec = meta.mode() & 0o100 != 0;
                Ok(Entry {
                    path,
                    kind: EntryKind::File {
                        exec,
                        blake3: blake3::Hash::from(hash).to_hex().to_string(),
                    },
                })
            }
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Tree::new(entries))
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

    #[test]
    fn stat_cache_round_trips_and_rejects_garbage() {
        let mut c = StatCache::default();
        let s = Stamp {
            dev: 1,
            ino: 2,
            size: 3,
            mtime_ns: 4,
            ctime_ns: -5,
            mode: 0o100644,
        };
        c.entries.insert(PathBuf::from("/a/b"), (s, [7; 32]));
        let bytes = c.encode();
        assert_eq!(StatCache::decode(&bytes), c);
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
                        path: crate::decl::PROJECT_FILE.into(),
                        message: format!("origin `{name}`: `{shown}` leads outside the project"),
                        hint: Some("keep origin tarballs inside the project".into()),
                    });
                }
            }
        }
        let digest = hash_hex(&path).map_err(|e| Error::Input {
            path: crate::decl::PROJECT_FILE.into(),
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
                        path: crate::decl::PROJECT_FILE.into(),
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
