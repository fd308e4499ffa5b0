//! The built-in `rootfs` backend (SPEC §4.1): offline image builds on the host.
//!
//! An image is a stack of trees: its origin's root filesystem (made once per identity, see
//! [`origin`]), then one layer per image of its chain (deep) or only its own (shallow). A build
//! mounts an overlay of the stack below with a new, empty upper folder in a sandbox
//! ([`sandbox`]), runs the image's packages and roles in a chroot of it, and keeps the upper
//! folder as the image's layer: what it added, changed or removed, so a deep child costs the
//! size of its changes. Where overlayfs is refused (an upper folder on overlayfs, as inside a
//! container), the stack is composed by copying and the layer is the difference afterwards:
//! slower, same result.
//!
//! Every layer and origin is verified against its recorded blake3 before it is used below a
//! build, once per run. Layers never hold layer's own staging, nor files a build copied up
//! without changing ([`crate::layerfs::prune`]).

pub mod rpmdb;
pub mod sandbox;
pub mod origin;
pub mod check;
pub mod resolve;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

use crate::backend::{Builder, Built, Job, Log, Procs};
use crate::cache::Cache;
use crate::key;
use crate::layerfs::{self, StackView};
use crate::model::Project;
use crate::packages::{Manager, Manifest};
use crate::record::{Lookup, Record};
use crate::scan::Scanned;

/// `LAYER_OVERLAY=off` makes builds compose trees by copying even where overlayfs works.
pub const OVERLAY_ENV: &str = "LAYER_OVERLAY";

pub struct RootfsBackend<'a> {
    project: &'a Project,
    scanned: &'a Scanned,
    cache: &'a Cache,
    overlay: OnceLock<Result<(), String>>,
    /// Trees already verified in this run, by path.
    verified: Mutex<BTreeMap<PathBuf, String>>,
}

/// A verified stack of trees an image is built on or run from, bottom first.
pub struct Stack {
    pub trees: Vec<PathBuf>,
    /// A name for each tree: `origin bookworm`, `base-linux 1.4.2-20261129_2000`.
    pub names: Vec<String>,
}

impl<'a> RootfsBackend<'a> {
    pub fn new(project: &'a Project, scanned: &'a Scanned, cache: &'a Cache) -> Self {
        RootfsBackend {
            project,
            scanned,
            cache,
            overlay: OnceLock::new(),
            verified: Mutex::new(BTreeMap::new()),
        }
    }

    /// The shared apt folder of the origin a job's chain stands on (the identity in the
    /// chain's first record, or the declared origin's), made if needed; `None` when the chain
    /// names no origin.
    fn apt_cache(&self, job: &Job) -> Result<Option<sandbox::AptCache>, String> {
        let identity = match &job.parent {
            Some(parent) => self
                .chain_of(parent)?
                .last()
                .and_then(|r| match &r.inputs.base {
                    key::BaseInputs::Origin { identity } => Some(identity.clone()),
                    // The chain's root record stands on an origin; a reheat never ends one.
                    key::BaseInputs::Parent { .. } | key::BaseInputs::Reheat { .. } => None,
                }),
            None => key::origin_identity(self.project, &job.origin, self.scanned).ok(),
        };
        let Some(identity) = identity else {
            return Ok(None);
        };
        let dir = self.cache.apt_dir(&identity).map_err(|e| e.to_string())?;
        // The run's private folder (every build of a run works in it, no other run does)
        // names the run: lists are fetched once per run.
        let run = job.work.parent().unwrap_or(&job.work).display().to_string();
        Ok(Some(sandbox::AptCache { dir, run }))
    }

    /// Whether overlayfs works on the cache's filesystem; tried once, said once when not.
    pub fn overlay(&self) -> &Result<(), String> {
        self.overlay.get_or_init(|| {
            if std::env::var(OVERLAY_ENV).is_ok_and(|v| v == "off" || v == "0") {
                return Err(format!("{OVERLAY_ENV}=off"));
            }
            let r = probe_overlay(self.cache.dir());
            if let Err(why) = &r {
                eprintln!(
                    "layer: overlayfs is refused here ({why}); builds copy trees instead, which is slower and takes more disk"
                );
            }
            r
        })
    }

    fn verify(&self, tree: &Path, want: &str, what: &str) -> Result<(), String> {
        let mut done = self.verified.lock().expect("no panics while locked");
        if done.get(tree).is_some_and(|d| d == want) {
            return Ok(());
        }
        let (got, _) = layerfs::digest(tree).map_err(|e| format!("verifying {what}: {e}"))?;
        if got != want {
            let fix = if what.starts_with("origin ") {
                "run `layer cache verify`, which moves it aside, and the next build makes it again"
            } else {
                "rebuild it with `layer build --force`"
            };
            return Err(format!(
                "{what} at {} does not match its record (blake3 {got}, recorded {want}): it was changed or damaged; {fix}",
                tree.display()
            ));
        }
        done.insert(tree.to_path_buf(), got);
        Ok(())
    }

    /// The verified stack of an origin alone, made first if needed: what an image built
    /// straight on it (or shallow) starts from.
    pub fn origin_stack(
        &self,
        origin_name: &str,
        log: Log,
        procs: &Procs,
    ) -> Result<Stack, String> {
        let origin = self
            .project
            .origins
            .get(origin_name)
            .ok_or_else(|| format!("origin `{origin_name}` is not declared"))?;
        let identity = key::origin_identity(self.project, origin_name, self.scanned)
            .map_err(|e| e.to_string())?;
        self.stack_on(origin, &identity, &[], log, procs)
    }

    /// The verified stack of the origin `origin` with `identity` (made first if needed) and
    /// the layers of `chain` (top first, as [`Self::chain_of`] gives it).
    fn stack_on(
        &self,
        origin: &crate::model::Origin,
        identity: &key::OriginIdentity,
        chain: &[Record],
        log: Log,
        procs: &Procs,
    ) -> Result<Stack, String> {
        let (root, digest) =
            origin::materialize(self.cache, &self.project.root, origin, identity, log, procs)?;
        self.verify(&root, &digest, &format!("origin `{}`", origin.name))?;
        let mut stack = Stack {
            trees: vec![root],
            names: vec![format!("origin {}", origin.name)],
        };
        for r in chain.iter().rev() {
            let (path, digest) = self.layer_of(r)?;
            let name = format!("{} {}", r.name, r.version);
            self.verify(&path, &digest, &format!("the layer of {name}"))?;
            stack.trees.push(path);
            stack.names.push(name);
        }
        Ok(stack)
    }

    /// The records of `r`'s chain, `r` first, down to the one built on an origin: each the
    /// very build the one above it was made on.
    fn chain_of(&self, r: &Record) -> Result<Vec<Record>, String> {
        let mut chain = vec![r.clone()];
        while let Some(p) = chain.last().and_then(|below| below.parent.clone()) {
            let Some(rec) = self.parent_build(&p) else {
                let below = chain.last().expect("not empty");
                return Err(format!(
                    "the record of {} {}, which {} {} was built on, is gone from the cache; rebuild with `layer build --force {}`",
                    p.name, p.version, below.name, below.version, below.name
                ));
            };
            chain.push(rec);
        }
        Ok(chain)
    }

    /// The very build a record was made on: the parent's record of that key *and version* (a
    /// forced rebuild of the parent has the same key but other files), current or old.
    fn parent_build(&self, p: &crate::record::ParentRef) -> Option<Record> {
        if let Lookup::Found(r) = self.cache.lookup(&p.name, &p.key) {
            if r.version == p.version {
                return Some(*r);
            }
        }
        self.cache
            .records(&p.name)
            .into_iter()
            .find(|r| r.key == p.key && r.version == p.version)
    }

    /// The layer folder and recorded digest of a record.
    pub fn layer_of(&self, r: &Record) -> Result<(PathBuf, String), String> {
        match (&r.artifact.path, &r.artifact.blake3) {
            (Some(p), Some(d)) => Ok((self.cache.dir().join(p), d.clone())),
            _ => Err(format!(
                "{} {} has no local artifact: it was not built by the `rootfs` backend",
                r.name, r.version
            )),
        }
    }

    /// The stack an image's record runs from: its chain's origin and layers, its own on top.
    /// The origin is the one the chain was built on (its identity is in the inputs of the
    /// chain's first record), whatever the declarations say now; so a build on a pinned
    /// parent, a test and an export all stand on exactly what was built.
    pub fn stack_of_record(&self, r: &Record, log: Log, procs: &Procs) -> Result<Stack, String> {
        let chain = self.chain_of(r)?;
        let first = chain.last().expect("not empty");
        let crate::key::BaseInputs::Origin { identity } = &first.inputs.base else {
            return Err(format!("{} {} names no origin", first.name, first.version));
        };
        let declared = self.project.origins.keys().find(|name| {
            key::origin_identity(self.project, name, self.scanned)
                .ok()
                .as_ref()
                == Some(identity)
        });
        let fallback;
        let origin = match declared {
            Some(name) => &self.project.origins[name],
            None if self.cache.origin(identity).is_some() => {
                // No longer declared, but still in the cache: enough to run from.
                fallback = crate::model::Origin {
                    name: "(as built, no longer declared)".into(),
                    source: crate::model::OriginSource::Id { id: String::new() },
                };
                &fallback
            }
            None => {
                return Err(format!(
                    "the origin {} {} was built on is no longer declared, and it is gone from the cache",
                    r.name, r.version
                ))
            }
        };
        self.stack_on(origin, identity, &chain, log, procs)
    }

    /// Runs a sandbox on `stack` in the private folder `work`, with a new upper folder:
    /// `layer` for a build, which keeps it as the image's layer (its unchanged copy-ups
    /// pruned, or in the copying fallback the difference made), or a throwaway one in `work`
    /// for a test instance. Returns the sandbox's success.
    #[allow(clippy::too_many_arguments)]
    pub fn run_sandbox(
        &self,
        stack: &Stack,
        layer: Option<&Path>,
        work: &Path,
        spec: sandbox::Spec,
        secrets: &[(String, String)],
        log: Log,
        procs: &Procs,
    ) -> Result<bool, String> {
        self.run_sandbox_as(stack, layer, work, spec, secrets, Attach::Log(log, procs))
            .map(|s| s.success())
    }

    /// [`Self::run_sandbox`], with the sandbox's output going where `attach` says; its exit
    /// status.
    pub fn run_sandbox_as(
        &self,
        stack: &Stack,
        layer: Option<&Path>,
        work: &Path,
        mut spec: sandbox::Spec,
        secrets: &[(String, String)],
        attach: Attach,
    ) -> Result<std::process::ExitStatus, String> {
        let e = |p: &Path, err: std::io::Error| format!("{}: {err}", p.display());
        fs::create_dir_all(work).map_err(|err| e(work, err))?;
        fs::set_permissions(work, fs::Permissions::from_mode(0o700)).map_err(|err| e(work, err))?;
        let upper = layer.map_or_else(|| work.join("upper"), Path::to_path_buf);
        fs::create_dir_all(&upper).map_err(|err| e(&upper, err))?;
        fs::set_permissions(&upper, fs::Permissions::from_mode(0o755))
            .map_err(|err| e(&upper, err))?;
        let root = work.join("root");
        fs::create_dir_all(&root).map_err(|err| e(&root, err))?;
        spec.root = root.clone();
        // The merged view of the stack costs a walk of every tree: only made when copying, or
        // to finish a layer that is kept.
        let copying = self.overlay().is_err();
        let below = if copying || layer.is_some() {
            Some(StackView::new(&stack.trees).map_err(|err| err.to_string())?)
        } else {
            None
        };
        match &below {
            Some(view) if copying => {
                layerfs::compose(view, &root).map_err(|err| err.to_string())?;
                spec.overlay = None;
            }
            _ => {
                let ov = work.join("overlay-work");
                fs::create_dir_all(&ov).map_err(|err| e(&ov, err))?;
                spec.overlay = Some(sandbox::Overlay {
                    lower: stack.trees.iter().rev().cloned().collect(),
                    upper: upper.clone(),
                    work: ov,
                });
            }
        }
        let spec_path = work.join("sandbox.json");
        let json = serde_json::to_vec_pretty(&spec).expect("specs serialize");
        fs::write(&spec_path, json).map_err(|err| e(&spec_path, err))?;
        let exe =
            std::env::current_exe().map_err(|err| format!("finding layer's own binary: {err}"))?;
        let mut cmd = Command::new(exe);
        cmd.arg("__sandbox").arg(&spec_path).env_clear();
        cmd.env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        );
        cmd.envs(secrets.iter().map(|(k, v)| (k, v)));
        let status = match attach {
            Attach::Log(log, procs) => procs.run(&mut cmd, log),
            Attach::Terminal => {
                crate::process::dies_with_layer(&mut cmd);
                sandbox::ignore_terminal_signals().and_then(|()| cmd.status())
            }
        }
        .map_err(|err| format!("starting the sandbox: {err}"))?;
        if let (true, Some(layer), Some(view)) = (status.success(), layer, &below) {
            if copying {
                layerfs::diff(&root, view, layer)
            } else {
                layerfs::prune(layer, view)
            }
            .map_err(|err| err.to_string())?;
        }
        Ok(status)
    }
}

/// Where a sandbox's output goes.
#[derive(Clone, Copy)]
pub enum Attach<'x> {
    /// Into a log, through the run's process table (builds, tests).
    Log(Log<'x>, &'x Procs),
    /// layer's own stdin, stdout and stderr (`layer shell`).
    Terminal,
}

/// The rootfs backend mounts, chroots and makes namespaces: it needs root. Checked before any
/// build or test starts, so that the error is one line, not a failed build per image.
pub fn check_root(image: &str, what: &str) -> crate::error::Result<()> {
    if rustix::process::geteuid().is_root() {
        return Ok(());
    }
    Err(crate::error::Error::Usage {
        kind: crate::error::ErrorKind::NeedsRoot,
        message: format!(
            "`{image}` is {what} with the `rootfs` backend, which needs root: it mounts file systems, makes namespaces and runs roles in a chroot"
        ),
        hint: Some(
            "run layer as root (`sudo layer ...`), or build these images with a `command` or `packer` backend".into(),
        ),
    })
}

/// Images to build with this backend that ask for packages (their own or their roles') on a
/// `busybox` origin, which has no package manager: a declaration error, found before any
/// build starts (SPEC §4.1). Other origins are checked when their tree exists.
pub fn check_packages(
    project: &Project,
    graph: &crate::graph::Graph,
    images: impl Iterator<Item = usize>,
) -> crate::error::Result<()> {
    use crate::model::OriginSource;
    for i in images {
        let image = &project.images[i];
        let id = crate::graph::ImageId::new(i);
        let chain = graph.chain(id);
        let Some(origin) = project.images[chain[0].index()].origin() else {
            continue; // built on a pinned parent: its packages were checked where it was built
        };
        if !matches!(
            project.origins.get(origin).map(|o| &o.source),
            Some(OriginSource::Busybox { .. })
        ) {
            continue;
        }
        let mut wanted: Vec<String> = chain
            .iter()
            .flat_map(|&c| project.images[c.index()].packages.iter().cloned())
            .collect();
        for r in graph.applied_roles(id, crate::model::Strategy::Shallow) {
            wanted.extend(project.roles[r].packages.iter().cloned());
        }
        if wanted.is_empty() {
            continue;
        }
        return Err(crate::error::Error::Input { kind: crate::error::ErrorKind::PackagesOnBusybox,
            path: image.file.clone(),
            message: format!(
                "`{}` asks for packages ({}) but is built on the `busybox` origin `{origin}`, which has no package manager",
                image.name,
                wanted.join(", ")
            ),
            hint: Some(
                "build it on a `debian` or `tar` origin with apt-get, apk or dnf, or drop `packages`".into(),
            ),
        });
    }
    Ok(())
}

/// The package manifest of the tree a mount of `trees` (bottom first) shows: dpkg's status
/// file, else apk's database, else rpm's sqlite database (read through a copy under
/// `scratch`), with the distribution from os-release; `None` when the image has none (a
/// busybox origin), or only an rpm database of a kind layer does not read, which `note` is
/// told of. A database that cannot be read is an error: a record without its manifest would
/// make an audit miss the build.
pub fn read_manifest(
    trees: &[PathBuf],
    scratch: &Path,
    note: &mut dyn FnMut(&str),
) -> Result<Option<Manifest>, String> {
    use crate::packages::manifest::{
        parse_apk_installed, parse_dpkg_status, parse_os_release, APK_INSTALLED, DPKG_STATUS,
        OS_RELEASE,
    };
    use crate::packages::rpm::{RPMDB_OTHER, RPMDB_SQLITE};
    let read = |rel: &str| -> Result<Option<String>, String> {
        let Some(path) = layerfs::lookup(trees, rel) else {
            return Ok(None);
        };
        let bytes = fs::read(&path).map_err(|e| format!("reading `{}`: {e}", path.display()))?;
        Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
    };
    let (manager, packages) = if let Some(text) = read(DPKG_STATUS)? {
        (Manager::Dpkg, parse_dpkg_status(&text))
    } else if let Some(text) = read(APK_INSTALLED)? {
        (Manager::Apk, parse_apk_installed(&text))
    } else if let Some(db) = RPMDB_SQLITE
        .iter()
        .find_map(|rel| layerfs::lookup(trees, rel))
    {
        (Manager::Rpm, rpmdb::read_rpmdb(&db, scratch)?)
    } else {
        if let Some(rel) = RPMDB_OTHER
            .iter()
            .find(|rel| layerfs::lookup(trees, rel).is_some())
        {
            note(&format!(
                "note: rpm's database `{rel}` is BerkeleyDB or ndb, which layer does not read (only rpm ≥ 4.16's `rpmdb.sqlite`): this build records no package manifest, and `layer audit` counts it as not audited"
            ));
        }
        return Ok(None);
    };
    let mut distro = None;
    for rel in OS_RELEASE {
        if let Some(text) = read(rel)? {
            distro = parse_os_release(&text);
            break;
        }
    }
    Ok(Some(Manifest {
        manager,
        distro,
        packages,
    }))
}

fn probe_overlay(cache_dir: &Path) -> Result<(), String> {
    let dir = cache_dir.join(format!("overlay-probe-{}", std::process::id()));
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let out = Command::new(exe)
        .arg("__sandbox")
        .arg("--probe")
        .arg(&dir)
        .output()
        .map_err(|e| e.to_string());
    let _ = crate::fsutil::remove_tree(&dir);
    let out = out?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

/// Entry point of `layer __sandbox SPEC` and `layer __sandbox --probe DIR`.
pub fn sandbox_main(args: &[String]) -> i32 {
    match args {
        [flag, dir] if flag == "--probe" => match sandbox::overlay_works(Path::new(dir)) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("{e}");
                1
            }
        },
        [flag, rest @ ..] if flag == "--enter" => sandbox::enter(rest),
        [spec] => sandbox::main(Path::new(spec)),
        _ => {
            eprintln!("usage: layer __sandbox SPEC | --probe DIR (internal)");
            2
        }
    }
}

impl Builder for RootfsBackend<'_> {
    fn build(&self, job: &Job, log: Log, procs: &Procs) -> Result<Built, String> {
        let stack = match &job.parent {
            Some(parent) => self.stack_of_record(parent, log, procs)?,
            None => self.origin_stack(&job.origin, log, procs)?,
        };
        let _ = writeln!(
            log.lock().expect("no panics while locked"),
            "layer: building {} on {}",
            job.image,
            stack.names.join(" + ")
        );
        let mut vars = BTreeMap::new();
        vars.extend(job.vars.iter().map(|(k, v)| (k.clone(), v.clone())));
        let mut env = sandbox::base_env(&BTreeMap::new());
        env.extend([
            ("LAYER_IMAGE".to_string(), job.image.clone()),
            ("LAYER_VERSION".to_string(), job.version.clone()),
        ]);
        let mut steps = Vec::new();
        if !job.packages.is_empty() {
            steps.push(sandbox::Step::Packages {
                names: job.packages.clone(),
                sources: job.sources.clone(),
            });
        }
        for (name, dir, role_vars) in &job.roles {
            // The role's vars are defaults; the image's win.
            let mut v: Vec<(String, String)> = role_vars
                .iter()
                .filter(|(k, _)| !job.vars.contains_key(*k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            v.extend(job.vars.iter().map(|(k, v)| (k.clone(), v.clone())));
            v.push(("LAYER_ROLE".to_string(), name.clone()));
            steps.push(sandbox::Step::Role {
                name: name.clone(),
                dir: dir.clone(),
                env: v,
            });
        }
        let spec = sandbox::Spec {
            root: PathBuf::new(),
            overlay: None,
            hostname: job.image.clone(),
            host_network: true,
            env,
            secret_names: job.secrets.iter().map(|(k, _)| k.clone()).collect(),
            steps,
            results: None,
            binds: job.binds.clone(),
            apt: if job.packages.is_empty() {
                None
            } else {
                self.apt_cache(job)?
            },
        };
        let upper = job.work.join("layer");
        let ok = self.run_sandbox(
            &stack,
            Some(&upper),
            &job.work.join("sandbox"),
            spec,
            &job.secrets,
            log,
            procs,
        )?;
        if !ok {
            return Err("the build failed; see the log".into());
        }
        let mut trees = stack.trees.clone();
        trees.push(upper.clone());
        let packages = read_manifest(&trees, &job.work.join("rpmdb"), &mut |note| {
            let _ = writeln!(log.lock().expect("no panics while locked"), "layer: {note}");
        })?;
        Ok(Built {
            id: job.artifact_name.clone(),
            local: Some(upper),
            remote: None,
            packages,
        })
    }
}
