//! `layer shell IMAGE[@VERSION] [--failed]`: `/bin/sh` in a throwaway instance of a rootfs
//! build, or of the failed build `layer build --keep-failed` kept, with the mounts a build has
//! ([`crate::backend::rootfs::check::shell`]); its stdin, stdout and stderr are the terminal's,
//! its exit code is layer's.

use clap::Args;

use super::args::Global;
use super::packages::find_build;
use super::resolve::{open, resolve_targets};
use crate::backend::rootfs::{check, check_root};
use crate::error::{Error, ErrorKind, Result};
use crate::model::BackendKind;

/// The flags of `layer shell`.
#[derive(Args, Debug)]
pub struct ShellArgs {
    /// IMAGE or IMAGE@VERSION [default: the build of the current inputs, else the newest]
    target: String,
    /// The image's failed build that `layer build --keep-failed` kept, on what it was built on
    #[arg(long)]
    failed: bool,
}

pub fn run(g: &Global, args: &ShellArgs) -> Result<i32> {
    let ws = open(g, None)?;
    let (name, spec) = crate::version::split_target(&args.target);
    let i = resolve_targets(&ws.project, &[name.to_string()])?[0];
    if args.failed && spec.is_some() {
        return Err(Error::Usage {
            kind: ErrorKind::NoKeptBuild,
            message: format!("`layer shell --failed` opens the one failed build of `{name}` that is kept; it takes no version"),
            hint: Some(format!("run `layer shell --failed {name}`")),
        });
    }
    let image = &ws.project.images[i];
    let backend = ws.project.backend_of(image);
    if backend.kind != BackendKind::Rootfs {
        return Err(Error::Usage {
            kind: ErrorKind::NotRootfs,
            message: format!(
                "`{name}` is built with the `{}` backend; `layer shell` opens images of the `rootfs` backend",
                backend.kind.as_str()
            ),
            hint: Some("start an instance of it where it runs (a VM, a cloud)".into()),
        });
    }
    if args.failed {
        let kept = ws.cache.kept_failed(name);
        if !kept.is_dir() {
            return Err(Error::Usage {
                kind: ErrorKind::NoKeptBuild,
                message: format!("`{name}` has no failed build kept"),
                hint: Some(format!(
                    "build it with `layer build --keep-failed {name}`: a failed build's folder is then kept until `layer cache gc`"
                )),
            });
        }
        check_root(name, "opened")?;
        return check::shell_failed(&ws, i, &kept);
    }
    let record = find_build(&ws, &args.target)?;
    if !ws.cache.artifact_exists(&record) {
        return Err(Error::Usage {
            kind: ErrorKind::NotBuilt,
            message: format!(
                "{} {} has no local artifact in the cache",
                record.name, record.version
            ),
            hint: Some(format!(
                "run `layer build {name}` (or `layer pull {name}`) first"
            )),
        });
    }
    check_root(name, "opened")?;
    check::shell(&ws, i, &record)
}
