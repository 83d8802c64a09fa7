//! Shared helpers for the black-box tests: a `Server` that runs the real
//! `realplexor` binary on ephemeral ports, raw-byte WAIT and IN clients, and
//! log inspection.
//!
//! One module per job, all re-exported here so that a test file needs only
//! `use crate::util::*;`:
//! * `server`: starting the real binary (its temp dir, conf and stdout/stderr readers),
//!   the `Server` accessors and process control (signals, exit, stderr);
//! * `exits`: runs that must end by themselves (failed starts), with their output;
//! * `log`: waiting on and parsing the server's stdout log (`Entry`, `Stats`, `norm`);
//! * `wire`: raw-socket clients: `WaitClient`, IN pushes, barriers, text replies;
//! * `expect`: expected reply bodies and the original harness's masks;
//! * `fixtures`: the fixture confs and the servers started on them;
//! * `tools`: external tools (htpasswd, openssl, ...) an auth test runs;
//! * `selftest`: the helpers themselves, on fixed inputs.
//!
//! Structure: `Server { child, dir, log: Arc<Log { lines: Vec<String> } >, wait_addrs, in_addrs }`.
//! The child's stdout is read line by line by a thread into `Log`; waiters block on a
//! `Condvar` with a deadline, never on a fixed sleep.
//!
//! How tests synchronise (see also `tests/tests.rs`):
//! * a WAIT client is registered once it has received the header block (4.4);
//! * an IN push is processed once the server closed the connection (EOF), because the
//!   server handles a push at the publisher's EOF and closes right after;
//! * "nothing happened" is proven with `settle`: wait until the server logged the
//!   `read N bytes` lines for a peer, then run an IN round trip (`barrier`). The server
//!   is single-threaded, so once the barrier's EOF arrives the handler of the earlier read
//!   has completed.

mod exits;
mod expect;
mod fixtures;
mod log;
mod redis;
mod selftest;
mod server;
mod tools;
mod wire;

pub use exits::*;
pub use expect::*;
pub use fixtures::*;
pub use log::*;
pub use redis::{free_port, Redis};
pub use server::*;
pub use tools::*;
pub use wire::*;
