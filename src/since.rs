//! `--since REF`: which images changed between a git revision and the work tree, and why.
//!
//! The project is loaded as it was at REF straight from git objects ([`crate::gitread`]) by the
//! same loader as the work tree (`decl::load_from`), its role trees are digested the way `scan`
//! digests them on disk, and its keys are computed by the same [`key::compute`]. An image whose
//! key differs, or that REF did not have, is changed; the reasons are [`key::diff`] of the two
//! [`key::Inputs`] put into words by the plan (`plan::reasons_from`), so they cannot disagree
//! with the keys. Images that REF had and the work tree has not are listed as removed.
//!
//! Nothing is checked out, nothing is written, and no process is started.

use std::collections::{BTreeMap, HashMap};

use crate::decl;
use crate::error::{Error, Result};
use crate::gitread::Revision;
use crate::graph::Graph;
use crate::key::{self, ImageKey};
use crate::model::{OriginSource, Project, Strategy};
use crate::plan::{self, Plan, Reason, Selection, SinceInfo};
use crate::scan::{Scanned, Tree};
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
struct Then {
    project: Project,
    graph: Graph,
    keys: Vec<ImageKey>,
    /// Role trees by digest, for naming the files that changed.
    trees: HashMap<String, Tree>,
}

/// Compares the workspace with revision `rev`. `strategy` is the one given on the command
/// line, if any; otherwise each side keys with its own `[project].strategy`, so a changed
/// strategy shows.
pub fn compare(ws: &Workspace, rev: &str, strategy: Option<Strategy>) -> Result<Since> {
    let revision = Revision::open(&ws.project.root, rev)?;
    let then = keys_at(ws, &revision, strategy)?;
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
            let (old, new) = (&then.keys[j], &ws.keys[i]);
            if old.key == new.key {
                return vec![];
            }
            let old_tree = |d: &str| then.trees.get(d).cloned();
            let changes = key::diff(&old.inputs, &new.inputs, &old_tree, &new_tree);
            plan::reasons_from(&input, i, &changes)
        })
        .collect();
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
    Ok(Since {
        info: SinceInfo {
            rev: rev.to_string(),
            commit: revision.commit.clone(),
            removed,
        },
        reasons,
    })
}

/// The project at `revision` and its keys; `None` when the revision has no `layer.toml` here.
fn keys_at(ws: &Workspace, revision: &Revision, strategy: Option<Strategy>) -> Result<Option<Then>> {
    let snap = revision.snapshot()?;
    if !snap.has_project() {
        return Ok(None);
    }
    let mut project = decl::load_from(&ws.project.root, &snap).map_err(|e| Error::Usage {
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
            OriginSource::Busybox { path } => match ws.scanned.origin_files.get(&name) {
                Some(d) if matches!(&ws.project.origins.get(&name).map(|o| &o.source), Some(OriginSource::Busybox { path: p }) if p == path) => {
                    d.clone()
                }
                _ => std::fs::metadata(path)
                    .ok()
                    .and_then(|m| crate::scan::hash_file(path, m.len()).ok())
                    .map(|h| blake3::Hash::from(h).to_hex().to_string())
                    .unwrap_or_else(|| "missing".into()),
            },
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
    let unlocked: Vec<String> = project
        .origins
        .iter()
        .filter(|(n, o)| {
            matches!(o.source, OriginSource::Resolve { .. })
                && project.lock.origins.get(*n).is_none_or(|l| l.id.is_none())
        })
        .map(|(n, _)| n.clone())
        .collect();
    for n in unlocked {
        project.lock.origins.entry(n).or_default().id = Some("(not locked)".into());
    }
    let graph = Graph::new(&project);
    let strategy = strategy.unwrap_or(project.strategy);
    let keys = key::compute(&project, &graph, strategy, &scanned)?;
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

/// The plan for `sel` narrowed to what changed since `rev`: [`compare`], then `plan::make`
/// with the changed images selected (and their descendants), and the revision noted on the
/// plan.
pub fn plan(
    ws: &Workspace,
    mut sel: Selection,
    rev: &str,
    strategy: Option<Strategy>,
) -> Result<Plan> {
    let since = compare(ws, rev, strategy)?;
    sel.since = Some(since.reasons);
    let mut plan = ws.plan(&sel);
    plan.since = Some(since.info);
    Ok(plan)
}
