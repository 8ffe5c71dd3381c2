//! How a store's sled files are opened: with the page compression they were created with.
//!
//! sled 0.34 records in its `conf` file whether a database compresses its pages (zstd) and
//! refuses to open it the other way. So the setting is chosen once, when a store is created
//! (or rewritten by [`crate::compact`]), and every later open reads it from the files.

use crate::Error;
use std::path::Path;

/// zstd level for compressed stores: the fastest; higher levels measured no smaller here
/// (JSON states and ids compress about 3.6× at level 1 and at level 3 alike).
const ZSTD_LEVEL: i32 = 1;

/// Opens (or creates) the sled database in `dir`. A new database compresses when `compress`
/// says so; an existing one as it was created.
pub(crate) fn open(dir: &Path, cache_capacity: u64, compress: bool) -> Result<sled::Db, Error> {
    let compress = created_compressed(dir)?.unwrap_or(compress);
    let mut config = sled::Config::new().path(dir).cache_capacity(cache_capacity);
    if compress {
        config = config.use_compression(true).compression_factor(ZSTD_LEVEL);
    }
    Ok(config.open()?)
}

/// Opens the database in `dir` once more after every handle to it was dropped, so that sled
/// recovers what was written and records a snapshot of it: sled 0.34 snapshots only when it
/// opens, and a first open must otherwise read every byte written since (seconds for a
/// freshly compacted store). Waits, up to 30 s, for sled's threads of the dropped handles to
/// let go of the directory's lock.
pub(crate) fn settle(dir: &Path, cache_capacity: u64) -> Result<(), Error> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        match open(dir, cache_capacity, false) {
            Ok(_) => return Ok(()),
            Err(Error::Sled(sled::Error::Io(e)))
                if e.kind() == std::io::ErrorKind::Other
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => return Err(e),
        }
    }
}

/// Opens a store's sled database as it was created, for tools that read its keys themselves
/// (`examples/census.rs`); no node may have it open.
pub fn open_raw(dir: &Path) -> Result<sled::Db, Error> {
    open(dir, crate::Options::default().cache_capacity, false)
}

/// Whether the database in `dir` was created with compression (`None`: there is none yet).
pub(crate) fn created_compressed(dir: &Path) -> Result<Option<bool>, Error> {
    let conf = match std::fs::read(dir.join("conf")) {
        Ok(conf) => conf,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::Conf(format!("reading {}: {e}", dir.display()))),
    };
    // Text lines (`use_compression: true`) followed by a checksum.
    let text = String::from_utf8_lossy(&conf);
    let setting = text
        .lines()
        .find_map(|line| line.strip_prefix("use_compression: "))
        .map(str::trim);
    match setting {
        Some("true") => Ok(Some(true)),
        Some("false") => Ok(Some(false)),
        _ => Err(Error::Conf(format!(
            "{}/conf names no compression setting",
            dir.display()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_reopens_with_the_compression_it_was_created_with() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        assert_eq!(created_compressed(&path).unwrap(), None);
        let db = open(&path, 1 << 20, true).unwrap();
        db.insert(b"k", b"v").unwrap();
        db.flush().unwrap();
        drop(db);
        assert_eq!(created_compressed(&path).unwrap(), Some(true));
        // Asked for no compression, it still opens (sled would refuse a mismatch).
        let db = open(&path, 1 << 20, false).unwrap();
        assert_eq!(db.get(b"k").unwrap().as_deref(), Some(&b"v"[..]));
    }
}
