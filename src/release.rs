//! Release status (SPEC §6): what happens to a build after it. A record's `Release_Status` tag
//! moves `candidate` -> `tested` | `failed` (by `layer test`) -> `released` (by `layer promote`)
//! -> `revoked` (by `layer revoke`); this module validates those moves and rewrites the record
//! under the image's lock. It also holds what versions mean to people: a version named in full
//! (`1.0.4-20200229_0420`) or by its numbers (`1.0.4`), pins of parents (`base-linux@2`,
//! `base-linux@2.1`, `base-linux@2.1.3`), and numeric ordering.
//!
//! | from \ to   | released            | revoked |
//! |-------------|---------------------|---------|
//! | candidate   | with `--force` only | yes     |
//! | tested      | yes                 | yes     |
//! | failed      | never               | yes     |
//! | released    | (already)           | yes     |
//! | revoked     | never               | (already) |
//!
//! A forced promotion is kept in the record as the tag `Release_Forced = "true"`. A build made
//! on a revoked parent build is never promoted.

use std::cmp::Ordering;

use crate::cache::{version_fields, Cache, Record};
use crate::error::{Error, Result};

/// The tag holding a record's release status.
pub const STATUS_TAG: &str = "Release_Status";
/// The tag a promotion with `--force` of an untested build leaves.
pub const FORCED_TAG: &str = "Release_Forced";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Candidate,
    Tested,
    Failed,
    Released,
    Revoked,
}

impl Status {
    /// A record's status; a record without the tag (or with one this layer does not know) is
    /// a candidate.
    pub fn of(r: &Record) -> Status {
        match r.tags.get(STATUS_TAG).map(String::as_str) {
            Some("tested") => Status::Tested,
            Some("failed") => Status::Failed,
            Some("released") => Status::Released,
            Some("revoked") => Status::Revoked,
            _ => Status::Candidate,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Candidate => "candidate",
            Status::Tested => "tested",
            Status::Failed => "failed",
            Status::Released => "released",
            Status::Revoked => "revoked",
        }
    }
}

/// `MAJOR.MINOR.BUILD` of `MAJOR.MINOR.BUILD-YYYYMMDD_HHMM`: how people name a build.
pub fn short(version: &str) -> &str {
    version.split('-').next().unwrap_or(version)
}

/// Versions compared numerically, field by field: `2` < `2.0.1` < `10`; the build date breaks
/// ties.
pub fn compare(a: &str, b: &str) -> Ordering {
    version_fields(a)
        .cmp(&version_fields(b))
        .then_with(|| a.cmp(b))
}

/// Whether `s` is one to `max` dot-separated numbers.
fn numeric_fields(s: &str, max: usize) -> bool {
    let parts: Vec<&str> = s.split('.').collect();
    parts.len() <= max
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 9 && p.bytes().all(|b| b.is_ascii_digit()))
}

/// Whether `s` names a build: `MAJOR.MINOR.BUILD` or `MAJOR.MINOR.BUILD-YYYYMMDD_HHMM`.
pub fn valid_version(s: &str) -> bool {
    let (nums, date) = match s.split_once('-') {
        Some((n, d)) => (n, Some(d)),
        None => (s, None),
    };
    numeric_fields(nums, 3)
        && nums.split('.').count() == 3
        && date.is_none_or(|d| {
            d.len() == 13
                && d.bytes().enumerate().all(|(i, b)| {
                    if i == 8 {
                        b == b'_'
                    } else {
                        b.is_ascii_digit()
                    }
                })
        })
}

/// Whether `s` is a pin: `MAJOR`, `MAJOR.MINOR` or `MAJOR.MINOR.BUILD`.
pub fn valid_pin(s: &str) -> bool {
    numeric_fields(s, 3)
}

/// Whether record version `version` is the build `spec` names (in full, or by its numbers).
pub fn names(version: &str, spec: &str) -> bool {
    version == spec || (!spec.contains('-') && short(version) == spec)
}

/// Whether `version` falls under pin `pin`: its leading numbers are the pin's.
pub fn under_pin(version: &str, pin: &str) -> bool {
    let v = version_fields(version);
    let p = version_fields(pin);
    v.len() >= p.len() && v[..p.len()] == p[..]
}

/// Splits `IMAGE@VERSION`.
pub fn split_target(s: &str) -> (&str, Option<&str>) {
    match s.split_once('@') {
        Some((i, v)) => (i, Some(v)),
        None => (s, None),
    }
}

/// `2.1.3 (released), 2.1.2 (revoked)`: the builds of an image, for messages.
pub fn list_versions(records: &[Record]) -> String {
    if records.is_empty() {
        return "none".into();
    }
    let mut sorted: Vec<&Record> = records.iter().collect();
    sorted.sort_by(|a, b| compare(&b.version, &a.version));
    sorted
        .iter()
        .map(|r| format!("{} ({})", short(&r.version), Status::of(r).as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The record of `image` that `spec` names, the newest when `spec` is `None`.
pub fn find<'a>(records: &'a [Record], image: &str, spec: Option<&str>) -> Result<&'a Record> {
    let Some(spec) = spec else {
        return records.first().ok_or_else(|| Error::Usage {
            message: format!("`{image}` has no recorded builds"),
            hint: Some(format!("build it first: `layer build {image}`")),
        });
    };
    if !valid_version(spec) {
        return Err(Error::Usage {
            message: format!("`{spec}` is not a version of a build"),
            hint: Some(
                "name a build by MAJOR.MINOR.BUILD (`1.0.4`) or in full (`1.0.4-20200229_0420`); `layer versions IMAGE` lists them"
                    .into(),
            ),
        });
    }
    records
        .iter()
        .find(|r| names(&r.version, spec))
        .ok_or_else(|| Error::Usage {
            message: format!(
                "`{image}` has no build {spec}; its builds: {}",
                list_versions(records)
            ),
            hint: None,
        })
}

/// The newest released record of `parent` under `pin`, for a child declared `from =
/// "PARENT@PIN"`. `records` are every record of the parent.
pub fn resolve_pin<'a>(
    records: &'a [Record],
    child: &str,
    parent: &str,
    pin: &str,
) -> Result<&'a Record> {
    records
        .iter()
        .filter(|r| Status::of(r) == Status::Released && under_pin(&r.version, pin))
        .max_by(|a, b| compare(&a.version, &b.version))
        .ok_or_else(|| Error::Usage {
            message: format!(
                "`{child}` is pinned to `{parent}@{pin}`, but no released build of `{parent}` matches; its builds: {}",
                list_versions(records)
            ),
            hint: Some(format!(
                "promote a {pin} build with `layer promote {parent}@VERSION`, or change the pin in `images/{child}.toml`"
            )),
        })
}

/// The newest released record of an image newer than `version`, if any.
pub fn newer_released<'a>(records: &'a [Record], version: &str) -> Option<&'a Record> {
    records
        .iter()
        .filter(|r| Status::of(r) == Status::Released)
        .filter(|r| version_fields(&r.version) > version_fields(version))
        .max_by(|a, b| compare(&a.version, &b.version))
}

/// A pinned parent, resolved: `from = "PARENT@PIN"` and the released build it stands for.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Pin {
    pub parent: String,
    pub pin: String,
    /// The released build the image is built on.
    pub version: String,
    /// A newer released build of the parent outside the pin, if any.
    pub behind: Option<String>,
    #[serde(skip)]
    pub record: Box<Record>,
}

impl Pin {
    /// `pinned base-linux 2.1.3 is behind 2.1.5`, when it is.
    pub fn warning(&self) -> Option<String> {
        self.behind.as_ref().map(|b| {
            format!(
                "pinned {} {} is behind {}",
                self.parent,
                short(&self.version),
                short(b)
            )
        })
    }
}

/// Resolves the pin of every image (by index) from the records of its parent.
pub fn resolve_pins(project: &crate::model::Project, cache: &Cache) -> Result<Vec<Option<Pin>>> {
    project
        .images
        .iter()
        .map(|img| {
            let (Some(pin), Some(parent)) = (&img.pin, img.parent()) else {
                return Ok(None);
            };
            let records = cache.records(parent);
            let r = resolve_pin(&records, &img.name, parent, pin)?;
            Ok(Some(Pin {
                parent: parent.to_string(),
                pin: pin.clone(),
                version: r.version.clone(),
                behind: newer_released(&records, &r.version).map(|n| n.version.clone()),
                record: Box::new(r.clone()),
            }))
        })
        .collect()
}

/// Cuts each pinned image from its parent in `graph` (it stands on the pinned build, not on
/// the parent's current code) and returns, by image, the key of the build its pin resolved
/// to, as `key::compute_with_pins` takes them: empty when nothing is pinned.
pub fn unlink_pinned(pins: &[Option<Pin>], graph: &mut crate::graph::Graph) -> Vec<Option<String>> {
    if pins.iter().all(Option::is_none) {
        return Vec::new();
    }
    for (i, pin) in pins.iter().enumerate() {
        if pin.is_some() {
            graph.unlink(i);
        }
    }
    pins.iter()
        .map(|p| p.as_ref().map(|p| p.record.key.clone()))
        .collect()
}

/// A release status change: asked for on the command line, or the outcome of `layer test`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// `layer promote`; `force` allows an untested candidate.
    Promote {
        force: bool,
    },
    Revoke,
    /// `layer test` passed or failed. A released or revoked build keeps its status: a test
    /// does not undo a release decision.
    Tested {
        passed: bool,
    },
}

/// What a change did.
#[derive(Debug, Clone)]
pub struct Changed {
    pub record: Record,
    pub from: Status,
    pub to: Status,
    /// False when the build already had the status asked for.
    pub changed: bool,
}

/// Checks that `change` may move a build of status `from`, and says why not.
fn check(image: &str, version: &str, from: Status, change: Change) -> Result<Status> {
    let v = short(version);
    let refuse = |message: String, hint: &str| {
        Err(Error::Usage {
            message,
            hint: Some(hint.to_string()),
        })
    };
    match (change, from) {
        (Change::Tested { .. }, Status::Released | Status::Revoked) => Ok(from),
        (Change::Tested { passed: true }, _) => Ok(Status::Tested),
        (Change::Tested { passed: false }, _) => Ok(Status::Failed),
        (Change::Revoke, _) => Ok(Status::Revoked),
        (Change::Promote { .. }, Status::Tested | Status::Released) => Ok(Status::Released),
        (Change::Promote { force: true }, Status::Candidate) => Ok(Status::Released),
        (Change::Promote { force: false }, Status::Candidate) => refuse(
            format!("`{image}` {v} is an untested candidate"),
            &format!("run `layer test {image}` first, or promote it anyway with `layer promote --force {image}@{v}`"),
        ),
        (Change::Promote { .. }, Status::Failed) => refuse(
            format!("`{image}` {v} failed its tests and cannot be promoted"),
            &format!("fix and rebuild it, or run `layer test {image}` again if the failure was not the image's"),
        ),
        (Change::Promote { .. }, Status::Revoked) => refuse(
            format!("`{image}` {v} is revoked and cannot be promoted again"),
            &format!("build a new version with `layer build --force {image}`"),
        ),
    }
}

/// Applies `change` to the build of `image` that `spec` names (the newest when `None`): takes
/// the cache lock (shared: `layer cache gc` does not remove a record meanwhile) and the image's
/// lock (a build does not move the record meanwhile), reads the records again, checks the
/// move, and rewrites the record.
pub fn apply(
    cache: &Cache,
    image: &str,
    spec: Option<&str>,
    change: Change,
    waiting: &mut dyn FnMut(),
) -> Result<Changed> {
    let _cache_lock = cache.lock_shared(waiting)?;
    let _lock = cache.lock_image(image, waiting)?;
    let records = cache.records(image);
    let record = find(&records, image, spec)?;
    let from = Status::of(record);
    let to = check(image, &record.version, from, change)?;
    if let (Change::Promote { .. }, Some(p)) = (change, &record.parent) {
        let revoked = cache
            .records(&p.name)
            .iter()
            .any(|r| r.version == p.version && Status::of(r) == Status::Revoked);
        if revoked {
            return Err(Error::Usage {
                message: format!(
                    "`{image}` {} is built on revoked {} {} and cannot be promoted",
                    short(&record.version),
                    p.name,
                    short(&p.version)
                ),
                hint: Some(format!(
                    "rebuild it on a good parent: `layer build {image}`"
                )),
            });
        }
    }
    let mut record = record.clone();
    if from == to {
        return Ok(Changed {
            record,
            from,
            to,
            changed: false,
        });
    }
    record.tags.insert(STATUS_TAG.into(), to.as_str().into());
    if from == Status::Candidate && to == Status::Released {
        record.tags.insert(FORCED_TAG.into(), "true".into());
    }
    cache.rewrite_record(&record)?;
    Ok(Changed {
        record,
        from,
        to,
        changed: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_pins_and_order() {
        assert!(valid_version("1.0.4"));
        assert!(valid_version("1.0.4-20200229_0420"));
        assert!(!valid_version("1.0"));
        assert!(!valid_version("1.0.4-2020"));
        assert!(!valid_version("1.x.4"));
        assert!(valid_pin("2") && valid_pin("2.1") && valid_pin("2.1.3"));
        assert!(!valid_pin("2.1.3.4") && !valid_pin("") && !valid_pin("2.") && !valid_pin("v2"));
        assert!(names("1.0.4-20200229_0420", "1.0.4"));
        assert!(names("1.0.4-20200229_0420", "1.0.4-20200229_0420"));
        assert!(!names("1.0.4-20200229_0420", "1.0.4-20200229_0421"));
        assert!(!names("1.0.40-20200229_0420", "1.0.4"));
        assert!(under_pin("2.1.3-20200229_0420", "2"));
        assert!(under_pin("2.1.3-20200229_0420", "2.1"));
        assert!(!under_pin("2.10.3-20200229_0420", "2.1"));
        assert!(!under_pin("12.1.3-20200229_0420", "2"));
        assert_eq!(compare("2", "2.0.1"), Ordering::Less);
        assert_eq!(compare("2.0.1", "10"), Ordering::Less);
        assert_eq!(compare("1.0.10-x", "1.0.9-x"), Ordering::Greater);
    }

    #[test]
    fn every_move() {
        use Status::*;
        let promote = Change::Promote { force: false };
        let force = Change::Promote { force: true };
        for (from, change, ok) in [
            (Candidate, promote, false),
            (Candidate, force, true),
            (Tested, promote, true),
            (Failed, promote, false),
            (Failed, force, false),
            (Released, promote, true),
            (Revoked, promote, false),
            (Revoked, force, false),
            (Candidate, Change::Revoke, true),
            (Tested, Change::Revoke, true),
            (Failed, Change::Revoke, true),
            (Released, Change::Revoke, true),
            (Revoked, Change::Revoke, true),
        ] {
            assert_eq!(
                check("app", "1.0.0-20261120_1000", from, change).is_ok(),
                ok,
                "{from:?} {change:?}"
            );
        }
    }
}
