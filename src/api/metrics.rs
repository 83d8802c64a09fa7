//! `GET /metrics`: the worker's gauges and counters in the Prometheus text format (version
//! 0.0.4), plus the standard `process_*` metrics read from /proc/self.
//!
//! Every sample carries a `worker` label, the worker's index: each worker answers for
//! itself (today there is one worker, index 0; in cluster mode a scrape config lists
//! every worker's IN address and sums over `worker`).
//!
//! Structure: `Snapshot` is filled by the reactor from counters it already keeps (no scan
//! of connections or channels); `render` writes it. `Process::read` reads /proc once per
//! scrape.
//! Uses: nothing internal (libc for the page size and clock ticks).

use std::fmt::Write as _;

/// The numbers a scrape reports, all kept incrementally by the reactor and storage.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    pub worker: usize,
    pub conns_wait: u64,
    pub conns_in: u64,
    pub parked_listeners: u64,
    pub ids: u64,
    pub online_ids: u64,
    pub queued_messages: u64,
    pub queued_bytes: u64,
    pub pushes: u64,
    pub deliveries: u64,
    pub dropped_trim: u64,
    pub dropped_clean: u64,
    pub dropped_overflow: u64,
    pub dropped_in_timeout: u64,
    pub dropped_backpressure: u64,
    pub dropped_unavailable: u64,
    pub deliveries_sse: u64,
    pub deliveries_ws: u64,
    /// Cluster mode: (Redis links up, caught up with the log, last entry applied in ms).
    pub cluster: Option<(bool, bool, u64)>,
    pub reloads: u64,
    pub accept_paused: u64,
}

/// The process metrics, from /proc/self (None where /proc could not be read).
#[derive(Clone, Debug, Default)]
pub struct Process {
    pub resident_bytes: Option<u64>,
    pub open_fds: Option<u64>,
    pub cpu_seconds: Option<f64>,
    pub start_time_seconds: Option<f64>,
}

impl Process {
    pub fn read() -> Process {
        let page = sysconf(libc::_SC_PAGESIZE).unwrap_or(4096);
        let ticks = sysconf(libc::_SC_CLK_TCK).unwrap_or(100).max(1) as f64;
        let resident_bytes = std::fs::read_to_string("/proc/self/statm")
            .ok()
            .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
            .map(|pages| pages.saturating_mul(page));
        let stat = std::fs::read_to_string("/proc/self/stat").ok();
        // Fields after the `(comm)`, which may hold spaces: the first is field 3 (state).
        let fields: Vec<&str> = stat
            .as_deref()
            .and_then(|s| s.rsplit_once(')'))
            .map(|(_, rest)| rest.split_whitespace().collect())
            .unwrap_or_default();
        let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<u64>().ok());
        let cpu_seconds = match (field(14), field(15)) {
            (Some(u), Some(s)) => Some(u.saturating_add(s) as f64 / ticks),
            _ => None,
        };
        let btime = std::fs::read_to_string("/proc/stat").ok().and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("btime "))
                .and_then(|v| v.trim().parse::<u64>().ok())
        });
        let start_time_seconds = match (btime, field(22)) {
            (Some(b), Some(start)) => Some(b as f64 + start as f64 / ticks),
            _ => None,
        };
        Process {
            resident_bytes,
            open_fds: crate::sys::open_fds(),
            cpu_seconds,
            start_time_seconds,
        }
    }
}

fn sysconf(name: libc::c_int) -> Option<u64> {
    // SAFETY: sysconf has no preconditions; it returns -1 for an unknown name.
    let v = unsafe { libc::sysconf(name) };
    u64::try_from(v).ok().filter(|&v| v > 0)
}

struct Out {
    text: String,
    worker: String,
}

impl Out {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.text, "# HELP {name} {help}");
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
    }

    /// One sample; `labels` are extra `key="value"` pairs (values are fixed words).
    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        let _ = write!(self.text, "{name}{{worker=\"{}\"", self.worker);
        for (k, v) in labels {
            let _ = write!(self.text, ",{k}=\"{v}\"");
        }
        let _ = writeln!(self.text, "}} {value}");
    }

    fn one(&mut self, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
        self.family(name, kind, help);
        self.sample(name, &[], value);
    }
}

/// The Content-Type of the text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The scrape text.
pub fn render(s: &Snapshot, p: &Process) -> String {
    let mut o = Out {
        text: String::with_capacity(4096),
        worker: s.worker.to_string(),
    };
    o.family(
        "realplexor_connections",
        "gauge",
        "Open connections, by line (wait, in) and transport.",
    );
    o.sample(
        "realplexor_connections",
        &[("line", "wait"), ("transport", "longpoll")],
        s.conns_wait,
    );
    o.sample(
        "realplexor_connections",
        &[("line", "in"), ("transport", "http")],
        s.conns_in,
    );
    o.one(
        "realplexor_parked_listeners",
        "gauge",
        "WAIT connections registered and waiting for data.",
        s.parked_listeners,
    );
    o.one(
        "realplexor_ids",
        "gauge",
        "Ids (channels) known: with a queue, listeners or presence.",
        s.ids,
    );
    o.one(
        "realplexor_online_ids",
        "gauge",
        "Ids online (a listener within OFFLINE_TIMEOUT).",
        s.online_ids,
    );
    o.one(
        "realplexor_queued_messages",
        "gauge",
        "Messages in the id queues (a message pushed to n ids counts n times).",
        s.queued_messages,
    );
    o.one(
        "realplexor_queued_bytes",
        "gauge",
        "Body bytes of the queued messages (counted per queue entry).",
        s.queued_bytes,
    );
    o.one(
        "realplexor_pushes_total",
        "counter",
        "Pushes applied.",
        s.pushes,
    );
    o.family(
        "realplexor_deliveries_total",
        "counter",
        "Replies or events written to WAIT listeners, by transport.",
    );
    for (t, n) in [
        (
            "longpoll",
            s.deliveries
                .saturating_sub(s.deliveries_sse + s.deliveries_ws),
        ),
        ("sse", s.deliveries_sse),
        ("ws", s.deliveries_ws),
    ] {
        o.sample("realplexor_deliveries_total", &[("transport", t)], n);
    }
    o.family(
        "realplexor_messages_dropped_total",
        "counter",
        "Messages or pushes dropped by a limit, by reason.",
    );
    for (reason, n) in [
        ("trim", s.dropped_trim),
        ("clean", s.dropped_clean),
        ("overflow", s.dropped_overflow),
        ("in_timeout", s.dropped_in_timeout),
        ("backpressure", s.dropped_backpressure),
        ("unavailable", s.dropped_unavailable),
    ] {
        o.sample(
            "realplexor_messages_dropped_total",
            &[("reason", reason)],
            n,
        );
    }
    if let Some((up, caught_up, last_ms)) = s.cluster {
        o.one(
            "realplexor_cluster_redis_up",
            "gauge",
            "Cluster mode: 1 while both Redis links of this worker are up.",
            u64::from(up),
        );
        o.one(
            "realplexor_cluster_caught_up",
            "gauge",
            "Cluster mode: 1 once the retained message log is applied (WAIT is served).",
            u64::from(caught_up),
        );
        o.one(
            "realplexor_cluster_last_entry_ms",
            "gauge",
            "Cluster mode: the time part of the last log entry applied (ms since the epoch); its distance to now is the log lag when pushes flow.",
            last_ms,
        );
    }
    o.one(
        "realplexor_reloads_total",
        "counter",
        "SIGHUP reloads applied.",
        s.reloads,
    );
    o.one(
        "realplexor_accept_paused_total",
        "counter",
        "Times accepting paused at the descriptor limit or its reserve.",
        s.accept_paused,
    );
    if let Some(v) = p.resident_bytes {
        o.one(
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size in bytes.",
            v,
        );
    }
    if let Some(v) = p.open_fds {
        o.one(
            "process_open_fds",
            "gauge",
            "Number of open file descriptors.",
            v,
        );
    }
    if let Some(v) = p.cpu_seconds {
        o.one(
            "process_cpu_seconds_total",
            "counter",
            "Total user and system CPU time spent in seconds.",
            v,
        );
    }
    if let Some(v) = p.start_time_seconds {
        o.one(
            "process_start_time_seconds",
            "gauge",
            "Start time of the process since unix epoch in seconds.",
            v,
        );
    }
    o.text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_format() {
        let s = Snapshot {
            pushes: 7,
            conns_wait: 2,
            ..Snapshot::default()
        };
        let t = render(&s, &Process::read());
        assert!(t.contains(
            "# TYPE realplexor_pushes_total counter\nrealplexor_pushes_total{worker=\"0\"} 7\n"
        ));
        assert!(t.contains(
            "realplexor_connections{worker=\"0\",line=\"wait\",transport=\"longpoll\"} 2\n"
        ));
        assert!(t.contains(
            "realplexor_messages_dropped_total{worker=\"0\",reason=\"backpressure\"} 0\n"
        ));
        assert!(t.contains("process_resident_memory_bytes{worker=\"0\"} "));
        assert!(t.contains("process_start_time_seconds{worker=\"0\"} "));
        assert!(t.ends_with('\n'));
    }
}
