//! One reaper server per run (`layer __reap-server`), so that a build costs a fork of a small
//! process rather than an exec of layer's own binary (issue 15).
//!
//! Layer starts the server once, with one end of a `SOCK_SEQPACKET` socket pair as its stdin.
//! For each build, layer sends it a message carrying two file descriptors: the write end of
//! the build's output pipe, and one end of a stream socket pair private to the build. The
//! server forks a child per build, the build's reaper ([`super::reap`]), puts it in a process
//! group of its own and answers on the build's socket:
//!
//! - `STARTED pid`: the reaper's pid, which is the build's process group.
//!
//! As root, the server `unshare`s a pid namespace before the fork and goes back to its own
//! after it, so that the reaper is pid 1 of the build's own namespace: every process the build
//! leaves becomes its child, and the kernel kills them all when it dies. Without one (no
//! `CAP_SYS_ADMIN` in a container), the reaper is a child subreaper instead. It reads the
//! program, its arguments, environment and folder from the build's socket, starts it, and
//! answers there:
//!
//! - `STATUS raw`: the program's raw wait status;
//! - `END`: every process below it is gone (sent as it exits).
//!
//! The server forks from a single thread and holds nothing but its socket, so a fork is
//! cheap and safe. When layer dies, however it dies, its end of the socket closes and the
//! server exits; each build's reaper then gets `SIGHUP` (`PR_SET_PDEATHSIG`), finds layer's
//! end of the build's socket closed, kills its tree and exits. The server is in a process
//! group of its own, so a Ctrl-C on the terminal reaches layer, which stops the builds in
//! order, and not the server.

use std::ffi::OsString;
use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::net::UnixStream;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};

use rustix::net::{
    recvmsg, sendmsg, socketpair, AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage,
    RecvFlags, SendAncillaryBuffer, SendAncillaryMessage, SendFlags, SocketFlags, SocketType,
};
use rustix::process::{getpid, set_child_subreaper, set_parent_process_death_signal, Pid, Signal};
use rustix::thread::{move_into_link_name_space, LinkNameSpaceType};

use super::reap::{self, End};
use super::Reaped;

const STARTED: u32 = 1;
const STATUS: u32 = 2;
const END: u32 = 3;

/// A running reaper server: builds are started through it ([`Reaper::spawn`]).
pub struct Reaper {
    ctl: OwnedFd,
    child: Child,
}

impl Reaper {
    /// Starts the server (`layer __reap-server`, from layer's own binary); as root, each build
    /// gets a pid namespace of its own.
    pub fn start() -> io::Result<Reaper> {
        let (mine, theirs) = socketpair(
            AddressFamily::UNIX,
            SocketType::SEQPACKET,
            SocketFlags::CLOEXEC,
            None,
        )?;
        let mut cmd = Command::new(std::env::current_exe()?);
        cmd.arg("__reap-server");
        if rustix::process::geteuid().is_root() {
            cmd.arg("--pid-ns");
        }
        cmd.stdin(Stdio::from(theirs))
            .stdout(Stdio::null())
            .process_group(0);
        let child = cmd.spawn()?;
        Ok(Reaper { ctl: mine, child })
    }

    /// Starts `cmd` under a reaper of its own, its stdout and stderr going to `output`.
    pub fn spawn(&self, cmd: &Reaped, output: OwnedFd) -> io::Result<Running> {
        let (mut mine, theirs) = UnixStream::pair()?;
        let fds = [output.as_fd(), theirs.as_fd()];
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(2))];
        let mut control = SendAncillaryBuffer::new(&mut space);
        control.push(SendAncillaryMessage::ScmRights(&fds));
        sendmsg(
            &self.ctl,
            &[IoSlice::new(b"r")],
            &mut control,
            SendFlags::NOSIGNAL,
        )
        .map_err(|e| io::Error::other(format!("the reaper server is gone: {e}")))?;
        // The server has its own copies now; ours go, so that their ends are the build's.
        drop((output, theirs));
        mine.write_all(&encode(cmd))?;
        let mut running = Running {
            pid: 0,
            sock: mine,
            pending: Vec::new(),
            status: None,
            ended: false,
        };
        while running.pid == 0 {
            if running.read()? {
                return Err(io::Error::other(
                    "the build's reaper ended before it started",
                ));
            }
        }
        Ok(running)
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        // The server reads the end of its socket and exits.
        let _ = rustix::net::shutdown(&self.ctl, rustix::net::Shutdown::Both);
        let _ = self.child.wait();
    }
}

/// A build started by [`Reaper::spawn`]: what its reaper says, read as it comes.
pub struct Running {
    pid: i32,
    sock: UnixStream,
    pending: Vec<u8>,
    status: Option<i32>,
    ended: bool,
}

impl Running {
    /// The reaper's pid: the build's process group.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Reads what the reaper said (once; blocks when it said nothing); true once it ended.
    pub fn read(&mut self) -> io::Result<bool> {
        if self.ended {
            return Ok(true);
        }
        let mut buf = [0u8; 64];
        let n = match self.sock.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(false),
            Err(e) => return Err(e),
        };
        if n == 0 {
            self.ended = true;
            return Ok(true);
        }
        self.pending.extend_from_slice(&buf[..n]);
        while self.pending.len() >= 8 {
            let msg: Vec<u8> = self.pending.drain(..8).collect();
            let tag = u32::from_le_bytes(msg[..4].try_into().expect("4 bytes"));
            let value = i32::from_le_bytes(msg[4..].try_into().expect("4 bytes"));
            match tag {
                STARTED => self.pid = value,
                STATUS => self.status = Some(value),
                _ => {}
            }
        }
        Ok(false)
    }

    /// How the program ended, once [`Running::read`] said the reaper did: killed by `SIGKILL`
    /// when its reaper died before it could say.
    pub fn status(&self) -> ExitStatus {
        ExitStatus::from_raw(self.status.unwrap_or(libc::SIGKILL))
    }
}

impl AsFd for Running {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }
}

/// `layer __reap-server [--pid-ns]`: serves the socket on stdin until it closes.
pub(super) fn serve(pid_ns: bool) -> i32 {
    // SAFETY: fd 0 is the socket layer gave this process as its stdin; nothing else owns it.
    let stdin = unsafe { OwnedFd::from_raw_fd(0) };
    let Ok(ctl) = rustix::io::fcntl_dupfd_cloexec(&stdin, 3) else {
        return 2;
    };
    drop(stdin);
    // Fd 0 stays taken, so that no descriptor received later lands on it.
    let _null = std::fs::File::open("/dev/null");
    let me = getpid().as_raw_nonzero().get();
    // Blocked here, so that every reaper forked starts with them blocked: none is lost.
    let signals = reap::block_signals();
    // The namespace this process goes back to after each build's `unshare`, so that the
    // next build can have a new one too.
    let own_ns = match pid_ns {
        true => std::fs::File::open("/proc/self/ns/pid").ok(),
        false => None,
    };
    let mut pid_ns = own_ns.is_some();
    loop {
        let mut byte = [0u8; 16];
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(2))];
        let mut control = RecvAncillaryBuffer::new(&mut space);
        let got = recvmsg(
            &ctl,
            &mut [IoSliceMut::new(&mut byte)],
            &mut control,
            RecvFlags::CMSG_CLOEXEC,
        );
        // Reapers that ended.
        while let Ok(Some(_)) = rustix::process::wait(rustix::process::WaitOptions::NOHANG) {}
        let got = match got {
            Ok(g) => g,
            Err(rustix::io::Errno::INTR) => continue,
            Err(_) => return 0,
        };
        if got.bytes == 0 {
            return 0;
        }
        let fds: Vec<OwnedFd> = control
            .drain()
            .filter_map(|m| match m {
                RecvAncillaryMessage::ScmRights(fds) => Some(fds.collect::<Vec<_>>()),
                _ => None,
            })
            .flatten()
            .collect();
        let Ok::<[OwnedFd; 2], _>([output, sock]) = fds.try_into() else {
            continue;
        };
        // As root, the reaper is pid 1 of the build's own pid namespace; where the system
        // refuses one (no `CAP_SYS_ADMIN` in a container), a child subreaper.
        let init = pid_ns && unshare_pid();
        pid_ns = init;
        // SAFETY: this process is single-threaded, so the child may run any code.
        let child = unsafe { libc::fork() };
        if child == 0 {
            let code = one_build(output, sock, me, init, &signals);
            // SAFETY: ends the forked child at once, without the server's destructors.
            unsafe { libc::_exit(code) }
        }
        if let (true, Some(ns)) = (init, &own_ns) {
            pid_ns =
                move_into_link_name_space(ns.as_fd(), Some(LinkNameSpaceType::ProcessID)).is_ok();
        }
        if let Some(pid) = Pid::from_raw(child) {
            // Set here too, so that the group exists before layer hears of it.
            let _ = rustix::process::setpgid(Some(pid), Some(pid));
            say(&sock, STARTED, child);
        }
        // The parent's copies of `output` and `sock` close here (on a failed fork too, which
        // the build sees as its reaper ending before it started).
    }
}

/// A new pid namespace for the next child; false when the system refuses it (no
/// `CAP_SYS_ADMIN` in a container), and the build's reaper is a child subreaper instead.
fn unshare_pid() -> bool {
    // SAFETY: only `NEWPID`, which changes the namespace of the children this process makes
    // from now on; no file table or other state threads share is touched.
    unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWPID) }.is_ok()
}

/// Writes one report to the build's socket.
fn say(sock: impl AsFd, tag: u32, value: i32) {
    let mut m = [0u8; 8];
    m[..4].copy_from_slice(&tag.to_le_bytes());
    m[4..].copy_from_slice(&value.to_le_bytes());
    let _ = rustix::io::write(sock, &m);
}

/// A forked child of the server: one build's reaper, pid 1 of the build's pid namespace when
/// `init`.
fn one_build(
    output: OwnedFd,
    sock: OwnedFd,
    server: i32,
    init: bool,
    signals: &reap::Blocked,
) -> i32 {
    // The build's process group, which layer signals on an interrupt.
    let _ = rustix::process::setpgid(None, None);
    let _ = set_parent_process_death_signal(Some(Signal::HUP));
    if !init {
        // A pid 1's parent is outside its namespace: it watches layer through the socket.
        if rustix::process::getppid().map_or(0, |p| p.as_raw_nonzero().get()) != server {
            return 0;
        }
        let _ = set_child_subreaper(Some(getpid()));
    }
    let mut sock = UnixStream::from(sock);
    let Ok(cmd) = read_request(&mut sock) else {
        return 0;
    };
    let end = {
        let stand = match init {
            true => reap::Stand::Init {
                layer: sock.as_fd(),
            },
            false => reap::Stand::Subreaper { parent: server },
        };
        reap::supervise(&cmd, Some(output), &stand, signals)
    };
    if let End::Status(status) = end {
        say(&sock, STATUS, status);
    }
    say(&sock, END, 0);
    0
}

/// The request for `cmd`: its length, then items of a tag byte and bytes, each after its
/// length.
fn encode(cmd: &Reaped) -> Vec<u8> {
    let mut items: Vec<(u8, Vec<u8>)> = vec![(b'p', cmd.program.as_bytes().to_vec())];
    if let Some(a) = &cmd.arg0 {
        items.push((b'0', a.as_bytes().to_vec()));
    }
    if cmd.clear_env {
        items.push((b'c', Vec::new()));
    }
    if let Some(d) = &cmd.cwd {
        items.push((b'd', d.as_os_str().as_bytes().to_vec()));
    }
    items.extend(cmd.args.iter().map(|a| (b'a', a.as_bytes().to_vec())));
    for (k, v) in &cmd.env {
        let mut kv = k.as_bytes().to_vec();
        kv.push(0);
        kv.extend_from_slice(v.as_bytes());
        items.push((b'e', kv));
    }
    let mut body = Vec::new();
    for (tag, bytes) in items {
        body.push(tag);
        body.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        body.extend_from_slice(&bytes);
    }
    let mut out = (body.len() as u32).to_le_bytes().to_vec();
    out.extend_from_slice(&body);
    out
}

/// Reads what [`encode`] wrote.
fn read_request(r: &mut impl Read) -> io::Result<Reaped> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len)?;
    let mut body = vec![0u8; u32::from_le_bytes(len) as usize];
    r.read_exact(&mut body)?;
    decode(&body).ok_or_else(|| io::Error::from(io::ErrorKind::InvalidData))
}

fn decode(mut body: &[u8]) -> Option<Reaped> {
    let mut cmd = Reaped::default();
    while let [tag, rest @ ..] = body {
        let n = u32::from_le_bytes(rest.get(..4)?.try_into().ok()?) as usize;
        let bytes = rest.get(4..4 + n)?.to_vec();
        body = &rest[4 + n..];
        match tag {
            b'p' => cmd.program = OsString::from_vec(bytes),
            b'0' => cmd.arg0 = Some(OsString::from_vec(bytes)),
            b'c' => cmd.clear_env = true,
            b'd' => cmd.cwd = Some(PathBuf::from(OsString::from_vec(bytes))),
            b'a' => cmd.args.push(OsString::from_vec(bytes)),
            b'e' => {
                let at = bytes.iter().position(|&b| b == 0)?;
                let v = OsString::from_vec(bytes[at + 1..].to_vec());
                cmd.env.push((OsString::from_vec(bytes[..at].to_vec()), v));
            }
            _ => return None,
        }
    }
    Some(cmd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_reads_back_as_written() {
        let mut cmd = Reaped::new("/bin/sh");
        cmd.arg0("sh")
            .args(["-c", "echo \u{e9}t\u{e9}"])
            .env_clear()
            .env("A", "1=2")
            .env("EMPTY", "")
            .current_dir("/tmp");
        let bytes = encode(&cmd);
        let back = read_request(&mut &bytes[..]).unwrap();
        assert_eq!(format!("{back:?}"), format!("{cmd:?}"));
        assert!(
            decode(&bytes[4..bytes.len() - 1]).is_none(),
            "a cut request is refused"
        );
    }
}
