//! What some tests need of the machine: root, a static busybox, `packer`, `skopeo`, e2fsprogs,
//! `qemu-img`. The README's test command installs all of it.
//!
//! Each need is looked for twice, by this one file:
//!
//! - At build time: the crate's `build.rs` includes this file and sets `cfg(missing = "NAME")`
//!   for each need the machine lacks, and a test that has it declares
//!   `#[cfg_attr(missing = "NAME", ignore = "needs ...")]`, so `cargo test` lists it as
//!   `ignored, needs ...` rather than passing it without checking anything. Under `CI` (set
//!   to anything but `false` or empty) nothing is ignored: a missing need is a failure there.
//! - At run time: the test's first line, [`check`], fails it with the same reason when a need
//!   is missing, which is how a run under `CI` (or a build older than an uninstall) says why.
//!
//! Standard library only: `build.rs` compiles this file too.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Something a test needs of the machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Need {
    /// Mounts, chroot, namespaces, owners and device nodes.
    Root,
    /// A static busybox at `/bin/busybox` or `/usr/bin/busybox`: the origin of real builds.
    Busybox,
    /// Debian's `packer`, for the `packer` backend.
    Packer,
    /// `skopeo`, to read OCI layouts back.
    Skopeo,
    /// `mkfs.ext4`, `debugfs` and `e2fsck`, for raw disk exports.
    E2fsprogs,
    /// `qemu-img`, for qcow2 exports.
    QemuImg,
    /// `python3` with `venv`, for the S3 server of the remote tests (`moto`, from the Python package index).
    Python3,
    /// `mmdebstrap` and `dpkg-deb`, for `debian` origins (made from the machine's own Debian
    /// mirror) and real Debian builds.
    Mmdebstrap,
    /// `apt-ftparchive` and `dpkg-deb`, for the apt repositories tests make.
    AptFtparchive,
    /// `rpm` and `rpmbuild`, for rpm databases made here and rpm's version order.
    Rpm,
}

impl Need {
    /// Every need, in the order `build.rs` declares them.
    #[allow(dead_code)] // build.rs's
    pub(crate) const ALL: [Need; 10] = [
        Need::Root,
        Need::Busybox,
        Need::Packer,
        Need::Skopeo,
        Need::E2fsprogs,
        Need::QemuImg,
        Need::Python3,
        Need::Mmdebstrap,
        Need::AptFtparchive,
        Need::Rpm,
    ];

    /// The value of `cfg(missing = ...)` that says this need is not met.
    #[allow(dead_code)] // build.rs's
    pub(crate) fn cfg(self) -> &'static str {
        match self {
            Need::Root => "root",
            Need::Busybox => "busybox",
            Need::Packer => "packer",
            Need::Skopeo => "skopeo",
            Need::E2fsprogs => "e2fsprogs",
            Need::QemuImg => "qemu-img",
            Need::Python3 => "python3",
            Need::Mmdebstrap => "mmdebstrap",
            Need::AptFtparchive => "apt-ftparchive",
            Need::Rpm => "rpm",
        }
    }

    /// What is missing and how to get it.
    pub(crate) fn reason(self) -> &'static str {
        match self {
            Need::Root => "needs root (mounts, chroot, owners, device nodes)",
            Need::Busybox => "needs a static busybox: apt-get install busybox-static",
            Need::Packer => "needs `packer`: apt-get install packer",
            Need::Skopeo => "needs `skopeo`: apt-get install skopeo",
            Need::E2fsprogs => "needs `mkfs.ext4`, `debugfs`, `e2fsck`: apt-get install e2fsprogs",
            Need::QemuImg => "needs `qemu-img`: apt-get install qemu-utils",
            Need::Python3 => "needs `python3` with `venv`: apt-get install python3-venv",
            Need::Mmdebstrap => "needs `mmdebstrap` and `dpkg-deb`: apt-get install mmdebstrap",
            Need::AptFtparchive => {
                "needs `apt-ftparchive` (and dpkg's `dpkg-deb`): apt-get install apt-utils"
            }
            Need::Rpm => "needs `rpm` and `rpmbuild`: apt-get install rpm",
        }
    }

    /// Whether this machine meets the need, now.
    pub(crate) fn is_met(self) -> bool {
        match self {
            // The owner of `/proc/self` is the process's effective user.
            Need::Root => fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0),
            Need::Busybox => busybox().is_some(),
            Need::Packer => tool("packer").is_some(),
            Need::Skopeo => tool("skopeo").is_some(),
            Need::E2fsprogs => ["mkfs.ext4", "debugfs", "e2fsck"]
                .iter()
                .all(|t| tool(t).is_some()),
            Need::QemuImg => tool("qemu-img").is_some(),
            Need::Python3 => tool("python3").is_some(),
            Need::Mmdebstrap => tool("mmdebstrap").is_some() && tool("dpkg-deb").is_some(),
            Need::AptFtparchive => tool("apt-ftparchive").is_some() && tool("dpkg-deb").is_some(),
            Need::Rpm => tool("rpm").is_some() && tool("rpmbuild").is_some(),
        }
    }
}

/// Fails the calling test, with the reason, unless the machine meets every need in `needs`.
#[track_caller]
pub(crate) fn check(needs: &[Need]) {
    let missing: Vec<&str> = needs
        .iter()
        .filter(|n| !n.is_met())
        .map(|n| n.reason())
        .collect();
    assert!(
        missing.is_empty(),
        "this test {}{}",
        missing.join("; and "),
        if in_ci() {
            " (CI is set, so a missing tool fails the test instead of ignoring it)"
        } else {
            ""
        }
    );
}

/// Whether this is a CI run: `CI` set to anything but empty or `false`.
pub(crate) fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false")
}

/// The static busybox real builds start from.
pub(crate) fn busybox() -> Option<PathBuf> {
    ["/bin/busybox", "/usr/bin/busybox"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
}

/// The folders of `PATH`, where tests and `layer` look for tools.
pub(crate) fn path_folders() -> Vec<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).collect()
}

/// The executable `name` in one of [`path_folders`].
pub(crate) fn tool(name: &str) -> Option<PathBuf> {
    path_folders()
        .iter()
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    fs::metadata(p).is_ok_and(|m| m.is_file() && m.mode() & 0o111 != 0)
}
