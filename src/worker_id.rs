//! Which worker this process is: its index among the host's workers and how many there
//! were when the supervisor started it (`WORKERS`, issue 13).
//!
//! Data: two environment variables the supervisor sets on each worker it spawns,
//! `REALPLEXOR_WORKER` (the index, 0..N-1) and `REALPLEXOR_WORKERS` (N), read once and
//! kept. A process without them (the `--foreground` worker, unit tests) is worker 0 of 1;
//! a value that does not parse counts as absent, and an index outside 0..N reads as 0.
//! Uses: std only.

use std::sync::OnceLock;

/// Environment variable carrying the worker's index.
pub const INDEX_ENV: &str = "REALPLEXOR_WORKER";
/// Environment variable carrying the number of workers the supervisor runs.
pub const COUNT_ENV: &str = "REALPLEXOR_WORKERS";

static ID: OnceLock<(usize, usize)> = OnceLock::new();

fn id() -> (usize, usize) {
    *ID.get_or_init(|| {
        let read = |key: &str| {
            std::env::var(key)
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok())
        };
        parse(read(INDEX_ENV), read(COUNT_ENV))
    })
}

/// The (index, count) pair from the two raw values.
fn parse(index: Option<usize>, count: Option<usize>) -> (usize, usize) {
    let count = count.unwrap_or(1).max(1);
    let index = index.filter(|i| *i < count).unwrap_or(0);
    (index, count)
}

/// This worker's index, 0..`worker_count()`.
pub fn worker_index() -> usize {
    id().0
}

/// How many workers share this host's listening addresses (1 unless a supervisor runs
/// several). More than one makes the listeners SO_REUSEPORT.
pub fn worker_count() -> usize {
    id().1
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn absent_or_odd_values_mean_worker_0_of_1() {
        assert_eq!(parse(None, None), (0, 1));
        assert_eq!(parse(Some(3), None), (0, 1));
        assert_eq!(parse(Some(1), Some(0)), (0, 1));
        assert_eq!(parse(Some(2), Some(2)), (0, 2));
        assert_eq!(parse(Some(1), Some(4)), (1, 4));
    }
}
