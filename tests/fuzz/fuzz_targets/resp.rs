//! Cluster mode's RESP decoder (`cluster::resp::parse_hint`), with the default limits and
//! with tight ones, as the Redis link feeds it: a buffer that grows by reads.
#![no_main]

use libfuzzer_sys::fuzz_target;
use realplexor::cluster::resp::{encode, parse, parse_hint, parse_with, Limits, Parsed, Value};

fuzz_target!(|data: &[u8]| {
    let tight = Limits {
        max_bulk: 16,
        max_elems: 8,
        max_depth: 4,
        max_line: 16,
    };
    for limits in [Limits::default(), tight] {
        match parse_hint(data, &limits) {
            Ok(Parsed::Complete(v, n)) => {
                assert!(n > 0 && n <= data.len());
                // The reply alone decodes the same; one byte less is incomplete, and its
                // hint does not skip past the end of the reply.
                let whole = data.get(..n).unwrap_or_default();
                assert_eq!(parse_with(whole, &limits), Ok(Some((v.clone(), n))));
                let short = data.get(..n - 1).unwrap_or_default();
                match parse_hint(short, &limits) {
                    Ok(Parsed::Incomplete { min_len }) => assert_eq!(min_len, n),
                    other => panic!("prefix of a complete reply: {other:?}"),
                }
                // A command we encode from the bulk strings of an array decodes back.
                if let Value::Array(items) = &v {
                    let bulks: Vec<&[u8]> = items.iter().filter_map(Value::as_bytes).collect();
                    let mut out = Vec::new();
                    encode(&mut out, &bulks);
                    let back = parse(&out);
                    let want: Vec<Value> = bulks.iter().map(|b| Value::Bulk(b.to_vec())).collect();
                    if out.len() < 1 << 20 && bulks.iter().all(|b| b.len() < 1 << 20) {
                        assert_eq!(back, Ok(Some((Value::Array(want), out.len()))));
                    }
                }
            }
            Ok(Parsed::Incomplete { min_len }) => assert!(min_len > data.len()),
            Err(_) => {}
        }
    }
});
