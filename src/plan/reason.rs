//! Why an image is stale: [`Reason`], one variant a kind with one sentence each (SPEC §5.1),
//! and the wording of a file change.

use serde::Serialize;

use crate::model::Strategy;
use crate::scan::FileChange;

/// Why an image is stale: one variant a kind, one sentence each (SPEC §5.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Reason {
    /// The cache has no record of this image.
    New,
    /// Declaration fields differ from the latest record (`roles`, `vars.PORT`, or
    /// `base-linux.packages` for an ancestor in a shallow chain).
    DeclarationChanged {
        fields: Vec<String>,
    },
    /// A role's files differ; `paths` are relative to the project root (empty when the old
    /// tree is no longer cached).
    RoleChanged {
        role: String,
        paths: Vec<String>,
    },
    OriginChanged {
        origin: String,
    },
    /// The parent's key changed (or, pinned, the pinned build is another).
    ParentChanged {
        parent: String,
    },
    /// The parent was (or is being) built again under the same key — forced, expired, or its
    /// artifact lost — so this build stands on an older build of the same inputs.
    ParentRebuilt {
        parent: String,
    },
    StrategyChanged {
        from: Strategy,
        to: Strategy,
    },
    BackendChanged {
        backend: String,
    },
    /// This build of the image's current key was revoked (`layer revoke`).
    Revoked {
        version: String,
    },
    /// The build was made on a parent build that was revoked since.
    ParentRevoked {
        parent: String,
        version: String,
    },
    /// The record is older than `max_age`.
    Expired {
        max_age: String,
        built_at: String,
    },
    Forced,
    /// A record exists for the key but its artifact is gone, or the record is unusable.
    MissingArtifact {
        detail: String,
    },
    /// With `--since`: the key is the one the revision has, but no cache holds a build of it
    /// (no record, or an unusable one); built for want of a cache, not for a change.
    NotCached,
    /// `build --reheat`: a new build on the image's own earlier build `from` (a version),
    /// asked for on the command line; plans never find it on their own.
    Reheat {
        from: String,
    },
}

impl Reason {
    pub fn sentence(&self) -> String {
        match self {
            Reason::New => "never built".into(),
            Reason::DeclarationChanged { fields } if fields.is_empty() => {
                "declaration changed".into()
            }
            Reason::DeclarationChanged { fields } => {
                format!("declaration changed: {}", fields.join(", "))
            }
            Reason::RoleChanged { role, paths } if paths.is_empty() => {
                format!("role `{role}` changed")
            }
            Reason::RoleChanged { role, paths } => {
                format!("role `{role}` changed: {}", paths.join(", "))
            }
            Reason::OriginChanged { origin } => format!("origin `{origin}` changed"),
            Reason::ParentChanged { parent } => format!("parent `{parent}` changed"),
            Reason::ParentRebuilt { parent } => {
                format!("parent `{parent}` was rebuilt from the same inputs")
            }
            Reason::StrategyChanged { from, to } => {
                format!("strategy changed from {} to {}", from.as_str(), to.as_str())
            }
            Reason::BackendChanged { backend } => format!("backend `{backend}` changed"),
            Reason::Revoked { version } => format!("build {version} is revoked"),
            Reason::ParentRevoked { parent, version } => {
                format!("built on revoked {parent} {version}")
            }
            Reason::Expired { max_age, built_at } => {
                format!("expired: built {built_at}, older than {max_age}")
            }
            Reason::Forced => "forced".into(),
            Reason::Reheat { from } => format!("reheat of {from}"),
            Reason::MissingArtifact { detail } => format!("artifact missing: {detail}"),
            Reason::NotCached => "not cached".into(),
        }
    }
}

/// One line for a file change, as `layer explain` prints it.
pub fn describe_file_change(path: &str, c: &FileChange) -> String {
    match c {
        FileChange::Added => format!("`{path}` added"),
        FileChange::Removed => format!("`{path}` removed"),
        FileChange::Content => format!("`{path}` changed"),
        FileChange::Mode(true) => format!("`{path}` became executable"),
        FileChange::Mode(false) => format!("`{path}` is no longer executable"),
        FileChange::Retarget { old, new } => format!("`{path}` now links to `{new}` (was `{old}`)"),
        FileChange::Type { old, new } => format!("`{path}` is now a {new} (was a {old})"),
    }
}
