//! A generator of synthetic `layer` projects, for benchmarks (`benches/plan.sh`).
//!
//! ```text
//! cargo run --release --example synth -- --images N --roles R --files F --out DIR [--seed S] [--record]
//! ```
//!
//! Writes into DIR (created; a DIR that an earlier run of this generator wrote is replaced, any
//! other non-empty DIR is refused):
//!
//! - `layer.toml` with one origin, `base` (`tar = "origins/base.tar"`, a small file);
//! - `roles/role-XXXX/`, R roles of F regular files each: `role.toml` (packages, and for some
//!   roles `depends` on an earlier role, chains of at most 3), `provision.sh` (executable) and
//!   F-2 files under `files/` in a few nested folders, a couple of them executable;
//! - `images/img-XXXXX.toml`, N images in a layered DAG: a few roots on the origin, every
//!   other image `from` an earlier one, at most 7 levels deep; each with 1-3 roles, a few
//!   packages and `[vars]`;
//! - `build.ninja`, the same dependency structure for ninja: one phony node per role over its
//!   files (`role/NAME: phony roles/NAME/...`) and one edge per image,
//!   `out/IMG.stamp: touch images/IMG.toml role/R1 role/R2 ... | out/PARENT.stamp` (roots take
//!   `origins/base.tar` instead of a parent stamp). The roles an image applies are those of a
//!   deep build: its own and their `depends`, depth first, less those its parent chain applied
//!   already;
//! - `build-inline.ninja`, the same graph with every file of every applied role listed on each
//!   image edge instead of the phony nodes (`ninja -f build-inline.ninja`): many times larger,
//!   and slower for ninja to parse;
//! - `.synth-params`, the parameters once everything is written, so that scripts can tell
//!   whether DIR is complete and up to date.
//!
//! With `--record`, every image is then recorded in `DIR/cache` as built with its current key,
//! as a successful build records it, so that `layer plan` finds everything fresh.
//!
//! The output depends only on the parameters and the seed (a xorshift generator; no clock, no
//! hash-map order).

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

// The tests' helper for recording builds. It names the `layer` binary with
// `env!("CARGO_BIN_EXE_layer")`, which cargo sets for tests and benches but not for examples;
// this textual macro shadows `env!` in the module below (the generator never runs `layer`).
macro_rules! env {
    ($name:literal) => {
        "layer"
    };
}
#[allow(dead_code)]
#[path = "../tests/suite/common.rs"]
mod common;

/// Levels of images below the origin, roots included.
const MAX_DEPTH: usize = 7;
/// Longest chain of role `depends`, the role itself included.
const MAX_ROLE_DEPTH: usize = 3;
/// Bump when what is generated changes, so that scripts regenerate their projects.
const FORMAT: u32 = 2;
const RECORDED_AT: &str = "2026-11-20T10:00:00Z";

struct Args {
    images: usize,
    roles: usize,
    files: usize,
    out: PathBuf,
    seed: u64,
    record: bool,
}

const USAGE: &str = "usage: synth --images N --roles R --files F --out DIR [--seed S] [--record]";

fn parse_args() -> Result<Args, String> {
    let mut images = None;
    let mut roles = None;
    let mut files = None;
    let mut out = None;
    let mut seed = 1u64;
    let mut record = false;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("`{name}` needs a value"));
        let number = |name: &str, v: String| {
            v.parse::<u64>()
                .map_err(|_| format!("`{name}` takes a number, not `{v}`"))
        };
        match a.as_str() {
            "--images" => images = Some(number("--images", value("--images")?)? as usize),
            "--roles" => roles = Some(number("--roles", value("--roles")?)? as usize),
            "--files" => files = Some(number("--files", value("--files")?)? as usize),
            "--seed" => seed = number("--seed", value("--seed")?)?,
            "--out" => out = Some(PathBuf::from(value("--out")?)),
            "--record" => record = true,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    let args = Args {
        images: images.ok_or("`--images` is required")?,
        roles: roles.ok_or("`--roles` is required")?,
        files: files.ok_or("`--files` is required")?,
        out: out.ok_or("`--out` is required")?,
        seed,
        record,
    };
    if args.images == 0 || args.roles == 0 {
        return Err("`--images` and `--roles` must be at least 1".into());
    }
    if args.images > 100_000 || args.roles > 10_000 {
        return Err("at most 100000 images and 10000 roles (names have 5 and 4 digits)".into());
    }
    if args.files < 2 {
        return Err("`--files` must be at least 2 (`role.toml` and `provision.sh`)".into());
    }
    Ok(args)
}

/// xorshift64*: small, fast, and the same everywhere.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        // Mix the seed so that small seeds give unrelated streams; never zero.
        let mut s = seed ^ 0x9E37_79B9_7F4A_7C15;
        s = (s ^ (s >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        s = (s ^ (s >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Rng((s ^ (s >> 31)) | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (n > 0; the bias is negligible for the sizes used here).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// True with probability `pct`%.
    fn chance(&mut self, pct: u64) -> bool {
        self.next() % 100 < pct
    }
}

const PACKAGES: &[&str] = &[
    "curl",
    "jq",
    "git",
    "openssl",
    "ca-certificates",
    "rsync",
    "vim-tiny",
    "less",
    "htop",
    "tcpdump",
    "nginx",
    "postgresql-client",
    "redis-tools",
    "python3",
    "openjdk-17-jre-headless",
    "unzip",
    "xz-utils",
    "gnupg",
    "iproute2",
    "dnsutils",
];

struct Role {
    name: String,
    depends: Option<usize>,
    /// Paths relative to the role folder, with their contents and executable bits.
    files: Vec<(String, String, bool)>,
}

struct Image {
    name: String,
    parent: Option<usize>,
    roles: Vec<usize>,
}

fn role_name(i: usize) -> String {
    format!("role-{i:04}")
}

fn image_name(i: usize) -> String {
    format!("img-{i:05}")
}

fn make_roles(args: &Args, rng: &mut Rng) -> Vec<Role> {
    let mut depth = Vec::with_capacity(args.roles);
    let mut roles = Vec::with_capacity(args.roles);
    for r in 0..args.roles {
        let name = role_name(r);
        let mut depends = None;
        if r > 0 && rng.chance(30) {
            let d = rng.below(r);
            if depth[d] < MAX_ROLE_DEPTH {
                depends = Some(d);
            }
        }
        depth.push(depends.map_or(1, |d| depth[d] + 1));

        let mut files = Vec::with_capacity(args.files);
        let mut toml = String::new();
        if let Some(d) = depends {
            let _ = writeln!(toml, "depends = [\"{}\"]", role_name(d));
        }
        let _ = writeln!(
            toml,
            "packages = [\"{}\"]",
            PACKAGES[rng.below(PACKAGES.len())]
        );
        let _ = writeln!(
            toml,
            "\n[vars]\n{}_ENABLED = \"yes\"",
            name.to_uppercase().replace('-', "_")
        );
        files.push(("role.toml".to_string(), toml, false));
        files.push((
            "provision.sh".to_string(),
            format!(
                "#!/bin/sh\nset -eu\n# provisioner of {name}\necho \"applying {name} to $LAYER_IMAGE\"\ntest -d /etc/{name}\n"
            ),
            true,
        ));
        let rest = args.files - 2;
        let tools = if rest >= 4 { 2 } else { 0 };
        let confs = (rest - tools).div_ceil(2);
        let data = rest - tools - confs;
        for k in 0..tools {
            files.push((
                format!("files/usr/local/bin/{name}-tool-{k}"),
                format!("#!/bin/sh\necho \"{name} tool {k}\"\n"),
                true,
            ));
        }
        for k in 0..confs {
            files.push((
                format!("files/etc/{name}/conf.d/{k:02}-setting.conf"),
                format!(
                    "# {name} setting {k}\nvalue = {}\nlimit = {}\n",
                    rng.next() % 100_000,
                    rng.below(64) + 1
                ),
                false,
            ));
        }
        for k in 0..data {
            files.push((
                format!(
                    "files/usr/local/share/{name}/data/sub-{}/item-{k:02}.txt",
                    k % 3
                ),
                format!("{name} item {k}: {:016x}\n", rng.next()),
                false,
            ));
        }
        roles.push(Role {
            name,
            depends,
            files,
        });
    }
    roles
}

fn make_images(args: &Args, rng: &mut Rng) -> Vec<Image> {
    let roots = (args.images / 200).clamp(2, 8).min(args.images);
    let mut depth: Vec<usize> = Vec::with_capacity(args.images);
    let mut images = Vec::with_capacity(args.images);
    for i in 0..args.images {
        let parent = if i < roots {
            None
        } else {
            // A uniformly chosen earlier image that leaves room below it; a root after a few
            // misses.
            let mut p = rng.below(roots);
            for _ in 0..8 {
                let c = rng.below(i);
                if depth[c] + 1 < MAX_DEPTH {
                    p = c;
                    break;
                }
            }
            Some(p)
        };
        depth.push(parent.map_or(0, |p| depth[p] + 1));
        let n = 1 + rng.below(3);
        let mut roles = Vec::with_capacity(n);
        while roles.len() < n.min(args.roles) {
            let r = rng.below(args.roles);
            if !roles.contains(&r) {
                roles.push(r);
            }
        }
        images.push(Image {
            name: image_name(i),
            parent,
            roles,
        });
    }
    images
}

fn image_toml(img: &Image, roles: &[Role], rng: &mut Rng) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "description = \"synthetic image {}\"", img.name);
    let _ = writeln!(s, "version = \"{}.{}\"", 1 + rng.below(3), rng.below(10));
    match img.parent {
        None => s.push_str("origin = \"base\"\n"),
        Some(p) => {
            let _ = writeln!(s, "from = \"{}\"", image_name(p));
        }
    }
    let names: Vec<String> = img
        .roles
        .iter()
        .map(|&r| format!("\"{}\"", roles[r].name))
        .collect();
    let _ = writeln!(s, "roles = [{}]", names.join(", "));
    let mut pkgs = BTreeSet::new();
    for _ in 0..rng.below(4) {
        pkgs.insert(PACKAGES[rng.below(PACKAGES.len())]);
    }
    let pkgs: Vec<String> = pkgs.iter().map(|p| format!("\"{p}\"")).collect();
    let _ = writeln!(s, "packages = [{}]", pkgs.join(", "));
    let _ = writeln!(s, "\n[vars]");
    let _ = writeln!(s, "PORT = \"{}\"", 8000 + rng.below(1000));
    if rng.chance(50) {
        let _ = writeln!(s, "REGION = \"eu-west-{}\"", 1 + rng.below(3));
    }
    s
}

/// Appends to `out` the roles `requested` applies, dependencies first, each once (as
/// `layer`'s deep builds expand them).
fn expand(roles: &[Role], requested: &[usize], seen: &mut BTreeSet<usize>, out: &mut Vec<usize>) {
    for &r in requested {
        if !seen.insert(r) {
            continue;
        }
        if let Some(d) = roles[r].depends {
            expand(roles, &[d], seen, out);
        }
        out.push(r);
    }
}

fn write(path: &Path, content: &str, exec: bool) -> std::io::Result<()> {
    fs::write(path, content)?;
    if exec {
        fs::set_permissions(path, fs::Permissions::from_mode(0o755))?;
    }
    Ok(())
}

fn generate(args: &Args) -> std::io::Result<()> {
    let out = &args.out;
    let params = format!(
        "format={FORMAT} images={} roles={} files={} seed={} record={}\n",
        args.images, args.roles, args.files, args.seed, args.record
    );
    if out.exists() {
        let ours = out.join(".synth-params").is_file();
        let empty = fs::read_dir(out)?.next().is_none();
        if !ours && !empty {
            return Err(std::io::Error::other(format!(
                "{} exists and was not written by synth; give an empty or new folder",
                out.display()
            )));
        }
        fs::remove_dir_all(out)?;
    }
    fs::create_dir_all(out.join("origins"))?;
    fs::create_dir_all(out.join("images"))?;
    // Marks DIR as ours at once; the parameters replace it when everything is written.
    write(&out.join(".synth-params"), "incomplete\n", false)?;

    let mut rng = Rng::new(args.seed);
    let roles = make_roles(args, &mut rng);
    let images = make_images(args, &mut rng);

    write(
        &out.join("layer.toml"),
        "[project]\nstrategy = \"deep\"\n\n[origins.base]\ntar = \"origins/base.tar\"\n",
        false,
    )?;
    write(
        &out.join("origins/base.tar"),
        "not really a tarball: its content is what is hashed\n",
        false,
    )?;
    write(&out.join(".gitignore"), "cache/\nout/\n.ninja_*\n", false)?;

    for role in &roles {
        let dir = out.join("roles").join(&role.name);
        let mut made = BTreeSet::new();
        for (rel, content, exec) in &role.files {
            let path = dir.join(rel);
            let parent = path.parent().expect("files are below the role folder");
            if made.insert(parent.to_path_buf()) {
                fs::create_dir_all(parent)?;
            }
            write(&path, content, *exec)?;
        }
    }

    // Two encodings of the same graph for ninja: `build.ninja` names each role once, as a
    // phony node over its files, and image edges depend on the phony nodes (how one would write
    // it by hand); `build-inline.ninja` lists every file of every applied role on each image edge.
    let header = "# Written by `cargo run --example synth`: the build graph of the layer project\n\
                  # beside it, one stamp per image.\nninja_required_version = 1.5\n\n\
                  rule touch\n  command = touch $out\n  description = touch $out\n\n";
    let mut phony = String::from(header);
    let mut inline = String::with_capacity(images.len() * 2 * args.files * 60);
    inline.push_str(header);
    for role in &roles {
        let _ = write!(phony, "build role/{}: phony", role.name);
        for (rel, _, _) in &role.files {
            let _ = write!(phony, " roles/{}/{rel}", role.name);
        }
        phony.push('\n');
    }
    phony.push('\n');
    // Roles each image's parent chain applied (deep builds apply a role once per chain).
    let mut chain_roles: Vec<BTreeSet<usize>> = Vec::with_capacity(images.len());
    for img in &images {
        write(
            &out.join("images").join(format!("{}.toml", img.name)),
            &image_toml(img, &roles, &mut rng),
            false,
        )?;
        let mut seen = img
            .parent
            .map(|p| chain_roles[p].clone())
            .unwrap_or_default();
        let mut applied = Vec::new();
        expand(&roles, &img.roles, &mut seen, &mut applied);
        chain_roles.push(seen);

        for f in [&mut phony, &mut inline] {
            let _ = write!(
                f,
                "build out/{}.stamp: touch images/{}.toml",
                img.name, img.name
            );
        }
        for &r in &applied {
            let _ = write!(phony, " role/{}", roles[r].name);
            for (rel, _, _) in &roles[r].files {
                let _ = write!(inline, " roles/{}/{rel}", roles[r].name);
            }
        }
        for f in [&mut phony, &mut inline] {
            match img.parent {
                None => f.push_str(" origins/base.tar\n"),
                Some(p) => {
                    let _ = writeln!(f, " | out/{}.stamp", image_name(p));
                }
            }
        }
    }
    // Every stamp is a target; roles no image applies are not.
    for f in [&mut phony, &mut inline] {
        f.push_str("\nbuild all: phony");
        for img in &images {
            let _ = write!(f, " out/{}.stamp", img.name);
        }
        f.push_str("\ndefault all\n");
    }
    write(&out.join("build.ninja"), &phony, false)?;
    write(&out.join("build-inline.ninja"), &inline, false)?;

    if args.record {
        common::record_images(out, None, &[], RECORDED_AT);
    }
    // Last, so that an interrupted run is not taken for a complete one.
    write(&out.join(".synth-params"), &params, false)?;
    Ok(())
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("synth: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match generate(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("synth: {e}");
            ExitCode::FAILURE
        }
    }
}
