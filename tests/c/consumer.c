/* C consumer of include/infogravity.h: runs the shared scenario and checks the C conventions.
 * Prints "seq <s> step <i> token <t> H <h> T <T> regime <r> flags <f>" lines for the Rust test
 * to compare, then "C OK". Any failed check prints "FAIL ..." and exits 1. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "infogravity.h"
#include "scenario.h"

/* ABI v1 is frozen: these sizes are what every host compiled against v1 passes. */
_Static_assert(sizeof(IgSeqParams) == 88 && IG_SEQ_PARAMS_V1_SIZE == 88, "IgSeqParams v1");
_Static_assert(sizeof(IgStepReport) == 88 && IG_STEP_REPORT_V1_SIZE == 88, "IgStepReport v1");
_Static_assert(sizeof(IgQueryMass) == 32 && IG_QUERY_MASS_V1_SIZE == 32, "IgQueryMass v1");
_Static_assert(sizeof(IgAnswerStats) == 56 && IG_ANSWER_STATS_V1_SIZE == 56, "IgAnswerStats v1");
/* A fixed width whatever the compiler does with enums (the tests also build with
 * -fshort-enums). */
_Static_assert(sizeof(IgStatus) == 4, "IgStatus is a uint32_t");

static int failures = 0;
#define CHECK(cond, ...)                                   \
    do {                                                   \
        if (!(cond)) {                                     \
            printf("FAIL line %d: ", __LINE__);            \
            printf(__VA_ARGS__);                           \
            printf(" (last error: %s)\n", ig_last_error()); \
            failures++;                                    \
        }                                                  \
    } while (0)

static uint16_t to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return (uint16_t)((u + 0x7FFF + ((u >> 16) & 1)) >> 16);
}

static void run(const char *preset_json, uint64_t seq) {
    IgProcessor *p = NULL;
    IgStatus st = ig_processor_new(preset_json, SC_VOCAB, &p);
    CHECK(st == IG_STATUS_OK && p != NULL, "new: %d", st);
    if (!p) return;
    IgSeqParams sp;
    ig_seq_params_init(&sp);
    uint32_t anchors[3] = {10, 20, 30};
    sp.seed = 1234 + seq;
    sp.anchors = anchors;
    sp.n_anchors = 3;
    sp.has_context_gain = 1;
    sp.context_gain = 1.5f;
    IgQueryMass m;
    ig_query_mass_init(&m);
    st = ig_processor_begin(p, seq, &sp, &m);
    CHECK(st == IG_STATUS_OK, "begin: %d", st);
    /* A fresh processor with no calibration has no running statistics yet (mass.scale auto,
     * mass.warmup 8): M is absent, never invented. */
    CHECK(m.d == 1.5f && isnan(m.h) && isnan(m.m), "mass d=%f h=%f m=%f", m.d, m.h, m.m);
    float *row = malloc(sizeof(float) * SC_VOCAB);
    for (uint32_t i = 0; i < SC_STEPS; i++) {
        sc_row(seq, i, row);
        IgStepReport r;
        ig_step_report_init(&r);
        st = ig_processor_step(p, seq, row, IG_DTYPE_F32, SC_VOCAB, IG_MODE_SAMPLE, &r);
        CHECK(st == IG_STATUS_OK, "step %u: %d", i, st);
        CHECK(r.token >= 0 && r.token < SC_VOCAB, "token %lld", (long long)r.token);
        printf("seq %llu step %u token %lld H %.5f T %.5f regime %u flags %u\n",
               (unsigned long long)seq, r.step, (long long)r.token, r.entropy, r.temperature,
               r.regime, r.flags);
        st = ig_processor_accept(p, seq, (uint32_t)r.token);
        CHECK(st == IG_STATUS_OK, "accept: %d", st);
    }
    /* The answer aggregates cover every accepted token. */
    IgAnswerStats a;
    ig_answer_stats_init(&a);
    st = ig_processor_answer(p, seq, &a);
    CHECK(st == IG_STATUS_OK && a.tokens == SC_STEPS && a.has_first_content == 1 &&
              a.mean_entropy > 0.0f && a.max_entropy >= a.mean_entropy,
          "answer: %d tokens %u", st, a.tokens);
    CHECK(ig_processor_end(p, seq) == IG_STATUS_OK, "end");
    free(row);
    ig_processor_free(p);
}

static void conventions(void) {
    /* Version macros agree with the library. */
    CHECK(ig_version_number() == IG_VERSION_NUMBER, "version number %u vs %u",
          ig_version_number(), (unsigned)IG_VERSION_NUMBER);
    CHECK(ig_abi_version() == IG_ABI_VERSION, "ABI %u vs %u", ig_abi_version(),
          (unsigned)IG_ABI_VERSION);
    CHECK(strcmp(ig_version(), IG_VERSION_STRING) == 0, "version %s vs %s", ig_version(),
          IG_VERSION_STRING);
    printf("version %s %d.%d.%d\n", ig_version(), IG_VERSION_MAJOR, IG_VERSION_MINOR,
           IG_VERSION_PATCH);
    CHECK(strcmp(ig_status_str(IG_STATUS_OK), "ok") == 0, "status_str");
    CHECK(strcmp(ig_status_str(9999), "unknown status") == 0, "unknown status_str");
    ig_processor_free(NULL);

    IgProcessor *p = NULL;
    CHECK(ig_processor_new("{\"preset\":\"neutral\"}", SC_VOCAB, NULL) == IG_STATUS_NULL_POINTER,
          "null out");
    CHECK(ig_processor_new("{\"nope\":1}", SC_VOCAB, &p) == IG_STATUS_CONFIG_UNKNOWN_KEY && !p,
          "unknown key");
    CHECK(strstr(ig_last_error(), "nope") != NULL, "message names the key: %s", ig_last_error());
    CHECK(ig_processor_new(NULL, 0, &p) == IG_STATUS_INVALID_ARGUMENT, "vocab 0");
    CHECK(ig_processor_new("{\"preset\":\"neutral\"}", SC_VOCAB, &p) == IG_STATUS_OK, "new");

    float row[SC_VOCAB];
    IgStepReport r;
    ig_step_report_init(&r);
    CHECK(ig_processor_step(p, 77, row, IG_DTYPE_F32, SC_VOCAB, 0, &r) ==
              IG_STATUS_UNKNOWN_SEQUENCE, "unknown seq");
    CHECK(ig_processor_begin(p, 1, NULL, NULL) == IG_STATUS_OK, "begin NULL params");
    CHECK(ig_processor_begin(p, 1, NULL, NULL) == IG_STATUS_DUPLICATE_SEQUENCE, "dup");

    /* NaN: error, row untouched. */
    sc_row(1, 0, row);
    row[17] = NAN;
    float copy[SC_VOCAB];
    memcpy(copy, row, sizeof row);
    CHECK(ig_processor_step(p, 1, row, IG_DTYPE_F32, SC_VOCAB, IG_MODE_LOGITS, &r) ==
              IG_STATUS_NAN_LOGITS, "nan");
    CHECK(memcmp(copy, row, sizeof row) == 0, "row untouched after NaN");

    /* Wrong size, bad dtype, small struct. */
    sc_row(1, 0, row);
    CHECK(ig_processor_step(p, 1, row, IG_DTYPE_F32, SC_VOCAB - 1, 0, &r) ==
              IG_STATUS_SIZE_MISMATCH, "size");
    CHECK(ig_processor_step(p, 1, row, 9, SC_VOCAB, 0, &r) == IG_STATUS_UNSUPPORTED_DTYPE, "dtype");
    IgStepReport small;
    small.struct_size = 8;
    CHECK(ig_processor_step(p, 1, row, IG_DTYPE_F32, SC_VOCAB, 0, &small) ==
              IG_STATUS_STRUCT_TOO_SMALL, "struct size");
    CHECK(ig_processor_accept(p, 1, SC_VOCAB) == IG_STATUS_TOKEN_OUT_OF_RANGE, "token range");

    /* neutral + LOGITS mode is the identity. */
    sc_row(1, 3, row);
    memcpy(copy, row, sizeof row);
    CHECK(ig_processor_step(p, 1, row, IG_DTYPE_F32, SC_VOCAB, IG_MODE_LOGITS, &r) == IG_STATUS_OK,
          "neutral logits");
    CHECK(memcmp(copy, row, sizeof row) == 0, "neutral is the identity");
    CHECK(r.token == -1, "no token in LOGITS mode");

    /* bf16 rows work and agree with f32 on the entropy of the same (rounded) values. */
    uint16_t rb[SC_VOCAB];
    for (int i = 0; i < SC_VOCAB; i++) rb[i] = to_bf16(copy[i]);
    IgStepReport rbr;
    ig_step_report_init(&rbr);
    CHECK(ig_processor_step(p, 1, rb, IG_DTYPE_BF16, SC_VOCAB, IG_MODE_SAMPLE, &rbr) == IG_STATUS_OK,
          "bf16");
    CHECK(fabsf(rbr.entropy - r.entropy) < 0.05f, "bf16 entropy %f vs %f", rbr.entropy, r.entropy);

    /* Batch of two sequences. */
    CHECK(ig_processor_begin(p, 2, NULL, NULL) == IG_STATUS_OK, "begin 2");
    static float batch[2 * SC_VOCAB];
    sc_row(1, 5, batch);
    sc_row(2, 5, batch + SC_VOCAB);
    uint64_t ids[2] = {1, 2};
    IgStepReport reps[2];
    ig_step_report_init(&reps[0]);
    ig_step_report_init(&reps[1]);
    CHECK(ig_processor_step_batch(p, ids, 2, batch, IG_DTYPE_F32, 2 * SC_VOCAB, 0, reps) ==
              IG_STATUS_OK, "batch");
    CHECK(reps[0].seq == 1 && reps[1].seq == 2 && reps[1].token >= 0, "batch reports");
    uint64_t dup[2] = {1, 1};
    CHECK(ig_processor_step_batch(p, dup, 2, batch, IG_DTYPE_F32, 2 * SC_VOCAB, 0, reps) ==
              IG_STATUS_DUPLICATE_SEQUENCE, "batch dup");

    /* Buffer-size query of the config JSON. */
    size_t need = 0;
    CHECK(ig_processor_config_json(p, NULL, 0, &need) == IG_STATUS_BUFFER_TOO_SMALL && need > 10,
          "size query");
    char *buf = malloc(need);
    CHECK(ig_processor_config_json(p, buf, need, &need) == IG_STATUS_OK && strstr(buf, "min_p"),
          "config json");
    free(buf);
    size_t v = 0, live = 0;
    CHECK(ig_processor_info(p, &v, &live) == IG_STATUS_OK && v == SC_VOCAB && live == 2, "info");
    CHECK(ig_processor_load_prior(p, "/nonexistent/prior.bin") == IG_STATUS_IO, "io");
    ig_processor_free(p);
}

/* One greedy step of sequence `seq` on a row peaked at `at`; returns the report. */
static IgStepReport peak_step_of(IgProcessor *p, uint64_t seq, int at) {
    float row[SC_VOCAB];
    for (int i = 0; i < SC_VOCAB; i++) row[i] = 0.0f;
    row[at] = 25.0f;
    IgStepReport r;
    ig_step_report_init(&r);
    CHECK(ig_processor_step(p, seq, row, IG_DTYPE_F32, SC_VOCAB, IG_MODE_SAMPLE, &r) ==
              IG_STATUS_OK,
          "step at %d", at);
    return r;
}

/* The same for sequence 1. */
static IgStepReport peak_step(IgProcessor *p, int at) { return peak_step_of(p, 1, at); }

/* escape.rollback: the advice (flag, count), the rewind, the ban, and the errors. */
static void rollback(void) {
    IgProcessor *p = NULL;
    CHECK(ig_processor_new("{\"preset\":\"balanced\",\"temperature\":{\"base\":0},"
                           "\"escape\":{\"rollback\":8,\"repeat_penalty\":0}}",
                           SC_VOCAB, &p) == IG_STATUS_OK,
          "new (rollback)");
    CHECK(ig_processor_begin(p, 1, NULL, NULL) == IG_STATUS_OK, "begin");
    const int loop[] = {10, 11, 12, 13, 10, 11, 12};
    for (int i = 0; i < 7; i++) {
        IgStepReport r = peak_step(p, loop[i]);
        CHECK(r.token == loop[i] && !(r.flags & IG_FLAG_ROLLBACK), "loop step %d: token %lld", i,
              (long long)r.token);
        CHECK(ig_processor_accept(p, 1, (uint32_t)r.token) == IG_STATUS_OK, "accept");
    }
    IgStepReport r = peak_step(p, 13);
    CHECK((r.flags & IG_FLAG_GUARD) && (r.flags & IG_FLAG_ROLLBACK) && r.token != 13,
          "guarded, rollback advised: flags %u token %lld", r.flags, (long long)r.token);
    uint32_t n = 99;
    CHECK(ig_processor_rollback_advice(p, 1, NULL) == IG_STATUS_NULL_POINTER, "advice NULL");
    CHECK(ig_processor_rollback_advice(p, 9, &n) == IG_STATUS_UNKNOWN_SEQUENCE, "advice seq");
    CHECK(ig_processor_rollback_advice(p, 1, &n) == IG_STATUS_OK && n == 3,
          "the copy so far (10 11 12): %u", n);
    CHECK(ig_processor_rollback(NULL, 1, 3) == IG_STATUS_NULL_POINTER, "rollback NULL");
    CHECK(ig_processor_rollback(p, 9, 3) == IG_STATUS_UNKNOWN_SEQUENCE, "rollback unknown seq");
    CHECK(ig_processor_rollback(p, 1, 100) == IG_STATUS_INVALID_ARGUMENT &&
              strstr(ig_last_error(), "cannot rewind") != NULL,
          "rollback beyond the depth: %s", ig_last_error());
    CHECK(ig_processor_rollback(p, 1, 3) == IG_STATUS_OK, "rollback");
    CHECK(ig_processor_rollback_advice(p, 1, &n) == IG_STATUS_OK && n == 0,
          "no step pending after the rewind: %u", n);
    r = peak_step(p, 10);
    CHECK(r.step == 4 && (r.flags & IG_FLAG_BANNED) && r.token != 10,
          "the copy's first token is banned where it began: step %u flags %u token %lld", r.step,
          r.flags, (long long)r.token);
    ig_processor_free(p);
}

/* The hidden-state probe: set, read per answer (first step, mean), errors, clear, load; and
 * the answer-level void over it (answer weights: only the bias and the probe's). */
static void probe(void) {
    IgProcessor *p = NULL;
    CHECK(ig_processor_new("{\"preset\":\"neutral\",\"temperature\":{\"base\":0},"
                           "\"answer\":{\"bias\":-2,\"mean_entropy\":0,\"mean_potential\":0,"
                           "\"max_potential\":0,\"probe\":0.1}}",
                           SC_VOCAB, &p) == IG_STATUS_OK,
          "new (probe): %s", ig_last_error());
    const uint32_t tokens[] = {3, 10};
    const float weights[] = {2.0f, 0.5f};
    const uint32_t bad_token[] = {SC_VOCAB};
    CHECK(ig_processor_set_probe(NULL, tokens, weights, 2, 0.0f) == IG_STATUS_NULL_POINTER,
          "probe NULL handle");
    CHECK(ig_processor_set_probe(p, NULL, weights, 2, 0.0f) == IG_STATUS_NULL_POINTER,
          "probe NULL tokens");
    CHECK(ig_processor_set_probe(p, bad_token, weights, 1, 0.0f) == IG_STATUS_INVALID_ARGUMENT &&
              strstr(ig_last_error(), "outside the vocabulary") != NULL,
          "probe token >= V: %s", ig_last_error());
    CHECK(ig_processor_set_probe(p, tokens, weights, 2, NAN) == IG_STATUS_INVALID_ARGUMENT,
          "probe NaN bias");
    CHECK(ig_processor_load_probe(p, "no/such/probe.json") == IG_STATUS_IO, "probe file missing");
    CHECK(ig_processor_set_probe(p, tokens, weights, 2, 1.0f) == IG_STATUS_OK, "set probe");
    CHECK(ig_processor_begin(p, 1, NULL, NULL) == IG_STATUS_OK, "begin");
    float first = 0.0f, mean = 0.0f;
    CHECK(ig_processor_answer_probe(p, 1, &first, &mean) == IG_STATUS_OK && isnan(first) &&
              isnan(mean),
          "no step yet: %f %f", first, mean);
    /* Row: 0 everywhere, 25 at the peak; the probe reads 1 + 2·z[3] + 0.5·z[10]. */
    const int peaks[] = {3, 10, 7};
    const float want[] = {1.0f + 50.0f, 1.0f + 12.5f, 1.0f};
    for (int i = 0; i < 3; i++) {
        IgStepReport r = peak_step(p, peaks[i]);
        CHECK(ig_processor_accept(p, 1, (uint32_t)r.token) == IG_STATUS_OK, "accept");
    }
    CHECK(ig_processor_answer_probe(p, 9, &first, &mean) == IG_STATUS_UNKNOWN_SEQUENCE,
          "probe unknown seq");
    CHECK(ig_processor_answer_probe(p, 1, NULL, NULL) == IG_STATUS_OK, "probe NULL outs");
    CHECK(ig_processor_answer_probe(p, 1, &first, &mean) == IG_STATUS_OK && first == want[0] &&
              fabsf(mean - (want[0] + want[1] + want[2]) / 3.0f) < 1e-4f,
          "probe first %f mean %f", first, mean);
    float v = 0.0f;
    CHECK(ig_processor_answer_void(p, 1, NULL) == IG_STATUS_NULL_POINTER, "void NULL out");
    CHECK(ig_processor_answer_void(NULL, 1, &v) == IG_STATUS_NULL_POINTER, "void NULL handle");
    CHECK(ig_processor_answer_void(p, 9, &v) == IG_STATUS_UNKNOWN_SEQUENCE, "void unknown seq");
    CHECK(ig_processor_answer_void(p, 1, &v) == IG_STATUS_OK &&
              fabsf(v - 1.0f / (1.0f + expf(2.0f - 0.1f * mean))) < 1e-5f,
          "answer void %f over the probe's mean %f", v, mean);
    CHECK(ig_processor_set_probe(p, NULL, NULL, 0, 0.0f) == IG_STATUS_OK, "clear probe");
    CHECK(ig_processor_begin(p, 2, NULL, NULL) == IG_STATUS_OK, "begin 2");
    CHECK(ig_processor_answer_void(p, 2, &v) == IG_STATUS_OK && isnan(v), "void before a token");
    IgStepReport r = peak_step_of(p, 2, 3);
    CHECK(ig_processor_accept(p, 2, (uint32_t)r.token) == IG_STATUS_OK, "accept 2");
    IgAnswerStats a;
    ig_answer_stats_init(&a);
    CHECK(ig_processor_answer(p, 2, &a) == IG_STATUS_OK && a.tokens == 1, "one answer token");
    CHECK(ig_processor_answer_void(p, 2, &v) == IG_STATUS_OK && isnan(v),
          "a probe weight without a probe: NaN, not a silent 0 (%f)", v);
    ig_processor_free(p);
}

int main(void) {
    conventions();
    rollback();
    probe();
    run("{\"preset\":\"neutral\"}", 1);
    run("{\"preset\":\"balanced\"}", 2);
    run("{\"preset\":\"factual\",\"sampler\":{\"top_k\":40,\"top_p\":0.9}}", 3);
    if (failures) {
        printf("C FAILED %d\n", failures);
        return 1;
    }
    printf("C OK\n");
    return 0;
}
