//! The remote cache over plain HTTP: a real `WebDAV` server on 127.0.0.1 (`wsgidav` on
//! `cheroot`, from the Python package index, in a virtual environment made once under
//! `target/webdav-venv`), serving a folder. Two machines share a rootfs chain through it;
//! two writers race on one key (plain HTTP has no conditional put); transfers print their
//! size, time and rate.

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use layer::cache::Cache;
use layer::remote::{Found, Remote, Signer};

use crate::needs::{self, Need};
use crate::remote::{free_port, push_at_once, python_venv, record, small_layer, two_signers};
use crate::remote_use::{actions, plan, rootfs_chain, row, Shared};

/// A `WebDAV` server on 127.0.0.1 serving `root` read-write to anyone, killed when dropped.
struct WebDav {
    child: Child,
    port: u16,
}

impl WebDav {
    fn serve(root: &Path) -> WebDav {
        let venv = python_venv("webdav-venv", &["wsgidav", "cheroot"]);
        let port = free_port();
        let child = Command::new(venv.join("bin/wsgidav"))
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .arg("--root")
            .arg(root)
            .args(["--auth", "anonymous", "--no-config", "-q"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("wsgidav starts");
        let dav = WebDav { child, port };
        let started = Instant::now();
        while dav.status("OPTIONS /").is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "wsgidav did not answer on port {port}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        dav
    }

    /// The URL of `path` on the server.
    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}/{path}", self.port)
    }

    /// The status line of a request without a body.
    fn status(&self, line: &str) -> std::io::Result<String> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port))?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        write!(
            s,
            "{line} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )?;
        let mut answer = String::new();
        s.read_to_string(&mut answer)?;
        Ok(answer.lines().next().unwrap_or_default().to_string())
    }
}

impl Drop for WebDav {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `stderr` has the closing line of `image`'s transfer: `VERB IMAGE VERSION in 0.1s: 1.2 KiB,
/// 30.0 KiB/s` (blobs moved, so a size and a rate).
pub(crate) fn assert_moved(stderr: &str, verb: &str, image: &str) {
    let prefix = format!("{verb} {image} ");
    let line = stderr
        .lines()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no `{prefix}` line:\n{stderr}"));
    let words: Vec<&str> = line.split_whitespace().collect();
    assert!(
        matches!(words[..], [_, _, _, "in", secs, size, unit, rate, rate_unit]
            if secs.strip_suffix("s:").is_some_and(|n| n.parse::<f64>().is_ok())
            && size.parse::<f64>().is_ok() && unit.ends_with("B,")
            && rate.parse::<f64>().is_ok() && rate_unit.ends_with("B/s")),
        "{line}"
    );
}

/// `layer pull`'s table has `image` pulled with its size, time and rate:
/// `  edge  pulled          VERSION  1.2 KiB in 0.0s, 3.4 MiB/s`.
pub(crate) fn assert_moved_row(stderr: &str, image: &str) {
    let line = stderr
        .lines()
        .find(|l| l.split_whitespace().take(2).eq([image, "pulled"]))
        .unwrap_or_else(|| panic!("no row of `{image}`:\n{stderr}"));
    let words: Vec<&str> = line.split_whitespace().collect();
    assert!(
        matches!(words[..], [_, _, _, size, unit, "in", secs, rate, rate_unit]
            if size.parse::<f64>().is_ok() && unit.ends_with('B')
            && secs.strip_suffix("s,").is_some_and(|n| n.parse::<f64>().is_ok())
            && rate.parse::<f64>().is_ok() && rate_unit.ends_with("B/s")),
        "{line}"
    );
}

/// Machine A builds a rootfs chain and pushes it to a `WebDAV` server; machine B plans it
/// fresh from the remote, builds a child on the pulled chain and pushes it; A then plans
/// nothing to build, and `verify --remote` lists the server's records (PROPFIND).
#[test]
#[cfg_attr(
    any(missing = "root", missing = "busybox", missing = "python3"),
    ignore = "needs root, a static busybox and python3-venv: apt-get install busybox-static python3-venv"
)]
fn a_rootfs_chain_is_shared_through_a_webdav_server() {
    needs::check(&[Need::Root, Need::Busybox, Need::Python3]);
    let mut s = Shared::new();
    // The URL's folders are made by the first push (MKCOL).
    let dav = WebDav::serve(s.remote.path());
    s.served_at = Some(dav.url("cache"));

    let a = rootfs_chain(&s);
    let out = s.signed(&a, &["build", "--no-progress"]).expect(0);
    assert_moved(&out.stderr, "pushed", "base");
    assert_moved(&out.stderr, "pushed", "app");
    let records = |name: &str| {
        fs::read_dir(s.remote.path().join("cache/records").join(name))
            .map(Iterator::count)
            .unwrap_or(0)
    };
    assert_eq!((records("base"), records("app")), (1, 1));

    let b = rootfs_chain(&s);
    let (p, _) = plan(&b, &[]);
    assert_eq!(
        actions(&p),
        [
            row("base", "fresh", Some("remote")),
            row("app", "fresh", Some("remote"))
        ]
    );
    b.file("images/edge.toml", "from = \"app\"\nroles = [\"edge\"]\n");
    b.exec(
        "roles/edge/provision.sh",
        "set -eu\necho edge >> /srv/app\n",
    );
    let out = s.signed(&b, &["build", "--no-progress"]).expect(0);
    assert_moved(&out.stderr, "pulled", "base");
    assert_moved(&out.stderr, "pulled", "app");
    out.stderr_has("built edge ");
    assert!(!out.stderr.contains("built app "), "{}", out.stderr);
    assert_moved(&out.stderr, "pushed", "edge");

    a.file("images/edge.toml", "from = \"app\"\nroles = [\"edge\"]\n");
    a.exec(
        "roles/edge/provision.sh",
        "set -eu\necho edge >> /srv/app\n",
    );
    let (p, _) = plan(&a, &[]);
    assert_eq!(p["summary"]["build"], 0, "{p}");
    assert_eq!(actions(&p)[2], row("edge", "fresh", Some("remote")));
    let out = a.layer(&["pull", "edge"]).expect(0);
    assert_moved_row(&out.stderr, "edge");
    let out = a.layer(&["cache", "verify", "--remote"]).expect(0);
    assert!(
        out.stdout
            .ends_with("3 records on the remote, 0 not trusted\n"),
        "{}",
        out.stdout
    );
}

/// Plain HTTP has no conditional put: two writers of one key may both write (HEAD, then
/// PUT). Each writes a whole record signed by its own key, over blobs named by their digest,
/// so the record that stays is one of the two, whole and trusted, and its blob is there.
#[test]
#[cfg_attr(
    missing = "python3",
    ignore = "needs `python3` with `venv`: apt-get install python3-venv"
)]
fn two_writers_of_one_key_over_webdav_leave_one_whole_record() {
    needs::check(&[Need::Python3]);
    let dir = tempfile::tempdir().unwrap();
    let served = dir.path().join("served");
    fs::create_dir(&served).unwrap();
    let dav = WebDav::serve(&served);
    let a = Cache::new(dir.path().join("a"));
    let r = record(&a, "app", small_layer);
    let keys = two_signers(dir.path());
    let trusted: Vec<String> = keys.iter().map(Signer::public).collect();
    let remotes: Vec<Remote> = (0..2)
        .map(|_| Remote::open(&dav.url("cache"), &trusted).unwrap())
        .collect();
    let wins = push_at_once(&remotes, &keys, &a, &r);
    assert!(wins.iter().any(|w| *w), "{wins:?}");
    let b = Cache::new(dir.path().join("b"));
    assert_eq!(
        remotes[1].lookup(&r.name, &r.key).unwrap(),
        Found::Hit(Box::new(r.clone()))
    );
    remotes[1].pull(&r, &b).unwrap();
    let listed = remotes[0].verify().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].verdict, "trusted");
    assert!(
        trusted.contains(listed[0].signer.as_ref().unwrap()),
        "{listed:?}"
    );
    // A third push of the key finds it there.
    assert!(!remotes[0].push(&r, &a, &keys[0]).unwrap());
}
