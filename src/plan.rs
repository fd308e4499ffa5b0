//! The plan: which images a build would build, in which wave, and why. `layer plan` prints a
//! `Plan`; `layer build` hands the same value to the executor. Pure: records come in as
//! [`Lookup`]s and through [`History`], so tests plan against fakes.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::graph::{Graph, ImageId, ImageMap};
use crate::key::{diff, BaseInputs, Change, ImageKey};
use crate::model::{Project, Strategy};
use crate::record::{Lookup, Record};
use crate::release::{Pin, Status};
use crate::scan::{FileChange, Tree};
use crate::version::short;

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

/// Why an image is stale: one variant a kind, one sentence each (SPEC §5.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Reason {
    /// The cache has no record of this image.
    New,
    /// Declaration fields differ from the latest record (`roles`, `vars.PORT`, or
    /// `base-linux.packages` for an ancestor in a shallow chain).
    DeclarationChanged {
        fields: Vec<String>,
    },
    /// A role's files differ; `paths` are relative to the project root (empty when the old
    /// tree is no longer cached).
    RoleChanged {
        role: String,
        paths: Vec<String>,
    },
    OriginChanged {
        origin: String,
    },
    /// The parent's key changed, or the parent is being built, or was rebuilt since.
    ParentChanged {
        parent: String,
    },
    StrategyChanged {
        from: Strategy,
        to: Strategy,
    },
    BackendChanged {
        backend: String,
    },
    /// This build of the image's current key was revoked (`layer revoke`).
    Revoked {
        version: String,
    },
    /// The build was made on a parent build that was revoked since.
    ParentRevoked {
        parent: String,
        version: String,
    },
    /// The record is older than `max_age`.
    Expired {
        max_age: String,
        built_at: String,
    },
    Forced,
    /// A record exists for the key but its artifact is gone, or the record is unusable.
    MissingArtifact {
        detail: String,
    },
    /// With `--since`: the key is the one the revision has, but no cache holds a build of it
    /// (no record, or an unusable one); built for want of a cache, not for a change.
    NotCached,
}

impl Reason {
    pub fn sentence(&self) -> String {
        match self {
            Reason::New => "never built".into(),
            Reason::DeclarationChanged { fields } if fields.is_empty() => {
                "declaration changed".into()
            }
            Reason::DeclarationChanged { fields } => {
                format!("declaration changed: {}", fields.join(", "))
            }
            Reason::RoleChanged { role, paths } if paths.is_empty() => {
                format!("role `{role}` changed")
            }
            Reason::RoleChanged { role, paths } => {
                format!("role `{role}` changed: {}", paths.join(", "))
            }
            Reason::OriginChanged { origin } => format!("origin `{origin}` changed"),
            Reason::ParentChanged { parent } => format!("parent `{parent}` changed"),
            Reason::StrategyChanged { from, to } => {
                format!("strategy changed from {} to {}", from.as_str(), to.as_str())
            }
            Reason::BackendChanged { backend } => format!("backend `{backend}` changed"),
            Reason::Revoked { version } => format!("build {version} is revoked"),
            Reason::ParentRevoked { parent, version } => {
                format!("built on revoked {parent} {version}")
            }
            Reason::Expired { max_age, built_at } => {
                format!("expired: built {built_at}, older than {max_age}")
            }
            Reason::Forced => "forced".into(),
            Reason::MissingArtifact { detail } => format!("artifact missing: {detail}"),
            Reason::NotCached => "not cached".into(),
        }
    }
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
    fn latest(&self, name: &str) -> Option<Record>;
    fn tree(&self, digest: &str) -> Option<Tree>;
    fn artifact_exists(&self, record: &Record) -> bool;
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
    /// `--force`: build the selected images even when fresh.
    pub force: bool,
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

/// Why image `i` is stale, before selection; empty when it is fresh. `max_age`, when given,
/// replaces the image's own limit.
pub fn stale_reasons(
    input: &PlanInput,
    i: usize,
    max_age: Option<&(Duration, String)>,
) -> Vec<Reason> {
    let image = &input.project.images[i];
    let limit = max_age.cloned().or_else(|| {
        image
            .max_age
            .map(|d| (d, image.max_age_text.clone().unwrap_or_default()))
    });
    match &input.lookups[i] {
        Lookup::Found(rec) => {
            if !input.history.artifact_exists(rec) {
                let at = rec.artifact.path.as_deref().unwrap_or(&rec.artifact.id);
                return vec![Reason::MissingArtifact {
                    detail: format!("`{at}` is not in the cache"),
                }];
            }
            if Status::of(rec) == Status::Revoked {
                return vec![Reason::Revoked {
                    version: short(&rec.version).to_string(),
                }];
            }
            if let Some(p) = parent_revoked(input, rec) {
                return vec![p];
            }
            if let (Some((limit, text)), Some(built)) = (limit, rec.built_at_time()) {
                if input.now.duration_since(built).unwrap_or_default() > limit {
                    return vec![Reason::Expired {
                        max_age: text,
                        built_at: rec.built_at.clone(),
                    }];
                }
            }
            if let (Strategy::Deep, Some(p)) = (input.strategy, input.graph.parent[ImageId::new(i)])
            {
                // Built on the parent's current record? A parent rebuilt under the same key
                // (forced, expired) is a new artifact to build on.
                if let Lookup::Found(prec) = &input.lookups[p.index()] {
                    if rec.parent.as_ref().map(|r| &r.version) != Some(&prec.version) {
                        return vec![Reason::ParentChanged {
                            parent: input.graph.names[p].clone(),
                        }];
                    }
                }
            }
            if let (Strategy::Deep, Some(pin)) = (input.strategy, input.history.pin(&image.name)) {
                // Pinned: built on the pinned build itself, not another build of its key?
                if rec.parent.as_ref().map(|r| &r.version) != Some(&pin.version) {
                    return vec![Reason::ParentChanged {
                        parent: pin.parent.clone(),
                    }];
                }
            }
            vec![]
        }
        Lookup::Unusable(why) => vec![Reason::MissingArtifact {
            detail: why.clone(),
        }],
        Lookup::Missing => match input.history.latest(&image.name) {
            None => vec![Reason::New],
            Some(old) => {
                let changes = changes_since(input, i, &old);
                let mut reasons = reasons_from(input, i, &changes);
                // Flagged even when other changes make the image stale.
                if let Some(p) = parent_revoked(input, &old) {
                    reasons.insert(0, p);
                }
                reasons
            }
        },
    }
}

/// `parent-revoked`, when `rec` was built on a parent build revoked since.
fn parent_revoked(input: &PlanInput, rec: &Record) -> Option<Reason> {
    let p = rec.parent.as_ref()?;
    input
        .history
        .revoked(&p.name, &p.version)
        .then(|| Reason::ParentRevoked {
            parent: p.name.clone(),
            version: short(&p.version).to_string(),
        })
}

/// The differences between image `i`'s current inputs and those of `old`.
pub fn changes_since(input: &PlanInput, i: usize, old: &Record) -> Vec<Change> {
    let old_tree = |d: &str| input.history.tree(d);
    let new_tree = |r: &str| input.trees.get(r).cloned();
    diff(&old.inputs, &input.keys[i].inputs, &old_tree, &new_tree)
}

/// The name of the origin image `i` starts from under the plan's strategy.
fn origin_name(input: &PlanInput, i: usize) -> String {
    let root = input.graph.chain(ImageId::new(i))[0];
    input.project.images[root.index()]
        .origin()
        .unwrap_or_default()
        .to_string()
}

pub fn reasons_from(input: &PlanInput, i: usize, changes: &[Change]) -> Vec<Reason> {
    let image = &input.project.images[i];
    let mut reasons = Vec::new();
    let mut fields = Vec::new();
    for c in changes {
        match c {
            Change::Schema { .. } => fields.push("key schema".to_string()),
            Change::Strategy { old, new } => reasons.push(Reason::StrategyChanged {
                from: *old,
                to: *new,
            }),
            Change::Backend { new, .. } => reasons.push(Reason::BackendChanged {
                backend: new.name.clone(),
            }),
            Change::Base {
                new: BaseInputs::Parent { .. },
                ..
            } => reasons.push(Reason::ParentChanged {
                parent: image.parent().unwrap_or_default().to_string(),
            }),
            Change::Base {
                new: BaseInputs::Origin { .. },
                ..
            } => reasons.push(Reason::OriginChanged {
                origin: origin_name(input, i),
            }),
            Change::Chain { .. } => fields.push("from".to_string()),
            Change::Field {
                image: owner,
                field,
                ..
            } if *owner == image.name => fields.push(field.clone()),
            Change::Field {
                image: owner,
                field,
                ..
            } => fields.push(format!("{owner}.{field}")),
            Change::Role { role, files } => {
                let dir = input
                    .project
                    .roles
                    .get(role)
                    .map(|r| r.dir.clone())
                    .unwrap_or_else(|| format!("roles/{role}"));
                let paths = files
                    .iter()
                    .flatten()
                    .map(|(p, _)| format!("{dir}/{p}"))
                    .collect();
                reasons.push(Reason::RoleChanged {
                    role: role.clone(),
                    paths,
                });
            }
            // A role newly applied or no longer applied follows from a changed `roles` field
            // or a changed `role.toml`, both reported on their own.
            Change::RoleAdded { .. } | Change::RoleRemoved { .. } => {}
        }
    }
    if !fields.is_empty() || reasons.is_empty() {
        // Declaration changes go after base changes and before role changes.
        let pos = reasons
            .iter()
            .position(|r| matches!(r, Reason::RoleChanged { .. }))
            .unwrap_or(reasons.len());
        reasons.insert(pos, Reason::DeclarationChanged { fields });
    }
    reasons
}

/// Makes the plan for `sel`.
pub fn make(input: &PlanInput, sel: &Selection) -> Plan {
    let g = input.graph;
    let n = g.len();
    let mut reasons: Vec<Vec<Reason>> = (0..n)
        .map(|i| stale_reasons(input, i, sel.max_age.as_ref()))
        .collect();

    let mut selected = vec![sel.targets.is_empty(); n];
    for &t in &sel.targets {
        selected[t] = true;
        if input.strategy == Strategy::Deep {
            for a in g.chain(ImageId::new(t)) {
                selected[a.index()] = true;
            }
        }
    }
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
            for i in g.ids() {
                if below_changed[i] {
                    for a in g.chain(i) {
                        below_changed[a] = true;
                    }
                }
            }
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
        if sel.force && reasons[i].is_empty() {
            reasons[i].push(Reason::Forced);
        }
        if input.strategy == Strategy::Deep && reasons[i].is_empty() {
            if let Some(p) = parent_builds {
                reasons[i].push(Reason::ParentChanged {
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
    let images = (0..n)
        .map(|i| {
            let image = &input.project.images[i];
            match actions[i] {
                Action::Build => summary.build += 1,
                Action::Fresh => summary.fresh += 1,
                Action::Skip => summary.skip += 1,
            }
            PlannedImage {
                name: image.name.clone(),
                key: input.keys[i].key.clone(),
                action: actions[i],
                cached: (actions[i] == Action::Fresh).then_some(if remote[i] {
                    Cached::Remote
                } else {
                    Cached::Local
                }),
                reasons: std::mem::take(&mut reasons[i]),
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

/// By image: whether a trusted remote record makes it fresh where the local cache does not.
/// Such images lose their stale reasons. A remote record is held to the rules of a local one
/// (not revoked, not expired) and, deep, must be built on the parent build the plan stands on:
/// the parent's local record, or its remote one when that is what makes it fresh.
fn remote_fresh(
    input: &PlanInput,
    reasons: &mut [Vec<Reason>],
    max_age: Option<&(Duration, String)>,
) -> Vec<bool> {
    let n = reasons.len();
    let mut remote = vec![false; n];
    for i in 0..n {
        if reasons[i].is_empty() {
            continue;
        }
        let image = &input.project.images[i];
        let Some(rec) = input.history.remote(&image.name) else {
            continue;
        };
        if rec.key != input.keys[i].key || Status::of(rec) == Status::Revoked {
            continue;
        }
        if parent_revoked(input, rec).is_some() {
            continue;
        }
        let limit = max_age.cloned().or_else(|| {
            image
                .max_age
                .map(|d| (d, image.max_age_text.clone().unwrap_or_default()))
        });
        if let (Some((limit, _)), Some(built)) = (limit, rec.built_at_time()) {
            if input.now.duration_since(built).unwrap_or_default() > limit {
                continue;
            }
        }
        if input.strategy == Strategy::Deep {
            let on = |version: Option<&String>| rec.parent.as_ref().map(|r| &r.version) == version;
            if let Some(p) = input.graph.parent[ImageId::new(i)] {
                let p = p.index();
                let parent = if remote[p] {
                    input.history.remote(&input.project.images[p].name)
                } else if reasons[p].is_empty() {
                    match &input.lookups[p] {
                        Lookup::Found(r) => Some(&**r),
                        _ => None,
                    }
                } else {
                    // The parent is stale: it builds, and this image with it.
                    continue;
                };
                if !on(parent.map(|r| &r.version)) {
                    continue;
                }
            } else if let Some(pin) = input.history.pin(&image.name) {
                if !on(Some(&pin.version)) {
                    continue;
                }
            }
        }
        reasons[i].clear();
        remote[i] = true;
    }
    remote
}

/// One line for a file change, as `layer explain` prints it.
pub fn describe_file_change(path: &str, c: &FileChange) -> String {
    match c {
        FileChange::Added => format!("`{path}` added"),
        FileChange::Removed => format!("`{path}` removed"),
        FileChange::Content => format!("`{path}` changed"),
        FileChange::Mode(true) => format!("`{path}` became executable"),
        FileChange::Mode(false) => format!("`{path}` is no longer executable"),
        FileChange::Retarget { old, new } => format!("`{path}` now links to `{new}` (was `{old}`)"),
        FileChange::Type { old, new } => format!("`{path}` is now a {new} (was a {old})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::compute;
    use crate::model::*;
    use crate::record::{Artifact, ParentRef};
    use crate::scan::{Entry, EntryKind, Scanned};
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    /// Records by name, trees by digest, and artifacts that exist unless listed as gone.
    #[derive(Default)]
    struct FakeHistory {
        latest: BTreeMap<String, Record>,
        trees: BTreeMap<String, Tree>,
        gone: Vec<String>,
        /// `(image, version)` of revoked builds.
        revoked: Vec<(String, String)>,
        asked: Mutex<Vec<String>>,
        /// Trusted remote records, by name.
        remote: BTreeMap<String, Record>,
    }

    impl History for FakeHistory {
        fn latest(&self, name: &str) -> Option<Record> {
            self.asked.lock().unwrap().push(name.to_string());
            self.latest.get(name).cloned()
        }
        fn tree(&self, digest: &str) -> Option<Tree> {
            self.trees.get(digest).cloned()
        }
        fn artifact_exists(&self, r: &Record) -> bool {
            !self.gone.contains(&r.name)
        }
        fn revoked(&self, name: &str, version: &str) -> bool {
            self.revoked.iter().any(|(n, v)| n == name && v == version)
        }
        fn remote(&self, name: &str) -> Option<&Record> {
            self.remote.get(name)
        }
    }

    fn image(name: &str, base: Base, roles: &[&str]) -> Image {
        Image {
            name: name.into(),
            file: format!("images/{name}.toml"),
            description: None,
            version: "1.0".into(),
            base,
            roles: roles.iter().map(ToString::to_string).collect(),
            packages: vec![],
            backend: None,
            max_age: None,
            max_age_text: None,
            pin: None,
            vars: BTreeMap::new(),
            secrets: BTreeMap::new(),
            tags: BTreeMap::new(),
            tests: vec![],
        }
    }

    /// base <- app <- svc, base <- node; one role per image.
    fn project() -> Project {
        let mut roles = BTreeMap::new();
        for r in ["base", "java", "web"] {
            roles.insert(
                r.to_string(),
                Role {
                    name: r.into(),
                    dir: format!("roles/{r}"),
                    depends: vec![],
                    packages: vec![],
                    vars: BTreeMap::new(),
                },
            );
        }
        let mut origins = BTreeMap::new();
        origins.insert(
            "o".to_string(),
            Origin {
                name: "o".into(),
                source: OriginSource::Id { id: "ami-1".into() },
            },
        );
        let mut backends = BTreeMap::new();
        backends.insert("rootfs".to_string(), Backend::builtin_rootfs());
        let images = vec![
            image("base", Base::Origin("o".into()), &["base"]),
            image("app", Base::Parent("base".into()), &["java"]),
            image("node", Base::Parent("base".into()), &["web"]),
            image("svc", Base::Parent("app".into()), &["web"]),
        ];
        Project {
            root: "/p".into(),
            strategy: Strategy::Deep,
            backend: "rootfs".into(),
            origins,
            backends,
            roles,
            images,
            lock: Lock::default(),
            remote: None,
        }
    }

    fn tree(content: &str) -> Tree {
        Tree::new(vec![Entry {
            path: "provision.sh".into(),
            kind: EntryKind::File {
                exec: true,
                blake3: blake3::hash(content.as_bytes()).to_hex().to_string(),
            },
        }])
    }

    fn scanned(java: &str) -> Scanned {
        let mut s = Scanned::default();
        s.trees.insert("base".into(), tree("base"));
        s.trees.insert("java".into(), tree(java));
        s.trees.insert("web".into(), tree("web"));
        s
    }

    fn record(
        name: &str,
        k: &ImageKey,
        parent: Option<(&str, &ImageKey)>,
        built_at: &str,
    ) -> Record {
        Record {
            format: crate::record::RECORD_FORMAT,
            name: name.into(),
            key: k.key.clone(),
            version: format!("1.0.0-{name}"),
            built_at: built_at.into(),
            duration_ms: 1,
            forced: false,
            artifact: Artifact {
                id: name.into(),
                path: Some(format!("artifacts/{name}")),
                blake3: None,
                size: None,
                remote: None,
            },
            parent: parent.map(|(p, pk)| ParentRef {
                name: p.into(),
                key: pk.key.clone(),
                version: format!("1.0.0-{p}"),
            }),
            tags: BTreeMap::new(),
            inputs: k.inputs.clone(),
        }
    }

    struct World {
        project: Project,
        graph: Graph,
        scanned: Scanned,
        keys: Vec<ImageKey>,
        lookups: Vec<Lookup>,
        history: FakeHistory,
    }

    impl World {
        /// Every image recorded with the keys of `java` content `recorded`, planned with `now`.
        fn new(recorded: &str, now: &str) -> World {
            let project = project();
            let graph = Graph::new(&project);
            let old = compute(&project, &graph, Strategy::Deep, &scanned(recorded)).unwrap();
            let scanned = scanned(now);
            let keys = compute(&project, &graph, Strategy::Deep, &scanned).unwrap();
            let mut history = FakeHistory::default();
            let mut lookups = Vec::new();
            for (i, img) in project.images.iter().enumerate() {
                let parent = graph.parent[ImageId::new(i)]
                    .map(|p| (project.images[p.index()].name.as_str(), &old[p.index()]));
                let r = record(&img.name, &old[i], parent, "2026-11-01T00:00:00Z");
                lookups.push(if old[i].key == keys[i].key {
                    Lookup::Found(Box::new(r.clone()))
                } else {
                    Lookup::Missing
                });
                history.latest.insert(img.name.clone(), r);
            }
            history.trees.insert(tree(recorded).digest, tree(recorded));
            World {
                project,
                graph,
                scanned,
                keys,
                lookups,
                history,
            }
        }

        fn plan(&self, sel: &Selection) -> Plan {
            let input = PlanInput {
                project: &self.project,
                graph: &self.graph,
                strategy: Strategy::Deep,
                keys: &self.keys,
                lookups: &self.lookups,
                trees: &self.scanned.trees,
                history: &self.history,
                now: humantime::parse_rfc3339("2026-11-10T00:00:00Z").unwrap(),
            };
            make(&input, sel)
        }
    }

    fn actions(p: &Plan) -> Vec<(&str, Action, Option<usize>)> {
        p.images
            .iter()
            .map(|i| (i.name.as_str(), i.action, i.wave))
            .collect()
    }

    /// `java` changed: `app` and `svc` have no local build; the remote has builds of their
    /// current keys (`svc`'s on `parent_version` of `app`).
    fn remote_world(parent_version: &str) -> World {
        let mut w = World::new("java 17", "java 21");
        let app = record(
            "app",
            &w.keys[1],
            Some(("base", &w.keys[0])),
            "2026-11-09T00:00:00Z",
        );
        let mut svc = record(
            "svc",
            &w.keys[3],
            Some(("app", &w.keys[1])),
            "2026-11-09T00:00:00Z",
        );
        svc.parent.as_mut().unwrap().version = parent_version.into();
        w.history.remote.insert("app".into(), app);
        w.history.remote.insert("svc".into(), svc);
        w
    }

    fn cached(p: &Plan) -> Vec<(&str, Action, Option<Cached>)> {
        p.images
            .iter()
            .map(|i| (i.name.as_str(), i.action, i.cached))
            .collect()
    }

    #[test]
    fn trusted_remote_records_make_images_fresh_from_the_remote() {
        let w = remote_world("1.0.0-app");
        let p = w.plan(&Selection::default());
        assert_eq!(
            cached(&p),
            [
                ("base", Action::Fresh, Some(Cached::Local)),
                ("app", Action::Fresh, Some(Cached::Remote)),
                ("node", Action::Fresh, Some(Cached::Local)),
                ("svc", Action::Fresh, Some(Cached::Remote)),
            ]
        );
        assert!(p.images.iter().all(|i| i.reasons.is_empty()));
        // Forced images build anyway, and say nothing of a cache.
        let p = w.plan(&Selection {
            targets: vec![3],
            force: true,
            ..Selection::default()
        });
        assert_eq!(p.images[3].action, Action::Build);
        assert_eq!(p.images[3].cached, None);
    }

    #[test]
    fn a_remote_build_on_another_parent_build_is_not_used() {
        // svc's remote build was made on another build of app's key: app comes from the
        // remote, svc builds on it.
        let w = remote_world("1.0.0-other");
        let p = w.plan(&Selection::default());
        assert_eq!(p.images[1].cached, Some(Cached::Remote));
        assert_eq!(
            (p.images[3].action, p.images[3].wave),
            (Action::Build, Some(0))
        );
        assert_eq!(
            p.images[3].reasons,
            [Reason::ParentChanged {
                parent: "app".into()
            }]
        );
        // Without app on the remote, svc's record cannot stand on anything.
        let mut w = remote_world("1.0.0-app");
        w.history.remote.remove("app");
        let p = w.plan(&Selection::default());
        assert_eq!(
            actions(&p)[1..],
            [
                ("app", Action::Build, Some(0)),
                ("node", Action::Fresh, None),
                ("svc", Action::Build, Some(1))
            ]
        );
    }

    #[test]
    fn remote_records_follow_the_rules_of_local_ones() {
        // Expired under --max-age.
        let w = remote_world("1.0.0-app");
        let p = w.plan(&Selection {
            max_age: Some((std::time::Duration::from_secs(3600), "1h".into())),
            ..Selection::default()
        });
        assert_eq!(p.images[1].action, Action::Build);
        // Revoked.
        let mut w = remote_world("1.0.0-app");
        let app = w.history.remote.get_mut("app").unwrap();
        app.tags.insert("Release_Status".into(), "revoked".into());
        let p = w.plan(&Selection::default());
        assert_eq!(p.images[1].action, Action::Build);
        assert_eq!(p.images[3].action, Action::Build);
    }

    #[test]
    fn nothing_changed_is_all_fresh_and_asks_no_history() {
        let w = World::new("java 17", "java 17");
        let p = w.plan(&Selection::default());
        assert_eq!(
            p.summary,
            Summary {
                build: 0,
                fresh: 4,
                skip: 0
            }
        );
        assert!(w.history.asked.lock().unwrap().is_empty());
    }

    #[test]
    fn a_role_change_builds_the_image_and_its_descendants_in_waves() {
        let w = World::new("java 17", "java 21");
        let p = w.plan(&Selection::default());
        assert_eq!(
            actions(&p),
            [
                ("base", Action::Fresh, None),
                ("app", Action::Build, Some(0)),
                ("node", Action::Fresh, None),
                ("svc", Action::Build, Some(1))
            ]
        );
        assert_eq!(
            p.images[1].reasons,
            [Reason::RoleChanged {
                role: "java".into(),
                paths: vec!["roles/java/provision.sh".into()]
            }]
        );
        assert_eq!(
            p.images[3].reasons,
            [Reason::ParentChanged {
                parent: "app".into()
            }]
        );
    }

    #[test]
    fn changed_and_targets_select() {
        let w = World::new("java 17", "java 21");
        let p = w.plan(&Selection {
            changed: true,
            ..Default::default()
        });
        assert_eq!(
            actions(&p).iter().map(|a| a.1).collect::<Vec<_>>(),
            [Action::Skip, Action::Build, Action::Skip, Action::Build]
        );
        // A target brings its ancestors (deep), and nothing else.
        let p = w.plan(&Selection {
            targets: vec![1],
            ..Default::default()
        });
        assert_eq!(
            actions(&p).iter().map(|a| a.1).collect::<Vec<_>>(),
            [Action::Fresh, Action::Build, Action::Skip, Action::Skip]
        );
    }

    #[test]
    fn a_missing_parent_artifact_rebuilds_the_parent_and_its_children() {
        let mut w = World::new("java 17", "java 17");
        w.history.gone.push("base".into());
        let p = w.plan(&Selection::default());
        assert!(matches!(
            p.images[0].reasons[..],
            [Reason::MissingArtifact { .. }]
        ));
        assert_eq!(
            actions(&p),
            [
                ("base", Action::Build, Some(0)),
                ("app", Action::Build, Some(1)),
                ("node", Action::Build, Some(1)),
                ("svc", Action::Build, Some(2))
            ]
        );
    }

    #[test]
    fn expiry_and_force() {
        let w = World::new("java 17", "java 17");
        let limit = (Duration::from_secs(86_400), "1d".to_string());
        let p = w.plan(&Selection {
            max_age: Some(limit),
            ..Default::default()
        });
        assert!(
            matches!(&p.images[0].reasons[..], [Reason::Expired { max_age, .. }] if max_age == "1d")
        );
        assert_eq!(p.summary.build, 4);
        let p = w.plan(&Selection {
            force: true,
            targets: vec![2],
            ..Default::default()
        });
        assert_eq!(p.images[2].reasons, [Reason::Forced]);
        assert_eq!(p.images[0].reasons, [Reason::Forced]);
        assert_eq!(p.images[1].action, Action::Skip);
    }

    #[test]
    fn a_child_built_on_an_older_parent_build_is_stale() {
        let mut w = World::new("java 17", "java 17");
        // The parent was rebuilt under the same key: a new version the child was not built on.
        if let Lookup::Found(r) = &mut w.lookups[0] {
            r.version = "1.0.1-base".into();
        }
        let p = w.plan(&Selection::default());
        assert_eq!(
            p.images[1].reasons,
            [Reason::ParentChanged {
                parent: "base".into()
            }]
        );
        assert_eq!(p.images[0].action, Action::Fresh);
    }

    #[test]
    fn a_revoked_build_and_the_builds_on_it_are_stale() {
        let mut w = World::new("java 17", "java 17");
        w.history.revoked.push(("base".into(), "1.0.0-base".into()));
        if let Lookup::Found(r) = &mut w.lookups[0] {
            r.tags.insert("Release_Status".into(), "revoked".into());
        }
        let p = w.plan(&Selection::default());
        assert_eq!(
            p.images[0].reasons,
            [Reason::Revoked {
                version: "1.0.0".into()
            }]
        );
        for i in [1, 2] {
            assert_eq!(
                p.images[i].reasons,
                [Reason::ParentRevoked {
                    parent: "base".into(),
                    version: "1.0.0".into()
                }]
            );
        }
        assert_eq!(p.images[3].reasons[0].sentence(), "parent `app` changed");
        assert_eq!(
            p.images[1].reasons[0].sentence(),
            "built on revoked base 1.0.0"
        );
    }

    #[test]
    fn shallow_builds_everything_stale_in_wave_zero() {
        let w = World::new("java 17", "java 17");
        let keys = compute(&w.project, &w.graph, Strategy::Shallow, &w.scanned).unwrap();
        let lookups = vec![
            Lookup::Missing,
            Lookup::Missing,
            Lookup::Missing,
            Lookup::Missing,
        ];
        let empty = FakeHistory::default();
        let input = PlanInput {
            project: &w.project,
            graph: &w.graph,
            strategy: Strategy::Shallow,
            keys: &keys,
            lookups: &lookups,
            trees: &w.scanned.trees,
            history: &empty,
            now: SystemTime::now(),
        };
        let p = make(&input, &Selection::default());
        assert!(p
            .images
            .iter()
            .all(|i| i.wave == Some(0) && i.reasons == [Reason::New]));
        // Shallow keys flatten the chain: svc applies base, java and web.
        assert_eq!(p.images[3].roles, ["base", "java", "web"]);
        assert_ne!(keys[3].key, w.keys[3].key);
    }

    #[test]
    fn since_an_unchanged_image_no_cache_holds_is_not_cached_and_other_reasons_stay() {
        let app = Reason::RoleChanged {
            role: "java".into(),
            paths: vec!["roles/java/provision.sh".into()],
        };
        let since = Selection {
            since: Some(vec![
                vec![],
                vec![app.clone()],
                vec![],
                vec![Reason::ParentChanged {
                    parent: "app".into(),
                }],
            ]),
            ..Default::default()
        };
        let reasons =
            |p: &Plan| -> Vec<Vec<Reason>> { p.images.iter().map(|i| i.reasons.clone()).collect() };
        // `base` never built, `app` changed since the revision: `base` is built, not cached.
        let mut w = World::new("java 17", "java 21");
        w.lookups[0] = Lookup::Missing;
        w.history.latest.remove("base");
        let p = w.plan(&since);
        assert_eq!(
            actions(&p),
            [
                ("base", Action::Build, Some(0)),
                ("app", Action::Build, Some(1)),
                ("node", Action::Skip, None),
                ("svc", Action::Build, Some(2))
            ]
        );
        assert_eq!(p.images[0].reasons, [Reason::NotCached]);
        assert_eq!(p.images[1].reasons, std::slice::from_ref(&app));
        // A record whose artifact is gone holds nothing either.
        let mut w = World::new("java 17", "java 21");
        w.history.gone.push("base".into());
        assert_eq!(reasons(&w.plan(&since))[0], [Reason::NotCached]);
        // Expired is a reason of its own, not a want of cache.
        let w = World::new("java 17", "java 21");
        let p = w.plan(&Selection {
            max_age: Some((Duration::from_secs(86_400), "1d".to_string())),
            ..since
        });
        assert!(matches!(p.images[0].reasons[..], [Reason::Expired { .. }]));
        assert_eq!(p.images[1].reasons, [app]);
    }
}
