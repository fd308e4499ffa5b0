//! The parsed model, cached: a no-op plan of 10,000 images should not read and parse 10,000
//! TOML files that did not change. `decl::load_cached` reuses the model a previous load saved
//! when every path that load looked at (each file read, each folder listed and every entry in
//! it, each link and each absence; see `source::recorded`) has exactly the stamp it had then,
//! as the stat cache reuses a file's digest: device, inode, size, mtime, ctime and mode, so an
//! edit that keeps its mtime (`touch -r`) still shows in its ctime. The stamps are taken after
//! the load, and a model is saved only when none of them is within [`RACY_WINDOW`] of the
//! load's start (git's racy-clean rule): an edit made during the load always has a newer
//! ctime.
//!
//! The bytes (stored by `cache` as `model-cache`, behind a blake3 of them): [`MAGIC`], the
//! identity of the layer that wrote them (version, what the caller adds, and the stamp of the
//! running binary, so a rebuilt layer never trusts another's model), the project root, the
//! paths with their stamps, and the project ([`encode_project`]: its images in chunks of their
//! own, in a binary encoding, decoded in parallel). Anything that does not match, down to one
//! byte, means a full load: the cache only ever saves work.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use rayon::prelude::*;

use crate::model::Project;
use crate::scan::{stamp_paths, PathStamp, Stamp, RACY_WINDOW};

/// The start of every model cache, with the format's version.
pub const MAGIC: &[u8; 13] = b"layer-model\0\x03";

/// A project loaded through the model cache.
pub struct Loaded {
    pub project: Project,
    /// The bytes of a new model cache, when the old one was not used and this load's can be
    /// trusted next time (nothing racy); `None` when there is nothing to save.
    pub save: Option<Vec<u8>>,
}

/// What a model cache must have been written by: this layer's version, `salt`, and the stamp
/// of the running binary (a rebuild of the same version is another layer). `None` when the
/// binary cannot be looked at: then nothing is cached.
pub(super) fn identity(salt: &str) -> Option<Vec<u8>> {
    let exe = std::fs::metadata("/proc/self/exe").ok()?;
    let mut id = format!("{}\0{salt}\0", env!("CARGO_PKG_VERSION")).into_bytes();
    PathStamp::Here(Stamp::of(&exe)).encode(&mut id);
    Some(id)
}

fn put(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
    out.extend_from_slice(bytes);
}

/// Takes the length-prefixed bytes at the start of `b`.
fn take(b: &[u8]) -> Option<(&[u8], &[u8])> {
    let len = u64::from_le_bytes(b.get(..8)?.try_into().ok()?);
    let len = usize::try_from(len).ok()?;
    let end = 8usize.checked_add(len)?;
    Some((b.get(8..end)?, &b[end..]))
}

/// Images per chunk of an encoded project.
const CHUNK: usize = 512;

/// `project` in parts that decode in parallel: the number of chunks, the project without its
/// images (JSON: `layer.lock`'s types skip absent fields, which only a self-describing format
/// can read back), then its images, [`CHUNK`] to a chunk, in postcard (a binary serde format).
/// At 10,000 images, one JSON document took 40 ms to decode on one core while the other had
/// nothing left to do; JSON chunks took 30 ms on both.
fn encode_project(project: &Project) -> Option<Vec<u8>> {
    // Every field but the images, cloned (not the images only to drop them).
    let Project {
        root,
        strategy,
        backend,
        origins,
        backends,
        roles,
        images: _,
        lock,
        remote,
    } = project;
    let shell = Project {
        root: root.clone(),
        strategy: *strategy,
        backend: backend.clone(),
        origins: origins.clone(),
        backends: backends.clone(),
        roles: roles.clone(),
        images: Vec::new(),
        lock: lock.clone(),
        remote: remote.clone(),
    };
    let chunks: Vec<&[crate::model::Image]> = project.images.chunks(CHUNK).collect();
    let mut out = (chunks.len() as u64).to_le_bytes().to_vec();
    put(&mut out, &serde_json::to_vec(&shell).ok()?);
    for chunk in chunks {
        put(&mut out, &postcard::to_allocvec(chunk).ok()?);
    }
    Some(out)
}

/// The project [`encode_project`] encoded, its parts decoded in parallel.
fn decode_project(b: &[u8]) -> Option<Project> {
    let count = u64::from_le_bytes(b.get(..8)?.try_into().ok()?);
    let mut b = &b[8..];
    // Every part takes at least 8 bytes: no count makes a huge allocation.
    let count = usize::try_from(count).ok().filter(|&n| n <= b.len() / 8)?;
    let (shell, rest) = take(b)?;
    b = rest;
    let mut chunks = Vec::with_capacity(count);
    for _ in 0..count {
        let (chunk, rest) = take(b)?;
        chunks.push(chunk);
        b = rest;
    }
    if !b.is_empty() {
        return None;
    }
    let (shell, images) = rayon::join(
        || serde_json::from_slice::<Project>(shell).ok(),
        || {
            chunks
                .par_iter()
                .map(
                    |c| match postcard::take_from_bytes::<Vec<crate::model::Image>>(c) {
                        Ok((images, [])) => Some(images),
                        _ => None,
                    },
                )
                .collect::<Option<Vec<_>>>()
        },
    );
    let mut project = shell?;
    project.images = images?.into_iter().flatten().collect();
    Some(project)
}

/// The model cache of `project`, loaded from `paths` under `root` by a load that started at
/// `started`; `None` when a path is racy or cannot be looked at.
pub(super) fn seal(
    project: &Project,
    root: &Path,
    paths: &[String],
    identity: &[u8],
    started: SystemTime,
) -> Option<Vec<u8>> {
    let stamps = stamp_paths(root, paths).ok()?;
    let since_epoch = started.duration_since(UNIX_EPOCH).ok()?;
    let racy_after = since_epoch.saturating_sub(RACY_WINDOW).as_nanos() as i64;
    if stamps.iter().any(|s| s.racy(racy_after)) {
        return None;
    }
    let json = encode_project(project)?;
    let mut out = MAGIC.to_vec();
    put(&mut out, identity);
    put(&mut out, root.as_os_str().as_encoded_bytes());
    out.extend_from_slice(&(paths.len() as u64).to_le_bytes());
    for (p, s) in paths.iter().zip(&stamps) {
        put(&mut out, p.as_bytes());
        s.encode(&mut out);
    }
    put(&mut out, &json);
    Some(out)
}

/// The project a model cache holds, if it was written by `identity` for `root` and every path
/// it names still has the stamp it recorded.
pub(super) fn reuse(bytes: &[u8], root: &Path, identity: &[u8]) -> Option<Project> {
    let b = bytes.strip_prefix(&MAGIC[..])?;
    let (id, b) = take(b)?;
    let (at, b) = take(b)?;
    if id != identity || at != root.as_os_str().as_encoded_bytes() {
        return None;
    }
    let count = u64::from_le_bytes(b.get(..8)?.try_into().ok()?);
    let mut b = &b[8..];
    // Every path takes at least 9 bytes: no count makes a huge allocation.
    let count = usize::try_from(count).ok().filter(|&n| n <= b.len() / 9)?;
    let mut paths = Vec::with_capacity(count);
    let mut stamps = Vec::with_capacity(count);
    for _ in 0..count {
        let (p, rest) = take(b)?;
        let (s, rest) = PathStamp::decode(rest)?;
        paths.push(String::from_utf8(p.to_vec()).ok()?);
        stamps.push(s);
        b = rest;
    }
    let (json, rest) = take(b)?;
    if !rest.is_empty() {
        return None;
    }
    // The stamps are checked while the model is decoded; either failing means a full load.
    let (now, project) = rayon::join(|| stamp_paths(root, &paths), || decode_project(json));
    if now.ok()? != stamps {
        return None;
    }
    project.filter(|p| p.root == root)
}

/// The start of a model cache of a load from content named by a digest ([`seal_named`]).
const MAGIC_NAMED: &[u8; 13] = b"layer-model\0\x82";

/// The model cache of `project`, loaded from files named by `names`: a digest of every name,
/// kind and content id a load could ask about (`--since` loads a git revision, whose files are
/// named by their blob ids). Content ids never go stale, so there is no stamp to check.
pub(super) fn seal_named(project: &Project, names: &[u8; 32], identity: &[u8]) -> Option<Vec<u8>> {
    let json = encode_project(project)?;
    let mut out = MAGIC_NAMED.to_vec();
    put(&mut out, identity);
    put(&mut out, project.root.as_os_str().as_encoded_bytes());
    out.extend_from_slice(names);
    put(&mut out, &json);
    Some(out)
}

/// The project a [`seal_named`] model cache holds, if it was written by `identity` for `root`
/// and files named by `names`.
pub(super) fn reuse_named(
    bytes: &[u8],
    root: &Path,
    names: &[u8; 32],
    identity: &[u8],
) -> Option<Project> {
    let b = bytes.strip_prefix(&MAGIC_NAMED[..])?;
    let (id, b) = take(b)?;
    let (at, b) = take(b)?;
    if id != identity || at != root.as_os_str().as_encoded_bytes() {
        return None;
    }
    let b = b.strip_prefix(&names[..])?;
    let (json, rest) = take(b)?;
    if !rest.is_empty() {
        return None;
    }
    decode_project(json).filter(|p| p.root == root)
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::time::Duration;

    use super::*;
    use crate::source::files::WorkTree;
    use crate::source::recorded::Recorded;

    /// A load that starts an hour from now: nothing written by the test is racy.
    fn load(root: &Path, cached: Option<&[u8]>) -> (Project, Option<Vec<u8>>) {
        let id = identity("test").unwrap();
        if let Some(p) = cached.and_then(|b| reuse(b, root, &id)) {
            return (p, None);
        }
        let files = WorkTree::new(root);
        let recorded = Recorded::new(&files);
        let project = super::super::load_from(root, &recorded).unwrap();
        let later = SystemTime::now() + Duration::from_secs(3600);
        let save = seal(&project, root, &recorded.paths(), &id, later);
        (project, save)
    }

    /// Replaces `rel`'s content, keeping its mtime (`touch -r`).
    fn edit_keeping_mtime(root: &Path, rel: &str, text: &str) {
        let path = root.join(rel);
        let mtime = fs::metadata(&path).unwrap().modified().unwrap();
        fs::write(&path, text).unwrap();
        fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(mtime)
            .unwrap();
    }

    #[test]
    fn a_model_is_reused_until_a_declaration_changes_even_with_its_mtime_kept() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().canonicalize().unwrap();
        fs::create_dir_all(root.join("images")).unwrap();
        fs::create_dir_all(root.join("roles/base")).unwrap();
        fs::write(
            root.join("layer.toml"),
            "[origins.bb]\nid = \"ami-1\"\n\n[backends.c]\nkind = \"command\"\ncommand = [\"true\"]\n\n[project]\nbackend = \"c\"\n",
        )
        .unwrap();
        fs::write(root.join("roles/base/role.toml"), "packages = [\"a\"]\n").unwrap();
        fs::write(
            root.join("images/app.toml"),
            "origin = \"bb\"\nroles = [\"base\"]\n",
        )
        .unwrap();

        let (first, save) = load(&root, None);
        let saved = save.expect("nothing racy: the model is saved");
        let (again, save) = load(&root, Some(&saved));
        assert_eq!(again, first);
        assert!(save.is_none(), "reused, nothing to save");

        // An image edited with its mtime kept: its ctime shows it.
        edit_keeping_mtime(
            &root,
            "images/app.toml",
            "origin = \"bb\"\nroles = [\"bas\"]\n",
        );
        let id = identity("test").unwrap();
        assert!(reuse(&saved, &root, &id).is_none());
        let files = WorkTree::new(&root);
        assert!(super::super::load_from(&root, &files).is_err());
        edit_keeping_mtime(
            &root,
            "images/app.toml",
            "origin = \"bb\"\nroles = [\"base\"]\n\n",
        );
        let (edited, saved) = load(&root, Some(&saved));
        assert_eq!(edited, first);
        let saved = saved.unwrap();

        // A role's `role.toml` changed; one added; an image added; the lock appears.
        fs::write(root.join("roles/base/role.toml"), "packages = [\"b\"]\n").unwrap();
        let (p, next) = load(&root, Some(&saved));
        assert_eq!(p.roles["base"].packages, ["b"]);
        let saved = next.unwrap();
        fs::create_dir_all(root.join("roles/more")).unwrap();
        let (p, next) = load(&root, Some(&saved));
        assert!(p.roles.contains_key("more"));
        let saved = next.unwrap();
        fs::write(root.join("roles/more/role.toml"), "packages = [\"m\"]\n").unwrap();
        let (p, next) = load(&root, Some(&saved));
        assert_eq!(p.roles["more"].packages, ["m"]);
        let saved = next.unwrap();
        fs::write(root.join("images/web.toml"), "from = \"app\"\n").unwrap();
        let (p, next) = load(&root, Some(&saved));
        assert_eq!(p.images.len(), 2);
        let saved = next.unwrap();
        fs::write(
            root.join("layer.lock"),
            "version = 2\n[origins.bb]\nid = \"x\"\n",
        )
        .unwrap();
        let (p, next) = load(&root, Some(&saved));
        assert!(p.lock.origins.contains_key("bb"));
        let saved = next.unwrap();
        let (p, next) = load(&root, Some(&saved));
        assert!(next.is_none());
        assert_eq!(p.images.len(), 2);

        // Another identity, another root, or damaged bytes: not used.
        assert!(reuse(&saved, &root, b"another layer").is_none());
        assert!(reuse(&saved, Path::new("/elsewhere"), &id).is_none());
        assert!(reuse(&saved[..saved.len() - 1], &root, &id).is_none());
        assert!(reuse(b"garbage", &root, &id).is_none());
        let mut bad = saved.clone();
        let n = bad.len();
        bad[n - 2] ^= 0xff;
        assert!(reuse(&bad, &root, &id).is_none());
    }

    #[test]
    fn a_named_model_is_reused_only_for_its_names_identity_and_root() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().canonicalize().unwrap();
        fs::write(root.join("layer.toml"), "").unwrap();
        let project = super::super::load_from(&root, &WorkTree::new(&root)).unwrap();
        let id = identity("test").unwrap();
        let saved = seal_named(&project, &[1; 32], &id).unwrap();
        assert_eq!(reuse_named(&saved, &root, &[1; 32], &id), Some(project));
        assert!(reuse_named(&saved, &root, &[2; 32], &id).is_none());
        assert!(reuse_named(&saved, &root, &[1; 32], b"another layer").is_none());
        assert!(reuse_named(&saved, Path::new("/elsewhere"), &[1; 32], &id).is_none());
        assert!(reuse_named(&saved[..saved.len() - 1], &root, &[1; 32], &id).is_none());
        // A model cache of the work tree is not one of named files.
        assert!(reuse(&saved, &root, &id).is_none());
    }

    #[test]
    fn a_racy_load_is_not_saved() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().canonicalize().unwrap();
        fs::write(root.join("layer.toml"), "").unwrap();
        let files = WorkTree::new(&root);
        let recorded = Recorded::new(&files);
        let project = super::super::load_from(&root, &recorded).unwrap();
        let id = identity("test").unwrap();
        let paths = recorded.paths();
        assert!(paths.contains(&"layer.toml".to_string()), "{paths:?}");
        assert!(seal(&project, &root, &paths, &id, SystemTime::now()).is_none());
    }

    #[test]
    fn an_image_with_every_field_set_round_trips() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().canonicalize().unwrap();
        fs::create_dir_all(root.join("images")).unwrap();
        fs::create_dir_all(root.join("roles/web")).unwrap();
        fs::write(root.join("layer.toml"), "[origins.o]\nid = \"ami-1\"\n").unwrap();
        fs::write(root.join("roles/web/role.toml"), "").unwrap();
        fs::write(
            root.join("images/base.toml"),
            "origin = \"o\"\nversion = \"2.1\"\n",
        )
        .unwrap();
        fs::write(
            root.join("images/app.toml"),
            "description = \"the app\"\nfrom = \"base@2\"\nroles = [\"web\"]\n\
             packages = [\"curl\", \"jq\"]\nsources = [\"deb http://127.0.0.1/ x main\"]\n\
             max_age = \"30d\"\n\
             [vars]\nPORT = \"8080\"\n[secrets]\nTOKEN = { env = \"T\" }\n\
             [tags]\nteam = \"web\"\n[[test]]\nname = \"up\"\nrun = \"true\"\n",
        )
        .unwrap();
        let project = super::super::load_from(&root, &WorkTree::new(&root)).unwrap();
        let app = project.image("app").unwrap();
        assert!(app.max_age.is_some() && app.pin.is_some() && app.description.is_some());
        assert!(!app.secrets.is_empty() && !app.tags.is_empty() && !app.tests.is_empty());
        let bytes = encode_project(&project).unwrap();
        assert_eq!(decode_project(&bytes), Some(project));
    }

    #[test]
    fn a_project_of_many_images_decodes_from_its_chunks_in_order() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().canonicalize().unwrap();
        fs::create_dir_all(root.join("images")).unwrap();
        fs::write(root.join("layer.toml"), "[origins.o]\nid = \"ami-1\"\n").unwrap();
        // Three chunks, the last one short; each image built on the one before it, so the
        // topological order is not the order of names.
        let n = 2 * CHUNK + 7;
        for i in 0..n {
            let base = match i {
                0 => "origin = \"o\"".to_string(),
                _ => format!("from = \"i{:05}\"", n - i),
            };
            fs::write(root.join(format!("images/i{:05}.toml", n - 1 - i)), base).unwrap();
        }
        let project = super::super::load_from(&root, &WorkTree::new(&root)).unwrap();
        assert_eq!(project.images.len(), n);
        let bytes = encode_project(&project).unwrap();
        assert_eq!(u64::from_le_bytes(bytes[..8].try_into().unwrap()), 3);
        assert_eq!(decode_project(&bytes), Some(project.clone()));
        // No images at all: no chunk.
        let empty = Project {
            images: Vec::new(),
            ..project.clone()
        };
        let bytes_empty = encode_project(&empty).unwrap();
        assert_eq!(decode_project(&bytes_empty), Some(empty));
        // Cut short, with bytes after the last chunk, with a chunk count that lies: nothing.
        assert!(decode_project(&bytes[..bytes.len() - 1]).is_none());
        let mut longer = bytes.clone();
        longer.push(b' ');
        assert!(decode_project(&longer).is_none());
        let mut lying = bytes.clone();
        lying[..8].copy_from_slice(&2u64.to_le_bytes());
        assert!(decode_project(&lying).is_none());
        lying[..8].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(decode_project(&lying).is_none());
        // A chunk with a byte after its images: not a chunk this layer wrote.
        let one = Project {
            images: project.images[..3].to_vec(),
            ..project.clone()
        };
        let bytes = encode_project(&one).unwrap();
        let (shell, rest) = take(&bytes[8..]).unwrap();
        let (chunk, _) = take(rest).unwrap();
        let mut padded = bytes[..8].to_vec();
        put(&mut padded, shell);
        put(&mut padded, &[chunk, &[0][..]].concat());
        assert_eq!(decode_project(&bytes), Some(one));
        assert!(decode_project(&padded).is_none());
    }
}
