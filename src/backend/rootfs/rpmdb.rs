//! rpm's sqlite database (`rpmdb.sqlite`, rpm ≥ 4.16) read into packages: the header blobs of
//! its `Packages` table, parsed by [`crate::packages::rpm`].
//!
//! The database, and its write-ahead log when rpm left one, are copied into a scratch folder
//! and opened there: sqlite writes beside a database even to read it (`-shm`, a log
//! recovered), and the image's layers and the cached origin below them must not change.
//! Read with `rusqlite` (sqlite itself, built in): rpm leaves `-wal` files, and a reader of
//! sqlite's file format written here would have to replay them to be right.

use std::fs;
use std::path::Path;

use crate::packages::rpm::parse_headers;
use crate::packages::Package;

/// The installed packages in the rpm database `db`, read through a copy under `scratch`
/// (removed afterwards).
pub fn read_rpmdb(db: &Path, scratch: &Path) -> Result<Vec<Package>, String> {
    let at = |e: &dyn std::fmt::Display| format!("reading rpm's database `{}`: {e}", db.display());
    let _ = fs::remove_dir_all(scratch);
    fs::create_dir_all(scratch).map_err(|e| at(&e))?;
    let read = || -> Result<Vec<Package>, String> {
        let copy = scratch.join("rpmdb.sqlite");
        fs::copy(db, &copy).map_err(|e| e.to_string())?;
        let mut wal = db.as_os_str().to_owned();
        wal.push("-wal");
        if Path::new(&wal).is_file() {
            fs::copy(&wal, scratch.join("rpmdb.sqlite-wal")).map_err(|e| e.to_string())?;
        }
        let conn = rusqlite::Connection::open_with_flags(
            &copy,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| e.to_string())?;
        let mut stmt = conn
            .prepare("SELECT hnum, blob FROM Packages ORDER BY hnum")
            .map_err(|e| format!("not rpm's database: {e}"))?;
        let rows: Vec<(i64, Vec<u8>)> = stmt
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
            .and_then(Iterator::collect)
            .map_err(|e| e.to_string())?;
        parse_headers(rows.iter().map(|(id, blob)| (*id, blob.as_slice())))
    };
    let result = read();
    let _ = fs::remove_dir_all(scratch);
    result.map_err(|e| at(&e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packages::rpm::tests::blob;

    fn header(name: &str) -> Vec<u8> {
        let name = format!("{name}\0");
        blob(&[
            (1000, 6, name.as_bytes()),
            (1001, 6, b"1.0\0"),
            (1002, 6, b"1\0"),
            (1022, 6, b"noarch\0"),
        ])
    }

    #[test]
    fn what_rpm_left_in_its_write_ahead_log_is_read_and_the_database_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("rpmdb.sqlite");
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0;
             CREATE TABLE Packages (hnum INTEGER PRIMARY KEY AUTOINCREMENT, blob BLOB NOT NULL);",
        )
        .unwrap();
        for name in ["b", "a"] {
            conn.execute("INSERT INTO Packages (blob) VALUES (?1)", [header(name)])
                .unwrap();
        }
        let wal = dir.path().join("rpmdb.sqlite-wal");
        assert!(
            fs::metadata(&wal).unwrap().len() > 0,
            "the rows are in the log"
        );
        let before = (fs::read(&db).unwrap(), fs::read(&wal).unwrap());
        let scratch = dir.path().join("scratch");
        let ps = read_rpmdb(&db, &scratch).unwrap();
        let names: Vec<&str> = ps.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(ps[0].version, "1.0-1");
        assert_eq!((fs::read(&db).unwrap(), fs::read(&wal).unwrap()), before);
        assert!(!scratch.exists(), "the copy is removed");
        drop(conn);
    }

    #[test]
    fn a_database_without_rpm_packages_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("rpmdb.sqlite");
        rusqlite::Connection::open(&db)
            .unwrap()
            .execute_batch("CREATE TABLE other (x)")
            .unwrap();
        let e = read_rpmdb(&db, &dir.path().join("scratch")).unwrap_err();
        assert_eq!(
            e,
            format!(
                "reading rpm's database `{}`: not rpm's database: no such table: Packages",
                db.display()
            )
        );
        fs::write(&db, "not sqlite at all").unwrap();
        let e = read_rpmdb(&db, &dir.path().join("scratch")).unwrap_err();
        assert!(e.contains("file is not a database"), "{e}");
    }
}
