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
