//! The plan's side: [`sync`] finds out whether a live watcher can vouch for the stat cache,
//! and what changed since it was taken. It only opens and reads files: a plan writes nothing
//! here (the stat cache carries the mark it leaves).

use std::fs::{self, File};
use std::path::Path;
use std::time::{Duration, Instant};

use super::state::State;
use crate::cache::Cache;
use crate::scan::{Quiet, WatchMark};

/// How long a plan waits for the watcher to see its cookie before it checks every file.
const SYNC_TIMEOUT: Duration = Duration::from_secs(2);

/// The files of the watch folder.
pub(crate) const LOCK: &str = "lock";
pub(crate) const STATE: &str = "state";
pub(crate) const COOKIE: &str = "cookie";
pub(crate) const SYNC_LOCK: &str = "sync.lock";

/// What a watcher did for a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Use {
    /// No watcher holds the cache's watch lock (or none ever ran): every file was checked.
    NoWatcher,
    /// A watcher's files are there but it is not the process that wrote them, or it did not
    /// answer in time: every file was checked.
    NotAnswering,
    /// A live watcher answered, but the stat cache was taken before it saw every change (it
    /// started, overflowed or re-made its watches since): every file was checked, and the
    /// stat cache is marked so the next plan reads only what changes.
    FullCheck,
    /// A live watcher vouched for every folder in which it saw no change since the stat cache
    /// was taken; this many paths changed.
    Vouched { changed: usize },
}

impl Use {
    /// One line for `plan -v`.
    pub fn describe(&self) -> String {
        match self {
            Use::NoWatcher => "watch: no live `layer watch`: every file checked".into(),
            Use::NotAnswering => {
                "watch: `layer watch` did not answer: every file checked".into()
            }
            Use::FullCheck => {
                "watch: `layer watch` is live but saw less than the stat cache needs: every file checked".into()
            }
            Use::Vouched { changed } => format!(
                "watch: `layer watch` vouched for unchanged folders; {changed} changed paths checked"
            ),
        }
    }
}

/// A plan's sync with a watcher: what it may skip, and the mark its stat cache gets.
#[derive(Debug)]
pub struct Synced {
    /// What the watcher vouches for, when the stat cache was taken under it.
    pub quiet: Option<Quiet>,
    /// The mark to save with the stat cache this plan leaves.
    pub mark: WatchMark,
}

/// When the process `pid` started, in clock ticks after boot (field 22 of `/proc/PID/stat`).
pub(crate) fn process_start(pid: u32) -> Option<u64> {
    let stat = fs::read(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: count after the last `)`.
    let end = stat.iter().rposition(|&c| c == b')')?;
    let rest = std::str::from_utf8(&stat[end + 1..]).ok()?;
    rest.split_ascii_whitespace().nth(19)?.parse().ok()
}

/// The watcher's state, if its file is there and well formed.
fn read_state(dir: &Path) -> Option<State> {
    State::decode(&fs::read(dir.join(STATE)).ok()?)
}

/// Syncs with the cache's watcher, if one is live: waits until it has seen every change made
/// before this call (a cookie it watches is opened, and its count of cookie opens awaited:
/// inotify keeps events in order), then says what changed since `mark` (the stat cache's).
///
/// `None` (with why) unless a watcher holds its lock, is the process its state names and
/// answered in time. The `quiet` of a `Synced` is `None` unless the stat cache was taken under
/// this watcher at or after its floor.
pub fn sync(cache: &Cache, mark: Option<&WatchMark>) -> Result<Synced, Use> {
    let dir = cache.watch_dir();
    let Ok(lock) = File::open(dir.join(LOCK)) else {
        return Err(Use::NoWatcher);
    };
    match lock.try_lock_shared() {
        Ok(()) => return Err(Use::NoWatcher),
        Err(fs::TryLockError::WouldBlock) => {}
        Err(fs::TryLockError::Error(_)) => return Err(Use::NoWatcher),
    }
    drop(lock);
    let live = |s: &State| process_start(s.pid) == Some(s.start);
    let first = read_state(&dir).filter(live).ok_or(Use::NotAnswering)?;
    let deadline = Instant::now() + SYNC_TIMEOUT;
    // One plan syncs at a time: a cookie opened by another plan after this one read the count
    // would otherwise pass for this one's.
    let sync_lock = File::open(dir.join(SYNC_LOCK)).map_err(|_| Use::NotAnswering)?;
    loop {
        match sync_lock.try_lock() {
            Ok(()) => break,
            Err(fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_micros(200));
            }
            Err(_) => return Err(Use::NotAnswering),
        }
    }
    let before = read_state(&dir)
        .filter(|s| s.id == first.id)
        .ok_or(Use::NotAnswering)?;
    drop(File::open(dir.join(COOKIE)).map_err(|_| Use::NotAnswering)?);
    let mut pause = Duration::from_micros(50);
    let now = loop {
        match read_state(&dir) {
            Some(s) if s.id != first.id => return Err(Use::NotAnswering),
            Some(s) if s.cookies > before.cookies => break s,
            _ if Instant::now() >= deadline => return Err(Use::NotAnswering),
            _ => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(5));
            }
        }
    };
    drop(sync_lock);
    let quiet = mark
        .filter(|m| m.id == now.id && m.seq >= now.floor && m.seq <= now.seq)
        .map(|m| {
            Quiet::new(
                now.roots.iter().cloned(),
                now.dirty
                    .iter()
                    .filter(|(_, s)| *s > m.seq)
                    .map(|(p, _)| p.clone()),
            )
        });
    Ok(Synced {
        quiet,
        mark: WatchMark {
            id: now.id,
            seq: now.seq,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_a_start_time_and_no_process_has_pid_zero() {
        let me = process_start(std::process::id()).expect("our own /proc entry");
        assert_eq!(process_start(std::process::id()), Some(me));
        assert_eq!(process_start(0), None);
    }
}
