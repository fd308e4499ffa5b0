//! What is installed in an image, and what is known against it: dpkg's and rpm's version
//! orders ([`debversion`], [`rpmversion`]), a build's package [`manifest`] read from its own
//! package database (rpm's header blobs in [`rpm`]), and
//! [`osv`] advisories matched against installed versions. Pure: the backend reads the image's
//! files, the audit reads advisories, and both hand the text here.
//!
//! The parts, each importing only those listed before it: `debversion`, `rpmversion`,
//! `manifest`, `rpm`, `osv`.

pub mod debversion;
pub mod rpmversion;
pub mod manifest;
pub mod rpm;
pub mod osv;

pub use manifest::{diff, Distro, Manager, Manifest, ManifestDiff, Package};

/// A version order's table, checked both ways round: each `(a, b, how a compares to b)` row of
/// `cases` also says how `b` compares to `a`. For the unit tests of [`debversion`] and
/// [`rpmversion`].
#[cfg(test)]
pub(crate) fn assert_order(
    compare: impl Fn(&str, &str) -> std::cmp::Ordering,
    cases: &[(&str, &str, std::cmp::Ordering)],
) {
    for &(a, b, want) in cases {
        assert_eq!(compare(a, b), want, "{a} vs {b}");
        assert_eq!(compare(b, a), want.reverse(), "{b} vs {a}");
    }
}
