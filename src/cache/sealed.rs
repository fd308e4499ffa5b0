//! The sealed caches: files that only save work (the stat cache, the model cache, the record
//! index, the `--since` cache), each its bytes followed by their blake3. One that is missing,
//! unreadable or fails its checksum is no cache: the work is done again, never trusted.

use std::path::{Path, PathBuf};

use super::Cache;
use crate::error::Result;
use crate::fsutil::{map_small_nofollow, FileBytes};
use crate::scan::{StatCache, WatchMark};

impl Cache {
    /// Where the stat cache is kept.
    pub(crate) fn stat_path(&self) -> PathBuf {
        self.dir.join("stat-cache")
    }

    fn model_path(&self) -> PathBuf {
        self.dir.join("model-cache")
    }

    /// The bytes of the sealed file at `path` without their checksum (mapped when large);
    /// `None` when it is missing, unreadable or fails its checksum.
    pub(super) fn load_sealed(&self, path: &Path) -> Option<FileBytes> {
        map_small_nofollow(path).ok().and_then(unseal)
    }

    /// Writes `bytes` and their blake3 to `path` atomically, not durably: a sealed cache lost
    /// or left empty by a power cut fails its checksum and only costs work again, while the
    /// two fsyncs of a durable write took longer than the plan that wrote the 3.6 MB stat cache
    /// of 1,000 images after one file changed.
    pub(super) fn save_sealed(&self, path: &Path, bytes: &[u8]) -> Result<()> {
        crate::fsutil::write_atomic_lazy_parts(path, &[bytes, blake3::hash(bytes).as_bytes()])
    }

    /// The stat cache the last scan saved; an empty one when it is missing, unreadable, or
    /// fails its checksum (a damaged stat cache only costs a full re-hash).
    pub fn load_stat_cache(&self) -> StatCache {
        self.load_stat_cache_marked().0
    }

    /// [`Cache::load_stat_cache`], and the mark of the watcher it was taken under, if any
    /// (`crate::watch`).
    pub fn load_stat_cache_marked(&self) -> (StatCache, Option<WatchMark>) {
        let Some(mut bytes) = self.load_sealed(&self.stat_path()) else {
            return Default::default();
        };
        let mark = WatchMark::split_off(&mut bytes);
        (StatCache::decode_owned(bytes), mark)
    }

    /// Saves the stat cache, its bytes followed by their blake3.
    pub fn save_stat_cache(&self, stat: &StatCache) -> Result<()> {
        self.save_stat_cache_marked(stat, None)
    }

    /// [`Cache::save_stat_cache`] with the mark of the watcher it was taken under: the mark
    /// follows the stat cache's bytes, under the same checksum, so the two are never from
    /// different scans.
    pub fn save_stat_cache_marked(&self, stat: &StatCache, mark: Option<&WatchMark>) -> Result<()> {
        match mark {
            None => self.save_sealed(&self.stat_path(), stat.as_bytes()),
            Some(m) => {
                let mut marked = stat.as_bytes().to_vec();
                m.append_to(&mut marked);
                self.save_sealed(&self.stat_path(), &marked)
            }
        }
    }

    /// The bytes of the model cache the last load saved (`decl::load_cached` checks what they
    /// say); `None` when it is missing, unreadable or fails its checksum.
    pub fn load_model_cache(&self) -> Option<FileBytes> {
        self.load_sealed(&self.model_path())
    }

    /// Saves the model cache, its bytes followed by their blake3.
    pub fn save_model_cache(&self, bytes: &[u8]) -> Result<()> {
        self.save_sealed(&self.model_path(), bytes)
    }
}

/// A sealed file's bytes without their checksum (the last 32 bytes, the
/// blake3 of the rest), or `None` when they do not match.
fn unseal(mut bytes: FileBytes) -> Option<FileBytes> {
    let body = bytes.len().checked_sub(32)?;
    if blake3::hash(&bytes[..body]).as_bytes() != &bytes[body..] {
        return None;
    }
    bytes.truncate(body);
    Some(bytes)
}
