//! The merged tree copied into a real folder for `mkfs.ext4 -d`, which reads a file system's
//! contents from one: owners, modes, clamped mtimes, hard links, device nodes and file
//! capabilities as the export holds them. Needs root.

use std::collections::HashMap;
use std::ffi::CString;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
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
                libc::S_IFCHR
            } else if t.is_block_device() {
                libc::S_IFBLK
            } else {
                libc::S_IFIFO
            };
            let c = cpath(&to)?;
            // SAFETY: a NUL-terminated path; mknod touches no memory of ours.
            if unsafe { libc::mknod(c.as_ptr(), kind | mode, meta.rdev()) } != 0 {
                return Err(e(io::Error::last_os_error()));
            }
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

/// Sets atime and mtime of `p` (a symlink itself, not its target) to `t`.
fn set_mtime(p: &Path, t: u64) -> Result<()> {
    let c = cpath(p)?;
    let ts = libc::timespec {
        tv_sec: t as libc::time_t,
        tv_nsec: 0,
    };
    let times = [ts, ts];
    // SAFETY: a NUL-terminated path and a two-element array, as utimensat wants.
    let r = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(Error::io(p, io::Error::last_os_error()))
    }
}

fn cpath(p: &Path) -> Result<CString> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| Error::io(p, io::Error::other("a path with a NUL byte")))
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
