//! The cache directory: build records, the role trees they refer to, and the stat cache.
//! Only this module writes under the cache.
//!
//! ```text
//! cache/
//!   records/NAME/KEY.json   the record of the latest successful build of KEY
//!   trees/DIGEST.json       role trees named by records, for `layer explain`
//!   stat-cache              (size, mtime, inode, ctime) -> blake3 of input files
//! ```
//!
//! Every file is written atomically: a temporary file in the same folder, fsync, rename over
//! the target, fsync of the folder. A record that is missing, truncated, unparsable, of another
//! format, or whose inputs do not hash to its key is never used: the image is stale.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::key::Inputs;
use crate::scan::{Entry, StatCache, Tree};

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

#[derive(Debug, Clone)]
pub struct Cache {
    dir: PathBuf,
}

impl Cache {
    pub fn new(dir: impl Into<PathBuf>) -> Cache {
        Cache { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn record_path(&self, name: &str, key: &str) -> PathBuf {
        self.dir
            .join("records")
            .join(name)
            .join(format!("{key}.json"))
    }

    fn tree_path(&self, digest: &str) -> PathBuf {
        self.dir.join("trees").join(format!("{digest}.json"))
    }

    fn stat_path(&self) -> PathBuf {
        self.dir.join("stat-cache")
    }

    /// The record of `key` for image `name`, verified.
    pub fn lookup(&self, name: &str, key: &str) -> Lookup {
        let bytes = match fs::read(self.record_path(name, key)) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Lookup::Missing,
            Err(e) => return Lookup::Unusable(format!("record cannot be read: {e}")),
        };
        match parse_record(&bytes) {
            Err(why) => Lookup::Unusable(why),
            Ok(r) if r.name != name || r.key != key => {
                Lookup::Unusable("record belongs to another image or key".into())
            }
            Ok(r) => Lookup::Found(Box::new(r)),
        }
    }

    /// Every usable record of image `name`, newest first.
    pub fn records(&self, name: &str) -> Vec<Record> {
        let Ok(dir) = fs::read_dir(self.dir.join("records").join(name)) else {
            return vec![];
        };
        let mut out: Vec<Record> = dir
            .flatten()
            .filter(|e| e.file_name().to_str().is_some_and(|n| n.ends_with(".json")))
            .filter_map(|e| fs::read(e.path()).ok())
            .filter_map(|b| parse_record(&b).ok())
            .filter(|r| r.name == name)
            .collect();
        out.sort_by(|a, b| {
            (b.built_at_time(), &b.version, &b.key).cmp(&(a.built_at_time(), &a.version, &a.key))
        });
        out
    }

    /// The newest usable record of image `name`.
    pub fn latest(&self, name: &str) -> Option<Record> {
        self.records(name).into_iter().next()
    }

    /// A recorded role tree, if it is still in the cache and intact.
    pub fn tree(&self, digest: &str) -> Option<Tree> {
        let bytes = fs::read(self.tree_path(digest)).ok()?;
        let entries: Vec<Entry> = serde_json::from_slice(&bytes).ok()?;
        let tree = Tree::new(entries);
        (tree.digest == digest).then_some(tree)
    }

    /// Whether the record's artifact is where the record says. Remote artifacts (no local path)
    /// cannot be checked here and count as present.
    pub fn artifact_exists(&self, record: &Record) -> bool {
        match &record.artifact.path {
            None => true,
            Some(p) => self.dir.join(p).exists(),
        }
    }

    /// Stores a record, and first the trees it names so that a record never points at a
    /// missing tree.
    pub fn write_record(&self, record: &Record, trees: &[&Tree]) -> Result<()> {
        for t in trees {
            let path = self.tree_path(&t.digest);
            if !path.exists() {
                let json = serde_json::to_vec(&t.entries).expect("trees serialize");
                write_atomic(&path, &json)?;
            }
        }
        let json = serde_json::to_vec_pretty(record).expect("records serialize");
        write_atomic(&self.record_path(&record.name, &record.key), &json)
    }

    pub fn load_stat_cache(&self) -> StatCache {
        fs::read(self.stat_path())
            .map(|b| StatCache::decode(&b))
            .unwrap_or_default()
    }

    pub fn save_stat_cache(&self, stat: &StatCache) -> Result<()> {
        write_atomic(&self.stat_path(), &stat.encode())
    }
}

fn parse_record(bytes: &[u8]) -> std::result::Result<Record, String> {
    #[derive(Deserialize)]
    struct Head {
        format: u32,
    }
    let head: Head =
        serde_json::from_slice(bytes).map_err(|e| format!("record is corrupt: {e}"))?;
    if head.format != RECORD_FORMAT {
        return Err(format!(
            "record has format {}; this layer reads format {RECORD_FORMAT}",
            head.format
        ));
    }
    let r: Record = serde_json::from_slice(bytes).map_err(|e| format!("record is corrupt: {e}"))?;
    if r.inputs.key() != r.key {
        return Err("record is corrupt: its inputs do not hash to its key".into());
    }
    Ok(r)
}

/// Writes `bytes` to `path` so that readers see the old content or the new, never a part:
/// a temporary file beside it, fsync, rename, fsync of the folder.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().expect("cache paths have a parent");
    fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let name = path
        .file_name()
        .expect("cache paths have a name")
        .to_string_lossy();
    let tmp = dir.join(format!(".{name}.tmp{}", std::process::id()));
    let result = (|| {
        let mut f = fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        f.write_all(bytes).map_err(|e| Error::io(&tmp, e))?;
        f.sync_all().map_err(|e| Error::io(&tmp, e))?;
        fs::rename(&tmp, path).map_err(|e| Error::io(path, e))?;
        fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| Error::io(dir, e))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}
