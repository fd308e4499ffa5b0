//! The remote cache in words: `layer cache ls|verify --remote` (a record a line with its
//! signer and verdict), and what `layer push` and `layer pull` did with each image.

use std::fmt::Write;

use serde::Serialize;

use crate::progress::human_bytes;
use crate::remote::RemoteEntry;

/// What `layer push` or `layer pull` did with one image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Transfer {
    pub name: String,
    /// The build moved, or found where it was going.
    pub version: Option<String>,
    pub outcome: TransferOutcome,
    /// What a push or pull moved: its blobs' bytes and how long it took.
    pub moved: Option<Moved>,
}

/// The blob bytes of one push or pull, and its time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Moved {
    pub bytes: u64,
    pub millis: u64,
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

/// `layer push` / `layer pull`: a line per image (with the size, rate and time of what moved),
/// then a count, for stderr.
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
        let size = match r.moved {
            // No blob moved (an artifact kept elsewhere, a blob already there): the table
            // says it as before.
            Some(m) if m.bytes > 0 => {
                let elapsed = std::time::Duration::from_millis(m.millis);
                let secs = elapsed.as_secs_f64();
                format!(
                    "  {} in {secs:.1}s, {}/s",
                    human_bytes(m.bytes),
                    human_bytes((m.bytes as f64 / secs.max(1e-3)) as u64)
                )
            }
            _ => String::new(),
        };
        let _ = writeln!(out, "  {:width$}  {}{size}", r.name, what.trim_end());
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_transfer_line_says_its_size_time_and_rate() {
        let row = |name: &str, outcome, moved| Transfer {
            name: name.into(),
            version: Some("1.0.3".into()),
            outcome,
            moved,
        };
        let text = transfer_text(&[
            row(
                "base",
                TransferOutcome::Pulled,
                Some(Moved {
                    bytes: 35_860_000,
                    millis: 560,
                }),
            ),
            // No blob moved (an artifact kept elsewhere): no size.
            row(
                "app",
                TransferOutcome::Pulled,
                Some(Moved {
                    bytes: 0,
                    millis: 3,
                }),
            ),
            row("svc", TransferOutcome::Local, None),
        ]);
        assert_eq!(
            text,
            "  base  pulled          1.0.3  34.2 MiB in 0.6s, 61.1 MiB/s\n  app   pulled          1.0.3\n  svc   already local   1.0.3\n2 of 3 images moved, 0 failed\n"
        );
    }
}
