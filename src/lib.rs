//! realplexor: a drop-in replacement for the Dklab Realplexor Comet server.
//!
//! # Layout
//! Data flows one way, from the reactor down:
//! - `reactor`: the mio event loop; owns sockets, storage and timers; the only place they
//!   meet. One file per job: `mod.rs` (the loop and routing), `listen` (bind, accept),
//!   `wait` (a WAIT request to parked or answered), `publish` (an IN request to its push or
//!   command), `source` (the message source seam: where a push goes, cursor generation),
//!   `deliver` (applying a message, writing deliveries), `close` (writes, final replies,
//!   closing), `control` (signals, reload, stop), `housekeeping` (timers, memory).
//! - `conn`: one connection's state machine and socket pumps; `net`: its socket and the
//!   listeners (TCP or `unix:/path`).
//! - `transport`: what a parked listener is sent and whether it stays (`longpoll`: the
//!   original's reply body, then close).
//! - `in_line`, `commands`: IN request parsing (marker, body, 403s) and ONLINE / WATCH / STATS.
//! - `api`: the HTTP API on the IN line (`POST /pub`, `/online`, `/watch`, `/stats.json`,
//!   `/metrics`, `/health`): routing by request line, request heads, replies, metrics text;
//!   `reactor::http_api` drives it on a connection.
//! - `storage`: channel queues, parked listeners, presence, channel timers, events, gaps;
//!   `snapshot`: the SNAPSHOT_FILE format.
//! - `ident`: the `identifier=` marker scanner; `cursor`: cursors and their generator.
//! - `config` (+ `config::perl`): the Perl-syntax config files; `auth`: the users file.
//! - `timers`: O(1) deadline queues; `logging`: the original's log format;
//!   `httpdate`: date formats; `sys`: process-level libc glue; `types`: vocabulary.
//! - `supervisor`: the restarting watchdog of the WORKERS processes; `ready`: the first
//!   workers' startup report; `worker_id`: which worker this process is.
//! - `base64`: the standard alphabet (WebSocket keys, Basic auth, `{SHA}` hashes).
//! - `sse`, `websocket`: the streaming transports' protocol parts (event encoding; the
//!   handshake, frames, message assembly and client commands), free of sockets.
//! - `counters`: the worker's event counters.
//!
//! Comments cite the protocol as `spec N.N`: sections of docs/protocol.md (appendix C there).

pub mod api;
pub mod auth;
pub mod base64;
pub mod cluster;
pub mod commands;
pub mod config;
pub mod conn;
pub mod counters;
pub mod cursor;
pub mod http;
pub mod httpdate;
pub mod ident;
pub mod in_line;
pub mod logging;
pub mod net;
pub mod reactor;
pub mod ready;
pub mod snapshot;
pub mod sse;
pub mod storage;
pub mod supervisor;
pub mod sys;
#[cfg(test)]
mod testutil;
pub mod timers;
pub mod transport;
pub mod types;
pub mod websocket;
pub mod worker_id;
