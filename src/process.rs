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
