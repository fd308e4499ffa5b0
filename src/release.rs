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

use crate::error::{Error, ErrorKind, Result};
use crate::record::Record;
use crate::version::{compare, names, short, under_pin, valid_version, version_fields};

/// The tag holding a record's release status.
pub const STATUS_TAG: &str = "Release_Status";
/// The tag a promotion with `--force` of an untested build leaves.
pub const FORCED_TAG: &str = "Release_Forced";
/// The tag `layer test` leaves: the digest of the tests it ran ([`tests_digest`]), so a build
/// whose tests changed since is not trusted as `tested` blindly.
pub const TESTED_WITH_TAG: &str = "Tested_With";
/// The tags that change after a build (release status, tests): never part of what an export
/// writes, so its bytes — a digest someone signed or pushed — stay the same.
pub const MUTABLE_TAGS: [&str; 3] = [STATUS_TAG, FORCED_TAG, TESTED_WITH_TAG];

/// The digest of a set of tests: each test's name and script (a role test's file content, or
/// a `[[test]]`'s command), in order.
pub fn tests_digest<'a>(tests: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> String {
    let mut h = blake3::Hasher::new();
    h.update(b"layer-tests-v1\0");
    for (name, script) in tests {
        h.update(&(name.len() as u64).to_le_bytes());
        h.update(name.as_bytes());
        h.update(&(script.len() as u64).to_le_bytes());
        h.update(script);
    }
    h.finalize().to_hex().to_string()
}

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
            kind: ErrorKind::NoBuilds,
            message: format!("`{image}` has no recorded builds"),
            hint: Some(format!("build it first: `layer build {image}`")),
        });
    };
    if !valid_version(spec) {
        return Err(Error::Usage { kind: ErrorKind::NotAVersion,
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
            kind: ErrorKind::NoSuchBuild,
            message: format!(
                "`{image}` has no build {spec}; its builds: {}",
                list_versions(records)
            ),
            hint: None,
        })
}

/// The build a reheat of `image` stands on (`layer build IMAGE --reheat [--from VERSION]`):
/// the one `from` names, else the newest released one. Never a revoked build: a reheat
/// stands on all of it, and a build made on a revoked one is never promoted.
pub fn reheat_from<'a>(
    records: &'a [Record],
    image: &str,
    from: Option<&str>,
) -> Result<&'a Record> {
    if from.is_some() {
        let r = find(records, image, from)?;
        if Status::of(r) == Status::Revoked {
            return Err(Error::Usage {
                kind: ErrorKind::ReheatRevoked,
                message: format!(
                    "`{image}` {} is revoked: a reheat stands on all of it, and could never be promoted",
                    short(&r.version)
                ),
                hint: Some(format!(
                    "reheat another build, or bake it fresh: `layer build --force {image}`"
                )),
            });
        }
        return Ok(r);
    }
    records
        .iter()
        .filter(|r| Status::of(r) == Status::Released)
        .max_by(|a, b| compare(&a.version, &b.version))
        .ok_or_else(|| Error::Usage {
            kind: ErrorKind::NoReleasedBuild,
            message: format!(
                "`{image}` has no released build to reheat; its builds: {}",
                list_versions(records)
            ),
            hint: Some(format!(
                "name the build to reheat with `layer build {image} --reheat --from VERSION`, or promote one first (`layer promote {image}@VERSION`)"
            )),
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
        .ok_or_else(|| Error::Usage { kind: ErrorKind::PinUnmatched,
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

/// Cuts each pinned image from its parent in `graph` (it stands on the pinned build, not on
/// the parent's current code) and returns, by image, the key of the build its pin resolved
/// to, as `key::compute_with_pins` takes them: empty when nothing is pinned.
pub fn unlink_pinned(pins: &[Option<Pin>], graph: &mut crate::graph::Graph) -> Vec<Option<String>> {
    if pins.iter().all(Option::is_none) {
        return Vec::new();
    }
    for (i, pin) in pins.iter().enumerate() {
        if pin.is_some() {
            graph.unlink(crate::graph::ImageId::new(i));
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

/// What a change did ([`crate::cache::release::apply`]).
#[derive(Debug, Clone)]
pub struct Changed {
    pub record: Record,
    pub from: Status,
    pub to: Status,
    /// False when the build already had the status asked for.
    pub changed: bool,
}

/// Checks that `change` may move a build of status `from`, and says why not.
pub fn check(image: &str, version: &str, from: Status, change: Change) -> Result<Status> {
    let v = short(version);
    let refuse = |message: String, hint: &str| {
        Err(Error::Usage {
            kind: ErrorKind::PromotionRefused,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    #[test]
    fn refusals_name_their_kind() {
        let kind = |r: Result<&Record>| r.map(|_| ()).unwrap_err().kind();
        assert_eq!(kind(find(&[], "app", None)), ErrorKind::NoBuilds);
        assert_eq!(kind(find(&[], "app", Some("1.x"))), ErrorKind::NotAVersion);
        assert_eq!(
            kind(find(&[], "app", Some("1.0.4"))),
            ErrorKind::NoSuchBuild
        );
        assert_eq!(
            kind(resolve_pin(&[], "app", "base", "2")),
            ErrorKind::PinUnmatched
        );
        assert_eq!(
            kind(reheat_from(&[], "app", None)),
            ErrorKind::NoReleasedBuild
        );
        assert_eq!(
            kind(reheat_from(&[], "app", Some("1.0.4"))),
            ErrorKind::NoSuchBuild
        );
        let refused = check(
            "app",
            "1.0.0",
            Status::Failed,
            Change::Promote { force: true },
        );
        assert_eq!(refused.unwrap_err().kind(), ErrorKind::PromotionRefused);
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
