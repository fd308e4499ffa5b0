//! Records as data: what the cache keeps of one successful build of one key, and how a stored
//! record is judged (SPEC §4). Pure: the cache module reads and writes the files; plans, release
//! rules and reports take records as values.

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::key::Inputs;

/// Bump when [`Record`] changes incompatibly; records of another format count as missing.
/// Format 2: a record in the cache is sealed with a checksum ([`seal_record`]); format 1
/// records (no checksum) are stale.
pub const RECORD_FORMAT: u32 = 2;

/// What the cache keeps of one successful build of one key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub format: u32,
    pub name: String,
    pub key: String,
    /// `MAJOR.MINOR.BUILD-YYYYMMDD_HHMM`.
    pub version: String,
    /// RFC 3339, UTC.
    pub built_at: String,
    pub duration_ms: u64,
    /// Built with `--force` although a record for the key existed.
    #[serde(default)]
    pub forced: bool,
    pub artifact: Artifact,
    /// Deep builds: the parent record this one was built on.
    pub parent: Option<ParentRef>,
    pub tags: BTreeMap<String, String>,
    pub inputs: std::sync::Arc<Inputs>,
    /// What the build's package database says is installed (`rootfs` builds whose image has
    /// one); read after the build, so part of the record but not of the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub packages: Option<crate::packages::Manifest>,
}

impl Record {
    pub fn built_at_time(&self) -> Option<SystemTime> {
        humantime::parse_rfc3339(&self.built_at).ok()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Artifact {
    /// `NAME-MAJOR.MINOR.BUILD` for local artifacts; a cloud image id for remote ones.
    pub id: String,
    /// Local artifacts: path relative to the cache directory.
    pub path: Option<String>,
    pub blake3: Option<String>,
    pub size: Option<u64>,
    /// Remote artifacts: where the artifact lives (the Packer builder that made it, such as
    /// `mitchellh.amazonebs`); it cannot be re-hashed from here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParentRef {
    pub name: String,
    pub key: String,
    pub version: String,
}

/// The state of the record for one (image, key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    Found(Box<Record>),
    /// A file exists but cannot be used; the text says why.
    Unusable(String),
    Missing,
}

/// The opening of a sealed record, up to its checksum: the checksum is the first field, so its
/// line has one fixed form and everything after it is what it covers.
const SEAL_HEAD: &[u8] = b"{\n  \"checksum\": \"";
/// What follows the checksum's 64 hex digits.
const SEAL_TAIL: &[u8] = b"\",\n";

/// A record as the cache stores it: its pretty JSON with a `checksum` field first, the blake3
/// of every byte after the checksum's line. Generic over the record's bytes: a field added to
/// [`Record`] is covered without a change here (as ccache checksums each entry whole).
pub fn seal_record(record: &Record) -> Vec<u8> {
    let body = serde_json::to_vec_pretty(record).expect("records serialize");
    // `{\n` then the fields; the checksum line goes between them.
    let rest = &body[2..];
    let sum = blake3::hash(rest).to_hex();
    let mut out = Vec::with_capacity(body.len() + SEAL_HEAD.len() + 64 + SEAL_TAIL.len());
    out.extend_from_slice(SEAL_HEAD);
    out.extend_from_slice(sum.as_bytes());
    out.extend_from_slice(SEAL_TAIL);
    out.extend_from_slice(rest);
    out
}

/// A sealed record's bytes (from [`seal_record`]), judged: a record of another format is
/// "another format"; then every byte must match its checksum; then [`parse_record`]'s checks.
/// A record that fails is corrupt and never used: the image is stale.
pub fn open_record(bytes: &[u8]) -> std::result::Result<Record, String> {
    // A good record is parsed once: sealed, its checksum matching, and parsing to this format.
    // Only a record that fails pays for the checks below in the order that picks the message
    // (its format first), so the answer is the same either way.
    if let Some((sum, rest)) = split_seal(bytes) {
        if blake3::hash(rest).to_hex().as_bytes() == sum {
            if let Ok(r) = parse_record(bytes) {
                return Ok(r);
            }
        }
    }
    #[derive(Deserialize)]
    struct Head {
        format: u32,
    }
    if let Ok(head) = serde_json::from_slice::<Head>(bytes) {
        if head.format != RECORD_FORMAT {
            return Err(other_format(head.format));
        }
    }
    let Some((sum, rest)) = split_seal(bytes) else {
        return Err(match serde_json::from_slice::<serde_json::Value>(bytes) {
            Err(e) => format!("record is corrupt: {e}"),
            Ok(_) => "record is corrupt: it has no checksum".into(),
        });
    };
    if blake3::hash(rest).to_hex().as_bytes() != sum {
        return Err("record is corrupt: its checksum does not match its content".into());
    }
    parse_record(bytes)
}

/// A sealed record's checksum digits and the bytes they cover.
fn split_seal(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let b = bytes.strip_prefix(SEAL_HEAD)?;
    let (sum, b) = (b.get(..64)?, b.get(64..)?);
    Some((sum, b.strip_prefix(SEAL_TAIL)?))
}

fn other_format(format: u32) -> String {
    format!("record has format {format}; this layer reads format {RECORD_FORMAT}")
}

/// A stored record's bytes, judged: it must parse, be of this format, and its inputs must hash
/// to its key. The error says why it cannot be used.
pub fn parse_record(bytes: &[u8]) -> std::result::Result<Record, String> {
    // One parse when the record is good. When it is not, the format decides the message: a
    // record of another format is "another format" even where its fields do not fit ours.
    let r: Record = match serde_json::from_slice(bytes) {
        Ok(r) => r,
        Err(e) => {
            #[derive(Deserialize)]
            struct Head {
                format: u32,
            }
            let head: Head =
                serde_json::from_slice(bytes).map_err(|e| format!("record is corrupt: {e}"))?;
            if head.format != RECORD_FORMAT {
                return Err(other_format(head.format));
            }
            return Err(format!("record is corrupt: {e}"));
        }
    };
    if r.format != RECORD_FORMAT {
        return Err(other_format(r.format));
    }
    if r.inputs.key() != r.key {
        return Err("record is corrupt: its inputs do not hash to its key".into());
    }
    Ok(r)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::key::{BackendInputs, BaseInputs, KEY_SCHEMA};
    use crate::model::{BackendKind, Strategy};

    /// A record of a command build of image `name` on a parent, running `command` (another
    /// command, another key), with the least filled in: artifact `x` with no file, no parent,
    /// no tags, built at 2026-11-22 04:00. For the unit tests of the modules that keep records.
    pub(crate) fn record_of(name: &str, command: &str) -> Record {
        let inputs = Inputs {
            schema: KEY_SCHEMA,
            image: name.into(),
            strategy: Strategy::Deep,
            backend: BackendInputs {
                name: "b".into(),
                kind: BackendKind::Command,
                command: vec![command.into()],
                template: None,
                files: BTreeMap::new(),
            }
            .into(),
            base: BaseInputs::Parent {
                key: "0".repeat(64),
            },
            chain: vec![],
            roles: vec![],
        };
        Record {
            format: RECORD_FORMAT,
            name: name.into(),
            key: inputs.key(),
            version: "1.0.0-20261122_0400".into(),
            built_at: "2026-11-22T04:00:00Z".into(),
            duration_ms: 0,
            forced: false,
            artifact: Artifact {
                id: "x".into(),
                path: None,
                blake3: None,
                size: None,
                remote: None,
            },
            parent: None,
            tags: BTreeMap::new(),
            inputs: inputs.into(),
            packages: None,
        }
    }

    /// [`record_of`] `app` with every field a record can have.
    pub(crate) fn sample() -> Record {
        Record {
            duration_ms: 12,
            artifact: Artifact {
                id: "app-1.0.0".into(),
                path: Some("artifacts/app/app-1.0.0".into()),
                blake3: Some("f".repeat(64)),
                size: Some(3),
                remote: None,
            },
            parent: Some(ParentRef {
                name: "base".into(),
                key: "1".repeat(64),
                version: "1.0.0-20261122_0300".into(),
            }),
            tags: BTreeMap::from([("Release_Status".into(), "tested".into())]),
            ..record_of("app", "./build.sh")
        }
    }

    #[test]
    fn a_sealed_record_opens_and_every_flipped_bit_of_it_is_refused() {
        let r = sample();
        let sealed = seal_record(&r);
        assert!(sealed.starts_with(b"{\n  \"checksum\": \""));
        assert_eq!(open_record(&sealed), Ok(r.clone()));
        for at in 0..sealed.len() {
            for bit in 0..8 {
                let mut bad = sealed.clone();
                bad[at] ^= 1 << bit;
                let opened = open_record(&bad);
                assert!(opened.is_err(), "byte {at} bit {bit}: {opened:?}");
            }
        }
        // Cut anywhere.
        for len in 0..sealed.len() {
            assert!(open_record(&sealed[..len]).is_err(), "cut at {len}");
        }
    }

    #[test]
    fn records_without_a_checksum_or_of_another_format_are_refused_with_why() {
        let r = sample();
        let plain = serde_json::to_vec_pretty(&r).unwrap();
        assert_eq!(
            open_record(&plain),
            Err("record is corrupt: it has no checksum".into())
        );
        let mut old = r.clone();
        old.format = 1;
        assert_eq!(
            open_record(&serde_json::to_vec_pretty(&old).unwrap()),
            Err("record has format 1; this layer reads format 2".into())
        );
        let text = String::from_utf8(seal_record(&r)).unwrap();
        let flipped = text.replace("\"app-1.0.0\"", "\"app-6.6.6\"");
        assert_eq!(
            open_record(flipped.as_bytes()),
            Err("record is corrupt: its checksum does not match its content".into())
        );
        assert!(open_record(b"\x00\xff")
            .unwrap_err()
            .starts_with("record is corrupt: "));
    }
}
