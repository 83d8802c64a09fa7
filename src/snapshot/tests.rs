//! Unit tests of the snapshot format: a round trip, every truncation and bit flip, and
//! hostile records behind a valid checksum (a hand edit).

use super::*;

fn c(s: &str) -> Cursor {
    Cursor::parse_client(s.as_bytes()).unwrap()
}

fn sample() -> Vec<u8> {
    let mut e = Encoder::new(Vec::new()).unwrap();
    let gen = Cursor::Gen { secs: 9, frac: 5 };
    e.header(&gen, &c("1.5"), 42, Some(&c("4"))).unwrap();
    let shared = Message {
        data: b"\"shared\"".as_slice().into(),
        limiters: vec![Box::from("a"), Box::from("b")].into_boxed_slice(),
    };
    let i = e.message(&shared).unwrap();
    let j = e
        .message(&Message {
            data: b"".as_slice().into(),
            limiters: Box::new([]),
        })
        .unwrap();
    e.queue("q1", 1000, None, &[(&gen, i), (&c("3"), j)])
        .unwrap();
    e.queue("q2", 2000, Some(&c("2")), &[(&c("3"), i)]).unwrap();
    e.cleaned(77, &c("7")).unwrap();
    e.events(11, [(true, "q1"), (false, "x")].into_iter())
        .unwrap();
    let (file, n) = e.finish().unwrap();
    assert_eq!(n as usize, file.len());
    file
}

#[test]
fn round_trip_shares_bodies() {
    let img = decode(&sample()).unwrap();
    assert_eq!(img.last_cursor.unwrap().to_string(), "9.00000000000005");
    assert_eq!(img.history_start.unwrap().to_string(), "1.5");
    assert_eq!(img.written_at_ms, 42);
    assert_eq!(img.messages, 2);
    assert_eq!(img.queues.len(), 2);
    let (q1, q2) = (&img.queues[0], &img.queues[1]);
    assert_eq!(&*q1.id, "q1");
    assert!(
        Rc::ptr_eq(&q1.items[0].1, &q2.items[0].1),
        "one body, shared"
    );
    assert_eq!(&*q1.items[0].1.limiters[1], "b");
    assert_eq!(q2.dropped.as_ref().unwrap().to_string(), "2");
    assert_eq!(img.cleaned[0].0, 77);
    assert_eq!(img.cleaned[0].1.to_string(), "7");
    assert_eq!(img.forgotten.unwrap().to_string(), "4");
    let (first, evs) = img.events.unwrap();
    assert_eq!(
        (first, evs.len(), evs[1].0, &*evs[1].1),
        (11, 2, false, "x")
    );
}

#[test]
fn every_truncation_and_bit_flip_is_reported_never_a_panic() {
    let good = sample();
    for n in 0..good.len() {
        assert!(decode(&good[..n]).is_err(), "truncated at {n}");
    }
    for i in 0..good.len() {
        for bit in [0x01u8, 0x80] {
            let mut b = good.clone();
            b[i] ^= bit;
            assert!(decode(&b).is_err(), "flip at {i}");
        }
    }
}

/// A valid file around hostile records (the checksum fixed up, as a hand edit would).
fn forge(records: &[(u8, Vec<u8>)]) -> Vec<u8> {
    let mut f = MAGIC.to_vec();
    put_u32(&mut f, VERSION);
    for (tag, p) in records {
        f.push(*tag);
        put_u32(&mut f, p.len() as u32);
        f.extend_from_slice(p);
    }
    f.push(T_END);
    put_u32(&mut f, 8);
    put_u64(&mut f, records.len() as u64);
    let mut s = Fnv::default();
    s.update(&f);
    put_u64(&mut f, s.0);
    f
}

fn header() -> (u8, Vec<u8>) {
    let mut p = Vec::new();
    put_cursor(&mut p, &Cursor::Gen { secs: 1, frac: 0 }).unwrap();
    put_cursor(&mut p, &Cursor::Gen { secs: 1, frac: 0 }).unwrap();
    put_u64(&mut p, 0);
    p.push(0);
    (T_HEADER, p)
}

fn err(f: &[u8]) -> String {
    decode(f).unwrap_err().0
}

#[test]
fn hostile_records_with_a_valid_checksum() {
    assert!(decode(&forge(&[header()])).is_ok());
    assert!(err(&forge(&[])).contains("first record"), "no header");
    let huge_len = {
        let mut p = Vec::new();
        put_u32(&mut p, u32::MAX);
        (T_MESSAGE, p)
    };
    assert!(err(&forge(&[header(), huge_len])).contains("truncated"));
    let mut q = Vec::new();
    put_str(&mut q, b"q").unwrap();
    put_u64(&mut q, 0);
    q.push(0);
    put_u32(&mut q, 1);
    put_cursor(&mut q, &c("5")).unwrap();
    put_u32(&mut q, 7);
    assert!(err(&forge(&[header(), (T_QUEUE, q.clone())])).contains("message 7"));
    let mut bad_cursor = Vec::new();
    put_u64(&mut bad_cursor, 1);
    bad_cursor.push(1);
    put_str(&mut bad_cursor, b"1e5").unwrap();
    assert!(err(&forge(&[header(), (T_CLEANED, bad_cursor)])).contains("invalid"));
    let mut frac = Vec::new();
    put_u64(&mut frac, 1);
    frac.push(0);
    put_u64(&mut frac, 1);
    put_u64(&mut frac, u64::MAX);
    assert!(err(&forge(&[header(), (T_CLEANED, frac)])).contains("invalid"));
    let mut ev = Vec::new();
    put_u64(&mut ev, u64::MAX);
    put_u32(&mut ev, 1);
    ev.push(1);
    put_str(&mut ev, b"x").unwrap();
    assert!(err(&forge(&[header(), (T_EVENTS, ev)])).contains("overflow"));
    assert!(err(&forge(&[header(), (0x42, vec![])])).contains("unknown record"));
    let mut twice = sample();
    twice.truncate(8);
    put_u32(&mut twice, 2);
    assert!(err(&twice).contains("version 2"));
    assert!(err(b"").contains("magic"));
    assert!(err(b"RPLXSNAP").contains("truncated"));
    // Random garbage after a valid magic, with a fixed-up checksum.
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..3000 {
        let mut f = MAGIC.to_vec();
        put_u32(&mut f, VERSION);
        for _ in 0..(x % 64) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            f.push((x % 7) as u8 + if x & 0x100 != 0 { 0 } else { 0xF9 });
        }
        let mut s = Fnv::default();
        s.update(&f);
        put_u64(&mut f, s.0);
        let _ = decode(&f);
    }
}
