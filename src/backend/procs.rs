//! The process groups of running builds: every build process starts here, in a group of its
//! own that dies with layer (`PR_SET_PDEATHSIG`), its output copied into the build's log, so an
//! interrupt can stop a build's whole tree.

use std::collections::BTreeSet;
use std::io::{self, Read};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use rustix::event::{poll, PollFd, PollFlags};
use rustix::process::{kill_process_group, Pid, Signal};

use super::Log;
use crate::process::{Reaped, Reaper, Running};

/// The process groups of running builds, so that an interrupt can stop them all.
#[derive(Default)]
pub struct Procs {
    groups: Mutex<BTreeSet<i32>>,
    cancelled: AtomicBool,
    /// The run's reaper server, started with the first build that needs one.
    reaper: Mutex<Option<Arc<Reaper>>>,
}

impl Procs {
    pub fn cancelled(&self) -> bool {
        self.cancelled.load(Ordering::SeqCst)
    }

    /// Stops every running build: SIGTERM to each process group, and no new process starts.
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
        self.signal_all(Signal::TERM);
    }

    /// Sends `sig` to the process group of every running build.
    pub fn signal_all(&self, sig: Signal) {
        for &pg in self.groups.lock().expect("no panics while locked").iter() {
            kill_group(pg, sig);
        }
    }

    pub fn running(&self) -> usize {
        self.groups.lock().expect("no panics while locked").len()
    }

    /// Runs `cmd` in its own process group with stdin closed and stdout and stderr copied
    /// into `log`, and waits for it. The process is killed if layer itself dies.
    pub fn run(&self, cmd: &mut Command, log: Log) -> io::Result<ExitStatus> {
        if self.cancelled() {
            return Err(io::Error::new(io::ErrorKind::Interrupted, "interrupted"));
        }
        // stdout and stderr share one pipe, so their bytes reach the log (and its redactor) in
        // the order the build wrote them: a secret split between them is still one value.
        let (out, writer) = io::pipe()?;
        cmd.stdin(Stdio::null())
            .stdout(writer.try_clone()?)
            .stderr(writer)
            .process_group(0);
        crate::process::dies_with_layer(cmd);
        let spawned = cmd.spawn();
        // Our copy of the pipe's writing end goes, so that its end is the build's end.
        cmd.stdout(Stdio::null()).stderr(Stdio::null());
        let mut child = spawned?;
        let pg = child.id() as i32;
        self.track(pg);
        let status = std::thread::scope(|s| {
            let copy = |mut r: Box<dyn Read + Send>| {
                let mut buf = [0u8; 8192];
                loop {
                    match r.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            let _ = log
                                .lock()
                                .expect("no panics while locked")
                                .write_all(&buf[..n]);
                        }
                    }
                }
            };
            s.spawn(move || copy(Box::new(out)));
            let status = child.wait();
            // Whatever the group's leader left behind goes with it, before the copies are
            // joined: a process left running in the background holds the pipes open, and
            // waiting for their end would wait for it.
            kill_group(pg, Signal::KILL);
            status
        });
        self.untrack(pg);
        status
    }
}

impl Procs {
    /// Runs `cmd` under layer's reaper (a fork of the run's reaper server, see
    /// `process::Reaper`): in a process group of its own, with stdin closed and stdout and
    /// stderr copied into `log`, and waits for it. Nothing it starts outlives it, or layer.
    pub fn run_reaped(&self, cmd: &Reaped, log: Log) -> io::Result<ExitStatus> {
        if self.cancelled() {
            return Err(io::Error::new(io::ErrorKind::Interrupted, "interrupted"));
        }
        let reaper = self.reaper()?;
        // One pipe for stdout and stderr, as in `run`.
        let (out, writer) = io::pipe()?;
        let mut running = reaper.spawn(cmd, writer.into())?;
        let pg = running.pid();
        self.track(pg);
        let status = copy_until_end(&out, &mut running, log, pg);
        self.untrack(pg);
        status
    }

    /// The run's reaper server, started on first use.
    /// Counts the process group `pg` among the running ones (so `cancel` and `signal_all`
    /// reach it), and ends it at once when the run was cancelled while it started.
    fn track(&self, pg: i32) {
        self.groups
            .lock()
            .expect("no panics while locked")
            .insert(pg);
        if self.cancelled() {
            kill_group(pg, Signal::TERM);
        }
    }

    /// The process group `pg` has ended: no signal goes to it any more.
    fn untrack(&self, pg: i32) {
        self.groups
            .lock()
            .expect("no panics while locked")
            .remove(&pg);
    }

    fn reaper(&self) -> io::Result<Arc<Reaper>> {
        let mut r = self.reaper.lock().expect("no panics while locked");
        if let Some(r) = &*r {
            return Ok(r.clone());
        }
        let started = Arc::new(Reaper::start()?);
        *r = Some(started.clone());
        Ok(started)
    }
}

/// Copies a build's output into `log` and reads its reaper's reports, in this one thread,
/// until both end: the output when every process holding the pipe is gone, the reaper once
/// its tree is (whatever is left of the group `pg` is then killed, as in `run`).
fn copy_until_end(
    out: &io::PipeReader,
    running: &mut Running,
    log: Log,
    pg: i32,
) -> io::Result<ExitStatus> {
    let mut buf = [0u8; 8192];
    let (mut out_open, mut reaper_open) = (true, true);
    while out_open || reaper_open {
        let (mut out_ready, mut reaper_ready) = (false, false);
        {
            let mut fds = Vec::with_capacity(2);
            if out_open {
                fds.push(PollFd::new(out, PollFlags::IN));
            }
            if reaper_open {
                fds.push(PollFd::new(&*running, PollFlags::IN));
            }
            match poll(&mut fds, None) {
                Ok(_) | Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(e.into()),
            }
            let mut ready = fds.iter().map(|f| !f.revents().is_empty());
            if out_open {
                out_ready = ready.next().unwrap_or(false);
            }
            if reaper_open {
                reaper_ready = ready.next().unwrap_or(false);
            }
        }
        if out_ready {
            match (&*out).read(&mut buf) {
                Ok(0) => out_open = false,
                Ok(n) => {
                    let _ = log
                        .lock()
                        .expect("no panics while locked")
                        .write_all(&buf[..n]);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => out_open = false,
            }
        }
        if reaper_ready && running.read().unwrap_or(true) {
            reaper_open = false;
            kill_group(pg, Signal::KILL);
        }
    }
    Ok(running.status())
}

/// Where `program` is on layer's own `PATH`, for backends that say before any build starts
/// that a tool is missing.
pub fn find_program(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

/// Where `program` is as `execvp` would find it on `path` (a `PATH` value): the first
/// executable file, or `program` itself when it names a path; `NotFound` when it is nowhere,
/// `PermissionDenied` when it is not an executable file. Found before a build starts it under
/// the reaper, which could only say so in the log, and which then need not search again.
pub fn resolve_program(program: &Path, path: &str) -> io::Result<PathBuf> {
    let candidates: Vec<PathBuf> = if program.as_os_str().as_encoded_bytes().contains(&b'/') {
        vec![program.to_path_buf()]
    } else {
        std::env::split_paths(path)
            .map(|d| d.join(program))
            .collect()
    };
    let mut seen = false;
    for c in candidates {
        let Ok(meta) = std::fs::metadata(&c) else {
            continue;
        };
        seen = true;
        let runnable =
            meta.is_file() && rustix::fs::access(&c, rustix::fs::Access::EXEC_OK).is_ok();
        if runnable {
            return Ok(c);
        }
    }
    Err(if seen {
        io::Error::from(io::ErrorKind::PermissionDenied)
    } else {
        io::Error::from(io::ErrorKind::NotFound)
    })
}

/// Sends `sig` to process group `pg`, one that layer started; a group already gone is fine.
fn kill_group(pg: i32, sig: Signal) {
    if let Some(pid) = Pid::from_raw(pg) {
        let _ = kill_process_group(pid, sig);
    }
}
