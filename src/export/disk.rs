//! The `raw` and `qcow2` exports: an ext4 file system image made by `mkfs.ext4 -d` from a
//! copy of the merged tree, its times and root folder set by `debugfs`, and for qcow2 the raw
//! image converted by `qemu-img`. The UUID and directory hash seed are derived from the image
//! and version, so the same export gives the same bytes.

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{Error, Result};
use crate::fsutil::Remove;
use crate::layerfs::{merge, Merged};

use super::materialize::materialize;
use super::tar::clamp;
use super::tools::{output, run, Tools};
use super::{hex, ExportSpec};

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

/// Makes the qcow2 image of `spec` at `img` (a new file): a raw image beside it, converted by
/// `qemu-img convert`.
pub(super) fn write_qcow2(spec: &ExportSpec, tools: &Tools, img: &Path, out: &Path) -> Result<()> {
    let raw = sibling(img, "raw");
    let _guard = Remove::new(&raw);
    write_raw(spec, tools, &raw, out)?;
    let qemu_img = tools.qemu_img.as_ref().expect("found for qcow2");
    run(
        Command::new(qemu_img)
            .args(["convert", "-q", "-f", "raw", "-O", "qcow2"])
            .arg(&raw)
            .arg(img),
        out,
    )
}

/// Makes the ext4 image of `spec` at `img` (a new file): the merged tree is copied into a
/// folder beside it, `mkfs.ext4 -d` makes the file system from the copy, and `debugfs` sets the
/// times and the root folder's attributes that `mkfs.ext4` takes from the copy or the clock.
pub(super) fn write_raw(spec: &ExportSpec, tools: &Tools, img: &Path, out: &Path) -> Result<()> {
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
    use std::collections::BTreeMap;

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
}
