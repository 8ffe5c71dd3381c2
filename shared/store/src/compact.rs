//! Offline compaction: a store copied, key by key in order, into a fresh sled database that
//! then takes its place.
//!
//! sled 0.34 reclaims the space of overwritten and removed values slowly: under Keel's churn
//! (log rounds written and dropped every second, checkpoints rewriting keys) a store's files
//! grew to about 7× the bytes its keys and values hold. A fresh copy holds just those.
//!
//! The swap is crash-safe: the copy is made in `{dir}.compacting` and marked complete once
//! flushed; then `{dir}` becomes `{dir}.old`, the copy becomes `{dir}`, and `{dir}.old` is
//! removed. [`finish`] (run by [`crate::Store::open`] and before every compaction) completes
//! or undoes a swap a crash interrupted, so `{dir}` always ends up as the store or its copy.

use crate::{Error, Options, Store};
use std::path::{Path, PathBuf};

/// The file that marks a finished copy.
const COMPLETE: &str = "KEEL_COMPACTION_COMPLETE";
/// Keys copied per sled batch.
const BATCH: usize = 10_000;

/// What a compaction did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Compaction {
    /// Keys copied.
    pub keys: u64,
    /// Bytes of keys and values copied.
    pub live_bytes: u64,
    /// Size of the store's files before.
    pub bytes_before: u64,
    /// Size of the store's files after.
    pub bytes_after: u64,
    /// Whether the copy compresses its pages (see [`crate::Options::compression`]).
    pub compressed: bool,
}

fn sibling(dir: &Path, suffix: &str) -> PathBuf {
    let mut name = dir.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    dir.with_file_name(name)
}

/// Compacts the store in `dir`, which no process may have open (sled's file lock refuses a
/// second opener). Replays what its log holds first, so the copy holds every commit.
pub fn compact(dir: &Path, options: &Options) -> Result<Compaction, Error> {
    finish(dir)?;
    let copy_dir = sibling(dir, ".compacting");
    let (keys, live_bytes, bytes_before, compressed) = {
        let store = Store::open(dir, options)?;
        let bytes_before = store.size_on_disk()?;
        if copy_dir.exists() {
            std::fs::remove_dir_all(&copy_dir).map_err(io("removing an old copy"))?;
        }
        let compress = match options.compression {
            Some(compress) => compress,
            None => crate::files::created_compressed(dir)?.unwrap_or(false),
        };
        let copy = crate::files::open(&copy_dir, options.cache_capacity, compress)?;
        let tree = copy.open_tree(crate::TREE)?;
        let (mut keys, mut live_bytes) = (0u64, 0u64);
        let mut batch = sled::Batch::default();
        let mut in_batch = 0;
        // Opening replayed the log into the keys: the tree alone holds every commit now.
        for item in store.log.tree().iter() {
            let (key, value) = item?;
            keys += 1;
            live_bytes += (key.len() + value.len()) as u64;
            batch.insert(key, value);
            in_batch += 1;
            if in_batch == BATCH {
                tree.apply_batch(std::mem::take(&mut batch))?;
                in_batch = 0;
            }
        }
        tree.apply_batch(batch)?;
        copy.flush()?;
        drop((tree, copy));
        crate::files::settle(&copy_dir, options.cache_capacity)?;
        std::fs::write(copy_dir.join(COMPLETE), b"").map_err(io("marking the copy complete"))?;
        (keys, live_bytes, bytes_before, compress)
    };
    let old_dir = sibling(dir, ".old");
    std::fs::rename(dir, &old_dir).map_err(io("moving the store aside"))?;
    finish(dir)?;
    let bytes_after = dir_size(dir).map_err(io("measuring the copy"))?;
    Ok(Compaction {
        keys,
        live_bytes,
        bytes_before,
        bytes_after,
        compressed,
    })
}

/// Completes or undoes a swap a crash interrupted: a complete copy replaces a store moved
/// aside; a store moved aside without a complete copy comes back; leftovers go.
pub(crate) fn finish(dir: &Path) -> Result<(), Error> {
    let (copy_dir, old_dir) = (sibling(dir, ".compacting"), sibling(dir, ".old"));
    let complete = copy_dir.join(COMPLETE).exists();
    if !dir.exists() && old_dir.exists() {
        if complete {
            std::fs::rename(&copy_dir, dir).map_err(io("moving the copy in place"))?;
            std::fs::remove_file(dir.join(COMPLETE)).map_err(io("unmarking the copy"))?;
        } else {
            std::fs::rename(&old_dir, dir).map_err(io("moving the store back"))?;
        }
    }
    if dir.exists() {
        for leftover in [&copy_dir, &old_dir] {
            if leftover.exists() {
                std::fs::remove_dir_all(leftover).map_err(io("removing a leftover"))?;
            }
        }
    }
    Ok(())
}

fn io(what: &'static str) -> impl Fn(std::io::Error) -> Error {
    move |e| Error::Compaction(format!("{what}: {e}"))
}

/// Bytes of the files under `dir`.
fn dir_size(dir: &Path) -> std::io::Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        total += if meta.is_dir() {
            dir_size(&entry.path())?
        } else {
            meta.len()
        };
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store_dir(path: &Path, marker: &str) {
        std::fs::create_dir_all(path).unwrap();
        std::fs::write(path.join("which"), marker).unwrap();
    }

    fn which(path: &Path) -> String {
        std::fs::read_to_string(path.join("which")).unwrap()
    }

    #[test]
    fn a_swap_a_crash_interrupted_is_completed_or_undone() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("data");
        let (copy, old) = (sibling(&dir, ".compacting"), sibling(&dir, ".old"));
        // Moved aside, and the copy was complete: the copy takes the store's place.
        store_dir(&old, "original");
        store_dir(&copy, "copy");
        std::fs::write(copy.join(COMPLETE), b"").unwrap();
        finish(&dir).unwrap();
        assert_eq!(which(&dir), "copy");
        assert!(!old.exists() && !copy.exists() && !dir.join(COMPLETE).exists());
        // Moved aside while the copy was not complete: the store comes back.
        std::fs::rename(&dir, &old).unwrap();
        store_dir(&copy, "half a copy");
        finish(&dir).unwrap();
        assert_eq!(which(&dir), "copy");
        assert!(!old.exists() && !copy.exists());
        // Not moved yet: a copy left over goes, the store stays.
        store_dir(&copy, "unfinished");
        finish(&dir).unwrap();
        assert_eq!(which(&dir), "copy");
        assert!(!copy.exists());
    }
}
