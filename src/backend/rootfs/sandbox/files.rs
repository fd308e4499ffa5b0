//! What the sandbox puts into a root: the package manager's install commands and a role's
//! `files/`, copied onto the root as a chroot would see them.

use std::ffi::CString;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use super::mounts::check;

/// The shell commands that install `names` with the root's own package manager; for apt,
/// after writing `sources` (if any) to `/etc/apt/sources.list.d/LIST`.
pub(super) fn install_script(
    root: &Path,
    names: &[String],
    sources: &[String],
    list_name: &str,
) -> io::Result<String> {
    let has = |paths: &[&str]| paths.iter().any(|p| root.join(p).exists());
    let list: Vec<String> = names
        .iter()
        .map(|n| crate::backend::bundle::sh_quote(n))
        .collect();
    let list = list.join(" ");
    if has(&["usr/bin/apt-get", "bin/apt-get"]) {
        let write_sources = if sources.is_empty() {
            String::new()
        } else {
            let lines: Vec<String> = sources
                .iter()
                .map(|l| crate::backend::bundle::sh_quote(l))
                .collect();
            format!(
                "printf '%s\\n' {} > /etc/apt/sources.list.d/{}; ",
                lines.join(" "),
                crate::backend::bundle::sh_quote(list_name)
            )
        };
        Ok(format!(
            "export DEBIAN_FRONTEND=noninteractive; set -e; {write_sources}\
             apt-get update -q -o Acquire::Languages=none; \
             apt-get install -y -q --no-install-recommends --allow-downgrades -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold {list}; \
             apt-get clean; rm -rf /var/lib/apt/lists/*"
        ))
    } else if has(&["sbin/apk", "usr/sbin/apk", "usr/bin/apk"]) {
        Ok(format!("set -e; apk add --no-cache {list}"))
    } else if has(&["usr/bin/dnf", "bin/dnf"]) {
        Ok(format!("set -e; dnf install -y {list}; dnf clean all"))
    } else {
        Err(io::Error::other(format!(
            "the image has no apt-get, apk or dnf to install {}: build it on an origin with a package manager, or drop `packages`",
            names.join(" ")
        )))
    }
}

/// Copies `/.layer/role/files` onto `/` inside `root`: in a child chrooted into the root, so
/// every path, symlinks included, resolves inside the image and never on the host.
pub(super) fn copy_files_into(root: &Path) -> io::Result<()> {
    let c_root = CString::new(root.as_os_str().as_bytes())?;
    // SAFETY: this process is single-threaded (it starts no thread), so the child may run
    // ordinary code after fork; it leaves only by `_exit`.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid == 0 {
        // SAFETY: chroot and chdir on NUL-terminated paths, in the child only.
        let code = unsafe {
            if libc::chroot(c_root.as_ptr()) != 0 || libc::chdir(c"/".as_ptr()) != 0 {
                1
            } else {
                match copy_tree_onto(Path::new("/.layer/role/files"), Path::new("/")) {
                    Ok(()) => 0,
                    Err(e) => {
                        eprintln!("layer: copying files/: {e}");
                        1
                    }
                }
            }
        };
        // SAFETY: ends the child without running the parent's destructors.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: waits for our own child.
    check(unsafe { libc::waitpid(pid, &mut status, 0) }, "waitpid")?;
    if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0 {
        Ok(())
    } else {
        Err(io::Error::other(
            "copying the role's files/ into the image failed",
        ))
    }
}

/// Copies the tree `from` onto `to`: files with their permission bits and owned by root,
/// symlinks as links; a folder that exists already (or a link to one, as `/lib -> usr/lib`)
/// is kept as it is, mode and owner included; a file or link in the way is replaced.
pub(super) fn copy_tree_onto(from: &Path, to: &Path) -> io::Result<()> {
    for entry in walkdir::WalkDir::new(from).min_depth(1).sort_by_file_name() {
        let entry = entry.map_err(io::Error::other)?;
        let rel = entry.path().strip_prefix(from).expect("below the root");
        let target = to.join(rel);
        let meta = entry.path().symlink_metadata()?;
        let ft = meta.file_type();
        if ft.is_dir() {
            if target.is_dir() {
                continue;
            }
            remove_non_dir(&target)?;
            fs::create_dir(&target)?;
            fs::set_permissions(&target, fs::Permissions::from_mode(meta.mode() & 0o7777))?;
            std::os::unix::fs::lchown(&target, Some(0), Some(0))?;
        } else if ft.is_symlink() {
            remove_non_dir(&target)?;
            std::os::unix::fs::symlink(fs::read_link(entry.path())?, &target)?;
            std::os::unix::fs::lchown(&target, Some(0), Some(0))?;
        } else if ft.is_file() {
            remove_non_dir(&target)?;
            fs::copy(entry.path(), &target)?;
            std::os::unix::fs::lchown(&target, Some(0), Some(0))?;
            fs::set_permissions(&target, fs::Permissions::from_mode(meta.mode() & 0o7777))?;
        }
    }
    Ok(())
}

pub(super) fn remove_non_dir(p: &Path) -> io::Result<()> {
    match fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => Err(io::Error::other(format!(
            "{}: a folder in the image where the role has a file",
            p.display()
        ))),
        Ok(_) => fs::remove_file(p),
        Err(_) => Ok(()),
    }
}
