//! What a build asks of `layer.lock` before anything starts: are the locked versions of the
//! images it builds still served.

use std::collections::BTreeSet;

use super::archive::{self, Archive};
use super::{images_on, own_sources};
use crate::error::{Error, ErrorKind, Result};
use crate::graph::Graph;
use crate::model::{OriginSource, Project, LOCK_FILE};

/// What a build asks before anything starts, for the images it will build (`images`, indices):
/// every one on a `debian` origin has its packages in `layer.lock`, and the mirror still
/// serves them. Each archive's `Release` is fetched; when all match the lock, nothing more is
/// read. When some moved, the suite's own `Release` must still match unless the origin is made
/// already (`origin_made`: mmdebstrap could not make it as locked), and every locked version
/// must still be in the archives' indexes; then the build holds to the lock and the moves are
/// returned as notes (`layer lock --update` takes them). Errors are exit 2 and name the
/// package and `layer lock --update`.
pub fn check_served(
    project: &Project,
    graph: &Graph,
    images: &[usize],
    origin_made: &dyn Fn(&str) -> bool,
) -> Result<Vec<String>> {
    let mut notes = Vec::new();
    for (name, origin) in &project.origins {
        if !matches!(origin.source, OriginSource::Debian { .. }) {
            continue;
        }
        let on: BTreeSet<usize> = images_on(project, graph, name).into_iter().collect();
        let building: Vec<usize> = images.iter().copied().filter(|i| on.contains(i)).collect();
        if building.is_empty() {
            continue;
        }
        let not_locked: Vec<&str> = building
            .iter()
            .map(|&i| project.images[i].name.as_str())
            .filter(|n| !project.lock.images.contains_key(*n))
            .collect();
        let locked = project.lock.origins.get(name);
        if !not_locked.is_empty() || locked.is_none_or(|l| l.releases.is_empty()) {
            let what = if not_locked.is_empty() {
                format!("origin `{name}` has no archives")
            } else {
                format!("{} has no package versions", ticks(&not_locked))
            };
            return Err(Error::Input {
                kind: ErrorKind::PackagesNotLocked,
                path: LOCK_FILE.into(),
                message: format!(
                    "{what} in `layer.lock`: builds on `debian` origins install locked versions"
                ),
                hint: Some("run `layer lock` and commit `layer.lock`".into()),
            });
        }
        let locked = locked.expect("checked");
        let mut archives: Vec<(Archive, Option<String>)> = archive::origin_archives(&origin.source)
            .into_iter()
            .map(|a| {
                let pin = locked.release(&a.label).map(str::to_string);
                (a, pin)
            })
            .collect();
        for &i in &building {
            let l = &project.lock.images[&project.images[i].name];
            for line in own_sources(project, graph, i) {
                if let Some(a) = Archive::extra(&line) {
                    if !archives.iter().any(|(b, _)| b.label == a.label) {
                        let pin = l
                            .releases
                            .iter()
                            .filter_map(|p| crate::model::split_release_pin(p))
                            .find(|(lab, _)| *lab == a.label)
                            .map(|(_, p)| p.to_string());
                        archives.push((a, pin));
                    }
                }
            }
        }
        let gone_error = |message: String| {
            Error::Input {
            kind: ErrorKind::LockedVersionGone,
            path: LOCK_FILE.into(),
            message,
            hint: Some("run `layer lock --update` to lock what the mirror serves now, and commit `layer.lock`".into()),
        }
        };
        let mut moved = Vec::new();
        let mut releases = Vec::new();
        for (a, pin) in &archives {
            let url = a.source.release_url();
            let bytes =
                archive::fetch(&url).map_err(|e| gone_error(format!("origin `{name}`: {e}")))?;
            let now = archive::release_pin(&url, &bytes)
                .map_err(|e| gone_error(format!("origin `{name}`: {e}")))?;
            if pin.as_deref() != Some(now.as_str()) {
                let date = |p: &str| p.split(' ').next().unwrap_or_default().to_string();
                moved.push((a.label.clone(), pin.as_deref().map(date), date(&now)));
            }
            releases.push(bytes);
        }
        if moved.is_empty() {
            continue;
        }
        if let OriginSource::Debian { suite, .. } = &origin.source {
            if let Some((_, old, new)) = moved.iter().find(|(l, _, _)| l == suite) {
                if !origin_made(name) {
                    return Err(gone_error(format!(
                        "origin `{name}`: the mirror's `{suite}` Release is no longer the one `layer.lock` pins (locked {}, now {new}), so the origin cannot be made as locked",
                        old.as_deref().unwrap_or("nothing")
                    )));
                }
            }
        }
        let mut served = BTreeSet::new();
        for ((a, _), bytes) in archives.iter().zip(&releases) {
            served.extend(
                archive::served(&a.source, bytes, archive::host_arch())
                    .map_err(|e| gone_error(format!("origin `{name}`: {e}")))?,
            );
        }
        let mut gone: Vec<String> = Vec::new();
        for &i in &building {
            let image = &project.images[i].name;
            for p in project.lock.packages_of(image) {
                if !served.contains(p) {
                    let (n, v) = p.split_once('=').unwrap_or((p, ""));
                    gone.push(format!("`{n}` {v} (image `{image}`)"));
                }
            }
        }
        if !gone.is_empty() {
            return Err(gone_error(format!(
                "the mirror no longer serves {} locked in `layer.lock`: {}",
                if gone.len() == 1 {
                    "a version"
                } else {
                    "versions"
                },
                gone.join(", ")
            )));
        }
        notes.push(format!(
            "origin `{name}`: the mirror moved since `layer.lock` was written ({}); builds install the locked versions, which it still serves; `layer lock --update` takes the updates",
            moved.iter().map(|(l, _, new)| format!("`{l}` {new}")).collect::<Vec<_>>().join(", ")
        ));
    }
    Ok(notes)
}

/// `a`, `b` and `c` in backticks.
fn ticks(names: &[&str]) -> String {
    let t: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    match t.len() {
        0 => String::new(),
        1 => t[0].clone(),
        n => format!("{} and {}", t[..n - 1].join(", "), t[n - 1]),
    }
}
