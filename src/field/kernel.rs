//! Block kernels for the field pass: AVX2/FMA with runtime detection, and a scalar fallback
//! running the same polynomial. See the parent module for the algorithm.

use super::Candidates;

/// Results of the first read of a block.
pub(super) struct Scan {
    pub max1: f32,
    pub max2: f32,
    pub nan: bool,
}

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

    /// Maximum, second maximum (with multiplicity: equal to the maximum on ties) and NaN flag.
    #[inline]
    pub fn scan(self, z: &[f32]) -> Scan {
        match self {
            Kernel::Scalar => scan_scalar(z),
            // SAFETY: an `Avx2Fma` token exists only when the CPU reports AVX2 and FMA.
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2(_) => unsafe { avx2::scan(z) },
        }
    }

    /// Maximum only (the floor kernel's first read).
    #[inline]
    pub fn max(self, z: &[f32]) -> f32 {
        match self {
            Kernel::Scalar => z.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)),
            // SAFETY: as in `scan`.
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2(_) => unsafe { avx2::max(z) },
        }
    }

    /// (Σe^x, Σx·e^x, Σx²·e^x) with x = z − m, masked (−inf) entries contributing 0.
    #[inline]
    pub fn sums(self, z: &[f32], m: f32) -> (f32, f32, f32) {
        match self {
            Kernel::Scalar => sums_scalar(z, m),
            // SAFETY: as in `scan`.
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2(_) => unsafe { avx2::sums(z, m) },
        }
    }

    /// Σe^{z − m} over the elements strictly below `m` (the block maximum).
    #[inline]
    pub fn sums_below(self, z: &[f32], m: f32) -> f32 {
        match self {
            Kernel::Scalar => z
                .iter()
                .filter(|&&v| v < m)
                .map(|&v| exp_scalar(v - m))
                .sum(),
            // SAFETY: as in `scan`.
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2(_) => unsafe { avx2::sums_below(z, m) },
        }
    }

    /// Push every element with z ≥ gate into `cands` (ids offset by `base`).
    #[inline]
    pub fn gather(self, z: &[f32], gate: f32, base: u32, cands: &mut Candidates) {
        match self {
            Kernel::Scalar => gather_scalar(z, gate, base, cands),
            // SAFETY: as in `scan`.
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2(_) => unsafe { avx2::gather(z, gate, base, cands) },
        }
    }
}

/// Index (within the block) of the first element equal to `v` (which is known to be present).
pub(super) fn first_index_of(z: &[f32], v: f32) -> u32 {
    z.iter().position(|&x| x == v).unwrap_or(0) as u32
}

// Cephes expf constants: e^x = 2^n · e^r, r ∈ [−ln2/2, ln2/2], e^r ≈ 1 + r + r²·P(r).
const LOG2E: f32 = std::f32::consts::LOG2_E;
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
const P0: f32 = 1.987_569_1e-4;
const P1: f32 = 1.398_199_9e-3;
const P2: f32 = 8.333_452e-3;
const P3: f32 = 4.166_579_6e-2;
const P4: f32 = 1.666_666_5e-1;
const P5: f32 = 0.5; // Cephes: 5.0000001201e-1, which rounds to 0.5 in f32
/// Below this e^x would be subnormal in f32.
const X_MIN: f32 = -87.33;
/// 1.5·2^23: adding it rounds a float of magnitude < 2^22 to an integer in the low mantissa.
#[cfg(target_arch = "x86_64")]
const SHIFT: f32 = 12_582_912.0;

/// e^x for x ≤ 0 (scalar form of the vector kernel, same polynomial).
#[inline]
pub(super) fn exp_scalar(x: f32) -> f32 {
    if x.is_nan() || x < X_MIN {
        return 0.0; // the vector kernel clamps instead: e^{X_MIN} ≈ 1.2e-38, same to f32 sums
    }
    let n = (x * LOG2E).round();
    let r = x - n * LN2_HI - n * LN2_LO;
    // Same evaluation order as the vector kernel (Estrin), so both paths round alike.
    let r2 = r * r;
    let a = P0.mul_add(r, P1);
    let b = P2.mul_add(r, P3);
    let c = P4.mul_add(r, P5);
    let p = a.mul_add(r2, b).mul_add(r2, c);
    let e = p.mul_add(r2, r + 1.0);
    let pow2 = f32::from_bits(((n as i32 + 127) as u32) << 23);
    e * pow2
}

fn scan_scalar(z: &[f32]) -> Scan {
    let (mut m1, mut m2, mut nan) = (f32::NEG_INFINITY, f32::NEG_INFINITY, false);
    for &x in z {
        nan |= x.is_nan();
        m2 = m2.max(m1.min(x));
        m1 = m1.max(x);
    }
    Scan {
        max1: m1,
        max2: m2,
        nan,
    }
}

fn sums_scalar(z: &[f32], m: f32) -> (f32, f32, f32) {
    let (mut s0, mut s1, mut s2) = (0f32, 0f32, 0f32);
    for &v in z {
        let x = v - m;
        let e = exp_scalar(x);
        if e > 0.0 {
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

    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn scan(z: &[f32]) -> Scan {
        let mut m1 = _mm256_set1_ps(f32::NEG_INFINITY);
        let mut m2 = m1;
        let mut nan = _mm256_setzero_ps();
        let chunks = z.chunks_exact(8);
        let tail = chunks.remainder();
        for c in chunks {
            // SAFETY: `c` holds exactly 8 f32.
            let x = unsafe { _mm256_loadu_ps(c.as_ptr()) };
            nan = _mm256_or_ps(nan, _mm256_cmp_ps::<_CMP_UNORD_Q>(x, x));
            // max/min return the second operand when either is NaN; NaN is reported anyway.
            m2 = _mm256_max_ps(m2, _mm256_min_ps(m1, x));
            m1 = _mm256_max_ps(m1, x);
        }
        let mut l1 = [0f32; 8];
        let mut l2 = [0f32; 8];
        // SAFETY: arrays of 8 f32.
        unsafe {
            _mm256_storeu_ps(l1.as_mut_ptr(), m1);
            _mm256_storeu_ps(l2.as_mut_ptr(), m2);
        }
        let mut s = scan_scalar(tail);
        s.nan |= _mm256_movemask_ps(nan) != 0;
        // Top two of the 16 lane values plus the tail's, with multiplicity.
        for v in l1.into_iter().chain(l2) {
            s.max2 = s.max2.max(s.max1.min(v));
            s.max1 = s.max1.max(v);
        }
        s
    }

    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn max(z: &[f32]) -> f32 {
        let mut m = _mm256_set1_ps(f32::NEG_INFINITY);
        let chunks = z.chunks_exact(8);
        let tail = chunks.remainder();
        for c in chunks {
            // SAFETY: `c` holds exactly 8 f32.
            m = _mm256_max_ps(m, unsafe { _mm256_loadu_ps(c.as_ptr()) });
        }
        // SAFETY: same target features as this function.
        let v = unsafe { hmax(m) };
        tail.iter().fold(v, |a, &b| a.max(b))
    }

    /// e^x for a vector with x ≤ 0. Lanes below X_MIN (−inf included) are clamped to X_MIN,
    /// so they contribute e^{X_MIN} ≈ 1.2e-38 (not NaN) — negligible against any live term.
    /// Returns (e^x, clamped x).
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn exp_v(x: __m256) -> (__m256, __m256) {
        let xc = _mm256_max_ps(x, _mm256_set1_ps(X_MIN));
        // Round-to-nearest by the 1.5·2^23 shift: t's low mantissa bits hold n.
        let t = _mm256_fmadd_ps(xc, _mm256_set1_ps(LOG2E), _mm256_set1_ps(SHIFT));
        let n = _mm256_sub_ps(t, _mm256_set1_ps(SHIFT));
        let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_HI), xc);
        let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_LO), r);
        // e^r = 1 + r + r²·P(r), P by Estrin's scheme: the three first FMAs and r², r + 1 are
        // independent, so the dependency chain is 4 FMAs shorter than Horner's.
        let r2 = _mm256_mul_ps(r, r);
        let r1 = _mm256_add_ps(r, _mm256_set1_ps(1.0));
        let a = _mm256_fmadd_ps(_mm256_set1_ps(P0), r, _mm256_set1_ps(P1));
        let b = _mm256_fmadd_ps(_mm256_set1_ps(P2), r, _mm256_set1_ps(P3));
        let c = _mm256_fmadd_ps(_mm256_set1_ps(P4), r, _mm256_set1_ps(P5));
        let p = _mm256_fmadd_ps(_mm256_fmadd_ps(a, r2, b), r2, c);
        let e = _mm256_fmadd_ps(p, r2, r1);
        let ni = _mm256_add_epi32(_mm256_castps_si256(t), _mm256_set1_epi32(127));
        let pow2 = _mm256_castsi256_ps(_mm256_slli_epi32::<23>(ni));
        (_mm256_mul_ps(e, pow2), xc)
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
    pub unsafe fn sums_below(z: &[f32], m: f32) -> f32 {
        let mv = _mm256_set1_ps(m);
        let mut acc = _mm256_setzero_ps();
        let chunks = z.chunks_exact(8);
        let tail = chunks.remainder();
        for c in chunks {
            // SAFETY: `c` holds exactly 8 f32.
            let zv = unsafe { _mm256_loadu_ps(c.as_ptr()) };
            let (e, _) = exp_v(_mm256_sub_ps(zv, mv));
            let below = _mm256_cmp_ps::<_CMP_LT_OQ>(zv, mv);
            acc = _mm256_add_ps(acc, _mm256_and_ps(e, below));
        }
        hsum(acc)
            + tail
                .iter()
                .filter(|&&v| v < m)
                .map(|&v| exp_scalar(v - m))
                .sum::<f32>()
    }

    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn sums(z: &[f32], m: f32) -> (f32, f32, f32) {
        let mv = _mm256_set1_ps(m);
        // Two independent accumulator sets hide the add/FMA latency; more would spill (16 ymm).
        let (mut a0, mut a1, mut a2) = (
            _mm256_setzero_ps(),
            _mm256_setzero_ps(),
            _mm256_setzero_ps(),
        );
        let (mut b0, mut b1, mut b2) = (a0, a1, a2);
        let chunks = z.chunks_exact(16);
        let tail = chunks.remainder();
        for c in chunks {
            // SAFETY: `c` holds exactly 16 f32.
            let (za, zb) = unsafe {
                (
                    _mm256_loadu_ps(c.as_ptr()),
                    _mm256_loadu_ps(c.as_ptr().add(8)),
                )
            };
            let (ea, xa) = exp_v(_mm256_sub_ps(za, mv));
            let (eb, xb) = exp_v(_mm256_sub_ps(zb, mv));
            let ta = _mm256_mul_ps(xa, ea);
            let tb = _mm256_mul_ps(xb, eb);
            a0 = _mm256_add_ps(a0, ea);
            b0 = _mm256_add_ps(b0, eb);
            a1 = _mm256_add_ps(a1, ta);
            b1 = _mm256_add_ps(b1, tb);
            a2 = _mm256_fmadd_ps(xa, ta, a2);
            b2 = _mm256_fmadd_ps(xb, tb, b2);
        }
        let mut s0 = hsum(_mm256_add_ps(a0, b0));
        let mut s1 = hsum(_mm256_add_ps(a1, b1));
        let mut s2 = hsum(_mm256_add_ps(a2, b2));
        let t = sums_scalar(tail, m);
        s0 += t.0;
        s1 += t.1;
        s2 += t.2;
        (s0, s1, s2)
    }
}
