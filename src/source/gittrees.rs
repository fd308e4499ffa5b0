//! Role folders at a git revision, known without reading them (`--since`, issue 15).
//!
//! A git tree id names its content, so what layer makes of a role folder's tree — the digest
//! of its [`Tree`] and the blob of its `role.toml` ([`RoleTree`]) — can be kept by tree id and
//! never goes stale: [`RoleTrees`], kept in the cache between runs. A revision's role folder
//! whose id is kept is not read at all.
//!
//! The tree ids of the role folders git's index holds are computed from the index's entries
//! alone ([`index_tree_ids`]: git's tree encoding of their paths, modes and blob ids, hashed),
//! so a role folder the revision shares with the index is digested from the blob digests the
//! stat cache vouches for, without reading a tree. The id is computed, not taken from the
//! index's cache-tree extension: it needs no extension, and a stale or damaged extension
//! cannot make a wrong digest (an index that does not hash to the revision's id is not used).

use std::collections::HashMap;

use gix::objs::tree::EntryMode;

/// What layer makes of a role folder's git tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoleTree {
    /// The digest of its [`crate::scan::Tree`], as `scan` digests the same files on disk.
    pub digest: [u8; 32],
    /// The blob of its `role.toml`, when that is a file.
    pub role_toml: Option<gix::ObjectId>,
}

/// Role folders by git tree id; encoded as `RoleTrees::MAGIC`, a count, then per tree its id
/// (length byte and bytes), digest, and `role.toml` blob (a length byte, 0 for none, and bytes).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoleTrees {
    map: HashMap<gix::ObjectId, RoleTree>,
}

impl RoleTrees {
    const MAGIC: &'static [u8; 13] = b"layer-trees\0\x01";

    pub fn get(&self, id: &gix::oid) -> Option<&RoleTree> {
        self.map.get(id)
    }

    pub fn insert(&mut self, id: gix::ObjectId, tree: RoleTree) {
        self.map.insert(id, tree);
    }

    /// Adds every tree of `other`.
    pub fn extend(&mut self, other: &RoleTrees) {
        self.map.extend(other.map.iter().map(|(id, t)| (*id, *t)));
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The trees of `ids` only (those not held are left out).
    pub fn only(&self, ids: impl IntoIterator<Item = gix::ObjectId>) -> RoleTrees {
        let map = ids
            .into_iter()
            .filter_map(|id| Some((id, *self.map.get(&id)?)))
            .collect();
        RoleTrees { map }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Self::MAGIC.to_vec();
        out.extend_from_slice(&(self.map.len() as u64).to_le_bytes());
        let put_id = |out: &mut Vec<u8>, id: Option<&gix::oid>| {
            let bytes = id.map_or(&[][..], |id| id.as_bytes());
            out.push(bytes.len() as u8);
            out.extend_from_slice(bytes);
        };
        // Sorted, so the same trees are the same bytes.
        let mut trees: Vec<_> = self.map.iter().collect();
        trees.sort_unstable_by_key(|(id, _)| *id);
        for (id, t) in trees {
            put_id(&mut out, Some(id));
            out.extend_from_slice(&t.digest);
            put_id(&mut out, t.role_toml.as_deref());
        }
        out
    }

    /// The trees `bytes` encode; `None` unless they are exactly an encoding.
    pub fn decode(bytes: &[u8]) -> Option<RoleTrees> {
        let mut b = bytes.strip_prefix(&Self::MAGIC[..])?;
        let count = u64::from_le_bytes(b.get(..8)?.try_into().ok()?);
        b = &b[8..];
        // Every tree takes at least 2 + 20 + 32 bytes: no count makes a huge allocation.
        let count = usize::try_from(count).ok().filter(|&n| n <= b.len() / 54)?;
        let take_id = |b: &mut &[u8]| -> Option<Option<gix::ObjectId>> {
            let len = usize::from(*b.first()?);
            let bytes = b.get(1..1 + len)?;
            *b = &b[1 + len..];
            if len == 0 {
                return Some(None);
            }
            Some(Some(gix::hash::oid::try_from_bytes(bytes).ok()?.to_owned()))
        };
        let mut map = HashMap::with_capacity(count);
        for _ in 0..count {
            let id = take_id(&mut b)??;
            let digest: [u8; 32] = b.get(..32)?.try_into().ok()?;
            b = &b[32..];
            let role_toml = take_id(&mut b)?;
            map.insert(id, RoleTree { digest, role_toml });
        }
        b.is_empty().then_some(RoleTrees { map })
    }
}

/// An entry of git's index below a folder: its path relative to the folder, mode and blob.
pub type IndexEntry<'a> = (&'a [u8], EntryMode, gix::ObjectId);

/// The git tree id of a folder whose entries (files and links, by path relative to it, in the
/// index's order: sorted by path bytes) are `entries`, as `git write-tree` would write it;
/// `None` when they make no tree.
pub fn index_tree_ids(entries: &[IndexEntry<'_>], hash: gix::hash::Kind) -> Option<gix::ObjectId> {
    let mut tree = gix::objs::Tree::empty();
    let mut i = 0;
    while i < entries.len() {
        let (path, mode, id) = entries[i];
        let Some(slash) = path.iter().position(|&c| c == b'/') else {
            if path.is_empty() || mode.is_tree() {
                return None;
            }
            tree.entries.push(gix::objs::tree::Entry {
                mode,
                filename: path.into(),
                oid: id,
            });
            i += 1;
            continue;
        };
        let name = &path[..=slash];
        // Paths below `name` are next to each other: the index is sorted by path bytes.
        let end = i + entries[i..]
            .iter()
            .take_while(|(p, _, _)| p.starts_with(name))
            .count();
        let below: Vec<IndexEntry<'_>> = entries[i..end]
            .iter()
            .map(|&(p, m, o)| (&p[name.len()..], m, o))
            .collect();
        tree.entries.push(gix::objs::tree::Entry {
            mode: gix::objs::tree::EntryKind::Tree.into(),
            filename: path[..slash].into(),
            oid: index_tree_ids(&below, hash)?,
        });
        i = end;
    }
    // Git's order: a folder sorts as if its name ended in `/`.
    tree.entries.sort();
    let mut bytes = Vec::new();
    gix::objs::WriteTo::write_to(&tree, &mut bytes).ok()?;
    gix::objs::compute_hash(hash, gix::objs::Kind::Tree, &bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(hex: &str) -> gix::ObjectId {
        gix::ObjectId::from_hex(hex.as_bytes()).unwrap()
    }

    #[test]
    fn role_trees_round_trip_and_refuse_damage() {
        let mut trees = RoleTrees::default();
        trees.insert(
            id("1111111111111111111111111111111111111111"),
            RoleTree {
                digest: [7; 32],
                role_toml: Some(id("2222222222222222222222222222222222222222")),
            },
        );
        trees.insert(
            id("3333333333333333333333333333333333333333"),
            RoleTree {
                digest: [9; 32],
                role_toml: None,
            },
        );
        let bytes = trees.encode();
        assert_eq!(RoleTrees::decode(&bytes), Some(trees.clone()));
        assert_eq!(
            bytes,
            trees.clone().encode(),
            "the same trees, the same bytes"
        );
        assert!(RoleTrees::decode(&bytes[..bytes.len() - 1]).is_none());
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(RoleTrees::decode(&longer).is_none());
        let mut huge = bytes.clone();
        huge[13..21].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(RoleTrees::decode(&huge).is_none());
        assert!(RoleTrees::decode(b"garbage").is_none());
        let one = trees.only([id("3333333333333333333333333333333333333333")]);
        assert_eq!(one.len(), 1);
    }

    #[test]
    fn tree_ids_are_gits() {
        // `git hash-object` of "a\n" and "b\n"; the tree ids are what `git write-tree` says
        // of an index holding `x/a`, `x-y` (a file sorting between `x` and `x/`), `z/b`
        // (executable) and `z/link` (a link to `a`).
        let a = id("78981922613b2afb6025042ff6bd878ac1994e85");
        let b = id("61780798228d17af2d34fce4cfbdf35556832472");
        let file: EntryMode = gix::objs::tree::EntryKind::Blob.into();
        let exec: EntryMode = gix::objs::tree::EntryKind::BlobExecutable.into();
        let link: EntryMode = gix::objs::tree::EntryKind::Link.into();
        let link_blob = id("2e65efe2a145dda7ee51d1741299f848e5bf752e");
        let entries = [
            (&b"x-y"[..], file, b),
            (&b"x/a"[..], file, a),
            (&b"z/b"[..], exec, b),
            (&b"z/link"[..], link, link_blob),
        ];
        let got = index_tree_ids(&entries, gix::hash::Kind::Sha1).unwrap();
        assert_eq!(got, id(WRITE_TREE));
        assert!(index_tree_ids(&[(&b"x/"[..], file, a)], gix::hash::Kind::Sha1).is_none());
    }

    /// `git write-tree` of the index in [`tree_ids_are_gits`].
    const WRITE_TREE: &str = "4f31b37d0573554db67b4b5a3840d11a6f1aeab9";
}
