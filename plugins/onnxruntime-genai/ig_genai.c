/* infogravity inside ONNX Runtime GenAI's decoding loop: see ig_genai.h. */
#include "ig_genai.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static void set_err(char *buf, size_t cap, const char *fmt, ...) {
    if (buf == NULL || cap == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, cap, fmt, ap);
    va_end(ap);
}

/* Takes an OgaResult: 0 if it is NULL (success), else -1 with "what: GenAI's message". */
static int oga_ok(OgaResult *r, const char *what, char *err, size_t cap) {
    if (r == NULL) return 0;
    set_err(err, cap, "%s: %s", what, OgaResultGetError(r));
    OgaDestroyResult(r);
    return -1;
}

int ig_genai_configure(OgaGeneratorParams *params, uint32_t mode, char *err, size_t cap) {
    if (params == NULL) {
        set_err(err, cap, "ig_genai_configure: params is NULL");
        return -1;
    }
    if (mode != IG_MODE_SAMPLE && mode != IG_MODE_LOGITS) {
        set_err(err, cap, "ig_genai_configure: mode %u is not IG_MODE_SAMPLE or IG_MODE_LOGITS",
                mode);
        return -1;
    }
    /* Penalties GenAI would apply to the row after infogravity. */
    static const struct { const char *name; double value; } neutral[] = {
        {"repetition_penalty", 1.0}, {"min_length", 0.0}, {"no_repeat_ngram_size", 0.0},
        {"num_beams", 1.0},
    };
    for (size_t i = 0; i < sizeof neutral / sizeof neutral[0]; i++) {
        if (oga_ok(OgaGeneratorParamsSetSearchNumber(params, neutral[i].name, neutral[i].value),
                   neutral[i].name, err, cap))
            return -1;
    }
    if (mode == IG_MODE_SAMPLE)
        return oga_ok(OgaGeneratorParamsSetSearchBool(params, "do_sample", false), "do_sample",
                      err, cap);
    /* LOGITS: sample the row as given (GenAI 0.18.0: top_k 0 keeps every token, top_p 1 the
       whole distribution, temperature 1 leaves the logits alone). */
    if (oga_ok(OgaGeneratorParamsSetSearchBool(params, "do_sample", true), "do_sample", err, cap) ||
        oga_ok(OgaGeneratorParamsSetSearchNumber(params, "top_k", 0.0), "top_k", err, cap) ||
        oga_ok(OgaGeneratorParamsSetSearchNumber(params, "top_p", 1.0), "top_p", err, cap) ||
        oga_ok(OgaGeneratorParamsSetSearchNumber(params, "temperature", 1.0), "temperature", err,
               cap))
        return -1;
    return 0;
}

static int is_eos(const IgGenaiBatch *b, int32_t t) {
    for (size_t i = 0; i < b->n_eos; i++)
        if (b->eos[i] == t) return 1;
    return 0;
}

/* The logits tensor's data as [n_rows, vocab] float32, after checking its type and shape. */
static float *logits_rows(OgaTensor *t, size_t n_rows, size_t vocab, char *err, size_t cap) {
    OgaElementType type = 0;
    size_t rank = 0;
    int64_t shape[4] = {0};
    void *data = NULL;
    if (oga_ok(OgaTensorGetType(t, &type), "OgaTensorGetType", err, cap) ||
        oga_ok(OgaTensorGetShapeRank(t, &rank), "OgaTensorGetShapeRank", err, cap))
        return NULL;
    if (type != IG_OGA_ELEMENT_FLOAT32 || rank < 2 || rank > 4) {
        set_err(err, cap, "GenAI logits: element type %d, rank %zu (want float32 [B, 1, V])",
                (int)type, rank);
        return NULL;
    }
    if (oga_ok(OgaTensorGetShape(t, shape, rank), "OgaTensorGetShape", err, cap) ||
        oga_ok(OgaTensorGetData(t, &data), "OgaTensorGetData", err, cap))
        return NULL;
    int64_t elems = 1;
    for (size_t i = 0; i < rank; i++) elems *= shape[i];
    if (shape[0] != (int64_t)n_rows || shape[rank - 1] != (int64_t)vocab ||
        elems != (int64_t)(n_rows * vocab) || data == NULL) {
        set_err(err, cap,
                "GenAI logits: shape [%lld, ..., %lld] but the batch has %zu rows and the "
                "processor's vocabulary is %zu",
                (long long)shape[0], (long long)shape[rank - 1], n_rows, vocab);
        return NULL;
    }
    return (float *)data;
}

int ig_genai_step(OgaGenerator *gen, IgProcessor *proc, IgGenaiBatch *b) {
    if (b == NULL) return IG_GENAI_ERROR;
    b->error[0] = '\0';
    char *err = b->error;
    const size_t cap = sizeof b->error;
    if (gen == NULL || proc == NULL || b->n_rows == 0 || b->seqs == NULL ||
        b->finished == NULL || b->reports == NULL || b->stepped == NULL || b->tokens == NULL ||
        (b->n_eos > 0 && b->eos == NULL)) {
        set_err(err, cap, "ig_genai_step: a NULL argument or an empty batch");
        return IG_GENAI_ERROR;
    }
    if (b->mode != IG_MODE_SAMPLE && b->mode != IG_MODE_LOGITS) {
        set_err(err, cap, "ig_genai_step: mode %u is not IG_MODE_SAMPLE or IG_MODE_LOGITS",
                b->mode);
        return IG_GENAI_ERROR;
    }
    const size_t n = b->n_rows;
    if (n > IG_GENAI_MAX_ROWS) {
        set_err(err, cap, "ig_genai_step: %zu rows, at most %d", n, IG_GENAI_MAX_ROWS);
        return IG_GENAI_ERROR;
    }
    memset(b->stepped, 0, n);
    /* After EOS (or max_length) GenAI is done and a further GetLogits fails inside ORT. */
    if (OgaGenerator_IsDone(gen)) return IG_GENAI_DONE;

    size_t vocab = 0;
    if (ig_processor_info(proc, &vocab, NULL) != IG_STATUS_OK) {
        set_err(err, cap, "ig_processor_info: %s", ig_last_error());
        return IG_GENAI_ERROR;
    }
    int rc = IG_GENAI_ERROR;
    OgaTensor *t = NULL;
    /* No allocation per token: GenAI's batch is at most IG_GENAI_MAX_ROWS rows. */
    uint64_t seqs[IG_GENAI_MAX_ROWS];
    void *rows[IG_GENAI_MAX_ROWS];
    size_t live[IG_GENAI_MAX_ROWS];
    const size_t stride = b->reports[0].struct_size;
    if (stride < IG_STEP_REPORT_V1_SIZE || stride > IG_MAX_STRUCT_SIZE) {
        set_err(err, cap, "ig_genai_step: reports[0].struct_size %zu (use ig_step_report_init)",
                stride);
        goto out;
    }
    if (oga_ok(OgaGenerator_GetLogits(gen, &t), "OgaGenerator_GetLogits", err, cap)) goto out;
    float *logits = logits_rows(t, n, vocab, err, cap);
    if (logits == NULL) goto out;

    /* Step the unfinished rows in place, as one atomic batch on the processor's pool. Their
       reports are written packed into reports[0 .. n_live) and moved to their rows below. */
    size_t n_live = 0;
    for (size_t r = 0; r < n; r++) {
        if (b->finished[r]) continue;
        seqs[n_live] = b->seqs[r];
        rows[n_live] = logits + r * vocab;
        live[n_live++] = r;
    }
    if (n_live > 0) {
        IgStatus st = ig_processor_step_rows(proc, seqs, n_live, rows, IG_DTYPE_F32, vocab,
                                             b->mode, b->reports);
        if (st != IG_STATUS_OK) {
            set_err(err, cap, "ig_processor_step_rows: %s: %s", ig_status_str(st),
                    ig_last_error());
            goto out;
        }
    }
    char *rep = (char *)b->reports;
    for (size_t k = n_live; k-- > 0;) /* live[k] >= k: moving down from the end is safe */
        if (live[k] != k) memcpy(rep + live[k] * stride, rep + k * stride, stride);
    for (size_t r = 0; r < n; r++) {
        IgStepReport *rp = (IgStepReport *)(rep + r * stride);
        if (b->finished[r]) {
            memset(rp, 0, stride);
            rp->struct_size = stride;
            rp->seq = b->seqs[r];
            rp->token = -1;
            continue;
        }
        /* SAMPLE (or a token the processor forces): one-hot, so GenAI's search emits it. */
        if (b->mode == IG_MODE_SAMPLE || rp->token >= 0) {
            if (rp->token < 0 || (size_t)rp->token >= vocab) {
                set_err(err, cap, "row %zu: the processor selected no token", r);
                goto out;
            }
            float *row = logits + r * vocab;
            for (size_t i = 0; i < vocab; i++) row[i] = -INFINITY;
            row[rp->token] = 0.0f;
        }
    }
    if (oga_ok(OgaGenerator_SetLogits(gen, t), "OgaGenerator_SetLogits", err, cap) ||
        oga_ok(OgaGenerator_GenerateNextToken(gen), "OgaGenerator_GenerateNextToken", err, cap))
        goto out;
    const int32_t *next = NULL;
    size_t count = 0;
    if (oga_ok(OgaGenerator_GetNextTokens(gen, &next, &count), "OgaGenerator_GetNextTokens", err,
               cap))
        goto out;
    if (count != n || next == NULL) {
        set_err(err, cap, "GenAI emitted %zu tokens for %zu rows", count, n);
        goto out;
    }
    /* Check every row before accepting any: GenAI must have emitted what we handed it. */
    for (size_t r = 0; r < n; r++) {
        b->tokens[r] = next[r];
        if (b->finished[r]) continue;
        const IgStepReport *rp = (const IgStepReport *)(rep + r * stride);
        const int32_t tok = next[r];
        if (tok < 0 || (size_t)tok >= vocab) {
            set_err(err, cap, "row %zu: GenAI emitted token %d outside the vocabulary", r, tok);
            goto out;
        }
        if (rp->token >= 0 && tok != rp->token) {
            set_err(err, cap,
                    "row %zu: GenAI emitted %d, infogravity chose %lld: GenAI's search options "
                    "changed the row (use ig_genai_configure, greedy search)",
                    r, tok, (long long)rp->token);
            goto out;
        }
        if (!isfinite(logits[r * vocab + (size_t)tok])) {
            set_err(err, cap,
                    "row %zu: GenAI sampled token %d, which infogravity masked: its search "
                    "options changed the row (use ig_genai_configure)",
                    r, tok);
            goto out;
        }
    }
    for (size_t r = 0; r < n; r++) {
        if (b->finished[r]) continue;
        IgStatus st = ig_processor_accept(proc, b->seqs[r], (uint32_t)next[r]);
        if (st != IG_STATUS_OK) {
            set_err(err, cap, "ig_processor_accept(row %zu): %s: %s", r, ig_status_str(st),
                    ig_last_error());
            goto out;
        }
        b->stepped[r] = 1;
        if (is_eos(b, next[r])) b->finished[r] = 1;
    }
    rc = IG_GENAI_STEPPED;
out:
    if (t != NULL) OgaDestroyTensor(t);
    return rc;
}

int ig_genai_step_contrast(OgaGenerator *gen, OgaGenerator *null_gen, IgProcessor *proc,
                           IgGenaiBatch *b, const unsigned char *content,
                           unsigned char *null_live) {
    if (b == NULL) return IG_GENAI_ERROR;
    char *err = b->error;
    const size_t cap = sizeof b->error;
    if (null_gen == NULL || null_live == NULL || proc == NULL || b->finished == NULL ||
        b->seqs == NULL || b->n_rows == 0 || b->n_rows > IG_GENAI_MAX_ROWS) {
        set_err(err, cap, "ig_genai_step_contrast: a NULL argument or a bad batch size");
        return IG_GENAI_ERROR;
    }
    const size_t n = b->n_rows;
    int any = 0;
    for (size_t r = 0; r < n; r++) {
        if (b->finished[r]) null_live[r] = 0;
        any |= null_live[r] != 0;
    }
    if (!any || OgaGenerator_IsDone(gen)) return ig_genai_step(gen, proc, b);
    size_t vocab = 0;
    if (ig_processor_info(proc, &vocab, NULL) != IG_STATUS_OK) {
        set_err(err, cap, "ig_processor_info: %s", ig_last_error());
        return IG_GENAI_ERROR;
    }
    /* The null rows, before the step; the same tensor then carries the emitted tokens back. */
    OgaTensor *t = NULL;
    if (oga_ok(OgaGenerator_GetLogits(null_gen, &t), "null generator: OgaGenerator_GetLogits",
               err, cap))
        return IG_GENAI_ERROR;
    int rc = IG_GENAI_ERROR;
    float *q = logits_rows(t, n, vocab, err, cap);
    if (q == NULL) goto out;
    for (size_t r = 0; r < n; r++) {
        if (!null_live[r]) continue;
        IgStatus st = ig_processor_set_contrast(proc, b->seqs[r], q + r * vocab, IG_DTYPE_F32,
                                                vocab);
        if (st != IG_STATUS_OK) {
            set_err(err, cap, "ig_processor_set_contrast(row %zu): %s: %s", r,
                    ig_status_str(st), ig_last_error());
            goto out;
        }
    }
    rc = ig_genai_step(gen, proc, b);
    if (rc != IG_GENAI_STEPPED) goto out;
    any = 0;
    for (size_t r = 0; r < n; r++) {
        if (!b->stepped[r] || content == NULL || content[b->tokens[r]]) null_live[r] = 0;
        any |= null_live[r] != 0;
    }
    if (!any) goto out;
    /* Advance the null generator by the tokens the rows emitted, as ig_genai_step advances
       `gen`: a one-hot row each, then its own GenerateNextToken (GenAI appends tokens to a
       batch only once, at the prompt). */
    for (size_t r = 0; r < n; r++) {
        float *row = q + r * vocab;
        for (size_t i = 0; i < vocab; i++) row[i] = -INFINITY;
        if (b->tokens[r] >= 0 && (size_t)b->tokens[r] < vocab) row[b->tokens[r]] = 0.0f;
        else row[0] = 0.0f; /* a row GenAI padded outside the vocabulary: not live */
    }
    const int32_t *next = NULL;
    size_t count = 0;
    if (oga_ok(OgaGenerator_SetLogits(null_gen, t), "null generator: OgaGenerator_SetLogits",
               err, cap) ||
        oga_ok(OgaGenerator_GenerateNextToken(null_gen),
               "null generator: OgaGenerator_GenerateNextToken", err, cap) ||
        oga_ok(OgaGenerator_GetNextTokens(null_gen, &next, &count),
               "null generator: OgaGenerator_GetNextTokens", err, cap)) {
        rc = IG_GENAI_ERROR;
        goto out;
    }
    for (size_t r = 0; r < n; r++) {
        if (null_live[r] && (count != n || next == NULL || next[r] != b->tokens[r])) {
            set_err(err, cap,
                    "row %zu: the null generator emitted %d, not the row's %d (configure its "
                    "params with ig_genai_configure(IG_MODE_SAMPLE))",
                    r, count == n && next != NULL ? next[r] : -1, b->tokens[r]);
            rc = IG_GENAI_ERROR;
            goto out;
        }
    }
out:
    OgaDestroyTensor(t);
    return rc;
}
