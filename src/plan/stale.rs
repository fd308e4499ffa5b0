//! Finding an image's stale reasons: its record against its current inputs (`key::diff`), age,
//! revocation, and whether a trusted remote record makes it fresh. Pure, like the rest of
//! `plan`.

use std::time::Duration;

use super::reason::Reason;
use super::PlanInput;
use crate::graph::ImageId;
use crate::key::{diff, BaseInputs, Change};
use crate::model::Strategy;
use crate::record::{Lookup, Record};
use crate::release::Status;
use crate::version::short;

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
                        return vec![Reason::ParentRebuilt {
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
        Lookup::Missing => match input.history.latest(&image.name, input.strategy) {
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
    let new_tree = |r: &str| {
        input
            .trees
            .get(r)
            .cloned()
            .or_else(|| input.history.role_tree(r))
    };
    diff(&old.inputs, &input.keys[i].inputs, &old_tree, &new_tree)
}

/// The name of the origin image `i` starts from under the plan's strategy.
fn origin_name(input: &PlanInput, i: usize) -> String {
    let root = input.graph.root(ImageId::new(i));
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
            // Current inputs are never a reheat's: plans compare fresh keys.
            Change::Base {
                new: BaseInputs::Reheat { .. },
                ..
            } => {}
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
                let dir = role_dir(input, role);
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
            // A field of a role's `role.toml`: the role changed, in that file.
            // (A role whose earlier files are no longer known keeps its empty list of paths.)
            Change::RoleDecl { role, .. } => {
                let path = format!("{}/role.toml", role_dir(input, role));
                let existing = reasons.iter_mut().find_map(|r| match r {
                    Reason::RoleChanged { role: r, paths } if r == role => Some(paths),
                    _ => None,
                });
                match existing {
                    Some(paths) if !paths.is_empty() && !paths.contains(&path) => {
                        paths.push(path);
                        paths.sort();
                    }
                    Some(_) => {}
                    None => reasons.push(Reason::RoleChanged {
                        role: role.clone(),
                        paths: vec![path],
                    }),
                }
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

/// The folder of role `role`, relative to the project root.
fn role_dir(input: &PlanInput, role: &str) -> String {
    input
        .project
        .roles
        .get(role)
        .map(|r| r.dir.clone())
        .unwrap_or_else(|| format!("roles/{role}"))
}

/// By image: whether a trusted remote record makes it fresh where the local cache does not.
/// Such images lose their stale reasons. A remote record is held to the rules of a local one
/// (not revoked, not expired) and, deep, must be built on the parent build the plan stands on:
/// the parent's local record, or its remote one when that is what makes it fresh.
pub(super) fn remote_fresh(
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
