//! The sandbox's system calls: private namespaces, mounts and unmounts, overlay options,
//! loopback up; and the probe of whether overlayfs works here. The only code that mounts.

use std::ffi::CString;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Enters new namespaces (`flags` holds `CLONE_NEWNS`) and makes every mount private, so that
/// nothing mounted from here on is seen outside. Only for a process that has started no
/// thread (the sandbox, the probe).
pub(super) fn enter_private_mount_namespace(flags: libc::c_int) -> io::Result<()> {
    // SAFETY: unshare(2) with namespace flags, in a single-threaded process.
    check(unsafe { libc::unshare(flags) }, "unshare")?;
    make_mounts_private()
}

/// Makes every mount of this mount namespace private (recursively), so that what is mounted
/// or unmounted from here on is not seen outside, nor propagated in.
pub(super) fn make_mounts_private() -> io::Result<()> {
    mount(
        None,
        Path::new("/"),
        None,
        libc::MS_REC | libc::MS_PRIVATE,
        None,
    )
}

/// The options of an overlay of `lower` (top first) under `upper`. No redirects or
/// metadata-only copy-ups: a layer must hold whole files and real folders, so that it stacks
/// anywhere and exports as it is.
pub(super) fn overlay_options(lower: &[PathBuf], upper: &Path, work: &Path) -> String {
    let lower: Vec<String> = lower
        .iter()
        .map(|p| escape_overlay(&p.display().to_string()))
        .collect();
    format!(
        "lowerdir={},upperdir={},workdir={},redirect_dir=off,metacopy=off",
        lower.join(":"),
        escape_overlay(&upper.display().to_string()),
        escape_overlay(&work.display().to_string())
    )
}

/// Escapes `:`, `,` and `\` in an overlay mount option value.
pub(super) fn escape_overlay(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, ':' | ',' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

pub(super) fn check(r: libc::c_int, what: &str) -> io::Result<()> {
    if r < 0 {
        let e = io::Error::last_os_error();
        Err(io::Error::new(e.kind(), format!("{what}: {e}")))
    } else {
        Ok(())
    }
}

pub fn mount(
    src: Option<&str>,
    target: &Path,
    fstype: Option<&str>,
    flags: libc::c_ulong,
    data: Option<&str>,
) -> io::Result<()> {
    let c = |s: &str| CString::new(s).map_err(io::Error::other);
    let src = src.map(c).transpose()?;
    let fstype = fstype.map(c).transpose()?;
    let data = data.map(c).transpose()?;
    let t = CString::new(target.as_os_str().as_bytes())?;
    // SAFETY: NUL-terminated strings or null pointers, as mount(2) takes them.
    let r = unsafe {
        libc::mount(
            src.as_ref().map_or(std::ptr::null(), |s| s.as_ptr()),
            t.as_ptr(),
            fstype.as_ref().map_or(std::ptr::null(), |s| s.as_ptr()),
            flags,
            data.as_ref()
                .map_or(std::ptr::null(), |s| s.as_ptr().cast()),
        )
    };
    if r == 0 {
        Ok(())
    } else {
        let e = io::Error::last_os_error();
        Err(io::Error::new(
            e.kind(),
            format!(
                "mounting {} on {}: {e}",
                fstype
                    .as_ref()
                    .map(|f| f.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "a bind mount".into()),
                target.display()
            ),
        ))
    }
}

pub(super) fn umount(target: &Path) -> io::Result<()> {
    let t = CString::new(target.as_os_str().as_bytes())?;
    // SAFETY: a NUL-terminated path.
    let r = unsafe { libc::umount2(t.as_ptr(), libc::MNT_DETACH) };
    if r == 0 {
        Ok(())
    } else {
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::EINVAL) {
            return Ok(()); // not mounted
        }
        Err(io::Error::new(
            e.kind(),
            format!("unmounting {}: {e}", target.display()),
        ))
    }
}

/// Brings the loopback interface of a new network namespace up.
pub(super) fn loopback_up() -> io::Result<()> {
    // SAFETY: a socket for the ioctl, closed below; the ifreq is zeroed and its name set.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut ifr: libc::ifreq = std::mem::zeroed();
        for (i, b) in b"lo".iter().enumerate() {
            ifr.ifr_name[i] = *b as libc::c_char;
        }
        let mut r = libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut ifr);
        if r == 0 {
            ifr.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
            r = libc::ioctl(fd, libc::SIOCSIFFLAGS, &ifr);
        }
        let e = io::Error::last_os_error();
        libc::close(fd);
        if r != 0 {
            return Err(io::Error::new(
                e.kind(),
                format!("bringing up loopback: {e}"),
            ));
        }
    }
    Ok(())
}

/// Whether overlayfs can be mounted with an upper directory in `dir` (a folder on the cache's
/// filesystem); runs in a throwaway mount namespace.
pub fn overlay_works(dir: &Path) -> io::Result<()> {
    for d in ["lower", "upper", "work", "merged"] {
        fs::create_dir_all(dir.join(d))?;
    }
    let data = overlay_options(&[dir.join("lower")], &dir.join("upper"), &dir.join("work"));
    enter_private_mount_namespace(libc::CLONE_NEWNS)?;
    mount(
        Some("layer"),
        &dir.join("merged"),
        Some("overlay"),
        0,
        Some(&data),
    )?;
    umount(&dir.join("merged"))
}
