//! The `oci` export: an OCI image layout folder (`oci-layout`, `index.json`, `blobs/sha256/`)
//! with one uncompressed layer blob per folder of the stack, whiteouts as `.wh.NAME` entries
//! and opaque folders marked by `.wh..wh..opq`; the config, manifest and index as JSON with
//! sorted keys and the build time as every date.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::layerfs::{self, scan_layer};

use super::tar::{clamp, hard_link_of, item, Body, Item, TarWriter};
use super::{hex, ExportSpec};

/// Media types of the layout's parts: an uncompressed layer, the image config, the manifest
/// and the index.
const MEDIA_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
const MEDIA_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const MEDIA_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const MEDIA_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// A blob written into `blobs/sha256/`.
#[derive(Debug, Clone)]
struct Blob {
    digest: String,
    size: u64,
}

/// A writer that hashes and counts what passes through it.
struct Hashing<W> {
    inner: W,
    sha: Sha256,
    n: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let k = self.inner.write(buf)?;
        self.sha.update(&buf[..k]);
        self.n += k as u64;
        Ok(k)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The OCI architecture name of the host: rootfs images are built for the host's architecture.
pub fn oci_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "x86" => "386",
        "aarch64" => "arm64",
        "arm" => "arm",
        "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
        "powerpc64" => "ppc64",
        "mips64" if cfg!(target_endian = "little") => "mips64le",
        "loongarch64" => "loong64",
        other => other,
    }
}

/// `secs` as an RFC 3339 date (`2026-11-01T00:00:00Z`), never before 1970.
fn rfc3339(secs: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs.max(0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}

/// Writes the OCI layout of `spec` into `dir` (a new folder that becomes `out`): a layer blob
/// per folder of the stack, bottom first, then the config, the manifest and `index.json`.
pub(super) fn write_oci(spec: &ExportSpec, dir: &Path, out: &Path) -> Result<()> {
    let blobs = dir.join("blobs").join("sha256");
    fs::create_dir_all(&blobs).map_err(|e| Error::io(out, e))?;

    let mut layers = Vec::new();
    for (i, layer) in spec.layers.iter().enumerate() {
        let tmp = blobs.join(format!(".layer-{i}.tmp"));
        let f = File::create(&tmp).map_err(|e| Error::io(out, e))?;
        let mut h = Hashing {
            inner: BufWriter::with_capacity(1 << 20, f),
            sha: Sha256::new(),
            n: 0,
        };
        write_layer_tar(spec, layer, &mut h, out)?;
        h.flush().map_err(|e| Error::io(out, e))?;
        let digest = hex(&h.sha.finalize());
        let size = h.n;
        let f = h
            .inner
            .into_inner()
            .map_err(|e| Error::io(out, e.into_error()))?;
        f.sync_all().map_err(|e| Error::io(out, e))?;
        fs::rename(&tmp, blobs.join(&digest)).map_err(|e| Error::io(out, e))?;
        layers.push(Blob {
            digest: format!("sha256:{digest}"),
            size,
        });
    }

    let created = rfc3339(spec.mtime);
    let mut config = serde_json::json!({
        "architecture": oci_arch(),
        "os": "linux",
        "created": created,
        "config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
        },
        "rootfs": {
            "type": "layers",
            "diff_ids": layers.iter().map(|b| b.digest.clone()).collect::<Vec<_>>(),
        },
        "history": spec.layer_names.iter().map(|n| serde_json::json!({
            "created": created,
            "created_by": format!("layer: {n}"),
        })).collect::<Vec<_>>(),
    });
    if !spec.tags.is_empty() {
        config["config"]["Labels"] = serde_json::json!(spec.tags);
    }
    let config = write_json_blob(&blobs, &config, out)?;

    let mut annotations: BTreeMap<String, String> = spec.tags.clone();
    annotations.insert("org.opencontainers.image.created".into(), created.clone());
    annotations.insert("org.opencontainers.image.title".into(), spec.image.into());
    annotations.insert(
        "org.opencontainers.image.version".into(),
        spec.version.into(),
    );
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": MEDIA_MANIFEST,
        "config": {"mediaType": MEDIA_CONFIG, "digest": config.digest, "size": config.size},
        "layers": layers.iter().map(|b| serde_json::json!({
            "mediaType": MEDIA_LAYER, "digest": b.digest, "size": b.size,
        })).collect::<Vec<_>>(),
        "annotations": annotations,
    });
    let manifest = write_json_blob(&blobs, &manifest, out)?;

    let manifests: Vec<serde_json::Value> = ref_names(spec)
        .into_iter()
        .map(|name| {
            serde_json::json!({
                "mediaType": MEDIA_MANIFEST,
                "digest": manifest.digest,
                "size": manifest.size,
                "platform": {"architecture": oci_arch(), "os": "linux"},
                "annotations": {"org.opencontainers.image.ref.name": name},
            })
        })
        .collect();
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": MEDIA_INDEX,
        "manifests": manifests,
    });
    write_file(&dir.join("index.json"), &json_bytes(&index), out)?;
    write_file(
        &dir.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
        out,
    )
}

/// The names the layout's one manifest is listed under: the version alone (as before), then
/// as registries tag images, `IMAGE:VERSION` (the build's full version), `IMAGE:MAJOR.MINOR`
/// and `IMAGE:latest`, so `skopeo copy oci:DIR:IMAGE:latest docker://...` works.
fn ref_names(spec: &ExportSpec) -> Vec<String> {
    let image = spec.image;
    let mut names = vec![
        spec.version.to_string(),
        format!("{image}:{}", spec.version),
    ];
    let fields: Vec<&str> = spec.version.split(['.', '-']).take(2).collect();
    if let [major, minor] = fields[..] {
        names.push(format!("{image}:{major}.{minor}"));
    }
    names.push(format!("{image}:latest"));
    names.dedup();
    names
}

/// `v` as compact JSON; `serde_json` keeps object keys sorted.
fn json_bytes(v: &serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(v).expect("JSON values serialize")
}

/// Writes `v` as a blob named by its sha256.
fn write_json_blob(blobs: &Path, v: &serde_json::Value, out: &Path) -> Result<Blob> {
    let bytes = json_bytes(v);
    let digest = hex(&Sha256::digest(&bytes));
    write_file(&blobs.join(&digest), &bytes, out)?;
    Ok(Blob {
        digest: format!("sha256:{digest}"),
        size: bytes.len() as u64,
    })
}

/// Writes a new file of the layout and syncs it; errors name the export.
fn write_file(path: &Path, bytes: &[u8], out: &Path) -> Result<()> {
    let mut f = File::create(path).map_err(|e| Error::io(out, e))?;
    f.write_all(bytes).map_err(|e| Error::io(out, e))?;
    f.sync_all().map_err(|e| Error::io(out, e))
}

/// Prefix of whiteout entries in OCI layers: `.wh.NAME` deletes `NAME` of the layers below.
const WHITEOUT_PREFIX: &[u8] = b".wh.";
/// The entry that marks its folder opaque: nothing of the layers below shows through it.
const OPAQUE_MARKER: &[u8] = b".wh..wh..opq";

/// One folder of the stack as an OCI layer: its entries (not its root) sorted by path, whiteouts
/// as empty `.wh.NAME` files, an opaque folder followed by its `.wh..wh..opq` marker.
pub(super) fn write_layer_tar(
    spec: &ExportSpec,
    layer: &Path,
    w: &mut impl Write,
    out: &Path,
) -> Result<()> {
    let mut nodes = scan_layer(layer)?;
    nodes.sort_by(|a, b| a.rel.cmp(&b.rel));
    let mut tar = TarWriter::new(w, out);
    let mut first_link = HashMap::new();
    for n in nodes.iter().filter(|n| !n.rel.is_empty()) {
        let src = layerfs::join_rel(layer, &n.rel);
        let (parent, base) = match n.rel.iter().rposition(|&b| b == b'/') {
            Some(i) => (&n.rel[..=i], &n.rel[i + 1..]),
            None => (&b""[..], &n.rel[..]),
        };
        if base.starts_with(WHITEOUT_PREFIX) {
            return Err(Error::io(
                &src,
                io::Error::other("names starting with `.wh.` cannot be stored in an OCI layer"),
            ));
        }
        let marker = |name: Vec<u8>| Item {
            name,
            body: Body::Empty,
            mode: n.meta.mode() & 0o777,
            uid: n.meta.uid().into(),
            gid: n.meta.gid().into(),
            mtime: clamp(&n.meta, spec.mtime),
            xattrs: Vec::new(),
        };
        if layerfs::is_whiteout(&n.meta) {
            let mut name = parent.to_vec();
            name.extend_from_slice(WHITEOUT_PREFIX);
            name.extend_from_slice(base);
            tar.append(&marker(name))?;
            continue;
        }
        let mut name = n.rel.clone();
        if n.meta.is_dir() {
            name.push(b'/');
        }
        let link = hard_link_of(&mut first_link, 0, &n.meta, &name);
        if let Some(it) = item(name.clone(), &src, &n.meta, spec.mtime, link)? {
            tar.append(&it)?;
        }
        if n.opaque {
            name.extend_from_slice(OPAQUE_MARKER);
            tar.append(&marker(name))?;
        }
    }
    tar.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_reserved_for_oci_whiteouts_are_refused_in_oci_layers() {
        let d = tempfile::tempdir().unwrap();
        let layer = d.path().join("layer");
        fs::create_dir_all(layer.join("etc")).unwrap();
        fs::write(layer.join("etc/.wh.motd"), "").unwrap();
        let tags = BTreeMap::new();
        let spec = ExportSpec {
            layers: &[],
            layer_names: &[],
            image: "app",
            version: "1",
            mtime: 0,
            tags: &tags,
        };
        let e = write_layer_tar(&spec, &layer, &mut io::sink(), Path::new("out")).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "{}: names starting with `.wh.` cannot be stored in an OCI layer",
                layer.join("etc/.wh.motd").display()
            )
        );
    }
}
