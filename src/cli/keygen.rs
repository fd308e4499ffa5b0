//! `layer keygen [-o FILE]`: a new ed25519 signing key for the remote cache. The secret key
//! goes to FILE (mode 0600, never overwritten), the public key to stdout, for `[remote]
//! trusted_keys`.

use std::path::PathBuf;

use clap::Args;

use super::args::Global;
use super::print::out;
use crate::error::{Error, ErrorKind, Result};

/// The flags of `layer keygen`.
#[derive(Args, Debug)]
pub struct KeygenArgs {
    /// Where to write the secret key [default: `$XDG_CONFIG_HOME/layer/signing.key`, else
    /// `~/.config/layer/signing.key`: outside any repository]
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    output: Option<PathBuf>,
}

pub fn run(g: &Global, args: &KeygenArgs) -> Result<i32> {
    let path = match &args.output {
        Some(p) => p.clone(),
        None => default_path()?,
    };
    let public = crate::remote::keygen(&path)?;
    if !g.quiet {
        eprintln!("wrote the secret key to `{}` (mode 0600)", path.display());
        eprintln!(
            "  note: give it to the runs that may write (`LAYER_SIGNING_KEY={}`), and add the public key to `[remote] trusted_keys`",
            path.display()
        );
    }
    out(&format!("{public}\n"))
}

/// `$XDG_CONFIG_HOME/layer/signing.key`, else `~/.config/layer/signing.key`; its folder made
/// (mode 0700) when missing.
fn default_path() -> Result<PathBuf> {
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|h| PathBuf::from(h).join(".config"))
        })
        .ok_or_else(|| Error::Usage {
            kind: ErrorKind::SigningKey,
            message: "neither `XDG_CONFIG_HOME` nor `HOME` is set: no default key file".into(),
            hint: Some("name the file: `layer keygen -o FILE`".into()),
        })?;
    let dir = config.join("layer");
    if !dir.is_dir() {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|e| Error::io(&dir, e))?;
    }
    Ok(dir.join("signing.key"))
}
