//! The cache directory: build records, the role trees they refer to, and the stat cache.
//! Only this module writes under the cache.
//!
//! ```text
//! cache/
//!   records/NAME/KEY.json   the record of the latest successful build of KEY
//!   trees/DIGEST.json       role trees named by records, for `layer explain`
//!   stat-cache              (size, mtime, inode, ctime) -> blake3 of input files, then the
//!                           blake3 of all that: a stat cache that fails it is an empty one
//!   record-index            what plans need of the records of current keys, under the stamps of
//!                           their files, then its blake3 (`index`): one that fails it is none
//!   model-cache             the parsed declarations under the stamps of the files they were
//!                           read from (`decl::load_cached`), then their blake3: one that
//!                           fails it is ignored
//!   since-cache             role digests by git tree id, and a revision's parsed declarations
//!                           by blob ids ([`since`]), then their blake3
//!   logs/NAME/VERSION.log   build logs, and `VERSION.test.log` of test runs (see `logs`)
//!   cache.lock              held shared by builds and release changes, exclusive by `gc`
//!   staged/                 bundles made once and shared by builds ([`stage`])
//!   apt/ID/                 apt's downloads shared by every build on the origin ID, in every
//!                           run (outside every key and layer, as `BuildKit`'s cache mounts):
//!     archives/             `.deb`s, bound at `/var/cache/apt/archives` during package steps
//!     lists/SRC/            apt's lists for one set of sources, bound at `/var/lib/apt/lists`
//!     lists/SRC.run         the run that last updated them (lists are fetched once a run)
//!     lock                  held while apt updates, verifies and downloads into them
//! ```
//!
//! `apt/` is written by apt inside the sandbox and by mmdebstrap's hook (which files away the
//! `.deb`s it downloaded), not by this module; it only makes and removes the folders.
//!
//! Every file is written atomically: a temporary file in the same folder, fsync, rename over
//! the target, fsync of the folder; records and their trees without the fsyncs (a record lost
//! to a power cut means a rebuild, and an fsync per build is slower than many builds). A record
//! that is missing, truncated, unparsable, of another format, whose checksum does not match its
//! bytes ([`crate::record::seal_record`]), or whose inputs do not hash to its key is never used:
//! the image is stale.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::error::{Error, ErrorKind, Result};
use crate::fsutil::{read_small_nofollow, remove_tree, write_atomic, write_atomic_lazy};
use crate::record::{open_record, seal_record, Lookup, Record};
use crate::scan::{Entry, Tree};
use crate::version::{build_number, version_fields};

mod sealed;
mod index;
pub use index::RecordIndex;
pub mod gc;
pub mod release;
pub mod logs;
pub mod stage;
pub mod since;

#[derive(Debug, Clone)]
pub struct Cache {
    dir: PathBuf,
    /// What staging bundles remembers while this cache lives ([`stage`]).
    staging: std::sync::Arc<stage::Staging>,
}

impl Cache {
    pub fn new(dir: impl Into<PathBuf>) -> Cache {
        Cache {
            dir: dir.into(),
            staging: Default::default(),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Refuses a cache folder that is a link, not a folder, or owned by another user: a
    /// project could commit a `cache` link to make plans write elsewhere, or a cache of files
    /// made to be read. A folder not made yet is fine.
    pub fn check_folder(&self) -> Result<()> {
        use std::os::unix::fs::MetadataExt;
        let refuse = |message: String, hint: &str| Error::Input {
            kind: ErrorKind::CacheFolder,
            path: self.dir.display().to_string(),
            message,
            hint: Some(hint.into()),
        };
        let meta = match fs::symlink_metadata(&self.dir) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(Error::io(&self.dir, e)),
        };
        if meta.file_type().is_symlink() {
            let to = fs::read_link(&self.dir).unwrap_or_default();
            return Err(refuse(
                format!("the cache folder is a link to `{}`", to.display()),
                "remove the link (a cache is never committed), or name the real folder with `--cache`",
            ));
        }
        if !meta.is_dir() {
            return Err(refuse(
                "the cache folder is not a folder".into(),
                "remove it, or name another cache folder with `--cache`",
            ));
        }
        let me = rustix::process::geteuid().as_raw();
        if meta.uid() != me {
            return Err(refuse(
                format!(
                    "the cache folder is owned by user {}, not by the user running layer ({me})",
                    meta.uid()
                ),
                "remove it (a cache is never committed), or name your own with `--cache`",
            ));
        }
        Ok(())
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

    /// The folder of an origin's root filesystem, by the origin's identity (SPEC §2): the
    /// first 32 hex digits of the blake3 of its canonical JSON. Made by the rootfs backend.
    pub fn origin_dir(&self, identity: &crate::key::OriginIdentity) -> PathBuf {
        let json = serde_json::to_vec(identity).expect("identities serialize");
        let id = blake3::hash(&json).to_hex();
        self.dir.join("origins").join(&id[..32])
    }

    /// The root folder and recorded digest of the origin of `identity`, if it was made.
    pub fn origin(&self, identity: &crate::key::OriginIdentity) -> Option<(PathBuf, String)> {
        let dir = self.origin_dir(identity);
        let digest = fs::read_to_string(dir.join("digest")).ok()?;
        Some((dir.join("root"), digest.trim().to_string()))
    }

    /// The shared apt folder of the origin of `identity` (`apt/ID`, ID as in
    /// [`Cache::origin_dir`]), with its `archives/partial` and `lists` made: what package steps
    /// of builds on that origin bind into their sandbox, and where mmdebstrap's downloads go.
    pub fn apt_dir(&self, identity: &crate::key::OriginIdentity) -> Result<PathBuf> {
        let origin = self.origin_dir(identity);
        let id = origin.file_name().expect("origin folders have a name");
        let dir = self.dir.join("apt").join(id);
        for sub in ["archives/partial", "lists"] {
            let p = dir.join(sub);
            fs::create_dir_all(&p).map_err(|e| Error::io(&p, e))?;
        }
        Ok(dir)
    }

    /// A new, empty, root-only folder `origins/ID.tmp-PID` to make the origin of `identity`
    /// in (its tree goes in `root/`); call with the origin's lock held.
    pub fn origin_work(&self, identity: &crate::key::OriginIdentity) -> Result<PathBuf> {
        let dir = self.origin_dir(identity);
        let tmp = dir.with_extension(format!("tmp-{}", std::process::id()));
        remove_tree(&tmp)?;
        fs::create_dir_all(tmp.join("root")).map_err(|e| Error::io(&tmp, e))?;
        fs::set_permissions(&tmp, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .map_err(|e| Error::io(&tmp, e))?;
        Ok(tmp)
    }

    /// Puts an origin made in `work` (from [`Cache::origin_work`]) in its place with its
    /// digest, written last: a folder without one is unfinished and made again. Returns its
    /// root folder.
    pub fn store_origin(
        &self,
        identity: &crate::key::OriginIdentity,
        work: &Path,
        digest: &str,
    ) -> Result<PathBuf> {
        let dir = self.origin_dir(identity);
        remove_tree(&dir)?;
        write_atomic(&work.join("digest"), digest.as_bytes())?;
        fs::rename(work, &dir).map_err(|e| Error::io(&dir, e))?;
        Ok(dir.join("root"))
    }

    /// The record of `key` for image `name`, verified.
    pub fn lookup(&self, name: &str, key: &str) -> Lookup {
        let bytes = match read_small_nofollow(&self.record_path(name, key)) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Lookup::Missing,
            Err(e) => return Lookup::Unusable(format!("record cannot be read: {e}")),
        };
        match open_record(&bytes) {
            Err(why) => Lookup::Unusable(why),
            Ok(r) if r.name != name || r.key != key => {
                Lookup::Unusable("record belongs to another image or key".into())
            }
            Ok(r) => Lookup::Found(Box::new(r)),
        }
    }

    /// Every usable record of image `name` — every build still known, superseded ones
    /// included — newest first.
    pub fn records(&self, name: &str) -> Vec<Record> {
        let dir = self.dir.join("records").join(name);
        let read = |d: &Path| -> Vec<Record> {
            let Ok(entries) = fs::read_dir(d) else {
                return vec![];
            };
            let paths: Vec<PathBuf> = entries
                .flatten()
                .filter(|e| e.file_name().to_str().is_some_and(|n| n.ends_with(".json")))
                .map(|e| e.path())
                .collect();
            use rayon::prelude::*;
            paths
                .par_iter()
                .filter_map(|p| read_small_nofollow(p).ok())
                .filter_map(|b| open_record(&b).ok())
                .filter(|r| r.name == name)
                .collect()
        };
        let mut out = read(&dir);
        out.extend(read(&dir.join("old")));
        // Newest first: by build time, then version compared field by field (1.0.10 after
        // 1.0.9, 1.1.0 after 1.0.1).
        let order = |r: &Record| (r.built_at_time(), version_fields(&r.version), r.key.clone());
        out.sort_by_key(|r| std::cmp::Reverse(order(r)));
        out
    }

    /// The newest usable record of image `name`.
    pub fn latest(&self, name: &str) -> Option<Record> {
        self.records(name).into_iter().next()
    }

    /// The newest usable record of image `name` built under `strategy`, else its newest:
    /// what a plan of that strategy compares with. Reheats (`build --reheat`) are passed
    /// over while a fresh build is left: a plan says what changed since the image was last
    /// baked fresh, which a reheat does not make it.
    pub fn latest_of(&self, name: &str, strategy: crate::model::Strategy) -> Option<Record> {
        let records = self.records(name);
        let fresh = |r: &Record| !matches!(r.inputs.base, crate::key::BaseInputs::Reheat { .. });
        let pick = records
            .iter()
            .position(|r| r.inputs.strategy == strategy && fresh(r))
            .or_else(|| records.iter().position(|r| r.inputs.strategy == strategy))
            .or_else(|| records.iter().position(fresh));
        records.into_iter().nth(pick.unwrap_or(0))
    }

    /// Every usable record of every image the cache knows, by image name, newest first.
    pub fn all_records(&self) -> BTreeMap<String, Vec<Record>> {
        use rayon::prelude::*;
        self.recorded_images()
            .into_par_iter()
            .map(|n| {
                let r = self.records(&n);
                (n, r)
            })
            .filter(|(_, r)| !r.is_empty())
            .collect()
    }

    /// A recorded role tree, if it is still in the cache and intact.
    pub fn tree(&self, digest: &str) -> Option<Tree> {
        let bytes = read_small_nofollow(&self.tree_path(digest)).ok()?;
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
    /// missing tree. A record already stored for the same key (a forced or expired rebuild)
    /// moves to `old/` first, so every build keeps its version.
    pub fn write_record(&self, record: &Record, trees: &[&Tree]) -> Result<()> {
        for t in trees {
            let path = self.tree_path(&t.digest);
            if !path.exists() {
                let json = serde_json::to_vec(&t.entries).expect("trees serialize");
                write_atomic_lazy(&path, &json)?;
            }
        }
        let path = self.record_path(&record.name, &record.key);
        if let Lookup::Found(previous) = self.lookup(&record.name, &record.key) {
            if previous.version != record.version {
                let old = path.parent().expect("records have a folder").join("old");
                fs::create_dir_all(&old).map_err(|e| Error::io(&old, e))?;
                let to = old.join(format!("{}.json", previous.version));
                fs::rename(&path, &to).map_err(|e| Error::io(&to, e))?;
            }
        }
        // Not fsynced: a record lost to a power cut means a rebuild, not a wrong answer.
        write_atomic_lazy(&path, &seal_record(record))
    }

    /// Rewrites a stored record in place, for what happens to a build after it (its release
    /// status, its test results): the record of its key when that is this build, otherwise
    /// `old/VERSION.json`. The key, version and inputs of a record never change; callers hold
    /// the image's lock ([`Cache::lock_image`]) so that a build does not move the file meanwhile.
    pub fn rewrite_record(&self, record: &Record) -> Result<()> {
        let current = self.record_path(&record.name, &record.key);
        let path = match self.lookup(&record.name, &record.key) {
            Lookup::Found(r) if r.version == record.version => current,
            _ => {
                let old = current
                    .parent()
                    .expect("records have a folder")
                    .join("old")
                    .join(format!("{}.json", record.version));
                if !old.is_file() {
                    return Err(Error::usage(
                        ErrorKind::NoRecord,
                        format!(
                            "no record of {} {} in {}",
                            record.name,
                            record.version,
                            self.dir.display()
                        ),
                    ));
                }
                old
            }
        };
        write_atomic(&path, &seal_record(record))
    }

    /// The next build number of image `name` under `major_minor` (`1.4`): one more than the
    /// highest recorded, from 0. Superseded records are numbered by their file names
    /// (`old/VERSION.json`) rather than parsed, so a build costs the same however many came
    /// before it; a corrupt one only means a number is skipped, never reused.
    pub fn next_build(&self, name: &str, major_minor: &str) -> u64 {
        let dir = self.dir.join("records").join(name);
        let current = fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_name().to_str().is_some_and(|n| n.ends_with(".json")))
            .filter_map(|e| read_small_nofollow(&e.path()).ok())
            .filter_map(|b| open_record(&b).ok())
            .filter(|r| r.name == name)
            .map(|r| r.version);
        let old = fs::read_dir(dir.join("old"))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let n = e.file_name().to_str()?.strip_suffix(".json")?.to_string();
                Some(n)
            });
        current
            .chain(old)
            .filter(|v| {
                v.split('-')
                    .next()
                    .and_then(|v| v.rsplit_once('.'))
                    .is_some_and(|(mm, _)| mm == major_minor)
            })
            .filter_map(|v| build_number(&v))
            .max()
            .map_or(0, |b| b + 1)
    }

    /// Takes the lock of image `name`, waiting for another run that holds it; `waiting` is
    /// called first when the lock is busy.
    pub fn lock_image(&self, name: &str, waiting: &mut dyn FnMut()) -> Result<fs::File> {
        self.lock_file(&format!("{name}.lock"), waiting)
    }

    /// Takes the lock of making the origin of `identity`, waiting for another run that holds
    /// it; `waiting` is called first when the lock is busy.
    pub fn lock_origin(
        &self,
        identity: &crate::key::OriginIdentity,
        waiting: &mut dyn FnMut(),
    ) -> Result<fs::File> {
        let dir = self.origin_dir(identity);
        let id = dir.file_name().expect("origin folders have a name");
        self.lock_file(&format!("origin-{}.lock", id.to_string_lossy()), waiting)
    }

    /// Takes the OS lock `locks/FILE` exclusively (a killed holder frees it).
    fn lock_file(&self, file: &str, waiting: &mut dyn FnMut()) -> Result<fs::File> {
        let path = self.dir.join("locks").join(file);
        let f = open_lock(&path)?;
        take_lock(&f, &path, Lock::Exclusive, waiting)?;
        Ok(f)
    }

    /// Takes the cache-wide lock shared, waiting while `layer cache gc` holds it; `waiting` is
    /// called first when it is busy. Builds (through [`Cache::start_run`]) and release status
    /// changes hold it for as long as they run, so gc never removes what they use.
    pub fn lock_shared(&self, waiting: &mut dyn FnMut()) -> Result<fs::File> {
        let path = self.dir.join("cache.lock");
        let f = open_lock(&path)?;
        take_lock(&f, &path, Lock::Shared, waiting)?;
        Ok(f)
    }

    /// Takes the cache-wide lock exclusively, for `layer cache gc`: waits for running builds
    /// to finish (`waiting` is called first) or, without `wait`, returns `None` when any holds it.
    pub fn lock_exclusive(
        &self,
        wait: bool,
        waiting: &mut dyn FnMut(),
    ) -> Result<Option<fs::File>> {
        let path = self.dir.join("cache.lock");
        let f = open_lock(&path)?;
        if !wait {
            return match f.try_lock() {
                Ok(()) => Ok(Some(f)),
                Err(fs::TryLockError::WouldBlock) => Ok(None),
                Err(fs::TryLockError::Error(e)) => Err(Error::io(&path, e)),
            };
        }
        take_lock(&f, &path, Lock::Exclusive, waiting)?;
        Ok(Some(f))
    }

    /// The images the cache holds records of, declared or not, by name.
    pub fn recorded_images(&self) -> Vec<String> {
        let Ok(entries) = fs::read_dir(self.dir.join("records")) else {
            return vec![];
        };
        let mut names: Vec<String> = entries
            .flatten()
            .filter(|e| e.path().is_dir())
            .filter_map(|e| e.file_name().to_str().map(str::to_string))
            .filter(|n| crate::model::valid_name(n))
            .collect();
        names.sort();
        names
    }

    /// A new, empty build log (named as [`logs`] says), locked until the file is closed. A
    /// failed build takes no build number, so a retry can have the
    /// same version: its log gets a suffix rather than overwriting the failure's.
    pub fn create_log(&self, name: &str, version: &str) -> Result<(PathBuf, fs::File)> {
        let dir = self.dir.join("logs").join(name);
        if !dir.is_dir() {
            fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        }
        for n in 0u32.. {
            let file = if n == 0 {
                format!("{version}.log")
            } else {
                format!("{version}.{n}.log")
            };
            let path = dir.join(file);
            match fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(f) => {
                    // Held while the log is written (see `logs`): new, so nobody else has it.
                    f.lock().map_err(|e| Error::io(&path, e))?;
                    return Ok((path, f));
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(Error::io(&path, e)),
            }
        }
        unreachable!("some suffix is free")
    }

    /// Moves a finished local artifact into the cache (a rename: work folders are in the
    /// cache) and returns its path relative to the cache.
    pub fn store_artifact(&self, name: &str, file_name: &str, from: &Path) -> Result<String> {
        let rel = format!("artifacts/{name}/{file_name}");
        let to = self.dir.join(&rel);
        let dir = to.parent().expect("artifacts have a folder");
        fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        // One already there was left by a build killed between storing its artifact and
        // writing its record: versions come from records, and the caller holds the image's
        // lock, so no record names it.
        if fs::symlink_metadata(&to).is_ok_and(|m| m.is_dir()) {
            remove_tree(&to)?;
        }
        fs::rename(from, &to).map_err(|e| Error::io(&to, e))?;
        fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| Error::io(dir, e))?;
        Ok(rel)
    }

    /// Puts an artifact fetched from elsewhere (a remote cache) at `rel` (`artifacts/NAME/FILE`,
    /// as a record names it): `fill` makes it at a temporary path beside its place (a file or
    /// a folder; it must verify it), then it is renamed in, over whatever was there. On error
    /// nothing is left. Returns its path.
    pub fn install_artifact(
        &self,
        rel: &str,
        fill: impl FnOnce(&Path) -> Result<()>,
    ) -> Result<PathBuf> {
        let parts: Vec<&str> = rel.split('/').collect();
        if parts.len() != 3
            || parts[0] != "artifacts"
            || parts[1..]
                .iter()
                .any(|p| p.is_empty() || *p == "." || *p == "..")
        {
            return Err(Error::Cache {
                kind: ErrorKind::ArtifactPath,
                path: self.dir.clone(),
                message: format!("`{rel}` is not an artifact path"),
            });
        }
        let to = self.dir.join(rel);
        let dir = to.parent().expect("artifacts have a folder");
        fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let tmp = crate::fsutil::temp_beside(&to);
        let guard = crate::fsutil::Remove::new(&tmp);
        fill(&tmp)?;
        if fs::symlink_metadata(&to).is_ok_and(|m| m.is_dir()) {
            remove_tree(&to)?;
        }
        fs::rename(&tmp, &to).map_err(|e| Error::io(&to, e))?;
        guard.keep();
        crate::fsutil::sync_parent(&to)?;
        Ok(to)
    }

    /// Starts a run: a private work folder, held by a lock for as long as the run lives, and
    /// the cache lock, shared. Folders of runs that died (their lock is free) are removed first.
    pub fn start_run(&self) -> Result<Run> {
        let cache_lock = self.lock_shared(&mut || {})?;
        let runs = self.dir.join("runs");
        fs::create_dir_all(&runs).map_err(|e| not_writable(&runs, e))?;
        self.remove_dead_runs()?;
        self.remove_dead_temps()?;
        let nanos = SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let id = format!("{}-{nanos}", std::process::id());
        let lock_path = runs.join(format!("{id}.lock"));
        let lock = fs::File::create(&lock_path).map_err(|e| Error::io(&lock_path, e))?;
        lock.lock().map_err(|e| Error::io(&lock_path, e))?;
        let dir = runs.join(&id);
        fs::create_dir(&dir).map_err(|e| Error::io(&dir, e))?;
        fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .map_err(|e| Error::io(&dir, e))?;
        Ok(Run {
            dir,
            lock_path,
            _lock: lock,
            _cache_lock: cache_lock,
        })
    }

    /// Removes the work folders of runs whose lock nobody holds. Returns how many.
    pub fn remove_dead_runs(&self) -> Result<usize> {
        let runs = self.dir.join("runs");
        let Ok(entries) = fs::read_dir(&runs) else {
            return Ok(0);
        };
        let mut removed = 0;
        for e in entries.flatten() {
            let path = e.path();
            if path.extension().is_none_or(|x| x != "lock") {
                continue;
            }
            let Ok(f) = fs::OpenOptions::new().write(true).open(&path) else {
                continue;
            };
            if f.try_lock().is_ok() {
                remove_tree(&path.with_extension(""))?;
                let _ = fs::remove_file(&path);
                removed += 1;
            }
        }
        // A folder without a lock file belongs to a run killed while it started.
        for e in fs::read_dir(&runs)
            .map_err(|e| Error::io(&runs, e))?
            .flatten()
        {
            let path = e.path();
            if path.is_dir() && !path.with_extension("lock").exists() {
                remove_tree(&path)?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// The folder of `layer watch`'s files (`crate::watch`): its lock, its state and the
    /// cookie plans open to sync with it.
    pub fn watch_dir(&self) -> PathBuf {
        self.dir.join("watch")
    }

    /// Opens the file `name` of [`Cache::watch_dir`] for reading and writing, making it (and
    /// the folder) if missing, never truncating it: a lock file stays one file while held.
    pub fn open_watch_file(&self, name: &str) -> Result<fs::File> {
        let dir = self.watch_dir();
        fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let path = dir.join(name);
        fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::io(&path, e))
    }

    /// Writes the file `name` of [`Cache::watch_dir`] atomically (not durably: a watcher's
    /// files mean nothing after a crash), making the folder if missing.
    pub fn write_watch_file(&self, name: &str, bytes: &[u8]) -> Result<()> {
        crate::fsutil::write_atomic_lazy(&self.watch_dir().join(name), bytes)
    }
}

/// The blake3 digest and size of a local artifact: a file, or a folder such as a rootfs layer
/// (see [`crate::layerfs::digest`] for what it covers). `layer cache verify` and every use of
/// an artifact as a parent compare this with the record's `artifact.blake3`.
pub fn artifact_digest(path: &Path) -> Result<(String, u64)> {
    crate::layerfs::digest(path)
}

/// A running build's work folder; removed when dropped, together with its lock.
pub struct Run {
    pub dir: PathBuf,
    lock_path: PathBuf,
    _lock: fs::File,
    /// The cache lock, shared: `layer cache gc` waits while a run lives.
    _cache_lock: fs::File,
}

impl Drop for Run {
    fn drop(&mut self) {
        let _ = remove_tree(&self.dir);
        let _ = fs::remove_file(&self.lock_path);
    }
}

/// How a lock file is held: shared by runs and release changes, exclusive by `gc`.
#[derive(Clone, Copy)]
enum Lock {
    Shared,
    Exclusive,
}

/// Opens, creating it and its folder, the lock file at `path`.
fn open_lock(path: &Path) -> Result<fs::File> {
    let open = || {
        fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
    };
    match open() {
        // The folder is made once, not checked for every lock.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let dir = path.parent().expect("lock files have a folder");
            fs::create_dir_all(dir).map_err(|e| not_writable(dir, e))?;
            open()
        }
        r => r,
    }
    .map_err(|e| not_writable(path, e))
}

/// An I/O error of writing `path` in the cache; refused permission (another user's cache, a
/// read-only mount) is a usage error that says whose it is to fix, not a failed build.
fn not_writable(path: &Path, e: std::io::Error) -> Error {
    use std::io::ErrorKind as K;
    if !matches!(e.kind(), K::PermissionDenied | K::ReadOnlyFilesystem) {
        return Error::io(path, e);
    }
    Error::Usage {
        kind: ErrorKind::CacheNotWritable,
        message: format!(
            "cannot write to the cache at `{}`: {}",
            path.display(),
            crate::error::io_words(&e)
        ),
        hint: Some(
            "run layer as the user that owns the cache, or use a cache of your own with `--cache DIR` (or `LAYER_CACHE`)"
                .into(),
        ),
    }
}

/// Takes `f`'s OS lock (a killed holder frees it), calling `waiting` first when it is busy.
fn take_lock(f: &fs::File, path: &Path, how: Lock, waiting: &mut dyn FnMut()) -> Result<()> {
    let tried = match how {
        Lock::Shared => f.try_lock_shared(),
        Lock::Exclusive => f.try_lock(),
    };
    match tried {
        Ok(()) => Ok(()),
        Err(fs::TryLockError::WouldBlock) => {
            waiting();
            match how {
                Lock::Shared => f.lock_shared(),
                Lock::Exclusive => f.lock(),
            }
            .map_err(|e| Error::io(path, e))
        }
        Err(fs::TryLockError::Error(e)) => Err(Error::io(path, e)),
    }
}

#[cfg(test)]
mod tests;
