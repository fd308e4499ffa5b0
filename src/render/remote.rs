//! The remote cache in words: `layer cache ls|verify --remote` (a record a line with its
//! signer and verdict), and what `layer push` and `layer pull` did with each image.

use std::fmt::Write;

use serde::Serialize;

use crate::remote::RemoteEntry;

/// What `layer push` or `layer pull` did with one image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Transfer {
    pub name: String,
    /// The build moved, or found where it was going.
    pub version: Option<String>,
    pub outcome: TransferOutcome,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind", content = "detail")]
pub enum TransferOutcome {
    /// Uploaded, blobs first, then the signed record.
    Pushed,
    /// Downloaded and verified into the local cache.
    Pulled,
    /// `push`: the remote already has a build of the key.
    OnRemote,
    /// `pull`: the local cache already has a build of the key.
    Local,
    /// `push`: the local cache has no build of the current key.
    NotBuilt,
    /// `pull`: the remote has no record of the current key.
    NotOnRemote,
    /// `pull`: the remote's record is not trusted; why.
    Refused(String),
    /// The transfer failed; why.
    Failed(String),
}

/// `layer push` / `layer pull`: a line per image, then a count, for stderr.
pub fn transfer_text(rows: &[Transfer]) -> String {
    let mut out = String::new();
    let width = rows.iter().map(|r| r.name.len()).max().unwrap_or(0);
    let mut moved = 0;
    for r in rows {
        let version = r.version.as_deref().unwrap_or("");
        let what = match &r.outcome {
            TransferOutcome::Pushed => {
                moved += 1;
                format!("pushed          {version}")
            }
            TransferOutcome::Pulled => {
                moved += 1;
                format!("pulled          {version}")
            }
            TransferOutcome::OnRemote => format!("already remote  {version}"),
            TransferOutcome::Local => format!("already local   {version}"),
            TransferOutcome::NotBuilt => {
                "not built       (no build of its current key here)".into()
            }
            TransferOutcome::NotOnRemote => "not on remote".into(),
            TransferOutcome::Refused(why) => format!("refused         {why}"),
            TransferOutcome::Failed(why) => format!("failed          {why}"),
        };
        let _ = writeln!(out, "  {:width$}  {}", r.name, what.trim_end());
    }
    let failed = rows
        .iter()
        .filter(|r| matches!(r.outcome, TransferOutcome::Failed(_)))
        .count();
    let _ = writeln!(
        out,
        "{moved} of {} images moved, {failed} failed",
        rows.len()
    );
    out
}

/// `layer cache ls --remote` and `verify --remote`: a record a line (image, version, key,
/// signer, verdict), then how many there are and how many are not trusted.
pub fn remote_entries_text(entries: &[RemoteEntry]) -> String {
    let cells: Vec<[String; 5]> = entries
        .iter()
        .map(|e| {
            [
                e.name.clone(),
                if e.version.is_empty() {
                    "-".into()
                } else {
                    e.version.clone()
                },
                e.key.chars().take(12).collect(),
                e.signer.clone().unwrap_or_else(|| "-".into()),
                e.verdict.clone(),
            ]
        })
        .collect();
    let header = ["IMAGE", "VERSION", "KEY", "SIGNER", "VERDICT"];
    let mut width = header.map(str::len);
    for row in &cells {
        for (w, c) in width.iter_mut().zip(row) {
            *w = (*w).max(c.len());
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, row: [&str; 5]| {
        let mut l = String::new();
        for (i, c) in row.iter().enumerate() {
            let _ = write!(l, "{:w$}  ", c, w = width[i]);
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(&mut out, header);
    for row in &cells {
        line(&mut out, [&row[0], &row[1], &row[2], &row[3], &row[4]]);
    }
    let bad = entries
        .iter()
        .filter(|e| e.verdict != crate::remote::TRUSTED)
        .count();
    let _ = writeln!(
        out,
        "{} records on the remote, {bad} not trusted",
        entries.len()
    );
    out
}
