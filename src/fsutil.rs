//! File system helpers every writer shares: the one atomic replace (a temporary beside the
//! target, renamed onto it, the folder synced), a tree removal that never crosses a mount
//! point, and a small-file read.
//!
//! Temporaries are named `.NAME.tmpPID-N` beside their target, so a run that dies leaves them
//! where the next run of the same writer (or `layer cache gc`) can see whose they were.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, ErrorKind, Result};

/// The folder `path` is in (`.` for a bare name).
pub fn parent_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// A temporary path beside `path`, unique to this process and call: threads of one run may
/// write the same file (a role tree two images share) at the same time.
pub fn temp_beside(path: &Path) -> PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let name = path
        .file_name()
        .map_or_else(|| "tmp".into(), |n| n.to_string_lossy().into_owned());
    parent_of(path).join(format!(".{name}.tmp{}-{n}", std::process::id()))
}

/// Removes a file or folder tree when dropped, unless kept.
pub struct Remove(Option<PathBuf>);

impl Remove {
    pub fn new(p: &Path) -> Remove {
        Remove(Some(p.to_path_buf()))
    }

    /// Leaves the path in place.
    pub fn keep(mut self) {
        self.0 = None;
    }
}

impl Drop for Remove {
    fn drop(&mut self) {
        let Some(p) = &self.0 else { return };
        match fs::symlink_metadata(p) {
            Ok(m) if m.is_dir() => {
                let _ = fs::remove_dir_all(p);
            }
            Ok(_) => {
                let _ = fs::remove_file(p);
            }
            Err(_) => {}
        }
    }
}

/// fsyncs the folder `path` is in, so a rename into it survives a crash.
pub fn sync_parent(path: &Path) -> Result<()> {
    let dir = parent_of(path);
    File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(&dir, e))
}

/// Runs `write` on a temporary file beside `out`, then renames it onto `out` and syncs the
/// folder. `write` makes (and syncs, where it matters) the file itself; on any error the
/// temporary is removed and `out` is untouched.
pub fn atomic_file(out: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let tmp = temp_beside(out);
    let guard = Remove::new(&tmp);
    write(&tmp)?;
    fs::rename(&tmp, out).map_err(|e| Error::io(out, e))?;
    guard.keep();
    sync_parent(out)
}

/// Runs `write` on a new temporary folder beside `out`, then renames it onto `out` (which is
/// missing or an empty folder).
pub fn atomic_dir(out: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let tmp = temp_beside(out);
    let guard = Remove::new(&tmp);
    fs::create_dir(&tmp).map_err(|e| Error::io(&tmp, e))?;
    write(&tmp)?;
    fs::rename(&tmp, out).map_err(|e| Error::io(out, e))?;
    guard.keep();
    sync_parent(out)
}

/// Writes `bytes` to `path` atomically and durably: its folder is made if missing, the bytes
/// go to a temporary beside it, which is fsynced and renamed onto `path`, then the folder is
/// fsynced. A reader sees the old file or the new one, never a part.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = parent_of(path);
    fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    atomic_file(path, |tmp| {
        let mut f = File::create(tmp).map_err(|e| Error::io(tmp, e))?;
        f.write_all(bytes).map_err(|e| Error::io(tmp, e))?;
        f.sync_all().map_err(|e| Error::io(tmp, e))
    })
}

/// Writes `bytes` to `path` atomically but not durably: as [`write_atomic`] without its two
/// fsyncs. A reader sees the old file or the new one, never a part, whatever happens to layer;
/// after a power cut the file may be missing or empty. For files whose loss only costs work
/// (a build record: a missing or unreadable one means the image is built again), written on a
/// build's critical path, where an fsync on a busy disk costs more than the build.
pub fn write_atomic_lazy(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = temp_beside(path);
    let guard = Remove::new(&tmp);
    let write = |tmp: &Path| fs::write(tmp, bytes);
    if let Err(e) = write(&tmp) {
        if e.kind() != std::io::ErrorKind::NotFound {
            return Err(Error::io(&tmp, e));
        }
        let dir = parent_of(path);
        fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        write(&tmp).map_err(|e| Error::io(&tmp, e))?;
    }
    fs::rename(&tmp, path).map_err(|e| Error::io(path, e))?;
    guard.keep();
    Ok(())
}

/// Removes `dir` and everything below it, refusing to cross into another file system: a mount
/// point left below it is an error, never a path to delete through. A missing `dir` is fine.
pub fn remove_tree(dir: &Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let Ok(top) = fs::symlink_metadata(dir) else {
        return Ok(());
    };
    fn walk(p: &Path, dev: u64) -> Result<()> {
        let meta = fs::symlink_metadata(p).map_err(|e| Error::io(p, e))?;
        if !meta.is_dir() {
            return fs::remove_file(p).map_err(|e| Error::io(p, e));
        }
        if meta.dev() != dev {
            return Err(Error::Cache {
                kind: ErrorKind::MountPoint,
                path: p.to_path_buf(),
                message: "is a mount point: unmount it, then remove it".into(),
            });
        }
        for e in fs::read_dir(p).map_err(|e| Error::io(p, e))?.flatten() {
            walk(&e.path(), dev)?;
        }
        fs::remove_dir(p).map_err(|e| Error::io(p, e))
    }
    walk(dir, top.dev())
}

/// Sets the access and modification times of `path` to `secs` since the epoch (whole
/// seconds, as archives keep them), on a link itself rather than its target.
pub fn set_mtime(path: &Path, secs: u64) -> Result<()> {
    let t = rustix::fs::Timespec {
        tv_sec: i64::try_from(secs).unwrap_or(i64::MAX),
        tv_nsec: 0,
    };
    let times = rustix::fs::Timestamps {
        last_access: t,
        last_modification: t,
    };
    rustix::fs::utimensat(
        rustix::fs::CWD,
        path,
        &times,
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )
    .map_err(|e| Error::io(path, e.into()))
}

/// The content of the (small) file at `path`. Like `fs::read` without its `statx` for a size
/// hint: one `open`, reads until end of file, one `close`. Declarations and records are read
/// this way, tens of thousands of them in a large project.
pub fn read_small(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut f = File::open(path)?;
    let mut buf = vec![0u8; 4096];
    let mut len = 0;
    loop {
        if len == buf.len() {
            buf.resize(buf.len() * 2, 0);
        }
        match f.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(len);
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_atomic_replaces_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/file");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        let names: Vec<_> = fs::read_dir(p.parent().unwrap())
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("file")]);
    }

    #[test]
    fn failed_write_leaves_target_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("file");
        fs::write(&p, b"old").unwrap();
        let err = atomic_file(&p, |tmp| {
            fs::write(tmp, b"half").unwrap();
            Err(Error::usage(crate::error::ErrorKind::Io, "stop"))
        });
        assert!(err.is_err());
        assert_eq!(fs::read(&p).unwrap(), b"old");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn read_small_reads_past_its_first_buffer() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("big");
        let bytes: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
        fs::write(&p, &bytes).unwrap();
        assert_eq!(read_small(&p).unwrap(), bytes);
    }
}
