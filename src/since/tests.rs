//! Unit tests of `since`: the kept revision keys round-trip and refuse damage.

use super::*;

#[test]
fn kept_keys_round_trip_and_refuse_damage() {
    let blob = gix::ObjectId::from_hex(b"1111111111111111111111111111111111111111").unwrap();
    let keys = KeptKeys {
        from: [3; 32],
        facts: vec![
            Fact::RevisionFile("origins/base.tar".into(), Some(blob)),
            Fact::RevisionFile("build.sh".into(), None),
            Fact::HostFile("/bin/busybox".into(), "ab".into()),
        ],
        dirs: vec![("web".into(), "roles/web".into())],
        images: vec![("app".into(), "k1".into(), b"{\"schema\":3}".to_vec())],
    };
    let bytes = keys.encode();
    assert_eq!(KeptKeys::decode(&bytes), Some(keys.clone()));
    assert!(KeptKeys::decode(&bytes[..bytes.len() - 1]).is_none());
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(KeptKeys::decode(&longer).is_none());
    let mut huge = bytes.clone();
    huge[12 + 32..12 + 40].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(KeptKeys::decode(&huge).is_none());
    let kept = Kept {
        trees: RoleTrees::default(),
        model: b"model".to_vec(),
        keys: Some(keys),
    };
    let none = Kept {
        keys: None,
        ..Kept::default()
    };
    assert_ne!(kept.encode(b"id"), none.encode(b"id"));
}
