//! Hardening, mutants on the wire: the seed corpora of `mutation`, mutated the same way,
//! sent in pieces to the real worker's WAIT and IN lines.
//!
//! Data: raw request bytes per connection, up to 48 connections open at once. May use
//! `crate::util` (the server and raw sockets), `super::mutation`'s mutator and std.

use super::mutation::{iterations, mutate, rng_seed, seeds};
use super::{round_trip, Rng};
use crate::util::*;
use std::io::Write;
use std::net::{Shutdown, TcpStream};
use std::time::Duration;

/// The mutants again, but on the wire, against the real worker: each one sent to its line
/// in 1 to 4 separate writes (so the reactor scans and resumes across reads), half-closed
/// or not, and abandoned at a random point with up to 48 of them open at a time. The
/// unit-level mutation tests cannot see the reactor's buffering, resume offsets and
/// early closes; this does. The worker must not exit or panic (a debug build also panics
/// on arithmetic overflow), must close or time out every one, and must still serve.
#[test]
fn mutated_requests_on_the_wire_leave_the_worker_serving() {
    let mut s = Server::start_foreground(
        "$CONFIG{WAIT_TIMEOUT} = 2;\n$CONFIG{IN_TIMEOUT} = 2;\n$CONFIG{WAIT_MAXLEN} = 2048;\n",
    );
    let wait_seeds = seeds("http_head");
    let in_seeds: Vec<Vec<u8>> = seeds("in_body")
        .into_iter()
        .chain(seeds("commands"))
        .collect();
    let n = iterations(50_000) / 80;
    let mut rng = Rng(rng_seed(0x005e_ed0f_3a7e));
    let mut open: std::collections::VecDeque<TcpStream> = std::collections::VecDeque::new();
    for i in 0..n {
        let to_in = rng.below(2) == 0;
        let (pool, addr) = if to_in {
            (&in_seeds, s.in_addr())
        } else {
            (&wait_seeds, s.wait_addr())
        };
        let input = if i < pool.len() {
            pool[i].clone()
        } else {
            let base = rng.below(pool.len());
            mutate(&mut rng, &pool[base])
        };
        let mut c = connect_raw(addr);
        let _ = c.set_nodelay(true);
        let pieces = 1 + rng.below(4);
        let mut at = 0;
        for p in 0..pieces {
            let end = if p + 1 == pieces {
                input.len()
            } else {
                at + rng.below(input.len() - at + 1)
            };
            if c.write_all(&input[at..end]).is_err() {
                break; // the server closed it already (a limit): its answer
            }
            at = end;
        }
        if rng.below(2) == 0 {
            let _ = c.shutdown(Shutdown::Write);
        }
        open.push_back(c);
        if open.len() > 48 {
            open.pop_front();
        }
    }
    open.clear();
    assert!(
        s.is_running(),
        "the worker exited; stderr:\n{}",
        s.stderr_text()
    );
    // Still serving, on both lines, through a full round trip.
    let rt = round_trip(&s, "after_mutants");
    assert!(rt < Duration::from_secs(5), "round trip took {rt:?}");
    assert!(
        s.is_running(),
        "the worker exited; stderr:\n{}",
        s.stderr_text()
    );
    let err = s.stderr_text();
    assert!(!err.contains("panicked"), "the worker panicked:\n{err}");
}
