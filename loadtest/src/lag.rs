//! Delivery lags of a sustained run (`stream`): millions of samples kept in a fixed,
//! mergeable histogram instead of a list, and the per-push completion lags beside it.
//!
//! Structure: `Hist { counts: [u64; BUCKETS], n, max_ns }` over microseconds, log-linear:
//! values below 64 us have a bucket each, above that every power of two is cut into 32
//! buckets (about 3% apart), up to 2^40 us; larger values share the last bucket. The
//! exact maximum is kept aside. Workers send theirs as sparse `[[bucket, count], ..]` JSON
//! (`to_json`), the coordinator adds them up (`merge_json`) and reads percentiles.
//!
//! Uses: serde_json.

use serde_json::{json, Value};

/// 64 linear buckets, then 32 per power of two from 2^6 to 2^40 us.
const LINEAR: u64 = 64;
const SUB_BITS: u32 = 5;
const BUCKETS: usize = 64 + 35 * 32;

#[derive(Debug, Clone)]
pub struct Hist {
    counts: Vec<u64>,
    n: u64,
    max_ns: u64,
}

impl Default for Hist {
    fn default() -> Hist {
        Hist::new()
    }
}

/// The bucket of a value in microseconds.
fn bucket(us: u64) -> usize {
    if us < LINEAR {
        return us as usize;
    }
    let e = 63 - us.leading_zeros(); // >= 6
    let sub = (us >> (e - SUB_BITS)) & ((1 << SUB_BITS) - 1);
    let b = LINEAR as usize + (e as usize - 6) * (1 << SUB_BITS) + sub as usize;
    b.min(BUCKETS - 1)
}

/// The lowest value (us) of a bucket, and the one past its highest.
fn bounds(b: usize) -> (u64, u64) {
    if b < LINEAR as usize {
        return (b as u64, b as u64 + 1);
    }
    let k = b - LINEAR as usize;
    let e = 6 + (k >> SUB_BITS) as u32;
    let sub = (k & ((1 << SUB_BITS) - 1)) as u64;
    let width = 1u64 << (e - SUB_BITS);
    let lo = (1u64 << e) + sub * width;
    (lo, lo + width)
}

impl Hist {
    pub fn new() -> Hist {
        Hist {
            counts: vec![0; BUCKETS],
            n: 0,
            max_ns: 0,
        }
    }

    pub fn add(&mut self, ns: u64) {
        if let Some(c) = self.counts.get_mut(bucket(ns / 1000)) {
            *c += 1;
        }
        self.n += 1;
        self.max_ns = self.max_ns.max(ns);
    }

    pub fn len(&self) -> u64 {
        self.n
    }

    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    pub fn max_ns(&self) -> u64 {
        self.max_ns
    }

    /// Nearest-rank percentile (`p` in 0..=100) in nanoseconds: the middle of the bucket
    /// it falls in, never above the maximum (the last rank is the maximum); 0 when empty.
    pub fn percentile_ns(&self, p: f64) -> u64 {
        if self.n == 0 {
            return 0;
        }
        let rank = ((p / 100.0) * self.n as f64).ceil().max(1.0) as u64;
        if rank >= self.n {
            return self.max_ns;
        }
        let mut seen = 0;
        for (b, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                let (lo, hi) = bounds(b);
                return ((lo + hi) * 500).min(self.max_ns);
            }
        }
        self.max_ns
    }

    /// `{"n", "max_ns", "buckets": [[bucket, count], ..]}` (only the non-empty ones).
    pub fn to_json(&self) -> Value {
        let buckets: Vec<[u64; 2]> = self
            .counts
            .iter()
            .enumerate()
            .filter(|(_, &c)| c > 0)
            .map(|(b, &c)| [b as u64, c])
            .collect();
        json!({"n": self.n, "max_ns": self.max_ns, "buckets": buckets})
    }

    /// Adds a histogram sent as `to_json` (malformed parts are skipped).
    pub fn merge_json(&mut self, v: &Value) {
        for pair in v["buckets"].as_array().into_iter().flatten() {
            let (Some(b), Some(c)) = (pair[0].as_u64(), pair[1].as_u64()) else {
                continue;
            };
            if let Some(slot) = self.counts.get_mut(b as usize) {
                *slot += c;
            }
        }
        self.n += v["n"].as_u64().unwrap_or(0);
        self.max_ns = self.max_ns.max(v["max_ns"].as_u64().unwrap_or(0));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_values_in_order() {
        let mut last = 0;
        for us in [
            0u64,
            1,
            63,
            64,
            65,
            127,
            128,
            1000,
            1 << 20,
            1 << 39,
            u64::MAX / 1000,
        ] {
            let b = bucket(us);
            assert!(b >= last, "{us}");
            last = b;
            let (lo, hi) = bounds(b);
            if b < BUCKETS - 1 {
                assert!(lo <= us && us < hi, "{us}: {lo}..{hi}");
            }
        }
        assert_eq!(bucket(u64::MAX), BUCKETS - 1);
        // About 3% apart above the linear part.
        let (lo, hi) = bounds(bucket(1_000_000));
        assert!((hi - lo) as f64 / lo as f64 <= 1.0 / 32.0 + 1e-9);
    }

    #[test]
    fn percentiles_and_merge() {
        let mut a = Hist::new();
        for ms in 1..=100u64 {
            a.add(ms * 1_000_000);
        }
        let p50 = a.percentile_ns(50.0) as f64;
        assert!((p50 - 50e6).abs() / 50e6 < 0.04, "{p50}");
        assert_eq!(a.percentile_ns(100.0), 100_000_000);
        assert_eq!(a.max_ns(), 100_000_000);
        let mut b = Hist::new();
        b.add(5_000);
        b.merge_json(&a.to_json());
        assert_eq!(b.len(), 101);
        assert_eq!(b.percentile_ns(0.5), 5_000 + 500);
        assert_eq!(Hist::new().percentile_ns(99.0), 0);
        let mut c = Hist::new();
        c.merge_json(&json!({"n": 1, "buckets": [[99999, 1], ["x", 1], [3]]}));
        assert_eq!(c.len(), 1);
    }
}
