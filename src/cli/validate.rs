//! `layer validate`: the declarations checked (every problem of every file, as any command
//! that loads them reports), and the templates of `packer` backends checked by `packer
//! validate -syntax-only` when Packer is installed; nothing is scanned, keyed or planned.

use clap::Args;

use super::args::Global;
use super::resolve::project_root;
use crate::decl;
use crate::error::{Error, ErrorKind, Result};
use crate::model::BackendKind;

/// The flags of `layer validate`.
#[derive(Args, Debug)]
pub struct ValidateArgs {}

pub fn run(g: &Global, _args: &ValidateArgs) -> Result<i32> {
    let project = decl::load(&project_root(g)?)?;
    let mut problems = Vec::new();
    let mut unchecked = Vec::new();
    for backend in project.backends.values() {
        if backend.kind != BackendKind::Packer {
            continue;
        }
        let template = backend.template.clone().unwrap_or_default();
        match crate::backend::packer::PackerBackend::new(backend) {
            Ok(packer) => {
                if let Err(output) = packer.validate(&project.root) {
                    problems.push(format!(
                        "backend `{}`: `packer validate` of `{template}` failed:\n{output}",
                        backend.name
                    ));
                }
            }
            Err(_) => unchecked.push(template),
        }
    }
    if !problems.is_empty() {
        return Err(Error::Usage {
            kind: ErrorKind::TemplateInvalid,
            message: problems.join("\n"),
            hint: None,
        });
    }
    if !g.quiet {
        for template in &unchecked {
            eprintln!("warning: `{template}` not checked: `packer` is not on PATH");
        }
        eprintln!(
            "valid: {} images, {} roles, {} origins, {} backends",
            project.images.len(),
            project.roles.len(),
            project.origins.len(),
            project.backends.len()
        );
    }
    Ok(0)
}
