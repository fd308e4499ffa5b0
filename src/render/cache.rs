//! `layer cache ls|verify|gc` as text: the table of recorded builds, the verdict on each build,
//! what gc removed and freed.

use std::fmt::Write;

use crate::cache::gc::{GcReport, Listed, Verdict, Verified};

/// `1 build`, `2 builds`.
fn plural(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// `1.5 MiB`.
fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// `layer cache ls`: a table of every recorded build, then the number of builds and images
/// and the size of the local artifacts.
pub fn cache_ls_text(rows: &[Listed]) -> String {
    let cells: Vec<[String; 6]> = rows
        .iter()
        .map(|r| {
            [
                r.image.clone(),
                r.version.clone(),
                r.status.to_string(),
                r.built_at.clone(),
                match (&r.path, r.size) {
                    (None, _) => "remote".into(),
                    (Some(_), None) => "missing".into(),
                    (Some(_), Some(s)) => human(s),
                },
                r.artifact.clone(),
            ]
        })
        .collect();
    let header = ["IMAGE", "VERSION", "STATUS", "BUILT", "SIZE", "ARTIFACT"];
    let mut w = header.map(str::len);
    for c in &cells {
        for (w, s) in w.iter_mut().zip(c) {
            *w = (*w).max(s.len());
        }
    }
    let mut s = String::new();
    for c in std::iter::once(header.map(str::to_string)).chain(cells) {
        let mut line = String::new();
        for (k, (cell, w)) in c.iter().zip(w).enumerate() {
            if k == 4 {
                let _ = write!(line, "{cell:>w$}  ");
            } else {
                let _ = write!(line, "{cell:w$}  ");
            }
        }
        s.push_str(line.trim_end());
        s.push('\n');
    }
    let total: u64 = rows.iter().filter_map(|r| r.size).sum();
    let images = rows
        .iter()
        .map(|r| &r.image)
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    let _ = writeln!(
        s,
        "{} of {}; local artifacts: {}",
        plural(rows.len(), "build"),
        plural(images, "image"),
        human(total)
    );
    s
}

/// `layer cache verify`: a line per build with its verdict, then the count of each verdict.
pub fn cache_verify_text(results: &[Verified]) -> String {
    let w = results
        .iter()
        .map(|r| r.image.len() + r.version.len() + 1)
        .max()
        .unwrap_or(0);
    let mut s = String::new();
    for r in results {
        let name = format!("{} {}", r.image, r.version);
        let _ = writeln!(s, "{name:w$}  {}", r.verdict.sentence());
    }
    let of = |kind: &str| -> Vec<&Verdict> {
        results
            .iter()
            .filter(|r| r.kind == kind)
            .map(|r| &r.verdict)
            .collect()
    };
    let count = |v: &[&Verdict], f: &dyn Fn(&Verdict) -> bool| v.iter().filter(|v| f(v)).count();
    let builds = of("build");
    let _ = writeln!(
        s,
        "{}: {} ok, {} corrupt, {} missing, {} remote, {} without a digest",
        plural(builds.len(), "build"),
        count(&builds, &|v| *v == Verdict::Ok),
        count(&builds, &|v| matches!(v, Verdict::Corrupt { .. })),
        count(&builds, &|v| *v == Verdict::Missing),
        count(&builds, &|v| *v == Verdict::Remote),
        count(&builds, &|v| *v == Verdict::NoDigest),
    );
    let records = of("record");
    if !records.is_empty() {
        let _ = writeln!(
            s,
            "{} no build can use: {} corrupt, {} of another format",
            plural(records.len(), "record file"),
            count(&records, &|v| matches!(v, Verdict::CorruptRecord { .. })),
            count(&records, &|v| matches!(v, Verdict::OtherFormat { .. })),
        );
    }
    let origins = of("origin");
    if !origins.is_empty() {
        let _ = writeln!(
            s,
            "{}: {} ok, {} corrupt",
            plural(origins.len(), "origin"),
            count(&origins, &|v| *v == Verdict::Ok),
            count(&origins, &|v| matches!(v, Verdict::Corrupt { .. })),
        );
    }
    s
}

/// The error line of `layer cache verify` when `bad` builds (records and origins among them)
/// failed verification, for stderr.
pub fn cache_verify_failed(bad: usize) -> String {
    format!(
        "error: {} failed verification; `layer plan` rebuilds the current ones",
        plural(bad, "build")
    )
}

/// `layer cache gc`: a line per build and other file removed (or, with `dry_run`, that would
/// be), then the bytes freed and what was kept.
pub fn cache_gc_text(report: &GcReport, dry_run: bool) -> String {
    let verb = if dry_run { "would remove" } else { "removed" };
    let mut s = String::new();
    for b in &report.removed {
        let _ = writeln!(
            s,
            "{verb} {} {} ({}): {}",
            b.image,
            b.version,
            b.status,
            human(b.bytes)
        );
    }
    for p in &report.other_paths {
        let _ = writeln!(s, "{verb} {p}");
    }
    let _ = writeln!(
        s,
        "{} {} bytes ({}): {}, {}{}; kept {}",
        if dry_run { "would free" } else { "freed" },
        report.bytes,
        human(report.bytes),
        plural(report.removed.len(), "build"),
        plural(report.other_paths.len(), "other file"),
        if report.dead_runs > 0 {
            format!(", {}", plural(report.dead_runs, "dead run folder"))
        } else {
            String::new()
        },
        plural(report.kept, "build")
    );
    s
}
