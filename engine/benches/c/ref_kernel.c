/* The reference the field kernel is measured against (issue: "a tuned C kernel of the same
 * accuracy"): the three moment sums of a logits row, Σe^{z−m}, Σ(z−m)e^{z−m}, Σ(z−m)²e^{z−m}
 * with m the row's maximum, in two passes (maximum, then sums) over the whole row, AVX2/FMA with
 * four independent accumulator sets, no bookkeeping of any kind (no NaN check, no second
 * maximum, no candidates, no block merging). `degree` picks the exp polynomial: 7 is the
 * Cephes expf polynomial (≈1 ulp), 5 a minimax one of ≤ 2.5e-7 relative error (infogravity's),
 * 4 a minimax one of ~3e-6. Returns log Z, E_p[z] and Var_p[z] in `out` so nothing is optimised
 * away. Degree 5 is the polynomial of infogravity's own kernel: the like-for-like reference.
 * Compiled by engine/build.rs; timed by `infogravity bench`. */
#include <immintrin.h>
#include <math.h>
#include <stddef.h>

#define LOG2E 1.44269504088896341f
#define LN2_HI 0.693359375f
#define LN2_LO -2.12194440e-4f
#define X_MIN -87.33f
#define SHIFT 12582912.0f

/* e^x for x ≤ 0: 2^n · p(r), r ∈ [−ln2/2, ln2/2]. */
__attribute__((target("avx2,fma"), always_inline)) static inline __m256 exp7(__m256 x) {
    x = _mm256_max_ps(x, _mm256_set1_ps(X_MIN));
    __m256 t = _mm256_fmadd_ps(x, _mm256_set1_ps(LOG2E), _mm256_set1_ps(SHIFT));
    __m256 n = _mm256_sub_ps(t, _mm256_set1_ps(SHIFT));
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_HI), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_LO), r);
    __m256 r2 = _mm256_mul_ps(r, r);
    __m256 a = _mm256_fmadd_ps(_mm256_set1_ps(1.9875691e-4f), r, _mm256_set1_ps(1.3981999e-3f));
    __m256 b = _mm256_fmadd_ps(_mm256_set1_ps(8.3334519e-3f), r, _mm256_set1_ps(4.1665795e-2f));
    __m256 c = _mm256_fmadd_ps(_mm256_set1_ps(1.6666665e-1f), r, _mm256_set1_ps(0.5f));
    __m256 p = _mm256_fmadd_ps(_mm256_fmadd_ps(a, r2, b), r2, c);
    __m256 e = _mm256_fmadd_ps(p, r2, _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    __m256i ni = _mm256_add_epi32(_mm256_castps_si256(t), _mm256_set1_epi32(127));
    return _mm256_mul_ps(e, _mm256_castsi256_ps(_mm256_slli_epi32(ni, 23)));
}

/* Minimax degree 4 for e^r on [−ln2/2, ln2/2] with p(0) = 1: relative error 2.9e-6 (f32). */
__attribute__((target("avx2,fma"), always_inline)) static inline __m256 exp4(__m256 x) {
    x = _mm256_max_ps(x, _mm256_set1_ps(X_MIN));
    __m256 t = _mm256_fmadd_ps(x, _mm256_set1_ps(LOG2E), _mm256_set1_ps(SHIFT));
    __m256 n = _mm256_sub_ps(t, _mm256_set1_ps(SHIFT));
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.69314718f), x);
    __m256 r2 = _mm256_mul_ps(r, r);
    __m256 a = _mm256_fmadd_ps(_mm256_set1_ps(4.1513696e-2f), r, _mm256_set1_ps(1.6787457e-1f));
    __m256 b = _mm256_fmadd_ps(_mm256_set1_ps(0.50003016f), r, _mm256_set1_ps(0.99996686f));
    __m256 p = _mm256_fmadd_ps(_mm256_fmadd_ps(a, r2, b), r, _mm256_set1_ps(1.0f));
    __m256i ni = _mm256_add_epi32(_mm256_castps_si256(t), _mm256_set1_epi32(127));
    return _mm256_mul_ps(p, _mm256_castsi256_ps(_mm256_slli_epi32(ni, 23)));
}

/* The degree-5 minimax polynomial infogravity's own kernel uses (src/field/kernel.rs): relative
 * error ≤ 2.5e-7 for x ≥ −20, Horner's scheme. */
__attribute__((target("avx2,fma"), always_inline)) static inline __m256 exp5(__m256 x) {
    x = _mm256_max_ps(x, _mm256_set1_ps(X_MIN));
    __m256 t = _mm256_fmadd_ps(x, _mm256_set1_ps(LOG2E), _mm256_set1_ps(SHIFT));
    __m256 n = _mm256_sub_ps(t, _mm256_set1_ps(SHIFT));
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.69314718f), x);
    __m256 q = _mm256_fmadd_ps(_mm256_set1_ps(8.290297e-3f), r, _mm256_set1_ps(4.189791e-2f));
    q = _mm256_fmadd_ps(q, r, _mm256_set1_ps(0.16667636f));
    q = _mm256_fmadd_ps(q, r, _mm256_set1_ps(0.4999915f));
    q = _mm256_fmadd_ps(q, r, _mm256_set1_ps(0.9999997f));
    __m256 p = _mm256_fmadd_ps(q, r, _mm256_set1_ps(1.0f));
    __m256i ni = _mm256_add_epi32(_mm256_castps_si256(t), _mm256_set1_epi32(127));
    return _mm256_mul_ps(p, _mm256_castsi256_ps(_mm256_slli_epi32(ni, 23)));
}

static float hsum(__m256 v) __attribute__((target("avx2,fma")));
static float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 0x55));
    return _mm_cvtss_f32(s);
}

#define STEP(EXP, k)                                                     \
    do {                                                                 \
        __m256 x = _mm256_sub_ps(_mm256_loadu_ps(z + i + 8 * (k)), mv); \
        __m256 e = EXP(x);                                               \
        __m256 xe = _mm256_mul_ps(x, e);                                 \
        s0[k] = _mm256_add_ps(s0[k], e);                                 \
        s1[k] = _mm256_add_ps(s1[k], xe);                                \
        s2[k] = _mm256_fmadd_ps(x, xe, s2[k]);                           \
    } while (0)

#define KERNEL(NAME, EXP)                                                                  \
    __attribute__((target("avx2,fma"))) static void NAME(const float *z, size_t n, float m, \
                                                           float out[3]) {                  \
        const __m256 mv = _mm256_set1_ps(m);                                                \
        __m256 s0[4], s1[4], s2[4];                                                         \
        for (int k = 0; k < 4; k++) s0[k] = s1[k] = s2[k] = _mm256_setzero_ps();           \
        size_t i = 0;                                                                       \
        for (; i + 32 <= n; i += 32) {                                                      \
            STEP(EXP, 0);                                                                   \
            STEP(EXP, 1);                                                                   \
            STEP(EXP, 2);                                                                   \
            STEP(EXP, 3);                                                                   \
        }                                                                                   \
        float t0 = 0, t1 = 0, t2 = 0;                                                       \
        for (; i < n; i++) {                                                                \
            float x = z[i] - m, e = expf(x);                                                \
            t0 += e, t1 += x * e, t2 += x * x * e;                                          \
        }                                                                                   \
        out[0] = hsum(_mm256_add_ps(_mm256_add_ps(s0[0], s0[1]), _mm256_add_ps(s0[2], s0[3]))) + t0; \
        out[1] = hsum(_mm256_add_ps(_mm256_add_ps(s1[0], s1[1]), _mm256_add_ps(s1[2], s1[3]))) + t1; \
        out[2] = hsum(_mm256_add_ps(_mm256_add_ps(s2[0], s2[1]), _mm256_add_ps(s2[2], s2[3]))) + t2; \
    }

KERNEL(sums7, exp7)
KERNEL(sums5, exp5)
KERNEL(sums4, exp4)

__attribute__((target("avx2,fma"))) static float row_max(const float *z, size_t n) {
    __m256 m[4] = {_mm256_set1_ps(-INFINITY), _mm256_set1_ps(-INFINITY),
                   _mm256_set1_ps(-INFINITY), _mm256_set1_ps(-INFINITY)};
    size_t i = 0;
    for (; i + 32 <= n; i += 32)
        for (int k = 0; k < 4; k++) m[k] = _mm256_max_ps(m[k], _mm256_loadu_ps(z + i + 8 * k));
    __m256 v = _mm256_max_ps(_mm256_max_ps(m[0], m[1]), _mm256_max_ps(m[2], m[3]));
    float a[8], best = -INFINITY;
    _mm256_storeu_ps(a, v);
    for (int k = 0; k < 8; k++) best = a[k] > best ? a[k] : best;
    for (; i < n; i++) best = z[i] > best ? z[i] : best;
    return best;
}

/* 1 when this CPU can run the kernel (AVX2 and FMA). */
int ig_ref_available(void) {
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

void ig_ref_stats(const float *z, size_t n, int degree, double out[3]) {
    float m = row_max(z, n), s[3];
    if (degree == 4) sums4(z, n, m, s);
    else if (degree == 5) sums5(z, n, m, s);
    else sums7(z, n, m, s);
    double mu = (double)s[1] / s[0];
    out[0] = m + log((double)s[0]);
    out[1] = m + mu;
    out[2] = (double)s[2] / s[0] - mu * mu;
}
