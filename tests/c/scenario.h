/* Shared scenario of the C and C++ consumers: deterministic logits rows. The Rust side of
 * tests/c_api.rs generates the same rows and compares the printed results. */
#ifndef IG_TEST_SCENARIO_H
#define IG_TEST_SCENARIO_H
#include <stdint.h>
#include <stddef.h>

#define SC_VOCAB 3000
#define SC_STEPS 24

/* Row `step` of sequence `seq`: a bulk of pseudo-random logits plus a few peaks, and a
 * repeating pattern after step 12 so loop detection has something to find. */
static void sc_row(uint64_t seq, uint32_t step, float *row) {
    uint64_t s = seq * 0x9E3779B97F4A7C15ull + step * 0xBF58476D1CE4E5B9ull + 1;
    for (size_t i = 0; i < SC_VOCAB; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        row[i] = (float)((double)(s >> 40) / (double)(1ull << 24)) * 6.0f - 3.0f;
    }
    row[(step * 7 + seq) % SC_VOCAB] += 6.0f;
    row[(step * 13 + 5) % SC_VOCAB] += 4.0f;
    if (step >= 12) row[100 + step % 3] += 12.0f;
}
#endif
