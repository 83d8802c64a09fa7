//! A whole IN request as the reactor sees it at EOF (spec 6): the marker scan, the
//! targets/limiters/credentials built from it (`Parsed::from_marker`), the command search,
//! and the body after the first blank line.
#![no_main]

use libfuzzer_sys::fuzz_target;
use realplexor::commands::find;
use realplexor::ident::{scan, Scan};
use realplexor::in_line::{body_of, Parsed};

fuzz_target!(|data: &[u8]| {
    if let Scan::Found(m) = scan(data, b"identifier", 0) {
        let p = Parsed::from_marker(&m);
        let _ = p.describe();
        let _ = p.creds();
        // Every target is an item of the list, with the cursor it was given (if any).
        assert!(p.targets.len() <= m.list.len());
    }
    let _ = find(data, true);
    if let Some(body) = body_of(data) {
        assert!(data.ends_with(body));
        assert!(body.len() + 2 <= data.len());
    }
});
