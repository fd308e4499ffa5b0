//! `layer explain` in words: the plan's verdict on one image and, for a stale one, every input
//! that differs from its latest build. The command gathers an [`Explanation`]; this part only
//! words it.

use crate::key::{BaseInputs, Change, OriginIdentity};
use crate::plan::{self, Reason};
use crate::record::Record;

/// What `layer explain` says of one image, gathered from the workspace by the command.
pub struct Explanation<'a> {
    pub name: &'a str,
    /// The image's current key.
    pub key: &'a str,
    /// The image's parent, named when the parent's key changed.
    pub parent: Option<&'a str>,
    /// The origin the image's chain starts from, named when the origin changed.
    pub origin: Option<&'a str>,
    pub verdict: Verdict<'a>,
    /// Whether the image uses `[secrets]`, which keys leave out.
    pub secrets: bool,
}

/// The plan's verdict on the image, with what explains it.
pub enum Verdict<'a> {
    /// Fresh: the record of the current key's build, when the lookup found one.
    Fresh(Option<&'a Record>),
    /// Stale, and the cache has no record of any build of the image.
    NeverBuilt,
    /// Stale, no build of the current key: the latest build and how its inputs differ.
    Changed {
        latest: &'a Record,
        changes: &'a [Change],
    },
    /// Stale for the plan's reasons (a build of the key that expired or was revoked, say).
    Reasons(&'a [Reason]),
}

/// The text of `layer explain`: a verdict line, an indented line per reason or change, and a
/// note on secrets.
pub fn explain(e: &Explanation) -> String {
    let name = e.name;
    let mut s = String::new();
    match &e.verdict {
        Verdict::Fresh(Some(r)) => s.push_str(&format!(
            "`{name}` is fresh: key {} was built as {} at {}\n",
            short(e.key),
            r.version,
            r.built_at
        )),
        Verdict::Fresh(None) => {}
        stale => {
            s.push_str(&format!("`{name}` is stale (key {})\n", short(e.key)));
            match stale {
                Verdict::NeverBuilt => s.push_str("  never built: the cache has no record of it\n"),
                Verdict::Changed { latest, changes } => {
                    s.push_str(&format!(
                        "  latest build: {} (key {}) at {}\n",
                        latest.version,
                        short(&latest.key),
                        latest.built_at
                    ));
                    for c in *changes {
                        for line in describe(e, c) {
                            s.push_str(&format!("  {line}\n"));
                        }
                    }
                }
                Verdict::Reasons(reasons) => {
                    for r in *reasons {
                        s.push_str(&format!("  {}\n", r.sentence()));
                    }
                }
                Verdict::Fresh(_) => unreachable!("handled above"),
            }
        }
    }
    if e.secrets {
        s.push_str("note: `[secrets]` are not part of keys; after rotating one, rebuild with `layer build --force`\n");
    }
    s
}

/// An origin's identity in words.
fn describe_identity(id: &OriginIdentity) -> String {
    use OriginIdentity as O;
    match id {
        O::Busybox { blake3 } => format!("busybox blake3 {}", short(blake3)),
        O::Tar {
            blake3: Some(b), ..
        } => format!("tarball blake3 {}", short(b)),
        O::Tar {
            sha256: Some(s), ..
        } => format!("tarball sha256 {}", short(s)),
        O::Tar { .. } => "tarball".to_string(),
        O::Debian {
            suite,
            variant,
            mirror,
            components,
            updates,
            security,
            sources,
            snapshot,
        } => {
            let mut d = format!("debian {suite}/{variant}");
            if let Some(m) = mirror {
                d.push_str(&format!(" from {m}"));
            }
            if !components.is_empty() {
                d.push_str(&format!(" ({})", components.join(", ")));
            }
            if !updates {
                d.push_str(" without updates");
            }
            match security {
                crate::model::Security::Off => d.push_str(" without security"),
                crate::model::Security::Mirror(u) => d.push_str(&format!(" security from {u}")),
                crate::model::Security::Default => {}
            }
            for s in sources {
                d.push_str(&format!(" + `{s}`"));
            }
            match snapshot {
                Some(s) => d.push_str(&format!(" at snapshot {s}")),
                None => d.push_str(" (not locked)"),
            }
            d
        }
        O::Id { id } => format!("id `{id}`"),
        O::Resolve { id } => format!("resolved id `{id}`"),
    }
}

/// One input change in words: a line, or a line and indented details.
fn describe(e: &Explanation, c: &Change) -> Vec<String> {
    match c {
        Change::Schema { old, new } => vec![format!(
            "key schema changed from {old} to {new}: this layer reads inputs differently"
        )],
        Change::Strategy { old, new } => vec![format!(
            "strategy changed from {} to {}",
            old.as_str(),
            new.as_str()
        )],
        Change::Backend { old, new } => {
            let mut v = vec![format!(
                "backend `{}` changed (was `{}`)",
                new.name, old.name
            )];
            if old.kind != new.kind {
                v.push(format!(
                    "  kind: {} -> {}",
                    old.kind.as_str(),
                    new.kind.as_str()
                ));
            }
            if old.command != new.command {
                v.push(format!("  command: {:?} -> {:?}", old.command, new.command));
            }
            if old.template != new.template {
                v.push(format!(
                    "  template: {:?} -> {:?}",
                    old.template, new.template
                ));
            }
            for (f, h) in &new.files {
                if old.files.get(f) != Some(h) {
                    v.push(format!("  `{f}` changed"));
                }
            }
            v
        }
        Change::Base {
            old,
            new: BaseInputs::Parent { key },
        } => {
            let was = match old {
                BaseInputs::Parent { key } => short(key).to_string(),
                BaseInputs::Origin { .. } => "an origin".to_string(),
                BaseInputs::Reheat { version, .. } => {
                    format!("a reheat of {}", crate::version::short(version))
                }
            };
            vec![format!(
                "parent `{}` changed: key {was} -> {}",
                e.parent.unwrap_or_default(),
                short(key)
            )]
        }
        Change::Base {
            old,
            new: BaseInputs::Origin { identity },
        } => {
            let show = describe_identity;
            let was = match old {
                BaseInputs::Origin { identity } => show(identity),
                BaseInputs::Parent { .. } => "a parent image".to_string(),
                BaseInputs::Reheat { version, .. } => {
                    format!("a reheat of {}", crate::version::short(version))
                }
            };
            vec![format!(
                "origin `{}` changed: {was} -> {}",
                e.origin.unwrap_or_default(),
                show(identity)
            )]
        }
        Change::Base {
            new: BaseInputs::Reheat { version, .. },
            ..
        } => vec![format!("reheated from {}", crate::version::short(version))],
        Change::Chain { old, new } => vec![format!(
            "image chain changed: {} -> {}",
            old.join(" -> "),
            new.join(" -> ")
        )],
        Change::Field {
            image: owner,
            field,
            old,
            new,
        } => {
            let f = if *owner == e.name {
                field.clone()
            } else {
                format!("{owner}.{field}")
            };
            vec![format!("declaration `{f}` changed: {old} -> {new}")]
        }
        Change::Role {
            role,
            files: Some(files),
        } => files
            .iter()
            .map(|(p, fc)| {
                format!(
                    "role `{role}`: {}",
                    plan::describe_file_change(&format!("roles/{role}/{p}"), fc)
                )
            })
            .collect(),
        Change::Role { role, files: None } => {
            vec![format!(
                "role `{role}` changed (its earlier files are no longer in the cache)"
            )]
        }
        Change::RoleDecl {
            role,
            field,
            old,
            new,
        } => vec![format!(
            "role `{role}`: `{field}` in `roles/{role}/role.toml` changed: {old} -> {new}"
        )],
        Change::RoleAdded { role } => vec![format!("role `{role}` is now applied")],
        Change::RoleRemoved { role } => vec![format!("role `{role}` is no longer applied")],
    }
}

/// The first 12 characters of a key or digest.
fn short(key: &str) -> &str {
    &key[..key.len().min(12)]
}
