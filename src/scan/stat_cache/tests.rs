//! The stat cache's format: records, tables and listings round-trip, and damaged bytes give
//! an empty cache.

use super::*;

fn stamp(ino: u64) -> Stamp {
    Stamp {
        dev: 1,
        ino,
        size: 3,
        mtime_ns: 4,
        ctime_ns: -5,
        mode: 0o100644,
    }
}

#[test]
fn stat_cache_round_trips_and_rejects_garbage() {
    let (s, t) = (stamp(2), stamp(9));
    let file = |p: &'static [u8], s: Stamp, h: u8| (Cow::Borrowed(p), s, [h; 32]);
    let c = StatCache::from_entries(
        [
            file(b"/a/b", s, 7),
            file(b"/a/c", s, 8),
            file(b"/a/b", t, 9),
            // Folders without a listing; the root's own files; no folder at all.
            file(b"/x/y/z", s, 1),
            file(b"/r", t, 2),
            file(b"relative", t, 3),
        ],
        [(&b"/a"[..], t, &b"\x08b\0\x08c\0"[..])],
    );
    assert_eq!((c.len(), c.dirs_len()), (4, 1));
    assert_eq!(c.get(Path::new("/a/b")), Some((t, [9; 32])));
    assert_eq!(c.get(Path::new("/a/c")), Some((s, [8; 32])));
    assert_eq!(c.get(Path::new("/x/y/z")), Some((s, [1; 32])));
    assert_eq!(c.get(Path::new("/r")), Some((t, [2; 32])));
    assert_eq!(c.get(Path::new("relative")), None);
    assert_eq!(c.get(Path::new("/a")), None);
    assert_eq!(c.get(Path::new("/a/bc")), None);
    assert_eq!(c.get(Path::new("/ab")), None);
    assert_eq!(
        c.get_dir(Path::new("/a")),
        Some((t, &b"\x08b\0\x08c\0"[..]))
    );
    assert_eq!(c.get_dir(Path::new("/x/y")), None);
    // Names are stored once: those of a listed folder's files are its listing's.
    let bytes = c.encode();
    let count = |n: &[u8]| bytes.windows(n.len()).filter(|w| w == &n).count();
    assert_eq!((count(b"b\0"), count(b"z")), (1, 1));
    assert_eq!(StatCache::decode(&bytes), c);
    let mut files: Vec<_> = c.files().map(|i| c.file(i).0.into_owned()).collect();
    files.sort();
    assert_eq!(files, [&b"/a/b"[..], b"/a/c", b"/r", b"/x/y/z"]);
    let again = StatCache::from_entries(c.files().map(|i| c.file(i)), c.dirs().map(|i| c.dir(i)));
    assert_eq!(again, c);
    assert!(StatCache::decode(&StatCache::default().encode()).is_empty());

    // The formats before this one are no cache: the files are hashed again.
    let mut v2 = bytes.clone();
    v2[STAT_MAGIC.len() - 1] = 2;
    assert!(StatCache::decode(&v2).is_empty());
    // A listing must be well formed.
    let at = count(b"\x08b\0\x08c\0");
    assert_eq!(at, 1);
    let pos = bytes
        .windows(6)
        .position(|w| w == b"\x08b\0\x08c\0")
        .unwrap();
    let mut bad = bytes.clone();
    bad[pos + 5] = b'x';
    assert!(StatCache::decode(&bad).is_empty());
    // Truncated, extended, or any byte changed: never a panic, nor an endless probe.
    for n in 0..bytes.len() {
        assert!(StatCache::decode(&bytes[..n]).is_empty());
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(StatCache::decode(&longer).is_empty());
    for i in 0..bytes.len() {
        for flip in [0x01, 0x80, 0xff] {
            let mut b = bytes.clone();
            b[i] ^= flip;
            let d = StatCache::decode(&b);
            for p in ["/a/b", "/a/c", "/x/y/z", "/r", "/a"] {
                let _ = (d.get(Path::new(p)), d.get_dir(Path::new(p)));
            }
            for i in d.files() {
                let _ = d.file(i);
            }
            for i in d.dirs() {
                let _ = d.dir(i);
            }
        }
    }
    assert_eq!(StatCache::decode(b"garbage"), StatCache::default());
}

#[test]
fn lookups_of_many_entries_find_each_and_nothing_else() {
    let paths: Vec<Vec<u8>> = (0..2000)
        .map(|i| format!("/p/roles/r{}/files/f{i}.conf", i % 37).into_bytes())
        .collect();
    let c = StatCache::from_entries(
        paths
            .iter()
            .enumerate()
            .map(|(i, p)| (Cow::Borrowed(&p[..]), stamp(i as u64), [i as u8; 32])),
        [],
    );
    assert_eq!(c.len(), 2000);
    for (i, p) in paths.iter().enumerate() {
        let found = c.find_file(p).map(|r| c.file_stamp(r));
        assert_eq!(found, Some((stamp(i as u64), [i as u8; 32])));
        let mut other = p.clone();
        other.push(b'x');
        assert_eq!(c.find_file(&other), None);
    }
}

#[test]
fn a_folders_files_are_found_in_the_order_of_its_listing() {
    // Listed in another order than their names', one of them not recorded, a file whose
    // folder has no listing, and a listed folder without files.
    let listing = b"\x08b.conf\0\x04sub\0\x08c.conf\0\x08a.conf\0".to_vec();
    let files: Vec<(Vec<u8>, u64)> = vec![
        (b"/r/a.conf".to_vec(), 1),
        (b"/r/b.conf".to_vec(), 2),
        (b"/r/sub/x".to_vec(), 3),
        (b"/q/lone".to_vec(), 4),
    ];
    let c = StatCache::from_entries(
        files
            .iter()
            .map(|(p, i)| (Cow::Borrowed(&p[..]), stamp(*i), [*i as u8; 32])),
        // `/s` is listed and holds no file.
        [
            (&b"/r"[..], stamp(9), &listing[..]),
            (&b"/s"[..], stamp(8), &b"\x04t\0"[..]),
        ],
    );
    assert_eq!(c.dir_files(c.find_dir(b"/s").unwrap()).len(), 0);
    let d = c.find_dir(b"/r").unwrap();
    let mut left = c.dir_files(d);
    assert_eq!(left.len(), 2);
    // `b.conf` first, as listed; `c.conf` has no record; then `a.conf`.
    let b = c.next_file(&mut left, b"b.conf").unwrap();
    assert_eq!(c.file_stamp(b).0, stamp(2));
    assert_eq!(c.next_file(&mut left, b"c.conf"), None);
    let a = c.next_file(&mut left, b"a.conf").unwrap();
    assert_eq!(c.file_stamp(a).0, stamp(1));
    assert!(left.is_empty());
    assert_eq!(c.next_file(&mut left, b"a.conf"), None);
    // Every file is still found by its path, and round-trips.
    for (p, i) in &files {
        assert_eq!(c.file_stamp(c.find_file(p).unwrap()).0, stamp(*i));
    }
    assert_eq!(StatCache::decode(&c.encode()), c);

    // A folder record whose files are not the ones that name it: no cache.
    let mut bytes = c.encode();
    let layout = c.layout;
    let at = layout.dirs_at + d * DIR_REC + DIR_REC - 4;
    let n = u32_at(&bytes, at);
    bytes[at..at + 4].copy_from_slice(&(n + 1).to_le_bytes());
    assert_eq!(StatCache::decode(&bytes), StatCache::default());
}

#[test]
fn tree_memos_round_trip_by_folder_and_damaged_ones_are_no_cache() {
    let s = stamp(2);
    let listing = &b"\x04r\0"[..];
    let dirs = || {
        [
            (&b"/roles"[..], s, listing),
            (&b"/roles/r"[..], s, &b"\x08a\0"[..]),
        ]
    };
    let files = || [(Cow::Borrowed(&b"/roles/r/a"[..]), s, [1; 32])];
    let c = StatCache::with_memos(
        files(),
        dirs(),
        [
            (&b"/roles/r"[..], 1, [5; 32]),
            // A later memo of the same folder wins; one of a folder without a listing, or
            // of no folder here, is left out.
            (&b"/roles/r"[..], 1, [6; 32]),
            (&b"/roles/r/a"[..], 1, [7; 32]),
            (&b"/elsewhere"[..], 1, [8; 32]),
        ],
    );
    assert_eq!(c.memo_count(), 1);
    let r = c.find_dir(b"/roles/r").unwrap();
    assert_eq!(c.memo(r), Some((0, 1, [6; 32])));
    assert_eq!(c.memo(c.find_dir(b"/roles").unwrap()), None);
    assert_eq!(c.memo_at(0), (r, 1, [6; 32]));
    let bytes = c.encode();
    assert_eq!(StatCache::decode(&bytes), c);
    // Without memos, as before.
    assert_eq!(StatCache::from_entries(files(), dirs()).memo_count(), 0);
    // A memo naming a folder record that does not exist, or out of order, is a damaged
    // cache: no cache.
    let at = bytes.windows(32).position(|w| w == [6; 32]).unwrap() - 8;
    let mut bad = bytes.clone();
    bad[at..at + 4].copy_from_slice(&9u32.to_le_bytes());
    assert!(StatCache::decode(&bad).is_empty());
    let two = StatCache::with_memos(
        files(),
        dirs(),
        [(&b"/roles"[..], 2, [3; 32]), (&b"/roles/r"[..], 1, [6; 32])],
    );
    let mut swapped = two.encode();
    let at = swapped.windows(32).position(|w| w == [3; 32]).unwrap() - 8;
    let (first, second) = (u32_at(&swapped, at), u32_at(&swapped, at + 40));
    swapped[at..at + 4].copy_from_slice(&second.to_le_bytes());
    swapped[at + 40..at + 44].copy_from_slice(&first.to_le_bytes());
    assert!(StatCache::decode(&swapped).is_empty());
}
