//! `layer plan` as text: a summary line, then a line per image with its action, wave, reasons
//! and pin; with `--since`, a line counting the images changed since the revision, those built
//! only because they are not cached and those removed, and the images the revision had and the
//! work tree has not.

use std::fmt::Write;

use super::style::Style;
use crate::plan::{Action, Cached, Plan, Reason};

/// The plan for the terminal: `build`, `fresh` or `skip` and why, one image a line.
pub fn plan_text(plan: &Plan, style: Style) -> String {
    let s = &plan.summary;
    let mut out = format!(
        "{} plan: {} to build, {} fresh, {} skipped\n",
        plan.strategy.as_str(),
        s.build,
        s.fresh,
        s.skip
    );
    if let Some(si) = &plan.since {
        // The change itself: images whose key differs from the revision's; apart from them,
        // those built only because no cache holds their (unchanged) key.
        let names: std::collections::HashSet<&str> =
            si.changed.iter().map(String::as_str).collect();
        let changed = plan
            .images
            .iter()
            .filter(|i| i.action != Action::Skip && names.contains(i.name.as_str()))
            .count();
        let not_cached = plan
            .to_build()
            .filter(|i| i.reasons == [Reason::NotCached])
            .count();
        let _ = writeln!(
            out,
            "since {} ({}): {changed} changed, {not_cached} not cached, {} removed",
            si.rev,
            &si.commit[..si.commit.len().min(12)],
            si.removed.len()
        );
    }
    let width = plan.images.iter().map(|i| i.name.len()).max().unwrap_or(0);
    // `fresh (remote)` widens the action column, only in plans that have one.
    let remote = plan.images.iter().any(|i| i.cached == Some(Cached::Remote));
    let action_width = if remote { 14 } else { 5 };
    for img in &plan.images {
        let (word, colour) = match (img.action, img.cached) {
            (Action::Build, _) => ("build", "1;33"),
            (Action::Fresh, Some(Cached::Remote)) => ("fresh (remote)", "32"),
            (Action::Fresh, _) => ("fresh", "32"),
            (Action::Skip, _) => ("skip", "2"),
        };
        let word = style.paint(&format!("{word:action_width$}"), colour);
        let mut line = format!("  {word}  {:width$}", img.name);
        if let Some(w) = img.wave {
            let _ = write!(line, "  wave {w}");
        }
        if !img.reasons.is_empty() {
            let why: Vec<String> = img.reasons.iter().map(Reason::sentence).collect();
            let _ = write!(line, "  {}", why.join("; "));
        }
        if let Some(p) = &img.pin {
            let _ = write!(
                line,
                "  (pinned to {} {}, `@{}`)",
                p.parent,
                crate::version::short(&p.version),
                p.pin
            );
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    for name in plan.since.iter().flat_map(|si| &si.removed) {
        let _ = writeln!(out, "  {}  {name}", style.paint("gone ", "2"));
    }
    out
}
