//! `layer plan`: what a build would do, and why; and the planning `plan` and `build` share.

use clap::{Args, ValueEnum};

use super::args::{Global, MaxAge, Select};
use super::print::{out, pin_warnings};
use super::resolve::{connect, no_teardown, project_root, resolve_targets};
use crate::error::Result;
use crate::model::Strategy;
use crate::plan::Selection;
use crate::render::{self, Style};
use crate::since::AtRevision;
use crate::workspace::Workspace;

/// The flags of `layer plan`.
#[derive(Args, Debug)]
pub struct PlanArgs {
    /// Images to plan, with their ancestors in deep builds [default: all]
    targets: Vec<String>,
    #[command(flatten)]
    select: Select,
    #[arg(long, value_enum, default_value_t = PlanFormat::Text)]
    format: PlanFormat,
    /// The same as `--format json`
    #[arg(long, conflicts_with = "format")]
    json: bool,
    /// Exit 1 when something would be built, 0 when nothing would
    #[arg(long)]
    exit_code: bool,
    #[command(flatten)]
    max_age: MaxAge,
}

/// `--format` of `layer plan`.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum PlanFormat {
    /// An image a line, with its action, wave and reasons
    Text,
    /// The plan as one JSON object
    Json,
    /// A pull request comment: a summary, a table, a mermaid graph
    Markdown,
    /// The images to build by wave, for a CI job matrix: `{"waves": [[...], ...], "count": N}`
    Matrix,
    /// A GitLab CI child pipeline: a job per image to build, `needs:` on its parent's job
    Gitlab,
}

pub fn run(g: &Global, args: &PlanArgs, style: Style) -> Result<i32> {
    let (mut ws, since) = open(g, &args.select)?;
    if g.verbose > 0 {
        eprintln!("{}", ws.watch.describe());
    }
    let remote = connect(g, &mut ws)?;
    let (ws, since, _remote) = (no_teardown(ws), no_teardown(since), no_teardown(remote));
    let sel = selection(&ws, &args.targets, &args.select, &args.max_age, false)?;
    let plan = no_teardown(crate::since::plan(&ws, sel, since.as_ref()));
    pin_warnings(g, &ws);
    let format = if args.json {
        PlanFormat::Json
    } else {
        args.format
    };
    out(&match format {
        PlanFormat::Text => render::plan_text(&plan, style),
        PlanFormat::Json => render::json(&*plan),
        PlanFormat::Markdown => render::plan_markdown(&plan),
        PlanFormat::Matrix => render::plan_matrix(&plan),
        PlanFormat::Gitlab => render::plan_gitlab(&plan),
    })?;
    Ok(if args.exit_code && plan.summary.build > 0 {
        1
    } else {
        0
    })
}

/// The workspace under `--strategy`, and with `--since REF` the project at REF beside it.
pub fn open(g: &Global, select: &Select) -> Result<(Workspace, Option<AtRevision>)> {
    crate::since::open(
        &project_root(g)?,
        g.cache.clone(),
        select.strategy.map(Strategy::from),
        select.since.as_deref(),
        &g.vars,
    )
}

/// The images to plan: the targets (with `--changed`, only stale ones), expired past
/// `--max-age`, rebuilt even when fresh with `force`.
pub fn selection(
    ws: &Workspace,
    targets: &[String],
    select: &Select,
    max_age: &MaxAge,
    force: bool,
) -> Result<Selection> {
    Ok(Selection {
        targets: resolve_targets(&ws.project, targets)?,
        changed: select.changed,
        force,
        force_deps: false,
        max_age: max_age.max_age.clone(),
        since: None,
    })
}
