//! The bytes of a cache file, mapped rather than read when it is large: a no-op plan of 10,000
//! images reads 27 MB of sealed caches, and reading them into fresh memory cost a page fault,
//! a zeroed page and a copy per 4 KiB (9-13 ms for the 16 MB stat cache; 1.4 ms mapped).
//!
//! Mapped files are layer's own cache files, which it only ever replaces whole (a temporary
//! renamed onto them, `fsutil::atomic_file`): a mapping keeps the old file's pages. As with
//! git's mapped index, a file truncated in place by something else while it is mapped would
//! fault (`SIGBUS`); nothing layer does truncates them.

use std::ops::Deref;
use std::os::fd::AsFd;
use std::ptr::NonNull;

/// Files at least this large are mapped; smaller ones are read (a mapping costs more to set
/// up and tear down than a read of a few pages).
pub(super) const MAP_MIN: usize = 1 << 20;

/// The bytes of a file: read into memory, or mapped.
pub enum FileBytes {
    Read(Vec<u8>),
    Mapped(Mapping),
}

/// A private, read-only mapping of a whole file, of which the first `len` bytes are seen.
pub struct Mapping {
    ptr: NonNull<u8>,
    /// The size mapped.
    size: usize,
    /// The bytes seen (`truncate` shortens the view, not the mapping).
    len: usize,
}

// SAFETY: the mapping is read-only and owned by this value alone; sharing `&[u8]` of it
// between threads is as safe as sharing a slice of a `Vec`.
unsafe impl Send for Mapping {}
// SAFETY: as above; nothing mutates the bytes.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// Maps the first `size` bytes (more than zero) of the open file `fd`, read-only, its pages
    /// filled at once (`MAP_POPULATE`) rather than faulted in one by one.
    pub fn of(fd: impl AsFd, size: usize) -> std::io::Result<Mapping> {
        use rustix::mm::{mmap, MapFlags, ProtFlags};
        assert!(size > 0, "an empty file is read, not mapped");
        // SAFETY: a new mapping at an address the kernel chooses, of a file opened for
        // reading; it aliases no Rust memory, and `Drop` unmaps exactly it.
        let ptr = unsafe {
            mmap(
                std::ptr::null_mut(),
                size,
                ProtFlags::READ,
                MapFlags::PRIVATE | MapFlags::POPULATE,
                fd,
                0,
            )?
        };
        let ptr = NonNull::new(ptr.cast::<u8>()).ok_or_else(|| std::io::Error::other("mmap"))?;
        Ok(Mapping {
            ptr,
            size,
            len: size,
        })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `Mapping::of`, unmapped once; no slice of it outlives
        // `self` (they borrow it).
        let _ = unsafe { rustix::mm::munmap(self.ptr.as_ptr().cast(), self.size) };
    }
}

impl FileBytes {
    /// Keeps the first `len` bytes (no effect when there are fewer).
    pub fn truncate(&mut self, len: usize) {
        match self {
            FileBytes::Read(v) => v.truncate(len),
            FileBytes::Mapped(m) => m.len = m.len.min(len),
        }
    }

    /// The bytes, in a vector (copied when mapped).
    pub fn into_vec(self) -> Vec<u8> {
        match self {
            FileBytes::Read(v) => v,
            FileBytes::Mapped(m) => m.to_vec(),
        }
    }
}

impl Deref for Mapping {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: `len` <= `size` bytes mapped readable at `ptr`, alive while `self` is.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl Deref for FileBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            FileBytes::Read(v) => v,
            FileBytes::Mapped(m) => m,
        }
    }
}

impl Default for FileBytes {
    fn default() -> Self {
        FileBytes::Read(Vec::new())
    }
}

impl From<Vec<u8>> for FileBytes {
    fn from(v: Vec<u8>) -> Self {
        FileBytes::Read(v)
    }
}

/// A copy is read into memory, whichever way the original is held.
impl Clone for FileBytes {
    fn clone(&self) -> Self {
        FileBytes::Read(self.to_vec())
    }
}

impl PartialEq for FileBytes {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl Eq for FileBytes {}

impl std::fmt::Debug for FileBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let how = match self {
            FileBytes::Read(_) => "read",
            FileBytes::Mapped(_) => "mapped",
        };
        write!(f, "FileBytes({} bytes, {how})", self.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_large_file_is_mapped_and_reads_as_its_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big");
        let bytes: Vec<u8> = (0..MAP_MIN + 5).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &bytes).unwrap();
        let mut got = super::super::map_small_nofollow(&path).unwrap();
        assert!(matches!(got, FileBytes::Mapped(_)), "{got:?}");
        assert_eq!(&*got, &bytes[..]);
        assert_eq!(got.clone(), FileBytes::from(bytes.clone()));
        got.truncate(10);
        assert_eq!(&*got, &bytes[..10]);
        got.truncate(20);
        assert_eq!(got.len(), 10, "a view is never longer than it was");
        assert_eq!(got.into_vec(), &bytes[..10]);

        // Replaced the way layer replaces its caches: the mapping keeps the old bytes.
        let held = super::super::map_small_nofollow(&path).unwrap();
        crate::fsutil::write_atomic(&path, b"new").unwrap();
        assert_eq!(&*held, &bytes[..]);
        let small = super::super::map_small_nofollow(&path).unwrap();
        assert!(matches!(small, FileBytes::Read(_)));
        assert_eq!(&*small, b"new");
    }
}
