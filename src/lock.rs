//! `layer lock`: pins origins that move into `layer.lock`, so that planning never has to ask.
//!
//! - A `resolve` origin runs its command (argv, in the project root, with a clean environment:
//!   `PATH`, `HOME`, `LANG`) and pins the one line it prints as `id`.
//! - A `debian` origin pins the suite's `Release` file, fetched from
//!   `MIRROR/dists/SUITE/Release`, as `snapshot = "DATE BLAKE3"`: the file's `Date:` in RFC 3339
//!   (which also names the matching snapshot.debian.org archive) and the blake3 of the file.
//!   MIRROR is the origin's `mirror`, else the host's apt sources, else
//!   `http://deb.debian.org/debian`; `file://` mirrors are read directly, others with `curl`.
//!
//! `layer lock` pins the origins that have no pin yet (and drops pins of origins no longer
//! declared); `layer lock --update` resolves every origin again and prints what moved and how
//! many images that makes stale. The file is written sorted, in a stable layout, atomically,
//! and only when it changes. Planning only reads it (`key::origin_identity`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::decl;
use crate::error::{Error, ErrorKind, Result};
use crate::graph::Graph;
use crate::key;
use crate::model::{LockedOrigin, OriginSource, Project};
use crate::model::{LOCK_FILE, PROJECT_FILE};
use crate::scan;
use crate::source::files::{Kind, Link, Listed, ProjectFiles, WorkTree};

/// Where Debian is fetched from when neither the origin nor the host says.
pub const DEFAULT_MIRROR: &str = "http://deb.debian.org/debian";

/// One origin whose pin changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Moved {
    pub origin: String,
    /// `None` when it had no pin.
    pub old: Option<String>,
    pub new: String,
}

/// What `layer lock` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub moved: Vec<Moved>,
    /// Pins dropped because their origin is no longer declared.
    pub dropped: Vec<String>,
    /// Images whose key the new pins change.
    pub stale: usize,
    pub images: usize,
    pub written: bool,
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

/// The text of a pin, for messages.
fn shown(l: &LockedOrigin) -> Option<String> {
    l.id.clone().or_else(|| l.snapshot.clone()).or_else(|| {
        l.blake3
            .as_ref()
            .map(|d| format!("blake3 {}", &d[..d.len().min(12)]))
    })
}

/// The blake3 of a `busybox` origin's binary, pinned in `layer.lock` so that plans never open
/// the host file (`layer lock` is run by the project's owners, never on untrusted input).
fn busybox_digest(name: &str, path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|e| Error::Input {
        kind: ErrorKind::OriginFile,
        path: crate::model::PROJECT_FILE.into(),
        message: format!("origin `{name}`: cannot read `{}`: {e}", path.display()),
        hint: Some(
            "install a static busybox (`apt-get install busybox-static`) or point `busybox` at one"
                .into(),
        ),
    })?;
    Ok(blake3::hash(&bytes).to_hex().to_string())
}

/// Runs `layer lock` (or `--update`) on the project at `root`.
pub fn lock(root: &Path, cache_dir: Option<&Path>, update: bool) -> Result<Outcome> {
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
    let mut next: BTreeMap<String, LockedOrigin> = BTreeMap::new();
    let mut moved = Vec::new();
    for (name, origin) in &project.origins {
        let old = project.lock.origins.get(name).cloned();
        let pinned = |l: &LockedOrigin| match origin.source {
            OriginSource::Resolve { .. } => l.id.is_some(),
            OriginSource::Debian { .. } => l.snapshot.is_some(),
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
                id: Some(run_resolve(&root, name, command)?),
                ..LockedOrigin::default()
            },
            (OriginSource::Debian { suite, mirror, .. }, _) => LockedOrigin {
                snapshot: Some(debian_snapshot(name, suite, mirror.as_deref())?),
                ..LockedOrigin::default()
            },
            (OriginSource::Busybox { path, .. }, _) => LockedOrigin {
                blake3: Some(busybox_digest(name, path)?),
                ..LockedOrigin::default()
            },
            _ => continue,
        };
        if old.as_ref() != Some(&resolved) {
            moved.push(Moved {
                origin: name.clone(),
                old: old.as_ref().and_then(shown),
                new: shown(&resolved).unwrap_or_default(),
            });
        }
        next.insert(name.clone(), resolved);
    }
    let dropped: Vec<String> = project
        .lock
        .origins
        .keys()
        .filter(|n| !next.contains_key(*n))
        .cloned()
        .collect();

    // How many images the new pins make stale: keys before and after (an image that could not
    // be keyed before, for want of a pin, counts).
    let graph = Graph::new(&project);
    let cache =
        crate::cache::Cache::new(cache_dir.map_or_else(|| root.join("cache"), Path::to_path_buf));
    let stat = cache.load_stat_cache();
    let hasher = scan::Hasher::new(&stat);
    let scanned = scan::scan_project(&project, &hasher)?;
    let mut before_project = project.clone();
    pin_unresolved(&mut before_project);
    let before = key::compute(&before_project, &graph, project.strategy, &scanned).ok();
    let mut after_project: Project = project.clone();
    after_project.lock.origins = next.clone();
    let after = key::compute(&after_project, &graph, project.strategy, &scanned)?;
    let stale = match &before {
        Some(b) => b.iter().zip(&after).filter(|(b, a)| b.key != a.key).count(),
        None => after.len(),
    };

    let text = render(&next);
    let path = root.join(LOCK_FILE);
    let current = std::fs::read(&path).ok();
    let written = current.as_deref() != Some(text.as_bytes());
    if written {
        crate::fsutil::write_atomic(&path, text.as_bytes())?;
    }
    Ok(Outcome {
        moved,
        dropped,
        stale,
        images: project.images.len(),
        written,
    })
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

/// `layer.lock`, sorted by origin, in a fixed layout.
pub fn render(origins: &BTreeMap<String, LockedOrigin>) -> String {
    let q = |s: &str| toml::Value::String(s.to_string()).to_string();
    let mut out = String::from(
        "# Written by `layer lock`: origins pinned for planning. Commit it.\nversion = 1\n",
    );
    for (name, l) in origins {
        let _ = write!(out, "\n[origins.{name}]\n");
        if let Some(id) = &l.id {
            let _ = writeln!(out, "id = {}", q(id));
        }
        if let Some(s) = &l.snapshot {
            let _ = writeln!(out, "snapshot = {}", q(s));
        }
        if let Some(d) = &l.blake3 {
            let _ = writeln!(out, "blake3 = {}", q(d));
        }
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
    for d in &o.dropped {
        let _ = writeln!(out, "{d}: dropped (no longer declared)");
    }
    if o.moved.is_empty() && o.dropped.is_empty() {
        out.push_str(if update {
            "nothing moved: layer.lock is up to date\n"
        } else {
            "layer.lock is up to date\n"
        });
    }
    if !o.moved.is_empty() {
        let _ = writeln!(out, "{} of {} images stale", o.stale, o.images);
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

/// The mirror of the host's apt sources (`/etc/apt/sources.list.d/*.sources`, then
/// `/etc/apt/sources.list`), if any.
pub fn host_mirror() -> Option<String> {
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir("/etc/apt/sources.list.d")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "sources"))
        .collect();
    files.sort();
    for f in files {
        let text = std::fs::read_to_string(f).unwrap_or_default();
        for line in text.lines() {
            if let Some(uris) = line.strip_prefix("URIs:") {
                if let Some(u) = uris.split_whitespace().find(|u| !u.contains("security")) {
                    return Some(u.trim_end_matches('/').to_string());
                }
            }
        }
    }
    let text = std::fs::read_to_string("/etc/apt/sources.list").unwrap_or_default();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        if words.next() != Some("deb") {
            continue;
        }
        let uri = words.find(|w| !w.starts_with('['));
        if let Some(u) = uri.filter(|u| !u.contains("security")) {
            return Some(u.trim_end_matches('/').to_string());
        }
    }
    None
}

/// `DATE BLAKE3` of the suite's Release file.
fn debian_snapshot(name: &str, suite: &str, mirror: Option<&str>) -> Result<String> {
    let mirror = mirror
        .map(|m| m.trim_end_matches('/').to_string())
        .or_else(host_mirror)
        .unwrap_or_else(|| DEFAULT_MIRROR.to_string());
    let url = format!("{mirror}/dists/{suite}/Release");
    let fail = |message: String| Error::Input {
        kind: ErrorKind::ReleaseFetch,
        path: PROJECT_FILE.into(),
        message: format!("origin `{name}`: {message}"),
        hint: Some("check the suite and the mirror (`mirror = \"...\"` in the origin)".into()),
    };
    let bytes = if let Some(path) = url.strip_prefix("file://") {
        std::fs::read(path).map_err(|e| fail(format!("cannot read `{path}`: {e}")))?
    } else {
        let out = Command::new("curl")
            .args(["-fsSL", "--max-time", "120", "--retry", "2", "--", &url])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| fail(format!("cannot run `curl` to fetch `{url}`: {e}")))?;
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            return Err(fail(format!(
                "cannot fetch `{url}`: {}",
                stderr.lines().last().unwrap_or("curl failed").trim()
            )));
        }
        out.stdout
    };
    let text = String::from_utf8_lossy(&bytes);
    let date = text
        .lines()
        .find_map(|l| l.strip_prefix("Date:"))
        .map(str::trim)
        .ok_or_else(|| fail(format!("`{url}` has no `Date:`; is it a Release file?")))?;
    let date = rfc3339(date).unwrap_or_else(|| date.replace(' ', "_"));
    Ok(format!("{date} {}", blake3::hash(&bytes).to_hex()))
}

/// `Sat, 11 Jan 2025 10:48:02 UTC` as `2025-01-11T10:48:02Z`.
fn rfc3339(date: &str) -> Option<String> {
    let w: Vec<&str> = date.split_whitespace().collect();
    let [_, day, month, year, time, zone] = w[..] else {
        return None;
    };
    if zone != "UTC" && zone != "GMT" && zone != "+0000" {
        return None;
    }
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let m = MONTHS.iter().position(|x| *x == month)? + 1;
    let day: u32 = day.parse().ok()?;
    let year: u32 = year.parse().ok()?;
    if time.len() != 8 {
        return None;
    }
    Some(format!("{year:04}-{m:02}-{day:02}T{time}Z"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_dates_become_rfc3339() {
        assert_eq!(
            rfc3339("Sat, 11 Jan 2025 10:48:02 UTC").as_deref(),
            Some("2025-01-11T10:48:02Z")
        );
        assert_eq!(rfc3339("yesterday"), None);
    }

    #[test]
    fn the_lock_is_sorted_and_stable() {
        let mut o = BTreeMap::new();
        o.insert(
            "zz".to_string(),
            LockedOrigin {
                id: Some("ami-\"1\"".into()),
                ..LockedOrigin::default()
            },
        );
        o.insert(
            "aa".to_string(),
            LockedOrigin {
                snapshot: Some("2025-01-11T10:48:02Z abc".into()),
                ..LockedOrigin::default()
            },
        );
        assert_eq!(
            render(&o),
            "# Written by `layer lock`: origins pinned for planning. Commit it.\nversion = 1\n\n[origins.aa]\nsnapshot = \"2025-01-11T10:48:02Z abc\"\n\n[origins.zz]\nid = 'ami-\"1\"'\n"
        );
    }
}
