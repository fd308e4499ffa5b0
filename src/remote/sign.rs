//! ed25519 keys in their text forms, signing and checking.
//!
//! - A public key is `ed25519:BASE64` (standard base64 of the 32 bytes of the key), as
//!   `[remote] trusted_keys` lists them and `layer keygen` prints them.
//! - A secret key is `ed25519-secret:BASE64` (the 32-byte seed), alone on the first line of a
//!   key file (mode 0600) or as the value of `LAYER_SIGNING_KEY` itself.
//!
//! What is signed is [`SIGNING_CONTEXT`] followed by the envelope's signed bytes (see
//! `envelope`), so that a signature made for something else can never pass for a record's.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ed25519_dalek::{Signature, SigningKey, VerifyingKey};

use crate::error::{Error, ErrorKind, Result};

/// Prefix of public keys in their text form.
pub const PUBLIC_PREFIX: &str = "ed25519:";
/// Prefix of secret keys in their text form.
pub const SECRET_PREFIX: &str = "ed25519-secret:";
/// Put before the bytes a record's signature covers.
pub(super) const SIGNING_CONTEXT: &[u8] = b"layer remote record v1\0";

/// An ed25519 secret key, from `LAYER_SIGNING_KEY`. Never written anywhere by layer (only
/// [`keygen`] writes a new one, to the file it is asked to).
pub struct Signer {
    key: SigningKey,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Signer({})", self.public())
    }
}

impl Signer {
    /// `LAYER_SIGNING_KEY`'s value: the key itself (`ed25519-secret:BASE64`), or a path to a
    /// file holding it. Error messages never show the value, which may be the secret.
    pub fn from_env_value(value: &str) -> Result<Signer> {
        let value = value.trim();
        if value.starts_with(SECRET_PREFIX) {
            return parse_secret(value).ok_or_else(|| {
                key_error(
                    "`LAYER_SIGNING_KEY` holds a malformed secret key: expected `ed25519-secret:` and the base64 of 32 bytes",
                )
            });
        }
        let path = Path::new(value);
        let text = fs::read_to_string(path).map_err(|e| {
            if value.contains('/') || path.exists() {
                key_error(format!(
                    "`LAYER_SIGNING_KEY` names the key file `{value}`, which cannot be read: {e}"
                ))
            } else {
                key_error("`LAYER_SIGNING_KEY` is neither a secret key nor a path to a key file")
            }
        })?;
        let first = text.lines().next().unwrap_or("").trim();
        parse_secret(first).ok_or_else(|| {
            key_error(format!(
                "`{value}` is not a layer signing key: expected `ed25519-secret:` and the base64 of 32 bytes"
            ))
        })
    }

    /// The public key, `ed25519:BASE64`.
    pub fn public(&self) -> String {
        public_text(&self.key.verifying_key())
    }

    /// The signature of `bytes` (with the signing context), as base64.
    pub(super) fn sign(&self, bytes: &[u8]) -> String {
        use ed25519_dalek::Signer as _;
        let mut msg = SIGNING_CONTEXT.to_vec();
        msg.extend_from_slice(bytes);
        STANDARD.encode(self.key.sign(&msg).to_bytes())
    }
}

fn key_error(message: impl Into<String>) -> Error {
    Error::Remote {
        kind: ErrorKind::SigningKey,
        message: message.into(),
        hint: Some("`layer keygen -o FILE` writes a new key; set `LAYER_SIGNING_KEY=FILE`".into()),
    }
}

fn parse_secret(text: &str) -> Option<Signer> {
    let b64 = text.strip_prefix(SECRET_PREFIX)?;
    let bytes: [u8; 32] = STANDARD.decode(b64).ok()?.try_into().ok()?;
    Some(Signer {
        key: SigningKey::from_bytes(&bytes),
    })
}

fn public_text(key: &VerifyingKey) -> String {
    format!("{PUBLIC_PREFIX}{}", STANDARD.encode(key.as_bytes()))
}

/// A trusted public key from its text form; `None` when it is not `ed25519:BASE64` of a
/// valid 32-byte key.
pub(super) fn parse_public(text: &str) -> Option<VerifyingKey> {
    let b64 = text.trim().strip_prefix(PUBLIC_PREFIX)?;
    let bytes: [u8; 32] = STANDARD.decode(b64).ok()?.try_into().ok()?;
    VerifyingKey::from_bytes(&bytes).ok()
}

/// Whether `signature` (base64) is `key`'s signature of `bytes` (with the signing context).
pub(super) fn verify(key: &VerifyingKey, bytes: &[u8], signature: &str) -> bool {
    let Ok(sig) = STANDARD.decode(signature) else {
        return false;
    };
    let Ok(sig) = Signature::from_slice(&sig) else {
        return false;
    };
    let mut msg = SIGNING_CONTEXT.to_vec();
    msg.extend_from_slice(bytes);
    key.verify_strict(&msg, &sig).is_ok()
}

/// Writes a new secret key (from the OS's randomness) to `out`, mode 0600, refusing to
/// overwrite anything there, and returns its public key `ed25519:BASE64`.
pub fn keygen(out: &Path) -> Result<String> {
    let mut seed = [0u8; 32];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut seed);
    let key = SigningKey::from_bytes(&seed);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(out)
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                Error::Remote {
                    kind: ErrorKind::SigningKey,
                    message: format!(
                        "`{}` already exists: layer never overwrites a key",
                        out.display()
                    ),
                    hint: Some(
                        "remove it first, or write the new key elsewhere with `-o FILE`".into(),
                    ),
                }
            } else {
                Error::io(out, e)
            }
        })?;
    let text = format!("{SECRET_PREFIX}{}\n", STANDARD.encode(seed));
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| Error::io(out, e))?;
    Ok(public_text(&key.verifying_key()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn keygen_writes_a_private_key_file_that_signs_for_its_public_key() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("key");
        let public = keygen(&out).unwrap();
        assert!(public.starts_with("ed25519:"));
        let meta = fs::metadata(&out).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);

        let by_path = Signer::from_env_value(out.to_str().unwrap()).unwrap();
        assert_eq!(by_path.public(), public);
        let text = fs::read_to_string(&out).unwrap();
        let by_value = Signer::from_env_value(&text).unwrap();
        assert_eq!(by_value.public(), public);

        let sig = by_value.sign(b"hello");
        let key = parse_public(&public).unwrap();
        assert!(verify(&key, b"hello", &sig));
        assert!(!verify(&key, b"hellO", &sig));
        assert!(!verify(&key, b"hello", "not base64!"));

        let again = keygen(&out).unwrap_err();
        assert_eq!(again.kind(), ErrorKind::SigningKey);
        assert_eq!(
            again.to_string(),
            format!(
                "`{}` already exists: layer never overwrites a key",
                out.display()
            )
        );
        assert_eq!(fs::read_to_string(&out).unwrap(), text, "left as it was");
    }

    #[test]
    fn bad_signing_keys_say_why_without_showing_the_value() {
        let e = Signer::from_env_value("ed25519-secret:c2hvcnQ=").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::SigningKey);
        assert_eq!(
            e.to_string(),
            "`LAYER_SIGNING_KEY` holds a malformed secret key: expected `ed25519-secret:` and the base64 of 32 bytes"
        );
        assert!(e.hint().unwrap().contains("layer keygen"));
        let e = Signer::from_env_value("hunter2").unwrap_err();
        assert_eq!(
            e.to_string(),
            "`LAYER_SIGNING_KEY` is neither a secret key nor a path to a key file"
        );
        let e = Signer::from_env_value("/nonexistent/key").unwrap_err();
        assert!(e.to_string().starts_with(
            "`LAYER_SIGNING_KEY` names the key file `/nonexistent/key`, which cannot be read: "
        ));
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k");
        fs::write(&p, "ed25519:AAAA\n").unwrap();
        let e = Signer::from_env_value(p.to_str().unwrap()).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "`{}` is not a layer signing key: expected `ed25519-secret:` and the base64 of 32 bytes",
                p.display()
            )
        );
        assert!(parse_public("ed25519:AAAA").is_none());
        assert!(parse_public("rsa:AAAA").is_none());
    }
}
