//! Artifacts as blobs and back: a layer folder packed as a reproducible tar
//! ([`crate::export::write_layer_tar`]) compressed with zstd, a file artifact as the zstd of
//! the file; and the way back, streaming, into a folder or file that must then have the
//! record's digest.
//!
//! Unpacking trusts nothing in the archive before it is verified: every name must be `./` or
//! `./PATH` with plain components, every entry's folder must be one this archive made (so no
//! link in the archive can lead a later entry out of the tree), a hard link must name an
//! earlier file of the archive, and only folders, files, links, devices and fifos are made.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use ::tar::EntryType;

use crate::error::{Error, ErrorKind, Result};
use crate::fsutil::set_mtime;
use crate::layerfs;

/// zstd's level for blobs: its default, fast on both ends.
const ZSTD_LEVEL: i32 = 3;

/// A writer that hashes and counts what passes through it.
pub(super) struct Hashing<W> {
    pub(super) inner: W,
    pub(super) hasher: blake3::Hasher,
    pub(super) size: u64,
}

impl<W> Hashing<W> {
    pub(super) fn new(inner: W) -> Self {
        Hashing {
            inner,
            hasher: blake3::Hasher::new(),
            size: 0,
        }
    }

    pub(super) fn digest(&self) -> String {
        self.hasher.finalize().to_hex().to_string()
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }
}

/// Told of a transfer's bytes as they move, for progress bars and transfer rates.
/// `object_store` has no byte callback: downloads are counted as the blob's stream is read,
/// uploads as each part (or the single PUT) completes.
pub trait Meter: Sync {
    /// A blob of `total` bytes is about to move.
    fn begin(&self, total: u64);
    /// `n` more bytes moved.
    fn moved(&self, n: u64);
}

/// A [`Meter`] that is told nothing.
pub struct NoMeter;

impl Meter for NoMeter {
    fn begin(&self, _total: u64) {}
    fn moved(&self, _n: u64) {}
}

/// A reader that tells a [`Meter`] of the bytes read through it, at most once per
/// [`Metered::STEP`] bytes (and at the end), so that a progress bar costs nothing per read.
pub(super) struct Metered<'m, R> {
    inner: R,
    meter: &'m dyn Meter,
    pending: u64,
}

impl<'m, R> Metered<'m, R> {
    const STEP: u64 = 256 << 10;

    pub(super) fn new(inner: R, meter: &'m dyn Meter) -> Self {
        Metered {
            inner,
            meter,
            pending: 0,
        }
    }
}

impl<R: Read> Read for Metered<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.pending += n as u64;
        if self.pending >= Self::STEP || (n == 0 && self.pending > 0) {
            self.meter.moved(std::mem::take(&mut self.pending));
        }
        Ok(n)
    }
}

impl<R> Drop for Metered<'_, R> {
    fn drop(&mut self) {
        if self.pending > 0 {
            self.meter.moved(self.pending);
        }
    }
}

/// Packs the artifact at `src` (a folder or a file) into the new file `out`: a zstd tar of a
/// folder, the zstd of a file. Returns the blob's blake3 and size.
pub(super) fn pack(src: &Path, out: &Path) -> Result<(String, u64)> {
    let meta = fs::symlink_metadata(src).map_err(|e| Error::io(src, e))?;
    let file = fs::File::create(out).map_err(|e| Error::io(out, e))?;
    let hashing = Hashing::new(io::BufWriter::with_capacity(1 << 20, file));
    let mut z = zstd::Encoder::new(hashing, ZSTD_LEVEL).map_err(|e| Error::io(out, e))?;
    z.include_checksum(true).map_err(|e| Error::io(out, e))?;
    // Compress on a second thread while this one reads files and writes the archive (zstd's
    // output does not depend on the number of workers).
    z.multithread(2).map_err(|e| Error::io(out, e))?;
    if meta.is_dir() {
        crate::export::write_layer_tar(src, &mut z, out)?;
    } else {
        let mut f = fs::File::open(src).map_err(|e| Error::io(src, e))?;
        io::copy(&mut f, &mut z).map_err(|e| Error::io(out, e))?;
    }
    let mut hashing = z.finish().map_err(|e| Error::io(out, e))?;
    hashing.flush().map_err(|e| Error::io(out, e))?;
    let digest = hashing.digest();
    let size = hashing.size;
    let file = hashing
        .inner
        .into_inner()
        .map_err(|e| Error::io(out, e.into_error()))?;
    file.sync_all().map_err(|e| Error::io(out, e))?;
    Ok((digest, size))
}

/// What an unpacked file must be: its mode and owner, and at most `limit` bytes (the record's
/// size: a blob that would unpack to more is refused before it fills the disk).
pub(super) struct FileMeta {
    pub(super) mode: u32,
    pub(super) uid: u32,
    pub(super) gid: u32,
    pub(super) limit: u64,
}

/// Decompresses a file blob from `r` into the new file `out`.
pub(super) fn unpack_file(r: impl Read, out: &Path, meta: &FileMeta) -> Result<()> {
    let FileMeta {
        mode,
        uid,
        gid,
        limit,
    } = *meta;
    let z = zstd::Decoder::new(r).map_err(|e| bad(out, &e))?;
    let mut f = fs::File::create_new(out).map_err(|e| Error::io(out, e))?;
    let mut z = z.take(limit.saturating_add(1));
    let n = io::copy(&mut z, &mut f).map_err(|e| bad(out, &e))?;
    if n > limit {
        return Err(corrupt(
            out,
            format!("it unpacks to more than the {limit} bytes its record names"),
        ));
    }
    io::copy(&mut z.into_inner(), &mut io::sink()).map_err(|e| bad(out, &e))?;
    f.sync_all().map_err(|e| Error::io(out, e))?;
    chown(out, uid, gid)?;
    fs::set_permissions(out, fs::Permissions::from_mode(mode & 0o7777))
        .map_err(|e| Error::io(out, e))
}

/// Unpacks a tree blob from `r` into the new folder `root`, and reads `r` to its end (so that
/// a caller hashing it sees every byte). Its files may hold `limit` bytes in all (the
/// record's size): an archive that would unpack to more is refused before it fills the disk.
pub(super) fn unpack_tree(r: impl Read, root: &Path, limit: u64) -> Result<()> {
    let mut total = 0u64;
    fs::create_dir(root).map_err(|e| Error::io(root, e))?;
    let z = zstd::Decoder::new(r).map_err(|e| bad(root, &e))?;
    let mut archive = ::tar::Archive::new(z);
    let mut made_dirs: HashSet<Vec<u8>> = HashSet::new();
    let mut made_files: HashSet<Vec<u8>> = HashSet::new();
    // Folders get their mode and times last: a read-only folder must still take its entries,
    // and adding an entry changes a folder's mtime.
    let mut dirs: Vec<(PathBuf, Meta)> = Vec::new();
    let mut saw_root = false;
    for entry in archive.entries().map_err(|e| bad(root, &e))? {
        let mut entry = entry.map_err(|e| bad(root, &e))?;
        let name = entry.path_bytes().into_owned();
        let rel = relative(&name).ok_or_else(|| {
            corrupt(
                root,
                format!(
                    "the entry `{}` is not a path inside the layer",
                    String::from_utf8_lossy(&name)
                ),
            )
        })?;
        let h = entry.header().clone();
        let meta = Meta::of(&h, root)?;
        let kind = h.entry_type();
        let xattrs = pax_xattrs(&mut entry, root)?;
        if rel.is_empty() {
            if kind != EntryType::Directory || saw_root {
                return Err(corrupt(root, "the layer's root is not its first folder"));
            }
            saw_root = true;
            set_xattrs(root, &xattrs)?;
            dirs.push((root.to_path_buf(), meta));
            continue;
        }
        if !saw_root {
            return Err(corrupt(
                root,
                "the archive does not start with the layer's root",
            ));
        }
        let parent = rel
            .iter()
            .rposition(|&b| b == b'/')
            .map_or(&[][..], |i| &rel[..i]);
        if !parent.is_empty() && !made_dirs.contains(parent) {
            return Err(corrupt(
                root,
                format!("`{}` comes before its folder", String::from_utf8_lossy(rel)),
            ));
        }
        let path = layerfs::join_rel(root, rel);
        match kind {
            EntryType::Directory => {
                fs::create_dir(&path).map_err(|e| Error::io(&path, e))?;
                chown(&path, meta.uid, meta.gid)?;
                set_xattrs(&path, &xattrs)?;
                made_dirs.insert(rel.to_vec());
                dirs.push((path, meta));
                continue;
            }
            EntryType::Regular | EntryType::Continuous => {
                total = total.saturating_add(entry.size());
                if total > limit {
                    return Err(corrupt(
                        root,
                        format!("its files hold more than the {limit} bytes its record names"),
                    ));
                }
                let mut f = fs::File::create_new(&path).map_err(|e| Error::io(&path, e))?;
                io::copy(&mut entry, &mut f).map_err(|e| bad(root, &e))?;
                drop(f);
            }
            EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| corrupt(root, "a link without a target"))?;
                std::os::unix::fs::symlink(OsStr::from_bytes(&target), &path)
                    .map_err(|e| Error::io(&path, e))?;
                chown(&path, meta.uid, meta.gid)?;
                set_mtime(&path, meta.mtime)?;
                made_files.insert(rel.to_vec());
                continue;
            }
            EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| corrupt(root, "a hard link without a target"))?;
                let target_rel = relative(&target)
                    .filter(|t| made_files.contains(*t))
                    .ok_or_else(|| {
                        corrupt(
                            root,
                            format!(
                                "the hard link `{}` names no earlier file",
                                String::from_utf8_lossy(rel)
                            ),
                        )
                    })?;
                let from = layerfs::join_rel(root, target_rel);
                fs::hard_link(&from, &path).map_err(|e| Error::io(&path, e))?;
                made_files.insert(rel.to_vec());
                continue;
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => make_node(&path, &h, meta)?,
            other => {
                return Err(corrupt(
                    root,
                    format!(
                        "`{}` is of an entry type layer does not write ({other:?})",
                        String::from_utf8_lossy(rel)
                    ),
                ));
            }
        }
        // Owner before mode (chown clears setuid bits) and before capabilities (chown clears
        // them too).
        chown(&path, meta.uid, meta.gid)?;
        fs::set_permissions(&path, fs::Permissions::from_mode(meta.mode))
            .map_err(|e| Error::io(&path, e))?;
        set_xattrs(&path, &xattrs)?;
        set_mtime(&path, meta.mtime)?;
        made_files.insert(rel.to_vec());
    }
    if !saw_root {
        return Err(corrupt(root, "the archive is empty"));
    }
    for (path, meta) in dirs.iter().rev() {
        fs::set_permissions(path, fs::Permissions::from_mode(meta.mode))
            .map_err(|e| Error::io(path, e))?;
        set_mtime(path, meta.mtime)?;
    }
    // The rest of the stream: zstd's end, and nothing after it.
    let mut rest = archive.into_inner();
    io::copy(&mut rest, &mut io::sink()).map_err(|e| bad(root, &e))?;
    Ok(())
}

#[derive(Clone, Copy)]
struct Meta {
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: u64,
}

impl Meta {
    /// The owner, mode and time an archive entry's header gives.
    fn of(h: &::tar::Header, root: &Path) -> Result<Meta> {
        Ok(Meta {
            mode: h.mode().map_err(|e| bad(root, &e))? & 0o7777,
            uid: u32::try_from(h.uid().map_err(|e| bad(root, &e))?).unwrap_or(u32::MAX),
            gid: u32::try_from(h.gid().map_err(|e| bad(root, &e))?).unwrap_or(u32::MAX),
            mtime: h.mtime().map_err(|e| bad(root, &e))?,
        })
    }
}

/// The extended attributes an entry carries in its PAX records (`SCHILY.xattr.NAME`).
fn pax_xattrs<R: Read>(
    entry: &mut ::tar::Entry<'_, R>,
    root: &Path,
) -> Result<Vec<(String, Vec<u8>)>> {
    let mut xattrs = Vec::new();
    if let Some(exts) = entry.pax_extensions().map_err(|e| bad(root, &e))? {
        for ext in exts {
            let ext = ext.map_err(|e| bad(root, &e))?;
            if let Some(k) = ext.key().ok().and_then(|k| k.strip_prefix("SCHILY.xattr.")) {
                xattrs.push((k.to_string(), ext.value_bytes().to_vec()));
            }
        }
    }
    Ok(xattrs)
}

/// A device node or fifo at `path`, as the entry's header describes it (overlayfs whiteouts
/// are character devices 0/0).
fn make_node(path: &Path, h: &::tar::Header, meta: Meta) -> Result<()> {
    let major = h.device_major().ok().flatten().unwrap_or(0);
    let minor = h.device_minor().ok().flatten().unwrap_or(0);
    let ft = match h.entry_type() {
        EntryType::Char => rustix::fs::FileType::CharacterDevice,
        EntryType::Block => rustix::fs::FileType::BlockDevice,
        _ => rustix::fs::FileType::Fifo,
    };
    rustix::fs::mknodat(
        rustix::fs::CWD,
        path,
        ft,
        rustix::fs::Mode::from_raw_mode(meta.mode),
        rustix::fs::makedev(major, minor),
    )
    .map_err(|e| Error::io(path, e.into()))
}

/// `./PATH` or `./PATH/` (or `./` for the root, as "") with plain components, as bytes;
/// `None` for anything else (absolute, `..`, `.`, empty components).
pub(super) fn relative(name: &[u8]) -> Option<&[u8]> {
    let rest = name.strip_prefix(b"./")?;
    let rest = rest.strip_suffix(b"/").unwrap_or(rest);
    if rest.is_empty() {
        return Some(rest);
    }
    rest.split(|&b| b == b'/')
        .all(|c| !c.is_empty() && c != b"." && c != b"..")
        .then_some(rest)
}

fn chown(path: &Path, uid: u32, gid: u32) -> Result<()> {
    match std::os::unix::fs::lchown(path, Some(uid), Some(gid)) {
        Ok(()) => Ok(()),
        // Without root the owner cannot be given away: the digest check says so, later.
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => Ok(()),
        Err(e) => Err(Error::io(path, e)),
    }
}

fn set_xattrs(path: &Path, xattrs: &[(String, Vec<u8>)]) -> Result<()> {
    for (k, v) in xattrs {
        layerfs::set_xattr(path, k, v).map_err(|e| Error::io(path, e))?;
    }
    Ok(())
}

fn corrupt(at: &Path, why: impl std::fmt::Display) -> Error {
    Error::remote(
        ErrorKind::RemoteTransfer,
        format!(
            "the blob unpacked into `{}` is corrupt: {why}",
            at.display()
        ),
    )
}

fn bad(at: &Path, e: &io::Error) -> Error {
    corrupt(at, e.to_string())
}
