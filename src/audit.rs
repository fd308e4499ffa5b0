//! `layer audit --osv PATH` (SPEC §9): every recorded build's installed packages against OSV
//! advisories, and with `--inventory` the running instances that carry an affected build —
//! the instance report driven by what is actually installed.
//!
//! A build is affected by an advisory when its manifest's distribution is the advisory's
//! ecosystem and a package's source package (or its own name) is named with a version the
//! advisory holds ([`crate::packages::osv::affects`], in dpkg's order for Debian). One row per
//! build, advisory and advisory package: the binary packages built from it are listed beside.
//! Builds without a manifest (built before layer kept them, or by another backend) are counted
//! as not audited, never as clean.
//!
//! Making the audit is pure: records, advisories and instances come in as values. Reading the
//! advisory files ([`read_advisories`]) is the one I/O.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{Error, ErrorKind, Result};
use crate::packages::osv::{self, Advisory};
use crate::packages::Package;
use crate::record::Record;
use crate::report::{self, Instance};
use crate::version::{short, version_fields};

/// One affected build: which package version, which advisory, which version fixes it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Finding {
    pub image: String,
    pub version: String,
    /// The package the advisory names (for Debian, the source package).
    pub package: String,
    pub installed: String,
    pub advisory: String,
    /// `null` when the advisory knows no fix.
    pub fixed: Option<String>,
    /// The advisory's aliases (CVE ids).
    pub aliases: Vec<String>,
    /// The installed packages built from `package`.
    pub binaries: Vec<String>,
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
pub struct Audit {
    pub affected: Vec<Finding>,
    /// Builds audited, and builds without a manifest (`image version`).
    pub audited: usize,
    pub unaudited: Vec<String>,
    pub advisories: usize,
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

/// Advisory entries by package name: `(advisory index, affected index)`.
type Index<'a> = HashMap<&'a str, Vec<(usize, usize)>>;

fn index(advisories: &[Advisory]) -> Index<'_> {
    let mut idx: Index = HashMap::new();
    for (a, adv) in advisories.iter().enumerate() {
        for (k, aff) in adv.affected.iter().enumerate() {
            idx.entry(aff.package.name.as_str())
                .or_default()
                .push((a, k));
        }
    }
    idx
}

/// What the advisory entries of one package name say of one installed version: `(advisory
/// index, affected index, fixed)` for each entry that holds it, in the index's order.
type Verdicts = Vec<(usize, usize, Option<String>)>;

/// The packages a build names to match: its source package at the source's version, and the
/// binary package itself when its name differs.
fn candidates(p: &Package) -> impl Iterator<Item = (&str, &str)> {
    let own = (p.name != p.source).then_some((p.name.as_str(), p.version.as_str()));
    std::iter::once((p.source.as_str(), p.source_version())).chain(own)
}

/// Every advisory entry compared with every distinct (package, version) the builds carry, once:
/// builds share most of their packages, so comparing per build would repeat the work.
fn verdicts<'r>(
    builds: &[&'r Record],
    advisories: &[Advisory],
    idx: &Index,
) -> HashMap<(&'r str, &'r str), Verdicts> {
    use rayon::prelude::*;
    let mut pairs: HashSet<(&str, &str)> = HashSet::new();
    for r in builds {
        let Some(m) = &r.packages else { continue };
        for p in &m.packages {
            pairs.extend(candidates(p).filter(|(name, _)| idx.contains_key(name)));
        }
    }
    let pairs: Vec<(&str, &str)> = pairs.into_iter().collect();
    pairs
        .into_par_iter()
        .map(|(name, version)| {
            let found = idx[name]
                .iter()
                .filter_map(|&(a, k)| {
                    let fixed = osv::affects(&advisories[a].affected[k], version)?;
                    Some((a, k, fixed))
                })
                .collect();
            ((name, version), found)
        })
        .collect()
}

/// The findings of one build.
fn audit_build(
    r: &Record,
    advisories: &[Advisory],
    verdicts: &HashMap<(&str, &str), Verdicts>,
) -> Option<Vec<Finding>> {
    let m = r.packages.as_ref()?;
    let Some(distro) = &m.distro else {
        return Some(Vec::new());
    };
    // (advisory, package named) -> (installed version, fixed, binaries)
    type Hit<'a> = (&'a str, &'a Option<String>, BTreeSet<&'a str>);
    let mut hits: BTreeMap<(usize, &str), Hit> = BTreeMap::new();
    for p in &m.packages {
        for (name, version) in candidates(p) {
            let Some(found) = verdicts.get(&(name, version)) else {
                continue;
            };
            for (a, k, fixed) in found {
                let aff = &advisories[*a].affected[*k];
                if !osv::ecosystem_matches(&aff.package.ecosystem, distro) {
                    continue;
                }
                let e = hits
                    .entry((*a, name))
                    .or_insert_with(|| (version, fixed, BTreeSet::new()));
                e.2.insert(p.name.as_str());
            }
        }
    }
    let version = short(&r.version);
    Some(
        hits.into_iter()
            .map(|((a, name), (installed, fixed, bins))| Finding {
                image: r.name.clone(),
                version: version.to_string(),
                package: name.to_string(),
                installed: installed.to_string(),
                advisory: advisories[a].id.clone(),
                fixed: fixed.clone(),
                aliases: advisories[a].aliases.clone(),
                binaries: bins.into_iter().map(str::to_string).collect(),
            })
            .collect(),
    )
}

/// Audits every record against `advisories`; with `instances`, lists those running an
/// affected build.
pub fn make(
    records: &BTreeMap<String, Vec<Record>>,
    advisories: &[Advisory],
    instances: Option<&[Instance]>,
) -> Audit {
    use rayon::prelude::*;
    let idx = index(advisories);
    let all: Vec<&Record> = records.values().flatten().collect();
    let verdicts = verdicts(&all, advisories, &idx);
    let per_build: Vec<(&Record, Option<Vec<Finding>>)> = all
        .par_iter()
        .map(|r| (*r, audit_build(r, advisories, &verdicts)))
        .collect();
    let mut audit = Audit {
        advisories: advisories.len(),
        inventory: instances.is_some(),
        ..Default::default()
    };
    // By image, then version field by field (`1.0.9` before `1.0.10`), then package.
    let mut per_build = per_build;
    per_build.sort_by_cached_key(|(r, _)| (r.name.clone(), version_fields(&r.version)));
    for (r, found) in per_build {
        match found {
            Some(mut f) => {
                audit.audited += 1;
                f.sort();
                audit.affected.extend(f);
            }
            None => audit
                .unaudited
                .push(format!("{} {}", r.name, short(&r.version))),
        }
    }
    audit.unaudited.sort();
    if let Some(instances) = instances {
        instances_to_rebuild(&mut audit, records, instances);
    }
    audit
}

fn instances_to_rebuild(
    audit: &mut Audit,
    records: &BTreeMap<String, Vec<Record>>,
    instances: &[Instance],
) {
    let mut by_build: BTreeMap<(&str, &str), BTreeSet<&str>> = BTreeMap::new();
    for f in &audit.affected {
        by_build
            .entry((f.image.as_str(), f.version.as_str()))
            .or_default()
            .insert(f.advisory.as_str());
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
    affected: &'a [Finding],
    instances: report::Group,
    audited: usize,
    not_audited: &'a [String],
}

/// `{"affected": [...], "instances": {"count", "instances": [...]}, "audited", "not_audited"}`.
pub fn json(a: &Audit) -> String {
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

fn fixed(f: &Finding) -> &str {
    f.fixed.as_deref().unwrap_or("(no fix yet)")
}

fn summary(a: &Audit) -> String {
    let builds: BTreeSet<(&str, &str)> = a
        .affected
        .iter()
        .map(|f| (f.image.as_str(), f.version.as_str()))
        .collect();
    let mut s = format!(
        "{} of {} audited {} affected by {} of {} advisories",
        builds.len(),
        a.audited,
        if a.audited == 1 { "build" } else { "builds" },
        a.affected
            .iter()
            .map(|f| &f.advisory)
            .collect::<BTreeSet<_>>()
            .len(),
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

pub fn text(a: &Audit) -> String {
    let mut out = String::new();
    let mut rows: Vec<[&str; 6]> = Vec::with_capacity(a.affected.len() + 1);
    rows.push([
        "IMAGE",
        "VERSION",
        "PACKAGE",
        "INSTALLED",
        "ADVISORY",
        "FIXED",
    ]);
    rows.extend(a.affected.iter().map(|f| {
        [
            f.image.as_str(),
            f.version.as_str(),
            f.package.as_str(),
            f.installed.as_str(),
            f.advisory.as_str(),
            fixed(f),
        ]
    }));
    if a.affected.is_empty() {
        let _ = writeln!(out, "no recorded build is affected");
    } else {
        let mut w = [0usize; 6];
        for r in &rows {
            for (w, c) in w.iter_mut().zip(r) {
                *w = (*w).max(c.len());
            }
        }
        out.reserve(rows.len() * (w.iter().sum::<usize>() + 12));
        let mut line = String::new();
        for r in &rows {
            line.clear();
            for (c, w) in r.iter().zip(w) {
                let _ = write!(line, "{c:w$}  ");
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

pub fn markdown(a: &Audit) -> String {
    let mut out = String::from("## Audit\n\n");
    if a.affected.is_empty() {
        out.push_str("No recorded build is affected.\n");
    } else {
        out.push_str("| image | version | package | installed | advisory | fixed |\n");
        out.push_str("|---|---|---|---|---|---|\n");
        for f in &a.affected {
            let _ = writeln!(
                out,
                "| `{}` | {} | `{}` | {} | {} | {} |",
                f.image,
                f.version,
                f.package,
                f.installed,
                f.advisory,
                fixed(f)
            );
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
