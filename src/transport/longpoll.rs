//! The long-poll transport (the original's only one, spec 4.5): the header block goes out at
//! registration, then one reply body holding every pending block as a JSON-ish array, then
//! the connection closes.
//!
//! Structure: pure functions from `Block`s to bytes; the data of each message is inserted
//! raw (the original does not escape it).
//! Uses: storage (Block), cursor.

use crate::cursor::Cursor;
use crate::storage::Block;
use std::rc::Rc;

/// `[\n  {\n    "ids": { "a": "1", "b": "2" },\n    "data": <data>\n  },\n ... \n]`
///
/// With `gaps` (only for listeners that opted in with `gap=1`), one block goes first:
/// `  {\n    "ids": { "a": "5" },\n    "gap": true\n  }`, the cursor of each id being
/// the one to continue from (see `storage::gaps`).
pub fn body(blocks: &[Block], gaps: &[(Rc<str>, Cursor)], out: &mut Vec<u8>) {
    out.extend_from_slice(b"[\n");
    if !gaps.is_empty() {
        ids(gaps, out);
        out.extend_from_slice(b" },\n    \"gap\": true\n  }");
    }
    for (i, b) in blocks.iter().enumerate() {
        if i > 0 || !gaps.is_empty() {
            out.extend_from_slice(b",\n");
        }
        ids(&b.ids, out);
        out.extend_from_slice(b" },\n    \"data\":");
        // Compat: a newline instead of the space when the data has one (spec 4.5).
        let data = &b.msg.data;
        out.push(if data.contains(&b'\n') { b'\n' } else { b' ' });
        out.extend_from_slice(data);
        out.extend_from_slice(b"\n  }");
    }
    out.extend_from_slice(b"\n]");
}

/// `  {\n    "ids": { "a": "1", "b": "2"` (the block is left open).
fn ids(pairs: &[(Rc<str>, Cursor)], out: &mut Vec<u8>) {
    out.extend_from_slice(b"  {\n    \"ids\": { ");
    super::id_pairs(pairs, out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::Message;

    fn block(ids: &[(&str, &str)], data: &str) -> Block {
        let c = |s: &str| Cursor::parse_client(s.as_bytes()).unwrap();
        Block {
            msg: Rc::new(Message {
                data: data.as_bytes().into(),
                limiters: Box::new([]),
            }),
            cursor: c(ids[0].1),
            ids: ids.iter().map(|(n, s)| (Rc::from(*n), c(s))).collect(),
        }
    }

    #[test]
    fn layout_matches_the_original() {
        let mut out = Vec::new();
        body(&[block(&[("abc", "15")], "\"aaa\"")], &[], &mut out);
        assert_eq!(
            out,
            b"[\n  {\n    \"ids\": { \"abc\": \"15\" },\n    \"data\": \"aaa\"\n  }\n]"
        );
        let mut out = Vec::new();
        body(
            &[
                block(&[("abc", "2"), ("def", "2")], "\"aaa\""),
                block(&[("abc", "3")], "{\"a\":\n1}"),
            ],
            &[],
            &mut out,
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "[\n  {\n    \"ids\": { \"abc\": \"2\", \"def\": \"2\" },\n    \"data\": \"aaa\"\n  },\n  {\n    \"ids\": { \"abc\": \"3\" },\n    \"data\":\n{\"a\":\n1}\n  }\n]"
        );
    }

    #[test]
    fn gap_block_goes_first_in_the_same_layout() {
        let c = |s: &str| Cursor::parse_client(s.as_bytes()).unwrap();
        let gaps = [(Rc::from("abc"), c("11")), (Rc::from("d"), c("5"))];
        let mut out = Vec::new();
        body(&[], &gaps[..1], &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "[\n  {\n    \"ids\": { \"abc\": \"11\" },\n    \"gap\": true\n  }\n]"
        );
        let mut out = Vec::new();
        body(&[block(&[("abc", "12")], "1")], &gaps, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "[\n  {\n    \"ids\": { \"abc\": \"11\", \"d\": \"5\" },\n    \"gap\": true\n  },\n  {\n    \"ids\": { \"abc\": \"12\" },\n    \"data\": 1\n  }\n]"
        );
    }
}
