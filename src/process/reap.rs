//! The reaper's own work, in a single-threaded process of its own (`layer __reap`, or a child
//! the reaper server forked): start the program, wait for it, and kill whatever it left.
//!
//! Signals are blocked and taken with `sigtimedwait`, so none is lost between two waits and
//! no handler state is inherited by a forked child; a program gets an empty mask back when it
//! execs (`std::process::Command` resets it).

use std::collections::BTreeMap;
use std::io::Write;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::process::{Command, Stdio};
use std::time::Duration;

use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::process::{getpgrp, getpid, getppid, kill_process, wait, Pid, Signal, WaitOptions};

use super::Reaped;

/// The signals a reaper waits for.
const SIGNALS: [i32; 4] = [libc::SIGCHLD, libc::SIGHUP, libc::SIGINT, libc::SIGTERM];

/// How long a reaper waits for a signal before it looks at its parent anyway.
const TICK: Duration = Duration::from_secs(1);

/// The blocked set of [`SIGNALS`].
pub(super) struct Blocked(libc::sigset_t);

/// Blocks [`SIGNALS`] in this (single-threaded) process and its future children.
pub(super) fn block_signals() -> Blocked {
    // SAFETY: a zeroed `sigset_t` is a valid value to fill; the calls only write the set and
    // this thread's mask (the process has no other thread).
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in SIGNALS {
            libc::sigaddset(&mut set, s);
        }
        libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        Blocked(set)
    }
}

impl Blocked {
    /// The next of the blocked signals, or `None` after [`TICK`] without one.
    fn next(&self) -> Option<i32> {
        let ts = libc::timespec {
            tv_sec: TICK.as_secs() as libc::time_t,
            tv_nsec: 0,
        };
        // SAFETY: both pointers are to live values; the info pointer may be null.
        let sig = unsafe { libc::sigtimedwait(&self.0, std::ptr::null_mut(), &ts) };
        (sig > 0).then_some(sig)
    }

    /// Unblocks them again (before raising one on purpose).
    fn unblock(&self) {
        // SAFETY: only this thread's signal mask changes.
        unsafe {
            libc::sigprocmask(libc::SIG_UNBLOCK, &self.0, std::ptr::null_mut());
        }
    }
}

/// How a supervised program ended.
pub(super) enum End {
    /// It exited: its raw wait status (`WEXITSTATUS`/`WTERMSIG` apply).
    Status(i32),
    /// The process watched as layer's side died first; the tree is killed.
    ParentGone,
}

/// The raw wait status of a program that exited with `code`.
pub(super) fn exited(code: i32) -> i32 {
    (code & 0xff) << 8
}

/// Whether the process whose pid is `parent` is still this one's parent.
fn parent_alive(parent: i32) -> bool {
    getppid().map_or(0, |p| p.as_raw_nonzero().get()) == parent
}

/// Where a reaper stands, and so how it watches layer and takes its tree down.
pub(super) enum Stand<'a> {
    /// A child subreaper that watches its parent, `parent` (what a build gets without
    /// `CAP_SYS_ADMIN`, and `layer __reap`).
    Subreaper { parent: i32 },
    /// Pid 1 of the build's own pid namespace: every process the build leaves is its child,
    /// and dies with it. Its parent is outside the namespace (`getppid` says 0), so it watches
    /// layer through `layer`, its end of the build's socket, which layer never writes to after
    /// the request: readable or hung up means layer is gone.
    Init { layer: BorrowedFd<'a> },
}

impl Stand<'_> {
    /// Whether layer's side is still there.
    fn layer_alive(&self) -> bool {
        match self {
            Stand::Subreaper { parent, .. } => parent_alive(*parent),
            Stand::Init { layer } => {
                let mut fds = [PollFd::new(layer, PollFlags::IN | PollFlags::RDHUP)];
                let now = Timespec {
                    tv_sec: 0,
                    tv_nsec: 0,
                };
                // Only an answer that something is there says layer is gone: a failed poll
                // never stops a build.
                !matches!(poll(&mut fds, Some(&now)), Ok(n) if n > 0)
            }
        }
    }

    /// Kills every process below this one and reaps them.
    fn take_down(&self) {
        match self {
            Stand::Subreaper { .. } => kill_tree(),
            Stand::Init { .. } => kill_namespace(),
        }
    }

    /// Passes an interrupt on to the processes of the tree outside this process group (the
    /// group got it already).
    fn pass_on(&self, sig: i32) {
        let Some(sig) = Signal::from_named_raw(sig) else {
            return;
        };
        let below = match self {
            Stand::Subreaper { .. } => descendants(),
            Stand::Init { .. } => namespace_members(),
        };
        let group = getpgrp();
        for p in below.unwrap_or_default() {
            if rustix::process::getpgid(Some(p)).is_ok_and(|g| g != group) {
                let _ = kill_process(p, sig);
            }
        }
    }
}

/// Runs `cmd` (its output to `output`, or to this process's stdout and stderr) and waits for
/// it, standing as `stand` says; then kills every process left below this one. When layer's
/// side is gone first, the tree is killed.
pub(super) fn supervise(
    cmd: &Reaped,
    output: Option<OwnedFd>,
    stand: &Stand,
    signals: &Blocked,
) -> End {
    let main = match stand {
        // The namespace dies with this process: the program needs no death signal of its
        // own, and so is spawned without a fork of this process's memory.
        Stand::Init { .. } => match spawn(cmd, output, false) {
            Ok(pid) => pid,
            Err(status) => return End::Status(status),
        },
        Stand::Subreaper { .. } => match spawn(cmd, output, true) {
            Ok(pid) => pid,
            Err(status) => return End::Status(status),
        },
    };
    loop {
        match signals.next() {
            Some(libc::SIGCHLD) | None => {
                if let Some(status) = reap_children(main) {
                    stand.take_down();
                    return End::Status(status);
                }
                if !stand.layer_alive() {
                    stand.take_down();
                    return End::ParentGone;
                }
            }
            Some(libc::SIGHUP) if !stand.layer_alive() => {
                stand.take_down();
                return End::ParentGone;
            }
            Some(sig @ (libc::SIGTERM | libc::SIGINT)) => stand.pass_on(sig),
            Some(_) => {}
        }
    }
}

/// Starts `cmd` with stdin closed, and with `dies_with_reaper` killed when this process dies;
/// its pid, or the raw status of a program that could not start (127 not found, 126
/// otherwise), with the reason written to its output.
fn spawn(cmd: &Reaped, output: Option<OwnedFd>, dies_with_reaper: bool) -> Result<i32, i32> {
    let mut started = start(cmd, false, output.as_ref(), dies_with_reaper);
    if matches!(&started, Err(e) if e.raw_os_error() == Some(libc::ENOEXEC)) {
        // Without the death signal's hook, the program is spawned rather than forked and
        // `execvp`ed, and `posix_spawn` does not do what `execvp` does with a file the kernel
        // cannot execute (a script without `#!`): run it with `/bin/sh`.
        started = start(cmd, true, output.as_ref(), dies_with_reaper);
    }
    match started {
        Ok(pid) => Ok(pid),
        Err(e) => match cannot_start(cmd, output, &e) {
            End::Status(s) => Err(s),
            End::ParentGone => Err(exited(126)),
        },
    }
}

/// One try of [`spawn`]: `cmd`, or with `script` `/bin/sh` running its program as a script.
fn start(
    cmd: &Reaped,
    script: bool,
    output: Option<&OwnedFd>,
    dies_with_reaper: bool,
) -> std::io::Result<i32> {
    let mut c = match script {
        true => {
            let mut c = Command::new("/bin/sh");
            c.arg(&cmd.program);
            c
        }
        false => {
            let mut c = Command::new(&cmd.program);
            if let Some(a) = &cmd.arg0 {
                std::os::unix::process::CommandExt::arg0(&mut c, a);
            }
            c
        }
    };
    c.args(&cmd.args);
    if cmd.clear_env {
        c.env_clear();
    }
    c.envs(cmd.env.iter().map(|(k, v)| (k, v)));
    if let Some(d) = &cmd.cwd {
        c.current_dir(d);
    }
    c.stdin(Stdio::null());
    if let Some(out) = output {
        c.stdout(Stdio::from(out.try_clone()?))
            .stderr(Stdio::from(out.try_clone()?));
    }
    if dies_with_reaper {
        super::dies_with_layer(&mut c);
    }
    // The command's copies of the output close when it goes: their end is the program's.
    Ok(c.spawn()?.id() as i32)
}

/// Says why `cmd` could not start, on its output; the status that reports it.
fn cannot_start(cmd: &Reaped, output: Option<OwnedFd>, e: &std::io::Error) -> End {
    let line = format!(
        "layer: cannot start `{}`: {e}\n",
        cmd.program.to_string_lossy()
    );
    match output {
        Some(fd) => {
            let _ = std::fs::File::from(fd).write_all(line.as_bytes());
        }
        None => {
            let _ = std::io::stderr().write_all(line.as_bytes());
        }
    }
    End::Status(exited(if e.kind() == std::io::ErrorKind::NotFound {
        127
    } else {
        126
    }))
}

/// Ends this process as the program ended: with its code, or killed by its signal.
pub(super) fn exit_like(status: i32, signals: &Blocked) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    let status = std::process::ExitStatus::from_raw(status);
    if let Some(code) = status.code() {
        return code;
    }
    let sig = status.signal().unwrap_or(libc::SIGKILL);
    signals.unblock();
    // SAFETY: plain system calls on this process, which has no other thread that depends on
    // the signal's handler: its one job is done.
    unsafe {
        libc::signal(sig, libc::SIG_DFL);
        libc::raise(sig);
    }
    128 + sig
}

/// Reaps every exited child; the raw status of `main` when it was among them.
fn reap_children(main: i32) -> Option<i32> {
    let mut found = None;
    while let Ok(Some((pid, status))) = wait(WaitOptions::NOHANG) {
        if pid.as_raw_nonzero().get() == main {
            found = Some(status.as_raw());
        }
    }
    found
}

/// Whether this process has a child at all, dead or alive. A subreaper without one has no
/// descendant either: an orphan below it would have become its child.
fn has_children() -> bool {
    use rustix::process::{waitid, WaitId, WaitIdOptions};
    let opts = WaitIdOptions::EXITED | WaitIdOptions::NOHANG | WaitIdOptions::NOWAIT;
    !matches!(waitid(WaitId::All, opts), Err(rustix::io::Errno::CHILD))
}

/// The pids of every process below this one, from `/proc`; `None` when `/proc` is not this
/// pid namespace's (its `self` is not this process), where pids would name others.
fn descendants() -> Option<Vec<Pid>> {
    let me = getpid().as_raw_nonzero().get();
    let own = std::fs::read_link("/proc/self").ok()?;
    if own.to_str()? != me.to_string() {
        return None;
    }
    let mut children: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
    for e in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // `PID (COMM) STATE PPID ...`: COMM may hold anything, so read after its last `)`.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<i32>().ok());
        if let Some(ppid) = ppid {
            children.entry(ppid).or_default().push(pid);
        }
    }
    let mut out = vec![];
    let mut todo = vec![me];
    while let Some(p) = todo.pop() {
        for &c in children.get(&p).into_iter().flatten() {
            out.push(c);
            todo.push(c);
        }
    }
    Some(out.into_iter().filter_map(Pid::from_raw).collect())
}

/// Kills every process below this one and reaps them, until none is left: a process forked
/// meanwhile is orphaned to this subreaper and found on the next round. Without a child there
/// is nothing to look for (the common end of a build), and `/proc` is not read.
fn kill_tree() {
    for _ in 0..500 {
        if !has_children() {
            return;
        }
        let Some(below) = descendants() else {
            return;
        };
        for &p in &below {
            let _ = kill_process(p, Signal::KILL);
        }
        while let Ok(Some(_)) = wait(WaitOptions::NOHANG) {}
        if below.is_empty() {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Kills every other process of this pid namespace, whose pid 1 this process is, and reaps
/// them until none is left: each is this process's child, or becomes one when its parent
/// dies. One forked meanwhile is killed on the next round.
fn kill_namespace() {
    while has_children() {
        // SAFETY: a plain system call; pid -1 in a namespace's init is every other process of
        // the namespace, and nothing outside it.
        unsafe {
            libc::kill(-1, libc::SIGKILL);
        }
        let _ = wait(WaitOptions::empty());
    }
}

/// The processes of this pid namespace but this one, by their pids in it, from `/proc` (whose
/// pids are those of an outer namespace): each that shares this process's namespace, by the
/// last of its `NSpid`s.
fn namespace_members() -> Option<Vec<Pid>> {
    let ns = std::fs::read_link("/proc/self/ns/pid").ok()?;
    let mut out = vec![];
    for e in std::fs::read_dir("/proc").ok()?.flatten() {
        let name = e.file_name();
        if !name.as_encoded_bytes().iter().all(u8::is_ascii_digit) {
            continue;
        }
        let dir = e.path();
        if std::fs::read_link(dir.join("ns/pid")).ok().as_ref() != Some(&ns) {
            continue;
        }
        let Ok(status) = std::fs::read_to_string(dir.join("status")) else {
            continue;
        };
        let inner = status
            .lines()
            .find_map(|l| l.strip_prefix("NSpid:"))
            .and_then(|l| l.split_whitespace().last())
            .and_then(|p| p.parse::<i32>().ok());
        if let Some(p) = inner.filter(|&p| p != 1).and_then(Pid::from_raw) {
            out.push(p);
        }
    }
    Some(out)
}
