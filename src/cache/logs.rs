//! Build and test logs, for `layer logs`. One scheme names them all:
//!
//! ```text
//! cache/logs/IMAGE/VERSION.log          the build of VERSION
//! cache/logs/IMAGE/VERSION.N.log        a later attempt at the same VERSION (a failed build
//!                                       takes no build number, so a retry has its version)
//! cache/logs/IMAGE/VERSION.test.log     `layer test` of the build VERSION
//! cache/logs/IMAGE/VERSION.test.N.log   a later test run of it
//! ```
//!
//! A log is locked (`flock`, exclusively) by the run that writes it for as long as it writes,
//! so `layer logs --follow` knows when the writer is done, even when it was killed.

use std::fs;
use std::path::PathBuf;
use std::time::SystemTime;

use super::Cache;

/// One log file of an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogFile {
    pub path: PathBuf,
    /// The build's version.
    pub version: String,
    /// A test run's log, not a build's.
    pub test: bool,
    /// 0 for the first log of this version and kind, N for `.N.log`.
    pub attempt: u32,
    pub modified: SystemTime,
}

/// Reads a log's file name: `(version, test, attempt)`.
pub fn parse_log_name(file: &str) -> Option<(String, bool, u32)> {
    let stem = file.strip_suffix(".log")?;
    let (stem, attempt) = match stem.rsplit_once('.') {
        Some((rest, n))
            if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) && rest.contains('-') =>
        {
            (rest, n.parse().ok()?)
        }
        _ => (stem, 0),
    };
    let (version, test) = match stem.strip_suffix(".test") {
        Some(v) => (v, true),
        None => (stem, false),
    };
    (!version.is_empty()).then(|| (version.to_string(), test, attempt))
}

impl Cache {
    /// The logs of image `name`, oldest first (by modification time, then attempt).
    pub fn logs(&self, name: &str) -> Vec<LogFile> {
        let dir = self.dir.join("logs").join(name);
        let Ok(entries) = fs::read_dir(&dir) else {
            return vec![];
        };
        let mut logs: Vec<LogFile> = entries
            .flatten()
            .filter_map(|e| {
                let file = e.file_name().into_string().ok()?;
                let (version, test, attempt) = parse_log_name(&file)?;
                let meta = e.metadata().ok().filter(fs::Metadata::is_file)?;
                Some(LogFile {
                    path: e.path(),
                    version,
                    test,
                    attempt,
                    modified: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                })
            })
            .collect();
        logs.sort_by(|a, b| {
            (a.modified, &a.version, a.attempt).cmp(&(b.modified, &b.version, b.attempt))
        });
        logs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_names_follow_one_scheme() {
        let v = "1.0.2-20261122_0600";
        assert_eq!(
            parse_log_name(&format!("{v}.log")),
            Some((v.into(), false, 0))
        );
        assert_eq!(
            parse_log_name(&format!("{v}.3.log")),
            Some((v.into(), false, 3))
        );
        assert_eq!(
            parse_log_name(&format!("{v}.test.log")),
            Some((v.into(), true, 0))
        );
        assert_eq!(
            parse_log_name(&format!("{v}.test.1.log")),
            Some((v.into(), true, 1))
        );
        assert_eq!(parse_log_name("notes.txt"), None);
        assert_eq!(parse_log_name(".log"), None);
    }
}
