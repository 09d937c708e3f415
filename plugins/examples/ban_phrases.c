/* An infogravity plugin in C: bans token phrases. Configuration {"phrases": [[a, b, c], ...]}:
 * when the tokens a sequence emitted end with a phrase minus its last token, that last token's
 * logit becomes -inf, so the phrase is never completed (a one-token phrase [t] bans t outright).
 *
 *   cc -std=c11 -O2 -shared -fPIC -I include plugins/examples/ban_phrases.c -o libban_phrases.so
 *   infogravity generate --plugin ./libban_phrases.so --plugin-config '{"phrases":[[1,2,3]]}'
 *
 * The plugin table is IgPluginV1 from infogravity.h; the host checks it before any call. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "infogravity.h"

#define MAX_PHRASES 64
#define MAX_LEN 16

typedef struct {
    uint32_t tok[MAX_LEN];
    size_t len;
} Phrase;

/* The last MAX_LEN tokens of one sequence. */
typedef struct {
    uint64_t seq;
    uint32_t hist[MAX_LEN];
    size_t len; /* tokens seen, saturating at MAX_LEN in the ring's use */
    int live;
} History;

typedef struct {
    Phrase phrases[MAX_PHRASES];
    size_t n_phrases;
    size_t vocab;
    History *seqs;
    size_t n_seqs, cap_seqs;
} Ban;

static void set_err(char *err, size_t cap, const char *msg) {
    if (err && cap) {
        snprintf(err, cap, "%s", msg);
    }
}

/* A tiny parser for exactly {"phrases": [[int, ...], ...]} (whitespace allowed). */
static const char *ws(const char *s) {
    while (*s == ' ' || *s == '\n' || *s == '\t' || *s == '\r') s++;
    return s;
}

static int parse(const char *s, Ban *b, char *err, size_t cap) {
    s = ws(s);
    if (*s++ != '{') return set_err(err, cap, "expected a JSON object"), -1;
    s = ws(s);
    if (*s == '}') return 0;
    if (strncmp(s, "\"phrases\"", 9) != 0) return set_err(err, cap, "unknown key (only \"phrases\")"), -1;
    s = ws(s + 9);
    if (*s++ != ':') return set_err(err, cap, "expected ':'"), -1;
    s = ws(s);
    if (*s++ != '[') return set_err(err, cap, "\"phrases\" must be an array of arrays"), -1;
    s = ws(s);
    while (*s == '[') {
        if (b->n_phrases == MAX_PHRASES) return set_err(err, cap, "more than 64 phrases"), -1;
        Phrase *p = &b->phrases[b->n_phrases++];
        s = ws(s + 1);
        while (*s != ']') {
            char *end;
            unsigned long v = strtoul(s, &end, 10);
            if (end == s || v >= b->vocab) return set_err(err, cap, "a phrase token is not an id below the vocabulary size"), -1;
            if (p->len == MAX_LEN) return set_err(err, cap, "a phrase is longer than 16 tokens"), -1;
            p->tok[p->len++] = (uint32_t)v;
            s = ws(end);
            if (*s == ',') s = ws(s + 1);
            else if (*s != ']') return set_err(err, cap, "expected ',' or ']' in a phrase"), -1;
        }
        if (p->len == 0) return set_err(err, cap, "an empty phrase"), -1;
        s = ws(s + 1);
        if (*s == ',') s = ws(s + 1);
    }
    if (*s++ != ']') return set_err(err, cap, "expected ']' after the phrases"), -1;
    s = ws(s);
    if (*s++ != '}') return set_err(err, cap, "expected '}'"), -1;
    return *ws(s) ? (set_err(err, cap, "text after the object"), -1) : 0;
}

static History *history(Ban *b, uint64_t seq, int create) {
    for (size_t i = 0; i < b->n_seqs; i++) {
        if (b->seqs[i].live && b->seqs[i].seq == seq) return &b->seqs[i];
    }
    if (!create) return NULL;
    for (size_t i = 0; i < b->n_seqs; i++) {
        if (!b->seqs[i].live) {
            memset(&b->seqs[i], 0, sizeof b->seqs[i]);
            b->seqs[i].seq = seq;
            b->seqs[i].live = 1;
            return &b->seqs[i];
        }
    }
    if (b->n_seqs == b->cap_seqs) {
        size_t cap = b->cap_seqs ? 2 * b->cap_seqs : 8;
        History *h = realloc(b->seqs, cap * sizeof *h);
        if (!h) return NULL;
        b->seqs = h;
        b->cap_seqs = cap;
    }
    History *h = &b->seqs[b->n_seqs++];
    memset(h, 0, sizeof *h);
    h->seq = seq;
    h->live = 1;
    return h;
}

/* The k-th most recent token (k = 1 is the last). */
static uint32_t back(const History *h, size_t k) {
    return h->hist[(h->len - k) % MAX_LEN];
}

static void *ban_create(const char *config_json, size_t vocab, char *err, size_t cap) {
    Ban *b = calloc(1, sizeof *b);
    if (!b) return set_err(err, cap, "out of memory"), NULL;
    b->vocab = vocab;
    if (config_json && parse(config_json, b, err, cap) != 0) {
        free(b);
        return NULL;
    }
    return b;
}

static void ban_destroy(void *inst) {
    Ban *b = inst;
    free(b->seqs);
    free(b);
}

static int32_t ban_apply(void *inst, uint64_t seq, float *logits, size_t n, char *err, size_t cap) {
    Ban *b = inst;
    if (n != b->vocab) return set_err(err, cap, "row size is not the vocabulary size"), 1;
    const History *h = history(b, seq, 0);
    for (size_t i = 0; i < b->n_phrases; i++) {
        const Phrase *p = &b->phrases[i];
        size_t prefix = p->len - 1, seen = h ? h->len : 0;
        if (prefix > seen) continue;
        int match = 1;
        for (size_t k = 1; k <= prefix && match; k++) {
            match = back(h, k) == p->tok[prefix - k];
        }
        if (match) logits[p->tok[prefix]] = -INFINITY;
    }
    return 0;
}

static int32_t ban_accept(void *inst, uint64_t seq, uint32_t token) {
    History *h = history(inst, seq, 1);
    if (!h) return 1;
    h->hist[h->len % MAX_LEN] = token;
    h->len++;
    return 0;
}

static void ban_end(void *inst, uint64_t seq) {
    History *h = history(inst, seq, 0);
    if (h) h->live = 0;
}

static const IgPluginV1 TABLE = {
    .struct_size = sizeof(IgPluginV1),
    .abi_version = IG_PLUGIN_ABI_VERSION,
    .name = "ban_phrases",
    .create = ban_create,
    .destroy = ban_destroy,
    .apply = ban_apply,
    .accept = ban_accept,
    .begin = NULL, /* phrases are matched in the output only */
    .end = ban_end,
};

const IgPluginV1 *ig_plugin_entry(void) {
    return &TABLE;
}
