//! [`Recorded`]: project files that note every path a load looked at, so that the parsed
//! model can be cached under the stamps of exactly those paths (`decl::model_cache`). A
//! listing notes the folder and every entry in it (an entry that a load skipped, such as a
//! folder under `images/`, could become a file that it would not skip); a read, a kind or a
//! link notes its path.

use std::io;
use std::sync::Mutex;

use super::files::{Link, Listed, ProjectFiles};
use crate::source::files::Kind;

/// Files read through `inner`, every path asked about noted.
pub struct Recorded<'a> {
    inner: &'a dyn ProjectFiles,
    seen: Mutex<Vec<String>>,
}

impl<'a> Recorded<'a> {
    pub fn new(inner: &'a dyn ProjectFiles) -> Recorded<'a> {
        Recorded {
            inner,
            seen: Mutex::new(Vec::new()),
        }
    }

    fn note(&self, rel: &str) {
        self.seen
            .lock()
            .expect("no panics while locked")
            .push(rel.to_string());
    }

    /// Every path looked at, sorted, each once.
    pub fn paths(self) -> Vec<String> {
        let mut seen = self.seen.into_inner().expect("no panics while locked");
        seen.sort_unstable();
        seen.dedup();
        seen
    }
}

impl ProjectFiles for Recorded<'_> {
    fn read(&self, rel: &str) -> io::Result<Vec<u8>> {
        self.note(rel);
        self.inner.read(rel)
    }

    fn kind(&self, rel: &str) -> Option<Kind> {
        self.note(rel);
        self.inner.kind(rel)
    }

    fn list(&self, rel: &str) -> io::Result<Option<Vec<Listed>>> {
        self.note(rel);
        let listed = self.inner.list(rel)?;
        if let Some(entries) = &listed {
            let mut seen = self.seen.lock().expect("no panics while locked");
            for (name, _) in entries {
                // A name that is not UTF-8 fails the load: nothing is cached.
                match name {
                    Ok(name) if rel.is_empty() => seen.push(name.clone()),
                    Ok(name) => seen.push(format!("{rel}/{name}")),
                    Err(_) => {}
                }
            }
        }
        Ok(listed)
    }

    fn link(&self, rel: &str) -> Link {
        self.note(rel);
        self.inner.link(rel)
    }
}
