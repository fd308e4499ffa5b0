//! What `--since` keeps in the cache (`since-cache`): role folders' digests by git tree id and
//! the parsed declarations and keys of the last revision it read, by their blob ids and what
//! else the keys were computed from (`crate::since` makes and reads the bytes). Sealed as the stat cache is: bytes that fail their blake3 are
//! ignored, and then the revision is read from git.

use std::path::PathBuf;

use super::Cache;
use crate::error::Result;

impl Cache {
    fn since_path(&self) -> PathBuf {
        self.dir.join("since-cache")
    }

    /// The bytes `--since` saved last; `None` when they are missing, unreadable or fail their
    /// checksum.
    pub fn load_since_cache(&self) -> Option<Vec<u8>> {
        self.load_sealed(&self.since_path())
            .map(crate::fsutil::FileBytes::into_vec)
    }

    /// Saves what `--since` learned, its bytes followed by their blake3.
    pub fn save_since_cache(&self, bytes: &[u8]) -> Result<()> {
        self.save_sealed(&self.since_path(), bytes)
    }
}
