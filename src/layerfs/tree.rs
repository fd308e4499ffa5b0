//! Trees on the host as overlayfs's layers and root filesystems hold them: [`walk`] lists one
//! (never following links, never leaving its filesystem) and [`digest`] hashes everything a
//! running image sees of it (see `layerfs`'s module text).

use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::overlay::{is_opaque, is_whiteout};
use crate::error::{Error, Result};

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
    /// Whether the entry is a whiteout.
    pub fn is_whiteout(&self) -> bool {
        is_whiteout(&self.meta)
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layerfs::make_whiteout;
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
            assert!(walk(r).unwrap().iter().any(super::Node::is_whiteout));
            assert_ne!(digest(r).unwrap().0, relinked, "whiteouts are covered");
        }
    }
}
