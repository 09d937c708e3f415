// The infogravity gravity sampler for llama.cpp: `struct llama_sampler_i` over the infogravity
// C API. Built against the host's own llama.h (the vtable's trailing, experimental slots are
// value-initialised to NULL, whatever their number). See infogravity-sampler.h.
#include "infogravity-sampler.h"

#include <algorithm>
#include <atomic>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <vector>

namespace {

// One processor for a sampler and all its clones: clones are forks of its sequences.
struct shared_processor {
    IgProcessor * p = nullptr;
    std::atomic<uint64_t> next_seq{1};
    std::mutex content_lock;
    std::vector<uint8_t> content;  // the vocabulary's content table, once a null prompt needs it
    explicit shared_processor(IgProcessor * p) : p(p) {}
    ~shared_processor() { ig_processor_free(p); }
    shared_processor(const shared_processor &) = delete;
    shared_processor & operator=(const shared_processor &) = delete;
};

struct ig_sampler {
    std::shared_ptr<shared_processor> shared;
    uint64_t seq = 0;
    uint32_t mode = IG_MODE_SAMPLE;
    int32_t n_vocab = 0;
    llama_token eos = -1;  // selected when the processor abstains and stops
    ig_llama_report_fn report = nullptr;
    void * user = nullptr;
    std::vector<float> row;  // the full row, gathered from the candidates
    const llama_vocab * vocab = nullptr;
    // The null-query contrast: the host's second context, fed the accepted tokens until the
    // first content token (`null_live`); its last logits are the next step's null row.
    llama_context * null_ctx = nullptr;
    bool null_live = false;
    bool null_until_content = true;  // contrast.until_content, read when the prompt is set
};

// INFOGRAVITY_LOG=FILE: every report as one JSON line (for servers, where there is no callback).
FILE * log_file() {
    static FILE * f = [] {
        const char * path = std::getenv("INFOGRAVITY_LOG");
        return path && *path ? std::fopen(path, "a") : nullptr;
    }();
    return f;
}

void log_report(const IgStepReport & r) {
    FILE * f = log_file();
    if (!f) {
        return;
    }
    static std::mutex m;
    std::lock_guard<std::mutex> lock(m);
    auto num = [](float x) { return std::isfinite(x) ? (double) x : 0.0; };
    std::fprintf(f,
                 "{\"seq\":%" PRIu64 ",\"step\":%u,\"token\":%" PRId64
                 ",\"entropy\":%.6g,\"varentropy\":%.6g,\"p_max\":%.6g,\"temperature\":%.6g,"
                 "\"regime\":%u,\"void_score\":%.6g,\"black_hole_score\":%.6g,\"flags\":%u,"
                 "\"stop\":%u}\n",
                 r.seq, r.step, r.token, num(r.entropy), num(r.varentropy), num(r.p_max),
                 num(r.temperature), r.regime, num(r.void_score), num(r.black_hole_score),
                 r.flags, r.stop);
    std::fflush(f);
}

void warn(const char * what, IgStatus st) {
    std::fprintf(stderr, "infogravity: %s: %s: %s\n", what, ig_status_str(st), ig_last_error());
}

const char * ig_name(const llama_sampler * /*smpl*/) {
    return "infogravity";
}

// The null prompt after `token`: done at a content token, else fed it (one decode).
void null_accept(ig_sampler * s, llama_token token) {
    if (!s->null_live) {
        return;
    }
    if (s->null_until_content && s->shared->content[(size_t) token]) {
        s->null_live = false;
        return;
    }
    llama_token t = token;
    if (llama_decode(s->null_ctx, llama_batch_get_one(&t, 1)) != 0) {
        std::fprintf(stderr, "infogravity: the null prompt's decode failed; its contrast ends\n");
        s->null_live = false;
    }
}

void ig_accept(llama_sampler * smpl, llama_token token) {
    auto * s = (ig_sampler *) smpl->ctx;
    if (token < 0 || token >= s->n_vocab) {
        return;
    }
    IgStatus st = ig_processor_accept(s->shared->p, s->seq, (uint32_t) token);
    if (st != IG_STATUS_OK) {
        warn("accept", st);
    }
    null_accept(s, token);
}

// The candidates as one full row in token-id order. When they are the whole vocabulary in order
// (llama_sampler_sample builds them so) that is one strided copy, checking the ids as it goes;
// else (an earlier sampler truncated or reordered them) −inf with the given ones scattered in.
bool gather(ig_sampler * s, const llama_token_data_array * cur_p) {
    const size_t n = cur_p->size;
    const llama_token_data * d = cur_p->data;
    float * row = s->row.data();
    if (n == (size_t) s->n_vocab) {
        // Branch-free in the loop: a mismatch is remembered, not acted on, so it vectorises.
        llama_token off = 0;
        for (size_t i = 0; i < n; i++) {
            row[i] = d[i].logit;
            off |= d[i].id ^ (llama_token) i;
        }
        if (off == 0) {
            return true;
        }
    }
    std::fill(s->row.begin(), s->row.end(), -INFINITY);
    for (size_t i = 0; i < n; i++) {
        const llama_token id = d[i].id;
        if (id < 0 || id >= s->n_vocab) {
            return false;
        }
        row[id] = d[i].logit;
    }
    return true;
}

// Selection fallback when a step fails (e.g. a NaN from the model): the host's own argmax.
void select_argmax(llama_token_data_array * cur_p) {
    int64_t best = 0;
    for (size_t i = 1; i < cur_p->size; i++) {
        if (cur_p->data[i].logit > cur_p->data[best].logit) {
            best = (int64_t) i;
        }
    }
    cur_p->selected = best;
}

void ig_apply(llama_sampler * smpl, llama_token_data_array * cur_p) {
    auto * s = (ig_sampler *) smpl->ctx;
    if (cur_p->size == 0) {
        return;
    }
    if (!gather(s, cur_p)) {
        std::fprintf(stderr, "infogravity: a candidate id is outside the vocabulary\n");
        if (s->mode == IG_MODE_SAMPLE) {
            select_argmax(cur_p);
        }
        return;
    }
    if (s->null_live) {
        const float * q = llama_get_logits_ith(s->null_ctx, -1);
        IgStatus st = q ? ig_processor_set_contrast(s->shared->p, s->seq, q, IG_DTYPE_F32,
                                                     (size_t) s->n_vocab)
                        : IG_STATUS_ENGINE;
        if (st != IG_STATUS_OK) {
            warn("null-query row", st);
            s->null_live = false;
        }
    }
    IgStepReport r;
    ig_step_report_init(&r);
    IgStatus st = ig_processor_step(s->shared->p, s->seq, s->row.data(), IG_DTYPE_F32,
                                    s->row.size(), s->mode, &r);
    if (st != IG_STATUS_OK) {
        warn("step", st);
        if (s->mode == IG_MODE_SAMPLE) {
            select_argmax(cur_p);
        }
        return;
    }
    if (s->report) {
        s->report(&r, s->user);
    }
    log_report(r);
    if (s->mode == IG_MODE_LOGITS) {
        for (size_t i = 0; i < cur_p->size; i++) {
            cur_p->data[i].logit = s->row[cur_p->data[i].id];
        }
        cur_p->sorted = false;
        return;
    }
    // SAMPLE: the processor selected; an abstention that stops selects end-of-generation, so
    // the host ends the sequence the way it always does.
    const llama_token tok = r.token >= 0 ? (llama_token) r.token : r.stop ? s->eos : -1;
    cur_p->selected = -1;
    if (tok >= 0 && (size_t) tok < cur_p->size && cur_p->data[tok].id == tok) {
        cur_p->selected = tok;
    } else {
        for (size_t i = 0; i < cur_p->size; i++) {
            if (cur_p->data[i].id == tok) {
                cur_p->selected = (int64_t) i;
                break;
            }
        }
    }
    if (cur_p->selected < 0) {
        select_argmax(cur_p);
    }
}

void ig_reset(llama_sampler * smpl) {
    auto * s = (ig_sampler *) smpl->ctx;
    s->null_live = false;
    s->null_ctx = nullptr;
    IgStatus st = ig_processor_reset(s->shared->p, s->seq);
    if (st != IG_STATUS_OK) {
        warn("reset", st);
    }
}

llama_sampler_i make_iface();

llama_sampler * ig_clone(const llama_sampler * smpl) {
    const auto * s = (const ig_sampler *) smpl->ctx;
    auto * c = new ig_sampler(*s);
    c->seq = s->shared->next_seq.fetch_add(1);
    c->null_ctx = nullptr;  // the null context follows one sequence: the original's
    c->null_live = false;
    IgStatus st = ig_processor_fork(s->shared->p, s->seq, c->seq);
    if (st != IG_STATUS_OK) {
        warn("clone", st);
        delete c;
        return nullptr;
    }
    static llama_sampler_i iface = make_iface();
    // The host allocates the sampler (llama_sampler_free deletes it).
    return llama_sampler_init(&iface, c);
}

void ig_free(llama_sampler * smpl) {
    auto * s = (ig_sampler *) smpl->ctx;
    if (s) {
        (void) ig_processor_end(s->shared->p, s->seq);
        delete s;
    }
}

llama_sampler_i make_iface() {
    llama_sampler_i i{};  // every slot NULL, the experimental backend ones included
    i.name = ig_name;
    i.accept = ig_accept;
    i.apply = ig_apply;
    i.reset = ig_reset;
    i.clone = ig_clone;
    i.free = ig_free;
    return i;
}

}  // namespace

extern "C" llama_sampler * llama_sampler_init_infogravity(const llama_vocab * vocab,
                                                          const char * config_json, uint32_t mode,
                                                          uint32_t seed, ig_llama_report_fn report,
                                                          void * user) {
    if (ig_abi_version() != IG_ABI_VERSION) {
        std::fprintf(stderr, "infogravity: library ABI %u, header ABI %u\n", ig_abi_version(),
                     (unsigned) IG_ABI_VERSION);
        return nullptr;
    }
    if (mode != IG_MODE_SAMPLE && mode != IG_MODE_LOGITS) {
        std::fprintf(stderr, "infogravity: unknown mode %u\n", mode);
        return nullptr;
    }
    const int32_t n_vocab = llama_vocab_n_tokens(vocab);
    IgProcessor * p = nullptr;
    IgStatus st = ig_processor_new(config_json, (size_t) n_vocab, &p);
    if (st != IG_STATUS_OK) {
        warn("configuration", st);
        return nullptr;
    }
    auto shared = std::make_shared<shared_processor>(p);
    IgSeqParams sp;
    ig_seq_params_init(&sp);
    sp.seed = seed == LLAMA_DEFAULT_SEED ? std::random_device{}() : seed;
    const uint64_t seq = shared->next_seq.fetch_add(1);
    st = ig_processor_begin(p, seq, &sp, nullptr);
    if (st != IG_STATUS_OK) {
        warn("begin", st);
        return nullptr;
    }
    auto * s = new ig_sampler;
    s->shared = std::move(shared);
    s->seq = seq;
    s->mode = mode;
    s->n_vocab = n_vocab;
    s->eos = llama_vocab_eos(vocab);
    s->report = report;
    s->user = user;
    s->row.assign((size_t) n_vocab, 0.0f);
    s->vocab = vocab;
    static llama_sampler_i iface = make_iface();
    return llama_sampler_init(&iface, s);
}

extern "C" IgProcessor * llama_sampler_infogravity_processor(const llama_sampler * smpl) {
    if (!smpl || !smpl->iface || smpl->iface->name != ig_name) {
        return nullptr;
    }
    return ((const ig_sampler *) smpl->ctx)->shared->p;
}

extern "C" uint32_t llama_sampler_infogravity_rollback_advice(const llama_sampler * smpl) {
    if (!llama_sampler_infogravity_processor(smpl)) {
        return 0;
    }
    const auto * s = (const ig_sampler *) smpl->ctx;
    uint32_t n = 0;
    if (ig_processor_rollback_advice(s->shared->p, s->seq, &n) != IG_STATUS_OK) {
        return 0;
    }
    return n;
}

extern "C" IgStatus llama_sampler_infogravity_rollback(llama_sampler * smpl, uint32_t n) {
    if (!llama_sampler_infogravity_processor(smpl)) {
        return IG_STATUS_NULL_POINTER;
    }
    auto * s = (ig_sampler *) smpl->ctx;
    IgStatus st = ig_processor_rollback(s->shared->p, s->seq, n);
    if (st == IG_STATUS_OK && n > 0) {
        s->null_live = false;  // the null context is not rewound
    }
    return st;
}

namespace {

// A boolean of the processor's `contrast` section (the configuration in force, as JSON).
bool contrast_flag(IgProcessor * p, const char * key, bool fallback) {
    size_t need = 0;
    if (ig_processor_config_json(p, nullptr, 0, &need) != IG_STATUS_BUFFER_TOO_SMALL || need == 0) {
        return fallback;
    }
    std::string json(need, '\0');
    if (ig_processor_config_json(p, json.data(), need, &need) != IG_STATUS_OK) {
        return fallback;
    }
    const size_t sec = json.find("\"contrast\"");
    const size_t end = sec == std::string::npos ? sec : json.find('}', sec);
    const size_t at = sec == std::string::npos ? sec : json.find("\"" + std::string(key) + "\"", sec);
    if (at == std::string::npos || at > end) {
        return fallback;
    }
    const size_t v = json.find_first_not_of(" \t\n:", at + std::strlen(key) + 2);
    return v == std::string::npos ? fallback : json.compare(v, 4, "true") == 0;
}

// The vocabulary's content table (ig_content_piece of each token's piece, control tokens
// empty), built once per sampler family and set on the processor.
IgStatus ensure_content(ig_sampler * s) {
    shared_processor & sh = *s->shared;
    std::lock_guard<std::mutex> lock(sh.content_lock);
    if (!sh.content.empty()) {
        return IG_STATUS_OK;
    }
    std::vector<uint8_t> table((size_t) s->n_vocab);
    std::vector<char> buf(64);
    for (llama_token t = 0; t < s->n_vocab; t++) {
        int32_t n = llama_token_to_piece(s->vocab, t, buf.data(), (int32_t) buf.size(), 0, false);
        if (n < 0) {
            buf.resize((size_t) -n);
            n = llama_token_to_piece(s->vocab, t, buf.data(), (int32_t) buf.size(), 0, false);
        }
        uint32_t c = 0;
        IgStatus st = ig_content_piece(buf.data(), n > 0 ? (size_t) n : 0, &c);
        if (st != IG_STATUS_OK) {
            return st;
        }
        table[(size_t) t] = (uint8_t) c;
    }
    IgStatus st = ig_processor_set_content_tokens(sh.p, table.data(), table.size());
    if (st == IG_STATUS_OK) {
        sh.content = std::move(table);
    }
    return st;
}

}  // namespace

extern "C" IgStatus llama_sampler_infogravity_set_null_prompt(llama_sampler * smpl,
                                                              llama_context * null_ctx,
                                                              const llama_token * null_prompt,
                                                              size_t n) {
    if (!llama_sampler_infogravity_processor(smpl)) {
        return IG_STATUS_NULL_POINTER;
    }
    auto * s = (ig_sampler *) smpl->ctx;
    s->null_live = false;
    s->null_ctx = nullptr;
    if (!null_ctx) {
        return IG_STATUS_OK;
    }
    if (!null_prompt || n == 0) {
        std::fprintf(stderr, "infogravity: the null prompt is empty\n");
        return IG_STATUS_NULL_POINTER;
    }
    if (!contrast_flag(s->shared->p, "enabled", true)) {
        std::fprintf(stderr, "infogravity: a null prompt, but the configuration's contrast is off\n");
        return IG_STATUS_INVALID_ARGUMENT;
    }
    const int32_t v = llama_vocab_n_tokens(llama_model_get_vocab(llama_get_model(null_ctx)));
    if (v != s->n_vocab) {
        std::fprintf(stderr, "infogravity: the null context's vocabulary has %d tokens, the sampler's %d\n",
                     v, s->n_vocab);
        return IG_STATUS_SIZE_MISMATCH;
    }
    for (size_t i = 0; i < n; i++) {
        if (null_prompt[i] < 0 || null_prompt[i] >= s->n_vocab) {
            std::fprintf(stderr, "infogravity: null prompt token %d is outside the vocabulary\n",
                         null_prompt[i]);
            return IG_STATUS_TOKEN_OUT_OF_RANGE;
        }
    }
    IgStatus st = ensure_content(s);
    if (st != IG_STATUS_OK) {
        return st;
    }
    llama_memory_clear(llama_get_memory(null_ctx), true);
    std::vector<llama_token> ids(null_prompt, null_prompt + n);
    if (llama_decode(null_ctx, llama_batch_get_one(ids.data(), (int32_t) ids.size())) != 0) {
        std::fprintf(stderr, "infogravity: the null prompt's decode failed (%zu tokens; n_batch?)\n", n);
        return IG_STATUS_ENGINE;
    }
    s->null_ctx = null_ctx;
    s->null_live = true;
    s->null_until_content = contrast_flag(s->shared->p, "until_content", true);
    return IG_STATUS_OK;
}
