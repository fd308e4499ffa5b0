//! The watcher's side: [`run`] watches role folders with inotify and publishes what changed.
//!
//! inotify directly (through `rustix`), not the `notify` crate: `notify` watches every folder
//! for `IN_OPEN`, so a plan's own reads would flood the event queue it relies on, and it keeps
//! the old paths of watches under a renamed folder. Here a folder is watched for the events
//! that change what a scan sees (`IN_CREATE`, `IN_DELETE`, `IN_MODIFY`, `IN_ATTRIB`,
//! `IN_CLOSE_WRITE`, `IN_MOVED_FROM`, `IN_MOVED_TO`, and its own `IN_DELETE_SELF` and
//! `IN_MOVE_SELF`); the cookie for `IN_OPEN` alone. A folder renamed, a root gone, or the
//! queue overflowed (`IN_Q_OVERFLOW`) makes every watch again and raises the floor: the next
//! plan checks every file.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::mem::MaybeUninit;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustix::fs::inotify::{self, ReadFlags, WatchFlags};

use super::state::State;
use super::sync::{process_start, COOKIE, LOCK, STATE, SYNC_LOCK};
use crate::cache::Cache;
use crate::error::{Error, ErrorKind, Result};

/// Past this many changed paths the list is dropped and the floor raised: checking every
/// file costs less than shipping the list to every plan.
const MAX_DIRTY: usize = 20_000;

/// How a folder is watched.
fn folder_flags() -> WatchFlags {
    WatchFlags::CREATE
        | WatchFlags::DELETE
        | WatchFlags::MODIFY
        | WatchFlags::ATTRIB
        | WatchFlags::CLOSE_WRITE
        | WatchFlags::MOVED_FROM
        | WatchFlags::MOVED_TO
        | WatchFlags::DELETE_SELF
        | WatchFlags::MOVE_SELF
        | WatchFlags::ONLYDIR
}

/// Why the watches are made again.
enum Remake {
    Overflow,
    Moved,
}

struct Watcher<'a> {
    cache: &'a Cache,
    /// The project root: the folders from it down to each root are watched for the moves and
    /// removals that would put another folder at a root's path.
    project: PathBuf,
    roots: Vec<PathBuf>,
    /// Watch descriptor -> a folder between the project root and a root (itself included).
    ancestors: HashMap<i32, Vec<u8>>,
    state: State,
    /// Watch descriptor -> the folder's path.
    folders: HashMap<i32, Vec<u8>>,
    cookie: i32,
    dirty: HashMap<Vec<u8>, u64>,
    /// Whether `state` changed since it was last written.
    unsaved: bool,
}

/// Watches `roots` (absolute folders below `project`, reached through no link: the project's
/// role folders) until killed, publishing in the cache's watch folder what changed; `say` is
/// told of each new start of the watches. Fails when another watcher holds the cache's watch
/// lock, or inotify cannot watch every folder.
pub fn run(
    cache: &Cache,
    project: &Path,
    roots: Vec<PathBuf>,
    say: &mut dyn FnMut(&str),
) -> Result<()> {
    let lock = cache.open_watch_file(LOCK)?;
    let deadline = Instant::now() + Duration::from_secs(1);
    // A plan holds the lock shared for an instant while it looks for a watcher.
    loop {
        match lock.try_lock() {
            Ok(()) => break,
            Err(std::fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(_) => {
                return Err(Error::Usage {
                    kind: ErrorKind::WatchRunning,
                    message: format!(
                        "another `layer watch` is running for the cache `{}`",
                        cache.dir().display()
                    ),
                    hint: Some(
                        "one watcher serves every plan of a cache; stop the other one first".into(),
                    ),
                })
            }
        }
    }
    cache.open_watch_file(SYNC_LOCK)?;
    let pid = std::process::id();
    let mut id = [0u8; 16];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut id);
    let mut w = Watcher {
        cache,
        project: project.to_path_buf(),
        roots,
        ancestors: HashMap::new(),
        state: State {
            id,
            pid,
            start: process_start(pid).unwrap_or_default(),
            ..State::default()
        },
        folders: HashMap::new(),
        cookie: -1,
        dirty: HashMap::new(),
        unsaved: true,
    };
    let mut buf = vec![MaybeUninit::<u8>::uninit(); 64 << 10];
    loop {
        let fd = w.start()?;
        say(&format!(
            "watching {} folders of {} roles",
            w.folders.len(),
            w.state.roots.len()
        ));
        let why = w.serve(&fd, &mut buf)?;
        drop(fd);
        say(match why {
            Remake::Overflow => {
                "the event queue overflowed: watching again; the next plan checks every file"
            }
            Remake::Moved => {
                "a watched folder was moved: watching again; the next plan checks every file"
            }
        });
    }
}

impl Watcher<'_> {
    /// Makes every watch (the cookie's, then every folder below the roots), raises the floor
    /// past every change made before, and publishes the state.
    fn start(&mut self) -> Result<OwnedFd> {
        let fd = inotify::init(inotify::CreateFlags::CLOEXEC)
            .map_err(|e| Error::io(Path::new("inotify"), e.into()))?;
        let cookie = self.cache.watch_dir().join(COOKIE);
        drop(self.cache.open_watch_file(COOKIE)?);
        self.cookie = inotify::add_watch(&fd, &cookie, WatchFlags::OPEN)
            .map_err(|e| Error::io(&cookie, e.into()))?;
        self.folders.clear();
        self.ancestors.clear();
        self.state.roots.clear();
        let ancestor = WatchFlags::MOVED_FROM
            | WatchFlags::MOVED_TO
            | WatchFlags::DELETE
            | WatchFlags::CREATE
            | WatchFlags::DELETE_SELF
            | WatchFlags::MOVE_SELF
            | WatchFlags::ONLYDIR
            | WatchFlags::DONT_FOLLOW
            | WatchFlags::MASK_ADD;
        for root in self.roots.clone() {
            let Ok(below) = root.strip_prefix(&self.project) else {
                continue;
            };
            // The project root and every folder down to the root, then the root's tree; a
            // root not watched whole is left out of the state, so no plan trusts it.
            let mut at = self.project.clone();
            let mut chain = vec![at.clone()];
            for c in below.components() {
                at.push(c);
                chain.push(at.clone());
            }
            let mut whole = true;
            for dir in &chain {
                match inotify::add_watch(&fd, dir, ancestor) {
                    Ok(wd) => {
                        self.ancestors
                            .insert(wd, dir.as_os_str().as_bytes().to_vec());
                    }
                    Err(_) => whole = false,
                }
            }
            if whole && self.add_tree(&fd, &root)? {
                self.state.roots.push(root.as_os_str().as_bytes().to_vec());
            }
        }
        self.dirty.clear();
        self.state.seq += 1;
        self.state.floor = self.state.seq;
        self.unsaved = true;
        self.publish()?;
        Ok(fd)
    }

    /// Watches the folder `dir` and every folder below it (links not followed; a folder gone
    /// meanwhile is skipped: its removal is an event of its parent). Whether `dir` itself is
    /// watched.
    fn add_tree(&mut self, fd: &OwnedFd, dir: &Path) -> Result<bool> {
        let mut top = false;
        for entry in walkdir::WalkDir::new(dir).follow_links(false) {
            let Ok(entry) = entry else { continue };
            if !entry.file_type().is_dir() && entry.depth() > 0 {
                continue;
            }
            let flags = folder_flags() | WatchFlags::DONT_FOLLOW | WatchFlags::MASK_ADD;
            match inotify::add_watch(fd, entry.path(), flags) {
                Ok(wd) => {
                    top |= entry.depth() == 0;
                    self.folders
                        .insert(wd, entry.path().as_os_str().as_bytes().to_vec());
                }
                Err(rustix::io::Errno::NOSPC) => {
                    return Err(Error::Usage {
                        kind: ErrorKind::WatchLimit,
                        message: format!(
                            "inotify cannot watch more folders: {} are watched",
                            self.folders.len()
                        ),
                        hint: Some(
                            "raise `/proc/sys/fs/inotify/max_user_watches` (sysctl fs.inotify.max_user_watches)".into(),
                        ),
                    })
                }
                Err(_) => {}
            }
        }
        Ok(top)
    }

    /// Reads events until the watches must be made again.
    fn serve(&mut self, fd: &OwnedFd, buf: &mut [MaybeUninit<u8>]) -> Result<Remake> {
        let mut reader = inotify::Reader::new(fd, buf);
        loop {
            let (wd, flags, name) = match reader.next() {
                Ok(e) => (
                    e.wd(),
                    e.events(),
                    e.file_name().map(|n| n.to_bytes().to_vec()),
                ),
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(Error::io(Path::new("inotify"), e.into())),
            };
            if let Some(why) = self.event(fd, wd, flags, name)? {
                return Ok(why);
            }
            if reader.is_buffer_empty() {
                self.publish()?;
            }
        }
    }

    /// One event; `Some` when the watches must be made again.
    fn event(
        &mut self,
        fd: &OwnedFd,
        wd: i32,
        flags: ReadFlags,
        name: Option<Vec<u8>>,
    ) -> Result<Option<Remake>> {
        if flags.contains(ReadFlags::QUEUE_OVERFLOW) {
            return Ok(Some(Remake::Overflow));
        }
        if wd == self.cookie {
            if flags.contains(ReadFlags::OPEN) {
                self.state.cookies += 1;
                self.unsaved = true;
            } else if flags.contains(ReadFlags::IGNORED) {
                // The cookie was removed (a `cache gc`?): make it and its watch again.
                return Ok(Some(Remake::Moved));
            }
            return Ok(None);
        }
        if flags.contains(ReadFlags::IGNORED) {
            self.folders.remove(&wd);
            self.ancestors.remove(&wd);
            return Ok(None);
        }
        if let Some(dir) = self.ancestors.get(&wd) {
            if flags.intersects(ReadFlags::MOVE_SELF | ReadFlags::DELETE_SELF) {
                return Ok(Some(Remake::Moved));
            }
            if let Some(name) = &name {
                let mut path = dir.clone();
                path.push(b'/');
                path.extend_from_slice(name);
                let leads_to_root = self.state.roots.iter().any(|r| {
                    r == &path || (r.starts_with(&path) && r.get(path.len()) == Some(&b'/'))
                });
                let moves = ReadFlags::MOVED_FROM
                    | ReadFlags::MOVED_TO
                    | ReadFlags::DELETE
                    | ReadFlags::CREATE;
                if leads_to_root && flags.intersects(moves) {
                    return Ok(Some(Remake::Moved));
                }
            }
        }
        let Some(folder) = self.folders.get(&wd) else {
            return Ok(None);
        };
        let mut path = folder.clone();
        if let Some(name) = name {
            path.push(b'/');
            path.extend_from_slice(&name);
        }
        let is_dir = flags.contains(ReadFlags::ISDIR);
        if flags.contains(ReadFlags::MOVE_SELF)
            || (is_dir && flags.intersects(ReadFlags::MOVED_FROM | ReadFlags::MOVED_TO))
            || (flags.contains(ReadFlags::DELETE_SELF) && self.state.roots.contains(&path))
        {
            return Ok(Some(Remake::Moved));
        }
        if is_dir && flags.contains(ReadFlags::CREATE) {
            self.add_tree(fd, Path::new(OsStr::from_bytes(&path)))?;
        }
        self.changed(path);
        Ok(None)
    }

    fn changed(&mut self, path: Vec<u8>) {
        self.state.seq += 1;
        self.dirty.insert(path, self.state.seq);
        if self.dirty.len() > MAX_DIRTY {
            self.dirty.clear();
            self.state.floor = self.state.seq;
        }
        self.unsaved = true;
    }

    /// Writes the state, if it changed.
    fn publish(&mut self) -> Result<()> {
        if !self.unsaved {
            return Ok(());
        }
        let mut dirty: Vec<_> = self.dirty.iter().map(|(p, s)| (p.clone(), *s)).collect();
        dirty.sort();
        self.state.dirty = dirty;
        self.cache.write_watch_file(STATE, &self.state.encode())?;
        self.unsaved = false;
        Ok(())
    }
}
