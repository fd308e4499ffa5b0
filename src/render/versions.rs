//! `layer versions`: an image's recorded builds, newest first, as a table or JSON rows.

use std::fmt::Write;

use serde::Serialize;

use crate::record::Record;

/// One recorded build as `layer versions` shows it, and its JSON.
#[derive(Serialize)]
pub struct VersionRow<'a> {
    pub version: &'a str,
    pub status: &'a str,
    /// The strategy it was built under: a deep and a shallow build of one version differ.
    pub strategy: &'static str,
    pub built_at: &'a str,
    pub artifact: &'a str,
    pub key: &'a str,
    pub forced: bool,
    pub tags: &'a std::collections::BTreeMap<String, String>,
}

impl<'a> VersionRow<'a> {
    pub fn of(r: &'a Record) -> Self {
        VersionRow {
            version: &r.version,
            status: r
                .tags
                .get("Release_Status")
                .map(String::as_str)
                .unwrap_or("candidate"),
            strategy: r.inputs.strategy.as_str(),
            built_at: &r.built_at,
            artifact: &r.artifact.id,
            key: &r.key,
            forced: r.forced,
            tags: &r.tags,
        }
    }
}

/// `layer versions`: a table of the builds, with their keys cut to 12 characters.
pub fn versions_text(records: &[Record]) -> String {
    let rows: Vec<VersionRow> = records.iter().map(VersionRow::of).collect();
    let w = |f: &dyn Fn(&VersionRow) -> usize, h: &str| {
        rows.iter().map(f).max().unwrap_or(0).max(h.len())
    };
    let (wv, ws, wt, wb, wa) = (
        w(&|r| r.version.len(), "VERSION"),
        w(&|r| r.status.len(), "STATUS"),
        w(&|r| r.strategy.len(), "STRATEGY"),
        w(&|r| r.built_at.len(), "BUILT"),
        w(&|r| r.artifact.len(), "ARTIFACT"),
    );
    let mut s = format!(
        "{:wv$}  {:ws$}  {:wt$}  {:wb$}  {:wa$}  KEY\n",
        "VERSION", "STATUS", "STRATEGY", "BUILT", "ARTIFACT"
    );
    for r in &rows {
        let _ = writeln!(
            s,
            "{:wv$}  {:ws$}  {:wt$}  {:wb$}  {:wa$}  {}",
            r.version,
            r.status,
            r.strategy,
            r.built_at,
            r.artifact,
            &r.key[..12.min(r.key.len())]
        );
    }
    s
}
