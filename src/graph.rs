//! The image graph: topological order, cycles, ancestry, and which roles each image applies.
//! Pure: no I/O.
//!
//! Images are named by [`ImageId`] (their place in `project.images`, which is in topological
//! order), and what the graph holds per image is an [`ImageMap`], indexed by `ImageId` only: a
//! bare `usize`, or an index into some other list, does not index it.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};
use std::ops::{Index, IndexMut};
use std::sync::OnceLock;

use crate::model::{Project, Role, Strategy};

/// `cyc` (a closed walk's nodes, without the repeat) as the path `a -> b -> a` starting at its
/// smallest name.
fn cycle_path(cyc: &[&str]) -> Vec<String> {
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
    c
}

/// Cycles among `(name, parent)` nodes, each as the path `a -> b -> a` starting at its smallest
/// name; parents that are not nodes are ignored. Linear: every node is walked through once.
pub fn parent_cycles(nodes: &[(String, Option<String>)]) -> Vec<Vec<String>> {
    let index: HashMap<&str, usize> = nodes
        .iter()
        .enumerate()
        .map(|(i, (n, _))| (n.as_str(), i))
        .collect();
    let parent: Vec<Option<usize>> = nodes
        .iter()
        .map(|(_, p)| p.as_deref().and_then(|p| index.get(p).copied()))
        .collect();
    // `walk[i]`: 0 unvisited, else the number of the walk that first met node `i`.
    let mut walk = vec![0usize; nodes.len()];
    let mut cycles = BTreeSet::new();
    for start in 0..nodes.len() {
        if walk[start] != 0 {
            continue;
        }
        let this = start + 1;
        let mut path: Vec<usize> = Vec::new();
        let mut cur = Some(start);
        while let Some(n) = cur {
            if walk[n] == this {
                // Met again on this walk: the path from its first meeting is a cycle.
                let pos = path.iter().position(|&p| p == n).expect("on this walk");
                let names: Vec<&str> = path[pos..].iter().map(|&i| nodes[i].0.as_str()).collect();
                cycles.insert(cycle_path(&names));
                break;
            }
            if walk[n] != 0 {
                break;
            }
            walk[n] = this;
            path.push(n);
            cur = parent[n];
        }
    }
    cycles.into_iter().collect()
}

/// Cycles in a `depends` graph, each as `a -> b -> a` starting at its smallest name. A depth
/// first walk with a stack of its own, so a chain of any length cannot overflow the thread's.
pub fn depends_cycles(deps: &BTreeMap<String, Vec<String>>) -> Vec<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Active,
        Done,
    }
    let mut mark: HashMap<&str, Mark> = HashMap::new();
    let mut out = BTreeSet::new();
    for root in deps.keys() {
        if mark.get(root.as_str()).copied().unwrap_or(Mark::New) != Mark::New {
            continue;
        }
        // Each frame: a node on the path and how many of its `depends` were looked at.
        let mut stack: Vec<(&str, usize)> = vec![(root.as_str(), 0)];
        mark.insert(root.as_str(), Mark::Active);
        while let Some(&mut (n, ref mut next)) = stack.last_mut() {
            let list = deps.get(n).map_or(&[][..], Vec::as_slice);
            let Some(d) = list.get(*next) else {
                mark.insert(n, Mark::Done);
                stack.pop();
                continue;
            };
            *next += 1;
            match mark.get(d.as_str()).copied().unwrap_or(Mark::New) {
                Mark::New if deps.contains_key(d) => {
                    mark.insert(d.as_str(), Mark::Active);
                    stack.push((d.as_str(), 0));
                }
                Mark::Active => {
                    let pos = stack
                        .iter()
                        .position(|(s, _)| *s == d)
                        .expect("active node is on the stack");
                    let cyc: Vec<&str> = stack[pos..].iter().map(|(s, _)| *s).collect();
                    out.insert(cycle_path(&cyc));
                }
                _ => {}
            }
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
    let depends = |r: &str| roles.get(r).map_or(&[][..], |role| role.depends.as_slice());
    for r in requested {
        // Marked when first met, so a cycle (rejected by `decl`) cannot loop.
        if !seen.insert(r.clone()) {
            continue;
        }
        // Each frame: a role and how many of its `depends` were looked at.
        let mut stack: Vec<(&str, usize)> = vec![(r.as_str(), 0)];
        while let Some(&mut (n, ref mut next)) = stack.last_mut() {
            match depends(n).get(*next) {
                Some(d) => {
                    *next += 1;
                    if seen.insert(d.clone()) {
                        stack.push((d.as_str(), 0));
                    }
                }
                None => {
                    out.push(n.to_string());
                    stack.pop();
                }
            }
        }
    }
}

/// Every image's own roles (those a deep build applies: its `roles` and their `depends`, less
/// what its parent chain applied) by role index, and the role names.
///
/// Linear in the size of the project: the image tree is walked depth first, keeping a count of
/// how many images of the current chain applied each role, instead of a copy of every chain.
fn own_roles(project: &Project, parent: &ImageMap<Option<ImageId>>) -> ImageMap<Vec<String>> {
    let role_names: Vec<&String> = project.roles.keys().collect();
    let mut role_index: HashMap<&str, u32> = role_names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), i as u32))
        .collect();
    // Roles that do not exist (only in projects `decl` rejects) get indices of their own.
    let mut extra: Vec<&str> = Vec::new();
    for name in project
        .images
        .iter()
        .flat_map(|i| &i.roles)
        .chain(project.roles.values().flat_map(|r| &r.depends))
    {
        if !role_index.contains_key(name.as_str()) {
            role_index.insert(name.as_str(), (role_names.len() + extra.len()) as u32);
            extra.push(name.as_str());
        }
    }
    let total = role_names.len() + extra.len();
    let name_of = |r: u32| -> &str {
        let r = r as usize;
        if r < role_names.len() {
            role_names[r].as_str()
        } else {
            extra[r - role_names.len()]
        }
    };
    let mut depends: Vec<Vec<u32>> = project
        .roles
        .values()
        .map(|r| r.depends.iter().map(|d| role_index[d.as_str()]).collect())
        .collect();
    depends.resize(total, Vec::new());
    let roles: Vec<Vec<u32>> = project
        .images
        .iter()
        .map(|i| i.roles.iter().map(|r| role_index[r.as_str()]).collect())
        .collect();

    let mut children: Vec<Vec<usize>> = vec![Vec::new(); parent.len()];
    let mut tops = Vec::new();
    for (i, p) in parent.iter() {
        match p {
            Some(p) => children[p.index()].push(i.index()),
            None => tops.push(i.index()),
        }
    }
    // `in_chain[r]`: how many images of the chain being walked applied role `r`.
    let mut in_chain = vec![0u32; total];
    // `seen[r] == stamp`: role `r` was met while expanding the image numbered `stamp`.
    let mut seen = vec![0u32; total];
    let mut own: Vec<Vec<u32>> = vec![Vec::new(); parent.len()];
    // Each frame: an image, and whether its subtree is done (then its roles leave the chain).
    let mut stack: Vec<(usize, bool)> = tops.into_iter().rev().map(|i| (i, false)).collect();
    while let Some((i, leaving)) = stack.pop() {
        if leaving {
            for &r in &own[i] {
                in_chain[r as usize] -= 1;
            }
            continue;
        }
        let stamp = i as u32 + 1;
        let mut list = Vec::new();
        for &r in &roles[i] {
            expand_ids(r, &depends, &in_chain, &mut seen, stamp, &mut list);
        }
        for &r in &list {
            in_chain[r as usize] += 1;
        }
        own[i] = list;
        stack.push((i, true));
        stack.extend(children[i].iter().rev().map(|&c| (c, false)));
    }
    own.into_iter()
        .map(|l| l.into_iter().map(|r| name_of(r).to_string()).collect())
        .collect()
}

/// [`expand_roles`] over role indices: appends role `r` to `out` after its dependencies, each
/// role at most once and none the chain applied (`in_chain[r] > 0`) or this expansion met
/// (`seen[r] == stamp`). Iterative, so a long chain of `depends` cannot overflow the stack.
fn expand_ids(
    r: u32,
    depends: &[Vec<u32>],
    in_chain: &[u32],
    seen: &mut [u32],
    stamp: u32,
    out: &mut Vec<u32>,
) {
    let fresh = |r: u32, seen: &mut [u32]| {
        let new = seen[r as usize] != stamp && in_chain[r as usize] == 0;
        seen[r as usize] = stamp;
        new
    };
    if !fresh(r, seen) {
        return;
    }
    let mut stack: Vec<(u32, usize)> = vec![(r, 0)];
    while let Some(&mut (n, ref mut next)) = stack.last_mut() {
        match depends[n as usize].get(*next) {
            Some(&d) => {
                *next += 1;
                if fresh(d, seen) {
                    stack.push((d, 0));
                }
            }
            None => {
                out.push(n);
                stack.pop();
            }
        }
    }
}

/// The project's images by [`ImageId`]: parents, children, chains and the roles each applies.
#[derive(Debug, Clone)]
pub struct Graph {
    /// Image `i` is `project.images[i.index()]`, which is in topological order.
    pub names: ImageMap<String>,
    pub index: HashMap<String, ImageId>,
    pub parent: ImageMap<Option<ImageId>>,
    pub children: ImageMap<Vec<ImageId>>,
    /// The first image of each image's chain (itself when it has no parent).
    root: ImageMap<ImageId>,
    /// The roles a deep build of each image applies: its own, less what its chain applied.
    own_roles: ImageMap<Vec<String>>,
    /// The parents declarations give (pins do not cut these): whose roles a chain applied.
    decl_parent: ImageMap<Option<ImageId>>,
    /// The roles of each whole chain, root first, as a shallow build applies them; made when
    /// first asked (their total size grows with the square of a chain's length).
    chain_roles: OnceLock<ImageMap<Vec<String>>>,
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
        let own_roles = own_roles(project, &parent);
        let mut graph = Graph {
            root: names.ids().collect(),
            names,
            index,
            decl_parent: parent.clone(),
            parent,
            children,
            own_roles,
            chain_roles: OnceLock::new(),
        };
        graph.set_roots();
        graph
    }

    /// Each image's `root`, from its parent's (parents come first).
    fn set_roots(&mut self) {
        for i in self.names.ids() {
            self.root[i] = self.parent[i].map_or(i, |p| self.root[p]);
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
            Strategy::Deep => &self.own_roles[i],
            Strategy::Shallow => {
                let chains = self.chain_roles.get_or_init(|| {
                    let mut chains: Vec<Vec<String>> = Vec::with_capacity(self.len());
                    for i in self.ids() {
                        let mut list = self.decl_parent[i]
                            .map(|p| chains[p.index()].clone())
                            .unwrap_or_default();
                        list.extend(self.own_roles[i].iter().cloned());
                        chains.push(list);
                    }
                    ImageMap(chains)
                });
                &chains[i]
            }
        }
    }

    /// The first image of `i`'s chain: `chain(i)[0]`, without walking the chain.
    pub fn root(&self, i: ImageId) -> ImageId {
        self.root[i]
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

    /// Marks every image above a marked one (its whole chain), in one pass from the last
    /// image to the first.
    pub fn mark_ancestors(&self, marks: &mut ImageMap<bool>) {
        for i in self.ids().rev() {
            if marks[i] {
                if let Some(p) = self.parent[i] {
                    marks[p] = true;
                }
            }
        }
    }

    /// Cuts image `i` from its parent, for an image pinned to a released build of it: the
    /// image no longer waits for, is selected with, or goes stale with its parent. The roles
    /// it applies stay those its declaration chain gives.
    pub fn unlink(&mut self, i: ImageId) {
        if let Some(p) = self.parent[i].take() {
            self.children[p].retain(|&c| c != i);
            // `i` now starts the chains of its subtree.
            let mut stack = vec![i];
            while let Some(n) = stack.pop() {
                self.root[n] = i;
                stack.extend(&self.children[n]);
            }
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
