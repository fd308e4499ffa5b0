//! The record index (`cache/record-index`): what plans need of the record of each image's
//! current key, so that a no-op plan reads one file instead of one record per image (ninja
//! reads one `.ninja_log`; a record is some 8 KB of JSON, most of it the inputs).
//!
//! An entry holds a record's every field but its inputs — the inputs of a found record are the
//! current key's own, since both hash to the key (checked when the entry is made) — under the
//! stamp of the record's file. Like the stat cache it only saves work, validated as git
//! validates its index:
//!
//! - an entry is used only while `lstat` of its record file (relative to the open `records/`
//!   folder) gives exactly the stamp it was taken under: device, inode, size, mtime, ctime and
//!   mode. Records are replaced by a rename (a new inode), so a build, `--force`, a promote or
//!   revoke, a pull, `cache gc` or an edit by hand by any process shows;
//! - a record file that is missing is a missing record whatever the index says;
//! - a record read within [`RACY_WINDOW`] of its stamp is not indexed (git's racy-clean rule),
//!   nor is one whose stamp changed while it was read;
//! - an index that fails its checksum, is of another format, or an entry that does not parse,
//!   is no index: the records are read.
//!
//! Plans keep it current (the cache's writers need not know of it): entries are made from the
//! records a plan had to read, and the file is rewritten only when its entries changed.

use std::collections::{BTreeMap, HashMap};
use std::ffi::CString;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use rayon::prelude::*;
use rustix::fs::{AtFlags, Mode, OFlags};
use serde::{Deserialize, Serialize};

use super::Cache;
use crate::key::{ImageKey, Inputs};
use crate::record::{Artifact, Lookup, ParentRef, Record, RECORD_FORMAT};
use crate::scan::{Stamp, RACY_WINDOW};

/// The first line of the index: its format, and the record format and key schema its entries
/// were made under (an index of another layer is no index).
fn header() -> String {
    format!(
        "layer record-index 1 record {RECORD_FORMAT} key-schema {}\n",
        crate::key::KEY_SCHEMA
    )
}

/// A record but its inputs (and its name and key, which the entry's line holds).
#[derive(Serialize, Deserialize)]
struct Head {
    format: u32,
    version: String,
    built_at: String,
    duration_ms: u64,
    forced: bool,
    artifact: Artifact,
    parent: Option<ParentRef>,
    tags: BTreeMap<String, String>,
    packages: Option<crate::packages::Manifest>,
}

impl Head {
    fn of(r: &Record) -> Head {
        // Every field named: a field added to `Record` does not compile until it is indexed.
        let Record {
            format,
            name: _,
            key: _,
            version,
            built_at,
            duration_ms,
            forced,
            artifact,
            parent,
            tags,
            inputs: _,
            packages,
        } = r;
        Head {
            format: *format,
            version: version.clone(),
            built_at: built_at.clone(),
            duration_ms: *duration_ms,
            forced: *forced,
            artifact: artifact.clone(),
            parent: parent.clone(),
            tags: tags.clone(),
            packages: packages.clone(),
        }
    }

    fn into_record(self, name: &str, key: &str, inputs: Arc<Inputs>) -> Record {
        Record {
            format: self.format,
            name: name.to_string(),
            key: key.to_string(),
            version: self.version,
            built_at: self.built_at,
            duration_ms: self.duration_ms,
            forced: self.forced,
            artifact: self.artifact,
            parent: self.parent,
            tags: self.tags,
            inputs,
            packages: self.packages,
        }
    }
}

/// One line of the index: `NAME KEY DEV INO SIZE MTIME CTIME MODE HEAD-JSON`.
fn entry_line(name: &str, key: &str, s: &Stamp, record: &Record) -> Vec<u8> {
    let mut line = format!(
        "{name} {key} {} {} {} {} {} {} ",
        s.dev, s.ino, s.size, s.mtime_ns, s.ctime_ns, s.mode
    )
    .into_bytes();
    serde_json::to_writer(&mut line, &Head::of(record)).expect("records serialize");
    line.push(b'\n');
    line
}

/// The record index as read: its entries by (name, key), borrowed from the file's bytes
/// ([`Cache::load_record_index`]). Loading and parsing are separate from looking up, so that a
/// workspace reads and parses the index while the role trees are scanned and keyed.
pub struct RecordIndex<'a> {
    entries: HashMap<(&'a str, &'a str), Entry<'a>>,
}

impl<'a> RecordIndex<'a> {
    /// The entries of `bytes` (as [`Cache::load_record_index`] gave them).
    pub fn parse(bytes: &'a [u8]) -> RecordIndex<'a> {
        RecordIndex {
            entries: parse(bytes),
        }
    }
}

/// An entry as read: its stamp and the bytes of its head.
struct Entry<'a> {
    stamp: Stamp,
    head: &'a [u8],
    line: &'a [u8],
}

/// The entries of an index's bytes by (name, key); empty when the header is not this
/// layer's. A line that does not parse is left out.
fn parse(bytes: &[u8]) -> HashMap<(&str, &str), Entry<'_>> {
    let Some(body) = bytes.strip_prefix(header().as_bytes()) else {
        return HashMap::new();
    };
    let mut out = HashMap::new();
    for line in body.split_inclusive(|&b| b == b'\n') {
        let mut fields = line.splitn(9, |&b| b == b' ');
        let mut text = || fields.next().and_then(|f| std::str::from_utf8(f).ok());
        let (Some(name), Some(key)) = (text(), text()) else {
            continue;
        };
        let mut num = || text().and_then(|t| t.parse::<i128>().ok());
        let (Some(dev), Some(ino), Some(size), Some(mtime), Some(ctime), Some(mode)) =
            (num(), num(), num(), num(), num(), num())
        else {
            continue;
        };
        let Some(head) = fields.next() else {
            continue;
        };
        let stamp = Stamp {
            dev: dev as u64,
            ino: ino as u64,
            size: size as u64,
            mtime_ns: mtime as i64,
            ctime_ns: ctime as i64,
            mode: mode as u32,
        };
        out.insert((name, key), Entry { stamp, head, line });
    }
    out
}

/// What looking one image's record up through the index gave.
enum Looked {
    /// From the index entry (its line is kept as it was).
    Hit(Lookup),
    /// Read from the record file; the line of a new entry when it may be indexed.
    Read(Lookup, Option<Vec<u8>>),
}

impl Cache {
    fn index_path(&self) -> std::path::PathBuf {
        self.dir.join("record-index")
    }

    /// The bytes of the record index, checksum checked (empty when there is none or it fails
    /// its checksum), for [`RecordIndex::parse`].
    pub fn load_record_index(&self) -> crate::fsutil::FileBytes {
        self.load_sealed(&self.index_path()).unwrap_or_default()
    }

    /// The record of each `(name, key)`, as [`Cache::lookup`] finds it, through `index` (the
    /// record index as loaded and parsed, see this module): one `lstat` per record file,
    /// relative to the open `records/` folder, and a read only of those the index does not
    /// vouch for. Saves the index when its entries changed; like the stat cache, a cache folder
    /// that cannot be written is no error.
    pub fn lookup_keys(&self, index: &RecordIndex, wanted: &[(&str, &ImageKey)]) -> Vec<Lookup> {
        let old = &index.entries;
        let records = rustix::fs::open(
            self.dir.join("records"),
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        );
        let records = match records {
            Ok(fd) => fd,
            Err(rustix::io::Errno::NOENT) if old.is_empty() => {
                return wanted.iter().map(|_| Lookup::Missing).collect();
            }
            // No index then, and every record looked up as before (same messages).
            Err(_) => {
                return wanted.iter().map(|(n, k)| self.lookup(n, &k.key)).collect();
            }
        };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let racy_after = now.saturating_sub(RACY_WINDOW).as_nanos() as i64;
        let racy = |s: &Stamp| s.mtime_ns >= racy_after || s.ctime_ns >= racy_after;
        let stat = |rel: &CString| {
            rustix::fs::statat(&records, rel.as_c_str(), AtFlags::SYMLINK_NOFOLLOW)
                .map(|st| Stamp::of_stat(&st))
        };
        let looked: Vec<Looked> = crate::fsutil::io_pool().install(|| {
            wanted
                .par_iter()
                .map(|&(name, k)| {
                    let key = k.key.as_str();
                    let Ok(rel) = CString::new(format!("{name}/{key}.json")) else {
                        return Looked::Read(self.lookup(name, key), None);
                    };
                    let stamp = match stat(&rel) {
                        Ok(s) => s,
                        Err(rustix::io::Errno::NOENT) => {
                            return Looked::Read(Lookup::Missing, None)
                        }
                        Err(_) => return Looked::Read(self.lookup(name, key), None),
                    };
                    if let Some(e) = old.get(&(name, key)) {
                        if e.stamp == stamp && !racy(&stamp) {
                            if let Ok(head) = serde_json::from_slice::<Head>(e.head) {
                                let r = head.into_record(name, key, k.inputs.clone());
                                return Looked::Hit(Lookup::Found(Box::new(r)));
                            }
                        }
                    }
                    let found = self.lookup(name, key);
                    let line = match &found {
                        Lookup::Found(r)
                            if r.inputs == k.inputs
                                && !racy(&stamp)
                                && stat(&rel).is_ok_and(|again| again == stamp) =>
                        {
                            Some(entry_line(name, key, &stamp, r))
                        }
                        _ => None,
                    };
                    Looked::Read(found, line)
                })
                .collect()
        });
        let changed = looked.iter().any(|l| matches!(l, Looked::Read(_, Some(_))))
            || looked
                .iter()
                .filter(|l| matches!(l, Looked::Hit(_)))
                .count()
                != old.len();
        let mut out = Vec::with_capacity(looked.len());
        let mut next = header().into_bytes();
        for (l, &(name, k)) in looked.into_iter().zip(wanted) {
            match l {
                Looked::Hit(found) => {
                    if changed {
                        next.extend_from_slice(old[&(name, k.key.as_str())].line);
                    }
                    out.push(found);
                }
                Looked::Read(found, line) => {
                    if let Some(line) = line {
                        next.extend_from_slice(&line);
                    }
                    out.push(found);
                }
            }
        }
        if changed {
            let _ = self.save_sealed(&self.index_path(), &next);
        }
        out
    }
}

impl Cache {
    /// [`Cache::artifact_exists`] of each record (`false` for `None`), in parallel, each
    /// artifact `stat`ed relative to the open cache folder rather than by its whole path.
    pub fn artifacts_exist(&self, records: &[Option<&Record>]) -> Vec<bool> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let dir = rustix::fs::open(&self.dir, flags, Mode::empty()).ok();
        let exists = |r: &Record| match (&dir, &r.artifact.path) {
            // As `Path::exists`: through links, and an error is "not there".
            (Some(dir), Some(p)) => rustix::fs::statat(dir, p.as_str(), AtFlags::empty()).is_ok(),
            _ => self.artifact_exists(r),
        };
        crate::fsutil::io_pool()
            .install(|| records.par_iter().map(|r| r.is_some_and(exists)).collect())
    }
}
