//! `layer init [DIR] [--origin debian|busybox]`: a minimal project that `layer build && layer
//! test` builds and tests as it is — an origin, a base image, a child image, a role with
//! `files/`, `provision.sh` and a test, and a `.gitignore` for the cache. It writes no file
//! that exists: when one does, it writes nothing.

use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};

use super::args::Global;
use crate::error::{Error, ErrorKind, Result};

/// The flags of `layer init`.
#[derive(Args, Debug)]
pub struct InitArgs {
    /// The folder to write the project into (made if missing) [default: the current folder]
    #[arg(value_name = "DIR")]
    folder: Option<PathBuf>,
    /// What the base image starts from: a Debian bookworm root filesystem (mmdebstrap and a
    /// mirror), or a static busybox (builds in seconds, offline)
    #[arg(long, value_enum, default_value_t = InitOrigin::Debian)]
    origin: InitOrigin,
}

/// `--origin` of `layer init`.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum InitOrigin {
    Debian,
    Busybox,
}

const BASE_IMAGE: &str = r#"description = "The base every image of this project is built on"
version = "1.0"
origin = "base-os"
roles = ["motd"]

[vars]
GREETING = "Welcome"

[[test]]
name = "the greeting names the image"
run = 'grep -q "^Welcome to base" /etc/greeting'
"#;

const CHILD_IMAGE: &str = r#"description = "An application image, built on top of base"
version = "1.0"
from = "base"
roles = ["app"]

[vars]
APP_NAME = "hello"

[[test]]
name = "the app is in place on the base's files"
run = 'test "$(cat /srv/app/name)" = hello && test -f /etc/motd'
"#;

const MOTD_FILE: &str = "This image was built with layer.\n";

const MOTD_PROVISION: &str = r#"#!/bin/sh
# Runs inside the image being built, after files/ was copied onto it, with the role folder as
# working directory and the image's [vars] in the environment.
set -eu
echo "$GREETING to $LAYER_IMAGE $LAYER_VERSION" > /etc/greeting
"#;

const MOTD_TEST: &str = r#"#!/bin/sh
# Runs by `layer test` in a throwaway instance of every image that applies this role.
set -eu
grep -q "built with layer" /etc/motd
test -s /etc/greeting
"#;

const APP_PROVISION: &str = r#"#!/bin/sh
set -eu
mkdir -p /srv/app
echo "$APP_NAME" > /srv/app/name
"#;

/// `layer.toml` for `origin`; a busybox origin names the static busybox found on this machine.
fn project_file(origin: InitOrigin) -> String {
    let origin = match origin {
        InitOrigin::Debian => {
            "# A Debian root filesystem made by mmdebstrap from the host's apt sources.\ndebian = { suite = \"bookworm\", variant = \"minbase\" }\n".to_string()
        }
        InitOrigin::Busybox => {
            let path = ["/bin/busybox", "/usr/bin/busybox"]
                .into_iter()
                .find(|p| Path::new(p).exists())
                .unwrap_or("/bin/busybox");
            format!("# A root filesystem of one static busybox (apt-get install busybox-static).\nbusybox = \"{path}\"\n")
        }
    };
    format!("# See `layer --help`, and the README of layer for every setting.\n[project]\nstrategy = \"deep\"\nbackend = \"rootfs\"\n\n[origins.base-os]\n{origin}")
}

/// The files of a new project, relative to its root.
fn files(origin: InitOrigin) -> Vec<(&'static str, String)> {
    vec![
        ("layer.toml", project_file(origin)),
        (".gitignore", "cache/\n".into()),
        ("images/base.toml", BASE_IMAGE.into()),
        ("images/app.toml", CHILD_IMAGE.into()),
        ("roles/motd/files/etc/motd", MOTD_FILE.into()),
        ("roles/motd/provision.sh", MOTD_PROVISION.into()),
        ("roles/motd/tests/motd.sh", MOTD_TEST.into()),
        ("roles/app/provision.sh", APP_PROVISION.into()),
    ]
}

pub fn run(g: &Global, args: &InitArgs) -> Result<i32> {
    let base = match &g.dir {
        Some(d) => d.clone(),
        None => std::env::current_dir().map_err(|e| Error::io(".", e))?,
    };
    let root = match &args.folder {
        Some(d) => base.join(d),
        None => base,
    };
    let files = files(args.origin);
    write_new(&root, &files)?;
    if !g.quiet {
        let shown = args
            .folder
            .as_ref()
            .map_or_else(|| ".".into(), |d| d.display().to_string());
        eprintln!(
            "wrote a new project of {} files in `{shown}`; as root, build and test it:",
            files.len()
        );
        let cd = match &args.folder {
            Some(_) => format!("cd {shown} && "),
            None => String::new(),
        };
        eprintln!("  {cd}layer build && layer test");
    }
    Ok(0)
}

/// Writes `files` under `root`, or nothing when any of them exists (or cannot be written).
fn write_new(root: &Path, files: &[(&str, String)]) -> Result<()> {
    let taken: Vec<&str> = files
        .iter()
        .map(|(rel, _)| *rel)
        .filter(|rel| root.join(rel).symlink_metadata().is_ok())
        .collect();
    if !taken.is_empty() {
        return Err(Error::Usage {
            kind: ErrorKind::InitExists,
            message: format!(
                "`{}` already holds {}; `layer init` overwrites nothing",
                root.display(),
                taken
                    .iter()
                    .map(|t| format!("`{t}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            hint: Some("run it in a new or empty folder: `layer init DIR`".into()),
        });
    }
    let mut written: Vec<PathBuf> = Vec::new();
    for (rel, text) in files {
        let path = root.join(rel);
        let done = std::fs::create_dir_all(crate::fsutil::parent_of(&path))
            .map_err(|e| Error::io(crate::fsutil::parent_of(&path), e))
            .and_then(|()| crate::fsutil::write_atomic(&path, text.as_bytes()));
        if let Err(e) = done {
            for w in &written {
                let _ = std::fs::remove_file(w);
            }
            return Err(e);
        }
        written.push(path);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_nothing_when_one_file_exists() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("images")).unwrap();
        std::fs::write(dir.path().join("images/app.toml"), "mine").unwrap();
        let e = write_new(dir.path(), &files(InitOrigin::Busybox)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InitExists);
        assert!(
            e.to_string()
                .ends_with("already holds `images/app.toml`; `layer init` overwrites nothing"),
            "{e}"
        );
        assert!(!dir.path().join("layer.toml").exists());
        assert_eq!(
            std::fs::read_to_string(dir.path().join("images/app.toml")).unwrap(),
            "mine"
        );
    }
}
