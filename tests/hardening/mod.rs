//! Hardening: the server keeps working under hostile input and overload, and loses no
//! message (the "Hardening" issue; figures in README.md, "Reliability").
//!
//! One module per job:
//! * `mutation`: the stable-toolchain counterpart of the cargo-fuzz crate in `tests/fuzz/`:
//!   the committed seed corpora mutated by a fixed-seed xorshift, through the library's
//!   public entry points (no server);
//! * `wire_mutants`: the same mutants sent on the wire to the real worker;
//! * `slow_clients`: slow and abusive clients, silent connections, accept bursts;
//! * `descriptors`: descriptor exhaustion (no crash, no spin, service resumes);
//! * `churn`: reconnecting listeners and concurrent publishers, no message lost;
//! * `lying_publishers`: Content-Length lies, publishers that never half-close;
//! * `memory`: distinct ids and connections are forgotten, RSS comes back.
//!
//! This file holds what several of them share: the xorshift `Rng`, a push-and-deliver
//! `round_trip`, and `read_until_closed`. It may use `crate::util` and std only.
//!
//! Every loop is bounded in count and time; nothing sleeps to synchronise (the one sleep
//! is the CPU measurement window of the descriptor test).

mod churn;
mod descriptors;
mod lying_publishers;
mod memory;
mod mutation;
mod slow_clients;
mod wire_mutants;

use crate::util::*;
use std::io::{self, Read};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// xorshift64: tiny, deterministic, good enough to mutate bytes.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

/// One push-and-deliver round trip: register `id`, then time push -> body received.
fn round_trip(s: &Server, id: &str) -> Duration {
    let w = WaitClient::register(s, format!("identifier={id}\n").as_bytes());
    let t0 = Instant::now();
    s.push_ids(id, "\"rt\"");
    let got = w.read_body();
    let dt = t0.elapsed();
    assert!(got.contains("\"rt\""), "round trip body: {got}");
    dt
}

/// Reads until EOF or `deadline`; returns the bytes and whether EOF (or a reset) came.
fn read_until_closed(s: &mut TcpStream, deadline: Instant) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return (out, false);
        }
        s.set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .expect("read timeout");
        match s.read(&mut buf) {
            Ok(0) => return (out, true),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return (out, false)
            }
            Err(_) => return (out, true),
        }
    }
}
