//! `[origins.NAME]` of `layer.toml` validated into an [`OriginSource`]: exactly one source
//! (`busybox`, `debian`, `tar`, `id` or `resolve`), a tar URL with its sha256, project paths
//! inside the project.

use std::path::PathBuf;

use super::check::{check_project_path, check_script_path};
use super::file::Source;
use super::raw::{DebianRaw, OriginRaw};
use crate::error::Diagnostics;
use crate::model::{AptSource, OriginSource, Security};

/// Where the origin `name` declared at `line` comes from, or `None` with its problems pushed
/// to `diags`.
pub(super) fn origin_source(
    src: &Source,
    line: Option<usize>,
    name: &str,
    raw: OriginRaw,
    diags: &mut Diagnostics,
) -> Option<OriginSource> {
    if !one_source(src, line, name, &raw, diags) {
        return None;
    }
    if let Some(path) = raw.busybox {
        let blake3 = raw.blake3.map(|d| d.to_ascii_lowercase());
        if let Some(d) = &blake3 {
            if d.len() != 64 || !d.bytes().all(|b| b.is_ascii_hexdigit()) {
                diags.push(
                    src.diag(
                        line,
                        format!("origin `{name}`: `blake3` must be 64 hex digits"),
                    )
                    .hint("`b3sum BUSYBOX`, or `layer lock`, which pins it in `layer.lock`"),
                );
                return None;
            }
        }
        return Some(OriginSource::Busybox {
            path: PathBuf::from(path),
            blake3,
        });
    }
    if let Some(d) = raw.debian {
        return debian_source(src, line, name, d, diags);
    }
    if let Some(tar) = raw.tar {
        return tar_source(src, line, name, tar, raw.sha256, diags);
    }
    if let Some(id) = raw.id {
        if id.is_empty() {
            diags.push(src.diag(line, format!("origin `{name}`: `id` is empty")));
            return None;
        }
        return Some(OriginSource::Id { id });
    }
    resolve_source(src, line, name, raw.resolve.unwrap_or_default(), diags)
}

/// `debian = { suite, variant, mirror, components, updates, security, sources }`. `sid`,
/// `unstable` and `experimental` have no `-updates` or `-security` archives: both default off.
fn debian_source(
    src: &Source,
    line: Option<usize>,
    name: &str,
    d: DebianRaw,
    diags: &mut Diagnostics,
) -> Option<OriginSource> {
    let rolling = matches!(d.suite.as_str(), "sid" | "unstable" | "experimental");
    let security = match d.security {
        None if rolling => Security::Off,
        None | Some(toml::Value::Boolean(true)) => Security::Default,
        Some(toml::Value::Boolean(false)) => Security::Off,
        Some(toml::Value::String(u)) if u.contains("://") => {
            Security::Mirror(u.trim_end_matches('/').to_string())
        }
        Some(v) => {
            diags.push(
                src.diag(
                    line,
                    format!(
                        "origin `{name}`: `security = {v}` is neither `true`, `false` nor a URL"
                    ),
                )
                .hint("e.g. `security = \"http://deb.debian.org/debian-security\"`"),
            );
            return None;
        }
    };
    let mut sources = Vec::new();
    for s in &d.sources {
        match AptSource::parse(s) {
            Ok(a) => sources.push(a.line()),
            Err(e) => {
                diags.push(
                    src.diag(line, format!("origin `{name}`: source {e}"))
                        .hint("e.g. `sources = [\"deb [trusted=yes] file:///srv/repo ./\"]`"),
                );
                return None;
            }
        }
    }
    Some(OriginSource::Debian {
        suite: d.suite,
        variant: d.variant.unwrap_or_else(|| "minbase".to_string()),
        mirror: d.mirror.map(|m| m.trim_end_matches('/').to_string()),
        components: d.components,
        updates: d.updates.unwrap_or(!rolling),
        security,
        sources,
    })
}

/// Whether the origin names exactly one source, and `sha256` only beside a `tar`.
fn one_source(
    src: &Source,
    line: Option<usize>,
    name: &str,
    raw: &OriginRaw,
    diags: &mut Diagnostics,
) -> bool {
    let given: Vec<&str> = [
        ("busybox", raw.busybox.is_some()),
        ("debian", raw.debian.is_some()),
        ("tar", raw.tar.is_some()),
        ("id", raw.id.is_some()),
        ("resolve", raw.resolve.is_some()),
    ]
    .into_iter()
    .filter_map(|(k, set)| set.then_some(k))
    .collect();
    if given.len() != 1 {
        let message = if given.is_empty() {
            format!("origin `{name}` says nothing about where it comes from")
        } else {
            format!(
                "origin `{name}` has {}; it needs exactly one",
                given
                    .iter()
                    .map(|g| format!("`{g}`"))
                    .collect::<Vec<_>>()
                    .join(" and ")
            )
        };
        diags.push(
            src.diag(line, message)
                .hint("give one of `busybox`, `debian`, `tar`, `id` or `resolve`"),
        );
        return false;
    }
    if raw.blake3.is_some() && raw.busybox.is_none() {
        diags.push(
            src.diag(
                line,
                format!("origin `{name}`: `blake3` goes with `busybox`"),
            )
            .hint("remove `blake3`"),
        );
        return false;
    }
    if raw.sha256.is_some() && raw.tar.is_none() {
        diags.push(
            src.diag(
                line,
                format!("origin `{name}`: `sha256` goes with a `tar` URL"),
            )
            .hint("remove `sha256`"),
        );
        return false;
    }
    true
}

/// `tar = "URL"` with its `sha256` (64 hex digits, kept lowercase), or `tar = "PATH"` of a
/// tarball in the project.
fn tar_source(
    src: &Source,
    line: Option<usize>,
    name: &str,
    tar: String,
    sha256: Option<String>,
    diags: &mut Diagnostics,
) -> Option<OriginSource> {
    if tar.contains("://") {
        let Some(sha256) = sha256 else {
            diags.push(
                src.diag(
                    line,
                    format!("origin `{name}`: a `tar` URL needs its `sha256`"),
                )
                .hint("add `sha256 = \"...\"` with the archive's sha256 (`sha256sum FILE`)"),
            );
            return None;
        };
        let sha256 = sha256.to_ascii_lowercase();
        if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            diags.push(src.diag(
                line,
                format!("origin `{name}`: `sha256` must be 64 hex digits"),
            ));
            return None;
        }
        return Some(OriginSource::TarUrl { url: tar, sha256 });
    }
    if !check_project_path(src, line, &format!("origin `{name}`: tarball"), &tar, diags) {
        return None;
    }
    Some(OriginSource::TarFile { path: tar })
}

/// `resolve = ["PROGRAM", ...]`: a command, whose program, when a script of the project,
/// stays inside it.
fn resolve_source(
    src: &Source,
    line: Option<usize>,
    name: &str,
    command: Vec<String>,
    diags: &mut Diagnostics,
) -> Option<OriginSource> {
    if command.is_empty() {
        diags.push(
            src.diag(line, format!("origin `{name}`: `resolve` needs a command"))
                .hint("e.g. `resolve = [\"./scripts/latest-ami.sh\"]`"),
        );
        return None;
    }
    if !check_script_path(
        src,
        line,
        &format!("origin `{name}`: `resolve` script"),
        &command[0],
        diags,
    ) {
        return None;
    }
    Some(OriginSource::Resolve { command })
}
