//! Records as data: what the cache keeps of one successful build of one key, and how a stored
//! record is judged (SPEC §4). Pure: the cache module reads and writes the files; plans, release
//! rules and reports take records as values.

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::key::Inputs;

/// Bump when [`Record`] changes incompatibly; records of another format count as missing.
pub const RECORD_FORMAT: u32 = 1;

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
    pub inputs: Inputs,
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

/// A stored record's bytes, judged: it must parse, be of this format, and its inputs must hash
/// to its key. The error says why it cannot be used.
pub fn parse_record(bytes: &[u8]) -> std::result::Result<Record, String> {
    let other_format = |format: u32| {
        format!("record has format {format}; this layer reads format {RECORD_FORMAT}")
    };
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
