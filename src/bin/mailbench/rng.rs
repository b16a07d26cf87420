//! A tiny seeded PRNG (splitmix64, Steele/Lea/Flood 2014) owned by the bench tool.
//!
//! Written here instead of taken from `rand` so that a seed produces the same corpus bytes
//! forever, whatever version of `rand` the crate later moves to. Only integer arithmetic is
//! used, so output does not depend on the platform's libm either.

/// splitmix64 state. Not cryptographic; only reproducibility matters.
#[derive(Clone, Debug)]
pub struct SplitMix64 {
    /// The Weyl-sequence counter; every output is a bijective mix of it.
    state: u64,
}

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        SplitMix64 { state: seed }
    }

    /// A generator for a sub-stream (user, folder, client...), independent of call order
    /// elsewhere: the seed and the labels are mixed, not consumed from a shared stream.
    pub fn derive(seed: u64, a: u64, b: u64) -> Self {
        let mut m = SplitMix64::new(seed ^ a.wrapping_mul(0xA076_1D64_78BD_642F));
        let s = m.next_u64() ^ b.wrapping_mul(0xE703_7ED1_A0B4_28DB);
        SplitMix64::new(s)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (Lemire's multiply-shift; `n` must be > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        debug_assert!(n > 0);
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    /// True with probability `pct` percent.
    pub fn chance(&mut self, pct: u64) -> bool {
        self.below(100) < pct
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    pub fn fill(&mut self, out: &mut [u8]) {
        for chunk in out.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix64_reference_vector() {
        // First outputs of splitmix64 seeded with 0, as in the reference C implementation.
        let mut r = SplitMix64::new(0);
        assert_eq!(r.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(r.next_u64(), 0x6E78_9E6A_A1B9_65F4);
    }

    #[test]
    fn below_stays_in_range_and_covers_it() {
        let mut r = SplitMix64::new(42);
        let mut seen = [false; 7];
        for _ in 0..1000 {
            let v = r.below(7) as usize;
            assert!(v < 7);
            seen[v] = true;
        }
        assert!(seen.iter().all(|s| *s));
    }

    #[test]
    fn derive_is_stable_and_distinct() {
        let a = SplitMix64::derive(1, 2, 3).next_u64();
        assert_eq!(a, SplitMix64::derive(1, 2, 3).next_u64());
        assert_ne!(a, SplitMix64::derive(1, 3, 2).next_u64());
    }
}
