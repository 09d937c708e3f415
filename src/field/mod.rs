//! Field measurement: the statistics of one next-token distribution (docs/DESIGN.md §1).
//!
//! For a logits row z ∈ R^V this computes, in **one pass** over the row,
//! log Z = logsumexp(z), the entropy H = Σ p_i Φ_i with Φ_i = log Z − z_i, the varentropy
//! Σ p_i Φ_i² − H², p_max and the margin z_(1) − z_(2), and optionally gathers the candidate
//! tokens that lie within a window of the running maximum (what the sampler needs, so that
//! sampling does not cost a second pass).
//!
//! # How the pass works
//!
//! The row is cut into blocks of `BLOCK` elements (4 KiB of f32, resident in L1). Each block
//! is read twice while it is hot: first for its maximum (and second maximum, and a NaN check),
//! then for the three sums S0 = Σe^{x}, S1 = Σx·e^{x}, S2 = Σx²·e^{x} with x = z − m_b taken
//! relative to the block's own maximum m_b. Every block is therefore summed in a
//! well-conditioned frame and there is no running-max rescaling at all. The per-block results
//! (log weight, mean, variance of z under the block's softmax) are merged in f64 with Chan's
//! parallel-variance formula, which is what keeps the varentropy accurate on rows whose mass
//! sits far below the maximum. Since log Z = log Σ_b e^{m_b} S0_b, H = log Z − E_p(z) and
//! varentropy = Var_p(z) (Φ = log Z − z has the variance of z), the merge yields everything.
//!
//! The exponential is a Cephes-style polynomial (≈1 ulp on the reduced range) evaluated
//! 8 lanes at a time with AVX2/FMA when the CPU has them (runtime detection), or the same
//! polynomial in scalar code otherwise, so both paths agree to summation order.
//!
//! # Inputs
//!
//! −inf entries are masked tokens (probability 0) and are allowed. NaN anywhere, +inf
//! anywhere, an empty row, or a row where every entry is −inf are errors ([`FieldError`]):
//! no probability distribution is defined for them.

mod kernel;
mod logit;
pub mod reference;
pub mod thermo;

pub(crate) use kernel::exp_scalar;
pub use logit::Logit;

/// Elements per block: 4 KiB of f32. Large enough that per-block f64 merging is noise, small
/// enough that the second read of the block hits L1.
pub const BLOCK: usize = 1024;

/// Why a row could not be measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldError {
    /// The row has no elements.
    Empty,
    /// The row contains a NaN (index of the first one found is not tracked: the row is rejected).
    NaN,
    /// The row contains +inf: the distribution is undefined.
    PositiveInfinity,
    /// Every entry is −inf: every token is masked.
    AllMasked,
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FieldError::Empty => "logits row is empty",
            FieldError::NaN => "logits row contains NaN",
            FieldError::PositiveInfinity => "logits row contains +inf (distribution undefined)",
            FieldError::AllMasked => "every logit is -inf (all tokens masked)",
        })
    }
}

/// Statistics of one next-token distribution at temperature 1 (docs/DESIGN.md §1).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Field {
    /// Vocabulary size V (row length).
    pub vocab: usize,
    /// Largest logit z_(1).
    pub max: f32,
    /// Index of the largest logit (the lowest index among ties).
    pub argmax: u32,
    /// Second-largest logit z_(2) (equal to `max` on ties; −inf when V = 1 or all others are
    /// masked).
    pub second: f32,
    /// log Z = logsumexp(z), nats.
    pub log_z: f64,
    /// H = Σ p_i Φ_i, nats.
    pub entropy: f64,
    /// Σ p_i Φ_i² − H², nats².
    pub varentropy: f64,
}

impl Field {
    /// p_max = exp(z_(1) − log Z).
    pub fn p_max(&self) -> f64 {
        (self.max as f64 - self.log_z).exp()
    }
    /// z_(1) − z_(2) (+inf when there is no finite second logit; a finite difference too large
    /// for f32 saturates at `f32::MAX`).
    pub fn margin(&self) -> f32 {
        if self.second == f32::NEG_INFINITY {
            f32::INFINITY
        } else {
            (self.max as f64 - self.second as f64).min(f32::MAX as f64) as f32
        }
    }
    /// Normalised entropy h = H / log V in [0, 1] (0 when V = 1).
    pub fn entropy_norm(&self) -> f64 {
        if self.vocab <= 1 {
            0.0
        } else {
            (self.entropy / (self.vocab as f64).ln()).clamp(0.0, 1.0)
        }
    }
    /// Potential Φ_i = log Z − z_i of a token with logit `z` (+inf for a masked token).
    pub fn potential(&self, z: f32) -> f64 {
        self.log_z - z as f64
    }
    /// Probability of a token with logit `z`.
    pub fn prob(&self, z: f32) -> f64 {
        (z as f64 - self.log_z).exp()
    }
}

/// A token gathered during the measurement pass: within the window of the running maximum.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cand {
    /// Logit (possibly edited later by interventions).
    pub logit: f32,
    /// Token id.
    pub id: u32,
}

/// Fixed-capacity buffer of candidate tokens (allocated once, reused every step).
///
/// Invariant after a measurement with window `w`: if `overflow` is false, `items` holds
/// exactly the tokens with z ≥ max − w, in increasing id order.
#[derive(Debug, Clone)]
pub struct Candidates {
    pub(crate) items: Vec<Cand>,
    /// Per-block maxima of the last pass (blocks below the gate are not re-read).
    block_max: Vec<f32>,
    cap: usize,
    /// The buffer was too small: the gate guarantee above does not hold.
    pub overflow: bool,
    /// The window the buffer was filled with (nats below the maximum).
    pub window: f32,
}

impl Candidates {
    /// A buffer holding at most `cap` candidates.
    pub fn with_capacity(cap: usize) -> Self {
        Candidates {
            items: Vec::with_capacity(cap.max(1)),
            block_max: Vec::new(),
            cap: cap.max(1),
            overflow: false,
            window: 0.0,
        }
    }
    /// A buffer gathering at most `cap` candidates, with room for `extra` more entries merged
    /// in later (interventions' edits) and for the block maxima of rows of `vocab` tokens, so
    /// that no pass ever allocates. Fails instead of aborting when memory is short.
    pub(crate) fn try_with_capacity(
        cap: usize,
        extra: usize,
        vocab: usize,
    ) -> Result<Self, std::collections::TryReserveError> {
        let mut c = Candidates {
            items: Vec::new(),
            block_max: Vec::new(),
            cap: cap.max(1),
            overflow: false,
            window: 0.0,
        };
        c.items.try_reserve_exact(c.cap + extra)?;
        c.block_max.try_reserve_exact(vocab.div_ceil(BLOCK))?;
        Ok(c)
    }
    /// The candidates gathered.
    pub fn items(&self) -> &[Cand] {
        &self.items
    }
    /// Capacity fixed at construction.
    pub fn capacity(&self) -> usize {
        self.cap
    }
    pub(crate) fn clear(&mut self, window: f32) {
        self.items.clear();
        self.block_max.clear();
        self.overflow = false;
        self.window = window;
    }
    /// Make room for the block maxima of rows of `vocab` tokens (so passes never allocate).
    pub fn reserve_blocks(&mut self, vocab: usize) {
        self.block_max.reserve(vocab.div_ceil(BLOCK));
    }
    /// Push one candidate; past the capacity, mark the buffer overflowed.
    #[inline]
    pub(crate) fn push(&mut self, id: u32, logit: f32) {
        if self.items.len() == self.cap {
            self.overflow = true;
        } else {
            self.items.push(Cand { logit, id });
        }
    }
}

/// Running merge of per-block results, in f64 (Chan et al.'s parallel variance), in the frame
/// of the largest block maximum M seen so far: `w` = Σ_b S0_b·e^{m_b − M}. One exponential per
/// block (rescaling the running weight when a block raises M, or weighting the block), no
/// logarithm until the end: log Z = M + ln w.
#[derive(Clone, Copy)]
struct Merge {
    m: f32,
    w: f64,
    /// E[z] under the softmax of what has been seen.
    mean: f64,
    /// Var[z] under the same.
    var: f64,
}

impl Merge {
    const EMPTY: Merge = Merge {
        m: f32::NEG_INFINITY,
        w: 0.0,
        mean: 0.0,
        var: 0.0,
    };

    /// Merge a block whose maximum is `m` and whose sums relative to `m` are s0, s1, s2.
    #[inline]
    fn add_block(&mut self, m: f32, s0: f32, s1: f32, s2: f32) {
        if s0 <= 0.0 || m == f32::NEG_INFINITY {
            return; // fully masked block
        }
        let (s0, s1, s2) = (s0 as f64, s1 as f64, s2 as f64);
        let mu = s1 / s0;
        self.add(m, s0, m as f64 + mu, (s2 / s0 - mu * mu).max(0.0));
    }

    /// Merge a block of weight `w` in the frame of its maximum `m`, with mean and variance.
    #[inline]
    fn add(&mut self, m: f32, w: f64, mean: f64, var: f64) {
        if self.w == 0.0 {
            *self = Merge { m, w, mean, var };
            return;
        }
        // The kernel's exp (relative error ≤ 4e-7, 0 below e^−87): a weight, not a statistic.
        let (wa, wb) = if m > self.m {
            let wa = self.w * kernel::exp_scalar(self.m - m) as f64;
            self.m = m;
            (wa, w)
        } else {
            (self.w, w * kernel::exp_scalar(m - self.m) as f64)
        };
        let tot = wa + wb;
        let (fa, fb) = (wa / tot, wb / tot);
        let d = mean - self.mean;
        self.mean += fb * d;
        self.var = fa * self.var + fb * var + fa * fb * d * d;
        self.w = tot;
    }

    /// log Z = log Σ e^z over everything merged.
    fn log_w(&self) -> f64 {
        self.m as f64 + self.w.ln()
    }
}

/// Top-2 tracker over block results.
#[derive(Clone, Copy)]
struct Top2 {
    max: f32,
    second: f32,
    argmax: u32,
}

/// Measure a row of any supported element type; see the module docs.
pub fn measure<E: Logit>(row: &[E]) -> Result<Field, FieldError> {
    measure_impl(row, None)
}

/// Measure a row and gather every token within `cands.window` nats of the maximum into `cands`.
pub fn measure_gather<E: Logit>(
    row: &[E],
    window: f32,
    cands: &mut Candidates,
) -> Result<Field, FieldError> {
    cands.clear(window);
    measure_impl(row, Some(cands))
}

fn measure_impl<E: Logit>(
    row: &[E],
    mut cands: Option<&mut Candidates>,
) -> Result<Field, FieldError> {
    if row.is_empty() {
        return Err(FieldError::Empty);
    }
    let k = kernel::select();
    let mut merge = Merge::EMPTY;
    let mut top = Top2 {
        max: f32::NEG_INFINITY,
        second: f32::NEG_INFINITY,
        argmax: 0,
    };
    let mut nan = false;
    let mut buf = [0f32; BLOCK];
    // The block holding the global maximum is kept out of the merge until the end, then
    // re-summed precisely (see `precise_block`), which also finds the second largest logit
    // within it; `top.second` meanwhile holds the largest maximum of every other block.
    let mut held: Option<(usize, f32, (f32, f32, f32))> = None;
    for (bi, chunk) in row.chunks(BLOCK).enumerate() {
        let z = as_f32(chunk, &mut buf);
        let max1 = k.max(z);
        if let Some(c) = cands.as_deref_mut() {
            c.block_max.push(max1);
        }
        let new_max = max1 > top.max;
        if new_max {
            // New global maximum: the old one competes for second place.
            top.second = top.second.max(top.max);
            top.max = max1;
        } else {
            top.second = top.second.max(max1);
        }
        if max1.is_infinite() {
            // Fully masked block (but for NaN), or +inf (an error decided below; the sums would
            // be NaN): no sums, so look for NaN directly in these rare blocks.
            nan |= z.iter().any(|x| x.is_nan());
            continue;
        }
        let s = k.sums(z, max1);
        // NaN anywhere in the block propagates into its sums (see the kernel's exp).
        nan |= s.0.is_nan() || s.1.is_nan() || s.2.is_nan();
        if new_max {
            if let Some((_, m, (s0, s1, s2))) = held.replace((bi, max1, s)) {
                merge.add_block(m, s0, s1, s2);
            }
        } else {
            merge.add_block(max1, s.0, s.1, s.2);
        }
    }
    if nan {
        return Err(FieldError::NaN);
    }
    if top.max == f32::INFINITY {
        return Err(FieldError::PositiveInfinity);
    }
    if top.max == f32::NEG_INFINITY {
        return Err(FieldError::AllMasked);
    }
    if let Some((bi, m, (_, s1, s2))) = held {
        let chunk = &row[bi * BLOCK..((bi + 1) * BLOCK).min(row.len())];
        let z = as_f32(chunk, &mut buf);
        let (w, mean, var, second) = precise_block(k, z, m, s1, s2);
        merge.add(m, w, mean, var);
        top.second = top.second.max(second);
        // The first block reaching the maximum holds the lowest index among ties.
        top.argmax = (bi * BLOCK) as u32 + kernel::first_index_of(z, m);
    }
    if let Some(c) = cands {
        // Gather from the blocks that reach the final gate: a compare-only re-read of a few
        // hot blocks, whatever the order in which the maximum was found.
        let gate = top.max - c.window;
        for bi in 0..c.block_max.len() {
            if c.block_max[bi] < gate || c.overflow {
                continue;
            }
            let chunk = &row[bi * BLOCK..((bi + 1) * BLOCK).min(row.len())];
            let z = as_f32(chunk, &mut buf);
            k.gather(z, gate, (bi * BLOCK) as u32, c);
        }
    }
    let log_z = merge.log_w();
    Ok(Field {
        vocab: row.len(),
        max: top.max,
        argmax: top.argmax,
        second: top.second,
        log_z,
        entropy: (log_z - merge.mean).max(0.0),
        varentropy: merge.var,
    })
}

/// A block as f32: the row itself for f32, else converted into `buf`.
#[inline]
fn as_f32<'a, E: Logit>(chunk: &'a [E], buf: &'a mut [f32; BLOCK]) -> &'a [f32] {
    match E::as_f32_slice(chunk) {
        Some(z) => z,
        None => {
            E::to_f32_block(chunk, &mut buf[..chunk.len()]);
            &buf[..chunk.len()]
        }
    }
}

/// Stats of the block holding the global maximum m, in its frame: (S0, mean, variance, and the
/// second largest logit of the block: m again on a tie). S0 is split as (count of maximal
/// elements) + δ, δ summed without them. On a peaked row S0 = 1 + δ with δ ≈ 1e-6: in one f32
/// sum δ would keep only ~2 significant digits, and H = ln S0 − S1/S0 is made of δ-sized terms.
fn precise_block(k: kernel::Kernel, z: &[f32], m: f32, s1: f32, s2: f32) -> (f64, f64, f64, f32) {
    let count = z.iter().filter(|&&v| v == m).count();
    let (delta, below) = k.sums_below(z, m);
    let second = if count > 1 { m } else { below };
    let s0 = count as f64 + delta as f64;
    let (s1, s2) = (s1 as f64, s2 as f64);
    let mu = s1 / s0;
    (s0, m as f64 + mu, (s2 / s0 - mu * mu).max(0.0), second)
}

/// The floor kernel: one fused pass computing only log Z and the two moment sums, with none
/// of the bookkeeping (no NaN check, no top-2, no candidates). It exists to be timed beside
/// [`measure`]; it returns (log Z, E_p(z), Var_p(z)) so the work cannot be optimised away.
pub fn floor_kernel(row: &[f32]) -> (f64, f64, f64) {
    let k = kernel::select();
    let mut merge = Merge::EMPTY;
    for z in row.chunks(BLOCK) {
        let m = k.max(z);
        let s = k.sums(z, m);
        merge.add_block(m, s.0, s.1, s.2);
    }
    (merge.log_w(), merge.mean, merge.var)
}

/// Which kernel [`measure`] uses on this CPU ("avx2+fma" or "scalar").
pub fn kernel_name() -> &'static str {
    kernel::select().name()
}

/// Exponential used by the kernels (scalar form), exposed for tests: e^x for x ≤ 0, exactly 0
/// below −87.33 (where f32 would go subnormal), NaN for NaN.
pub fn exp_neg(x: f32) -> f32 {
    kernel::exp_scalar(x)
}

/// Worst relative disagreement of log Z, H and varentropy between `field` and a reference
/// (relative to the reference, with floors of 1, 1e-3·log V and 1e-3·(log V)² so values
/// that are exactly zero in the reference compare sensibly).
///
/// Varentropy is judged against the second moment it is computed from: one pass sums
/// E[s²] and E[s] of s = z − max and takes V = E[s²] − E[s]², so a flat field far below its
/// peak (E[s]² ≈ 6.4, V ≈ 0.05) loses two digits to the subtraction and no f32 kernel can hold
/// 1e-5 of V itself there; its error is a fraction of E[s²] = V + (log Z − H − max)².
pub fn as_f64_check(field: &Field, reference: &Field) -> f64 {
    let rel = |a: f64, b: f64, floor: f64| (a - b).abs() / b.abs().max(floor);
    let scale = (field.vocab.max(2) as f64).ln();
    let mean_s = reference.log_z - reference.entropy - reference.max as f64;
    let second_moment = reference.varentropy + mean_s * mean_s;
    let v_floor = (1e-3 * scale * scale).max(second_moment);
    rel(field.log_z, reference.log_z, 1.0)
        .max(rel(field.entropy, reference.entropy, 1e-3 * scale))
        .max(rel(field.varentropy, reference.varentropy, v_floor))
}

#[cfg(test)]
mod tests {
    use super::*;
    use half::{bf16, f16};

    fn check(row: &[f32]) {
        let f = measure(row).unwrap();
        let r = reference::measure_f64(row).unwrap();
        assert!(as_f64_check(&f, &r) <= 1e-5, "{f:?} vs {r:?}");
        assert_eq!(f.max, r.max);
        assert_eq!(f.second, r.second);
        assert_eq!(f.argmax, r.argmax);
    }

    #[test]
    fn v1_is_degenerate() {
        let f = measure(&[3.5f32]).unwrap();
        assert_eq!(f.entropy, 0.0);
        assert_eq!(f.varentropy, 0.0);
        assert!((f.log_z - 3.5).abs() < 1e-12);
        assert_eq!(f.p_max(), 1.0);
        assert_eq!(f.margin(), f32::INFINITY);
        assert_eq!(f.entropy_norm(), 0.0);
    }

    #[test]
    fn uniform_has_entropy_log_v() {
        for v in [2usize, 7, 1024, 1025, 5000] {
            let row = vec![0.25f32; v];
            let f = measure(&row).unwrap();
            let lv = (v as f64).ln();
            assert!((f.entropy - lv).abs() < 1e-6 * lv, "V={v}: {}", f.entropy);
            assert!(f.varentropy.abs() < 1e-9);
            assert_eq!(f.margin(), 0.0);
            assert_eq!(f.argmax, 0);
        }
    }

    #[test]
    fn two_point_closed_form() {
        // p = (σ(d), 1 − σ(d)): H and varentropy have closed forms.
        let d = 2.0f64;
        let f = measure(&[d as f32, 0.0]).unwrap();
        let p = 1.0 / (1.0 + (-d).exp());
        let h = -(p * p.ln() + (1.0 - p) * (1.0 - p).ln());
        let v = p * (1.0 - p) * d * d;
        assert!((f.entropy - h).abs() < 1e-6);
        assert!((f.varentropy - v).abs() < 1e-6);
        assert!((f.p_max() - p).abs() < 1e-6);
    }

    #[test]
    fn adversarial_rows_match_reference() {
        let mut rows: Vec<Vec<f32>> = vec![];
        // huge spread
        rows.push(
            (0..3000)
                .map(|i| if i == 1777 { 1e4 } else { -1e4 })
                .collect(),
        );
        rows.push((0..3000).map(|i| (i as f32) * 0.05 - 80.0).collect());
        // masked entries, ties, and a max in the last partial block
        let mut r: Vec<f32> = (0..2050).map(|i| ((i * 37 % 101) as f32) * 0.1).collect();
        r[5] = f32::NEG_INFINITY;
        r[2049] = 50.0;
        rows.push(r);
        // mass concentrated in a tight cluster below an outlier maximum
        rows.push(
            (0..4096)
                .map(|i| {
                    if i == 0 {
                        0.0
                    } else {
                        -1.0 - (i % 7) as f32 * 1e-3
                    }
                })
                .collect(),
        );
        // ascending row: a new maximum in every block
        rows.push((0..10000).map(|i| i as f32 * 1e-3).collect());
        rows.push(vec![-3.0, f32::NEG_INFINITY, f32::NEG_INFINITY]);
        // Peaked: H ≈ 2.5e-4 is made of δ-sized terms (found by proptest, see precise_block).
        rows.push(vec![-10.774774, 0.0]);
        rows.push(vec![5.365049, -8.418335]);
        for row in &rows {
            check(row);
        }
    }

    #[test]
    fn bad_rows_are_errors() {
        assert_eq!(measure::<f32>(&[]), Err(FieldError::Empty));
        assert_eq!(measure(&[0.0, f32::NAN]), Err(FieldError::NaN));
        assert_eq!(
            measure(&[0.0, f32::INFINITY]),
            Err(FieldError::PositiveInfinity)
        );
        assert_eq!(
            measure(&[f32::NEG_INFINITY; 3000]),
            Err(FieldError::AllMasked)
        );
        let mut big = vec![0.0f32; 5000];
        big[4999] = f32::NAN;
        assert_eq!(measure(&big), Err(FieldError::NaN));
    }

    #[test]
    fn half_types_match_f32_of_the_same_values() {
        let row32: Vec<f32> = (0..3000)
            .map(|i| ((i * 7919 % 1000) as f32) * 0.01)
            .collect();
        let r16: Vec<f16> = row32.iter().map(|&x| f16::from_f32(x)).collect();
        let rb: Vec<bf16> = row32.iter().map(|&x| bf16::from_f32(x)).collect();
        let back16: Vec<f32> = r16.iter().map(|x| x.to_f32()).collect();
        let backb: Vec<f32> = rb.iter().map(|x| x.to_f32()).collect();
        assert_eq!(measure(&r16).unwrap(), measure(&back16).unwrap());
        assert_eq!(measure(&rb).unwrap(), measure(&backb).unwrap());
    }

    #[test]
    fn gather_keeps_the_window() {
        let row: Vec<f32> = (0..5000)
            .map(|i| ((i * 7919 % 5000) as f32) * 0.01)
            .collect();
        let mut c = Candidates::with_capacity(4096);
        let f = measure_gather(&row, 0.5, &mut c).unwrap();
        assert!(!c.overflow);
        let want: usize = row.iter().filter(|&&z| z >= f.max - 0.5).count();
        assert_eq!(c.items().len(), want);
        let mut small = Candidates::with_capacity(3);
        measure_gather(&row, 0.5, &mut small).unwrap();
        assert!(small.overflow);
    }

    #[test]
    fn exp_is_accurate() {
        // Relative error: ≤ 4e-7 over the whole range (the reduction's one-constant ln 2 costs
        // n·2e-9 at large |n|), ≤ 2.5e-7 where terms are not negligible (x ≥ −20).
        let (mut worst, mut worst_near) = (0f64, 0f64);
        let mut x = -87.0f32;
        while x <= 0.0 {
            let e = exp_neg(x) as f64;
            let r = (x as f64).exp();
            let rel = (e - r).abs() / r;
            worst = worst.max(rel);
            if x >= -20.0 {
                worst_near = worst_near.max(rel);
            }
            x += 0.0137;
        }
        assert!(worst < 4e-7, "worst relative error {worst}");
        assert!(
            worst_near < 2.5e-7,
            "worst relative error near 0: {worst_near}"
        );
        assert_eq!(exp_neg(-100.0), 0.0);
        assert_eq!(exp_neg(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp_neg(0.0), 1.0);
    }
}
