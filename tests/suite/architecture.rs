//! The layout is part of the design: `src/lib.rs` lists the top-level modules in the order data
//! flows through them, and a module may import only modules listed before it. Within a module's
//! folder, a part may import only the parts its `mod.rs` lists before it. This test reads the
//! sources and fails on an import that points up, naming the file, the line and the fix; and
//! it checks that `doc/ARCHITECTURE.md`'s code map names every module that exists and no other.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The `mod` declarations of a module file, in order (`pub mod x;`, `mod x;`, `pub(crate) mod
/// x;`), leaving out inline `mod tests { ... }` blocks.
fn declared_modules(file: &Path) -> Vec<String> {
    let text = fs::read_to_string(file).unwrap();
    text.lines()
        .filter_map(|l| {
            let l = l.trim();
            let rest = l
                .strip_prefix("pub mod ")
                .or_else(|| l.strip_prefix("pub(crate) mod "))
                .or_else(|| l.strip_prefix("mod "))?;
            rest.strip_suffix(';').map(str::to_string)
        })
        .collect()
}

/// The file of module `name` in folder `dir`: `dir/name.rs` or `dir/name/mod.rs`.
fn module_file(dir: &Path, name: &str) -> Option<PathBuf> {
    let flat = dir.join(format!("{name}.rs"));
    let folder = dir.join(name).join("mod.rs");
    [flat, folder].into_iter().find(|p| p.exists())
}

/// Every `.rs` file of a module: its own file and, for a folder, everything below it.
fn files_of(dir: &Path, name: &str) -> Vec<PathBuf> {
    let mut out = vec![];
    let flat = dir.join(format!("{name}.rs"));
    if flat.exists() {
        out.push(flat);
    }
    let folder = dir.join(name);
    if folder.is_dir() {
        let mut stack = vec![folder];
        while let Some(d) = stack.pop() {
            for e in fs::read_dir(&d).unwrap().flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.extension().is_some_and(|x| x == "rs") {
                    out.push(p);
                }
            }
        }
    }
    out.sort();
    out
}

/// The code of a file without comments and without its `#[cfg(test)]` module, which may use
/// anything (tests build fixtures from higher modules' types).
fn code_lines(file: &Path) -> Vec<(usize, String)> {
    let text = fs::read_to_string(file).unwrap();
    let mut out = vec![];
    for (i, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("#[cfg(test)]") {
            break;
        }
        let code = line.split("//").next().unwrap_or_default();
        out.push((i + 1, code.to_string()));
    }
    out
}

/// The names that follow `prefix` on a line (`crate::cache::gc` gives `cache` for `crate::`),
/// including those inside `use crate::{a, b}` groups.
fn referenced(line: &str, prefix: &str) -> Vec<String> {
    let mut out = vec![];
    let mut rest = line;
    while let Some(at) = rest.find(prefix) {
        let after = &rest[at + prefix.len()..];
        if let Some(group) = after.strip_prefix('{') {
            let inner = group.split('}').next().unwrap_or_default();
            for part in inner.split(',') {
                let head: String = part
                    .trim()
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if !head.is_empty() {
                    out.push(head);
                }
            }
        } else {
            let head: String = after
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !head.is_empty() {
                out.push(head);
            }
        }
        rest = after;
    }
    out
}

/// Checks the modules declared in `parent` (a `lib.rs` or `mod.rs`): each may reach only those
/// declared before it, through `prefix` (`crate::` at the top, `crate::NAME::` inside a folder,
/// and `super::` for siblings).
fn check_order(parent: &Path, dir: &Path, prefix: &str, problems: &mut Vec<String>) {
    let order = declared_modules(parent);
    for (rank, name) in order.iter().enumerate() {
        let allowed: BTreeSet<&str> = order[..=rank].iter().map(String::as_str).collect();
        let all: BTreeSet<&str> = order.iter().map(String::as_str).collect();
        for file in files_of(dir, name) {
            // Siblings through `super::` only from the module's own top file.
            let top = module_file(dir, name).as_deref() == Some(file.as_path());
            for (line_no, code) in code_lines(&file) {
                let mut names = referenced(&code, prefix);
                if prefix != "crate::" && top {
                    names.extend(referenced(&code, "super::"));
                }
                for used in names {
                    if all.contains(used.as_str()) && !allowed.contains(used.as_str()) {
                        problems.push(format!(
                            "{}:{line_no}: `{name}` imports `{used}`, which {} lists after it\n  \
                             hint: move what `{name}` needs into a module below both, or reorder the \
                             `mod` lines if the data really flows the other way",
                            file.strip_prefix(src().parent().unwrap()).unwrap().display(),
                            parent.strip_prefix(src().parent().unwrap()).unwrap().display(),
                        ));
                    }
                }
            }
        }
        // The parts of a folder, in their own order.
        let folder = dir.join(name);
        if folder.is_dir() {
            let top = module_file(dir, name).unwrap();
            check_order(&top, &folder, &format!("{prefix}{name}::"), problems);
        }
    }
}

#[test]
fn no_module_imports_one_listed_after_it() {
    let mut problems = vec![];
    check_order(&src().join("lib.rs"), &src(), "crate::", &mut problems);
    assert!(
        problems.is_empty(),
        "imports that point up the layers:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_order_check_sees_an_upward_import() {
    assert_eq!(
        referenced("use crate::{cache, plan::Plan};", "crate::"),
        ["cache", "plan"]
    );
    assert_eq!(
        referenced("let x = crate::scan::read(crate::fsutil::a);", "crate::"),
        ["scan", "fsutil"]
    );
    assert_eq!(referenced("use super::tar::Writer;", "super::"), ["tar"]);
}

/// Every module path under `src/` (`cache`, `cache::gc`, `backend::rootfs::sandbox`).
fn module_paths(dir: &Path, prefix: &str, out: &mut BTreeSet<String>) {
    let parent = if prefix.is_empty() {
        dir.join("lib.rs")
    } else {
        dir.join("mod.rs")
    };
    let parent = if parent.exists() {
        parent
    } else {
        // A flat module file with a folder of parts beside it (`cache.rs` + `cache/`).
        dir.with_extension("rs")
    };
    for name in declared_modules(&parent) {
        let path = format!("{prefix}{name}");
        out.insert(path.clone());
        let sub = dir.join(&name);
        if sub.is_dir() {
            module_paths(&sub, &format!("{path}::"), out);
        }
    }
}

#[test]
fn architecture_code_map_names_every_module() {
    let mut modules = BTreeSet::new();
    module_paths(&src(), "", &mut modules);
    let doc_path = src().parent().unwrap().join("doc/ARCHITECTURE.md");
    let doc = fs::read_to_string(&doc_path).unwrap();
    // The code map's table rows: "| `module::path` | what it holds |".
    let mapped: BTreeSet<String> = doc
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .map(str::to_string)
        .collect();
    let missing: Vec<_> = modules.difference(&mapped).collect();
    let gone: Vec<_> = mapped.difference(&modules).collect();
    assert!(
        missing.is_empty() && gone.is_empty(),
        "doc/ARCHITECTURE.md's code map and src/ disagree\n  \
         modules with no row: {missing:?}\n  rows with no module: {gone:?}\n  \
         hint: add a `| \\`module\\` | what it holds |` row for each module, and remove rows of \
         modules that are gone"
    );
}
