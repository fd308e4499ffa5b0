//! Looks for what some tests need (root, a static busybox, `packer`, `skopeo`, e2fsprogs,
//! `qemu-img`; see `tests/suite/needs.rs`) and sets `cfg(missing = "NAME")` for each that this
//! machine lacks, so those tests show as `ignored, needs ...` in `cargo test` instead of
//! passing without checking anything. Under `CI` nothing is set: there a missing need fails.
//!
//! It also sets `LAYER_VERSION`, what `layer --version` prints: the package version and the
//! git commit it is built from (`0.1.0 (commit 0123abcd4567)`), or the version alone outside a
//! git work tree (a crate tarball) or without `git`.
//!
//! It only looks (at `PATH`, two busybox paths, the user it runs as, and git) and builds
//! nothing.
//! It runs again when `PATH`, `CI` or the user changes, or when a folder of `PATH` changes (a
//! tool installed or removed), so a test ignored for want of a tool runs once it is installed.

#[allow(dead_code)]
#[path = "tests/suite/needs.rs"]
mod needs;

use needs::Need;

/// `git ARGS` in the package folder, its trimmed output; `None` when it fails.
fn git(args: &[&str]) -> Option<String> {
    let out = std::process::Command::new("git")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    (out.status.success() && !text.trim().is_empty()).then(|| text.trim().to_string())
}

/// Sets `LAYER_VERSION`, and runs again when the checked-out commit moves.
fn version() {
    let version = env!("CARGO_PKG_VERSION");
    let commit = git(&["rev-parse", "--short=12", "HEAD"]);
    // HEAD, and the branch file it names (a commit moves the branch, not HEAD).
    for rel in ["HEAD", "refs/heads"] {
        if let Some(path) = git(&["rev-parse", "--path-format=absolute", "--git-path", rel]) {
            if std::path::Path::new(&path).exists() {
                println!("cargo::rerun-if-changed={path}");
            }
        }
    }
    if let Some(path) = git(&["rev-parse", "--path-format=absolute", "--git-common-dir"]) {
        let packed = std::path::Path::new(&path).join("packed-refs");
        if packed.exists() {
            println!("cargo::rerun-if-changed={}", packed.display());
        }
    }
    match commit {
        Some(c) => println!("cargo::rustc-env=LAYER_VERSION={version} (commit {c})"),
        None => println!("cargo::rustc-env=LAYER_VERSION={version}"),
    }
}

fn main() {
    version();
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-changed=tests/suite/needs.rs");
    for var in ["PATH", "CI", "USER"] {
        println!("cargo::rerun-if-env-changed={var}");
    }
    // Watch the folders a tool would be installed into; only existing ones, since cargo runs a
    // build script again every time when a watched path does not exist.
    let mut folders = needs::path_folders();
    folders.push("/bin".into());
    folders.push("/usr/bin".into());
    let mut seen = Vec::new();
    for folder in folders {
        let Ok(real) = folder.canonicalize() else {
            continue;
        };
        if real.is_dir() && !seen.contains(&real) {
            println!("cargo::rerun-if-changed={}", real.display());
            seen.push(real);
        }
    }

    let values: Vec<String> = Need::ALL.iter().map(|n| format!("{:?}", n.cfg())).collect();
    println!(
        "cargo::rustc-check-cfg=cfg(missing, values({}))",
        values.join(", ")
    );
    if needs::in_ci() {
        return;
    }
    for need in Need::ALL {
        if !need.is_met() {
            println!("cargo::rustc-cfg=missing={:?}", need.cfg());
        }
    }
}
