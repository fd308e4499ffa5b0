//! What commands print. Pure: values in, strings out.

use std::fmt::Write;

use serde::Serialize;

use crate::model::Project;
use crate::plan::{Action, Plan, PlannedImage, Reason};
use crate::record::Record;

/// ANSI colours, or none.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    pub color: bool,
}

impl Style {
    pub fn paint(&self, s: &str, code: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }
}

/// Pretty JSON with a final newline.
pub fn json<T: Serialize + ?Sized>(v: &T) -> String {
    let mut s = serde_json::to_string_pretty(v).expect("output serializes");
    s.push('\n');
    s
}

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
        let _ = writeln!(
            out,
            "since {} ({}): {} removed",
            si.rev,
            &si.commit[..si.commit.len().min(12)],
            si.removed.len()
        );
    }
    let width = plan.images.iter().map(|i| i.name.len()).max().unwrap_or(0);
    for img in &plan.images {
        let word = match img.action {
            Action::Build => style.paint("build", "1;33"),
            Action::Fresh => style.paint("fresh", "32"),
            Action::Skip => style.paint("skip ", "2"),
        };
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

/// Images with a reason of their own, as opposed to those built because a parent is; those
/// with a change to show (a role, a field, an origin) before those that are only new.
fn root_causes(plan: &Plan) -> Vec<&PlannedImage> {
    let mut causes: Vec<&PlannedImage> = plan
        .to_build()
        .filter(|i| {
            i.reasons
                .iter()
                .any(|r| !matches!(r, Reason::ParentChanged { .. }))
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
    let s = &plan.summary;
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
    if s.build == 0 {
        let _ = writeln!(
            out,
            "**Nothing to build**{since}: {} of {total} images fresh, {} not selected.",
            s.fresh, s.skip
        );
    } else {
        let causes = root_causes(plan);
        let mut why: Vec<String> = causes
            .iter()
            .take(MAX_CAUSES)
            .map(|i| {
                format!(
                    "`{}` ({})",
                    i.name,
                    i.reasons
                        .iter()
                        .map(short_reason)
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })
            .collect();
        if causes.len() > MAX_CAUSES {
            why.push(format!("{} more", causes.len() - MAX_CAUSES));
        }
        let followers = s.build - causes.len();
        let mut line = format!(
            "**{} of {total} images to build**{since}: {}",
            s.build,
            why.join("; ")
        );
        if followers > 0 {
            let _ = write!(line, "; {followers} more built on a changed parent");
        }
        let _ = writeln!(out, "{line}.");
    }
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
            let action = match i.action {
                Action::Build => "**build**",
                Action::Fresh => "fresh",
                Action::Skip => "skip",
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

// ---------------------------------------------------------------------------------------------
// Graph.

#[derive(Serialize)]
struct GraphJson<'a> {
    schema: u32,
    origins: Vec<GraphOrigin<'a>>,
    images: Vec<GraphImage<'a>>,
}

#[derive(Serialize)]
struct GraphOrigin<'a> {
    name: &'a str,
    kind: &'a str,
}

#[derive(Serialize)]
struct GraphImage<'a> {
    name: &'a str,
    parent: Option<&'a str>,
    origin: Option<&'a str>,
    roles: &'a [String],
    version: &'a str,
}

/// The origins used by the images in `keep`.
fn used_origins<'a>(project: &'a Project, keep: &[bool]) -> Vec<&'a str> {
    let set: std::collections::BTreeSet<&str> = project
        .images
        .iter()
        .zip(keep)
        .filter(|(_, k)| **k)
        .filter_map(|(i, _)| i.origin())
        .collect();
    set.into_iter().collect()
}

pub fn graph_json(project: &Project, keep: &[bool]) -> String {
    let origins = used_origins(project, keep)
        .into_iter()
        .map(|o| GraphOrigin {
            name: o,
            kind: project.origins[o].source.kind(),
        })
        .collect();
    let images = project
        .images
        .iter()
        .zip(keep)
        .filter(|(_, k)| **k)
        .map(|(i, _)| GraphImage {
            name: &i.name,
            parent: i.parent(),
            origin: i.origin(),
            roles: &i.roles,
            version: &i.version,
        })
        .collect();
    json(&GraphJson {
        schema: 1,
        origins,
        images,
    })
}

pub fn graph_dot(project: &Project, keep: &[bool]) -> String {
    let mut out =
        String::from("digraph layer {\n  rankdir=TB;\n  node [shape=box, style=rounded];\n");
    for o in used_origins(project, keep) {
        let _ = writeln!(
            out,
            "  \"origin:{o}\" [label=\"{o}\", shape=cylinder, style=dashed];"
        );
    }
    for (img, _) in project.images.iter().zip(keep).filter(|(_, k)| **k) {
        let _ = writeln!(
            out,
            "  \"{}\" [label=\"{}\\n{}\"];",
            img.name, img.name, img.version
        );
    }
    for (img, _) in project.images.iter().zip(keep).filter(|(_, k)| **k) {
        match (img.parent(), img.origin()) {
            (Some(p), _) => {
                let _ = writeln!(out, "  \"{p}\" -> \"{}\";", img.name);
            }
            (_, Some(o)) => {
                let _ = writeln!(out, "  \"origin:{o}\" -> \"{}\";", img.name);
            }
            _ => {}
        }
    }
    out.push_str("}\n");
    out
}

pub fn graph_mermaid(project: &Project, keep: &[bool]) -> String {
    let mut out = String::from("graph TD\n");
    let origins = used_origins(project, keep);
    for (k, o) in origins.iter().enumerate() {
        let _ = writeln!(out, "  o{k}[(\"{o}\")]");
    }
    let kept: Vec<usize> = (0..project.images.len()).filter(|&i| keep[i]).collect();
    for &i in &kept {
        let img = &project.images[i];
        let _ = writeln!(out, "  n{i}[\"{} {}\"]", img.name, img.version);
    }
    for &i in &kept {
        let img = &project.images[i];
        if let Some(p) = img.parent() {
            let p = project
                .images
                .iter()
                .position(|x| x.name == p)
                .expect("parents resolve");
            let _ = writeln!(out, "  n{p} --> n{i}");
        } else if let Some(o) = img.origin() {
            let k = origins.iter().position(|x| *x == o).expect("origin listed");
            let _ = writeln!(out, "  o{k} --> n{i}");
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// List and hash.

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
}

#[derive(Serialize)]
pub struct LatestArtifact {
    pub version: String,
    pub artifact: String,
    pub built_at: String,
}

impl LatestArtifact {
    pub fn of(r: &Record) -> Self {
        LatestArtifact {
            version: r.version.clone(),
            artifact: r.artifact.id.clone(),
            built_at: r.built_at.clone(),
        }
    }
}

pub fn list_text(rows: &[ListRow], style: Style) -> String {
    let base = |r: &ListRow| match (r.parent, r.origin) {
        (Some(p), _) => format!("from {p}"),
        (_, Some(o)) => format!("origin {o}"),
        _ => String::new(),
    };
    let header = ["IMAGE", "BASE", "VERSION", "STATUS", "LATEST", "ROLES"];
    let cells: Vec<[String; 6]> = rows
        .iter()
        .map(|r| {
            [
                r.name.to_string(),
                base(r),
                r.version.to_string(),
                r.status.to_string(),
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
    let line = |cols: [&str; 6], status_painted: Option<String>| {
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
            [&c[0], &c[1], &c[2], &c[3], &c[4], &c[5]],
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
    }
    out
}

/// `layer hash`: `KEY  NAME` lines, like `b3sum`.
pub fn hash_text(keys: &[(&str, &str)]) -> String {
    keys.iter()
        .map(|(name, key)| format!("{key}  {name}\n"))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Builds and versions.

/// The closing status of `layer build`, for stderr.
pub fn build_summary(report: &crate::exec::Report) -> String {
    use crate::exec::Done;
    let mut s = String::new();
    if let Some(sig) = report.interrupted {
        let _ = writeln!(s, "interrupted by signal {sig}: running builds were stopped and nothing of them was recorded");
    }
    let _ = writeln!(
        s,
        "built {}, fresh {}, failed {}, skipped {}",
        report.count(Done::Built),
        report.count(Done::Fresh),
        report.count(Done::Failed),
        report.count(Done::Skipped),
    );
    for i in &report.images {
        match (i.action, &i.cause, &i.error) {
            (Done::Failed, _, Some(e)) => {
                let _ = writeln!(s, "  failed   {}: {e}", i.name);
            }
            (Done::Skipped, Some(c), _) if c != "not selected" => {
                let _ = writeln!(s, "  skipped  {}: {c}", i.name);
            }
            _ => {}
        }
    }
    s
}

#[derive(Serialize)]
pub struct VersionRow<'a> {
    pub version: &'a str,
    pub status: &'a str,
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
            built_at: &r.built_at,
            artifact: &r.artifact.id,
            key: &r.key,
            forced: r.forced,
            tags: &r.tags,
        }
    }
}

pub fn versions_text(records: &[Record]) -> String {
    let rows: Vec<VersionRow> = records.iter().map(VersionRow::of).collect();
    let w = |f: &dyn Fn(&VersionRow) -> usize, h: &str| {
        rows.iter().map(f).max().unwrap_or(0).max(h.len())
    };
    let (wv, ws, wb, wa) = (
        w(&|r| r.version.len(), "VERSION"),
        w(&|r| r.status.len(), "STATUS"),
        w(&|r| r.built_at.len(), "BUILT"),
        w(&|r| r.artifact.len(), "ARTIFACT"),
    );
    let mut s = format!(
        "{:wv$}  {:ws$}  {:wb$}  {:wa$}  KEY\n",
        "VERSION", "STATUS", "BUILT", "ARTIFACT"
    );
    for r in &rows {
        let _ = writeln!(
            s,
            "{:wv$}  {:ws$}  {:wb$}  {:wa$}  {}",
            r.version,
            r.status,
            r.built_at,
            r.artifact,
            &r.key[..12.min(r.key.len())]
        );
    }
    s
}

/// One image's test results for the terminal: a line per test, the output of failed ones.
pub fn image_tests_text(r: &crate::backend::rootfs::check::ImageTests, style: Style) -> String {
    let mut s = String::new();
    let head = match r.result.as_str() {
        "passed" => style.paint("passed", "32"),
        other => style.paint(other, "1;31"),
    };
    let _ = writeln!(
        s,
        "{} {} {head} ({} tests, {:.1}s) -> {}",
        r.name,
        r.version,
        r.tests.len(),
        r.duration_ms as f64 / 1000.0,
        r.release_status
    );
    if let Some(e) = &r.error {
        let _ = writeln!(s, "  error: {e}\n  log: {}", r.log);
    }
    for t in &r.tests {
        let mark = if t.passed {
            style.paint("ok  ", "32")
        } else {
            style.paint("FAIL", "1;31")
        };
        let _ = writeln!(
            s,
            "  {mark} {} ({:.1}s){}",
            t.name,
            t.duration_ms as f64 / 1000.0,
            if t.passed {
                String::new()
            } else {
                format!(": {}", t.status)
            }
        );
        if !t.passed {
            for line in t
                .output
                .lines()
                .rev()
                .take(20)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
            {
                let _ = writeln!(s, "       | {line}");
            }
        }
    }
    s
}
