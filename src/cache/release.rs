//! Release status changes on disk: the one writer of a record after its build. The rules of
//! which moves are allowed are [`crate::release`]'s; this takes the locks and rewrites.

use crate::error::{Error, ErrorKind, Result};
#[cfg(doc)]
use crate::release::TESTED_WITH_TAG;
use crate::release::{check, Change, Changed, Status, FORCED_TAG, STATUS_TAG};
use crate::version::short;

use super::Cache;

/// Applies `change` to the build of `image` that `spec` names (the newest when `None`): takes
/// the cache lock (shared: `layer cache gc` does not remove a record meanwhile) and the image's
/// lock (a build does not move the record meanwhile), reads the records again, checks the
/// move, and rewrites the record.
pub fn apply(
    cache: &Cache,
    image: &str,
    spec: Option<&str>,
    change: Change,
    waiting: &mut dyn FnMut(),
) -> Result<Changed> {
    apply_with(cache, image, spec, change, &[], waiting)
}

/// [`apply`], setting the tags `tags` too (`layer test`'s [`TESTED_WITH_TAG`]): the record is
/// rewritten when the status or one of them changes.
pub fn apply_with(
    cache: &Cache,
    image: &str,
    spec: Option<&str>,
    change: Change,
    tags: &[(&str, String)],
    waiting: &mut dyn FnMut(),
) -> Result<Changed> {
    let _cache_lock = cache.lock_shared(waiting)?;
    let _lock = cache.lock_image(image, waiting)?;
    let records = cache.records(image);
    let record = crate::release::find(&records, image, spec)?;
    let from = Status::of(record);
    let to = check(image, &record.version, from, change)?;
    if let (Change::Promote { .. }, Some(p)) = (change, &record.parent) {
        let revoked = cache
            .records(&p.name)
            .iter()
            .any(|r| r.version == p.version && Status::of(r) == Status::Revoked);
        if revoked {
            return Err(Error::Usage {
                kind: ErrorKind::RevokedParent,
                message: format!(
                    "`{image}` {} is built on revoked {} {} and cannot be promoted",
                    short(&record.version),
                    p.name,
                    short(&p.version)
                ),
                hint: Some(format!(
                    "rebuild it on a good parent: `layer build {image}`"
                )),
            });
        }
    }
    let mut record = record.clone();
    let same_tags = tags
        .iter()
        .all(|(k, v)| record.tags.get(*k).is_some_and(|t| t == v));
    for (k, v) in tags {
        record.tags.insert((*k).to_string(), v.clone());
    }
    if from == to && same_tags {
        return Ok(Changed {
            record,
            from,
            to,
            changed: false,
        });
    }
    record.tags.insert(STATUS_TAG.into(), to.as_str().into());
    if from == Status::Candidate && to == Status::Released {
        record.tags.insert(FORCED_TAG.into(), "true".into());
    }
    cache.rewrite_record(&record)?;
    Ok(Changed {
        record,
        from,
        to,
        changed: from != to,
    })
}
