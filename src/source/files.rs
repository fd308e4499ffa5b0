//! Where a project's declarations are read from: the work tree, or a git commit
//! ([`crate::source::gitread::Snapshot`], for `--since REF`). `decl::load_from` reads through
//! [`ProjectFiles`], so one loader validates both, with the same messages.
//!
//! Paths are relative to the project root, `/`-separated, and never hold `..` (callers build
//! them from names that `decl` has checked).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// What an entry is, following a link that stays inside the project.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    /// Anything else: a fifo, a device, a git submodule, a broken link.
    Other,
    /// A link that leads outside the project (never followed).
    Outside,
}

/// Where a link at a path leads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Link {
    /// The path is not a link.
    NotALink,
    /// A link that resolves inside the project.
    Inside,
    /// A link that leads outside the project, to the place shown.
    Outside(String),
    /// A link that cannot be resolved.
    Broken(String),
}

/// An entry of a folder: its name (`Err`, shown lossily, when it is not UTF-8) and kind.
pub type Listed = (Result<String, String>, Kind);

/// Read access to the files of a project.
pub trait ProjectFiles: Sync {
    /// The content of the file at `rel`.
    fn read(&self, rel: &str) -> io::Result<Vec<u8>>;
    /// What is at `rel`, following links that stay in the project (`Outside` for one that
    /// does not); `None` when nothing is.
    fn kind(&self, rel: &str) -> Option<Kind>;
    /// The entries of the folder `rel`, by name with their kind; `Ok(None)` when there is no
    /// such folder. A name that is not UTF-8 is `Err` with its lossy rendering.
    fn list(&self, rel: &str) -> io::Result<Option<Vec<Listed>>>;
    /// Whether `rel` is a link, and where it leads.
    fn link(&self, rel: &str) -> Link;
}

/// The project's folder on disk.
pub struct WorkTree {
    pub root: PathBuf,
}

impl WorkTree {
    pub fn new(root: &Path) -> WorkTree {
        WorkTree {
            root: root.to_path_buf(),
        }
    }
}

fn kind_of(t: &fs::FileType) -> Kind {
    if t.is_file() {
        Kind::File
    } else if t.is_dir() {
        Kind::Dir
    } else {
        Kind::Other
    }
}

impl ProjectFiles for WorkTree {
    fn read(&self, rel: &str) -> io::Result<Vec<u8>> {
        crate::fsutil::read_declaration(&self.root.join(rel))
    }

    fn kind(&self, rel: &str) -> Option<Kind> {
        let path = self.root.join(rel);
        let m = path.symlink_metadata().ok()?;
        if !m.file_type().is_symlink() {
            return Some(kind_of(&m.file_type()));
        }
        match path.canonicalize() {
            Ok(real) if !real.starts_with(&self.root) => Some(Kind::Outside),
            _ => fs::metadata(&path).ok().map(|m| kind_of(&m.file_type())),
        }
    }

    fn list(&self, rel: &str) -> io::Result<Option<Vec<Listed>>> {
        let dir = self.root.join(rel);
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut out = Vec::new();
        for entry in entries.flatten() {
            let name = entry
                .file_name()
                .into_string()
                .map_err(|n| n.to_string_lossy().into_owned());
            // The listing's type saves a `stat` unless the entry is a link (or the file system
            // gives no types).
            let kind = match entry.file_type() {
                Ok(t) if !t.is_symlink() => kind_of(&t),
                Ok(_) => match entry.path().canonicalize() {
                    Ok(real) if !real.starts_with(&self.root) => Kind::Outside,
                    _ => {
                        fs::metadata(entry.path()).map_or(Kind::Other, |m| kind_of(&m.file_type()))
                    }
                },
                Err(_) => {
                    fs::metadata(entry.path()).map_or(Kind::Other, |m| kind_of(&m.file_type()))
                }
            };
            out.push((name, kind));
        }
        Ok(Some(out))
    }

    fn link(&self, rel: &str) -> Link {
        let path = self.root.join(rel);
        if !path
            .symlink_metadata()
            .is_ok_and(|m| m.file_type().is_symlink())
        {
            return Link::NotALink;
        }
        match path.canonicalize() {
            Ok(real) if real.starts_with(&self.root) => Link::Inside,
            Ok(real) => Link::Outside(real.display().to_string()),
            Err(e) => Link::Broken(e.to_string()),
        }
    }
}
