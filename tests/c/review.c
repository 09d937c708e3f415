/* The reproducers of the reliability review (F1–F13), as a hostile C host would run them,
 * against include/infogravity.h and the library `cargo test` builds (the debug cdylib, whose
 * precondition checks abort on undefined behaviour). Every finding is one function; each
 * prints "F<n> ok" or "FAIL ...". `review oom` instead runs the allocation-failure case, meant
 * for a process with a small address-space limit (ulimit -v). */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "infogravity.h"

static int failures = 0;
#define CHECK(cond, ...)                                    \
    do {                                                    \
        if (!(cond)) {                                      \
            printf("FAIL %s line %d: ", __func__, __LINE__); \
            printf(__VA_ARGS__);                            \
            printf(" (last error: %s)\n", ig_last_error()); \
            failures++;                                     \
        }                                                   \
    } while (0)

static IgProcessor *make(const char *json, size_t vocab) {
    IgProcessor *p = NULL;
    IgStatus st = ig_processor_new(json, vocab, &p);
    CHECK(st == IG_STATUS_OK && p, "new %s: %u", json, st);
    return p;
}

static float f32_of_bf16(uint16_t b) {
    uint32_t u = (uint32_t)b << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static float f32_of_f16(uint16_t h) {
    int e = (h >> 10) & 31, m = h & 1023;
    float s = (h & 0x8000) ? -1.0f : 1.0f;
    if (e == 31) return m ? NAN : s * INFINITY;
    if (e == 0) return s * ldexpf((float)m, -24);
    return s * ldexpf((float)(m + 1024), e - 25);
}

static int finite_count(const float *row, size_t n) {
    int k = 0;
    for (size_t i = 0; i < n; i++) k += isfinite(row[i]) != 0;
    return k;
}

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (!f) {
        printf("FAIL cannot write %s\n", path);
        exit(1);
    }
    fputs(text, f);
    fclose(f);
}

/* F1: a valid configuration must never give a NaN temperature (EDT on a peaked row with a
 * huge mass exponent gave inf·0), in either mode; nor through a calibration. */
static void f1(void) {
    IgProcessor *p = make("{\"temperature\":{\"response\":\"edt\",\"mass_gain\":10,\"mass_ref\":-10},"
                          "\"mass\":{\"scale\":\"minmax\"}}", 4);
    IgSeqParams sp;
    ig_seq_params_init(&sp);
    sp.has_context_gain = 1;
    sp.context_gain = 0.0f;
    CHECK(ig_processor_begin(p, 1, &sp, NULL) == IG_STATUS_OK, "begin");
    for (int mode = 0; mode < 2; mode++) {
        float row[4] = {100, 0, 0, 0};
        IgStepReport r;
        ig_step_report_init(&r);
        IgStatus st = ig_processor_step(p, 1, row, IG_DTYPE_F32, 4, (uint32_t)mode, &r);
        CHECK(st == IG_STATUS_OK, "mode %d: status %u", mode, st);
        CHECK(isfinite(r.temperature) && r.temperature > 0, "mode %d: T = %f", mode, r.temperature);
        if (mode == IG_MODE_SAMPLE) CHECK(r.token == 0, "token %lld", (long long)r.token);
        else CHECK(finite_count(row, 4) >= 1, "LOGITS row has no finite entry");
    }
    CHECK(ig_processor_end(p, 1) == IG_STATUS_OK, "end");
    ig_processor_free(p);

    /* The realistic route: a calibration, a large host D, a confident row. */
    const char *cal = "f1-calibration.json";
    write_file(cal, "{\"format\":\"infogravity-calibration\",\"version\":1,"
                    "\"mass\":{\"d\":{\"mean\":0.8,\"std\":0.6}}}");
    p = make("{\"temperature\":{\"response\":\"edt\",\"mass_gain\":10}}", 4);
    CHECK(ig_processor_load_calibration(p, cal) == IG_STATUS_OK, "calibration");
    sp.context_gain = 7.0f;
    IgQueryMass m;
    ig_query_mass_init(&m);
    CHECK(ig_processor_begin(p, 1, &sp, &m) == IG_STATUS_OK, "begin");
    CHECK(isfinite(m.m), "M = %f", m.m);
    float row[4] = {30, 0, 0, 0};
    IgStepReport r;
    ig_step_report_init(&r);
    CHECK(ig_processor_step(p, 1, row, IG_DTYPE_F32, 4, IG_MODE_SAMPLE, &r) == IG_STATUS_OK, "step");
    CHECK(isfinite(r.temperature), "T = %f", r.temperature);
    ig_processor_free(p);
    unlink(cal);
    printf("F1 ok\n");
}

/* F2: bf16 LOGITS rows with an anchor edit: greedy and top-k 1 keep a finite entry. */
static void f2(void) {
    const char *cfgs[2] = {"{\"preset\":\"factual\",\"temperature\":{\"base\":0}}",
                           "{\"sampler\":{\"top_k\":1}}"};
    for (int c = 0; c < 2; c++) {
        IgProcessor *p = make(cfgs[c], 16);
        uint32_t anchors[1] = {3};
        IgSeqParams sp;
        ig_seq_params_init(&sp);
        sp.anchors = anchors;
        sp.n_anchors = 1;
        CHECK(ig_processor_begin(p, 1, &sp, NULL) == IG_STATUS_OK, "begin");
        uint16_t row[16] = {0};
        IgStepReport r;
        ig_step_report_init(&r);
        CHECK(ig_processor_step(p, 1, row, IG_DTYPE_BF16, 16, IG_MODE_LOGITS, &r) == IG_STATUS_OK,
              "step");
        CHECK(r.flags & IG_FLAG_ANCHOR, "the anchor bias fired (flags %u)", r.flags);
        int finite = 0;
        for (int i = 0; i < 16; i++) finite += isfinite(f32_of_bf16(row[i])) != 0;
        CHECK(finite >= 1 && isfinite(f32_of_bf16(row[3])), "%s: %d finite, anchor %f", cfgs[c],
              finite, f32_of_bf16(row[3]));
        ig_processor_free(p);
    }
    printf("F2 ok\n");
}

static uint32_t next_step(IgProcessor *p, uint64_t seq, size_t v) {
    float *row = calloc(v, sizeof(float));
    IgStepReport r;
    ig_step_report_init(&r);
    IgStatus st = ig_processor_step(p, seq, row, IG_DTYPE_F32, v, IG_MODE_SAMPLE, &r);
    CHECK(st == IG_STATUS_OK, "probe step: %u", st);
    free(row);
    return r.step;
}

/* F3: a failing batch steps no row, on one thread and on many. */
static void f3(void) {
    IgProcessor *p = make("{}", 8);
    for (uint64_t s = 1; s <= 2; s++) CHECK(ig_processor_begin(p, s, NULL, NULL) == 0, "begin");
    float batch[16];
    for (int i = 0; i < 16; i++) batch[i] = 0.1f * (float)(i % 5);
    batch[9] = NAN;
    float copy[16];
    memcpy(copy, batch, sizeof batch);
    uint64_t ids[2] = {1, 2};
    IgStepReport reps[2];
    ig_step_report_init(&reps[0]);
    ig_step_report_init(&reps[1]);
    IgStatus st = ig_processor_step_batch(p, ids, 2, batch, IG_DTYPE_F32, 16, IG_MODE_LOGITS, reps);
    CHECK(st == IG_STATUS_NAN_LOGITS, "status %u", st);
    CHECK(strstr(ig_last_error(), "row 1") != NULL, "message names the row");
    CHECK(memcmp(batch, copy, sizeof batch) == 0, "row 0 was rewritten");
    CHECK(next_step(p, 1, 8) == 0, "sequence 1 moved");
    ig_processor_free(p);

    size_t v = 262144;
    p = make("{\"limits\":{\"threads\":2}}", v);
    float *big = malloc(4 * v * sizeof(float));
    uint64_t ids4[4] = {1, 2, 3, 4};
    IgStepReport reps4[4];
    for (int s = 0; s < 4; s++) {
        CHECK(ig_processor_begin(p, ids4[s], NULL, NULL) == 0, "begin");
        ig_step_report_init(&reps4[s]);
    }
    int rewritten = 0, moved = 0;
    for (int trial = 0; trial < 20; trial++) {
        for (size_t i = 0; i < 4 * v; i++) big[i] = 0.25f;
        big[2 * v - 1] = NAN; /* the end of row 1 */
        st = ig_processor_step_batch(p, ids4, 4, big, IG_DTYPE_F32, 4 * v, IG_MODE_LOGITS, reps4);
        CHECK(st == IG_STATUS_NAN_LOGITS, "status %u", st);
        for (size_t i = 0; i < 4 * v; i++)
            if (i != 2 * v - 1 && big[i] != 0.25f) {
                rewritten++;
                break;
            }
    }
    for (int s = 0; s < 4; s++) moved += next_step(p, ids4[s], v) != 0;
    CHECK(rewritten == 0 && moved == 0, "%d trials rewrote a row, %d sequences moved", rewritten,
          moved);
    free(big);
    ig_processor_free(p);
    printf("F3 ok\n");
}

/* F4/F5/F13: sizes are checked before any slice or allocation; the handle stays usable. */
static void f4_f5(void) {
    IgProcessor *p = make("{}", 8);
    CHECK(ig_processor_begin(p, 1, NULL, NULL) == 0, "begin");
    float row[8] = {0};
    IgStepReport r;
    ig_step_report_init(&r);
    IgStatus st = ig_processor_step(p, 1, row, IG_DTYPE_F32, SIZE_MAX / 4, IG_MODE_SAMPLE, &r);
    CHECK(st == IG_STATUS_SIZE_MISMATCH, "n = SIZE_MAX/4: %u", st);
    uint64_t ids[1] = {1};
    st = ig_processor_step_batch(p, ids, (size_t)1 << 60, row, IG_DTYPE_F32, 8, 0, &r);
    CHECK(st == IG_STATUS_SIZE_MISMATCH, "n_rows = 2^60: %u", st);
    st = ig_processor_step_batch(p, ids, (size_t)1 << 34, row, IG_DTYPE_F32, 8, 0, &r);
    CHECK(st == IG_STATUS_SIZE_MISMATCH, "n_rows = 2^34: %u", st);
    st = ig_processor_step_batch(p, NULL, 0, row, IG_DTYPE_F32, 8, 0, &r);
    CHECK(st == IG_STATUS_SIZE_MISMATCH, "n_rows = 0 with n = 8: %u", st);
    CHECK(ig_processor_step_batch(p, NULL, 0, NULL, IG_DTYPE_F32, 0, 0, NULL) == IG_STATUS_OK,
          "empty batch");
    IgStepReport huge = r;
    huge.struct_size = (size_t)1 << 40;
    st = ig_processor_step_batch(p, ids, 1, row, IG_DTYPE_F32, 8, 0, &huge);
    CHECK(st == IG_STATUS_STRUCT_TOO_SMALL, "stride 2^40: %u", st);
    st = ig_processor_step(p, 1, row, IG_DTYPE_F32, 8, 7, &r);
    CHECK(st == IG_STATUS_UNSUPPORTED_MODE, "mode 7: %u", st);
    /* Misaligned logits and a misaligned struct. */
    char raw[64];
    st = ig_processor_step(p, 1, raw + 1, IG_DTYPE_F32, 8, 0, &r);
    CHECK(st == IG_STATUS_INVALID_ARGUMENT && strstr(ig_last_error(), "misaligned"), "misaligned: %u", st);
    /* Optional scalar outputs need no alignment. */
    size_t info[3];
    CHECK(ig_processor_info(p, (size_t *)((char *)info + 1), NULL) == IG_STATUS_OK, "unaligned info");
    CHECK(ig_processor_step(p, 1, row, IG_DTYPE_F32, 8, 0, &r) == IG_STATUS_OK, "still usable");
    ig_processor_free(p);
    printf("F4 F5 ok\n");
}

/* F6: a huge vocabulary is a status, never an abort. */
static void f6(void) {
    IgProcessor *p = NULL;
    IgStatus st = ig_processor_new(NULL, 0xFFFFFFFFu, &p);
    CHECK(st == IG_STATUS_INVALID_ARGUMENT && !p, "vocab 2^32-1: %u", st);
    st = ig_processor_new(NULL, (size_t)IG_MAX_VOCAB + 1, &p);
    CHECK(st == IG_STATUS_INVALID_ARGUMENT && !p, "vocab above IG_MAX_VOCAB: %u", st);
    printf("F6 ok\n");
}

/* F7: `= {0}` then fields: refused, not silently ignored. */
static void f7(void) {
    IgProcessor *p = make("{}", 16);
    uint32_t a[1] = {999};
    IgSeqParams sp = {0};
    sp.seed = 42;
    sp.anchors = a;
    sp.n_anchors = 1;
    IgStatus st = ig_processor_begin(p, 1, &sp, NULL);
    CHECK(st == IG_STATUS_STRUCT_TOO_SMALL && strstr(ig_last_error(), "ig_seq_params_init"),
          "zero struct_size: %u", st);
    sp.struct_size = sizeof sp;
    CHECK(ig_processor_begin(p, 2, &sp, NULL) == IG_STATUS_TOKEN_OUT_OF_RANGE, "fields honoured");
    ig_processor_free(p);
    printf("F7 ok\n");
}

/* F8: no NaN/inf reaches the host: subnormal knobs refused, f16 overflow saturates, a tiny
 * calibration std refused, a huge D gives a finite M. */
static void f8(void) {
    IgProcessor *p = NULL;
    CHECK(ig_processor_new("{\"temperature\":{\"base\":1e-40,\"min\":0}}", 4, &p) ==
              IG_STATUS_CONFIG_OUT_OF_RANGE && strstr(ig_last_error(), "temperature.base"),
          "subnormal base");
    CHECK(ig_config_validate("{\"temperature\":{\"min\":1.5,\"max\":1.0}}") ==
              IG_STATUS_CONFIG_OUT_OF_RANGE && strstr(ig_last_error(), "temperature.max"),
          "min > max");
    p = make("{\"preset\":\"neutral\",\"temperature\":{\"base\":0.5}}", 4);
    CHECK(ig_processor_begin(p, 1, NULL, NULL) == 0, "begin");
    uint16_t row[4] = {0x7AED /* 56736 */, 0, 0x3C00, 0xFC00 /* -inf */};
    IgStepReport r;
    ig_step_report_init(&r);
    CHECK(ig_processor_step(p, 1, row, IG_DTYPE_F16, 4, IG_MODE_LOGITS, &r) == IG_STATUS_OK, "f16");
    CHECK(isfinite(f32_of_f16(row[0])) && f32_of_f16(row[0]) == 65504.0f, "z/T saturates: %f",
          f32_of_f16(row[0]));
    CHECK(f32_of_f16(row[3]) == -INFINITY, "masked stays masked");
    CHECK(ig_processor_accept(p, 1, 0) == IG_STATUS_OK, "accept");
    /* The row handed back is a valid input again. */
    CHECK(ig_processor_step(p, 1, row, IG_DTYPE_F16, 4, IG_MODE_LOGITS, &r) == IG_STATUS_OK,
          "fed back");
    ig_processor_free(p);

    const char *cal = "f8-calibration.json";
    write_file(cal, "{\"format\":\"infogravity-calibration\",\"version\":1,"
                    "\"mass\":{\"d\":{\"mean\":0.8,\"std\":1e-300}}}");
    p = make("{\"mass\":{\"scale\":\"minmax\"}}", 4);
    CHECK(ig_processor_load_calibration(p, cal) == IG_STATUS_CORRUPT_FILE, "tiny std refused");
    IgSeqParams sp;
    ig_seq_params_init(&sp);
    sp.has_context_gain = 1;
    sp.context_gain = 3.0e38f;
    IgQueryMass m;
    ig_query_mass_init(&m);
    CHECK(ig_processor_begin(p, 1, &sp, &m) == IG_STATUS_OK && isfinite(m.m), "M = %f", m.m);
    ig_processor_free(p);
    unlink(cal);
    printf("F8 ok\n");
}

/* F9: loaders refuse what is not a small regular file, without blocking. */
static void f9(void) {
    IgProcessor *p = make("{}", 4);
    IgStatus st = ig_processor_load_prior(p, "/dev/zero");
    CHECK(st == IG_STATUS_IO && strstr(ig_last_error(), "not a regular file"), "/dev/zero: %u", st);
    st = ig_processor_load_calibration(p, "/dev/zero");
    CHECK(st == IG_STATUS_IO, "/dev/zero calibration: %u", st);
    const char *fifo = "f9-fifo";
    unlink(fifo);
    if (mkfifo(fifo, 0600) == 0) {
        st = ig_processor_load_prior(p, fifo);
        CHECK(st == IG_STATUS_IO, "FIFO: %u", st);
        unlink(fifo);
    } else {
        CHECK(0, "mkfifo failed");
    }
    printf("F9 ok\n");
    ig_processor_free(p);
}

/* F11: the last error is cleared by a success; the handle keeps its own. */
static void f11(void) {
    IgProcessor *p = make("{}", 4);
    CHECK(ig_processor_end(p, 5) == IG_STATUS_UNKNOWN_SEQUENCE, "fail");
    CHECK(strstr(ig_last_error(), "5") != NULL, "message");
    CHECK(ig_processor_begin(p, 1, NULL, NULL) == IG_STATUS_OK, "success");
    CHECK(ig_last_error()[0] == '\0', "stale message: %s", ig_last_error());
    char buf[256];
    size_t need = 0;
    CHECK(ig_processor_last_error(p, buf, sizeof buf, &need) == IG_STATUS_OK &&
              strstr(buf, "unknown sequence id 5") && need == strlen(buf) + 1,
          "per-handle message: %s", buf);
    ig_processor_free(p);
    printf("F11 ok\n");
}

/* The allocation-failure case, for a process with a small address space (see main). */
static int oom(void) {
    IgProcessor *p = NULL;
    IgStatus st = ig_processor_new("{\"limits\":{\"threads\":16}}", IG_MAX_VOCAB, &p);
    if (st != IG_STATUS_OUT_OF_MEMORY || p) {
        printf("FAIL oom: status %u (%s)\n", st, ig_last_error());
        return 1;
    }
    printf("OOM ok: %s\n", ig_last_error());
    return 0;
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "oom") == 0) return oom();
    f1();
    f2();
    f3();
    f4_f5();
    f6();
    f7();
    f8();
    f9();
    f11();
    if (failures) {
        printf("REVIEW FAILED %d\n", failures);
        return 1;
    }
    printf("REVIEW OK\n");
    return 0;
}
