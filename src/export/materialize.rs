//! The merged tree copied into a real folder for `mkfs.ext4 -d`, which reads a file system's
//! contents from one: owners, modes, clamped mtimes, hard links, device nodes and file
//! capabilities as the export holds them. Needs root.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use rustix::fs::{mknodat, FileType, Mode, CWD};

use crate::error::{Error, Result};
use crate::fsutil::set_mtime;
use crate::layerfs::{self, get_xattr, set_xattr, Merged};

use super::tar::{clamp, KEPT_XATTRS};
use super::ExportSpec;

/// Copies the merged tree into `dst` (a new folder) with owners, modes, clamped mtimes, hard
/// links, device nodes and file capabilities, as `mkfs.ext4 -d` will read them. Needs root.
pub(super) fn materialize(spec: &ExportSpec, merged: &[Merged], dst: &Path) -> Result<()> {
    fs::create_dir(dst).map_err(|e| Error::io(dst, e))?;
    let mut first: HashMap<(usize, u64, u64), PathBuf> = HashMap::new();
    let mut dirs = Vec::new();
    for m in merged {
        let src = layerfs::join_rel(&spec.layers[m.layer], &m.rel);
        let to = layerfs::join_rel(dst, &m.rel);
        let meta = &m.meta;
        let t = meta.file_type();
        let mode = meta.mode() & 0o7777;
        let e = |e: io::Error| Error::io(&to, e);
        if t.is_dir() {
            if !m.rel.is_empty() {
                fs::create_dir(&to).map_err(e)?;
            }
            set_owner_mode(&to, meta)?;
            dirs.push((to, clamp(meta, spec.mtime)));
            continue;
        }
        if t.is_socket() {
            continue; // tar cannot hold them either
        }
        if meta.nlink() > 1 {
            match first.entry((m.layer, meta.dev(), meta.ino())) {
                std::collections::hash_map::Entry::Occupied(o) => {
                    fs::hard_link(o.get(), &to).map_err(e)?;
                    continue;
                }
                std::collections::hash_map::Entry::Vacant(v) => {
                    v.insert(to.clone());
                }
            }
        }
        if t.is_file() {
            fs::copy(&src, &to).map_err(|err| Error::io(&src, err))?;
            set_owner_mode(&to, meta)?;
            for &x in KEPT_XATTRS {
                if let Some(v) = get_xattr(&src, x).map_err(|err| Error::io(&src, err))? {
                    set_xattr(&to, x, &v).map_err(e)?;
                }
            }
        } else if t.is_symlink() {
            let target = fs::read_link(&src).map_err(|err| Error::io(&src, err))?;
            std::os::unix::fs::symlink(&target, &to).map_err(e)?;
            std::os::unix::fs::lchown(&to, Some(meta.uid()), Some(meta.gid())).map_err(e)?;
        } else if t.is_char_device() || t.is_block_device() || t.is_fifo() {
            let kind = if t.is_char_device() {
                FileType::CharacterDevice
            } else if t.is_block_device() {
                FileType::BlockDevice
            } else {
                FileType::Fifo
            };
            mknodat(CWD, &to, kind, Mode::from_bits_retain(mode), meta.rdev())
                .map_err(|err| e(err.into()))?;
            set_owner_mode(&to, meta)?;
        }
        set_mtime(&to, clamp(meta, spec.mtime))?;
    }
    // Folders last, deepest first: making their entries changed their mtimes.
    for (d, t) in dirs.iter().rev() {
        set_mtime(d, *t)?;
    }
    Ok(())
}

/// Owner, then mode: a change of owner clears setuid and setgid bits.
fn set_owner_mode(p: &Path, meta: &fs::Metadata) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::os::unix::fs::lchown(p, Some(meta.uid()), Some(meta.gid()))
        .map_err(|e| Error::io(p, e))?;
    fs::set_permissions(p, fs::Permissions::from_mode(meta.mode() & 0o7777))
        .map_err(|e| Error::io(p, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mtimes_are_clamped_to_the_build_time_and_never_negative() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        fs::write(&p, "").unwrap();
        set_mtime(&p, 2_000_000_000).unwrap();
        let m = fs::metadata(&p).unwrap();
        assert_eq!(clamp(&m, 1_000), 1_000);
        assert_eq!(clamp(&m, 3_000_000_000), 2_000_000_000);
        assert_eq!(clamp(&m, -5), 0);
    }
}
