//! `layer audit --osv PATH` (SPEC §9): every recorded build's installed packages against OSV
//! advisories, and with `--inventory` the running instances that carry an affected build —
//! the instance report driven by what is actually installed.
//!
//! A build is affected by an advisory when its manifest's distribution is the advisory's
//! ecosystem and a package's source package (or its own name) is named with a version the
//! advisory holds ([`crate::packages::osv::affects`], in the ecosystem's order). One row per
//! build, advisory and advisory package: the binary packages built from it are listed beside.
//! Builds without a manifest (built before layer kept them, or by another backend) are counted
//! as not audited, never as clean.
//!
//! Making the audit is pure: records, advisories and instances come in as values. Reading the
//! advisory files ([`read_advisories`]) is the one I/O.
//!
//! Fast on a large estate (`benches/audit.sh`: 1,000 builds of 400 packages against 5,000
//! advisories): each distinct (package, version) is compared with its advisories once, each
//! distinct distribution with each ecosystem once; findings borrow their strings from the
//! records and advisories, and sort by small integers (package names and advisory ids are
//! ranked once), in the order sorting the strings would give.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;
use std::path::{Path, PathBuf};

use rustc_hash::{FxHashMap, FxHashSet};
use serde::Serialize;

use crate::error::{Error, ErrorKind, Result};
use crate::packages::osv::{self, Advisory};
use crate::packages::{Distro, Package};
use crate::record::Record;
use crate::report::{self, Instance};
use crate::version::{short, version_fields};

/// One affected build: which package version, which advisory, which version fixes it. Its
/// strings are the records' and the advisories'.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding<'a> {
    pub image: &'a str,
    pub version: &'a str,
    /// The package the advisory names (for Debian, the source package).
    pub package: &'a str,
    pub installed: &'a str,
    pub advisory: &'a str,
    /// `null` when the advisory knows no fix.
    pub fixed: Option<&'a str>,
    /// The advisory's aliases (CVE ids).
    pub aliases: &'a [String],
    /// The installed packages built from `package`.
    pub binaries: Vec<&'a str>,
}

/// An instance running an affected build.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AffectedInstance {
    pub instance: String,
    pub image: String,
    pub version: String,
    pub advisories: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Audit<'a> {
    /// By image, then version field by field (`1.0.9` before `1.0.10`), then package,
    /// installed version and advisory.
    pub affected: Vec<Finding<'a>>,
    /// Builds audited, and builds without a manifest (`image version`).
    pub audited: usize,
    pub unaudited: Vec<String>,
    pub advisories: usize,
    /// Distinct builds (`image version`) and advisory ids among the findings.
    pub affected_builds: usize,
    pub affected_advisories: usize,
    /// With an inventory: the instances to rebuild, and rows that name no build.
    pub inventory: bool,
    pub instances: Vec<AffectedInstance>,
    pub unmatched: Vec<(String, String)>,
}
/// Reads OSV advisories from a `.json` file, or every `.json` file under a folder (sorted, so
/// the audit is the same whatever the folder's order).
pub fn read_advisories(path: &Path) -> Result<Vec<Advisory>> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    let mut files: Vec<PathBuf> = if meta.is_dir() {
        walkdir::WalkDir::new(path)
            .sort_by_file_name()
            .into_iter()
            .filter_map(std::result::Result::ok)
            .filter(|e| e.file_type().is_file())
            .map(walkdir::DirEntry::into_path)
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect()
    } else {
        vec![path.to_path_buf()]
    };
    files.sort();
    use rayon::prelude::*;
    let parsed: Vec<Result<Vec<Advisory>>> = files
        .par_iter()
        .map(|f| {
            let text = std::fs::read_to_string(f).map_err(|e| Error::io(f, e))?;
            osv::parse(&text).map_err(|why| Error::Input {
                kind: ErrorKind::Advisory,
                path: f.display().to_string(),
                message: format!("not an OSV advisory: {why}"),
                hint: Some("`--osv` takes OSV JSON files (one advisory, or an array of them), or a folder of them; doc/security.md shows how to fetch Debian's".into()),
            })
        })
        .collect();
    let mut out = Vec::new();
    for p in parsed {
        out.extend(p?);
    }
    Ok(out)
}

/// The advisories, indexed once: every `affected` entry by the package it names, with its
/// ecosystem interned, and each advisory's rank among the ids (equal ids, equal ranks).
struct Index<'a> {
    advisories: &'a [Advisory],
    /// `(advisory, affected entry, ecosystem)` by package name, in the advisories' order.
    by_name: FxHashMap<&'a str, Vec<(u32, u32, u32)>>,
    ecosystems: Vec<&'a str>,
    rank: Vec<u32>,
}

impl<'a> Index<'a> {
    fn new(advisories: &'a [Advisory]) -> Index<'a> {
        let mut by_name: FxHashMap<&str, Vec<(u32, u32, u32)>> = FxHashMap::default();
        let mut eco_ids: FxHashMap<&str, u32> = FxHashMap::default();
        let mut ecosystems = Vec::new();
        for (a, adv) in advisories.iter().enumerate() {
            for (k, aff) in adv.affected.iter().enumerate() {
                let eco = aff.package.ecosystem.as_str();
                let id = *eco_ids.entry(eco).or_insert_with(|| {
                    ecosystems.push(eco);
                    (ecosystems.len() - 1) as u32
                });
                by_name
                    .entry(aff.package.name.as_str())
                    .or_default()
                    .push((a as u32, k as u32, id));
            }
        }
        let id = |a: u32| advisories[a as usize].id.as_str();
        let mut order: Vec<u32> = (0..advisories.len() as u32).collect();
        order.sort_unstable_by(|&x, &y| id(x).cmp(id(y)));
        let mut rank = vec![0; advisories.len()];
        for (i, &a) in order.iter().enumerate() {
            let r = match i {
                0 => 0,
                _ if id(a) == id(order[i - 1]) => rank[order[i - 1] as usize],
                _ => rank[order[i - 1] as usize] + 1,
            };
            rank[a as usize] = r;
        }
        Index {
            advisories,
            by_name,
            ecosystems,
            rank,
        }
    }
}

/// The packages a build names to match: its source package at the source's version, and the
/// binary package itself when its name differs.
fn candidates(p: &Package) -> impl Iterator<Item = (&str, &str)> {
    let own = (p.name != p.source).then_some((p.name.as_str(), p.version.as_str()));
    std::iter::once((p.source.as_str(), p.source_version())).chain(own)
}

/// What an advisory entry says of one (package, version): `(advisory, ecosystem, fixed)`.
type Verdict<'a> = (u32, u32, Option<&'a str>);

/// Every distinct (package, version) the builds name, compared with the advisory entries of
/// its package once: builds share most of their packages, so comparing per build would
/// repeat the work.
struct Pairs<'a> {
    /// `(name, version)` by pair id.
    pairs: Vec<(&'a str, &'a str)>,
    /// Each pair's name ranked among the names: comparing ranks is comparing the names.
    name_rank: Vec<u32>,
    verdicts: Vec<Vec<Verdict<'a>>>,
    /// Each build's candidates, in its manifest's order: `(pair id, package index)`.
    per_build: Vec<Vec<(u32, u32)>>,
}

impl<'a> Pairs<'a> {
    fn new(builds: &[&'a Record], idx: &Index<'a>) -> Pairs<'a> {
        use rayon::prelude::*;
        let mut ids: FxHashMap<(&str, &str), u32> = FxHashMap::default();
        let mut pairs = Vec::new();
        let per_build: Vec<Vec<(u32, u32)>> = builds
            .iter()
            .map(|&r| {
                let Some(m) = &r.packages else {
                    return Vec::new();
                };
                let mut mine = Vec::with_capacity(m.packages.len() * 2);
                for (i, p) in m.packages.iter().enumerate() {
                    for pair in candidates(p) {
                        let id = *ids.entry(pair).or_insert_with(|| {
                            pairs.push(pair);
                            (pairs.len() - 1) as u32
                        });
                        mine.push((id, i as u32));
                    }
                }
                mine
            })
            .collect();
        let verdicts: Vec<Vec<Verdict>> = pairs
            .par_iter()
            .map(|&(name, version)| match idx.by_name.get(name) {
                None => Vec::new(),
                Some(entries) => entries
                    .iter()
                    .filter_map(|&(a, k, eco)| {
                        let aff = &idx.advisories[a as usize].affected[k as usize];
                        Some((a, eco, osv::affects(aff, version)?))
                    })
                    .collect(),
            })
            .collect();
        let mut order: Vec<u32> = (0..pairs.len() as u32).collect();
        order.sort_unstable_by_key(|&p| pairs[p as usize].0);
        let mut name_rank = vec![0; pairs.len()];
        for (i, &p) in order.iter().enumerate() {
            name_rank[p as usize] = match i {
                0 => 0,
                _ if pairs[p as usize].0 == pairs[order[i - 1] as usize].0 => {
                    name_rank[order[i - 1] as usize]
                }
                _ => name_rank[order[i - 1] as usize] + 1,
            };
        }
        Pairs {
            pairs,
            name_rank,
            verdicts,
            per_build,
        }
    }
}

/// Which ecosystems each distinct distribution of the builds is, asked once per pair.
struct Ecosystems<'a> {
    distros: Vec<(&'a Distro, Vec<bool>)>,
}

impl<'a> Ecosystems<'a> {
    fn new(builds: &[&'a Record], idx: &Index<'_>) -> Ecosystems<'a> {
        let mut distros: Vec<(&Distro, Vec<bool>)> = Vec::new();
        for &r in builds {
            let Some(d) = r.packages.as_ref().and_then(|m| m.distro.as_ref()) else {
                continue;
            };
            if !distros.iter().any(|(known, _)| *known == d) {
                let of = idx
                    .ecosystems
                    .iter()
                    .map(|e| osv::ecosystem_matches(e, d))
                    .collect();
                distros.push((d, of));
            }
        }
        Ecosystems { distros }
    }

    fn of(&self, d: &Distro) -> &[bool] {
        self.distros
            .iter()
            .find(|(known, _)| *known == d)
            .map_or(&[][..], |(_, of)| of.as_slice())
    }
}

/// One advisory entry's verdict on one package of a build, before the build's hits are
/// grouped by (package named, advisory).
struct Hit<'a> {
    name: u32,
    advisory: u32,
    pair: u32,
    fixed: Option<&'a str>,
    binary: &'a str,
}

/// The findings of one build, each with its advisory's rank, sorted as the findings' strings
/// sort: by package, installed version, advisory, then the rest; `None` without a manifest.
fn audit_build<'a>(
    r: &'a Record,
    candidates: &[(u32, u32)],
    idx: &Index<'a>,
    pairs: &Pairs<'a>,
    ecosystems: &Ecosystems<'_>,
) -> Option<Vec<(u32, Finding<'a>)>> {
    let m = r.packages.as_ref()?;
    let Some(distro) = &m.distro else {
        return Some(Vec::new());
    };
    let eco_ok = ecosystems.of(distro);
    let mut hits = Vec::new();
    for &(pair, p) in candidates {
        for &(advisory, eco, fixed) in &pairs.verdicts[pair as usize] {
            if eco_ok[eco as usize] {
                hits.push(Hit {
                    name: pairs.name_rank[pair as usize],
                    advisory,
                    pair,
                    fixed,
                    binary: &m.packages[p as usize].name,
                });
            }
        }
    }
    // The first hit of a (package, advisory) in the manifest's order gives the installed and
    // fixed versions; a stable sort keeps that order within each group.
    hits.sort_by_key(|h| (h.name, h.advisory));
    let version = short(&r.version);
    let mut out: Vec<(u32, u32, Finding)> = Vec::new();
    for group in hits.chunk_by(|x, y| (x.name, x.advisory) == (y.name, y.advisory)) {
        let first = &group[0];
        let mut binaries: Vec<&str> = group.iter().map(|h| h.binary).collect();
        binaries.sort_unstable();
        binaries.dedup();
        let (package, installed) = pairs.pairs[first.pair as usize];
        let adv = &idx.advisories[first.advisory as usize];
        out.push((
            first.name,
            idx.rank[first.advisory as usize],
            Finding {
                image: &r.name,
                version,
                package,
                installed,
                advisory: &adv.id,
                fixed: first.fixed,
                aliases: &adv.aliases,
                binaries,
            },
        ));
    }
    out.sort_unstable_by(|(n1, a1, f1), (n2, a2, f2)| {
        n1.cmp(n2)
            .then_with(|| f1.installed.cmp(f2.installed))
            .then(a1.cmp(a2))
            .then_with(|| rest(f1).cmp(&rest(f2)))
    });
    Some(out.into_iter().map(|(_, a, f)| (a, f)).collect())
}

/// What orders two findings of one build, package and advisory id (duplicate ids).
fn rest<'f>(f: &'f Finding<'_>) -> (Option<&'f str>, &'f [String], &'f [&'f str]) {
    (f.fixed, f.aliases, &f.binaries)
}

/// Audits every record against `advisories`; with `instances`, lists those running an
/// affected build.
pub fn make<'a>(
    records: &'a BTreeMap<String, Vec<Record>>,
    advisories: &'a [Advisory],
    instances: Option<&[Instance]>,
) -> Audit<'a> {
    use rayon::prelude::*;
    let idx = Index::new(advisories);
    let all: Vec<&Record> = records.values().flatten().collect();
    let pairs = Pairs::new(&all, &idx);
    let ecosystems = Ecosystems::new(&all, &idx);
    let mut per_build: Vec<Option<Vec<(u32, Finding)>>> = all
        .par_iter()
        .zip(&pairs.per_build)
        .map(|(&r, cands)| audit_build(r, cands, &idx, &pairs, &ecosystems))
        .collect();
    let mut audit = Audit {
        advisories: advisories.len(),
        inventory: instances.is_some(),
        ..Default::default()
    };
    // By image, then version field by field (`1.0.9` before `1.0.10`).
    let mut order: Vec<usize> = (0..all.len()).collect();
    order.sort_by_cached_key(|&i| (all[i].name.as_str(), version_fields(&all[i].version)));
    audit
        .affected
        .reserve(per_build.iter().flatten().map(Vec::len).sum());
    let mut builds: FxHashSet<(&str, &str)> = FxHashSet::default();
    let mut seen = vec![false; advisories.len()];
    for i in order {
        let r = all[i];
        match per_build[i].take() {
            Some(found) => {
                audit.audited += 1;
                if !found.is_empty() {
                    builds.insert((r.name.as_str(), short(&r.version)));
                }
                for (rank, f) in found {
                    seen[rank as usize] = true;
                    audit.affected.push(f);
                }
            }
            None => audit
                .unaudited
                .push(format!("{} {}", r.name, short(&r.version))),
        }
    }
    audit.affected_builds = builds.len();
    audit.affected_advisories = seen.iter().filter(|s| **s).count();
    audit.unaudited.sort();
    if let Some(instances) = instances {
        instances_to_rebuild(&mut audit, records, instances);
    }
    audit
}

fn instances_to_rebuild(
    audit: &mut Audit<'_>,
    records: &BTreeMap<String, Vec<Record>>,
    instances: &[Instance],
) {
    let mut by_build: FxHashMap<(&str, &str), BTreeSet<&str>> = FxHashMap::default();
    for f in &audit.affected {
        by_build
            .entry((f.image, f.version))
            .or_default()
            .insert(f.advisory);
    }
    let by_artifact: BTreeMap<&str, &Record> = records
        .values()
        .flatten()
        .map(|r| (r.artifact.id.as_str(), r))
        .collect();
    let find = |image: &str, version: &str| {
        records.get(image).and_then(|rs| {
            rs.iter()
                .find(|r| crate::version::names(&r.version, version))
        })
    };
    let mut listed = Vec::new();
    let mut unmatched = Vec::new();
    for inst in instances {
        match report::identify(inst, &by_artifact, &find) {
            Ok((image, version, _)) => {
                if let Some(advs) = by_build.get(&(image.as_str(), version.as_str())) {
                    listed.push(AffectedInstance {
                        instance: inst.instance.clone(),
                        image: image.clone(),
                        version: version.clone(),
                        advisories: advs.iter().map(|s| (*s).to_string()).collect(),
                    });
                }
            }
            Err(why) => unmatched.push((format!("{} (`{}`)", inst.at, inst.instance), why)),
        }
    }
    audit.instances = listed;
    audit.unmatched = unmatched;
}

#[derive(Serialize)]
struct Json<'a> {
    affected: &'a [Finding<'a>],
    instances: report::Group,
    audited: usize,
    not_audited: &'a [String],
}

/// `{"affected": [...], "instances": {"count", "instances": [...]}, "audited", "not_audited"}`.
pub fn json(a: &Audit<'_>) -> String {
    let instances = report::Group {
        count: a.instances.len(),
        instances: a.instances.iter().map(|i| i.instance.clone()).collect(),
    };
    crate::render::json(&Json {
        affected: &a.affected,
        instances,
        audited: a.audited,
        not_audited: &a.unaudited,
    })
}

fn fixed<'f>(f: &Finding<'f>) -> &'f str {
    f.fixed.unwrap_or("(no fix yet)")
}

fn summary(a: &Audit<'_>) -> String {
    let mut s = format!(
        "{} of {} audited {} affected by {} of {} advisories",
        a.affected_builds,
        a.audited,
        if a.audited == 1 { "build" } else { "builds" },
        a.affected_advisories,
        a.advisories
    );
    if !a.unaudited.is_empty() {
        let _ = write!(
            s,
            "; {} without a package manifest, not audited: {}",
            a.unaudited.len(),
            a.unaudited.join(", ")
        );
    }
    s
}

/// A finding's cells in the text table.
fn cells<'f>(f: &Finding<'f>) -> [&'f str; 6] {
    [
        f.image,
        f.version,
        f.package,
        f.installed,
        f.advisory,
        fixed(f),
    ]
}

/// `cell` and the spaces that pad it to `width` characters, as `{cell:width$}` would.
fn pad(line: &mut String, cell: &str, width: usize) {
    const SPACES: &str = "                                                                ";
    line.push_str(cell);
    let mut n = width.saturating_sub(cell.chars().count());
    while n > 0 {
        let k = n.min(SPACES.len());
        line.push_str(&SPACES[..k]);
        n -= k;
    }
}

pub fn text(a: &Audit<'_>) -> String {
    let mut out = String::new();
    const HEAD: [&str; 6] = [
        "IMAGE",
        "VERSION",
        "PACKAGE",
        "INSTALLED",
        "ADVISORY",
        "FIXED",
    ];
    if a.affected.is_empty() {
        out.push_str("no recorded build is affected\n");
    } else {
        let mut w = HEAD.map(str::len);
        for f in &a.affected {
            for (w, c) in w.iter_mut().zip(cells(f)) {
                *w = (*w).max(c.len());
            }
        }
        out.reserve((a.affected.len() + 1) * (w.iter().sum::<usize>() + 12));
        let mut line = String::new();
        let rows = std::iter::once(HEAD).chain(a.affected.iter().map(cells));
        for r in rows {
            line.clear();
            for (c, w) in r.iter().zip(w) {
                pad(&mut line, c, w);
                line.push_str("  ");
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
    }
    let _ = writeln!(out, "\n{}", summary(a));
    if a.inventory {
        let _ = writeln!(out, "\n{} to rebuild", report::instances(a.instances.len()));
        for i in &a.instances {
            let _ = writeln!(
                out,
                "  {}  {} {}  {}",
                i.instance,
                i.image,
                i.version,
                i.advisories.join(", ")
            );
        }
    }
    out
}

pub fn markdown(a: &Audit<'_>) -> String {
    let mut out = String::from("## Audit\n\n");
    if a.affected.is_empty() {
        out.push_str("No recorded build is affected.\n");
    } else {
        out.push_str("| image | version | package | installed | advisory | fixed |\n");
        out.push_str("|---|---|---|---|---|---|\n");
        for f in &a.affected {
            for (before, cell) in [
                ("| `", f.image),
                ("` | ", f.version),
                (" | `", f.package),
                ("` | ", f.installed),
                (" | ", f.advisory),
                (" | ", fixed(f)),
            ] {
                out.push_str(before);
                out.push_str(cell);
            }
            out.push_str(" |\n");
        }
    }
    let _ = writeln!(out, "\n{}.", summary(a));
    if a.inventory {
        let _ = writeln!(
            out,
            "\n### {} to rebuild\n",
            report::instances(a.instances.len())
        );
        for i in &a.instances {
            let _ = writeln!(
                out,
                "- `{}`: `{}` {} ({})",
                i.instance,
                i.image,
                i.version,
                i.advisories.join(", ")
            );
        }
    }
    out
}

#[cfg(test)]
mod tests;
