//! The confinement of one command in the image (`layer __sandbox --enter ROOT CMD...`), run
//! as pid 1 of the pid and mount namespaces `unshare` made for it, just before it becomes the
//! command: what Docker's default gives a container, so that a provisioner cannot change its
//! own inputs or the host.
//!
//! - `pivot_root` into the image, the old root unmounted (detached): no path, open folder or
//!   `chroot` trick leads back to the host's files;
//! - `/proc/sys`, `/proc/sysrq-trigger`, `/proc/irq` and `/proc/bus` read-only (`/sys` is
//!   mounted read-only by the sandbox), and `/proc/kcore` hidden;
//! - the capability bounding, permitted, effective, inheritable and ambient sets cut to
//!   Docker's default ([`KEPT`]): no `CAP_SYS_ADMIN` (mounts), `CAP_SYS_MODULE`,
//!   `CAP_SYS_RAWIO`, `CAP_SYS_PTRACE`, `CAP_SYS_TIME`, `CAP_NET_ADMIN`, ...;
//! - `no_new_privs`: no set-user-id or file capability gives any of them back;
//! - a seccomp filter refusing (`EPERM`) the system calls that mount, load kernel code, trace
//!   or enter namespaces ([`DENIED`]), and `clone` with namespace flags.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use super::mounts::{check, make_mounts_private, mount};

/// The capabilities Docker leaves a container by default (moby's `DefaultCapabilities`).
const KEPT: &[u32] = &[
    0,  // CAP_CHOWN
    1,  // CAP_DAC_OVERRIDE
    3,  // CAP_FOWNER
    4,  // CAP_FSETID
    5,  // CAP_KILL
    6,  // CAP_SETGID
    7,  // CAP_SETUID
    8,  // CAP_SETPCAP
    10, // CAP_NET_BIND_SERVICE
    13, // CAP_NET_RAW
    18, // CAP_SYS_CHROOT
    27, // CAP_MKNOD
    29, // CAP_AUDIT_WRITE
    31, // CAP_SETFCAP
];

/// System calls refused with `EPERM`: mounts and the new mount API, namespaces, kernel code
/// and keys, tracing, swap, reboot, handles that reach files by number.
const DENIED: &[libc::c_long] = &[
    libc::SYS_mount,
    libc::SYS_umount2,
    libc::SYS_pivot_root,
    libc::SYS_open_tree,
    libc::SYS_move_mount,
    libc::SYS_fsopen,
    libc::SYS_fsconfig,
    libc::SYS_fsmount,
    libc::SYS_fspick,
    libc::SYS_mount_setattr,
    libc::SYS_unshare,
    libc::SYS_setns,
    libc::SYS_kexec_load,
    libc::SYS_kexec_file_load,
    libc::SYS_init_module,
    libc::SYS_finit_module,
    libc::SYS_delete_module,
    libc::SYS_bpf,
    libc::SYS_ptrace,
    libc::SYS_process_vm_readv,
    libc::SYS_process_vm_writev,
    libc::SYS_perf_event_open,
    libc::SYS_userfaultfd,
    libc::SYS_keyctl,
    libc::SYS_add_key,
    libc::SYS_request_key,
    libc::SYS_swapon,
    libc::SYS_swapoff,
    libc::SYS_reboot,
    libc::SYS_open_by_handle_at,
    libc::SYS_name_to_handle_at,
    libc::SYS_acct,
    libc::SYS_settimeofday,
    libc::SYS_clock_settime,
    libc::SYS_clock_adjtime,
    libc::SYS_adjtimex,
];

/// `clone` flags that make namespaces: refused as `unshare` is.
const NAMESPACE_FLAGS: u32 = (libc::CLONE_NEWNS
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWCGROUP) as u32;

#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xC000_003E;
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xC000_00B7;

/// Confines this process in `root` and becomes `argv`; returns only on failure.
pub(super) fn enter(root: &Path, argv: &[String]) -> io::Error {
    match confine(root) {
        Ok(()) => match argv.split_first() {
            Some((program, args)) => Command::new(program).args(args).exec(),
            None => io::Error::other("no command to run"),
        },
        Err(e) => e,
    }
}

fn confine(root: &Path) -> io::Result<()> {
    pivot_into(root)?;
    read_only_proc()?;
    drop_capabilities()?;
    // SAFETY: prctl with integer arguments.
    let r = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
    check(r, "no_new_privs")?;
    install_filter()
}

/// Makes `root` the root of this mount namespace and detaches the old one.
fn pivot_into(root: &Path) -> io::Result<()> {
    make_mounts_private()?;
    // pivot_root needs a mount point: the root bound onto itself, with what is mounted below
    // it (its /proc, /dev, /sys, /tmp, /run and the read-only role folder).
    let r = root.display().to_string();
    mount(Some(&r), root, None, libc::MS_BIND | libc::MS_REC, None)?;
    std::env::set_current_dir(root)?;
    let dot = CString::new(".").expect("no NUL");
    // SAFETY: pivot_root(".", ".") with valid C strings: the old root is stacked under the new
    // one at `/`, and unmounted next (pivot_root(2), "NOTES").
    let r = unsafe { libc::syscall(libc::SYS_pivot_root, dot.as_ptr(), dot.as_ptr()) };
    check(r as libc::c_int, "pivot_root")?;
    // SAFETY: umount2 of a valid C string.
    let r = unsafe { libc::umount2(dot.as_ptr(), libc::MNT_DETACH) };
    check(r, "detaching the host's root")?;
    std::env::set_current_dir("/")
}

/// The kernel's knobs in `/proc` read-only, `/proc/kcore` hidden, as Docker has them.
fn read_only_proc() -> io::Result<()> {
    for p in ["/proc/sys", "/proc/sysrq-trigger", "/proc/irq", "/proc/bus"] {
        let path = Path::new(p);
        if path.exists() {
            mount(Some(p), path, None, libc::MS_BIND | libc::MS_REC, None)?;
            mount(
                None,
                path,
                None,
                libc::MS_BIND
                    | libc::MS_REMOUNT
                    | libc::MS_RDONLY
                    | libc::MS_NOSUID
                    | libc::MS_NODEV
                    | libc::MS_NOEXEC,
                None,
            )?;
        }
    }
    if Path::new("/proc/kcore").exists() && Path::new("/dev/null").exists() {
        mount(
            Some("/dev/null"),
            Path::new("/proc/kcore"),
            None,
            libc::MS_BIND,
            None,
        )?;
    }
    Ok(())
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Default, Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// Cuts every capability set to [`KEPT`]: the bounding set (so no exec regains one), then
/// the ambient, permitted, effective and inheritable sets.
fn drop_capabilities() -> io::Result<()> {
    let last: u32 = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40);
    for cap in (0..=last).filter(|c| !KEPT.contains(c)) {
        // SAFETY: prctl with integer arguments.
        let r = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) };
        check(r, "dropping capabilities from the bounding set")?;
    }
    let clear = libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong;
    // SAFETY: prctl with integer arguments.
    let r = unsafe { libc::prctl(libc::PR_CAP_AMBIENT, clear, 0, 0, 0) };
    check(r, "clearing ambient capabilities")?;
    let mut mask = [0u32; 2];
    for &c in KEPT {
        mask[(c / 32) as usize] |= 1 << (c % 32);
    }
    let mut header = CapHeader {
        version: 0x2008_0522, // _LINUX_CAPABILITY_VERSION_3
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: capget fills two `CapData` for version 3, the size given by `data`.
    let r = unsafe { libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) };
    check(r as libc::c_int, "capget")?;
    for (d, m) in data.iter_mut().zip(mask) {
        d.effective &= m;
        d.permitted &= m;
        d.inheritable &= m;
    }
    // SAFETY: capset reads the header and two `CapData`, as capget wrote them.
    let r = unsafe { libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()) };
    check(r as libc::c_int, "capset")
}

/// One classic BPF instruction.
fn op(code: u16, jt: u8, jf: u8, k: u32) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

/// `BPF_LD | BPF_W | BPF_ABS` (`BPF_LD` and `BPF_W` are 0).
const BPF_LD_W_ABS: u16 = 0x20;
const BPF_JEQ_K: u16 = 0x05 | 0x10;
const BPF_JSET_K: u16 = 0x05 | 0x40;
const BPF_JGE_K: u16 = 0x05 | 0x30;
const BPF_RET_K: u16 = 0x06;

/// The filter: another architecture's calls are killed, x32 calls refused, [`DENIED`] and
/// namespace-making `clone` refused with `EPERM`, `clone3` with `ENOSYS` (its flags are behind
/// a pointer; C libraries then fall back to `clone`), everything else allowed.
fn filter() -> Vec<libc::sock_filter> {
    let errno = |e: i32| libc::SECCOMP_RET_ERRNO | (e as u32 & libc::SECCOMP_RET_DATA);
    let mut f = vec![
        op(BPF_LD_W_ABS, 0, 0, 4), // arch
        op(BPF_JEQ_K, 1, 0, AUDIT_ARCH),
        op(BPF_RET_K, 0, 0, libc::SECCOMP_RET_KILL_PROCESS),
        op(BPF_LD_W_ABS, 0, 0, 0), // nr
        op(BPF_JGE_K, 0, 1, 0x4000_0000),
        op(BPF_RET_K, 0, 0, errno(libc::EPERM)),
    ];
    for &nr in DENIED {
        f.push(op(BPF_JEQ_K, 0, 1, nr as u32));
        f.push(op(BPF_RET_K, 0, 0, errno(libc::EPERM)));
    }
    f.push(op(BPF_JEQ_K, 0, 1, libc::SYS_clone3 as u32));
    f.push(op(BPF_RET_K, 0, 0, errno(libc::ENOSYS)));
    // clone: its flags are the first argument on x86_64 and aarch64.
    f.push(op(BPF_JEQ_K, 0, 3, libc::SYS_clone as u32));
    f.push(op(BPF_LD_W_ABS, 0, 0, 16)); // args[0], low half
    f.push(op(BPF_JSET_K, 0, 1, NAMESPACE_FLAGS));
    f.push(op(BPF_RET_K, 0, 0, errno(libc::EPERM)));
    f.push(op(BPF_RET_K, 0, 0, libc::SECCOMP_RET_ALLOW));
    f
}

fn install_filter() -> io::Result<()> {
    let mut f = filter();
    let prog = libc::sock_fprog {
        len: u16::try_from(f.len()).expect("a short filter"),
        filter: f.as_mut_ptr(),
    };
    // SAFETY: the program points at `f`, alive for the call; the kernel copies it.
    let r = unsafe {
        libc::prctl(
            libc::PR_SET_SECCOMP,
            libc::SECCOMP_MODE_FILTER as libc::c_ulong,
            &prog as *const libc::sock_fprog,
            0,
            0,
        )
    };
    check(r, "installing the seccomp filter")
}

/// `ROOT CMD...` of `layer __sandbox --enter`, as a path and the command.
pub(super) fn parse(args: &[String]) -> Option<(&Path, &[String])> {
    let (root, argv) = args.split_first()?;
    let root = Path::new(std::ffi::OsStr::from_bytes(root.as_bytes()));
    Some((root, argv))
}
