//! `audit::make` against the plain search it replaces: every package of every build against
//! every advisory entry, rows as strings sorted as strings, on a couple of hundred generated
//! estates (duplicate advisory ids, binNMUs, several entries per advisory, other releases).

use super::*;
use crate::packages::{Manager, Manifest};

struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
    fn pick<'s>(&mut self, of: &[&'s str]) -> &'s str {
        of[self.below(of.len() as u64) as usize]
    }
}

type Row = (
    String,
    String,
    String,
    String,
    String,
    Option<String>,
    Vec<String>,
    Vec<String>,
);

/// The audit done the plain way: every package of every build against every advisory
/// entry, rows as strings, sorted as strings.
fn plain(records: &BTreeMap<String, Vec<Record>>, advisories: &[Advisory]) -> Vec<Row> {
    let mut builds: Vec<&Record> = records.values().flatten().collect();
    builds.sort_by_cached_key(|r| (r.name.clone(), version_fields(&r.version)));
    let mut out = Vec::new();
    for r in builds {
        let Some(m) = &r.packages else { continue };
        let Some(distro) = &m.distro else { continue };
        type Hit<'a> = (&'a str, Option<&'a str>, BTreeSet<String>);
        let mut hits: BTreeMap<(usize, &str), Hit> = BTreeMap::new();
        for p in &m.packages {
            for (name, version) in candidates(p) {
                for (a, adv) in advisories.iter().enumerate() {
                    for aff in &adv.affected {
                        if aff.package.name != name
                            || !osv::ecosystem_matches(&aff.package.ecosystem, distro)
                        {
                            continue;
                        }
                        let Some(fixed) = osv::affects(aff, version) else {
                            continue;
                        };
                        hits.entry((a, name))
                            .or_insert((version, fixed, BTreeSet::new()))
                            .2
                            .insert(p.name.clone());
                    }
                }
            }
        }
        let mut rows: Vec<Row> = hits
            .into_iter()
            .map(|((a, name), (installed, fixed, bins))| {
                (
                    r.name.clone(),
                    short(&r.version).to_string(),
                    name.to_string(),
                    installed.to_string(),
                    advisories[a].id.clone(),
                    fixed.map(str::to_string),
                    advisories[a].aliases.clone(),
                    bins.into_iter().collect(),
                )
            })
            .collect();
        rows.sort();
        out.extend(rows);
    }
    out
}

fn estate(rng: &mut Rng) -> (BTreeMap<String, Vec<Record>>, Vec<Advisory>) {
    let versions = ["1.0-1", "1.0-2", "1.1-1", "1:0.9-1", "1.0-1~b1"];
    let sources = ["a", "b", "c", "liba"];
    let mut records: BTreeMap<String, Vec<Record>> = BTreeMap::new();
    for image in ["app", "base"] {
        for n in [10, 9, 2] {
            let mut r = crate::record::tests::sample();
            r.name = image.into();
            r.version = format!("1.0.{n}-20261120_1000");
            let mut packages: Vec<Package> = (0..6)
                .map(|i| {
                    let source = rng.pick(&sources).to_string();
                    let version = rng.pick(&versions).to_string();
                    Package {
                        name: if i % 3 == 0 {
                            source.clone()
                        } else {
                            format!("lib{source}{i}")
                        },
                        source_version: (rng.below(4) == 0)
                            .then(|| rng.pick(&versions).to_string()),
                        version,
                        arch: "amd64".into(),
                        source,
                    }
                })
                .collect();
            packages.sort();
            let distro = match rng.below(5) {
                0 => None,
                1 => Some(Distro {
                    id: "debian".into(),
                    version: Some("11".into()),
                }),
                _ => Some(Distro {
                    id: "debian".into(),
                    version: Some("12".into()),
                }),
            };
            r.packages = (rng.below(6) != 0).then_some(Manifest {
                manager: Manager::Dpkg,
                distro,
                packages,
            });
            records.entry(image.into()).or_default().push(r);
        }
    }
    let ecosystems = ["Debian:12", "Debian", "Debian:11", "Rocky Linux:9"];
    let advisories = (0..12)
        .map(|i| {
            let affected: Vec<String> = (0..1 + rng.below(3))
                .map(|_| {
                    format!(
                        r#"{{"package":{{"ecosystem":"{}","name":"{}"}},"versions":["{}"],"ranges":[{{"type":"ECOSYSTEM","events":[{{"introduced":"0"}},{{"fixed":"{}"}}]}}]}}"#,
                        rng.pick(&ecosystems),
                        rng.pick(&["a", "b", "c", "liba", "liba1", "libb2"]),
                        rng.pick(&versions),
                        rng.pick(&versions)
                    )
                })
                .collect();
            let text = format!(
                r#"{{"id":"DSA-{}","aliases":["CVE-{i}"],"affected":[{}]}}"#,
                rng.below(6),
                affected.join(",")
            );
            osv::parse(&text).unwrap().remove(0)
        })
        .collect();
    (records, advisories)
}

#[test]
fn findings_are_the_plain_searchs_in_the_same_order() {
    let mut found = 0;
    for seed in 1..200u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let (records, advisories) = estate(&mut rng);
        let audit = make(&records, &advisories, None);
        let rows: Vec<Row> = audit
            .affected
            .iter()
            .map(|f| {
                (
                    f.image.to_string(),
                    f.version.to_string(),
                    f.package.to_string(),
                    f.installed.to_string(),
                    f.advisory.to_string(),
                    f.fixed.map(str::to_string),
                    f.aliases.to_vec(),
                    f.binaries.iter().map(|s| (*s).to_string()).collect(),
                )
            })
            .collect();
        let want = plain(&records, &advisories);
        assert_eq!(rows, want, "seed {seed}");
        let builds: BTreeSet<(&str, &str)> =
            want.iter().map(|r| (r.0.as_str(), r.1.as_str())).collect();
        let ids: BTreeSet<&str> = want.iter().map(|r| r.4.as_str()).collect();
        assert_eq!(audit.affected_builds, builds.len(), "seed {seed}");
        assert_eq!(audit.affected_advisories, ids.len(), "seed {seed}");
        found += rows.len();
    }
    assert!(found > 500, "the estates hit too little: {found} findings");
}
