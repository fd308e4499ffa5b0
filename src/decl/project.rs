//! The project's own files: `layer.toml` (`[project]`, its origins, backends and remote, each checked
//! by its validator) and `layer.lock`.

use std::collections::{BTreeMap, BTreeSet};

use super::backend::backend;
use super::check::{unknown, NAME_HINT};
use super::file::read_source;
use super::origin::origin_source;
use super::raw::{LockRaw, ProjectFileRaw};
use super::remote::remote;
use crate::error::Diagnostics;
use crate::model::{
    valid_name, Backend, Lock, Origin, RemoteConfig, Strategy, LOCK_FILE, PROJECT_FILE,
};
use crate::source::files::ProjectFiles;

/// What `layer.toml` declares, and every name it declares. Without a readable `layer.toml`,
/// the defaults: `deep`, the built-in `rootfs` backend and no origins.
pub(super) struct ProjectFile {
    pub strategy: Strategy,
    /// The default backend: `[project].backend`, else `rootfs`.
    pub backend: String,
    /// The origins that are valid.
    pub origins: BTreeMap<String, Origin>,
    /// The backends that are valid, and the built-in `rootfs`.
    pub backends: BTreeMap<String, Backend>,
    /// `[remote]`, when declared and valid.
    pub remote: Option<RemoteConfig>,
    /// Every declared name, valid or not: a reference to a declaration that has its own error
    /// is not also an "unknown" reference.
    pub origin_names: BTreeSet<String>,
    pub backend_names: BTreeSet<String>,
    /// `layer.toml` was read and parsed: references to origins and backends can be checked.
    pub loaded: bool,
}

/// Reads and checks `layer.toml`; its problems go to `diags`.
pub(super) fn load_project_file(files: &dyn ProjectFiles, diags: &mut Diagnostics) -> ProjectFile {
    let mut backends = BTreeMap::new();
    backends.insert("rootfs".to_string(), Backend::builtin_rootfs());
    let mut out = ProjectFile {
        strategy: Strategy::Deep,
        backend: "rootfs".to_string(),
        origins: BTreeMap::new(),
        backend_names: backends.keys().cloned().collect(),
        backends,
        origin_names: BTreeSet::new(),
        remote: None,
        loaded: false,
    };
    let Some(src) = read_source(files, PROJECT_FILE, diags) else {
        return out;
    };
    let Some(raw) = src.parse::<ProjectFileRaw>(diags) else {
        return out;
    };
    out.loaded = true;
    if let Some(s) = raw.project.strategy {
        out.strategy = *s.get_ref();
    }
    for (name, o) in raw.origins {
        out.origin_names.insert(name.clone());
        let line = src.line_of(&o);
        if !valid_name(&name) {
            diags.push(
                src.diag(line, format!("`{name}` is not a valid origin name"))
                    .hint(NAME_HINT),
            );
        }
        if let Some(source) = origin_source(&src, line, &name, o.into_inner(), diags) {
            out.origins.insert(name.clone(), Origin { name, source });
        }
    }
    for (name, b) in raw.backends {
        out.backend_names.insert(name.clone());
        let line = src.line_of(&b);
        if !valid_name(&name) {
            diags.push(
                src.diag(line, format!("`{name}` is not a valid backend name"))
                    .hint(NAME_HINT),
            );
        }
        if let Some(backend) = backend(&src, line, &name, b.into_inner(), diags) {
            out.backends.insert(name, backend);
        }
    }
    if let Some(r) = raw.remote {
        let line = src.line_of(&r);
        out.remote = remote(&src, line, r.into_inner(), diags);
    }
    if let Some(b) = raw.project.backend {
        if !out.backend_names.contains(b.get_ref()) {
            diags.push(unknown(
                &src,
                src.line_of(&b),
                "backend",
                b.get_ref(),
                out.backend_names.iter(),
            ));
        } else {
            out.backend = b.into_inner();
        }
    }
    out
}

/// Reads `layer.lock` when there is one (none is an empty lock); its problems go to `diags`.
pub(super) fn load_lock(files: &dyn ProjectFiles, diags: &mut Diagnostics) -> Lock {
    let mut lock = Lock::default();
    if files.kind(LOCK_FILE).is_none() {
        return lock;
    }
    let Some(src) = read_source(files, LOCK_FILE, diags) else {
        return lock;
    };
    let Some(raw) = src.parse::<LockRaw>(diags) else {
        return lock;
    };
    // Version 1 had no package versions; it still reads (its Debian origins count as not
    // locked, so `layer lock` writes version 2).
    if raw.version != 1 && raw.version != crate::model::LOCK_VERSION {
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
    lock.images = raw.images;
    lock
}
