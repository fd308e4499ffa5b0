//! Looks for what some tests need (root, a static busybox, `packer`, `skopeo`, e2fsprogs,
//! `qemu-img`; see `tests/suite/needs.rs`) and sets `cfg(missing = "NAME")` for each that this
//! machine lacks, so those tests show as `ignored, needs ...` in `cargo test` instead of
//! passing without checking anything. Under `CI` nothing is set: there a missing need fails.
//!
//! It only looks (at `PATH`, two busybox paths and the user it runs as) and builds nothing.
//! It runs again when `PATH`, `CI` or the user changes, or when a folder of `PATH` changes (a
//! tool installed or removed), so a test ignored for want of a tool runs once it is installed.

#[allow(dead_code)]
#[path = "tests/suite/needs.rs"]
mod needs;

use needs::Need;

fn main() {
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
