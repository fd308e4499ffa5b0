//! Synthetic records and advisories for `benches/audit.sh`.
//!
//! ```text
//! cargo run --release --example audit_synth -- DIR [BUILDS PACKAGES ADVISORIES]
//! ```
//!
//! Writes into DIR (replaced when it holds an earlier run's output, refused when it holds
//! anything else): a project of ten images on a `tar` origin; BUILDS (1,000) records of them in
//! `DIR/cache`, a hundred builds an image, each with a Debian 12 manifest of PACKAGES (400)
//! packages drawn from 2,000 source packages of two binaries each; and ADVISORIES (5,000) OSV
//! files under `DIR/osv/`, each naming one source package of `Debian:12` with a fixed version
//! that some builds are below. Records are written through the library, as a build writes them.
//! The output depends only on the parameters (a xorshift generator; no clock).

use std::fmt::Write as _;
use std::fs;
use std::path::Path;

use layer::cache::Cache;
use layer::packages::{Distro, Manager, Manifest, Package};
use layer::record::{Artifact, Record, RECORD_FORMAT};
use layer::workspace::Workspace;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const IMAGES: usize = 10;
const SOURCES: u64 = 2000;
const MARK: &str = ".audit-synth";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dir = Path::new(
        args.first()
            .expect("usage: audit_synth DIR [BUILDS PACKAGES ADVISORIES]"),
    );
    let num = |i: usize, default: usize| {
        args.get(i)
            .map_or(default, |s| s.parse().expect("a number"))
    };
    let (builds, packages, advisories) = (num(1, 1000), num(2, 400), num(3, 5000));
    if dir.exists() {
        let ours = dir.join(MARK).exists();
        let empty = fs::read_dir(dir)
            .map(|mut d| d.next().is_none())
            .unwrap_or(false);
        assert!(
            ours || empty,
            "{} holds something else; refusing to replace it",
            dir.display()
        );
        fs::remove_dir_all(dir).unwrap();
    }
    fs::create_dir_all(dir.join("images")).unwrap();
    fs::create_dir_all(dir.join("origins")).unwrap();
    fs::create_dir_all(dir.join("osv")).unwrap();
    fs::write(
        dir.join("layer.toml"),
        "[project]\n\n[origins.base]\ntar = \"origins/base.tar\"\n",
    )
    .unwrap();
    fs::write(dir.join("origins/base.tar"), "synthetic\n").unwrap();
    for i in 0..IMAGES {
        fs::write(
            dir.join(format!("images/img-{i:02}.toml")),
            "version = \"1.0\"\norigin = \"base\"\n",
        )
        .unwrap();
    }
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let ws = Workspace::open(dir, None, None).expect("the synthetic project loads");
    let cache = Cache::new(dir.join("cache"));
    for b in 0..builds {
        let i = b % IMAGES;
        let n = b / IMAGES;
        let image = &ws.project.images[i];
        let mut sources: Vec<u64> = (0..packages / 2).map(|_| rng.below(SOURCES)).collect();
        sources.sort_unstable();
        sources.dedup();
        let mut pkgs = Vec::new();
        for s in sources {
            let version = format!("1.{}-{}+deb12u{}", s % 7, rng.below(4), rng.below(3));
            for bin in ["lib", "bin"] {
                pkgs.push(Package {
                    name: format!("{bin}src{s:04}"),
                    version: version.clone(),
                    arch: "amd64".into(),
                    source: format!("src{s:04}"),
                    source_version: None,
                });
            }
        }
        pkgs.sort();
        let record = Record {
            format: RECORD_FORMAT,
            name: image.name.clone(),
            key: ws.keys[i].key.clone(),
            version: format!("1.0.{n}-20261120_1000"),
            built_at: format!("2026-11-20T10:{:02}:{:02}Z", n / 60, n % 60),
            duration_ms: 1,
            forced: false,
            artifact: Artifact {
                id: format!("{}-1.0.{n}", image.name),
                path: None,
                blake3: None,
                size: None,
                remote: None,
            },
            parent: None,
            tags: Default::default(),
            inputs: ws.keys[i].inputs.clone(),
            packages: Some(Manifest {
                manager: Manager::Dpkg,
                distro: Some(Distro {
                    id: "debian".into(),
                    version: Some("12".into()),
                }),
                packages: pkgs,
            }),
        };
        cache.write_record(&record, &[]).expect("record written");
    }
    for a in 0..advisories {
        let s = rng.below(SOURCES);
        let mut text = String::new();
        let _ = write!(
            text,
            r#"{{"id":"DSA-{a:05}-1","aliases":["CVE-2026-{a:05}"],"affected":[{{"package":{{"ecosystem":"Debian:12","name":"src{s:04}"}},"ranges":[{{"type":"ECOSYSTEM","events":[{{"introduced":"0"}},{{"fixed":"1.{}-{}+deb12u{}"}}]}}]}}]}}"#,
            s % 7,
            rng.below(4),
            rng.below(3)
        );
        fs::write(dir.join(format!("osv/DSA-{a:05}-1.json")), text).unwrap();
    }
    fs::write(
        dir.join(MARK),
        format!("{builds} {packages} {advisories}\n"),
    )
    .unwrap();
    eprintln!(
        "wrote {builds} records of {IMAGES} images with {packages} packages each, and {advisories} advisories, to {}",
        dir.display()
    );
}
