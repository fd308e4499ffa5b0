//! How `--since` reads git: `gix` in-process against one long-running `git cat-file --batch`.
//! Both read every tree and blob of a revision and blake3 every blob; the measurement that
//! chose `gix` (see `src/gitread.rs`).
//!
//! ```text
//! cargo run --release --example gitread_vs_catfile -- REPO REV
//! ```
//!
//! On `benches/since.sh`'s project (1,000 images, 500 roles x 40 files: 7,004 trees and 21,006
//! blobs), gix took 23-38 ms and `git cat-file --batch` (requests pipelined a tree level at a
//! time) 129-195 ms, loose or packed.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{ChildStdout, Command, Stdio};
use std::time::Instant;

use gix::prelude::FindExt;

/// Trees, blobs, and a digest of the sorted blob digests (so both walks can be compared).
type Walked = (usize, usize, [u8; 32]);

fn digest(mut blobs: Vec<[u8; 32]>) -> [u8; 32] {
    blobs.sort();
    let mut h = blake3::Hasher::new();
    for b in &blobs {
        h.update(b);
    }
    *h.finalize().as_bytes()
}

fn gix_walk(repo: &str, rev: &str) -> Walked {
    let repo = gix::open(repo).expect("a repository");
    let id = repo.rev_parse_single(rev).expect("a revision");
    let tree = repo
        .find_commit(id)
        .expect("a commit")
        .tree_id()
        .expect("a tree")
        .detach();
    let mut stack = vec![tree];
    let (mut trees, mut blobs) = (0, Vec::new());
    let mut buf = Vec::new();
    let mut blob = Vec::new();
    while let Some(t) = stack.pop() {
        trees += 1;
        let data = repo.objects.find(&t, &mut buf).expect("a tree object");
        let entries: Vec<_> = gix::objs::TreeRefIter::from_bytes(data.data, repo.object_hash())
            .map(|e| {
                let e = e.expect("a tree entry");
                (e.mode, e.oid.to_owned())
            })
            .collect();
        for (mode, oid) in entries {
            if mode.is_tree() {
                stack.push(oid);
            } else {
                let o = repo.objects.find(&oid, &mut blob).expect("a blob");
                blobs.push(*blake3::hash(o.data).as_bytes());
            }
        }
    }
    (trees, blobs.len(), digest(blobs))
}

fn read_object(out: &mut BufReader<ChildStdout>) -> Vec<u8> {
    let mut header = String::new();
    out.read_line(&mut header).expect("a header");
    let size: usize = header
        .split_whitespace()
        .nth(2)
        .and_then(|s| s.parse().ok())
        .expect("`OID TYPE SIZE`");
    let mut data = vec![0; size + 1];
    out.read_exact(&mut data).expect("the object");
    data.pop();
    data
}

fn catfile_walk(repo: &str, rev: &str) -> Walked {
    let mut child = Command::new("git")
        .args([
            "-C",
            repo,
            "-c",
            "core.fsmonitor=false",
            "cat-file",
            "--batch",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("git runs");
    let mut stdin = child.stdin.take().expect("stdin");
    let mut out = BufReader::with_capacity(1 << 16, child.stdout.take().expect("stdout"));
    writeln!(stdin, "{rev}^{{tree}}").expect("a request");
    stdin.flush().expect("flushed");
    let mut level = vec![read_object(&mut out)];
    let (mut trees, mut blobs) = (1, Vec::new());
    // A tree level at a time: requests for the whole level are written by a thread while the
    // answers are read, so neither pipe fills up.
    while !level.is_empty() {
        let (mut sub, mut files) = (Vec::new(), Vec::new());
        for data in &level {
            let mut rest = &data[..];
            while !rest.is_empty() {
                let sp = rest.iter().position(|&c| c == b' ').expect("a mode");
                let nul = rest.iter().position(|&c| c == 0).expect("a name");
                let hex: String = rest[nul + 1..nul + 21]
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect();
                if &rest[..sp] == b"40000" {
                    sub.push(hex);
                } else {
                    files.push(hex);
                }
                rest = &rest[nul + 21..];
            }
        }
        let requests: String = sub.iter().chain(&files).map(|r| format!("{r}\n")).collect();
        let writer = std::thread::spawn(move || {
            stdin.write_all(requests.as_bytes()).expect("requests");
            stdin.flush().expect("flushed");
            stdin
        });
        let mut next = Vec::new();
        for i in 0..sub.len() + files.len() {
            let data = read_object(&mut out);
            if i < sub.len() {
                next.push(data);
                trees += 1;
            } else {
                blobs.push(*blake3::hash(&data).as_bytes());
            }
        }
        stdin = writer.join().expect("the writer");
        level = next;
    }
    drop(stdin);
    child.wait().expect("git ends");
    (trees, blobs.len(), digest(blobs))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, repo, rev] = &args[..] else {
        eprintln!("usage: gitread_vs_catfile REPO REV");
        std::process::exit(2);
    };
    for _ in 0..3 {
        let t = Instant::now();
        let g = gix_walk(repo, rev);
        let tg = t.elapsed();
        let t = Instant::now();
        let c = catfile_walk(repo, rev);
        let tc = t.elapsed();
        assert_eq!(g, c, "both read the same objects");
        println!(
            "{} trees, {} blobs: gix {tg:.1?}, git cat-file --batch {tc:.1?}",
            g.0, g.1
        );
    }
}
