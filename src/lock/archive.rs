//! Debian archives as `layer lock` and builds see them: the apt sources of a `debian` origin
//! (the suite, its `-updates` and `-security`, then extra `sources`), the host's mirrors, each
//! archive's `Release` fetched and pinned, and the package versions its index serves.
//!
//! `file://` archives are read directly; others with `curl`. Indexes are read only to say
//! which locked versions a moved mirror no longer serves; `xz` and `gzip` unpack them.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::process::{Command, Stdio};

use crate::model::{AptSource, OriginSource, Security};

/// Where Debian is fetched from when neither the origin nor the host says.
pub const DEFAULT_MIRROR: &str = "http://deb.debian.org/debian";
/// Debian's security archive, when neither the origin nor the host names one.
pub const DEFAULT_SECURITY: &str = "http://deb.debian.org/debian-security";

/// One archive of an origin: a label for `layer.lock` (the suite for the origin's own three
/// archives, so a lock does not depend on the mirror a machine uses; `URI SUITE` for extra
/// sources) and its `deb` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Archive {
    pub label: String,
    pub source: AptSource,
}

impl Archive {
    /// An extra source, labelled by its URI and suite.
    pub fn extra(line: &str) -> Option<Archive> {
        let source = AptSource::parse(line).ok()?;
        Some(Archive {
            label: format!("{} {}", source.uri, source.suite),
            source,
        })
    }
}

/// The URIs of the host's apt sources, with their suites, in file order
/// (`/etc/apt/sources.list`, then `sources.list.d/*.list` and `*.sources`, sorted).
fn host_sources() -> Vec<(String, Vec<String>)> {
    let mut files = vec![std::path::PathBuf::from("/etc/apt/sources.list")];
    if let Ok(rd) = std::fs::read_dir("/etc/apt/sources.list.d") {
        let mut more: Vec<_> = rd
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "list" || e == "sources"))
            .collect();
        more.sort();
        files.extend(more);
    }
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(f).unwrap_or_default();
        // deb822 stanzas: `URIs:` and `Suites:` of one paragraph.
        for para in text.split("\n\n") {
            let field = |name: &str| {
                para.lines()
                    .find_map(|l| l.trim().strip_prefix(name))
                    .map(|v| v.split_whitespace().map(str::to_string).collect::<Vec<_>>())
            };
            if let (Some(uris), suites) = (field("URIs:"), field("Suites:")) {
                for u in uris {
                    out.push((
                        u.trim_end_matches('/').to_string(),
                        suites.clone().unwrap_or_default(),
                    ));
                }
            }
        }
        for line in text.lines() {
            if let Ok(s) = AptSource::parse(line) {
                out.push((s.uri, vec![s.suite]));
            }
        }
    }
    out
}

/// The host's Debian mirror: its first apt source that is not a security archive.
pub fn host_mirror() -> Option<String> {
    host_sources()
        .into_iter()
        .find(|(u, suites)| {
            !u.contains("security") && !suites.iter().any(|s| s.ends_with("-security"))
        })
        .map(|(u, _)| u)
}

/// The host's security mirror: the source that carries a `*-security` suite.
pub fn host_security_mirror() -> Option<String> {
    host_sources()
        .into_iter()
        .find(|(_, suites)| suites.iter().any(|s| s.ends_with("-security")))
        .map(|(u, _)| u)
}

/// The archives of a `debian` origin, in order: the suite, `SUITE-updates`, `SUITE-security`
/// (each unless turned off), then its `sources`. Without a `mirror`, the host's mirrors are
/// used (else deb.debian.org); a given mirror's security archive is its `-security` sibling
/// (`.../debian` -> `.../debian-security`) unless `security = "URL"` names one.
pub fn origin_archives(source: &OriginSource) -> Vec<Archive> {
    let OriginSource::Debian {
        suite,
        mirror,
        components,
        updates,
        security,
        sources,
        ..
    } = source
    else {
        return Vec::new();
    };
    let components = if components.is_empty() {
        vec!["main".to_string()]
    } else {
        components.clone()
    };
    let main = mirror
        .clone()
        .or_else(host_mirror)
        .unwrap_or_else(|| DEFAULT_MIRROR.to_string());
    let archive = |uri: &str, suite: String| Archive {
        label: suite.clone(),
        source: AptSource {
            options: String::new(),
            uri: uri.trim_end_matches('/').to_string(),
            suite,
            components: components.clone(),
        },
    };
    let mut out = vec![archive(&main, suite.clone())];
    if *updates {
        out.push(archive(&main, format!("{suite}-updates")));
    }
    let security_uri = match security {
        Security::Off => None,
        Security::Mirror(u) => Some(u.clone()),
        Security::Default => Some(match mirror {
            None => host_security_mirror().unwrap_or_else(|| DEFAULT_SECURITY.to_string()),
            Some(m) if m.ends_with("/debian") => format!("{m}-security"),
            Some(_) => DEFAULT_SECURITY.to_string(),
        }),
    };
    if let Some(u) = security_uri {
        out.push(archive(&u, format!("{suite}-security")));
    }
    out.extend(sources.iter().filter_map(|l| Archive::extra(l)));
    out
}

/// The bytes at `url`: a `file://` path read, anything else fetched with `curl`.
pub fn fetch(url: &str) -> Result<Vec<u8>, String> {
    if let Some(path) = url.strip_prefix("file://") {
        return std::fs::read(path).map_err(|e| format!("cannot read `{path}`: {e}"));
    }
    let out = Command::new("curl")
        .args(["-fsSL", "--max-time", "300", "--retry", "2", "--", url])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run `curl` to fetch `{url}`: {e}"))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(format!(
            "cannot fetch `{url}`: {}",
            stderr.lines().last().unwrap_or("curl failed").trim()
        ));
    }
    Ok(out.stdout)
}

/// `DATE BLAKE3` of a `Release` file's bytes: its `Date:` in RFC 3339 (which also names the
/// matching snapshot.debian.org archive) and the blake3 of the file.
pub fn release_pin(url: &str, bytes: &[u8]) -> Result<String, String> {
    let text = String::from_utf8_lossy(bytes);
    let date = text
        .lines()
        .find_map(|l| l.strip_prefix("Date:"))
        .map(str::trim)
        .ok_or_else(|| format!("`{url}` has no `Date:`; is it a Release file?"))?;
    let date = rfc3339(date).unwrap_or_else(|| date.replace(' ', "_"));
    Ok(format!("{date} {}", blake3::hash(bytes).to_hex()))
}

/// `Sat, 11 Jan 2025 10:48:02 UTC` as `2025-01-11T10:48:02Z`.
pub fn rfc3339(date: &str) -> Option<String> {
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

/// Debian's name of the host's architecture.
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "i386",
        "arm" => "armhf",
        "powerpc64" => "ppc64el",
        "s390x" => "s390x",
        other => other,
    }
}

/// The `NAME=VERSION`s the archive's package index serves, read through the `Release` whose
/// bytes are `release`: each of its components' `binary-ARCH/Packages` (or a flat
/// repository's `Packages`), in the first of `.xz`, `.gz` or plain that the `Release` lists.
pub fn served(source: &AptSource, release: &[u8], arch: &str) -> Result<BTreeSet<String>, String> {
    let listed: BTreeSet<String> = String::from_utf8_lossy(release)
        .lines()
        .filter(|l| l.starts_with(' '))
        .filter_map(|l| l.split_whitespace().nth(2).map(str::to_string))
        .collect();
    let dirs: Vec<String> = if source.suite.ends_with('/') {
        vec![String::new()]
    } else {
        source
            .components
            .iter()
            .map(|c| format!("{c}/binary-{arch}/"))
            .collect()
    };
    let mut out = BTreeSet::new();
    for dir in dirs {
        let pick = ["Packages.xz", "Packages.gz", "Packages"]
            .into_iter()
            .find(|f| listed.contains(&format!("{dir}{f}")))
            .ok_or_else(|| format!("`{}` lists no `{dir}Packages` index", source.release_url()))?;
        let url = source.file_url(&format!("{dir}{pick}"));
        let bytes = fetch(&url)?;
        let text = match pick {
            "Packages.xz" => unpack("xz", &bytes, &url)?,
            "Packages.gz" => unpack("gzip", &bytes, &url)?,
            _ => bytes,
        };
        out.extend(index_versions(&String::from_utf8_lossy(&text)));
    }
    Ok(out)
}

/// `NAME=VERSION` of every stanza of a `Packages` index.
pub fn index_versions(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for stanza in text.split("\n\n") {
        let mut fields: BTreeMap<&str, &str> = BTreeMap::new();
        for line in stanza.lines() {
            if let Some((k, v)) = line.split_once(':') {
                if !line.starts_with(' ') {
                    fields.insert(k, v.trim());
                }
            }
        }
        if let (Some(n), Some(v)) = (fields.get("Package"), fields.get("Version")) {
            out.push(format!("{n}={v}"));
        }
    }
    out
}

/// `PROGRAM -dc` of `bytes`.
fn unpack(program: &str, bytes: &[u8], url: &str) -> Result<Vec<u8>, String> {
    let mut child = Command::new(program)
        .arg("-dc")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run `{program}` to unpack `{url}`: {e}"))?;
    let mut stdin = child.stdin.take().expect("piped");
    let input = bytes.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child
        .wait_with_output()
        .map_err(|e| format!("`{program}` on `{url}`: {e}"))?;
    let _ = writer.join();
    if !out.status.success() {
        return Err(format!("`{program} -dc` could not unpack `{url}`"));
    }
    Ok(out.stdout)
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
    fn a_given_mirror_gets_its_updates_and_its_security_sibling() {
        let origin = OriginSource::Debian {
            suite: "bookworm".into(),
            variant: "minbase".into(),
            mirror: Some("http://m.example/debian".into()),
            components: vec![],
            updates: true,
            security: Security::Default,
            sources: vec!["deb [trusted=yes] file:///srv/repo ./".into()],
        };
        let lines: Vec<(String, String)> = origin_archives(&origin)
            .into_iter()
            .map(|a| (a.label, a.source.line()))
            .collect();
        assert_eq!(
            lines,
            [
                ("bookworm", "deb http://m.example/debian bookworm main"),
                (
                    "bookworm-updates",
                    "deb http://m.example/debian bookworm-updates main"
                ),
                (
                    "bookworm-security",
                    "deb http://m.example/debian-security bookworm-security main"
                ),
                (
                    "file:///srv/repo ./",
                    "deb [trusted=yes] file:///srv/repo ./"
                ),
            ]
            .map(|(a, b)| (a.to_string(), b.to_string()))
        );
        let flat = AptSource::parse("deb [trusted=yes] file:///srv/repo ./").unwrap();
        assert_eq!(flat.release_url(), "file:///srv/repo/Release");
        assert_eq!(
            AptSource::parse("deb http://m/debian bookworm main")
                .unwrap()
                .file_url("main/binary-amd64/Packages.xz"),
            "http://m/debian/dists/bookworm/main/binary-amd64/Packages.xz"
        );
    }

    #[test]
    fn an_index_lists_name_and_version_of_each_stanza() {
        let text = "Package: hello\nVersion: 1.0\nDescription: x\n continued: no\n\nPackage: b\nArchitecture: all\nVersion: 2:1.0~rc1-1\n";
        assert_eq!(index_versions(text), ["hello=1.0", "b=2:1.0~rc1-1"]);
    }
}
