//! rpm's version order, exactly as rpm sorts: [`rpmvercmp`] compares one field as rpm's
//! `rpmio/rpmvercmp.c` does, and [`compare`] whole `[EPOCH:]VERSION[-RELEASE]` strings as
//! `rpmverCmp()` does (what `rpm.vercmp()` uses): epochs first (absent is `0`), then versions,
//! then releases, where a version without one sorts before the same version with one.
//!
//! A field is compared as alternating runs: separators (anything but ASCII letters, digits,
//! `~` and `^`) are skipped and only mark where runs end; `~` sorts before everything, even
//! the end (`1.0~rc1 < 1.0`); `^` sorts after the end but before anything else
//! (`1.0 < 1.0^git1 < 1.0.1`); digits compare as numbers (leading zeros ignored) and beat
//! letters; letters compare byte by byte. `tests/suite/rpm.rs` checks both against rpm itself.

use std::cmp::Ordering;

/// rpm's `rpmvercmp()`: one version (or release, or epoch) field against another.
pub fn rpmvercmp(a: &str, b: &str) -> Ordering {
    if a == b {
        return Ordering::Equal;
    }
    let (a, b) = (a.as_bytes(), b.as_bytes());
    // rpm reads C strings: a NUL ends them.
    let at = |s: &[u8], i: usize| s.get(i).copied().unwrap_or(0);
    let skip = |s: &[u8], mut i: usize| {
        while i < s.len()
            && s[i] != 0
            && !s[i].is_ascii_alphanumeric()
            && !matches!(s[i], b'~' | b'^')
        {
            i += 1;
        }
        i
    };
    let (mut i, mut j) = (0, 0);
    while at(a, i) != 0 || at(b, j) != 0 {
        i = skip(a, i);
        j = skip(b, j);
        let (x, y) = (at(a, i), at(b, j));
        // `~` sorts before everything else, the end included.
        if x == b'~' || y == b'~' {
            if x != b'~' {
                return Ordering::Greater;
            }
            if y != b'~' {
                return Ordering::Less;
            }
            i += 1;
            j += 1;
            continue;
        }
        // `^` too, except that the end (the base version) sorts before it.
        if x == b'^' || y == b'^' {
            if x == 0 {
                return Ordering::Less;
            }
            if y == 0 {
                return Ordering::Greater;
            }
            if x != b'^' {
                return Ordering::Greater;
            }
            if y != b'^' {
                return Ordering::Less;
            }
            i += 1;
            j += 1;
            continue;
        }
        if x == 0 || y == 0 {
            break;
        }
        let numeric = x.is_ascii_digit();
        let run = |s: &[u8], mut k: usize| {
            while k < s.len()
                && if numeric {
                    s[k].is_ascii_digit()
                } else {
                    s[k].is_ascii_alphabetic()
                }
            {
                k += 1;
            }
            k
        };
        let (ei, ej) = (run(a, i), run(b, j));
        let (mut one, mut two) = (&a[i..ei], &b[j..ej]);
        // A number against letters: the number is newer.
        if two.is_empty() {
            return if numeric {
                Ordering::Greater
            } else {
                Ordering::Less
            };
        }
        if numeric {
            while one.first() == Some(&b'0') {
                one = &one[1..];
            }
            while two.first() == Some(&b'0') {
                two = &two[1..];
            }
            match one.len().cmp(&two.len()) {
                Ordering::Equal => {}
                longer => return longer,
            }
        }
        match one.cmp(two) {
            Ordering::Equal => {}
            other => return other,
        }
        i = ei;
        j = ej;
    }
    match (at(a, i) == 0, at(b, j) == 0) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Less,
        _ => Ordering::Greater,
    }
}

/// `[EPOCH:]VERSION[-RELEASE]` split as rpm's `rpmverParse()` splits it: the epoch is the
/// digits before a `:`, the release what follows the last `-`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Evr<'a> {
    pub epoch: Option<&'a str>,
    pub version: &'a str,
    pub release: Option<&'a str>,
}

impl<'a> Evr<'a> {
    pub fn parse(evr: &'a str) -> Evr<'a> {
        let digits = evr.bytes().take_while(u8::is_ascii_digit).count();
        let (epoch, rest) = match evr[digits..].strip_prefix(':') {
            Some(rest) => (Some(if digits == 0 { "0" } else { &evr[..digits] }), rest),
            None => (None, evr),
        };
        let (version, release) = match rest.rfind('-') {
            Some(k) => (&rest[..k], Some(&rest[k + 1..])),
            None => (rest, None),
        };
        Evr {
            epoch,
            version,
            release,
        }
    }
}

impl Ord for Evr<'_> {
    fn cmp(&self, other: &Self) -> Ordering {
        rpmvercmp(self.epoch.unwrap_or("0"), other.epoch.unwrap_or("0"))
            .then_with(|| rpmvercmp(self.version, other.version))
            .then_with(|| match (self.release, other.release) {
                (Some(a), Some(b)) => rpmvercmp(a, b),
                (a, b) => a.is_some().cmp(&b.is_some()),
            })
    }
}

impl PartialOrd for Evr<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Two `[EPOCH:]VERSION[-RELEASE]` strings in rpm's order (`rpmverCmp()`).
pub fn compare(a: &str, b: &str) -> Ordering {
    Evr::parse(a).cmp(&Evr::parse(b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packages::assert_order;
    use Ordering::{Equal, Greater, Less};

    /// Cases from rpm's own `tests/rpmvercmp.at`, and the EVR rules.
    #[test]
    fn rpmvercmp_table() {
        let cases = [
            ("1.0", "1.0", Equal),
            ("1.0", "2.0", Less),
            ("2.0.1", "2.0.1", Equal),
            ("2.0", "2.0.1", Less),
            ("2.0.1a", "2.0.1a", Equal),
            ("2.0.1a", "2.0.1", Greater),
            ("5.5p1", "5.5p2", Less),
            ("5.5p10", "5.5p1", Greater),
            ("10xyz", "10.1xyz", Less),
            ("xyz10", "xyz10.1", Less),
            ("xyz.4", "8", Less),
            ("5.5p1", "5.6p1", Less),
            ("6.0.rc1", "6.0", Greater),
            ("10b2", "10a1", Greater),
            ("1.0aa", "1.0a", Greater),
            ("10.0001", "10.1", Equal),
            ("10.0039", "10.0039", Equal),
            ("4.999.9", "5.0", Less),
            ("20101121", "20101122", Less),
            ("2_0", "2_0", Equal),
            ("2.0", "2_0", Equal),
            ("a", "a", Equal),
            ("a+", "a+", Equal),
            ("a+", "a_", Equal),
            ("+a", "_a", Equal),
            ("+_", "_+", Equal),
            ("1.0~rc1", "1.0~rc1", Equal),
            ("1.0~rc1", "1.0", Less),
            ("1.0~rc1", "1.0~rc2", Less),
            ("1.0~rc1~git123", "1.0~rc1", Less),
            ("1.0^", "1.0", Greater),
            ("1.0^git1", "1.0", Greater),
            ("1.0^git1", "1.01", Less),
            ("1.0^20160101", "1.0.1", Less),
            ("1.0^20160101^git1", "1.0^20160101", Greater),
            ("1.0~rc1^git1", "1.0~rc1", Greater),
            ("1.0^git1~pre", "1.0^git1", Less),
            ("1.0", "1.0a", Less),
        ];
        assert_order(rpmvercmp, &cases);
    }

    #[test]
    fn epoch_version_release() {
        assert_order(
            compare,
            &[
                ("1:1.0-1", "2.0-1", Greater),
                ("0:1.0-1", "1.0-1", Equal),
                (":1.0-1", "1.0-1", Equal), // an empty epoch is 0
                ("1.0", "1.0-5.el9", Less), // no release sorts first
                ("1.0-", "1.0", Greater),   // an empty release is one
                ("3.0.7-24.el9", "3.0.7-25.el9", Less),
                ("1:3.0.7-27.el9", "1:3.0.7-24.el9_3", Greater),
            ],
        );
        assert_eq!(
            Evr::parse("2:1.2-3.el9"),
            Evr {
                epoch: Some("2"),
                version: "1.2",
                release: Some("3.el9")
            }
        );
        assert_eq!(Evr::parse("a:1-2").epoch, None, "only digits make an epoch");
    }
}
