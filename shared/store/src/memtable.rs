//! What the log holds that no checkpoint has written yet: the newest value of every key written
//! since the last checkpoint, and the round that wrote it. Reads look here before sled, so a
//! reader sees every commit as soon as it is made (read your writes), checkpointed or not.

use crate::record::Write;
use crate::Error;
use sled::IVec;
use std::collections::BTreeMap;
use std::iter::Peekable;
use std::ops::Bound;

/// A key's newest value (`None`: deleted) and the round of the log that holds it.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub value: Option<IVec>,
    pub round: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Memtable {
    entries: BTreeMap<Vec<u8>, Entry>,
}

impl Memtable {
    /// Records `writes`, made in `round`.
    pub(crate) fn insert(&mut self, writes: &[Write], round: u64) {
        for (key, value) in writes {
            let entry = Entry {
                value: value.clone(),
                round,
            };
            match self.entries.get_mut(key.as_slice()) {
                Some(slot) => *slot = entry,
                None => {
                    self.entries.insert(key.clone(), entry);
                }
            }
        }
    }

    /// The entry of `key`, if it was written since the last checkpoint.
    pub(crate) fn get(&self, key: &[u8]) -> Option<&Entry> {
        self.entries.get(key)
    }

    /// The entries from `from` (inclusive) to `to` (exclusive; `None`: to the end), in order.
    pub(crate) fn range(&self, from: &[u8], to: Option<&[u8]>) -> Vec<(IVec, Option<IVec>)> {
        let end = to.map_or(Bound::Unbounded, Bound::Excluded);
        self.entries
            .range::<[u8], _>((Bound::Included(from), end))
            .map(|(k, e)| (IVec::from(k.as_slice()), e.value.clone()))
            .collect()
    }

    /// Forgets what a checkpoint up to `round` wrote to sled (newer entries stay).
    pub(crate) fn checkpointed(&mut self, round: u64) {
        self.entries.retain(|_, e| e.round > round);
    }

    pub(crate) fn clear(&mut self) {
        self.entries.clear();
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

/// sled's entries merged with the memtable's: the memtable's win, its deletions hide sled's.
pub(crate) struct Merged<T: Iterator<Item = sled::Result<(IVec, IVec)>>> {
    mem: Peekable<std::vec::IntoIter<(IVec, Option<IVec>)>>,
    tree: Peekable<T>,
}

impl<T: Iterator<Item = sled::Result<(IVec, IVec)>>> Merged<T> {
    pub(crate) fn new(mem: Vec<(IVec, Option<IVec>)>, tree: T) -> Self {
        Merged {
            mem: mem.into_iter().peekable(),
            tree: tree.peekable(),
        }
    }
}

impl<T: Iterator<Item = sled::Result<(IVec, IVec)>>> Iterator for Merged<T> {
    type Item = Result<(IVec, IVec), Error>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let order = match (self.mem.peek(), self.tree.peek()) {
                (None, None) => return None,
                (None, Some(_)) | (Some(_), Some(Err(_))) => std::cmp::Ordering::Greater,
                (Some(_), None) => std::cmp::Ordering::Less,
                (Some((mem_key, _)), Some(Ok((tree_key, _)))) => mem_key.cmp(tree_key),
            };
            if order.is_gt() {
                return self.tree.next().map(|item| item.map_err(Error::from));
            }
            if order.is_eq() {
                self.tree.next();
            }
            if let Some((key, Some(value))) = self.mem.next() {
                return Some(Ok((key, value)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iv(s: &str) -> IVec {
        IVec::from(s.as_bytes())
    }

    #[test]
    fn the_memtable_shadows_and_hides_what_sled_holds() {
        let mut mem = Memtable::default();
        mem.insert(
            &[
                (b"b".to_vec(), Some(iv("new b"))),
                (b"c".to_vec(), None),
                (b"e".to_vec(), Some(iv("e"))),
            ],
            1,
        );
        let tree = ["a", "b", "c", "d"].into_iter().map(|k| Ok((iv(k), iv(k))));
        let merged: Vec<_> = Merged::new(mem.range(b"", None), tree)
            .map(|item| {
                let (k, v) = item.unwrap();
                (
                    String::from_utf8(k.to_vec()).unwrap(),
                    String::from_utf8(v.to_vec()).unwrap(),
                )
            })
            .collect();
        let expected = [("a", "a"), ("b", "new b"), ("d", "d"), ("e", "e")];
        assert_eq!(
            merged,
            expected.map(|(k, v)| (k.to_owned(), v.to_owned())).to_vec()
        );
        mem.checkpointed(1);
        assert_eq!(mem.len(), 0);
    }
}
