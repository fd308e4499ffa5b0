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
//! one read is not parsed again. Only the trees of roles that differ from the work tree are
//! read whole, to name the files that changed.
//!
//! Nothing is checked out, nothing is written but the cache's `since-cache`, and no process is
//! started.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use crate::cache::Cache;
use crate::decl;
use crate::error::{Error, ErrorKind, Result};
use crate::graph::Graph;
use crate::key::{self, ImageKey};
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
}

struct Then {
    project: Project,
    graph: Graph,
    keys: Vec<ImageKey>,
    /// Role name -> its folder and git tree.
    dirs: BTreeMap<String, (String, gix::ObjectId)>,
    /// Role trees by digest, for naming the files that changed: those of the roles whose
    /// tree differs from the work tree's ([`AtRevision::read_changed_trees`]).
    trees: HashMap<String, Tree>,
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
        let changed: Vec<(String, String, gix::ObjectId)> = then
            .keys
            .iter()
            .flat_map(|k| &k.inputs.roles)
            .filter(|r| {
                ws.scanned
                    .trees
                    .get(&r.name)
                    .is_some_and(|t| t.digest != r.tree)
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
    let then = keys_at(&root, &cache, &mut revision, strategy)?;
    Ok(AtRevision {
        rev: rev.to_string(),
        commit: revision.commit.clone(),
        then,
        revision,
    })
}

/// What `since-cache` holds: the identity of the layer that wrote it, the role trees, and the
/// model of the last revision read (`decl::seal_named`), each after its length.
struct Kept {
    trees: RoleTrees,
    model: Vec<u8>,
}

impl Kept {
    fn load(cache: &Cache, identity: &[u8]) -> Kept {
        let empty = || Kept {
            trees: RoleTrees::default(),
            model: Vec::new(),
        };
        let Some(bytes) = cache.load_since_cache() else {
            return empty();
        };
        let take = |b: &[u8]| -> Option<(Vec<u8>, usize)> {
            let len = usize::try_from(u64::from_le_bytes(b.get(..8)?.try_into().ok()?)).ok()?;
            Some((b.get(8..8usize.checked_add(len)?)?.to_vec(), 8 + len))
        };
        let parse = || -> Option<Kept> {
            let (id, at) = take(&bytes)?;
            let (trees, more) = take(&bytes[at..])?;
            let (model, rest) = take(&bytes[at + more..])?;
            if id != identity || at + more + rest != bytes.len() {
                return None;
            }
            Some(Kept {
                trees: RoleTrees::decode(&trees)?,
                model,
            })
        };
        parse().unwrap_or_else(empty)
    }

    fn encode(&self, identity: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for part in [identity, &self.trees.encode(), &self.model] {
            out.extend_from_slice(&(part.len() as u64).to_le_bytes());
            out.extend_from_slice(part);
        }
        out
    }
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
    let new_tree = |r: &str| ws.scanned.trees.get(r).cloned();
    let reasons = ws
        .project
        .images
        .iter()
        .enumerate()
        .map(|(i, image)| {
            let Some(then) = &then else {
                return vec![Reason::New];
            };
            let Some(&j) = then.graph.index.get(&image.name) else {
                return vec![Reason::New];
            };
            let (old, new) = (&then.keys[j.index()], &ws.keys[i]);
            if old.key == new.key {
                return vec![];
            }
            let old_tree = |d: &str| then.trees.get(d).cloned();
            let changes = key::diff(&old.inputs, &new.inputs, &old_tree, &new_tree);
            plan::reasons_from(&input, i, &changes)
        })
        .collect::<Vec<Vec<Reason>>>();
    let removed = then
        .as_ref()
        .map(|t| {
            t.project
                .images
                .iter()
                .filter(|i| ws.index(&i.name).is_none())
                .map(|i| i.name.clone())
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

/// The project at `revision` and its keys; `None` when the revision has no `layer.toml` here.
/// Saves what it learned in the cache's `since-cache`.
fn keys_at(
    root: &Path,
    cache: &Cache,
    revision: &mut Revision,
    strategy: Option<Strategy>,
) -> Result<Option<Then>> {
    let mut snap = revision.snapshot()?;
    if !snap.has_project() {
        return Ok(None);
    }
    let identity = decl::cache_identity(&salt());
    let kept = identity
        .as_deref()
        .map(|id| Kept::load(cache, id))
        .unwrap_or(Kept {
            trees: RoleTrees::default(),
            model: Vec::new(),
        });
    let (trees, new_trees) = role_trees(cache, revision, &snap, &kept.trees)?;
    snap.add_roles(&trees);
    let (mut project, model) = load_at(root, revision, &mut snap, &kept.model)?;
    if let (Some(id), true) = (&identity, new_trees || model.is_some()) {
        // The trees of this revision, and those kept before while they are not many more.
        let mut keep = trees.clone();
        if kept.trees.len() + trees.len() <= 2 * snap.roles.len() + 64 {
            keep = kept.trees.clone();
            keep.extend(&trees);
        }
        let next = Kept {
            trees: keep,
            model: model.unwrap_or(kept.model),
        };
        // Like the stat cache, it only saves work: a cache folder that cannot be written is
        // no error.
        let _ = cache.save_since_cache(&next.encode(id));
    }
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
        let tree = Tree {
            entries: Vec::new(),
            digest: blake3::Hash::from(digest).to_hex().to_string(),
        };
        scanned.trees.insert(name.clone(), tree);
        dirs.insert(name.clone(), (role.dir.clone(), *id));
    }
    let used: std::collections::BTreeSet<String> = project
        .images
        .iter()
        .filter_map(|i| i.origin().map(str::to_string))
        .collect();
    for name in used {
        let digest = match &project.origins[&name].source {
            // A host file: the revision cannot say what it was; it is what it is now.
            OriginSource::Busybox { path, .. } => {
                match crate::scan::pinned_busybox(&project, &name) {
                    Some(pinned) => pinned,
                    None => {
                        if let Err(why) = crate::scan::host_program(path) {
                            return Err(crate::scan::host_program_error(&name, path, &why));
                        }
                        std::fs::metadata(path)
                            .ok()
                            .filter(std::fs::Metadata::is_file)
                            .and_then(|m| crate::scan::hash_file(path, m.len()).ok())
                            .map(|h| blake3::Hash::from(h).to_hex().to_string())
                            .unwrap_or_else(|| "missing".into())
                    }
                }
            }
            OriginSource::TarFile { path } => revision
                .file_digest(path)?
                .unwrap_or_else(|| "missing".into()),
            _ => continue,
        };
        scanned.origin_files.insert(name, digest);
    }
    let mut backend_files = BTreeMap::new();
    for backend in project.backends.values() {
        for f in backend.project_files() {
            let digest = revision.file_digest(f)?.unwrap_or_else(|| "missing".into());
            backend_files.insert(f.to_string(), digest);
        }
    }
    scanned.backend_files = backend_files;
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
    Ok(Some(Then {
        project,
        graph,
        keys,
        dirs,
        trees: HashMap::new(),
    }))
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
