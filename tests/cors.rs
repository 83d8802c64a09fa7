//! CORS on the WAIT line (ALLOWED_ORIGINS) and the opt-in IFRAME Origin-Agent-Cluster
//! header. Without the key, requests with an Origin keep the original bytes exactly.

use crate::util::*;
use std::io::Write;
use std::net::TcpStream;

const ORIGIN: &str = "https://www.example-site.test:8443";

fn get(origin: &str, ids: &str) -> Vec<u8> {
    format!("GET /?identifier={ids}&ncrnd=1 HTTP/1.1\r\nHost: rpl\r\nOrigin: {origin}\r\n\r\n")
        .into_bytes()
}

fn cors_header(origin: &str) -> String {
    WAIT_HEADER.replace(
        "\r\n\r\n \r\n",
        &format!(
            "\r\nAccess-Control-Allow-Origin: {origin}\r\nAccess-Control-Allow-Credentials: true\r\nVary: Origin\r\n\r\n \r\n"
        ),
    )
}

/// The reply's head, up to and including the blank line.
fn head_of(reply: &str) -> &str {
    reply.find("\r\n\r\n").map_or(reply, |i| &reply[..i + 4])
}

fn exchange(addr: std::net::SocketAddr, req: &[u8]) -> String {
    let mut c = TcpStream::connect(addr).expect("connect");
    c.write_all(req).expect("write");
    show(&read_to_eof(&mut c))
}

#[test]
fn without_the_key_an_origin_changes_nothing() {
    let s = Server::start("");
    let mut c = TcpStream::connect(s.wait_addr()).expect("connect");
    c.write_all(&get(ORIGIN, "abc")).expect("write");
    s.wait_log(|l| l.contains("registered"), LOG_TIMEOUT);
    s.push_ids("abc", r#""x""#);
    let got = String::from_utf8(read_to_eof(&mut c)).expect("utf8");
    assert!(got.starts_with(WAIT_HEADER), "{got:?}");
    assert!(!got.contains("Access-Control"));
}

#[test]
fn an_allowed_origin_gets_cors_headers_and_its_data() {
    let s = Server::start(&format!("$CONFIG{{ALLOWED_ORIGINS}} = [ '{ORIGIN}' ];"));
    let mut c = TcpStream::connect(s.wait_addr()).expect("connect");
    c.write_all(&get(ORIGIN, "abc")).expect("write");
    s.wait_log(|l| l.contains("registered"), LOG_TIMEOUT);
    s.push_ids("abc", r#""x""#);
    let got = String::from_utf8(read_to_eof(&mut c)).expect("utf8");
    let head = cors_header(ORIGIN);
    assert!(got.starts_with(&head), "{got:?}");
    assert_eq!(
        mask_generated(&got[head.len()..]),
        body(&[block(&[("abc", GEN)], r#""x""#)])
    );
}

#[test]
fn other_origins_get_no_cors_headers_and_star_allows_any() {
    let s = Server::start(&format!("$CONFIG{{ALLOWED_ORIGINS}} = [ '{ORIGIN}' ];"));
    let mut c = TcpStream::connect(s.wait_addr()).expect("connect");
    c.write_all(&get("https://evil.test", "abc"))
        .expect("write");
    s.wait_log(|l| l.contains("registered"), LOG_TIMEOUT);
    s.push_ids("abc", r#""x""#);
    let got = String::from_utf8(read_to_eof(&mut c)).expect("utf8");
    assert!(got.starts_with(WAIT_HEADER), "{got:?}");

    let s = Server::start("$CONFIG{ALLOWED_ORIGINS} = [ '*' ];");
    let mut c = TcpStream::connect(s.wait_addr()).expect("connect");
    c.write_all(&get("http://any.test:81", "abc"))
        .expect("write");
    s.wait_log(|l| l.contains("registered"), LOG_TIMEOUT);
    s.push_ids("abc", r#""x""#);
    let got = String::from_utf8(read_to_eof(&mut c)).expect("utf8");
    assert!(
        got.starts_with(&cors_header("http://any.test:81")),
        "{got:?}"
    );
}

#[test]
fn preflight_is_answered() {
    let s = Server::start(&format!("$CONFIG{{ALLOWED_ORIGINS}} = [ '{ORIGIN}' ];"));
    let ok = exchange(
        s.wait_addr(),
        format!(
            "OPTIONS /?identifier=abc HTTP/1.1\r\nHost: rpl\r\nOrigin: {ORIGIN}\r\n\
             Access-Control-Request-Method: POST\r\nAccess-Control-Request-Headers: content-type\r\n\r\n"
        )
        .as_bytes(),
    );
    assert!(ok.starts_with("HTTP/1.1 204 No Content\r\n"), "{ok}");
    for h in [
        format!("Access-Control-Allow-Origin: {ORIGIN}"),
        "Access-Control-Allow-Methods: GET, POST, OPTIONS".into(),
        "Access-Control-Allow-Headers: content-type".into(),
        "Vary: Origin".into(),
    ] {
        assert!(ok.contains(&h), "{h} in {ok}");
    }
    let refused = exchange(
        s.wait_addr(),
        b"OPTIONS / HTTP/1.1\r\nHost: rpl\r\nOrigin: https://evil.test\r\n\r\n",
    );
    assert!(refused.starts_with("HTTP/1.1 403 Forbidden"), "{refused}");
    // Nothing was registered by either.
    assert_eq!(s.last_stats().0, 0);
}

#[test]
fn head_split_across_writes_and_non_http_requests_still_work_with_cors() {
    let s = Server::start(&format!("$CONFIG{{ALLOWED_ORIGINS}} = [ '{ORIGIN}' ];"));
    // The marker arrives before the Origin header: the server waits for the whole head.
    let req = get(ORIGIN, "abc");
    let mut c = TcpStream::connect(s.wait_addr()).expect("connect");
    let first = req.iter().position(|&b| b == b'\n').expect("line") + 1;
    c.write_all(&req[..first]).expect("write");
    s.wait_reads(c.local_addr().expect("local"), first);
    assert!(!s.has_log(|l| l.contains("registered")));
    c.write_all(&req[first..]).expect("write");
    s.wait_log(|l| l.contains("registered"), LOG_TIMEOUT);
    // A bare (non-HTTP) request is served at once, without CORS headers.
    let bare = WaitClient::register(&s, b"identifier=abc\n");
    s.push_ids("abc", r#""x""#);
    let got = String::from_utf8(read_to_eof(&mut c)).expect("utf8");
    assert!(got.starts_with(&cors_header(ORIGIN)), "{got:?}");
    assert!(bare.read_body().contains(r#""x""#));
}

#[test]
fn iframe_origin_agent_cluster_is_opt_in() {
    let s = Server::start("");
    let plain = exchange(s.wait_addr(), b"GET /?identifier=IFRAME HTTP/1.1\r\n\r\n");
    assert!(!head_of(&plain).contains("Origin-Agent-Cluster"));
    let s = Server::start("$CONFIG{IFRAME_ORIGIN_AGENT_CLUSTER} = 1;");
    let on = exchange(s.wait_addr(), b"GET /?identifier=IFRAME HTTP/1.1\r\n\r\n");
    assert!(
        on.contains("Cache-Control: public\r\nOrigin-Agent-Cluster: ?0\r\n\r\n"),
        "{on}"
    );
    let script = exchange(s.wait_addr(), b"GET /?identifier=SCRIPT HTTP/1.1\r\n\r\n");
    assert!(!head_of(&script).contains("Origin-Agent-Cluster"));
}

#[test]
fn static_files_vary_on_origin_when_cors_is_configured() {
    let s = Server::start(&format!("$CONFIG{{ALLOWED_ORIGINS}} = [ '{ORIGIN}' ];"));
    let plain = exchange(s.wait_addr(), b"GET /?identifier=SCRIPT HTTP/1.1\r\n\r\n");
    assert!(head_of(&plain).contains("\r\nVary: Origin"), "{plain}");
    assert!(!head_of(&plain).contains("Access-Control-Allow-Origin"));
    let cors = exchange(s.wait_addr(), &get(ORIGIN, "SCRIPT"));
    assert!(
        head_of(&cors).contains(&format!("Access-Control-Allow-Origin: {ORIGIN}\r\n")),
        "{cors}"
    );
    let s = Server::start("");
    let plain = exchange(s.wait_addr(), b"GET /?identifier=SCRIPT HTTP/1.1\r\n\r\n");
    assert!(!head_of(&plain).contains("Vary"));
}
