//! The `packer` backend (SPEC §4.3): `packer build -machine-readable` on the backend's
//! template, once per image to build, in the project root.
//!
//! The template gets the variables `source_image` (the parent's artifact id, or the origin's
//! id), `image_name`, `image_version`, `layer_key` and `bundle_dir` (the staged roles with
//! `apply.sh`, as the `command` backend's `LAYER_BUNDLE`), then the image's `[vars]`, each as
//! `-var NAME=VALUE`: declare them all in the template. Secrets reach Packer through its
//! environment only (`env("NAME")` in HCL2), never its arguments.
//!
//! Packer's machine-readable output is turned back into its human messages for the image's
//! log; the artifact id is the `artifact,0,id` line, and where it lives the `artifact,0,
//! builder-id` line (`mitchellh.amazonebs`). A run that ends well but prints no artifact id
//! is a failure and records nothing.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use crate::backend::{job_env, stage_bundle, Builder, Built, Job, Log, Procs};
use crate::model::Backend;

pub struct PackerBackend {
    /// The template, relative to the project root.
    pub template: String,
    pub program: PathBuf,
}

impl PackerBackend {
    /// The backend, or why it cannot run: the program `packer` must be on `PATH`.
    pub fn new(backend: &Backend) -> Result<Self, String> {
        let program = crate::backend::find_program("packer").ok_or_else(|| {
            format!(
                "backend `{}` runs Packer, and `packer` is not on PATH",
                backend.name
            )
        })?;
        Ok(PackerBackend {
            template: backend.template.clone().unwrap_or_default(),
            program,
        })
    }

    /// `packer validate -syntax-only` of the template, in the project root (the template's
    /// variables get their values only at build time); Packer's output when it fails.
    pub fn validate(&self, root: &Path) -> Result<(), String> {
        let out = Command::new(&self.program)
            .args(["validate", "-syntax-only"])
            .arg(&self.template)
            .current_dir(root)
            .output()
            .map_err(|e| format!("`packer` cannot be started: {e}"))?;
        if out.status.success() {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        Err(text.trim().to_string())
    }

    /// `packer build` with the job's variables.
    /// Run under layer's reaper, so no plugin process outlives the build, or layer.
    pub fn command(&self, job: &Job, bundle: &Path) -> crate::process::Reaped {
        let mut cmd = crate::process::Reaped::new(&self.program);
        cmd.arg("build")
            .arg("-machine-readable")
            .arg("-color=false");
        let vars = [
            ("source_image", job.source.as_str()),
            ("image_name", job.image.as_str()),
            ("image_version", job.version.as_str()),
            ("layer_key", job.key.as_str()),
            ("bundle_dir", &*bundle.to_string_lossy()),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()));
        for (k, v) in vars
            .iter()
            .cloned()
            .chain(job.vars.iter().map(|(k, v)| (k.clone(), v.clone())))
        {
            cmd.arg("-var").arg(format!("{k}={v}"));
        }
        cmd.arg(&self.template);
        cmd
    }
}

impl Builder for PackerBackend {
    fn build(&self, job: &Job, log: Log, procs: &Procs) -> Result<Built, String> {
        let bundle = stage_bundle(job)?;
        let mut cmd = self.command(job, &bundle);
        cmd.current_dir(&job.project_root).env_clear();
        cmd.envs(job_env(job, &bundle));
        // Packer keeps its plugins and cache under HOME, which is the build's work folder.
        cmd.env("PACKER_NO_COLOR", "1");
        cmd.env("CHECKPOINT_DISABLE", "1");
        let lines = Mutex::new(MachineReadable {
            log,
            pending: Vec::new(),
            id: None,
            builder: None,
        });
        let status = procs.run_reaped(&cmd, &lines).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => "`packer`: command not found".to_string(),
            _ => format!("`packer`: {e}"),
        })?;
        let mut parsed = lines.into_inner().expect("no panics while locked");
        parsed.flush_pending();
        if !status.success() {
            return Err(match status.code() {
                Some(c) => format!("`packer build {}` exited with status {c}", self.template),
                None => format!("`packer build {}` was killed by a signal", self.template),
            });
        }
        let Some(id) = parsed.id.filter(|id| !id.trim().is_empty()) else {
            return Err(format!(
                "`packer build {}` succeeded but printed no artifact id (no `artifact,0,id` line): does the template's builder produce an artifact?",
                self.template
            ));
        };
        Ok(Built {
            id,
            local: None,
            remote: Some(parsed.builder.unwrap_or_else(|| "packer".into())),
            packages: None,
        })
    }
}

/// Reads Packer's `-machine-readable` lines (`time,target,type,data...`): `ui` messages go to
/// the log as Packer would print them, the first artifact's id and builder are kept.
struct MachineReadable<'a> {
    log: Log<'a>,
    pending: Vec<u8>,
    id: Option<String>,
    builder: Option<String>,
}

impl MachineReadable<'_> {
    fn line(&mut self, line: &str) {
        let fields: Vec<&str> = line.splitn(4, ',').collect();
        let text = match fields.as_slice() {
            [_, _, "ui", data] => {
                let msg = data.split_once(',').map_or(*data, |(_, m)| m);
                Some(unescape(msg))
            }
            [_, _, "artifact", data] => {
                let parts: Vec<&str> = data.splitn(3, ',').collect();
                match parts.as_slice() {
                    ["0", "id", id] if self.id.is_none() => self.id = Some(unescape(id)),
                    ["0", "builder-id", b] if self.builder.is_none() => {
                        self.builder = Some(unescape(b));
                    }
                    _ => {}
                }
                None
            }
            // Anything else that is not machine-readable (a crash, a plugin's own output).
            [t, ..] if t.parse::<u64>().is_err() => Some(line.to_string()),
            _ => None,
        };
        if let Some(t) = text {
            let mut l = self.log.lock().expect("no panics while locked");
            let _ = l.write_all(t.as_bytes());
            let _ = l.write_all(b"\n");
        }
    }

    fn flush_pending(&mut self) {
        if !self.pending.is_empty() {
            let rest = String::from_utf8_lossy(&std::mem::take(&mut self.pending)).into_owned();
            self.line(&rest);
        }
    }
}

impl Write for MachineReadable<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.pending.extend_from_slice(buf);
        while let Some(i) = self.pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=i).collect();
            let s = String::from_utf8_lossy(&line[..line.len() - 1]).into_owned();
            self.line(s.trim_end_matches('\r'));
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Packer's escapes in machine-readable data: commas, newlines and carriage returns.
fn unescape(s: &str) -> String {
    s.replace("%!(PACKER_COMMA)", ",")
        .replace("\\n", "\n")
        .replace("\\r", "\r")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn machine_readable_lines_become_messages_and_an_artifact() {
        let log: Mutex<Vec<u8>> = Mutex::new(Vec::new());
        {
            let mut m = MachineReadable {
                log: &log,
                pending: Vec::new(),
                id: None,
                builder: None,
            };
            let out = "1,,ui,say,==> amazon-ebs: Creating AMI\n1,,ui,message,    amazon-ebs: a%!(PACKER_COMMA) b\\nc\n1,amazon-ebs,artifact-count,1\n1,amazon-ebs,artifact,0,builder-id,mitchellh.amazonebs\n1,amazon-e";
            m.write_all(out.as_bytes()).unwrap();
            m.write_all(b"bs,artifact,0,id,us-east-1:ami-0abc\n1,amazon-ebs,artifact,1,id,other\n")
                .unwrap();
            m.flush_pending();
            assert_eq!(m.id.as_deref(), Some("us-east-1:ami-0abc"));
            assert_eq!(m.builder.as_deref(), Some("mitchellh.amazonebs"));
        }
        assert_eq!(
            String::from_utf8(log.into_inner().unwrap()).unwrap(),
            "==> amazon-ebs: Creating AMI\n    amazon-ebs: a, b\nc\n"
        );
    }
}
