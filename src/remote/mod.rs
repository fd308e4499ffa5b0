//! The remote cache (SPEC §8): records and artifacts shared through an object store that teams
//! already run — S3 or an S3-compatible server, a mounted folder, or an HTTP/WebDAV server —
//! through the `object_store` crate. The local cache stays the working copy: what is pulled is
//! written into it through [`crate::cache`], and what is pushed is read from it.
//!
//! ```text
//! PREFIX/
//!   records/NAME/KEY.json     the signed envelope of a record (see `envelope`)
//!   blobs/DIGEST.tar.zst      a layer folder: reproducible tar, zstd; DIGEST is the blob's blake3
//!   blobs/DIGEST.zst          a file artifact, zstd
//!   trees/DIGEST.json         role trees named by records, for `layer explain`
//! ```
//!
//! As in Bazel's remote cache, artifacts are content-addressed blobs and a record (the action
//! result) names the blobs it needs; a blob is always uploaded before the record that names
//! it, so a reader never finds a record whose blob was not written. Stores evict on their own
//! (bucket lifecycle rules): a record whose blob has gone is refused, which is a miss.
//!
//! **Trust.** As in Nix's binary caches, nothing unsigned is used: a record is trusted only
//! when it is signed by a key of `trusted_keys`, its inputs hash to its key, it is the record
//! of the name and key it is stored under, and every blob it names is there with its size
//! ([`Remote::lookup`], which downloads no blob). A pull then checks every byte: the blob's
//! blake3 while it streams, and the unpacked artifact's `layerfs::digest` against the
//! record's, before it is renamed into the cache. Refusals are values ([`Found::Refused`])
//! whose text names the record's key and, where it says one, the signer.
//!
//! **Writes.** Records are written with a conditional put (`PutMode::Create`): of two runners
//! pushing one key, the first wins and the second is told the record is there (`Ok(false)`).
//! Plain HTTP servers take no condition; there it is HEAD, then PUT (see `store`): two racing
//! writers may both write, and the record that stays is one of the two, whole and signed,
//! naming blobs that were written before it (a blob's name is its digest, so writing it twice
//! writes the same bytes). An HTTP store is opened at the server's root with the URL's path as
//! the prefix (`object_store` lists an HTTP store's objects by their path from the root). Blobs are
//! packed into a temporary file beside the artifact (memory stays flat whatever the layer's
//! size), then uploaded in 16 MiB parts, three at a time, where the store has multipart uploads
//! (S3, local folders); a plain HTTP server takes a blob in one PUT, from memory.
//!
//! Transfers are metered ([`Meter`]): `object_store` has no byte callback, so a download is
//! counted as its stream is read and an upload as each part is taken.
//!
//! A [`Remote`] can be shared by threads: each call drives its runtime (`block_on`) from the
//! calling thread.
//!
//! The parts, each using only those listed before it: `sign` (keys, signatures), `envelope`
//! (what a record file holds, and its checks), `blob` (artifacts packed and unpacked), `store`
//! (a blocking face on `object_store`), `aws` (where an `s3://` remote's credentials come
//! from, and the words when there are none).

mod sign;
mod envelope;
mod blob;
mod store;
mod aws;

pub use blob::{Meter, NoMeter};
pub use sign::{keygen, Signer, PUBLIC_PREFIX, SECRET_PREFIX};

use std::os::unix::fs::MetadataExt;
use std::sync::Arc;

use ed25519_dalek::VerifyingKey;
use futures::FutureExt;
use serde::Serialize;

use crate::cache::Cache;
use crate::error::{Error, ErrorKind, Result};
use crate::fsutil::Remove;
use crate::record::Record;
use crate::scan::{Entry, Tree};

use envelope::{short, BlobKind, BlobRef, Opened, Refusal};
use store::{Conditional, Store, StoreError};

/// How many lookups or HEADs run at once.
const CONCURRENCY: usize = 16;

/// A remote store and the keys whose records it trusts.
pub struct Remote {
    url: String,
    store: Store,
    trusted: Vec<(String, VerifyingKey)>,
    /// `s3://` remotes: where the credentials come from.
    credentials: Option<aws::Source>,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Remote({})", self.url)
    }
}

/// What the remote holds for one (name, key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// A record that can be trusted; its blobs are there.
    Hit(Box<Record>),
    /// No record.
    Miss,
    /// A record that must not be used: a warning naming the key (and the signer) and why.
    Refused(String),
}

/// One record on the remote, for `layer cache ls --remote` and `verify --remote`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RemoteEntry {
    pub name: String,
    pub key: String,
    /// Empty when the record cannot be read.
    pub version: String,
    /// The key that signed it, where it says one.
    pub signer: Option<String>,
    /// `trusted`, or why not.
    pub verdict: String,
}

/// The hint of a remote that cannot be reached, unless a better one is known (no credentials).
pub const UNREACHABLE_HINT: &str = "`--no-remote` runs without it";

/// The verdict of a record that can be used.
pub const TRUSTED: &str = "trusted";

impl Remote {
    /// Opens the remote at `url`: `s3://BUCKET[/PREFIX]` (endpoint, region and credentials
    /// from `AWS_*` as the AWS CLI reads them: `AWS_ENDPOINT_URL`, `AWS_REGION`,
    /// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`; `AWS_ALLOW_HTTP=true` for a plain http
    /// endpoint), `file:///PATH` (a folder, made if missing), `http://` or `https://` (a server
    /// that takes PUT, GET and HEAD). `trusted_keys` are `ed25519:BASE64`. Nothing is
    /// contacted yet.
    pub fn open(url: &str, trusted_keys: &[String]) -> Result<Remote> {
        let trusted = parse_trusted(trusted_keys)?;
        let bad = |why: String| Error::Remote {
            kind: ErrorKind::RemoteConfig,
            message: format!("remote `{url}`: {why}"),
            hint: Some(
                "a remote is `s3://BUCKET/PREFIX`, `file:///PATH` or `https://HOST/PATH`".into(),
            ),
        };
        let mut credentials = None;
        let (inner, prefix, conditional, multipart): (
            Arc<dyn object_store::ObjectStore>,
            String,
            _,
            _,
        ) = if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(bad("no bucket".into()));
            }
            let mut b = object_store::aws::AmazonS3Builder::from_env()
                .with_bucket_name(bucket)
                .with_retry(store::retry_config())
                .with_client_options(store::client_options());
            // The AWS CLI's `AWS_REGION` (object_store reads `AWS_DEFAULT_REGION`).
            if let Ok(region) = std::env::var("AWS_REGION") {
                b = b.with_region(region);
            }
            if std::env::var("AWS_ALLOW_HTTP").is_ok_and(|v| v == "true") {
                b = b.with_allow_http(true);
            }
            let source = aws::Source::find(|k| std::env::var(k).ok());
            if let aws::Source::InstanceMetadata { disabled: true, .. } = source {
                b = b.with_credentials(Arc::new(aws::NoCredentials));
            }
            credentials = Some(source);
            let s = b.build().map_err(|e| bad(e.to_string()))?;
            (Arc::new(s), prefix.to_string(), Conditional::Native, true)
        } else if let Some(path) = url.strip_prefix("file://") {
            if !path.starts_with('/') {
                return Err(bad(
                    "a `file://` URL names an absolute path: `file:///PATH`".into(),
                ));
            }
            // The folder is the prefix of a store rooted at `/`: nothing is made or checked
            // until it is used, so a share that is not mounted reads as empty and the first
            // push makes the folders it writes into.
            let s = object_store::local::LocalFileSystem::new();
            (Arc::new(s), path.to_string(), Conditional::Native, true)
        } else if let Some((scheme, rest)) = url
            .split_once("://")
            .filter(|(scheme, _)| *scheme == "http" || *scheme == "https")
        {
            // The store is opened at the server's root and the URL's path is the prefix:
            // `object_store` lists an HTTP store's objects by their path from the root.
            let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
            let s = object_store::http::HttpBuilder::new()
                .with_url(format!("{scheme}://{host}"))
                .with_retry(store::retry_config())
                .with_client_options(store::client_options().with_allow_http(true))
                .build()
                .map_err(|e| bad(e.to_string()))?;
            (
                Arc::new(s),
                path.to_string(),
                Conditional::HeadThenPut,
                false,
            )
        } else {
            return Err(bad("unknown scheme".into()));
        };
        let store = Store::new(inner, &prefix, conditional, multipart)
            .map_err(|e| bad(format!("cannot start its client: {e}")))?;
        Ok(Remote {
            url: url.to_string(),
            store,
            trusted,
            credentials,
        })
    }

    /// A remote over any `object_store` store (tests use `InMemory`).
    pub fn with_store(
        url: &str,
        inner: Arc<dyn object_store::ObjectStore>,
        trusted_keys: &[String],
    ) -> Result<Remote> {
        let trusted = parse_trusted(trusted_keys)?;
        let store = Store::new(inner, "", Conditional::Native, true)
            .map_err(|e| Error::remote(ErrorKind::RemoteConfig, e.to_string()))?;
        Ok(Remote {
            url: url.to_string(),
            store,
            trusted,
            credentials: None,
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// The record of (`name`, `key`) if it is there and can be trusted (see the module's
    /// text); downloads the record only, and HEADs its blobs. `Err` only when the store cannot
    /// be reached (`ErrorKind::RemoteUnreachable`).
    pub fn lookup(&self, name: &str, key: &str) -> Result<Found> {
        let opened = self.store.block_on(self.open_record(name, key))?;
        Ok(to_found(name, key, opened))
    }

    /// [`Remote::lookup`] of every (name, key) of `wanted`, several at once, in order.
    /// The first failure ends it (an unreachable remote, or no credentials, costs one wait).
    pub fn lookup_all(&self, wanted: &[(String, String)]) -> Result<Vec<Found>> {
        self.store.try_parallel(wanted, CONCURRENCY, |(n, k)| {
            async move { self.open_record(n, k).await.map(|o| to_found(n, k, o)) }.boxed()
        })
    }

    /// Downloads what `record` needs into `cache`: its artifact, verified byte for byte and
    /// renamed into place; the role trees it names (those the remote has); then the record,
    /// written through the cache. A record that is no longer there or trusted, a blob that
    /// is missing, truncated or not what the record says: an error, and nothing is left.
    pub fn pull(&self, record: &Record, cache: &Cache) -> Result<()> {
        self.pull_metered(record, cache, &NoMeter)
    }

    /// [`Remote::pull`], telling `meter` of the artifact blob's bytes as they arrive.
    pub fn pull_metered(&self, record: &Record, cache: &Cache, meter: &dyn Meter) -> Result<()> {
        let (name, key) = (&record.name, &record.key);
        let opened = match self.store.block_on(self.open_record(name, key))? {
            Ok(o) => o,
            Err(Some(r)) => return Err(self.transfer(record, refusal_text(name, key, &r))),
            Err(None) => {
                return Err(self.transfer(
                    record,
                    format!("no record of `{name}` {} on the remote", short(key)),
                ))
            }
        };
        if opened.record != *record {
            return Err(self.transfer(record, "the remote's record differs from the one asked for"));
        }
        if let (Some(rel), None) = (&record.artifact.path, &record.artifact.remote) {
            self.pull_artifact(&opened, rel, cache, meter)?;
        }
        let mut trees = Vec::new();
        for role in &record.inputs.roles {
            if cache.tree(&role.tree).is_some() {
                continue;
            }
            if let Some(t) = self.fetch_tree(&role.tree)? {
                trees.push(t);
            }
        }
        let refs: Vec<&Tree> = trees.iter().collect();
        cache.write_record(record, &refs)
    }

    /// Uploads what `record` needs — its artifact blob (when the artifact is local), the role
    /// trees the cache has — then the signed record, blobs strictly first. `Ok(false)` when
    /// the remote already has a record of (name, key): the first writer wins.
    pub fn push(&self, record: &Record, cache: &Cache, signer: &Signer) -> Result<bool> {
        self.push_metered(record, cache, signer, &NoMeter)
    }

    /// [`Remote::push`], telling `meter` of the artifact blob's bytes as the store takes them
    /// (nothing when the blob is already there).
    pub fn push_metered(
        &self,
        record: &Record,
        cache: &Cache,
        signer: &Signer,
        meter: &dyn Meter,
    ) -> Result<bool> {
        let rel = record_path(&record.name, &record.key);
        match self.store.block_on(self.store.head(&rel)) {
            Ok(_) => return Ok(false),
            Err(StoreError::NotFound) => {}
            Err(e) => return Err(self.unreachable(e)),
        }
        let mut blobs = Vec::new();
        if let (Some(path), None) = (&record.artifact.path, &record.artifact.remote) {
            blobs.push(self.push_artifact(record, &cache.dir().join(path), meter)?);
        }
        for role in &record.inputs.roles {
            let Some(tree) = cache.tree(&role.tree) else {
                continue;
            };
            let rel = format!("trees/{}.json", tree.digest);
            match self.store.block_on(self.store.head(&rel)) {
                Ok(_) => continue,
                Err(StoreError::NotFound) => {}
                Err(e) => return Err(self.unreachable(e)),
            }
            let json = serde_json::to_vec(&tree.entries).expect("trees serialize");
            self.store
                .put(&rel, json)
                .map_err(|e| self.unreachable(e))?;
        }
        let sealed = envelope::seal(record, &blobs, signer);
        match self.store.put_new(&rel, sealed) {
            Ok(()) => Ok(true),
            Err(StoreError::Exists) => Ok(false),
            Err(e) => Err(self.unreachable(e)),
        }
    }

    /// Every record on the remote, each with its verdict: `trusted`, or why not.
    pub fn list(&self) -> Result<Vec<RemoteEntry>> {
        self.entries(false)
    }

    /// [`Remote::list`], and every blob of every trusted record downloaded and checked
    /// against its digest and size.
    pub fn verify(&self) -> Result<Vec<RemoteEntry>> {
        self.entries(true)
    }

    fn entries(&self, download: bool) -> Result<Vec<RemoteEntry>> {
        let paths = self
            .store
            .list("records")
            .map_err(|e| self.unreachable(e))?;
        let wanted: Vec<(String, String)> = paths
            .iter()
            .filter_map(|p| {
                let rest = p.strip_prefix("records/")?.strip_suffix(".json")?;
                let (name, key) = rest.split_once('/')?;
                (!key.contains('/')).then(|| (name.to_string(), key.to_string()))
            })
            .collect();
        let opened: Vec<_> = self
            .store
            .parallel(&wanted, CONCURRENCY, |(n, k)| {
                async move { self.open_record(n, k).await }.boxed()
            })
            .into_iter()
            .collect::<Result<_>>()?;
        let mut out = Vec::new();
        for ((name, key), o) in wanted.into_iter().zip(opened) {
            let entry = match o {
                Ok(o) => {
                    let verdict = if download {
                        match self.check_blobs(&o) {
                            Ok(()) => TRUSTED.to_string(),
                            Err(why) => why,
                        }
                    } else {
                        TRUSTED.to_string()
                    };
                    RemoteEntry {
                        version: o.record.version,
                        signer: Some(o.signer),
                        verdict,
                        name,
                        key,
                    }
                }
                Err(r) => {
                    let r = r.unwrap_or(Refusal {
                        signer: None,
                        why: "the record vanished while it was listed".into(),
                    });
                    RemoteEntry {
                        version: String::new(),
                        signer: r.signer,
                        verdict: r.why,
                        name,
                        key,
                    }
                }
            };
            out.push(entry);
        }
        Ok(out)
    }

    /// Downloads every blob of `o`, checking its digest and size; the error says what is wrong.
    fn check_blobs(&self, o: &Opened) -> std::result::Result<(), String> {
        for b in &o.blobs {
            let reader = match self.store.reader(&b.path) {
                Ok(r) => r,
                Err(StoreError::NotFound) => {
                    return Err(format!("its blob `{}` is missing", b.path))
                }
                Err(StoreError::Exists | StoreError::Other(_)) => {
                    return Err(format!("its blob `{}` cannot be read", b.path))
                }
            };
            let mut h = blob::Hashing::new(reader);
            if let Err(e) = std::io::copy(&mut h, &mut std::io::sink()) {
                return Err(format!("its blob `{}` cannot be read: {e}", b.path));
            }
            if h.size != b.size || h.digest() != b.blake3 {
                return Err(format!(
                    "its blob `{}` does not have the digest and size it names",
                    b.path
                ));
            }
        }
        Ok(())
    }

    /// The envelope of (`name`, `key`), opened: `Err(None)` when there is none, `Err(Some)`
    /// when it is refused; the outer `Err` when the store cannot be reached.
    async fn open_record(
        &self,
        name: &str,
        key: &str,
    ) -> Result<std::result::Result<Opened, Option<Refusal>>> {
        if !crate::model::valid_name(name) || !is_hex_key(key) {
            return Ok(Err(Some(Refusal {
                signer: None,
                why: "the name or key is not one layer writes".into(),
            })));
        }
        let bytes = match self.store.get_bytes(&record_path(name, key)).await {
            Ok(b) => b,
            Err(StoreError::NotFound) => return Ok(Err(None)),
            Err(e) => return Err(self.unreachable(e)),
        };
        let opened = match envelope::open(&bytes, name, key, &self.trusted) {
            Ok(o) => o,
            Err(r) => return Ok(Err(Some(r))),
        };
        for b in &opened.blobs {
            let why = match self.store.head(&b.path).await {
                Ok(size) if size == b.size => continue,
                Ok(size) => format!(
                    "its blob `{}` has {size} bytes, not the {} it names (truncated or replaced)",
                    b.path, b.size
                ),
                Err(StoreError::NotFound) => {
                    format!("its blob `{}` is missing (evicted?)", b.path)
                }
                Err(e) => return Err(self.unreachable(e)),
            };
            return Ok(Err(Some(Refusal {
                signer: Some(opened.signer.clone()),
                why,
            })));
        }
        let has_artifact_blob = opened.record.artifact.remote.is_some()
            || opened.record.artifact.path.is_none()
            || !opened.blobs.is_empty();
        if !has_artifact_blob {
            return Ok(Err(Some(Refusal {
                signer: Some(opened.signer.clone()),
                why: "it names no blob for its artifact".into(),
            })));
        }
        Ok(Ok(opened))
    }

    fn pull_artifact(&self, o: &Opened, rel: &str, cache: &Cache, meter: &dyn Meter) -> Result<()> {
        let record = &o.record;
        let Some(b) = o.blobs.first() else {
            return Err(self.transfer(record, "it names no blob for its artifact"));
        };
        let want = record.artifact.blake3.clone().unwrap_or_default();
        let place = cache.dir().join(rel);
        if place.exists() && crate::cache::artifact_digest(&place).is_ok_and(|(d, _)| d == want) {
            return Ok(());
        }
        cache.install_artifact(rel, |tmp| {
            let reader = match self.store.reader(&b.path) {
                Ok(r) => r,
                Err(StoreError::NotFound) => {
                    return Err(self.transfer(record, format!("its blob `{}` is missing", b.path)))
                }
                Err(e) => return Err(self.unreachable(e)),
            };
            // Never more than the blob's size is read: one byte more says it is too long.
            meter.begin(b.size);
            let reader = blob::Metered::new(reader, meter);
            let mut h = blob::Hashing::new(std::io::Read::take(reader, b.size.saturating_add(1)));
            let limit = record.artifact.size.unwrap_or(u64::MAX);
            let unpacked = match b.kind {
                BlobKind::Tree => blob::unpack_tree(&mut h, tmp, limit),
                BlobKind::File => blob::unpack_file(
                    &mut h,
                    tmp,
                    &blob::FileMeta {
                        mode: b.mode.unwrap_or(0o644),
                        uid: b.uid.unwrap_or(0),
                        gid: b.gid.unwrap_or(0),
                        limit,
                    },
                ),
            };
            if unpacked.is_err() {
                // Read the rest: the blob's own digest says more than a failed unpack.
                let _ = std::io::copy(&mut h, &mut std::io::sink());
            }
            if h.size != b.size || h.digest() != b.blake3 {
                return Err(self.transfer(
                    record,
                    format!(
                        "its blob `{}` does not match the digest and size the record names ({} bytes read, {} named)",
                        b.path, h.size, b.size
                    ),
                ));
            }
            unpacked.map_err(|e| self.transfer(record, format!("its blob `{}`: {e}", b.path)))?;
            let (got, _) = crate::cache::artifact_digest(tmp)?;
            if got != want {
                return Err(self.transfer(
                    record,
                    format!("its artifact unpacked to digest {}, not the record's {}", short(&got), short(&want)),
                ));
            }
            Ok(())
        })?;
        Ok(())
    }

    fn push_artifact(
        &self,
        record: &Record,
        local: &std::path::Path,
        meter: &dyn Meter,
    ) -> Result<BlobRef> {
        let meta = std::fs::symlink_metadata(local).map_err(|e| {
            self.transfer(
                record,
                format!("its artifact `{}` cannot be read: {e}", local.display()),
            )
        })?;
        let (digest, _) = crate::cache::artifact_digest(local)?;
        if Some(&digest) != record.artifact.blake3.as_ref() {
            return Err(self.transfer(
                record,
                format!(
                    "its artifact `{}` no longer has the record's digest",
                    local.display()
                ),
            ));
        }
        // Beside the artifact: on the cache's file system (not a RAM-backed /tmp), named as
        // every temporary of the cache is, unique to this call.
        let tmp = crate::fsutil::temp_beside(&local.with_extension("push.zst"));
        let _guard = Remove::new(&tmp);
        let (blake3, size) = blob::pack(local, &tmp)?;
        let (kind, path) = if meta.is_dir() {
            (BlobKind::Tree, format!("blobs/{blake3}.tar.zst"))
        } else {
            (BlobKind::File, format!("blobs/{blake3}.zst"))
        };
        let there = match self.store.block_on(self.store.head(&path)) {
            Ok(s) => s == size,
            Err(StoreError::NotFound) => false,
            Err(e) => return Err(self.unreachable(e)),
        };
        if !there {
            self.store
                .put_file(&path, &tmp, meter)
                .map_err(|e| Error::io(&tmp, e))?
                .map_err(|e| self.unreachable(e))?;
        }
        let file = kind == BlobKind::File;
        Ok(BlobRef {
            path,
            blake3,
            size,
            kind,
            mode: file.then_some(meta.mode() & 0o7777),
            uid: file.then_some(meta.uid()),
            gid: file.then_some(meta.gid()),
        })
    }

    fn fetch_tree(&self, digest: &str) -> Result<Option<Tree>> {
        if !is_hex_key(digest) {
            return Ok(None);
        }
        let bytes = match self
            .store
            .block_on(self.store.get_bytes(&format!("trees/{digest}.json")))
        {
            Ok(b) => b,
            Err(StoreError::NotFound) => return Ok(None),
            Err(e) => return Err(self.unreachable(e)),
        };
        let Ok(entries) = serde_json::from_slice::<Vec<Entry>>(&bytes) else {
            return Ok(None);
        };
        let tree = Tree::new(entries);
        Ok((tree.digest == digest).then_some(tree))
    }

    fn unreachable(&self, e: StoreError) -> Error {
        let why = match e {
            StoreError::NotFound => "an object vanished".to_string(),
            StoreError::Exists => "an object appeared".to_string(),
            StoreError::Other(s) => s,
        };
        if let Some(why) = self.credentials.as_ref().and_then(|c| c.explain(&why)) {
            return Error::Remote {
                kind: ErrorKind::RemoteUnreachable,
                message: format!("remote `{}` cannot be reached: {why}", self.url),
                hint: Some(aws::HINT.into()),
            };
        }
        Error::Remote {
            kind: ErrorKind::RemoteUnreachable,
            message: format!("remote `{}` cannot be reached: {why}", self.url),
            hint: Some(UNREACHABLE_HINT.into()),
        }
    }

    fn transfer(&self, record: &Record, why: impl std::fmt::Display) -> Error {
        Error::remote(
            ErrorKind::RemoteTransfer,
            format!(
                "remote record of `{}` {} from `{}`: {why}",
                record.name,
                short(&record.key),
                self.url
            ),
        )
    }
}

fn parse_trusted(keys: &[String]) -> Result<Vec<(String, VerifyingKey)>> {
    keys.iter()
        .map(|k| {
            sign::parse_public(k)
                .map(|v| (k.trim().to_string(), v))
                .ok_or_else(|| Error::Remote {
                    kind: ErrorKind::RemoteConfig,
                    message: format!("trusted key `{k}` is not an ed25519 public key"),
                    hint: Some(
                        "a trusted key is `ed25519:BASE64`, as `layer keygen` prints it".into(),
                    ),
                })
        })
        .collect()
}

fn record_path(name: &str, key: &str) -> String {
    format!("records/{name}/{key}.json")
}

fn is_hex_key(key: &str) -> bool {
    key.len() == 64
        && key
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn refusal_text(name: &str, key: &str, r: &Refusal) -> String {
    format!(
        "remote record of `{name}` {} refused: {}",
        short(key),
        r.why
    )
}

fn to_found(name: &str, key: &str, o: std::result::Result<Opened, Option<Refusal>>) -> Found {
    match o {
        Ok(o) => Found::Hit(Box::new(o.record)),
        Err(None) => Found::Miss,
        Err(Some(r)) => Found::Refused(refusal_text(name, key, &r)),
    }
}

#[cfg(test)]
mod tests;
