//! Block kernels for the field pass: AVX2/FMA with runtime detection, and a scalar fallback
//! running the same polynomial. See the parent module for the algorithm.

use super::Candidates;

#[derive(Clone, Copy)]
pub(super) enum Kernel {
    Scalar,
    /// Only [`select`] can make one: the token proves the CPU has AVX2 and FMA.
    #[cfg(target_arch = "x86_64")]
    Avx2(Avx2Fma),
}

/// Proof that the running CPU has AVX2 and FMA. Its field is private to this module, so the
/// only way to hold one is [`select`]'s detection: the `unsafe` calls below rely on it.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
pub(super) struct Avx2Fma(());

pub(super) fn select() -> Kernel {
    #[cfg(target_arch = "x86_64")]
    {
        // std caches the CPUID result: this is an atomic load after the first call.
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            return Kernel::Avx2(Avx2Fma(()));
        }
    }
    Kernel::Scalar
}

impl Kernel {
    pub fn name(self) -> &'static str {
        match self {
            Kernel::Scalar => "scalar",
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2(_) => "avx2+fma",
        }
    }

    /// The block's maximum, ignoring NaN (NaN is found by the sums: it propagates into them).
    #[inline]
    pub fn max(self, z: &[f32]) -> f32 {
        match self {
            Kernel::Scalar => z.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)),
            // SAFETY: an `Avx2Fma` token exists only when the CPU reports AVX2 and FMA.
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2(_) => unsafe { avx2::max(z) },
        }
    }

    /// (Σe^x, Σx·e^x, Σx²·e^x) with x = z − m, masked (−inf) entries contributing 0.
    #[inline]
    pub fn sums(self, z: &[f32], m: f32) -> (f32, f32, f32) {
        match self {
            Kernel::Scalar => sums_scalar(z, m),
            // SAFETY: as in `max`.
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2(_) => unsafe { avx2::sums(z, m) },
        }
    }

    /// Σe^{z − m} over the elements strictly below `m` (the block maximum), and the largest of
    /// them (−inf when there is none).
    #[inline]
    pub fn sums_below(self, z: &[f32], m: f32) -> (f32, f32) {
        match self {
            Kernel::Scalar => sums_below_scalar(z, m),
            // SAFETY: as in `max`.
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2(_) => unsafe { avx2::sums_below(z, m) },
        }
    }

    /// Push every element with z ≥ gate into `cands` (ids offset by `base`).
    #[inline]
    pub fn gather(self, z: &[f32], gate: f32, base: u32, cands: &mut Candidates) {
        match self {
            Kernel::Scalar => gather_scalar(z, gate, base, cands),
            // SAFETY: as in `max`.
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2(_) => unsafe { avx2::gather(z, gate, base, cands) },
        }
    }
}

/// Index (within the block) of the first element equal to `v` (which is known to be present).
pub(super) fn first_index_of(z: &[f32], v: f32) -> u32 {
    z.iter().position(|&x| x == v).unwrap_or(0) as u32
}

// e^x = 2^n · p(r), n = round(x·log2 e), r = x − n·ln 2 ∈ [−ln2/2, ln2/2], p a degree-5
// minimax polynomial with p(0) = 1 (relative error 1.7e-7 evaluated in f32: Cephes-grade, with
// two multiply-adds fewer than the Cephes expf polynomial).
const LOG2E: f32 = std::f32::consts::LOG2_E;
const LN2: f32 = std::f32::consts::LN_2;
const C1: f32 = 0.999_999_7;
const C2: f32 = 0.499_991_5;
const C3: f32 = 0.166_676_36;
const C4: f32 = 0.041_897_91;
const C5: f32 = 0.008_290_297;
/// Below this e^x would be subnormal in f32.
const X_MIN: f32 = -87.33;
/// 1.5·2^23: adding it rounds a float of magnitude < 2^22 to an integer in the low mantissa.
#[cfg(target_arch = "x86_64")]
const SHIFT: f32 = 12_582_912.0;

/// e^x for x ≤ 0 (scalar form of the vector kernel, the same operations in the same order);
/// NaN stays NaN.
#[inline]
pub(crate) fn exp_scalar(x: f32) -> f32 {
    if x < X_MIN {
        return 0.0; // the vector kernel clamps instead: e^{X_MIN} ≈ 1.2e-38, same to f32 sums
    }
    let n = (x * LOG2E).round();
    let r = (-n).mul_add(LN2, x);
    let q = C5
        .mul_add(r, C4)
        .mul_add(r, C3)
        .mul_add(r, C2)
        .mul_add(r, C1);
    let p = q.mul_add(r, 1.0);
    let pow2 = f32::from_bits(((n as i32 + 127) as u32) << 23);
    p * pow2
}

fn sums_below_scalar(z: &[f32], m: f32) -> (f32, f32) {
    let (mut s, mut below) = (0f32, f32::NEG_INFINITY);
    for &v in z.iter().filter(|&&v| v < m) {
        s += exp_scalar(v - m);
        below = below.max(v);
    }
    (s, below)
}

fn sums_scalar(z: &[f32], m: f32) -> (f32, f32, f32) {
    let (mut s0, mut s1, mut s2) = (0f32, 0f32, 0f32);
    for &v in z {
        let x = v - m;
        let e = exp_scalar(x);
        // Masked (−inf) terms are skipped (−inf·0 would be NaN); a NaN term propagates.
        if e > 0.0 || e.is_nan() {
            s0 += e;
            s1 += x * e;
            s2 += x * x * e;
        }
    }
    (s0, s1, s2)
}

fn gather_scalar(z: &[f32], gate: f32, base: u32, cands: &mut Candidates) {
    for (i, &v) in z.iter().enumerate() {
        if v >= gate {
            cands.push(base + i as u32, v);
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::*;
    use std::arch::x86_64::*;

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn hmax(v: __m256) -> f32 {
        let mut a = [0f32; 8];
        // SAFETY: `a` has room for 8 f32; unaligned store.
        unsafe { _mm256_storeu_ps(a.as_mut_ptr(), v) };
        a.iter().fold(f32::NEG_INFINITY, |x, &y| x.max(y))
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn hsum(v: __m256) -> f32 {
        let lo = _mm256_castps256_ps128(v);
        let hi = _mm256_extractf128_ps::<1>(v);
        let s = _mm_add_ps(lo, hi);
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_shuffle_ps::<0x55>(s, s));
        _mm_cvtss_f32(s)
    }

    /// Four independent chains of 8 lanes: a single running maximum is bound by the latency of
    /// `max_ps` (4 cycles), four by its throughput.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn max4(m: [__m256; 4]) -> __m256 {
        _mm256_max_ps(_mm256_max_ps(m[0], m[1]), _mm256_max_ps(m[2], m[3]))
    }

    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn max(z: &[f32]) -> f32 {
        let mut m = [_mm256_set1_ps(f32::NEG_INFINITY); 4];
        let chunks = z.chunks_exact(32);
        let tail = chunks.remainder();
        for c in chunks {
            for (k, mk) in m.iter_mut().enumerate() {
                // SAFETY: `c` holds exactly 32 f32; lane group k is 8 of them.
                *mk = _mm256_max_ps(*mk, unsafe { _mm256_loadu_ps(c.as_ptr().add(8 * k)) });
            }
        }
        // SAFETY: same target features as this function.
        let v = unsafe { hmax(max4(m)) };
        tail.iter().fold(v, |a, &b| a.max(b))
    }

    /// e^x for a vector with x ≤ 0 (the polynomial of `exp_scalar`, Horner's scheme: with four
    /// vectors in flight the latency is hidden and the fewest operations win). Lanes below
    /// X_MIN (−inf included) are clamped to X_MIN, so they contribute e^{X_MIN} ≈ 1.2e-38 (not
    /// NaN) — negligible against any live term; a NaN lane stays NaN (max_ps returns its second
    /// operand when either is NaN), so NaN in a row propagates into its sums. Returns (e^x,
    /// clamped x).
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn exp_v(x: __m256) -> (__m256, __m256) {
        let xc = _mm256_max_ps(_mm256_set1_ps(X_MIN), x);
        // Round-to-nearest by the 1.5·2^23 shift: t's low mantissa bits hold n.
        let t = _mm256_fmadd_ps(xc, _mm256_set1_ps(LOG2E), _mm256_set1_ps(SHIFT));
        let n = _mm256_sub_ps(t, _mm256_set1_ps(SHIFT));
        let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2), xc);
        let q = _mm256_fmadd_ps(_mm256_set1_ps(C5), r, _mm256_set1_ps(C4));
        let q = _mm256_fmadd_ps(q, r, _mm256_set1_ps(C3));
        let q = _mm256_fmadd_ps(q, r, _mm256_set1_ps(C2));
        let q = _mm256_fmadd_ps(q, r, _mm256_set1_ps(C1));
        let p = _mm256_fmadd_ps(q, r, _mm256_set1_ps(1.0));
        let ni = _mm256_add_epi32(_mm256_castps_si256(t), _mm256_set1_epi32(127));
        let pow2 = _mm256_castsi256_ps(_mm256_slli_epi32::<23>(ni));
        (_mm256_mul_ps(p, pow2), xc)
    }

    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn gather(z: &[f32], gate: f32, base: u32, cands: &mut Candidates) {
        let gv = _mm256_set1_ps(gate);
        let chunks = z.chunks_exact(8);
        let tail = chunks.remainder();
        for (ci, c) in chunks.enumerate() {
            // SAFETY: `c` holds exactly 8 f32.
            let zv = unsafe { _mm256_loadu_ps(c.as_ptr()) };
            let mut bits = _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_GE_OQ>(zv, gv)) as u32;
            while bits != 0 {
                let j = bits.trailing_zeros();
                cands.push(base + (ci * 8) as u32 + j, c[j as usize]);
                bits &= bits - 1;
            }
        }
        gather_scalar(tail, gate, base + (z.len() - tail.len()) as u32, cands);
    }

    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn sums_below(z: &[f32], m: f32) -> (f32, f32) {
        let mv = _mm256_set1_ps(m);
        let ninf = _mm256_set1_ps(f32::NEG_INFINITY);
        let (mut acc, mut below) = (_mm256_setzero_ps(), ninf);
        let chunks = z.chunks_exact(8);
        let tail = chunks.remainder();
        for c in chunks {
            // SAFETY: `c` holds exactly 8 f32.
            let zv = unsafe { _mm256_loadu_ps(c.as_ptr()) };
            let (e, _) = exp_v(_mm256_sub_ps(zv, mv));
            let lt = _mm256_cmp_ps::<_CMP_LT_OQ>(zv, mv);
            acc = _mm256_add_ps(acc, _mm256_and_ps(e, lt));
            below = _mm256_max_ps(below, _mm256_blendv_ps(ninf, zv, lt));
        }
        let (ts, tb) = sums_below_scalar(tail, m);
        // SAFETY: same target features as this function.
        (hsum(acc) + ts, unsafe { hmax(below) }.max(tb))
    }

    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn sums(z: &[f32], m: f32) -> (f32, f32, f32) {
        let mv = _mm256_set1_ps(m);
        // Four independent accumulator sets, as many vectors in flight as the exp's latency
        // asks for.
        let mut s0 = [_mm256_setzero_ps(); 4];
        let mut s1 = s0;
        let mut s2 = s0;
        let chunks = z.chunks_exact(32);
        let tail = chunks.remainder();
        for c in chunks {
            for k in 0..4 {
                // SAFETY: `c` holds exactly 32 f32; lane group k is 8 of them.
                let zv = unsafe { _mm256_loadu_ps(c.as_ptr().add(8 * k)) };
                let (e, x) = exp_v(_mm256_sub_ps(zv, mv));
                let xe = _mm256_mul_ps(x, e);
                s0[k] = _mm256_add_ps(s0[k], e);
                s1[k] = _mm256_add_ps(s1[k], xe);
                s2[k] = _mm256_fmadd_ps(x, xe, s2[k]);
            }
        }
        let fold = |a: [__m256; 4]| {
            hsum(_mm256_add_ps(
                _mm256_add_ps(a[0], a[1]),
                _mm256_add_ps(a[2], a[3]),
            ))
        };
        let t = sums_scalar(tail, m);
        (fold(s0) + t.0, fold(s1) + t.1, fold(s2) + t.2)
    }
}
