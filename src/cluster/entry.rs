//! One push as an entry of the cluster's message log (a Redis Stream): the fields an XADD
//! writes and reading them back into a `Publication`.
//!
//! Data shape: three fields, `t` (the targets in the identifier grammar: `cursor:id` for an
//! explicit cursor, `id` alone for "the entry's own cursor"), `l` (the limiters, comma
//! separated, possibly empty) and `b` (the body, raw bytes). The entry's stream ID gives
//! the generated cursor (`stream_id::StreamId::cursor`), the same bytes on every worker.
//! Decoding never trusts the log: anything malformed is an error naming what is wrong
//! (the reader logs it and skips the entry).
//! Uses: cursor, ident (the id rule), in_line (Publication), cluster::resp (Value).

use super::resp::Value;
use crate::cursor::Cursor;
use crate::ident::is_id;
use crate::in_line::Publication;

/// The XADD fields (name, value pairs, flattened) of a publication.
pub fn fields(p: &Publication) -> Vec<Vec<u8>> {
    let mut t = Vec::new();
    for (i, (cursor, id)) in p.targets.iter().enumerate() {
        if i > 0 {
            t.push(b',');
        }
        if let Some(c) = cursor {
            c.write_to(&mut t);
            t.push(b':');
        }
        t.extend_from_slice(id.as_bytes());
    }
    let l = p.limiters.join(",").into_bytes();
    vec![
        b"t".to_vec(),
        t,
        b"l".to_vec(),
        l,
        b"b".to_vec(),
        p.body.to_vec(),
    ]
}

/// Reads an entry's field list (`[name, value, ...]`) back into a publication.
pub fn decode(fields: &[Value]) -> Result<Publication, String> {
    let mut t: Option<&[u8]> = None;
    let mut l: Option<&[u8]> = None;
    let mut b: Option<&[u8]> = None;
    for pair in fields.chunks(2) {
        let [name, value] = pair else {
            return Err("odd number of fields".into());
        };
        let (Some(name), Some(value)) = (name.as_bytes(), value.as_bytes()) else {
            return Err("a field that is not a string".into());
        };
        match name {
            b"t" => t = Some(value),
            b"l" => l = Some(value),
            b"b" => b = Some(value),
            _ => {}
        }
    }
    let (Some(t), Some(b)) = (t, b) else {
        return Err("no targets or no body".into());
    };
    let mut targets = Vec::new();
    for item in t.split(|&c| c == b',') {
        let (cursor, id) = match item.iter().position(|&c| c == b':') {
            Some(p) => {
                let c = item.get(..p).and_then(Cursor::parse_client);
                let Some(c) = c else {
                    return Err("a target with a bad cursor".into());
                };
                (Some(c), item.get(p + 1..).unwrap_or_default())
            }
            None => (None, item),
        };
        if !is_id(id) {
            return Err("a target with a bad id".into());
        }
        targets.push((cursor, String::from_utf8_lossy(id).into()));
    }
    let mut limiters: Vec<Box<str>> = Vec::new();
    for lim in l.unwrap_or_default().split(|&c| c == b',') {
        if lim.is_empty() {
            continue;
        }
        if !is_id(lim) {
            return Err("a bad limiter".into());
        }
        limiters.push(String::from_utf8_lossy(lim).into());
    }
    limiters.sort();
    limiters.dedup();
    Ok(Publication {
        targets,
        limiters: limiters.into_boxed_slice(),
        body: b.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(b: &[u8]) -> Value {
        Value::Bulk(b.to_vec())
    }

    #[test]
    fn round_trip() {
        let p = Publication {
            targets: vec![
                (None, "a".into()),
                (Cursor::parse_client(b"12.5"), "b_2".into()),
            ],
            limiters: vec!["x".into(), "y".into()].into_boxed_slice(),
            body: b"{\"k\": [1,\n2]}".to_vec().into_boxed_slice(),
        };
        let f: Vec<Value> = fields(&p).iter().map(|v| bulk(v)).collect();
        let q = decode(&f).unwrap();
        assert_eq!(q.targets.len(), 2);
        assert_eq!(&*q.targets[0].1, "a");
        assert!(q.targets[0].0.is_none());
        assert!(q.targets[1]
            .0
            .as_ref()
            .unwrap()
            .same_text(&Cursor::parse_client(b"12.5").unwrap()));
        assert_eq!(&*q.limiters, &["x".into(), "y".into()] as &[Box<str>]);
        assert_eq!(&*q.body, &*p.body);
    }

    #[test]
    fn hostile_entries_are_errors() {
        let cases: Vec<Vec<Value>> = vec![
            vec![],
            vec![bulk(b"t")],
            vec![bulk(b"t"), bulk(b"a")],
            vec![bulk(b"t"), bulk(b"a b"), bulk(b"b"), bulk(b"1")],
            vec![bulk(b"t"), bulk(b"x:a"), bulk(b"b"), bulk(b"1")],
            vec![bulk(b"t"), bulk(b""), bulk(b"b"), bulk(b"1")],
            vec![bulk(b"t"), Value::Int(3), bulk(b"b"), bulk(b"1")],
            vec![
                bulk(b"t"),
                bulk(b"a"),
                bulk(b"l"),
                bulk(b"-"),
                bulk(b"b"),
                bulk(b"1"),
            ],
        ];
        for c in cases {
            assert!(decode(&c).is_err(), "{c:?}");
        }
    }
}
