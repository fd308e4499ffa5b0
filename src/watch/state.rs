//! What a watcher publishes in `cache/watch/state`, and its binary format. Pure.

/// A watcher's state: who it is, how far it got, and what changed.
///
/// Every change the watcher sees gets the next number (`seq`); `dirty` holds each changed
/// path with the number of its last change. `floor` is the number from which the watcher has
/// seen every change: set when it (re)made its watches, after the event queue overflowed and
/// when `dirty` grew too long to be worth keeping. A stat cache marked with a number below
/// `floor` tells nothing: the next plan checks every file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct State {
    /// Random, new each time a watcher starts.
    pub(crate) id: [u8; 16],
    pub(crate) pid: u32,
    /// When the process started, in clock ticks after boot (`/proc/PID/stat`, field 22): a pid
    /// reused by another process does not pass for the watcher.
    pub(crate) start: u64,
    pub(crate) floor: u64,
    pub(crate) seq: u64,
    /// How many times the cookie was opened (by plans syncing with the watcher).
    pub(crate) cookies: u64,
    /// The folders watched with everything below them (absolute).
    pub(crate) roots: Vec<Vec<u8>>,
    /// Changed path (absolute) and the number of its last change, sorted by path.
    pub(crate) dirty: Vec<(Vec<u8>, u64)>,
}

const MAGIC: &[u8; 12] = b"layer-watch\x01";

impl State {
    /// `MAGIC`; id; pid (u32); start, floor, seq, cookies (u64); the roots (a count, then
    /// each as a u32 length and its bytes); the dirty paths (a count, then each as a u64 number,
    /// a u32 length and its bytes). Little endian.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            64 + self.roots.iter().map(|r| 4 + r.len()).sum::<usize>()
                + self.dirty.iter().map(|(p, _)| 12 + p.len()).sum::<usize>(),
        );
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.id);
        out.extend_from_slice(&self.pid.to_le_bytes());
        for v in [self.start, self.floor, self.seq, self.cookies] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&(self.roots.len() as u64).to_le_bytes());
        for r in &self.roots {
            out.extend_from_slice(&(r.len() as u32).to_le_bytes());
            out.extend_from_slice(r);
        }
        out.extend_from_slice(&(self.dirty.len() as u64).to_le_bytes());
        for (p, seq) in &self.dirty {
            out.extend_from_slice(&seq.to_le_bytes());
            out.extend_from_slice(&(p.len() as u32).to_le_bytes());
            out.extend_from_slice(p);
        }
        out
    }

    /// `None` for anything malformed: a plan then checks every file.
    pub(crate) fn decode(b: &[u8]) -> Option<State> {
        let mut r = Reader { b, at: 0 };
        if r.take(MAGIC.len())? != MAGIC {
            return None;
        }
        let id = r.take(16)?.try_into().ok()?;
        let pid = u32::from_le_bytes(r.take(4)?.try_into().ok()?);
        let (start, floor, seq, cookies) = (r.u64()?, r.u64()?, r.u64()?, r.u64()?);
        let n = r.count(4)?;
        let mut roots = Vec::with_capacity(n);
        for _ in 0..n {
            roots.push(r.bytes()?);
        }
        let n = r.count(12)?;
        let mut dirty = Vec::with_capacity(n);
        for _ in 0..n {
            let s = r.u64()?;
            dirty.push((r.bytes()?, s));
        }
        (r.at == b.len()).then_some(State {
            id,
            pid,
            start,
            floor,
            seq,
            cookies,
            roots,
            dirty,
        })
    }
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.b.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(s)
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }

    /// A count of entries of at least `min` bytes each, checked against the bytes left.
    fn count(&mut self, min: usize) -> Option<usize> {
        let n = self.u64()?;
        (n <= ((self.b.len() - self.at) / min) as u64).then_some(n as usize)
    }

    fn bytes(&mut self) -> Option<Vec<u8>> {
        let len = u32::from_le_bytes(self.take(4)?.try_into().ok()?) as usize;
        Some(self.take(len)?.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trips_and_rejects_garbage() {
        let s = State {
            id: [3; 16],
            pid: 77,
            start: 1234,
            floor: 2,
            seq: 9,
            cookies: 4,
            roots: vec![b"/p/roles/a".to_vec(), b"/p/roles/b".to_vec()],
            dirty: vec![(b"/p/roles/a/x".to_vec(), 5), (b"/p/roles/b".to_vec(), 9)],
        };
        let bytes = s.encode();
        assert_eq!(State::decode(&bytes), Some(s.clone()));
        for cut in 0..bytes.len() {
            assert_eq!(State::decode(&bytes[..cut]), None, "cut at {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(State::decode(&longer), None);
        assert_eq!(State::decode(b"garbage"), None);
        assert_eq!(
            State::decode(&State::default().encode()),
            Some(State::default())
        );
    }
}
