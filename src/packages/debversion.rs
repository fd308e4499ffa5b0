//! Debian version order, exactly as dpkg sorts (`lib/dpkg/version.c`, `verrevcmp`):
//! `[EPOCH:]UPSTREAM[-REVISION]` compared epoch first (a number, 0 when absent), then the
//! upstream part, then the revision (empty when absent, which sorts as `0`). Each part is
//! compared as alternating runs: non-digits by character, where `~` sorts before everything,
//! even the end of the string, then the end, then letters, then other characters; digits as
//! numbers (leading zeros ignored).
//!
//! Written here rather than taken from a crate: `deb-version7` (a port of dpkg's C) is GPL-3,
//! `debversion` pulls `regex` and `chrono`, and `debian-packaging` an async HTTP and `OpenPGP`
//! stack, for forty lines that `tests/suite/packages.rs` checks against `dpkg --compare-versions`.

use std::cmp::Ordering;

/// A version split into its parts; `parse` accepts what dpkg's `parseversion` accepts for
/// comparison (a numeric epoch when there is a `:`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DebVersion<'a> {
    pub epoch: u64,
    pub upstream: &'a str,
    pub revision: &'a str,
}

impl<'a> DebVersion<'a> {
    /// Splits `v`; `None` when the epoch is not a number or the upstream part is empty.
    pub fn parse(v: &'a str) -> Option<DebVersion<'a>> {
        let v = v.trim();
        let (epoch, rest) = match v.split_once(':') {
            Some((e, rest)) => (e.parse().ok()?, rest),
            None => (0, v),
        };
        let (upstream, revision) = match rest.rfind('-') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, ""),
        };
        if upstream.is_empty() {
            return None;
        }
        Some(DebVersion {
            epoch,
            upstream,
            revision,
        })
    }
}

impl Ord for DebVersion<'_> {
    fn cmp(&self, other: &Self) -> Ordering {
        self.epoch
            .cmp(&other.epoch)
            .then_with(|| verrevcmp(self.upstream, other.upstream))
            .then_with(|| verrevcmp(self.revision, other.revision))
    }
}

impl PartialOrd for DebVersion<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Compares two version strings as dpkg does. A string that does not parse sorts by its
/// bytes through the same run comparison, after an epoch of 0 (dpkg refuses those).
pub fn compare(a: &str, b: &str) -> Ordering {
    match (DebVersion::parse(a), DebVersion::parse(b)) {
        (Some(x), Some(y)) => x.cmp(&y),
        _ => verrevcmp(a, b),
    }
}

/// The weight of one character in a non-digit run: `~` lowest, then the end of the run, then
/// letters, then everything else (dpkg's `order`).
fn order(c: Option<u8>) -> i32 {
    match c {
        None => 0,
        Some(c) if c.is_ascii_digit() => 0,
        Some(c) if c.is_ascii_alphabetic() => i32::from(c),
        Some(b'~') => -1,
        Some(c) => i32::from(c) + 256,
    }
}

/// dpkg's `verrevcmp`: one part (upstream or revision) against another.
fn verrevcmp(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        let mut first_diff = 0;
        while (i < a.len() && !a[i].is_ascii_digit()) || (j < b.len() && !b[j].is_ascii_digit()) {
            let ac = order(a.get(i).copied());
            let bc = order(b.get(j).copied());
            if ac != bc {
                return ac.cmp(&bc);
            }
            i += 1;
            j += 1;
        }
        while a.get(i) == Some(&b'0') {
            i += 1;
        }
        while b.get(j) == Some(&b'0') {
            j += 1;
        }
        while i < a.len() && a[i].is_ascii_digit() && j < b.len() && b[j].is_ascii_digit() {
            if first_diff == 0 {
                first_diff = i32::from(a[i]) - i32::from(b[j]);
            }
            i += 1;
            j += 1;
        }
        if i < a.len() && a[i].is_ascii_digit() {
            return Ordering::Greater;
        }
        if j < b.len() && b[j].is_ascii_digit() {
            return Ordering::Less;
        }
        if first_diff != 0 {
            return first_diff.cmp(&0);
        }
    }
    Ordering::Equal
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packages::assert_order;
    use Ordering::{Equal, Greater, Less};

    #[test]
    fn known_cases() {
        let cases = [
            ("1.0", "1.0", Equal),
            ("1.0", "1.0-0", Equal),
            ("0:1.0", "1.0", Equal),
            ("1.0-1", "1.0-01", Equal),
            ("1.0", "1.1", Less),
            ("1.2", "1.10", Less),
            ("1:0.1", "2.0", Greater),
            ("2:1.0", "10:0.1", Less),
            ("1.0~rc1", "1.0", Less),
            ("1.0~~", "1.0~~a", Less),
            ("1.0~~a", "1.0~", Less),
            ("1.0~", "1.0", Less),
            ("1.0", "1.0a", Less),
            ("1.0a", "1.0+", Less),
            ("1.0+", "1.0.1", Less),
            ("3.0.14-1~deb12u1", "3.0.15-1~deb12u1", Less),
            ("3.0.15-1~deb12u1", "3.0.15-1", Less),
            ("3.0.15-1", "3.0.15-1+deb12u1", Less),
            ("2.36-9+deb12u4", "2.36-9+deb12u10", Less),
            ("1.2.3-1", "1.2.3-1.1", Less),
            ("1.2-3-4", "1.2-3-5", Less),
            ("a", "b", Less),
            ("1.0-a", "1.0-1", Greater),
            ("0.0.0", "0", Greater),
            ("7.88.1-10+deb12u8", "7.88.1-10+deb12u5", Greater),
        ];
        assert_order(compare, &cases);
    }

    #[test]
    fn parts() {
        let v = DebVersion::parse("1:2.3-4-5").unwrap();
        assert_eq!((v.epoch, v.upstream, v.revision), (1, "2.3-4", "5"));
        assert_eq!(DebVersion::parse("x:1"), None);
        assert_eq!(DebVersion::parse("-1"), None);
    }
}
