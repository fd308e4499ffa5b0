//! `layer export`: an image's stack of layers written out as a tar archive, an OCI image
//! layout, or a raw or qcow2 ext4 disk image.
//!
//! An image on the host is a stack of folders, bottom first: the origin's root filesystem, then
//! one layer per image of its chain (deep) or the image's own layer (shallow). A layer is an
//! overlayfs upper directory (see [`crate::layerfs`]): whiteouts delete, opaque folders hide
//! what is below them. [`merge`] computes the tree a mount of the stack would show, by walking
//! the layers, without mounting anything.
//!
//! | format | what is written |
//! |---|---|
//! | `tar` | the merged tree as one archive |
//! | `oci` | an OCI image layout folder: one uncompressed layer blob per folder of the stack, whiteouts as `.wh.NAME`, opaque folders as `.wh..wh..opq` |
//! | `raw` | an ext4 file system image made by `mkfs.ext4 -d` from a copy of the merged tree |
//! | `qcow2` | the raw image converted by `qemu-img convert` |
//!
//! **Reproducible.** Exporting the same stack with the same [`ExportSpec`] twice gives the same
//! bytes, in every format:
//!
//! - archives list entries sorted by path as bytes (`LC_ALL=C sort`), parents before children;
//! - every mtime is clamped to the record's build time: `min(mtime, spec.mtime)` (never below 0).
//!   Clamping rather than overwriting keeps the dates a package manager gave its files, while a
//!   file touched after the build (or an export made later) cannot change the bytes;
//! - owners are numeric (uid/gid, no user or group names), modes are kept with setuid, setgid
//!   and sticky bits; a PAX header is written only where the ustar header cannot hold a value (a
//!   long path or link target) or for a file capability (`security.capability`), never with
//!   atime or ctime;
//! - the OCI config, manifest and index are JSON with sorted keys and fixed dates (the build
//!   time); layer blobs are uncompressed tars, so no compressor's version can change a digest;
//! - ext4 images get a UUID and directory hash seed derived from the image name and version
//!   (blake3); mtimes are clamped as above; atime, ctime and crtime of every inode and the
//!   superblock's times are the build time (`E2FSPROGS_FAKE_TIME`, then `debugfs` overwrites
//!   the atime and ctime that `mkfs.ext4 -d` copies from the host copy, and sets the root
//!   folder's owner and mode); `LC_ALL=C` makes `mkfs.ext4` read folders in byte order.
//!
//! **Atomic.** Everything is written to a temporary path beside `out` and renamed onto it at
//! the end; on failure nothing is left at `out` (an existing file there is untouched). Like
//! `docker save -o`, a file at `out` is replaced; an OCI layout is written into a new or empty
//! folder only, never into a non-empty one.
//!
//! Not exported: extended attributes other than `security.capability` (ACLs, SELinux labels)
//! and sockets, which tar cannot hold.

use std::collections::{BTreeMap, HashMap};
use std::ffi::CString;
use std::fmt;
use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::str::FromStr;

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::fsutil::{atomic_dir, atomic_file, parent_of, Remove};
use crate::layerfs::{self, get_xattr, merge, scan_layer, set_xattr, Merged};

/// What `layer export --format` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    Tar,
    Oci,
    Raw,
    Qcow2,
}

impl Format {
    pub const ALL: [Format; 4] = [Format::Tar, Format::Oci, Format::Raw, Format::Qcow2];

    pub fn name(self) -> &'static str {
        match self {
            Format::Tar => "tar",
            Format::Oci => "oci",
            Format::Raw => "raw",
            Format::Qcow2 => "qcow2",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Format, String> {
        Format::ALL
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| format!("unknown export format `{s}`: expected tar, oci, raw or qcow2"))
    }
}

/// What to export: an image's stack of layer folders and the record's metadata.
#[derive(Debug, Clone, Copy)]
pub struct ExportSpec<'a> {
    /// The stack, bottom first: the origin's root filesystem, then one layer per image.
    pub layers: &'a [PathBuf],
    /// One name per layer, for the OCI history (`origin bookworm`, `base-linux 1.4.2-…`).
    pub layer_names: &'a [String],
    /// The image's name.
    pub image: &'a str,
    /// The record's version (`1.4.2-20261129_1940`): the OCI reference name.
    pub version: &'a str,
    /// The record's build time, in Unix seconds: the latest mtime an export holds, and the
    /// date of every OCI history entry and file system time.
    pub mtime: i64,
    /// The record's tags: OCI labels and manifest annotations.
    pub tags: &'a BTreeMap<String, String>,
}

/// Writes the image described by `spec` to `out` in `format`.
pub fn export(spec: &ExportSpec, format: Format, out: &Path) -> Result<()> {
    if spec.layers.is_empty() {
        return Err(Error::usage(format!(
            "`{}` has no layers to export",
            spec.image
        )));
    }
    if spec.layers.len() != spec.layer_names.len() {
        return Err(Error::usage(format!(
            "`{}`: the numbers of layers ({}) and layer names ({}) differ",
            spec.image,
            spec.layers.len(),
            spec.layer_names.len()
        )));
    }
    check_out(format, out)?;
    match format {
        Format::Tar => atomic_file(out, |tmp| {
            let merged = merge(spec.layers)?;
            let f = File::create(tmp).map_err(|e| Error::io(out, e))?;
            let mut w = BufWriter::with_capacity(1 << 20, f);
            write_merged_tar(spec, &merged, &mut w, out)?;
            let f = w.into_inner().map_err(|e| Error::io(out, e.into_error()))?;
            f.sync_all().map_err(|e| Error::io(out, e))
        }),
        Format::Oci => atomic_dir(out, |tmp| write_oci(spec, tmp, out)),
        Format::Raw => {
            let tools = Tools::find(format)?;
            // SAFETY: geteuid cannot fail and touches no memory.
            need_root(format, unsafe { libc::geteuid() })?;
            atomic_file(out, |tmp| write_raw(spec, &tools, tmp, out))
        }
        Format::Qcow2 => {
            let tools = Tools::find(format)?;
            // SAFETY: geteuid cannot fail and touches no memory.
            need_root(format, unsafe { libc::geteuid() })?;
            atomic_file(out, |tmp| {
                let raw = sibling(tmp, "raw");
                let _guard = Remove::new(&raw);
                write_raw(spec, &tools, &raw, out)?;
                let qemu_img = tools.qemu_img.as_ref().expect("found for qcow2");
                run(
                    Command::new(qemu_img)
                        .args(["convert", "-q", "-f", "raw", "-O", "qcow2"])
                        .arg(&raw)
                        .arg(tmp),
                    out,
                )
            })
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Reading layers and merging them.

// ---------------------------------------------------------------------------------------------
// Tar.

/// What an archive entry holds.
#[derive(Debug)]
enum Body {
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
struct Item {
    /// The name in the archive; folders end with `/`.
    name: Vec<u8>,
    body: Body,
    mode: u32,
    uid: u64,
    gid: u64,
    mtime: u64,
    /// Written as `SCHILY.xattr.NAME` PAX records.
    xattrs: Vec<(&'static str, Vec<u8>)>,
}

/// Extended attributes an export keeps: file capabilities, without which `ping` and friends
/// lose their powers. Other attributes (ACLs, SELinux labels) are not exported.
const KEPT_XATTRS: &[&str] = &["security.capability"];

/// The clamped mtime of an entry: `min(mtime, cap)`, and never before 1970.
fn clamp(meta: &fs::Metadata, cap: i64) -> u64 {
    meta.mtime().min(cap).max(0) as u64
}

/// The archive item for an entry at `src`, named `name`. `None` for sockets, which tar cannot
/// hold. `link` names the earlier entry this one is a hard link of.
fn item(
    name: Vec<u8>,
    src: &Path,
    meta: &fs::Metadata,
    cap: i64,
    link: Option<Vec<u8>>,
) -> Result<Option<Item>> {
    let t = meta.file_type();
    let rdev = meta.rdev();
    let dev = || (libc::major(rdev), libc::minor(rdev));
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
fn write_merged_tar(
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

/// For a non-folder with more than one link: the name of the first entry seen with the same
/// inode in the same layer (then this entry is a hard link to it), or `None` after noting this
/// one as the first.
fn hard_link_of(
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
struct TarWriter<'a, W: Write> {
    w: W,
    /// The export's path, which errors writing the archive name.
    out: &'a Path,
}

impl<'a, W: Write> TarWriter<'a, W> {
    fn new(w: W, out: &'a Path) -> Self {
        TarWriter { w, out }
    }

    fn append(&mut self, it: &Item) -> Result<()> {
        let mut h = tar::Header::new_ustar();
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
        let mut link = |h: &mut tar::Header, target: &[u8]| {
            if target.len() <= 100 {
                h.as_old_mut().linkname[..target.len()].copy_from_slice(target);
            } else {
                pax.push(("linkpath".into(), target.to_vec()));
                h.as_old_mut().linkname.copy_from_slice(&target[..100]);
            }
        };
        match &it.body {
            Body::Dir => h.set_entry_type(tar::EntryType::Directory),
            Body::File { size, .. } => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(*size);
            }
            Body::Empty => h.set_entry_type(tar::EntryType::Regular),
            Body::HardLink(t) => {
                h.set_entry_type(tar::EntryType::Link);
                link(&mut h, t);
            }
            Body::Symlink(t) => {
                h.set_entry_type(tar::EntryType::Symlink);
                link(&mut h, t);
            }
            Body::Char(ma, mi) | Body::Block(ma, mi) => {
                h.set_entry_type(if matches!(it.body, Body::Char(..)) {
                    tar::EntryType::Char
                } else {
                    tar::EntryType::Block
                });
                h.set_device_major(*ma)
                    .map_err(|e| Error::io(self.out, e))?;
                h.set_device_minor(*mi)
                    .map_err(|e| Error::io(self.out, e))?;
            }
            Body::Fifo => h.set_entry_type(tar::EntryType::Fifo),
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
        let mut h = tar::Header::new_ustar();
        h.as_old_mut().name[..pname.len()].copy_from_slice(&pname);
        h.set_entry_type(tar::EntryType::XHeader);
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

    fn finish(mut self) -> Result<()> {
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
fn set_ustar_name(h: &mut tar::Header, name: &[u8]) -> bool {
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

// ---------------------------------------------------------------------------------------------
// OCI image layout.

const MEDIA_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
const MEDIA_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const MEDIA_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const MEDIA_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// A blob written into `blobs/sha256/`.
#[derive(Debug, Clone)]
struct Blob {
    digest: String,
    size: u64,
}

/// A writer that hashes and counts what passes through it.
struct Hashing<W> {
    inner: W,
    sha: Sha256,
    n: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let k = self.inner.write(buf)?;
        self.sha.update(&buf[..k]);
        self.n += k as u64;
        Ok(k)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The OCI architecture name of the host: rootfs images are built for the host's architecture.
pub fn oci_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "x86" => "386",
        "aarch64" => "arm64",
        "arm" => "arm",
        "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
        "powerpc64" => "ppc64",
        "mips64" if cfg!(target_endian = "little") => "mips64le",
        "loongarch64" => "loong64",
        other => other,
    }
}

fn rfc3339(secs: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs.max(0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}

fn write_oci(spec: &ExportSpec, dir: &Path, out: &Path) -> Result<()> {
    let blobs = dir.join("blobs").join("sha256");
    fs::create_dir_all(&blobs).map_err(|e| Error::io(out, e))?;

    let mut layers = Vec::new();
    for (i, layer) in spec.layers.iter().enumerate() {
        let tmp = blobs.join(format!(".layer-{i}.tmp"));
        let f = File::create(&tmp).map_err(|e| Error::io(out, e))?;
        let mut h = Hashing {
            inner: BufWriter::with_capacity(1 << 20, f),
            sha: Sha256::new(),
            n: 0,
        };
        write_layer_tar(spec, layer, &mut h, out)?;
        h.flush().map_err(|e| Error::io(out, e))?;
        let digest = hex(&h.sha.finalize());
        let size = h.n;
        let f = h
            .inner
            .into_inner()
            .map_err(|e| Error::io(out, e.into_error()))?;
        f.sync_all().map_err(|e| Error::io(out, e))?;
        fs::rename(&tmp, blobs.join(&digest)).map_err(|e| Error::io(out, e))?;
        layers.push(Blob {
            digest: format!("sha256:{digest}"),
            size,
        });
    }

    let created = rfc3339(spec.mtime);
    let mut config = serde_json::json!({
        "architecture": oci_arch(),
        "os": "linux",
        "created": created,
        "config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
        },
        "rootfs": {
            "type": "layers",
            "diff_ids": layers.iter().map(|b| b.digest.clone()).collect::<Vec<_>>(),
        },
        "history": spec.layer_names.iter().map(|n| serde_json::json!({
            "created": created,
            "created_by": format!("layer: {n}"),
        })).collect::<Vec<_>>(),
    });
    if !spec.tags.is_empty() {
        config["config"]["Labels"] = serde_json::json!(spec.tags);
    }
    let config = write_json_blob(&blobs, &config, out)?;

    let mut annotations: BTreeMap<String, String> = spec.tags.clone();
    annotations.insert("org.opencontainers.image.created".into(), created.clone());
    annotations.insert("org.opencontainers.image.title".into(), spec.image.into());
    annotations.insert(
        "org.opencontainers.image.version".into(),
        spec.version.into(),
    );
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": MEDIA_MANIFEST,
        "config": {"mediaType": MEDIA_CONFIG, "digest": config.digest, "size": config.size},
        "layers": layers.iter().map(|b| serde_json::json!({
            "mediaType": MEDIA_LAYER, "digest": b.digest, "size": b.size,
        })).collect::<Vec<_>>(),
        "annotations": annotations,
    });
    let manifest = write_json_blob(&blobs, &manifest, out)?;

    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": MEDIA_INDEX,
        "manifests": [{
            "mediaType": MEDIA_MANIFEST,
            "digest": manifest.digest,
            "size": manifest.size,
            "platform": {"architecture": oci_arch(), "os": "linux"},
            "annotations": {"org.opencontainers.image.ref.name": spec.version},
        }],
    });
    write_file(&dir.join("index.json"), &json_bytes(&index), out)?;
    write_file(
        &dir.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
        out,
    )
}

fn json_bytes(v: &serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(v).expect("JSON values serialize")
}

fn write_json_blob(blobs: &Path, v: &serde_json::Value, out: &Path) -> Result<Blob> {
    let bytes = json_bytes(v);
    let digest = hex(&Sha256::digest(&bytes));
    write_file(&blobs.join(&digest), &bytes, out)?;
    Ok(Blob {
        digest: format!("sha256:{digest}"),
        size: bytes.len() as u64,
    })
}

fn write_file(path: &Path, bytes: &[u8], out: &Path) -> Result<()> {
    let mut f = File::create(path).map_err(|e| Error::io(out, e))?;
    f.write_all(bytes).map_err(|e| Error::io(out, e))?;
    f.sync_all().map_err(|e| Error::io(out, e))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Prefix of whiteout entries in OCI layers, and the name that marks a folder opaque.
const WHITEOUT_PREFIX: &[u8] = b".wh.";
const OPAQUE_MARKER: &[u8] = b".wh..wh..opq";

/// One folder of the stack as an OCI layer: its entries (not its root) sorted by path, whiteouts
/// as empty `.wh.NAME` files, an opaque folder followed by its `.wh..wh..opq` marker.
fn write_layer_tar(spec: &ExportSpec, layer: &Path, w: &mut impl Write, out: &Path) -> Result<()> {
    let mut nodes = scan_layer(layer)?;
    nodes.sort_by(|a, b| a.rel.cmp(&b.rel));
    let mut tar = TarWriter::new(w, out);
    let mut first_link = HashMap::new();
    for n in nodes.iter().filter(|n| !n.rel.is_empty()) {
        let src = layerfs::join_rel(layer, &n.rel);
        let (parent, base) = match n.rel.iter().rposition(|&b| b == b'/') {
            Some(i) => (&n.rel[..=i], &n.rel[i + 1..]),
            None => (&b""[..], &n.rel[..]),
        };
        if base.starts_with(WHITEOUT_PREFIX) {
            return Err(Error::io(
                &src,
                io::Error::other("names starting with `.wh.` cannot be stored in an OCI layer"),
            ));
        }
        let marker = |name: Vec<u8>| Item {
            name,
            body: Body::Empty,
            mode: n.meta.mode() & 0o777,
            uid: n.meta.uid().into(),
            gid: n.meta.gid().into(),
            mtime: clamp(&n.meta, spec.mtime),
            xattrs: Vec::new(),
        };
        if layerfs::is_whiteout(&n.meta) {
            let mut name = parent.to_vec();
            name.extend_from_slice(WHITEOUT_PREFIX);
            name.extend_from_slice(base);
            tar.append(&marker(name))?;
            continue;
        }
        let mut name = n.rel.clone();
        if n.meta.is_dir() {
            name.push(b'/');
        }
        let link = hard_link_of(&mut first_link, 0, &n.meta, &name);
        if let Some(it) = item(name.clone(), &src, &n.meta, spec.mtime, link)? {
            tar.append(&it)?;
        }
        if n.opaque {
            name.extend_from_slice(OPAQUE_MARKER);
            tar.append(&marker(name))?;
        }
    }
    tar.finish()
}

// ---------------------------------------------------------------------------------------------
// Raw and qcow2 disk images.

/// The host tools disk images need.
#[derive(Debug)]
struct Tools {
    mkfs: PathBuf,
    dumpe2fs: PathBuf,
    debugfs: PathBuf,
    qemu_img: Option<PathBuf>,
}

impl Tools {
    fn find(format: Format) -> Result<Tools> {
        Ok(Tools {
            mkfs: need("mkfs.ext4", "e2fsprogs", format)?,
            dumpe2fs: need("dumpe2fs", "e2fsprogs", format)?,
            debugfs: need("debugfs", "e2fsprogs", format)?,
            qemu_img: match format {
                Format::Qcow2 => Some(need("qemu-img", "qemu-utils", format)?),
                _ => None,
            },
        })
    }
}

/// Disk images copy owners, device nodes and file capabilities into a file system: root only.
fn need_root(format: Format, euid: u32) -> Result<()> {
    if euid == 0 {
        return Ok(());
    }
    Err(Error::Usage {
        message: format!("{format} exports need root: they copy file owners and device nodes"),
        hint: Some("run `layer export` as root, like `layer build`".into()),
    })
}

/// The path of `tool`, or an error naming the Debian package that has it.
fn need(tool: &str, package: &str, format: Format) -> Result<PathBuf> {
    find_tool(tool).ok_or_else(|| Error::Usage {
        message: format!("`{tool}` is not installed: {format} exports need it"),
        hint: Some(format!(
            "install the Debian package `{package}`: apt-get install {package}"
        )),
    })
}

/// `tool` in `PATH`, or in the sbin folders that a user's `PATH` may lack.
fn find_tool(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|d| d.join(tool))
        .find(|p| fs::metadata(p).is_ok_and(|m| m.is_file() && m.mode() & 0o111 != 0))
}

/// A 16-byte value derived from the image and version, for the file system's UUID and hash seed.
fn derived_uuid(what: &str, spec: &ExportSpec) -> String {
    let mut h = blake3::Hasher::new();
    h.update(b"layer-export-v1\0");
    h.update(what.as_bytes());
    h.update(b"\0");
    h.update(spec.image.as_bytes());
    h.update(b"\0");
    h.update(spec.version.as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&h.finalize().as_bytes()[..16]);
    b[6] = (b[6] & 0x0f) | 0x40; // version 4 (random), as far as readers can tell
    b[8] = (b[8] & 0x3f) | 0x80; // RFC 4122 variant
    let x = hex(&b);
    format!(
        "{}-{}-{}-{}-{}",
        &x[0..8],
        &x[8..12],
        &x[12..16],
        &x[16..20],
        &x[20..32]
    )
}

/// Bytes of a file system that holds `merged` with room to spare: data rounded up to blocks,
/// a block per folder and long symlink, inode tables, plus a quarter and 32 MiB for the
/// journal, metadata and free space; rounded up to MiB.
fn raw_size(merged: &[Merged], inodes: u64) -> u64 {
    const BLOCK: u64 = 4096;
    let mut data = 0u64;
    let mut seen = std::collections::HashSet::new();
    for m in merged {
        let t = m.meta.file_type();
        if t.is_file() {
            if m.meta.nlink() < 2 || seen.insert((m.layer, m.meta.dev(), m.meta.ino())) {
                data += m.meta.len().div_ceil(BLOCK) * BLOCK;
            }
        } else if t.is_dir() || (t.is_symlink() && m.meta.len() >= 60) {
            data += BLOCK;
        }
    }
    let base = data + inodes * 256;
    let size = base + base / 4 + (32 << 20);
    size.div_ceil(1 << 20) << 20
}

/// Makes the ext4 image of `spec` at `img` (a new file): the merged tree is copied into a
/// folder beside it, `mkfs.ext4 -d` makes the file system from the copy, and `debugfs` sets the
/// times and the root folder's attributes that `mkfs.ext4` takes from the copy or the clock.
fn write_raw(spec: &ExportSpec, tools: &Tools, img: &Path, out: &Path) -> Result<()> {
    let merged = merge(spec.layers)?;
    let tree = sibling(img, "root");
    let _guard = Remove::new(&tree);
    materialize(spec, &merged, &tree)?;

    let inodes = merged.len() as u64 + merged.len() as u64 / 2 + 1024;
    let size = raw_size(&merged, inodes);
    let f = File::create(img).map_err(|e| Error::io(out, e))?;
    f.set_len(size).map_err(|e| Error::io(out, e))?;
    drop(f);

    let time = spec.mtime.max(0).to_string();
    let env = |c: &mut Command| {
        c.env("LC_ALL", "C")
            .env("E2FSPROGS_FAKE_TIME", &time)
            .env("SOURCE_DATE_EPOCH", &time)
            .env_remove("MKE2FS_CONFIG")
            .env_remove("MKE2FS_SYNC");
    };
    let label: String = spec.image.chars().take(16).collect();
    let mut mkfs = Command::new(&tools.mkfs);
    env(&mut mkfs);
    mkfs.args(["-q", "-F", "-t", "ext4", "-b", "4096", "-I", "256"])
        .arg("-N")
        .arg(inodes.to_string())
        .arg("-L")
        .arg(&label)
        .arg("-U")
        .arg(derived_uuid("uuid", spec))
        .arg("-E")
        .arg(format!(
            "nodiscard,hash_seed={}",
            derived_uuid("hash_seed", spec)
        ))
        .arg("-d")
        .arg(&tree)
        .arg(img);
    run(&mut mkfs, out)?;

    // `mkfs.ext4 -d` copies atime and ctime from the copy (the ctime is the copy's own) and
    // gives the root folder its default owner and mode: set them. Inodes are named by number,
    // which debugfs finds at once, where a path costs a directory lookup (100 times slower).
    let mut dumpe2fs = Command::new(&tools.dumpe2fs);
    env(&mut dumpe2fs);
    let listing = output(dumpe2fs.arg(img))?;
    let used = used_inodes(&String::from_utf8_lossy(&listing.stdout)).ok_or_else(|| {
        Error::io(
            out,
            io::Error::other(format!(
                "cannot read the inode bitmaps of the new file system: {}",
                String::from_utf8_lossy(&listing.stderr).trim()
            )),
        )
    })?;
    let script = sibling(img, "debugfs");
    let _guard2 = Remove::new(&script);
    let root = &merged[0].meta;
    let mut s = format!(
        "sif <2> mode 0{:o}\nsif <2> uid {}\nsif <2> gid {}\nsif <2> mtime @{}\n",
        0o040000 | (root.mode() & 0o7777),
        root.uid(),
        root.gid(),
        clamp(root, spec.mtime)
    );
    for ino in used {
        s.push_str(&format!(
            "sif <{ino}> atime @{time}\nsif <{ino}> ctime @{time}\n"
        ));
    }
    fs::write(&script, &s).map_err(|e| Error::io(&script, e))?;
    let mut debugfs = Command::new(&tools.debugfs);
    env(&mut debugfs);
    debugfs.arg("-w").arg("-f").arg(&script).arg(img);
    let o = output(&mut debugfs)?;
    // debugfs exits 0 whatever its commands do; anything on stderr past its banner is a failure.
    let err = String::from_utf8_lossy(&o.stderr);
    let problems: Vec<&str> = err
        .lines()
        .filter(|l| !l.starts_with("debugfs ") && !l.trim().is_empty())
        .collect();
    if !o.status.success() || !problems.is_empty() {
        return Err(Error::io(
            out,
            io::Error::other(format!("debugfs failed: {}", problems.join("; "))),
        ));
    }
    File::open(img)
        .and_then(|f| f.sync_all())
        .map_err(|e| Error::io(out, e))
}

/// The inodes in use in a file system, from `dumpe2fs` output: the root (2) and every inode
/// from the first unreserved one that no group lists as free. `None` when the text is not
/// what dumpe2fs 1.4x prints.
fn used_inodes(listing: &str) -> Option<Vec<u64>> {
    let field = |name: &str| {
        listing
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    let count = field("Inode count:")?;
    let first = field("First inode:")?;
    let mut free = vec![false; count as usize + 1];
    let mut groups = 0;
    for l in listing.lines() {
        let Some(ranges) = l.strip_prefix("  Free inodes:") else {
            continue;
        };
        groups += 1;
        for r in ranges.split(',').map(str::trim).filter(|r| !r.is_empty()) {
            let (lo, hi) = match r.split_once('-') {
                Some((lo, hi)) => (lo.parse::<u64>().ok()?, hi.parse::<u64>().ok()?),
                None => (r.parse::<u64>().ok()?, r.parse::<u64>().ok()?),
            };
            if lo > hi || hi > count {
                return None;
            }
            for i in lo..=hi {
                free[i as usize] = true;
            }
        }
    }
    if groups == 0 {
        return None;
    }
    Some(
        std::iter::once(2)
            .chain((first..=count).filter(|&i| !free[i as usize]))
            .collect(),
    )
}

/// Copies the merged tree into `dst` (a new folder) with owners, modes, clamped mtimes, hard
/// links, device nodes and file capabilities, as `mkfs.ext4 -d` will read them. Needs root.
fn materialize(spec: &ExportSpec, merged: &[Merged], dst: &Path) -> Result<()> {
    fs::create_dir(dst).map_err(|e| Error::io(dst, e))?;
    let mut first: HashMap<(usize, u64, u64), PathBuf> = HashMap::new();
    let mut dirs = Vec::new();
    for m in merged {
        let src = layerfs::join_rel(&spec.layers[m.layer], &m.rel);
        let to = layerfs::join_rel(dst, &m.rel);
        let meta = &m.meta;
        let t = meta.file_type();
        let mode = meta.mode() & 0o7777;
        let e = |e: io::Error| Error::io(&to, e);
        if t.is_dir() {
            if !m.rel.is_empty() {
                fs::create_dir(&to).map_err(e)?;
            }
            set_owner_mode(&to, meta)?;
            dirs.push((to, clamp(meta, spec.mtime)));
            continue;
        }
        if t.is_socket() {
            continue; // tar cannot hold them either
        }
        if meta.nlink() > 1 {
            match first.entry((m.layer, meta.dev(), meta.ino())) {
                std::collections::hash_map::Entry::Occupied(o) => {
                    fs::hard_link(o.get(), &to).map_err(e)?;
                    continue;
                }
                std::collections::hash_map::Entry::Vacant(v) => {
                    v.insert(to.clone());
                }
            }
        }
        if t.is_file() {
            fs::copy(&src, &to).map_err(|err| Error::io(&src, err))?;
            set_owner_mode(&to, meta)?;
            for &x in KEPT_XATTRS {
                if let Some(v) = get_xattr(&src, x).map_err(|err| Error::io(&src, err))? {
                    set_xattr(&to, x, &v).map_err(e)?;
                }
            }
        } else if t.is_symlink() {
            let target = fs::read_link(&src).map_err(|err| Error::io(&src, err))?;
            std::os::unix::fs::symlink(&target, &to).map_err(e)?;
            std::os::unix::fs::lchown(&to, Some(meta.uid()), Some(meta.gid())).map_err(e)?;
        } else if t.is_char_device() || t.is_block_device() || t.is_fifo() {
            let kind = if t.is_char_device() {
                libc::S_IFCHR
            } else if t.is_block_device() {
                libc::S_IFBLK
            } else {
                libc::S_IFIFO
            };
            let c = cpath(&to)?;
            // SAFETY: a NUL-terminated path; mknod touches no memory of ours.
            if unsafe { libc::mknod(c.as_ptr(), kind | mode, meta.rdev()) } != 0 {
                return Err(e(io::Error::last_os_error()));
            }
            set_owner_mode(&to, meta)?;
        }
        set_mtime(&to, clamp(meta, spec.mtime))?;
    }
    // Folders last, deepest first: making their entries changed their mtimes.
    for (d, t) in dirs.iter().rev() {
        set_mtime(d, *t)?;
    }
    Ok(())
}

/// Owner, then mode: a change of owner clears setuid and setgid bits.
fn set_owner_mode(p: &Path, meta: &fs::Metadata) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::os::unix::fs::lchown(p, Some(meta.uid()), Some(meta.gid()))
        .map_err(|e| Error::io(p, e))?;
    fs::set_permissions(p, fs::Permissions::from_mode(meta.mode() & 0o7777))
        .map_err(|e| Error::io(p, e))
}

/// Sets atime and mtime of `p` (a symlink itself, not its target) to `t`.
fn set_mtime(p: &Path, t: u64) -> Result<()> {
    let c = cpath(p)?;
    let ts = libc::timespec {
        tv_sec: t as libc::time_t,
        tv_nsec: 0,
    };
    let times = [ts, ts];
    // SAFETY: a NUL-terminated path and a two-element array, as utimensat wants.
    let r = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(Error::io(p, io::Error::last_os_error()))
    }
}

fn cpath(p: &Path) -> Result<CString> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| Error::io(p, io::Error::other("a path with a NUL byte")))
}

/// Runs a tool with stdin closed and its output captured. It stays in layer's process group,
/// so that Ctrl-C stops it too, and is killed if layer dies.
fn output(cmd: &mut Command) -> Result<std::process::Output> {
    use std::os::unix::process::CommandExt;
    cmd.stdin(std::process::Stdio::null());
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    cmd.output()
        .map_err(|e| Error::io(Path::new(cmd.get_program()), e))
}

/// Runs a tool, failing with its stderr.
fn run(cmd: &mut Command, out: &Path) -> Result<()> {
    let prog = cmd.get_program().to_string_lossy().into_owned();
    let o = output(cmd)?;
    if o.status.success() {
        return Ok(());
    }
    let err = String::from_utf8_lossy(&o.stderr);
    Err(Error::io(
        out,
        io::Error::other(format!("`{prog}` failed ({}): {}", o.status, err.trim())),
    ))
}

// ---------------------------------------------------------------------------------------------
// Atomic output.

/// Refuses an `out` that cannot be written: a folder for a file format, a non-empty folder for
/// an OCI layout, or a path whose folder does not exist.
fn check_out(format: Format, out: &Path) -> Result<()> {
    let parent = parent_of(out);
    if !parent.is_dir() {
        return Err(Error::Usage {
            message: format!("`{}` does not exist", parent.display()),
            hint: Some("export into an existing folder".into()),
        });
    }
    let Ok(meta) = fs::symlink_metadata(out) else {
        return Ok(());
    };
    match format {
        Format::Oci => {
            let empty = meta.is_dir()
                && fs::read_dir(out)
                    .map_err(|e| Error::io(out, e))?
                    .next()
                    .is_none();
            if empty {
                Ok(())
            } else {
                Err(Error::Usage {
                    message: format!(
                        "`{}` exists{}",
                        out.display(),
                        if meta.is_dir() {
                            " and is not empty"
                        } else {
                            " and is not a folder"
                        }
                    ),
                    hint: Some(
                        "an OCI layout is written into a new or empty folder: remove it or \
                         choose another path"
                            .into(),
                    ),
                })
            }
        }
        _ if meta.is_dir() => Err(Error::Usage {
            message: format!("`{}` is a folder", out.display()),
            hint: Some(format!("a {format} export is a file: give a file path")),
        }),
        _ => Ok(()),
    }
}

/// `path` with `.suffix` added to its name.
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(".");
    s.push(suffix);
    PathBuf::from(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn formats_parse_and_print_their_names() {
        for f in Format::ALL {
            assert_eq!(f.to_string().parse::<Format>(), Ok(f));
        }
        assert_eq!(
            "zip".parse::<Format>().unwrap_err(),
            "unknown export format `zip`: expected tar, oci, raw or qcow2"
        );
    }

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

    fn rels(layers: &[PathBuf]) -> Vec<String> {
        merge(layers)
            .unwrap()
            .into_iter()
            .map(|m| String::from_utf8(m.rel).unwrap())
            .collect()
    }

    #[test]
    fn merging_applies_whiteouts_opaque_folders_and_replacements() {
        let d = tempfile::tempdir().unwrap();
        let (lo, up) = (d.path().join("lo"), d.path().join("up"));
        for p in ["a/x", "b/y", "c/z", "e/f", "g"] {
            let p = lo.join(p);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, "lower").unwrap();
        }
        fs::create_dir_all(up.join("b")).unwrap();
        fs::write(up.join("b/new"), "upper").unwrap();
        layerfs::set_opaque(&up.join("b")).unwrap();
        fs::create_dir_all(up.join("c")).unwrap();
        fs::write(up.join("c/w"), "upper").unwrap();
        fs::write(up.join("e"), "a file over a folder").unwrap();
        fs::create_dir(up.join("g")).unwrap();
        fs::write(up.join("g/h"), "a folder over a file").unwrap();
        fs::set_permissions(&up, fs::Permissions::from_mode(0o711)).unwrap();
        if layerfs::make_whiteout(&up.join("a")).is_err() {
            eprintln!("notice: mknod is not permitted; whiteouts are left out of this test");
        }
        let layers = [lo, up.clone()];
        let got = rels(&layers);
        let mut want = vec!["", "b", "b/new", "c", "c/w", "c/z", "e", "g", "g/h"];
        if layerfs::walk(&up).unwrap().iter().all(|n| !n.is_whiteout()) {
            want.splice(1..1, ["a", "a/x"]);
        }
        assert_eq!(got, want);
        let merged = merge(&layers).unwrap();
        assert_eq!(
            merged[0].meta.mode() & 0o7777,
            0o711,
            "the root is the top layer's"
        );
        let e = merged.iter().find(|m| m.rel == b"e").unwrap();
        assert!(e.meta.is_file() && e.layer == 1);
    }

    #[test]
    fn layers_with_overlayfs_metacopy_files_are_refused() {
        let d = tempfile::tempdir().unwrap();
        fs::write(d.path().join("f"), "").unwrap();
        set_xattr(&d.path().join("f"), "trusted.overlay.metacopy", b"").unwrap();
        let e = merge(&[d.path().to_path_buf()]).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "{}: layer uses overlayfs `trusted.overlay.metacopy`, which an export cannot \
                 follow; mount overlays with redirect_dir=off,metacopy=off",
                d.path().join("f").display()
            )
        );
    }

    #[test]
    fn sorting_is_by_path_bytes_with_parents_first() {
        let d = tempfile::tempdir().unwrap();
        for p in ["a/b", "a-c", "a.d/e"] {
            let p = d.path().join(p);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, "").unwrap();
        }
        assert_eq!(
            rels(&[d.path().to_path_buf()]),
            ["", "a", "a-c", "a.d", "a.d/e", "a/b"]
        );
    }

    #[test]
    fn derived_ids_are_uuids_fixed_by_image_and_version() {
        let tags = BTreeMap::new();
        let spec = |version| ExportSpec {
            layers: &[],
            layer_names: &[],
            image: "app",
            version,
            mtime: 0,
            tags: &tags,
        };
        let a = derived_uuid("uuid", &spec("1.0.0-20260101_0000"));
        assert_eq!(a, derived_uuid("uuid", &spec("1.0.0-20260101_0000")));
        assert_ne!(a, derived_uuid("uuid", &spec("1.0.1-20260101_0000")));
        assert_ne!(a, derived_uuid("hash_seed", &spec("1.0.0-20260101_0000")));
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
    }

    #[test]
    fn a_missing_tool_names_its_package() {
        let e = need("no-such-mkfs", "e2fsprogs", Format::Raw).unwrap_err();
        assert_eq!(
            e.to_string(),
            "`no-such-mkfs` is not installed: raw exports need it"
        );
        assert_eq!(
            e.hint().unwrap(),
            "install the Debian package `e2fsprogs`: apt-get install e2fsprogs"
        );
        assert_eq!(e.exit_code(), 2);
    }

    #[test]
    fn disk_images_need_root() {
        need_root(Format::Raw, 0).unwrap();
        let e = need_root(Format::Qcow2, 1000).unwrap_err();
        assert_eq!(
            e.to_string(),
            "qcow2 exports need root: they copy file owners and device nodes"
        );
        assert_eq!(
            e.hint().unwrap(),
            "run `layer export` as root, like `layer build`"
        );
    }

    #[test]
    fn specs_without_layers_or_names_for_them_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let tags = BTreeMap::new();
        let layers = [d.path().to_path_buf()];
        let names = ["origin".to_string(), "extra".to_string()];
        let spec = ExportSpec {
            layers: &[],
            layer_names: &[],
            image: "app",
            version: "1.0.0-20260101_0000",
            mtime: 0,
            tags: &tags,
        };
        let out = d.path().join("x.tar");
        let e = export(&spec, Format::Tar, &out).unwrap_err();
        assert_eq!(e.to_string(), "`app` has no layers to export");
        let spec = ExportSpec {
            layers: &layers,
            layer_names: &names,
            ..spec
        };
        let e = export(&spec, Format::Tar, &out).unwrap_err();
        assert_eq!(
            e.to_string(),
            "`app`: the numbers of layers (1) and layer names (2) differ"
        );
    }

    #[test]
    fn a_layer_that_is_not_a_folder_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("file");
        fs::write(&f, "").unwrap();
        let e = merge(std::slice::from_ref(&f)).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("{}: a layer must be a folder", f.display())
        );
    }

    #[test]
    fn names_reserved_for_oci_whiteouts_are_refused_in_oci_layers() {
        let d = tempfile::tempdir().unwrap();
        let layer = d.path().join("layer");
        fs::create_dir_all(layer.join("etc")).unwrap();
        fs::write(layer.join("etc/.wh.motd"), "").unwrap();
        let tags = BTreeMap::new();
        let spec = ExportSpec {
            layers: &[],
            layer_names: &[],
            image: "app",
            version: "1",
            mtime: 0,
            tags: &tags,
        };
        let e = write_layer_tar(&spec, &layer, &mut io::sink(), Path::new("out")).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "{}: names starting with `.wh.` cannot be stored in an OCI layer",
                layer.join("etc/.wh.motd").display()
            )
        );
    }

    #[test]
    fn outputs_that_cannot_be_written_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let full = d.path().join("full");
        fs::create_dir(&full).unwrap();
        fs::write(full.join("x"), "").unwrap();
        let e = check_out(Format::Oci, &full).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("`{}` exists and is not empty", full.display())
        );
        assert_eq!(
            e.hint().unwrap(),
            "an OCI layout is written into a new or empty folder: remove it or choose another path"
        );
        let e = check_out(Format::Tar, &full).unwrap_err();
        assert_eq!(e.to_string(), format!("`{}` is a folder", full.display()));
        assert_eq!(
            e.hint().unwrap(),
            "a tar export is a file: give a file path"
        );
        let e = check_out(Format::Raw, &d.path().join("nope/x.img")).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("`{}` does not exist", d.path().join("nope").display())
        );

        let empty = d.path().join("empty");
        fs::create_dir(&empty).unwrap();
        check_out(Format::Oci, &empty).unwrap();
        fs::write(d.path().join("old.tar"), "old").unwrap();
        check_out(Format::Tar, &d.path().join("old.tar")).unwrap();
        let file = d.path().join("old.tar");
        let e = check_out(Format::Oci, &file).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("`{}` exists and is not a folder", file.display())
        );
    }

    #[test]
    fn used_inodes_are_read_from_dumpe2fs_free_lists() {
        let listing = "Inode count:              40\nFirst inode:              11\n\
                       Free inodes:              25\n\
                       Group 0: (Blocks 0-32767)\n  Free inodes: 14-20, 22\n\
                       Group 1: (Blocks 32768-65535)\n  Free inodes: \n\
                       Group 2: (Blocks 65536-98303)\n  Free inodes: 30-40\n";
        assert_eq!(
            used_inodes(listing).unwrap(),
            [2, 11, 12, 13, 21, 23, 24, 25, 26, 27, 28, 29]
        );
        assert_eq!(used_inodes("Inode count: 40\nFirst inode: 11\n"), None);
        assert_eq!(
            used_inodes("Inode count: 4\nFirst inode: 11\n  Free inodes: 1-9\n"),
            None
        );
    }

    #[test]
    fn mtimes_are_clamped_to_the_build_time_and_never_negative() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        fs::write(&p, "").unwrap();
        set_mtime(&p, 2_000_000_000).unwrap();
        let m = fs::metadata(&p).unwrap();
        assert_eq!(clamp(&m, 1_000), 1_000);
        assert_eq!(clamp(&m, 3_000_000_000), 2_000_000_000);
        assert_eq!(clamp(&m, -5), 0);
    }
}
