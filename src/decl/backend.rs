//! `[backends.NAME]` of `layer.toml` validated into a [`Backend`]: each kind with the fields it
//! takes (`rootfs` none, `command` a command, `packer` a template), paths inside the project.

use super::check::{check_project_path, check_script_path};
use super::file::Source;
use super::raw::BackendRaw;
use crate::error::Diagnostics;
use crate::model::{Backend, BackendKind};

/// The backend `name` declared at `line`, or `None` with its problems pushed to `diags`.
pub(super) fn backend(
    src: &Source,
    line: Option<usize>,
    name: &str,
    raw: BackendRaw,
    diags: &mut Diagnostics,
) -> Option<Backend> {
    let mut ok = true;
    match raw.kind {
        BackendKind::Rootfs => {
            if raw.template.is_some() || raw.command.is_some() {
                diags.push(src.diag(
                    line,
                    format!(
                        "backend `{name}`: a `rootfs` backend takes no `template` or `command`"
                    ),
                ));
                ok = false;
            }
        }
        BackendKind::Command => {
            if raw.template.is_some() {
                diags.push(
                    src.diag(
                        line,
                        format!("backend `{name}`: `template` goes with `kind = \"packer\"`"),
                    )
                    .hint("remove `template`"),
                );
                ok = false;
            }
            if raw.command.as_ref().is_none_or(Vec::is_empty) {
                diags.push(
                    src.diag(
                        line,
                        format!("backend `{name}`: a `command` backend needs `command`"),
                    )
                    .hint("e.g. `command = [\"./scripts/build-image.sh\"]`"),
                );
                ok = false;
            } else if let Some(program) = raw.command.as_ref().and_then(|c| c.first()) {
                ok &= check_script_path(
                    src,
                    line,
                    &format!("backend `{name}`: script"),
                    program,
                    diags,
                );
            }
        }
        BackendKind::Packer => {
            if raw.command.is_some() {
                diags.push(
                    src.diag(
                        line,
                        format!("backend `{name}`: `command` goes with `kind = \"command\"`"),
                    )
                    .hint("remove `command`"),
                );
                ok = false;
            }
            match &raw.template {
                None => {
                    diags.push(
                        src.diag(
                            line,
                            format!("backend `{name}`: a `packer` backend needs `template`"),
                        )
                        .hint("e.g. `template = \"packer/aws.pkr.hcl\"`"),
                    );
                    ok = false;
                }
                Some(t) => {
                    ok &= check_project_path(
                        src,
                        line,
                        &format!("backend `{name}`: template"),
                        t,
                        diags,
                    );
                }
            }
        }
    }
    ok.then(|| Backend {
        name: name.to_string(),
        kind: raw.kind,
        template: raw.template,
        command: raw.command.unwrap_or_default(),
    })
}
