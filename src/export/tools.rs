//! The host tools disk images are made with (`mkfs.ext4`, `dumpe2fs`, `debugfs` from
//! e2fsprogs; `qemu-img` for qcow2): finding them, with the Debian package to install when one
//! is missing, the root check, and running them in layer's process group.

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{Error, ErrorKind, Result};

use super::Format;

/// The host tools disk images need.
#[derive(Debug)]
pub(super) struct Tools {
    pub(super) mkfs: PathBuf,
    pub(super) dumpe2fs: PathBuf,
    pub(super) debugfs: PathBuf,
    /// Found for qcow2 exports only.
    pub(super) qemu_img: Option<PathBuf>,
}

impl Tools {
    /// The tools a `format` export needs, or an error naming the first one missing.
    pub(super) fn find(format: Format) -> Result<Tools> {
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
pub(super) fn need_root(format: Format, euid: u32) -> Result<()> {
    if euid == 0 {
        return Ok(());
    }
    Err(Error::Usage {
        kind: ErrorKind::NeedsRoot,
        message: format!("{format} exports need root: they copy file owners and device nodes"),
        hint: Some("run `layer export` as root, like `layer build`".into()),
    })
}

/// The path of `tool`, or an error naming the Debian package that has it.
fn need(tool: &str, package: &str, format: Format) -> Result<PathBuf> {
    find_tool(tool).ok_or_else(|| Error::Usage {
        kind: ErrorKind::ToolMissing,
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

/// Runs a tool with stdin closed and its output captured. It stays in layer's process group,
/// so that Ctrl-C stops it too, and is killed if layer dies.
pub(super) fn output(cmd: &mut Command) -> Result<std::process::Output> {
    cmd.stdin(std::process::Stdio::null());
    crate::process::dies_with_layer(cmd);
    cmd.output()
        .map_err(|e| Error::io(Path::new(cmd.get_program()), e))
}

/// Runs a tool, failing with its stderr.
pub(super) fn run(cmd: &mut Command, out: &Path) -> Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
