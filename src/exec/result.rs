//! What a run reports: a [`Report`] of one [`ImageResult`] per image, with a constructor for
//! each way an image can end; `layer build --json` prints them.

use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use crate::plan::PlannedImage;
use crate::record::Record;

/// How an image ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Done {
    Built,
    Fresh,
    Failed,
    Skipped,
}

/// What became of one image; `layer build --json` prints these.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImageResult {
    pub name: String,
    pub key: String,
    pub action: Done,
    pub version: Option<String>,
    pub artifact: Option<String>,
    pub duration_ms: Option<u64>,
    pub log: Option<String>,
    /// Skipped: why (`` `app` failed ``, `` not started: `app` failed ``, `interrupted`,
    /// `not selected`). Fresh: `built meanwhile by another run` when another run recorded it,
    /// `pulled from the remote cache` when this run downloaded it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
    /// Failed: the one-line reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl ImageResult {
    /// Built and recorded by this run, its output in `log`.
    pub fn built(image: &PlannedImage, record: &Record, log: &Path, elapsed: Duration) -> Self {
        ImageResult {
            duration_ms: Some(elapsed.as_millis() as u64),
            log: Some(log.display().to_string()),
            ..ImageResult::recorded(image, Done::Built, record)
        }
    }

    /// To build, but found recorded by another run when its worker held the lock.
    pub fn reused(image: &PlannedImage, record: &Record) -> Self {
        ImageResult {
            cause: Some("built meanwhile by another run".into()),
            ..ImageResult::recorded(image, Done::Fresh, record)
        }
    }

    /// Fresh on the remote cache, downloaded and verified by this run.
    pub fn pulled(image: &PlannedImage, record: &Record, elapsed: Duration) -> Self {
        ImageResult {
            duration_ms: Some(elapsed.as_millis() as u64),
            cause: Some("pulled from the remote cache".into()),
            ..ImageResult::recorded(image, Done::Fresh, record)
        }
    }

    /// Fresh in the plan: `record` is the one it found.
    pub fn fresh(image: &PlannedImage, record: &Record) -> Self {
        ImageResult::recorded(image, Done::Fresh, record)
    }

    /// Its build failed with `error`; `log`, when there is one, holds its output.
    pub fn failed(
        image: &PlannedImage,
        error: String,
        log: Option<&Path>,
        duration: Duration,
    ) -> Self {
        ImageResult {
            duration_ms: Some(duration.as_millis() as u64),
            log: log.map(|l| l.display().to_string()),
            error: Some(error),
            ..ImageResult::new(image, Done::Failed)
        }
    }

    /// Not built, for `cause`.
    pub fn skipped(image: &PlannedImage, cause: String) -> Self {
        ImageResult {
            cause: Some(cause),
            ..ImageResult::new(image, Done::Skipped)
        }
    }

    /// An image with a record: its version and artifact.
    fn recorded(image: &PlannedImage, action: Done, record: &Record) -> Self {
        ImageResult {
            version: Some(record.version.clone()),
            artifact: Some(record.artifact.id.clone()),
            ..ImageResult::new(image, action)
        }
    }

    /// The fields every result has; the others empty.
    fn new(image: &PlannedImage, action: Done) -> Self {
        ImageResult {
            name: image.name.clone(),
            key: image.key.clone(),
            action,
            version: None,
            artifact: None,
            duration_ms: None,
            log: None,
            cause: None,
            error: None,
        }
    }
}

/// What a run did, image by image.
#[derive(Debug)]
pub struct Report {
    /// One per image, in the project's (topological) order.
    pub images: Vec<ImageResult>,
    /// The signal that interrupted the run.
    pub interrupted: Option<i32>,
}

impl Report {
    pub fn count(&self, d: Done) -> usize {
        self.images.iter().filter(|i| i.action == d).count()
    }

    /// SPEC §5.2, and 128 + the signal after an interrupt.
    pub fn exit_code(&self) -> i32 {
        match self.interrupted {
            Some(sig) => 128 + sig,
            None if self.count(Done::Failed) > 0 => 1,
            None => 0,
        }
    }
}
