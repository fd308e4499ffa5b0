//! The raw TOML of a project, as serde reads it: one `*Raw` mirror per table, spans kept where
//! a message names a line. Unknown keys are refused (`deny_unknown_fields`), so a typo reaches
//! the user as a "did you mean". These types never leave `decl`: the validators turn them into
//! [`crate::model`] types.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

use crate::model::{BackendKind, LockedImage, LockedOrigin, Strategy};

/// `layer.toml`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct ProjectFileRaw {
    #[serde(default)]
    pub project: ProjectRaw,
    #[serde(default)]
    pub origins: BTreeMap<String, Spanned<OriginRaw>>,
    #[serde(default)]
    pub backends: BTreeMap<String, Spanned<BackendRaw>>,
    pub remote: Option<Spanned<RemoteRaw>>,
}

/// `[remote]` in `layer.toml` (SPEC §8).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RemoteRaw {
    pub url: Option<Spanned<String>>,
    #[serde(default)]
    pub trusted_keys: Vec<Spanned<String>>,
}

/// `[project]` in `layer.toml`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct ProjectRaw {
    pub strategy: Option<Spanned<Strategy>>,
    pub backend: Option<Spanned<String>>,
}

/// `[origins.NAME]`: exactly one of the sources is meant to be set (checked, not typed).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct OriginRaw {
    pub busybox: Option<String>,
    pub debian: Option<DebianRaw>,
    pub tar: Option<String>,
    pub sha256: Option<String>,
    /// Beside `busybox`: the binary's blake3, so that plans never open it.
    pub blake3: Option<String>,
    pub id: Option<String>,
    pub resolve: Option<Vec<String>>,
}

/// `debian = { suite = ... }` of an origin.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DebianRaw {
    pub suite: String,
    #[serde(default)]
    pub variant: Option<String>,
    #[serde(default)]
    pub mirror: Option<String>,
    #[serde(default)]
    pub components: Vec<String>,
    /// `SUITE-updates` (on unless `false`).
    #[serde(default)]
    pub updates: Option<bool>,
    /// `SUITE-security`: `false`, `true` or the URL of a security mirror.
    #[serde(default)]
    pub security: Option<toml::Value>,
    #[serde(default)]
    pub sources: Vec<String>,
}

/// `[backends.NAME]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct BackendRaw {
    pub kind: BackendKind,
    pub template: Option<String>,
    pub command: Option<Vec<String>>,
}

/// `images/NAME.toml`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ImageRaw {
    pub description: Option<String>,
    pub version: Option<Spanned<String>>,
    pub from: Option<Spanned<String>>,
    pub origin: Option<Spanned<String>>,
    #[serde(default)]
    pub roles: Vec<Spanned<String>>,
    #[serde(default)]
    pub packages: Vec<Spanned<String>>,
    #[serde(default)]
    pub sources: Vec<Spanned<String>>,
    pub backend: Option<Spanned<String>>,
    pub max_age: Option<Spanned<String>>,
    #[serde(default)]
    pub vars: BTreeMap<String, Spanned<toml::Value>>,
    #[serde(default)]
    pub secrets: BTreeMap<String, Spanned<SecretRaw>>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    #[serde(default)]
    pub test: Vec<Spanned<TestRaw>>,
}

/// `[secrets] NAME = { env = "VAR" }` of an image.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SecretRaw {
    pub env: String,
}

/// `[[test]]` of an image.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TestRaw {
    pub name: String,
    pub run: String,
    #[serde(default)]
    pub inherit: bool,
}

/// `roles/NAME/role.toml` (a role folder without one reads as the default: no fields).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RoleRaw {
    #[serde(default)]
    pub depends: Vec<Spanned<String>>,
    #[serde(default)]
    pub packages: Vec<Spanned<String>>,
    #[serde(default)]
    pub sources: Vec<Spanned<String>>,
    #[serde(default)]
    pub vars: BTreeMap<String, Spanned<toml::Value>>,
}

/// `layer.lock`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LockRaw {
    pub version: u32,
    #[serde(default)]
    pub origins: BTreeMap<String, LockedOrigin>,
    #[serde(default)]
    pub images: BTreeMap<String, LockedImage>,
}
