//! Hardening, stable mutation tests: the committed seed corpora
//! (`tests/fuzz/seeds/<target>/`), mutated by a fixed-seed xorshift (`super::Rng`), go
//! through the same public entry points as the cargo-fuzz targets on every CI run
//! (`HARDENING_ITERS` scales the iteration count, `HARDENING_SEED` picks other mutants).
//! A failure prints the input as a Rust byte string, to be pasted into `fuzz_regressions`.
//!
//! Data: seeds and mutants are byte vectors of at most 4 KiB. No server: this may use the
//! `realplexor` library and std; `mutate`, `seeds`, `iterations` and `rng_seed` serve
//! `wire_mutants` too.

use super::Rng;
use realplexor::auth::Users;
use realplexor::commands::{self, find};
use realplexor::config::perl::{eval_file, ConfigMap, Value};
use realplexor::config::{self, DEFAULT_CONF};
use realplexor::http::{self, parse_head, Head};
use realplexor::ident::{items, scan, Scan};
use realplexor::in_line::{body_of, Parsed};
use realplexor::sse;
use realplexor::storage::Storage;
use realplexor::websocket::commands::{self as ws_commands, Command as WsCommand};
use realplexor::websocket::frame as ws_frame;
use realplexor::websocket::handshake::{self, Handshake};
use realplexor::websocket::message::{Assembler, Message};
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Bytes and tokens that matter to the parsers.
const TOKENS: &[&[u8]] = &[
    b"identifier=",
    b"\r\n\r\n",
    b"\n\n",
    b"\r\n",
    b"Referer: ",
    b"online ",
    b"WATCH ",
    b"stats",
    b"12345.67:",
    b"*",
    b",",
    b"@",
    b"user:password@",
    b"HTTP/1.1",
    b"Origin: ",
    b"$CONFIG{",
    b"} = ",
    b" => ",
    b"[ '",
    b"' ]",
    b" x 99999",
    b" ** 400",
    b"(((((((((",
    b"sub {",
    b"__END__",
    b"q{",
    b"\"",
    b"'",
    b"\\",
    b"#",
    b"\xff\xfe",
    b"\0",
];

/// Single bytes worth trying in place of another.
const INTERESTING: &[u8] = b"\0\r\n \t:,.*@=_-%\"'$#{}[]()0189aZ\x7f\xff";

pub(super) fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    const MAX: usize = 4096;
    let mut v = seed.to_vec();
    for _ in 0..1 + rng.below(6) {
        let len = v.len();
        match rng.below(8) {
            0 if len > 0 => {
                let i = rng.below(len);
                v[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                v[i] = INTERESTING[rng.below(INTERESTING.len())];
            }
            2 => {
                let i = rng.below(len + 1);
                v.insert(i, rng.next() as u8);
            }
            3 if len > 0 => {
                let i = rng.below(len);
                let n = 1 + rng.below((len - i).min(64));
                v.drain(i..i + n);
            }
            4 if len > 0 => {
                let i = rng.below(len);
                let n = 1 + rng.below((len - i).min(256));
                let chunk = v[i..i + n].to_vec();
                let at = rng.below(len + 1);
                v.splice(at..at, chunk);
            }
            5 => {
                let t = TOKENS[rng.below(TOKENS.len())];
                let at = rng.below(len + 1);
                v.splice(at..at, t.iter().copied());
            }
            6 if len > 0 => v.truncate(rng.below(len)),
            _ => {
                let n = rng.below(8);
                let at = rng.below(len + 1);
                let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                v.splice(at..at, bytes);
            }
        }
    }
    v.truncate(MAX);
    v
}

pub(super) fn seeds(target: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz/seeds")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    files.sort();
    let out: Vec<Vec<u8>> = files
        .iter()
        .map(|f| std::fs::read(f).expect("read seed"))
        .collect();
    assert!(!out.is_empty(), "no seeds in {}", dir.display());
    out
}

pub(super) fn iterations(default: usize) -> usize {
    std::env::var("HARDENING_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The xorshift seed of a test: its fixed `default`, or, to explore beyond what CI runs,
/// that mixed with `HARDENING_SEED=N` (never 0, which xorshift cannot leave).
pub(super) fn rng_seed(default: u64) -> u64 {
    let extra = std::env::var("HARDENING_SEED")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    match default ^ extra.wrapping_mul(0x9e37_79b9_7f4a_7c15) {
        0 => default,
        x => x,
    }
}

/// Runs `check` on every seed and then on `n` mutants; on a panic, reports the input.
fn mutation_run(target: &str, n: usize, seed: u64, check: impl Fn(&[u8])) {
    let seeds = seeds(target);
    let mut rng = Rng(rng_seed(seed));
    let inputs = seeds.iter().cloned().chain((0..n).map(|_| {
        let base = &seeds[rng.below(seeds.len())];
        mutate(&mut rng, base)
    }));
    for (i, input) in inputs.enumerate() {
        if panic::catch_unwind(AssertUnwindSafe(|| check(&input))).is_err() {
            panic!(
                "{target}: input #{i} panicked: b\"{}\"",
                input.escape_ascii()
            );
        }
    }
}

const IDENTS: [&[u8]; 4] = [b"identifier", b"id", b"x", b"_ident_"];

/// The `ident` fuzz target's checks: no panic, the resume contract, valid items.
fn check_ident(data: &[u8]) {
    let [split, which, buf @ ..] = data else {
        return;
    };
    let ident = IDENTS[usize::from(*which) % IDENTS.len()];
    let cut = buf.len() * usize::from(*split) / 256;
    let full = scan(buf, ident, 0);
    if let Scan::NotYet { resume } = scan(&buf[..cut], ident, 0) {
        match (scan(buf, ident, resume), full) {
            (Scan::Found(a), Scan::Found(b)) => assert_eq!(a, b),
            (Scan::NotYet { .. }, Scan::NotYet { .. }) => {}
            (a, b) => panic!("resume {resume}: {a:?} vs {b:?}"),
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
    let _ = scan(buf, ident, usize::from(*split) * 64);
}

fn check_http(data: &[u8]) {
    if let Head::Complete {
        method,
        origin,
        request_headers,
    } = parse_head(data)
    {
        let _ = method.len();
        if let Some(o) = origin {
            let _ = http::origin_allowed(o, &["*".to_string()]);
            let _ = http::preflight(o, request_headers);
            let _ = http::cors_headers(o);
        }
    }
    if let Some(body) = body_of(data) {
        assert!(data.ends_with(body));
    }
}

fn check_commands(data: &[u8]) {
    let early = find(data, false);
    let at_eof = find(data, true);
    if early.is_some() {
        assert!(
            at_eof.is_some(),
            "a command before a blank line is one at EOF"
        );
    }
    if let Some(cmd) = at_eof {
        let _ = cmd.describe();
        let storage = Storage::new();
        let _ = commands::answer(&cmd, &storage, None);
        let _ = commands::answer(&cmd, &storage, Some("user"));
    }
}

fn check_in_body(data: &[u8]) {
    if let Scan::Found(m) = scan(data, b"identifier", 0) {
        let p = Parsed::from_marker(&m);
        let _ = p.describe();
        let _ = p.creds();
    }
    let _ = find(data, true);
    if let Some(body) = body_of(data) {
        assert!(data.ends_with(body));
        assert!(body.len() + 2 <= data.len());
    }
}

fn default_map() -> &'static ConfigMap {
    static D: OnceLock<ConfigMap> = OnceLock::new();
    D.get_or_init(|| {
        let mut m = ConfigMap::new();
        eval_file(DEFAULT_CONF, "/defaults.conf", &mut m).expect("defaults evaluate");
        m
    })
}

/// The `config` fuzz target's work; `load_dir` also runs the whole `config::load` on the
/// text when it leaves the file keys alone (so it never reads an arbitrary file).
fn check_config(data: &[u8], load_dir: Option<&Path>) {
    let text = String::from_utf8_lossy(data);
    let mut map = default_map().clone();
    let ok = eval_file(&text, "/fuzz/override.conf", &mut map).is_ok();
    for v in map.values() {
        let _ = v.to_perl_string();
        let _ = v.to_f64();
        let _ = v.is_true();
    }
    let _ = config::substitute(b"$WAIT_TIMEOUT $IDENTIFIER $NOPE $ $1", &map);
    let _ = Users::parse(&text);
    let files_untouched = ["USERS_FILE", "IFRAME_FILE", "SCRIPT_FILE"]
        .iter()
        .all(|k| map.get(*k) == default_map().get(*k));
    let small = !map
        .values()
        .any(|v| matches!(v, Value::Str(s) if s.len() > 1 << 20));
    if let Some(dir) = load_dir.filter(|_| ok && files_untouched && small) {
        let path = dir.join("override.conf");
        std::fs::write(&path, data).expect("write override");
        let _ = config::load(Some(&path), dir);
    }
}

#[test]
fn mutation_ident_scan_and_items() {
    mutation_run(
        "ident",
        iterations(50_000),
        0x9E37_79B9_7F4A_7C15,
        check_ident,
    );
}

#[test]
fn mutation_http_head() {
    mutation_run(
        "http_head",
        iterations(50_000),
        0xD1B5_4A32_D192_ED03,
        check_http,
    );
}

#[test]
fn mutation_commands_find() {
    mutation_run(
        "commands",
        iterations(50_000),
        0x94D0_49BB_1331_11EB,
        check_commands,
    );
}

#[test]
fn mutation_in_line_body() {
    mutation_run(
        "in_body",
        iterations(50_000),
        0xBF58_476D_1CE4_E5B9,
        check_in_body,
    );
}

#[test]
fn mutation_config_reader() {
    let dir = std::env::temp_dir().join(format!("realplexor-mut-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    // The Perl evaluator is the slowest entry point; every 16th input also runs the whole
    // loader through a file.
    let count = std::cell::Cell::new(0usize);
    mutation_run(
        "config",
        iterations(50_000) / 5,
        0x2545_F491_4F6C_DD1D,
        |d| {
            count.set(count.get() + 1);
            check_config(d, count.get().is_multiple_of(16).then_some(dir.as_path()));
        },
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Inputs the fuzzers found, kept as regressions (see tests/fuzz/RESULTS.md).
#[test]
fn fuzz_regressions() {
    // ident: the resume hint of a grown buffer may differ from the prefix's; only the
    // marker found must agree (a mistaken assertion in the first ident target).
    check_ident(&[255, 1, 101, 10, 110, 13, 9, 105, 10]);
}

/// The `ws_frame` target's reader: `stream` read in pieces of `piece` bytes through the
/// assembler, each text message through the command parser; what came out, in order, and
/// the bytes left over (`None` after a close verdict).
fn ws_run(stream: &[u8], max: usize, piece: usize) -> (Vec<String>, Option<usize>) {
    let mut a = Assembler::new();
    let mut pending: Vec<u8> = Vec::new();
    let mut seen = Vec::new();
    let mut out = Vec::new();
    for chunk in stream.chunks(piece.max(1)) {
        pending.extend_from_slice(chunk);
        loop {
            match a.next_message(&pending, max) {
                Ok((used, m)) => {
                    assert!(used <= pending.len());
                    pending.drain(..used);
                    let Some(m) = m else { break };
                    match &m {
                        Message::Text(t) => {
                            assert!(t.len() <= max);
                            match ws_commands::parse(t) {
                                Ok(WsCommand::Subscribe(v)) => {
                                    assert!(v.len() <= ws_commands::MAX_IDS);
                                    assert!(v.iter().all(|(id, _)| ws_commands::is_id(id)));
                                }
                                Ok(WsCommand::Unsubscribe(v)) => {
                                    assert!(v.len() <= ws_commands::MAX_IDS);
                                    assert!(v.iter().all(|id| ws_commands::is_id(id)));
                                }
                                Err(e) => ws_frame::close(e.code, &e.message, &mut out),
                            }
                        }
                        Message::Ping(p) => ws_frame::pong(p, &mut out),
                        Message::Pong(p) => assert!(p.len() <= ws_frame::MAX_CONTROL),
                        Message::Close(Some(c)) => ws_frame::close(*c, "", &mut out),
                        Message::Close(None) => ws_frame::close_empty(&mut out),
                    }
                    seen.push(format!("{m:?}"));
                }
                Err(close) => {
                    ws_frame::close(close.code, close.reason, &mut out);
                    seen.push(format!("{close:?}"));
                    return (seen, None);
                }
            }
        }
    }
    (seen, Some(pending.len()))
}

/// The `ws_frame` fuzz target's checks: byte 0 picks the size limit, byte 1 the read size;
/// read in pieces, the stream gives what it gives read at once. The whole input also goes
/// through the WebSocket handshake and the SSE request check as a head.
fn check_ws_frame(data: &[u8]) {
    match handshake::check(data) {
        Handshake::Upgrade { accept, .. } => {
            handshake::switching_protocols(&accept, b"", &mut Vec::new())
        }
        Handshake::Reject(r) => handshake::reject_reply(r, b"", &mut Vec::new()),
        Handshake::Partial | Handshake::NotWebSocket => {}
    }
    if let Some(r) = sse::sse_request(data) {
        sse::event(r.last_event_id, Some(b"gap"), data, &mut Vec::new());
    }
    let [limit, piece, stream @ ..] = data else {
        return;
    };
    let max = [0usize, 16, 125, 5120][usize::from(*limit & 3)];
    if let Ok(Some((f, used))) = ws_frame::decode(stream, max) {
        assert!(used <= stream.len() && f.payload.len() <= max);
    }
    let whole = ws_run(stream, max, stream.len());
    if *piece != 0 {
        assert_eq!(ws_run(stream, max, usize::from(*piece)), whole);
    }
}

#[test]
fn mutation_websocket_frames_commands_and_sse() {
    mutation_run(
        "ws_frame",
        iterations(50_000),
        0x3C6E_F372_FE94_F82B,
        check_ws_frame,
    );
}
