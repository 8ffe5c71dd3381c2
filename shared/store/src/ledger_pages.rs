//! Ledger entries in pages: a commit appends each ledger entry under its own key (`l:`, in the
//! log and the memtable, readable at once), and a checkpoint writes all the entries one entity
//! made since the last checkpoint as one page (`p:{entity}\0{first seq}`), one sled value. A
//! hot SKU-location's thousands of entries a second then cost one write per checkpoint instead
//! of one sled insert each, and a quiet entity's single entry costs one write as before: a page
//! is written once and never read back to be extended (which would rewrite a quiet entity's
//! whole page for every entry).
//!
//! A checkpoint replayed after a crash may write a page whose entries overlap an earlier one's;
//! entries never change, so readers give each sequence number once. They merge the pages with
//! the entries no checkpoint filed yet, and with single-entry keys a store from before pages
//! may hold.

use crate::{keyspace, Error};
use sled::IVec;
use std::collections::BTreeMap;
use std::iter::Peekable;

/// A page's entries, by sequence number.
pub(crate) fn decode(page: &[u8]) -> Result<BTreeMap<u64, &[u8]>, Error> {
    let mut entries = BTreeMap::new();
    let mut rest = page;
    while !rest.is_empty() {
        let (seq, len, tail) = header(rest).ok_or_else(|| corrupt("a truncated ledger page"))?;
        if tail.len() < len {
            return Err(corrupt("a ledger page entry longer than its page"));
        }
        entries.insert(seq, &tail[..len]);
        rest = &tail[len..];
    }
    Ok(entries)
}

fn corrupt(what: &str) -> Error {
    Error::Corrupt(what.to_owned())
}

fn header(bytes: &[u8]) -> Option<(u64, usize, &[u8])> {
    let seq = u64::from_be_bytes(bytes.get(..8)?.try_into().ok()?);
    let len = u32::from_be_bytes(bytes.get(8..12)?.try_into().ok()?);
    Some((seq, usize::try_from(len).ok()?, &bytes[12..]))
}

/// A page holding `entries`, in sequence order.
pub(crate) fn encode<'a>(entries: impl IntoIterator<Item = (u64, &'a [u8])>) -> Vec<u8> {
    let mut page = Vec::new();
    for (seq, entry) in entries {
        page.extend_from_slice(&seq.to_be_bytes());
        let len = u32::try_from(entry.len()).unwrap_or(u32::MAX);
        page.extend_from_slice(&len.to_be_bytes());
        page.extend_from_slice(entry);
    }
    page
}

/// Ledger entries from two sources, each in sequence order, merged in sequence order; a
/// sequence number both hold is given once.
pub(crate) struct Merged<A, B>
where
    A: Iterator<Item = Result<(u64, Vec<u8>), Error>>,
    B: Iterator<Item = Result<(u64, Vec<u8>), Error>>,
{
    a: Peekable<A>,
    b: Peekable<B>,
}

impl<A, B> Merged<A, B>
where
    A: Iterator<Item = Result<(u64, Vec<u8>), Error>>,
    B: Iterator<Item = Result<(u64, Vec<u8>), Error>>,
{
    pub(crate) fn new(a: A, b: B) -> Self {
        Merged {
            a: a.peekable(),
            b: b.peekable(),
        }
    }
}

impl<A, B> Iterator for Merged<A, B>
where
    A: Iterator<Item = Result<(u64, Vec<u8>), Error>>,
    B: Iterator<Item = Result<(u64, Vec<u8>), Error>>,
{
    type Item = Result<Vec<u8>, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        let order = match (self.a.peek(), self.b.peek()) {
            (None, None) => return None,
            (Some(Err(_)), _) | (Some(_), None) => std::cmp::Ordering::Less,
            (_, Some(Err(_))) | (None, Some(_)) => std::cmp::Ordering::Greater,
            (Some(Ok((x, _))), Some(Ok((y, _)))) => x.cmp(y),
        };
        if order.is_eq() {
            self.b.next();
        }
        let item = if order.is_gt() {
            self.b.next()
        } else {
            self.a.next()
        };
        item.map(|entry| entry.map(|(_, bytes)| bytes))
    }
}

/// The entries of the pages in `pages` (page key, page), in page order, from sequence number
/// `from` on, each sequence number once.
pub(crate) fn entries_of_pages(
    pages: impl Iterator<Item = Result<(IVec, IVec), Error>>,
    from: u64,
) -> impl Iterator<Item = Result<(u64, Vec<u8>), Error>> {
    let mut next = from;
    pages.flat_map(move |page| {
        let entries: Vec<Result<(u64, Vec<u8>), Error>> = match page {
            Ok((_, bytes)) => match decode(&bytes) {
                Ok(entries) => {
                    let fresh: Vec<_> = entries
                        .range(next..)
                        .map(|(seq, entry)| Ok((*seq, entry.to_vec())))
                        .collect();
                    if let Some(last) = entries.keys().next_back() {
                        next = next.max(last + 1);
                    }
                    fresh
                }
                Err(e) => vec![Err(e)],
            },
            Err(e) => vec![Err(e)],
        };
        entries
    })
}

/// The single-entry ledger keys in `keys` (key, entry), with their sequence numbers.
pub(crate) fn entries_of_keys(
    keys: impl Iterator<Item = Result<(IVec, IVec), Error>>,
) -> impl Iterator<Item = Result<(u64, Vec<u8>), Error>> {
    keys.map(|item| {
        let (key, entry) = item?;
        let seq = keyspace::ledger_seq(&key)
            .ok_or_else(|| corrupt("a ledger key without its sequence number"))?;
        Ok((seq, entry.to_vec()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_decode_to_their_entries_and_overlaps_are_given_once() {
        let page = |entries: &[(u64, &str)]| {
            let bytes = encode(entries.iter().map(|(s, e)| (*s, e.as_bytes())));
            (IVec::from(&b"key"[..]), IVec::from(bytes))
        };
        let pages = [
            page(&[(1, "a"), (2, "b"), (3, "c")]),
            // A replayed checkpoint's page, overlapping the one before it.
            page(&[(2, "b"), (3, "c"), (4, "d")]),
            page(&[(5, "e")]),
        ];
        let read = |from: u64| -> Vec<u64> {
            entries_of_pages(pages.iter().cloned().map(Ok), from)
                .map(|e| e.unwrap().0)
                .collect()
        };
        assert_eq!(read(0), [1, 2, 3, 4, 5]);
        assert_eq!(read(3), [3, 4, 5]);
        assert_eq!(read(6), Vec::<u64>::new());
        let bytes = encode([(7, &b"x"[..])]);
        assert!(decode(&bytes[..bytes.len() - 1]).is_err(), "truncated");
    }

    #[test]
    fn two_sources_merge_by_sequence_number_without_repeats() {
        let ok = |s: &[(u64, &str)]| -> Vec<Result<(u64, Vec<u8>), Error>> {
            s.iter()
                .map(|(q, e)| Ok((*q, e.as_bytes().to_vec())))
                .collect()
        };
        let merged: Vec<Vec<u8>> = Merged::new(
            ok(&[(1, "a"), (3, "c"), (4, "d")]).into_iter(),
            ok(&[(2, "b"), (3, "c"), (5, "e")]).into_iter(),
        )
        .map(Result::unwrap)
        .collect();
        let expected: Vec<Vec<u8>> = ["a", "b", "c", "d", "e"]
            .iter()
            .map(|e| e.as_bytes().to_vec())
            .collect();
        assert_eq!(merged, expected);
    }
}
