//! Validated declarations. `decl` turns the raw TOML of a project into these; everything past
//! `decl` can rely on the invariants noted here (names are valid, every reference resolves, the
//! image graph and the role `depends` graph have no cycles).
//! They are serde types so that `decl` can keep a parsed project in the cache (`model-cache`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The project file at the root of every project.
pub const PROJECT_FILE: &str = "layer.toml";
/// Pinned resolutions of origins, beside the project file (`layer lock`).
pub const LOCK_FILE: &str = "layer.lock";
/// The format version `layer lock` writes.
pub const LOCK_VERSION: u32 = 2;

/// `[a-z0-9][a-z0-9_-]{0,62}`: names of images, roles, origins and backends.
pub fn valid_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_' || *c == b'-')
}

/// SPEC §3: how an image is built from its parent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    /// Each image on its parent's built artifact.
    #[default]
    Deep,
    /// The whole chain's roles applied straight onto the root origin.
    Shallow,
}

impl Strategy {
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Deep => "deep",
            Strategy::Shallow => "shallow",
        }
    }
}

impl std::str::FromStr for Strategy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "deep" => Ok(Strategy::Deep),
            "shallow" => Ok(Strategy::Shallow),
            _ => Err(format!(
                "unknown strategy `{s}`: expected `deep` or `shallow`"
            )),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Project {
    /// Absolute path of the folder holding `layer.toml`.
    pub root: PathBuf,
    pub strategy: Strategy,
    /// Name of the default backend (`rootfs` unless `[project].backend` says otherwise).
    pub backend: String,
    pub origins: BTreeMap<String, Origin>,
    /// Declared backends plus the built-in `rootfs`.
    pub backends: BTreeMap<String, Backend>,
    pub roles: BTreeMap<String, Role>,
    /// In topological order, ties broken by name.
    pub images: Vec<Image>,
    pub lock: Lock,
    /// `[remote]`: the shared cache, when the project declares one.
    pub remote: Option<RemoteConfig>,
}

/// `[remote]` of `layer.toml` (SPEC §8), validated: a URL layer can open and well-formed keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteConfig {
    /// `s3://BUCKET[/PREFIX]`, `file:///PATH`, `http(s)://...`.
    pub url: String,
    /// Public keys (`ed25519:BASE64`) whose signed records are trusted.
    pub trusted_keys: Vec<String>,
}

impl Project {
    pub fn image(&self, name: &str) -> Option<&Image> {
        self.images.iter().find(|i| i.name == name)
    }

    /// The backend an image is built with.
    pub fn backend_of(&self, image: &Image) -> &Backend {
        let name = image.backend.as_deref().unwrap_or(&self.backend);
        &self.backends[name]
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    pub name: String,
    pub source: OriginSource,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum OriginSource {
    /// A rootfs of one static busybox and its applet links; the path is on the build host.
    /// `blake3`, when the declaration pins it, is the binary's digest: plans use it without
    /// opening the file, and the build checks the binary against it.
    Busybox {
        path: PathBuf,
        blake3: Option<String>,
    },
    /// A Debian rootfs made by mmdebstrap.
    Debian {
        suite: String,
        variant: String,
        mirror: Option<String>,
        components: Vec<String>,
        /// Whether the suite's `-updates` archive is in the sources (on by default).
        updates: bool,
        /// The suite's `-security` archive (on by default).
        security: Security,
        /// Further `deb ...` lines of apt sources (third-party or local archives).
        sources: Vec<String>,
    },
    /// A rootfs tarball in the project (relative path).
    TarFile { path: String },
    /// A rootfs tarball fetched from a URL and pinned by its sha256.
    TarUrl { url: String, sha256: String },
    /// An opaque id handed to a command or packer backend.
    Id { id: String },
    /// A command whose answer is pinned in `layer.lock` by `layer lock`.
    Resolve { command: Vec<String> },
}

impl OriginSource {
    pub fn kind(&self) -> &'static str {
        match self {
            OriginSource::Busybox { .. } => "busybox",
            OriginSource::Debian { .. } => "debian",
            OriginSource::TarFile { .. } | OriginSource::TarUrl { .. } => "tar",
            OriginSource::Id { .. } => "id",
            OriginSource::Resolve { .. } => "resolve",
        }
    }
}

/// `security = ...` of a `debian` origin: where its `SUITE-security` archive comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Security {
    /// The host's security mirror when the origin names no mirror, else the mirror's sibling
    /// (`.../debian` -> `.../debian-security`).
    Default,
    /// `security = false`.
    Off,
    /// `security = "URL"`.
    Mirror(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    Rootfs,
    Command,
    Packer,
}

impl BackendKind {
    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::Rootfs => "rootfs",
            BackendKind::Command => "command",
            BackendKind::Packer => "packer",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Backend {
    pub name: String,
    pub kind: BackendKind,
    /// `packer`: the template, relative to the root.
    pub template: Option<String>,
    /// `command`: argv, run in the project root.
    pub command: Vec<String>,
}

impl Backend {
    pub fn builtin_rootfs() -> Self {
        Backend {
            name: "rootfs".into(),
            kind: BackendKind::Rootfs,
            template: None,
            command: vec![],
        }
    }

    /// Files of the project that the backend runs (a command script, a template): their content
    /// is part of every key built with this backend.
    pub fn project_files(&self) -> Vec<&str> {
        let mut files = Vec::new();
        if let Some(t) = &self.template {
            files.push(t.as_str());
        }
        if let Some(c) = self.command.first() {
            if c.starts_with("./") || (c.contains('/') && !c.starts_with('/')) {
                files.push(c.as_str());
            }
        }
        files
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Role {
    pub name: String,
    /// The role folder, relative to the root (`roles/java`).
    pub dir: String,
    pub depends: Vec<String>,
    pub packages: Vec<String>,
    /// Extra apt sources (`deb ...` lines) the role's packages come from.
    pub sources: Vec<String>,
    pub vars: BTreeMap<String, String>,
}

/// Where an image starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Base {
    Parent(String),
    Origin(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Image {
    pub name: String,
    /// `images/NAME.toml`.
    pub file: String,
    pub description: Option<String>,
    /// MAJOR.MINOR as declared (`0.1` when not declared).
    pub version: String,
    pub base: Base,
    pub roles: Vec<String>,
    pub packages: Vec<String>,
    /// Extra apt sources (`deb ...` lines) the image's packages come from.
    pub sources: Vec<String>,
    /// Backend named by the image itself, if any.
    pub backend: Option<String>,
    pub max_age: Option<Duration>,
    /// `max_age` as written, for messages.
    pub max_age_text: Option<String>,
    /// `from = "PARENT@PIN"`: the version pin (`2`, `2.1`, `2.1.3`); the image is built on the
    /// newest released build of its parent under it, not on the parent's current code.
    pub pin: Option<String>,
    pub vars: BTreeMap<String, String>,
    /// Variable name -> the environment variable its value is read from.
    pub secrets: BTreeMap<String, String>,
    pub tags: BTreeMap<String, String>,
    pub tests: Vec<ImageTest>,
}

impl Image {
    pub fn parent(&self) -> Option<&str> {
        match &self.base {
            Base::Parent(p) => Some(p),
            Base::Origin(_) => None,
        }
    }

    pub fn origin(&self) -> Option<&str> {
        match &self.base {
            Base::Origin(o) => Some(o),
            Base::Parent(_) => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageTest {
    pub name: String,
    pub run: String,
    /// `inherit = true`: also run in every image built on this one (as role tests follow
    /// their role).
    pub inherit: bool,
}

/// `layer.lock`: origins resolved by `layer lock`, and the package versions of images on
/// `debian` origins.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lock {
    #[serde(default)]
    pub origins: BTreeMap<String, LockedOrigin>,
    #[serde(default)]
    pub images: BTreeMap<String, LockedImage>,
}

impl Lock {
    /// The locked packages (`NAME=VERSION`, sorted) image `name` installs, if it has any.
    pub fn packages_of(&self, name: &str) -> &[String] {
        self.images.get(name).map_or(&[], |l| &l.packages[..])
    }
}

/// One `LABEL DATE BLAKE3` pin of an archive's `Release`, split: `(label, "DATE BLAKE3")`.
pub fn split_release_pin(pin: &str) -> Option<(&str, &str)> {
    let (rest, digest) = pin.rsplit_once(' ')?;
    let (label, date) = rest.rsplit_once(' ')?;
    let at = label.len() + 1;
    Some((label, &pin[at..at + date.len() + 1 + digest.len()]))
}

impl LockedOrigin {
    /// `DATE BLAKE3` of the archive labelled `label` (a suite, or `URI SUITE`).
    pub fn release(&self, label: &str) -> Option<&str> {
        self.releases
            .iter()
            .filter_map(|p| split_release_pin(p))
            .find(|(l, _)| *l == label)
            .map(|(_, pin)| pin)
    }
}

/// `[images.NAME]` of `layer.lock`: what an image on a `debian` origin installs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockedImage {
    /// `NAME=VERSION`, sorted: the packages the image's build installs or upgrades on what it
    /// is built on (its parent's build, or the origin), dependencies included.
    #[serde(default)]
    pub packages: Vec<String>,
    /// `LABEL DATE BLAKE3` of the `Release` of every extra source of the image and its roles.
    #[serde(default)]
    pub releases: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockedOrigin {
    /// `resolve` origins: the id the command printed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `debian` origins: the suite's Release file date and its blake3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
    /// `busybox` origins: the binary's blake3, written by `layer lock`; plans then never open
    /// the host file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blake3: Option<String>,
    /// `debian` origins: `LABEL DATE BLAKE3` of every archive's `Release` (the suite, its
    /// `-updates` and `-security`, then `sources`); the label is the suite for the first
    /// three, `URI SUITE` for the others.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub releases: Vec<String>,
}

/// One `deb [OPTIONS] URI SUITE [COMPONENT...]` line of apt sources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AptSource {
    /// `[...]` as written, or empty.
    pub options: String,
    /// Without a trailing `/`.
    pub uri: String,
    /// A suite (`bookworm-security`) or, for a flat repository, a path ending in `/` (`./`).
    pub suite: String,
    pub components: Vec<String>,
}

impl AptSource {
    /// Parses a `deb` line; the error says what is wrong with it.
    pub fn parse(line: &str) -> Result<AptSource, String> {
        let rest = line
            .trim()
            .strip_prefix("deb ")
            .ok_or_else(|| format!("`{line}` is not a `deb URI SUITE [COMPONENT...]` line"))?
            .trim_start();
        let (options, rest) = match rest.strip_prefix('[') {
            Some(r) => {
                let (o, r) = r
                    .split_once(']')
                    .ok_or_else(|| format!("`{line}`: `[` without `]`"))?;
                (format!("[{}]", o.trim()), r)
            }
            None => (String::new(), rest),
        };
        let mut words = rest.split_whitespace();
        let (Some(uri), Some(suite)) = (words.next(), words.next()) else {
            return Err(format!("`{line}` needs a URI and a suite"));
        };
        if !uri.contains("://") {
            return Err(format!("`{line}`: `{uri}` is not a URI"));
        }
        let components: Vec<String> = words.map(str::to_string).collect();
        if !suite.ends_with('/') && components.is_empty() {
            return Err(format!(
                "`{line}` names no component (a flat repository's suite ends in `/`, as `./`)"
            ));
        }
        Ok(AptSource {
            options,
            uri: uri.trim_end_matches('/').to_string(),
            suite: suite.to_string(),
            components,
        })
    }

    /// The line again, normalized.
    pub fn line(&self) -> String {
        let mut out = String::from("deb ");
        if !self.options.is_empty() {
            out.push_str(&self.options);
            out.push(' ');
        }
        out.push_str(&self.uri);
        out.push(' ');
        out.push_str(&self.suite);
        for c in &self.components {
            out.push(' ');
            out.push_str(c);
        }
        out
    }

    /// Where the archive's `Release` file is.
    pub fn release_url(&self) -> String {
        self.file_url("Release")
    }

    /// A file of the archive's index, relative to its `Release` (`main/binary-amd64/Packages`).
    pub fn file_url(&self, rel: &str) -> String {
        if self.suite.ends_with('/') {
            let suite = self.suite.trim_start_matches("./");
            format!("{}/{suite}{rel}", self.uri)
        } else {
            format!("{}/dists/{}/{rel}", self.uri, self.suite)
        }
    }

    /// The host folder of a `file://` archive, which sandboxes need to see.
    pub fn local_dir(&self) -> Option<&str> {
        self.uri.strip_prefix("file://")
    }
}

/// Why `url` cannot name a remote cache (SPEC §8), or `None` when it can: `s3://BUCKET[/PREFIX]`,
/// `file:///ABSOLUTE/PATH`, or `http(s)://HOST[/PATH]`.
pub fn remote_url_problem(url: &str) -> Option<String> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Some(format!("`{url}` is not a URL"));
    };
    match scheme {
        "s3" | "http" | "https" => {
            let host = rest.split('/').next().unwrap_or_default();
            if host.is_empty() {
                let what = if scheme == "s3" { "bucket" } else { "host" };
                return Some(format!("`{url}` names no {what}"));
            }
            None
        }
        "file" if rest.starts_with('/') && rest.len() > 1 => None,
        "file" => Some(format!("`{url}` is not an absolute `file:///PATH`")),
        _ => Some(format!(
            "`{url}`: `{scheme}://` is not a remote layer can use"
        )),
    }
}

/// Whether `key` is a public key as `layer keygen` prints it: `ed25519:` and the 32 bytes of
/// the key in standard base64 (44 characters, one `=` of padding; the padding may be left off).
pub fn valid_public_key(key: &str) -> bool {
    let Some(b64) = key.strip_prefix("ed25519:") else {
        return false;
    };
    let b64 = b64.strip_suffix('=').unwrap_or(b64);
    b64.len() == 43
        && b64
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
}

#[cfg(test)]
mod tests {
    use super::valid_name;

    /// The rule `decl`'s name hint words.
    #[test]
    fn names() {
        for ok in ["a", "base-linux", "app_server2", "0day"] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in ["", "Base", "-a", "_a", "a.b", "a b", &"a".repeat(64)] {
            assert!(!valid_name(bad), "{bad}");
        }
    }
}
