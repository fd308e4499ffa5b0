//! File system helpers every writer shares: the one atomic replace (a temporary beside the
//! target, renamed onto it, the folder synced), a tree removal that never crosses a mount
//! point, a small-file read, and the thread pool that looks at many files.
//!
//! Temporaries are named `.NAME.tmpPID-N` beside their target, so a run that dies leaves them
//! where the next run of the same writer (or `layer cache gc`) can see whose they were.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::error::{Error, ErrorKind, Result};

mod mapped;
pub use mapped::FileBytes;

/// The thread pool for looking at many files (the walk of role folders, the stamps of
/// declarations, the lookups of records and artifacts): at least [`IO_THREADS`] threads, more
/// than a small machine has cores, so that with a cold page cache as many reads are in flight;
/// `RAYON_NUM_THREADS`, when set, decides instead. A no-op plan of 10,000 images after
/// `drop_caches` took 1.3-1.8 s with 2 threads (ninja: 1.3 s) and 0.8 s with 8; on a slower
/// disk, 1.6-3.8 s with 8 and 1.2-2.0 s with 32 (ninja: 3.4-3.8 s). With a warm cache the
/// 32 threads only spin: 16% more CPU at 1,000 images. So a caller that knows a file the last
/// run left ([`probe_page_cache`]) gets [`COLD_IO_THREADS`] only when the page cache is cold.
///
/// The rest of layer's parallel work (parsing, keys) is on rayon's global pool, a thread per
/// core: with a warm cache, 8 threads on 2 cores spin and yield when a step runs out of work,
/// and a no-op plan of 1,000 images took 5-8% longer when every step ran on 8.
pub fn io_pool() -> &'static rayon::ThreadPool {
    static POOL: std::sync::OnceLock<rayon::ThreadPool> = std::sync::OnceLock::new();
    POOL.get_or_init(|| {
        let set = std::env::var("RAYON_NUM_THREADS")
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
            .filter(|&n| n > 0);
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        // As rayon's global pool does, a pool whose threads cannot be started is a panic.
        let fewest = if COLD.load(Ordering::Relaxed) {
            COLD_IO_THREADS
        } else {
            IO_THREADS
        };
        rayon::ThreadPoolBuilder::new()
            .num_threads(set.unwrap_or(cores.max(fewest)))
            .thread_name(|i| format!("layer-io-{i}"))
            .build()
            .expect("the threads that look at files start")
    })
}

/// The fewest threads in [`io_pool`].
const IO_THREADS: usize = 8;
/// The fewest threads in [`io_pool`] when the page cache is cold.
const COLD_IO_THREADS: usize = 32;

/// Whether [`probe_page_cache`] found the page cache cold.
static COLD: AtomicBool = AtomicBool::new(false);

/// Whether the first page of `probe`, a file the last run left (the stat cache), is in the
/// page cache, asked without reading it from disk (`preadv2` with `RWF_NOWAIT`, which fails
/// with `EAGAIN` rather than wait for the disk). When it is not, the machine just started or
/// its caches were dropped, and [`io_pool`], if not started yet, gets [`COLD_IO_THREADS`]
/// threads. No file, or a kernel without `RWF_NOWAIT`, leaves the pool as it is.
pub fn probe_page_cache(probe: &Path) -> bool {
    use rustix::fs::{Mode, OFlags};
    let flags = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW;
    let Ok(fd) = rustix::fs::open(probe, flags, Mode::empty()) else {
        return false;
    };
    let mut byte = [0u8; 1];
    let read = rustix::io::preadv2(
        &fd,
        &mut [std::io::IoSliceMut::new(&mut byte)],
        0,
        rustix::io::ReadWriteFlags::NOWAIT,
    );
    let cold = read == Err(rustix::io::Errno::AGAIN);
    if cold {
        COLD.store(true, Ordering::Relaxed);
    }
    cold
}

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

/// The process whose temporary the file name `name` is, when it is one: `.NAME.tmpPID-N`
/// ([`temp_beside`]) or `NAME.tmp-PID` (the cache's origin work folders).
pub fn temp_owner(name: &str) -> Option<u32> {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if let Some((_, pid)) = name.rsplit_once(".tmp-") {
        return digits(pid).then(|| pid.parse().ok()).flatten();
    }
    let (_, tail) = name.strip_prefix('.')?.rsplit_once(".tmp")?;
    let (pid, n) = tail.split_once('-')?;
    (digits(pid) && digits(n))
        .then(|| pid.parse().ok())
        .flatten()
}

/// Whether process `pid` is alive (or exists under another user): a temporary it owns may be
/// half-written right now.
pub fn process_alive(pid: u32) -> bool {
    let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return false;
    };
    !matches!(
        rustix::process::test_kill_process(pid),
        Err(rustix::io::Errno::SRCH)
    )
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
    write_atomic_lazy_parts(path, &[bytes])
}

/// [`write_atomic_lazy`] of the bytes of `parts`, one after the other (no copy of them into
/// one buffer first).
pub fn write_atomic_lazy_parts(path: &Path, parts: &[&[u8]]) -> Result<()> {
    let tmp = temp_beside(path);
    let guard = Remove::new(&tmp);
    let write = |tmp: &Path| -> std::io::Result<()> {
        let mut f = File::create(tmp)?;
        parts.iter().try_for_each(|p| f.write_all(p))
    };
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
    set_mtime_ns(path, i64::try_from(secs).unwrap_or(i64::MAX), 0)
}

/// Sets the access and modification times of `path` to `secs` and `nsecs` since the epoch, on
/// a link itself rather than its target.
pub fn set_mtime_ns(path: &Path, secs: i64, nsecs: i64) -> Result<()> {
    let t = rustix::fs::Timespec {
        tv_sec: secs,
        tv_nsec: nsecs as _,
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

/// The largest file [`read_small`] reads: far above any declaration, record or stat cache a
/// project of 100,000 images makes, far below what would exhaust memory.
pub const SMALL_LIMIT: u64 = 64 << 20;

/// The content of the (small) regular file at `path`, following links. Like `fs::read`
/// without its `statx` for a size hint: one `open`, one `fstat`, reads until end of file, one
/// `close`. Declarations and records are read this way, tens of thousands of them in a large
/// project.
///
/// Anything but a regular file is refused without reading from it (a FIFO would block
/// forever, a device never end), with `InvalidInput` and a message such as `is not a regular
/// file (a fifo)`; a file larger than [`SMALL_LIMIT`] is refused with `FileTooLarge`.
pub fn read_small(path: &Path) -> std::io::Result<Vec<u8>> {
    read_regular(path, false, SMALL_LIMIT)
}

/// The largest declaration file: far above 100,000 origins or vars (a few MiB), and small
/// enough that parsing it takes a moment, not minutes.
pub const DECLARATION_LIMIT: u64 = 16 << 20;

/// [`read_small`] of a declaration file, up to [`DECLARATION_LIMIT`].
pub fn read_declaration(path: &Path) -> std::io::Result<Vec<u8>> {
    read_regular(path, false, DECLARATION_LIMIT)
}

/// [`read_small`] without following a link at `path` (`O_NOFOLLOW`): a link is refused as
/// not a regular file. For files under the cache, which only layer writes.
pub fn read_small_nofollow(path: &Path) -> std::io::Result<Vec<u8>> {
    read_regular(path, true, SMALL_LIMIT)
}

/// [`read_small_nofollow`], mapping the file instead of reading it when it is large
/// ([`FileBytes`]): for layer's own cache files, which it only ever replaces whole.
pub fn map_small_nofollow(path: &Path) -> std::io::Result<FileBytes> {
    let (fd, size) = open_regular(path, true, SMALL_LIMIT)?;
    if size >= mapped::MAP_MIN {
        return Ok(FileBytes::Mapped(mapped::Mapping::of(&fd, size)?));
    }
    read_open(fd, size, SMALL_LIMIT).map(FileBytes::Read)
}

/// What a file that is not regular is, in words.
fn kind_words(t: rustix::fs::FileType) -> &'static str {
    use rustix::fs::FileType;
    match t {
        FileType::Fifo => "a fifo",
        FileType::CharacterDevice => "a character device",
        FileType::BlockDevice => "a block device",
        FileType::Socket => "a socket",
        FileType::Directory => "a folder",
        FileType::Symlink => "a symbolic link",
        _ => "not a file",
    }
}

fn read_regular(path: &Path, nofollow: bool, limit: u64) -> std::io::Result<Vec<u8>> {
    let (fd, size) = open_regular(path, nofollow, limit)?;
    read_open(fd, size, limit)
}

/// The regular file at `path`, open for reading, and its size; an error when it is not a
/// regular file (or, with `nofollow`, is a link) or is larger than `limit`.
fn open_regular(
    path: &Path,
    nofollow: bool,
    limit: u64,
) -> std::io::Result<(std::os::fd::OwnedFd, usize)> {
    use rustix::fs::{FileType, Mode, OFlags};
    use std::io::{Error as IoError, ErrorKind as IoKind};
    // Non-blocking, so that opening a FIFO returns at once instead of waiting for a writer.
    let mut flags = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NONBLOCK | OFlags::NOCTTY;
    if nofollow {
        flags |= OFlags::NOFOLLOW;
    }
    let fd = match rustix::fs::open(path, flags, Mode::empty()) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::LOOP) if nofollow => {
            return Err(IoError::new(
                IoKind::InvalidInput,
                "is not a regular file (a symbolic link)",
            ))
        }
        Err(e) => return Err(e.into()),
    };
    let st = rustix::fs::fstat(&fd)?;
    let kind = FileType::from_raw_mode(st.st_mode);
    if kind != FileType::RegularFile {
        return Err(IoError::new(
            IoKind::InvalidInput,
            format!("is not a regular file ({})", kind_words(kind)),
        ));
    }
    if u64::try_from(st.st_size).unwrap_or(u64::MAX) > limit {
        return Err(too_large(limit));
    }
    Ok((fd, usize::try_from(st.st_size).unwrap_or(0)))
}

fn too_large(limit: u64) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::FileTooLarge,
        format!("is larger than {} MiB", limit >> 20),
    )
}

/// Reads the open file `fd` of `size` bytes (as `fstat` gave it) to its end, up to `limit`.
fn read_open(fd: std::os::fd::OwnedFd, size: usize, limit: u64) -> std::io::Result<Vec<u8>> {
    // Read into a buffer of the size `fstat` gave, not zeroed first: the stat cache of 10,000
    // images is 16 MB, and growing a buffer by doubling from 4 KiB wrote every byte three
    // times more. A file that grew meanwhile is read to its end, up to the limit.
    let mut buf = Vec::with_capacity(size + 1);
    File::from(fd).take(limit + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > limit {
        return Err(too_large(limit));
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_in_the_page_cache_is_warm_and_one_dropped_from_it_cold() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("stat-cache");
        assert!(!probe_page_cache(&p), "no file: nothing is known");
        // Larger than a file kept inside its inode (ext4's inline data).
        let bytes = vec![7u8; 64 << 10];
        fs::write(&p, &bytes).unwrap();
        assert!(
            !probe_page_cache(&p),
            "a file just written is in the page cache"
        );
        // Its pages dropped (written back first): the probe reads nothing from disk to say so.
        // The kernel may keep a page a while (one in another core's batch of new pages), so
        // the advice is given again until it takes; tmpfs keeps its pages whatever it is told.
        let f = File::open(&p).unwrap();
        f.sync_all().unwrap();
        let tmpfs = rustix::fs::fstatfs(&f).unwrap().f_type == 0x0102_1994;
        let dropped = (0..50).any(|_| {
            rustix::fs::fadvise(&f, 0, None, rustix::fs::Advice::DontNeed).unwrap();
            let cold = probe_page_cache(&p);
            if !cold {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            cold
        });
        if tmpfs {
            assert!(!dropped);
        } else if !dropped {
            eprintln!("skipped the cold half: the kernel kept the file's pages for a second");
        }
        assert_eq!(fs::read(&p).unwrap(), bytes);
        assert!(!probe_page_cache(&p), "read again, it is back");
    }

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
    fn temporaries_name_their_process() {
        let t = temp_beside(Path::new("/c/records/app/KEY.json"));
        let name = t.file_name().unwrap().to_str().unwrap();
        assert_eq!(temp_owner(name), Some(std::process::id()));
        assert_eq!(temp_owner("0123abcd.tmp-42"), Some(42));
        assert_eq!(temp_owner(".stat-cache.tmp7-0"), Some(7));
        for not in [
            "KEY.json",
            ".KEY.json",
            ".a.tmpx-1",
            ".a.tmp1-",
            "a.tmp-",
            "a.tmp-1x",
        ] {
            assert_eq!(temp_owner(not), None, "{not}");
        }
        assert!(process_alive(std::process::id()));
        assert!(!process_alive(u32::MAX));
    }

    #[test]
    fn read_small_reads_past_its_first_buffer() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("big");
        let bytes: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
        fs::write(&p, &bytes).unwrap();
        assert_eq!(read_small(&p).unwrap(), bytes);
    }

    #[test]
    fn read_small_refuses_fifos_devices_links_and_huge_files() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o644),
            0,
        )
        .unwrap();
        let e = read_small(&fifo).unwrap_err();
        assert_eq!(e.to_string(), "is not a regular file (a fifo)");
        let e = read_small(Path::new("/dev/zero")).unwrap_err();
        assert_eq!(e.to_string(), "is not a regular file (a character device)");
        let big = dir.path().join("big");
        File::create(&big)
            .unwrap()
            .set_len(SMALL_LIMIT + 1)
            .unwrap();
        let e = read_small(&big).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::FileTooLarge);
        assert_eq!(e.to_string(), "is larger than 64 MiB");
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&big, &link).unwrap();
        let e = read_small_nofollow(&link).unwrap_err();
        assert_eq!(e.to_string(), "is not a regular file (a symbolic link)");
        fs::write(&big, b"ok").unwrap();
        assert_eq!(read_small(&link).unwrap(), b"ok");
    }
}
