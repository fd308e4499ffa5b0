//! Checks every kind of declaration shares: names, lists, `[vars]`, paths that must stay in the
//! project, references to unknown names (with "did you mean"), and listing a folder of
//! declarations.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path};

use toml::Spanned;

use super::file::Source;
use crate::error::{did_you_mean, Diagnostic, Diagnostics};
use crate::source::files::{Kind, Link, ProjectFiles};

/// The hint under an invalid name: the rule of [`crate::model::valid_name`] in words.
pub(super) const NAME_HINT: &str = "names are lowercase letters, digits, `-` and `_`, start with a letter or digit, and are at most 63 characters long";

/// `[A-Za-z_][A-Za-z0-9_]*`: a name a shell takes as an environment variable.
pub(super) fn valid_var_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && (b[0].is_ascii_alphabetic() || b[0] == b'_')
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
}

/// A TOML scalar as the string a variable's value becomes; `None` for arrays and tables.
fn scalar_to_string(v: &toml::Value) -> Option<String> {
    match v {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Float(f) => Some(f.to_string()),
        toml::Value::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

/// `[vars]` of an image or a role: valid, unreserved names and scalar values, as strings.
/// `top_keys`: the keys of the file itself, which, written below `[vars]`, TOML puts in it.
pub(super) fn check_vars(
    src: &Source,
    vars: &BTreeMap<String, Spanned<toml::Value>>,
    top_keys: &[&str],
    diags: &mut Diagnostics,
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (k, v) in vars {
        let line = src.line_of(v);
        if !valid_var_name(k) {
            diags.push(
                src.diag(
                    line,
                    format!("`{k}` is not a valid environment variable name"),
                )
                .hint("use letters, digits and `_`, not starting with a digit"),
            );
        } else if k.starts_with("LAYER_") {
            diags.push(
                src.diag(
                    line,
                    format!("`{k}` is reserved: `LAYER_` variables are set by layer"),
                )
                .hint("rename the variable"),
            );
        }
        match scalar_to_string(v.get_ref()) {
            Some(s) => {
                out.insert(k.clone(), s);
            }
            None if top_keys.contains(&k.as_str()) => diags.push(
                src.diag(
                    line,
                    format!("`{k}` is written below `[vars]`, so it is read as a variable"),
                )
                .hint(format!(
                    "in TOML every key after a `[table]` header belongs to the table, up to the next header: move `{k} = ...` above `[vars]`"
                )),
            ),
            None => diags.push(
                src.diag(
                    line,
                    format!("variable `{k}` must be a string, number or boolean"),
                )
                .hint("quote the value: `KEY = \"value\"`"),
            ),
        }
    }
    out
}

/// A list of `what` names (roles, `depends`): each a word without spaces, each once. Returns
/// the good ones in order.
pub(super) fn check_list(
    src: &Source,
    what: &str,
    items: &[Spanned<String>],
    diags: &mut Diagnostics,
) -> Vec<String> {
    names(src, what, items, false, diags)
}

/// `packages = [...]`: a set of names, so a name given twice counts once (its order and
/// repeats change nothing that is built, nor any key).
pub(super) fn check_set(
    src: &Source,
    what: &str,
    items: &[Spanned<String>],
    diags: &mut Diagnostics,
) -> Vec<String> {
    names(src, what, items, true, diags)
}

/// Names without whitespace; a repeat is an error unless the list is a `set`, where it is
/// dropped.
fn names(
    src: &Source,
    what: &str,
    items: &[Spanned<String>],
    set: bool,
    diags: &mut Diagnostics,
) -> Vec<String> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for it in items {
        let s = it.get_ref();
        if s.trim().is_empty() || s.chars().any(char::is_whitespace) {
            diags.push(src.diag(src.line_of(it), format!("`{s}` is not a valid {what} name")));
        } else if seen.insert(s.clone()) {
            out.push(s.clone());
        } else if !set {
            diags.push(
                src.diag(src.line_of(it), format!("{what} `{s}` is listed twice"))
                    .hint("remove the second entry"),
            );
        }
    }
    out
}

/// `sources = ["deb ..."]`: each a `deb` line apt reads (kept normalized), none twice.
pub(super) fn check_sources(
    src: &Source,
    items: &[Spanned<String>],
    diags: &mut Diagnostics,
) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for it in items {
        match crate::model::AptSource::parse(it.get_ref()) {
            Ok(s) if out.contains(&s.line()) => diags.push(
                src.diag(
                    src.line_of(it),
                    format!("source `{}` is listed twice", it.get_ref()),
                )
                .hint("remove the second entry"),
            ),
            Ok(s) => out.push(s.line()),
            Err(e) => diags.push(
                src.diag(src.line_of(it), format!("source {e}"))
                    .hint("e.g. `deb [signed-by=/etc/apt/keyrings/x.gpg] https://example.com/debian bookworm main`"),
            ),
        }
    }
    out
}

/// A relative path in the project that must stay inside it.
pub(super) fn check_project_path(
    src: &Source,
    line: Option<usize>,
    what: &str,
    p: &str,
    diags: &mut Diagnostics,
) -> bool {
    let path = Path::new(p);
    let escapes =
        path.is_absolute() || path.components().any(|c| matches!(c, Component::ParentDir));
    if escapes {
        diags.push(
            src.diag(line, format!("{what} `{p}` is outside the project"))
                .hint("name a path relative to the project root, without `..`"),
        );
    }
    !escapes
}

/// A command's program: a host program (`packer`, `/usr/bin/env`) may be anything, but a
/// script of the project (a relative path with a `/`) must stay inside it.
pub(super) fn check_script_path(
    src: &Source,
    line: Option<usize>,
    what: &str,
    program: &str,
    diags: &mut Diagnostics,
) -> bool {
    if program.starts_with('/') || !program.contains('/') {
        return true;
    }
    check_project_path(src, line, what, program, diags)
}

/// "unknown `what` `name`", hinting at a near name of `known`, else at all of them, else at
/// how to declare one.
pub(super) fn unknown<'a>(
    src: &Source,
    line: Option<usize>,
    what: &str,
    name: &str,
    known: impl IntoIterator<Item = &'a String>,
) -> Diagnostic {
    let known: Vec<&String> = known.into_iter().collect();
    let hint = match did_you_mean(name, known.iter().map(|s| s.as_str())) {
        Some(s) => format!("did you mean `{s}`?"),
        None if known.is_empty() => match what {
            "origin" => "declare it under `[origins.NAME]` in `layer.toml`".to_string(),
            "role" => "create the folder `roles/NAME/`".to_string(),
            "image" => "create `images/NAME.toml`".to_string(),
            _ => "declare it under `[backends.NAME]` in `layer.toml`".to_string(),
        },
        // At most ten names: thousands of unknown references to thousands of names would
        // otherwise print the product of the two.
        None => {
            let mut list = known
                .iter()
                .take(10)
                .map(|s| format!("`{s}`"))
                .collect::<Vec<_>>()
                .join(", ");
            if known.len() > 10 {
                list.push_str(&format!(" and {} more", known.len() - 10));
            }
            format!("known {what}s: {list}")
        }
    };
    src.diag(line, format!("unknown {what} `{name}`"))
        .hint(hint)
}

/// Names (file names) and root-relative paths of the entries of `dir` that `keep` accepts,
/// sorted; hidden entries are skipped.
pub(super) fn list_dir(
    files: &dyn ProjectFiles,
    dir: &str,
    diags: &mut Diagnostics,
    keep: impl Fn(&str, Kind) -> bool,
) -> Vec<(String, String)> {
    if let Link::Outside(to) = files.link(dir) {
        diags.push(
            Diagnostic::new(dir, format!("is a link to `{to}`, outside the project"))
                .hint("keep declarations and roles inside the project"),
        );
        return vec![];
    }
    let entries = match files.list(dir) {
        Ok(Some(e)) => e,
        Ok(None) => return vec![],
        Err(e) => {
            diags.push(Diagnostic::new(dir, format!("cannot read folder: {e}")));
            return vec![];
        }
    };
    let mut out = Vec::new();
    for (name, kind) in entries {
        let name = match name {
            Ok(name) => name,
            Err(shown) => {
                diags.push(Diagnostic::new(
                    format!("{dir}/{shown}"),
                    "file name is not valid UTF-8",
                ));
                continue;
            }
        };
        if name.starts_with('.') {
            continue;
        }
        // A role folder linked outside is reported by `load_role`, which names it as a role.
        let kind = if kind == Kind::Outside && dir == "roles" {
            Kind::Dir
        } else {
            kind
        };
        if kind == Kind::Outside {
            let rel = format!("{dir}/{name}");
            let to = match files.link(&rel) {
                Link::Outside(to) => to,
                _ => "?".into(),
            };
            diags.push(
                Diagnostic::new(&rel, format!("is a link to `{to}`, outside the project"))
                    .hint("keep declarations and roles inside the project"),
            );
            continue;
        }
        if !keep(&name, kind) {
            continue;
        }
        out.push((name.clone(), format!("{dir}/{name}")));
    }
    out.sort();
    out
}
