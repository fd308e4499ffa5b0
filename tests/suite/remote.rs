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
use layer::remote::{keygen, Found, Meter, Remote, Signer};

use crate::common::{Output, Project, SCRIPT_DONE, SCRIPT_START};
use crate::needs::{self, Need};

/// The virtual environment with `moto_server`, made once (a marker file says it is complete).
fn venv() -> PathBuf {
    static VENV: OnceLock<PathBuf> = OnceLock::new();
    VENV.get_or_init(|| python_venv("moto-venv", &["moto[server]"]))
        .clone()
}

/// A virtual environment `target/NAME` with `packages` from the Python package index, made
/// once (a marker file says it is complete).
pub(crate) fn python_venv(name: &str, packages: &[&str]) -> PathBuf {
    // Tests run in threads: two making the same venv at once would remove each other's files.
    static MAKING: Mutex<()> = Mutex::new(());
    let _one_at_a_time = MAKING
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join(name);
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
    run(Command::new(dir.join("bin/pip"))
        .args(["install", "--quiet"])
        .args(packages));
    fs::write(&ready, "").unwrap();
    dir
}

/// A free port on 127.0.0.1 (bound, then let go).
pub(crate) fn free_port() -> u16 {
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
        self.send(line, "")
    }

    /// A plain HTTP request (unsigned: moto does not check) with `body`; the status line.
    fn send(&self, line: &str, body: &str) -> std::io::Result<String> {
        let addr = self.endpoint.trim_start_matches("http://");
        let mut s = TcpStream::connect(addr)?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        write!(
            s,
            "{line} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
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
pub(crate) fn signer(dir: &Path) -> Signer {
    let path = dir.join("signing.key");
    keygen(&path).unwrap();
    Signer::from_env_value(path.to_str().unwrap()).unwrap()
}

/// The caches `a` and `b` in `dir`, and a signing key made there.
fn two_caches_and_a_key(dir: &Path) -> (Cache, Cache, Signer) {
    let a = Cache::new(dir.join("a"));
    let b = Cache::new(dir.join("b"));
    (a, b, signer(dir))
}

/// Two signing keys, made in `dir`'s folders `k0` and `k1`.
pub(crate) fn two_signers(dir: &Path) -> Vec<Signer> {
    (0..2)
        .map(|i| {
            let d = dir.join(format!("k{i}"));
            fs::create_dir(&d).unwrap();
            signer(&d)
        })
        .collect()
}

/// Each of `remotes` pushes `r` from `cache` signed with its own of `keys`, all at once:
/// whether each wrote the record.
pub(crate) fn push_at_once(
    remotes: &[Remote],
    keys: &[Signer],
    cache: &Cache,
    r: &Record,
) -> Vec<bool> {
    let barrier = Arc::new(Barrier::new(remotes.len()));
    std::thread::scope(|s| {
        let handles: Vec<_> = remotes
            .iter()
            .zip(keys)
            .map(|(remote, key)| {
                let barrier = barrier.clone();
                s.spawn(move || {
                    barrier.wait();
                    remote.push(r, cache, key).unwrap()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

/// A record of image `name` whose artifact is the folder `fill` makes in `cache`.
pub(crate) fn record(cache: &Cache, name: &str, fill: impl FnOnce(&Path)) -> Record {
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
        }
        .into(),
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
        inputs: inputs.into(),
        packages: None,
    }
}

pub(crate) fn small_layer(root: &Path) {
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
    let (a, b, key) = two_caches_and_a_key(dir.path());
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
    let keys = two_signers(dir.path());
    let trusted: Vec<String> = keys.iter().map(Signer::public).collect();
    let remotes: Vec<Remote> = (0..2).map(|_| moto.open("race", &trusted)).collect();
    let wins = push_at_once(&remotes, &keys, &a, &r);
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
    let (a, b, key) = two_caches_and_a_key(dir.path());
    let remote = moto.open("big", &[key.public()]);
    // 50 MiB that zstd cannot shrink: four 16 MiB parts.
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
    // Bytes are counted as they move: the upload part by part, the download as it streams.
    let up = Counted::default();
    assert!(remote.push_metered(&r, &a, &key, &up).unwrap());
    let down = Counted::default();
    remote.pull_metered(&r, &b, &down).unwrap();
    assert_eq!(artifact_digest(&b, &r), artifact_digest(&a, &r));
    let (up, down) = (up.0.into_inner().unwrap(), down.0.into_inner().unwrap());
    let blob = up.total;
    assert!(blob > 50 << 20, "{blob}");
    assert_eq!((up.total, up.moved), (blob, blob));
    assert_eq!((down.total, down.moved), (blob, blob));
    // 16 MiB parts; 256 KiB steps of the download.
    assert_eq!(up.calls, 4);
    assert!(down.calls > 100, "{}", down.calls);
}

/// A meter that adds up what it is told.
#[derive(Default)]
struct Counted(Mutex<Tally>);

#[derive(Default, Debug)]
struct Tally {
    total: u64,
    moved: u64,
    calls: usize,
}

impl Meter for Counted {
    fn begin(&self, total: u64) {
        self.0.lock().unwrap().total += total;
    }

    fn moved(&self, n: u64) {
        let mut t = self.0.lock().unwrap();
        t.moved += n;
        t.calls += 1;
    }
}

/// `layer ARGS` in `p` with no AWS credentials in its environment (the other tests of this
/// process set some) and `vars`; the S3 endpoint and the instance metadata endpoint are ports
/// of loopback where nothing listens, so nothing leaves the machine.
fn layer_without_credentials(p: &Project, args: &[&str], vars: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_layer"));
    cmd.args(args)
        .current_dir(p.root())
        .env("NO_COLOR", "1")
        .env(
            "AWS_ENDPOINT_URL",
            format!("http://127.0.0.1:{}", free_port()),
        )
        .env("AWS_ALLOW_HTTP", "true")
        .env("AWS_REGION", "us-east-1");
    for (k, _) in std::env::vars() {
        if k.starts_with("LAYER_")
            || (k.starts_with("AWS_")
                && !matches!(
                    k.as_str(),
                    "AWS_ENDPOINT_URL" | "AWS_ALLOW_HTTP" | "AWS_REGION"
                ))
        {
            cmd.env_remove(k);
        }
    }
    cmd.envs(vars.iter().copied());
    let out = cmd.output().expect("layer runs");
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

/// Without credentials an `s3://` remote asks the instance metadata endpoint (as the AWS CLI
/// does, for EC2 instance roles); when that gives none, the warning says credentials are
/// missing and how to give them, and the run goes on locally. `AWS_EC2_METADATA_DISABLED`
/// skips the endpoint.
#[test]
fn an_s3_remote_without_credentials_says_how_to_give_them() {
    let p = Project::command_estate(&format!("{SCRIPT_START}{SCRIPT_DONE}"));
    let metadata = format!("http://127.0.0.1:{}", free_port());
    let url = "s3://layer-cache/x";
    let out = layer_without_credentials(
        &p,
        &["plan", "--remote", url],
        &[("AWS_METADATA_ENDPOINT", &metadata)],
    )
    .expect(0);
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 3, "{}", out.stderr);
    assert!(
        lines[0].starts_with(&format!(
            "warning: remote `{url}` cannot be reached: no AWS credentials: none in the environment, and the instance metadata endpoint `{metadata}` gave none ("
        )),
        "{}",
        out.stderr
    );
    assert_eq!(
        lines[1],
        "  hint: set `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY` (layer reads no `AWS_PROFILE` or `~/.aws` files), or `AWS_SKIP_SIGNATURE=true` to read a public bucket anonymously"
    );
    assert!(lines[2].starts_with("  note: going on with the local cache only"));

    let started = Instant::now();
    let out = layer_without_credentials(
        &p,
        &["plan", "--remote-required", "--remote", url],
        &[("AWS_EC2_METADATA_DISABLED", "true")],
    )
    .expect(2);
    assert_eq!(
        out.stderr,
        format!("error: remote `{url}` cannot be reached: no AWS credentials: none in the environment, and `AWS_EC2_METADATA_DISABLED` keeps layer from asking the instance metadata endpoint\n  hint: set `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY` (layer reads no `AWS_PROFILE` or `~/.aws` files), or `AWS_SKIP_SIGNATURE=true` to read a public bucket anonymously\n")
    );
    assert!(started.elapsed() < Duration::from_secs(5), "asked nothing");
}

/// `AWS_SKIP_SIGNATURE=true`: a bucket that allows anonymous reads is read without
/// credentials (moto takes unsigned requests).
#[test]
#[cfg_attr(
    missing = "python3",
    ignore = "needs `python3` with `venv`: apt-get install python3-venv"
)]
fn a_public_bucket_is_read_without_credentials() {
    needs::check(&[Need::Python3]);
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let (a, b, key) = two_caches_and_a_key(dir.path());
    let r = record(&a, "app", small_layer);
    assert!(moto
        .open("public", &[key.public()])
        .push(&r, &a, &key)
        .unwrap());
    // What makes a bucket's objects public on S3: a policy that lets anyone read them.
    let policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":["s3:GetObject","s3:HeadObject"],"Resource":"arn:aws:s3:::layer-cache/*"}]}"#;
    let status = moto.send("PUT /layer-cache?policy", policy).unwrap();
    assert!(status.starts_with("HTTP/1.1 2"), "{status}");
    let anonymous = {
        let _g = ENV
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        std::env::remove_var("AWS_ACCESS_KEY_ID");
        std::env::remove_var("AWS_SECRET_ACCESS_KEY");
        std::env::set_var("AWS_SKIP_SIGNATURE", "true");
        std::env::set_var("AWS_ENDPOINT_URL", &moto.endpoint);
        let remote = Remote::open("s3://layer-cache/public", &[key.public()]);
        std::env::remove_var("AWS_SKIP_SIGNATURE");
        remote.unwrap()
    };
    assert_eq!(
        anonymous.lookup(&r.name, &r.key).unwrap(),
        Found::Hit(Box::new(r.clone()))
    );
    anonymous.pull(&r, &b).unwrap();
    assert_eq!(artifact_digest(&b, &r), artifact_digest(&a, &r));
}
