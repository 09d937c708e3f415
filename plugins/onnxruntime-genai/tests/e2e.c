/*
 * End-to-end checks of the GenAI adapter (ig_genai.c) against the real onnxruntime-genai and a
 * real model; driven by engine/tests/onnxruntime_genai.rs, built by scripts/setup-genai.sh.
 * Prints one JSON object per line on stdout (the Rust test asserts on them) and a readable
 * summary on stderr.
 *
 *   e2e greedy  MODEL_DIR PROMPTS MAX_NEW   GenAI's own greedy vs neutral T=0 through the
 *                                          adapter, SAMPLE and LOGITS mode, one prompt at a time
 *   e2e batch   MODEL_DIR PROMPTS MAX_NEW   the same with every prompt in one batch
 *   e2e sample  MODEL_DIR PROMPTS MAX_NEW   `balanced` in both modes: a report per token
 *   e2e isdone  MODEL_DIR PROMPTS MAX_NEW   the loop ends on is_done; stepping again is safe
 *   e2e sampler MODEL_DIR                   GenAI's sampler on a fixed row (no model run)
 *   e2e contrast MODEL_DIR PROMPTS MAX_NEW CONTENT
 *                                          the null-query contrast (ig_genai_step_contrast):
 *                                          PROMPTS holds 2k lines, k answers then their null
 *                                          prompts; each row alone without and with its null
 *                                          prompt, then all k in one batch with theirs. CONTENT:
 *                                          one '0'/'1' per token of the vocabulary
 *
 * PROMPTS: one prompt per line, token ids separated by spaces. ORT_LIB_PATH names the ONNX
 * Runtime library GenAI loads.
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ig_genai.h"

#define MAX_PROMPTS 32
#define MAX_PROMPT_LEN 4096

static const char *NEUTRAL_GREEDY = "{\"preset\":\"neutral\",\"temperature\":{\"base\":0}}";
static const char *BALANCED = "{\"preset\":\"balanced\"}";

static OgaModel *model;
static size_t vocab;
static int32_t eos_id;
static int32_t *prompts[MAX_PROMPTS];
static size_t prompt_len[MAX_PROMPTS];
static size_t n_prompts;

static void die(const char *what, const char *msg) {
    fprintf(stderr, "e2e: %s: %s\n", what, msg);
    exit(1);
}

static void check(OgaResult *r, const char *what) {
    if (r != NULL) die(what, OgaResultGetError(r));
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* vocab_size and eos_token_id from genai_config.json (a flat scan: enough for the file the
   converter writes). */
static long config_int(const char *dir, const char *key) {
    char path[4096];
    snprintf(path, sizeof path, "%s/genai_config.json", dir);
    FILE *f = fopen(path, "rb");
    if (f == NULL) die(path, "cannot open");
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char pat[128];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(buf, pat);
    if (p == NULL) die(path, key);
    return strtol(p + strlen(pat), NULL, 10);
}

static void load_prompts(const char *path) {
    FILE *f = fopen(path, "r");
    if (f == NULL) die(path, "cannot open");
    static char line[1 << 16];
    while (n_prompts < MAX_PROMPTS && fgets(line, sizeof line, f) != NULL) {
        int32_t *ids = malloc(MAX_PROMPT_LEN * sizeof *ids);
        size_t n = 0;
        char *s = line, *end;
        for (long v = strtol(s, &end, 10); end != s && n < MAX_PROMPT_LEN;
             v = strtol(s, &end, 10)) {
            ids[n++] = (int32_t)v;
            s = end;
        }
        if (n == 0) {
            free(ids);
            continue;
        }
        prompts[n_prompts] = ids;
        prompt_len[n_prompts++] = n;
    }
    fclose(f);
    if (n_prompts == 0) die(path, "no prompts");
}

static void print_ids(const char *key, const int32_t *ids, size_t n) {
    printf("\"%s\":[", key);
    for (size_t i = 0; i < n; i++) printf(i ? ",%d" : "%d", ids[i]);
    printf("]");
}

static void ids_stderr(const int32_t *ids, size_t n) {
    for (size_t i = 0; i < n; i++) fprintf(stderr, " %d", ids[i]);
}

/* A generator for `rows` prompts (right-padded with the pad token, as GenAI 0.18.0 expects),
   configured for `mode` (-1: GenAI's own greedy search, no adapter). */
static OgaGenerator *generator(const size_t *which, size_t rows, size_t max_new, int mode,
                               int seed) {
    size_t longest = 0;
    for (size_t r = 0; r < rows; r++)
        if (prompt_len[which[r]] > longest) longest = prompt_len[which[r]];
    OgaGeneratorParams *params = NULL;
    check(OgaCreateGeneratorParams(model, &params), "OgaCreateGeneratorParams");
    check(OgaGeneratorParamsSetSearchNumber(params, "batch_size", (double)rows), "batch_size");
    check(OgaGeneratorParamsSetSearchNumber(params, "max_length", (double)(longest + max_new)),
          "max_length");
    check(OgaGeneratorParamsSetSearchNumber(params, "random_seed", seed), "random_seed");
    if (mode < 0) {
        check(OgaGeneratorParamsSetSearchBool(params, "do_sample", false), "do_sample");
    } else {
        char err[256];
        if (ig_genai_configure(params, (uint32_t)mode, err, sizeof err) != 0)
            die("ig_genai_configure", err);
    }
    OgaGenerator *g = NULL;
    check(OgaCreateGenerator(model, params, &g), "OgaCreateGenerator");
    OgaDestroyGeneratorParams(params);
    int32_t *ids = malloc(rows * longest * sizeof *ids);
    for (size_t r = 0; r < rows; r++) {
        size_t p = which[r];
        for (size_t i = 0; i < longest; i++)
            ids[r * longest + i] = i < prompt_len[p] ? prompts[p][i] : eos_id; /* pad = eos */
    }
    check(OgaGenerator_AppendTokens(g, ids, rows * longest), "OgaGenerator_AppendTokens");
    free(ids);
    return g;
}

typedef struct {
    int32_t *tokens[MAX_PROMPTS]; /* per row, up to max_new */
    size_t n[MAX_PROMPTS];
    int eos[MAX_PROMPTS];
    size_t steps; /* generator steps */
    double ms;    /* wall time of the steps (prefill excluded) */
    int again;    /* ig_genai_step after DONE returned DONE */
} Run;

static void run_free(Run *run) {
    for (size_t r = 0; r < MAX_PROMPTS; r++) free(run->tokens[r]);
}

static void record(Run *run, size_t r, int32_t t, size_t max_new) {
    if (run->tokens[r] == NULL) run->tokens[r] = malloc(max_new * sizeof(int32_t));
    if (run->n[r] < max_new && !run->eos[r]) {
        run->tokens[r][run->n[r]++] = t;
        if (t == eos_id) run->eos[r] = 1;
    }
}

/* GenAI alone: greedy search, GenerateNextToken until IsDone. */
static Run run_genai(const size_t *which, size_t rows, size_t max_new) {
    Run run = {0};
    OgaGenerator *g = generator(which, rows, max_new, -1, 0);
    double t0 = now_ms();
    while (!OgaGenerator_IsDone(g)) {
        check(OgaGenerator_GenerateNextToken(g), "OgaGenerator_GenerateNextToken");
        const int32_t *next = NULL;
        size_t count = 0;
        check(OgaGenerator_GetNextTokens(g, &next, &count), "OgaGenerator_GetNextTokens");
        for (size_t r = 0; r < rows; r++) record(&run, r, next[r], max_new);
        run.steps++;
    }
    run.ms = now_ms() - t0;
    OgaDestroyGenerator(g);
    return run;
}

/* GenAI with infogravity in the loop: ig_genai_step until DONE. `on_step` (may be NULL) sees
   every step's batch. */
static Run run_adapter(const size_t *which, size_t rows, size_t max_new, uint32_t mode,
                       const char *config, int seed,
                       void (*on_step)(const IgGenaiBatch *, size_t prompt0)) {
    Run run = {0};
    IgProcessor *p = NULL;
    if (ig_processor_new(config, vocab, &p) != IG_STATUS_OK) die("ig_processor_new", ig_last_error());
    uint64_t seqs[MAX_PROMPTS];
    for (size_t r = 0; r < rows; r++) {
        IgSeqParams sp;
        ig_seq_params_init(&sp);
        sp.seed = (uint64_t)seed + r;
        seqs[r] = r + 1;
        if (ig_processor_begin(p, seqs[r], &sp, NULL) != IG_STATUS_OK)
            die("ig_processor_begin", ig_last_error());
    }
    OgaGenerator *g = generator(which, rows, max_new, (int)mode, seed);
    IgStepReport reports[MAX_PROMPTS];
    unsigned char finished[MAX_PROMPTS] = {0}, stepped[MAX_PROMPTS];
    int32_t tokens[MAX_PROMPTS];
    for (size_t r = 0; r < rows; r++) ig_step_report_init(&reports[r]);
    IgGenaiBatch b = {.n_rows = rows, .seqs = seqs, .mode = mode, .eos = &eos_id, .n_eos = 1,
                      .finished = finished, .reports = reports, .stepped = stepped,
                      .tokens = tokens};
    int rc;
    double t0 = now_ms();
    while ((rc = ig_genai_step(g, p, &b)) == IG_GENAI_STEPPED) {
        for (size_t r = 0; r < rows; r++)
            if (stepped[r]) record(&run, r, tokens[r], max_new);
        run.steps++;
        if (on_step != NULL) on_step(&b, which[0]);
    }
    run.ms = now_ms() - t0;
    if (rc != IG_GENAI_DONE) die("ig_genai_step", b.error);
    run.again = ig_genai_step(g, p, &b) == IG_GENAI_DONE;
    for (size_t r = 0; r < rows; r++)
        if (ig_processor_end(p, seqs[r]) != IG_STATUS_OK) die("ig_processor_end", ig_last_error());
    OgaDestroyGenerator(g);
    ig_processor_free(p);
    return run;
}

static int same(const Run *a, const Run *b, size_t r) {
    return a->n[r] == b->n[r] && memcmp(a->tokens[r], b->tokens[r], a->n[r] * sizeof(int32_t)) == 0;
}

static void cmd_greedy(size_t max_new) {
    double ms[3] = {0};
    size_t toks[3] = {0};
    for (size_t i = 0; i < n_prompts; i++) {
        Run g = run_genai(&i, 1, max_new);
        Run s = run_adapter(&i, 1, max_new, IG_MODE_SAMPLE, NEUTRAL_GREEDY, 7, NULL);
        Run l = run_adapter(&i, 1, max_new, IG_MODE_LOGITS, NEUTRAL_GREEDY, 7, NULL);
        printf("{\"kind\":\"greedy\",\"prompt\":%zu,", i);
        print_ids("genai", g.tokens[0], g.n[0]);
        printf(",");
        print_ids("sample", s.tokens[0], s.n[0]);
        printf(",");
        print_ids("logits", l.tokens[0], l.n[0]);
        printf(",\"genai_eos\":%d,\"again\":%d}\n", g.eos[0], s.again && l.again);
        fprintf(stderr, "prompt %zu: %s; genai", i, same(&g, &s, 0) && same(&g, &l, 0) ? "same" : "DIFF");
        ids_stderr(g.tokens[0], g.n[0]);
        fprintf(stderr, "\n");
        const Run *runs[3] = {&g, &s, &l};
        for (int k = 0; k < 3; k++) {
            ms[k] += runs[k]->ms;
            toks[k] += runs[k]->steps;
        }
        run_free(&g);
        run_free(&s);
        run_free(&l);
    }
    printf("{\"kind\":\"timing\",\"genai_ms_per_token\":%.3f,\"sample_ms_per_token\":%.3f,"
           "\"logits_ms_per_token\":%.3f,\"tokens\":%zu}\n",
           ms[0] / toks[0], ms[1] / toks[1], ms[2] / toks[2], toks[0]);
    fprintf(stderr, "ms/token (decode steps, prefill excluded): GenAI greedy %.2f, adapter SAMPLE %.2f, LOGITS %.2f over %zu tokens\n",
            ms[0] / toks[0], ms[1] / toks[1], ms[2] / toks[2], toks[0]);
}

static void cmd_batch(size_t max_new) {
    size_t which[MAX_PROMPTS];
    for (size_t i = 0; i < n_prompts; i++) which[i] = i;
    Run g = run_genai(which, n_prompts, max_new);
    Run s = run_adapter(which, n_prompts, max_new, IG_MODE_SAMPLE, NEUTRAL_GREEDY, 7, NULL);
    Run l = run_adapter(which, n_prompts, max_new, IG_MODE_LOGITS, NEUTRAL_GREEDY, 7, NULL);
    for (size_t r = 0; r < n_prompts; r++) {
        printf("{\"kind\":\"batch\",\"row\":%zu,", r);
        print_ids("genai", g.tokens[r], g.n[r]);
        printf(",");
        print_ids("sample", s.tokens[r], s.n[r]);
        printf(",");
        print_ids("logits", l.tokens[r], l.n[r]);
        printf("}\n");
        fprintf(stderr, "row %zu: %s\n", r, same(&g, &s, r) && same(&g, &l, r) ? "same" : "DIFF");
    }
    run_free(&g);
    run_free(&s);
    run_free(&l);
}

static const char *cur_mode;
static void print_step(const IgGenaiBatch *b, size_t prompt) {
    for (size_t r = 0; r < b->n_rows; r++) {
        if (!b->stepped[r]) continue;
        const IgStepReport *x = &b->reports[r];
        printf("{\"kind\":\"step\",\"mode\":\"%s\",\"prompt\":%zu,\"step\":%u,\"token\":%d,"
               "\"chosen\":%lld,\"entropy\":%.6g,\"p_max\":%.6g,\"temperature\":%.6g,"
               "\"regime\":%u,\"void\":%.6g,\"flags\":%u}\n",
               cur_mode, prompt, x->step, b->tokens[r], (long long)x->token,
               isfinite(x->entropy) ? x->entropy : -1.0, x->p_max,
               isfinite(x->temperature) ? x->temperature : -1.0, x->regime, x->void_score,
               x->flags);
    }
}

static void cmd_sample(size_t max_new) {
    const uint32_t modes[2] = {IG_MODE_SAMPLE, IG_MODE_LOGITS};
    for (size_t i = 0; i < n_prompts; i++) {
        for (int m = 0; m < 2; m++) {
            cur_mode = m == 0 ? "sample" : "logits";
            Run a = run_adapter(&i, 1, max_new, modes[m], BALANCED, 42 + (int)i, print_step);
            Run again = run_adapter(&i, 1, max_new, modes[m], BALANCED, 42 + (int)i, NULL);
            printf("{\"kind\":\"end\",\"mode\":\"%s\",\"prompt\":%zu,\"steps\":%zu,\"eos\":%d,"
                   "\"repeatable\":%d,\"ms_per_token\":%.3f,",
                   cur_mode, i, a.steps, a.eos[0], same(&a, &again, 0), a.ms / a.steps);
            print_ids("tokens", a.tokens[0], a.n[0]);
            printf("}\n");
            fprintf(stderr, "balanced %s prompt %zu: %zu tokens (%s), %.2f ms/token;", cur_mode, i,
                    a.steps, a.eos[0] ? "EOS" : "limit", a.ms / a.steps);
            ids_stderr(a.tokens[0], a.n[0]);
            fprintf(stderr, "\n");
            run_free(&a);
            run_free(&again);
        }
    }
}

static void cmd_isdone(size_t max_new) {
    size_t i = 0;
    Run s = run_adapter(&i, 1, max_new, IG_MODE_SAMPLE, NEUTRAL_GREEDY, 7, NULL);
    /* The pitfall the adapter avoids: GetLogits on a generator that is done. */
    OgaGenerator *g = generator(&i, 1, max_new, -1, 0);
    while (!OgaGenerator_IsDone(g))
        check(OgaGenerator_GenerateNextToken(g), "OgaGenerator_GenerateNextToken");
    OgaTensor *t = NULL;
    OgaResult *r = OgaGenerator_GetLogits(g, &t);
    char raw[300];
    if (r != NULL) {
        snprintf(raw, sizeof raw, "error: %s", OgaResultGetError(r));
        OgaDestroyResult(r);
    } else {
        snprintf(raw, sizeof raw, "no error");
        OgaDestroyTensor(t);
    }
    for (char *c = raw; *c; c++)
        if (*c == '"' || *c == '\\' || *c == '\n') *c = ' ';
    OgaDestroyGenerator(g);
    printf("{\"kind\":\"isdone\",\"steps\":%zu,\"eos\":%d,\"again\":%d,", s.steps, s.eos[0],
           s.again);
    print_ids("tokens", s.tokens[0], s.n[0]);
    printf(",\"raw_getlogits_after_done\":\"%s\"}\n", raw);
    fprintf(stderr, "isdone: %zu steps, EOS %d, stepping again after DONE -> DONE: %d; raw "
                    "GetLogits after done: %s\n",
            s.steps, s.eos[0], s.again, raw);
    run_free(&s);
}

/* GenAI's sampler on a fixed row: tokens 100, 200, 300 with p = 0.5, 0.3, 0.2, -inf elsewhere,
   set before any model run (SetLogits on a fresh generator), 32 rows x 64 generators. */
static void sampler_counts(const char *label, int top_p_zero, double temperature) {
    enum { ROWS = 32, GENS = 64 };
    const int32_t ids[3] = {100, 200, 300};
    const double probs[3] = {0.5, 0.3, 0.2};
    long counts[4] = {0};
    float *row = malloc(ROWS * vocab * sizeof *row);
    for (size_t r = 0; r < ROWS; r++) {
        for (size_t v = 0; v < vocab; v++) row[r * vocab + v] = -INFINITY;
        for (int k = 0; k < 3; k++) row[r * vocab + (size_t)ids[k]] = (float)log(probs[k]);
    }
    for (int s = 0; s < GENS; s++) {
        OgaGeneratorParams *params = NULL;
        check(OgaCreateGeneratorParams(model, &params), "OgaCreateGeneratorParams");
        check(OgaGeneratorParamsSetSearchNumber(params, "batch_size", ROWS), "batch_size");
        check(OgaGeneratorParamsSetSearchNumber(params, "max_length", 8), "max_length");
        check(OgaGeneratorParamsSetSearchNumber(params, "random_seed", s), "random_seed");
        char err[256];
        if (ig_genai_configure(params, IG_MODE_LOGITS, err, sizeof err) != 0)
            die("ig_genai_configure", err);
        if (top_p_zero) check(OgaGeneratorParamsSetSearchNumber(params, "top_p", 0.0), "top_p");
        check(OgaGeneratorParamsSetSearchNumber(params, "temperature", temperature), "temperature");
        OgaGenerator *g = NULL;
        check(OgaCreateGenerator(model, params, &g), "OgaCreateGenerator");
        OgaDestroyGeneratorParams(params);
        int64_t shape[3] = {ROWS, 1, (int64_t)vocab};
        OgaTensor *t = NULL;
        check(OgaCreateTensorFromBuffer(row, shape, 3, IG_OGA_ELEMENT_FLOAT32, &t),
              "OgaCreateTensorFromBuffer");
        check(OgaGenerator_SetLogits(g, t), "OgaGenerator_SetLogits");
        check(OgaGenerator_GenerateNextToken(g), "OgaGenerator_GenerateNextToken");
        const int32_t *next = NULL;
        size_t count = 0;
        check(OgaGenerator_GetNextTokens(g, &next, &count), "OgaGenerator_GetNextTokens");
        for (size_t r = 0; r < count; r++) {
            int k = next[r] == ids[0] ? 0 : next[r] == ids[1] ? 1 : next[r] == ids[2] ? 2 : 3;
            counts[k]++;
        }
        OgaDestroyTensor(t);
        OgaDestroyGenerator(g);
    }
    free(row);
    double chi2 = 0;
    const long total = ROWS * GENS;
    for (int k = 0; k < 3; k++) {
        double e = probs[k] * total;
        chi2 += (counts[k] - e) * (counts[k] - e) / e;
    }
    printf("{\"kind\":\"sampler\",\"case\":\"%s\",\"counts\":[%ld,%ld,%ld],\"other\":%ld,"
           "\"chi2\":%.3f}\n",
           label, counts[0], counts[1], counts[2], counts[3], chi2);
    fprintf(stderr, "sampler %s: p=(.5,.3,.2) -> counts %ld %ld %ld (other %ld) of %ld, chi2 %.2f\n",
            label, counts[0], counts[1], counts[2], counts[3], total, chi2);
}

/* The null-query contrast: rows `which` (answers) with null prompts `nulls`, greedy `balanced`
   with the contrast on (`use_null` 0: no null generator, plain ig_genai_step). Per row its
   tokens and, per step, whether the report carries IG_FLAG_CONTRAST; `null_steps`: steps that
   took a null row. */
static const unsigned char *content_flags;
static Run run_contrast(const size_t *which, const size_t *nulls, size_t rows, size_t max_new,
                        int use_null, char flags[][64], size_t *null_steps) {
    Run run = {0};
    static const char *cfg = "{\"preset\":\"neutral\",\"temperature\":{\"base\":0},"
                             "\"contrast\":{\"enabled\":true}}";
    IgProcessor *p = NULL;
    if (ig_processor_new(cfg, vocab, &p) != IG_STATUS_OK) die("ig_processor_new", ig_last_error());
    if (ig_processor_set_content_tokens(p, content_flags, vocab) != IG_STATUS_OK)
        die("ig_processor_set_content_tokens", ig_last_error());
    uint64_t seqs[MAX_PROMPTS];
    for (size_t r = 0; r < rows; r++) {
        seqs[r] = r + 1;
        if (ig_processor_begin(p, seqs[r], NULL, NULL) != IG_STATUS_OK)
            die("ig_processor_begin", ig_last_error());
    }
    OgaGenerator *g = generator(which, rows, max_new, IG_MODE_SAMPLE, 0);
    OgaGenerator *ng = use_null ? generator(nulls, rows, max_new, IG_MODE_SAMPLE, 0) : NULL;
    IgStepReport reports[MAX_PROMPTS];
    unsigned char finished[MAX_PROMPTS] = {0}, stepped[MAX_PROMPTS], live[MAX_PROMPTS];
    int32_t tokens[MAX_PROMPTS];
    memset(live, 1, sizeof live);
    for (size_t r = 0; r < rows; r++) ig_step_report_init(&reports[r]);
    IgGenaiBatch b = {.n_rows = rows, .seqs = seqs, .mode = IG_MODE_SAMPLE, .eos = &eos_id,
                      .n_eos = 1, .finished = finished, .reports = reports, .stepped = stepped,
                      .tokens = tokens};
    *null_steps = 0;
    for (size_t step = 0;; step++) {
        int any = 0;
        for (size_t r = 0; r < rows; r++) any |= live[r] && !finished[r];
        const int rc = ng != NULL ? ig_genai_step_contrast(g, ng, p, &b, content_flags, live)
                                  : ig_genai_step(g, p, &b);
        if (rc == IG_GENAI_DONE) break;
        if (rc != IG_GENAI_STEPPED) die("ig_genai_step_contrast", b.error);
        *null_steps += ng != NULL && any;
        for (size_t r = 0; r < rows; r++) {
            if (!stepped[r]) continue;
            record(&run, r, tokens[r], max_new);
            if (step < 63) {
                flags[r][step] = (reports[r].flags & IG_FLAG_CONTRAST) ? '1' : '0';
                flags[r][step + 1] = '\0';
            }
        }
    }
    for (size_t r = 0; r < rows; r++)
        if (ig_processor_end(p, seqs[r]) != IG_STATUS_OK) die("ig_processor_end", ig_last_error());
    if (ng != NULL) OgaDestroyGenerator(ng);
    OgaDestroyGenerator(g);
    ig_processor_free(p);
    return run;
}

static void cmd_contrast(size_t max_new, const char *content_path) {
    FILE *f = fopen(content_path, "rb");
    if (f == NULL) die(content_path, "cannot open");
    unsigned char *c = malloc(vocab);
    if (fread(c, 1, vocab, f) != vocab) die(content_path, "fewer flags than the vocabulary");
    fclose(f);
    for (size_t i = 0; i < vocab; i++) c[i] = c[i] == '1';
    content_flags = c;
    if (n_prompts % 2 != 0 || n_prompts / 2 > 8) die("contrast", "2k prompts, k <= 8");
    const size_t k = n_prompts / 2;
    size_t which[8], nulls[8];
    for (size_t i = 0; i < k; i++) which[i] = i, nulls[i] = k + i;
    for (int use = 0; use < 2; use++) {
        for (size_t i = 0; i < k; i++) {
            char flags[1][64] = {{0}};
            size_t ns = 0;
            Run run = run_contrast(&which[i], &nulls[i], 1, max_new, use, flags, &ns);
            printf("{\"kind\":\"contrast\",\"null\":%d,\"row\":%zu,", use, i);
            print_ids("tokens", run.tokens[0], run.n[0]);
            printf(",\"flags\":\"%s\",\"null_steps\":%zu}\n", flags[0], ns);
            run_free(&run);
        }
    }
    char flags[8][64] = {{0}};
    size_t ns = 0;
    Run run = run_contrast(which, nulls, k, max_new, 1, flags, &ns);
    for (size_t r = 0; r < k; r++) {
        printf("{\"kind\":\"contrast_batch\",\"row\":%zu,", r);
        print_ids("tokens", run.tokens[r], run.n[r]);
        printf(",\"flags\":\"%s\",\"null_steps\":%zu}\n", flags[r], ns);
    }
    run_free(&run);
    /* The null generator fed every step: no token is content, so no row stops taking null
       rows (the per-token advance of a batched null generator), alone and batched. */
    memset(c, 0, vocab);
    for (size_t i = 0; i < k; i++) {
        char f1[1][64] = {{0}};
        size_t n1 = 0;
        Run one = run_contrast(&which[i], &nulls[i], 1, max_new, 1, f1, &n1);
        printf("{\"kind\":\"contrast_feed\",\"row\":%zu,", i);
        print_ids("tokens", one.tokens[0], one.n[0]);
        printf(",\"flags\":\"%s\",\"null_steps\":%zu}\n", f1[0], n1);
        run_free(&one);
    }
    memset(flags, 0, sizeof flags);
    run = run_contrast(which, nulls, k, max_new, 1, flags, &ns);
    for (size_t r = 0; r < k; r++) {
        printf("{\"kind\":\"contrast_feed_batch\",\"row\":%zu,", r);
        print_ids("tokens", run.tokens[r], run.n[r]);
        printf(",\"flags\":\"%s\",\"null_steps\":%zu}\n", flags[r], ns);
    }
    run_free(&run);
    /* A NULL null generator is refused with a message. */
    IgGenaiBatch b = {.n_rows = 1};
    unsigned char live = 1;
    const int rc = ig_genai_step_contrast(NULL, NULL, NULL, &b, NULL, &live);
    printf("{\"kind\":\"contrast_error\",\"rc\":%d,\"has_message\":%d}\n", rc,
           strstr(b.error, "NULL") != NULL);
    free(c);
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: e2e greedy|batch|sample|isdone MODEL_DIR PROMPTS MAX_NEW\n"
                        "       e2e contrast MODEL_DIR PROMPTS MAX_NEW CONTENT\n"
                        "       e2e sampler MODEL_DIR\n");
        return 2;
    }
    const char *cmd = argv[1], *dir = argv[2];
    vocab = (size_t)config_int(dir, "vocab_size");
    eos_id = (int32_t)config_int(dir, "eos_token_id");
    check(OgaCreateModel(dir, &model), "OgaCreateModel");
    if (strcmp(cmd, "sampler") == 0) {
        sampler_counts("logits", 0, 1.0);          /* ig_genai_configure(LOGITS) */
        sampler_counts("top_p_0", 1, 1.0);         /* GenAI's built-in top_p default */
        sampler_counts("temperature_0.5", 0, 0.5); /* an engine temperature on top of ours */
    } else {
        if (argc < 5) die("usage", "PROMPTS and MAX_NEW are needed");
        load_prompts(argv[3]);
        size_t max_new = (size_t)strtoul(argv[4], NULL, 10);
        if (strcmp(cmd, "greedy") == 0) cmd_greedy(max_new);
        else if (strcmp(cmd, "batch") == 0) cmd_batch(max_new);
        else if (strcmp(cmd, "sample") == 0) cmd_sample(max_new);
        else if (strcmp(cmd, "isdone") == 0) cmd_isdone(max_new);
        else if (strcmp(cmd, "contrast") == 0 && argc > 5) cmd_contrast(max_new, argv[5]);
        else die("unknown command", cmd);
    }
    for (size_t i = 0; i < n_prompts; i++) free(prompts[i]);
    OgaDestroyModel(model);
    OgaShutdown();
    return 0;
}
