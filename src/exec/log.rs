//! A build's log as the worker writes it and the executor shows it: the [`StageSniffer`] that
//! passes output to the log file and reports each `==> STAGE` line, and [`log_tail`], the
//! lines shown next to a failure.

use std::io::Write;
use std::path::Path;

/// Passes a build's output (already redacted) to its log, and reports lines of the form
/// `==> STAGE` (`apply.sh` prints `==> role NAME`) as the build's current stage.
pub(super) struct StageSniffer<'a, W: Write> {
    inner: W,
    /// The line being written, up to 200 bytes.
    line: Vec<u8>,
    on_stage: &'a (dyn Fn(&str) + Sync),
}

impl<'a, W: Write> StageSniffer<'a, W> {
    /// Writes to `inner`, calling `on_stage` with each stage.
    pub(super) fn new(inner: W, on_stage: &'a (dyn Fn(&str) + Sync)) -> Self {
        StageSniffer {
            inner,
            line: Vec::new(),
            on_stage,
        }
    }
}

impl<W: Write> Write for StageSniffer<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        for &b in &buf[..n] {
            if b == b'\n' {
                if let Some(stage) = self.line.strip_prefix(b"==> ") {
                    (self.on_stage)(String::from_utf8_lossy(stage).trim());
                }
                self.line.clear();
            } else if self.line.len() < 200 {
                self.line.push(b);
            }
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// The last lines of a log, for showing next to a failure.
pub(super) fn log_tail(path: &Path) -> Vec<String> {
    const LINES: usize = 20;
    let text = std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    // The last line is layer's own, already printed above the tail.
    let mut lines: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with("layer: build of "))
        .collect();
    while lines.last().is_some_and(|l| l.trim().is_empty()) {
        lines.pop();
    }
    lines[lines.len().saturating_sub(LINES)..]
        .iter()
        .map(ToString::to_string)
        .collect()
}
