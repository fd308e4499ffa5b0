//! Scanning: role folders and input files turned into digests.
//!
//! A role tree is the list of its entries (path relative to the role folder, type, executable
//! bit, content digest, symlink target), sorted by path. Symlinks are recorded as links and never
//! followed. File digests come from a stat cache when a file's (device, inode, size, mtime,
//! ctime, mode) are exactly those seen when it was last hashed, as git's index does; any
//! difference means the file is read and hashed again. Entries whose mtime or ctime is within
//! [`RACY_WINDOW`] of the scan are not kept, so a write in the same clock tick as a scan is
//! never trusted (git's "racy clean" problem).
//!
//! The stat cache also keeps each folder's listing under the folder's own stamp, as git's
//! untracked cache does: creating, removing or renaming an entry changes a folder's mtime and
//! ctime, so a folder whose stamp is unchanged (and not racy) is not read again. Its files are
//! still `lstat`ed one by one, and a listing that turns out not to match (an entry gone or of
//! another type) is dropped and the folder read.
//!
//! The parts, each importing only those listed before it: `tree` (trees and their diffs, pure),
//! `stat_cache` (what the last scan saw, and its file format), `quiet` (what a live `layer
//! watch` vouches for: folders whose listings and stamps are still those of the stat cache, so
//! a walk takes them from there without a system call), `hasher` (file digests through the
//! stat cache), `dir` (an open folder: the system calls of the walk), `walk` (one role folder
//! into a [`Tree`]), `project` (every input of a project: [`scan_project`]) and `stamps` (the
//! stamps of a list of paths, which a cached parsed model is valid under: [`stamp_paths`]).

mod tree;
mod stat_cache;
mod quiet;
mod hasher;
mod dir;
mod walk;
mod project;
mod stamps;

pub use hasher::{hash_file, Hasher, RACY_WINDOW};
pub use project::{
    host_program, host_program_error, pinned_busybox, scan_project, Scanned, PROGRAM_FOLDERS,
};
pub use quiet::{Quiet, WatchMark};
pub use stamps::{stamp_paths, PathStamp};
pub use stat_cache::{DirRecord, FileRecord, Stamp, StatCache};
pub use tree::{diff_trees, Entry, EntryKind, FileChange, FileDigest, Tree};
pub use walk::{scan_known, scan_tree, Scan};
