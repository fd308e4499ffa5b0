//! A blocking face on an `object_store` store: a current-thread tokio runtime owned by the
//! [`Store`], each call a `block_on`, and paths under the remote's prefix.
//!
//! Errors come back as [`StoreError`]: `NotFound` and `Exists` are answers, everything else
//! (refused connections, timeouts, denied credentials, server errors after retries) means the
//! store cannot be used now.

use std::io::{self, Read};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::stream::{BoxStream, FuturesUnordered};
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path as StorePath;
use object_store::{
    ClientOptions, MultipartUpload, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload,
    RetryConfig,
};
use tokio::runtime::Runtime;

use super::blob::Meter;

/// Parts of multipart uploads: S3 takes 5 MiB to 5 GiB; fewer, larger parts cost servers
/// less work per byte.
const PART_SIZE: usize = 16 << 20;
/// Parts in flight at once; with [`PART_SIZE`], what an upload holds in memory (48 MiB).
const PARTS_IN_FLIGHT: usize = 3;

#[derive(Debug)]
pub(super) enum StoreError {
    NotFound,
    Exists,
    Other(String),
}

impl From<object_store::Error> for StoreError {
    fn from(e: object_store::Error) -> Self {
        match e {
            object_store::Error::NotFound { .. } => StoreError::NotFound,
            object_store::Error::AlreadyExists { .. }
            | object_store::Error::Precondition { .. } => StoreError::Exists,
            e => StoreError::Other(error_chain(&e)),
        }
    }
}

/// An error and its sources, `: `-separated, without repeats (reqwest nests the cause of a
/// refused connection three deep).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let t = s.to_string();
        if !out.contains(&t) {
            out.push_str(": ");
            out.push_str(&t);
        }
        cur = s.source();
    }
    out
}

pub(super) type StoreResult<T> = Result<T, StoreError>;

/// How a store takes "create, unless it exists".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Conditional {
    /// `PutMode::Create`: atomic on the server (S3's `If-None-Match: *`, a local folder's
    /// link, memory).
    Native,
    /// Plain HTTP/WebDAV servers take no condition: HEAD, then PUT. Two writers racing may
    /// both write; each writes a complete, signed record of the same key, so a reader still
    /// sees one whole record.
    HeadThenPut,
}

pub(super) struct Store {
    rt: Runtime,
    inner: Arc<dyn ObjectStore>,
    prefix: StorePath,
    conditional: Conditional,
    multipart: bool,
}

/// Client settings every networked store gets: no waiting minutes on a dead endpoint.
pub(super) fn client_options() -> ClientOptions {
    ClientOptions::new()
        .with_connect_timeout(Duration::from_secs(5))
        .with_timeout(Duration::from_secs(300))
}

/// Retries of failed requests: a few, quickly, so that an unreachable remote costs seconds.
pub(super) fn retry_config() -> RetryConfig {
    RetryConfig {
        max_retries: 2,
        retry_timeout: Duration::from_secs(15),
        ..RetryConfig::default()
    }
}

impl Store {
    pub(super) fn new(
        inner: Arc<dyn ObjectStore>,
        prefix: &str,
        conditional: Conditional,
        multipart: bool,
    ) -> io::Result<Store> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        Ok(Store {
            rt,
            inner,
            prefix: StorePath::from(prefix.trim_matches('/')),
            conditional,
            multipart,
        })
    }

    /// The store path of `rel` (`records/NAME/KEY.json`) under the prefix.
    pub(super) fn path(&self, rel: &str) -> StorePath {
        self.prefix
            .parts()
            .chain(StorePath::from(rel).parts())
            .collect()
    }

    /// `path` relative to the prefix, for listings.
    fn rel(&self, path: &StorePath) -> Option<String> {
        let parts: Vec<String> = path
            .prefix_match(&self.prefix)?
            .map(|p| p.as_ref().to_string())
            .collect();
        Some(parts.join("/"))
    }

    pub(super) fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    pub(super) async fn get_bytes(&self, rel: &str) -> StoreResult<Bytes> {
        let r = self.inner.get(&self.path(rel)).await?;
        Ok(r.bytes().await?)
    }

    /// The size of `rel`.
    pub(super) async fn head(&self, rel: &str) -> StoreResult<u64> {
        Ok(self.inner.head(&self.path(rel)).await?.size)
    }

    pub(super) fn put(&self, rel: &str, bytes: Vec<u8>) -> StoreResult<()> {
        let (path, payload) = (self.path(rel), PutPayload::from(bytes));
        let mut again = 2;
        loop {
            match self.block_on(self.inner.put(&path, payload.clone())) {
                Ok(_) => return Ok(()),
                // WebDAV: a PUT into a missing folder makes it (MKCOL) and tries again; of
                // two writers making one folder at once, the second is told `405 Method Not
                // Allowed` although the folder is there now.
                Err(e)
                    if self.conditional == Conditional::HeadThenPut
                        && again > 0
                        && error_chain(&e).contains("MKCOL") =>
                {
                    again -= 1;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Writes `rel` unless something is there: `Err(Exists)` then.
    pub(super) fn put_new(&self, rel: &str, bytes: Vec<u8>) -> StoreResult<()> {
        let path = self.path(rel);
        match self.conditional {
            Conditional::Native => {
                let opts = PutOptions {
                    mode: PutMode::Create,
                    ..PutOptions::default()
                };
                self.block_on(self.inner.put_opts(&path, PutPayload::from(bytes), opts))?;
                Ok(())
            }
            Conditional::HeadThenPut => match self.block_on(self.inner.head(&path)) {
                Ok(_) => Err(StoreError::Exists),
                Err(object_store::Error::NotFound { .. }) => self.put(rel, bytes),
                Err(e) => Err(e.into()),
            },
        }
    }

    /// Uploads the file at `file` to `rel`: multipart, [`PART_SIZE`] at a time with at most
    /// [`PARTS_IN_FLIGHT`] parts in flight, where the store has multipart uploads and the file
    /// is larger than one part. A failed upload is aborted: nothing is left at `rel`. `meter`
    /// is told of each part as the store acknowledges it.
    pub(super) fn put_file(
        &self,
        rel: &str,
        file: &std::path::Path,
        meter: &dyn Meter,
    ) -> io::Result<StoreResult<()>> {
        let mut f = std::fs::File::open(file)?;
        let size = f.metadata()?.len();
        meter.begin(size);
        if !self.multipart || size <= PART_SIZE as u64 {
            let mut buf = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
            f.read_to_end(&mut buf)?;
            let put = self.put(rel, buf);
            if put.is_ok() {
                meter.moved(size);
            }
            return Ok(put);
        }
        let path = self.path(rel);
        let mut upload = match self.block_on(self.inner.put_multipart(&path)) {
            Ok(u) => u,
            Err(e) => return Ok(Err(e.into())),
        };
        let sent = self.block_on(send_parts(&mut *upload, &mut f, meter));
        if !matches!(sent, Ok(Ok(()))) {
            let _ = self.block_on(upload.abort());
            return sent;
        }
        Ok(self
            .block_on(upload.complete())
            .map(|_| ())
            .map_err(StoreError::from))
    }

    /// A reader of `rel`'s bytes as they arrive.
    pub(super) fn reader(&self, rel: &str) -> StoreResult<StreamReader<'_>> {
        let r = self.block_on(self.inner.get(&self.path(rel)))?;
        Ok(StreamReader {
            store: self,
            stream: r.into_stream(),
            buf: Bytes::new(),
        })
    }

    /// Every path under `rel_dir`, relative to the prefix, sorted.
    pub(super) fn list(&self, rel_dir: &str) -> StoreResult<Vec<String>> {
        let dir = self.path(rel_dir);
        let metas: Vec<_> = self.block_on(self.inner.list(Some(&dir)).try_collect::<Vec<_>>())?;
        let mut out: Vec<String> = metas.iter().filter_map(|m| self.rel(&m.location)).collect();
        out.sort();
        Ok(out)
    }

    /// Runs `f` on every item of `items`, at most `limit` at once, in order, until one fails.
    pub(super) fn try_parallel<'a, T: 'a, O, E>(
        &'a self,
        items: impl IntoIterator<Item = T>,
        limit: usize,
        f: impl Fn(T) -> futures::future::BoxFuture<'a, Result<O, E>>,
    ) -> Result<Vec<O>, E> {
        self.block_on(
            futures::stream::iter(items)
                .map(f)
                .buffered(limit)
                .try_collect(),
        )
    }

    /// Runs `f` on every item of `items`, at most `limit` at once, in order.
    pub(super) fn parallel<'a, T: 'a, O>(
        &'a self,
        items: impl IntoIterator<Item = T>,
        limit: usize,
        f: impl Fn(T) -> futures::future::BoxFuture<'a, O>,
    ) -> Vec<O> {
        self.block_on(
            futures::stream::iter(items)
                .map(f)
                .buffered(limit)
                .collect(),
        )
    }
}

/// The parts of a multipart upload read from `f`, at most [`PARTS_IN_FLIGHT`] in flight; each
/// part's bytes go to `meter` when the store has taken it.
async fn send_parts(
    upload: &mut dyn MultipartUpload,
    f: &mut std::fs::File,
    meter: &dyn Meter,
) -> io::Result<StoreResult<()>> {
    let mut in_flight = FuturesUnordered::new();
    loop {
        let mut part = Vec::with_capacity(PART_SIZE);
        (&mut *f).take(PART_SIZE as u64).read_to_end(&mut part)?;
        if part.is_empty() {
            break;
        }
        while in_flight.len() >= PARTS_IN_FLIGHT {
            if let Some(Err(e)) = in_flight.next().await {
                return Ok(Err(e));
            }
        }
        let n = part.len() as u64;
        let put = upload.put_part(PutPayload::from(part));
        in_flight.push(async move {
            put.await.map_err(StoreError::from)?;
            meter.moved(n);
            Ok(())
        });
    }
    while let Some(done) = in_flight.next().await {
        if let Err(e) = done {
            return Ok(Err(e));
        }
    }
    Ok(Ok(()))
}

/// A blocking reader over an object's byte stream.
pub(super) struct StreamReader<'a> {
    store: &'a Store,
    stream: BoxStream<'static, object_store::Result<Bytes>>,
    buf: Bytes,
}

impl Read for StreamReader<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.buf.is_empty() {
            match self.store.block_on(self.stream.next()) {
                None => return Ok(0),
                Some(Ok(b)) => self.buf = b,
                Some(Err(e)) => return Err(io::Error::other(error_chain(&e))),
            }
        }
        let n = out.len().min(self.buf.len());
        out[..n].copy_from_slice(&self.buf[..n]);
        self.buf = self.buf.slice(n..);
        Ok(n)
    }
}
