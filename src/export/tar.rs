//! The reproducible tar writer every archive goes through: [`TarWriter`] (ustar headers, PAX
//! records only where a header cannot hold a value), the [`Item`]s it writes and how a file
//! on disk becomes one ([`item`], mtimes [`clamp`]ed, hard links found by [`hard_link_of`]),
//! and [`write_merged_tar`], the `tar` export: the merged tree as one archive.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use ::tar::{EntryType, Header};

use crate::error::{Error, Result};
use crate::layerfs::{self, get_xattr, Merged};

use super::ExportSpec;

/// What an archive entry holds.
#[derive(Debug)]
pub(super) enum Body {
    Dir,
    File {
        src: PathBuf,
        size: u64,
    },
    /// A regular file with no content: OCI whiteout markers.
    Empty,
    HardLink(Vec<u8>),
    Symlink(Vec<u8>),
    Char(u32, u32),
    Block(u32, u32),
    Fifo,
}

/// One archive entry, ready to write.
#[derive(Debug)]
pub(super) struct Item {
    /// The name in the archive; folders end with `/`.
    pub(super) name: Vec<u8>,
    pub(super) body: Body,
    pub(super) mode: u32,
    pub(super) uid: u64,
    pub(super) gid: u64,
    pub(super) mtime: u64,
    /// Written as `SCHILY.xattr.NAME` PAX records.
    pub(super) xattrs: Vec<(&'static str, Vec<u8>)>,
}

/// Extended attributes an export keeps: file capabilities, without which `ping` and friends
/// lose their powers. Other attributes (ACLs, `SELinux` labels) are not exported.
pub(super) const KEPT_XATTRS: &[&str] = &["security.capability"];

/// The clamped mtime of an entry: `min(mtime, cap)`, and never before 1970.
pub(super) fn clamp(meta: &fs::Metadata, cap: i64) -> u64 {
    meta.mtime().min(cap).max(0) as u64
}

/// The archive item for an entry at `src`, named `name`. `None` for sockets, which tar cannot
/// hold. `link` names the earlier entry this one is a hard link of.
pub(super) fn item(
    name: Vec<u8>,
    src: &Path,
    meta: &fs::Metadata,
    cap: i64,
    link: Option<Vec<u8>>,
) -> Result<Option<Item>> {
    let t = meta.file_type();
    let rdev = meta.rdev();
    let dev = || (rustix::fs::major(rdev), rustix::fs::minor(rdev));
    let body = if let Some(target) = link {
        Body::HardLink(target)
    } else if t.is_dir() {
        Body::Dir
    } else if t.is_file() {
        Body::File {
            src: src.to_path_buf(),
            size: meta.len(),
        }
    } else if t.is_symlink() {
        let target = fs::read_link(src).map_err(|e| Error::io(src, e))?;
        Body::Symlink(target.as_os_str().as_bytes().to_vec())
    } else if t.is_char_device() {
        let (ma, mi) = dev();
        Body::Char(ma, mi)
    } else if t.is_block_device() {
        let (ma, mi) = dev();
        Body::Block(ma, mi)
    } else if t.is_fifo() {
        Body::Fifo
    } else {
        return Ok(None);
    };
    let mut xattrs = Vec::new();
    if t.is_file() {
        for &x in KEPT_XATTRS {
            if let Some(v) = get_xattr(src, x).map_err(|e| Error::io(src, e))? {
                xattrs.push((x, v));
            }
        }
    }
    Ok(Some(Item {
        name,
        body,
        mode: meta.mode() & 0o7777,
        uid: meta.uid().into(),
        gid: meta.gid().into(),
        mtime: clamp(meta, cap),
        xattrs,
    }))
}

/// Writes the merged tree as one archive: `./` then `./PATH` for every entry, sorted by path.
pub(super) fn write_merged_tar(
    spec: &ExportSpec,
    merged: &[Merged],
    w: &mut impl Write,
    out: &Path,
) -> Result<()> {
    let mut tar = TarWriter::new(w, out);
    let mut first_link: HashMap<(usize, u64, u64), Vec<u8>> = HashMap::new();
    for m in merged {
        let src = layerfs::join_rel(&spec.layers[m.layer], &m.rel);
        let mut name = b"./".to_vec();
        name.extend_from_slice(&m.rel);
        if m.meta.is_dir() && !m.rel.is_empty() {
            name.push(b'/');
        }
        let link = hard_link_of(&mut first_link, m.layer, &m.meta, &name);
        if let Some(it) = item(name, &src, &m.meta, spec.mtime, link)? {
            tar.append(&it)?;
        }
    }
    tar.finish()
}

/// A layer folder as one archive, for the remote cache (`crate::remote`): `./` then `./PATH`
/// for every entry of `root`, sorted by path, with owners, modes, mtimes as they are (not
/// clamped), hard links, device nodes and overlayfs's marks — whiteouts are character devices
/// 0/0, opaque folders carry `trusted.overlay.opaque` as a `SCHILY.xattr` record — so that
/// unpacking it gives a tree with the same [`layerfs::digest`]. A socket cannot be archived
/// and is an error.
pub fn write_layer_tar(root: &Path, w: impl Write, out: &Path) -> Result<()> {
    let mut tar = TarWriter::new(w, out);
    let mut first_link: HashMap<(usize, u64, u64), Vec<u8>> = HashMap::new();
    for n in layerfs::walk(root)? {
        let src = layerfs::join_rel(root, &n.rel);
        let mut name = b"./".to_vec();
        name.extend_from_slice(&n.rel);
        let dir = n.meta.is_dir();
        if dir && !n.rel.is_empty() {
            name.push(b'/');
        }
        let link = hard_link_of(&mut first_link, 0, &n.meta, &name);
        let Some(mut it) = item(name, &src, &n.meta, i64::MAX, link)? else {
            return Err(Error::io(
                &src,
                io::Error::other("a socket cannot be archived"),
            ));
        };
        if dir && layerfs::is_opaque(&src) {
            it.xattrs.push((layerfs::OPAQUE_XATTR, b"y".to_vec()));
        }
        tar.append(&it)?;
    }
    tar.finish()
}

/// For a non-folder with more than one link: the name of the first entry seen with the same
/// inode in the same layer (then this entry is a hard link to it), or `None` after noting this
/// one as the first.
pub(super) fn hard_link_of(
    seen: &mut HashMap<(usize, u64, u64), Vec<u8>>,
    layer: usize,
    meta: &fs::Metadata,
    name: &[u8],
) -> Option<Vec<u8>> {
    if meta.is_dir() || meta.file_type().is_socket() || meta.nlink() < 2 {
        return None;
    }
    match seen.entry((layer, meta.dev(), meta.ino())) {
        std::collections::hash_map::Entry::Occupied(e) => Some(e.get().clone()),
        std::collections::hash_map::Entry::Vacant(e) => {
            e.insert(name.to_vec());
            None
        }
    }
}

/// A ustar archive writer with PAX records only where a header cannot hold a value.
///
/// Written by hand on purpose, with the `tar` crate only for header fields and checksums: its
/// `Builder` stores a long path or link target as a GNU `././@LongLink` entry, not as a PAX
/// record, and exports are PAX archives so that long names come out the same way every time
/// and any POSIX reader takes them. The PAX header's own name is fixed too (see
/// [`TarWriter::write_pax`]), and no atime or ctime record is ever written.
pub(super) struct TarWriter<'a, W: Write> {
    w: W,
    /// The export's path, which errors writing the archive name.
    out: &'a Path,
}

impl<'a, W: Write> TarWriter<'a, W> {
    pub(super) fn new(w: W, out: &'a Path) -> Self {
        TarWriter { w, out }
    }

    pub(super) fn append(&mut self, it: &Item) -> Result<()> {
        let mut h = Header::new_ustar();
        let mut pax: Vec<(String, Vec<u8>)> = Vec::new();
        if !set_ustar_name(&mut h, &it.name) {
            pax.push(("path".into(), it.name.clone()));
            let cut = it.name.len().min(100);
            h.as_old_mut().name[..cut].copy_from_slice(&it.name[..cut]);
        }
        h.set_mode(it.mode);
        h.set_uid(it.uid);
        h.set_gid(it.gid);
        h.set_mtime(it.mtime);
        h.set_size(0);
        let mut link = |h: &mut Header, target: &[u8]| {
            if target.len() <= 100 {
                h.as_old_mut().linkname[..target.len()].copy_from_slice(target);
            } else {
                pax.push(("linkpath".into(), target.to_vec()));
                h.as_old_mut().linkname.copy_from_slice(&target[..100]);
            }
        };
        match &it.body {
            Body::Dir => h.set_entry_type(EntryType::Directory),
            Body::File { size, .. } => {
                h.set_entry_type(EntryType::Regular);
                h.set_size(*size);
            }
            Body::Empty => h.set_entry_type(EntryType::Regular),
            Body::HardLink(t) => {
                h.set_entry_type(EntryType::Link);
                link(&mut h, t);
            }
            Body::Symlink(t) => {
                h.set_entry_type(EntryType::Symlink);
                link(&mut h, t);
            }
            Body::Char(ma, mi) | Body::Block(ma, mi) => {
                h.set_entry_type(if matches!(it.body, Body::Char(..)) {
                    EntryType::Char
                } else {
                    EntryType::Block
                });
                h.set_device_major(*ma)
                    .map_err(|e| Error::io(self.out, e))?;
                h.set_device_minor(*mi)
                    .map_err(|e| Error::io(self.out, e))?;
            }
            Body::Fifo => h.set_entry_type(EntryType::Fifo),
        }
        for (k, v) in &it.xattrs {
            pax.push((format!("SCHILY.xattr.{k}"), v.clone()));
        }
        if !pax.is_empty() {
            if pax
                .iter()
                .any(|(k, v)| (k == "path" || k == "linkpath") && std::str::from_utf8(v).is_err())
            {
                pax.insert(0, ("hdrcharset".into(), b"BINARY".to_vec()));
            }
            self.write_pax(&it.name, it.mtime, &pax)?;
        }
        h.set_cksum();
        self.w
            .write_all(h.as_bytes())
            .map_err(|e| Error::io(self.out, e))?;
        if let Body::File { src, size } = &it.body {
            let f = File::open(src).map_err(|e| Error::io(src, e))?;
            let mut r = f.take(*size);
            let n = copy_reading(&mut r, &mut self.w, src, self.out)?;
            if n != *size {
                return Err(Error::io(
                    src,
                    io::Error::other("the file changed size while it was exported"),
                ));
            }
            self.pad(n)?;
        }
        Ok(())
    }

    /// A PAX extended header for the entry named `name`. Its own name is fixed by the entry's
    /// (`PaxHeaders/` and the entry's last component) so that it is reproducible.
    fn write_pax(&mut self, name: &[u8], mtime: u64, records: &[(String, Vec<u8>)]) -> Result<()> {
        let mut data = Vec::new();
        for (k, v) in records {
            data.extend_from_slice(&pax_record(k, v));
        }
        let trimmed = name.strip_suffix(b"/").unwrap_or(name);
        let base = trimmed.rsplit(|&b| b == b'/').next().unwrap_or(trimmed);
        let mut pname = b"PaxHeaders/".to_vec();
        pname.extend_from_slice(&base[..base.len().min(100 - pname.len())]);
        let mut h = Header::new_ustar();
        h.as_old_mut().name[..pname.len()].copy_from_slice(&pname);
        h.set_entry_type(EntryType::XHeader);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(mtime);
        h.set_size(data.len() as u64);
        h.set_cksum();
        self.w
            .write_all(h.as_bytes())
            .map_err(|e| Error::io(self.out, e))?;
        self.w
            .write_all(&data)
            .map_err(|e| Error::io(self.out, e))?;
        self.pad(data.len() as u64)
    }

    fn pad(&mut self, n: u64) -> Result<()> {
        let rem = (n % 512) as usize;
        if rem != 0 {
            self.w
                .write_all(&[0u8; 512][..512 - rem])
                .map_err(|e| Error::io(self.out, e))?;
        }
        Ok(())
    }

    pub(super) fn finish(mut self) -> Result<()> {
        self.w
            .write_all(&[0u8; 1024])
            .map_err(|e| Error::io(self.out, e))?;
        self.w.flush().map_err(|e| Error::io(self.out, e))
    }
}

/// Copies `r` (a source file) into `w` (the archive), telling read errors from write errors.
fn copy_reading(r: &mut impl Read, w: &mut impl Write, src: &Path, out: &Path) -> Result<u64> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut n = 0u64;
    loop {
        let k = match r.read(&mut buf) {
            Ok(0) => return Ok(n),
            Ok(k) => k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io(src, e)),
        };
        w.write_all(&buf[..k]).map_err(|e| Error::io(out, e))?;
        n += k as u64;
    }
}

/// Puts `name` in the ustar name field, or split between prefix and name; false when it does
/// not fit (then a PAX `path` record holds it).
fn set_ustar_name(h: &mut Header, name: &[u8]) -> bool {
    let u = h.as_ustar_mut().expect("a ustar header");
    if name.len() <= 100 {
        u.name[..name.len()].copy_from_slice(name);
        return true;
    }
    // Split at a slash with at most 155 bytes before it and 1 to 100 bytes after it.
    let split = (0..name.len().min(156))
        .filter(|&i| name[i] == b'/')
        .find(|&i| name.len() - i - 1 <= 100 && name.len() - i - 1 > 0);
    match split {
        Some(i) => {
            u.prefix[..i].copy_from_slice(&name[..i]);
            u.name[..name.len() - i - 1].copy_from_slice(&name[i + 1..]);
            true
        }
        None => false,
    }
}

/// One PAX record: `LEN KEY=VALUE\n`, where LEN counts the whole record, itself included.
fn pax_record(key: &str, value: &[u8]) -> Vec<u8> {
    let rest = key.len() + value.len() + 3;
    let mut len = rest + 1;
    while rest + len.to_string().len() != len {
        len = rest + len.to_string().len();
    }
    let mut r = format!("{len} {key}=").into_bytes();
    r.extend_from_slice(value);
    r.push(b'\n');
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_records_count_their_own_length() {
        for (k, v) in [("path", 1usize), ("path", 90), ("path", 91), ("path", 994)] {
            let value = vec![b'a'; v];
            let r = pax_record(k, &value);
            let len: usize = std::str::from_utf8(&r[..r.iter().position(|&b| b == b' ').unwrap()])
                .unwrap()
                .parse()
                .unwrap();
            assert_eq!(len, r.len(), "{k} of {v} bytes");
            assert!(r.ends_with(b"\n"));
        }
        assert_eq!(pax_record("path", b"ab"), b"11 path=ab\n");
    }

    #[test]
    fn long_names_split_into_the_ustar_prefix_or_need_pax() {
        let mut h = tar::Header::new_ustar();
        assert!(set_ustar_name(&mut h, b"./etc/passwd"));
        assert_eq!(&*h.path_bytes(), b"./etc/passwd");

        let long = format!("./{}/{}", "d".repeat(120), "f".repeat(90));
        let mut h = tar::Header::new_ustar();
        assert!(set_ustar_name(&mut h, long.as_bytes()));
        assert_eq!(&*h.path_bytes(), long.as_bytes());

        let mut h = tar::Header::new_ustar();
        let unsplittable = format!("./{}", "x".repeat(150));
        assert!(!set_ustar_name(&mut h, unsplittable.as_bytes()));
        let folder = format!("{}/", "y".repeat(120));
        assert!(!set_ustar_name(&mut h, folder.as_bytes()));
    }
}
