//! Small statistics: latency summaries, a downsampled distribution for the chart, and
//! the live progress line.
//!
//! Structure: `Summary { n, min, p50, p90, p99, max, mean }` in milliseconds, built from
//! nanosecond samples; `Progress` rewrites one stderr line at most 5 times a second.
//!
//! Uses: serde_json.

use serde_json::{json, Value};
use std::io::Write;

/// Nearest-rank percentile of sorted samples (`p` in 0..=100); 0 for no samples.
pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    let idx = rank.clamp(1, sorted.len()) - 1;
    sorted.get(idx).copied().unwrap_or(0)
}

/// Latency summary of nanosecond samples, reported in milliseconds.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub n: usize,
    pub min: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
}

pub fn ms(ns: u64) -> f64 {
    (ns as f64 / 1e6 * 1000.0).round() / 1000.0
}

impl Summary {
    pub fn of(samples: &mut [u64]) -> Summary {
        samples.sort_unstable();
        let n = samples.len();
        let sum: u128 = samples.iter().map(|&s| s as u128).sum();
        Summary {
            n,
            min: ms(samples.first().copied().unwrap_or(0)),
            p50: ms(percentile(samples, 50.0)),
            p90: ms(percentile(samples, 90.0)),
            p99: ms(percentile(samples, 99.0)),
            max: ms(samples.last().copied().unwrap_or(0)),
            mean: if n == 0 {
                0.0
            } else {
                ms((sum / n as u128) as u64)
            },
        }
    }

    pub fn to_json(&self) -> Value {
        json!({"n": self.n, "min_ms": self.min, "p50_ms": self.p50, "p90_ms": self.p90,
               "p99_ms": self.p99, "max_ms": self.max, "mean_ms": self.mean})
    }
}

/// The distribution as 101 points (percentiles 0..=100) in ms, for the chart.
pub fn cdf_ms(sorted: &[u64]) -> Vec<f64> {
    if sorted.is_empty() {
        return Vec::new();
    }
    (0..=100)
        .map(|p| {
            if p == 0 {
                ms(sorted.first().copied().unwrap_or(0))
            } else {
                ms(percentile(sorted, p as f64))
            }
        })
        .collect()
}

/// A rate per second, rounded to one decimal.
pub fn per_sec(count: u64, ns: u64) -> f64 {
    if ns == 0 {
        return 0.0;
    }
    (count as f64 * 1e9 / ns as f64 * 10.0).round() / 10.0
}

/// The live stderr line: `label: open N, delivered M, R/s`.
pub struct Progress {
    label: String,
    quiet: bool,
    last: u64,
    start: u64,
    last_count: u64,
    last_t: u64,
    /// Appended to the line (e.g. the server's memory).
    extra: String,
}

impl Progress {
    pub fn new(label: &str, quiet: bool) -> Progress {
        let now = crate::clock::now_ns();
        Progress {
            label: label.to_string(),
            quiet,
            last: 0,
            start: now,
            last_count: 0,
            last_t: now,
            extra: String::new(),
        }
    }

    /// Text shown at the end of the line from the next redraw on.
    pub fn set_extra(&mut self, extra: String) {
        self.extra = extra;
    }

    /// Redraws the line if 200 ms have passed; `count` drives the rate.
    pub fn update(&mut self, open: u64, delivered: u64, count: u64) {
        let now = crate::clock::now_ns();
        if self.quiet || now.saturating_sub(self.last) < 200_000_000 {
            return;
        }
        let rate = per_sec(
            count.saturating_sub(self.last_count),
            now.saturating_sub(self.last_t),
        );
        self.last = now;
        self.last_count = count;
        self.last_t = now;
        let mut e = std::io::stderr().lock();
        let _ = write!(
            e,
            "\r\x1b[K{} [{:.1}s]: open {open}, delivered {delivered}, {rate}/s{}",
            self.label,
            now.saturating_sub(self.start) as f64 / 1e9,
            self.extra
        );
        let _ = e.flush();
    }

    /// Ends the line.
    pub fn finish(&mut self, what: &str) {
        if !self.quiet {
            eprintln!("\r\x1b[K{}: {what}", self.label);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_nearest_rank() {
        let s: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&s, 50.0), 50);
        assert_eq!(percentile(&s, 99.0), 99);
        assert_eq!(percentile(&s, 100.0), 100);
        assert_eq!(percentile(&s, 0.0), 1);
        assert_eq!(percentile(&[], 50.0), 0);
        assert_eq!(percentile(&[7], 99.0), 7);
    }

    #[test]
    fn summary_in_ms() {
        let mut s = vec![3_000_000, 1_000_000, 2_000_000, 10_000_000];
        let sum = Summary::of(&mut s);
        assert_eq!(sum.n, 4);
        assert_eq!(sum.min, 1.0);
        assert_eq!(sum.p50, 2.0);
        assert_eq!(sum.max, 10.0);
        assert_eq!(sum.mean, 4.0);
        assert_eq!(Summary::of(&mut []).n, 0);
        assert_eq!(ms(1_234_567), 1.235);
    }

    #[test]
    fn cdf_and_rates() {
        let s: Vec<u64> = (1..=1000).map(|i| i * 1_000_000).collect();
        let c = cdf_ms(&s);
        assert_eq!(c.len(), 101);
        assert_eq!(c[0], 1.0);
        assert_eq!(c[50], 500.0);
        assert_eq!(c[100], 1000.0);
        assert!(cdf_ms(&[]).is_empty());
        assert_eq!(per_sec(500, 250_000_000), 2000.0);
        assert_eq!(per_sec(1, 0), 0.0);
    }
}
