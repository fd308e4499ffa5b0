//! The `command` backend (SPEC §4.2) and what every external backend shares: the staged
//! bundle and the clean environment a build process gets.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use super::bundle::{self, BundleRole};
use super::procs::Procs;
use super::{Builder, Built, Job, Log};
use crate::cache::stage::StageRole;
use crate::model::Backend;

/// `kind = "command"` (SPEC §4.2): runs the configured command once per image, in the project
/// root, with a clean environment declared here.
pub struct CommandBackend {
    pub command: Vec<String>,
    /// Where the command's program was found on `PATH`, once per run.
    found: OnceLock<PathBuf>,
}

impl CommandBackend {
    pub fn new(backend: &Backend) -> Self {
        CommandBackend {
            command: backend.command.clone(),
            found: OnceLock::new(),
        }
    }

    /// The program to start for `program_path`: the file it names, or the one found on `PATH`
    /// (looked up once per run: a build costs no search, here or in the reaper's `execvp`).
    fn program(&self, program_path: &Path) -> io::Result<PathBuf> {
        if let Some(found) = self.found.get() {
            return Ok(found.clone());
        }
        let found = super::procs::resolve_program(program_path, &host_path())?;
        let named = program_path.as_os_str().as_encoded_bytes().contains(&b'/');
        // A relative `PATH` entry is relative to the build's folder, not layer's: the
        // reaper's `execvp` searches then, as it would without layer.
        if named || !found.is_absolute() {
            return Ok(program_path.to_path_buf());
        }
        Ok(self.found.get_or_init(|| found).clone())
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
/// private work folder, made here unless an earlier build of the run left it, emptied), `LANG`,
/// the image's variables and secrets, and `LAYER_*`.
pub fn job_env(job: &Job, bundle: &Path) -> Vec<(String, String)> {
    match std::fs::create_dir(&job.work) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let _ = std::fs::create_dir_all(&job.work);
        }
        _ => {}
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

/// `$LAYER_OUTPUT` of a build whose work folder is `work`: `WORK.output` beside it, empty. It
/// is not in the build's `HOME`, so it outlives the build and the next build in the same
/// folder truncates it rather than making a new file (see `exec::WorkFolders`); whatever a
/// build left there (a link, a folder, a FIFO: opened without blocking) is replaced.
fn output_file(work: &Path) -> Result<PathBuf, String> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut name = work.as_os_str().to_owned();
    name.push(".output");
    let path = PathBuf::from(name);
    let open = || {
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(&path)
            .and_then(|f| f.metadata())
            .and_then(|m| match m.is_file() {
                true => Ok(()),
                false => Err(io::Error::other("not a regular file")),
            })
    };
    if open().is_ok() {
        return Ok(path);
    }
    let _ = crate::fsutil::remove_tree(&path);
    open()
        .map(|()| path.clone())
        .map_err(|e| format!("cannot make `$LAYER_OUTPUT` (`{}`): {e}", path.display()))
}

impl Builder for CommandBackend {
    fn build(&self, job: &Job, log: Log, procs: &Procs) -> Result<Built, String> {
        let bundle = stage_bundle(job)?;
        let output = output_file(&job.work)?;
        let program = &self.command[0];
        let program_path = if program.contains('/') && !program.starts_with('/') {
            job.project_root.join(program)
        } else {
            PathBuf::from(program)
        };
        let shown = self.command.join(" ");
        let start = self.program(&program_path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => format!("`{shown}`: command not found"),
            io::ErrorKind::PermissionDenied => format!("`{shown}`: not executable (chmod +x?)"),
            _ => format!("`{shown}`: {e}"),
        })?;
        // Under layer's reaper: nothing the command starts outlives the build, or layer.
        let mut cmd = crate::process::Reaped::new(&start);
        cmd.arg0(&program_path)
            .args(&self.command[1..])
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn the_output_file_is_emptied_in_place_and_whatever_replaced_it_goes() {
        let t = tempfile::tempdir().unwrap();
        let work = t.path().join("build-1");
        let out = output_file(&work).unwrap();
        assert_eq!(out, t.path().join("build-1.output"));
        std::fs::write(&out, "ami-1\n").unwrap();
        let ino = std::fs::metadata(&out).unwrap().ino();
        assert_eq!(output_file(&work).unwrap(), out);
        let meta = std::fs::metadata(&out).unwrap();
        assert_eq!(
            (meta.len(), meta.ino()),
            (0, ino),
            "truncated, not made anew"
        );
        // A link (its target untouched), a folder, a FIFO (no reader: never blocks).
        let target = t.path().join("target");
        std::fs::write(&target, "keep").unwrap();
        std::fs::remove_file(&out).unwrap();
        std::os::unix::fs::symlink(&target, &out).unwrap();
        output_file(&work).unwrap();
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep");
        assert!(std::fs::symlink_metadata(&out).unwrap().is_file());
        std::fs::remove_file(&out).unwrap();
        std::fs::create_dir_all(out.join("sub")).unwrap();
        output_file(&work).unwrap();
        assert!(std::fs::symlink_metadata(&out).unwrap().is_file());
        std::fs::remove_file(&out).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &out,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        output_file(&work).unwrap();
        assert!(std::fs::symlink_metadata(&out).unwrap().is_file());
        assert_eq!(
            output_file(&t.path().join("gone/build-1")).unwrap_err(),
            format!(
                "cannot make `$LAYER_OUTPUT` (`{}`): No such file or directory (os error 2)",
                t.path().join("gone/build-1.output").display()
            )
        );
    }
}
