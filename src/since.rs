//! `--since REF`: which images changed between a git revision and the work tree, and why.
//!
//! The project is loaded as it was at REF straight from git objects ([`crate::source::gitread`]) by the
//! same loader as the work tree (`decl::load_from`), its role trees are digested the way `scan`
//! digests them on disk, and its keys are computed by the same [`key::compute`]. An image whose
//! key differs, or that REF did not have, is changed; the reasons are [`key::diff`] of the two
//! [`key::Inputs`] put into words by the plan (`plan::reasons_from`), so they cannot disagree
//! with the keys. Images that REF had and the work tree has not are listed as removed, and the
//! changed ones by name (`SinceInfo::changed`), so a plan can tell the change itself from
//! what is built only because no cache holds it (`Reason::NotCached`, decided in `plan::make`).
//!
//! Only what changed is read (issue 15). A role folder's digest is kept in the cache by its git
//! tree id, which names its content (`source::gittrees`): a folder whose id is kept is not
//! read, and one the index holds unchanged is digested from git's index and the stat cache
//! without reading a tree. The parsed declarations of the revision are kept under a digest of
//! their blob ids (`Snapshot::names`), so a revision whose declarations are those of the last
//! one read is not parsed again, and its keys under a digest of everything they were computed
//! from ([`KeptKeys`]), so a revision keyed before is neither parsed nor keyed again: only the
//! inputs of images whose key differs from the work tree's are decoded. Only the trees of roles
//! that differ from the work tree are read whole, to name the files that changed.
//!
//! Nothing is checked out, nothing is written but the cache's `since-cache`, and no process is
//! started.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::cache::Cache;
use crate::decl;
use crate::error::{Error, ErrorKind, Result};
use crate::graph::Graph;
use crate::key::{self, Inputs};
use crate::model::{OriginSource, Project, Strategy};
use crate::plan::{self, Plan, Reason, Selection, SinceInfo};
use crate::scan::{Scanned, Tree};
use crate::source::gitread::{Revision, Snapshot};
use crate::source::gittrees::RoleTrees;
use crate::workspace::Workspace;

/// The comparison of the work tree with a revision.
#[derive(Debug, Clone)]
pub struct Since {
    pub info: SinceInfo,
    /// By current image index: why its key differs from the revision's (`new` when the
    /// revision did not have it); empty when it is the same.
    pub reasons: Vec<Vec<Reason>>,
}

/// The project at a revision, keyed.
pub struct AtRevision {
    rev: String,
    commit: String,
    /// `None` when the revision has no project here (no `layer.toml`).
    then: Option<Then>,
    revision: Revision,
    /// What keyed it, to key it again when kept inputs do not decode.
    root: PathBuf,
    cache: Cache,
    strategy: Option<Strategy>,
}

/// The keys of the revision's images and what they were computed from.
struct Then {
    /// Its images' names, in its order.
    names: Vec<String>,
    index: HashMap<String, usize>,
    keys: Vec<String>,
    inputs: Vec<Old>,
    /// Role name -> its folder and git tree.
    dirs: BTreeMap<String, (String, gix::ObjectId)>,
    /// Role trees by digest, for naming the files that changed: those of the roles whose
    /// tree differs from the work tree's ([`AtRevision::read_changed_trees`]).
    trees: HashMap<String, Tree>,
}

/// An image's inputs at the revision: computed, or kept in their canonical encoding and
/// decoded only for an image whose key differs from the work tree's.
enum Old {
    Known(Arc<Inputs>),
    Encoded(Vec<u8>),
}

impl Then {
    fn new(names: Vec<String>, keys: Vec<String>, inputs: Vec<Old>) -> Then {
        let index = names
            .iter()
            .enumerate()
            .map(|(j, n)| (n.clone(), j))
            .collect();
        Then {
            names,
            index,
            keys,
            inputs,
            dirs: BTreeMap::new(),
            trees: HashMap::new(),
        }
    }

    /// Decodes the kept inputs of images `js`; false when one does not decode.
    fn decode(&mut self, js: &[usize]) -> bool {
        for &j in js {
            if let Old::Encoded(bytes) = &self.inputs[j] {
                match serde_json::from_slice::<Inputs>(bytes) {
                    Ok(inputs) => self.inputs[j] = Old::Known(Arc::new(inputs)),
                    Err(_) => return false,
                }
            }
        }
        true
    }

    fn inputs(&self, j: usize) -> &Inputs {
        match &self.inputs[j] {
            Old::Known(inputs) => inputs,
            Old::Encoded(_) => unreachable!("decoded by `read_changed_trees`"),
        }
    }
}

/// The key schema a model cache is salted with, as the workspace's.
fn salt() -> String {
    format!("key-schema {}", key::KEY_SCHEMA)
}

/// Opens the workspace at `root` and, with `since`, reads the project at that revision
/// alongside (the two share nothing until they are compared).
pub fn open(
    root: &Path,
    cache: Option<PathBuf>,
    strategy: Option<Strategy>,
    since: Option<&str>,
    vars: &[(String, String, String)],
) -> Result<(Workspace, Option<AtRevision>)> {
    let Some(rev) = since else {
        return Ok((Workspace::open_with(root, cache, strategy, vars)?, None));
    };
    // Before the threads of the join below first allocate: a thread's heap is made large at
    // its start only (4,600 `mprotect` calls otherwise, one per 4 KiB grown).
    crate::workspace::grow_heap_in_large_steps();
    let (ws, at) = rayon::join(
        || Workspace::open_with(root, cache.clone(), strategy, vars),
        || at_revision(root, cache.as_deref(), rev, strategy),
    );
    let (ws, mut at) = (ws?, at?);
    at.read_changed_trees(&ws)?;
    Ok((ws, Some(at)))
}

impl AtRevision {
    /// Reads whole the revision's trees of the roles whose digest differs from the work
    /// tree's, so the reasons can name the files that changed; the files of the work tree
    /// that git's index and `ws`'s stat cache vouch for are not read.
    pub fn read_changed_trees(&mut self, ws: &Workspace) -> Result<()> {
        let Some(then) = &mut self.then else {
            return Ok(());
        };
        // Only the images whose key differs from the work tree's are compared.
        let differ: Vec<usize> = ws
            .project
            .images
            .iter()
            .zip(&ws.keys)
            .filter_map(|(image, k)| {
                let j = *then.index.get(&image.name)?;
                (then.keys[j] != k.key).then_some(j)
            })
            .collect();
        if !then.decode(&differ) {
            // Kept inputs that do not decode (the cache is sealed: a bug, not damage): the
            // revision is keyed again, keeping nothing.
            self.then = keys_at(
                &self.root,
                &self.cache,
                &mut self.revision,
                self.strategy,
                false,
            )?;
            return self.read_changed_trees(ws);
        }
        let changed: Vec<(String, String, gix::ObjectId)> = differ
            .iter()
            .flat_map(|&j| &then.inputs(j).roles)
            .filter(|r| {
                ws.scanned
                    .digests
                    .get(&r.name)
                    .is_some_and(|d| *d != r.tree)
                    && !then.trees.contains_key(&r.tree)
            })
            .filter_map(|r| {
                let (dir, id) = then.dirs.get(&r.name)?;
                Some((r.tree.clone(), (dir.clone(), *id)))
            })
            .collect::<BTreeMap<_, _>>()
            .into_iter()
            .map(|(digest, (dir, id))| (digest, dir, id))
            .collect();
        if changed.is_empty() {
            return Ok(());
        }
        let dirs: Vec<&str> = changed.iter().map(|(_, dir, _)| dir.as_str()).collect();
        self.revision
            .learn_digests(&ws.stat, &dirs, &std::collections::HashSet::new());
        for (digest, dir, id) in changed {
            let tree = self.revision.full_role_tree(&dir, id)?;
            then.trees.insert(digest, tree);
        }
        Ok(())
    }
}

/// Reads the project at revision `rev` and keys it. `strategy` is the one given on the
/// command line, if any; otherwise the revision keys with its own `[project].strategy`, so a
/// changed strategy shows. Pinned parents (`from = "PARENT@PIN"`) are resolved in the cache
/// (`cache`, or `cache/` in the project), as the workspace resolves them.
pub fn at_revision(
    root: &Path,
    cache: Option<&Path>,
    rev: &str,
    strategy: Option<Strategy>,
) -> Result<AtRevision> {
    let root = root.canonicalize().map_err(|e| Error::io(root, e))?;
    let cache = Cache::new(cache.map_or_else(|| root.join("cache"), Path::to_path_buf));
    let mut revision = Revision::open(&root, rev)?;
    let then = keys_at(&root, &cache, &mut revision, strategy, true)?;
    Ok(AtRevision {
        rev: rev.to_string(),
        commit: revision.commit.clone(),
        then,
        revision,
        root,
        cache,
        strategy,
    })
}

/// What `since-cache` holds: the identity of the layer that wrote it, the role trees, the
/// model of the last revision read (`decl::seal_named`), and that revision's keys
/// ([`KeptKeys`], or nothing), each after its length.
#[derive(Default)]
struct Kept {
    trees: RoleTrees,
    model: Vec<u8>,
    keys: Option<KeptKeys>,
}

/// Takes the length-prefixed bytes at the start of `*b`.
fn take<'b>(b: &mut &'b [u8]) -> Option<&'b [u8]> {
    let len = usize::try_from(u64::from_le_bytes(b.get(..8)?.try_into().ok()?)).ok()?;
    let part = b.get(8..8usize.checked_add(len)?)?;
    *b = &b[8 + len..];
    Some(part)
}

fn put(out: &mut Vec<u8>, part: &[u8]) {
    out.extend_from_slice(&(part.len() as u64).to_le_bytes());
    out.extend_from_slice(part);
}

impl Kept {
    fn load(cache: &Cache, identity: &[u8]) -> Kept {
        let Some(bytes) = cache.load_since_cache() else {
            return Kept::default();
        };
        let parse = || -> Option<Kept> {
            let mut b = &bytes[..];
            let id = take(&mut b)?;
            let trees = take(&mut b)?;
            let model = take(&mut b)?;
            let keys = take(&mut b)?;
            if id != identity || !b.is_empty() {
                return None;
            }
            Some(Kept {
                trees: RoleTrees::decode(trees)?,
                model: model.to_vec(),
                keys: match keys {
                    [] => None,
                    keys => Some(KeptKeys::decode(keys)?),
                },
            })
        };
        parse().unwrap_or_default()
    }

    fn encode(&self, identity: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let keys = self.keys.as_ref().map(KeptKeys::encode).unwrap_or_default();
        for part in [identity, &self.trees.encode(), &self.model, &keys] {
            put(&mut out, part);
        }
        out
    }
}

/// The keys of the last revision keyed, kept so that a revision keyed before is not keyed
/// again (issue 15): they hold while what they were computed from holds, which is
/// everything the revision names ([`keys_from`]: its declarations' blob ids, its role trees'
/// digests, the strategy asked for; the layer that wrote them is the cache's identity) and
/// the facts outside it ([`Fact`]). A revision with pinned parents keyed deep keeps no keys:
/// a pin stands for the cache's released builds, which change without the revision.
#[derive(Debug, Clone, PartialEq, Eq)]
struct KeptKeys {
    from: [u8; 32],
    facts: Vec<Fact>,
    /// Role name and folder.
    dirs: Vec<(String, String)>,
    /// Per image, in the revision's order: name, key, and canonical inputs
    /// ([`Inputs::canonical`]).
    images: Vec<(String, String, Vec<u8>)>,
}

/// What a revision's keys depend on besides what it names.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Fact {
    /// The file at this project path of the revision (a `tar` origin, a backend's file) is
    /// this blob, or is missing.
    RevisionFile(String, Option<gix::ObjectId>),
    /// The host file of a `busybox` origin that pins no digest has this digest now.
    HostFile(String, String),
}

impl Fact {
    fn holds(&self, revision: &Revision) -> bool {
        match self {
            Fact::RevisionFile(path, blob) => revision.file_blob(path).ok().as_ref() == Some(blob),
            Fact::HostFile(path, digest) => {
                host_digest(Path::new(path)).ok().as_ref() == Some(digest)
            }
        }
    }
}

impl KeptKeys {
    const MAGIC: &'static [u8; 12] = b"layer-keys\0\x01";

    fn encode(&self) -> Vec<u8> {
        let mut out = Self::MAGIC.to_vec();
        out.extend_from_slice(&self.from);
        out.extend_from_slice(&(self.facts.len() as u64).to_le_bytes());
        for fact in &self.facts {
            let (tag, path, value): (&[u8], &str, &[u8]) = match fact {
                Fact::RevisionFile(p, blob) => {
                    (b"r", p, blob.as_ref().map_or(&[][..], |b| b.as_bytes()))
                }
                Fact::HostFile(p, digest) => (b"h", p, digest.as_bytes()),
            };
            put(&mut out, tag);
            put(&mut out, path.as_bytes());
            put(&mut out, value);
        }
        out.extend_from_slice(&(self.dirs.len() as u64).to_le_bytes());
        for (name, dir) in &self.dirs {
            put(&mut out, name.as_bytes());
            put(&mut out, dir.as_bytes());
        }
        out.extend_from_slice(&(self.images.len() as u64).to_le_bytes());
        for (name, key, inputs) in &self.images {
            put(&mut out, name.as_bytes());
            put(&mut out, key.as_bytes());
            put(&mut out, inputs);
        }
        out
    }

    /// The keys `bytes` encode; `None` unless they are exactly an encoding.
    fn decode(bytes: &[u8]) -> Option<KeptKeys> {
        let mut b = bytes.strip_prefix(&Self::MAGIC[..])?;
        let from: [u8; 32] = b.get(..32)?.try_into().ok()?;
        b = &b[32..];
        // Every entry takes at least 16 bytes: no count makes a huge allocation.
        let count = |b: &mut &[u8]| -> Option<usize> {
            let n = u64::from_le_bytes(b.get(..8)?.try_into().ok()?);
            *b = &b[8..];
            usize::try_from(n).ok().filter(|&n| n <= b.len() / 16)
        };
        let text = |b: &mut &[u8]| -> Option<String> { String::from_utf8(take(b)?.to_vec()).ok() };
        let mut facts = Vec::new();
        for _ in 0..count(&mut b)? {
            let tag = take(&mut b)?;
            let path = text(&mut b)?;
            let value = take(&mut b)?;
            facts.push(match tag {
                b"r" if value.is_empty() => Fact::RevisionFile(path, None),
                b"r" => Fact::RevisionFile(
                    path,
                    Some(gix::hash::oid::try_from_bytes(value).ok()?.to_owned()),
                ),
                b"h" => Fact::HostFile(path, String::from_utf8(value.to_vec()).ok()?),
                _ => return None,
            });
        }
        let mut dirs = Vec::new();
        for _ in 0..count(&mut b)? {
            dirs.push((text(&mut b)?, text(&mut b)?));
        }
        let mut images = Vec::new();
        for _ in 0..count(&mut b)? {
            images.push((text(&mut b)?, text(&mut b)?, take(&mut b)?.to_vec()));
        }
        b.is_empty().then_some(KeptKeys {
            from,
            facts,
            dirs,
            images,
        })
    }

    /// The revision keyed with these keys, its role folders as `snap` names them.
    fn then(&self, snap: &Snapshot) -> Then {
        let names = self.images.iter().map(|(n, _, _)| n.clone()).collect();
        let keys = self.images.iter().map(|(_, k, _)| k.clone()).collect();
        let inputs = self
            .images
            .iter()
            .map(|(_, _, i)| Old::Encoded(i.clone()))
            .collect();
        let mut then = Then::new(names, keys, inputs);
        for (name, dir) in &self.dirs {
            if let Some(id) = snap.roles.get(dir) {
                then.dirs.insert(name.clone(), (dir.clone(), *id));
            }
        }
        then
    }
}

/// A digest of what a revision names that its keys are computed from: the project root, its
/// declarations ([`Snapshot::names`]), each role folder's tree digest, and the strategy
/// asked for.
fn keys_from(
    root: &Path,
    snap: &Snapshot,
    trees: &RoleTrees,
    strategy: Option<Strategy>,
) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(b"layer-since-keys\0");
    h.update(root.as_os_str().as_encoded_bytes());
    h.update(b"\0");
    h.update(&snap.names());
    let mut dirs: Vec<_> = snap.roles.iter().collect();
    dirs.sort_unstable();
    for (dir, id) in dirs {
        h.update(&(dir.len() as u64).to_le_bytes());
        h.update(dir.as_bytes());
        h.update(&trees.get(id).map_or([0; 32], |t| t.digest));
    }
    h.update(match strategy {
        None => b"-",
        Some(Strategy::Deep) => b"d",
        Some(Strategy::Shallow) => b"s",
    });
    h.finalize().into()
}

/// The digest of the host file of a `busybox` origin, as the workspace's scan takes it
/// (`missing` when it is no file); `Err` with why it cannot be one.
fn host_digest(path: &Path) -> std::result::Result<String, String> {
    crate::scan::host_program(path)?;
    Ok(std::fs::metadata(path)
        .ok()
        .filter(std::fs::Metadata::is_file)
        .and_then(|m| crate::scan::hash_file(path, m.len()).ok())
        .map(|h| blake3::Hash::from(h).to_hex().to_string())
        .unwrap_or_else(|| "missing".into()))
}

/// The digest of every role folder of `snap`: kept, digested from git's index, or read.
/// Returns them, and whether any was not kept.
fn role_trees(
    cache: &Cache,
    revision: &mut Revision,
    snap: &Snapshot,
    kept: &RoleTrees,
) -> Result<(RoleTrees, bool)> {
    let mut trees = kept.only(snap.roles.values().copied());
    let wanted: std::collections::HashSet<gix::ObjectId> = snap
        .roles
        .values()
        .filter(|id| trees.get(id).is_none())
        .copied()
        .collect();
    if wanted.is_empty() {
        return Ok((trees, false));
    }
    let from_index = revision.learn_digests(&cache.load_stat_cache(), &[], &wanted);
    for id in &wanted {
        if let Some(t) = from_index.get(id) {
            trees.insert(*id, *t);
        }
    }
    let mut unread: BTreeMap<gix::ObjectId, String> = BTreeMap::new();
    for (dir, id) in &snap.roles {
        if trees.get(id).is_none() {
            let first = unread.entry(*id).or_insert_with(|| dir.clone());
            if dir < first {
                first.clone_from(dir);
            }
        }
    }
    let unread: Vec<(String, gix::ObjectId)> =
        unread.into_iter().map(|(id, dir)| (dir, id)).collect();
    trees.extend(&revision.role_trees(&unread)?);
    Ok((trees, true))
}

/// The project at the revision as `snap` names it: the one kept when its declarations are
/// those of the last revision read, or parsed from the blobs; and the model to keep, if new.
fn load_at(
    root: &Path,
    revision: &Revision,
    snap: &mut Snapshot,
    kept_model: &[u8],
) -> Result<(Project, Option<Vec<u8>>)> {
    let names = snap.names();
    if let Some(project) = decl::reuse_named(kept_model, root, &names, &salt()) {
        return Ok((project, None));
    }
    revision.read_contents(snap)?;
    let project = decl::load_from(root, &*snap).map_err(|e| Error::Usage {
        kind: ErrorKind::SinceLoad,
        message: format!(
            "`--since {}`: the project at that revision does not load:\n{e}",
            revision.rev
        ),
        hint: e.hint(),
    })?;
    let model = decl::seal_named(&project, &names, &salt());
    Ok((project, model))
}

/// Compares the workspace with the project at a revision.
pub fn compare(ws: &Workspace, at: &AtRevision) -> Since {
    let then = &at.then;
    let input = ws.input();
    let new_tree = |r: &str| ws.tree(r).ok();
    let reasons = ws
        .project
        .images
        .iter()
        .enumerate()
        .map(|(i, image)| {
            let Some(then) = &then else {
                return vec![Reason::New];
            };
            let Some(&j) = then.index.get(&image.name) else {
                return vec![Reason::New];
            };
            let new = &ws.keys[i];
            if then.keys[j] == new.key {
                return vec![];
            }
            let old_tree = |d: &str| then.trees.get(d).cloned();
            let changes = key::diff(then.inputs(j), &new.inputs, &old_tree, &new_tree);
            plan::reasons_from(&input, i, &changes)
        })
        .collect::<Vec<Vec<Reason>>>();
    let removed = then
        .as_ref()
        .map(|t| {
            t.names
                .iter()
                .filter(|n| ws.index(n).is_none())
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    let changed = ws
        .project
        .images
        .iter()
        .zip(&reasons)
        .filter(|(_, r)| !r.is_empty())
        .map(|(i, _)| i.name.clone())
        .collect();
    Since {
        info: SinceInfo {
            rev: at.rev.clone(),
            commit: at.commit.clone(),
            removed,
            changed,
        },
        reasons,
    }
}

/// The keys of the project at `revision`; `None` when the revision has no `layer.toml` here.
/// With `reuse`, the keys kept for the same revision are used when they still hold. Saves
/// what it learned in the cache's `since-cache`.
fn keys_at(
    root: &Path,
    cache: &Cache,
    revision: &mut Revision,
    strategy: Option<Strategy>,
    reuse: bool,
) -> Result<Option<Then>> {
    let mut snap = revision.snapshot()?;
    if !snap.has_project() {
        return Ok(None);
    }
    let identity = decl::cache_identity(&salt());
    let kept = identity
        .as_deref()
        .map(|id| Kept::load(cache, id))
        .unwrap_or_default();
    let (trees, new_trees) = role_trees(cache, revision, &snap, &kept.trees)?;
    snap.add_roles(&trees);
    let from = keys_from(root, &snap, &trees, strategy);
    let still = kept
        .keys
        .as_ref()
        .filter(|k| reuse && k.from == from && k.facts.iter().all(|f| f.holds(revision)));
    let (then, model, keys) = match still {
        Some(keys) => (keys.then(&snap), None, Some(keys.clone())),
        None => {
            let (project, model) = load_at(root, revision, &mut snap, &kept.model)?;
            let (then, keys) = compute_at(project, cache, revision, &snap, &trees, strategy, from)?;
            (then, model, keys)
        }
    };
    if let (Some(id), true) = (&identity, new_trees || model.is_some() || keys != kept.keys) {
        // The trees of this revision, and those kept before while they are not many more.
        let mut keep = trees.clone();
        if kept.trees.len() + trees.len() <= 2 * snap.roles.len() + 64 {
            keep = kept.trees.clone();
            keep.extend(&trees);
        }
        let next = Kept {
            trees: keep,
            model: model.unwrap_or(kept.model),
            keys,
        };
        // Like the stat cache, it only saves work: a cache folder that cannot be written is
        // no error.
        let _ = cache.save_since_cache(&next.encode(id));
    }
    Ok(Some(then))
}

/// Keys `project`, the revision's, whose role folders `snap` names with their `trees`; and
/// the keys to keep under `from` ([`keys_from`]), unless pins make them depend on the cache.
fn compute_at(
    mut project: Project,
    cache: &Cache,
    revision: &Revision,
    snap: &Snapshot,
    trees: &RoleTrees,
    strategy: Option<Strategy>,
    from: [u8; 32],
) -> Result<(Then, Option<KeptKeys>)> {
    let mut scanned = Scanned::default();
    let mut dirs = BTreeMap::new();
    for (name, role) in &project.roles {
        let Some(id) = snap.roles.get(&role.dir) else {
            continue;
        };
        let digest = trees
            .get(id)
            .expect("every role folder has its tree")
            .digest;
        // Keys read a tree's digest only; its entries are read for the roles that changed.
        let digest = blake3::Hash::from(digest).to_hex().to_string();
        scanned.digests.insert(name.clone(), digest);
        dirs.insert(name.clone(), (role.dir.clone(), *id));
    }
    let mut facts = Vec::new();
    let mut revision_file = |path: &str| -> Result<String> {
        let blob = revision.file_blob(path)?;
        facts.push(Fact::RevisionFile(path.to_string(), blob));
        Ok(match blob {
            Some(blob) => revision.blob_digest(&blob)?,
            None => "missing".into(),
        })
    };
    let used: std::collections::BTreeSet<String> = project
        .images
        .iter()
        .filter_map(|i| i.origin().map(str::to_string))
        .collect();
    let mut hosts = Vec::new();
    for name in used {
        let digest = match &project.origins[&name].source {
            // A host file: the revision cannot say what it was; it is what it is now.
            OriginSource::Busybox { path, .. } => {
                match crate::scan::pinned_busybox(&project, &name) {
                    Some(pinned) => pinned,
                    None => {
                        let digest = host_digest(path)
                            .map_err(|why| crate::scan::host_program_error(&name, path, &why))?;
                        let path = path.to_string_lossy().into_owned();
                        hosts.push(Fact::HostFile(path, digest.clone()));
                        digest
                    }
                }
            }
            OriginSource::TarFile { path } => revision_file(path)?,
            _ => continue,
        };
        scanned.origin_files.insert(name, digest);
    }
    for backend in project.backends.values() {
        for f in backend.project_files() {
            let digest = revision_file(f)?;
            scanned.backend_files.insert(f.to_string(), digest);
        }
    }
    facts.extend(hosts);
    // A `resolve` origin the revision's lock did not pin still has an identity there: none.
    crate::lock::pin_unresolved(&mut project);
    let mut graph = Graph::new(&project);
    let strategy = strategy.unwrap_or(project.strategy);
    // Pinned images stand on the released parent build they are pinned to, cut from their
    // parent, as in `Workspace::open` (shallow builds have no pins: keys chain no parents).
    let pinned = match strategy {
        Strategy::Deep => {
            let pins = crate::workspace::resolve_pins(&project, cache)?;
            crate::release::unlink_pinned(&pins, &mut graph)
        }
        Strategy::Shallow => Vec::new(),
    };
    let keys = key::compute_with_pins(&project, &graph, strategy, &scanned, &pinned)?;
    let kept = pinned.iter().all(Option::is_none).then(|| KeptKeys {
        from,
        facts,
        dirs: dirs
            .iter()
            .map(|(name, (dir, _))| (name.clone(), dir.clone()))
            .collect(),
        images: project
            .images
            .iter()
            .zip(&keys)
            .map(|(i, k)| (i.name.clone(), k.key.clone(), k.inputs.canonical()))
            .collect(),
    });
    let names = project.images.iter().map(|i| i.name.clone()).collect();
    let (keys, inputs) = keys
        .into_iter()
        .map(|k| (k.key, Old::Known(k.inputs)))
        .unzip();
    let mut then = Then::new(names, keys, inputs);
    then.dirs = dirs;
    Ok((then, kept))
}

/// The plan for `sel`, narrowed with `--since` to what changed since the revision: [`compare`],
/// then `plan::make` with the changed images (and their descendants) selected, and the
/// revision noted on the plan.
pub fn plan(ws: &Workspace, mut sel: Selection, at: Option<&AtRevision>) -> Plan {
    let Some(at) = at else {
        return ws.plan(&sel);
    };
    let since = compare(ws, at);
    sel.since = Some(since.reasons);
    let mut plan = ws.plan(&sel);
    plan.since = Some(since.info);
    plan
}

#[cfg(test)]
mod tests;
