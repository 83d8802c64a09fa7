//! Unit tests of `cluster::resp`: every type, the encoder, hostile inputs, and replies
//! split at every byte offset.

use super::*;

fn one(bytes: &[u8]) -> Value {
    match parse(bytes) {
        Ok(Some((v, n))) => {
            assert_eq!(n, bytes.len(), "{:?}", String::from_utf8_lossy(bytes));
            v
        }
        other => panic!("{:?}: {other:?}", String::from_utf8_lossy(bytes)),
    }
}

fn err(bytes: &[u8]) -> Error {
    match parse(bytes) {
        Err(e) => e,
        other => panic!(
            "{:?}: expected an error, got {other:?}",
            String::from_utf8_lossy(bytes)
        ),
    }
}

fn bulk(s: &str) -> Value {
    Value::Bulk(s.as_bytes().to_vec())
}

#[test]
fn resp2_types() {
    assert_eq!(one(b"+OK\r\n"), Value::Simple(b"OK".to_vec()));
    assert_eq!(one(b"+\r\n"), Value::Simple(Vec::new()));
    assert_eq!(one(b"-ERR no\r\n"), Value::Error(b"ERR no".to_vec()));
    assert_eq!(one(b":0\r\n"), Value::Int(0));
    assert_eq!(one(b":-17\r\n"), Value::Int(-17));
    assert_eq!(one(b":9223372036854775807\r\n"), Value::Int(i64::MAX));
    assert_eq!(one(b":-9223372036854775808\r\n"), Value::Int(i64::MIN));
    assert_eq!(one(b"$3\r\nfoo\r\n"), bulk("foo"));
    assert_eq!(one(b"$0\r\n\r\n"), bulk(""));
    assert_eq!(one(b"$4\r\na\r\nb\r\n"), bulk("a\r\nb"));
    assert_eq!(one(b"$-1\r\n"), Value::Nil);
    assert_eq!(one(b"*-1\r\n"), Value::Nil);
    assert_eq!(one(b"*0\r\n"), Value::Array(vec![]));
    assert_eq!(
        one(b"*3\r\n:1\r\n$1\r\nx\r\n*1\r\n$-1\r\n"),
        Value::Array(vec![
            Value::Int(1),
            bulk("x"),
            Value::Array(vec![Value::Nil])
        ])
    );
}

#[test]
fn resp3_types() {
    assert_eq!(one(b"_\r\n"), Value::Nil);
    assert_eq!(one(b"#t\r\n"), Value::Bool(true));
    assert_eq!(one(b"#f\r\n"), Value::Bool(false));
    assert_eq!(one(b",1.5\r\n"), Value::Double(1.5));
    assert_eq!(one(b",-2\r\n"), Value::Double(-2.0));
    assert_eq!(one(b",inf\r\n"), Value::Double(f64::INFINITY));
    assert_eq!(one(b",-inf\r\n"), Value::Double(f64::NEG_INFINITY));
    assert!(matches!(one(b",nan\r\n"), Value::Double(d) if d.is_nan()));
    assert_eq!(
        one(b"(-123456789012345678901234567890\r\n"),
        Value::BigNumber(b"-123456789012345678901234567890".to_vec())
    );
    assert_eq!(
        one(b"!9\r\nERR oops!\r\n"),
        Value::Error(b"ERR oops!".to_vec())
    );
    assert_eq!(one(b"=8\r\ntxt:some\r\n"), bulk("some"));
    assert_eq!(
        one(b"~2\r\n:1\r\n:2\r\n"),
        Value::Array(vec![Value::Int(1), Value::Int(2)])
    );
    assert_eq!(
        one(b">2\r\n+message\r\n:3\r\n"),
        Value::Push(vec![Value::Simple(b"message".to_vec()), Value::Int(3)])
    );
    assert_eq!(
        one(b"%2\r\n+a\r\n:1\r\n+b\r\n_\r\n"),
        Value::Map(vec![
            (Value::Simple(b"a".to_vec()), Value::Int(1)),
            (Value::Simple(b"b".to_vec()), Value::Nil)
        ])
    );
}

#[test]
fn malformed_scalars() {
    for bad in [
        &b"#x\r\n"[..],
        b"#\r\n",
        b"_x\r\n",
        b",\r\n",
        b",abc\r\n",
        b",+1\r\n",
        b",infinity and more\r\n",
        b"(\r\n",
        b"(12a\r\n",
        b"(-\r\n",
        b"=3\r\ntxt\r\n",
        b"=5\r\ntxtxt\r\n",
    ] {
        assert_eq!(
            err(bad),
            Error::BadScalar,
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
    assert_eq!(err(b"|1\r\n+a\r\n+b\r\n+OK\r\n"), Error::Attribute);
    assert_eq!(err(b"?\r\n"), Error::BadType(b'?'));
    assert_eq!(err(b"HTTP/1.1 200 OK\r\n"), Error::BadType(b'H'));
    assert_eq!(err(b"\0"), Error::BadType(0));
}

#[test]
fn bad_numbers_and_framing() {
    for bad in [
        &b":\r\n"[..],
        b":+1\r\n",
        b": 1\r\n",
        b":1 \r\n",
        b":--1\r\n",
        b":9223372036854775808\r\n",
        b":-9223372036854775809\r\n",
        b":99999999999999999999999999\r\n",
        b"$\r\n",
        b"$-2\r\n",
        b"$-0x\r\n",
        b"*-2\r\n",
        b"!-1\r\n",
        b"=-1\r\n",
        b"~-1\r\n",
        b">-1\r\n",
        b"%-1\r\n",
        b"$1.5\r\n",
    ] {
        assert_eq!(
            err(bad),
            Error::BadNumber,
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
    for bad in [
        &b"+OK\n"[..],
        b"+OK\rX",
        b"+O\nK\r\n",
        b"$3\r\nfooXY",
        b"$3\r\nfoo\n\n",
        b":1\r\r\n",
    ] {
        assert_eq!(
            err(bad),
            Error::BadFraming,
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
}

#[test]
fn huge_lengths_fail_fast_without_allocating() {
    // Refused on the length line alone, before any payload arrives.
    assert_eq!(
        err(b"$9223372036854775807\r\n"),
        Error::BulkTooLong(i64::MAX as u64)
    );
    assert_eq!(err(b"$67108865\r\n"), Error::BulkTooLong(64 << 20 | 1));
    assert_eq!(
        err(b"*9223372036854775807\r\n"),
        Error::TooManyElements(i64::MAX as u64)
    );
    assert_eq!(
        err(b"%4611686018427387904\r\n"),
        Error::TooManyElements(1 << 62)
    );
    assert_eq!(
        err(b"%9223372036854775807\r\n"),
        Error::TooManyElements(i64::MAX as u64)
    );
    // Within the limits, a big claim is simply incomplete (and the hint says how much).
    assert_eq!(parse(b"$67108864\r\n"), Ok(None));
    assert_eq!(
        parse_hint(b"$67108864\r\nab", &Limits::default()),
        Ok(Parsed::Incomplete {
            min_len: 11 + (64 << 20) + 2
        })
    );
    assert_eq!(parse(b"*1048576\r\n:1\r\n"), Ok(None));
    let small = Limits {
        max_bulk: 4,
        max_elems: 3,
        max_depth: 2,
        max_line: 5,
    };
    assert_eq!(parse_with(b"$5\r\n", &small), Err(Error::BulkTooLong(5)));
    assert_eq!(
        parse_with(b"$4\r\nabcd\r\n", &small),
        Ok(Some((bulk("abcd"), 10)))
    );
    assert_eq!(
        parse_with(b"*4\r\n", &small),
        Err(Error::TooManyElements(4))
    );
    assert_eq!(
        parse_with(b"%2\r\n", &small),
        Err(Error::TooManyElements(2))
    );
    assert_eq!(
        parse_with(b"*1\r\n*1\r\n*0\r\n", &small),
        Err(Error::TooDeep)
    );
    assert!(parse_with(b"*1\r\n*0\r\n", &small).is_ok());
    assert_eq!(
        parse_with(b"+abcde\r\n", &small),
        Ok(Some((Value::Simple(b"abcde".to_vec()), 8)))
    );
    assert_eq!(parse_with(b"+abcdef", &small), Err(Error::LineTooLong));
    assert_eq!(parse_with(b"+abcdef\r\n", &small), Err(Error::LineTooLong));
    assert_eq!(parse_with(b"+abcde", &small), Ok(None));
    assert_eq!(parse_with(b"+abcde\r", &small), Ok(None));
}

#[test]
fn deep_nesting_is_refused_not_recursed() {
    let mut deep = Vec::new();
    for _ in 0..100_000 {
        deep.extend_from_slice(b"*1\r\n");
    }
    assert_eq!(err(&deep), Error::TooDeep);
    // 32 aggregates may nest (depths 0 to 31); the 33rd is refused.
    let mut ok = b"*1\r\n".repeat(32);
    ok.extend_from_slice(b":1\r\n");
    assert!(parse(&ok).unwrap().is_some());
    let mut too = b"*1\r\n".repeat(33);
    too.extend_from_slice(b":1\r\n");
    assert_eq!(err(&too), Error::TooDeep);
    assert_eq!(err(&b">1\r\n%1\r\n~1\r\n".repeat(20)), Error::TooDeep);
}

/// Every proper prefix of a reply is incomplete with a hint past its end and within the
/// whole reply; the whole is complete; bytes after it are left alone.
fn check_splits(whole: &[u8]) {
    let limits = Limits::default();
    let full = one(whole);
    for cut in 0..whole.len() {
        match parse_hint(&whole[..cut], &limits) {
            Ok(Parsed::Incomplete { min_len }) => {
                assert!(
                    min_len > cut && min_len <= whole.len(),
                    "cut {cut}: hint {min_len}"
                );
            }
            other => panic!(
                "cut {cut} of {:?}: {other:?}",
                String::from_utf8_lossy(whole)
            ),
        }
    }
    let mut two = whole.to_vec();
    two.extend_from_slice(b"+next\r\n");
    assert_eq!(parse(&two), Ok(Some((full, whole.len()))));
}

#[test]
fn split_at_every_offset() {
    check_splits(b"+OK\r\n");
    check_splits(b"$-1\r\n");
    check_splits(b"$10\r\n0123456789\r\n");
    check_splits(b"-WRONGPASS invalid username-password pair\r\n");
    // An XREAD reply: [[stream, [[id, [field, value]], [id, [field, value]]]]]
    check_splits(
        b"*1\r\n*2\r\n$11\r\nrp:messages\r\n*2\r\n*2\r\n$15\r\n1700000000123-0\r\n*2\r\n$1\r\nd\r\n$5\r\nhello\r\n*2\r\n$15\r\n1700000000123-1\r\n*2\r\n$1\r\nd\r\n$0\r\n\r\n",
    );
    check_splits(b"%1\r\n=8\r\ntxt:some\r\n>2\r\n,1.25\r\n(99\r\n");
    check_splits(b"~3\r\n#t\r\n_\r\n!3\r\nERR\r\n");
}

#[test]
fn several_replies_in_one_buffer() {
    let buf = b"+OK\r\n:5\r\n$1\r\nx\r\n*-1\r\n+PAR";
    let mut pos = 0;
    let mut got = Vec::new();
    while let Some((v, n)) = parse(&buf[pos..]).unwrap() {
        got.push(v);
        pos += n;
    }
    assert_eq!(
        got,
        vec![
            Value::Simple(b"OK".to_vec()),
            Value::Int(5),
            bulk("x"),
            Value::Nil
        ]
    );
    assert_eq!(&buf[pos..], b"+PAR");
}

#[test]
fn encoder_writes_arrays_of_bulk_strings() {
    let mut out = Vec::new();
    encode(&mut out, &["XADD", "rp:messages", "*", "d", ""]);
    assert_eq!(
        out,
        b"*5\r\n$4\r\nXADD\r\n$11\r\nrp:messages\r\n$1\r\n*\r\n$1\r\nd\r\n$0\r\n\r\n"
    );
    out.clear();
    let payload = vec![0u8, 13, 10, 255];
    write_array_header(&mut out, 2);
    write_bulk(&mut out, b"ECHO");
    write_bulk(&mut out, &payload);
    assert_eq!(out, b"*2\r\n$4\r\nECHO\r\n$4\r\n\0\r\n\xff\r\n");
    // What we encode, we decode (Redis's request format is the same shape).
    let (v, n) = parse(&out).unwrap().unwrap();
    assert_eq!(n, out.len());
    assert_eq!(v, Value::Array(vec![bulk("ECHO"), Value::Bulk(payload)]));
    out.clear();
    encode::<&[u8]>(&mut out, &[]);
    assert_eq!(out, b"*0\r\n");
}

#[test]
fn accessors() {
    assert_eq!(bulk("a").as_bytes(), Some(&b"a"[..]));
    assert_eq!(Value::Simple(b"OK".to_vec()).as_bytes(), Some(&b"OK"[..]));
    assert_eq!(Value::Int(1).as_bytes(), None);
    assert_eq!(
        Value::Array(vec![Value::Nil]).as_array(),
        Some(&[Value::Nil][..])
    );
    assert_eq!(
        Value::Error(b"ERR x".to_vec()).error_text(),
        Some(&b"ERR x"[..])
    );
    assert_eq!(Value::Nil.error_text(), None);
    assert!(Error::BulkTooLong(5).to_string().contains("5 bytes"));
}

/// The fuzz target's checks on stable, over seeded mutations of its committed seeds
/// (`tests/fuzz/seeds/resp`): byte flips, insertions, deletions and truncations.
#[test]
fn mutated_seeds_keep_the_fuzz_checks() {
    let seeds: [&[u8]; 3] = [
        include_bytes!("../../tests/fuzz/seeds/resp/xread"),
        include_bytes!("../../tests/fuzz/seeds/resp/resp2-replies"),
        include_bytes!("../../tests/fuzz/seeds/resp/resp3-types"),
    ];
    let tight = Limits {
        max_bulk: 16,
        max_elems: 8,
        max_depth: 4,
        max_line: 16,
    };
    let mut rng: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move |n: usize| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        (rng % n.max(1) as u64) as usize
    };
    let alphabet = b"\r\n$*%~>:+-_#,(!=|0123456789-1tfx";
    for round in 0..20_000 {
        let mut data = seeds[round % seeds.len()].to_vec();
        for _ in 0..=next(4) {
            let at = next(data.len() + 1);
            match next(4) {
                0 if at < data.len() => data[at] = alphabet[next(alphabet.len())],
                1 => data.insert(at, alphabet[next(alphabet.len())]),
                2 if at < data.len() => {
                    data.remove(at);
                }
                _ => data.truncate(at),
            }
        }
        for limits in [Limits::default(), tight] {
            match parse_hint(&data, &limits) {
                Ok(Parsed::Complete(v, n)) => {
                    assert!(n > 0 && n <= data.len());
                    assert_eq!(parse_with(&data[..n], &limits), Ok(Some((v, n))));
                    assert_eq!(
                        parse_hint(&data[..n - 1], &limits),
                        Ok(Parsed::Incomplete { min_len: n })
                    );
                }
                Ok(Parsed::Incomplete { min_len }) => assert!(min_len > data.len()),
                Err(_) => {}
            }
        }
    }
}
