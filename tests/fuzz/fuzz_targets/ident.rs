//! The `identifier=` scanner (spec 3) over hostile bytes: `ident::scan` then `ident::items`.
//!
//! Besides "no panic", it checks the resume contract the reactor relies on when a request
//! arrives in pieces: scanning a grown buffer from the `resume` of an earlier scan of its
//! prefix finds exactly the marker a scan from 0 finds (the `resume` hints may differ). Input: byte 0 picks the split point
//! (in 1/256ths of the rest), byte 1 picks the marker name; the rest is the request.
#![no_main]

use libfuzzer_sys::fuzz_target;
use realplexor::ident::{items, scan, Scan};

const IDENTS: [&[u8]; 4] = [b"identifier", b"id", b"x", b"_ident_"];

fuzz_target!(|data: &[u8]| {
    let [split, which, buf @ ..] = data else {
        return;
    };
    let ident = IDENTS[usize::from(*which) % IDENTS.len()];
    let cut = buf.len() * usize::from(*split) / 256;
    let full = scan(buf, ident, 0);
    if let Scan::NotYet { resume } = scan(&buf[..cut], ident, 0) {
        // The resume hint itself may differ; what is found must not.
        let again = scan(buf, ident, resume);
        match (again, full) {
            (Scan::Found(a), Scan::Found(b)) => assert_eq!(a, b, "resume {resume} of {cut}"),
            (Scan::NotYet { .. }, Scan::NotYet { .. }) => {}
            _ => panic!("resume {resume} of prefix {cut}: {again:?} vs {full:?}"),
        }
    }
    if let Scan::Found(m) = full {
        for it in items(m.list) {
            assert!(!it.id.is_empty());
            assert!(it
                .id
                .iter()
                .all(|c| c.is_ascii_alphanumeric() || *c == b'_'));
        }
    }
    // Scanning from any offset, even past the end, must not panic.
    let _ = scan(buf, ident, usize::from(*split) * 64);
});
