//! rpm's installed packages: one package's header blob as rpm's database stores it (rpm's
//! `doc/manual/format.md`, "The Header Structure", without the 8-byte magic) read into a
//! [`Package`]. Pure: the backend reads the blobs out of `rpmdb.sqlite`.
//!
//! A blob is big-endian: the index's entry count and the data's length (`u32` each), then an
//! index entry of 16 bytes per tag (tag, type, offset into the data, count), then the data.
//! Strings are NUL-terminated at their offset; `INT32` values are 4 bytes. Only the tags a
//! manifest needs are read; the immutable region's marker and every other tag are skipped.

use super::manifest::Package;

/// Where rpm keeps its database, relative to the image root: rpm ≥ 4.16's sqlite database
/// (Fedora ≥ 36 keeps it under `/usr/lib/sysimage`, with `/var/lib/rpm` a link to it).
pub const RPMDB_SQLITE: [&str; 2] = [
    "usr/lib/sysimage/rpm/rpmdb.sqlite",
    "var/lib/rpm/rpmdb.sqlite",
];
/// The databases of older rpms, which layer does not read: `BerkeleyDB` (`Packages`, RHEL 7
/// and 8) and ndb (`Packages.db`, SUSE).
pub const RPMDB_OTHER: [&str; 4] = [
    "usr/lib/sysimage/rpm/Packages.db",
    "var/lib/rpm/Packages.db",
    "usr/lib/sysimage/rpm/Packages",
    "var/lib/rpm/Packages",
];

const NAME: u32 = 1000;
const VERSION: u32 = 1001;
const RELEASE: u32 = 1002;
const EPOCH: u32 = 1003;
const ARCH: u32 = 1022;
const SOURCERPM: u32 = 1044;

const INT32: u32 = 4;
const STRING: u32 = 6;
const STRING_ARRAY: u32 = 8;
const I18NSTRING: u32 = 9;

/// The sanity limits rpm itself holds a header to (`lib/header.c`).
const MAX_INDEX: usize = 0x0000_ffff;
const MAX_DATA: usize = 0x0fff_ffff;

/// The fields of one header a manifest reads.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Fields<'a> {
    name: Option<&'a str>,
    version: Option<&'a str>,
    release: Option<&'a str>,
    epoch: Option<u32>,
    arch: Option<&'a str>,
    sourcerpm: Option<&'a str>,
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    let bytes = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes(bytes.try_into().ok()?))
}

fn fields(blob: &[u8]) -> Result<Fields<'_>, String> {
    let (Some(il), Some(dl)) = (be32(blob, 0), be32(blob, 4)) else {
        return Err("shorter than a header's intro".into());
    };
    let (il, dl) = (il as usize, dl as usize);
    if il == 0 || il > MAX_INDEX || dl > MAX_DATA {
        return Err(format!("a header of {il} entries and {dl} bytes of data"));
    }
    let start = 8 + il * 16;
    let data = blob.get(start..start + dl).ok_or_else(|| {
        format!(
            "a header of {il} entries and {dl} bytes is cut short at {} bytes",
            blob.len()
        )
    })?;
    let mut f = Fields::default();
    for e in 0..il {
        let at = 8 + e * 16;
        let (tag, kind, offset) = (
            be32(blob, at).unwrap_or_default(),
            be32(blob, at + 4).unwrap_or_default(),
            be32(blob, at + 8).unwrap_or_default() as usize,
        );
        let string = || -> Result<&str, String> {
            if !matches!(kind, STRING | STRING_ARRAY | I18NSTRING) {
                return Err(format!("tag {tag} has type {kind}, not a string"));
            }
            let rest = data
                .get(offset..)
                .ok_or_else(|| format!("tag {tag} points past the data"))?;
            let end = rest
                .iter()
                .position(|&b| b == 0)
                .ok_or_else(|| format!("tag {tag}'s string has no end"))?;
            std::str::from_utf8(&rest[..end]).map_err(|_| format!("tag {tag} is not UTF-8"))
        };
        match tag {
            NAME => f.name = Some(string()?),
            VERSION => f.version = Some(string()?),
            RELEASE => f.release = Some(string()?),
            ARCH => f.arch = Some(string()?),
            SOURCERPM => f.sourcerpm = Some(string()?),
            EPOCH => {
                if kind != INT32 {
                    return Err(format!("tag {tag} has type {kind}, not a number"));
                }
                f.epoch = Some(be32(data, offset).ok_or("the epoch points past the data")?);
            }
            _ => {}
        }
    }
    Ok(f)
}

/// `NAME-VERSION-RELEASE.src.rpm` -> (`NAME`, `VERSION-RELEASE`).
fn split_source_rpm(file: &str) -> Option<(&str, &str)> {
    let nvr = file
        .strip_suffix(".src.rpm")
        .or_else(|| file.strip_suffix(".nosrc.rpm"))?;
    let release = nvr.rfind('-')?;
    let version = nvr[..release].rfind('-')?;
    Some((&nvr[..version], &nvr[version + 1..]))
}

/// One header blob as a package: version `[EPOCH:]VERSION-RELEASE` (rpm's `%{EVR}`), the
/// source package from `SOURCERPM` (at the binary's epoch: a source rpm's file name has none).
/// `Ok(None)` for `gpg-pubkey` entries: signing keys `rpm --import` keeps as headers, not
/// software.
pub fn parse_header(blob: &[u8]) -> Result<Option<Package>, String> {
    let f = fields(blob)?;
    let (Some(name), Some(version)) = (f.name, f.version) else {
        return Err("a header without a name or version".into());
    };
    if name == "gpg-pubkey" {
        return Ok(None);
    }
    let epoch = f.epoch.map(|e| format!("{e}:")).unwrap_or_default();
    let evr = |v: &str, r: Option<&str>| match r {
        Some(r) => format!("{epoch}{v}-{r}"),
        None => format!("{epoch}{v}"),
    };
    let full = evr(version, f.release);
    let (source, source_version) = match f.sourcerpm.and_then(split_source_rpm) {
        Some((n, vr)) => {
            let sv = format!("{epoch}{vr}");
            (n.to_string(), (sv != full).then_some(sv))
        }
        None => (name.to_string(), None),
    };
    Ok(Some(Package {
        name: name.to_string(),
        version: full,
        arch: f.arch.unwrap_or_default().to_string(),
        source,
        source_version,
    }))
}

/// Every header blob of a database as its sorted packages; the first blob that is not a
/// header is an error naming its place.
pub fn parse_headers<'a>(
    blobs: impl IntoIterator<Item = (i64, &'a [u8])>,
) -> Result<Vec<Package>, String> {
    let mut out = Vec::new();
    for (id, blob) in blobs {
        if let Some(p) = parse_header(blob).map_err(|why| format!("package {id}: {why}"))? {
            out.push(p);
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A header blob of `(tag, type, value)` entries, laid out as rpm lays them out.
    pub(crate) fn blob(entries: &[(u32, u32, &[u8])]) -> Vec<u8> {
        let mut index = Vec::new();
        let mut data = Vec::new();
        for (tag, kind, value) in entries {
            if *kind == INT32 {
                while data.len() % 4 != 0 {
                    data.push(0);
                }
            }
            for v in [*tag, *kind, data.len() as u32, 1] {
                index.extend_from_slice(&v.to_be_bytes());
            }
            data.extend_from_slice(value);
        }
        let mut out = Vec::new();
        out.extend_from_slice(&(entries.len() as u32).to_be_bytes());
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        out.extend(index);
        out.extend(data);
        out
    }

    fn header(epoch: Option<u32>, sourcerpm: &[u8]) -> Vec<u8> {
        let e = epoch.map(u32::to_be_bytes);
        let mut entries: Vec<(u32, u32, &[u8])> = vec![
            (63, 7, &[0; 16]), // the immutable region's marker: skipped
            (NAME, STRING, b"openssl-libs\0"),
            (VERSION, STRING, b"3.0.7\0"),
            (RELEASE, STRING, b"24.el9\0"),
            (ARCH, STRING, b"x86_64\0"),
            (SOURCERPM, STRING, sourcerpm),
        ];
        if let Some(e) = &e {
            entries.push((EPOCH, INT32, e));
        }
        blob(&entries)
    }

    #[test]
    fn a_header_is_a_package() {
        let p = parse_header(&header(Some(1), b"openssl-3.0.7-24.el9.src.rpm\0"))
            .unwrap()
            .unwrap();
        assert_eq!(p.name, "openssl-libs");
        assert_eq!(p.version, "1:3.0.7-24.el9");
        assert_eq!(p.arch, "x86_64");
        assert_eq!(p.source, "openssl");
        assert_eq!(
            p.source_version, None,
            "the source is at the binary's version"
        );
        let p = parse_header(&header(None, b"openssl-3.0.7-23.el9.src.rpm\0"))
            .unwrap()
            .unwrap();
        assert_eq!(p.version, "3.0.7-24.el9");
        assert_eq!(p.source_version(), "3.0.7-23.el9");
    }

    #[test]
    fn signing_keys_are_not_packages() {
        let key = blob(&[
            (NAME, STRING, b"gpg-pubkey\0"),
            (VERSION, STRING, b"fd431d51\0"),
            (RELEASE, STRING, b"4ae0493b\0"),
        ]);
        assert_eq!(parse_header(&key), Ok(None));
    }

    #[test]
    fn broken_headers_are_errors() {
        let good = header(None, b"x-1-1.src.rpm\0");
        assert!(parse_header(&good[..good.len() - 3])
            .unwrap_err()
            .contains("cut short"));
        assert!(parse_header(&[0, 0]).unwrap_err().contains("intro"));
        let no_end = blob(&[(NAME, STRING, b"abc")]);
        assert!(parse_header(&no_end).unwrap_err().contains("has no end"));
        let no_version = blob(&[(NAME, STRING, b"abc\0")]);
        assert_eq!(
            parse_headers([(7, no_version.as_slice())]).unwrap_err(),
            "package 7: a header without a name or version"
        );
    }

    #[test]
    fn source_rpm_names() {
        assert_eq!(
            split_source_rpm("python3-3.9.18-1.el9.src.rpm"),
            Some(("python3", "3.9.18-1.el9"))
        );
        assert_eq!(split_source_rpm("a-b-1-2.nosrc.rpm"), Some(("a-b", "1-2")));
        assert_eq!(split_source_rpm("odd.rpm"), None);
    }
}
