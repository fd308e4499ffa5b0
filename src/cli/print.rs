//! Printing: data to stdout through [`out`], which takes a closed pipe calmly; warnings and
//! waiting notes to stderr, unless `--quiet`.

use std::io::Write;

use super::args::Global;
use crate::error::{Error, Result};
use crate::workspace::Workspace;

/// Writes `s` to stdout and flushes it; exit code 0.
pub fn out(s: &str) -> Result<i32> {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(s.as_bytes()).and_then(|_| stdout.flush()) {
        Ok(()) => Ok(0),
        // A closed pipe (`layer plan | head`) is not an error.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(0),
        Err(e) => Err(Error::io("<stdout>", e)),
    }
}

/// `waiting for WHAT to finish with the cache`, on stderr.
pub fn waiting(g: &Global, what: &str) {
    if !g.quiet {
        eprintln!("waiting for {what} to finish with the cache");
    }
}

/// A warning on stderr (`pinned base-linux 2.1.3 is behind 2.1.5`, after the image's name) for
/// every pinned image a newer released parent build exists for.
pub fn pin_warnings(g: &Global, ws: &Workspace) {
    if g.quiet {
        return;
    }
    for (i, pin) in ws.pins.iter().enumerate() {
        if let Some(w) = pin.as_ref().and_then(crate::release::Pin::warning) {
            eprintln!("warning: `{}`: {w}", ws.project.images[i].name);
        }
    }
}
