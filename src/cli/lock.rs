//! `layer lock`: `resolve` and `debian` origins resolved into `layer.lock`.

use clap::Args;

use super::args::Global;
use super::print::out;
use super::resolve::project_root;
use crate::error::Result;

/// The flags of `layer lock`.
#[derive(Args, Debug)]
pub struct LockArgs {
    /// Resolve every origin again, not only those without a pin, and print what moved
    #[arg(long)]
    update: bool,
}

pub fn run(g: &Global, args: &LockArgs) -> Result<i32> {
    let outcome = crate::lock::lock(&project_root(g)?, g.cache.as_deref(), args.update)?;
    out(&crate::lock::report(&outcome, args.update))
}
