//! Cluster mode's Redis backplane (issue 13): the pieces a worker's reactor uses to append
//! pushes to a Redis Stream and to read it back on its own non-blocking connection.
//!
//! - `resp`: the RESP decoder (incremental, bounded) and command encoder;
//! - `addr`: the `CLUSTER_REDIS` setting parsed into a typed target;
//! - `stream_id`: stream entry IDs and the global cursors derived from them;
//! - `link`: one non-blocking Redis connection driven by the caller's mio loop, with its
//!   options, states, errors and events in `link_types`;
//! - `sock`: the TCP or Unix socket under a link, connected without blocking.
//!
//! Uses: `cursor` (stream_id), `mio` and `log` (link). Nothing here owns a Poll or a thread.

pub mod addr;
pub mod entry;
pub mod link;
mod link_types;
pub mod resp;
pub mod scripts;
mod sock;
pub mod stream_id;
