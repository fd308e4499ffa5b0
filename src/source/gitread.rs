//! Reading a project as it was at a git revision, straight from the object database, without
//! checking the revision out (`--since REF`).
//!
//! Objects are read in-process with `gix`: no `git` process is started, so none of the
//! repository's hooks, `core.fsmonitor` command, filters or textconv drivers can run, and the
//! repository is opened isolated (its own `.git/config` only: no global or system
//! configuration, no environment, no credentials). Blobs are read as stored, never through a
//! filter.
//!
//! A role tree read from git is the same [`Tree`] that `scan` makes of the same files on disk:
//! git's `100644` is a file, `100755` an executable file (the work tree's owner exec bit, which
//! git records), `120000` a symlink whose blob is its target, `040000` a folder. Git does not
//! record empty folders, so a role holding one differs from its commit; a submodule inside a
//! role is an error.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use gix::prelude::FindExt;
use rayon::prelude::*;

use crate::error::{Error, ErrorKind, Result};
use crate::scan::{Entry, EntryKind, FileDigest, Tree};
use crate::source::files::{Kind, Link};
use crate::source::gittrees::{self, RoleTree, RoleTrees};
pub use crate::source::snapshot::Snapshot;

/// How many links a path may go through before it is reported as a loop.
const MAX_LINKS: usize = 16;

/// A revision of the repository holding a project.
pub struct Revision {
    repo: gix::Repository,
    /// What the user asked for (`origin/main`).
    pub rev: String,
    /// The commit it names, as hex.
    pub commit: String,
    /// The root tree of the commit.
    root_tree: gix::ObjectId,
    /// The project root relative to the repository's work tree (`""` at its top), with `/`.
    prefix: String,
    /// The repository's work tree (canonical).
    workdir: std::path::PathBuf,
    /// Blake3 digests (hex) of blobs known without reading them ([`Revision::learn_digests`]).
    known: HashMap<gix::ObjectId, FileDigest>,
}

/// An entry of a git tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Tree,
    Blob,
    Exec,
    Link,
    Submodule,
}

fn mode_of(m: gix::objs::tree::EntryMode) -> Mode {
    use gix::objs::tree::EntryKind as K;
    match m.kind() {
        K::Tree => Mode::Tree,
        K::Blob => Mode::Blob,
        K::BlobExecutable => Mode::Exec,
        K::Link => Mode::Link,
        K::Commit => Mode::Submodule,
    }
}

/// Where a path at the revision leads, after links.
enum Found {
    /// Its mode and object once links are followed.
    At(Mode, gix::ObjectId),
    Missing,
    /// A link leads outside the project, to this path (relative to the repository).
    Outside(String),
    Loop,
}

fn usage(kind: ErrorKind, message: String, hint: Option<&str>) -> Error {
    Error::Usage {
        kind,
        message,
        hint: hint.map(str::to_string),
    }
}

impl Revision {
    /// Opens the repository holding `root` (canonical) at revision `rev`.
    pub fn open(root: &Path, rev: &str) -> Result<Revision> {
        let repo = gix::ThreadSafeRepository::discover_opts(
            root,
            Default::default(),
            gix::sec::trust::Mapping {
                full: gix::open::Options::isolated(),
                reduced: gix::open::Options::isolated(),
            },
        )
        .map_err(|e| {
            usage(
                ErrorKind::NotInRepository,
                format!(
                    "`--since {rev}`: `{}` is not in a git repository: {e}",
                    root.display()
                ),
                Some("`--since` compares with a git revision; run it in a git checkout"),
            )
        })?
        .to_thread_local();
        let mut repo = repo;
        // The walks to `layer.toml`, `images` and `roles` each start at the root tree: kept
        // decoded, it is read once (a loose object is a file to open and inflate).
        repo.object_cache_size_if_unset(1 << 20);
        let workdir = repo
            .workdir()
            .and_then(|w| w.canonicalize().ok())
            .ok_or_else(|| {
                usage(
                    ErrorKind::NotInRepository,
                    format!("`--since {rev}`: the repository has no work tree"),
                    None,
                )
            })?;
        let prefix = root
            .strip_prefix(&workdir)
            .map_err(|_| {
                usage(
                    ErrorKind::NotInRepository,
                    format!(
                        "`--since {rev}`: the project is not inside the repository's work tree `{}`",
                        workdir.display()
                    ),
                    None,
                )
            })?
            .to_string_lossy()
            .into_owned();
        let not_found = || {
            if repo.is_shallow().unwrap_or(false) {
                usage(
                    ErrorKind::NoSuchRevision,
                    format!("`--since {rev}`: this is a shallow clone and `{rev}` is not in it"),
                    Some("fetch more history: `git fetch --deepen=50` (or `git fetch --unshallow`); in CI, check out with `fetch-depth: 0`"),
                )
            } else {
                usage(
                    ErrorKind::NoSuchRevision,
                    format!("`--since {rev}`: no commit is named `{rev}`"),
                    Some("name a commit, branch or tag, such as `origin/main` or `HEAD~1`"),
                )
            }
        };
        let id = repo
            .rev_parse_single(format!("{rev}^{{commit}}").as_str())
            .map_err(|_| not_found())?
            .detach();
        let root_tree = repo
            .find_commit(id)
            .map_err(|_| not_found())?
            .tree_id()
            .map_err(|_| not_found())?
            .detach();
        Ok(Revision {
            repo,
            rev: rev.to_string(),
            commit: id.to_string(),
            root_tree,
            prefix,
            workdir,
            known: HashMap::new(),
        })
    }

    /// Learns the blake3 of the blobs of role files that neither git's index nor the stat
    /// cache saw change, so that reading the revision reads only the blobs of files changed
    /// since (issue 15). git's index says "the file with this stat had blob ID"; the stat
    /// cache says "the file with this stat had blake3 B"; when both name the same stat (inode,
    /// size, mtime and ctime to the nanosecond) they describe the same content, so ID's blake3
    /// is B. Entries git calls racily clean (changed no earlier than the index was written)
    /// are left out, as the stat cache leaves out its own racy entries. Nothing is read but the
    /// index; a missing or unreadable index teaches nothing.
    ///
    /// Only the files under `dirs` (role folders, project-relative) are looked at, or every
    /// role's when `dirs` is empty. Then returns the role folders of the index whose git tree
    /// ids are in `wanted`, digested without reading a tree ([`gittrees::index_tree_ids`]):
    /// only blobs neither cache vouches for are read.
    pub fn learn_digests(
        &mut self,
        stat: &crate::scan::StatCache,
        dirs: &[&str],
        wanted: &HashSet<gix::ObjectId>,
    ) -> RoleTrees {
        let Ok(index) = gix::index::File::at(
            self.repo.index_path(),
            self.repo.object_hash(),
            true,
            Default::default(),
        ) else {
            return RoleTrees::default();
        };
        let written = index.timestamp();
        let written_ns = written.unix_seconds() * 1_000_000_000 + i64::from(written.nanoseconds());
        let roles = if self.prefix.is_empty() {
            "roles/".to_string()
        } else {
            format!("{}/roles/", self.prefix)
        };
        let range = |prefix: &str| {
            index
                .prefixed_entries_range(prefix.as_bytes().into())
                .unwrap_or_default()
        };
        let entries = &index.entries()[range(&roles)];
        let under: Vec<std::ops::Range<usize>> = if dirs.is_empty() {
            vec![range(&roles)]
        } else {
            dirs.iter()
                .map(|d| match self.prefix.as_str() {
                    "" => range(&format!("{d}/")),
                    p => range(&format!("{p}/{d}/")),
                })
                .collect()
        };
        for e in under.into_iter().flat_map(|r| &index.entries()[r]) {
            let path = e.path(&index);
            if e.stage_raw() != 0 {
                continue;
            }
            let Ok(rel) = std::str::from_utf8(path) else {
                continue;
            };
            let Some((stamp, digest)) = stat.get(&self.workdir.join(rel)) else {
                continue;
            };
            let ns = |t: gix::index::entry::stat::Time| {
                i64::from(t.secs) * 1_000_000_000 + i64::from(t.nsecs)
            };
            let st = &e.stat;
            let same = u64::from(st.ino) == stamp.ino & 0xffff_ffff
                && u64::from(st.size) == stamp.size & 0xffff_ffff
                && ns(st.mtime) == stamp.mtime_ns
                && ns(st.ctime) == stamp.ctime_ns
                && ns(st.mtime) < written_ns
                && ns(st.ctime) < written_ns;
            if same {
                self.known.insert(e.id, FileDigest(digest));
            }
        }
        if wanted.is_empty() {
            return RoleTrees::default();
        }
        let mut found = RoleTrees::default();
        let mut rest = entries;
        while let Some(first) = rest.first() {
            let path = &first.path(&index)[roles.len()..];
            let name_len = path
                .iter()
                .position(|&c| c == b'/')
                .map_or(path.len(), |n| n + 1);
            let folder = &path[..name_len];
            let n = rest
                .iter()
                .take_while(|e| e.path(&index)[roles.len()..].starts_with(folder))
                .count();
            let (group, after) = rest.split_at(n);
            rest = after;
            if folder.ends_with(b"/") {
                let at = roles.len() + folder.len();
                let group: Vec<(&[u8], &gix::index::Entry)> = group
                    .iter()
                    .map(|e| {
                        let path: &[u8] = e.path(&index);
                        (&path[at..], e)
                    })
                    .collect();
                if let Some((id, tree)) = self.index_role_tree(&group, wanted) {
                    found.insert(id, tree);
                }
            }
        }
        found
    }

    /// One role folder of the index (its entries by path relative to it), digested when its
    /// tree id is in `wanted`; `None` otherwise, or when the index cannot say (a conflict, a
    /// file only intended to be added, a submodule, a sparse folder, a name that is not UTF-8,
    /// a blob that cannot be read): the revision's tree is read then, as it says.
    fn index_role_tree(
        &self,
        group: &[(&[u8], &gix::index::Entry)],
        wanted: &HashSet<gix::ObjectId>,
    ) -> Option<(gix::ObjectId, RoleTree)> {
        use gix::index::entry::{Flags, Mode as IndexMode};
        let mut entries = Vec::with_capacity(group.len());
        for &(path, e) in group {
            let plain = e.stage_raw() == 0
                && !e.flags.contains(Flags::INTENT_TO_ADD)
                && matches!(
                    e.mode,
                    IndexMode::FILE | IndexMode::FILE_EXECUTABLE | IndexMode::SYMLINK
                );
            if !plain {
                return None;
            }
            entries.push((path, e.mode.to_tree_entry_mode()?, e.id));
        }
        let id = gittrees::index_tree_ids(&entries, self.repo.object_hash())?;
        if !wanted.contains(&id) {
            return None;
        }
        let reader = self.reader();
        let mut tree = Vec::with_capacity(entries.len() * 2);
        let mut dirs = HashSet::new();
        let mut role_toml = None;
        let mut blob = Vec::new();
        for (path, mode, oid) in entries {
            let path = std::str::from_utf8(path).ok()?;
            for (slash, _) in path.match_indices('/') {
                if dirs.insert(&path[..slash]) {
                    tree.push(Entry {
                        path: path[..slash].to_string(),
                        kind: EntryKind::Dir,
                    });
                }
            }
            let mode = mode_of(mode);
            if path == "role.toml" && mode != Mode::Link {
                role_toml = Some(oid);
            }
            let kind = reader.entry_kind("", path, mode, oid, &mut blob).ok()?;
            tree.push(Entry {
                path: path.to_string(),
                kind,
            });
        }
        let digest = Tree::new(tree).digest;
        let digest = blake3::Hash::from_hex(digest).ok()?.into();
        Some((id, RoleTree { digest, role_toml }))
    }

    fn reader(&self) -> Reader<'_> {
        Reader {
            repo: &self.repo,
            rev: &self.rev,
            known: &self.known,
        }
    }

    fn error(&self, path: &str, message: impl std::fmt::Display) -> Error {
        self.reader().error(path, message)
    }

    fn object(&self, id: &gix::oid, buf: &mut Vec<u8>) -> Result<gix::objs::Kind> {
        self.reader().object(id, buf)
    }

    fn tree(
        &self,
        id: &gix::oid,
        buf: &mut Vec<u8>,
    ) -> Result<Vec<(Vec<u8>, Mode, gix::ObjectId)>> {
        self.reader().tree(id, buf)
    }

    /// Follows `rel` (project-relative, `/`-separated) through the commit's trees and links.
    /// The last component is followed too when `follow` holds.
    fn find(&self, rel: &str, follow: bool) -> Result<Found> {
        let mut buf = Vec::new();
        // Repository-relative components still to walk, and the links taken so far.
        let mut todo: Vec<String> = self
            .prefix
            .split('/')
            .chain(rel.split('/'))
            .filter(|c| !c.is_empty() && *c != ".")
            .map(str::to_string)
            .collect();
        todo.reverse();
        let mut links = 0;
        // The target of the last link followed, to name where a path escapes.
        let mut via = rel.to_string();
        let mut done: Vec<String> = Vec::new();
        let mut at = (Mode::Tree, self.root_tree);
        while let Some(c) = todo.pop() {
            if c == ".." {
                if done.pop().is_none() {
                    return Ok(Found::Outside(via));
                }
                at = (Mode::Tree, self.root_tree);
                // Walk again from the top to the parent.
                let mut again: Vec<String> = std::mem::take(&mut done);
                again.reverse();
                todo.extend(again);
                continue;
            }
            if at.0 != Mode::Tree {
                return Ok(Found::Missing);
            }
            let entries = self.tree(&at.1, &mut buf)?;
            let Some((_, mode, oid)) = entries.into_iter().find(|(n, _, _)| n == c.as_bytes())
            else {
                return Ok(Found::Missing);
            };
            if mode == Mode::Link && (follow || !todo.is_empty()) {
                links += 1;
                if links > MAX_LINKS {
                    return Ok(Found::Loop);
                }
                self.object(&oid, &mut buf)?;
                let target = String::from_utf8_lossy(&buf).into_owned();
                if target.starts_with('/') {
                    return Ok(Found::Outside(target));
                }
                via = target.clone();
                for t in target.split('/').rev() {
                    if !t.is_empty() && t != "." {
                        todo.push(t.to_string());
                    }
                }
                // Resolve from the link's folder: walk again from the top.
                let mut again: Vec<String> = std::mem::take(&mut done);
                again.reverse();
                todo.extend(again);
                at = (Mode::Tree, self.root_tree);
                continue;
            }
            done.push(c);
            at = (mode, oid);
        }
        let prefix: Vec<&str> = self.prefix.split('/').filter(|c| !c.is_empty()).collect();
        if done.len() < prefix.len() || done[..prefix.len()] != prefix[..] {
            return Ok(Found::Outside(via));
        }
        Ok(Found::At(at.0, at.1))
    }

    /// The blake3 (hex) of the file at `rel`, following links inside the project; `None` when
    /// there is no such file.
    pub fn file_digest(&self, rel: &str) -> Result<Option<String>> {
        match self.file_blob(rel)? {
            Some(oid) => Ok(Some(self.blob_digest(&oid)?)),
            None => Ok(None),
        }
    }

    /// The blob of the file at `rel`, following links inside the project; `None` when there
    /// is no such file. Reads trees only.
    pub fn file_blob(&self, rel: &str) -> Result<Option<gix::ObjectId>> {
        match self.find(rel, true)? {
            Found::At(Mode::Blob | Mode::Exec, oid) => Ok(Some(oid)),
            Found::Outside(to) => Err(self.error(
                crate::model::PROJECT_FILE,
                format!("`{rel}` leads outside the project (to `{to}`)"),
            )),
            _ => Ok(None),
        }
    }

    /// The blake3 (hex) of the blob `id`.
    pub fn blob_digest(&self, id: &gix::oid) -> Result<String> {
        let mut buf = Vec::new();
        self.object(id, &mut buf)?;
        Ok(blake3::hash(&buf).to_hex().to_string())
    }

    /// Lists the folder `dir` of the revision into `snap`: its listing and each entry's kind,
    /// which `kind_of` decides (and may note more in `snap`) from the entry's name, its path,
    /// its own mode and where it leads once links inside the commit are followed. A revision
    /// without the folder lists nothing.
    fn list_into(
        &self,
        dir: &str,
        snap: &mut Snapshot,
        mut kind_of: impl FnMut(&mut Snapshot, &str, &str, Mode, Found) -> Result<Kind>,
    ) -> Result<()> {
        let Found::At(Mode::Tree, oid) = self.find(dir, true)? else {
            return Ok(());
        };
        let mut buf = Vec::new();
        let mut listing = Vec::new();
        for (name, mode, oid) in self.tree(&oid, &mut buf)? {
            let name = utf8(name);
            let Ok(n) = &name else {
                listing.push((name, Kind::Other));
                continue;
            };
            let rel = format!("{dir}/{n}");
            let found = if mode == Mode::Link {
                self.find(&rel, true)?
            } else {
                Found::At(mode, oid)
            };
            let kind = kind_of(snap, n, &rel, mode, found)?;
            snap.kinds.insert(rel, kind);
            listing.push((name, kind));
        }
        snap.kinds.insert(dir.into(), Kind::Dir);
        snap.listings.insert(dir.into(), listing);
        Ok(())
    }

    /// What declarations need from the revision, by object id: `layer.toml`, `layer.lock`,
    /// `images/*.toml`, and every role folder by its tree id. Reads four trees or so, no blob:
    /// [`Snapshot::add_roles`] completes it from the role folders' [`RoleTree`]s, and
    /// [`Revision::read_contents`] reads the blobs, when the declarations must be parsed.
    pub fn snapshot(&self) -> Result<Snapshot> {
        let mut snap = Snapshot::default();
        for top in [crate::model::PROJECT_FILE, crate::model::LOCK_FILE] {
            if let Found::At(Mode::Blob | Mode::Exec, oid) = self.find(top, true)? {
                snap.kinds.insert(top.to_string(), Kind::File);
                snap.blobs.insert(top.to_string(), oid);
            }
        }
        // images/: the declaration files.
        self.list_into("images", &mut snap, |snap, n, rel, _, found| {
            Ok(match found {
                Found::At(Mode::Blob | Mode::Exec, oid) => {
                    if n.ends_with(".toml") && !n.starts_with('.') {
                        snap.blobs.insert(rel.to_string(), oid);
                    }
                    Kind::File
                }
                Found::At(Mode::Tree, _) => Kind::Dir,
                Found::Outside(to) => {
                    snap.links.insert(rel.to_string(), Link::Outside(to));
                    Kind::Outside
                }
                _ => Kind::Other,
            })
        })?;
        // roles/: every role folder, by its tree.
        self.list_into("roles", &mut snap, |snap, n, rel, mode, found| {
            let link = match (&found, mode) {
                (_, m) if m != Mode::Link => Link::NotALink,
                (Found::Outside(to), _) => Link::Outside(to.clone()),
                (Found::Loop, _) => Link::Broken("too many levels of symbolic links".into()),
                _ => Link::Inside,
            };
            snap.links.insert(rel.to_string(), link);
            Ok(match found {
                Found::At(Mode::Tree, tree) => {
                    if !n.starts_with('.') {
                        snap.roles.insert(rel.to_string(), tree);
                    }
                    Kind::Dir
                }
                Found::At(..) => Kind::File,
                // A link out of the project is listed as a folder, so that loading
                // reports it by name, as it does for the work tree.
                Found::Outside(_) => Kind::Dir,
                _ => Kind::Other,
            })
        })?;
        Ok(snap)
    }

    /// The role folders `dirs` (path, tree id) read from their trees, in parallel, each thread
    /// with its own handle on the repository; blobs [`Revision::learn_digests`] learned are
    /// not read.
    pub fn role_trees(&self, dirs: &[(String, gix::ObjectId)]) -> Result<RoleTrees> {
        let walked = self.par_read(dirs, |reader, (rel, id)| {
            let (tree, role_toml) = reader.role_tree(rel, *id)?;
            let digest = blake3::Hash::from_hex(&tree.digest)
                .expect("a tree's digest is hex")
                .into();
            Ok((*id, RoleTree { digest, role_toml }))
        })?;
        let mut trees = RoleTrees::default();
        for (id, tree) in walked {
            trees.insert(id, tree);
        }
        Ok(trees)
    }

    /// The role folder `rel` (tree `id`) as a [`Tree`], entries and all.
    pub fn full_role_tree(&self, rel: &str, id: gix::ObjectId) -> Result<Tree> {
        Ok(self.reader().role_tree(rel, id)?.0)
    }

    /// Reads the blobs of `snap`'s declarations, in parallel.
    pub fn read_contents(&self, snap: &mut Snapshot) -> Result<()> {
        let blobs: Vec<(String, gix::ObjectId)> =
            snap.blobs.iter().map(|(p, id)| (p.clone(), *id)).collect();
        let read = self.par_read(&blobs, |reader, (path, id)| {
            let mut content = Vec::new();
            reader.object(id, &mut content)?;
            Ok((path.clone(), content))
        })?;
        snap.contents.extend(read);
        Ok(())
    }

    /// `f` over `items` in parallel, each thread reading through its own handle.
    fn par_read<T: Sync, R: Send>(
        &self,
        items: &[T],
        f: impl Fn(&Reader<'_>, &T) -> Result<R> + Sync,
    ) -> Result<Vec<R>> {
        let sync = self.repo.clone().into_sync();
        let rev = self.rev.as_str();
        let known = &self.known;
        items
            .par_iter()
            .map_init(
                || sync.to_thread_local(),
                |repo, item| f(&Reader { repo, rev, known }, item),
            )
            .collect()
    }
}

/// Object reads for one thread.
struct Reader<'r> {
    repo: &'r gix::Repository,
    rev: &'r str,
    /// Blake3 digests of blobs known without reading them.
    known: &'r HashMap<gix::ObjectId, FileDigest>,
}

impl Reader<'_> {
    fn error(&self, path: &str, message: impl std::fmt::Display) -> Error {
        Error::Input {
            kind: ErrorKind::RoleEntry,
            path: path.to_string(),
            message: format!("at `{}`: {message}", self.rev),
            hint: None,
        }
    }

    /// The raw object `id`.
    fn object(&self, id: &gix::oid, buf: &mut Vec<u8>) -> Result<gix::objs::Kind> {
        let data = self
            .repo
            .objects
            .find(id, buf)
            .map_err(|e| Error::Input {
                kind: ErrorKind::GitObject,
                path: ".".into(),
                message: format!("at `{}`: cannot read object {id}: {e}", self.rev),
                hint: Some(format!(
                    "this clone lacks objects of `{}` (a partial clone?): fetch them, or clone without `--filter`",
                    self.rev
                )),
            })?;
        Ok(data.kind)
    }

    /// The entries of the tree `id`: name, mode, object.
    fn tree(
        &self,
        id: &gix::oid,
        buf: &mut Vec<u8>,
    ) -> Result<Vec<(Vec<u8>, Mode, gix::ObjectId)>> {
        self.object(id, buf)?;
        let tree = gix::objs::TreeRefIter::from_bytes(buf, self.repo.object_hash());
        let mut out = Vec::new();
        for e in tree {
            let e = e.map_err(|e| self.error(".", format!("corrupt tree {id}: {e}")))?;
            out.push((e.filename.to_vec(), mode_of(e.mode), e.oid.to_owned()));
        }
        Ok(out)
    }

    /// What the entry at `path` of the role folder `rel` (relative to it) is in its [`Tree`]: a
    /// file with its blake3 (known, or read), or a link with its target. The blobs of
    /// `role.toml` and of the role's tests are not read: the tree leaves them out.
    fn entry_kind(
        &self,
        rel: &str,
        path: &str,
        mode: Mode,
        oid: gix::ObjectId,
        blob: &mut Vec<u8>,
    ) -> Result<EntryKind> {
        let left_out = path == "role.toml" || path == "tests" || path.starts_with("tests/");
        Ok(match mode {
            Mode::Tree => EntryKind::Dir,
            Mode::Blob | Mode::Exec => {
                let blake3 = match self.known.get(&oid) {
                    Some(digest) => *digest,
                    // Left out of the tree (`tree::left_out`): never read, never hashed.
                    None if left_out => FileDigest([0; 32]),
                    None => {
                        self.object(&oid, blob)?;
                        FileDigest::of(blob)
                    }
                };
                EntryKind::File {
                    exec: mode == Mode::Exec,
                    blake3,
                }
            }
            Mode::Link if left_out => EntryKind::Symlink {
                target: String::new(),
            },
            Mode::Link => {
                self.object(&oid, blob)?;
                let Ok(target) = String::from_utf8(blob.clone()) else {
                    return Err(self.error(
                        &format!("{rel}/{path}"),
                        "symlink target is not valid UTF-8",
                    ));
                };
                EntryKind::Symlink { target }
            }
            Mode::Submodule => {
                return Err(Error::Input {
                    kind: ErrorKind::RoleEntry,
                    path: format!("{rel}/{path}"),
                    message: format!(
                        "at `{}`: is a git submodule, which a role cannot hold",
                        self.rev
                    ),
                    hint: Some("copy the files into the role".into()),
                })
            }
        })
    }

    /// The role folder `rel` (tree `id`) as a [`Tree`], and the blob of its `role.toml`.
    fn role_tree(&self, rel: &str, id: gix::ObjectId) -> Result<(Tree, Option<gix::ObjectId>)> {
        let mut entries = Vec::new();
        let mut role_toml = None;
        let mut buf = Vec::new();
        let mut blob = Vec::new();
        let mut stack = vec![(String::new(), id)];
        while let Some((dir, id)) = stack.pop() {
            for (name, mode, oid) in self.tree(&id, &mut buf)? {
                let Ok(name) = String::from_utf8(name) else {
                    return Err(self.error(rel, "a file name is not valid UTF-8"));
                };
                let path = if dir.is_empty() {
                    name
                } else {
                    format!("{dir}/{name}")
                };
                if mode == Mode::Tree {
                    stack.push((path.clone(), oid));
                }
                if path == "role.toml" && matches!(mode, Mode::Blob | Mode::Exec) {
                    role_toml = Some(oid);
                }
                let kind = self.entry_kind(rel, &path, mode, oid, &mut blob)?;
                entries.push(Entry { path, kind });
            }
        }
        Ok((Tree::new(entries), role_toml))
    }
}

/// A name from a tree: `Err` with a lossy rendering when it is not UTF-8.
fn utf8(name: Vec<u8>) -> std::result::Result<String, String> {
    String::from_utf8(name).map_err(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}
