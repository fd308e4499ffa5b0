//! Cache upkeep: `layer cache ls`, `verify` and `gc`. Part of the cache module, the only one
//! that writes under the cache.
//!
//! - `ls`: every usable record, with its release status and the size of its artifact.
//! - `verify`: re-hashes every local artifact with [`super::artifact_digest`] and compares it
//!   with the record. A corrupt artifact is moved aside to `PATH.corrupt`, so that from then on
//!   it counts as missing (the plan rebuilds the image, nothing uses it as a parent) while it
//!   is still there to look at. Remote artifacts (no local path) cannot be re-hashed here.
//! - `gc`: removes the builds nothing needs any more. A build is kept when it is the record of
//!   an image's current key, released, the pinned parent of an image, among the `--keep N`
//!   newest builds of its image, or the parent (deep builds, transitively) of a kept build.
//!   Everything else of a build goes: its record, its artifact (unless a kept record names the
//!   same one), its logs (its build's and its test runs', `VERSION[.test][.N].log`); a kept
//!   build keeps all of its logs. Role trees no kept record names go too, logs of builds without a
//!   kept record (failed builds among them), the folders `--keep-failed` kept (`failed/IMAGE`),
//!   the work folders of dead runs, the shared apt folders (`apt/ID`) of origins gc does not
//!   keep (all of them with `drop_apt`, `layer cache gc --apt`), and the
//!   temporaries of dead processes ([`Cache::dead_temps`]; every build removes those too). Folders of the
//!   cache this module does not know are left alone. The caller holds the cache lock exclusively
//!   ([`super::Cache::lock_exclusive`]).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Component, Path, PathBuf};

use serde::Serialize;

use super::{Cache, Lookup, Record};
use crate::error::{Error, Result};
use crate::release::Status;

/// A build as `layer cache ls` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Listed {
    pub image: String,
    pub version: String,
    pub status: &'static str,
    pub built_at: String,
    pub artifact: String,
    /// Local artifacts: the path relative to the cache; `None` for remote ones.
    pub path: Option<String>,
    /// Bytes of the local artifact; `None` for a remote or missing one.
    pub size: Option<u64>,
    /// Whether a later build of the same key (forced, or after expiry) replaced this one.
    pub superseded: bool,
}

/// What `layer cache verify` found of one build.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "kebab-case")]
pub enum Verdict {
    Ok,
    /// The content differs from the record; moved to `moved_to` (relative to the cache).
    Corrupt {
        expected: String,
        found: String,
        moved_to: String,
    },
    Missing,
    /// No local path: a cloud image id, say.
    Remote,
    /// A local artifact whose record holds no digest.
    NoDigest,
    /// An earlier `verify` found the artifact corrupt and moved it to `moved_to`: it counts as
    /// missing, and was reported then.
    MovedAside {
        moved_to: String,
    },
    /// A record file that fails its checksum or does not parse: never used, moved to
    /// `moved_to` (relative to the cache).
    CorruptRecord {
        why: String,
        moved_to: String,
    },
    /// A record of another format (an older or newer layer): not used, left in place.
    OtherFormat {
        why: String,
    },
}

/// Two digests cut short where they still differ: 12 hex digits, or more when they agree on
/// those (4 past the first difference), so the two never read the same.
fn short_pair<'a>(a: &'a str, b: &'a str) -> (&'a str, &'a str) {
    let same = a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count();
    let n = 12.max(same + 4);
    (&a[..n.min(a.len())], &b[..n.min(b.len())])
}

impl Verdict {
    pub fn sentence(&self) -> String {
        match self {
            Verdict::Ok => "ok".into(),
            Verdict::Corrupt {
                expected,
                found,
                moved_to,
            } => {
                let (e, f) = short_pair(expected, found);
                format!("corrupt: blake3 {e} expected, {f} found; moved to `{moved_to}`")
            }
            Verdict::Missing => "missing: the artifact is not in the cache".into(),
            Verdict::Remote => "remote artifact: cannot be re-hashed here".into(),
            Verdict::NoDigest => "no digest recorded: cannot be verified".into(),
            Verdict::MovedAside { moved_to } => {
                format!("moved aside earlier to `{moved_to}`: counts as missing")
            }
            Verdict::CorruptRecord { why, moved_to } => {
                format!("{why}; moved to `{moved_to}`")
            }
            Verdict::OtherFormat { why } => format!("not used: {why}"),
        }
    }

    /// Whether the build fails verification (found now; what an earlier run moved aside was
    /// reported then).
    pub fn is_bad(&self) -> bool {
        matches!(
            self,
            Verdict::Corrupt { .. } | Verdict::Missing | Verdict::CorruptRecord { .. }
        )
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Verified {
    /// What was checked: `build` (a record's artifact), `record` (a record file) or `origin`
    /// (`origins/ID`: image is `origin`, version the ID).
    pub kind: &'static str,
    pub image: String,
    pub version: String,
    pub artifact: String,
    #[serde(flatten)]
    pub verdict: Verdict,
}

/// One build `gc` removes, and what of it.
#[derive(Debug, Clone, Serialize)]
pub struct RemovedBuild {
    pub image: String,
    pub version: String,
    pub status: &'static str,
    /// Paths relative to the cache.
    pub paths: Vec<String>,
    pub bytes: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct GcReport {
    pub removed: Vec<RemovedBuild>,
    pub kept: usize,
    /// Other files: logs of builds without a kept record, role trees nothing names.
    pub other_paths: Vec<String>,
    pub dead_runs: usize,
    pub bytes: u64,
    pub dry_run: bool,
}

/// The builds `gc` must keep besides released ones and the newest of each image:
/// `(image, version)` of current records and pinned parents.
pub type Roots = BTreeSet<(String, String)>;

/// Bytes under `path` (a file, or a folder's files), without following links.
pub fn size_on_disk(path: &Path) -> u64 {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return 0;
    };
    if !meta.is_dir() {
        return meta.len();
    }
    walkdir::WalkDir::new(path)
        .into_iter()
        .flatten()
        .filter_map(|e| e.metadata().ok())
        .filter(|m| !m.is_dir())
        .map(|m| m.len())
        .sum()
}

/// A path a record names, when it stays inside the cache: relative, without `..`.
fn inside(rel: &str) -> bool {
    let p = Path::new(rel);
    !rel.is_empty()
        && p.components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
}

impl Cache {
    /// The file holding `record`: the record of its key when that is this build, otherwise
    /// `old/VERSION.json`.
    fn record_file(&self, r: &Record) -> (PathBuf, bool) {
        let current = self.record_path(&r.name, &r.key);
        match self.lookup(&r.name, &r.key) {
            Lookup::Found(c) if c.version == r.version => (current, true),
            _ => (
                current
                    .parent()
                    .expect("records have a folder")
                    .join("old")
                    .join(format!("{}.json", r.version)),
                false,
            ),
        }
    }

    /// `layer cache ls`.
    pub fn list(&self) -> Vec<Listed> {
        let mut out = Vec::new();
        for (image, records) in self.all_records() {
            for r in records {
                let local = r.artifact.path.as_deref().filter(|p| inside(p));
                let size = local
                    .map(|p| self.dir.join(p))
                    .filter(|p| fs::symlink_metadata(p).is_ok())
                    .map(|p| r.artifact.size.unwrap_or_else(|| size_on_disk(&p)));
                out.push(Listed {
                    image: image.clone(),
                    version: r.version.clone(),
                    status: Status::of(&r).as_str(),
                    built_at: r.built_at.clone(),
                    artifact: r.artifact.id.clone(),
                    path: r.artifact.path.clone(),
                    size,
                    superseded: !self.record_file(&r).1,
                });
            }
        }
        out
    }

    /// `layer cache verify`: re-hashes every local artifact. A corrupt one is moved to
    /// `PATH.corrupt` under the image's lock, so it counts as missing from then on.
    pub fn verify(&self, waiting: &mut dyn FnMut(&str)) -> Result<Vec<Verified>> {
        let _cache_lock = self.lock_shared(&mut || waiting("a `layer cache gc`"))?;
        let mut out = self.verify_record_files(waiting)?;
        for (image, records) in self.all_records() {
            for r in records {
                let verdict = match (&r.artifact.path, &r.artifact.blake3) {
                    (None, _) => Verdict::Remote,
                    (Some(p), _) if !inside(p) => Verdict::Missing,
                    (Some(p), _) if fs::symlink_metadata(self.dir.join(p)).is_err() => {
                        let moved_to = format!("{p}.corrupt");
                        if fs::symlink_metadata(self.dir.join(&moved_to)).is_ok() {
                            Verdict::MovedAside { moved_to }
                        } else {
                            Verdict::Missing
                        }
                    }
                    (Some(_), None) => Verdict::NoDigest,
                    (Some(p), Some(expected)) => {
                        let path = self.dir.join(p);
                        let (found, _) = super::artifact_digest(&path)?;
                        if &found == expected {
                            Verdict::Ok
                        } else {
                            let _lock = self.lock_image(&image, &mut || waiting(&image))?;
                            let moved_to = format!("{p}.corrupt");
                            let to = self.dir.join(&moved_to);
                            crate::fsutil::remove_tree(&to)?;
                            fs::rename(&path, &to).map_err(|e| Error::io(&to, e))?;
                            Verdict::Corrupt {
                                expected: expected.clone(),
                                found,
                                moved_to,
                            }
                        }
                    }
                };
                out.push(Verified {
                    kind: "build",
                    image: image.clone(),
                    version: r.version.clone(),
                    artifact: r.artifact.id.clone(),
                    verdict,
                });
            }
        }
        out.extend(self.verify_origins(waiting)?);
        Ok(out)
    }

    /// The record files no lookup can use: a corrupt one is moved to `FILE.corrupt` under the
    /// image's lock, so it is reported once; one of another format is left alone.
    fn verify_record_files(&self, waiting: &mut dyn FnMut(&str)) -> Result<Vec<Verified>> {
        let mut out = vec![];
        for image in self.recorded_images() {
            let dir = self.dir.join("records").join(&image);
            let mut files: Vec<PathBuf> = [dir.clone(), dir.join("old")]
                .iter()
                .flat_map(|d| fs::read_dir(d).into_iter().flatten().flatten())
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "json"))
                .filter(|p| {
                    p.file_name()
                        .is_none_or(|n| !n.as_encoded_bytes().starts_with(b"."))
                })
                .collect();
            files.sort();
            for path in files {
                let why = match crate::fsutil::read_small(&path) {
                    Ok(bytes) => match crate::record::open_record(&bytes) {
                        Ok(r) if r.name == image => continue,
                        Ok(_) => "record belongs to another image".to_string(),
                        Err(why) => why,
                    },
                    Err(e) => format!("record cannot be read: {e}"),
                };
                let rel = self.rel(&path);
                let verdict = if why.starts_with("record has format ") {
                    Verdict::OtherFormat { why }
                } else {
                    let _lock = self.lock_image(&image, &mut || waiting(&image))?;
                    let moved_to = format!("{rel}.corrupt");
                    let to = self.dir.join(&moved_to);
                    fs::rename(&path, &to).map_err(|e| Error::io(&to, e))?;
                    Verdict::CorruptRecord { why, moved_to }
                };
                out.push(Verified {
                    kind: "record",
                    image: image.clone(),
                    version: rel,
                    artifact: String::new(),
                    verdict,
                });
            }
        }
        Ok(out)
    }

    /// Re-hashes every made origin (`origins/ID/root` against `origins/ID/digest`); a damaged
    /// one is moved to `origins/ID.corrupt` under its lock, and the next build makes it again.
    fn verify_origins(&self, waiting: &mut dyn FnMut(&str)) -> Result<Vec<Verified>> {
        let mut out = vec![];
        let mut made: Vec<PathBuf> = fs::read_dir(self.dir.join("origins"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| is_origin_id(&n.to_string_lossy()))
            })
            .filter(|p| p.join("digest").is_file())
            .collect();
        made.sort();
        for dir in made {
            let id = dir
                .file_name()
                .expect("named")
                .to_string_lossy()
                .to_string();
            let _lock = self.lock_file(&format!("origin-{id}.lock"), &mut || waiting(&id))?;
            let digest_file = dir.join("digest");
            let expected = fs::read_to_string(&digest_file)
                .map_err(|e| Error::io(&digest_file, e))?
                .trim()
                .to_string();
            let found = match super::artifact_digest(&dir.join("root")) {
                Ok((d, _)) => d,
                Err(e) => format!("unreadable ({e})"),
            };
            let verdict = if found == expected {
                Verdict::Ok
            } else {
                let moved_to = format!("origins/{id}.corrupt");
                let to = self.dir.join(&moved_to);
                crate::fsutil::remove_tree(&to)?;
                fs::rename(&dir, &to).map_err(|e| Error::io(&to, e))?;
                Verdict::Corrupt {
                    expected,
                    found,
                    moved_to,
                }
            };
            out.push(Verified {
                kind: "origin",
                image: "origin".into(),
                version: id,
                artifact: self.rel(&dir),
                verdict,
            });
        }
        Ok(out)
    }

    /// `layer cache gc`: removes every build not needed (see the module's notes); with
    /// `dry_run`, only says what it would remove. The caller holds the cache lock exclusively.
    /// `origins`: identities of origins the project declares now, kept for its next build
    /// (besides the origins of every kept build's chain).
    pub fn gc(
        &self,
        roots: &Roots,
        origins: &[crate::key::OriginIdentity],
        keep_newest: usize,
        dry_run: bool,
        drop_apt: bool,
    ) -> Result<GcReport> {
        let all = self.all_records();
        let by_id: BTreeMap<BuildId, &Record> = all
            .values()
            .flatten()
            .map(|r| ((r.name.clone(), r.version.clone()), r))
            .collect();
        let kept = kept_builds(&all, &by_id, roots, keep_newest);
        let kept_records: Vec<&Record> = kept
            .iter()
            .filter_map(|id| by_id.get(id).copied())
            .collect();

        let mut report = GcReport {
            kept: kept.len(),
            dry_run,
            removed: self.removed_builds(&all, &kept, &kept_records),
            ..Default::default()
        };
        let mut other = self.stray_logs(&kept);
        other.extend(self.stray_origins(&kept_records, origins));
        other.extend(self.stray_apt(&kept_records, origins, drop_apt));
        other.extend(self.stray_trees(&kept_records));
        other.extend(self.dead_temps());
        // Failed builds kept for debugging (`build --keep-failed`) go with the next gc.
        other.extend(self.kept_failed_all());
        other.sort();
        other.dedup();
        report.bytes = report.removed.iter().map(|r| r.bytes).sum::<u64>()
            + other.iter().map(|p| size_on_disk(p)).sum::<u64>();
        report.other_paths = other.iter().map(|p| self.rel(p)).collect();
        if dry_run {
            return Ok(report);
        }

        for r in &report.removed {
            for p in &r.paths {
                crate::fsutil::remove_tree(&self.dir.join(p))?;
            }
        }
        for p in &other {
            crate::fsutil::remove_tree(p)?;
        }
        report.dead_runs = self.remove_dead_runs()?;
        // Staged bundles are made again when needed; no run holds one while gc runs.
        self.remove_staged()?;
        // Folders left empty.
        for top in ["records", "artifacts", "logs"] {
            let Ok(entries) = fs::read_dir(self.dir.join(top)) else {
                continue;
            };
            for e in entries.flatten() {
                let _ = fs::remove_dir(e.path().join("old"));
                let _ = fs::remove_dir(e.path());
            }
        }
        Ok(report)
    }

    /// The builds not kept, each with its record and, when no kept build shares it, its
    /// artifact.
    fn removed_builds(
        &self,
        all: &BTreeMap<String, Vec<Record>>,
        kept: &BTreeSet<BuildId>,
        kept_records: &[&Record],
    ) -> Vec<RemovedBuild> {
        let kept_artifacts: BTreeSet<&str> = kept_records
            .iter()
            .filter_map(|r| r.artifact.path.as_deref())
            .collect();
        let mut gone_artifacts: BTreeSet<String> = BTreeSet::new();
        let mut removed = vec![];
        for (image, records) in all {
            for r in records {
                if kept.contains(&(image.clone(), r.version.clone())) {
                    continue;
                }
                let mut paths = vec![self.record_file(r).0];
                if let Some(a) = r.artifact.path.as_deref() {
                    if inside(a)
                        && !kept_artifacts.contains(a)
                        && gone_artifacts.insert(a.to_string())
                        && fs::symlink_metadata(self.dir.join(a)).is_ok()
                    {
                        paths.push(self.dir.join(a));
                    }
                }
                let bytes = paths.iter().map(|p| size_on_disk(p)).sum();
                removed.push(RemovedBuild {
                    image: image.clone(),
                    version: r.version.clone(),
                    status: Status::of(r).as_str(),
                    paths: paths.iter().map(|p| self.rel(p)).collect(),
                    bytes,
                });
            }
        }
        removed
    }

    /// Logs of builds without a kept record.
    fn stray_logs(&self, kept: &BTreeSet<BuildId>) -> Vec<PathBuf> {
        let mut out = vec![];
        let Ok(images) = fs::read_dir(self.dir.join("logs")) else {
            return out;
        };
        for dir in images.flatten().filter(|e| e.path().is_dir()) {
            let image = dir.file_name().to_string_lossy().to_string();
            for log in fs::read_dir(dir.path()).into_iter().flatten().flatten() {
                let name = log.file_name().to_string_lossy().to_string();
                let Some(stem) = name.strip_suffix(".log") else {
                    continue;
                };
                if !kept.contains(&(image.clone(), log_version(stem).to_string())) {
                    out.push(log.path());
                }
            }
        }
        out
    }

    /// The origin folders gc keeps: those of the chains of kept builds and the declared ones.
    fn kept_origins(
        &self,
        kept_records: &[&Record],
        declared: &[crate::key::OriginIdentity],
    ) -> BTreeSet<PathBuf> {
        kept_records
            .iter()
            .filter_map(|r| match &r.inputs.base {
                crate::key::BaseInputs::Origin { identity } => Some(self.origin_dir(identity)),
                crate::key::BaseInputs::Parent { .. } | crate::key::BaseInputs::Reheat { .. } => {
                    None
                }
            })
            .chain(declared.iter().map(|o| self.origin_dir(o)))
            .collect()
    }

    /// Shared apt folders (`apt/ID`): those of kept origins stay unless `drop_all`. Only
    /// downloads: a build without them fetches again.
    fn stray_apt(
        &self,
        kept_records: &[&Record],
        declared: &[crate::key::OriginIdentity],
        drop_all: bool,
    ) -> Vec<PathBuf> {
        let kept: BTreeSet<std::ffi::OsString> = self
            .kept_origins(kept_records, declared)
            .iter()
            .filter_map(|p| p.file_name().map(std::ffi::OsStr::to_os_string))
            .collect();
        let Ok(entries) = fs::read_dir(self.dir.join("apt")) else {
            return vec![];
        };
        entries
            .flatten()
            .filter(|e| is_origin_id(&e.file_name().to_string_lossy()))
            .filter(|e| drop_all || !kept.contains(&e.file_name()))
            .map(|e| e.path())
            .collect()
    }

    /// Origins (rootfs backend): those of the chains of kept builds and the declared ones
    /// stay; others, and folders of origins whose making was cut off, go. gc holds the cache
    /// lock exclusively, so no build is making one now.
    fn stray_origins(
        &self,
        kept_records: &[&Record],
        declared: &[crate::key::OriginIdentity],
    ) -> Vec<PathBuf> {
        let kept_origins = self.kept_origins(kept_records, declared);
        let mut out = vec![];
        let Ok(made) = fs::read_dir(self.dir.join("origins")) else {
            return out;
        };
        for o in made.flatten() {
            // Only folders the rootfs backend and `verify` make: `ID`, `ID.tmp-PID` or
            // `ID.corrupt` (32 hex digits).
            let name = o.file_name().to_string_lossy().to_string();
            let id = name
                .split_once(".tmp-")
                .or_else(|| name.split_once(".corrupt"))
                .map_or(name.as_str(), |(id, _)| id);
            let ours = is_origin_id(id);
            let done = o.path().with_extension("") == o.path();
            // Being made right now by a live process (a build that started after gc's lock).
            let live = crate::fsutil::temp_owner(&name).is_some_and(crate::fsutil::process_alive);
            if live {
                continue;
            }
            if ours && !(done && kept_origins.contains(&o.path())) {
                out.push(o.path());
            }
        }
        out
    }

    /// Role trees no kept record names.
    fn stray_trees(&self, kept_records: &[&Record]) -> Vec<PathBuf> {
        let kept_trees: BTreeSet<&str> = kept_records
            .iter()
            .flat_map(|r| r.inputs.roles.iter().map(|t| t.tree.as_str()))
            .collect();
        let mut out = vec![];
        let Ok(trees) = fs::read_dir(self.dir.join("trees")) else {
            return out;
        };
        for t in trees.flatten() {
            let name = t.file_name().to_string_lossy().to_string();
            if let Some(digest) = name.strip_suffix(".json") {
                if !name.starts_with('.') && !kept_trees.contains(digest) {
                    out.push(t.path());
                }
            }
        }
        out
    }

    /// Temporaries of processes that died while writing them (`.NAME.tmpPID-N` beside a
    /// record, tree, artifact or the stat cache; `origins/ID.tmp-PID`): never those of a live
    /// process, which may be writing them now.
    pub fn dead_temps(&self) -> Vec<PathBuf> {
        let mut dirs = vec![
            self.dir.clone(),
            self.dir.join("trees"),
            self.dir.join("origins"),
        ];
        for top in ["records", "artifacts"] {
            for e in fs::read_dir(self.dir.join(top))
                .into_iter()
                .flatten()
                .flatten()
            {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    dirs.push(e.path().join("old"));
                    dirs.push(e.path());
                }
            }
        }
        let mut out = vec![];
        for dir in dirs {
            for e in fs::read_dir(&dir).into_iter().flatten().flatten() {
                let name = e.file_name();
                let owner = name.to_str().and_then(crate::fsutil::temp_owner);
                if owner.is_some_and(|pid| !crate::fsutil::process_alive(pid)) {
                    out.push(e.path());
                }
            }
        }
        out.sort();
        out
    }

    /// Removes [`Cache::dead_temps`]; returns how many there were.
    pub fn remove_dead_temps(&self) -> Result<usize> {
        let dead = self.dead_temps();
        for p in &dead {
            crate::fsutil::remove_tree(p)?;
        }
        Ok(dead.len())
    }

    fn rel(&self, p: &Path) -> String {
        p.strip_prefix(&self.dir)
            .unwrap_or(p)
            .to_string_lossy()
            .to_string()
    }
}

/// Whether `name` is an origin's folder name: 32 hex digits.
fn is_origin_id(name: &str) -> bool {
    name.len() == 32 && name.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A build by image and version.
type BuildId = (String, String);

/// The version a log file (its name without `.log`) belongs to: `VERSION` of a build's log
/// (`VERSION`, `VERSION.N` for a retry) and of its test runs' (`VERSION.test`,
/// `VERSION.test.N`), whatever follows. A version's dots are all before its `-`
/// (`MAJOR.MINOR.BUILD-YYYYMMDD_HHMM`), so the first dot after the `-` ends it.
fn log_version(stem: &str) -> &str {
    match stem.find('-') {
        Some(dash) => match stem[dash..].find('.') {
            Some(dot) => &stem[..dash + dot],
            None => stem,
        },
        None => stem,
    }
}

/// What gc keeps: the roots, released builds and the newest `keep_newest` of each image; then,
/// transitively, the parent builds they were made on.
fn kept_builds(
    all: &BTreeMap<String, Vec<Record>>,
    by_id: &BTreeMap<BuildId, &Record>,
    roots: &Roots,
    keep_newest: usize,
) -> BTreeSet<BuildId> {
    let mut kept: BTreeSet<BuildId> = BTreeSet::new();
    for (image, records) in all {
        for (n, r) in records.iter().enumerate() {
            let id = (image.clone(), r.version.clone());
            if n < keep_newest || Status::of(r) == Status::Released || roots.contains(&id) {
                kept.insert(id);
            }
        }
    }
    let mut todo: Vec<BuildId> = kept.iter().cloned().collect();
    while let Some(id) = todo.pop() {
        if let Some(p) = by_id.get(&id).and_then(|r| r.parent.as_ref()) {
            let pid = (p.name.clone(), p.version.clone());
            if by_id.contains_key(&pid) && kept.insert(pid.clone()) {
                todo.push(pid);
            }
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::log_version;

    #[test]
    fn logs_belong_to_the_version_they_start_with() {
        for name in [
            "1.0.2-20261122_0600",
            "1.0.2-20261122_0600.1",
            "1.0.2-20261122_0600.test",
            "1.0.2-20261122_0600.test.3",
        ] {
            assert_eq!(log_version(name), "1.0.2-20261122_0600", "{name}");
        }
        assert_eq!(log_version("odd"), "odd");
    }
}
