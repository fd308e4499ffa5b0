//! `layer::remote` against a real S3 server on 127.0.0.1: `moto` (`moto[server]` from the Python package index), in
//! a virtual environment made once under `target/moto-venv`, one server per test on a free
//! port, killed when the test ends. Through `s3://BUCKET/PREFIX` with the AWS CLI's
//! environment: push, lookup and pull of a layer; two writers of one key at once; a refused
//! connection; a multipart upload of a large layer.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Barrier, Mutex, OnceLock};
use std::time::{Duration, Instant};

use layer::cache::Cache;
use layer::error::ErrorKind;
use layer::key::{BackendInputs, BaseInputs, Inputs, KEY_SCHEMA};
use layer::model::{BackendKind, Strategy};
use layer::record::{Artifact, Record, RECORD_FORMAT};
use layer::remote::{keygen, Found, Remote, Signer};

use crate::needs::{self, Need};

/// The virtual environment with `moto_server`, made once (a marker file says it is complete).
fn venv() -> PathBuf {
    static VENV: OnceLock<PathBuf> = OnceLock::new();
    VENV.get_or_init(|| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/moto-venv");
        let ready = dir.join(".layer-ready");
        if ready.exists() {
            return dir;
        }
        let run = |cmd: &mut Command| {
            let out = cmd.output().expect("python3 runs");
            assert!(
                out.status.success(),
                "{cmd:?} failed:\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        };
        run(Command::new("python3").arg("-m").arg("venv").arg(&dir));
        run(Command::new(dir.join("bin/pip")).args(["install", "--quiet", "moto[server]"]));
        fs::write(&ready, "").unwrap();
        dir
    })
    .clone()
}

/// A free port on 127.0.0.1 (bound, then let go).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The AWS environment is read when a remote is opened; tests open one at a time.
static ENV: Mutex<()> = Mutex::new(());

/// Opens `url` with the AWS CLI's variables pointing at `endpoint`.
fn open_s3(url: &str, endpoint: &str, trusted: &[String]) -> layer::Result<Remote> {
    let _g = ENV
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    for (k, v) in [
        ("AWS_ENDPOINT_URL", endpoint),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ALLOW_HTTP", "true"),
    ] {
        std::env::set_var(k, v);
    }
    Remote::open(url, trusted)
}

/// A moto server on 127.0.0.1 with the bucket `layer-cache`, killed when dropped.
struct Moto {
    child: Child,
    endpoint: String,
}

impl Moto {
    fn start() -> Moto {
        let venv = venv();
        let port = free_port();
        let child = Command::new(venv.join("bin/moto_server"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server starts");
        let moto = Moto {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        let started = Instant::now();
        loop {
            if let Ok(status) = moto.request("PUT /layer-cache") {
                assert!(status.starts_with("HTTP/1.1 200"), "{status}");
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "moto_server did not answer on {}",
                moto.endpoint
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        moto
    }

    /// A plain HTTP request without a body; the status line of the answer.
    fn request(&self, line: &str) -> std::io::Result<String> {
        let addr = self.endpoint.trim_start_matches("http://");
        let mut s = TcpStream::connect(addr)?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        write!(
            s,
            "{line} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )?;
        let mut answer = String::new();
        s.read_to_string(&mut answer)?;
        Ok(answer.lines().next().unwrap_or_default().to_string())
    }

    fn open(&self, prefix: &str, trusted: &[String]) -> Remote {
        open_s3(
            &format!("s3://layer-cache/{prefix}"),
            &self.endpoint,
            trusted,
        )
        .unwrap()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A signing key made in `dir`.
fn signer(dir: &Path) -> Signer {
    let path = dir.join("signing.key");
    keygen(&path).unwrap();
    Signer::from_env_value(path.to_str().unwrap()).unwrap()
}

/// A record of image `name` whose artifact is the folder `fill` makes in `cache`.
fn record(cache: &Cache, name: &str, fill: impl FnOnce(&Path)) -> Record {
    let inputs = Inputs {
        schema: KEY_SCHEMA,
        image: name.into(),
        strategy: Strategy::Deep,
        backend: BackendInputs {
            name: "b".into(),
            kind: BackendKind::Command,
            command: vec!["build".into()],
            template: None,
            files: BTreeMap::new(),
        },
        base: BaseInputs::Parent {
            key: "0".repeat(64),
        },
        chain: vec![],
        roles: vec![],
    };
    let key = inputs.key();
    let rel = format!("artifacts/{name}/{name}-{}", &key[..16]);
    let place = cache.dir().join(&rel);
    fs::create_dir_all(&place).unwrap();
    fill(&place);
    let (digest, size) = layer::layerfs::digest(&place).unwrap();
    Record {
        format: RECORD_FORMAT,
        name: name.into(),
        key,
        version: "1.0.0-20261130_0600".into(),
        built_at: "2026-11-30T06:00:00Z".into(),
        duration_ms: 1,
        forced: false,
        artifact: Artifact {
            id: format!("{name}-1.0.0"),
            path: Some(rel),
            blake3: Some(digest),
            size: Some(size),
            remote: None,
        },
        parent: None,
        tags: BTreeMap::new(),
        inputs,
        packages: None,
    }
}

fn small_layer(root: &Path) {
    fs::create_dir_all(root.join("etc")).unwrap();
    fs::write(root.join("etc/motd"), "hello\n").unwrap();
    fs::write(root.join("etc/secret"), "0600\n").unwrap();
    fs::set_permissions(root.join("etc/secret"), fs::Permissions::from_mode(0o600)).unwrap();
    std::os::unix::fs::symlink("motd", root.join("etc/issue")).unwrap();
}

fn artifact_digest(cache: &Cache, r: &Record) -> String {
    layer::layerfs::digest(&cache.dir().join(r.artifact.path.as_ref().unwrap()))
        .unwrap()
        .0
}

#[test]
#[cfg_attr(
    missing = "python3",
    ignore = "needs `python3` with `venv`: apt-get install python3-venv"
)]
fn a_layer_round_trips_through_s3() {
    needs::check(&[Need::Python3]);
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (
        Cache::new(dir.path().join("a")),
        Cache::new(dir.path().join("b")),
    );
    let key = signer(dir.path());
    let remote = moto.open("team/cache", &[key.public()]);
    let r = record(&a, "app", small_layer);

    assert_eq!(remote.lookup(&r.name, &r.key).unwrap(), Found::Miss);
    assert!(remote.push(&r, &a, &key).unwrap());
    assert!(!remote.push(&r, &a, &key).unwrap(), "already there");
    assert_eq!(
        remote.lookup(&r.name, &r.key).unwrap(),
        Found::Hit(Box::new(r.clone()))
    );
    // Another machine: only the remote in common.
    let other = moto.open("team/cache", &[key.public()]);
    other.pull(&r, &b).unwrap();
    assert_eq!(artifact_digest(&b, &r), artifact_digest(&a, &r));
    assert!(matches!(
        b.lookup(&r.name, &r.key),
        layer::record::Lookup::Found(_)
    ));
    let listed = other.verify().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].verdict, "trusted");
    // Everything went under the prefix: another prefix of the bucket holds nothing.
    let elsewhere = moto.open("team/other", &[key.public()]);
    assert_eq!(elsewhere.list().unwrap(), []);
    assert_eq!(elsewhere.lookup(&r.name, &r.key).unwrap(), Found::Miss);
}

#[test]
#[cfg_attr(
    missing = "python3",
    ignore = "needs `python3` with `venv`: apt-get install python3-venv"
)]
fn two_writers_of_one_key_at_once_one_wins() {
    needs::check(&[Need::Python3]);
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let a = Cache::new(dir.path().join("a"));
    let r = record(&a, "app", small_layer);
    let keys: Vec<Signer> = (0..2)
        .map(|i| {
            let d = dir.path().join(format!("k{i}"));
            fs::create_dir(&d).unwrap();
            signer(&d)
        })
        .collect();
    let trusted: Vec<String> = keys.iter().map(Signer::public).collect();
    let remotes: Vec<Remote> = (0..2).map(|_| moto.open("race", &trusted)).collect();
    let barrier = Arc::new(Barrier::new(2));
    let wins: Vec<bool> = std::thread::scope(|s| {
        let handles: Vec<_> = remotes
            .iter()
            .zip(&keys)
            .map(|(remote, key)| {
                let (barrier, a, r) = (barrier.clone(), &a, &r);
                s.spawn(move || {
                    barrier.wait();
                    remote.push(r, a, key).unwrap()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(wins.iter().filter(|w| **w).count(), 1, "{wins:?}");
    assert!(matches!(
        remotes[0].lookup(&r.name, &r.key).unwrap(),
        Found::Hit(_)
    ));
}

#[test]
fn a_refused_connection_is_unreachable() {
    // Nothing listens on a port just let go; no server needed.
    let endpoint = format!("http://127.0.0.1:{}", free_port());
    let remote = open_s3("s3://layer-cache/x", &endpoint, &[]).unwrap();
    let started = Instant::now();
    let e = remote.lookup("app", &"a".repeat(64)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::RemoteUnreachable);
    assert!(
        e.to_string()
            .starts_with("remote `s3://layer-cache/x` cannot be reached: "),
        "{e}"
    );
    assert_eq!(e.exit_code(), 2);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

#[test]
#[cfg_attr(
    missing = "python3",
    ignore = "needs `python3` with `venv`: apt-get install python3-venv"
)]
fn a_large_layer_goes_up_in_parts_and_comes_back_whole() {
    needs::check(&[Need::Python3]);
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (
        Cache::new(dir.path().join("a")),
        Cache::new(dir.path().join("b")),
    );
    let key = signer(dir.path());
    let remote = moto.open("big", &[key.public()]);
    // 50 MB that zstd cannot shrink much: several 8 MiB parts.
    let r = record(&a, "big", |root| {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut bytes = vec![0u8; 50 << 20];
        for chunk in bytes.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
        }
        fs::write(root.join("blob.bin"), bytes).unwrap();
    });
    assert!(remote.push(&r, &a, &key).unwrap());
    remote.pull(&r, &b).unwrap();
    assert_eq!(artifact_digest(&b, &r), artifact_digest(&a, &r));
}
