//! The marks overlayfs leaves in a layer, on the host: whiteouts (character devices 0/0) and
//! opaque folders, and the extended attributes (`trusted.overlay.*`) they and overlayfs's other
//! features are kept in.

use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use rustix::fs::{FileType, Mode, XattrFlags, CWD};
use rustix::io::Errno;

/// The extended attribute that makes a folder opaque in an overlayfs upper or lower layer.
pub const OPAQUE_XATTR: &str = "trusted.overlay.opaque";

/// Whether `meta` is a whiteout: a character device numbered 0/0.
pub fn is_whiteout(meta: &fs::Metadata) -> bool {
    meta.file_type().is_char_device() && meta.rdev() == 0
}

/// Whether the folder at `path` carries the opaque attribute.
pub fn is_opaque(path: &Path) -> bool {
    let mut buf = [0u8; 4];
    let n = rustix::fs::lgetxattr(path, OPAQUE_XATTR, &mut buf);
    n == Ok(1) && buf[0] == b'y'
}

/// Marks the folder at `path` opaque.
pub fn set_opaque(path: &Path) -> io::Result<()> {
    set_xattr(path, OPAQUE_XATTR, b"y")
}

/// Sets the extended attribute `name` of `p` (not following a link).
pub(crate) fn set_xattr(p: &Path, name: &str, value: &[u8]) -> io::Result<()> {
    Ok(rustix::fs::lsetxattr(p, name, value, XattrFlags::empty())?)
}

/// Makes a whiteout at `path`.
pub fn make_whiteout(path: &Path) -> io::Result<()> {
    let (kind, mode) = (FileType::CharacterDevice, Mode::empty());
    Ok(rustix::fs::mknodat(CWD, path, kind, mode, 0)?)
}

/// The extended attribute `name` of `p` (not following a symlink), if it has one.
pub(crate) fn get_xattr(p: &Path, name: &str) -> io::Result<Option<Vec<u8>>> {
    loop {
        let size = match rustix::fs::lgetxattr_query(p, name) {
            Ok(size) => size,
            Err(Errno::NODATA | Errno::NOTSUP) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let mut buf = vec![0u8; size];
        match rustix::fs::lgetxattr(p, name, &mut buf[..]) {
            Ok(got) => {
                buf.truncate(got);
                return Ok(Some(buf));
            }
            Err(Errno::RANGE) => continue, // grew in between
            Err(Errno::NODATA) => return Ok(None),
            Err(e) => return Err(e.into()),
        }
    }
}
