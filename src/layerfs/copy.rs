//! The copying fallback, for hosts where overlayfs is refused: [`compose`] copies a stack's
//! merged view into a folder, [`diff`] writes the layer that turns it into a tree, and
//! [`prune`] drops from a layer what it copied up without changing.

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use rustix::fs::{FileType, Mode, CWD};
use rustix::io::Errno;

use super::merge::StackView;
use super::overlay::{is_opaque, make_whiteout};
use super::tree::{join_rel, kind_letter, walk};
use crate::error::{Error, Result};

/// Whether two entries show the same thing: type, permission bits, owner, and content, link
/// target or device number. Mtimes do not count.
pub fn same_entry(a: &Path, am: &fs::Metadata, b: &Path, bm: &fs::Metadata) -> Result<bool> {
    if kind_letter(am) != kind_letter(bm)
        || am.mode() & 0o7777 != bm.mode() & 0o7777
        || am.uid() != bm.uid()
        || am.gid() != bm.gid()
    {
        return Ok(false);
    }
    Ok(match kind_letter(am) {
        b'f' => {
            am.len() == bm.len()
                && (am.len() == 0
                    || crate::scan::hash_file(a, am.len())? == crate::scan::hash_file(b, bm.len())?)
        }
        b'l' => fs::read_link(a).ok() == fs::read_link(b).ok(),
        b'c' | b'b' => am.rdev() == bm.rdev(),
        b'd' => is_opaque(a) == is_opaque(b),
        _ => true,
    })
}

/// Removes from the layer `upper` what shows the same as the stack below it: files that a
/// build copied up without changing them (a restored `resolv.conf`, a file rewritten with the
/// same bytes), then folders left empty that the stack has the same. The merged view is
/// unchanged; the layer holds only real changes.
pub fn prune(upper: &Path, below: &StackView) -> Result<()> {
    let nodes = walk(upper)?;
    // Children before their folders.
    for n in nodes.iter().rev() {
        if n.rel.is_empty() || n.is_whiteout() {
            continue;
        }
        let Some(lower) = below.get(&n.rel) else {
            continue;
        };
        let Ok(lm) = fs::symlink_metadata(&lower) else {
            continue;
        };
        let path = join_rel(upper, &n.rel);
        if !same_entry(&path, &n.meta, &lower, &lm)? {
            continue;
        }
        let r = if n.meta.is_dir() {
            match fs::remove_dir(&path) {
                // Not empty: it holds changes.
                Err(e) if e.raw_os_error() == Some(Errno::NOTEMPTY.raw_os_error()) => Ok(()),
                r => r,
            }
        } else {
            fs::remove_file(&path)
        };
        r.map_err(|e| Error::io(&path, e))?;
    }
    Ok(())
}

/// Copies one entry (not a folder's contents) from `from` to `to`: type, permission bits,
/// owner, mtime, content, link target or device number.
pub fn copy_entry(from: &Path, meta: &fs::Metadata, to: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let io = |e: io::Error| Error::io(to, e);
    match kind_letter(meta) {
        b'd' => fs::create_dir(to).map_err(io)?,
        b'f' => {
            fs::copy(from, to).map_err(io)?;
        }
        b'l' => std::os::unix::fs::symlink(fs::read_link(from).map_err(io)?, to).map_err(io)?,
        _ => {
            let kind = FileType::from_raw_mode(meta.mode());
            let mode = Mode::from_raw_mode(meta.mode());
            rustix::fs::mknodat(CWD, to, kind, mode, meta.rdev()).map_err(|e| io(e.into()))?;
        }
    }
    std::os::unix::fs::lchown(to, Some(meta.uid()), Some(meta.gid())).map_err(io)?;
    if !meta.file_type().is_symlink() {
        fs::set_permissions(to, fs::Permissions::from_mode(meta.mode() & 0o7777)).map_err(io)?;
        if let Ok(m) = meta.modified() {
            if let Ok(f) = fs::File::open(to) {
                let _ = f.set_modified(m);
            }
        }
    }
    Ok(())
}

/// Makes `dest` (absent or empty) show the stack's merged view, by copying: for hosts where
/// overlayfs is refused.
pub fn compose(view: &StackView, dest: &Path) -> Result<()> {
    for rel in view.paths() {
        let from = view.get(rel).expect("listed");
        let meta = fs::symlink_metadata(&from).map_err(|e| Error::io(&from, e))?;
        let to = join_rel(dest, rel);
        if rel.is_empty() {
            fs::create_dir_all(&to).map_err(|e| Error::io(&to, e))?;
            continue;
        }
        copy_entry(&from, &meta, &to)?;
    }
    // Folder permissions and mtimes last: a read-only folder would refuse its children.
    for rel in view.paths() {
        let from = view.get(rel).expect("listed");
        let meta = fs::symlink_metadata(&from).map_err(|e| Error::io(&from, e))?;
        if meta.is_dir() {
            use std::os::unix::fs::PermissionsExt;
            let to = join_rel(dest, rel);
            fs::set_permissions(&to, fs::Permissions::from_mode(meta.mode() & 0o7777))
                .map_err(|e| Error::io(&to, e))?;
            std::os::unix::fs::lchown(&to, Some(meta.uid()), Some(meta.gid()))
                .map_err(|e| Error::io(&to, e))?;
        }
    }
    Ok(())
}

/// Writes into `upper` (empty) the layer that turns the stack's view into the tree `root`:
/// entries added or changed, and whiteouts for those removed.
pub fn diff(root: &Path, below: &StackView, upper: &Path) -> Result<()> {
    let nodes = walk(root)?;
    let mut present = std::collections::BTreeSet::new();
    let mut present_dirs = std::collections::BTreeSet::new();
    for n in &nodes {
        present.insert(n.rel.clone());
        if n.meta.is_dir() {
            present_dirs.insert(n.rel.clone());
        }
        if n.rel.is_empty() {
            continue;
        }
        let path = join_rel(root, &n.rel);
        let changed = match below.get(&n.rel) {
            None => true,
            Some(lower) => match fs::symlink_metadata(&lower) {
                Ok(lm) => !same_entry(&path, &n.meta, &lower, &lm)?,
                Err(_) => true,
            },
        };
        if changed {
            ensure_parents(root, upper, &n.rel)?;
            let to = join_rel(upper, &n.rel);
            if n.meta.is_dir() {
                if !to.exists() {
                    copy_entry(&path, &n.meta, &to)?;
                }
            } else {
                copy_entry(&path, &n.meta, &to)?;
            }
        }
    }
    for rel in below.paths() {
        if rel.is_empty() || present.contains(rel) {
            continue;
        }
        // Only the topmost removed path needs a whiteout: below a folder that is gone, or
        // that is a file now (which hides the lower folder), nothing is needed.
        let parent = rel
            .iter()
            .rposition(|b| *b == b'/')
            .map_or(&[][..], |i| &rel[..i]);
        if !present_dirs.contains(parent) {
            continue;
        }
        ensure_parents(root, upper, rel)?;
        let to = join_rel(upper, rel);
        make_whiteout(&to).map_err(|e| Error::io(&to, e))?;
    }
    Ok(())
}

/// Makes the folders above `rel` in `upper`, as they are in `root`.
fn ensure_parents(root: &Path, upper: &Path, rel: &[u8]) -> Result<()> {
    let mut at = 0;
    while let Some(i) = rel[at..].iter().position(|b| *b == b'/') {
        let prefix = &rel[..at + i];
        let to = join_rel(upper, prefix);
        if !to.exists() {
            let from = join_rel(root, prefix);
            let meta = fs::symlink_metadata(&from).map_err(|e| Error::io(&from, e))?;
            copy_entry(&from, &meta, &to)?;
        }
        at += i + 1;
    }
    Ok(())
}
