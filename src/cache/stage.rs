//! Bundles staged once and shared (issue 15): the folder an external backend gets as
//! `LAYER_BUNDLE` is made once per content and reused by every build with the same content, in
//! this run and later ones, instead of copying every role's tree for every build.
//!
//! ```text
//! cache/staged/
//!   roles/ID/tree/        a role folder as the build applies it, copied once per ID
//!   roles/ID/stamps       what `lstat` said of every entry of tree/ when it was staged
//!   bundles/DIGEST/bundle/   apply.sh + roles/NN-NAME/, files hard-linked from roles/ID/tree/
//!   bundles/DIGEST/stamps
//!   tmp/                  stagings in progress, renamed into place when whole
//! ```
//!
//! A role's ID is the blake3 of its tree digest (what keys see), its `role.toml`'s bytes (keys
//! see what it declares) and the full mode of every entry (what `files/` carries into an
//! image), so a `chmod` stages anew. A staged role is
//! scanned after it was copied and must have the tree digest the plan keyed: a role edited
//! mid-run fails its build rather than being recorded under the old key. A bundle's DIGEST
//! covers its `apply.sh` and its roles' IDs.
//!
//! A builder may write into its bundle. Staged files keep their source's modes (they are
//! applied to images as they are), so every reuse is verified first: each entry's inode, mode,
//! size and mtime must be what the stamps say (files carry their source's mtime, folders too,
//! so a write, a truncation, a replacement, a `chmod`, or an entry added or removed shows; ctime
//! is left out because linking a file into the next bundle changes it). A staging that does
//! not verify is removed and made again. `layer cache gc` removes `staged/` whole.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::Cache;
use crate::error::{Error, ErrorKind, Result};
use crate::scan::{scan_tree, Hasher, StatCache, Tree};

/// One role of a bundle.
pub struct StageRole<'a> {
    /// Its name in the bundle, `NN-NAME`.
    pub staged: &'a str,
    /// The role's name, for messages.
    pub name: &'a str,
    /// The role folder (absolute).
    pub dir: &'a Path,
    /// The role's tree as the workspace scanned it.
    pub tree: &'a Tree,
}

/// What a cache remembers about staging for as long as it lives: role IDs by folder and
/// digest (found once per run), and a lock per staging being made, so that builds staging
/// different bundles do not wait for each other (a run of quick builds at `-j 8` made its
/// bundles one at a time) while two that need the same one make it once.
#[derive(Debug, Default)]
pub struct Staging {
    ids: Mutex<HashMap<(PathBuf, String), String>>,
    making: Mutex<HashMap<PathBuf, Arc<Mutex<()>>>>,
}

impl Staging {
    /// The lock of the staging at `top` (held while it is verified or made). A thread that
    /// holds a bundle's lock may take its roles'; none takes a bundle's while holding a role's.
    fn lock_of(&self, top: &Path) -> Arc<Mutex<()>> {
        let mut making = self.making.lock().expect("no panics while staging");
        making.entry(top.to_path_buf()).or_default().clone()
    }
}

/// Numbers temporary folders within this process.
static TMP: AtomicU64 = AtomicU64::new(0);

impl Cache {
    fn staged_dir(&self) -> PathBuf {
        self.dir.join("staged")
    }

    /// The bundle of `apply_sh` and `roles`, staged (or reused after verifying it); returns the
    /// bundle folder, which holds `apply.sh` and `roles/NN-NAME/`.
    pub fn stage_bundle(&self, apply_sh: &str, roles: &[StageRole]) -> Result<PathBuf> {
        let mut ids = Vec::with_capacity(roles.len());
        let mut enc = format!("layer-bundle-v1\0{apply_sh}\0");
        for r in roles {
            let id = self.role_id(r)?;
            let _ = write!(enc, "{}\0{id}\0", r.staged);
            ids.push(id);
        }
        let digest = blake3::hash(enc.as_bytes()).to_hex()[..32].to_string();
        let top = self.staged_dir().join("bundles").join(&digest);
        if verify(&top) {
            return Ok(top.join("bundle"));
        }
        let lock = self.staging.lock_of(&top);
        let _making = lock.lock().expect("no panics while staging");
        if verify(&top) {
            return Ok(top.join("bundle"));
        }
        let mut trees = Vec::with_capacity(roles.len());
        for (r, id) in roles.iter().zip(&ids) {
            trees.push(self.stage_role(r, id)?);
        }
        let tmp = self.tmp_dir()?;
        let result =
            fill_bundle(&tmp, apply_sh, roles, &trees).and_then(|()| finish(&tmp, "bundle", &top));
        if result.is_err() {
            let _ = remove_staged(&tmp);
        }
        result.map(|()| top.join("bundle"))
    }

    /// A role's ID: its tree digest and the mode of each entry, found once per folder and
    /// digest for as long as this cache lives.
    fn role_id(&self, r: &StageRole) -> Result<String> {
        let memo = (r.dir.to_path_buf(), r.tree.digest.clone());
        if let Some(id) = self.staging.ids.lock().expect("no panics").get(&memo) {
            return Ok(id.clone());
        }
        let mut modes = Vec::new();
        let mut decl = String::new();
        for entry in walkdir::WalkDir::new(r.dir)
            .follow_links(false)
            .sort_by_file_name()
        {
            let entry = entry.map_err(|e| walk_error(r.dir, e))?;
            let meta = entry.metadata().map_err(|e| walk_error(r.dir, e))?;
            let rel = entry.path().strip_prefix(r.dir).expect("below the root");
            modes.push(format!("{:o} {}", meta.mode(), rel.display()));
            // `role.toml` is keyed as what it declares, not in the tree digest: its bytes go
            // into the ID, so a staged copy never holds an older wording of it.
            if rel == Path::new("role.toml") && meta.is_file() {
                let bytes = fs::read(entry.path()).map_err(|e| Error::io(entry.path(), e))?;
                decl = blake3::hash(&bytes).to_hex().to_string();
            }
        }
        let enc = format!(
            "layer-role-v2\0{}\0{decl}\0{}",
            r.tree.digest,
            modes.join("\0")
        );
        let id = blake3::hash(enc.as_bytes()).to_hex()[..32].to_string();
        self.staging
            .ids
            .lock()
            .expect("no panics")
            .insert(memo, id.clone());
        Ok(id)
    }

    /// The staged tree of role `r` (ID `id`): verified, or copied anew from the role's folder
    /// and checked against the digest the plan keyed. Called with its bundle's lock held.
    fn stage_role(&self, r: &StageRole, id: &str) -> Result<PathBuf> {
        let top = self.staged_dir().join("roles").join(id);
        let lock = self.staging.lock_of(&top);
        let _making = lock.lock().expect("no panics while staging");
        if verify(&top) {
            return Ok(top.join("tree"));
        }
        let tmp = self.tmp_dir()?;
        let result = fill_role(&tmp, r).and_then(|()| finish(&tmp, "tree", &top));
        if result.is_err() {
            let _ = remove_staged(&tmp);
        }
        result.map(|()| top.join("tree"))
    }

    /// A new, empty folder under `staged/tmp/`.
    fn tmp_dir(&self) -> Result<PathBuf> {
        let n = TMP.fetch_add(1, Ordering::Relaxed);
        let tmp = self
            .staged_dir()
            .join("tmp")
            .join(format!("{}-{n}", std::process::id()));
        let _ = remove_staged(&tmp);
        fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
        Ok(tmp)
    }

    /// Removes every staging (`layer cache gc`, with the cache lock held exclusively): they are
    /// made again when a build needs them.
    pub fn remove_staged(&self) -> Result<()> {
        remove_staged(&self.staged_dir())
    }
}

/// Fills `tmp/bundle`: `apply.sh` and each role's staged tree, hard-linked.
fn fill_bundle(tmp: &Path, apply_sh: &str, roles: &[StageRole], trees: &[PathBuf]) -> Result<()> {
    let bundle = tmp.join("bundle");
    let roles_dir = bundle.join("roles");
    fs::create_dir_all(&roles_dir).map_err(|e| Error::io(&roles_dir, e))?;
    let apply = bundle.join("apply.sh");
    fs::write(&apply, apply_sh).map_err(|e| Error::io(&apply, e))?;
    fs::set_permissions(&apply, fs::Permissions::from_mode(0o755))
        .map_err(|e| Error::io(&apply, e))?;
    for (r, tree) in roles.iter().zip(trees) {
        copy_tree(tree, &roles_dir.join(r.staged), true)?;
    }
    Ok(())
}

/// Fills `tmp/tree` with a copy of role `r`'s folder, which must have the digest the plan
/// keyed.
fn fill_role(tmp: &Path, r: &StageRole) -> Result<()> {
    let tree = tmp.join("tree");
    copy_tree(r.dir, &tree, false)?;
    let scanned = scan_tree(&tree, r.name, &Hasher::new(&StatCache::default()))?;
    if scanned.digest != r.tree.digest {
        return Err(Error::Input {
            kind: ErrorKind::RoleChanged,
            path: format!("roles/{}", r.name),
            message: "changed while the run was building: its files are no longer the ones the plan keyed".into(),
            hint: Some("run the build again".into()),
        });
    }
    Ok(())
}

/// Writes `tmp/stamps` for `tmp/CONTENT` and renames `tmp` to `top` (replacing a staging that
/// did not verify); a staging another process put there first wins if it verifies.
fn finish(tmp: &Path, content: &str, top: &Path) -> Result<()> {
    let stamps = stamps_of(&tmp.join(content))?;
    let path = tmp.join("stamps");
    fs::write(&path, format!("{content}\n{stamps}")).map_err(|e| Error::io(&path, e))?;
    let parent = top.parent().expect("stagings have a folder");
    fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    if fs::symlink_metadata(top).is_ok() {
        if verify(top) {
            return remove_staged(tmp);
        }
        remove_staged(top)?;
    }
    match fs::rename(tmp, top) {
        Ok(()) => Ok(()),
        Err(_) if verify(top) => remove_staged(tmp),
        Err(e) => Err(Error::io(top, e)),
    }
}

/// One line per entry of `root` (itself first, as `.`): mode, inode, size, mtime and path.
fn stamps_of(root: &Path) -> Result<String> {
    let mut out = String::new();
    for entry in walkdir::WalkDir::new(root).follow_links(false) {
        let entry = entry.map_err(|e| walk_error(root, e))?;
        let meta = entry.metadata().map_err(|e| walk_error(root, e))?;
        let rel = entry.path().strip_prefix(root).expect("below the root");
        let rel = if rel.as_os_str().is_empty() {
            Path::new(".")
        } else {
            rel
        };
        let _ = writeln!(out, "{} {}", stamp(&meta), rel.display());
    }
    Ok(out)
}

fn stamp(m: &fs::Metadata) -> String {
    format!(
        "{:o} {} {} {}.{}",
        m.mode(),
        m.ino(),
        m.size(),
        m.mtime(),
        m.mtime_nsec()
    )
}

/// Whether the staging at `top` is whole and every entry is as its stamps say.
fn verify(top: &Path) -> bool {
    let Ok(text) = fs::read_to_string(top.join("stamps")) else {
        return false;
    };
    let mut lines = text.lines();
    let Some(content) = lines.next() else {
        return false;
    };
    let root = top.join(content);
    let mut any = false;
    for line in lines {
        // mode ino size mtime path (the path may hold spaces)
        let mut parts = line.splitn(5, ' ');
        let (Some(m), Some(i), Some(s), Some(t), Some(rel)) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return false;
        };
        let Ok(meta) = fs::symlink_metadata(root.join(rel)) else {
            return false;
        };
        if stamp(&meta) != format!("{m} {i} {s} {t}") {
            return false;
        }
        any = true;
    }
    any
}

/// Copies the folder `from` to `to`: modes kept, mtimes kept (to the nanosecond), symlinks as
/// links; with `link`, files are hard links to `from`'s (copied where the file system
/// refuses).
fn copy_tree(from: &Path, to: &Path, link: bool) -> Result<()> {
    let mut dirs = Vec::new();
    for entry in walkdir::WalkDir::new(from).follow_links(false) {
        let entry = entry.map_err(|e| walk_error(from, e))?;
        let meta = entry.metadata().map_err(|e| walk_error(from, e))?;
        let rel = entry.path().strip_prefix(from).expect("below the root");
        let target = to.join(rel);
        let ft = meta.file_type();
        if ft.is_dir() {
            // Writable while it fills; its mode and mtime are set last.
            fs::create_dir(&target).map_err(|e| Error::io(&target, e))?;
            dirs.push((target, meta));
        } else if ft.is_symlink() {
            let dest = fs::read_link(entry.path()).map_err(|e| Error::io(entry.path(), e))?;
            std::os::unix::fs::symlink(&dest, &target).map_err(|e| Error::io(&target, e))?;
        } else if !(link && fs::hard_link(entry.path(), &target).is_ok()) {
            fs::copy(entry.path(), &target).map_err(|e| Error::io(&target, e))?;
            set_mtime(&target, &meta)?;
        }
    }
    // Deepest first, so that setting a folder's mode never blocks filling the ones below.
    for (dir, meta) in dirs.iter().rev() {
        fs::set_permissions(dir, fs::Permissions::from_mode(meta.mode() & 0o7777))
            .map_err(|e| Error::io(dir, e))?;
        set_mtime(dir, meta)?;
    }
    Ok(())
}

/// Gives `path` the mtime (to the nanosecond) of `like`.
fn set_mtime(path: &Path, like: &fs::Metadata) -> Result<()> {
    crate::fsutil::set_mtime_ns(path, like.mtime(), like.mtime_nsec())
}

/// Removes a staging, making its folders writable first (a role may have read-only ones).
fn remove_staged(path: &Path) -> Result<()> {
    if fs::symlink_metadata(path).is_err() {
        return Ok(());
    }
    for entry in walkdir::WalkDir::new(path)
        .follow_links(false)
        .into_iter()
        .flatten()
    {
        if entry.file_type().is_dir() {
            let _ = fs::set_permissions(entry.path(), fs::Permissions::from_mode(0o700));
        }
    }
    crate::fsutil::remove_tree(path)
}

fn walk_error(root: &Path, e: walkdir::Error) -> Error {
    let p = e
        .path()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| root.to_path_buf());
    Error::io(
        p,
        e.into_io_error()
            .unwrap_or_else(|| std::io::Error::other("walk failed")),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role(root: &Path) -> PathBuf {
        let dir = root.join("roles/base");
        fs::create_dir_all(dir.join("files/etc")).unwrap();
        fs::write(dir.join("provision.sh"), "echo hi\n").unwrap();
        fs::set_permissions(dir.join("provision.sh"), fs::Permissions::from_mode(0o755)).unwrap();
        fs::write(dir.join("files/etc/motd"), "hello\n").unwrap();
        fs::set_permissions(
            dir.join("files/etc/motd"),
            fs::Permissions::from_mode(0o640),
        )
        .unwrap();
        std::os::unix::fs::symlink("motd", dir.join("files/etc/issue")).unwrap();
        dir
    }

    fn stage(cache: &Cache, dir: &Path, tree: &Tree, apply: &str) -> Result<PathBuf> {
        cache.stage_bundle(
            apply,
            &[StageRole {
                staged: "01-base",
                name: "base",
                dir,
                tree,
            }],
        )
    }

    #[test]
    fn a_bundle_is_staged_once_and_a_write_into_it_is_undone() {
        let t = tempfile::tempdir().unwrap();
        let dir = role(t.path());
        let tree = scan_tree(&dir, "base", &Hasher::new(&StatCache::default())).unwrap();
        let cache = Cache::new(t.path().join("cache"));
        let b = stage(&cache, &dir, &tree, "#!/bin/sh\n").unwrap();
        let motd = b.join("roles/01-base/files/etc/motd");
        assert_eq!(fs::read_to_string(&motd).unwrap(), "hello\n");
        let meta = fs::symlink_metadata(&motd).unwrap();
        assert_eq!(meta.mode() & 0o777, 0o640, "modes are the role's");
        assert_eq!(
            meta.mtime(),
            fs::metadata(dir.join("files/etc/motd")).unwrap().mtime()
        );
        assert!(
            fs::symlink_metadata(b.join("roles/01-base/files/etc/issue"))
                .unwrap()
                .file_type()
                .is_symlink()
        );
        let ino = meta.ino();
        // Reused as it is, by another cache of the same folder (another run).
        let again = Cache::new(t.path().join("cache"));
        assert_eq!(stage(&again, &dir, &tree, "#!/bin/sh\n").unwrap(), b);
        assert_eq!(fs::symlink_metadata(&motd).unwrap().ino(), ino);
        // Another apply.sh links the same staged files.
        let other = stage(&again, &dir, &tree, "#!/bin/sh\n# other\n").unwrap();
        assert_ne!(other, b);
        assert_eq!(
            fs::symlink_metadata(other.join("roles/01-base/files/etc/motd"))
                .unwrap()
                .ino(),
            ino
        );
        // A builder writes into its bundle: both the bundle and the staged role are made anew.
        fs::write(&motd, "tampered\n").unwrap();
        let fresh = Cache::new(t.path().join("cache"));
        let b2 = stage(&fresh, &dir, &tree, "#!/bin/sh\n").unwrap();
        assert_eq!(b2, b);
        assert_eq!(fs::read_to_string(&motd).unwrap(), "hello\n");
        let o2 = stage(&fresh, &dir, &tree, "#!/bin/sh\n# other\n").unwrap();
        assert_eq!(
            fs::read_to_string(o2.join("roles/01-base/files/etc/motd")).unwrap(),
            "hello\n"
        );
        // A file added to a bundle's folder is seen too.
        fs::write(b.join("roles/01-base/extra"), "x").unwrap();
        let b3 = stage(
            &Cache::new(t.path().join("cache")),
            &dir,
            &tree,
            "#!/bin/sh\n",
        )
        .unwrap();
        assert!(!b3.join("roles/01-base/extra").exists());
        cache.remove_staged().unwrap();
        assert!(!t.path().join("cache/staged").exists());
    }

    #[test]
    fn a_role_that_changed_since_the_plan_fails_its_build() {
        let t = tempfile::tempdir().unwrap();
        let dir = role(t.path());
        let tree = scan_tree(&dir, "base", &Hasher::new(&StatCache::default())).unwrap();
        fs::write(dir.join("provision.sh"), "echo changed\n").unwrap();
        let cache = Cache::new(t.path().join("cache"));
        let err = stage(&cache, &dir, &tree, "#!/bin/sh\n").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::RoleChanged);
        assert_eq!(
            err.to_string(),
            "roles/base: changed while the run was building: its files are no longer the ones the plan keyed"
        );
        assert_eq!(err.hint().as_deref(), Some("run the build again"));
        let tmp = t.path().join("cache/staged/tmp");
        assert_eq!(
            fs::read_dir(tmp).unwrap().count(),
            0,
            "nothing half-made left"
        );
    }
}
