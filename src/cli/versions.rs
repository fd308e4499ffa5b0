//! `layer versions`: an image's recorded builds, newest first.

use clap::Args;

use super::args::{Global, Json};
use super::print::out;
use super::resolve::{cache_in, project_root, resolve_targets};
use crate::decl;
use crate::error::Result;
use crate::render;

/// The flags of `layer versions`.
#[derive(Args, Debug)]
pub struct VersionsArgs {
    image: String,
    #[command(flatten)]
    json: Json,
}

pub fn run(g: &Global, args: &VersionsArgs) -> Result<i32> {
    let image = &args.image;
    let root = project_root(g)?;
    let project = decl::load(&root)?;
    resolve_targets(&project, std::slice::from_ref(image))?;
    let cache = cache_in(g, &project.root);
    let records = cache.records(image);
    if args.json.json() {
        let rows: Vec<render::VersionRow> = records.iter().map(render::VersionRow::of).collect();
        out(&render::json(&rows))
    } else if records.is_empty() {
        if !g.quiet {
            eprintln!("`{image}` has no recorded builds");
        }
        Ok(0)
    } else {
        out(&render::versions_text(&records))
    }
}
