//! `layer graph`: the image graph (the images kept, and the origins they start from) as dot,
//! mermaid or JSON.

use std::fmt::Write;

use serde::Serialize;

use super::json::json;
use crate::model::Project;

/// `layer graph --format json`: the origins and images kept, in the project's order.
#[derive(Serialize)]
struct GraphJson<'a> {
    schema: u32,
    origins: Vec<GraphOrigin<'a>>,
    images: Vec<GraphImage<'a>>,
}

#[derive(Serialize)]
struct GraphOrigin<'a> {
    name: &'a str,
    kind: &'a str,
}

#[derive(Serialize)]
struct GraphImage<'a> {
    name: &'a str,
    parent: Option<&'a str>,
    origin: Option<&'a str>,
    roles: &'a [String],
    version: &'a str,
}

/// The origins used by the images in `keep`.
fn used_origins<'a>(project: &'a Project, keep: &[bool]) -> Vec<&'a str> {
    let set: std::collections::BTreeSet<&str> = project
        .images
        .iter()
        .zip(keep)
        .filter(|(_, k)| **k)
        .filter_map(|(i, _)| i.origin())
        .collect();
    set.into_iter().collect()
}

/// The images in `keep` and the origins they use, as JSON.
pub fn graph_json(project: &Project, keep: &[bool]) -> String {
    let origins = used_origins(project, keep)
        .into_iter()
        .map(|o| GraphOrigin {
            name: o,
            kind: project.origins[o].source.kind(),
        })
        .collect();
    let images = project
        .images
        .iter()
        .zip(keep)
        .filter(|(_, k)| **k)
        .map(|(i, _)| GraphImage {
            name: &i.name,
            parent: i.parent(),
            origin: i.origin(),
            roles: &i.roles,
            version: &i.version,
        })
        .collect();
    json(&GraphJson {
        schema: 1,
        origins,
        images,
    })
}

/// The images in `keep` and the origins they use, as a Graphviz digraph.
pub fn graph_dot(project: &Project, keep: &[bool]) -> String {
    let mut out =
        String::from("digraph layer {\n  rankdir=TB;\n  node [shape=box, style=rounded];\n");
    for o in used_origins(project, keep) {
        let _ = writeln!(
            out,
            "  \"origin:{o}\" [label=\"{o}\", shape=cylinder, style=dashed];"
        );
    }
    for (img, _) in project.images.iter().zip(keep).filter(|(_, k)| **k) {
        let _ = writeln!(
            out,
            "  \"{}\" [label=\"{}\\n{}\"];",
            img.name, img.name, img.version
        );
    }
    for (img, _) in project.images.iter().zip(keep).filter(|(_, k)| **k) {
        match (img.parent(), img.origin()) {
            (Some(p), _) => {
                let _ = writeln!(out, "  \"{p}\" -> \"{}\";", img.name);
            }
            (_, Some(o)) => {
                let _ = writeln!(out, "  \"origin:{o}\" -> \"{}\";", img.name);
            }
            _ => {}
        }
    }
    out.push_str("}\n");
    out
}

/// The images in `keep` and the origins they use, as a mermaid graph.
pub fn graph_mermaid(project: &Project, keep: &[bool]) -> String {
    let mut out = String::from("graph TD\n");
    let origins = used_origins(project, keep);
    for (k, o) in origins.iter().enumerate() {
        let _ = writeln!(out, "  o{k}[(\"{o}\")]");
    }
    let kept: Vec<usize> = (0..project.images.len()).filter(|&i| keep[i]).collect();
    for &i in &kept {
        let img = &project.images[i];
        let _ = writeln!(out, "  n{i}[\"{} {}\"]", img.name, img.version);
    }
    for &i in &kept {
        let img = &project.images[i];
        if let Some(p) = img.parent() {
            let p = project
                .images
                .iter()
                .position(|x| x.name == p)
                .expect("parents resolve");
            let _ = writeln!(out, "  n{p} --> n{i}");
        } else if let Some(o) = img.origin() {
            let k = origins.iter().position(|x| *x == o).expect("origin listed");
            let _ = writeln!(out, "  o{k} --> n{i}");
        }
    }
    out
}
