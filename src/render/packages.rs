//! `layer packages`: a build's installed packages, and what changed between two builds.

use std::fmt::Write;

use crate::packages::{Manifest, ManifestDiff};

/// `NAME  VERSION  ARCH  SOURCE`, a package a line, sorted by name.
pub fn packages_text(m: &Manifest) -> String {
    let rows: Vec<[&str; 4]> = m
        .packages
        .iter()
        .map(|p| {
            [
                p.name.as_str(),
                p.version.as_str(),
                p.arch.as_str(),
                p.source.as_str(),
            ]
        })
        .collect();
    let mut w = [4, 7, 4];
    for r in &rows {
        for (w, c) in w.iter_mut().zip(r) {
            *w = (*w).max(c.len());
        }
    }
    let mut out = String::new();
    let mut line = |r: [&str; 4]| {
        let l = format!(
            "{:w0$}  {:w1$}  {:w2$}  {}",
            r[0],
            r[1],
            r[2],
            r[3],
            w0 = w[0],
            w1 = w[1],
            w2 = w[2]
        );
        let _ = writeln!(out, "{}", l.trim_end());
    };
    line(["NAME", "VERSION", "ARCH", "SOURCE"]);
    for r in rows {
        line(r);
    }
    out
}

/// `+ NAME VERSION`, `- NAME VERSION`, `~ NAME OLD -> NEW`, sorted by name; a closing count.
pub fn packages_diff_text(d: &ManifestDiff, from: &str, to: &str) -> String {
    let mut lines: Vec<(String, String)> = Vec::new();
    for p in &d.added {
        lines.push((
            p.name.clone(),
            format!("+ {} {} ({})", p.name, p.version, p.arch),
        ));
    }
    for p in &d.removed {
        lines.push((
            p.name.clone(),
            format!("- {} {} ({})", p.name, p.version, p.arch),
        ));
    }
    for c in &d.changed {
        lines.push((
            c.name.clone(),
            format!("~ {} {} -> {} ({})", c.name, c.from, c.to, c.arch),
        ));
    }
    lines.sort();
    let mut out = String::new();
    for (_, l) in &lines {
        let _ = writeln!(out, "{l}");
    }
    if d.is_empty() {
        let _ = writeln!(out, "no package changed from {from} to {to}");
    } else {
        let _ = writeln!(
            out,
            "{} added, {} removed, {} changed from {from} to {to}",
            d.added.len(),
            d.removed.len(),
            d.changed.len()
        );
    }
    out
}
