//! The stamps of a list of paths below one folder, as a cached value's validity: a cached
//! parsed model (`decl::model_cache`) is reused only while every file and folder the parse
//! looked at has the stamp it had then. [`stamp_paths`] takes them relative to the open root
//! folder (`fstatat` on its descriptor: the kernel resolves only the few components below it),
//! in parallel batches; [`PathStamp`] and its encoding are what the cached value keeps.

use std::ffi::CString;
use std::io;
use std::path::Path;

use rayon::prelude::*;
use rustix::fs::{AtFlags, FileType, Mode, OFlags};

use super::stat_cache::Stamp;

/// What a path is, as far as deciding whether what was read through it may have changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathStamp {
    /// Nothing is there (`ENOENT`, or a component is not a folder).
    Missing,
    /// A file or folder: its `lstat`.
    Here(Stamp),
    /// A link: its own `lstat`, and the `stat` of where it leads (`None`: it leads nowhere).
    Link(Stamp, Option<Stamp>),
}

impl PathStamp {
    /// Whether any stamp in it is at or after `after_ns` (mtime or ctime): a change made in
    /// the same clock tick would not show in it, so it cannot vouch for content.
    pub fn racy(&self, after_ns: i64) -> bool {
        let racy = |s: &Stamp| s.mtime_ns >= after_ns || s.ctime_ns >= after_ns;
        match self {
            PathStamp::Missing => false,
            PathStamp::Here(s) | PathStamp::Link(s, None) => racy(s),
            PathStamp::Link(s, Some(t)) => racy(s) || racy(t),
        }
    }

    /// Appends the encoding: a tag byte (0 missing, 1 here, 2 link, 3 link to nothing) and
    /// the stamps, each five little-endian u64 and a u32.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let stamp = |s: &Stamp, out: &mut Vec<u8>| {
            for v in [s.dev, s.ino, s.size, s.mtime_ns as u64, s.ctime_ns as u64] {
                out.extend_from_slice(&v.to_le_bytes());
            }
            out.extend_from_slice(&s.mode.to_le_bytes());
        };
        match self {
            PathStamp::Missing => out.push(0),
            PathStamp::Here(s) => {
                out.push(1);
                stamp(s, out);
            }
            PathStamp::Link(s, Some(t)) => {
                out.push(2);
                stamp(s, out);
                stamp(t, out);
            }
            PathStamp::Link(s, None) => {
                out.push(3);
                stamp(s, out);
            }
        }
    }

    /// Decodes one stamp at the start of `b`; returns it and the bytes after it, or `None`
    /// when `b` does not start with one.
    pub fn decode(b: &[u8]) -> Option<(PathStamp, &[u8])> {
        const LEN: usize = 5 * 8 + 4;
        fn stamp(b: &[u8]) -> Option<(Stamp, &[u8])> {
            let s = b.get(..LEN)?;
            let u = |i: usize| u64::from_le_bytes(s[i * 8..i * 8 + 8].try_into().expect("8"));
            let mode = u32::from_le_bytes(s[40..44].try_into().expect("4"));
            let st = Stamp {
                dev: u(0),
                ino: u(1),
                size: u(2),
                mtime_ns: u(3) as i64,
                ctime_ns: u(4) as i64,
                mode,
            };
            Some((st, &b[LEN..]))
        }
        let (&tag, rest) = b.split_first()?;
        Some(match tag {
            0 => (PathStamp::Missing, rest),
            1 => {
                let (s, rest) = stamp(rest)?;
                (PathStamp::Here(s), rest)
            }
            2 => {
                let (s, rest) = stamp(rest)?;
                let (t, rest) = stamp(rest)?;
                (PathStamp::Link(s, Some(t)), rest)
            }
            3 => {
                let (s, rest) = stamp(rest)?;
                (PathStamp::Link(s, None), rest)
            }
            _ => return None,
        })
    }
}

/// Paths per batch: enough that a thread's start costs little against its `fstatat`s.
const BATCH: usize = 1024;

/// The stamps of `rels` (relative to the folder `root`, `/`-separated, never `..`), in their
/// order, taken relative to `root` opened once, in parallel batches. `Err` when `root` cannot
/// be opened or a path cannot be looked at for another reason than its absence (callers then
/// trust nothing).
pub fn stamp_paths(root: &Path, rels: &[String]) -> io::Result<Vec<PathStamp>> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let dir = rustix::fs::open(root, flags, Mode::empty())?;
    let one = |rel: &String| -> io::Result<PathStamp> {
        let c = CString::new(rel.as_bytes()).map_err(|_| io::ErrorKind::InvalidInput)?;
        let gone =
            |e: rustix::io::Errno| e == rustix::io::Errno::NOENT || e == rustix::io::Errno::NOTDIR;
        let st = match rustix::fs::statat(&dir, &c, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(e) if gone(e) => return Ok(PathStamp::Missing),
            Err(e) => return Err(e.into()),
        };
        let own = Stamp::of_stat(&st);
        if FileType::from_raw_mode(st.st_mode) != FileType::Symlink {
            return Ok(PathStamp::Here(own));
        }
        match rustix::fs::statat(&dir, &c, AtFlags::empty()) {
            Ok(t) => Ok(PathStamp::Link(own, Some(Stamp::of_stat(&t)))),
            Err(e) if gone(e) || e == rustix::io::Errno::LOOP => Ok(PathStamp::Link(own, None)),
            Err(e) => Err(e.into()),
        }
    };
    if rels.len() <= BATCH {
        return rels.iter().map(&one).collect();
    }
    let batches = crate::fsutil::io_pool().install(|| {
        rels.par_chunks(BATCH)
            .map(|b| b.iter().map(&one).collect::<io::Result<Vec<_>>>())
            .collect::<io::Result<Vec<_>>>()
    })?;
    Ok(batches.into_iter().flatten().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_name_files_links_and_absences_and_round_trip() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        std::fs::create_dir(root.join("images")).unwrap();
        std::fs::write(root.join("images/a.toml"), "x").unwrap();
        std::os::unix::fs::symlink("a.toml", root.join("images/b.toml")).unwrap();
        std::os::unix::fs::symlink("gone", root.join("images/c.toml")).unwrap();
        let mut rels: Vec<String> = ["images", "images/a.toml", "images/b.toml", "images/c.toml"]
            .map(String::from)
            .to_vec();
        rels.push("nothing/here".into());
        rels.push("images/a.toml/below".into());
        let got = stamp_paths(root, &rels).unwrap();
        assert!(matches!(got[0], PathStamp::Here(_)));
        let PathStamp::Here(a) = got[1] else {
            panic!("{:?}", got[1])
        };
        assert_eq!(a.size, 1);
        assert!(matches!(got[2], PathStamp::Link(_, Some(t)) if t == a));
        assert!(matches!(got[3], PathStamp::Link(_, None)));
        assert_eq!(got[4..], [PathStamp::Missing, PathStamp::Missing]);
        let mut bytes = Vec::new();
        for s in &got {
            s.encode(&mut bytes);
        }
        let mut rest = &bytes[..];
        for s in &got {
            let (d, r) = PathStamp::decode(rest).unwrap();
            assert_eq!(&d, s);
            rest = r;
        }
        assert!(rest.is_empty());
        assert!(PathStamp::decode(&[9]).is_none());
        assert!(PathStamp::decode(&bytes[..5]).is_none());
        // A stamp of now is racy; one of long ago is not.
        assert!(got[1].racy(0));
        assert!(!got[1].racy(i64::MAX));
        assert!(!PathStamp::Missing.racy(0));
        // Many paths go in parallel batches and keep their order.
        let many: Vec<String> = (0..3000)
            .map(|i| {
                if i % 2 == 0 {
                    "images/a.toml".into()
                } else {
                    format!("x{i}")
                }
            })
            .collect();
        let got = stamp_paths(root, &many).unwrap();
        assert_eq!(got.len(), 3000);
        assert!(got.iter().step_by(2).all(|s| *s == PathStamp::Here(a)));
        assert!(got
            .iter()
            .skip(1)
            .step_by(2)
            .all(|s| *s == PathStamp::Missing));
    }
}
