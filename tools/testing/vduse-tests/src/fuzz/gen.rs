// SPDX-License-Identifier: GPL-2.0

//! The fuzzer's source of choices: a seeded ChaCha8 stream (`rand_chacha` promises its values
//! stay the same across releases; `rand`'s range sampling is pinned by Cargo.lock, so a seed
//! replays the same operations on any build of this checkout) and the mutators built on it.
//! Every decision of a run comes from here, none from the clock or from results it did not
//! already record: two runs with the same seed against drivers that answer alike make the same
//! calls.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The seeded choice stream.
pub struct Gen {
    rng: ChaCha8Rng,
}

impl Gen {
    /// The stream of `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }

    /// A value in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.rng.gen_range(0..n)
        }
    }

    /// An index into a collection of `n` elements (`n` > 0).
    pub fn index(&mut self, n: usize) -> usize {
        self.below(n as u64) as usize
    }

    /// True with probability `per_mille`/1000.
    pub fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }

    /// One of `xs` (not empty).
    pub fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.index(xs.len())]
    }

    /// A uniformly random u64.
    pub fn u64(&mut self) -> u64 {
        self.rng.gen()
    }

    /// `n` random bytes.
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.rng.gen()).collect()
    }

    /// Picks by weight: the index of the chosen weight.
    pub fn weighted(&mut self, weights: &[u64]) -> usize {
        let total: u64 = weights.iter().sum();
        let mut x = self.below(total);
        for (i, w) in weights.iter().enumerate() {
            if x < *w {
                return i;
            }
            x -= w;
        }
        weights.len() - 1
    }

    /// A mutation of the 64-bit value `valid`: usually `valid` itself; else a boundary value, a
    /// neighbour, one flipped bit or a random value. `bits` is the field's width.
    pub fn mutate(&mut self, valid: u64, bits: u32) -> u64 {
        let mask = if bits >= 64 {
            u64::MAX
        } else {
            (1u64 << bits) - 1
        };
        let v = match self.below(12) {
            0..=4 => valid,
            5 => 0,
            6 => mask,
            7 => valid.wrapping_add(1),
            8 => valid.wrapping_sub(1),
            9 => valid ^ (1u64 << self.below(u64::from(bits))),
            10 => 1u64 << self.below(u64::from(bits)),
            _ => self.u64(),
        };
        v & mask
    }

    /// [`Gen::mutate`] for a u32 field.
    pub fn mutate32(&mut self, valid: u32) -> u32 {
        self.mutate(u64::from(valid), 32) as u32
    }

    /// [`Gen::mutate`] for a u16 field.
    pub fn mutate16(&mut self, valid: u16) -> u16 {
        self.mutate(u64::from(valid), 16) as u16
    }

    /// A reserved word: zero, as the uAPI demands, except now and then.
    pub fn reserved(&mut self) -> u32 {
        if self.chance(30) {
            let r = self.u64() as u32;
            self.pick(&[1, 0x8000_0000, u32::MAX, r])
        } else {
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Gen;

    #[test]
    fn same_seed_same_stream() {
        let (mut a, mut b) = (Gen::new(7), Gen::new(7));
        let xa: Vec<u64> = (0..100).map(|_| a.mutate(4096, 32)).collect();
        let xb: Vec<u64> = (0..100).map(|_| b.mutate(4096, 32)).collect();
        assert_eq!(xa, xb);
        assert_ne!(xa, (0..100).map(|_| Gen::new(8).u64()).collect::<Vec<_>>());
    }

    #[test]
    fn mutate_stays_in_width() {
        let mut g = Gen::new(1);
        assert!((0..10_000).all(|_| g.mutate(3, 5) < 32));
        assert!((0..10_000).all(|_| g.mutate(0xabc, 12) <= 0xfff));
    }

    #[test]
    fn mutate_mostly_keeps_the_valid_value() {
        let mut g = Gen::new(2);
        let kept = (0..10_000).filter(|_| g.mutate32(4096) == 4096).count();
        // 5 of 12 draws keep it (a flipped bit or a neighbour never does): about 42%.
        assert!((3_800..4_600).contains(&kept), "{kept}");
    }
}
