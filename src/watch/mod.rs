//! `layer watch`: a watcher keeps what the stat cache vouches for current with inotify, as
//! git's fsmonitor and Bazel's `--watchfs` do, so a no-op plan with a live watcher reads only
//! what changed instead of looking at every file of every role.
//!
//! It can never make a changed file look unchanged; where it cannot vouch, the plan checks
//! every file as it does without a watcher:
//!
//! - The watcher holds `cache/watch/lock` (`flock`) while it lives, and names itself in
//!   `cache/watch/state` (pid, start time, a random id): a plan trusts the state only while the
//!   lock is held and the pid is that process, started at that time. `kill -9` frees the lock.
//! - Every change gets the next number; the state lists each changed path with the number of
//!   its last change. A plan first syncs: it opens `cache/watch/cookie`, which the watcher
//!   watches for `IN_OPEN`, and waits until the watcher has counted the open (inotify keeps
//!   events in order, so every change made before is in the state by then). The stat cache the
//!   plan leaves is marked with the watcher's id and the number it synced at ([`WatchMark`]):
//!   every change up to it happened before the scan looked.
//! - The next plan walks, from the stat cache alone, every folder that no path changed since
//!   that mark is at, above or below; it looks at everything else as usual.
//! - The watcher raises its *floor* when it (re)makes its watches (at start, after the event
//!   queue overflowed, after a watched folder moved): a stat cache marked below the floor, or
//!   under another watcher, or not marked, means every file is checked.
//!
//! What inotify cannot see, a watcher cannot vouch for: a file written through a shared
//! memory mapping (no event), or through a hard link from outside the watched folders, or on
//! a network file system by another host. Do not run a watcher over such trees.
//!
//! The parts, each importing only those listed before it: `state` (the state file's format),
//! `sync` (the plan's side: [`sync`]) and `watcher` (the watcher's: [`run`]).
//!
//! [`WatchMark`]: crate::scan::WatchMark

mod state;
mod sync;
mod watcher;

pub use sync::{sync, Synced, Use};
pub use watcher::run;
