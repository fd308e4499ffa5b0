//! `layer lock`: pins what moves into `layer.lock`, so that planning never has to ask.
//!
//! - A `resolve` origin runs its command (argv, in the project root, with a clean environment:
//!   `PATH`, `HOME`, `LANG`) and pins the one line it prints as `id`.
//! - A `debian` origin pins the `Release` of each of its archives (the suite, `-updates`,
//!   `-security`, extra `sources`; see [`archive`]) as `LABEL DATE BLAKE3`.
//! - Every image on a `debian` origin gets the exact set of packages its build installs,
//!   dependencies and security updates included, as `NAME=VERSION`: resolved by apt in a
//!   throwaway sandbox of the origin (a [`Resolver`]; never on the host), each image's set
//!   being what differs from what it is built on (its parent's set, or the origin's own).
//!   Builds install exactly those versions, and they are part of the key, so a new version
//!   makes stale exactly the images that install it.
//!
//! `layer lock` pins what has no pin yet (and drops pins of origins and images no longer
//! declared); `layer lock --update` resolves everything again and prints what moved —
//! archives, and packages as `NAME OLD -> NEW` — and which images that makes stale. The file
//! is written sorted, in a stable layout, atomically, and only when it changes. Planning only
//! reads it (`key::origin_identity`, `key::compute`). [`check_served`] (in `served`) is what a build asks
//! before it starts: are the locked versions still there.

pub mod archive;
mod served;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::decl;
use crate::error::{Error, ErrorKind, Result};
use crate::graph::{Graph, ImageId};
use crate::key;
use crate::model::{LockedImage, LockedOrigin, OriginSource, Project, Strategy};
use crate::model::{LOCK_FILE, LOCK_VERSION, PROJECT_FILE};
use crate::scan;
use crate::source::files::{Kind, Link, Listed, ProjectFiles, WorkTree};

pub use archive::{host_mirror, Archive, DEFAULT_MIRROR};
pub use served::check_served;

/// One pin that changed: an origin's id or archive, or a package of an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Moved {
    /// The origin, or for a package its name.
    pub origin: String,
    /// `None` when it had no pin.
    pub old: Option<String>,
    pub new: String,
}

/// What `layer lock` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub moved: Vec<Moved>,
    /// Packages whose locked version moved, came or went: name, old, new (`None`: none).
    pub packages: Vec<(String, Option<String>, Option<String>)>,
    /// Images locked for the first time, with the number of packages they install.
    pub first: Vec<(String, usize)>,
    /// Pins dropped because their origin or image is no longer declared.
    pub dropped: Vec<String>,
    /// Images whose key the new pins change, by name.
    pub stale: Vec<String>,
    pub images: usize,
    pub written: bool,
}

/// What one image's packages are resolved from: the `deb` lines of its chain's extra sources
/// and its chain's packages (its own and its roles', and its ancestors').
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub image: String,
    pub sources: Vec<String>,
    pub packages: Vec<String>,
}

/// What a [`Resolver`] found: the packages installed in the origin, and for each request the
/// packages installed once its chain is built (dependencies and upgrades included); name ->
/// version.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resolution {
    pub base: BTreeMap<String, String>,
    pub images: Vec<BTreeMap<String, String>>,
}

/// Resolves package versions in a throwaway sandbox of an origin (the rootfs backend's
/// `resolve` part); `project` has the origin's new archive pins in its lock.
pub trait Resolver {
    fn resolve(&self, project: &Project, origin: &str, requests: &[Request]) -> Result<Resolution>;
}

/// The work tree as if it had no `layer.lock`.
struct WithoutLock(WorkTree);

impl ProjectFiles for WithoutLock {
    fn read(&self, rel: &str) -> std::io::Result<Vec<u8>> {
        self.0.read(rel)
    }
    fn kind(&self, rel: &str) -> Option<Kind> {
        (rel != LOCK_FILE).then(|| self.0.kind(rel)).flatten()
    }
    fn list(&self, rel: &str) -> std::io::Result<Option<Vec<Listed>>> {
        self.0.list(rel)
    }
    fn link(&self, rel: &str) -> Link {
        self.0.link(rel)
    }
}

/// Runs `layer lock` (or `--update`) on the project at `root`.
pub fn lock(
    root: &Path,
    cache_dir: Option<&Path>,
    update: bool,
    resolver: &dyn Resolver,
) -> Result<Outcome> {
    let project = match decl::load(root) {
        // A lock that does not load (an old format, a bad merge) is written again from
        // scratch, as its error message says: every origin is resolved anew.
        Err(Error::Declarations(d)) if d.0.iter().all(|d| d.file == LOCK_FILE) => {
            let root = root.canonicalize().map_err(|e| Error::io(root, e))?;
            decl::load_from(&root, &WithoutLock(WorkTree::new(&root)))?
        }
        other => other?,
    };
    let root = project.root.clone();
    let (origins, moved) = lock_origins(&project, &root, update)?;
    let mut next_project = project.clone();
    next_project.lock.origins = origins;
    let graph = Graph::new(&project);
    let images = lock_images(&next_project, &graph, update, resolver)?;
    next_project.lock.images = images;
    let next = &next_project.lock;
    let mut dropped: Vec<String> = project
        .lock
        .origins
        .keys()
        .filter(|n| !next.origins.contains_key(*n))
        .cloned()
        .collect();
    dropped.extend(
        project
            .lock
            .images
            .keys()
            .filter(|n| !next.images.contains_key(*n))
            .map(|n| format!("image {n}")),
    );
    let (packages, first) = package_moves(&project.lock.images, &next.images);

    // Which images the new pins make stale: keys before and after (an image that could not
    // be keyed before, for want of a pin, counts).
    let cache =
        crate::cache::Cache::new(cache_dir.map_or_else(|| root.join("cache"), Path::to_path_buf));
    let stat = cache.load_stat_cache();
    let hasher = scan::Hasher::new(&stat);
    let scanned = scan::scan_project(&project, &hasher)?;
    let mut before_project = project.clone();
    pin_unresolved(&mut before_project);
    let before = key::compute(&before_project, &graph, project.strategy, &scanned).ok();
    let after = key::compute(&next_project, &graph, project.strategy, &scanned)?;
    let stale = project
        .images
        .iter()
        .enumerate()
        .filter(|(i, _)| before.as_ref().is_none_or(|b| b[*i].key != after[*i].key))
        .map(|(_, im)| im.name.clone())
        .collect();

    let text = render(next);
    let path = root.join(LOCK_FILE);
    let current = std::fs::read(&path).ok();
    let written = current.as_deref() != Some(text.as_bytes());
    if written {
        crate::fsutil::write_atomic(&path, text.as_bytes())?;
    }
    Ok(Outcome {
        moved,
        packages,
        first,
        dropped,
        stale,
        images: project.images.len(),
        written,
    })
}

/// The origins' new pins, and what moved.
fn lock_origins(
    project: &Project,
    root: &Path,
    update: bool,
) -> Result<(BTreeMap<String, LockedOrigin>, Vec<Moved>)> {
    let mut next: BTreeMap<String, LockedOrigin> = BTreeMap::new();
    let mut moved = Vec::new();
    for (name, origin) in &project.origins {
        let old = project.lock.origins.get(name).cloned();
        let pinned = |l: &LockedOrigin| match origin.source {
            OriginSource::Resolve { .. } => l.id.is_some(),
            OriginSource::Debian { .. } => !l.releases.is_empty(),
            OriginSource::Busybox { .. } => l.blake3.is_some(),
            _ => false,
        };
        let resolved = match (&origin.source, &old) {
            // A busybox pinned in its declaration needs no lock entry.
            (
                OriginSource::Busybox {
                    blake3: Some(_), ..
                },
                _,
            ) => continue,
            (
                OriginSource::Resolve { .. }
                | OriginSource::Debian { .. }
                | OriginSource::Busybox { .. },
                Some(o),
            ) if !update && pinned(o) => o.clone(),
            (OriginSource::Resolve { command }, _) => LockedOrigin {
                id: Some(run_resolve(root, name, command)?),
                ..LockedOrigin::default()
            },
            (OriginSource::Debian { .. }, _) => LockedOrigin {
                releases: archive::origin_archives(&origin.source)
                    .iter()
                    .map(|a| release_of(&format!("origin `{name}`"), a))
                    .collect::<Result<_>>()?,
                ..LockedOrigin::default()
            },
            (OriginSource::Busybox { path, .. }, _) => LockedOrigin {
                blake3: Some(busybox_digest(name, path)?),
                ..LockedOrigin::default()
            },
            _ => continue,
        };
        if let (Some(id), OriginSource::Resolve { .. }) = (&resolved.id, &origin.source) {
            if old.as_ref().and_then(|o| o.id.as_ref()) != Some(id) {
                moved.push(Moved {
                    origin: name.clone(),
                    old: old.as_ref().and_then(|o| o.id.clone()),
                    new: id.clone(),
                });
            }
        }
        let old_releases = old.as_ref().map(|o| o.releases.clone()).unwrap_or_default();
        moved.extend(release_moves(name, &old_releases, &resolved.releases));
        next.insert(name.clone(), resolved);
    }
    Ok((next, moved))
}

/// The blake3 of a `busybox` origin's binary, pinned in `layer.lock` so that plans never open
/// the host file (`layer lock` is run by the project's owners, never on untrusted input).
fn busybox_digest(name: &str, path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|e| Error::Input {
        kind: ErrorKind::OriginFile,
        path: PROJECT_FILE.into(),
        message: format!("origin `{name}`: cannot read `{}`: {e}", path.display()),
        hint: Some(
            "install a static busybox (`apt-get install busybox-static`) or point `busybox` at one"
                .into(),
        ),
    })?;
    Ok(blake3::hash(&bytes).to_hex().to_string())
}

/// `LABEL DATE BLAKE3` of an archive's `Release`, fetched now.
fn release_of(owner: &str, a: &Archive) -> Result<String> {
    let url = a.source.release_url();
    let fail = |message: String| {
        Error::Input {
        kind: ErrorKind::ReleaseFetch,
        path: PROJECT_FILE.into(),
        message: format!("{owner}: {message}"),
        hint: Some("check the suite and the mirror (`mirror = \"...\"` in the origin, or the `sources` line)".into()),
    }
    };
    let bytes = archive::fetch(&url).map_err(fail)?;
    let pin = archive::release_pin(&url, &bytes).map_err(fail)?;
    Ok(format!("{} {pin}", a.label))
}

/// An archive's pin as people read it: `LABEL DATE`.
fn short(pin: &str) -> String {
    match crate::model::split_release_pin(pin) {
        Some((label, p)) => format!("{label} {}", p.split(' ').next().unwrap_or_default()),
        None => pin.to_string(),
    }
}

/// The archives of `owner` whose pins moved, by label.
fn release_moves(owner: &str, old: &[String], new: &[String]) -> Vec<Moved> {
    let label = |p: &String| {
        crate::model::split_release_pin(p).map_or(String::new(), |(l, _)| l.to_string())
    };
    let mut out = Vec::new();
    for n in new {
        let o = old.iter().find(|o| label(o) == label(n));
        if o != Some(n) {
            let date = |p: &String| short(p).rsplit(' ').next().unwrap_or_default().to_string();
            out.push(Moved {
                origin: owner.to_string(),
                old: o.map(|o| short(o)),
                new: if o.is_some() { date(n) } else { short(n) },
            });
        }
    }
    out
}

/// The images whose chain starts at the `debian` origin `origin`, in topological order.
pub(crate) fn images_on(project: &Project, graph: &Graph, origin: &str) -> Vec<usize> {
    (0..project.images.len())
        .filter(|&i| {
            let root = graph.chain(ImageId::new(i))[0];
            project.images[root.index()].origin() == Some(origin)
        })
        .collect()
}

/// What image `i`'s chain asks apt for: its images' and roles' `sources` and `packages`.
pub fn request(project: &Project, graph: &Graph, i: usize) -> Request {
    let id = ImageId::new(i);
    let mut sources = Vec::new();
    let mut packages = Vec::new();
    for c in graph.chain(id) {
        let im = &project.images[c.index()];
        sources.extend(im.sources.iter().cloned());
        packages.extend(im.packages.iter().cloned());
    }
    for r in graph.applied_roles(id, Strategy::Shallow) {
        sources.extend(project.roles[r].sources.iter().cloned());
        packages.extend(project.roles[r].packages.iter().cloned());
    }
    let dedup = |mut v: Vec<String>| {
        let mut seen = BTreeSet::new();
        v.retain(|x| seen.insert(x.clone()));
        v
    };
    Request {
        image: project.images[i].name.clone(),
        sources: dedup(sources),
        packages: dedup(packages),
    }
}

/// The extra sources image `i` itself adds (its own and its roles' in a deep build).
pub fn own_sources(project: &Project, graph: &Graph, i: usize) -> Vec<String> {
    let mut out: Vec<String> = project.images[i].sources.clone();
    for r in graph.applied_roles(ImageId::new(i), Strategy::Deep) {
        out.extend(project.roles[r].sources.iter().cloned());
    }
    let mut seen = BTreeSet::new();
    out.retain(|x| seen.insert(x.clone()));
    out
}

/// The images' package locks: kept where they are and not `update`, else resolved again,
/// every image of an origin at once.
fn lock_images(
    project: &Project,
    graph: &Graph,
    update: bool,
    resolver: &dyn Resolver,
) -> Result<BTreeMap<String, LockedImage>> {
    let mut next = BTreeMap::new();
    for (name, origin) in &project.origins {
        if !matches!(origin.source, OriginSource::Debian { .. }) {
            continue;
        }
        let on = images_on(project, graph, name);
        let all_kept = on
            .iter()
            .all(|&i| project.lock.images.contains_key(&project.images[i].name));
        if on.is_empty() || (!update && all_kept) {
            for &i in &on {
                let n = &project.images[i].name;
                next.insert(n.clone(), project.lock.images[n].clone());
            }
            continue;
        }
        let requests: Vec<Request> = on.iter().map(|&i| request(project, graph, i)).collect();
        let resolution = resolver.resolve(project, name, &requests)?;
        let full: BTreeMap<&str, &BTreeMap<String, String>> = requests
            .iter()
            .zip(&resolution.images)
            .map(|(r, s)| (r.image.as_str(), s))
            .collect();
        for &i in &on {
            let image = &project.images[i];
            let below = match image.parent() {
                Some(p) if full.contains_key(p) => full[p],
                _ => &resolution.base,
            };
            let mine = full[image.name.as_str()];
            let packages: Vec<String> = mine
                .iter()
                .filter(|(n, v)| below.get(*n) != Some(*v))
                .map(|(n, v)| format!("{n}={v}"))
                .collect();
            let releases = own_sources(project, graph, i)
                .iter()
                .filter_map(|l| Archive::extra(l))
                .map(|a| release_of(&format!("image `{}`", image.name), &a))
                .collect::<Result<_>>()?;
            next.insert(image.name.clone(), LockedImage { packages, releases });
        }
    }
    Ok(next)
}

/// Packages whose version moved between two locks (distinct `name old -> new`), and images
/// locked for the first time.
#[allow(clippy::type_complexity)]
fn package_moves(
    old: &BTreeMap<String, LockedImage>,
    new: &BTreeMap<String, LockedImage>,
) -> (
    Vec<(String, Option<String>, Option<String>)>,
    Vec<(String, usize)>,
) {
    let map = |l: &LockedImage| -> BTreeMap<String, String> {
        l.packages
            .iter()
            .filter_map(|p| p.split_once('='))
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    };
    let mut moves = BTreeSet::new();
    let mut first = Vec::new();
    for (name, n) in new {
        let Some(o) = old.get(name) else {
            first.push((name.clone(), n.packages.len()));
            continue;
        };
        let (o, n) = (map(o), map(n));
        for p in o.keys().chain(n.keys()) {
            if o.get(p) != n.get(p) {
                moves.insert((p.clone(), o.get(p).cloned(), n.get(p).cloned()));
            }
        }
    }
    (moves.into_iter().collect(), first)
}

/// Gives every `resolve` origin without a pin the placeholder id `(not locked)`, so that a
/// project can be keyed before its first `layer lock` (to count what locking changes, or to
/// compare with a revision that had no pin).
pub fn pin_unresolved(project: &mut Project) {
    let unlocked: Vec<String> = project
        .origins
        .iter()
        .filter(|(n, o)| {
            matches!(o.source, OriginSource::Resolve { .. })
                && project.lock.origins.get(*n).is_none_or(|l| l.id.is_none())
        })
        .map(|(n, _)| n.clone())
        .collect();
    for n in unlocked {
        project.lock.origins.entry(n).or_default().id = Some("(not locked)".into());
    }
}

/// `layer.lock`, sorted by origin and image, in a fixed layout.
pub fn render(lock: &crate::model::Lock) -> String {
    let q = |s: &str| toml::Value::String(s.to_string()).to_string();
    let list = |out: &mut String, field: &str, items: &[String]| {
        if items.is_empty() {
            return;
        }
        let _ = writeln!(out, "{field} = [");
        for it in items {
            let _ = writeln!(out, "    {},", q(it));
        }
        out.push_str("]\n");
    };
    let mut out = format!(
        "# Written by `layer lock`: origins and package versions pinned for planning. Commit it.\nversion = {LOCK_VERSION}\n"
    );
    for (name, l) in &lock.origins {
        let _ = write!(out, "\n[origins.{name}]\n");
        if let Some(id) = &l.id {
            let _ = writeln!(out, "id = {}", q(id));
        }
        if let Some(d) = &l.blake3 {
            let _ = writeln!(out, "blake3 = {}", q(d));
        }
        list(&mut out, "releases", &l.releases);
    }
    for (name, l) in &lock.images {
        let _ = write!(out, "\n[images.{name}]\n");
        list(&mut out, "packages", &l.packages);
        list(&mut out, "releases", &l.releases);
    }
    out
}

/// What `layer lock` prints.
pub fn report(o: &Outcome, update: bool) -> String {
    let mut out = String::new();
    for m in &o.moved {
        match &m.old {
            Some(old) => {
                let _ = writeln!(out, "{}: {old} -> {}", m.origin, m.new);
            }
            None => {
                let _ = writeln!(out, "{}: locked {}", m.origin, m.new);
            }
        }
    }
    for (image, n) in &o.first {
        let _ = writeln!(out, "{image}: locked {n} packages");
    }
    for (name, old, new) in &o.packages {
        let v = |v: &Option<String>| v.clone().unwrap_or_else(|| "(none)".into());
        let _ = writeln!(out, "{name} {} -> {}", v(old), v(new));
    }
    for d in &o.dropped {
        let _ = writeln!(out, "{d}: dropped (no longer declared)");
    }
    let changed = !o.moved.is_empty() || !o.packages.is_empty() || !o.first.is_empty();
    if !changed && o.dropped.is_empty() {
        out.push_str(if update {
            "nothing moved: layer.lock is up to date\n"
        } else {
            "layer.lock is up to date\n"
        });
    }
    if changed {
        let _ = write!(out, "{} of {} images stale", o.stale.len(), o.images);
        if !o.stale.is_empty() {
            let _ = write!(out, ": {}", o.stale.join(", "));
        }
        out.push('\n');
    }
    out
}

/// Runs a `resolve` command and returns the id it printed.
fn run_resolve(root: &Path, name: &str, command: &[String]) -> Result<String> {
    let fail = |message: String| Error::Input {
        kind: ErrorKind::ResolveFailed,
        path: PROJECT_FILE.into(),
        message: format!("origin `{name}`: {message}"),
        hint: Some("the `resolve` command must print one id and exit 0".into()),
    };
    let mut cmd = Command::new(&command[0]);
    cmd.args(&command[1..])
        .current_dir(root)
        .env_clear()
        .stdin(Stdio::null());
    for var in ["PATH", "HOME", "LANG"] {
        if let Some(v) = std::env::var_os(var) {
            cmd.env(var, v);
        }
    }
    let out = cmd
        .output()
        .map_err(|e| fail(format!("cannot run `{}`: {e}", command[0])))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let last = stderr.lines().last().unwrap_or("").trim();
        return Err(fail(format!(
            "`{}` failed ({}){}",
            command.join(" "),
            out.status,
            if last.is_empty() {
                String::new()
            } else {
                format!(": {last}")
            }
        )));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    match lines[..] {
        [id] => Ok(id.to_string()),
        [] => Err(fail(format!("`{}` printed no id", command.join(" ")))),
        _ => Err(fail(format!(
            "`{}` printed {} lines; expected one id",
            command.join(" "),
            lines.len()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Lock;

    #[test]
    fn the_lock_is_sorted_and_stable() {
        let mut lock = Lock::default();
        lock.origins.insert(
            "zz".to_string(),
            LockedOrigin {
                id: Some("ami-\"1\"".into()),
                ..LockedOrigin::default()
            },
        );
        lock.origins.insert(
            "aa".to_string(),
            LockedOrigin {
                releases: vec!["bookworm 2025-01-11T10:48:02Z abc".into()],
                ..LockedOrigin::default()
            },
        );
        lock.images.insert(
            "app".to_string(),
            LockedImage {
                packages: vec!["curl=7.88.1-10+deb12u8".into()],
                releases: vec![],
            },
        );
        assert_eq!(
            render(&lock),
            "# Written by `layer lock`: origins and package versions pinned for planning. Commit it.\nversion = 2\n\n[origins.aa]\nreleases = [\n    \"bookworm 2025-01-11T10:48:02Z abc\",\n]\n\n[origins.zz]\nid = 'ami-\"1\"'\n\n[images.app]\npackages = [\n    \"curl=7.88.1-10+deb12u8\",\n]\n"
        );
    }

    #[test]
    fn package_moves_are_distinct_and_first_locks_are_counted() {
        let img = |p: &[&str]| LockedImage {
            packages: p.iter().map(ToString::to_string).collect(),
            releases: vec![],
        };
        let old = BTreeMap::from([
            ("a".to_string(), img(&["hello=1.0", "x=1"])),
            ("b".to_string(), img(&["hello=1.0"])),
        ]);
        let new = BTreeMap::from([
            ("a".to_string(), img(&["hello=2.0", "y=1"])),
            ("b".to_string(), img(&["hello=2.0"])),
            ("c".to_string(), img(&["z=1"])),
        ]);
        let (moves, first) = package_moves(&old, &new);
        assert_eq!(
            moves,
            [
                ("hello".into(), Some("1.0".into()), Some("2.0".into())),
                ("x".into(), Some("1".into()), None),
                ("y".into(), None, Some("1".into())),
            ]
        );
        assert_eq!(first, [("c".to_string(), 1)]);
    }
}
