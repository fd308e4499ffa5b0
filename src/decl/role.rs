//! `roles/NAME/` validated into [`Role`]s: the folder (a valid name, inside the project) and
//! its optional `role.toml` (`depends`, `packages`, `[vars]`), loaded in parallel.

use std::collections::{BTreeMap, BTreeSet};

use rayon::prelude::*;
use toml::Spanned;

use super::check::{
    check_list, check_set, check_sources, check_vars, list_dir, unknown, NAME_HINT,
};
use super::file::{read_source, Source};
use super::raw::RoleRaw;
use crate::error::{Diagnostic, Diagnostics};
use crate::model::{valid_name, Role};
use crate::source::files::{Kind, Link, ProjectFiles};

/// Every role under `roles/` that loaded, by name, and the names of all role folders (loaded
/// or not, so a reference to a broken role is not also "unknown").
pub(super) fn load_roles(
    files: &dyn ProjectFiles,
    diags: &mut Diagnostics,
) -> (BTreeMap<String, Role>, BTreeSet<String>) {
    let dirs = list_dir(files, "roles", diags, |_, kind| kind == Kind::Dir);
    let all_names: BTreeSet<String> = dirs.iter().map(|(n, _)| n.clone()).collect();
    // Roles load in parallel; each role's diagnostics are merged in name order, as the
    // sequential loop pushed them.
    let loaded: Vec<(Diagnostics, Option<Role>)> = dirs
        .par_iter()
        .map(|(name, rel)| {
            let mut d = Diagnostics::default();
            let role = load_role(files, name, rel, &all_names, &mut d);
            (d, role)
        })
        .collect();
    let mut roles = BTreeMap::new();
    for (d, role) in loaded {
        diags.0.extend(d.0);
        if let Some(r) = role {
            roles.insert(r.name.clone(), r);
        }
    }
    // Drop references to roles that failed to load so later passes don't trip on them.
    let loaded: BTreeSet<String> = roles.keys().cloned().collect();
    for r in roles.values_mut() {
        r.depends.retain(|d| loaded.contains(d));
    }
    (roles, all_names)
}

/// One role folder: its `role.toml`, checked.
fn load_role(
    files: &dyn ProjectFiles,
    name: &str,
    rel: &str,
    all_names: &BTreeSet<String>,
    diags: &mut Diagnostics,
) -> Option<Role> {
    if !role_folder(files, name, rel, diags) {
        return None;
    }
    let (src, raw) = read_role_toml(files, rel, diags)?;
    let (depends, packages, sources, vars) = match &src {
        Some(src) => (
            check_list(src, "role", &raw.depends, diags),
            check_set(src, "package", &raw.packages, diags),
            check_sources(src, &raw.sources, diags),
            check_vars(src, &raw.vars, &["depends", "packages", "sources"], diags),
        ),
        None => Default::default(),
    };
    let role = Role {
        name: name.to_string(),
        dir: rel.to_string(),
        depends,
        packages,
        sources,
        vars,
    };
    if let Some(src) = src {
        check_depends(&src, name, &raw.depends, all_names, diags);
    }
    Some(role)
}

/// Whether the role folder has a valid name and, when it is a link, resolves inside the
/// project.
fn role_folder(files: &dyn ProjectFiles, name: &str, rel: &str, diags: &mut Diagnostics) -> bool {
    if !valid_name(name) {
        diags.push(
            Diagnostic::new(rel, format!("`{name}` is not a valid role name")).hint(NAME_HINT),
        );
        return false;
    }
    // A symlinked role folder must resolve inside the project.
    match files.link(rel) {
        Link::NotALink | Link::Inside => true,
        Link::Outside(real) => {
            diags.push(
                Diagnostic::new(
                    rel,
                    format!("role folder is a link to `{real}`, outside the project"),
                )
                .hint("copy the role into the project, or link to a folder inside it"),
            );
            false
        }
        Link::Broken(e) => {
            diags.push(Diagnostic::new(
                rel,
                format!("cannot resolve role folder link: {e}"),
            ));
            false
        }
    }
}

/// The role's `role.toml`, parsed: `(None, default)` when the folder has none, `None` when it
/// cannot be read or parsed (or leads out of the project).
fn read_role_toml(
    files: &dyn ProjectFiles,
    rel: &str,
    diags: &mut Diagnostics,
) -> Option<(Option<Source>, RoleRaw)> {
    let toml_rel = format!("{rel}/role.toml");
    let toml_kind = files.kind(&toml_rel);
    if toml_kind == Some(Kind::Outside) {
        let real = match files.link(&toml_rel) {
            Link::Outside(real) => real,
            _ => "?".into(),
        };
        diags.push(
            Diagnostic::new(
                &toml_rel,
                format!("is a link to `{real}`, outside the project"),
            )
            .hint("keep declarations inside the project"),
        );
        return None;
    }
    if toml_kind.is_none() {
        return Some((None, RoleRaw::default()));
    }
    let src = read_source(files, &toml_rel, diags)?;
    let raw = src.parse::<RoleRaw>(diags)?;
    Some((Some(src), raw))
}

/// `depends` names no role that is itself, nor one that does not exist.
fn check_depends(
    src: &Source,
    name: &str,
    depends: &[Spanned<String>],
    all_names: &BTreeSet<String>,
    diags: &mut Diagnostics,
) {
    for d in depends {
        if d.get_ref() == name {
            diags.push(
                src.diag(src.line_of(d), format!("role `{name}` depends on itself"))
                    .hint("remove it from `depends`"),
            );
        }
    }
    for d in depends {
        if !all_names.contains(d.get_ref()) {
            diags.push(unknown(
                src,
                src.line_of(d),
                "role",
                d.get_ref(),
                all_names.iter(),
            ));
        }
    }
}
