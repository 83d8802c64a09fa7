//! WebSocket (RFC 6455) for the WAIT line, as pure protocol code: bytes in, bytes out.
//! No sockets and no reactor here; the transport layer owns the connection and calls in.
//!
//! - `handshake`: is a request head an upgrade; the 101 / 426 / 400 reply bytes.
//! - `frame`: the incremental client-frame decoder, the server-frame encoders, close codes.
//! - `message`: the per-connection assembler: fragments joined, UTF-8 checked across them,
//!   control frames between them, close payloads checked.
//! - `commands`: a client text message as a `subscribe` / `unsubscribe` command.
//!
//! Memory: nothing here is kept per connection except `message::Assembler`, which holds no
//! heap buffer between messages (a few words while idle).
//! Uses: cursor (cursors in commands); the `sha1`, `httparse` and `serde_json` crates.

pub mod commands;
pub mod frame;
pub mod handshake;
pub mod message;
