//! Declarations: the raw TOML of `layer.toml`, `layer.lock`, `images/*.toml` and
//! `roles/*/role.toml`, read and validated into [`crate::model`] types.
//!
//! A load reports every problem of the project at once, each naming its file (and line where
//! the parser or a span gives one) and saying how to fix it. Raw types (`*Raw`) never leave this
//! module.
//!
//! The parts, each using only those above it: the raw TOML mirrors; one file read and its
//! parse errors worded; the checks all declarations share; then one validator per kind of
//! declaration (origins, backends, the remote cache, the project's own files, roles, images). This file puts
//! them together: [`load_from`] loads each kind, then rejects cycles and orders the images;
//! [`load_cached`] skips all that when nothing it read changed (`model_cache`: the parsed model
//! kept under the stamps of every path a load looked at).

mod raw;
mod file;
mod check;
mod origin;
mod backend;
mod remote;
mod project;
mod role;
mod image;
mod model_cache;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::error::{Diagnostic, Diagnostics, Error, ErrorKind, Result};
use crate::graph;
use crate::model::{Image, Project, Role, PROJECT_FILE};
use crate::source::files::{ProjectFiles, WorkTree};
use crate::source::recorded::Recorded;

pub use model_cache::{Loaded, MAGIC as MODEL_MAGIC};

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

/// Reads and validates the project whose root holds `layer.toml`.
pub fn load(root: &Path) -> Result<Project> {
    let root = root.canonicalize().map_err(|e| Error::io(root, e))?;
    load_from(&root, &WorkTree::new(&root))
}

/// Loads the project at `root`, reusing `cached` (a model cache's bytes, checksum removed)
/// when it is this layer's (`salt` names what else it must match, such as the key schema) and
/// nothing it was loaded from changed; otherwise loads it from the declarations, as
/// [`load`] does, and returns the model cache to save.
pub fn load_cached(root: &Path, cached: Option<&[u8]>, salt: &str) -> Result<Loaded> {
    let root = root.canonicalize().map_err(|e| Error::io(root, e))?;
    let identity = model_cache::identity(salt);
    if let (Some(bytes), Some(id)) = (cached, &identity) {
        if let Some(project) = model_cache::reuse(bytes, &root, id) {
            return Ok(Loaded {
                project,
                save: None,
            });
        }
    }
    let started = SystemTime::now();
    let files = WorkTree::new(&root);
    let recorded = Recorded::new(&files);
    let project = load_from(&root, &recorded)?;
    let paths = recorded.paths();
    let save = identity.and_then(|id| model_cache::seal(&project, &root, &paths, &id, started));
    Ok(Loaded { project, save })
}

/// What a cache of this layer's making must have been written by: this layer's version, `salt`
/// and the running binary (`None` when it cannot be looked at: then nothing is cached).
pub fn cache_identity(salt: &str) -> Option<Vec<u8>> {
    model_cache::identity(salt)
}

/// The project `cached` holds (the bytes [`seal_named`] made, checksum removed), if this layer
/// wrote it (with `salt`) for `root` (canonical) and declaration files named by `names` (see
/// `model_cache::seal_named`).
pub fn reuse_named(cached: &[u8], root: &Path, names: &[u8; 32], salt: &str) -> Option<Project> {
    model_cache::reuse_named(cached, root, names, &model_cache::identity(salt)?)
}

/// The bytes of a model cache of `project`, loaded from declaration files named by `names`,
/// for [`reuse_named`]; `None` when the running binary cannot be looked at.
pub fn seal_named(project: &Project, names: &[u8; 32], salt: &str) -> Option<Vec<u8>> {
    model_cache::seal_named(project, names, &model_cache::identity(salt)?)
}

/// Reads and validates the project at `root` (canonical) from `files`: the work tree, or a
/// git commit for `--since`.
pub fn load_from(root: &Path, files: &dyn ProjectFiles) -> Result<Project> {
    let mut diags = Diagnostics::default();
    let project = project::load_project_file(files, &mut diags);
    let lock = project::load_lock(files, &mut diags);
    let (roles, role_names) = role::load_roles(files, &mut diags);
    let images = image::load_images(
        files,
        &role_names,
        project.loaded.then_some(&project.origin_names),
        project.loaded.then_some(&project.backend_names),
        &mut diags,
    );
    // A `roles/` folder that cannot be read names no role: that is the error, and the images'
    // references to roles are not "unknown" besides.
    if diags
        .0
        .iter()
        .any(|d| d.file == "roles" && d.message.starts_with("cannot read folder"))
    {
        diags.0.retain(|d| !d.message.starts_with("unknown role"));
    }
    let nodes: Vec<(String, Option<String>)> = images
        .iter()
        .map(|i| (i.name.clone(), i.parent().map(str::to_string)))
        .collect();
    check_cycles(&nodes, &images, &roles, &mut diags);
    diags.into_result()?;

    let order = graph::topo_order(&nodes);
    let mut slots: Vec<Option<Image>> = images.into_iter().map(Some).collect();
    let images = order
        .into_iter()
        .map(|i| slots[i].take().expect("each index once"))
        .collect();
    Ok(Project {
        root: root.to_path_buf(),
        strategy: project.strategy,
        backend: project.backend,
        origins: project.origins,
        backends: project.backends,
        remote: project.remote,
        roles,
        images,
        lock,
    })
}

/// Images built from each other (`nodes`: each image and its parent) and roles that depend on
/// each other, each cycle reported with its whole path.
fn check_cycles(
    nodes: &[(String, Option<String>)],
    images: &[Image],
    roles: &BTreeMap<String, Role>,
    diags: &mut Diagnostics,
) {
    for cycle in graph::parent_cycles(nodes) {
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
}

/// Applies `--var IMAGE.KEY=VALUE` overrides: each replaces an entry the image's `[vars]`
/// declares, for this run (values are part of the key, so the plan shows them). An override
/// of an undeclared image or variable is an error, so a typo does not pass unnoticed.
pub fn override_vars(project: &mut Project, overrides: &[(String, String, String)]) -> Result<()> {
    for (image, key, value) in overrides {
        let Some(img) = project.images.iter_mut().find(|i| &i.name == image) else {
            let names = project.images.iter().map(|i| i.name.as_str());
            return Err(Error::UnknownImage {
                name: image.clone(),
                suggestion: crate::error::did_you_mean(image, names),
            });
        };
        match img.vars.get_mut(key) {
            Some(v) => *v = value.clone(),
            None => {
                let near = crate::error::did_you_mean(key, img.vars.keys().map(String::as_str));
                return Err(Error::Usage {
                    kind: ErrorKind::UnknownVar,
                    message: format!(
                        "`--var {image}.{key}`: `{image}` declares no variable `{key}` in `[vars]`"
                    ),
                    hint: Some(match near {
                        Some(n) => format!("did you mean `{image}.{n}`?"),
                        None => format!("declare it in `images/{image}.toml` under `[vars]` first"),
                    }),
                });
            }
        }
    }
    Ok(())
}
