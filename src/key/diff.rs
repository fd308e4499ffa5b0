//! Differences between two records of an image's inputs ([`diff`]): what `plan` and
//! `explain` give as the reasons an image is stale.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::{BackendInputs, BaseInputs, DeclInputs, Inputs, RoleDeclInputs};
use crate::model::Strategy;
use crate::scan::{diff_trees, FileChange, Tree};

/// One difference between an image's recorded inputs and its current ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Schema {
        old: u32,
        new: u32,
    },
    Strategy {
        old: Strategy,
        new: Strategy,
    },
    Backend {
        old: BackendInputs,
        new: BackendInputs,
    },
    Base {
        old: BaseInputs,
        new: BaseInputs,
    },
    /// The images of a shallow chain differ (a `from` changed somewhere above).
    Chain {
        old: Vec<String>,
        new: Vec<String>,
    },
    /// A declaration field of `image` (this image, or an ancestor in a shallow chain).
    Field {
        image: String,
        field: String,
        old: String,
        new: String,
    },
    /// A role applied in both whose tree differs; `files` is `None` when the old tree is no
    /// longer in the cache.
    Role {
        role: String,
        files: Option<Vec<(String, FileChange)>>,
    },
    /// A field of the `role.toml` of a role applied in both (`packages`, `vars.PORT`).
    RoleDecl {
        role: String,
        field: String,
        old: String,
        new: String,
    },
    RoleAdded {
        role: String,
    },
    RoleRemoved {
        role: String,
    },
}

/// The differences from `old` to `new`. `old_tree` looks up a recorded tree by digest, and
/// `new_tree` a current one by role name.
pub fn diff(
    old: &Inputs,
    new: &Inputs,
    old_tree: &dyn Fn(&str) -> Option<Tree>,
    new_tree: &dyn Fn(&str) -> Option<Tree>,
) -> Vec<Change> {
    let mut out = Vec::new();
    if old.schema != new.schema {
        out.push(Change::Schema {
            old: old.schema,
            new: new.schema,
        });
        return out;
    }
    if old.strategy != new.strategy {
        out.push(Change::Strategy {
            old: old.strategy,
            new: new.strategy,
        });
    }
    if old.backend != new.backend {
        out.push(Change::Backend {
            old: BackendInputs::clone(&old.backend),
            new: BackendInputs::clone(&new.backend),
        });
    }
    // Across strategies a base and a chain change shape (deep: the parent's key and the image
    // alone; shallow: the root origin and the whole chain). That follows from the strategy
    // change: compare only what both strategies record alike.
    let same_strategy = old.strategy == new.strategy;
    let same_base_kind = std::mem::discriminant(&old.base) == std::mem::discriminant(&new.base);
    if old.base != new.base && (same_strategy || same_base_kind) {
        out.push(Change::Base {
            old: old.base.clone(),
            new: new.base.clone(),
        });
    }
    diff_chains(old, new, same_strategy, &mut out);
    diff_roles(old, new, old_tree, new_tree, &mut out);
    out
}

/// What changed in the chain of declarations: which images, or a field of one (version, roles,
/// packages, each `[vars]` entry). Across strategies only the image's own declaration compares.
fn diff_chains(old: &Inputs, new: &Inputs, same_strategy: bool, out: &mut Vec<Change>) {
    let (old_chain, new_chain) = if same_strategy {
        (&old.chain[..], &new.chain[..])
    } else {
        (
            &old.chain[old.chain.len().saturating_sub(1)..],
            &new.chain[new.chain.len().saturating_sub(1)..],
        )
    };
    let names = |c: &[DeclInputs]| c.iter().map(|d| d.name.clone()).collect::<Vec<_>>();
    if names(old_chain) != names(new_chain) {
        out.push(Change::Chain {
            old: names(old_chain),
            new: names(new_chain),
        });
    } else {
        for (o, n) in old_chain.iter().zip(new_chain) {
            let mut field = |field: &str, a: String, b: String| {
                if a != b {
                    out.push(Change::Field {
                        image: n.name.clone(),
                        field: field.to_string(),
                        old: a,
                        new: b,
                    });
                }
            };
            field("version", json(&o.version), json(&n.version));
            field("roles", json(&o.roles), json(&n.roles));
            field("packages", json(&o.packages), json(&n.packages));
            field("sources", json(&o.sources), json(&n.sources));
            vars_changes(&o.vars, &n.vars, &mut field);
            locked_changes(&n.name, &o.locked, &n.locked, out);
        }
    }
}

/// Each package whose locked version moved, came or went, as a field `locked.NAME`.
fn locked_changes(image: &str, old: &[String], new: &[String], out: &mut Vec<Change>) {
    let map = |v: &[String]| -> BTreeMap<String, String> {
        v.iter()
            .map(|p| match p.split_once('=') {
                Some((n, v)) => (n.to_string(), v.to_string()),
                None => (p.clone(), String::new()),
            })
            .collect()
    };
    let (old, new) = (map(old), map(new));
    let names: BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    for n in names {
        let show = |v: Option<&String>| v.cloned().unwrap_or_else(|| "(none)".into());
        if old.get(n) != new.get(n) {
            out.push(Change::Field {
                image: image.to_string(),
                field: format!("locked.{n}"),
                old: show(old.get(n)),
                new: show(new.get(n)),
            });
        }
    }
}

/// Roles added, changed (with the files that changed, when both trees are known, and the
/// fields of their `role.toml` that changed) and removed.
fn diff_roles(
    old: &Inputs,
    new: &Inputs,
    old_tree: &dyn Fn(&str) -> Option<Tree>,
    new_tree: &dyn Fn(&str) -> Option<Tree>,
    out: &mut Vec<Change>,
) {
    for r in &new.roles {
        match old.roles.iter().find(|o| o.name == r.name) {
            None => out.push(Change::RoleAdded {
                role: r.name.clone(),
            }),
            Some(o) => {
                if o.tree != r.tree {
                    let files = match (old_tree(&o.tree), new_tree(&r.name)) {
                        (Some(a), Some(b)) => Some(diff_trees(&a, &b)),
                        _ => None,
                    };
                    out.push(Change::Role {
                        role: r.name.clone(),
                        files,
                    });
                }
                role_decl_changes(&r.name, &o.decl, &r.decl, out);
            }
        }
    }
    for o in &old.roles {
        if !new.roles.iter().any(|r| r.name == o.name) {
            out.push(Change::RoleRemoved {
                role: o.name.clone(),
            });
        }
    }
}

/// Each field of a role's declaration that differs, as [`Change::RoleDecl`].
fn role_decl_changes(role: &str, o: &RoleDeclInputs, n: &RoleDeclInputs, out: &mut Vec<Change>) {
    let mut field = |field: &str, a: String, b: String| {
        if a != b {
            out.push(Change::RoleDecl {
                role: role.to_string(),
                field: field.to_string(),
                old: a,
                new: b,
            });
        }
    };
    field("depends", json(&o.depends), json(&n.depends));
    field("packages", json(&o.packages), json(&n.packages));
    field("sources", json(&o.sources), json(&n.sources));
    vars_changes(&o.vars, &n.vars, &mut field);
}

/// Each `[vars]` entry that differs, as field `vars.NAME` (`(unset)` where one side lacks it):
/// images and roles report them alike.
fn vars_changes(
    old: &BTreeMap<String, String>,
    new: &BTreeMap<String, String>,
    field: &mut impl FnMut(&str, String, String),
) {
    let keys: BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    let show = |v: Option<&String>| v.map(json).unwrap_or_else(|| "(unset)".into());
    for k in keys {
        field(&format!("vars.{k}"), show(old.get(k)), show(new.get(k)));
    }
}

/// Compact JSON of a value, for showing old and new declaration values.
fn json<T: Serialize + ?Sized>(v: &T) -> String {
    serde_json::to_string(v).expect("values serialize")
}
