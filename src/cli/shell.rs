//! `layer completions SHELL` and `layer man`: shell completions and a man page, generated from
//! the same clap definitions that parse the command line, so they never fall behind it.

use clap::{Args, CommandFactory};

use super::print::out;
use crate::error::{Error, Result};

/// The flags of `layer completions`.
#[derive(Args, Debug)]
pub struct CompletionsArgs {
    /// The shell to complete for (`source <(layer completions bash)`, or write it to the
    /// shell's completions folder)
    shell: clap_complete::Shell,
}

pub fn completions(args: &CompletionsArgs) -> Result<i32> {
    let mut cmd = super::Cli::command();
    let mut buf = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "layer", &mut buf);
    out(&String::from_utf8_lossy(&buf))
}

pub fn man() -> Result<i32> {
    let mut buf = Vec::new();
    clap_mangen::Man::new(super::Cli::command())
        .render(&mut buf)
        .map_err(|e| Error::io("<stdout>", e))?;
    out(&String::from_utf8_lossy(&buf))
}
