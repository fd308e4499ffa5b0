//! OSV advisories (<https://ossf.github.io/osv-schema/>), the format distributions publish
//! their security advisories in, and which installed versions they affect. Pure: the caller
//! reads the files.
//!
//! A package is affected when the advisory names its ecosystem (`Debian:12` for an image whose
//! os-release says `debian` `12`; `Debian` alone for every release; see [`ecosystem_matches`]
//! for the rpm distributions) and its source package (or, failing that, its own name), and
//! either lists its version under `versions` or an `ECOSYSTEM` range holds it. Ranges are read
//! in the ecosystem's version order: dpkg's for Debian and Ubuntu, rpm's for Red Hat, Rocky
//! Linux, `AlmaLinux`, openSUSE and SUSE. Ecosystems whose order layer does not know (Alpine's,
//! say) match on `versions` only, and `SEMVER` and `GIT` ranges are not read.

use std::cmp::Ordering;

use serde::Deserialize;

use super::debversion;
use super::manifest::Distro;
use super::rpmversion;

/// One advisory, as much of it as an audit reads.
#[derive(Debug, Clone, Deserialize)]
pub struct Advisory {
    pub id: String,
    #[serde(default)]
    pub summary: Option<String>,
    #[serde(default)]
    pub aliases: Vec<String>,
    #[serde(default)]
    pub affected: Vec<Affected>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Affected {
    pub package: OsvPackage,
    #[serde(default)]
    pub ranges: Vec<Range>,
    #[serde(default)]
    pub versions: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct OsvPackage {
    pub ecosystem: String,
    pub name: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Range {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub events: Vec<Event>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Event {
    pub introduced: Option<String>,
    pub fixed: Option<String>,
    pub last_affected: Option<String>,
    pub limit: Option<String>,
}

/// Parses one OSV file: one advisory, or an array of them (as some exports hold).
pub fn parse(text: &str) -> Result<Vec<Advisory>, String> {
    if text.trim_start().starts_with('[') {
        serde_json::from_str(text).map_err(|e| e.to_string())
    } else {
        serde_json::from_str(text)
            .map(|a| vec![a])
            .map_err(|e| e.to_string())
    }
}

/// The version order of an ecosystem, where layer knows it.
pub fn order_of(ecosystem: &str) -> Option<fn(&str, &str) -> Ordering> {
    match base(ecosystem).as_str() {
        "debian" | "ubuntu" => Some(debversion::compare),
        "red hat" | "rocky linux" | "almalinux" | "opensuse" | "suse" => Some(rpmversion::compare),
        _ => None,
    }
}

/// `Debian:12` -> `debian`.
pub fn base(ecosystem: &str) -> String {
    ecosystem
        .split(':')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase()
}

/// The os-release `ID` an ecosystem names and the release, if it names one:
/// `Debian:12` -> (`debian`, `12`), `Alpine:v3.18` -> (`alpine`, `3.18`),
/// `Rocky Linux:9` -> (`rocky`, `9`), `Red Hat:enterprise_linux:9::appstream` -> (`rhel`, `9`),
/// `openSUSE:Leap 15.5` -> (`opensuse-leap`, `15.5`), `openSUSE:Tumbleweed` ->
/// (`opensuse-tumbleweed`, none).
fn ecosystem_distro(ecosystem: &str) -> (String, Option<&str>) {
    let mut parts = ecosystem.split(':');
    let base = parts.next().unwrap_or_default().to_ascii_lowercase();
    fn release(r: Option<&str>) -> Option<&str> {
        r.filter(|r| !r.is_empty())
    }
    match base.as_str() {
        "red hat" => ("rhel".into(), release(parts.nth(1))),
        "rocky linux" => ("rocky".into(), release(parts.next())),
        "opensuse" => {
            let Some(rest) = parts.next() else {
                return (base, None);
            };
            let mut words: Vec<&str> = rest.split_whitespace().collect();
            let version = words
                .last()
                .filter(|w| w.starts_with(|c: char| c.is_ascii_digit()))
                .copied();
            if version.is_some() {
                words.pop();
            }
            let mut id = base;
            for w in words {
                id.push('-');
                id.push_str(&w.to_ascii_lowercase());
            }
            (id, version)
        }
        _ => (
            base,
            release(parts.next()).map(|r| r.trim_start_matches('v')),
        ),
    }
}

/// Whether an advisory's ecosystem is the image's distribution: the same name, and the same
/// release when the ecosystem names one (`Debian:12`, `Alpine:v3.18` for `3.18.4`, `Rocky
/// Linux:9` for `9.3`).
pub fn ecosystem_matches(ecosystem: &str, distro: &Distro) -> bool {
    let (id, release) = ecosystem_distro(ecosystem);
    if id != distro.id.to_ascii_lowercase() {
        return false;
    }
    let Some(release) = release else {
        return true;
    };
    match &distro.version {
        Some(v) => {
            v == release
                || v.strip_prefix(release)
                    .is_some_and(|rest| rest.starts_with('.'))
        }
        None => false,
    }
}

/// What an advisory entry says of an installed `version`: `None` when not affected, else the
/// version that fixes it (`Some(None)` when no fix is known).
pub fn affects<'a>(affected: &'a Affected, version: &str) -> Option<Option<&'a str>> {
    let order = order_of(&affected.package.ecosystem);
    let same = |a: &str, b: &str| match order {
        Some(cmp) => cmp(a, b) == Ordering::Equal,
        None => a == b,
    };
    let listed = affected.versions.iter().any(|v| same(v, version));
    let mut fix: Option<&str> = None;
    let mut in_range = false;
    if let Some(cmp) = order {
        for r in affected.ranges.iter().filter(|r| r.kind == "ECOSYSTEM") {
            if range_holds(r, version, cmp) {
                in_range = true;
                let next = r
                    .events
                    .iter()
                    .filter_map(|e| e.fixed.as_deref())
                    .filter(|f| cmp(f, version) == Ordering::Greater)
                    .min_by(|a, b| cmp(a, b));
                if let Some(f) = next {
                    if fix.is_none_or(|old| cmp(f, old) == Ordering::Less) {
                        fix = Some(f);
                    }
                }
            }
        }
    }
    (listed || in_range).then_some(fix)
}

/// OSV's evaluation of one range: events sorted by version, affected from an `introduced` at
/// or below the version until a `fixed` at or below it, or a `last_affected` below it.
fn range_holds(r: &Range, v: &str, cmp: fn(&str, &str) -> Ordering) -> bool {
    fn key(e: &Event) -> Option<&str> {
        e.introduced
            .as_deref()
            .or(e.fixed.as_deref())
            .or(e.last_affected.as_deref())
    }
    let mut events: Vec<(&str, &Event)> =
        r.events.iter().filter_map(|e| Some((key(e)?, e))).collect();
    events.sort_by(|(x, _), (y, _)| match (*x == "0", *y == "0") {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
        _ => cmp(x, y),
    });
    let mut affected = false;
    for (_, e) in events {
        if let Some(i) = &e.introduced {
            if i == "0" || cmp(v, i) != Ordering::Less {
                affected = true;
            }
        } else if let Some(f) = &e.fixed {
            if cmp(v, f) != Ordering::Less {
                affected = false;
            }
        } else if let Some(l) = &e.last_affected {
            if cmp(v, l) == Ordering::Greater {
                affected = false;
            }
        }
    }
    affected
        && r.events
            .iter()
            .filter_map(|e| e.limit.as_deref())
            .fold(None, |any, l| {
                Some(any.unwrap_or(false) || cmp(v, l) == Ordering::Less)
            })
            .unwrap_or(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn advisory(events: &str) -> Affected {
        let text = format!(
            r#"{{"id":"DSA-1","affected":[{{"package":{{"ecosystem":"Debian:12","name":"openssl"}},
            "ranges":[{{"type":"ECOSYSTEM","events":{events}}}]}}]}}"#
        );
        parse(&text).unwrap().remove(0).affected.remove(0)
    }

    #[test]
    fn ranges_follow_dpkg_order() {
        let a = advisory(r#"[{"introduced":"0"},{"fixed":"3.0.15-1~deb12u1"}]"#);
        assert_eq!(
            affects(&a, "3.0.14-1~deb12u2"),
            Some(Some("3.0.15-1~deb12u1"))
        );
        assert_eq!(affects(&a, "3.0.15-1~deb12u1"), None);
        // `~` sorts before the end: 3.0.15-1~deb12u1 < 3.0.15-1.
        assert_eq!(affects(&a, "3.0.15-1"), None);
        assert!(affects(&a, "1:0.1").is_none(), "an epoch sorts above");
    }

    #[test]
    fn last_affected_and_reintroduced() {
        let a = advisory(r#"[{"introduced":"2"},{"last_affected":"3"},{"introduced":"5"}]"#);
        assert_eq!(affects(&a, "1"), None);
        assert_eq!(affects(&a, "2.5"), Some(None));
        assert_eq!(affects(&a, "3"), Some(None));
        assert_eq!(affects(&a, "4"), None);
        assert_eq!(affects(&a, "6"), Some(None));
    }

    #[test]
    fn ecosystems() {
        let d = Distro {
            id: "debian".into(),
            version: Some("12".into()),
        };
        assert!(ecosystem_matches("Debian:12", &d));
        assert!(ecosystem_matches("Debian", &d));
        assert!(!ecosystem_matches("Debian:11", &d));
        assert!(!ecosystem_matches("Alpine:v3.18", &d));
        let a = Distro {
            id: "alpine".into(),
            version: Some("3.18.4".into()),
        };
        assert!(ecosystem_matches("Alpine:v3.18", &a));
    }

    #[test]
    fn rpm_ecosystems_name_their_distributions_and_use_rpm_order() {
        let d = |id: &str, v: &str| Distro {
            id: id.into(),
            version: Some(v.into()),
        };
        assert!(ecosystem_matches("Rocky Linux:9", &d("rocky", "9.3")));
        assert!(!ecosystem_matches("Rocky Linux:8", &d("rocky", "9.3")));
        assert!(!ecosystem_matches("Rocky Linux:9", &d("rocky", "90")));
        assert!(ecosystem_matches("AlmaLinux:9", &d("almalinux", "9.4")));
        assert!(ecosystem_matches(
            "Red Hat:enterprise_linux:9::appstream",
            &d("rhel", "9.3")
        ));
        assert!(ecosystem_matches(
            "Red Hat:rhel_aus:8.4::appstream",
            &d("rhel", "8.4")
        ));
        assert!(!ecosystem_matches(
            "Red Hat:enterprise_linux:8::baseos",
            &d("rhel", "9.3")
        ));
        assert!(ecosystem_matches(
            "openSUSE:Leap 15.5",
            &d("opensuse-leap", "15.5")
        ));
        assert!(ecosystem_matches(
            "openSUSE:Tumbleweed",
            &d("opensuse-tumbleweed", "20240101")
        ));
        assert!(!ecosystem_matches(
            "openSUSE:Leap 15.5",
            &d("opensuse-leap", "15.4")
        ));
        assert!(!ecosystem_matches("Rocky Linux:9", &d("almalinux", "9.3")));

        // rpm's order, not dpkg's: `^` sorts after the end but before `.1` (dpkg puts `^`
        // after `.`), and the epoch decides first.
        let text = r#"{"id":"RLSA-1","affected":[{"package":{"ecosystem":"Rocky Linux:9","name":"demo"},
            "ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"1:1.0.1-1"}]}]}]}"#;
        let a = parse(text).unwrap().remove(0).affected.remove(0);
        assert_eq!(affects(&a, "1:1.0^git1-1"), Some(Some("1:1.0.1-1")));
        assert_eq!(
            debversion::compare("1:1.0^git1-1", "1:1.0.1-1"),
            Ordering::Greater
        );
        assert_eq!(affects(&a, "1:1.0.1-1.el9"), None);
        assert_eq!(
            affects(&a, "1.5-1"),
            Some(Some("1:1.0.1-1")),
            "the epoch decides"
        );
    }
}
