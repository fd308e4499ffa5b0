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
//!
//! The parts, each importing only those listed before it: `overlay` (whiteouts, opaque folders
//! and overlayfs's extended attributes), `tree` (walking a tree, and its [`digest`]), `merge`
//! (the merged view of a stack: [`merge`], [`StackView`]) and `copy` (the copying fallback:
//! [`compose`], [`diff`], [`prune`]).

mod overlay;
mod tree;
mod merge;
mod copy;

pub use copy::{compose, copy_entry, diff, prune, same_entry};
pub(crate) use merge::scan_layer;
pub use merge::{lookup, merge, Merged, StackView};
pub(crate) use overlay::{get_xattr, set_xattr};
pub use overlay::{is_opaque, is_whiteout, make_whiteout, set_opaque, OPAQUE_XATTR};
pub use tree::{digest, join_rel, kind_letter, walk, Node};
