//! A workspace: a loaded project with its role trees scanned, its keys computed and the
//! cache's records of those keys looked up — what every command that plans starts from.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use rayon::prelude::*;

use crate::cache::{Cache, Lookup};
use crate::decl;
use crate::error::Result;
use crate::graph::Graph;
use crate::key::{self, ImageKey};
use crate::model::{Project, Strategy};
use crate::plan::{self, Plan, PlanInput, Selection};
use crate::scan::{self, Scanned};

pub struct Workspace {
    pub project: Project,
    pub graph: Graph,
    pub cache: Cache,
    pub scanned: Scanned,
    pub strategy: Strategy,
    /// By image index, in the project's topological order.
    pub keys: Vec<ImageKey>,
    /// The record of each image's current key.
    pub lookups: Vec<Lookup>,
}

impl Workspace {
    /// Loads the project at `root`, scans it through the cache's stat cache (saving the stat
    /// cache when it changed, which is the only write), computes keys under `strategy` (the
    /// project's own when `None`) and looks their records up.
    pub fn open(
        root: &Path,
        cache_dir: Option<PathBuf>,
        strategy: Option<Strategy>,
    ) -> Result<Workspace> {
        let project = decl::load(root)?;
        let graph = Graph::new(&project);
        let cache = Cache::new(cache_dir.unwrap_or_else(|| project.root.join("cache")));
        let stat = cache.load_stat_cache();
        let hasher = scan::Hasher::new(&stat);
        let scanned = scan::scan_project(&project, &hasher)?;
        let (stat, changed) = hasher.finish();
        if changed {
            // The stat cache only saves work: a cache folder that cannot be written is no error.
            let _ = cache.save_stat_cache(&stat);
        }
        let strategy = strategy.unwrap_or(project.strategy);
        let keys = key::compute(&project, &graph, strategy, &scanned)?;
        let lookups = keys
            .par_iter()
            .zip(project.images.par_iter())
            .map(|(k, img)| cache.lookup(&img.name, &k.key))
            .collect();
        Ok(Workspace {
            project,
            graph,
            cache,
            scanned,
            strategy,
            keys,
            lookups,
        })
    }

    pub fn index(&self, name: &str) -> Option<usize> {
        self.graph.index.get(name).copied()
    }

    pub fn input(&self) -> PlanInput<'_> {
        PlanInput {
            project: &self.project,
            graph: &self.graph,
            strategy: self.strategy,
            keys: &self.keys,
            lookups: &self.lookups,
            trees: &self.scanned.trees,
            history: &self.cache,
            now: SystemTime::now(),
        }
    }

    pub fn plan(&self, sel: &Selection) -> Plan {
        plan::make(&self.input(), sel)
    }
}
