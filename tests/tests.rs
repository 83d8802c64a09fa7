//! Black-box integration tests: the single test binary (ripgrep layout: `autotests =
//! false` plus one `[[test]]`).
//!
//! Every test starts the real `realplexor` binary on ephemeral loopback ports with a
//! fresh temp dir and a small override conf (`tests/fixtures/*.conf`, mirroring the
//! original's `t/servertest/fixture/*.conf`), speaks raw bytes to the WAIT and IN
//! lines, and reads the server's stdout log. Nothing sleeps for a fixed time: tests
//! wait on the header block, on EOF, or on log lines, each with a deadline.
//!
//! Modules:
//! * `util`: the `Server` and `WaitClient` helpers, log parsing, expected-body builders;
//! * `servertest`: ports of the original `t/servertest/*.phpt` data-path tests, with
//!   their numbers in the names (spec 12.1);
//! * `wait_line`: the identifier marker on the WAIT line (spec 3, 4), overflow,
//!   half-close, static IFRAME markers, listen addresses;
//! * `in_line`: message extraction and the IN line's edge cases (spec 2.3, 6);
//! * `delivery`: cursors, queues, ordering, limiters and fan-out (spec 4.5, 5).
//!
//! Authentication and the ONLINE/WATCH/STATS commands are not covered here yet.

mod delivery;
mod in_line;
mod servertest;
mod util;
mod wait_line;
mod cors;
mod service;
