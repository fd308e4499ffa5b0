//! What a git revision holds of a project ([`Snapshot`]): its declarations by blob id (read by
//! `gitread` only when they must be parsed) and its role folders by tree id, served to
//! `decl` as [`ProjectFiles`]; [`Snapshot::names`] is the digest a parsed model is kept under.

use std::collections::HashMap;

use crate::source::files::{Kind, Link, Listed, ProjectFiles};
use crate::source::gittrees::RoleTrees;

/// What a revision holds of a project: declarations (by blob id, and read when they must be
/// parsed), and role folders by tree id.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub(super) kinds: HashMap<String, Kind>,
    pub(super) listings: HashMap<String, Vec<Listed>>,
    /// Declaration files: their blobs, and once read ([`Revision::read_contents`]) contents.
    pub(super) blobs: HashMap<String, gix::ObjectId>,
    pub(super) contents: HashMap<String, Vec<u8>>,
    pub(super) links: HashMap<String, Link>,
    /// Role folder (`roles/java`) -> its git tree.
    pub roles: HashMap<String, gix::ObjectId>,
}

impl Snapshot {
    /// Whether the revision has a project here at all (a `layer.toml`).
    pub fn has_project(&self) -> bool {
        self.blobs.contains_key(crate::model::PROJECT_FILE)
    }

    /// Notes each role folder's `role.toml` from `trees`, which must hold every role
    /// folder's tree.
    pub fn add_roles(&mut self, trees: &RoleTrees) {
        for (rel, id) in &self.roles {
            if let Some(blob) = trees.get(id).and_then(|t| t.role_toml) {
                let path = format!("{rel}/role.toml");
                self.kinds.insert(path.clone(), Kind::File);
                self.blobs.insert(path, blob);
            }
        }
    }

    /// A digest of everything a load can ask of this snapshot (kinds, listings, links, and
    /// each file's blob id): two snapshots with the same names load the same project.
    pub fn names(&self) -> [u8; 32] {
        fn kind(k: Kind) -> u8 {
            match k {
                Kind::File => b'f',
                Kind::Dir => b'd',
                Kind::Other => b'o',
                Kind::Outside => b'x',
            }
        }
        fn sorted<V>(m: &HashMap<String, V>) -> Vec<(&String, &V)> {
            let mut v: Vec<_> = m.iter().collect();
            v.sort_unstable_by_key(|(k, _)| *k);
            v
        }
        let mut h = blake3::Hasher::new();
        let mut put = |tag: u8, bytes: &[u8]| {
            h.update(&[tag]);
            h.update(&(bytes.len() as u64).to_le_bytes());
            h.update(bytes);
        };
        for (path, k) in sorted(&self.kinds) {
            put(b'k', path.as_bytes());
            put(kind(*k), b"");
        }
        for (path, listing) in sorted(&self.listings) {
            put(b'l', path.as_bytes());
            for (name, k) in listing {
                match name {
                    Ok(n) => put(b'n', n.as_bytes()),
                    Err(n) => put(b'e', n.as_bytes()),
                }
                put(kind(*k), b"");
            }
        }
        for (path, link) in sorted(&self.links) {
            put(b's', path.as_bytes());
            match link {
                Link::NotALink => put(b'-', b""),
                Link::Inside => put(b'i', b""),
                Link::Outside(to) => put(b'x', to.as_bytes()),
                Link::Broken(why) => put(b'b', why.as_bytes()),
            }
        }
        for (path, id) in sorted(&self.blobs) {
            put(b'b', path.as_bytes());
            put(b'o', id.as_bytes());
        }
        h.finalize().into()
    }
}

impl ProjectFiles for Snapshot {
    fn read(&self, rel: &str) -> std::io::Result<Vec<u8>> {
        self.contents
            .get(rel)
            .cloned()
            .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound))
    }

    fn kind(&self, rel: &str) -> Option<Kind> {
        self.kinds.get(rel).copied()
    }

    fn list(&self, rel: &str) -> std::io::Result<Option<Vec<Listed>>> {
        Ok(self.listings.get(rel).cloned())
    }

    fn link(&self, rel: &str) -> Link {
        self.links.get(rel).cloned().unwrap_or(Link::NotALink)
    }
}
