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
//! * `util/`: the `Server` and `WaitClient` helpers, log parsing, expected-body builders
//!   (one file per job: server, log, wire, expect, fixtures, tools; all re-exported);
//! * `servertest`: ports of the original `t/servertest/*.phpt` data-path tests, with
//!   their numbers in the names (spec 12.1);
//! * `wait_line`: the identifier marker on the WAIT line (spec 3, 4), overflow,
//!   half-close, static IFRAME markers, listen addresses;
//! * `in_line`: message extraction and the IN line's edge cases (spec 2.3, 6);
//! * `delivery`: cursors, queues, ordering, limiters and fan-out (spec 4.5, 5);
//! * `commands`, `presence`, `auth`: ONLINE / WATCH / STATS, online tracking and events,
//!   the users file and every password scheme (spec 6.3, 7, 8; 12.1 #13-#31);
//! * `php_api`: the original PHP client's exact requests and reply checks (spec 12.2);
//! * `cors`, `service`: CORS on the WAIT line; reload, stop, supervisor (spec 9.4-9.6, 14);
//! * `startup`: a start is reported only once the first worker listens (issue 18);
//! * `config_checks`: what a config file says is applied or reported with file:line (issue 18);
//! * `coalesce`: the COALESCE_MS window (held long-poll requests share one reply);
//! * `gap`, `snapshot`: the gap signal; SNAPSHOT_FILE across restarts;
//! * `http_api`: the HTTP API on the IN line (publish, keep-alive, errors, credentials,
//!   JSON commands, health, metrics through the real Prometheus parser);
//! * `unix_sockets`: `unix:/path` listen addresses on both lines (issue 15);
//! * `loadtest`: each loadtest scenario once, small, against the real binary;
//! * `cluster_await`: cluster-mode requests that wait for Redis (pipelined HTTP pushes,
//!   IN_TIMEOUT, a burst of presence transitions);
//! * `cluster_link`: the cluster mode's Redis link (library level) against a real
//!   `redis-server` it starts, and against fake servers;
//! * `workers`: WORKERS > 1, the process side: shared ports, restarts, SIGTERM, the pid
//!   file and SIGHUP resizing (issue 13);
//! * `hardening/`: hostile input and overload (mutations, slow clients, descriptors,
//!   churn, lying publishers, memory), one file per job.

mod auth;
mod batching;
mod cluster;
mod cluster_await;
mod cluster_link;
mod coalesce;
mod commands;
mod config_checks;
mod cors;
mod delivery;
mod first_week;
mod gap;
mod hardening;
mod http_api;
mod http_metrics;
mod in_line;
mod jsonp;
mod loadtest;
mod php_api;
mod presence;
mod servertest;
mod service;
mod snapshot;
mod sse;
mod startup;
mod unix_sockets;
mod util;
mod wait_line;
mod websocket;
mod workers;
