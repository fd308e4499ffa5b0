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
