//! A fuzzer of whole projects for `layer plan` (issue 16, failures 6 and 7): random projects
//! made of the shapes that broke it — long `depends` and `from` chains, cycles, many origins
//! and vars, declaration files that are FIFOs, huge or links to devices, mangled TOML — each
//! planned by the real binary under a time limit. A crash (a signal, an exit code other than
//! 0, 1 or 2) or a hang is written as a recipe (`tests/suite/recipe.rs`) into the output
//! folder; curated ones become fixtures in `tests/fixtures/hostile/`, which
//! `tests/suite/hostile.rs` replays.
//!
//! ```text
//! cargo build --release && cargo run --release --example fuzz -- \
//!     [--bin target/release/layer] [--runs 200] [--seed 1] [--limit-secs 10] [--out target/fuzz]
//! ```

use std::path::PathBuf;
use std::time::Duration;

#[allow(dead_code)]
#[path = "../tests/suite/recipe.rs"]
mod recipe;

use recipe::{Recipe, Step};

/// xorshift64*: reproducible from a seed, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    /// A size on a log scale: as often 3 as 3,000.
    fn size(&mut self, max: u64) -> usize {
        let bits = 64 - max.leading_zeros() as u64;
        let span = 1 << self.below(bits + 1);
        (1 + self.below(span).min(max)) as usize
    }
}

const DECL_PATHS: &[&str] = &[
    "layer.toml",
    "layer.lock",
    "images/a.toml",
    "roles/r0/role.toml",
];

/// One random project.
fn generate(rng: &mut Rng) -> Recipe {
    let mut steps = Vec::new();
    let mut toml = String::from("[project]\nbackend = \"sh\"\n\n[backends.sh]\nkind = \"command\"\ncommand = [\"true\"]\n\n[origins.o]\nid = \"ami-1\"\n");
    if rng.chance(20) {
        toml.push_str("\n[origins.bb]\nbusybox = \"/usr/bin/busybox\"\n");
    }
    if rng.chance(20) {
        for i in 0..rng.size(100_000) {
            toml.push_str(&format!("\n[origins.o{i}]\nid = \"ami-{i}\"\n"));
        }
    }
    steps.push(Step::File("layer.toml".into(), toml));
    let roles = rng.size(20_000);
    let cyclic_roles = rng.chance(15);
    steps.push(Step::Repeat(
        roles,
        "roles/r{i}/role.toml".into(),
        if cyclic_roles {
            format!(
                "depends = [\"r{{p}}\"]\n?0 depends = [\"r{}\"]\n",
                roles - 1
            )
        } else {
            "depends = [\"r{p}\"]\n".into()
        },
    ));
    let images = rng.size(20_000);
    let cyclic_images = rng.chance(15);
    let mut image = String::from("from = \"i{p}\"\nroles = [\"r{i}\"]\n");
    image.push_str(if cyclic_images {
        "?0 from = \"iLAST\"\n"
    } else {
        "?0 origin = \"o\"\n"
    });
    let image = image.replace("iLAST", &format!("i{}", images - 1));
    // Roles past the last one are unknown names: a declaration error, which is fine.
    steps.push(Step::Repeat(images, "images/i{i}.toml".into(), image));
    let mut a = format!("origin = \"o\"\nroles = [\"r{}\"]\n[vars]\n", roles - 1);
    if rng.chance(20) {
        for i in 0..rng.size(100_000) {
            a.push_str(&format!("V{i} = \"{i}\"\n"));
        }
    }
    if rng.chance(10) {
        let depth = rng.size(200_000);
        a.push_str(&format!("X = {}{}\n", "[".repeat(depth), "]".repeat(depth)));
    }
    if rng.chance(20) {
        // One mangled byte.
        let at = rng.below(a.len() as u64) as usize;
        let mut bytes = a.into_bytes();
        bytes[at] = b"[]{}=\"\n\\#'"[rng.below(11) as usize];
        a = String::from_utf8_lossy(&bytes).into_owned();
    }
    steps.push(Step::File("images/a.toml".into(), a));
    let special = DECL_PATHS[rng.below(DECL_PATHS.len() as u64) as usize].to_string();
    match rng.below(6) {
        0 => steps.push(Step::Fifo(special)),
        1 => steps.push(Step::Sparse(special, 1 << (20 + rng.below(14)))),
        2 => steps.push(Step::Link("/dev/zero".into(), special)),
        3 => steps.push(Step::Link("/dev/zero".into(), "cache/stat-cache".into())),
        _ => {}
    }
    Recipe {
        comment: Vec::new(),
        expect_code: 2,
        expect_stderr: None,
        steps,
    }
}

fn main() {
    let mut bin = PathBuf::from("target/release/layer");
    let mut runs = 200u64;
    let mut seed = 1u64;
    let mut limit = 10u64;
    let mut out = PathBuf::from("target/fuzz");
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let v = args.next().unwrap_or_default();
        match a.as_str() {
            "--bin" => bin = v.into(),
            "--runs" => runs = v.parse().expect("--runs N"),
            "--seed" => seed = v.parse().expect("--seed N"),
            "--limit-secs" => limit = v.parse().expect("--limit-secs N"),
            "--out" => out = v.into(),
            _ => panic!("unknown argument {a}"),
        }
    }
    std::fs::create_dir_all(&out).expect("output folder");
    // Each run starts in its project's folder.
    let bin = bin
        .canonicalize()
        .unwrap_or_else(|e| panic!("{}: {e}", bin.display()));
    let mut found = 0;
    for run in 0..runs {
        let s = seed.wrapping_add(run).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        let mut recipe = generate(&mut Rng(s));
        let dir = tempfile::tempdir().expect("temp dir");
        recipe.write(dir.path());
        let result = recipe.run(&bin, dir.path(), Duration::from_secs(limit));
        eprintln!("run {run} (seed {s}): {}", result.describe());
        if result.is_failure() {
            found += 1;
            recipe.comment = vec![format!(
                "found by examples/fuzz.rs, seed {s}: {}",
                result.describe()
            )];
            let path = out.join(format!("found-{s}.txt"));
            std::fs::write(&path, recipe.to_text()).expect("recipe written");
            eprintln!("  -> {}", path.display());
        }
    }
    eprintln!("{found} of {runs} runs crashed or hung");
    std::process::exit(i32::from(found > 0));
}
