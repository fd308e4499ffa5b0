//! Role trees as values, pure: [`Tree`] (entries sorted by path, and the digest over them) and
//! [`diff_trees`], what changed for each path between two trees.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// One entry of a role tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub path: String,
    #[serde(flatten)]
    pub kind: EntryKind,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum EntryKind {
    File { exec: bool, blake3: FileDigest },
    Dir,
    Symlink { target: String },
}

/// A file's blake3, kept as its 32 bytes and written as its 64 hex digits (in a tree's JSON,
/// and in the encoding a tree's digest is over). Held as bytes, a no-op plan of 10,000 images
/// builds 100,000 fewer strings.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileDigest(pub [u8; 32]);

impl FileDigest {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> FileDigest {
        FileDigest(*blake3::hash(bytes).as_bytes())
    }

    /// The 64 lowercase hex digits, without allocating.
    pub fn to_hex(&self) -> impl std::ops::Deref<Target = str> {
        blake3::Hash::from(self.0).to_hex()
    }

    /// Appends the 64 lowercase hex digits to `out`: what [`FileDigest::to_hex`] gives, a
    /// byte pair per table lookup (`to_hex` pushes a character at a time, 3% of a no-op
    /// plan's walk).
    pub fn hex_into(&self, out: &mut Vec<u8>) {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut hex = [0u8; 64];
        for (pair, b) in hex.chunks_exact_mut(2).zip(self.0) {
            pair[0] = DIGITS[usize::from(b >> 4)];
            pair[1] = DIGITS[usize::from(b & 0xf)];
        }
        out.extend_from_slice(&hex);
    }
}

impl std::fmt::Display for FileDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl std::fmt::Debug for FileDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FileDigest({self})")
    }
}

impl std::str::FromStr for FileDigest {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        // `from_hex` takes upper case too; a tree's JSON only ever holds lower case.
        if s.bytes().any(|c| c.is_ascii_uppercase()) {
            return Err(format!("`{s}` is not a blake3 digest in lowercase hex"));
        }
        blake3::Hash::from_hex(s)
            .map(|h| FileDigest(*h.as_bytes()))
            .map_err(|_| format!("`{s}` is not a blake3 digest (64 hex digits)"))
    }
}

impl Serialize for FileDigest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for FileDigest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Hex;
        impl serde::de::Visitor<'_> for Hex {
            type Value = FileDigest;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a blake3 digest as 64 hex digits")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<FileDigest, E> {
                v.parse().map_err(E::custom)
            }
        }
        d.deserialize_str(Hex)
    }
}

/// A role folder's content, with its digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tree {
    pub entries: Vec<Entry>,
    pub digest: String,
}

/// The folder of a role's tests (`roles/NAME/tests/`): not part of its tree, so not of any
/// key. Tests change what is checked, not what is built (SPEC §2), as `[[test]]` entries of
/// an image do; `layer test` reads them from the role folder.
const ROLE_TESTS: &str = "tests";

/// The role's declaration (`roles/NAME/role.toml`): not part of its tree either. Keys hold it
/// parsed and normalised (`key::RoleDeclInputs`), so its comments, formatting and the order
/// of its `packages` change no key, and every field that changes a build does.
const ROLE_DECL: &str = "role.toml";

/// Whether `path` (relative to the role folder) is the tests folder or inside it.
fn is_role_test(path: &str) -> bool {
    path.strip_prefix(ROLE_TESTS)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// Whether `path` (relative to the role folder) is left out of the role's tree: its tests
/// and its `role.toml`.
pub(super) fn left_out(path: &str) -> bool {
    path == ROLE_DECL || is_role_test(path)
}

impl Tree {
    /// Leaves out the role's tests and `role.toml` ([`left_out`]), sorts the entries by path and computes
    /// the digest over a canonical encoding:
    /// `layer-tree-v1\0` then, per entry, `f` + exec flag + digest, `d`, or `l` + target,
    /// each followed by `\0` + path + `\0`.
    pub fn new(mut entries: Vec<Entry>) -> Tree {
        entries.retain(|e| !left_out(&e.path));
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        // The encoding is built whole and hashed at once: blake3 is many times faster over
        // one buffer than over a hundred small updates per entry.
        let mut enc = Vec::with_capacity(16 + entries.len() * 128);
        enc.extend_from_slice(b"layer-tree-v1\0");
        for e in &entries {
            match &e.kind {
                EntryKind::File { exec, blake3 } => {
                    enc.extend_from_slice(if *exec { b"fx" } else { b"f-" });
                    blake3.hex_into(&mut enc);
                }
                EntryKind::Dir => {
                    enc.push(b'd');
                }
                EntryKind::Symlink { target } => {
                    enc.push(b'l');
                    enc.extend_from_slice(target.as_bytes());
                }
            }
            enc.push(0);
            enc.extend_from_slice(e.path.as_bytes());
            enc.push(0);
        }
        Tree {
            entries,
            digest: blake3::hash(&enc).to_hex().to_string(),
        }
    }
}

/// What changed for one path between two trees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileChange {
    Added,
    Removed,
    Content,
    /// The executable bit; `true` when it is now set.
    Mode(bool),
    Retarget {
        old: String,
        new: String,
    },
    Type {
        old: &'static str,
        new: &'static str,
    },
}

fn type_name(k: &EntryKind) -> &'static str {
    match k {
        EntryKind::File { .. } => "file",
        EntryKind::Dir => "folder",
        EntryKind::Symlink { .. } => "symlink",
    }
}

/// The differences between two trees, by path.
pub fn diff_trees(old: &Tree, new: &Tree) -> Vec<(String, FileChange)> {
    let old_map: HashMap<&str, &EntryKind> = old
        .entries
        .iter()
        .map(|e| (e.path.as_str(), &e.kind))
        .collect();
    let new_map: HashMap<&str, &EntryKind> = new
        .entries
        .iter()
        .map(|e| (e.path.as_str(), &e.kind))
        .collect();
    let mut out = Vec::new();
    for e in &new.entries {
        let change = match old_map.get(e.path.as_str()) {
            None => Some(FileChange::Added),
            Some(o) => match (o, &e.kind) {
                (
                    EntryKind::File {
                        exec: x1,
                        blake3: b1,
                    },
                    EntryKind::File {
                        exec: x2,
                        blake3: b2,
                    },
                ) => {
                    if b1 != b2 {
                        Some(FileChange::Content)
                    } else if x1 != x2 {
                        Some(FileChange::Mode(*x2))
                    } else {
                        None
                    }
                }
                (EntryKind::Symlink { target: t1 }, EntryKind::Symlink { target: t2 }) => {
                    (t1 != t2).then(|| FileChange::Retarget {
                        old: t1.clone(),
                        new: t2.clone(),
                    })
                }
                (EntryKind::Dir, EntryKind::Dir) => None,
                (o, n) => Some(FileChange::Type {
                    old: type_name(o),
                    new: type_name(n),
                }),
            },
        };
        if let Some(c) = change {
            out.push((e.path.clone(), c));
        }
    }
    for e in &old.entries {
        if !new_map.contains_key(e.path.as_str()) {
            out.push((e.path.clone(), FileChange::Removed));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, exec: bool, content: &str) -> Entry {
        Entry {
            path: path.into(),
            kind: EntryKind::File {
                exec,
                blake3: FileDigest::of(content.as_bytes()),
            },
        }
    }

    #[test]
    fn a_file_digest_is_written_as_hex_and_read_back_only_from_hex() {
        let e = file("a.conf", false, "a");
        let json = serde_json::to_string(&e).unwrap();
        let hex = blake3::hash(b"a").to_hex().to_string();
        assert_eq!(
            json,
            format!(r#"{{"path":"a.conf","type":"file","exec":false,"blake3":"{hex}"}}"#)
        );
        assert_eq!(serde_json::from_str::<Entry>(&json).unwrap(), e);
        for bad in [
            "",
            "abc",
            &hex[..63],
            &hex.to_uppercase(),
            &format!("{hex}0"),
        ] {
            let json = format!(r#"{{"path":"a","type":"file","exec":false,"blake3":"{bad}"}}"#);
            assert!(serde_json::from_str::<Entry>(&json).is_err(), "{bad:?}");
        }
        // The digest is over the hex, as it was when the digest was a string.
        let t = Tree::new(vec![e]);
        let mut enc = b"layer-tree-v1\0f-".to_vec();
        enc.extend_from_slice(hex.as_bytes());
        enc.extend_from_slice(b"\0a.conf\0");
        assert_eq!(t.digest, blake3::hash(&enc).to_hex().to_string());
        // `hex_into` writes what `to_hex` does, every byte value included.
        for d in [
            [0u8; 32],
            [0xff; 32],
            std::array::from_fn(|i| (i * 8 + 3) as u8),
        ] {
            let mut out = b"x".to_vec();
            FileDigest(d).hex_into(&mut out);
            assert_eq!(out[1..], *FileDigest(d).to_hex().as_bytes());
        }
    }

    #[test]
    fn a_roles_tests_are_not_in_its_tree() {
        let with = Tree::new(vec![
            file("provision.sh", true, "x"),
            Entry {
                path: "tests".into(),
                kind: EntryKind::Dir,
            },
            file("tests/a.sh", false, "true"),
        ]);
        let without = Tree::new(vec![file("provision.sh", true, "x")]);
        assert_eq!(with, without);
        assert!(!is_role_test("testsuite.sh") && !is_role_test("files/tests/x"));
    }

    #[test]
    fn a_roles_declaration_is_not_in_its_tree_but_a_file_of_that_name_below_is() {
        let with = Tree::new(vec![
            file("provision.sh", true, "x"),
            file("role.toml", false, "packages = [\"curl\"]"),
        ]);
        let without = Tree::new(vec![file("provision.sh", true, "x")]);
        assert_eq!(with, without);
        let nested = Tree::new(vec![
            file("provision.sh", true, "x"),
            file("files/role.toml", false, ""),
        ]);
        assert_ne!(nested.digest, without.digest);
    }

    #[test]
    fn digest_ignores_entry_order_and_sees_every_attribute() {
        let a = Tree::new(vec![file("b", false, "1"), file("a", false, "2")]);
        let b = Tree::new(vec![file("a", false, "2"), file("b", false, "1")]);
        assert_eq!(a.digest, b.digest);
        let mode = Tree::new(vec![file("a", true, "2"), file("b", false, "1")]);
        assert_ne!(a.digest, mode.digest);
        let link = |t: &str| {
            Tree::new(vec![Entry {
                path: "l".into(),
                kind: EntryKind::Symlink { target: t.into() },
            }])
        };
        assert_ne!(link("x").digest, link("y").digest);
        let dir = Tree::new(vec![Entry {
            path: "l".into(),
            kind: EntryKind::Dir,
        }]);
        assert_ne!(dir.digest, link("").digest);
    }

    #[test]
    fn tree_diff_names_each_kind_of_change() {
        let old = Tree::new(vec![
            file("a", false, "1"),
            file("b", false, "1"),
            file("c", false, "1"),
        ]);
        let new = Tree::new(vec![
            file("a", true, "1"),
            file("b", false, "2"),
            file("d", false, "1"),
        ]);
        assert_eq!(
            diff_trees(&old, &new),
            vec![
                ("a".to_string(), FileChange::Mode(true)),
                ("b".to_string(), FileChange::Content),
                ("c".to_string(), FileChange::Removed),
                ("d".to_string(), FileChange::Added),
            ]
        );
    }
}
