//! `layer list` (a table of images, or JSON) and `layer hash` (`KEY  NAME` lines).

use std::fmt::Write;

use serde::Serialize;

use super::style::Style;
use crate::plan::Reason;
use crate::record::Record;

/// One image as `layer list` shows it, and its JSON.
#[derive(Serialize)]
pub struct ListRow<'a> {
    pub name: &'a str,
    pub parent: Option<&'a str>,
    pub origin: Option<&'a str>,
    pub roles: &'a [String],
    pub version: &'a str,
    pub status: &'static str,
    pub reasons: Vec<Reason>,
    pub latest: Option<LatestArtifact>,
    /// The current build was tested with other tests than the image has now.
    pub tests_changed: bool,
}

/// The build `layer list` shows for an image: of its current key, else its newest.
#[derive(Serialize)]
pub struct LatestArtifact {
    pub version: String,
    pub artifact: String,
    pub built_at: String,
    /// `candidate`, `tested`, `failed`, `released` or `revoked` (SPEC §6).
    pub release_status: &'static str,
}

impl LatestArtifact {
    pub fn of(r: &Record) -> Self {
        LatestArtifact {
            version: r.version.clone(),
            artifact: r.artifact.id.clone(),
            built_at: r.built_at.clone(),
            release_status: crate::release::Status::of(r).as_str(),
        }
    }
}

/// `layer list`: a table of images, then a line per build on a revoked version.
pub fn list_text(rows: &[ListRow], style: Style) -> String {
    let base = |r: &ListRow| match (r.parent, r.origin) {
        (Some(p), _) => format!("from {p}"),
        (_, Some(o)) => format!("origin {o}"),
        _ => String::new(),
    };
    let header = [
        "IMAGE", "BASE", "VERSION", "STATUS", "BUILD", "RELEASE", "LATEST", "ROLES",
    ];
    let cells: Vec<[String; 8]> = rows
        .iter()
        .map(|r| {
            let latest = |f: fn(&LatestArtifact) -> String| {
                r.latest.as_ref().map_or_else(|| "-".to_string(), f)
            };
            [
                r.name.to_string(),
                base(r),
                r.version.to_string(),
                r.status.to_string(),
                latest(|l| crate::version::short(&l.version).to_string()),
                latest(|l| l.release_status.to_string()),
                r.latest
                    .as_ref()
                    .map(|l| l.artifact.clone())
                    .unwrap_or_else(|| "-".into()),
                r.roles.join(","),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for c in &cells {
        for (w, s) in widths.iter_mut().zip(c) {
            *w = (*w).max(s.len());
        }
    }
    let mut out = String::new();
    let line = |cols: [&str; 8], status_painted: Option<String>| {
        let mut l = String::new();
        for (k, (c, w)) in cols.iter().zip(widths).enumerate() {
            if k == 3 {
                if let Some(p) = &status_painted {
                    let _ = write!(l, "{p}{}  ", " ".repeat(w - c.len()));
                    continue;
                }
            }
            let _ = write!(l, "{c:w$}  ");
        }
        l.trim_end().to_string() + "\n"
    };
    out.push_str(&line(header, None));
    for c in &cells {
        let painted = match c[3].as_str() {
            "fresh" => style.paint("fresh", "32"),
            other => style.paint(other, "33"),
        };
        out.push_str(&line(
            [&c[0], &c[1], &c[2], &c[3], &c[4], &c[5], &c[6], &c[7]],
            Some(painted),
        ));
    }
    // Builds on revoked versions are flagged under the table.
    for r in rows {
        for reason in &r.reasons {
            if matches!(
                reason,
                Reason::Revoked { .. } | Reason::ParentRevoked { .. }
            ) {
                let _ = writeln!(out, "{}: {}", r.name, reason.sentence());
            }
        }
        if r.tests_changed {
            let _ = writeln!(
                out,
                "{}: tests changed since it was last tested: run `layer test {}`",
                r.name, r.name
            );
        }
    }
    out
}

/// `layer hash`: `KEY  NAME` lines, like `b3sum`.
pub fn hash_text(keys: &[(&str, &str)]) -> String {
    keys.iter()
        .map(|(name, key)| format!("{key}  {name}\n"))
        .collect()
}
