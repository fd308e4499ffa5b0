//! A build's log as the worker writes it and the executor shows it: the [`StageSniffer`] that
//! passes output to the log file, reports each `==> STAGE` line and, with `-v`, each line to
//! stream, and [`log_tail`], the lines shown next to a failure.

use std::io::Write;
use std::path::Path;

/// Passes a build's output (already redacted) to its log, and reports lines of the form
/// `==> STAGE` (`apply.sh` prints `==> role NAME`) as the build's current stage.
pub(super) struct StageSniffer<'a, W: Write> {
    inner: W,
    /// The line being written, up to [`LINE_MAX`] bytes.
    line: Vec<u8>,
    on_stage: &'a (dyn Fn(&str) + Sync),
    /// `-v`: called with every line of output (a longer line in pieces of [`LINE_MAX`]).
    on_line: Option<&'a (dyn Fn(&str) + Sync)>,
}

/// The longest line a stage is read from, and the piece a streamed long line is cut into.
const LINE_MAX: usize = 4096;

impl<'a, W: Write> StageSniffer<'a, W> {
    /// Writes to `inner`, calling `on_stage` with each stage.
    pub(super) fn new(inner: W, on_stage: &'a (dyn Fn(&str) + Sync)) -> Self {
        StageSniffer {
            inner,
            line: Vec::new(),
            on_stage,
            on_line: None,
        }
    }

    /// Also calls `on_line` with each line of output, as `-v` streams it.
    pub(super) fn streaming(mut self, on_line: Option<&'a (dyn Fn(&str) + Sync)>) -> Self {
        self.on_line = on_line;
        self
    }

    /// Passes on the last line when the output did not end with a newline; returns the log.
    pub(super) fn finish(mut self) -> W {
        if !self.line.is_empty() {
            self.end_line();
        }
        self.inner
    }

    fn end_line(&mut self) {
        if let Some(stage) = self.line.strip_prefix(b"==> ") {
            (self.on_stage)(String::from_utf8_lossy(stage).trim());
        }
        if let Some(on_line) = self.on_line {
            on_line(String::from_utf8_lossy(&self.line).trim_end_matches('\r'));
        }
        self.line.clear();
    }
}

impl<W: Write> Write for StageSniffer<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        for &b in &buf[..n] {
            if b == b'\n' {
                self.end_line();
            } else {
                if self.line.len() == LINE_MAX {
                    self.end_line();
                }
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

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    #[test]
    fn streams_every_line_and_reports_stages_whatever_the_writes() {
        let stages = Mutex::new(Vec::new());
        let lines = Mutex::new(Vec::new());
        let on_stage = |s: &str| stages.lock().unwrap().push(s.to_string());
        let on_line = |l: &str| lines.lock().unwrap().push(l.to_string());
        let mut log = Vec::new();
        let mut sniffer = StageSniffer::new(&mut log, &on_stage).streaming(Some(&on_line));
        for piece in ["==> role b", "ase\nhel", "lo\r\n", "no newline"] {
            sniffer.write_all(piece.as_bytes()).unwrap();
        }
        sniffer.finish();
        assert_eq!(*stages.lock().unwrap(), ["role base"]);
        assert_eq!(
            *lines.lock().unwrap(),
            ["==> role base", "hello", "no newline"]
        );
        assert_eq!(log, b"==> role base\nhello\r\nno newline");
    }
}
