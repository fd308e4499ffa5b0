//! Every input of a project that is read from disk: [`scan_project`] scans the role folders,
//! the files of the origins images use and the files backends run, into [`Scanned`].

use std::fs;
use std::path::Path;

use rayon::prelude::*;

use super::hasher::Hasher;
use super::tree::Tree;
use super::walk::{scan_known, Scan};
use crate::error::{Error, ErrorKind, Result};

/// What key computation needs from the file system.
#[derive(Debug, Default)]
pub struct Scanned {
    /// Role name -> tree, for the roles walked whole: a role whose tree the stat cache's memo
    /// vouches for is known by its digest alone (`Workspace::tree` walks it when needed).
    pub trees: std::collections::BTreeMap<String, Tree>,
    /// Role name -> tree digest, for every role: what keys are made of.
    pub digests: std::collections::BTreeMap<String, String>,
    /// Origin name -> blake3 of its file (`busybox`, `tar` in the project).
    pub origin_files: std::collections::BTreeMap<String, String>,
    /// Project-relative path -> blake3, for files that backends run.
    pub backend_files: std::collections::BTreeMap<String, String>,
}

/// The folders a host program may be in without a pin: where the system's package manager
/// puts programs. A path is checked after its links are followed.
pub const PROGRAM_FOLDERS: &[&str] = &[
    "/usr/bin",
    "/bin",
    "/usr/sbin",
    "/sbin",
    "/usr/lib",
    "/usr/lib64",
    "/usr/libexec",
    "/usr/local/bin",
    "/usr/local/sbin",
    "/lib",
];

/// The digest a `busybox` origin is pinned to, in its declaration or in `layer.lock`: plans
/// use it and never open the host file.
pub fn pinned_busybox(project: &crate::model::Project, name: &str) -> Option<String> {
    match &project.origins[name].source {
        crate::model::OriginSource::Busybox { blake3, .. } => blake3.clone().or_else(|| {
            project
                .lock
                .origins
                .get(name)
                .and_then(|l| l.blake3.clone())
        }),
        _ => None,
    }
}

/// Whether the host file `path` may be read by a plan without a pin: a regular, executable
/// file under one of [`PROGRAM_FOLDERS`] once its links are followed. A missing file is left
/// to the read that follows, which says so; anything else is why not.
pub fn host_program(path: &Path) -> std::result::Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let Ok(real) = path.canonicalize() else {
        return Ok(());
    };
    if !PROGRAM_FOLDERS.iter().any(|f| real.starts_with(f)) {
        return Err(format!(
            "`{}` is not under the system's program folders",
            real.display()
        ));
    }
    let meta = fs::metadata(&real).map_err(|e| e.to_string())?;
    if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
        return Err(format!(
            "`{}` is not a regular, executable file",
            real.display()
        ));
    }
    Ok(())
}

/// The declaration error of a host program [`host_program`] refuses.
pub fn host_program_error(name: &str, path: &Path, why: &str) -> Error {
    Error::Input {
        kind: ErrorKind::OriginFile,
        path: crate::model::PROJECT_FILE.into(),
        message: format!(
            "origin `{name}`: `{}` is not read by plans: {why}",
            path.display()
        ),
        hint: Some(format!(
            "use a program under {}, or pin its digest: `blake3 = \"...\"` beside `busybox`, or `layer lock`",
            PROGRAM_FOLDERS[..4]
                .iter()
                .map(|f| format!("`{f}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// Scans every role folder, the files of the origins images use, and the project files
/// backends run. Roles are scanned in parallel.
pub fn scan_project(project: &crate::model::Project, hasher: &Hasher) -> Result<Scanned> {
    use crate::model::OriginSource;
    let root = &project.root;
    let scans: Vec<(String, Scan)> = crate::fsutil::io_pool().install(|| {
        project
            .roles
            .par_iter()
            .map(|(name, role)| {
                let scan = scan_known(&root.join(&role.dir), &role.dir, hasher)
                    .map_err(|e| unreadable_input(e, root, name))?;
                Ok((name.clone(), scan))
            })
            .collect::<Result<_>>()
    })?;
    let mut trees = std::collections::BTreeMap::new();
    let mut digests = std::collections::BTreeMap::new();
    for (name, scan) in scans {
        match scan {
            Scan::Tree(tree) => {
                digests.insert(name.clone(), tree.digest.clone());
                trees.insert(name, tree);
            }
            Scan::Unchanged(digest) => {
                digests.insert(name, digest);
            }
        }
    }

    let hash_hex = |path: &Path| -> std::io::Result<String> {
        let meta = fs::metadata(path)?;
        if !meta.is_file() {
            return Err(std::io::Error::other("not a regular file"));
        }
        let h = hasher.file(path, &meta).map_err(|e| match e {
            Error::Io { source, .. } => source,
            other => std::io::Error::other(other.to_string()),
        })?;
        Ok(blake3::Hash::from(h).to_hex().to_string())
    };

    let mut origin_files = std::collections::BTreeMap::new();
    let used: std::collections::BTreeSet<&str> =
        project.images.iter().filter_map(|i| i.origin()).collect();
    for name in used {
        if let Some(digest) = pinned_busybox(project, name) {
            origin_files.insert(name.to_string(), digest);
            continue;
        }
        if let OriginSource::Busybox { path, .. } = &project.origins[name].source {
            if let Err(why) = host_program(path) {
                return Err(host_program_error(name, path, &why));
            }
        }
        let (path, shown, hint) = match &project.origins[name].source {
            OriginSource::Busybox { path, .. } => (
                path.clone(),
                path.display().to_string(),
                "install a static busybox (`apt-get install busybox-static`) or point `busybox` at one",
            ),
            OriginSource::TarFile { path } => {
                (root.join(path), path.clone(), "add the tarball to the project, or fix the path in `layer.toml`")
            }
            _ => continue,
        };
        // A `tar` path inside the project must not lead outside it through a link.
        if matches!(project.origins[name].source, OriginSource::TarFile { .. }) {
            if let Ok(real) = path.canonicalize() {
                if !real.starts_with(root) {
                    return Err(Error::Input {
                        kind: ErrorKind::OriginFile,
                        path: crate::model::PROJECT_FILE.into(),
                        message: format!("origin `{name}`: `{shown}` leads outside the project"),
                        hint: Some("keep origin tarballs inside the project".into()),
                    });
                }
            }
        }
        let digest = hash_hex(&path).map_err(|e| Error::Input {
            kind: ErrorKind::OriginFile,
            path: crate::model::PROJECT_FILE.into(),
            message: format!("origin `{name}`: cannot read `{shown}`: {e}"),
            hint: Some(hint.into()),
        })?;
        origin_files.insert(name.to_string(), digest);
    }

    let mut backend_files = std::collections::BTreeMap::new();
    for backend in project.backends.values() {
        for f in backend.project_files() {
            let path = root.join(f);
            if let Ok(real) = path.canonicalize() {
                if !real.starts_with(root) {
                    return Err(Error::Input {
                        kind: ErrorKind::BackendFile,
                        path: crate::model::PROJECT_FILE.into(),
                        message: format!(
                            "backend `{}`: `{f}` leads outside the project",
                            backend.name
                        ),
                        hint: Some("keep backend scripts and templates inside the project".into()),
                    });
                }
            }
            // A missing script is reported when the backend runs; its absence is still an input.
            // One that is there but cannot be read (a fifo, a socket, no permission) is an error
            // now: hashing it as missing would hide a change of its content.
            let digest = match hash_hex(&path) {
                Ok(d) => d,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => "missing".into(),
                Err(e) => {
                    return Err(Error::Input {
                        kind: ErrorKind::BackendFile,
                        path: f.to_string(),
                        message: format!(
                            "backend `{}` runs it, and it cannot be read: {e}",
                            backend.name
                        ),
                        hint: Some(
                            "a backend's script or template must be a readable regular file".into(),
                        ),
                    })
                }
            };
            backend_files.insert(f.to_string(), digest);
        }
    }
    Ok(Scanned {
        trees,
        digests,
        origin_files,
        backend_files,
    })
}

/// A role file or folder that cannot be read is bad input (exit 2), named by its path in the
/// project, not a failure of layer's own (exit 1).
fn unreadable_input(e: Error, root: &Path, role: &str) -> Error {
    match e {
        Error::Io { path, source } => Error::Input {
            kind: ErrorKind::RoleEntry,
            path: path
                .strip_prefix(root)
                .unwrap_or(&path)
                .display()
                .to_string(),
            message: format!("role `{role}`: cannot read: {source}"),
            hint: Some(
                "make the role's files and folders readable by the user running layer".into(),
            ),
        },
        other => other,
    }
}
