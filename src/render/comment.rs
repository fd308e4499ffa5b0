//! `layer plan --format markdown`: a plan as a pull request comment, short at any size.

use std::fmt::Write;

use crate::plan::{Action, Cached, Plan, PlannedImage, Reason};

/// Images with a reason of their own, as opposed to those built because a parent is or only
/// for want of a cache (`not cached`); those with a change to show (a role, a field, an
/// origin) before those that are only new.
fn root_causes(plan: &Plan) -> Vec<&PlannedImage> {
    let mut causes: Vec<&PlannedImage> = plan
        .to_build()
        .filter(|i| {
            i.reasons.iter().any(|r| {
                !matches!(
                    r,
                    Reason::ParentChanged { .. } | Reason::ParentRebuilt { .. } | Reason::NotCached
                )
            })
        })
        .collect();
    causes.sort_by_key(|i| i.reasons.iter().all(|r| matches!(r, Reason::New)));
    causes
}

fn md_escape(s: &str) -> String {
    s.replace('|', "\\|")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Rows above which tables and graphs fold into `<details>`.
const FOLD_ROWS: usize = 20;
const MAX_CAUSES: usize = 5;
/// Files named per changed role in a comment; the rest are counted.
const MAX_PATHS: usize = 3;
/// Names listed in one line (removed images); the rest are counted.
const MAX_NAMES: usize = 50;
/// Nodes drawn in a comment's graph: mermaid (and a reader) gives up on much larger ones.
const MAX_GRAPH_NODES: usize = 100;

/// `a`, `b` and N more.
fn name_list<'a>(names: impl Iterator<Item = &'a str>, max: usize) -> String {
    let names: Vec<&str> = names.collect();
    let mut shown: Vec<String> = names.iter().take(max).map(|n| format!("`{n}`")).collect();
    if names.len() > max {
        shown.push(format!("{} more", names.len() - max));
    }
    shown.join(", ")
}

/// A plan as a pull request comment: a summary line, a table, a mermaid graph. Short at any
/// size: on a large estate the images to build with a reason of their own stay in view and the
/// rest fold into `<details>`; the graph draws the images to build and their ancestors.
pub fn plan_markdown(plan: &Plan) -> String {
    let total = plan.images.len();
    let mut out = String::new();
    let _ = writeln!(out, "### layer plan ({})\n", plan.strategy.as_str());
    let since = plan
        .since
        .as_ref()
        .map(|si| {
            format!(
                " since `{}` (`{}`)",
                md_escape(&si.rev),
                &si.commit[..si.commit.len().min(12)]
            )
        })
        .unwrap_or_default();
    out.push_str(&headline(plan, &since));
    if let Some(si) = plan.since.as_ref().filter(|si| !si.removed.is_empty()) {
        let _ = writeln!(
            out,
            "\nRemoved: {}.",
            name_list(si.removed.iter().map(String::as_str), MAX_NAMES)
        );
    }
    out.push('\n');

    let table = |rows: &[&PlannedImage]| {
        let mut t = String::from("| image | action | reasons | wave |\n|---|---|---|---|\n");
        for i in rows {
            let action = match (i.action, i.cached) {
                (Action::Build, _) => "**build**",
                (Action::Fresh, Some(Cached::Remote)) => "fresh (remote)",
                (Action::Fresh, _) => "fresh",
                (Action::Skip, _) => "skip",
            };
            let reasons: Vec<String> = i
                .reasons
                .iter()
                .map(|r| md_escape(&comment_reason(r)))
                .collect();
            let wave = i.wave.map(|w| w.to_string()).unwrap_or_default();
            let _ = writeln!(
                t,
                "| `{}` | {action} | {} | {wave} |",
                i.name,
                reasons.join("<br>")
            );
        }
        t
    };
    if total <= FOLD_ROWS {
        let all: Vec<&PlannedImage> = plan.images.iter().collect();
        out.push_str(&table(&all));
        out.push('\n');
        out.push_str(&plan_mermaid(plan, None));
        return out;
    }

    // Images to build stay in view up to FOLD_ROWS, those with a reason of their own first;
    // the rest fold away.
    let build: Vec<&PlannedImage> = plan.to_build().collect();
    let (mut shown, mut more): (Vec<&PlannedImage>, Vec<&PlannedImage>) =
        if build.len() <= FOLD_ROWS {
            (build, vec![])
        } else {
            let causes = root_causes(plan);
            let named: std::collections::HashSet<&str> =
                causes.iter().map(|c| c.name.as_str()).collect();
            let rest = build
                .into_iter()
                .filter(|i| !named.contains(i.name.as_str()))
                .collect();
            (causes, rest)
        };
    if shown.len() > FOLD_ROWS {
        more.splice(0..0, shown.drain(FOLD_ROWS..));
    }
    if !shown.is_empty() {
        out.push_str(&table(&shown));
        out.push('\n');
    }
    if !more.is_empty() {
        let _ = writeln!(
            out,
            "<details><summary>{} more images to build</summary>\n\n{}\n</details>\n",
            more.len(),
            table(&more)
        );
    }
    let rest: Vec<(&str, Vec<&str>)> = [(Action::Fresh, "fresh"), (Action::Skip, "not selected")]
        .into_iter()
        .map(|(a, word)| {
            (
                word,
                plan.images
                    .iter()
                    .filter(|i| i.action == a)
                    .map(|i| i.name.as_str())
                    .collect::<Vec<_>>(),
            )
        })
        .filter(|(_, names)| !names.is_empty())
        .collect();
    if !rest.is_empty() {
        let n: usize = rest.iter().map(|(_, v)| v.len()).sum();
        let _ = writeln!(out, "<details><summary>{n} images not to build</summary>\n");
        for (word, names) in rest {
            let _ = writeln!(
                out,
                "{word}: {}\n",
                names
                    .iter()
                    .map(|n| format!("`{n}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        let _ = writeln!(out, "</details>\n");
    }

    // The graph: the images to build and their ancestors; when those are too many, the
    // images with a reason of their own and their ancestors.
    let index: std::collections::HashMap<&str, usize> = plan
        .images
        .iter()
        .enumerate()
        .map(|(i, img)| (img.name.as_str(), i))
        .collect();
    let with_ancestors = |from: &mut dyn Iterator<Item = &PlannedImage>| {
        let mut keep = vec![false; total];
        for img in from {
            let mut at = Some(img.name.as_str());
            while let Some(name) = at {
                let i = index[name];
                if keep[i] {
                    break;
                }
                keep[i] = true;
                at = plan.images[i].parent.as_deref();
            }
        }
        keep
    };
    let mut keep = with_ancestors(&mut plan.to_build());
    let mut note = String::new();
    if keep.iter().filter(|k| **k).count() > MAX_GRAPH_NODES {
        keep = with_ancestors(&mut root_causes(plan).into_iter());
        note = "; images built only because a parent is are not drawn".into();
    }
    let drawn = keep.iter().filter(|k| **k).count();
    if drawn > MAX_GRAPH_NODES {
        let _ = writeln!(
            out,
            "The image graph is too large for a comment ({drawn} images to draw): `layer graph --format mermaid` prints it."
        );
    } else if drawn > 0 {
        let _ = writeln!(
            out,
            "<details><summary>Image graph ({drawn} of {total} images: those to build and their ancestors{note})</summary>\n\n{}\n</details>",
            plan_mermaid(plan, Some(&keep))
        );
    }
    out
}

/// The summary: the images to build and, for the first few with a reason of their own, why.
/// With `--since`, the images whose key changed since the revision, then apart from them the
/// images built although unchanged: `not cached` (no cache holds their build), and any other
/// reason (expired, revoked, forced).
fn headline(plan: &Plan, since: &str) -> String {
    let s = &plan.summary;
    let total = plan.images.len();
    let mut out = String::new();
    let Some(si) = &plan.since else {
        if s.build == 0 {
            let _ = writeln!(
                out,
                "**Nothing to build**: {} of {total} images fresh, {} not selected.",
                s.fresh, s.skip
            );
        } else {
            let causes = root_causes(plan);
            let line = format!(
                "**{} of {total} images to build**: {}",
                s.build,
                causes_list(&causes, s.build)
            );
            let _ = writeln!(out, "{line}.");
        }
        return out;
    };
    let changed: std::collections::HashSet<&str> = si.changed.iter().map(String::as_str).collect();
    let is_changed = |i: &&PlannedImage| changed.contains(i.name.as_str());
    let not_cached = |i: &&PlannedImage| i.reasons == [Reason::NotCached];
    let build_changed = plan.to_build().filter(is_changed).count();
    let fresh_changed = plan
        .images
        .iter()
        .filter(|i| i.action == Action::Fresh)
        .filter(is_changed)
        .count();
    let built_already = match fresh_changed {
        0 => String::new(),
        n => format!("; {n} already built"),
    };
    if build_changed > 0 {
        let causes: Vec<&PlannedImage> = root_causes(plan).into_iter().filter(is_changed).collect();
        let _ = writeln!(
            out,
            "**{} of {total} images changed**{since}: {}{built_already}.",
            build_changed + fresh_changed,
            causes_list(&causes, build_changed)
        );
    } else if fresh_changed > 0 {
        let _ = writeln!(
            out,
            "**Nothing to build**{since}: {fresh_changed} of {total} images changed, all built already."
        );
    } else if s.build == 0 {
        let _ = writeln!(
            out,
            "**Nothing to build**{since}: {} of {total} images fresh, {} not selected.",
            s.fresh, s.skip
        );
    } else {
        let _ = writeln!(out, "**No image changed**{since}.");
    }
    let others: Vec<String> = plan
        .to_build()
        .filter(|i| !is_changed(i) && !not_cached(i))
        .map(|i| format!("`{}` ({})", i.name, reasons_short(i)))
        .collect();
    if !others.is_empty() {
        let _ = writeln!(
            out,
            "\nAlso to build, unchanged{since}: {}.",
            others.join("; ")
        );
    }
    let uncached: Vec<&PlannedImage> = plan.to_build().filter(not_cached).collect();
    if !uncached.is_empty() {
        let _ = writeln!(
            out,
            "\n**Not cached** (unchanged since `{}`, built only because no cache holds them): {}.",
            md_escape(&si.rev),
            name_list(uncached.iter().map(|i| i.name.as_str()), MAX_NAMES)
        );
    }
    out
}

/// `a` (why), `b` (why) and N more; K more built on a changed parent: the first images of
/// `causes`, of `build` images to build in all.
fn causes_list(causes: &[&PlannedImage], build: usize) -> String {
    let mut why: Vec<String> = causes
        .iter()
        .take(MAX_CAUSES)
        .map(|i| format!("`{}` ({})", i.name, reasons_short(i)))
        .collect();
    if causes.len() > MAX_CAUSES {
        why.push(format!("{} more", causes.len() - MAX_CAUSES));
    }
    let followers = build.saturating_sub(causes.len());
    if followers > 0 {
        why.push(format!("{followers} more built on a changed parent"));
    }
    why.join("; ")
}

fn reasons_short(i: &PlannedImage) -> String {
    i.reasons
        .iter()
        .map(short_reason)
        .collect::<Vec<_>>()
        .join(", ")
}

/// A reason for a comment: as in the text plan, with at most [`MAX_PATHS`] files per role.
fn comment_reason(r: &Reason) -> String {
    match r {
        Reason::RoleChanged { role, paths } if paths.len() > MAX_PATHS => format!(
            "role `{role}` changed: {} and {} more",
            paths[..MAX_PATHS].join(", "),
            paths.len() - MAX_PATHS
        ),
        other => other.sentence(),
    }
}

fn short_reason(r: &Reason) -> String {
    match r {
        Reason::RoleChanged { role, .. } => format!("role `{role}` changed"),
        Reason::DeclarationChanged { fields } if !fields.is_empty() => {
            format!("`{}` changed", fields.join("`, `"))
        }
        other => other.sentence(),
    }
}

/// The plan's images (those in `keep`, or all) as a mermaid graph, the images to build marked.
fn plan_mermaid(plan: &Plan, keep: Option<&[bool]>) -> String {
    let kept = |i: usize| keep.is_none_or(|k| k[i]);
    let mut out = String::from("```mermaid\ngraph TD\n");
    let id: std::collections::HashMap<&str, usize> = plan
        .images
        .iter()
        .enumerate()
        .map(|(i, img)| (img.name.as_str(), i))
        .collect();
    for (i, img) in plan.images.iter().enumerate().filter(|(i, _)| kept(*i)) {
        let _ = writeln!(out, "  n{i}[\"{}\"]", img.name);
    }
    for (i, img) in plan.images.iter().enumerate().filter(|(i, _)| kept(*i)) {
        if let Some(&p) = img.parent.as_deref().and_then(|p| id.get(p)) {
            if kept(p) {
                let _ = writeln!(out, "  n{p} --> n{i}");
            }
        }
    }
    let build: Vec<String> = plan
        .to_build()
        .map(|i| id[i.name.as_str()])
        .filter(|&i| kept(i))
        .map(|i| format!("n{i}"))
        .collect();
    if !build.is_empty() {
        out.push_str("  classDef build fill:#fde68a,stroke:#b45309,stroke-width:2px\n");
        let _ = writeln!(out, "  class {} build", build.join(","));
    }
    out.push_str("```\n");
    out
}
