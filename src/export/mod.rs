//! `layer export`: an image's stack of layers written out as a tar archive, an OCI image
//! layout, or a raw or qcow2 ext4 disk image.
//!
//! An image on the host is a stack of folders, bottom first: the origin's root filesystem, then
//! one layer per image of its chain (deep) or the image's own layer (shallow). A layer is an
//! overlayfs upper directory (see [`crate::layerfs`]): whiteouts delete, opaque folders hide
//! what is below them. [`layerfs::merge`](crate::layerfs::merge) computes the tree a mount of
//! the stack would show, by walking the layers, without mounting anything.
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
//! the end, by [`crate::fsutil`]'s `atomic_file` and `atomic_dir` (the crate's one atomic
//! writer); on failure nothing is left at `out` (an existing file there is untouched). Like
//! `docker save -o`, a file at `out` is replaced; an OCI layout is written into a new or empty
//! folder only, never into a non-empty one.
//!
//! Not exported: extended attributes other than `security.capability` (ACLs, `SELinux` labels)
//! and sockets, which tar cannot hold.
//!
//! The parts, each using only those listed before it:
//!
//! | part | what it holds |
//! |---|---|
//! | `tar` | the hand-written PAX tar writer, archive items, mtime clamping; the `tar` export |
//! | `oci` | the `oci` export: layer blobs with `.wh.` whiteouts, config, manifest, index |
//! | `tools` | finding `mkfs.ext4`, `dumpe2fs`, `debugfs` and `qemu-img`; the root check; running them |
//! | `materialize` | the merged tree copied into a folder for `mkfs.ext4 -d` |
//! | `disk` | the `raw` and `qcow2` exports: ext4 images, derived UUIDs, inode counts |
//!
//! This file holds what every format shares: [`Format`], [`ExportSpec`], [`export`] and the
//! checks of the output path.

mod tar;
mod oci;
mod tools;
mod materialize;
mod disk;

pub use oci::oci_arch;
pub use tar::write_layer_tar;

use std::collections::BTreeMap;
use std::fmt;
use std::fs::{self, File};
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::error::{Error, ErrorKind, Result};
use crate::fsutil::{atomic_dir, atomic_file, parent_of};
use crate::layerfs::merge;

use self::disk::{write_qcow2, write_raw};
use self::oci::write_oci;
use self::tar::write_merged_tar;
use self::tools::{need_root, Tools};

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
    /// The record's tags: OCI labels and manifest annotations. The caller leaves out those
    /// that change after the build ([`crate::release::MUTABLE_TAGS`]): the bytes of an export
    /// must not depend on a release status.
    pub tags: &'a BTreeMap<String, String>,
}

/// Writes the image described by `spec` to `out` in `format`.
pub fn export(spec: &ExportSpec, format: Format, out: &Path) -> Result<()> {
    check_spec(spec)?;
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
            need_root(format, rustix::process::geteuid().as_raw())?;
            atomic_file(out, |tmp| write_raw(spec, &tools, tmp, out))
        }
        Format::Qcow2 => {
            let tools = Tools::find(format)?;
            need_root(format, rustix::process::geteuid().as_raw())?;
            atomic_file(out, |tmp| write_qcow2(spec, &tools, tmp, out))
        }
    }
}

/// The `tar` export written to a stream (`-o -`: standard output), the same bytes as the file
/// [`export`] writes. Only `tar` streams: a layout is a folder, a disk image is written in
/// place by the tools that make it.
pub fn export_tar_to(spec: &ExportSpec, w: &mut impl std::io::Write) -> Result<()> {
    check_spec(spec)?;
    let merged = merge(spec.layers)?;
    let name = Path::new("-");
    let mut w = BufWriter::with_capacity(1 << 20, w);
    write_merged_tar(spec, &merged, &mut w, name)?;
    std::io::Write::flush(&mut w).map_err(|e| Error::io(name, e))
}

/// The spec has layers, and a name for each.
fn check_spec(spec: &ExportSpec) -> Result<()> {
    if spec.layers.is_empty() {
        return Err(Error::usage(
            ErrorKind::NothingToExport,
            format!("`{}` has no layers to export", spec.image),
        ));
    }
    if spec.layers.len() != spec.layer_names.len() {
        return Err(Error::usage(
            ErrorKind::NothingToExport,
            format!(
                "`{}`: the numbers of layers ({}) and layer names ({}) differ",
                spec.image,
                spec.layers.len(),
                spec.layer_names.len()
            ),
        ));
    }
    Ok(())
}

/// Refuses an `out` that cannot be written: a folder for a file format, a non-empty folder for
/// an OCI layout, or a path whose folder does not exist.
fn check_out(format: Format, out: &Path) -> Result<()> {
    let parent = parent_of(out);
    if !parent.is_dir() {
        return Err(Error::Usage {
            kind: ErrorKind::ExportOutput,
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
                    kind: ErrorKind::ExportOutput,
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
            kind: ErrorKind::ExportOutput,
            message: format!("`{}` is a folder", out.display()),
            hint: Some(format!("a {format} export is a file: give a file path")),
        }),
        _ => Ok(()),
    }
}

/// `bytes` as lowercase hex: blob names and derived UUIDs.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
