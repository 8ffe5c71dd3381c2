//! The binary form of a record: the key writes of one or more decisions, in order.
//!
//! The same bytes are a partition's log value (`log/`), what the store hands its
//! [`crate::Replica`], and what [`crate::Store::apply_record`] takes back. A record holds values,
//! not the operations that produced them, so applying it twice is applying it once.

use crate::Error;
use sled::IVec;

/// One write: a key and its new value, or `None` to delete it.
pub(crate) type Write = (Vec<u8>, Option<IVec>);

/// The record of `writes`: per write, key length, key, a flag, value length, value.
pub(crate) fn encode<'a>(writes: impl IntoIterator<Item = &'a Write> + Clone) -> Vec<u8> {
    let size: usize = writes
        .clone()
        .into_iter()
        .map(|(k, v)| 9 + k.len() + v.as_ref().map_or(0, |v| v.len()))
        .sum();
    let mut out = Vec::with_capacity(size);
    for (key, value) in writes {
        put(&mut out, key);
        match value {
            Some(v) => {
                out.push(1);
                put(&mut out, v);
            }
            None => out.push(0),
        }
    }
    out
}

fn put(out: &mut Vec<u8>, bytes: &[u8]) {
    let len = u32::try_from(bytes.len()).expect("a key or value under 4 GiB");
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
}

/// The writes of a record made by [`encode`].
pub(crate) fn decode(mut raw: &[u8]) -> Result<Vec<Write>, Error> {
    let mut writes = Vec::new();
    while !raw.is_empty() {
        let key = take(&mut raw)?.to_vec();
        let (&flag, rest) = raw.split_first().ok_or_else(torn)?;
        raw = rest;
        let value = match flag {
            1 => Some(IVec::from(take(&mut raw)?)),
            0 => None,
            _ => return Err(torn()),
        };
        writes.push((key, value));
    }
    Ok(writes)
}

fn take<'a>(raw: &mut &'a [u8]) -> Result<&'a [u8], Error> {
    let (len, rest) = raw.split_first_chunk::<4>().ok_or_else(torn)?;
    let len = u32::from_be_bytes(*len) as usize;
    let bytes = rest.get(..len).ok_or_else(torn)?;
    *raw = &rest[len..];
    Ok(bytes)
}

fn torn() -> Error {
    Error::Corrupt("a malformed record".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_decodes_to_its_writes() {
        let writes: Vec<Write> = vec![
            (b"s:a".to_vec(), Some(IVec::from(&b"state"[..]))),
            (b"s:m".to_vec(), None),
            (b"r:a\0".to_vec(), Some(IVec::default())),
        ];
        assert_eq!(decode(&encode(&writes)).unwrap(), writes);
    }

    #[test]
    fn a_truncated_record_is_an_error_not_a_panic() {
        let raw = encode(&[(b"key".to_vec(), Some(IVec::from(&b"value"[..])))]);
        for cut in 1..raw.len() {
            assert!(decode(&raw[..cut]).is_err(), "cut at {cut}");
        }
    }
}
