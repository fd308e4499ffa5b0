//! An open folder, and the system calls the walk makes through it (`openat`, `statat`,
//! `readlinkat`, `getdents64`, by `rustix`): an entry costs the kernel one path component to
//! resolve rather than the whole absolute path, and folders below the root are opened with
//! `O_NOFOLLOW`, so a link swapped in for a folder during the walk is an error rather than
//! followed.

use std::ffi::CStr;
use std::io;
use std::os::fd::OwnedFd;
use std::path::Path;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, RawDir, Stat};

/// What an entry is, as far as a walk cares.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    File,
    Dir,
    Symlink,
    /// Sockets, fifos, devices.
    Other,
    /// The file system does not give types in listings: `stat` tells.
    Unknown,
}

impl Kind {
    /// The kind a listing's `DT_*` byte names.
    pub(super) fn of_dt(t: u8) -> Kind {
        match t {
            libc::DT_REG => Kind::File,
            libc::DT_DIR => Kind::Dir,
            libc::DT_LNK => Kind::Symlink,
            libc::DT_UNKNOWN => Kind::Unknown,
            _ => Kind::Other,
        }
    }

    /// The kind `stat`'s `st_mode` names.
    pub(super) fn of_mode(mode: u32) -> Kind {
        match FileType::from_raw_mode(mode) {
            FileType::RegularFile => Kind::File,
            FileType::Directory => Kind::Dir,
            FileType::Symlink => Kind::Symlink,
            _ => Kind::Other,
        }
    }
}

/// The `DT_*` byte of a type as `getdents64` gave it (listings in the stat cache keep it).
fn dt_byte(t: FileType) -> u8 {
    match t {
        FileType::RegularFile => libc::DT_REG,
        FileType::Directory => libc::DT_DIR,
        FileType::Symlink => libc::DT_LNK,
        FileType::Fifo => libc::DT_FIFO,
        FileType::Socket => libc::DT_SOCK,
        FileType::CharacterDevice => libc::DT_CHR,
        FileType::BlockDevice => libc::DT_BLK,
        FileType::Unknown => libc::DT_UNKNOWN,
    }
}

/// An open folder.
pub(super) struct Dir(OwnedFd);

impl Dir {
    /// Opens the folder `path`, following a link there.
    pub(super) fn open(path: &Path) -> io::Result<Dir> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        Ok(Dir(rustix::fs::open(path, flags, Mode::empty())?))
    }

    /// Opens the folder at `path` below this one, never through a link at its end.
    pub(super) fn open_at(&self, path: &CStr) -> io::Result<Dir> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        Ok(Dir(rustix::fs::openat(
            &self.0,
            path,
            flags,
            Mode::empty(),
        )?))
    }

    /// Appends every entry but `.` and `..` to `out` as a type byte (`DT_*`), the name and a
    /// NUL. `scratch` is a buffer to read into, reused across calls. `getdents64` straight into
    /// it: `readdir` would add an `fstat` and an `fcntl` per folder.
    pub(super) fn list(&self, scratch: &mut Vec<u8>, out: &mut Vec<u8>) -> io::Result<()> {
        scratch.clear();
        scratch.reserve(32 << 10);
        let mut entries = RawDir::new(&self.0, scratch.spare_capacity_mut());
        while let Some(entry) = entries.next() {
            let entry = entry?;
            let name = entry.file_name().to_bytes();
            if name != b"." && name != b".." {
                out.push(dt_byte(entry.file_type()));
                out.extend_from_slice(name);
                out.push(0);
            }
        }
        Ok(())
    }

    /// `fstat` of the folder itself.
    pub(super) fn stat_self(&self) -> io::Result<Stat> {
        Ok(rustix::fs::fstat(&self.0)?)
    }

    /// `lstat` of the entry `name`.
    pub(super) fn stat(&self, name: &CStr) -> io::Result<Stat> {
        Ok(rustix::fs::statat(
            &self.0,
            name,
            AtFlags::SYMLINK_NOFOLLOW,
        )?)
    }

    /// The target of the link `name`.
    pub(super) fn read_link(&self, name: &CStr) -> io::Result<Vec<u8>> {
        Ok(rustix::fs::readlinkat(&self.0, name, Vec::new())?.into_bytes())
    }
}
