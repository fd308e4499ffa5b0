//! The image graph: topological order, cycles, ancestry, and which roles each image applies.
//! Pure: no I/O.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};

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
                    .map(|s| s.to_string())
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
                        .map(|s| s.to_string())
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

/// Indices of `nodes` in topological order (parents first), ties broken by name. Nodes on a
/// cycle or below one are left out; `decl` rejects cycles before this is called.
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
fn chain_roles(project: &Project, parent: &[Option<usize>]) -> (Vec<Vec<String>>, Vec<usize>) {
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
    let mut chains: Vec<Vec<u32>> = Vec::with_capacity(parent.len());
    let mut chain_roles: Vec<Vec<String>> = Vec::with_capacity(parent.len());
    let mut inherited = Vec::with_capacity(parent.len());
    for (i, image) in project.images.iter().enumerate() {
        // Parents come first in topological order, so theirs are already computed.
        let mut list = parent[i].map(|p| chains[p].clone()).unwrap_or_default();
        inherited.push(list.len());
        let stamp = i as u32 + 1;
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
        chain_roles.push(
            list.iter()
                .map(|&r| role_names[r as usize].clone())
                .collect(),
        );
        chains.push(list);
    }
    (chain_roles, inherited)
}

/// [`chain_roles`] by name, with [`expand_roles`].
fn chain_roles_by_name(
    project: &Project,
    parent: &[Option<usize>],
) -> (Vec<Vec<String>>, Vec<usize>) {
    let mut chain_roles: Vec<Vec<String>> = Vec::with_capacity(parent.len());
    let mut inherited = Vec::with_capacity(parent.len());
    for (i, image) in project.images.iter().enumerate() {
        let mut list = parent[i]
            .map(|p| chain_roles[p].clone())
            .unwrap_or_default();
        inherited.push(list.len());
        let mut seen: BTreeSet<String> = list.iter().cloned().collect();
        expand_roles(&project.roles, &image.roles, &mut seen, &mut list);
        chain_roles.push(list);
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

/// The project's images as indices: parents, children, chains and the roles each applies.
#[derive(Debug, Clone)]
pub struct Graph {
    /// Index `i` is `project.images[i]`, which is in topological order.
    pub names: Vec<String>,
    pub index: HashMap<String, usize>,
    pub parent: Vec<Option<usize>>,
    pub children: Vec<Vec<usize>>,
    /// The roles of the whole chain, root first, as a shallow build applies them.
    pub chain_roles: Vec<Vec<String>>,
    /// How many of `chain_roles[i]` the parent chain already applied.
    pub inherited: Vec<usize>,
}

impl Graph {
    pub fn new(project: &Project) -> Graph {
        let names: Vec<String> = project.images.iter().map(|i| i.name.clone()).collect();
        let index: HashMap<String, usize> = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), i))
            .collect();
        let parent: Vec<Option<usize>> = project
            .images
            .iter()
            .map(|i| i.parent().map(|p| index[p]))
            .collect();
        let mut children = vec![Vec::new(); names.len()];
        for (i, p) in parent.iter().enumerate() {
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

    /// The roles a build of image `i` applies, in order.
    pub fn applied_roles(&self, i: usize, strategy: Strategy) -> &[String] {
        match strategy {
            Strategy::Deep => &self.chain_roles[i][self.inherited[i]..],
            Strategy::Shallow => &self.chain_roles[i],
        }
    }

    /// Root first, `i` last.
    pub fn chain(&self, i: usize) -> Vec<usize> {
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
    pub fn unlink(&mut self, i: usize) {
        if let Some(p) = self.parent[i].take() {
            self.children[p].retain(|&c| c != i);
        }
    }

    /// Marks `i` and every image below it.
    pub fn mark_descendants(&self, i: usize, marks: &mut [bool]) {
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
            depends: deps.iter().map(|s| s.to_string()).collect(),
            packages: vec![],
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
