//! A build's package manifest: the packages its package database says are installed, read
//! from the image's own files (dpkg's `/var/lib/dpkg/status`, apk's `/lib/apk/db/installed`,
//! rpm's `rpmdb.sqlite` through [`super::rpm`]) and `/etc/os-release`. Pure: the backend reads the files and hands the text here.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The files a manifest is read from, relative to the image root.
pub const DPKG_STATUS: &str = "var/lib/dpkg/status";
pub const APK_INSTALLED: &str = "lib/apk/db/installed";
pub const OS_RELEASE: [&str; 2] = ["etc/os-release", "usr/lib/os-release"];

/// Which package database a manifest was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Manager {
    Dpkg,
    Apk,
    Rpm,
}

impl Manager {
    /// The package URL type of its packages (`pkg:deb/...`).
    pub fn purl_type(self) -> &'static str {
        match self {
            Manager::Dpkg => "deb",
            Manager::Apk => "apk",
            Manager::Rpm => "rpm",
        }
    }
}

/// The distribution an image says it is (`/etc/os-release`): `ID`, and `VERSION_ID` or else
/// `VERSION_CODENAME`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Distro {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

impl Distro {
    /// The `distro` qualifier of package URLs: `debian-12`.
    pub fn qualifier(&self) -> String {
        match &self.version {
            Some(v) => format!("{}-{v}", self.id),
            None => self.id.clone(),
        }
    }
}

/// One installed package.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Package {
    pub name: String,
    pub version: String,
    pub arch: String,
    /// The source package it was built from (dpkg's `Source`, apk's origin); the name itself
    /// when the database names none.
    pub source: String,
    /// The source package's version where it differs from the package's (binNMUs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_version: Option<String>,
}

impl Package {
    /// The version of its source package: what distributions' advisories name.
    pub fn source_version(&self) -> &str {
        self.source_version.as_deref().unwrap_or(&self.version)
    }
}

/// What a build's package database holds, sorted by name and architecture.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub manager: Manager,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distro: Option<Distro>,
    pub packages: Vec<Package>,
}

impl Manifest {
    /// The package URL of one of its packages:
    /// `pkg:deb/debian/openssl@3.0.15-1~deb12u1?arch=amd64&distro=debian-12`. An rpm's epoch
    /// is the `epoch` qualifier, as the purl spec's `rpm` type says
    /// (`pkg:rpm/rhel/openssl-libs@3.0.7-24.el9?arch=x86_64&distro=rhel-9.3&epoch=1`);
    /// qualifiers are sorted by key.
    pub fn purl(&self, p: &Package) -> String {
        let namespace = self.distro.as_ref().map_or("unknown", |d| d.id.as_str());
        let (epoch, version) = match (self.manager, p.version.split_once(':')) {
            (Manager::Rpm, Some((e, v))) => (Some(e), v),
            _ => (None, p.version.as_str()),
        };
        let mut s = format!(
            "pkg:{}/{}/{}@{}?arch={}",
            self.manager.purl_type(),
            purl_escape(namespace),
            purl_escape(&p.name),
            purl_escape(version),
            purl_escape(&p.arch)
        );
        if let Some(d) = &self.distro {
            s.push_str("&distro=");
            s.push_str(&purl_escape(&d.qualifier()));
        }
        if let Some(e) = epoch {
            s.push_str("&epoch=");
            s.push_str(&purl_escape(e));
        }
        s
    }
}

/// Percent-encodes a package URL component: everything but RFC 3986's unreserved characters
/// and `:` (the epoch of a Debian version), as the reference `packageurl` libraries do.
pub fn purl_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b':') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The `KEY=VALUE` lines of an os-release file, quotes removed.
pub fn parse_os_release(text: &str) -> Option<Distro> {
    let mut fields = BTreeMap::new();
    for line in text.lines() {
        if let Some((k, v)) = line.trim().split_once('=') {
            let v = v.trim().trim_matches('"').trim_matches('\'');
            fields.insert(k.trim(), v.to_string());
        }
    }
    let id = fields.get("ID")?.clone();
    let version = fields
        .get("VERSION_ID")
        .or_else(|| fields.get("VERSION_CODENAME"))
        .filter(|v| !v.is_empty())
        .cloned();
    Some(Distro { id, version })
}

/// The stanzas of a deb822 file (dpkg's status): blank-line separated `Field: value` lines,
/// continuation lines (starting with a space) folded into the field before.
fn stanzas(text: &str) -> impl Iterator<Item = BTreeMap<&str, &str>> {
    text.split("\n\n").filter_map(|block| {
        let mut fields = BTreeMap::new();
        for line in block.lines() {
            if line.starts_with([' ', '\t']) {
                continue; // a continuation: no field this manifest reads spans lines
            }
            if let Some((k, v)) = line.split_once(':') {
                fields.insert(k.trim(), v.trim());
            }
        }
        (!fields.is_empty()).then_some(fields)
    })
}

/// The installed packages of a dpkg status file: stanzas whose `Status` ends in `installed`
/// (what `dpkg-query -W` lists as `ii`; config-files and half-installed ones are not).
pub fn parse_dpkg_status(text: &str) -> Vec<Package> {
    let mut out: Vec<Package> = stanzas(text)
        .filter(|f| {
            f.get("Status")
                .is_some_and(|s| s.split_whitespace().nth(2) == Some("installed"))
        })
        .filter_map(|f| {
            let name = f.get("Package")?.to_string();
            let version = f.get("Version")?.to_string();
            let arch = f.get("Architecture").unwrap_or(&"").to_string();
            // `Source: NAME` or `Source: NAME (VERSION)`.
            let (source, source_version) = match f.get("Source") {
                Some(s) => match s.split_once('(') {
                    Some((n, v)) => (
                        n.trim().to_string(),
                        Some(v.trim_end_matches(')').trim().to_string())
                            .filter(|sv| *sv != version),
                    ),
                    None => (s.trim().to_string(), None),
                },
                None => (name.clone(), None),
            };
            Some(Package {
                name,
                version,
                arch,
                source,
                source_version,
            })
        })
        .collect();
    out.sort();
    out
}

/// The installed packages of apk's database (`/lib/apk/db/installed`): blank-line separated
/// records of one-letter fields (`P` name, `V` version, `A` architecture, `o` origin).
pub fn parse_apk_installed(text: &str) -> Vec<Package> {
    let mut out: Vec<Package> = text
        .split("\n\n")
        .filter_map(|block| {
            let mut f = BTreeMap::new();
            for line in block.lines() {
                if let Some((k, v)) = line.split_once(':') {
                    f.entry(k).or_insert(v);
                }
            }
            let name = f.get("P")?.to_string();
            Some(Package {
                version: f.get("V")?.to_string(),
                arch: f.get("A").unwrap_or(&"").to_string(),
                source: f
                    .get("o")
                    .map_or_else(|| name.clone(), |o| (*o).to_string()),
                source_version: None,
                name,
            })
        })
        .collect();
    out.sort();
    out
}

/// One package whose version differs between two manifests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Changed {
    pub name: String,
    pub arch: String,
    pub from: String,
    pub to: String,
}

/// What changed from one manifest to another, each list sorted by name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ManifestDiff {
    pub added: Vec<Package>,
    pub removed: Vec<Package>,
    pub changed: Vec<Changed>,
}

impl ManifestDiff {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

/// Packages (by name and architecture) added, removed and changed from `a` to `b`.
pub fn diff(a: &[Package], b: &[Package]) -> ManifestDiff {
    let index = |ps: &[Package]| -> BTreeMap<(String, String), Package> {
        ps.iter()
            .map(|p| ((p.name.clone(), p.arch.clone()), p.clone()))
            .collect()
    };
    let (old, new) = (index(a), index(b));
    let mut d = ManifestDiff::default();
    for (k, p) in &new {
        match old.get(k) {
            None => d.added.push(p.clone()),
            Some(o) if o.version != p.version => d.changed.push(Changed {
                name: p.name.clone(),
                arch: p.arch.clone(),
                from: o.version.clone(),
                to: p.version.clone(),
            }),
            Some(_) => {}
        }
    }
    d.removed = old
        .iter()
        .filter(|(k, _)| !new.contains_key(*k))
        .map(|(_, p)| p.clone())
        .collect();
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "\
Package: libssl3
Status: install ok installed
Priority: optional
Architecture: amd64
Source: openssl
Version: 3.0.15-1~deb12u1
Description: Secure Sockets Layer toolkit
 a continuation line: with a colon

Package: gone
Status: deinstall ok config-files
Architecture: amd64
Version: 1.0

Package: libgcc-s1
Status: install ok installed
Architecture: amd64
Source: gcc-12 (12.2.0-14)
Version: 12.2.0-14+deb12u1
";

    #[test]
    fn dpkg_status_keeps_installed_packages_with_their_source() {
        let ps = parse_dpkg_status(STATUS);
        assert_eq!(ps.len(), 2);
        assert_eq!(ps[0].name, "libgcc-s1");
        assert_eq!(ps[0].source, "gcc-12");
        assert_eq!(ps[0].source_version(), "12.2.0-14");
        assert_eq!(ps[1].source, "openssl");
        assert_eq!(ps[1].source_version(), "3.0.15-1~deb12u1");
    }

    #[test]
    fn purls_are_exact() {
        let m = Manifest {
            manager: Manager::Dpkg,
            distro: parse_os_release(
                "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nVERSION_ID=\"12\"\n",
            ),
            packages: parse_dpkg_status(STATUS),
        };
        assert_eq!(
            m.purl(&m.packages[1]),
            "pkg:deb/debian/libssl3@3.0.15-1~deb12u1?arch=amd64&distro=debian-12"
        );
        assert_eq!(
            m.purl(&m.packages[0]),
            "pkg:deb/debian/libgcc-s1@12.2.0-14%2Bdeb12u1?arch=amd64&distro=debian-12"
        );
        assert_eq!(purl_escape("1:2.3"), "1:2.3");
    }

    #[test]
    fn rpm_purls_carry_the_epoch_as_a_qualifier() {
        let p = |version: &str| Package {
            name: "openssl-libs".into(),
            version: version.into(),
            arch: "x86_64".into(),
            source: "openssl".into(),
            source_version: None,
        };
        let m = Manifest {
            manager: Manager::Rpm,
            distro: parse_os_release("ID=\"rocky\"\nVERSION_ID=\"9.3\"\n"),
            packages: vec![],
        };
        assert_eq!(
            m.purl(&p("1:3.0.7-24.el9")),
            "pkg:rpm/rocky/openssl-libs@3.0.7-24.el9?arch=x86_64&distro=rocky-9.3&epoch=1"
        );
        assert_eq!(
            m.purl(&p("3.0.7-24.el9")),
            "pkg:rpm/rocky/openssl-libs@3.0.7-24.el9?arch=x86_64&distro=rocky-9.3"
        );
    }

    #[test]
    fn apk_database() {
        let text = "C:Q1abc=\nP:musl\nV:1.2.4-r2\nA:x86_64\no:musl\n\nP:libcrypto3\nV:3.1.4-r1\nA:x86_64\no:openssl\n";
        let ps = parse_apk_installed(text);
        assert_eq!(ps[0].name, "libcrypto3");
        assert_eq!(ps[0].source, "openssl");
        assert_eq!(ps[1].version, "1.2.4-r2");
    }

    #[test]
    fn diffs_name_added_removed_and_changed() {
        let p = |n: &str, v: &str| Package {
            name: n.into(),
            version: v.into(),
            arch: "amd64".into(),
            source: n.into(),
            source_version: None,
        };
        let d = diff(&[p("a", "1"), p("b", "1")], &[p("b", "2"), p("c", "1")]);
        assert_eq!(d.added, vec![p("c", "1")]);
        assert_eq!(d.removed, vec![p("a", "1")]);
        assert_eq!(d.changed[0].from, "1");
        assert_eq!(d.changed[0].to, "2");
    }
}
