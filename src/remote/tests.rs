//! Unit tests of the remote against `object_store`'s in-memory and local-folder stores.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;

use object_store::memory::InMemory;
use object_store::path::Path as StorePath;
use object_store::{ObjectStoreExt, PutPayload};

use super::*;
use crate::record::tests::record_of;
use crate::record::Artifact;

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// A small layer folder: files with modes, a symlink, a hard link, an empty folder; as root
/// also owners, a whiteout, an opaque folder, a device node and a file capability.
fn make_layer(root: &Path) {
    fs::create_dir_all(root.join("etc/app")).unwrap();
    fs::create_dir(root.join("empty")).unwrap();
    fs::write(root.join("etc/app/conf"), "key = 1\n").unwrap();
    fs::set_permissions(root.join("etc/app/conf"), fs::Permissions::from_mode(0o640)).unwrap();
    fs::write(root.join("run.sh"), "#!/bin/sh\necho hi\n").unwrap();
    fs::set_permissions(root.join("run.sh"), fs::Permissions::from_mode(0o4755)).unwrap();
    fs::hard_link(root.join("run.sh"), root.join("run2.sh")).unwrap();
    std::os::unix::fs::symlink("app/conf", root.join("etc/conf")).unwrap();
    let long = format!("etc/{}", "n".repeat(150));
    fs::write(root.join(long), vec![7u8; 100_000]).unwrap();
    let past = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
    fs::File::options()
        .write(true)
        .open(root.join("etc/app/conf"))
        .unwrap()
        .set_modified(past)
        .unwrap();
    if is_root() {
        std::os::unix::fs::lchown(root.join("etc/app/conf"), Some(1000), Some(1001)).unwrap();
        crate::layerfs::make_whiteout(&root.join("etc/gone")).unwrap();
        fs::create_dir(root.join("var")).unwrap();
        crate::layerfs::set_opaque(&root.join("var")).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            root.join("null"),
            rustix::fs::FileType::CharacterDevice,
            rustix::fs::Mode::from_raw_mode(0o666),
            rustix::fs::makedev(1, 3),
        )
        .unwrap();
        // A file capability (cap_net_raw+ep), as `setcap` writes it.
        let cap: [u8; 20] = [0, 0, 0, 2, 0, 32, 0, 0, 0, 32, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        crate::layerfs::set_xattr(&root.join("run.sh"), "security.capability", &cap).unwrap();
    }
}

fn record_for(cache: &Cache, name: &str, salt: &str, artifact_dir: bool) -> Record {
    let r = record_of(name, salt);
    let rel = format!("artifacts/{name}/{name}-{}", &r.key[..16]);
    let place = cache.dir().join(&rel);
    fs::create_dir_all(place.parent().unwrap()).unwrap();
    if artifact_dir {
        fs::create_dir(&place).unwrap();
        make_layer(&place);
    } else {
        fs::write(&place, b"disk image bytes").unwrap();
        fs::set_permissions(&place, fs::Permissions::from_mode(0o600)).unwrap();
    }
    let (digest, size) = crate::layerfs::digest(&place).unwrap();
    Record {
        version: "1.0.0-20261130_0600".into(),
        built_at: "2026-11-30T06:00:00Z".into(),
        duration_ms: 5,
        artifact: Artifact {
            id: format!("{name}-1.0.0"),
            path: Some(rel),
            blake3: Some(digest),
            size: Some(size),
            remote: None,
        },
        ..r
    }
}

struct World {
    _dir: tempfile::TempDir,
    a: Cache,
    b: Cache,
    mem: Arc<InMemory>,
    signer: Signer,
    remote: Remote,
}

fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let a = Cache::new(dir.path().join("a"));
    let b = Cache::new(dir.path().join("b"));
    let signer = Signer::from_env_value(&secret(dir.path())).unwrap();
    let mem = Arc::new(InMemory::new());
    let remote = Remote::with_store("memory://", mem.clone(), &[signer.public()]).unwrap();
    World {
        _dir: dir,
        a,
        b,
        mem,
        signer,
        remote,
    }
}

/// A new secret key's text.
fn secret(dir: &Path) -> String {
    let p = dir.join(format!(
        "key-{}",
        rand_core::RngCore::next_u32(&mut rand_core::OsRng)
    ));
    keygen(&p).unwrap();
    fs::read_to_string(p).unwrap()
}

fn get(mem: &InMemory, rel: &str) -> Vec<u8> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        mem.get(&StorePath::from(rel))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
    })
    .to_vec()
}

fn put(mem: &InMemory, rel: &str, bytes: Vec<u8>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(mem.put(&StorePath::from(rel), PutPayload::from(bytes)))
        .unwrap();
}

fn delete(mem: &InMemory, rel: &str) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(mem.delete(&StorePath::from(rel))).unwrap();
}

fn blob_of(mem: &InMemory, r: &Record) -> String {
    let env: serde_json::Value =
        serde_json::from_slice(&get(mem, &record_path(&r.name, &r.key))).unwrap();
    env["signed"]["blobs"][0]["path"]
        .as_str()
        .unwrap()
        .to_string()
}

fn refused(found: Found) -> String {
    match found {
        Found::Refused(why) => why,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// Every entry's path, type, mode, owner, mtime (not folders': adding entries moves them on
/// the source side as well) and link target.
fn listing(root: &Path) -> Vec<String> {
    crate::layerfs::walk(root)
        .unwrap()
        .iter()
        .map(|n| {
            let m = &n.meta;
            let mtime = if m.is_dir() { 0 } else { m.mtime() };
            format!(
                "{} {} {:o} {}:{} {mtime} {}",
                String::from_utf8_lossy(&n.rel),
                crate::layerfs::kind_letter(m) as char,
                m.mode() & 0o7777,
                m.uid(),
                m.gid(),
                m.nlink()
            )
        })
        .collect()
}

#[test]
fn a_layer_round_trips_through_push_lookup_and_pull() {
    let w = world();
    let r = record_for(&w.a, "app", "one", true);
    assert_eq!(w.remote.lookup(&r.name, &r.key).unwrap(), Found::Miss);
    assert!(
        w.remote.push(&r, &w.a, &w.signer).unwrap(),
        "first push writes"
    );
    assert!(
        !w.remote.push(&r, &w.a, &w.signer).unwrap(),
        "second push finds it there"
    );
    assert_eq!(
        w.remote.lookup(&r.name, &r.key).unwrap(),
        Found::Hit(Box::new(r.clone()))
    );

    w.remote.pull(&r, &w.b).unwrap();
    let rel = r.artifact.path.as_ref().unwrap();
    let (from, to) = (w.a.dir().join(rel), w.b.dir().join(rel));
    assert_eq!(
        crate::layerfs::digest(&to).unwrap(),
        crate::layerfs::digest(&from).unwrap()
    );
    assert_eq!(listing(&to), listing(&from));
    assert!(matches!(w.b.lookup(&r.name, &r.key), crate::record::Lookup::Found(got) if *got == r));
    if is_root() {
        assert!(crate::layerfs::is_opaque(&to.join("var")));
        assert_eq!(
            crate::layerfs::get_xattr(&to.join("run.sh"), "security.capability").unwrap(),
            crate::layerfs::get_xattr(&from.join("run.sh"), "security.capability").unwrap()
        );
    }
    // Nothing but the artifact is left in its folder.
    let names: Vec<_> = fs::read_dir(to.parent().unwrap())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");

    let listed = w.remote.list().unwrap();
    assert_eq!(
        listed,
        [RemoteEntry {
            name: r.name.clone(),
            key: r.key.clone(),
            version: r.version.clone(),
            signer: Some(w.signer.public()),
            verdict: TRUSTED.into(),
        }]
    );
    assert_eq!(w.remote.verify().unwrap(), listed);
}

#[test]
fn a_file_artifact_round_trips_with_its_mode() {
    let w = world();
    let r = record_for(&w.a, "disk", "f", false);
    assert!(w.remote.push(&r, &w.a, &w.signer).unwrap());
    assert!(blob_of(&w.mem, &r).ends_with(".zst") && !blob_of(&w.mem, &r).ends_with(".tar.zst"));
    w.remote.pull(&r, &w.b).unwrap();
    let to = w.b.dir().join(r.artifact.path.as_ref().unwrap());
    assert_eq!(fs::read(&to).unwrap(), b"disk image bytes");
    assert_eq!(
        fs::metadata(&to).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

#[test]
fn a_cloud_image_record_has_no_blob() {
    let w = world();
    let mut r = record_for(&w.a, "ami", "c", false);
    r.artifact.path = None;
    r.artifact.blake3 = None;
    r.artifact.remote = Some("mitchellh.amazonebs".into());
    assert!(w.remote.push(&r, &w.a, &w.signer).unwrap());
    let env: serde_json::Value =
        serde_json::from_slice(&get(&w.mem, &record_path(&r.name, &r.key))).unwrap();
    assert_eq!(env["signed"]["blobs"], serde_json::json!([]));
    assert_eq!(
        w.remote.lookup(&r.name, &r.key).unwrap(),
        Found::Hit(Box::new(r.clone()))
    );
    w.remote.pull(&r, &w.b).unwrap();
    assert!(matches!(
        w.b.lookup(&r.name, &r.key),
        crate::record::Lookup::Found(_)
    ));
}

#[test]
fn a_local_folder_remote_round_trips_and_keeps_the_first_writer() {
    let w = world();
    let dir = tempfile::tempdir().unwrap();
    // A folder not made yet, with a space in its name.
    let url = format!("file://{}/my store", dir.path().display());
    let remote = Remote::open(&url, &[w.signer.public()]).unwrap();
    assert_eq!(remote.url(), url);
    let r = record_for(&w.a, "app", "local", true);
    assert!(remote.push(&r, &w.a, &w.signer).unwrap());
    let other = Signer::from_env_value(&secret(dir.path())).unwrap();
    assert!(!remote.push(&r, &w.a, &other).unwrap());
    let stored = fs::read(
        dir.path()
            .join("my store")
            .join(record_path(&r.name, &r.key)),
    )
    .unwrap();
    assert!(
        String::from_utf8_lossy(&stored).contains(&w.signer.public()),
        "the first writer's record stays"
    );
    let wanted = vec![
        (r.name.clone(), r.key.clone()),
        ("app".to_string(), "f".repeat(64)),
    ];
    assert_eq!(
        remote.lookup_all(&wanted).unwrap(),
        [Found::Hit(Box::new(r.clone())), Found::Miss]
    );
    remote.pull(&r, &w.b).unwrap();
    let rel = r.artifact.path.as_ref().unwrap();
    assert_eq!(
        crate::layerfs::digest(&w.b.dir().join(rel)).unwrap(),
        crate::layerfs::digest(&w.a.dir().join(rel)).unwrap()
    );
}

#[test]
fn unsigned_and_untrusted_records_are_refused_naming_key_and_signer() {
    let w = world();
    let r = record_for(&w.a, "app", "trust", true);
    w.remote.push(&r, &w.a, &w.signer).unwrap();
    let short = &r.key[..12];

    // Another project that trusts another key only.
    let dir = tempfile::tempdir().unwrap();
    let other = Signer::from_env_value(&secret(dir.path())).unwrap();
    let strict = Remote::with_store("memory://", w.mem.clone(), &[other.public()]).unwrap();
    assert_eq!(
        refused(strict.lookup(&r.name, &r.key).unwrap()),
        format!(
            "remote record of `app` {short} refused: it is signed by `{}`, which is not in `trusted_keys`",
            w.signer.public()
        )
    );
    let listed = strict.list().unwrap();
    assert_eq!(
        listed[0].signer.as_deref(),
        Some(w.signer.public().as_str())
    );
    assert!(listed[0].verdict.contains("not in `trusted_keys`"));

    // The signature taken away.
    let path = record_path(&r.name, &r.key);
    let mut env: serde_json::Value = serde_json::from_slice(&get(&w.mem, &path)).unwrap();
    env.as_object_mut().unwrap().remove("signature");
    put(&w.mem, &path, serde_json::to_vec(&env).unwrap());
    assert_eq!(
        refused(w.remote.lookup(&r.name, &r.key).unwrap()),
        format!("remote record of `app` {short} refused: the record is unsigned")
    );
    let e = w.remote.pull(&r, &w.b).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::RemoteTransfer);
    assert_eq!(
        e.to_string(),
        format!("remote record of `app` {short} from `memory://`: remote record of `app` {short} refused: the record is unsigned")
    );

    put(&w.mem, &path, b"not json".to_vec());
    assert!(
        refused(w.remote.lookup(&r.name, &r.key).unwrap()).starts_with(&format!(
            "remote record of `app` {short} refused: the record is not a layer envelope: "
        ))
    );
}

#[test]
fn tampered_records_and_records_of_other_keys_are_refused() {
    let w = world();
    let r = record_for(&w.a, "app", "tamper", true);
    w.remote.push(&r, &w.a, &w.signer).unwrap();
    let short = &r.key[..12];
    let path = record_path(&r.name, &r.key);
    let good = get(&w.mem, &path);

    // One byte of the signed record changed.
    let text = String::from_utf8(good.clone()).unwrap();
    put(
        &w.mem,
        &path,
        text.replacen("1.0.0-20261130_0600", "9.0.0-20261130_0600", 1)
            .into_bytes(),
    );
    assert_eq!(
        refused(w.remote.lookup(&r.name, &r.key).unwrap()),
        format!(
            "remote record of `app` {short} refused: its signature by `{}` does not match its bytes (tampered with)",
            w.signer.public()
        )
    );

    // Signed by a trusted key, but its inputs do not hash to its key.
    let mut bad = r.clone();
    std::sync::Arc::make_mut(&mut bad.inputs).image = "other".into();
    put(&w.mem, &path, envelope::seal(&bad, &[], &w.signer));
    assert_eq!(
        refused(w.remote.lookup(&r.name, &r.key).unwrap()),
        format!("remote record of `app` {short} refused: record is corrupt: its inputs do not hash to its key")
    );

    // A good record stored under another key.
    let other_key = "a".repeat(64);
    put(&w.mem, &record_path("app", &other_key), good);
    assert_eq!(
        refused(w.remote.lookup("app", &other_key).unwrap()),
        format!("remote record of `app` aaaaaaaaaaaa refused: it is the record of `app` {short}, stored as `app` aaaaaaaaaaaa")
    );
}

#[test]
fn missing_truncated_and_flipped_blobs_are_refused_or_fail_the_pull() {
    let w = world();
    let r = record_for(&w.a, "app", "blobs", true);
    w.remote.push(&r, &w.a, &w.signer).unwrap();
    let short = &r.key[..12];
    let blob = blob_of(&w.mem, &r);
    let bytes = get(&w.mem, &blob);

    // A byte flipped: same size, so a lookup (HEAD only) cannot tell; the pull can.
    let mut flipped = bytes.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x40;
    put(&w.mem, &blob, flipped);
    assert!(matches!(
        w.remote.lookup(&r.name, &r.key).unwrap(),
        Found::Hit(_)
    ));
    let e = w.remote.pull(&r, &w.b).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::RemoteTransfer);
    assert_eq!(
        e.to_string(),
        format!(
            "remote record of `app` {short} from `memory://`: its blob `{blob}` does not match the digest and size the record names ({} bytes read, {} named)",
            bytes.len(),
            bytes.len()
        )
    );
    let verified = w.remote.verify().unwrap();
    assert_eq!(
        verified[0].verdict,
        format!("its blob `{blob}` does not have the digest and size it names")
    );
    // Nothing half-written: no artifact, no temporary, no record.
    let place = w.b.dir().join(r.artifact.path.as_ref().unwrap());
    let left: Vec<_> = fs::read_dir(place.parent().unwrap())
        .unwrap()
        .flatten()
        .collect();
    assert!(left.is_empty(), "{left:?}");
    assert_eq!(w.b.lookup(&r.name, &r.key), crate::record::Lookup::Missing);

    // Truncated: HEAD sees the size.
    put(&w.mem, &blob, bytes[..bytes.len() - 100].to_vec());
    assert_eq!(
        refused(w.remote.lookup(&r.name, &r.key).unwrap()),
        format!(
            "remote record of `app` {short} refused: its blob `{blob}` has {} bytes, not the {} it names (truncated or replaced)",
            bytes.len() - 100,
            bytes.len()
        )
    );

    // Gone (evicted).
    delete(&w.mem, &blob);
    assert_eq!(
        refused(w.remote.lookup(&r.name, &r.key).unwrap()),
        format!("remote record of `app` {short} refused: its blob `{blob}` is missing (evicted?)")
    );
    assert!(w.remote.pull(&r, &w.b).is_err());
    let listed = w.remote.list().unwrap();
    assert_eq!(
        (listed[0].signer.as_deref(), listed[0].verdict.as_str()),
        (
            Some(w.signer.public().as_str()),
            format!("its blob `{blob}` is missing (evicted?)").as_str()
        )
    );
    assert_eq!(w.remote.verify().unwrap(), listed);

    // Put back, the pull goes through.
    put(&w.mem, &blob, bytes);
    w.remote.pull(&r, &w.b).unwrap();
}

#[test]
fn an_artifact_changed_since_its_build_is_not_pushed() {
    let w = world();
    let r = record_for(&w.a, "app", "changed", true);
    fs::write(
        w.a.dir()
            .join(r.artifact.path.as_ref().unwrap())
            .join("new"),
        "x",
    )
    .unwrap();
    let e = w.remote.push(&r, &w.a, &w.signer).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::RemoteTransfer);
    assert_eq!(
        e.to_string(),
        format!(
            "remote record of `app` {} from `memory://`: its artifact `{}` no longer has the record's digest",
            &r.key[..12],
            w.a.dir().join(r.artifact.path.as_ref().unwrap()).display()
        )
    );
    assert_eq!(
        w.remote.lookup(&r.name, &r.key).unwrap(),
        Found::Miss,
        "no record pushed"
    );
}

#[test]
fn bad_urls_and_keys_are_config_errors_and_a_refused_connection_is_unreachable() {
    let e = Remote::open("ftp://x/y", &[]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::RemoteConfig);
    assert_eq!(e.to_string(), "remote `ftp://x/y`: unknown scheme");
    assert!(e.hint().unwrap().contains("s3://BUCKET/PREFIX"));
    let e = Remote::open("file://relative/path", &[]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "remote `file://relative/path`: a `file://` URL names an absolute path: `file:///PATH`"
    );
    assert_eq!(
        Remote::open("s3://", &[]).unwrap_err().to_string(),
        "remote `s3://`: no bucket"
    );
    let e = Remote::open("file:///tmp", &["ed25519:nope".to_string()]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::RemoteConfig);
    assert_eq!(
        e.to_string(),
        "trusted key `ed25519:nope` is not an ed25519 public key"
    );

    // Port 1 on loopback: nothing listens there.
    let remote = Remote::open("http://127.0.0.1:1/cache", &[]).unwrap();
    let e = remote.lookup("app", &"a".repeat(64)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::RemoteUnreachable);
    assert!(
        e.to_string()
            .starts_with("remote `http://127.0.0.1:1/cache` cannot be reached: "),
        "{e}"
    );
    assert_eq!(e.hint().as_deref(), Some("`--no-remote` runs without it"));
}

#[test]
fn archives_that_lead_out_of_the_layer_are_refused() {
    assert_eq!(super::blob::relative(b"./"), Some(&b""[..]));
    assert_eq!(super::blob::relative(b"./etc/x/"), Some(&b"etc/x"[..]));
    for bad in [
        &b"/etc"[..],
        b"etc",
        b"./../x",
        b"./a/../b",
        b"./a//b",
        b"./.",
    ] {
        assert_eq!(
            super::blob::relative(bad),
            None,
            "{}",
            String::from_utf8_lossy(bad)
        );
    }
    // A link in the archive, then an entry through it.
    let dir = tempfile::tempdir().unwrap();
    let mut tar = Vec::new();
    {
        let mut b = ::tar::Builder::new(&mut tar);
        let mut h = ::tar::Header::new_ustar();
        h.set_entry_type(::tar::EntryType::Directory);
        set_name(&mut h, "./");
        h.set_mode(0o755);
        h.set_cksum();
        b.append(&h, &[][..]).unwrap();
        let mut h = ::tar::Header::new_ustar();
        h.set_entry_type(::tar::EntryType::Symlink);
        set_name(&mut h, "./out");
        h.set_link_name("/tmp").unwrap();
        h.set_cksum();
        b.append(&h, &[][..]).unwrap();
        let mut h = ::tar::Header::new_ustar();
        h.set_entry_type(::tar::EntryType::Regular);
        set_name(&mut h, "./out/evil");
        h.set_size(1);
        h.set_mode(0o644);
        h.set_cksum();
        b.append(&h, &b"x"[..]).unwrap();
        b.finish().unwrap();
    }
    let z = zstd::encode_all(&tar[..], 3).unwrap();
    let root = dir.path().join("root");
    let e = super::blob::unpack_tree(&z[..], &root, u64::MAX).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "the blob unpacked into `{}` is corrupt: `out/evil` comes before its folder",
            root.display()
        )
    );
    assert!(!Path::new("/tmp/evil").exists());
}

fn set_name(h: &mut ::tar::Header, name: &str) {
    h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    h.set_size(0);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_mode(0o755);
}

#[test]
fn one_remote_serves_several_threads() {
    fn shared<T: Send + Sync>(_: &T) {}
    let w = world();
    let dir = tempfile::tempdir().unwrap();
    let remote = Remote::open(
        &format!("file://{}/store", dir.path().display()),
        &[w.signer.public()],
    )
    .unwrap();
    shared(&remote);
    let records: Vec<Record> = (0..4)
        .map(|i| record_for(&w.a, &format!("img{i}"), "threads", true))
        .collect();
    std::thread::scope(|s| {
        for r in &records {
            let (remote, w) = (&remote, &w);
            s.spawn(move || {
                assert!(remote.push(r, &w.a, &w.signer).unwrap());
                remote.pull(r, &w.b).unwrap();
            });
        }
    });
    let wanted: Vec<(String, String)> = records
        .iter()
        .map(|r| (r.name.clone(), r.key.clone()))
        .collect();
    let found = remote.lookup_all(&wanted).unwrap();
    assert!(
        found.iter().all(|f| matches!(f, Found::Hit(_))),
        "{found:?}"
    );
    assert_eq!(remote.list().unwrap().len(), 4);
}

#[test]
fn a_blob_that_unpacks_to_more_than_its_record_says_is_refused() {
    let w = world();
    let mut r = record_for(&w.a, "app", "bomb", true);
    r.artifact.size = Some(10);
    w.remote.push(&r, &w.a, &w.signer).unwrap();
    let e = w.remote.pull(&r, &w.b).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::RemoteTransfer);
    let msg = e.to_string();
    assert!(
        msg.contains("is corrupt: its files hold more than the 10 bytes its record names"),
        "{msg}"
    );
    assert_eq!(w.b.lookup(&r.name, &r.key), crate::record::Lookup::Missing);

    let mut f = record_for(&w.a, "disk", "bomb", false);
    f.artifact.size = Some(3);
    w.remote.push(&f, &w.a, &w.signer).unwrap();
    let msg = w.remote.pull(&f, &w.b).unwrap_err().to_string();
    assert!(
        msg.contains("is corrupt: it unpacks to more than the 3 bytes its record names"),
        "{msg}"
    );
}
