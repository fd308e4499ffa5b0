//! The plan: which images a build would build, in which wave, and why. `layer plan` prints a
//! `Plan`; `layer build` hands the same value to the executor. Pure: records come in as
//! [`Lookup`]s and through [`History`], so tests plan against fakes.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use rayon::prelude::*;
use serde::Serialize;

use crate::graph::{Graph, ImageId, ImageMap};
use crate::key::ImageKey;
use crate::model::{Project, Strategy};
use crate::record::{Lookup, Record};
use crate::release::Pin;
use crate::scan::Tree;

mod reason;
mod stale;
#[cfg(test)]
mod tests;

pub use reason::{describe_file_change, Reason};
use stale::remote_fresh;
pub use stale::{changes_since, reasons_from, stale_reasons};

/// Images per piece of a plan's parallel work: a fresh image's reasons take about a
/// microsecond, so smaller pieces would cost more to hand out than they save.
const PAR_MIN: usize = 256;

/// The schema of `layer plan --format json`.
pub const PLAN_SCHEMA: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Stale and selected.
    Build,
    /// The cache holds a usable record.
    Fresh,
    /// Not selected.
    Skip,
}

/// Which cache holds the record of a fresh image (SPEC §8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Cached {
    /// The local cache.
    Local,
    /// Only the remote cache: a trusted record, not downloaded yet.
    Remote,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedImage {
    pub name: String,
    pub key: String,
    pub action: Action,
    /// `fresh`: where its record is; absent for images to build or skipped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cached: Option<Cached>,
    pub reasons: Vec<Reason>,
    pub parent: Option<String>,
    pub origin: Option<String>,
    pub roles: Vec<String>,
    pub wave: Option<usize>,
    /// `from = "PARENT@PIN"`: the released parent build the image is built on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pin: Option<Pin>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub build: usize,
    pub fresh: usize,
    pub skip: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub schema: u32,
    pub strategy: Strategy,
    /// With `--since REF`: the revision compared with, and the images it had that are gone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<SinceInfo>,
    /// In topological order, ties by name.
    pub images: Vec<PlannedImage>,
    pub summary: Summary,
}

/// What `--since REF` adds to a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SinceInfo {
    /// As given (`origin/main`).
    pub rev: String,
    /// The commit it named.
    pub commit: String,
    /// Images declared at the revision and no longer.
    pub removed: Vec<String>,
    /// Images whose key differs from their key at the revision (new ones included).
    pub changed: Vec<String>,
}

impl Plan {
    pub fn to_build(&self) -> impl Iterator<Item = &PlannedImage> {
        self.images.iter().filter(|i| i.action == Action::Build)
    }
}

/// What the plan may ask of the cache beyond the lookups of current keys.
pub trait History: Sync {
    /// The build stale reasons compare with: image `name`'s newest build of `strategy`, else
    /// its newest of any strategy (a deep plan after shallow builds compares with the deep ones).
    fn latest(&self, name: &str, strategy: Strategy) -> Option<Record>;
    fn tree(&self, digest: &str) -> Option<Tree>;
    /// The current tree of `role` when the scan knew it by digest alone (`PlanInput::trees`
    /// lacks it): walked again on demand, for the file changes of a stale image's reasons.
    fn role_tree(&self, _role: &str) -> Option<Tree> {
        None
    }
    fn artifact_exists(&self, record: &Record) -> bool;
    /// Called once before a plan asks its questions from several threads at once: whatever
    /// the answers are computed from in bulk is computed here, on the caller's thread.
    /// (Computed lazily instead, it would run inside the plan's parallel map, where a thread
    /// waiting for the bulk work can be handed another image that waits for the same.)
    fn prepare(&self) {}
    /// The released parent build image `name` is pinned to, if it is pinned.
    fn pin(&self, _name: &str) -> Option<&Pin> {
        None
    }
    /// Whether build `version` of image `name` was revoked.
    fn revoked(&self, _name: &str, _version: &str) -> bool {
        false
    }
    /// A trusted record of image `name`'s current key on the remote cache, looked up (and
    /// verified, without its blobs) before planning; only asked for images not fresh locally.
    fn remote(&self, _name: &str) -> Option<&Record> {
        None
    }
}

/// Which images a command is about.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// Indices of the named targets; empty means every image.
    pub targets: Vec<usize>,
    /// `--changed`: only stale images and their descendants.
    pub changed: bool,
    /// `--force`: build the targets (every image when there are none) even when fresh; what
    /// they are built on is built only when stale.
    pub force: bool,
    /// `--force-deps`: build the targets and every image they are built on even when fresh.
    pub force_deps: bool,
    /// `--max-age`: one age limit for every image, over their own `max_age`.
    pub max_age: Option<(Duration, String)>,
    /// `--since REF`: by image, why its key differs from REF's (empty when it does not). Only
    /// those images and their descendants are selected, and a stale one gives these reasons.
    pub since: Option<Vec<Vec<Reason>>>,
}

/// Everything a plan is made from.
pub struct PlanInput<'a> {
    pub project: &'a Project,
    pub graph: &'a Graph,
    pub strategy: Strategy,
    pub keys: &'a [ImageKey],
    /// The record of each image's current key, by index.
    pub lookups: &'a [Lookup],
    /// Current role trees, by role name.
    pub trees: &'a BTreeMap<String, Tree>,
    pub history: &'a dyn History,
    pub now: SystemTime,
}

/// The plan of `layer build IMAGE --reheat`, made from `plan` (of the workspace whose key of
/// image `i` is its reheat's): image `i` alone, built on its earlier build `from` (a version)
/// — or `fresh` when that very reheat is recorded and not forced — and every other image
/// skipped, its parent included: a reheat stands on a build, not on the parent's current one.
pub fn reheat(mut plan: Plan, i: usize, from: &str, fresh: bool) -> Plan {
    let mut summary = Summary::default();
    for (j, p) in plan.images.iter_mut().enumerate() {
        p.reasons.clear();
        p.cached = None;
        p.wave = None;
        p.action = match (j == i, fresh) {
            (false, _) => Action::Skip,
            (true, true) => Action::Fresh,
            (true, false) => Action::Build,
        };
        match p.action {
            Action::Build => {
                summary.build += 1;
                p.reasons.push(Reason::Reheat {
                    from: crate::version::short(from).to_string(),
                });
                p.wave = Some(0);
            }
            Action::Fresh => {
                summary.fresh += 1;
                p.cached = Some(Cached::Local);
            }
            Action::Skip => summary.skip += 1,
        }
    }
    plan.summary = summary;
    plan
}

/// Makes the plan for `sel`.
pub fn make(input: &PlanInput, sel: &Selection) -> Plan {
    let g = input.graph;
    let n = g.len();
    // Each image's reasons are its own: they are found in parallel (at 10,000 images, 36 ms
    // on one core of a no-op plan).
    input.history.prepare();
    let mut reasons: Vec<Vec<Reason>> = (0..n)
        .into_par_iter()
        .with_min_len(PAR_MIN)
        .map(|i| stale_reasons(input, i, sel.max_age.as_ref()))
        .collect();

    let mut selected = ImageMap::filled(n, sel.targets.is_empty());
    let mut forced = ImageMap::filled(n, sel.targets.is_empty() && (sel.force || sel.force_deps));
    for &t in &sel.targets {
        selected[ImageId::new(t)] = true;
        forced[ImageId::new(t)] = sel.force || sel.force_deps;
    }
    if sel.force_deps {
        g.mark_ancestors(&mut forced);
    }
    let forced: Vec<bool> = forced.values().copied().collect();
    if input.strategy == Strategy::Deep {
        g.mark_ancestors(&mut selected);
    }
    let mut selected: Vec<bool> = selected.values().copied().collect();
    if let Some(since) = &sel.since {
        let mut below_changed = ImageMap::filled(n, false);
        for (i, r) in since.iter().enumerate() {
            if !r.is_empty() {
                g.mark_descendants(ImageId::new(i), &mut below_changed);
            }
        }
        // Deep: what a changed image is built on comes too, as with targets (fresh, or built
        // when the cache lacks it).
        if input.strategy == Strategy::Deep {
            g.mark_ancestors(&mut below_changed);
        }
        for i in 0..n {
            selected[i] &= below_changed[ImageId::new(i)];
            if reasons[i].is_empty() {
                continue;
            }
            // Stale: why, relative to the revision. The same key as there and no usable
            // record of it: stale only for want of a cache.
            if !since[i].is_empty() {
                reasons[i] = since[i].clone();
            } else if matches!(input.lookups[i], Lookup::Missing | Lookup::Unusable(_))
                || matches!(reasons[i][..], [Reason::MissingArtifact { .. }])
            {
                reasons[i] = vec![Reason::NotCached];
            }
        }
    }
    if sel.changed {
        let mut below_stale = ImageMap::filled(n, false);
        for (i, r) in reasons.iter().enumerate() {
            if !r.is_empty() {
                g.mark_descendants(ImageId::new(i), &mut below_stale);
            }
        }
        for (s, below) in selected.iter_mut().zip(below_stale.values()) {
            *s &= *below;
        }
    }

    let remote = remote_fresh(input, &mut reasons, sel.max_age.as_ref());

    let mut actions = vec![Action::Skip; n];
    let mut waves: Vec<Option<usize>> = vec![None; n];
    for i in 0..n {
        if !selected[i] {
            continue;
        }
        let parent_builds =
            g.parent[ImageId::new(i)].filter(|&p| actions[p.index()] == Action::Build);
        if forced[i] && reasons[i].is_empty() {
            reasons[i].push(Reason::Forced);
        }
        if input.strategy == Strategy::Deep && reasons[i].is_empty() {
            // Its key is current, so the parent builds under the key it had: a new build of
            // the same inputs (forced, expired, its artifact lost), not a change.
            if let Some(p) = parent_builds {
                reasons[i].push(Reason::ParentRebuilt {
                    parent: g.names[p].clone(),
                });
            }
        }
        if reasons[i].is_empty() {
            actions[i] = Action::Fresh;
            continue;
        }
        actions[i] = Action::Build;
        waves[i] = Some(match (input.strategy, parent_builds) {
            (Strategy::Deep, Some(p)) => waves[p.index()].expect("a built parent has a wave") + 1,
            _ => 0,
        });
    }

    let mut summary = Summary::default();
    for a in &actions {
        match a {
            Action::Build => summary.build += 1,
            Action::Fresh => summary.fresh += 1,
            Action::Skip => summary.skip += 1,
        }
    }
    let images = reasons
        .into_par_iter()
        .with_min_len(PAR_MIN)
        .enumerate()
        .map(|(i, reasons)| {
            let image = &input.project.images[i];
            PlannedImage {
                name: image.name.clone(),
                key: input.keys[i].key.clone(),
                action: actions[i],
                cached: (actions[i] == Action::Fresh).then_some(if remote[i] {
                    Cached::Remote
                } else {
                    Cached::Local
                }),
                reasons,
                parent: image.parent().map(str::to_string),
                origin: image.origin().map(str::to_string),
                roles: g.applied_roles(ImageId::new(i), input.strategy).to_vec(),
                wave: waves[i],
                pin: input.history.pin(&image.name).cloned(),
            }
        })
        .collect();
    Plan {
        schema: PLAN_SCHEMA,
        strategy: input.strategy,
        since: None,
        images,
        summary,
    }
}
