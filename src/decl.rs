//! Declarations: the raw TOML of `layer.toml`, `layer.lock`, `images/*.toml` and
//! `roles/*/role.toml`, read and validated into [`crate::model`] types.
//!
//! A load reports every problem of the project at once, each naming its file (and line where
//! the parser or a span gives one) and saying how to fix it. Raw types (`*Raw`) never leave this
//! module.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use toml::Spanned;

use crate::error::{did_you_mean, Diagnostic, Diagnostics, Error, Result};
use crate::graph;
use crate::model::*;
use crate::source::files::{Kind, Link, ProjectFiles, WorkTree};

/// Walks up from `start` to the first folder holding `layer.toml`.
pub fn find_root(start: &Path) -> Result<PathBuf> {
    let start = if start.is_absolute() {
        start.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(|e| Error::io(".", e))?
            .join(start)
    };
    let mut dir = Some(start.as_path());
    while let Some(d) = dir {
        if d.join(PROJECT_FILE).is_file() {
            return Ok(d.to_path_buf());
        }
        dir = d.parent();
    }
    Err(Error::NoProject { start })
}

fn valid_var_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && (b[0].is_ascii_alphabetic() || b[0] == b'_')
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
}

const NAME_HINT: &str = "names are lowercase letters, digits, `-` and `_`, start with a letter or digit, and are at most 63 characters long";

// ---------------------------------------------------------------------------------------------
// Raw TOML types.

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ProjectFileRaw {
    #[serde(default)]
    project: ProjectRaw,
    #[serde(default)]
    origins: BTreeMap<String, Spanned<OriginRaw>>,
    #[serde(default)]
    backends: BTreeMap<String, Spanned<BackendRaw>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ProjectRaw {
    strategy: Option<Spanned<Strategy>>,
    backend: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OriginRaw {
    busybox: Option<String>,
    debian: Option<DebianRaw>,
    tar: Option<String>,
    sha256: Option<String>,
    id: Option<String>,
    resolve: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DebianRaw {
    suite: String,
    #[serde(default)]
    variant: Option<String>,
    #[serde(default)]
    mirror: Option<String>,
    #[serde(default)]
    components: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BackendRaw {
    kind: BackendKind,
    template: Option<String>,
    command: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ImageRaw {
    description: Option<String>,
    version: Option<Spanned<String>>,
    from: Option<Spanned<String>>,
    origin: Option<Spanned<String>>,
    #[serde(default)]
    roles: Vec<Spanned<String>>,
    #[serde(default)]
    packages: Vec<Spanned<String>>,
    backend: Option<Spanned<String>>,
    max_age: Option<Spanned<String>>,
    #[serde(default)]
    vars: BTreeMap<String, Spanned<toml::Value>>,
    #[serde(default)]
    secrets: BTreeMap<String, Spanned<SecretRaw>>,
    #[serde(default)]
    tags: BTreeMap<String, String>,
    #[serde(default)]
    test: Vec<Spanned<TestRaw>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SecretRaw {
    env: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TestRaw {
    name: String,
    run: String,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RoleRaw {
    #[serde(default)]
    depends: Vec<Spanned<String>>,
    #[serde(default)]
    packages: Vec<Spanned<String>>,
    #[serde(default)]
    vars: BTreeMap<String, Spanned<toml::Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LockRaw {
    version: u32,
    #[serde(default)]
    origins: BTreeMap<String, LockedOrigin>,
}

// ---------------------------------------------------------------------------------------------
// Reading files.

/// One source file, kept for turning byte offsets into line numbers.
struct Source {
    rel: String,
    text: String,
}

impl Source {
    fn line(&self, offset: usize) -> usize {
        self.text.as_bytes()[..offset.min(self.text.len())]
            .iter()
            .filter(|b| **b == b'\n')
            .count()
            + 1
    }

    fn line_of<T>(&self, s: &Spanned<T>) -> Option<usize> {
        Some(self.line(s.span().start))
    }

    fn diag(&self, line: Option<usize>, message: impl Into<String>) -> Diagnostic {
        Diagnostic::new(self.rel.clone(), message).at(line)
    }

    fn parse<T: DeserializeOwned>(&self, diags: &mut Diagnostics) -> Option<T> {
        match toml::from_str::<T>(&self.text) {
            Ok(v) => Some(v),
            Err(e) => {
                let line = e.span().map(|s| self.line(s.start));
                let (message, hint) = explain_toml_error(e.message());
                diags.push(self.diag(line, message).maybe_hint(hint));
                None
            }
        }
    }
}

fn read_source(files: &dyn ProjectFiles, rel: &str, diags: &mut Diagnostics) -> Option<Source> {
    // `layer.toml` and `layer.lock` may not lead out of the project (files listed in `images/`
    // and roles' `role.toml` are checked where they are found).
    if rel == PROJECT_FILE || rel == LOCK_FILE {
        if let Link::Outside(to) = files.link(rel) {
            diags.push(
                Diagnostic::new(rel, format!("is a link to `{to}`, outside the project"))
                    .hint("keep declarations inside the project"),
            );
            return None;
        }
    }
    let text = files.read(rel).and_then(|b| {
        String::from_utf8(b).map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "stream did not contain valid UTF-8",
            )
        })
    });
    match text {
        Ok(text) => Some(Source {
            rel: rel.to_string(),
            text,
        }),
        Err(e) => {
            diags.push(Diagnostic::new(rel, format!("cannot read: {e}")));
            None
        }
    }
}

/// Turns serde's "unknown field `x`, expected one of `a`, `b`" into our wording with a
/// "did you mean" hint, or the list of valid keys when none is close.
fn explain_toml_error(message: &str) -> (String, Option<String>) {
    let message = message.trim_end();
    for (prefix, what) in [("unknown field `", "key"), ("unknown variant `", "value")] {
        if let Some(rest) = message.strip_prefix(prefix) {
            let Some(end) = rest.find('`') else { break };
            let name = &rest[..end];
            let expected: Vec<&str> = rest[end + 1..].split('`').skip(1).step_by(2).collect();
            let hint = match did_you_mean(name, expected.iter().copied()) {
                Some(s) => format!("did you mean `{s}`?"),
                None if expected.is_empty() => format!("remove `{name}`"),
                None => format!(
                    "valid {what}s here: {}",
                    expected
                        .iter()
                        .map(|e| format!("`{e}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            };
            return (format!("unknown {what} `{name}`"), Some(hint));
        }
    }
    (message.to_string(), None)
}

fn scalar_to_string(v: &toml::Value) -> Option<String> {
    match v {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Float(f) => Some(f.to_string()),
        toml::Value::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

fn check_vars(
    src: &Source,
    vars: &BTreeMap<String, Spanned<toml::Value>>,
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

fn check_list(
    src: &Source,
    what: &str,
    items: &[Spanned<String>],
    diags: &mut Diagnostics,
) -> Vec<String> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for it in items {
        let s = it.get_ref();
        if s.trim().is_empty() || s.chars().any(char::is_whitespace) {
            diags.push(src.diag(src.line_of(it), format!("`{s}` is not a valid {what} name")));
        } else if !seen.insert(s.clone()) {
            diags.push(
                src.diag(src.line_of(it), format!("{what} `{s}` is listed twice"))
                    .hint("remove the second entry"),
            );
        } else {
            out.push(s.clone());
        }
    }
    out
}

/// A relative path in the project that must stay inside it.
fn check_project_path(
    src: &Source,
    line: Option<usize>,
    what: &str,
    p: &str,
    diags: &mut Diagnostics,
) -> bool {
    let path = Path::new(p);
    let escapes = path.is_absolute()
        || path
            .components()
            .any(|c| matches!(c, std::path::Component::ParentDir));
    if escapes {
        diags.push(
            src.diag(line, format!("{what} `{p}` is outside the project"))
                .hint("name a path relative to the project root, without `..`"),
        );
    }
    !escapes
}

// ---------------------------------------------------------------------------------------------
// Loading.

/// Reads and validates the project whose root holds `layer.toml`.
pub fn load(root: &Path) -> Result<Project> {
    let root = root.canonicalize().map_err(|e| Error::io(root, e))?;
    load_from(&root, &WorkTree::new(&root))
}

/// Reads and validates the project at `root` (canonical) from `files`: the work tree, or a
/// git commit for `--since`.
pub fn load_from(root: &Path, files: &dyn ProjectFiles) -> Result<Project> {
    let root = root.to_path_buf();
    let mut diags = Diagnostics::default();

    // layer.toml
    let mut strategy = Strategy::Deep;
    let mut default_backend = "rootfs".to_string();
    let mut origins = BTreeMap::new();
    let mut backends = BTreeMap::new();
    backends.insert("rootfs".to_string(), Backend::builtin_rootfs());
    // Every declared name, valid or not: a reference to a declaration that has its own error
    // is not also an "unknown" reference.
    let mut origin_names: BTreeSet<String> = BTreeSet::new();
    let mut backend_names: BTreeSet<String> = backends.keys().cloned().collect();
    let mut project_ok = false;
    if let Some(src) = read_source(files, PROJECT_FILE, &mut diags) {
        if let Some(raw) = src.parse::<ProjectFileRaw>(&mut diags) {
            project_ok = true;
            if let Some(s) = raw.project.strategy {
                strategy = *s.get_ref();
            }
            for (name, o) in raw.origins {
                origin_names.insert(name.clone());
                let line = src.line_of(&o);
                if !valid_name(&name) {
                    diags.push(
                        src.diag(line, format!("`{name}` is not a valid origin name"))
                            .hint(NAME_HINT),
                    );
                }
                if let Some(source) = origin_source(&src, line, &name, o.into_inner(), &mut diags) {
                    origins.insert(name.clone(), Origin { name, source });
                }
            }
            for (name, b) in raw.backends {
                backend_names.insert(name.clone());
                let line = src.line_of(&b);
                if !valid_name(&name) {
                    diags.push(
                        src.diag(line, format!("`{name}` is not a valid backend name"))
                            .hint(NAME_HINT),
                    );
                }
                if let Some(backend) = backend(&src, line, &name, b.into_inner(), &mut diags) {
                    backends.insert(name, backend);
                }
            }
            if let Some(b) = raw.project.backend {
                if !backend_names.contains(b.get_ref()) {
                    diags.push(unknown(
                        &src,
                        src.line_of(&b),
                        "backend",
                        b.get_ref(),
                        backend_names.iter(),
                    ));
                } else {
                    default_backend = b.into_inner();
                }
            }
        }
    }

    // layer.lock
    let mut lock = Lock::default();
    if files.kind(LOCK_FILE).is_some() {
        if let Some(src) = read_source(files, LOCK_FILE, &mut diags) {
            if let Some(raw) = src.parse::<LockRaw>(&mut diags) {
                if raw.version != 1 {
                    diags.push(
                        src.diag(
                            None,
                            format!(
                                "lock format version {} is not known to this layer",
                                raw.version
                            ),
                        )
                        .hint("run `layer lock` to write it again"),
                    );
                }
                lock.origins = raw.origins;
            }
        }
    }

    // roles/
    let (roles, role_names) = load_roles(files, &mut diags);

    // images/
    // Files are read, parsed and checked in parallel; each file's diagnostics are merged in
    // the order of the sequential loop (files by name, and all parse errors before all checks),
    // so the stable sort in `Diagnostics::into_result` gives the same report as before.
    let image_files = list_dir(files, "images", &mut diags, |name, kind| {
        name.ends_with(".toml") && kind == Kind::File
    });
    /// An image file: its name, its diagnostics and, when it parsed, its source and content.
    type Parsed = (String, Diagnostics, Option<(Source, ImageRaw)>);
    let parsed: Vec<Parsed> = image_files
        .into_par_iter()
        .map(|(name, rel)| {
            let mut d = Diagnostics::default();
            let name = name.trim_end_matches(".toml").to_string();
            if !valid_name(&name) {
                d.push(
                    Diagnostic::new(&rel, format!("`{name}` is not a valid image name"))
                        .hint(NAME_HINT),
                );
            }
            let raw = read_source(files, &rel, &mut d)
                .and_then(|src| src.parse::<ImageRaw>(&mut d).map(|raw| (src, raw)));
            (name, d, raw)
        })
        .collect();
    let mut image_names = BTreeSet::new();
    let mut raw_images: Vec<(String, Source, ImageRaw)> = Vec::with_capacity(parsed.len());
    for (name, d, raw) in parsed {
        diags.0.extend(d.0);
        image_names.insert(name.clone());
        if let Some((src, raw)) = raw {
            raw_images.push((name, src, raw));
        }
    }

    let ctx = Refs {
        image_names: &image_names,
        role_names: &role_names,
        origins: project_ok.then_some(&origin_names),
        backends: project_ok.then_some(&backend_names),
    };
    let checked: Vec<(Diagnostics, Option<Image>)> = raw_images
        .into_par_iter()
        .map(|(name, src, raw)| {
            let mut d = Diagnostics::default();
            let img = image(&src, name, raw, &ctx, &mut d);
            (d, img)
        })
        .collect();
    let mut images = Vec::with_capacity(checked.len());
    for (d, img) in checked {
        diags.0.extend(d.0);
        images.extend(img);
    }

    // Cycles among images, then a topological order.
    let nodes: Vec<(String, Option<String>)> = images
        .iter()
        .map(|i| (i.name.clone(), i.parent().map(str::to_string)))
        .collect();
    for cycle in graph::parent_cycles(&nodes) {
        let first = images
            .iter()
            .find(|i| i.name == cycle[0])
            .expect("cycle names an image");
        diags.push(
            Diagnostic::new(
                &first.file,
                format!("images are built from each other: {}", cycle.join(" -> ")),
            )
            .hint("one image of the cycle must start from an `origin` instead of `from`"),
        );
    }
    let role_deps: BTreeMap<String, Vec<String>> = roles
        .iter()
        .map(|(n, r)| (n.clone(), r.depends.clone()))
        .collect();
    // A role that depends on itself is reported as such by `load_roles`.
    for cycle in graph::depends_cycles(&role_deps)
        .into_iter()
        .filter(|c| c.len() > 2)
    {
        diags.push(
            Diagnostic::new(
                format!("roles/{}/role.toml", cycle[0]),
                format!("roles depend on each other: {}", cycle.join(" -> ")),
            )
            .hint("remove one of these `depends` entries"),
        );
    }
    diags.into_result()?;

    let order = graph::topo_order(&nodes);
    let mut slots: Vec<Option<Image>> = images.into_iter().map(Some).collect();
    let images = order
        .into_iter()
        .map(|i| slots[i].take().expect("each index once"))
        .collect();
    Ok(Project {
        root,
        strategy,
        backend: default_backend,
        origins,
        backends,
        roles,
        images,
        lock,
    })
}

fn unknown<'a>(
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
        None => format!(
            "known {what}s: {}",
            known
                .iter()
                .map(|s| format!("`{s}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    src.diag(line, format!("unknown {what} `{name}`"))
        .hint(hint)
}

/// Names (file names) and root-relative paths of the entries of `dir` that `keep` accepts,
/// sorted; hidden entries are skipped.
fn list_dir(
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

fn load_roles(
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
    name: &String,
    rel: &String,
    all_names: &BTreeSet<String>,
    diags: &mut Diagnostics,
) -> Option<Role> {
    if !valid_name(name) {
        diags.push(
            Diagnostic::new(rel, format!("`{name}` is not a valid role name")).hint(NAME_HINT),
        );
        return None;
    }
    // A symlinked role folder must resolve inside the project.
    match files.link(rel) {
        Link::NotALink | Link::Inside => {}
        Link::Outside(real) => {
            diags.push(
                Diagnostic::new(
                    rel,
                    format!("role folder is a link to `{real}`, outside the project"),
                )
                .hint("copy the role into the project, or link to a folder inside it"),
            );
            return None;
        }
        Link::Broken(e) => {
            diags.push(Diagnostic::new(
                rel,
                format!("cannot resolve role folder link: {e}"),
            ));
            return None;
        }
    }
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
    let raw = if toml_kind.is_some() {
        match read_source(files, &toml_rel, diags) {
            Some(src) => src.parse::<RoleRaw>(diags).map(|raw| (Some(src), raw)),
            None => None,
        }
    } else {
        Some((None, RoleRaw::default()))
    };
    let (src, raw) = raw?;
    let (depends, packages, vars) = match &src {
        Some(src) => (
            check_list(src, "role", &raw.depends, diags),
            check_list(src, "package", &raw.packages, diags),
            check_vars(src, &raw.vars, diags),
        ),
        None => Default::default(),
    };
    let role = Role {
        name: name.clone(),
        dir: rel.clone(),
        depends,
        packages,
        vars,
    };
    if let Some(src) = src {
        for d in &raw.depends {
            let dep = d.get_ref();
            if dep == name {
                diags.push(
                    src.diag(src.line_of(d), format!("role `{name}` depends on itself"))
                        .hint("remove it from `depends`"),
                );
            }
        }
        for d in &raw.depends {
            if !all_names.contains(d.get_ref()) {
                diags.push(unknown(
                    &src,
                    src.line_of(d),
                    "role",
                    d.get_ref(),
                    all_names.iter(),
                ));
            }
        }
    }
    Some(role)
}

fn origin_source(
    src: &Source,
    line: Option<usize>,
    name: &str,
    raw: OriginRaw,
    diags: &mut Diagnostics,
) -> Option<OriginSource> {
    let given: Vec<&str> = [
        ("busybox", raw.busybox.is_some()),
        ("debian", raw.debian.is_some()),
        ("tar", raw.tar.is_some()),
        ("id", raw.id.is_some()),
        ("resolve", raw.resolve.is_some()),
    ]
    .into_iter()
    .filter_map(|(k, set)| set.then_some(k))
    .collect();
    if given.len() != 1 {
        let message = if given.is_empty() {
            format!("origin `{name}` says nothing about where it comes from")
        } else {
            format!(
                "origin `{name}` has {}; it needs exactly one",
                given
                    .iter()
                    .map(|g| format!("`{g}`"))
                    .collect::<Vec<_>>()
                    .join(" and ")
            )
        };
        diags.push(
            src.diag(line, message)
                .hint("give one of `busybox`, `debian`, `tar`, `id` or `resolve`"),
        );
        return None;
    }
    if raw.sha256.is_some() && raw.tar.is_none() {
        diags.push(
            src.diag(
                line,
                format!("origin `{name}`: `sha256` goes with a `tar` URL"),
            )
            .hint("remove `sha256`"),
        );
        return None;
    }
    if let Some(path) = raw.busybox {
        return Some(OriginSource::Busybox {
            path: PathBuf::from(path),
        });
    }
    if let Some(d) = raw.debian {
        let variant = d.variant.unwrap_or_else(|| "minbase".to_string());
        return Some(OriginSource::Debian {
            suite: d.suite,
            variant,
            mirror: d.mirror,
            components: d.components,
        });
    }
    if let Some(tar) = raw.tar {
        if tar.contains("://") {
            let Some(sha256) = raw.sha256 else {
                diags.push(
                    src.diag(
                        line,
                        format!("origin `{name}`: a `tar` URL needs its `sha256`"),
                    )
                    .hint("add `sha256 = \"...\"` with the archive's sha256 (`sha256sum FILE`)"),
                );
                return None;
            };
            let sha256 = sha256.to_ascii_lowercase();
            if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                diags.push(src.diag(
                    line,
                    format!("origin `{name}`: `sha256` must be 64 hex digits"),
                ));
                return None;
            }
            return Some(OriginSource::TarUrl { url: tar, sha256 });
        }
        if !check_project_path(src, line, &format!("origin `{name}`: tarball"), &tar, diags) {
            return None;
        }
        return Some(OriginSource::TarFile { path: tar });
    }
    if let Some(id) = raw.id {
        if id.is_empty() {
            diags.push(src.diag(line, format!("origin `{name}`: `id` is empty")));
            return None;
        }
        return Some(OriginSource::Id { id });
    }
    let command = raw.resolve.unwrap_or_default();
    if command.is_empty() {
        diags.push(
            src.diag(line, format!("origin `{name}`: `resolve` needs a command"))
                .hint("e.g. `resolve = [\"./scripts/latest-ami.sh\"]`"),
        );
        return None;
    }
    if !check_script_path(
        src,
        line,
        &format!("origin `{name}`: `resolve` script"),
        &command[0],
        diags,
    ) {
        return None;
    }
    Some(OriginSource::Resolve { command })
}

/// A command's program: a host program (`packer`, `/usr/bin/env`) may be anything, but a
/// script of the project (a relative path with a `/`) must stay inside it.
fn check_script_path(
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

fn backend(
    src: &Source,
    line: Option<usize>,
    name: &str,
    raw: BackendRaw,
    diags: &mut Diagnostics,
) -> Option<Backend> {
    let mut ok = true;
    match raw.kind {
        BackendKind::Rootfs => {
            if raw.template.is_some() || raw.command.is_some() {
                diags.push(src.diag(
                    line,
                    format!(
                        "backend `{name}`: a `rootfs` backend takes no `template` or `command`"
                    ),
                ));
                ok = false;
            }
        }
        BackendKind::Command => {
            if raw.template.is_some() {
                diags.push(
                    src.diag(
                        line,
                        format!("backend `{name}`: `template` goes with `kind = \"packer\"`"),
                    )
                    .hint("remove `template`"),
                );
                ok = false;
            }
            if raw.command.as_ref().is_none_or(|c| c.is_empty()) {
                diags.push(
                    src.diag(
                        line,
                        format!("backend `{name}`: a `command` backend needs `command`"),
                    )
                    .hint("e.g. `command = [\"./scripts/build-image.sh\"]`"),
                );
                ok = false;
            } else if let Some(program) = raw.command.as_ref().and_then(|c| c.first()) {
                ok &= check_script_path(
                    src,
                    line,
                    &format!("backend `{name}`: script"),
                    program,
                    diags,
                );
            }
        }
        BackendKind::Packer => {
            if raw.command.is_some() {
                diags.push(
                    src.diag(
                        line,
                        format!("backend `{name}`: `command` goes with `kind = \"command\"`"),
                    )
                    .hint("remove `command`"),
                );
                ok = false;
            }
            match &raw.template {
                None => {
                    diags.push(
                        src.diag(
                            line,
                            format!("backend `{name}`: a `packer` backend needs `template`"),
                        )
                        .hint("e.g. `template = \"packer/aws.pkr.hcl\"`"),
                    );
                    ok = false;
                }
                Some(t) => {
                    ok &= check_project_path(
                        src,
                        line,
                        &format!("backend `{name}`: template"),
                        t,
                        diags,
                    )
                }
            }
        }
    }
    ok.then(|| Backend {
        name: name.to_string(),
        kind: raw.kind,
        template: raw.template,
        command: raw.command.unwrap_or_default(),
    })
}

struct Refs<'a> {
    image_names: &'a BTreeSet<String>,
    role_names: &'a BTreeSet<String>,
    /// `None` when `layer.toml` did not load: references to origins and backends are not checked.
    origins: Option<&'a BTreeSet<String>>,
    backends: Option<&'a BTreeSet<String>>,
}

fn image(
    src: &Source,
    name: String,
    raw: ImageRaw,
    refs: &Refs,
    diags: &mut Diagnostics,
) -> Option<Image> {
    let before = diags.len();
    let mut pin = None;
    let base = match (&raw.from, &raw.origin) {
        (Some(_), Some(o)) => {
            diags.push(src.diag(src.line_of(o), "both `from` and `origin` are set").hint("an image starts either from a parent image (`from`) or from an origin (`origin`): keep one"));
            None
        }
        (None, None) => {
            diags.push(src.diag(None, "neither `from` nor `origin` is set").hint("add `from = \"PARENT\"` to build on another image, or `origin = \"NAME\"` to start from an origin in `layer.toml`"));
            None
        }
        (Some(from), None) => {
            // `from = "PARENT@PIN"`: built on the newest released build of PARENT under PIN.
            let (parent, p_pin) = crate::version::split_target(from.get_ref());
            if let Some(pin) = p_pin.filter(|p| !crate::version::valid_pin(p)) {
                diags.push(
                    src.diag(src.line_of(from), format!("`{pin}` in `from = \"{}\"` is not a version pin", from.get_ref()))
                        .hint(format!("pin a major version (`{parent}@2`), a minor one (`{parent}@2.1`) or one build (`{parent}@2.1.3`)")),
                );
            }
            pin = p_pin.map(str::to_string);
            let p = Spanned::new(from.span(), parent.to_string());
            let p = &p;
            if p.get_ref() == &name {
                diags.push(
                    src.diag(
                        src.line_of(p),
                        format!("image `{name}` is built from itself"),
                    )
                    .hint("start it from an `origin` or another image"),
                );
            } else if !refs.image_names.contains(p.get_ref()) {
                diags.push(unknown(
                    src,
                    src.line_of(p),
                    "image",
                    p.get_ref(),
                    refs.image_names.iter(),
                ));
            }
            Some(Base::Parent(p.get_ref().clone()))
        }
        (None, Some(o)) => {
            if let Some(origins) = refs.origins {
                if !origins.contains(o.get_ref()) {
                    diags.push(unknown(
                        src,
                        src.line_of(o),
                        "origin",
                        o.get_ref(),
                        origins.iter(),
                    ));
                }
            }
            Some(Base::Origin(o.get_ref().clone()))
        }
    };
    let version = match &raw.version {
        None => "0.1".to_string(),
        Some(v) => {
            let parts: Vec<&str> = v.get_ref().split('.').collect();
            let numeric =
                |s: &str| !s.is_empty() && s.len() <= 9 && s.bytes().all(|b| b.is_ascii_digit());
            if parts.len() != 2 || !parts.iter().all(|p| numeric(p)) {
                diags.push(src.diag(src.line_of(v), format!("version `{}` is not MAJOR.MINOR", v.get_ref())).hint("write it as `version = \"1.0\"`: layer adds the build number and date itself"));
            }
            v.get_ref().clone()
        }
    };
    let roles = check_list(src, "role", &raw.roles, diags);
    for r in &raw.roles {
        if !refs.role_names.contains(r.get_ref()) {
            diags.push(unknown(
                src,
                src.line_of(r),
                "role",
                r.get_ref(),
                refs.role_names.iter(),
            ));
        }
    }
    let packages = check_list(src, "package", &raw.packages, diags);
    if let (Some(b), Some(backends)) = (&raw.backend, refs.backends) {
        if !backends.contains(b.get_ref()) {
            diags.push(unknown(
                src,
                src.line_of(b),
                "backend",
                b.get_ref(),
                backends.iter(),
            ));
        }
    }
    let max_age = raw
        .max_age
        .as_ref()
        .and_then(|m| match humantime::parse_duration(m.get_ref()) {
            Ok(d) if !d.is_zero() => Some(d),
            _ => {
                diags.push(
                    src.diag(
                        src.line_of(m),
                        format!("`max_age = \"{}\"` is not a duration", m.get_ref()),
                    )
                    .hint("write a number and a unit, such as `90d`, `12h` or `2w`"),
                );
                None
            }
        });
    let vars = check_vars(src, &raw.vars, diags);
    let mut secrets = BTreeMap::new();
    for (k, s) in &raw.secrets {
        if !valid_var_name(k) {
            diags.push(src.diag(
                src.line_of(s),
                format!("`{k}` is not a valid environment variable name"),
            ));
        }
        if vars.contains_key(k) {
            diags.push(
                src.diag(
                    src.line_of(s),
                    format!("`{k}` is both a variable and a secret"),
                )
                .hint("keep it in one of `[vars]` and `[secrets]`"),
            );
        }
        secrets.insert(k.clone(), s.get_ref().env.clone());
    }
    let mut tests: Vec<ImageTest> = Vec::new();
    for t in &raw.test {
        let t_ref = t.get_ref();
        if tests.iter().any(|x| x.name == t_ref.name) {
            diags.push(
                src.diag(
                    src.line_of(t),
                    format!("two tests are named `{}`", t_ref.name),
                )
                .hint("give each `[[test]]` its own name"),
            );
        }
        tests.push(ImageTest {
            name: t_ref.name.clone(),
            run: t_ref.run.clone(),
        });
    }
    if diags.len() > before {
        return None;
    }
    Some(Image {
        name,
        file: src.rel.clone(),
        description: raw.description,
        version,
        base: base?,
        roles,
        packages,
        backend: raw.backend.map(Spanned::into_inner),
        max_age,
        max_age_text: raw.max_age.map(Spanned::into_inner),
        pin,
        vars,
        secrets,
        tags: raw.tags,
        tests,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["a", "base-linux", "app_server2", "0day"] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in ["", "Base", "-a", "_a", "a.b", "a b", &"a".repeat(64)] {
            assert!(!valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn toml_errors_get_hints() {
        assert_eq!(
            explain_toml_error(
                "unknown field `form`, expected one of `description`, `version`, `from`, `origin`"
            ),
            (
                "unknown key `form`".to_string(),
                Some("did you mean `from`?".to_string())
            )
        );
        assert_eq!(
            explain_toml_error("unknown variant `dep`, expected `deep` or `shallow`"),
            (
                "unknown value `dep`".to_string(),
                Some("did you mean `deep`?".to_string())
            )
        );
        assert_eq!(
            explain_toml_error("unknown field `zzzzzz`, expected `strategy` or `backend`"),
            (
                "unknown key `zzzzzz`".to_string(),
                Some("valid keys here: `strategy`, `backend`".to_string())
            )
        );
    }
}
