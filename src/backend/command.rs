//! The `command` backend (SPEC §4.2) and what every external backend shares: the staged
//! bundle and the clean environment a build process gets.

use std::io;
use std::path::{Path, PathBuf};

use super::bundle::{self, BundleRole};
use super::procs::Procs;
use super::{Builder, Built, Job, Log};
use crate::cache::stage::StageRole;
use crate::model::Backend;

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

/// `PATH` for build processes: the host's, or a standard one.
fn host_path() -> String {
    std::env::var("PATH")
        .unwrap_or_else(|_| "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into())
}

/// The job's bundle, staged in the cache once per content and shared (`cache::stage`).
pub fn stage_bundle(job: &Job) -> Result<PathBuf, String> {
    let roles: Vec<BundleRole> = job
        .roles
        .iter()
        .map(|(name, d, vars)| BundleRole { name, dir: d, vars })
        .collect();
    let (script, names) = bundle::apply_script(&job.image, &roles, &job.packages, &job.vars);
    let staged: Vec<StageRole> = job
        .roles
        .iter()
        .zip(&names)
        .zip(&job.trees)
        .map(|(((name, dir, _), staged), tree)| StageRole {
            staged,
            name,
            dir,
            tree,
        })
        .collect();
    job.cache
        .stage_bundle(&script, &staged)
        .map_err(|e| format!("staging the bundle: {e}"))
}

/// The environment every external backend gets: `PATH`, `HOME` and `TMPDIR` (both the build's
/// private work folder, made here: one folder made and removed per build), `LANG`, the image's
/// variables and secrets, and `LAYER_*`.
pub fn job_env(job: &Job, bundle: &Path) -> Vec<(String, String)> {
    if std::fs::create_dir(&job.work).is_err() {
        let _ = std::fs::create_dir_all(&job.work);
    }
    let work = job.work.display().to_string();
    let mut env = vec![
        ("PATH".to_string(), host_path()),
        ("HOME".to_string(), work.clone()),
        ("TMPDIR".to_string(), work),
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
        let shown = self.command.join(" ");
        super::procs::check_program(&program_path, &host_path()).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => format!("`{shown}`: command not found"),
            io::ErrorKind::PermissionDenied => format!("`{shown}`: not executable (chmod +x?)"),
            _ => format!("`{shown}`: {e}"),
        })?;
        // Under layer's reaper: nothing the command starts outlives the build, or layer.
        let mut cmd = crate::process::Reaped::new(&program_path);
        cmd.args(&self.command[1..])
            .current_dir(&job.project_root)
            .env_clear();
        cmd.envs(job_env(job, &bundle));
        cmd.env("LAYER_OUTPUT", &output);
        let status = procs.run_reaped(&cmd, log).map_err(|e| match e.kind() {
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
            packages: None,
        })
    }
}
