//! `layer list`: every image with its base, version, status and latest artifact.

use clap::Args;

use super::args::{Global, Json};
use super::print::out;
use super::resolve::{no_teardown, open};
use crate::error::Result;
use crate::plan::Selection;
use crate::record::Lookup;
use crate::render::{self, Style};

/// The flags of `layer list`.
#[derive(Args, Debug)]
pub struct ListArgs {
    #[command(flatten)]
    json: Json,
}

pub fn run(g: &Global, args: &ListArgs, style: Style) -> Result<i32> {
    let ws = no_teardown(open(g, None)?);
    let plan = no_teardown(ws.plan(&Selection::default()));
    let rows: Vec<render::ListRow> = ws
        .project
        .images
        .iter()
        .enumerate()
        .map(|(i, img)| {
            let p = &plan.images[i];
            let tests_changed = match &ws.lookups[i] {
                Lookup::Found(r) => crate::backend::rootfs::check::tests_changed(
                    r,
                    &crate::backend::rootfs::check::tests_digest(&ws, i),
                ),
                _ => false,
            };
            let latest = match &ws.lookups[i] {
                Lookup::Found(r) => Some(render::LatestArtifact::of(r)),
                _ => ws
                    .cache
                    .latest(&img.name)
                    .map(|r| render::LatestArtifact::of(&r)),
            };
            render::ListRow {
                name: &img.name,
                parent: img.parent(),
                origin: img.origin(),
                roles: &img.roles,
                version: &img.version,
                status: if p.reasons.is_empty() {
                    "fresh"
                } else {
                    "stale"
                },
                reasons: p.reasons.clone(),
                latest,
                tests_changed,
            }
        })
        .collect();
    out(&if args.json.json() {
        render::json(&rows)
    } else {
        render::list_text(&rows, style)
    })
}
