//! A workspace: a loaded project with its role trees scanned, its keys computed and the
//! cache's records of those keys looked up — what every command that plans starts from —
//! and, when a run has a remote cache, the remote's trusted records of the keys the local
//! cache lacks.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::SystemTime;

use crate::cache::{Cache, RecordIndex};
use crate::decl;
use crate::error::{ErrorKind, Result};
use crate::graph::Graph;
use crate::key::{self, ImageKey};
use crate::model::{Project, Strategy};
use crate::plan::{self, History, Plan, PlanInput, Selection};
use crate::record::{Lookup, Record};
use crate::remote::{Found, Remote};
use crate::scan::{self, Scanned, Tree};

pub struct Workspace {
    pub project: Project,
    pub graph: Graph,
    pub cache: Cache,
    pub scanned: Scanned,
    /// The stat cache as this scan left it: a later look at the same files (the re-hash of a
    /// build's roles after it) reads only what changed since.
    pub stat: scan::StatCache,
    pub strategy: Strategy,
    /// What a live `layer watch` did for this scan (`plan -v` says).
    pub watch: crate::watch::Use,
    /// By image index, in the project's topological order.
    pub keys: Vec<ImageKey>,
    /// The record of each image's current key.
    pub lookups: Vec<Lookup>,
    /// By image index: the released parent build a pinned image is built on.
    pub pins: Vec<Option<crate::release::Pin>>,
    /// By image index: a trusted record of the current key on the remote cache, for images
    /// the local cache has no usable build of ([`Workspace::ask_remote`]); none without a
    /// remote.
    pub remote: Vec<Option<Record>>,
    /// Whether the artifact of each found record is in the cache, checked for all images at
    /// once and in parallel when a plan first asks (see [`History`] below).
    artifacts: OnceLock<Vec<bool>>,
    /// Role trees the scan knew by digest alone, walked whole when first asked for
    /// ([`Workspace::tree`]).
    walked: Mutex<BTreeMap<String, Tree>>,
}

/// Makes glibc's malloc grow its heaps 64 MiB at a time instead of 128 KiB. Opening a large
/// workspace allocates some 100 MB in small pieces from several threads; a thread's heap grows
/// by `mprotect`, one call per step: 22,000 calls and 8% of `layer plan` at 10,000 images.
/// Address space only: pages are still committed as they are touched. A process-wide setting,
/// and harmless to set more than once.
pub(crate) fn grow_heap_in_large_steps() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `mallopt` only sets a tuning parameter of the allocator.
    unsafe {
        libc::mallopt(libc::M_TOP_PAD, 64 << 20);
    }
}

impl Workspace {
    /// Loads the project at `root` (through the cache's model cache), scans it through the
    /// cache's stat cache (saving either when it changed, which are the only writes), computes keys under `strategy` (the
    /// project's own when `None`) and looks their records up.
    pub fn open(
        root: &Path,
        cache_dir: Option<PathBuf>,
        strategy: Option<Strategy>,
    ) -> Result<Workspace> {
        Workspace::open_with(root, cache_dir, strategy, &[])
    }

    /// [`Workspace::open`] with `--var IMAGE.KEY=VALUE` overrides of `[vars]` entries
    /// ([`decl::override_vars`]), applied before anything is keyed.
    pub fn open_with(
        root: &Path,
        cache_dir: Option<PathBuf>,
        strategy: Option<Strategy>,
        vars: &[(String, String, String)],
    ) -> Result<Workspace> {
        grow_heap_in_large_steps();
        // Independent steps run side by side: the stat cache loads while the declarations
        // do (the cache folder is known from the root, which `decl::load` canonicalizes the
        // same way), and the image graph is built while the role trees are scanned.
        let early_dir = cache_dir
            .clone()
            .or_else(|| root.canonicalize().ok().map(|r| r.join("cache")));
        if let Some(d) = &early_dir {
            let cache = Cache::new(d);
            cache.check_folder()?;
            // Before the first look at many files: a cold page cache gets more threads.
            crate::fsutil::probe_page_cache(&cache.stat_path());
        }
        // A live `layer watch` is synced with before anything is looked at (`crate::watch`).
        let load_stat = |cache: &Cache| {
            let (stat, mark) = cache.load_stat_cache_marked();
            let synced = crate::watch::sync(cache, mark.as_ref());
            (stat, mark, synced)
        };
        // The declarations are parsed only when one of them changed (`decl::load_cached`).
        let salt = format!("key-schema {}", key::KEY_SCHEMA);
        let (loaded, early_stat) = rayon::join(
            || {
                let cached = early_dir
                    .as_ref()
                    .and_then(|d| Cache::new(d).load_model_cache());
                decl::load_cached(root, cached.as_deref(), &salt)
            },
            || early_dir.as_ref().map(|d| load_stat(&Cache::new(d))),
        );
        let decl::Loaded {
            mut project,
            save: model,
        } = loaded?;
        decl::override_vars(&mut project, vars)?;
        let cache = Cache::new(cache_dir.unwrap_or_else(|| project.root.join("cache")));
        cache.check_folder()?;
        if let Some(model) = model {
            // Like the stat cache, it only saves work: a cache folder that cannot be written
            // is no error.
            let _ = cache.save_model_cache(&model);
        }
        let (stat, old_mark, synced) = match early_stat {
            Some(loaded) if early_dir.as_deref() == Some(cache.dir()) => loaded,
            _ => load_stat(&cache),
        };
        let mut hasher = scan::Hasher::new(&stat);
        if let Ok(crate::watch::Synced {
            quiet: Some(quiet), ..
        }) = &synced
        {
            hasher = hasher.with_quiet(quiet);
        }
        // The record index is read while the trees are scanned, and parsed while they are
        // keyed: at 10,000 images, 14 ms that no longer wait for either.
        let ((graph, index), scanned) = rayon::join(
            || (Graph::new(&project), cache.load_record_index()),
            || scan::scan_project(&project, &hasher),
        );
        let scanned = scanned?;
        let next = hasher.finish();
        let mark = synced.as_ref().ok().map(|s| s.mark);
        if next.is_some() || (mark.is_some() && mark != old_mark) {
            // The stat cache only saves work: a cache folder that cannot be written is no error.
            // Under a live watcher it carries the mark the next plan starts from.
            let _ = cache.save_stat_cache_marked(next.as_ref().unwrap_or(&stat), mark.as_ref());
        }
        let watch = match &synced {
            Ok(s) => match &s.quiet {
                Some(q) => crate::watch::Use::Vouched {
                    changed: q.dirty_len(),
                },
                None => crate::watch::Use::FullCheck,
            },
            Err(why) => why.clone(),
        };
        let stat = next.unwrap_or(stat);
        let strategy = strategy.unwrap_or(project.strategy);
        // Pinned parents: the released build each pin stands for, read from the cache before
        // keys, so that key code reads nothing. A pinned image is cut from its parent.
        let pins = resolve_pins(&project, &cache)?;
        if strategy == Strategy::Shallow {
            if let Some((i, pin)) = pins
                .iter()
                .enumerate()
                .find_map(|(i, p)| p.as_ref().map(|p| (i, p)))
            {
                return Err(crate::error::Error::Usage {
                    kind: ErrorKind::PinNeedsDeep,
                    message: format!(
                        "`{}` is pinned to `{}@{}`: pinned parents need deep builds",
                        project.images[i].name, pin.parent, pin.pin
                    ),
                    hint: Some("build with `--strategy deep`, or remove the pin".into()),
                });
            }
        }
        let mut graph = graph;
        let pinned_keys = crate::release::unlink_pinned(&pins, &mut graph);
        let (keys, index) = rayon::join(
            || key::compute_with_pins(&project, &graph, strategy, &scanned, &pinned_keys),
            || RecordIndex::parse(&index),
        );
        let keys = keys?;
        let n = keys.len();
        let wanted: Vec<(&str, &ImageKey)> = project
            .images
            .iter()
            .map(|img| img.name.as_str())
            .zip(&keys)
            .collect();
        let lookups = cache.lookup_keys(&index, &wanted);
        Ok(Workspace {
            project,
            graph,
            cache,
            scanned,
            stat,
            strategy,
            watch,
            keys,
            lookups,
            pins,
            remote: vec![None; n],
            artifacts: OnceLock::new(),
            walked: Mutex::default(),
        })
    }

    /// The current tree of `role`, entries and all. A role the scan knew by its digest alone
    /// (the stat cache's memo vouched for it: `scan::scan_known`) is walked whole the first
    /// time it is asked for, through the stat cache, and kept, so every later ask (a build's
    /// bundle, its record, the check after it) gets the same tree. A role whose files changed
    /// since the scan is an error: its tree is no longer the one keyed.
    pub fn tree(&self, role: &str) -> Result<Tree> {
        if let Some(t) = self.scanned.trees.get(role) {
            return Ok(t.clone());
        }
        let walked = || self.walked.lock().expect("no panics while locked");
        if let Some(t) = walked().get(role) {
            return Ok(t.clone());
        }
        // Walked without the lock held: the walk may run parallel work, and a thread waiting
        // for it may be handed another ask.
        let r = &self.project.roles[role];
        let hasher = scan::Hasher::new(&self.stat);
        let tree = scan::scan_tree(&self.project.root.join(&r.dir), &r.dir, &hasher)?;
        if self.scanned.digests.get(role) != Some(&tree.digest) {
            return Err(crate::error::Error::Input {
                kind: ErrorKind::RoleEntry,
                path: r.dir.clone(),
                message: format!("role `{role}` changed while layer was running"),
                hint: Some("run the command again once the role's files are saved".into()),
            });
        }
        // Two asks at once walk twice; both keep the first tree.
        Ok(walked().entry(role.to_string()).or_insert(tree).clone())
    }

    /// The released parent builds of pinned images.
    pub fn pinned_records(&self) -> impl Iterator<Item = &Record> {
        self.pins.iter().flatten().map(|p| &*p.record)
    }

    pub fn index(&self, name: &str) -> Option<usize> {
        self.graph.index.get(name).map(|id| id.index())
    }

    pub fn input(&self) -> PlanInput<'_> {
        PlanInput {
            project: &self.project,
            graph: &self.graph,
            strategy: self.strategy,
            keys: &self.keys,
            lookups: &self.lookups,
            trees: &self.scanned.trees,
            history: self,
            now: SystemTime::now(),
        }
    }

    pub fn plan(&self, sel: &Selection) -> Plan {
        plan::make(&self.input(), sel)
    }

    /// The record found for image `i`'s current key, if any.
    fn found(&self, i: usize) -> Option<&Record> {
        match &self.lookups[i] {
            Lookup::Found(r) => Some(r),
            _ => None,
        }
    }

    /// Whether the artifact of each found record is in the cache, checked for all of them at
    /// once, in parallel, the first time it is asked.
    fn artifacts(&self) -> &[bool] {
        self.artifacts.get_or_init(|| {
            let records: Vec<Option<&Record>> =
                (0..self.lookups.len()).map(|i| self.found(i)).collect();
            self.cache.artifacts_exist(&records)
        })
    }

    /// Whether the local cache holds a usable build of image `i`'s current key: a record and
    /// its artifact.
    pub fn cached_locally(&self, i: usize) -> bool {
        match &self.lookups[i] {
            Lookup::Found(r) => self.artifact_exists(r),
            _ => false,
        }
    }

    /// Asks `remote`, all at once and in parallel, for the records of the images the local
    /// cache has no usable build of; downloads no blob. The trusted records are kept for plans
    /// ([`History::remote`]); the refusals come back, each a warning naming the key. `Err`
    /// when the remote cannot be reached.
    pub fn ask_remote(&mut self, remote: &Remote) -> Result<Vec<String>> {
        let asked: Vec<usize> = (0..self.keys.len())
            .filter(|&i| !self.cached_locally(i))
            .collect();
        let wanted: Vec<(String, String)> = asked
            .iter()
            .map(|&i| {
                (
                    self.project.images[i].name.clone(),
                    self.keys[i].key.clone(),
                )
            })
            .collect();
        if wanted.is_empty() {
            return Ok(Vec::new());
        }
        let answers = remote.lookup_all(&wanted)?;
        let mut refused = Vec::new();
        for (i, found) in asked.into_iter().zip(answers) {
            match found {
                Found::Hit(record) => self.remote[i] = Some(*record),
                Found::Miss => {}
                Found::Refused(why) => refused.push(why),
            }
        }
        Ok(refused)
    }
}

/// The cache, as plans see it, with one difference: a plan asks whether the artifact of every
/// found record exists, one `stat` after another; the workspace answers for the records it
/// looked up from checks made all at once, in parallel. Any other record goes to the cache.
impl History for Workspace {
    fn latest(&self, name: &str, strategy: Strategy) -> Option<Record> {
        self.cache.latest_of(name, strategy)
    }

    fn role_tree(&self, role: &str) -> Option<Tree> {
        self.tree(role).ok()
    }

    fn tree(&self, digest: &str) -> Option<Tree> {
        self.cache.tree(digest)
    }

    fn pin(&self, name: &str) -> Option<&crate::release::Pin> {
        self.index(name).and_then(|i| self.pins[i].as_ref())
    }

    /// The current record of an image answers without reading; any other build is looked up.
    fn revoked(&self, name: &str, version: &str) -> bool {
        use crate::release::Status;
        let current = self.index(name).and_then(|i| match &self.lookups[i] {
            Lookup::Found(r) if r.version == version => Some(Status::of(r)),
            _ => None,
        });
        let pinned = || {
            self.pinned_records()
                .find(|r| r.name == name && r.version == version)
                .map(Status::of)
        };
        let status = current.or_else(pinned).or_else(|| {
            self.cache
                .records(name)
                .iter()
                .find(|r| r.version == version)
                .map(Status::of)
        });
        status == Some(Status::Revoked)
    }

    fn remote(&self, name: &str) -> Option<&Record> {
        self.index(name).and_then(|i| self.remote[i].as_ref())
    }

    fn artifact_exists(&self, record: &Record) -> bool {
        let i = self.index(&record.name);
        let ours = i
            .and_then(|i| self.found(i))
            .is_some_and(|r| r.key == record.key && r.artifact.path == record.artifact.path);
        if !ours {
            return self.cache.artifact_exists(record);
        }
        self.artifacts()[i.expect("looked up above")]
    }

    /// The artifact checks, made before a plan runs its questions in parallel.
    fn prepare(&self) {
        self.artifacts();
    }
}

/// A bare cache as a plan's history: no pins, nothing revoked.
impl History for Cache {
    fn latest(&self, name: &str, strategy: Strategy) -> Option<Record> {
        Cache::latest_of(self, name, strategy)
    }
    fn tree(&self, digest: &str) -> Option<Tree> {
        Cache::tree(self, digest)
    }
    fn artifact_exists(&self, record: &Record) -> bool {
        Cache::artifact_exists(self, record)
    }
}

/// Resolves the pin of every image (by index) from the records of its parent.
pub fn resolve_pins(project: &Project, cache: &Cache) -> Result<Vec<Option<crate::release::Pin>>> {
    project
        .images
        .iter()
        .map(|img| {
            let (Some(pin), Some(parent)) = (&img.pin, img.parent()) else {
                return Ok(None);
            };
            let records = cache.records(parent);
            let r = crate::release::resolve_pin(&records, &img.name, parent, pin)?;
            Ok(Some(crate::release::Pin {
                parent: parent.to_string(),
                pin: pin.clone(),
                version: r.version.clone(),
                behind: crate::release::newer_released(&records, &r.version)
                    .map(|n| n.version.clone()),
                record: Box::new(r.clone()),
            }))
        })
        .collect()
}
