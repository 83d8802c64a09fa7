//! realplexor: a drop-in replacement for the Dklab Realplexor Comet server.
//!
//! # Layout
//! Data flows one way, from the reactor down:
//! - `reactor`: the mio event loop; owns sockets, storage and timers; the only place they meet.
//! - `conn`: one connection's state machine and socket pumps.
//! - `wait_line`, `in_line`, `commands`: the two lines' request handling and reply bytes
//!   (WAIT long-poll replies; IN pushes and 403s; ONLINE / WATCH / STATS).
//! - `storage`: channel queues, parked listeners, presence, channel timers, events.
//! - `ident`: the `identifier=` marker scanner; `cursor`: cursors and their generator.
//! - `config` (+ `config::perl`): the Perl-syntax config files; `auth`: the users file.
//! - `timers`: O(1) deadline queues; `logging`: the original's log format;
//!   `httpdate`: date formats; `sys`: process-level libc glue; `types`: vocabulary.

pub mod auth;
pub mod cluster;
pub mod commands;
pub mod config;
pub mod conn;
pub mod cursor;
pub mod http;
pub mod httpdate;
pub mod ident;
pub mod in_line;
pub mod logging;
pub mod reactor;
pub mod storage;
pub mod supervisor;
pub mod sys;
pub mod timers;
pub mod types;
pub mod wait_line;
