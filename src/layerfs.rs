//! Root filesystem trees and layers as they sit on the build host: their digest, and the
//! overlayfs conventions a layer keeps (whiteouts, opaque folders).
//!
//! A layer is a folder holding what an image added, changed or removed over the tree below it,
//! in overlayfs's own format, so that it can be stacked as a lower directory as it is:
//!
//! - a removed path is a *whiteout*: a character device 0/0 of the same name;
//! - a folder whose lower contents are hidden (removed, then made again) is *opaque*: it has
//!   the extended attribute `trusted.overlay.opaque = "y"`.
//!
//! The digest of a tree covers everything a running image sees: for each entry, sorted by path
//! (as bytes), its path, type, permission bits (`0o7777`), owner and group ids, content (files),
//! target (symlinks), device numbers (devices) and opaqueness (folders). Not mtimes: a layer's
//! mtimes are kept in exports but say nothing of what the image is.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use rustix::fs::{FileType, Mode, XattrFlags, CWD};
use rustix::io::Errno;

use crate::error::{Error, Result};

/// The extended attribute that makes a folder opaque in an overlayfs upper or lower layer.
pub const OPAQUE_XATTR: &str = "trusted.overlay.opaque";

/// Bumped when what [`digest`] covers changes.
const DIGEST_SCHEMA: &[u8] = b"layer-tree-v1\0";

/// One entry of a tree, relative to its root.
#[derive(Debug, Clone)]
pub struct Node {
    /// Path relative to the root, as bytes, without a leading slash; "" is the root itself.
    pub rel: Vec<u8>,
    pub meta: fs::Metadata,
}

impl Node {
    pub fn is_whiteout(&self) -> bool {
        is_whiteout(&self.meta)
    }
}

pub fn is_whiteout(meta: &fs::Metadata) -> bool {
    meta.file_type().is_char_device() && meta.rdev() == 0
}

/// Whether the folder at `path` carries the opaque attribute.
pub fn is_opaque(path: &Path) -> bool {
    let mut buf = [0u8; 4];
    let n = rustix::fs::lgetxattr(path, OPAQUE_XATTR, &mut buf);
    n == Ok(1) && buf[0] == b'y'
}

/// Marks the folder at `path` opaque.
pub fn set_opaque(path: &Path) -> io::Result<()> {
    set_xattr(path, OPAQUE_XATTR, b"y")
}

/// Sets the extended attribute `name` of `p` (not following a link).
pub(crate) fn set_xattr(p: &Path, name: &str, value: &[u8]) -> io::Result<()> {
    Ok(rustix::fs::lsetxattr(p, name, value, XattrFlags::empty())?)
}

/// Makes a whiteout at `path`.
pub fn make_whiteout(path: &Path) -> io::Result<()> {
    let (kind, mode) = (FileType::CharacterDevice, Mode::empty());
    Ok(rustix::fs::mknodat(CWD, path, kind, mode, 0)?)
}

/// Every entry under `root` (the root itself first, as ""), sorted by path as bytes, never
/// following symlinks and never leaving the root's filesystem (a mount point below the root is
/// listed but not entered).
pub fn walk(root: &Path) -> Result<Vec<Node>> {
    let top = fs::symlink_metadata(root).map_err(|e| Error::io(root, e))?;
    let mut out = vec![Node {
        rel: Vec::new(),
        meta: top.clone(),
    }];
    if top.is_dir() {
        walk_dir(root, &[], top.dev(), &mut out)?;
    }
    Ok(out)
}

fn walk_dir(dir: &Path, rel: &[u8], dev: u64, out: &mut Vec<Node>) -> Result<()> {
    let mut names: Vec<_> = fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<io::Result<_>>()
        .map_err(|e| Error::io(dir, e))?;
    names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    for name in names {
        let path = dir.join(&name);
        let meta = fs::symlink_metadata(&path).map_err(|e| Error::io(&path, e))?;
        let mut r = rel.to_vec();
        if !r.is_empty() {
            r.push(b'/');
        }
        r.extend_from_slice(name.as_bytes());
        let descend = meta.is_dir() && meta.dev() == dev;
        out.push(Node {
            rel: r.clone(),
            meta,
        });
        if descend {
            walk_dir(&path, &r, dev, out)?;
        }
    }
    Ok(())
}

/// Type letter of an entry, as the digest and exports name it.
pub fn kind_letter(meta: &fs::Metadata) -> u8 {
    let t = meta.file_type();
    if t.is_file() {
        b'f'
    } else if t.is_dir() {
        b'd'
    } else if t.is_symlink() {
        b'l'
    } else if t.is_char_device() {
        b'c'
    } else if t.is_block_device() {
        b'b'
    } else if t.is_fifo() {
        b'p'
    } else {
        b's'
    }
}

/// The blake3 digest of the tree or file at `path` (see the module's text) and its size: the
/// bytes of its regular files.
pub fn digest(path: &Path) -> Result<(String, u64)> {
    let nodes = walk(path)?;
    let contents: Vec<Option<[u8; 32]>> = nodes
        .par_iter()
        .map(|n| -> Result<Option<[u8; 32]>> {
            if !n.meta.is_file() {
                return Ok(None);
            }
            let p = join_rel(path, &n.rel);
            crate::scan::hash_file(&p, n.meta.len()).map(Some)
        })
        .collect::<Result<_>>()?;
    let mut h = blake3::Hasher::new();
    h.update(DIGEST_SCHEMA);
    let mut size = 0u64;
    for (n, content) in nodes.iter().zip(&contents) {
        let m = &n.meta;
        h.update(&(n.rel.len() as u64).to_le_bytes());
        h.update(&n.rel);
        h.update(&[kind_letter(m)]);
        h.update(&(m.mode() & 0o7777).to_le_bytes());
        h.update(&m.uid().to_le_bytes());
        h.update(&m.gid().to_le_bytes());
        match kind_letter(m) {
            b'f' => {
                size += m.len();
                h.update(&m.len().to_le_bytes());
                h.update(content.as_ref().expect("files are hashed"));
            }
            b'l' => {
                let p = join_rel(path, &n.rel);
                let target = fs::read_link(&p).map_err(|e| Error::io(&p, e))?;
                let t = target.as_os_str().as_bytes();
                h.update(&(t.len() as u64).to_le_bytes());
                h.update(t);
            }
            b'c' | b'b' => {
                h.update(&m.rdev().to_le_bytes());
            }
            b'd' => {
                h.update(&[is_opaque(&join_rel(path, &n.rel)) as u8]);
            }
            _ => {}
        }
    }
    Ok((h.finalize().to_hex().to_string(), size))
}

/// `root` joined with a relative path given as bytes ("" is the root).
pub fn join_rel(root: &Path, rel: &[u8]) -> PathBuf {
    if rel.is_empty() {
        root.to_path_buf()
    } else {
        root.join(std::ffi::OsStr::from_bytes(rel))
    }
}

/// One entry of a layer, as the export reads it.
#[derive(Debug, Clone)]
pub(crate) struct LayerNode {
    pub rel: Vec<u8>,
    pub meta: fs::Metadata,
    pub opaque: bool,
}

/// Every entry of the layer at `root` (the root itself first), in walk order, with opaqueness.
/// Refuses overlayfs features that make an upper directory mean more than its files: a
/// `metacopy` file holds no data and a `redirect` folder takes its content from elsewhere.
pub(crate) fn scan_layer(root: &Path) -> Result<Vec<LayerNode>> {
    let nodes = walk(root)?;
    nodes
        .into_par_iter()
        .map(|n| {
            let path = join_rel(root, &n.rel);
            let feature = if n.meta.is_dir() {
                Some("trusted.overlay.redirect")
            } else if n.meta.is_file() {
                Some("trusted.overlay.metacopy")
            } else {
                None
            };
            if let Some(feature) = feature {
                let found = get_xattr(&path, feature).map_err(|e| Error::io(&path, e))?;
                if found.is_some() {
                    return Err(Error::io(
                        &path,
                        io::Error::other(format!(
                            "layer uses overlayfs `{feature}`, which an export cannot follow; \
                             mount overlays with redirect_dir=off,metacopy=off"
                        )),
                    ));
                }
            }
            let opaque = n.meta.is_dir() && is_opaque(&path);
            Ok(LayerNode {
                rel: n.rel,
                meta: n.meta,
                opaque,
            })
        })
        .collect()
}

/// One entry of the merged view of a stack.
#[derive(Debug, Clone)]
pub struct Merged {
    /// Path relative to the root, as bytes; "" is the root.
    pub rel: Vec<u8>,
    /// The index of the layer (in the stack, bottom first) the entry comes from.
    pub layer: usize,
    pub meta: fs::Metadata,
}

/// The tree a mount of `layers` (bottom first) would show, sorted by path as bytes, the root
/// ("") first. Applies overlayfs's rules: an entry of an upper layer replaces the same path
/// below; a whiteout removes the path and everything under it; an opaque folder, or a
/// non-folder over a folder, hides everything below it; the root takes the attributes of the
/// topmost layer's root, as an overlay mount's does. No whiteout is left in the result.
pub fn merge(layers: &[PathBuf]) -> Result<Vec<Merged>> {
    let scanned: Vec<Vec<LayerNode>> = layers
        .iter()
        .map(|l| scan_layer(l))
        .collect::<Result<_>>()?;
    let mut map: BTreeMap<Vec<u8>, (usize, fs::Metadata)> = BTreeMap::new();
    for (i, nodes) in scanned.into_iter().enumerate() {
        for n in nodes {
            if n.rel.is_empty() {
                if !n.meta.is_dir() {
                    return Err(Error::io(
                        &layers[i],
                        io::Error::other("a layer must be a folder"),
                    ));
                }
                map.insert(Vec::new(), (i, n.meta));
                continue;
            }
            let whiteout = is_whiteout(&n.meta);
            let over_non_dir = map.get(&n.rel).is_some_and(|(_, m)| !m.is_dir());
            if whiteout || n.opaque || !n.meta.is_dir() || over_non_dir {
                remove_below(&mut map, &n.rel);
            }
            if whiteout {
                map.remove(&n.rel);
            } else {
                map.insert(n.rel, (i, n.meta));
            }
        }
    }
    Ok(map
        .into_iter()
        .map(|(rel, (layer, meta))| Merged { rel, layer, meta })
        .collect())
}

/// Removes every entry strictly below `rel`.
fn remove_below<V>(map: &mut BTreeMap<Vec<u8>, V>, rel: &[u8]) {
    let mut lo = rel.to_vec();
    lo.push(b'/');
    let mut hi = rel.to_vec();
    hi.push(b'/' + 1);
    let doomed: Vec<Vec<u8>> = map.range(lo..hi).map(|(k, _)| k.clone()).collect();
    for k in doomed {
        map.remove(&k);
    }
}

/// The extended attribute `name` of `p` (not following a symlink), if it has one.
pub(crate) fn get_xattr(p: &Path, name: &str) -> io::Result<Option<Vec<u8>>> {
    loop {
        let size = match rustix::fs::lgetxattr_query(p, name) {
            Ok(size) => size,
            Err(Errno::NODATA | Errno::NOTSUP) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let mut buf = vec![0u8; size];
        match rustix::fs::lgetxattr(p, name, &mut buf[..]) {
            Ok(got) => {
                buf.truncate(got);
                return Ok(Some(buf));
            }
            Err(Errno::RANGE) => continue, // grew in between
            Err(Errno::NODATA) => return Ok(None),
            Err(e) => return Err(e.into()),
        }
    }
}

/// The merged view of a stack of trees (bottom first), as overlayfs would show it: for each
/// path, the tree that provides it. Whiteouts remove a path and everything below it; an opaque
/// folder hides what the trees below hold under it.
pub struct StackView {
    entries: std::collections::BTreeMap<Vec<u8>, PathBuf>,
}

impl StackView {
    pub fn new(stack: &[PathBuf]) -> Result<StackView> {
        let entries = merge(stack)?
            .into_iter()
            .map(|m| (m.rel, stack[m.layer].clone()))
            .collect();
        Ok(StackView { entries })
    }

    /// The path of `rel` in the tree that provides it.
    pub fn get(&self, rel: &[u8]) -> Option<PathBuf> {
        self.entries.get(rel).map(|layer| join_rel(layer, rel))
    }

    /// Every path of the merged view, sorted ("" first).
    pub fn paths(&self) -> impl Iterator<Item = &Vec<u8>> {
        self.entries.keys()
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_digest_covers_content_mode_links_and_whiteouts_but_not_mtimes() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        fs::create_dir(r.join("etc")).unwrap();
        fs::write(r.join("etc/motd"), "hi\n").unwrap();
        std::os::unix::fs::symlink("motd", r.join("etc/issue")).unwrap();
        let (first, size) = digest(r).unwrap();
        assert_eq!(size, 3);
        assert_eq!(digest(r).unwrap().0, first, "stable");

        let f = fs::File::options()
            .write(true)
            .open(r.join("etc/motd"))
            .unwrap();
        f.set_modified(std::time::SystemTime::UNIX_EPOCH).unwrap();
        assert_eq!(digest(r).unwrap().0, first, "mtimes are not covered");

        fs::set_permissions(r.join("etc/motd"), fs::Permissions::from_mode(0o600)).unwrap();
        let moded = digest(r).unwrap().0;
        assert_ne!(moded, first, "modes are covered");

        fs::remove_file(r.join("etc/issue")).unwrap();
        std::os::unix::fs::symlink("motd.d", r.join("etc/issue")).unwrap();
        let relinked = digest(r).unwrap().0;
        assert_ne!(relinked, moded, "link targets are covered");

        // Whiteouts need CAP_MKNOD; tests run as root in CI, skip the part otherwise.
        if make_whiteout(&r.join("etc/gone")).is_ok() {
            assert!(walk(r).unwrap().iter().any(|n| n.is_whiteout()));
            assert_ne!(digest(r).unwrap().0, relinked, "whiteouts are covered");
        }
    }
}
