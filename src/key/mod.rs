//! Keys: what decides that an image must be built again.
//!
//! # What a key is
//!
//! The key of an image is the blake3 hash of a canonical record of everything its build
//! consumes, [`Inputs`]. Two builds with the same key are interchangeable, so the cache can hand
//! out the artifact of one for the other; a key that the cache has never recorded means the image
//! is stale. Keys are computed before anything runs, from declarations and file contents alone:
//! no build, no provisioner and no `resolve` command is ever run to know a key.
//!
//! The record is serialized as JSON with a fixed field order (structs, never hash maps; maps are
//! `BTreeMap`s, so ordered by key) and hashed with a prefix that names the schema,
//! [`KEY_SCHEMA`]. Changing what goes into keys means bumping the schema: every image becomes
//! stale once, which is what users should expect from a tool upgrade that changes meaning.
//!
//! The record is stored with every build, so `layer explain` and the plan's reasons are a diff
//! ([`diff`]) of two records — the one the cache has for the image's latest build and the one
//! computed now — and the hash and the explanation come from the same values: they cannot
//! disagree about what changed.
//!
//! # What goes in
//!
//! | input | why | deep | shallow |
//! |---|---|---|---|
//! | key schema | a new meaning of keys must not reuse old artifacts | ✓ | ✓ |
//! | image name | provisioners see `LAYER_IMAGE` | ✓ | ✓ |
//! | strategy | deep and shallow artifacts are built differently | ✓ | ✓ |
//! | backend: name, kind, command or template, and the content of project files they name | the builder is part of the build | ✓ | ✓ |
//! | parent's **key** (a pinned image: the key of the released parent build it is pinned to) | a changed parent changes what the child is built on; keys chain, so a change anywhere above ripples down | ✓ | — |
//! | origin identity (below) | the starting root filesystem | when the image has `origin` | the root origin of the chain |
//! | image declaration: `version`, `roles`, `packages` and `sources` (each sorted: sets), `[vars]` | they change the build or its version | this image | every image of the chain, root first |
//! | the image's locked packages (`NAME=VERSION`, from `layer.lock`) | a new version of a package makes exactly the images that install it stale | this image | every image of the chain |
//! | per role applied, in order: name, tree digest and declaration (`depends` in order; `packages` and `sources` sorted: sets; `[vars]`) | the configuration code itself | roles not applied by the parent chain | every role of the chain |
//! | reheats only (`build --reheat`): the build reheated from, key and version, in place of the parent or origin; the whole chain's declarations | a reheat stands on that build and installs the chain's locked packages; it never shares a key with a fresh build, and reheats of two builds differ | ✓ | ✓ |
//!
//! A role's tree digest ([`crate::scan::Tree`]) covers every entry below the role folder but its
//! `tests/` and its `role.toml`: path relative to the folder, type (file, folder, symlink), the
//! executable bit, content (blake3) and a symlink's target. `role.toml` is keyed as what it
//! declares ([`RoleDeclInputs`]), parsed and normalised as an image declaration is, not as
//! bytes: its comments, formatting, key order and the order or repetition of its `packages`
//! and `sources` change nothing that is built, so they change no key.
//!
//! Origin identities: `busybox` and `tar` files — the blake3 of the file; a `tar` URL — its
//! pinned sha256; `debian` — suite, variant, mirror, components, `updates`, `security`,
//! `sources`, and the suite's `Release` pin recorded in `layer.lock` when there is one (the
//! `-updates`, `-security` and other archives are not: what they bring reaches keys as each
//! image's locked packages); `id` — the id; `resolve` — the id recorded in `layer.lock`.
//!
//! # What stays out, and why
//!
//! | left out | why |
//! |---|---|
//! | mtimes, owners, inode numbers | a checkout, a `touch` or a copy changes them without changing content |
//! | absolute paths (of the project, of a `busybox` binary) | two clones in different folders must agree on keys |
//! | directory listing order | filesystems list entries in any order; trees are sorted by path |
//! | the environment | only declared `[vars]` reach a build |
//! | `[secrets]` | values must never be written into keys, records or logs; rotate a secret and rebuild with `--force` |
//! | comments, whitespace and key order of `images/NAME.toml` and `role.toml`; the order of `packages` and `sources` | declarations are keyed as parsed values, lists that are sets sorted |
//! | `description`, `max_age`, `[tags]`, `[[test]]`, a role's `tests/` | they describe, age or test an artifact; they do not change it (a build records the digest of the tests it passed, `Tested_With`, so a changed test shows without a rebuild) |
//! | the parent's name (deep) | its key says everything the name would, and more |
//! | an origin's name | renaming an origin with the same identity changes nothing that is built |
//! | the time of the build, the version's build number | these name a build; they are not inputs to it |
//!
//! Freshness is not only the key: a record must also exist and be readable, its local artifact
//! must exist, it must be younger than `max_age`, and in deep builds it must have been built on
//! the parent's current record. Those checks live in `plan`.

use std::collections::BTreeMap;
use std::sync::Arc;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, Result};
use crate::graph::{Graph, ImageId};
use crate::model::{
    Backend, BackendKind, Base, Image, Lock, OriginSource, Project, Role, Security, Strategy,
};
use crate::scan::Scanned;

/// Bump when the meaning or encoding of [`Inputs`] changes.
///
/// - 3: a role's `role.toml` is keyed as its parsed, normalised declaration, not as a file of
///   its tree (`RoleInputs::decl`).
pub const KEY_SCHEMA: u32 = 3;

/// The canonical inputs of one image's build; its key is their blake3.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inputs {
    pub schema: u32,
    pub image: String,
    pub strategy: Strategy,
    /// Shared by every image of the backend (serialized as the value itself).
    pub backend: Arc<BackendInputs>,
    pub base: BaseInputs,
    /// Deep: this image's declaration. Shallow: the chain's, root first.
    pub chain: Vec<DeclInputs>,
    /// The roles this build applies, in order; each shared by every image that applies it.
    pub roles: Vec<Arc<RoleInputs>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackendInputs {
    pub name: String,
    pub kind: BackendKind,
    pub command: Vec<String>,
    pub template: Option<String>,
    /// Project files the backend runs: path -> blake3.
    pub files: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum BaseInputs {
    Parent {
        key: String,
    },
    Origin {
        identity: OriginIdentity,
    },
    /// `layer build --reheat`: built on an earlier build of the same image (its key and
    /// version: a forced rebuild of a key is another tree) instead of its parent or origin.
    Reheat {
        key: String,
        version: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum OriginIdentity {
    Busybox {
        blake3: String,
    },
    Debian {
        suite: String,
        variant: String,
        mirror: Option<String>,
        components: Vec<String>,
        updates: bool,
        security: Security,
        sources: Vec<String>,
        /// The suite's `Release` as `layer.lock` pins it (`DATE BLAKE3`): what mmdebstrap
        /// makes the origin from. The `-updates`, `-security` and other archives are not
        /// here: what they bring reaches keys as each image's locked package versions.
        snapshot: Option<String>,
    },
    Tar {
        blake3: Option<String>,
        sha256: Option<String>,
    },
    Id {
        id: String,
    },
    Resolve {
        id: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeclInputs {
    pub name: String,
    pub version: String,
    pub roles: Vec<String>,
    /// Sorted: a set, whose order changes nothing that is built.
    pub packages: Vec<String>,
    /// Extra apt sources of the image, sorted.
    pub sources: Vec<String>,
    /// `NAME=VERSION` of the packages `layer.lock` says the image installs (images on
    /// `debian` origins), sorted.
    pub locked: Vec<String>,
    pub vars: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleInputs {
    pub name: String,
    /// The digest of the role's tree, its `tests/` and `role.toml` left out.
    pub tree: String,
    /// What its `role.toml` declares.
    pub decl: RoleDeclInputs,
}

/// A role's `role.toml`, normalised: what it declares, not how it is written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleDeclInputs {
    /// As declared: their order is the order they are applied in.
    pub depends: Vec<String>,
    /// Sorted and deduplicated: a set, whose order changes nothing that is built.
    pub packages: Vec<String>,
    /// Extra apt sources, sorted and deduplicated.
    pub sources: Vec<String>,
    pub vars: BTreeMap<String, String>,
}

impl RoleDeclInputs {
    pub fn of(role: &Role) -> RoleDeclInputs {
        RoleDeclInputs {
            depends: role.depends.clone(),
            packages: set(&role.packages),
            sources: set(&role.sources),
            vars: role.vars.clone(),
        }
    }
}

/// A list whose order means nothing, sorted and deduplicated.
fn set(v: &[String]) -> Vec<String> {
    let mut v = v.to_vec();
    v.sort();
    v.dedup();
    v
}

impl Inputs {
    /// The canonical encoding: what is hashed, and what `layer hash --inputs` prints.
    pub fn canonical(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("inputs serialize")
    }

    pub fn key(&self) -> String {
        hash_encoding(|w| serde_json::to_writer(w, self).expect("inputs serialize"))
    }

    /// [`Inputs::key`], from the canonical encodings of its backend and roles made before
    /// (`backend`, and `roles` in order): the bytes hashed are the same, but the roles an image
    /// shares with thousands of others are not encoded again for each (keying 10,000 images
    /// spent most of its time encoding roles). Checked against [`Inputs::key`] in debug builds.
    fn key_with(&self, backend: &[u8], roles: &[&[u8]]) -> String {
        // Every field, in the order serde encodes them: a field added to `Inputs` fails to
        // compile here until it is encoded here too.
        let Inputs {
            schema,
            image,
            strategy,
            backend: _,
            base,
            chain,
            roles: _,
        } = self;
        let key = hash_encoding(|w| {
            (|| -> std::io::Result<()> {
                write!(w, "{{\"schema\":{schema},\"image\":")?;
                encode(w, image)?;
                w.write_all(b",\"strategy\":")?;
                encode(w, strategy)?;
                w.write_all(b",\"backend\":")?;
                w.write_all(backend)?;
                w.write_all(b",\"base\":")?;
                encode(w, base)?;
                w.write_all(b",\"chain\":")?;
                encode(w, chain)?;
                w.write_all(b",\"roles\":[")?;
                for (n, r) in roles.iter().enumerate() {
                    if n > 0 {
                        w.write_all(b",")?;
                    }
                    w.write_all(r)?;
                }
                w.write_all(b"]}")
            })()
            .expect("hashing does not fail");
        });
        debug_assert_eq!(key, self.key(), "the encodings made before are the inputs'");
        key
    }
}

/// The key of the canonical encoding `write` writes: its blake3 after the schema's prefix.
/// The bytes go to a buffer kept by each thread and are hashed at once: a new 8 KiB buffer and
/// a streamed hash per image cost more than the encoding of a few hundred bytes.
fn hash_encoding(write: impl FnOnce(&mut dyn std::io::Write)) -> String {
    use std::io::Write as _;
    thread_local! {
        static BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    BUF.with(|buf| {
        // Taken, not borrowed: an encoding that keys another image inside `write` (none does)
        // would find an empty buffer rather than a panic.
        let mut b = buf.take();
        b.clear();
        write!(b, "layer-key-v{KEY_SCHEMA}\0").expect("writing to memory does not fail");
        write(&mut b);
        let key = blake3::hash(&b).to_hex().to_string();
        buf.replace(b);
        key
    })
}

/// Writes the canonical encoding of `v` (compact JSON) to `w`.
fn encode<T: Serialize + ?Sized>(w: &mut dyn std::io::Write, v: &T) -> std::io::Result<()> {
    serde_json::to_writer(w, v).map_err(std::io::Error::other)
}

/// The key of one image, with the inputs behind it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageKey {
    pub key: String,
    /// Shared with the records found for the key (the inputs of a found record are its key's
    /// own): a no-op plan at 10,000 images spent 6% of its time copying them.
    pub inputs: Arc<Inputs>,
}

/// The identity of origin `name` (SPEC §2), from declarations, the lock and scanned files.
pub fn origin_identity(project: &Project, name: &str, scanned: &Scanned) -> Result<OriginIdentity> {
    let origin = &project.origins[name];
    let locked = project.lock.origins.get(name);
    let file = || {
        scanned
            .origin_files
            .get(name)
            .cloned()
            .ok_or_else(|| Error::Input {
                kind: ErrorKind::OriginFile,
                path: "layer.toml".into(),
                message: format!("origin `{name}`: its file was not scanned"),
                hint: None,
            })
    };
    Ok(match &origin.source {
        OriginSource::Busybox { .. } => OriginIdentity::Busybox { blake3: file()? },
        OriginSource::TarFile { .. } => OriginIdentity::Tar {
            blake3: Some(file()?),
            sha256: None,
        },
        OriginSource::TarUrl { sha256, .. } => OriginIdentity::Tar {
            blake3: None,
            sha256: Some(sha256.clone()),
        },
        OriginSource::Debian {
            suite,
            variant,
            mirror,
            components,
            updates,
            security,
            sources,
        } => OriginIdentity::Debian {
            suite: suite.clone(),
            variant: variant.clone(),
            mirror: mirror.clone(),
            components: components.clone(),
            updates: *updates,
            security: security.clone(),
            sources: sources.clone(),
            snapshot: locked.and_then(|l| l.release(suite)).map(str::to_string),
        },
        OriginSource::Id { id } => OriginIdentity::Id { id: id.clone() },
        OriginSource::Resolve { .. } => match locked.and_then(|l| l.id.clone()) {
            Some(id) => OriginIdentity::Resolve { id },
            None => {
                return Err(Error::Input {
                    kind: ErrorKind::OriginUnresolved,
                    path: "layer.toml".into(),
                    message: format!(
                        "origin `{name}` is not resolved: `layer.lock` has no id for it"
                    ),
                    hint: Some("run `layer lock` and commit `layer.lock`".into()),
                })
            }
        },
    })
}

fn backend_inputs(backend: &Backend, scanned: &Scanned) -> BackendInputs {
    let files = backend
        .project_files()
        .into_iter()
        .filter_map(|f| {
            scanned
                .backend_files
                .get(f)
                .map(|h| (f.to_string(), h.clone()))
        })
        .collect();
    BackendInputs {
        name: backend.name.clone(),
        kind: backend.kind,
        command: backend.command.clone(),
        template: backend.template.clone(),
        files,
    }
}

fn decl_inputs(image: &Image, lock: &Lock) -> DeclInputs {
    DeclInputs {
        name: image.name.clone(),
        version: image.version.clone(),
        roles: image.roles.clone(),
        packages: set(&image.packages),
        sources: set(&image.sources),
        locked: set(lock.packages_of(&image.name)),
        vars: image.vars.clone(),
    }
}

/// The key of a reheat of image `i` (`layer build --reheat`) on its earlier build `from`
/// (`from_key`, `from_version`): `fresh`'s inputs, built on that build instead of the parent
/// or origin, with the declarations of the whole chain (a reheat installs the chain's locked
/// packages, not only the image's own). Never equal to a fresh key: the base differs in kind.
pub fn reheat(
    project: &Project,
    graph: &Graph,
    i: usize,
    fresh: &ImageKey,
    from_key: &str,
    from_version: &str,
) -> ImageKey {
    let mut inputs = Inputs::clone(&fresh.inputs);
    inputs.base = BaseInputs::Reheat {
        key: from_key.to_string(),
        version: from_version.to_string(),
    };
    inputs.chain = graph
        .chain(ImageId::new(i))
        .iter()
        .map(|&c| decl_inputs(&project.images[c.index()], &project.lock))
        .collect();
    ImageKey {
        key: inputs.key(),
        inputs: Arc::new(inputs),
    }
}

/// Keys of every image, in the project's (topological) order.
///
/// Images are keyed in parallel, level by level of the image tree: a deep key holds its
/// parent's key, so an image is keyed after the level above it.
pub fn compute(
    project: &Project,
    graph: &Graph,
    strategy: Strategy,
    scanned: &Scanned,
) -> Result<Vec<ImageKey>> {
    compute_with_pins(project, graph, strategy, scanned, &[])
}

/// [`compute`], where `pinned[i]`, when given, is the key of the released parent build that
/// image `i` is pinned to (`from = "PARENT@PIN"`): it stands for the parent's current key.
/// The workspace resolves pins from the cache and unlinks pinned images from their parent in
/// the [`Graph`], so a pinned image does not wait for its parent's key.
pub fn compute_with_pins(
    project: &Project,
    graph: &Graph,
    strategy: Strategy,
    scanned: &Scanned,
    pinned: &[Option<String>],
) -> Result<Vec<ImageKey>> {
    let mut origin_ids: BTreeMap<&str, OriginIdentity> = BTreeMap::new();
    for image in &project.images {
        if let Some(o) = image.origin() {
            if !origin_ids.contains_key(o) {
                origin_ids.insert(o, origin_identity(project, o, scanned)?);
            }
        }
    }
    let keyer = Keyer {
        project,
        graph,
        strategy,
        pinned,
        origin_ids,
        backends: project
            .backends
            .iter()
            .map(|(name, b)| (name.as_str(), Encoded::new(backend_inputs(b, scanned))))
            .collect(),
        roles: project
            .roles
            .iter()
            .filter_map(|(name, role)| {
                let tree = scanned.digests.get(name)?.clone();
                let decl = RoleDeclInputs::of(role);
                Some((
                    name.as_str(),
                    Encoded::new(RoleInputs {
                        name: name.clone(),
                        tree,
                        decl,
                    }),
                ))
            })
            .collect(),
    };
    let mut keys: Vec<Option<ImageKey>> = vec![None; project.images.len()];
    for level in key_levels(project, graph, strategy) {
        let done: Vec<ImageKey> = level.par_iter().map(|&i| keyer.key_of(i, &keys)).collect();
        for (i, k) in level.into_iter().zip(done) {
            keys[i] = Some(k);
        }
    }
    Ok(keys
        .into_iter()
        .map(|k| k.expect("every image is keyed"))
        .collect())
}

/// Images by level, each level keyed in parallel: deep keys wait for their parent's (a level
/// per generation); shallow keys depend on no other key (one level).
fn key_levels(project: &Project, graph: &Graph, strategy: Strategy) -> Vec<Vec<usize>> {
    let mut levels: Vec<Vec<usize>> = Vec::new();
    let mut depth = vec![0usize; project.images.len()];
    for i in 0..project.images.len() {
        if strategy == Strategy::Deep {
            if let Some(p) = graph.parent[ImageId::new(i)] {
                depth[i] = depth[p.index()] + 1;
            }
        }
        if levels.len() <= depth[i] {
            levels.resize_with(depth[i] + 1, Vec::new);
        }
        levels[depth[i]].push(i);
    }
    levels
}

/// What every image's key is made from, gathered once for a project.
struct Keyer<'a> {
    project: &'a Project,
    graph: &'a Graph,
    strategy: Strategy,
    pinned: &'a [Option<String>],
    origin_ids: BTreeMap<&'a str, OriginIdentity>,
    backends: BTreeMap<&'a str, Encoded<BackendInputs>>,
    /// Each role's inputs, normalised and encoded once rather than for every image that applies
    /// it.
    roles: BTreeMap<&'a str, Encoded<RoleInputs>>,
}

/// Inputs shared by many images, with their canonical encoding.
struct Encoded<T> {
    value: Arc<T>,
    json: Vec<u8>,
}

impl<T: Serialize> Encoded<T> {
    fn new(value: T) -> Encoded<T> {
        let json = serde_json::to_vec(&value).expect("inputs serialize");
        Encoded {
            value: Arc::new(value),
            json,
        }
    }
}

impl Keyer<'_> {
    /// The key of image `i`; in deep builds its parent's key is in `keys` already.
    fn key_of(&self, i: usize, keys: &[Option<ImageKey>]) -> ImageKey {
        let (project, graph, strategy) = (self.project, self.graph, self.strategy);
        let image = &project.images[i];
        let chain = match strategy {
            Strategy::Deep => vec![decl_inputs(image, &project.lock)],
            Strategy::Shallow => graph
                .chain(ImageId::new(i))
                .iter()
                .map(|&c| decl_inputs(&project.images[c.index()], &project.lock))
                .collect(),
        };
        let applied: Vec<&Encoded<RoleInputs>> = graph
            .applied_roles(ImageId::new(i), strategy)
            .iter()
            .map(|r| &self.roles[r.as_str()])
            .collect();
        let backend = &self.backends[project.backend_of(image).name.as_str()];
        let inputs = Inputs {
            schema: KEY_SCHEMA,
            image: image.name.clone(),
            strategy,
            backend: backend.value.clone(),
            base: self.base(i, keys),
            chain,
            roles: applied.iter().map(|r| r.value.clone()).collect(),
        };
        let roles: Vec<&[u8]> = applied.iter().map(|r| r.json.as_slice()).collect();
        ImageKey {
            key: inputs.key_with(&backend.json, &roles),
            inputs: Arc::new(inputs),
        }
    }

    /// What image `i` is built on: its parent's key (or the released build it is pinned to) in
    /// deep builds, the origin at the root of its chain otherwise.
    fn base(&self, i: usize, keys: &[Option<ImageKey>]) -> BaseInputs {
        let image = &self.project.images[i];
        match (self.strategy, &image.base) {
            (Strategy::Deep, Base::Parent(_)) => match self.pinned.get(i).cloned().flatten() {
                Some(key) => BaseInputs::Parent { key },
                None => {
                    let p = self.graph.parent[ImageId::new(i)].expect("parent resolved");
                    BaseInputs::Parent {
                        key: keys[p.index()]
                            .as_ref()
                            .expect("parents are keyed first")
                            .key
                            .clone(),
                    }
                }
            },
            (Strategy::Deep, Base::Origin(o)) => BaseInputs::Origin {
                identity: self.origin_ids[o.as_str()].clone(),
            },
            (Strategy::Shallow, _) => {
                let root = &self.project.images[self.graph.root(ImageId::new(i)).index()];
                let o = root.origin().expect("a chain starts at an origin");
                BaseInputs::Origin {
                    identity: self.origin_ids[o].clone(),
                }
            }
        }
    }
}

mod diff;
#[cfg(test)]
mod tests;

pub use diff::{diff, Change};
