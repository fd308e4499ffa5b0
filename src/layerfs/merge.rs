//! The merged view of a stack of layers, by overlayfs's rules: [`merge`] lists what a mount of
//! the stack would show and [`StackView`] finds, for each path, the layer that provides it.
//! Builds, tests and exports share it.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::overlay::{get_xattr, is_opaque, is_whiteout};
use super::tree::{join_rel, walk};
use crate::error::{Error, Result};

/// One entry of a layer, as the export reads it.
#[derive(Debug, Clone)]
pub(crate) struct LayerNode {
    pub rel: Vec<u8>,
    pub meta: fs::Metadata,
    pub opaque: bool,
}

/// Every entry of the layer at `root` (the root itself first), in walk order, with opaqueness.
/// Refuses overlayfs features that make an upper directory mean more than its files: a
/// `metacopy` file holds no data and a `redirect` folder takes its content from elsewhere.
pub(crate) fn scan_layer(root: &Path) -> Result<Vec<LayerNode>> {
    let nodes = walk(root)?;
    nodes
        .into_par_iter()
        .map(|n| {
            let path = join_rel(root, &n.rel);
            let feature = if n.meta.is_dir() {
                Some("trusted.overlay.redirect")
            } else if n.meta.is_file() {
                Some("trusted.overlay.metacopy")
            } else {
                None
            };
            if let Some(feature) = feature {
                let found = get_xattr(&path, feature).map_err(|e| Error::io(&path, e))?;
                if found.is_some() {
                    return Err(Error::io(
                        &path,
                        io::Error::other(format!(
                            "layer uses overlayfs `{feature}`, which an export cannot follow; \
                             mount overlays with redirect_dir=off,metacopy=off"
                        )),
                    ));
                }
            }
            let opaque = n.meta.is_dir() && is_opaque(&path);
            Ok(LayerNode {
                rel: n.rel,
                meta: n.meta,
                opaque,
            })
        })
        .collect()
}

/// One entry of the merged view of a stack.
#[derive(Debug, Clone)]
pub struct Merged {
    /// Path relative to the root, as bytes; "" is the root.
    pub rel: Vec<u8>,
    /// The index of the layer (in the stack, bottom first) the entry comes from.
    pub layer: usize,
    pub meta: fs::Metadata,
}

/// The tree a mount of `layers` (bottom first) would show, sorted by path as bytes, the root
/// ("") first. Applies overlayfs's rules: an entry of an upper layer replaces the same path
/// below; a whiteout removes the path and everything under it; an opaque folder, or a
/// non-folder over a folder, hides everything below it; the root takes the attributes of the
/// topmost layer's root, as an overlay mount's does. No whiteout is left in the result.
pub fn merge(layers: &[PathBuf]) -> Result<Vec<Merged>> {
    let scanned: Vec<Vec<LayerNode>> = layers
        .iter()
        .map(|l| scan_layer(l))
        .collect::<Result<_>>()?;
    let mut map: BTreeMap<Vec<u8>, (usize, fs::Metadata)> = BTreeMap::new();
    for (i, nodes) in scanned.into_iter().enumerate() {
        for n in nodes {
            if n.rel.is_empty() {
                if !n.meta.is_dir() {
                    return Err(Error::io(
                        &layers[i],
                        io::Error::other("a layer must be a folder"),
                    ));
                }
                map.insert(Vec::new(), (i, n.meta));
                continue;
            }
            let whiteout = is_whiteout(&n.meta);
            let over_non_dir = map.get(&n.rel).is_some_and(|(_, m)| !m.is_dir());
            if whiteout || n.opaque || !n.meta.is_dir() || over_non_dir {
                remove_below(&mut map, &n.rel);
            }
            if whiteout {
                map.remove(&n.rel);
            } else {
                map.insert(n.rel, (i, n.meta));
            }
        }
    }
    Ok(map
        .into_iter()
        .map(|(rel, (layer, meta))| Merged { rel, layer, meta })
        .collect())
}

/// Removes every entry strictly below `rel`.
fn remove_below<V>(map: &mut BTreeMap<Vec<u8>, V>, rel: &[u8]) {
    let mut lo = rel.to_vec();
    lo.push(b'/');
    let mut hi = rel.to_vec();
    hi.push(b'/' + 1);
    let doomed: Vec<Vec<u8>> = map.range(lo..hi).map(|(k, _)| k.clone()).collect();
    for k in doomed {
        map.remove(&k);
    }
}

/// The merged view of a stack of trees (bottom first), as overlayfs would show it: for each
/// path, the tree that provides it. Whiteouts remove a path and everything below it; an opaque
/// folder hides what the trees below hold under it.
pub struct StackView {
    entries: std::collections::BTreeMap<Vec<u8>, PathBuf>,
}

impl StackView {
    pub fn new(stack: &[PathBuf]) -> Result<StackView> {
        let entries = merge(stack)?
            .into_iter()
            .map(|m| (m.rel, stack[m.layer].clone()))
            .collect();
        Ok(StackView { entries })
    }

    /// The path of `rel` in the tree that provides it.
    pub fn get(&self, rel: &[u8]) -> Option<PathBuf> {
        self.entries.get(rel).map(|layer| join_rel(layer, rel))
    }

    /// Every path of the merged view, sorted ("" first).
    pub fn paths(&self) -> impl Iterator<Item = &Vec<u8>> {
        self.entries.keys()
    }
}

/// The file a mount of `layers` (bottom first) shows at `rel` (relative, `/`-separated), found
/// without merging the whole stack: each component is looked up from the top layer down,
/// stopping at a whiteout, an opaque folder or a non-folder in a layer above; symbolic links
/// are followed inside the stack, as a chroot of it would (`/etc/os-release` is one on
/// Debian). `None` when the stack shows nothing there.
pub fn lookup(layers: &[PathBuf], rel: &str) -> Option<PathBuf> {
    let mut todo: std::collections::VecDeque<String> = rel
        .split('/')
        .filter(|c| !c.is_empty())
        .map(String::from)
        .collect();
    let mut cur: Vec<String> = Vec::new();
    let mut hops = 0;
    let mut found = None;
    while let Some(c) = todo.pop_front() {
        match c.as_str() {
            "." => continue,
            ".." => {
                cur.pop();
                continue;
            }
            _ => {}
        }
        cur.push(c);
        let path = top_entry(layers, &cur)?;
        let meta = fs::symlink_metadata(&path).ok()?;
        if meta.file_type().is_symlink() {
            hops += 1;
            if hops > 16 {
                return None;
            }
            let target = fs::read_link(&path).ok()?;
            let target = target.to_str()?.to_string();
            cur.pop();
            if target.starts_with('/') {
                cur.clear();
            }
            for (i, t) in target.split('/').filter(|t| !t.is_empty()).enumerate() {
                todo.insert(i, t.to_string());
            }
            continue;
        }
        if !todo.is_empty() && !meta.is_dir() {
            return None;
        }
        found = Some(path);
    }
    found
}

/// The path of `rel` in the topmost layer that shows it, if any layer does.
fn top_entry(layers: &[PathBuf], rel: &[String]) -> Option<PathBuf> {
    for layer in layers.iter().rev() {
        let path = rel.iter().fold(layer.clone(), |p, c| p.join(c));
        if let Ok(meta) = fs::symlink_metadata(&path) {
            return (!is_whiteout(&meta)).then_some(path);
        }
        // Missing here: does something of this layer hide the layers below?
        let mut dir = layer.clone();
        for c in &rel[..rel.len() - 1] {
            dir.push(c);
            match fs::symlink_metadata(&dir) {
                Ok(m) if !m.is_dir() => return None,
                Ok(_) if is_opaque(&dir) => return None,
                Ok(_) => {}
                Err(_) => break,
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layerfs::overlay::{make_whiteout, set_opaque, set_xattr};
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    // The tree a mount of the stack would show, as builds, tests and exports rely on it.

    /// The merged paths of `layers`, in order.
    fn rels(layers: &[PathBuf]) -> Vec<String> {
        merge(layers)
            .unwrap()
            .into_iter()
            .map(|m| String::from_utf8(m.rel).unwrap())
            .collect()
    }

    #[test]
    #[cfg_attr(
        missing = "root",
        ignore = "needs root (mounts, chroot, owners, device nodes)"
    )]
    fn merging_applies_whiteouts_opaque_folders_and_replacements() {
        let d = tempfile::tempdir().unwrap();
        let (lo, up) = (d.path().join("lo"), d.path().join("up"));
        for p in ["a/x", "b/y", "c/z", "e/f", "g"] {
            let p = lo.join(p);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, "lower").unwrap();
        }
        fs::create_dir_all(up.join("b")).unwrap();
        fs::write(up.join("b/new"), "upper").unwrap();
        set_opaque(&up.join("b")).unwrap();
        fs::create_dir_all(up.join("c")).unwrap();
        fs::write(up.join("c/w"), "upper").unwrap();
        fs::write(up.join("e"), "a file over a folder").unwrap();
        fs::create_dir(up.join("g")).unwrap();
        fs::write(up.join("g/h"), "a folder over a file").unwrap();
        fs::set_permissions(&up, fs::Permissions::from_mode(0o711)).unwrap();
        make_whiteout(&up.join("a")).expect("mknod of a whiteout (needs root)");
        let layers = [lo, up];
        let got = rels(&layers);
        assert_eq!(got, ["", "b", "b/new", "c", "c/w", "c/z", "e", "g", "g/h"]);
        let merged = merge(&layers).unwrap();
        assert_eq!(
            merged[0].meta.mode() & 0o7777,
            0o711,
            "the root is the top layer's"
        );
        let e = merged.iter().find(|m| m.rel == b"e").unwrap();
        assert!(e.meta.is_file() && e.layer == 1);
    }

    #[test]
    #[cfg_attr(
        missing = "root",
        ignore = "needs root (mounts, chroot, owners, device nodes)"
    )]
    fn layers_with_overlayfs_metacopy_files_are_refused() {
        let d = tempfile::tempdir().unwrap();
        fs::write(d.path().join("f"), "").unwrap();
        set_xattr(&d.path().join("f"), "trusted.overlay.metacopy", b"").unwrap();
        let e = merge(&[d.path().to_path_buf()]).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "{}: layer uses overlayfs `trusted.overlay.metacopy`, which an export cannot \
                 follow; mount overlays with redirect_dir=off,metacopy=off",
                d.path().join("f").display()
            )
        );
    }

    #[test]
    fn sorting_is_by_path_bytes_with_parents_first() {
        let d = tempfile::tempdir().unwrap();
        for p in ["a/b", "a-c", "a.d/e"] {
            let p = d.path().join(p);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, "").unwrap();
        }
        assert_eq!(
            rels(&[d.path().to_path_buf()]),
            ["", "a", "a-c", "a.d", "a.d/e", "a/b"]
        );
    }

    #[test]
    fn a_layer_that_is_not_a_folder_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("file");
        fs::write(&f, "").unwrap();
        let e = merge(std::slice::from_ref(&f)).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("{}: a layer must be a folder", f.display())
        );
    }

    #[test]
    #[cfg_attr(
        missing = "root",
        ignore = "needs root (mounts, chroot, owners, device nodes)"
    )]
    fn lookup_finds_what_a_mount_shows() {
        let d = tempfile::tempdir().unwrap();
        let (lo, up) = (d.path().join("lo"), d.path().join("up"));
        for p in ["usr/lib/os-release", "var/lib/dpkg/status", "a/x", "b/y"] {
            let p = lo.join(p);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, "lower").unwrap();
        }
        fs::create_dir_all(lo.join("etc")).unwrap();
        std::os::unix::fs::symlink("../usr/lib/os-release", lo.join("etc/os-release")).unwrap();
        fs::create_dir_all(up.join("var/lib/dpkg")).unwrap();
        fs::write(up.join("var/lib/dpkg/status"), "upper").unwrap();
        fs::create_dir_all(up.join("b")).unwrap();
        set_opaque(&up.join("b")).unwrap();
        make_whiteout(&up.join("a")).expect("mknod of a whiteout (needs root)");
        let layers = [lo.clone(), up.clone()];
        assert_eq!(
            lookup(&layers, "var/lib/dpkg/status"),
            Some(up.join("var/lib/dpkg/status"))
        );
        assert_eq!(
            lookup(&layers, "etc/os-release"),
            Some(lo.join("usr/lib/os-release"))
        );
        assert_eq!(lookup(&layers, "a/x"), None, "under a whiteout");
        assert_eq!(lookup(&layers, "b/y"), None, "under an opaque folder");
        assert_eq!(lookup(&layers, "nothing"), None);
    }
}
