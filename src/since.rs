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
//! Nothing is checked out, nothing is written, and no process is started.

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
use crate::source::gitread::Revision;
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
}

struct Then {
    project: Project,
    graph: Graph,
    keys: Vec<ImageKey>,
    /// Role trees by digest, for naming the files that changed.
    trees: HashMap<String, Tree>,
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
    let (ws, at) = rayon::join(
        || Workspace::open_with(root, cache.clone(), strategy, vars),
        || at_revision(root, cache.as_deref(), rev, strategy),
    );
    Ok((ws?, Some(at?)))
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
    // Files unchanged since they were staged in git are not read again at the revision.
    revision.learn_digests(&cache.load_stat_cache());
    let then = keys_at(&root, &cache, &revision, strategy)?;
    Ok(AtRevision {
        rev: rev.to_string(),
        commit: revision.commit.clone(),
        then,
    })
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
fn keys_at(
    root: &Path,
    cache: &Cache,
    revision: &Revision,
    strategy: Option<Strategy>,
) -> Result<Option<Then>> {
    let snap = revision.snapshot()?;
    if !snap.has_project() {
        return Ok(None);
    }
    let mut project = decl::load_from(root, &snap).map_err(|e| Error::Usage {
        kind: ErrorKind::SinceLoad,
        message: format!(
            "`--since {}`: the project at that revision does not load:\n{e}",
            revision.rev
        ),
        hint: e.hint(),
    })?;
    let mut scanned = Scanned::default();
    for (name, role) in &project.roles {
        if let Some(t) = snap.trees.get(&role.dir) {
            scanned.trees.insert(name.clone(), t.clone());
        }
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
    let trees = scanned
        .trees
        .into_values()
        .map(|t| (t.digest.clone(), t))
        .collect();
    Ok(Some(Then {
        project,
        graph,
        keys,
        trees,
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
