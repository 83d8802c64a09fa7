//! Helpers for unit tests only: a tiny deterministic PRNG (xorshift64) and the hostile-input
//! loop several parsers' tests share (one byte of a seed replaced, then cut at a random
//! length), so each test names only its seed and what it feeds the mutants to.
//! Uses: nothing.

/// xorshift64: deterministic, no crate.
pub struct XorShift(pub u64);

impl XorShift {
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// Uniform enough below `n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

/// `n` mutants of `seed` (from PRNG state `state`): one byte replaced, then truncated at a
/// random length; `f` gets each with the PRNG value that made it.
pub fn one_byte_mutants(seed: &[u8], state: u64, n: usize, mut f: impl FnMut(&[u8], u64)) {
    let mut r = XorShift(state);
    for _ in 0..n {
        let x = r.next();
        let mut v = seed.to_vec();
        if let Some(b) = v.get_mut((x as usize) % seed.len().max(1)) {
            *b = (x >> 16) as u8;
        }
        v.truncate((x >> 32) as usize % (v.len() + 1));
        f(&v, x);
    }
}
