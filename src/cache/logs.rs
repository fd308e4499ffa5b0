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
//!
//! `layer build --keep-failed` keeps the work folder of a failed build (for the rootfs
//! backend, its tree so far in `layer/`) as `cache/failed/IMAGE`, the image's latest failure
//! only, for `layer shell --failed IMAGE`; `layer cache gc` removes them all.

use std::fs;
use std::path::{Path, PathBuf};
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

impl Cache {
    /// Where the failed build of `image` is kept (`cache/failed/IMAGE`).
    pub fn kept_failed(&self, image: &str) -> PathBuf {
        self.dir.join("failed").join(image)
    }

    /// Keeps the work folder `work` of a failed build of `image` (moved, replacing the one
    /// kept before); where it is now.
    pub fn keep_failed(&self, image: &str, work: &Path) -> crate::error::Result<PathBuf> {
        let to = self.kept_failed(image);
        let parent = to.parent().expect("under the cache");
        fs::create_dir_all(parent).map_err(|e| crate::error::Error::io(parent, e))?;
        if fs::symlink_metadata(&to).is_ok() {
            crate::fsutil::remove_tree(&to)?;
        }
        if fs::symlink_metadata(work).is_err() {
            fs::create_dir(&to).map_err(|e| crate::error::Error::io(&to, e))?;
        } else {
            fs::rename(work, &to).map_err(|e| crate::error::Error::io(&to, e))?;
        }
        Ok(to)
    }

    /// Every kept failed build's folder.
    pub fn kept_failed_all(&self) -> Vec<PathBuf> {
        let Ok(rd) = fs::read_dir(self.dir.join("failed")) else {
            return Vec::new();
        };
        rd.flatten().map(|e| e.path()).collect()
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
