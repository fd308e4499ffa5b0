//! The image graph: topological order, cycles, ancestry, and which roles each image applies.
//! Pure: no I/O.
//!
//! Images are named by [`ImageId`] (their place in `project.images`, which is in topological
//! order), and what the graph holds per image is an [`ImageMap`], indexed by `ImageId` only: a
//! bare `usize`, or an index into some other list, does not index it.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};
use std::ops::{Index, IndexMut};

use crate::model::{Project, Role, Strategy};

/// Cycles among `(name, parent)` nodes, each as the path `a -> b -> a` starting at its smallest
/// name; parents that are not nodes are ignored.
pub fn parent_cycles(nodes: &[(String, Option<String>)]) -> Vec<Vec<String>> {
    let parent: HashMap<&str, &str> = nodes
        .iter()
        .filter_map(|(n, p)| p.as_deref().map(|p| (n.as_str(), p)))
        .collect();
    let mut cycles = BTreeSet::new();
    for (start, _) in nodes {
        // Walk up at most |nodes| steps; a node met twice closes a cycle.
        let mut path: Vec<&str> = vec![start];
        let mut cur = start.as_str();
        while let Some(&p) = parent.get(cur) {
            if let Some(pos) = path.iter().position(|n| *n == p) {
                let cyc = &path[pos..];
                let min = cyc
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, n)| **n)
                    .map(|(i, _)| i)
                    .unwrap_or(0);
                let mut c: Vec<String> = cyc[min..]
                    .iter()
                    .chain(&cyc[..min])
                    .map(ToString::to_string)
                    .collect();
                c.push(c[0].clone());
                cycles.insert(c);
                break;
            }
            if path.len() > nodes.len() {
                break;
            }
            path.push(p);
            cur = p;
        }
    }
    cycles.into_iter().collect()
}

/// Cycles in a `depends` graph, each as `a -> b -> a` starting at its smallest name.
pub fn depends_cycles(deps: &BTreeMap<String, Vec<String>>) -> Vec<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Active,
        Done,
    }
    fn visit<'a>(
        n: &'a str,
        deps: &'a BTreeMap<String, Vec<String>>,
        mark: &mut HashMap<&'a str, Mark>,
        stack: &mut Vec<&'a str>,
        out: &mut BTreeSet<Vec<String>>,
    ) {
        mark.insert(n, Mark::Active);
        stack.push(n);
        for d in deps.get(n).into_iter().flatten() {
            match mark.get(d.as_str()).copied().unwrap_or(Mark::New) {
                Mark::New if deps.contains_key(d) => visit(d, deps, mark, stack, out),
                Mark::Active => {
                    let pos = stack
                        .iter()
                        .position(|s| *s == d)
                        .expect("active node is on the stack");
                    let cyc = &stack[pos..];
                    let min = cyc
                        .iter()
                        .enumerate()
                        .min_by_key(|(_, n)| **n)
                        .map(|(i, _)| i)
                        .unwrap_or(0);
                    let mut c: Vec<String> = cyc[min..]
                        .iter()
                        .chain(&cyc[..min])
                        .map(ToString::to_string)
                        .collect();
                    c.push(c[0].clone());
                    out.insert(c);
                }
                _ => {}
            }
        }
        stack.pop();
        mark.insert(n, Mark::Done);
    }
    let mut mark = HashMap::new();
    let mut out = BTreeSet::new();
    for n in deps.keys() {
        if mark.get(n.as_str()).copied().unwrap_or(Mark::New) == Mark::New {
            visit(n, deps, &mut mark, &mut Vec::new(), &mut out);
        }
    }
    out.into_iter().collect()
}

/// An image: its index in `project.images` (topological order, parents first), and so in every
/// [`ImageMap`] of the project's images.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ImageId(u32);

impl ImageId {
    /// The image at `index` in `project.images`.
    pub fn new(index: usize) -> ImageId {
        ImageId(u32::try_from(index).expect("fewer than 2^32 images"))
    }

    /// Its index in `project.images`, and in lists of images kept as plain vectors.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// One value per image of the project, indexed by [`ImageId`] (as `evmar/n2`'s `DenseMap`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ImageMap<T>(Vec<T>);

impl<T> ImageMap<T> {
    /// `values[i]` is image `i`'s.
    pub fn from_vec(values: Vec<T>) -> ImageMap<T> {
        ImageMap(values)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Every image, in topological order.
    pub fn ids(&self) -> impl DoubleEndedIterator<Item = ImageId> {
        (0..self.0.len()).map(ImageId::new)
    }

    /// The values, in topological order of their images.
    pub fn values(&self) -> std::slice::Iter<'_, T> {
        self.0.iter()
    }

    /// Each image with its value, in topological order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (ImageId, &T)> {
        self.0.iter().enumerate().map(|(i, v)| (ImageId::new(i), v))
    }
}

impl<T: Clone> ImageMap<T> {
    /// `value` for each of `len` images.
    pub fn filled(len: usize, value: T) -> ImageMap<T> {
        ImageMap(vec![value; len])
    }
}

impl<T> FromIterator<T> for ImageMap<T> {
    /// The values of images `0, 1, ...` in that order.
    fn from_iter<I: IntoIterator<Item = T>>(values: I) -> ImageMap<T> {
        ImageMap(values.into_iter().collect())
    }
}

impl<T> Index<ImageId> for ImageMap<T> {
    type Output = T;

    fn index(&self, id: ImageId) -> &T {
        &self.0[id.index()]
    }
}

impl<T> IndexMut<ImageId> for ImageMap<T> {
    fn index_mut(&mut self, id: ImageId) -> &mut T {
        &mut self.0[id.index()]
    }
}

/// Indices of `nodes` in topological order (parents first), ties broken by name. Nodes on a
/// cycle or below one are left out; `decl` rejects cycles before this is called. The indices
/// are into `nodes` (declaration order), not [`ImageId`]s: `decl` orders `project.images` by
/// this, and only that order gives images their ids.
pub fn topo_order(nodes: &[(String, Option<String>)]) -> Vec<usize> {
    let index: HashMap<&str, usize> = nodes
        .iter()
        .enumerate()
        .map(|(i, (n, _))| (n.as_str(), i))
        .collect();
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); nodes.len()];
    let mut ready = BinaryHeap::new();
    for (i, (name, parent)) in nodes.iter().enumerate() {
        match parent.as_deref().and_then(|p| index.get(p)) {
            Some(&p) => children[p].push(i),
            None => ready.push(Reverse((name.as_str(), i))),
        }
    }
    let mut order = Vec::with_capacity(nodes.len());
    while let Some(Reverse((_, i))) = ready.pop() {
        order.push(i);
        for &c in &children[i] {
            ready.push(Reverse((nodes[c].0.as_str(), c)));
        }
    }
    order
}

/// Appends to `out` the roles `requested` applies, dependencies first, each at most once
/// (`seen` holds those already applied: the first occurrence wins, depth first).
pub fn expand_roles(
    roles: &BTreeMap<String, Role>,
    requested: &[String],
    seen: &mut BTreeSet<String>,
    out: &mut Vec<String>,
) {
    for r in requested {
        if seen.contains(r) {
            continue;
        }
        // Mark before recursing so a cycle (rejected by `decl`) cannot loop.
        seen.insert(r.clone());
        if let Some(role) = roles.get(r) {
            let deps = role.depends.clone();
            let mut sub = Vec::new();
            expand_roles(roles, &deps, seen, &mut sub);
            out.extend(sub);
        }
        out.push(r.clone());
    }
}

/// Every image's `chain_roles` and `inherited` (see [`Graph`]).
fn chain_roles(
    project: &Project,
    parent: &ImageMap<Option<ImageId>>,
) -> (ImageMap<Vec<String>>, ImageMap<usize>) {
    // Roles as indices while expanding, so that copying a parent's chain and marking what it
    // applied is copying integers, not names; names are cloned once per entry at the end.
    let role_names: Vec<&String> = project.roles.keys().collect();
    let role_index: HashMap<&str, u32> = role_names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), i as u32))
        .collect();
    let known = |names: &[String]| names.iter().all(|n| role_index.contains_key(n.as_str()));
    if !project.images.iter().all(|i| known(&i.roles))
        || !project.roles.values().all(|r| known(&r.depends))
    {
        // Only for projects `decl` would reject (a role that does not exist): by name.
        return chain_roles_by_name(project, parent);
    }
    let depends: Vec<Vec<u32>> = project
        .roles
        .values()
        .map(|r| r.depends.iter().map(|d| role_index[d.as_str()]).collect())
        .collect();
    // `seen[r] == stamp` marks role `r` as applied in the chain being expanded.
    let mut seen = vec![0u32; role_names.len()];
    let mut chains: ImageMap<Vec<u32>> = ImageMap(Vec::with_capacity(parent.len()));
    let mut chain_roles = ImageMap(Vec::with_capacity(parent.len()));
    let mut inherited = ImageMap(Vec::with_capacity(parent.len()));
    for (id, image) in parent.ids().zip(&project.images) {
        // Parents come first in topological order, so theirs are already computed.
        let mut list = parent[id].map(|p| chains[p].clone()).unwrap_or_default();
        inherited.0.push(list.len());
        let stamp = id.0 + 1;
        for &r in &list {
            seen[r as usize] = stamp;
        }
        for r in &image.roles {
            expand_ids(
                role_index[r.as_str()],
                &depends,
                &mut seen,
                stamp,
                &mut list,
            );
        }
        chain_roles.0.push(
            list.iter()
                .map(|&r| role_names[r as usize].clone())
                .collect(),
        );
        chains.0.push(list);
    }
    (chain_roles, inherited)
}

/// [`chain_roles`] by name, with [`expand_roles`].
fn chain_roles_by_name(
    project: &Project,
    parent: &ImageMap<Option<ImageId>>,
) -> (ImageMap<Vec<String>>, ImageMap<usize>) {
    let mut chain_roles: ImageMap<Vec<String>> = ImageMap(Vec::with_capacity(parent.len()));
    let mut inherited = ImageMap(Vec::with_capacity(parent.len()));
    for (id, image) in parent.ids().zip(&project.images) {
        let mut list = parent[id]
            .map(|p| chain_roles[p].clone())
            .unwrap_or_default();
        inherited.0.push(list.len());
        let mut seen: BTreeSet<String> = list.iter().cloned().collect();
        expand_roles(&project.roles, &image.roles, &mut seen, &mut list);
        chain_roles.0.push(list);
    }
    (chain_roles, inherited)
}

/// [`expand_roles`] over role indices: appends role `r` to `out` after its dependencies, each
/// role at most once (`seen[r] == stamp` when applied).
fn expand_ids(r: u32, depends: &[Vec<u32>], seen: &mut [u32], stamp: u32, out: &mut Vec<u32>) {
    if seen[r as usize] == stamp {
        return;
    }
    // Mark before recursing so a cycle (rejected by `decl`) cannot loop.
    seen[r as usize] = stamp;
    for &d in &depends[r as usize] {
        expand_ids(d, depends, seen, stamp, out);
    }
    out.push(r);
}

/// The project's images by [`ImageId`]: parents, children, chains and the roles each applies.
#[derive(Debug, Clone)]
pub struct Graph {
    /// Image `i` is `project.images[i.index()]`, which is in topological order.
    pub names: ImageMap<String>,
    pub index: HashMap<String, ImageId>,
    pub parent: ImageMap<Option<ImageId>>,
    pub children: ImageMap<Vec<ImageId>>,
    /// The roles of the whole chain, root first, as a shallow build applies them.
    pub chain_roles: ImageMap<Vec<String>>,
    /// How many of `chain_roles[i]` the parent chain already applied.
    pub inherited: ImageMap<usize>,
}

impl Graph {
    pub fn new(project: &Project) -> Graph {
        let names: ImageMap<String> = project.images.iter().map(|i| i.name.clone()).collect();
        let index: HashMap<String, ImageId> = names.iter().map(|(i, n)| (n.clone(), i)).collect();
        let parent: ImageMap<Option<ImageId>> = project
            .images
            .iter()
            .map(|i| i.parent().map(|p| index[p]))
            .collect();
        let mut children = ImageMap::filled(names.len(), Vec::new());
        for (i, p) in parent.iter() {
            if let Some(p) = p {
                children[*p].push(i);
            }
        }
        let (chain_roles, inherited) = chain_roles(project, &parent);
        Graph {
            names,
            index,
            parent,
            children,
            chain_roles,
            inherited,
        }
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Every image, in topological order.
    pub fn ids(&self) -> impl DoubleEndedIterator<Item = ImageId> {
        self.names.ids()
    }

    /// The roles a build of image `i` applies, in order.
    pub fn applied_roles(&self, i: ImageId, strategy: Strategy) -> &[String] {
        match strategy {
            Strategy::Deep => &self.chain_roles[i][self.inherited[i]..],
            Strategy::Shallow => &self.chain_roles[i],
        }
    }

    /// Root first, `i` last.
    pub fn chain(&self, i: ImageId) -> Vec<ImageId> {
        let mut c = vec![i];
        let mut cur = i;
        while let Some(p) = self.parent[cur] {
            c.push(p);
            cur = p;
        }
        c.reverse();
        c
    }

    /// Cuts image `i` from its parent, for an image pinned to a released build of it: the
    /// image no longer waits for, is selected with, or goes stale with its parent. The roles
    /// it applies stay those its declaration chain gives.
    pub fn unlink(&mut self, i: ImageId) {
        if let Some(p) = self.parent[i].take() {
            self.children[p].retain(|&c| c != i);
        }
    }

    /// Marks `i` and every image below it.
    pub fn mark_descendants(&self, i: ImageId, marks: &mut ImageMap<bool>) {
        let mut stack = vec![i];
        while let Some(n) = stack.pop() {
            if !marks[n] {
                marks[n] = true;
                stack.extend(&self.children[n]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(spec: &[(&str, Option<&str>)]) -> Vec<(String, Option<String>)> {
        spec.iter()
            .map(|(n, p)| (n.to_string(), p.map(str::to_string)))
            .collect()
    }

    #[test]
    fn topological_order_breaks_ties_by_name() {
        let n = nodes(&[
            ("svc", Some("app")),
            ("zeta", None),
            ("app", Some("base")),
            ("base", None),
            ("node", Some("base")),
        ]);
        let order: Vec<&str> = topo_order(&n)
            .into_iter()
            .map(|i| n[i].0.as_str())
            .collect();
        assert_eq!(order, ["base", "app", "node", "svc", "zeta"]);
    }

    #[test]
    fn cycles_print_as_paths_from_the_smallest_name() {
        let n = nodes(&[
            ("b", Some("c")),
            ("c", Some("a")),
            ("a", Some("b")),
            ("d", Some("a")),
            ("e", None),
        ]);
        assert_eq!(parent_cycles(&n), vec![vec!["a", "b", "c", "a"]]);
        let n = nodes(&[("a", Some("a"))]);
        assert_eq!(parent_cycles(&n), vec![vec!["a", "a"]]);
    }

    #[test]
    fn depends_cycles_are_found_once() {
        let mut d = BTreeMap::new();
        d.insert("x".to_string(), vec!["y".to_string()]);
        d.insert("y".to_string(), vec!["z".to_string()]);
        d.insert("z".to_string(), vec!["x".to_string()]);
        d.insert("w".to_string(), vec!["x".to_string()]);
        assert_eq!(depends_cycles(&d), vec![vec!["x", "y", "z", "x"]]);
    }

    #[test]
    fn roles_expand_depth_first_once() {
        let role = |n: &str, deps: &[&str]| Role {
            name: n.into(),
            dir: format!("roles/{n}"),
            depends: deps.iter().map(ToString::to_string).collect(),
            packages: vec![],
            sources: vec![],
            vars: BTreeMap::new(),
        };
        let roles: BTreeMap<String, Role> = [
            role("base", &[]),
            role("users", &["base"]),
            role("ssh", &["base", "users"]),
            role("java", &["base"]),
        ]
        .into_iter()
        .map(|r| (r.name.clone(), r))
        .collect();
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        expand_roles(&roles, &["ssh".into(), "java".into()], &mut seen, &mut out);
        assert_eq!(out, ["base", "users", "ssh", "java"]);
        // What a parent applied is not applied again.
        let mut seen: BTreeSet<String> = ["base".to_string()].into();
        let mut out = Vec::new();
        expand_roles(&roles, &["java".into()], &mut seen, &mut out);
        assert_eq!(out, ["java"]);
    }
}
