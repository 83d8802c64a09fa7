//! The public vocabulary of a Redis link (`cluster::link`): its tunables (`Options`), where
//! it is (`State`), why it dropped or refused a command (`LinkError`, with the text logs
//! and 503 bodies show) and what its caller learns (`Event<T>`, `T` the caller's tag).
//! Uses: `cluster::resp` (reply values, protocol errors).

use super::resp::{self, Value};
use std::fmt;
use std::time::{Duration, Instant};

/// Tunables; `Options::default()` suits a worker.
#[derive(Clone, Debug)]
pub struct Options {
    pub connect_timeout: Duration,
    pub reply_timeout: Duration,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// `CLIENT SETNAME` during the handshake (no spaces), e.g. `realplexor-w3`.
    pub client_name: Option<String>,
    /// Largest reply accepted, in bytes.
    pub max_reply: usize,
    /// Most unsent command bytes before `send` refuses.
    pub max_out: usize,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            connect_timeout: Duration::from_secs(2),
            reply_timeout: Duration::from_secs(5),
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
            client_name: None,
            max_reply: 64 << 20,
            max_out: 64 << 20,
        }
    }
}

/// Where the link is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Connecting,
    Handshake,
    Ready,
    /// No connection; the next attempt is due at `retry_at` (on a `tick`).
    Down {
        retry_at: Instant,
    },
}

/// Why the link dropped, or why a command failed or was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkError {
    /// Resolving or connecting failed (refused, unreachable, no such socket...).
    Connect(String),
    ConnectTimeout,
    Io(String),
    /// The server closed the connection.
    Closed,
    /// The peer sent bytes that are not RESP.
    Protocol(resp::Error),
    ReplyTooLarge,
    ReplyTimeout,
    /// A handshake step was refused, e.g. `AUTH rejected: WRONGPASS ...`.
    Handshake(String),
    /// A reply arrived with no command waiting for it.
    Unexpected,
    /// `send` while the link is down.
    Down,
    /// `send` past `max_out`.
    Full,
    /// `close` was called.
    Shutdown,
}

impl fmt::Display for LinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinkError::Connect(m) => write!(f, "connect failed: {m}"),
            LinkError::ConnectTimeout => f.write_str("connect timed out"),
            LinkError::Io(m) => write!(f, "I/O error: {m}"),
            LinkError::Closed => f.write_str("connection closed by the server"),
            LinkError::Protocol(e) => write!(f, "protocol error (is this a Redis server?): {e}"),
            LinkError::ReplyTooLarge => f.write_str("reply over the size limit"),
            LinkError::ReplyTimeout => f.write_str("no reply within the reply timeout"),
            LinkError::Handshake(m) => write!(f, "handshake failed: {m}"),
            LinkError::Unexpected => f.write_str("reply with no command waiting for it"),
            LinkError::Down => f.write_str("Redis link is down"),
            LinkError::Full => f.write_str("Redis link send buffer is full"),
            LinkError::Shutdown => f.write_str("Redis link closed"),
        }
    }
}

impl std::error::Error for LinkError {}

/// What the caller learns from `next_event`.
#[derive(Debug, PartialEq)]
pub enum Event<T> {
    /// The handshake succeeded; commands flow.
    Up,
    /// The reply to the command sent with this tag.
    Reply(T, Value),
    /// The command sent with this tag got no reply: the link dropped first.
    Failed(T, LinkError),
    /// The link was up and dropped; it reconnects by itself.
    Down(LinkError),
}
