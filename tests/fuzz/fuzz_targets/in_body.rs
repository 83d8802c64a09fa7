//! A whole IN request as the reactor sees it at EOF (spec 6): the marker scan, the
//! targets/limiters/credentials built from it (`Parsed::from_marker`), the command search,
//! and the body after the first blank line.
#![no_main]

use libfuzzer_sys::fuzz_target;
use realplexor::commands::find;
use realplexor::cursor::CursorGen;
use realplexor::ident::{scan, Scan};
use realplexor::in_line::{body_of, Parsed};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fuzz_target!(|data: &[u8]| {
    if let Scan::Found(m) = scan(data, b"identifier", 0) {
        let mut gen = CursorGen::new();
        let wall = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let p = Parsed::from_marker(&m, &mut gen, wall);
        let _ = p.describe();
        let _ = p.creds();
        let p2 = Parsed::from_marker(&m, &mut gen, SystemTime::now());
        assert_eq!(p.targets.len(), p2.targets.len());
    }
    let _ = find(data, true);
    if let Some(body) = body_of(data) {
        assert!(data.ends_with(body));
        assert!(body.len() + 2 <= data.len());
    }
});
