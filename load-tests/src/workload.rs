//! The deterministic part of a worker: which operation comes next and what an order contains.
//!
//! Everything is drawn from a seeded [`Rng`], so `--seed` replays the same decisions for each
//! worker (what the server answers, and so which orders can be cancelled or walked, still varies).

use std::sync::Arc;

/// SplitMix64: tiny, fast, and good enough for workload decisions.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for one worker (or other stream) of a run: streams of one seed differ.
    pub fn stream(seed: u64, stream: u64) -> Self {
        let mut r = Rng(seed ^ stream.wrapping_add(1).wrapping_mul(0xA076_1D64_78BD_642F));
        r.next_u64();
        r
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`), by multiply-shift (bias negligible for our `n`).
    pub fn below(&mut self, n: usize) -> usize {
        ((self.next_u64() as u128 * n as u128) >> 64) as usize
    }

    /// Uniform in `lo..=hi`.
    pub fn between(&mut self, lo: u32, hi: u32) -> u32 {
        lo + self.below((hi - lo) as usize + 1) as u32
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// `true` with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }
}

/// How SKUs are chosen within a range of the catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SkuDist {
    /// Zipf-like (weight of rank r is 1/r): a few hot SKUs, a long tail.
    Zipf,
    /// Every SKU equally likely.
    Uniform,
}

/// Picks SKU indexes in `offset..offset + len`.
#[derive(Debug, Clone)]
pub struct SkuPicker {
    offset: usize,
    len: usize,
    /// Cumulative weights for [`SkuDist::Zipf`] (shared by all workers).
    cdf: Option<Arc<[f64]>>,
}

impl SkuPicker {
    /// A picker over `offset..offset + len` (`len > 0`).
    pub fn new(offset: usize, len: usize, dist: SkuDist) -> Self {
        let cdf = (dist == SkuDist::Zipf).then(|| {
            let mut acc = 0.0;
            (1..=len)
                .map(|rank| {
                    acc += 1.0 / rank as f64;
                    acc
                })
                .collect()
        });
        SkuPicker { offset, len, cdf }
    }

    /// Draws one SKU index.
    pub fn pick(&self, rng: &mut Rng) -> usize {
        let i = match &self.cdf {
            None => rng.below(self.len),
            Some(cdf) => {
                let x = rng.unit() * cdf[cdf.len() - 1];
                cdf.partition_point(|&c| c <= x).min(self.len - 1)
            }
        };
        self.offset + i
    }

    /// How many SKUs the picker chooses from.
    pub fn size(&self) -> usize {
        self.len
    }
}

/// One operation of a worker's loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Place an order.
    Place,
    /// Post a receipt.
    Receipt,
    /// Cancel one of the worker's recent orders.
    Cancel,
}

/// Relative weights of the operations (any scale; all-zero is not allowed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mix {
    /// Weight of [`Op::Place`].
    pub place: u32,
    /// Weight of [`Op::Receipt`].
    pub receipt: u32,
    /// Weight of [`Op::Cancel`].
    pub cancel: u32,
}

impl Mix {
    fn total(&self) -> u32 {
        self.place + self.receipt + self.cancel
    }
}

/// What order lines look like.
#[derive(Debug, Clone)]
pub struct LineSpec {
    /// Lines per order are uniform in `1..=lines_max` (fewer if the catalog is smaller).
    pub lines_max: usize,
    /// Units per line are uniform in `1..=qty_max`.
    pub qty_max: u32,
    /// Where lines go by default.
    pub normal: SkuPicker,
    /// Optionally, a share of lines goes to another set (the promotion's scarce SKUs).
    pub hot: Option<(SkuPicker, f64)>,
}

/// A worker's stream of decisions.
#[derive(Debug, Clone)]
pub struct Workload {
    rng: Rng,
    mix: Mix,
    lines: LineSpec,
}

impl Workload {
    /// The decisions of worker `worker` of a run seeded with `seed`.
    pub fn new(seed: u64, worker: usize, mix: Mix, lines: LineSpec) -> Self {
        assert!(mix.total() > 0, "empty operation mix");
        Workload {
            rng: Rng::stream(seed, worker as u64),
            mix,
            lines,
        }
    }

    /// The next operation, by weight.
    pub fn next_op(&mut self) -> Op {
        let mut x = self.rng.below(self.mix.total() as usize) as u32;
        for (w, op) in [(self.mix.place, Op::Place), (self.mix.receipt, Op::Receipt)] {
            if x < w {
                return op;
            }
            x -= w;
        }
        Op::Cancel
    }

    /// Fills `out` with the lines of a new order: `(sku index, quantity)`, SKUs distinct.
    pub fn order_lines(&mut self, out: &mut Vec<(usize, u32)>) {
        out.clear();
        let spec = &self.lines;
        let room = spec.normal.size() + spec.hot.as_ref().map_or(0, |(p, _)| p.size());
        let n = 1 + self.rng.below(spec.lines_max.min(room));
        // A duplicate SKU would make the order malformed: redraw (bounded, for tiny catalogs).
        for _ in 0..n * 16 {
            if out.len() == n {
                break;
            }
            let sku = match &spec.hot {
                Some((hot, share)) if self.rng.chance(*share) => hot.pick(&mut self.rng),
                _ => spec.normal.pick(&mut self.rng),
            };
            if out.iter().all(|&(s, _)| s != sku) {
                out.push((sku, self.rng.between(1, spec.qty_max)));
            }
        }
    }

    /// A receipt: `(sku index from the normal set, quantity in lo..=hi)`.
    pub fn receipt(&mut self, lo: u32, hi: u32) -> (usize, u32) {
        (
            self.lines.normal.pick(&mut self.rng),
            self.rng.between(lo, hi),
        )
    }

    /// Uniform index in `0..n` (channel, region, location, candidate …).
    pub fn pick(&mut self, n: usize) -> usize {
        self.rng.below(n)
    }

    /// `true` with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.rng.chance(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn steady_like(seed: u64, worker: usize) -> Workload {
        let mix = Mix {
            place: 84,
            receipt: 8,
            cancel: 8,
        };
        let lines = LineSpec {
            lines_max: 3,
            qty_max: 3,
            normal: SkuPicker::new(0, 200, SkuDist::Zipf),
            hot: None,
        };
        Workload::new(seed, worker, mix, lines)
    }

    fn trace(w: &mut Workload, n: usize) -> Vec<(Op, Vec<(usize, u32)>)> {
        let mut lines = Vec::new();
        (0..n)
            .map(|_| {
                let op = w.next_op();
                w.order_lines(&mut lines);
                (op, lines.clone())
            })
            .collect()
    }

    #[test]
    fn same_seed_same_decisions_other_worker_other_stream() {
        let a = trace(&mut steady_like(42, 0), 500);
        assert_eq!(a, trace(&mut steady_like(42, 0), 500));
        assert_ne!(a, trace(&mut steady_like(42, 1), 500));
        assert_ne!(a, trace(&mut steady_like(43, 0), 500));
    }

    #[test]
    fn operation_mix_matches_the_weights() {
        let mut w = steady_like(7, 3);
        let mut counts = [0usize; 3];
        let n = 200_000;
        for _ in 0..n {
            counts[w.next_op() as usize] += 1;
        }
        let share = |i: usize| counts[i] as f64 / n as f64;
        assert!(
            (share(Op::Place as usize) - 0.84).abs() < 0.01,
            "{counts:?}"
        );
        assert!(
            (share(Op::Receipt as usize) - 0.08).abs() < 0.005,
            "{counts:?}"
        );
        assert!(
            (share(Op::Cancel as usize) - 0.08).abs() < 0.005,
            "{counts:?}"
        );
    }

    #[test]
    fn lines_are_distinct_and_within_limits() {
        let mut w = steady_like(1, 0);
        let mut lines = Vec::new();
        let mut sizes = [0usize; 4];
        for _ in 0..20_000 {
            w.order_lines(&mut lines);
            sizes[lines.len()] += 1;
            for (i, &(sku, qty)) in lines.iter().enumerate() {
                assert!(sku < 200 && (1..=3).contains(&qty));
                assert!(lines[..i].iter().all(|&(s, _)| s != sku));
            }
        }
        assert_eq!(sizes[0], 0);
        assert!(sizes[1..].iter().all(|&c| c > 6_000), "{sizes:?}");
    }

    #[test]
    fn tiny_catalog_caps_line_count() {
        let lines = LineSpec {
            lines_max: 5,
            qty_max: 1,
            normal: SkuPicker::new(0, 2, SkuDist::Uniform),
            hot: None,
        };
        let mix = Mix {
            place: 1,
            receipt: 0,
            cancel: 0,
        };
        let mut w = Workload::new(9, 0, mix, lines);
        let mut out = Vec::new();
        for _ in 0..100 {
            w.order_lines(&mut out);
            assert!((1..=2).contains(&out.len()));
            assert_eq!(w.next_op(), Op::Place);
        }
    }

    #[test]
    fn zipf_is_skewed_and_hot_share_holds() {
        let lines = LineSpec {
            lines_max: 1,
            qty_max: 1,
            normal: SkuPicker::new(0, 100, SkuDist::Zipf),
            hot: Some((SkuPicker::new(100, 20, SkuDist::Uniform), 0.8)),
        };
        let mix = Mix {
            place: 1,
            receipt: 0,
            cancel: 0,
        };
        let mut w = Workload::new(5, 0, mix, lines);
        let mut counts = vec![0usize; 120];
        let mut out = Vec::new();
        let n = 100_000;
        for _ in 0..n {
            w.order_lines(&mut out);
            counts[out[0].0] += 1;
        }
        let hot: usize = counts[100..].iter().sum();
        assert!((hot as f64 / n as f64 - 0.8).abs() < 0.01);
        // Rank 1 is drawn about twice as often as rank 2 and far more than the tail.
        assert!(
            counts[0] > counts[1] * 3 / 2 && counts[0] > counts[99] * 20,
            "{counts:?}"
        );
    }
}
