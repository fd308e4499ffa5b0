//! Secrets never reach a terminal, a log or a record: every byte a build prints goes through a
//! [`Redactor`], which replaces each secret value with [`MASK`]. A value may arrive split
//! across writes (a build printing it a byte at a time), so the redactor holds back any tail
//! of the stream that could still become a secret, and releases it once it cannot.

use std::io::{self, Write};

pub const MASK: &[u8] = b"[secret]";

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
            .filter(|s| !s.is_empty())
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
    fn nothing_is_held_back_without_a_possible_secret() {
        let mut r = Redactor::new(Vec::new(), ["hunter2".to_string()]);
        r.write_all(b"plain line\n").unwrap();
        assert_eq!(r.inner, b"plain line\n");
        r.write_all(b"now hu").unwrap();
        assert_eq!(r.inner, b"plain line\nnow ");
    }
}
