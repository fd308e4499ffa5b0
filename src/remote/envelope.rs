//! What `records/NAME/KEY.json` holds on a remote: an envelope around the record.
//!
//! ```json
//! {"format":1,"signer":"ed25519:BASE64","signature":"BASE64","signed":{"record":{...},"blobs":[...]}}
//! ```
//!
//! `signed` is kept byte for byte as the pusher wrote it, and the signature covers exactly
//! those bytes (after `sign`'s context): the record's JSON and the blobs it needs, with their
//! digests and sizes. A reader checks, in order: the envelope parses and is of this format, it
//! is signed, the signer is trusted, the signature holds, the record parses and its inputs
//! hash to its key, and it is the record of the (name, key) it was stored under. Anything else
//! is a refusal, worded by [`Refusal`].

use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::record::{parse_record, Record};

use super::sign::{self, Signer};

/// Bump when the envelope changes incompatibly.
pub(super) const ENVELOPE_FORMAT: u32 = 1;

/// One blob a record needs: where it is under the remote's prefix, and what it must be.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct BlobRef {
    /// `blobs/DIGEST.tar.zst` (a folder) or `blobs/DIGEST.zst` (a file).
    pub(super) path: String,
    /// The blake3 of the blob's bytes, as stored (compressed).
    pub(super) blake3: String,
    /// The blob's size in bytes, as stored.
    pub(super) size: u64,
    /// What it unpacks to: a `tree` (a zstd-compressed tar of a folder) or a `file` (the
    /// zstd-compressed file).
    pub(super) kind: BlobKind,
    /// Files: permission bits, owner and group, which `layerfs::digest` covers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) mode: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) uid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) gid: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum BlobKind {
    Tree,
    File,
}

#[derive(Serialize)]
struct SignedOut<'a> {
    record: &'a Record,
    blobs: &'a [BlobRef],
}

#[derive(Deserialize)]
struct SignedIn {
    record: Box<RawValue>,
    blobs: Vec<BlobRef>,
}

#[derive(Deserialize)]
struct EnvelopeIn {
    format: u32,
    #[serde(default)]
    signer: Option<String>,
    #[serde(default)]
    signature: Option<String>,
    signed: Box<RawValue>,
}

/// A record's envelope, signed by `signer`.
pub(super) fn seal(record: &Record, blobs: &[BlobRef], signer: &Signer) -> Vec<u8> {
    let signed = serde_json::to_string(&SignedOut { record, blobs }).expect("records serialize");
    let signature = signer.sign(signed.as_bytes());
    let head = serde_json::json!({
        "format": ENVELOPE_FORMAT,
        "signer": signer.public(),
        "signature": signature,
    })
    .to_string();
    // `head` is `{...}`: splice `signed` in as the last member, byte for byte.
    let mut out = head[..head.len() - 1].to_string();
    out.push_str(",\"signed\":");
    out.push_str(&signed);
    out.push('}');
    out.into_bytes()
}

/// A record from a remote that was checked and can be trusted, with the blobs it needs.
#[derive(Debug, Clone)]
pub(super) struct Opened {
    pub(super) record: Record,
    pub(super) blobs: Vec<BlobRef>,
    pub(super) signer: String,
}

/// Why an envelope cannot be trusted. `signer` is the key that signed it, where it says one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Refusal {
    pub(super) signer: Option<String>,
    pub(super) why: String,
}

/// Opens the envelope stored for (`name`, `key`): see the module's text for what is checked.
pub(super) fn open(
    bytes: &[u8],
    name: &str,
    key: &str,
    trusted: &[(String, VerifyingKey)],
) -> Result<Opened, Refusal> {
    let refuse = |signer: Option<&String>, why: String| Refusal {
        signer: signer.cloned(),
        why,
    };
    let env: EnvelopeIn = serde_json::from_slice(bytes)
        .map_err(|e| refuse(None, format!("the record is not a layer envelope: {e}")))?;
    if env.format != ENVELOPE_FORMAT {
        return Err(refuse(
            env.signer.as_ref(),
            format!(
                "the envelope has format {}; this layer reads format {ENVELOPE_FORMAT}",
                env.format
            ),
        ));
    }
    let (Some(signer), Some(signature)) = (&env.signer, &env.signature) else {
        return Err(refuse(None, "the record is unsigned".into()));
    };
    let Some((_, public)) = trusted.iter().find(|(text, _)| text == signer) else {
        return Err(refuse(
            Some(signer),
            format!("it is signed by `{signer}`, which is not in `trusted_keys`"),
        ));
    };
    let signed = env.signed.get().as_bytes();
    if !sign::verify(public, signed, signature) {
        return Err(refuse(
            Some(signer),
            format!("its signature by `{signer}` does not match its bytes (tampered with)"),
        ));
    }
    let inner: SignedIn = serde_json::from_slice(signed)
        .map_err(|e| refuse(Some(signer), format!("the signed part is corrupt: {e}")))?;
    let record =
        parse_record(inner.record.get().as_bytes()).map_err(|why| refuse(Some(signer), why))?;
    if record.name != name || record.key != key {
        return Err(refuse(
            Some(signer),
            format!(
                "it is the record of `{}` {}, stored as `{name}` {}",
                record.name,
                short(&record.key),
                short(key)
            ),
        ));
    }
    for b in &inner.blobs {
        if !valid_blob_path(&b.path, &b.blake3) {
            return Err(refuse(
                Some(signer),
                format!("it names the blob `{}`, which is not a blob path", b.path),
            ));
        }
    }
    Ok(Opened {
        record,
        blobs: inner.blobs,
        signer: signer.clone(),
    })
}

/// Whether `path` is `blobs/DIGEST.tar.zst` or `blobs/DIGEST.zst` with a 64-hex `digest`.
pub(super) fn valid_blob_path(path: &str, digest: &str) -> bool {
    digest.len() == 64
        && digest
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        && (path == format!("blobs/{digest}.tar.zst") || path == format!("blobs/{digest}.zst"))
}

/// The first 12 digits of a key, as messages show it.
pub(super) fn short(key: &str) -> &str {
    &key[..key.len().min(12)]
}
