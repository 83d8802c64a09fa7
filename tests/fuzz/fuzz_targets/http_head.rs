//! The HTTP head handling of the WAIT line (CORS: `http::parse_head`, then the preflight and
//! header builders on what it found) and the head/body split of the IN line
//! (`in_line::body_of`), over the same hostile bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use realplexor::http::{cors_headers, origin_allowed, parse_head, preflight, Head};
use realplexor::in_line::body_of;

fuzz_target!(|data: &[u8]| {
    if let Head::Complete {
        method,
        origin,
        request_headers,
    } = parse_head(data)
    {
        let _ = method.eq_ignore_ascii_case("OPTIONS");
        if let Some(o) = origin {
            let allowed = ["*".to_string(), "https://example.com".to_string()];
            let _ = origin_allowed(o, &allowed);
            let _ = preflight(o, request_headers);
            let _ = cors_headers(o);
        }
    }
    if let Some(body) = body_of(data) {
        assert!(data.ends_with(body));
    }
});
