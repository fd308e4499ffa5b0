//! The one thing every process layer starts is set up with: it dies with layer.

use std::os::unix::process::CommandExt;
use std::process::Command;

use rustix::process::{set_parent_process_death_signal, Signal};

/// Makes the process `cmd` starts get SIGKILL when layer dies (`PR_SET_PDEATHSIG`), so a
/// killed layer leaves no build, tool or sandbox behind.
pub fn dies_with_layer(cmd: &mut Command) {
    // SAFETY: the hook runs in the child between fork and exec, where only async-signal-safe
    // calls are allowed: it makes one prctl system call (rustix's wrapper neither allocates nor
    // locks) and touches no memory of the parent. Its result is ignored: a child that cannot
    // have the signal still runs, as it did before the hook.
    unsafe {
        cmd.pre_exec(|| {
            let _ = set_parent_process_death_signal(Some(Signal::KILL));
            Ok(())
        });
    }
}

/// The program every build process tree runs under: `layer __reap PARENT [--pid-ns] --
/// PROGRAM ARGS...`, re-executed from layer's own binary (see [`reaped`]). Nothing a build
/// starts outlives layer, even after `kill -9`:
///
/// - the reaper is a child subreaper (`PR_SET_CHILD_SUBREAPER`): a process the build leaves
///   behind (a daemon, a backgrounded `sleep`, a double fork) becomes its child instead of
///   init's, so the reaper sees the whole tree in `/proc` however the build detaches;
/// - it watches layer (`PR_SET_PDEATHSIG` with `SIGHUP`, and `getppid`): when layer dies, it
///   kills its whole tree and exits; when the build's program exits, it kills what is left
///   and exits with the program's status;
/// - as root (`--pid-ns`), the program runs under a second reaper that is pid 1 of a pid
///   namespace of its own, as the rootfs sandbox does: when that dies, however it dies, the
///   kernel kills every process of the namespace;
/// - `SIGTERM` and `SIGINT` (an interrupted build) are passed on to the processes of the tree
///   outside the build's process group, which got them already.
///
/// Exit status: the program's; 127 (126) when it cannot be started (not found; other errors),
/// with the reason on stderr; 137 when layer died first.
pub fn reap_main(args: &[String]) -> i32 {
    let Some(dash) = args.iter().position(|a| a == "--") else {
        eprintln!("usage: layer __reap PARENT [--pid-ns | --init] -- PROGRAM ARGS... (internal)");
        return 2;
    };
    let (opts, program) = (&args[..dash], &args[dash + 1..]);
    let parent: i32 = opts.first().and_then(|p| p.parse().ok()).unwrap_or(0);
    let init = opts.iter().any(|o| o == "--init");
    let pid_ns = opts.iter().any(|o| o == "--pid-ns");
    if program.is_empty() {
        eprintln!("layer __reap: no program to run");
        return 2;
    }
    reap::run(parent, init, pid_ns, program)
}

/// The command that runs `program` under layer's reaper ([`reap_main`]): the caller adds
/// arguments, environment and folder as for `program` itself. As root, the tree gets a pid
/// namespace of its own.
pub fn reaped(program: &std::path::Path) -> std::io::Result<Command> {
    let exe = std::env::current_exe()?;
    let mut cmd = Command::new(exe);
    cmd.arg("__reap").arg(std::process::id().to_string());
    if rustix::process::geteuid().is_root() {
        cmd.arg("--pid-ns");
    }
    cmd.arg("--").arg(program);
    Ok(cmd)
}

mod reap {
    use std::collections::BTreeMap;
    use std::process::{Command, Stdio};
    use std::time::Duration;

    use rustix::process::{
        getpgrp, getpid, getppid, kill_process, set_child_subreaper,
        set_parent_process_death_signal, wait, Pid, Signal, WaitOptions, WaitStatus,
    };
    use signal_hook::consts::{SIGCHLD, SIGHUP, SIGINT, SIGTERM};

    pub(super) fn run(parent: i32, init: bool, pid_ns: bool, program: &[String]) -> i32 {
        // Handlers before the first child: none of its signals is lost. A child gets default
        // handlers back when it execs.
        let mut signals =
            match signal_hook::iterator::Signals::new([SIGCHLD, SIGHUP, SIGINT, SIGTERM]) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("layer __reap: signals: {e}");
                    return 126;
                }
            };
        let layer_gone = || !init && getppid().map_or(0, |p| p.as_raw_nonzero().get()) != parent;
        if !init {
            let _ = set_child_subreaper(Some(getpid()));
            let _ = set_parent_process_death_signal(Some(Signal::HUP));
            if layer_gone() {
                return 137;
            }
        }
        let mut cmd = if pid_ns && unshare_pid() {
            let exe = std::env::current_exe().unwrap_or_else(|_| "/proc/self/exe".into());
            let mut c = Command::new(exe);
            c.args(["__reap", "0", "--init", "--"]).args(program);
            c
        } else {
            let mut c = Command::new(&program[0]);
            c.args(&program[1..]);
            c
        };
        cmd.stdin(Stdio::null());
        super::dies_with_layer(&mut cmd);
        let main = match cmd.spawn() {
            Ok(c) => c.id() as i32,
            Err(e) => {
                eprintln!("layer: cannot start `{}`: {e}", program[0]);
                return if e.kind() == std::io::ErrorKind::NotFound {
                    127
                } else {
                    126
                };
            }
        };
        // Blocks until a signal comes; the signals never end while the handle is open.
        for sig in signals.forever() {
            match sig {
                SIGCHLD => {
                    if let Some(status) = reap_children(main) {
                        if !init {
                            kill_tree();
                        }
                        return exit_like(status);
                    }
                }
                SIGTERM | SIGINT if !init => pass_on(sig),
                SIGHUP if layer_gone() => {
                    kill_tree();
                    return 137;
                }
                _ => {}
            }
        }
        kill_tree();
        126
    }

    /// A new pid namespace for the next child; false when the system refuses it (no
    /// `CAP_SYS_ADMIN` in a container), and the subreaper alone holds the tree.
    fn unshare_pid() -> bool {
        // SAFETY: only `NEWPID`, which changes the namespace of the children this process
        // makes from now on; no file table or other state threads share is touched.
        unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWPID) }.is_ok()
    }

    /// Reaps every exited child; the status of `main` when it was among them.
    fn reap_children(main: i32) -> Option<WaitStatus> {
        let mut found = None;
        while let Ok(Some((pid, status))) = wait(WaitOptions::NOHANG) {
            if pid.as_raw_nonzero().get() == main {
                found = Some(status);
            }
        }
        found
    }

    /// Exits as the program did: with its code, or killed by its signal.
    fn exit_like(status: WaitStatus) -> i32 {
        if let Some(code) = status.exit_status() {
            return code;
        }
        let sig = status.terminating_signal().unwrap_or(libc::SIGKILL);
        // SAFETY: plain system calls on this process, which has no other thread that depends
        // on the signal's handler: its one job is done.
        unsafe {
            libc::signal(sig, libc::SIG_DFL);
            libc::raise(sig);
        }
        128 + sig
    }

    /// The pids of every process below this one, from `/proc`; `None` when `/proc` is not
    /// this pid namespace's (its `self` is not this process), where pids would name others.
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

    /// Kills every process below this one and reaps them, until none is left: a process
    /// forked meanwhile is orphaned to this subreaper and found on the next round.
    fn kill_tree() {
        for _ in 0..500 {
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

    /// Passes an interrupt on to the processes of the tree outside this process group (the
    /// group got it already).
    fn pass_on(sig: i32) {
        let Some(sig) = Signal::from_named_raw(sig) else {
            return;
        };
        let group = getpgrp();
        for p in descendants().unwrap_or_default() {
            if rustix::process::getpgid(Some(p)).is_ok_and(|g| g != group) {
                let _ = kill_process(p, sig);
            }
        }
    }
}
