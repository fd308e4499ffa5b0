//! Secrets never reach a terminal, a log or a record: every byte a build prints goes through a
//! [`Redactor`], which replaces each secret value with [`MASK`]. A value may arrive split
//! across writes (a build printing it a byte at a time), so the redactor holds back any tail
//! of the stream that could still become a secret, and releases it once it cannot. A
//! multi-line value is also masked line by line, and a build's stdout and stderr reach the
//! redactor as one stream (one pipe, in the order the build wrote them).

use std::io::{self, Write};

use crate::error::MIN_SECRET;

pub const MASK: &[u8] = b"[secret]";

/// What is masked of a secret's value: the value, and each of its lines (without a `\r`) of
/// at least [`MIN_SECRET`] characters, since a build may print a key one line at a time.
/// Shorter lines of a multi-line value (a blank line, a `}`) are left alone: masking them
/// would destroy the log and protect nothing.
fn masked_parts(value: &str) -> Vec<String> {
    let mut parts = Vec::new();
    if !value.is_empty() {
        parts.push(value.to_string());
    }
    if value.contains('\n') {
        parts.extend(
            value
                .split('\n')
                .map(|l| l.strip_suffix('\r').unwrap_or(l))
                .filter(|l| l.trim().chars().count() >= MIN_SECRET)
                .map(str::to_string),
        );
    }
    parts
}

/// Whether `text` holds the secret `value`, or one of its lines that [`Redactor`] masks.
pub fn holds_secret(text: &str, value: &str) -> bool {
    masked_parts(value)
        .iter()
        .any(|p| text.contains(p.as_str()))
}

pub struct Redactor<W: Write> {
    inner: W,
    /// Non-empty values, longest first so that overlapping secrets mask the longest.
    secrets: Vec<Vec<u8>>,
    pending: Vec<u8>,
}

impl<W: Write> Redactor<W> {
    pub fn new(inner: W, secrets: impl IntoIterator<Item = String>) -> Self {
        let mut secrets: Vec<Vec<u8>> = secrets
            .into_iter()
            .flat_map(|s| masked_parts(&s))
            .map(String::into_bytes)
            .collect();
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        Redactor {
            inner,
            secrets,
            pending: Vec::new(),
        }
    }

    /// Writes out everything held back. Call at the end of the stream.
    pub fn finish(mut self) -> io::Result<W> {
        self.drain(true)?;
        self.inner.flush()?;
        Ok(self.inner)
    }

    fn drain(&mut self, last: bool) -> io::Result<()> {
        let mut out = Vec::with_capacity(self.pending.len());
        let mut i = 0;
        let p = &self.pending;
        'scan: while i < p.len() {
            for s in &self.secrets {
                if p[i..].starts_with(s) {
                    out.extend_from_slice(MASK);
                    i += s.len();
                    continue 'scan;
                }
            }
            // Could a secret start here but continue past what we have?
            if !last
                && self
                    .secrets
                    .iter()
                    .any(|s| s.len() > p.len() - i && s.starts_with(&p[i..]))
            {
                break;
            }
            out.push(p[i]);
            i += 1;
        }
        self.pending.drain(..i);
        self.inner.write_all(&out)
    }
}

impl<W: Write> Write for Redactor<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.pending.extend_from_slice(buf);
        self.drain(false)?;
        Ok(buf.len())
    }

    /// Flushes what is known to be safe; a possible start of a secret stays held back.
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Masks secrets in a whole string (messages, not streams).
pub fn redact_str(s: &str, secrets: &[String]) -> String {
    let mut r = Redactor::new(Vec::new(), secrets.iter().cloned());
    r.write_all(s.as_bytes()).expect("writes to a Vec succeed");
    String::from_utf8_lossy(&r.finish().expect("writes to a Vec succeed")).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(secrets: &[&str], writes: &[&[u8]]) -> String {
        let mut r = Redactor::new(Vec::new(), secrets.iter().map(ToString::to_string));
        for w in writes {
            r.write_all(w).unwrap();
        }
        String::from_utf8(r.finish().unwrap()).unwrap()
    }

    #[test]
    fn masks_whole_and_split_values() {
        assert_eq!(run(&["hunter2"], &[b"pw=hunter2 ok"]), "pw=[secret] ok");
        let bytes: Vec<&[u8]> = b"pw=hunter2 ok".chunks(1).collect();
        assert_eq!(run(&["hunter2"], &bytes), "pw=[secret] ok");
        assert_eq!(run(&["hunter2"], &[b"hun", b"ter", b"2!"]), "[secret]!");
    }

    #[test]
    fn releases_near_misses_and_prefers_the_longest() {
        assert_eq!(run(&["hunter2"], &[b"hunt", b"er3"]), "hunter3");
        assert_eq!(run(&["hunter2"], &[b"hunte"]), "hunte");
        assert_eq!(
            run(&["abc", "abcdef"], &[b"xabcdefx abcx"]),
            "x[secret]x [secret]x"
        );
        assert_eq!(run(&["", "s"], &[b"sos"]), "[secret]o[secret]");
    }

    #[test]
    fn each_line_of_a_multi_line_secret_is_masked() {
        let key = "-----BEGIN KEY-----\nMIIEowIBAAKCAQEA\r\nabc\n-----END KEY-----\n";
        assert_eq!(
            run(
                &[key],
                &[b"first: MIIEowIBAAKCAQEA\n", b"whole: ", key.as_bytes()]
            ),
            "first: [secret]\nwhole: [secret]"
        );
        // Short lines of it are no secret on their own.
        assert_eq!(run(&[key], &[b"abc\n"]), "abc\n");
        assert!(holds_secret("ami-MIIEowIBAAKCAQEA", key));
        assert!(!holds_secret("ami-abc", key));
        assert!(holds_secret("x-hunter22-y", "hunter22"));
    }

    #[test]
    fn nothing_is_held_back_without_a_possible_secret() {
        let mut r = Redactor::new(Vec::new(), ["hunter2".to_string()]);
        r.write_all(b"plain line\n").unwrap();
        assert_eq!(r.inner, b"plain line\n");
        r.write_all(b"now hu").unwrap();
        assert_eq!(r.inner, b"plain line\nnow ");
    }
}
