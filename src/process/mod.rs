//! The processes layer starts: each dies with layer, and a build's whole process tree runs
//! under a reaper that takes along whatever the build leaves behind.

mod reap;
mod server;

use std::ffi::{OsStr, OsString};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

pub use server::{Reaper, Running};

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

/// A program to run under layer's reaper, as data that can be sent to it: what a `Command`
/// holds, with the same builder methods.
#[derive(Debug, Clone, Default)]
pub struct Reaped {
    pub program: OsString,
    /// The program's `argv[0]`, when it is not `program` (a name looked up on `PATH` once).
    pub arg0: Option<OsString>,
    pub args: Vec<OsString>,
    /// Added to the environment (to nothing after [`Reaped::env_clear`]).
    pub env: Vec<(OsString, OsString)>,
    pub clear_env: bool,
    /// The folder it runs in; the reaper's when `None`.
    pub cwd: Option<PathBuf>,
}

impl Reaped {
    pub fn new(program: impl AsRef<OsStr>) -> Reaped {
        Reaped {
            program: program.as_ref().to_owned(),
            ..Reaped::default()
        }
    }

    /// Starts `program` with `arg0` as its `argv[0]`, as `CommandExt::arg0` does.
    pub fn arg0(&mut self, arg0: impl AsRef<OsStr>) -> &mut Reaped {
        self.arg0 = Some(arg0.as_ref().to_owned());
        self
    }

    pub fn arg(&mut self, arg: impl AsRef<OsStr>) -> &mut Reaped {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    pub fn args<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(&mut self, args: I) -> &mut Reaped {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    pub fn env(&mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> &mut Reaped {
        self.env
            .push((key.as_ref().to_owned(), value.as_ref().to_owned()));
        self
    }

    pub fn envs<I, K, V>(&mut self, vars: I) -> &mut Reaped
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        for (k, v) in vars {
            self.env(k, v);
        }
        self
    }

    pub fn env_clear(&mut self) -> &mut Reaped {
        self.clear_env = true;
        self.env.clear();
        self
    }

    pub fn current_dir(&mut self, dir: impl AsRef<Path>) -> &mut Reaped {
        self.cwd = Some(dir.as_ref().to_path_buf());
        self
    }
}

/// `layer __reap PARENT -- PROGRAM ARGS...`: runs one program under a child subreaper of its
/// own, in a process of its own (builds go through a [`Reaper`] server instead, which forks a
/// reaper for each, as root the pid 1 of the build's own pid namespace). Nothing the program
/// starts outlives it, or PARENT, even after `kill -9`:
///
/// - the reaper is a child subreaper (`PR_SET_CHILD_SUBREAPER`): a process the build leaves
///   behind (a daemon, a backgrounded `sleep`, a double fork) becomes its child instead of
///   init's, so the reaper sees the whole tree however the build detaches;
/// - it watches its parent (`PR_SET_PDEATHSIG` with `SIGHUP`, and `getppid`): when that dies,
///   it kills its whole tree and exits; when the program exits, it kills what is left and
///   exits with the program's status;
/// - `SIGTERM` and `SIGINT` (an interrupted build) are passed on to the processes of the tree
///   outside the build's process group, which got them already.
///
/// Exit status: the program's; 127 (126) when it cannot be started (not found; other errors),
/// with the reason on stderr; 137 when the parent died first.
pub fn reap_main(args: &[String]) -> i32 {
    let Some(dash) = args.iter().position(|a| a == "--") else {
        eprintln!("usage: layer __reap PARENT -- PROGRAM ARGS... (internal)");
        return 2;
    };
    let (opts, program) = (&args[..dash], &args[dash + 1..]);
    let parent: i32 = opts.first().and_then(|p| p.parse().ok()).unwrap_or(0);
    if program.is_empty() {
        eprintln!("layer __reap: no program to run");
        return 2;
    }
    let signals = reap::block_signals();
    let me = rustix::process::getpid();
    let _ = rustix::process::set_child_subreaper(Some(me));
    let _ = set_parent_process_death_signal(Some(Signal::HUP));
    if rustix::process::getppid().map_or(0, |p| p.as_raw_nonzero().get()) != parent {
        return 137;
    }
    let mut cmd = Reaped::new(&program[0]);
    cmd.args(&program[1..]);
    let stand = reap::Stand::Subreaper { parent };
    match reap::supervise(&cmd, None, &stand, &signals) {
        reap::End::Status(status) => reap::exit_like(status, &signals),
        reap::End::ParentGone => 137,
    }
}

/// `layer __reap-server [--pid-ns]`: the run's reaper server ([`Reaper`]).
pub fn serve_main(args: &[String]) -> i32 {
    server::serve(args.iter().any(|a| a == "--pid-ns"))
}
