//! `layer::export` on small layer stacks made by hand: an origin with root-owned, setuid,
//! linked and device files, a layer that removes and hides lower content, a layer on top of
//! that. Every format is read back with an independent reader (the tar crate, GNU tar,
//! skopeo, e2fsprogs, qemu-img) and exported twice to check that the bytes are the same.
//!
//! Needs root (owners, device nodes, whiteouts), and skopeo, e2fsprogs or qemu-img for the
//! formats they read; without them `cargo test` lists the tests as ignored with that reason,
//! and under `CI` they fail (see `needs`).

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::run_ok;
use crate::needs::{self, Need};
use layer::export::{export, ExportSpec, Format};
use layer::layerfs;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The build time of the test record: 2026-11-01T00:00:00Z.
const BUILT: i64 = 1_793_491_200;

/// A path longer than a ustar name field and its prefix can hold: a PAX `path` record.
fn long_name() -> String {
    format!(
        "opt/keep/{}/{}",
        "d".repeat(60),
        "long-file-name-".repeat(8)
    )
}

/// A name that needs quoting in shells and debugfs scripts.
const ODD_NAME: &str = "etc/a \"quoted\" name";

/// `cap_net_raw+ep`: a version 2 `security.capability` value.
const CAP_NET_RAW: [u8; 20] = [
    1, 0, 0, 2, // revision 2, effective
    0, 0x20, 0, 0, // permitted (low word): bit 13
    0, 0, 0, 0, // inheritable (low word)
    0, 0, 0, 0, // permitted (high word)
    0, 0, 0, 0, // inheritable (high word)
];

fn set_capability(p: &Path) {
    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: NUL-terminated strings and the value's real length.
    let r = unsafe {
        libc::lsetxattr(
            c.as_ptr(),
            c"security.capability".as_ptr(),
            CAP_NET_RAW.as_ptr().cast(),
            CAP_NET_RAW.len(),
            0,
        )
    };
    assert_eq!(r, 0, "{}", std::io::Error::last_os_error());
}

struct Stack {
    _dir: tempfile::TempDir,
    layers: Vec<PathBuf>,
    names: Vec<String>,
    tags: BTreeMap<String, String>,
    devices: bool,
    out: PathBuf,
}

impl Stack {
    fn spec(&self) -> ExportSpec<'_> {
        ExportSpec {
            layers: &self.layers,
            layer_names: &self.names,
            image: "app",
            version: "1.2.3-20261101_0000",
            mtime: BUILT,
            tags: &self.tags,
        }
    }

    fn export(&self, format: Format, name: &str) -> PathBuf {
        let out = self.out.join(name);
        export(&self.spec(), format, &out).unwrap_or_else(|e| panic!("{format}: {e}"));
        out
    }
}

fn write(root: &Path, rel: &str, content: &str, mode: u32, uid: u32, gid: u32) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(&p, content).unwrap();
    std::os::unix::fs::chown(&p, Some(uid), Some(gid)).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
}

fn mkdir(root: &Path, rel: &str) {
    fs::create_dir_all(root.join(rel)).unwrap();
}

fn set_time(p: &Path, secs: i64) {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs as u64);
    fs::File::options()
        .read(true)
        .open(p)
        .unwrap()
        .set_modified(t)
        .unwrap();
}

fn mknod(p: &Path, kind: libc::mode_t, major: u32, minor: u32) -> bool {
    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a NUL-terminated path.
    unsafe { libc::mknod(c.as_ptr(), kind | 0o666, libc::makedev(major, minor)) == 0 }
}

/// origin: a small root filesystem; base: removes `var/log/old.log` and `etc/shadow`, replaces
/// `opt/app` with an opaque folder, adds `etc/motd`; app: changes `etc/passwd`, removes
/// `home/user` (a folder), adds a file dated after the build.
fn stack() -> Stack {
    let dir = tempfile::tempdir().unwrap();
    let (origin, base, app) = (
        dir.path().join("origin"),
        dir.path().join("base"),
        dir.path().join("app"),
    );
    let out = dir.path().join("out");
    for d in [&origin, &base, &app, &out] {
        fs::create_dir(d).unwrap();
        fs::set_permissions(d, fs::Permissions::from_mode(0o755)).unwrap();
    }

    write(&origin, "bin/sh", "#!sh\n", 0o755, 0, 0);
    write(
        &origin,
        "etc/passwd",
        "root:x:0:0::/root:/bin/sh\n",
        0o644,
        0,
        0,
    );
    write(&origin, "etc/shadow", "root:*:1::::::\n", 0o640, 0, 42);
    write(&origin, "usr/bin/su", "setuid\n", 0o4755, 0, 0);
    write(&origin, "usr/bin/busybox", "many names\n", 0o755, 0, 0);
    fs::hard_link(origin.join("usr/bin/busybox"), origin.join("usr/bin/ls")).unwrap();
    std::os::unix::fs::symlink("usr/lib", origin.join("lib")).unwrap();
    mkdir(&origin, "usr/lib");
    write(&origin, "var/log/old.log", "old\n", 0o644, 0, 0);
    write(&origin, "var/log/keep.log", "keep\n", 0o644, 0, 0);
    write(&origin, "opt/app/old/config", "old\n", 0o644, 0, 0);
    write(&origin, "home/user/.profile", "x\n", 0o644, 1000, 1000);
    std::os::unix::fs::chown(origin.join("home/user"), Some(1000), Some(1000)).unwrap();
    write(&origin, &long_name(), "long\n", 0o600, 0, 0);
    write(&origin, ODD_NAME, "odd\n", 0o644, 0, 0);
    write(&origin, "usr/bin/ping", "raw sockets\n", 0o755, 0, 0);
    set_capability(&origin.join("usr/bin/ping"));
    mkdir(&origin, "dev");
    let devices = mknod(&origin.join("dev/null"), libc::S_IFCHR, 1, 3)
        && mknod(&origin.join("dev/loop0"), libc::S_IFBLK, 7, 0);
    if !devices {
        eprintln!("notice: mknod is not permitted here: device nodes are left out");
    }
    let fifo =
        std::ffi::CString::new(origin.join("run-fifo").as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    mkdir(&origin, "run");
    drop(std::os::unix::net::UnixListener::bind(origin.join("run/app.sock")).unwrap());

    mkdir(&base, "etc");
    mkdir(&base, "var/log");
    write(&base, "etc/motd", "welcome\n", 0o644, 0, 0);
    layerfs::make_whiteout(&base.join("etc/shadow")).expect("whiteouts need root");
    // Linux 5.8+ overlayfs makes whiteouts hard links of one shared inode.
    fs::hard_link(base.join("etc/shadow"), base.join("var/log/old.log")).unwrap();
    write(&base, "opt/app/new/config", "new\n", 0o644, 0, 0);
    layerfs::set_opaque(&base.join("opt/app")).unwrap();

    mkdir(&app, "etc");
    mkdir(&app, "home");
    write(
        &app,
        "etc/passwd",
        "root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/:/bin/sh\n",
        0o644,
        0,
        0,
    );
    layerfs::make_whiteout(&app.join("home/user")).unwrap();
    write(&app, "srv/late", "touched after the build\n", 0o644, 0, 0);
    set_time(&app.join("srv/late"), BUILT + 86_400);
    set_time(&origin.join("etc/passwd"), 1_000_000_000);
    set_time(&origin.join("var/log/keep.log"), 1_000_000_000);

    let mut tags = BTreeMap::new();
    tags.insert("Team".to_string(), "checkout".to_string());
    tags.insert("Release_Status".to_string(), "candidate".to_string());
    Stack {
        _dir: dir,
        layers: vec![origin, base, app],
        names: vec![
            "origin bb".into(),
            "base 1.0.0-20261031_2300".into(),
            "app 1.2.3-20261101_0000".into(),
        ],
        tags,
        devices,
        out,
    }
}

fn sha256_file(p: &Path) -> String {
    let mut h = Sha256::new();
    h.update(fs::read(p).unwrap());
    format!("{:x}", h.finalize())
}

/// Every file under `dir` with its sha256, for comparing two exported folders.
fn tree_hashes(dir: &Path) -> BTreeMap<String, String> {
    walkdir::WalkDir::new(dir)
        .sort_by_file_name()
        .into_iter()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            (
                e.path().strip_prefix(dir).unwrap().display().to_string(),
                sha256_file(e.path()),
            )
        })
        .collect()
}

/// What a tar entry says, as the tar crate reads it (PAX records applied).
#[derive(Debug)]
struct Seen {
    name: String,
    kind: tar::EntryType,
    mode: u32,
    uid: u64,
    gid: u64,
    mtime: u64,
    link: Option<String>,
    device: Option<(u32, u32)>,
    data: Vec<u8>,
}

fn read_tar(bytes: &[u8]) -> Vec<Seen> {
    let mut ar = tar::Archive::new(bytes);
    ar.entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let h = e.header().clone();
            assert_eq!(h.username_bytes(), Some(&b""[..]), "numeric owners only");
            assert_eq!(h.groupname_bytes(), Some(&b""[..]), "numeric owners only");
            let name = String::from_utf8(e.path_bytes().into_owned()).unwrap();
            let link = e
                .link_name_bytes()
                .map(|l| String::from_utf8(l.into_owned()).unwrap());
            let mut data = Vec::new();
            e.read_to_end(&mut data).unwrap();
            Seen {
                name,
                kind: h.entry_type(),
                mode: h.mode().unwrap(),
                uid: h.uid().unwrap(),
                gid: h.gid().unwrap(),
                mtime: h.mtime().unwrap(),
                link,
                device: match h.entry_type() {
                    tar::EntryType::Char | tar::EntryType::Block => Some((
                        h.device_major().unwrap().unwrap(),
                        h.device_minor().unwrap().unwrap(),
                    )),
                    _ => None,
                },
                data,
            }
        })
        .collect()
}

/// The raw headers of an archive, PAX headers included: (type, name).
fn raw_headers(bytes: &[u8]) -> Vec<(tar::EntryType, Vec<u8>)> {
    let mut ar = tar::Archive::new(bytes);
    let entries = ar.entries().unwrap().raw(true);
    entries
        .map(|e| {
            let e = e.unwrap();
            (
                e.header().entry_type(),
                e.header().path_bytes().into_owned(),
            )
        })
        .collect()
}

#[test]
#[cfg_attr(missing = "root", ignore = "needs root")]
fn tar_holds_the_merged_tree_sorted_with_numeric_owners_and_clamped_times() {
    needs::check(&[Need::Root]);
    let s = stack();
    let out = s.export(Format::Tar, "app.tar");
    let bytes = fs::read(&out).unwrap();
    let seen = read_tar(&bytes);
    let names: Vec<&str> = seen.iter().map(|e| e.name.as_str()).collect();

    let mut sorted = names.clone();
    sorted.sort_by(|a, b| {
        a.trim_end_matches('/')
            .as_bytes()
            .cmp(b.trim_end_matches('/').as_bytes())
    });
    assert_eq!(names, sorted, "entries are sorted by path");
    assert_eq!(names[0], "./");

    let long = format!("./{}", long_name());
    let mut want = vec![
        "./",
        "./bin/",
        "./bin/sh",
        "./dev/",
        "./etc/",
        "./etc/a \"quoted\" name",
        "./etc/motd",
        "./etc/passwd",
        "./home/",
        "./lib",
        "./opt/",
        "./opt/app/",
        "./opt/app/new/",
        "./opt/app/new/config",
        "./opt/keep/",
    ];
    want.push(&long[..long.rfind('/').unwrap() + 1]);
    want.extend([
        long.as_str(),
        "./run/",
        "./run-fifo",
        "./srv/",
        "./srv/late",
        "./usr/",
        "./usr/bin/",
        "./usr/bin/busybox",
        "./usr/bin/ls",
        "./usr/bin/ping",
        "./usr/bin/su",
        "./usr/lib/",
        "./var/",
        "./var/log/",
        "./var/log/keep.log",
    ]);
    if s.devices {
        want.splice(4..4, ["./dev/loop0", "./dev/null"]);
    }
    assert_eq!(
        names, want,
        "whiteouts applied, opaque folders hide lower content"
    );

    let get = |n: &str| seen.iter().find(|e| e.name == n).unwrap();
    assert_eq!(
        get("./etc/passwd").data,
        b"root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/:/bin/sh\n",
        "the top layer's content"
    );
    let su = get("./usr/bin/su");
    assert_eq!((su.mode, su.uid, su.gid), (0o4755, 0, 0), "setuid kept");
    let lib = get("./lib");
    assert_eq!(lib.kind, tar::EntryType::Symlink);
    assert_eq!(lib.link.as_deref(), Some("usr/lib"));
    let ls = get("./usr/bin/ls");
    assert_eq!(
        ls.kind,
        tar::EntryType::Link,
        "the second name of an inode is a hard link"
    );
    assert_eq!(ls.link.as_deref(), Some("./usr/bin/busybox"));
    assert_eq!(get("./usr/bin/busybox").data, b"many names\n");
    assert_eq!(get("./run-fifo").kind, tar::EntryType::Fifo);
    assert_eq!(get(&long).data, b"long\n");
    assert_eq!(get(&long).mode, 0o600);
    if s.devices {
        let null = get("./dev/null");
        assert_eq!(
            (null.kind, null.device),
            (tar::EntryType::Char, Some((1, 3)))
        );
        let lp = get("./dev/loop0");
        assert_eq!((lp.kind, lp.device), (tar::EntryType::Block, Some((7, 0))));
    }

    assert_eq!(
        get("./srv/late").mtime,
        BUILT as u64,
        "a later mtime is clamped"
    );
    assert_eq!(
        get("./etc/passwd").mtime,
        BUILT as u64,
        "the top layer's file is new"
    );
    assert_eq!(
        get("./var/log/keep.log").mtime,
        1_000_000_000,
        "an earlier mtime is kept"
    );
    assert!(seen.iter().all(|e| e.mtime <= BUILT as u64));

    let pax: Vec<_> = raw_headers(&bytes)
        .into_iter()
        .filter(|(t, _)| *t == tar::EntryType::XHeader)
        .collect();
    assert_eq!(
        pax.len(),
        2,
        "PAX headers for the long name and the file capability only: {pax:?}"
    );

    // GNU tar agrees.
    let o = run_ok(
        Command::new("tar")
            .args(["--numeric-owner", "-tvf"])
            .arg(&out),
    );
    let listing = String::from_utf8(o).unwrap();
    assert!(listing.contains("-rwsr-xr-x 0/0"), "{listing}");
    assert!(listing.contains(&long), "{listing}");
}

#[test]
#[cfg_attr(missing = "root", ignore = "needs root")]
fn tar_pax_headers_carry_no_atime_or_ctime() {
    needs::check(&[Need::Root]);
    let s = stack();
    let bytes = fs::read(s.export(Format::Tar, "app.tar")).unwrap();
    let mut ar = tar::Archive::new(&bytes[..]);
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        if let Some(exts) = e.pax_extensions().unwrap() {
            let exts: Vec<(String, Vec<u8>)> = exts
                .map(|x| {
                    let x = x.unwrap();
                    (x.key().unwrap().to_string(), x.value_bytes().to_vec())
                })
                .collect();
            let name = String::from_utf8(e.path_bytes().into_owned()).unwrap();
            if name == "./usr/bin/ping" {
                assert_eq!(
                    exts,
                    [(
                        "SCHILY.xattr.security.capability".to_string(),
                        CAP_NET_RAW.to_vec()
                    )]
                );
            } else {
                assert_eq!(exts.len(), 1);
                assert_eq!(exts[0].0, "path");
            }
        }
    }
}

#[test]
#[cfg_attr(missing = "root", ignore = "needs root")]
fn tar_and_oci_exports_are_the_same_bytes_twice() {
    needs::check(&[Need::Root]);
    let s = stack();
    let a = s.export(Format::Tar, "a.tar");
    let b = s.export(Format::Tar, "b.tar");
    assert_eq!(sha256_file(&a), sha256_file(&b));

    let a = s.export(Format::Oci, "a.oci");
    let b = s.export(Format::Oci, "b.oci");
    assert_eq!(tree_hashes(&a), tree_hashes(&b));
}

#[test]
#[cfg_attr(missing = "root", ignore = "needs root")]
fn exporting_again_replaces_a_file_and_leaves_no_temporary_files() {
    needs::check(&[Need::Root]);
    let s = stack();
    let out = s.out.join("app.tar");
    fs::write(&out, "old").unwrap();
    export(&s.spec(), Format::Tar, &out).unwrap();
    assert_ne!(fs::read(&out).unwrap(), b"old");
    let names: Vec<_> = fs::read_dir(&s.out)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["app.tar"]);
}

#[test]
#[cfg_attr(missing = "root", ignore = "needs root")]
fn a_failed_export_leaves_nothing_at_the_output() {
    needs::check(&[Need::Root]);
    let s = stack();
    let mut layers = s.layers.clone();
    layers.push(s.out.join("no-such-layer"));
    let mut names = s.names.clone();
    names.push("missing".into());
    let spec = ExportSpec {
        layers: &layers,
        layer_names: &names,
        ..s.spec()
    };
    for f in Format::ALL {
        let out = s.out.join(format!("app.{f}"));
        let e = export(&spec, f, &out).unwrap_err();
        assert!(e.to_string().contains("no-such-layer"), "{f}: {e}");
        assert!(!out.exists(), "{f}");
    }
    let left: Vec<_> = fs::read_dir(&s.out).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");

    // An existing file is untouched by a failed export.
    let out = s.out.join("keep.tar");
    fs::write(&out, "old").unwrap();
    export(&spec, Format::Tar, &out).unwrap_err();
    assert_eq!(fs::read(&out).unwrap(), b"old");
}

fn json_file(p: &Path) -> Value {
    serde_json::from_slice(&fs::read(p).unwrap()).unwrap()
}

/// The blob a descriptor names, its digest checked.
fn blob(layout: &Path, desc: &Value) -> Vec<u8> {
    let digest = desc["digest"].as_str().unwrap();
    let hex = digest.strip_prefix("sha256:").unwrap();
    let bytes = fs::read(layout.join("blobs/sha256").join(hex)).unwrap();
    assert_eq!(
        format!("{:x}", Sha256::digest(&bytes)),
        hex,
        "digest of {digest}"
    );
    assert_eq!(
        desc["size"].as_u64().unwrap(),
        bytes.len() as u64,
        "size of {digest}"
    );
    bytes
}

#[test]
#[cfg_attr(missing = "root", ignore = "needs root")]
fn oci_layout_has_a_layer_per_folder_with_whiteouts_as_wh_entries() {
    needs::check(&[Need::Root]);
    let s = stack();
    let out = s.export(Format::Oci, "app.oci");
    assert_eq!(
        fs::read_to_string(out.join("oci-layout")).unwrap(),
        r#"{"imageLayoutVersion":"1.0.0"}"#
    );
    let index = json_file(&out.join("index.json"));
    assert_eq!(index["schemaVersion"], 2);
    let m = &index["manifests"][0];
    assert_eq!(
        m["annotations"]["org.opencontainers.image.ref.name"],
        "1.2.3-20261101_0000"
    );
    let manifest: Value = serde_json::from_slice(&blob(&out, m)).unwrap();
    assert_eq!(
        manifest["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(manifest["annotations"]["Team"], "checkout");
    let config: Value = serde_json::from_slice(&blob(&out, &manifest["config"])).unwrap();
    assert_eq!(config["os"], "linux");
    if cfg!(target_arch = "x86_64") {
        assert_eq!(config["architecture"], "amd64");
    }
    assert_eq!(config["created"], "2026-11-01T00:00:00Z");
    assert_eq!(config["config"]["Labels"]["Team"], "checkout");
    let history: Vec<&str> = config["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["created_by"].as_str().unwrap())
        .collect();
    assert_eq!(
        history,
        [
            "layer: origin bb",
            "layer: base 1.0.0-20261031_2300",
            "layer: app 1.2.3-20261101_0000"
        ]
    );

    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 3);
    let mut tars = Vec::new();
    for (l, diff_id) in layers
        .iter()
        .zip(config["rootfs"]["diff_ids"].as_array().unwrap())
    {
        assert_eq!(l["mediaType"], "application/vnd.oci.image.layer.v1.tar");
        assert_eq!(
            &l["digest"], diff_id,
            "uncompressed: the diff id is the digest"
        );
        tars.push(read_tar(&blob(&out, l)));
    }
    let names = |i: usize| -> Vec<String> { tars[i].iter().map(|e| e.name.clone()).collect() };
    let has = |i: usize, n: &str| names(i).iter().any(|x| x == n);

    assert!(has(0, "etc/shadow") && has(0, "usr/bin/su") && !has(0, "./"));
    assert!(names(0).iter().all(|n| !n.contains(".wh.")));
    assert!(has(1, "etc/.wh.shadow"), "{:?}", names(1));
    assert!(has(1, "var/log/.wh.old.log"));
    let opq = names(1)
        .iter()
        .position(|n| n == "opt/app/.wh..wh..opq")
        .unwrap();
    assert_eq!(
        names(1)[opq - 1],
        "opt/app/",
        "the marker follows its folder"
    );
    assert!(has(1, "opt/app/new/config") && has(1, "etc/motd"));
    assert!(has(2, "home/.wh.user") && has(2, "etc/passwd"));
    assert!(!has(2, "etc/motd"), "a layer holds its own changes only");
    let su = tars[0].iter().find(|e| e.name == "usr/bin/su").unwrap();
    assert_eq!(su.mode, 0o4755);
    let ls = tars[0].iter().find(|e| e.name == "usr/bin/ls").unwrap();
    assert_eq!(ls.link.as_deref(), Some("usr/bin/busybox"));
}

#[test]
#[cfg_attr(
    any(missing = "root", missing = "skopeo"),
    ignore = "needs root and `skopeo`: apt-get install skopeo"
)]
fn skopeo_reads_and_copies_the_oci_layout() {
    needs::check(&[Need::Root, Need::Skopeo]);
    let s = stack();
    let out = s.export(Format::Oci, "app.oci");
    let reference = format!("oci:{}:1.2.3-20261101_0000", out.display());
    let o = run_ok(Command::new("skopeo").args(["inspect", &reference]));
    let v: Value = serde_json::from_slice(&o).unwrap();
    assert_eq!(v["Layers"].as_array().unwrap().len(), 3);
    assert_eq!(v["Labels"]["Team"], "checkout");
    assert_eq!(v["Os"], "linux");

    let copy = s.out.join("copy");
    run_ok(
        Command::new("skopeo")
            .args(["copy", &reference])
            .arg(format!("dir:{}", copy.display())),
    );
    assert!(copy.join("manifest.json").is_file());
}

#[test]
#[cfg_attr(missing = "root", ignore = "needs root")]
fn an_oci_layout_goes_into_a_new_or_empty_folder_only() {
    needs::check(&[Need::Root]);
    let s = stack();
    let empty = s.out.join("empty");
    fs::create_dir(&empty).unwrap();
    export(&s.spec(), Format::Oci, &empty).unwrap();
    assert!(empty.join("index.json").is_file());
    let e = export(&s.spec(), Format::Oci, &empty).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("`{}` exists and is not empty", empty.display())
    );
    assert_eq!(e.exit_code(), 2);
}

fn debugfs(img: &Path, cmd: &str) -> String {
    let o = Command::new("debugfs")
        .args(["-R", cmd])
        .arg(img)
        .output()
        .unwrap();
    assert!(o.status.success());
    String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr)
}

#[test]
#[cfg_attr(
    any(missing = "root", missing = "e2fsprogs"),
    ignore = "needs root and e2fsprogs: apt-get install e2fsprogs"
)]
fn raw_is_a_clean_ext4_image_of_the_merged_tree() {
    needs::check(&[Need::Root, Need::E2fsprogs]);
    let s = stack();
    let img = s.export(Format::Raw, "app.img");
    let o = Command::new("e2fsck")
        .arg("-fn")
        .arg(&img)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(
        debugfs(&img, "cat /etc/passwd")
            .lines()
            .filter(|l| l.contains(":x:"))
            .count(),
        2,
        "the top layer's passwd"
    );
    for gone in [
        "/etc/shadow",
        "/var/log/old.log",
        "/opt/app/old",
        "/home/user",
    ] {
        assert!(
            debugfs(&img, &format!("stat {gone}")).contains("File not found"),
            "{gone} is removed"
        );
    }
    let su = debugfs(&img, "stat /usr/bin/su");
    assert!(su.contains("Mode:  04755"), "{su}");
    let built = format!("0x{BUILT:08x}");
    let su_times: Vec<&str> = su.lines().filter(|l| l.contains("time:")).collect();
    assert_eq!(su_times.len(), 4, "{su}");
    assert!(
        su_times.iter().all(|l| l.contains(&built)),
        "atime, ctime, mtime and crtime are the build time, not the export's: {su_times:?}"
    );
    let keep = debugfs(&img, "stat /var/log/keep.log");
    assert!(
        keep.contains("mtime: 0x3b9aca00"),
        "an earlier mtime is kept: {keep}"
    );
    let home = debugfs(&img, "stat /home");
    assert!(home.contains("User:     0   Group:     0"), "{home}");
    let ls = debugfs(&img, "stat /usr/bin/ls");
    assert!(ls.contains("Links: 2"), "hard links kept: {ls}");
    assert!(debugfs(&img, "stat /lib").contains("Fast link dest: \"usr/lib\""));
    if s.devices {
        let null = debugfs(&img, "stat /dev/null");
        assert!(null.contains("Type: character special"), "{null}");
        assert!(null.contains("Device major/minor number: 01:03"), "{null}");
    }
    let odd = debugfs(&img, &format!("cat \"/{}\"", ODD_NAME.replace('"', "\"\"")));
    assert!(odd.contains("odd"), "{odd}");
    let caps = debugfs(&img, "ea_list /usr/bin/ping");
    assert!(caps.contains("security.capability"), "{caps}");
    let root = debugfs(&img, "stat /");
    assert!(root.contains("Mode:  0755"), "{root}");
    assert_eq!(
        fs::read_dir(&s.out).unwrap().count(),
        1,
        "the copy is removed"
    );
}

#[test]
#[cfg_attr(
    any(missing = "root", missing = "e2fsprogs", missing = "qemu-img"),
    ignore = "needs root, e2fsprogs and `qemu-img`: apt-get install e2fsprogs qemu-utils"
)]
fn raw_and_qcow2_exports_are_the_same_bytes_twice() {
    needs::check(&[Need::Root, Need::E2fsprogs, Need::QemuImg]);
    let s = stack();
    let a = s.export(Format::Raw, "a.img");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let b = s.export(Format::Raw, "b.img");
    assert_eq!(sha256_file(&a), sha256_file(&b));

    let qa = s.export(Format::Qcow2, "a.qcow2");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let qb = s.export(Format::Qcow2, "b.qcow2");
    assert_eq!(sha256_file(&qa), sha256_file(&qb));

    let o = Command::new("qemu-img")
        .args(["info", "--output=json"])
        .arg(&qa)
        .output()
        .unwrap();
    let info: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(info["format"], "qcow2");
    let o = Command::new("qemu-img")
        .args(["compare", "-f", "raw", "-F", "qcow2"])
        .arg(&a)
        .arg(&qa)
        .output()
        .unwrap();
    assert!(o.status.success(), "the qcow2 holds the raw image");
}
