//! Backends build one image each: the executor hands a [`Job`] to a [`Builder`] on a worker
//! thread and gets the new artifact's id back. Processes are started only here, each in its
//! own process group registered with [`Procs`], so a Ctrl-C can stop a build's whole tree.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use crate::model::Backend;
use bundle::BundleRole;

pub mod bundle;
pub mod packer;
pub mod redact;
pub mod rootfs;

/// A role to apply: its name, its folder (absolute) and its `[vars]`.
pub type JobRole = (String, PathBuf, BTreeMap<String, String>);

/// One build, as a backend sees it.
#[derive(Debug, Clone)]
pub struct Job {
    pub image: String,
    pub key: String,
    /// `MAJOR.MINOR.BUILD-YYYYMMDD_HHMM`.
    pub version: String,
    /// `NAME-MAJOR.MINOR.BUILD`.
    pub artifact_name: String,
    /// The parent's artifact id, or the origin's id.
    pub source: String,
    /// The roles to apply, in order: name, folder (absolute), the role's `[vars]`.
    pub roles: Vec<JobRole>,
    /// Installed before the roles run.
    pub packages: Vec<String>,
    /// The image's `[vars]` (in shallow builds, the chain's, the image's own winning).
    pub vars: BTreeMap<String, String>,
    /// Secret variables and their values: environment only, never argv, files or records.
    pub secrets: Vec<(String, String)>,
    /// A private folder for this build, inside the run's 0700 folder: not made yet (a backend
    /// that needs one makes it), removed afterwards.
    pub work: PathBuf,
    pub project_root: PathBuf,
    /// The origin at the root of the image's chain.
    pub origin: String,
    /// Deep builds: the parent's record, whose artifact this build starts from.
    pub parent: Option<crate::record::Record>,
}

/// What a successful build produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Built {
    pub id: String,
    /// A local artifact file or folder, to be moved into the cache.
    pub local: Option<PathBuf>,
    /// A remote artifact: where it lives (the Packer builder that made it).
    pub remote: Option<String>,
}

/// Where a build writes its output: the image's log (secrets redacted).
pub type Log<'a> = &'a Mutex<dyn Write + Send + 'a>;

pub trait Builder: Sync {
    /// Builds `job`; `Err` carries a one-line reason (the details are in the log).
    fn build(&self, job: &Job, log: Log, procs: &Procs) -> Result<Built, String>;
}

/// The process groups of running builds, so that an interrupt can stop them all.
#[derive(Default)]
pub struct Procs {
    groups: Mutex<BTreeSet<i32>>,
    cancelled: AtomicBool,
}

impl Procs {
    pub fn cancelled(&self) -> bool {
        self.cancelled.load(Ordering::SeqCst)
    }

    /// Stops every running build: SIGTERM to each process group, and no new process starts.
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
        self.signal_all(libc::SIGTERM);
    }

    pub fn signal_all(&self, sig: i32) {
        for &pg in self.groups.lock().expect("no panics while locked").iter() {
            // SAFETY: kill(2) on a process group we started; no memory is shared.
            unsafe {
                libc::kill(-pg, sig);
            }
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
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut child = cmd.spawn()?;
        let pg = child.id() as i32;
        self.groups
            .lock()
            .expect("no panics while locked")
            .insert(pg);
        if self.cancelled() {
            // SAFETY: as in `signal_all`.
            unsafe {
                libc::kill(-pg, libc::SIGTERM);
            }
        }
        let out = child.stdout.take().expect("piped");
        let err = child.stderr.take().expect("piped");
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
            s.spawn(move || copy(Box::new(err)));
            let status = child.wait();
            // Whatever the group's leader left behind goes with it, before the copies are
            // joined: a process left running in the background holds the pipes open, and
            // waiting for their end would wait for it.
            // SAFETY: as in `signal_all`.
            unsafe {
                libc::kill(-pg, libc::SIGKILL);
            }
            status
        });
        self.groups
            .lock()
            .expect("no panics while locked")
            .remove(&pg);
        status
    }
}

/// `kind = "command"` (SPEC §4.2): runs the configured command once per image, in the project
/// root, with a clean environment declared here.
pub struct CommandBackend {
    pub command: Vec<String>,
}

impl CommandBackend {
    pub fn new(backend: &Backend) -> Self {
        CommandBackend {
            command: backend.command.clone(),
        }
    }
}

/// Where `program` is on layer's own `PATH`, for backends that say before any build starts
/// that a tool is missing.
pub fn find_program(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

/// `PATH` for build processes: the host's, or a standard one.
fn host_path() -> String {
    std::env::var("PATH")
        .unwrap_or_else(|_| "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into())
}

/// Stages the job's bundle in `job.work/bundle`.
pub fn stage_bundle(job: &Job) -> Result<PathBuf, String> {
    let dir = job.work.join("bundle");
    let roles: Vec<BundleRole> = job
        .roles
        .iter()
        .map(|(name, d, vars)| BundleRole { name, dir: d, vars })
        .collect();
    bundle::stage(&dir, &job.image, &roles, &job.packages, &job.vars)
        .map_err(|e| format!("staging the bundle: {e}"))?;
    Ok(dir)
}

/// The environment every external backend gets: `PATH`, `HOME`, `TMPDIR`, `LANG`, the image's
/// variables and secrets, and `LAYER_*`.
pub fn job_env(job: &Job, bundle: &Path) -> Vec<(String, String)> {
    let tmp = job.work.join("tmp");
    let _ = std::fs::create_dir_all(&tmp);
    let mut env = vec![
        ("PATH".to_string(), host_path()),
        ("HOME".to_string(), job.work.display().to_string()),
        ("TMPDIR".to_string(), tmp.display().to_string()),
        ("LANG".to_string(), "C.UTF-8".to_string()),
    ];
    env.extend(job.vars.iter().map(|(k, v)| (k.clone(), v.clone())));
    env.extend(job.secrets.iter().cloned());
    env.extend([
        ("LAYER_IMAGE".to_string(), job.image.clone()),
        ("LAYER_VERSION".to_string(), job.version.clone()),
        ("LAYER_KEY".to_string(), job.key.clone()),
        ("LAYER_SOURCE".to_string(), job.source.clone()),
        ("LAYER_BUNDLE".to_string(), bundle.display().to_string()),
    ]);
    env
}

impl Builder for CommandBackend {
    fn build(&self, job: &Job, log: Log, procs: &Procs) -> Result<Built, String> {
        let bundle = stage_bundle(job)?;
        let output = job.work.join("output");
        let program = &self.command[0];
        let program_path = if program.contains('/') && !program.starts_with('/') {
            job.project_root.join(program)
        } else {
            PathBuf::from(program)
        };
        let mut cmd = Command::new(&program_path);
        cmd.args(&self.command[1..])
            .current_dir(&job.project_root)
            .env_clear();
        cmd.envs(job_env(job, &bundle));
        cmd.env("LAYER_OUTPUT", &output);
        let shown = self.command.join(" ");
        let status = procs.run(&mut cmd, log).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => format!("`{shown}`: command not found"),
            io::ErrorKind::PermissionDenied => format!("`{shown}`: not executable (chmod +x?)"),
            _ => format!("`{shown}`: {e}"),
        })?;
        if !status.success() {
            return Err(match status.code() {
                Some(c) => format!("`{shown}` exited with status {c}"),
                None => format!("`{shown}` was killed by a signal"),
            });
        }
        let id = std::fs::read_to_string(&output)
            .unwrap_or_default()
            .trim()
            .to_string();
        if id.is_empty() {
            return Err(format!(
                "`{shown}` exited 0 but wrote no artifact id to $LAYER_OUTPUT"
            ));
        }
        if id.contains('\n') {
            return Err(format!(
                "`{shown}` wrote several lines to $LAYER_OUTPUT; it takes one artifact id"
            ));
        }
        Ok(Built {
            id,
            local: None,
            remote: None,
        })
    }
}
