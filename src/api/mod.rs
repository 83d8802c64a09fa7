//! The HTTP API on the IN line (issue 15): publishing with `POST /pub` over keep-alive
//! connections, and the operator endpoints `GET /online`, `/watch`, `/stats.json`,
//! `/metrics` and `/health`. Pure code: bytes in, bytes out; the reactor's `http_api` file
//! drives it on a connection.
//!
//! Files: `route` (which protocol a new IN connection speaks, from its request line),
//! `request` (one request head to an owned `Request`, with the smuggling rules),
//! `reply` (status lines, headers, JSON text), `metrics` (the Prometheus text format and
//! /proc/self).
//! Uses: ident, in_line (Parsed), auth (error texts), cursor.

pub mod metrics;
pub mod reply;
pub mod request;
pub mod route;

pub use request::{parse, Endpoint, Method, Parse, Request};
pub use route::{classify, Route};
