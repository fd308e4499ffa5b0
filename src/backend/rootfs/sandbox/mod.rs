//! The sandbox: the process, started as `layer __sandbox SPEC`, in which a rootfs build or a
//! test instance runs. It is the only code of layer that mounts anything.
//!
//! It enters new mount, UTS and IPC namespaces (and, for tests, a network namespace with only
//! loopback up), makes every mount private, mounts the image's root — an overlay of the
//! layers below over a new upper layer, or a folder composed by copying where overlayfs is
//! refused — and gives it a small `/dev` of its own, `/sys` read-only and tmpfs on `/run` and
//! `/tmp`. Each command (the package manager, a role's `provision.sh`, a test) then runs by
//! `unshare --pid --fork --kill-child --mount-proc` and `layer __sandbox --enter`: pid 1 of a
//! pid namespace of its own, so that when it ends, every process it left behind is killed
//! with it, confined as [`confine`] says (`pivot_root`, Docker's default capabilities,
//! read-only `/proc/sys`, `no_new_privs`, a seccomp filter).
//!
//! The mounts belong to the sandbox's namespace: they vanish when it exits, whatever happens,
//! and never show on the host. Before it exits it removes what it staged in the root (the role
//! folder at `/.layer`, `policy-rc.d`, the host's `resolv.conf`) and unmounts, so the upper layer
//! holds only what the image's own code did.
//!
//! What this holds against, and what not, is in the README ("The sandbox"): role code runs as
//! root (with Docker's default capabilities) on the host's kernel, with the host's network
//! during builds.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

mod mounts;
mod files;
mod confine;
mod apt;

pub use apt::AptCache;

use files::{copy_files_into, install_script};
use mounts::{check, enter_private_mount_namespace, loopback_up, overlay_options, umount};
pub use mounts::{mount, overlay_works};

/// What a sandbox does, written by the parent as JSON into the build's private work folder.
/// Secret values are never in it: `secret_names` are read from the sandbox's environment.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Spec {
    /// Where the image's root is mounted (overlay) or composed (copy).
    pub root: PathBuf,
    pub overlay: Option<Overlay>,
    pub hostname: String,
    /// Builds share the host's network (packages are downloaded); tests get their own.
    pub host_network: bool,
    /// The environment of every command, before a step's own.
    pub env: Vec<(String, String)>,
    /// Variables whose values come from the sandbox's own environment (secrets).
    pub secret_names: Vec<String>,
    pub steps: Vec<Step>,
    /// Tests: where each test's output goes (`NN.out`) and `results.json`.
    pub results: Option<PathBuf>,
    /// Host folders bound read-only at the same path inside the root, for the sandbox's life:
    /// the `file://` apt archives its sources name.
    #[serde(default)]
    pub binds: Vec<PathBuf>,
    /// The cache's apt folder for this origin, bound into the root while packages install
    /// (never part of the layer); without it apt fetches into the image and cleans up.
    #[serde(default)]
    pub apt: Option<AptCache>,
}

/// Where roles are staged: `/.layer/role` in builds (SPEC §1.3); in test instances under the
/// tmpfs `/run`, so that a test checking that no staging is left in the image sees none.
const BUILD_STAGE: &str = ".layer";
const TEST_STAGE: &str = "run/layer";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Overlay {
    /// Lower directories, top first.
    pub lower: Vec<PathBuf>,
    pub upper: PathBuf,
    pub work: PathBuf,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Step {
    /// Installs packages with the tree's own package manager; apt gets `sources` first, in
    /// `/etc/apt/sources.list.d/layer-HOSTNAME.list`, which stays in the image.
    Packages {
        names: Vec<String>,
        #[serde(default)]
        sources: Vec<String>,
    },
    /// Copies `files/` onto the root and runs `provision.sh`, with the role staged read-only
    /// at `/.layer/role`.
    Role {
        name: String,
        dir: PathBuf,
        env: Vec<(String, String)>,
    },
    /// Runs a test: `script` is a role's test file (relative to the role folder, which is
    /// staged) or, without a role, a command for `/bin/sh -c`.
    Test {
        name: String,
        role: Option<PathBuf>,
        script: String,
        timeout_secs: u64,
    },
    /// `layer shell`: runs `/bin/sh` in `/` with the sandbox's stdin, stdout and stderr, and
    /// ends the sandbox with the shell's exit code.
    Shell,
}

/// The result of one test, as `results.json` holds them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TestResult {
    pub name: String,
    pub passed: bool,
    /// Exit status, or a description (timed out, killed by a signal).
    pub status: String,
    pub duration_ms: u64,
}

/// `layer __sandbox --enter ROOT CMD...`: confines this process in ROOT ([`confine`]) and
/// becomes CMD; 127 when either fails.
pub fn enter(args: &[String]) -> i32 {
    let Some((root, argv)) = confine::parse(args) else {
        eprintln!("usage: layer __sandbox --enter ROOT CMD... (internal)");
        return 2;
    };
    let e = confine::enter(root, argv);
    eprintln!("layer sandbox: {e}");
    127
}

/// Runs the sandbox of the spec at `spec_path`; the process's exit code.
pub fn main(spec_path: &Path) -> i32 {
    match run(spec_path) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("layer sandbox: {e}");
            1
        }
    }
}

fn run(spec_path: &Path) -> io::Result<i32> {
    let spec: Spec = serde_json::from_slice(&fs::read(spec_path)?)
        .map_err(|e| io::Error::other(format!("{}: {e}", spec_path.display())))?;
    if spec.steps.iter().any(|s| matches!(s, Step::Shell)) {
        // Ctrl-C and Ctrl-\ at the terminal are the shell's: the sandbox outlives them.
        ignore_terminal_signals()?;
    }
    let mut flags = libc::CLONE_NEWNS | libc::CLONE_NEWUTS | libc::CLONE_NEWIPC;
    if !spec.host_network {
        flags |= libc::CLONE_NEWNET;
    }
    enter_private_mount_namespace(flags)?;
    let host = spec.hostname.as_bytes();
    check(
        // SAFETY: a pointer and length of a live slice.
        unsafe { libc::sethostname(host.as_ptr().cast(), host.len()) },
        "sethostname",
    )?;
    if !spec.host_network {
        loopback_up()?;
    }
    let mut sb = Sandbox {
        spec: &spec,
        mounts: Vec::new(),
        made: Vec::new(),
        restore: Vec::new(),
    };
    let result = sb.setup().and_then(|()| sb.steps());
    let teardown = sb.teardown();
    let code = result?;
    teardown?;
    Ok(code)
}

struct Sandbox<'a> {
    spec: &'a Spec,
    /// Mounted paths, in mount order.
    mounts: Vec<PathBuf>,
    /// Paths made in the root for the sandbox's own use, removed at the end (deepest last).
    made: Vec<PathBuf>,
    /// Files replaced for the build: path, what was put there, and the original (or `None`
    /// when there was none).
    restore: Vec<(PathBuf, Vec<u8>, Option<Saved>)>,
}

enum Saved {
    File(Vec<u8>, u32),
    Link(PathBuf),
}

impl Sandbox<'_> {
    fn root(&self) -> &Path {
        &self.spec.root
    }

    fn building(&self) -> bool {
        self.spec
            .steps
            .iter()
            .any(|s| !matches!(s, Step::Test { .. }))
    }

    /// The staging folder, relative to the root.
    fn stage(&self) -> &'static str {
        if self.building() {
            BUILD_STAGE
        } else {
            TEST_STAGE
        }
    }

    fn mount(
        &mut self,
        src: Option<&str>,
        target: &Path,
        fstype: Option<&str>,
        flags: libc::c_ulong,
        data: Option<&str>,
    ) -> io::Result<()> {
        mount(src, target, fstype, flags, data)?;
        self.mounts.push(target.to_path_buf());
        Ok(())
    }

    /// `dir` below the root, made (and noted for removal) when missing.
    fn mount_point(&mut self, rel: &str, file: bool) -> io::Result<Option<PathBuf>> {
        let p = self.root().join(rel);
        match fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_symlink() => return Ok(None),
            Ok(_) => return Ok(Some(p)),
            Err(_) => {}
        }
        if file {
            fs::write(&p, b"")?;
        } else {
            fs::create_dir(&p)?;
        }
        self.made.push(p.clone());
        Ok(Some(p))
    }

    fn setup(&mut self) -> io::Result<()> {
        let root = self.root().to_path_buf();
        if let Some(o) = &self.spec.overlay {
            let data = overlay_options(&o.lower, &o.upper, &o.work);
            self.mount(Some("layer"), &root, Some("overlay"), 0, Some(&data))?;
        }
        if !root.join("bin/sh").exists() {
            return Err(io::Error::other(
                "the image has no /bin/sh to run its provisioners and tests with",
            ));
        }
        self.mount_point("proc", false)?;
        if let Some(dev) = self.mount_point("dev", false)? {
            self.mount_dev(&dev)?;
        }
        if let Some(sys) = self.mount_point("sys", false)? {
            // Best effort: sysfs cannot be mounted in every container.
            let _ = self.mount(
                Some("sysfs"),
                &sys,
                Some("sysfs"),
                libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                None,
            );
        }
        for dir in ["run", "tmp"] {
            if let Some(p) = self.mount_point(dir, false)? {
                self.mount(
                    Some("tmpfs"),
                    &p,
                    Some("tmpfs"),
                    libc::MS_NOSUID | libc::MS_NODEV,
                    Some(if dir == "tmp" {
                        "mode=1777"
                    } else {
                        "mode=0755"
                    }),
                )?;
            }
        }
        for dir in &self.spec.binds.clone() {
            self.bind_host_folder(&root, dir)?;
        }
        self.stage_host_files(&root)?;
        self.make_stage(&root)
    }

    /// Binds the host folder `dir` read-only at the same path below the root, making (and
    /// noting for removal) the folders on the way.
    fn bind_host_folder(&mut self, root: &Path, dir: &Path) -> io::Result<()> {
        let rel = dir.strip_prefix("/").unwrap_or(dir);
        let mut at = root.to_path_buf();
        for part in rel.components() {
            at.push(part);
            match fs::symlink_metadata(&at) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => {
                    return Err(io::Error::other(format!(
                        "cannot show the apt archive `{}` to the build: `{}` in the image is not a folder",
                        dir.display(),
                        at.display()
                    )))
                }
                Err(_) => {
                    fs::create_dir(&at)?;
                    self.made.push(at.clone());
                }
            }
        }
        let src = dir.display().to_string();
        self.mount(Some(&src), &at, None, libc::MS_BIND | libc::MS_REC, None)?;
        mount(
            None,
            &at,
            None,
            libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | libc::MS_REC,
            None,
        )
    }

    /// A small `/dev` of the sandbox's own: a tmpfs with the harmless nodes bound from the
    /// host's, its own `devpts` and `shm`.
    fn mount_dev(&mut self, dev: &Path) -> io::Result<()> {
        self.mount(
            Some("dev"),
            dev,
            Some("tmpfs"),
            libc::MS_NOSUID,
            Some("mode=0755,size=64k"),
        )?;
        for node in ["null", "zero", "full", "random", "urandom", "tty"] {
            let target = dev.join(node);
            fs::write(&target, b"")?;
            self.mount(
                Some(&format!("/dev/{node}")),
                &target,
                None,
                libc::MS_BIND,
                None,
            )?;
        }
        for dir in ["pts", "shm"] {
            fs::create_dir(dev.join(dir))?;
        }
        self.mount(
            Some("devpts"),
            &dev.join("pts"),
            Some("devpts"),
            libc::MS_NOSUID | libc::MS_NOEXEC,
            Some("newinstance,ptmxmode=0666,mode=0620"),
        )?;
        self.mount(
            Some("shm"),
            &dev.join("shm"),
            Some("tmpfs"),
            libc::MS_NOSUID | libc::MS_NODEV,
            Some("mode=1777"),
        )?;
        std::os::unix::fs::symlink("pts/ptmx", dev.join("ptmx"))?;
        std::os::unix::fs::symlink("/proc/self/fd", dev.join("fd"))
    }

    /// The host's resolver for downloads, and in builds a `policy-rc.d` that keeps packages
    /// from starting services; both are put back as they were when the sandbox ends.
    fn stage_host_files(&mut self, root: &Path) -> io::Result<()> {
        if self.spec.host_network && root.join("etc").is_dir() {
            // The host's resolver for downloads; the image's own file comes back afterwards.
            let host = fs::read("/etc/resolv.conf").unwrap_or_default();
            self.replace_file(&root.join("etc/resolv.conf"), &host, 0o644)?;
        }
        if self.building() && root.join("usr/sbin").is_dir() {
            // No package starts a service in the build (Debian's invoke-rc.d convention).
            self.replace_file(
                &root.join("usr/sbin/policy-rc.d"),
                b"#!/bin/sh\n# layer: no service starts during an image build\nexit 101\n",
                0o755,
            )?;
        }
        Ok(())
    }

    /// The private folder roles and tests are staged in (`/.layer` in builds), made for the
    /// sandbox's life; an image that has one of its own is refused.
    fn make_stage(&mut self, root: &Path) -> io::Result<()> {
        let stage = root.join(self.stage());
        if self.building() && fs::symlink_metadata(&stage).is_ok() {
            return Err(io::Error::other(format!(
                "the image already has a /{BUILD_STAGE}, which layer uses for staging roles: remove it from the image"
            )));
        }
        fs::create_dir_all(&stage)?;
        fs::set_permissions(&stage, fs::Permissions::from_mode(0o700))?;
        self.made.push(stage.clone());
        fs::create_dir(stage.join("role"))?;
        self.made.push(stage.join("role"));
        Ok(())
    }

    /// Puts `bytes` at `path` (a file or a link, or nothing) for the sandbox's life.
    fn replace_file(&mut self, path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
        let saved = match fs::symlink_metadata(path) {
            Ok(m) if m.file_type().is_symlink() => Some(Saved::Link(fs::read_link(path)?)),
            Ok(m) if m.is_file() => Some(Saved::File(fs::read(path)?, m.mode() & 0o7777)),
            Ok(_) => return Ok(()),
            Err(_) => None,
        };
        let _ = fs::remove_file(path);
        fs::write(path, bytes)?;
        fs::set_permissions(path, fs::Permissions::from_mode(mode))?;
        self.restore
            .push((path.to_path_buf(), bytes.to_vec(), saved));
        Ok(())
    }

    fn steps(&mut self) -> io::Result<i32> {
        let mut results = Vec::new();
        for (n, step) in self.spec.steps.iter().enumerate() {
            match step {
                Step::Shell => {
                    let status = self.run_in_root("cd / && exec /bin/sh", &[], None, None)?;
                    return Ok(exit_code(status));
                }
                Step::Packages { names, sources } => {
                    say("packages");
                    let list = format!("layer-{}.list", self.spec.hostname);
                    let has_apt = ["usr/bin/apt-get", "bin/apt-get"]
                        .iter()
                        .any(|p| self.root().join(p).exists());
                    let ok = match &self.spec.apt {
                        Some(apt) if has_apt => self.install_cached(apt, names, sources, &list)?,
                        _ => {
                            let script = install_script(self.root(), names, sources, &list)?;
                            self.run_in_root(&script, &[], None, None)?.success()
                        }
                    };
                    if !ok {
                        eprintln!("layer: installing {} failed", names.join(" "));
                        return Ok(1);
                    }
                }
                Step::Role { name, dir, env } => {
                    say(&format!("role {name}"));
                    self.stage_role(dir)?;
                    if dir.join("files").is_dir() {
                        copy_files_into(self.root())?;
                    }
                    if dir.join("provision.sh").is_file() {
                        let status = self.run_in_root(
                            "cd /.layer/role && exec /bin/sh ./provision.sh",
                            env,
                            None,
                            None,
                        )?;
                        if !status.success() {
                            eprintln!(
                                "layer: provision.sh of role `{name}` failed ({})",
                                describe(status)
                            );
                            self.unstage_role()?;
                            return Ok(1);
                        }
                    }
                    self.unstage_role()?;
                }
                Step::Test {
                    name,
                    role,
                    script,
                    timeout_secs,
                } => {
                    say(&format!("test {name}"));
                    let out_dir = self
                        .spec
                        .results
                        .clone()
                        .expect("tests have a results folder");
                    let out_path = out_dir.join(format!("{n:03}.out"));
                    let out = fs::File::create(&out_path)?;
                    let cmd = match role {
                        Some(dir) => {
                            self.stage_role(dir)?;
                            format!(
                                "cd /{TEST_STAGE}/role && exec /bin/sh {}",
                                crate::backend::bundle::sh_quote(script)
                            )
                        }
                        None => format!(
                            "cd / && exec /bin/sh -c {}",
                            crate::backend::bundle::sh_quote(script)
                        ),
                    };
                    let started = Instant::now();
                    let status = self.run_in_root(
                        &cmd,
                        &[],
                        Some(out),
                        Some(Duration::from_secs(*timeout_secs)),
                    );
                    if role.is_some() {
                        self.unstage_role()?;
                    }
                    let (passed, status) = match status {
                        Ok(s) => (s.success(), describe(s)),
                        Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                            (false, format!("timed out after {timeout_secs} s"))
                        }
                        Err(e) => return Err(e),
                    };
                    // The test's output also goes to the log.
                    let text = fs::read(&out_path).unwrap_or_default();
                    let _ = io::stdout().write_all(&text);
                    results.push(TestResult {
                        name: name.clone(),
                        passed,
                        status,
                        duration_ms: started.elapsed().as_millis() as u64,
                    });
                }
            }
        }
        if let Some(dir) = &self.spec.results {
            let json = serde_json::to_vec_pretty(&results).expect("results serialize");
            fs::write(dir.join("results.json"), json)?;
        }
        Ok(0)
    }

    fn stage_role(&mut self, dir: &Path) -> io::Result<()> {
        let target = self.root().join(self.stage()).join("role");
        let src = dir.display().to_string();
        mount(
            Some(&src),
            &target,
            None,
            libc::MS_BIND | libc::MS_REC,
            None,
        )?;
        mount(
            None,
            &target,
            None,
            libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | libc::MS_REC,
            None,
        )
        .inspect_err(|_| {
            let _ = umount(&target);
        })
    }

    fn unstage_role(&mut self) -> io::Result<()> {
        umount(&self.root().join(self.stage()).join("role"))
    }

    /// Runs `script` with `/bin/sh -c` in the root, as pid 1 of a new pid namespace.
    fn run_in_root(
        &self,
        script: &str,
        env: &[(String, String)],
        output: Option<fs::File>,
        timeout: Option<Duration>,
    ) -> io::Result<std::process::ExitStatus> {
        let exe = std::env::current_exe()?;
        let mut cmd = Command::new("unshare");
        cmd.arg("--pid")
            .arg("--fork")
            .arg("--kill-child")
            .arg(format!(
                "--mount-proc={}",
                self.root().join("proc").display()
            ))
            .arg(exe)
            .arg("__sandbox")
            .arg("--enter")
            .arg(self.root())
            .arg("/bin/sh")
            .arg("-c")
            .arg(script)
            .env_clear();
        if !self.spec.steps.iter().any(|s| matches!(s, Step::Shell)) {
            cmd.stdin(Stdio::null());
        }
        cmd.envs(self.spec.env.iter().map(|(k, v)| (k, v)));
        cmd.envs(env.iter().map(|(k, v)| (k, v)));
        for name in &self.spec.secret_names {
            if let Some(v) = std::env::var_os(name) {
                cmd.env(name, v);
            }
        }
        if let Some(out) = output {
            cmd.stdout(out.try_clone()?).stderr(out);
        }
        // If the sandbox dies (layer was killed), `unshare` dies with it, and `--kill-child`
        // takes the command's whole pid namespace along.
        crate::process::dies_with_layer(&mut cmd);
        let mut child = cmd.spawn().map_err(|e| {
            io::Error::new(e.kind(), format!("starting `unshare` (util-linux): {e}"))
        })?;
        let Some(limit) = timeout else {
            return child.wait();
        };
        let started = Instant::now();
        loop {
            if let Some(s) = child.try_wait()? {
                return Ok(s);
            }
            if started.elapsed() > limit {
                let _ = child.kill();
                let _ = child.wait();
                return Err(io::Error::new(io::ErrorKind::TimedOut, "timed out"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn teardown(&mut self) -> io::Result<()> {
        let mut first_err = None;
        let mut note = |r: io::Result<()>| {
            if let Err(e) = r {
                first_err.get_or_insert(e);
            }
        };
        for (path, ours, saved) in self.restore.drain(..).rev() {
            // A package may have replaced the file meanwhile (systemd-resolved makes
            // resolv.conf a link): then the package's version stays.
            let still_ours = fs::symlink_metadata(&path).is_ok_and(|m| m.is_file())
                && fs::read(&path).is_ok_and(|b| b == ours);
            if !still_ours {
                continue;
            }
            let _ = fs::remove_file(&path);
            note(match saved {
                None => Ok(()),
                Some(Saved::Link(target)) => std::os::unix::fs::symlink(target, &path),
                Some(Saved::File(bytes, mode)) => fs::write(&path, bytes)
                    .and_then(|()| fs::set_permissions(&path, fs::Permissions::from_mode(mode))),
            });
        }
        // Anything a test left mounted below the root goes first (best effort), then ours.
        let _ = umount(&self.root().join(self.stage()).join("role"));
        let overlay_root = self
            .spec
            .overlay
            .as_ref()
            .map(|_| self.root().to_path_buf());
        for m in self.mounts.drain(..).rev() {
            if Some(&m) == overlay_root.as_ref() {
                continue;
            }
            note(umount(&m));
        }
        for p in self.made.drain(..).rev() {
            let r = match fs::symlink_metadata(&p) {
                Ok(m) if m.is_dir() => fs::remove_dir(&p),
                Ok(_) => fs::remove_file(&p),
                Err(_) => Ok(()),
            };
            note(r);
        }
        if let Some(root) = overlay_root {
            note(umount(&root));
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

fn say(stage: &str) {
    eprintln!("==> {stage}");
}

/// Lets this process outlive the terminal's SIGINT and SIGQUIT, which go to every process
/// of the foreground group: caught by a handler that does nothing (not ignored, so the
/// processes it starts get them as usual).
pub fn ignore_terminal_signals() -> io::Result<()> {
    let flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGQUIT] {
        signal_hook::flag::register(sig, std::sync::Arc::clone(&flag))?;
    }
    Ok(())
}

/// A process's exit code as a shell gives it: the code, or 128 + the signal that killed it.
pub fn exit_code(s: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    s.code()
        .or_else(|| s.signal().map(|sig| 128 + sig))
        .unwrap_or(1)
}

fn describe(s: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (s.code(), s.signal()) {
        (Some(c), _) => format!("exit status {c}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        _ => "ended".into(),
    }
}

/// Environment of every command in a sandbox: a fixed `PATH`, `HOME`, `LANG`, `TERM`, then
/// the given variables in order (later ones win).
pub fn base_env(vars: &BTreeMap<String, String>) -> Vec<(String, String)> {
    let mut env = vec![
        (
            "PATH".to_string(),
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string(),
        ),
        ("HOME".to_string(), "/root".to_string()),
        ("LANG".to_string(), "C.UTF-8".to_string()),
        ("TERM".to_string(), "dumb".to_string()),
    ];
    env.extend(vars.iter().map(|(k, v)| (k.clone(), v.clone())));
    env
}
