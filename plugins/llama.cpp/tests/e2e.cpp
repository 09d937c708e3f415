// End-to-end checks of the gravity sampler inside a real llama.cpp (libllama of the pinned
// release, the real SmolLM2 GGUF). Run by engine/tests/llama_cpp.rs; each mode prints what the
// test asserts on.
//
//   e2e greedy MODEL           `neutral` greedy through the gravity sampler vs llama.cpp's own
//                              greedy sampler on 6 chat prompts × 32 tokens: "greedy <i> same"
//                              or "greedy <i> DIFFER host=[…] ig=[…]"
//   e2e report MODEL N         the prompt's token ids and N greedy steps' reports, as JSON
//   e2e clone MODEL            `balanced` sampling; the sampler is cloned mid-sequence and both
//                              continue on the same logits: "clone same" or "clone DIFFER"
//   e2e contrast MODEL         the null-query contrast (set_null_prompt) on one bank item:
//                              "contrast plain|null text=… flags=…", then the errors
//   e2e bench MODEL            tokens/s with llama.cpp's default chain vs the gravity sampler,
//                              and the sampling cost per token at V = n_vocab and 151,936
//
// Reference modes for the converter's validation and the engine benchmark (tools/
// validate_converter.py, scripts/bench-decode.sh); E2E_THREADS sets the threads (default 2):
//   e2e tokenize MODEL         stdin: one hex-encoded UTF-8 string per line; prints each one's
//                              ids (special tokens parsed, no BOS added) as a JSON array
//   e2e logits MODEL OUT       stdin: one prompt of token ids per line; writes the float32
//                              logits of every position of every prompt to OUT, in order
//   e2e decode MODEL N         stdin: one prompt of token ids; prefill, then N greedy steps:
//                              one JSON line with the timings and the tokens
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "infogravity-sampler.h"
#include "llama.h"

namespace {

const char * kQuestions[] = {
    "What is the capital of France?",
    "Name three primary colors.",
    "What is 2 + 2?",
    "Write one sentence about the sea.",
    "Who wrote Hamlet?",
    "Translate 'thank you' into Spanish.",
};

void quiet(ggml_log_level, const char *, void *) {}

struct Model {
    llama_model * model = nullptr;
    llama_context * ctx = nullptr;
    const llama_vocab * vocab = nullptr;

    explicit Model(const char * path) {
        llama_log_set(quiet, nullptr);
        llama_backend_init();
        auto mp = llama_model_default_params();
        model = llama_model_load_from_file(path, mp);
        if (!model) {
            std::fprintf(stderr, "cannot load %s\n", path);
            std::exit(2);
        }
        auto cp = llama_context_default_params();
        cp.n_ctx = 1024;
        cp.n_batch = 1024;
        const char * threads = std::getenv("E2E_THREADS");
        cp.n_threads = threads ? std::atoi(threads) : 2;
        cp.n_threads_batch = cp.n_threads;
        ctx = llama_init_from_model(model, cp);
        vocab = llama_model_get_vocab(model);
    }
    ~Model() {
        llama_free(ctx);
        llama_model_free(model);
    }

    // The chat prompt of `question`, then `stem` (the answer's first words) when given.
    std::vector<llama_token> chat(const char * question, const char * stem = "") const {
        llama_chat_message msg = {"user", question};
        std::vector<char> buf(4096);
        const char * tmpl = llama_model_chat_template(model, nullptr);
        int n = llama_chat_apply_template(tmpl, &msg, 1, true, buf.data(), (int32_t) buf.size());
        std::string text = std::string(buf.data(), (size_t) n) + stem;
        std::vector<llama_token> ids(text.size() + 8);
        int k = llama_tokenize(vocab, text.c_str(), (int32_t) text.size(), ids.data(),
                               (int32_t) ids.size(), true, true);
        ids.resize((size_t) k);
        return ids;
    }

    void clear() { llama_memory_clear(llama_get_memory(ctx), true); }

    // A fresh decode of `ids` from position 0 in one batch, with logits at the positions from
    // `first_logit` on (llama_get_logits_ith reads them). False when the decode fails.
    bool decode_fresh(const std::vector<llama_token> & ids, size_t first_logit) {
        clear();
        llama_batch b = llama_batch_init((int32_t) ids.size(), 0, 1);
        for (size_t i = 0; i < ids.size(); i++) {
            b.token[i] = ids[i];
            b.pos[i] = (llama_pos) i;
            b.n_seq_id[i] = 1;
            b.seq_id[i][0] = 0;
            b.logits[i] = i >= first_logit;
        }
        b.n_tokens = (int32_t) ids.size();
        const bool ok = llama_decode(ctx, b) == 0;
        llama_batch_free(b);
        return ok;
    }

    // Decode `ids` (prefill or one step); the logits of the last position are then ready.
    void decode(std::vector<llama_token> ids) {
        if (llama_decode(ctx, llama_batch_get_one(ids.data(), (int32_t) ids.size())) != 0) {
            std::fprintf(stderr, "decode failed\n");
            std::exit(2);
        }
    }

    // Generate with `smpl` (which accepts each token, as llama_sampler_sample does).
    std::vector<llama_token> generate(const std::vector<llama_token> & prompt, llama_sampler * smpl,
                                      int n) {
        clear();
        decode(prompt);
        std::vector<llama_token> out;
        for (int i = 0; i < n; i++) {
            llama_token t = llama_sampler_sample(smpl, ctx, -1);
            out.push_back(t);
            if (llama_vocab_is_eog(vocab, t)) {
                break;
            }
            decode({t});
        }
        return out;
    }
};

std::string join(const std::vector<llama_token> & v) {
    std::string s = "[";
    for (size_t i = 0; i < v.size(); i++) {
        s += (i ? "," : "") + std::to_string(v[i]);
    }
    return s + "]";
}

llama_sampler * gravity(const Model & m, const char * json, uint32_t seed = 1,
                        ig_llama_report_fn report = nullptr, void * user = nullptr) {
    llama_sampler * s = llama_sampler_init_infogravity(m.vocab, json, IG_MODE_SAMPLE, seed, report,
                                                       user);
    if (!s) {
        std::fprintf(stderr, "gravity sampler: %s\n", ig_last_error());
        std::exit(2);
    }
    return s;
}

const char * kGreedy = "{\"preset\":\"neutral\",\"temperature\":{\"base\":0}}";

int greedy(Model & m) {
    int bad = 0;
    for (size_t i = 0; i < sizeof kQuestions / sizeof *kQuestions; i++) {
        auto prompt = m.chat(kQuestions[i]);
        llama_sampler * host = llama_sampler_init_greedy();
        llama_sampler * ig = gravity(m, kGreedy);
        auto a = m.generate(prompt, host, 32);
        auto b = m.generate(prompt, ig, 32);
        llama_sampler_free(host);
        llama_sampler_free(ig);
        if (a == b) {
            std::printf("greedy %zu same %zu tokens\n", i, a.size());
        } else {
            std::printf("greedy %zu DIFFER host=%s ig=%s\n", i, join(a).c_str(), join(b).c_str());
            bad++;
        }
    }
    return bad ? 1 : 0;
}

void collect(const IgStepReport * r, void * user) {
    static_cast<std::vector<IgStepReport> *>(user)->push_back(*r);
}

int report(Model & m, int n) {
    auto prompt = m.chat(kQuestions[0]);
    std::vector<IgStepReport> reps;
    llama_sampler * ig = gravity(m, kGreedy, 1, collect, &reps);
    auto toks = m.generate(prompt, ig, n);
    llama_sampler_free(ig);
    std::printf("{\"prompt\":%s,\"steps\":[", join(prompt).c_str());
    for (size_t i = 0; i < reps.size(); i++) {
        std::printf("%s{\"token\":%d,\"entropy\":%.9g,\"p_max\":%.9g,\"varentropy\":%.9g}",
                    i ? "," : "", toks[i], reps[i].entropy, reps[i].p_max, reps[i].varentropy);
    }
    std::printf("]}\n");
    return 0;
}

// Clone mid-sequence: A generates; B (the clone) is applied to a copy of the very same
// candidates at every later step, and must pick the same tokens.
int clone(Model & m) {
    auto prompt = m.chat(kQuestions[3]);
    llama_sampler * a = gravity(m, "{\"preset\":\"balanced\"}", 7);
    m.clear();
    m.decode(prompt);
    const int n_vocab = llama_vocab_n_tokens(m.vocab);
    llama_sampler * b = nullptr;
    std::vector<llama_token_data> cur((size_t) n_vocab);
    int same = 0, differ = 0;
    for (int i = 0; i < 40; i++) {
        if (i == 8) {
            b = llama_sampler_clone(a);
        }
        const float * logits = llama_get_logits_ith(m.ctx, -1);
        llama_token ta = llama_sampler_sample(a, m.ctx, -1);
        if (b) {
            for (int t = 0; t < n_vocab; t++) {
                cur[(size_t) t] = {t, logits[t], 0.0f};
            }
            llama_token_data_array arr = {cur.data(), cur.size(), -1, false};
            llama_sampler_apply(b, &arr);
            llama_token tb = cur[(size_t) arr.selected].id;
            llama_sampler_accept(b, tb);
            (ta == tb ? same : differ)++;
        }
        if (llama_vocab_is_eog(m.vocab, ta)) {
            break;
        }
        m.decode({ta});
    }
    llama_sampler_free(a);
    llama_sampler_free(b);
    std::printf("clone %s (%d steps after the clone, %d differ)\n", differ ? "DIFFER" : "same",
                same + differ, differ);
    return differ ? 1 : 0;
}

// llama.cpp's default chain as common_sampler_init builds it from common_params_sampling's
// defaults (penalties, dry, top_n_sigma, top_k 40, typical, top_p 0.95, min_p 0.05, xtc,
// temp_ext 0.8, dist); the samplers those defaults switch off are still in the chain.
llama_sampler * default_chain(const llama_vocab * vocab, uint32_t seed) {
    llama_sampler * c = llama_sampler_chain_init(llama_sampler_chain_default_params());
    const char * breakers[] = {"\n", ":", "\"", "*"};
    llama_sampler_chain_add(c, llama_sampler_init_penalties(llama_vocab_n_tokens(vocab), 64, 1.0f, 0.0f, 0.0f));
    llama_sampler_chain_add(c, llama_sampler_init_dry(vocab, 0.0f, 1.75f, 2, -1, breakers, 4));
    llama_sampler_chain_add(c, llama_sampler_init_top_n_sigma(-1.0f));
    llama_sampler_chain_add(c, llama_sampler_init_top_k(40));
    llama_sampler_chain_add(c, llama_sampler_init_typical(1.0f, 0));
    llama_sampler_chain_add(c, llama_sampler_init_top_p(0.95f, 0));
    llama_sampler_chain_add(c, llama_sampler_init_min_p(0.05f, 0));
    llama_sampler_chain_add(c, llama_sampler_init_xtc(0.0f, 0.1f, 0, seed));
    llama_sampler_chain_add(c, llama_sampler_init_temp_ext(0.8f, 0.0f, 1.0f));
    llama_sampler_chain_add(c, llama_sampler_init_dist(seed));
    return c;
}

// llama.cpp's entropy-based dynamic temperature (`--dynatemp-range 0.5`: T from 0.3 to 1.3 by the
// normalised entropy of the candidates), then `dist`.
llama_sampler * temp_ext_chain(uint32_t seed) {
    llama_sampler * c = llama_sampler_chain_init(llama_sampler_chain_default_params());
    llama_sampler_chain_add(c, llama_sampler_init_temp_ext(0.8f, 0.5f, 1.0f));
    llama_sampler_chain_add(c, llama_sampler_init_dist(seed));
    return c;
}

using clk = std::chrono::steady_clock;

// Median µs per token of building the candidates from `logits` and applying `smpl` (what
// llama_sampler_sample does on the CPU), over `rows` rows of one vocabulary, `iters` times.
double sampling_cost(llama_sampler * smpl, const std::vector<std::vector<float>> & rows, int iters) {
    const size_t v = rows[0].size();
    std::vector<llama_token_data> cur(v);
    std::vector<double> times;
    for (int i = 0; i < iters; i++) {
        const auto & z = rows[(size_t) i % rows.size()];
        auto t0 = clk::now();
        for (size_t t = 0; t < v; t++) {
            cur[t] = {(llama_token) t, z[t], 0.0f};
        }
        llama_token_data_array arr = {cur.data(), v, -1, false};
        llama_sampler_apply(smpl, &arr);
        llama_sampler_accept(smpl, cur[(size_t) arr.selected].id);
        times.push_back(std::chrono::duration<double, std::micro>(clk::now() - t0).count());
    }
    std::sort(times.begin(), times.end());
    return times[times.size() / 2];
}

// A vocabulary-sized row for llama_vocab-free samplers: a fake vocabulary of `v` tokens.
std::vector<std::vector<float>> synthetic_rows(size_t v, int n) {
    std::mt19937 rng(42);
    std::normal_distribution<float> nd(0.0f, 2.0f);
    std::vector<std::vector<float>> rows((size_t) n, std::vector<float>(v));
    for (int k = 0; k < n; k++) {
        for (auto & x : rows[(size_t) k]) {
            x = nd(rng);
        }
        rows[(size_t) k][(size_t) (k * 7919) % v] += 12.0f;
    }
    return rows;
}

// A minimal vocabulary of `v` tokens is not available without a model, so at V = 151,936 the
// chain without `dry` (the only vocabulary-bound sampler, switched off by default) is timed.
int bench(Model & m) {
    const char * ig_json = "{\"preset\":\"balanced\"}";
    // 1. Tokens per second in real decoding, 128 tokens, same prompt.
    auto prompt = m.chat("Write a long story about a dragon.");
    for (int round = 0; round < 2; round++) {
        for (int which = 0; which < 2; which++) {
            llama_sampler * s = which == 0 ? default_chain(m.vocab, 1) : gravity(m, ig_json);
            auto t0 = clk::now();
            auto toks = m.generate(prompt, s, 128);
            double sec = std::chrono::duration<double>(clk::now() - t0).count();
            std::printf("bench decode %s round %d: %zu tokens, %.2f tokens/s (incl. prefill of %zu)\n",
                        which == 0 ? "llama.cpp-default-chain" : "infogravity-balanced", round,
                        toks.size(), toks.size() / sec, prompt.size());
            llama_sampler_free(s);
        }
    }
    // 2. Sampling alone: real logits of the model (captured along a greedy run) at its V.
    std::vector<std::vector<float>> real;
    {
        m.clear();
        m.decode(prompt);
        const int n_vocab = llama_vocab_n_tokens(m.vocab);
        llama_sampler * g = llama_sampler_init_greedy();
        for (int i = 0; i < 16; i++) {
            const float * z = llama_get_logits_ith(m.ctx, -1);
            real.emplace_back(z, z + n_vocab);
            llama_token t = llama_sampler_sample(g, m.ctx, -1);
            m.decode({t});
        }
        llama_sampler_free(g);
    }
    const int iters = 400;
    for (int round = 0; round < 2; round++) {
        llama_sampler * d = default_chain(m.vocab, 1);
        llama_sampler * te = temp_ext_chain(1);
        llama_sampler * ig = gravity(m, ig_json);
        std::printf("bench sample V=%zu round %d: default-chain %.1f us, temp_ext+dist %.1f us, infogravity %.1f us\n",
                    real[0].size(), round, sampling_cost(d, real, iters), sampling_cost(te, real, iters),
                    sampling_cost(ig, real, iters));
        llama_sampler_free(d);
        llama_sampler_free(te);
        llama_sampler_free(ig);
    }
    // 3. Sampling alone at V = 151,936 (synthetic rows: a few peaks over Gaussian noise). The
    // default chain's dry sampler needs a vocabulary of that size; with its default multiplier
    // 0 it does nothing, so it is left out here.
    auto rows = synthetic_rows(151936, 16);
    for (int round = 0; round < 2; round++) {
        llama_sampler * d = llama_sampler_chain_init(llama_sampler_chain_default_params());
        llama_sampler_chain_add(d, llama_sampler_init_penalties(151936, 64, 1.0f, 0.0f, 0.0f));
        llama_sampler_chain_add(d, llama_sampler_init_top_n_sigma(-1.0f));
        llama_sampler_chain_add(d, llama_sampler_init_top_k(40));
        llama_sampler_chain_add(d, llama_sampler_init_typical(1.0f, 0));
        llama_sampler_chain_add(d, llama_sampler_init_top_p(0.95f, 0));
        llama_sampler_chain_add(d, llama_sampler_init_min_p(0.05f, 0));
        llama_sampler_chain_add(d, llama_sampler_init_xtc(0.0f, 0.1f, 0, 1));
        llama_sampler_chain_add(d, llama_sampler_init_temp_ext(0.8f, 0.0f, 1.0f));
        llama_sampler_chain_add(d, llama_sampler_init_dist(1));
        llama_sampler * te = temp_ext_chain(1);
        IgProcessor * p = nullptr;
        if (ig_processor_new(ig_json, 151936, &p) != IG_STATUS_OK ||
            ig_processor_begin(p, 1, nullptr, nullptr) != IG_STATUS_OK) {
            return 2;
        }
        // The gravity sampler's work at this V, as the glue does it: gather the candidates'
        // logits into a row, step, select.
        std::vector<float> row(151936);
        std::vector<llama_token_data> cur(151936);
        std::vector<double> times;
        for (int i = 0; i < iters; i++) {
            const auto & z = rows[(size_t) i % rows.size()];
            auto t0 = clk::now();
            for (size_t t = 0; t < z.size(); t++) {
                cur[t] = {(llama_token) t, z[t], 0.0f};
            }
            for (size_t t = 0; t < z.size(); t++) {
                row[t] = cur[t].logit;
            }
            IgStepReport r;
            ig_step_report_init(&r);
            if (ig_processor_step(p, 1, row.data(), IG_DTYPE_F32, row.size(), IG_MODE_SAMPLE, &r) != IG_STATUS_OK ||
                ig_processor_accept(p, 1, (uint32_t) r.token) != IG_STATUS_OK) {
                return 2;
            }
            times.push_back(std::chrono::duration<double, std::micro>(clk::now() - t0).count());
        }
        std::sort(times.begin(), times.end());
        std::printf("bench sample V=151936 round %d: default-chain %.1f us, temp_ext+dist %.1f us, infogravity %.1f us\n",
                    round, sampling_cost(d, rows, iters), sampling_cost(te, rows, iters), times[times.size() / 2]);
        llama_sampler_free(d);
        llama_sampler_free(te);
        ig_processor_free(p);
    }
    return 0;
}

std::vector<llama_token> read_ids(const std::string & line) {
    std::vector<llama_token> ids;
    const char * p = line.c_str();
    char * end = nullptr;
    for (long v = std::strtol(p, &end, 10); end != p; v = std::strtol(p, &end, 10)) {
        ids.push_back((llama_token) v);
        p = end;
    }
    return ids;
}

bool read_line(std::string & line) {
    line.clear();
    for (int c = std::getchar(); c != EOF; c = std::getchar()) {
        if (c == '\n') return true;
        line.push_back((char) c);
    }
    return !line.empty();
}

int tokenize(Model & m) {
    std::string line;
    while (read_line(line)) {
        std::string text;
        for (size_t i = 0; i + 1 < line.size(); i += 2) {
            text.push_back((char) std::stoi(line.substr(i, 2), nullptr, 16));
        }
        std::vector<llama_token> ids(text.size() + 8);
        int k = llama_tokenize(m.vocab, text.c_str(), (int32_t) text.size(), ids.data(),
                               (int32_t) ids.size(), false, true);
        if (k < 0) return 2;
        ids.resize((size_t) k);
        std::printf("%s\n", join(ids).c_str());
    }
    return 0;
}

int logits(Model & m, const char * out) {
    std::FILE * f = std::fopen(out, "wb");
    if (!f) return 2;
    const int n_vocab = llama_vocab_n_tokens(m.vocab);
    std::string line;
    while (read_line(line)) {
        auto ids = read_ids(line);
        if (!m.decode_fresh(ids, 0)) return 2;
        for (size_t i = 0; i < ids.size(); i++) {
            std::fwrite(llama_get_logits_ith(m.ctx, (int32_t) i), sizeof(float), (size_t) n_vocab, f);
        }
        std::printf("%zu positions\n", ids.size());
    }
    return std::fclose(f) == 0 ? 0 : 2;
}

int decode_timed(Model & m, int n) {
    std::string line;
    if (!read_line(line)) return 2;
    auto prompt = read_ids(line);
    llama_sampler * g = llama_sampler_init_greedy();
    m.clear();
    auto t0 = clk::now();
    m.decode(prompt);
    double prefill = std::chrono::duration<double, std::milli>(clk::now() - t0).count();
    std::vector<llama_token> out;
    auto t1 = clk::now();
    for (int i = 0; i < n; i++) {
        llama_token t = llama_sampler_sample(g, m.ctx, -1);
        out.push_back(t);
        m.decode({t});
    }
    double decode = std::chrono::duration<double, std::milli>(clk::now() - t1).count();
    std::printf("{\"prompt_tokens\":%zu,\"prefill_ms\":%.3f,\"decode_ms_per_token\":%.3f,\"tokens\":%s}\n",
                prompt.size(), prefill, decode / n, join(out).c_str());
    llama_sampler_free(g);
    return 0;
}

}  // namespace

// Entropy (nats) of a logits row, in double.
double entropy_of(const float * z, int n) {
    double mx = -INFINITY;
    for (int i = 0; i < n; i++) mx = std::max(mx, (double) z[i]);
    double zs = 0, s1 = 0;
    for (int i = 0; i < n; i++) {
        const double e = std::exp((double) z[i] - mx);
        zs += e;
        s1 += e * ((double) z[i] - mx);
    }
    return std::log(zs) - s1 / zs;
}

// Each report's entropy, by position (a rewound position is overwritten when stepped again).
void entropy_by_step(const IgStepReport * r, void * user) {
    auto * h = static_cast<std::vector<double> *>(user);
    if (h->size() <= r->step) h->resize(r->step + 1);
    (*h)[r->step] = r->entropy;
}

// escape.rollback through llama.cpp's memory: greedy poems SmolLM2 loops on, 160 tokens, the
// host rewinding where the sampler advises (llama_memory_seq_rm, then the last kept token decoded
// again). Then one fresh decode of each final text: every kept token's entropy as the sampler
// saw it must be that of the kept prefix. Prints "rollback rewinds <k> dropped <d> max_dH <x>".
// `off`: the same without rollback (the baseline of prefill against step-by-step decoding).
int rollback(Model & m, bool off) {
    const char * poems[] = {"Write a long poem about friendship.", "Write a long poem about coffee.",
                            "Write a long poem about a robot.", "Write a long poem about the moon."};
    const int n_vocab = llama_vocab_n_tokens(m.vocab);
    int rewinds = 0, dropped = 0;
    double worst = 0;
    for (const char * q : poems) {
        std::vector<double> seen;
        llama_sampler * g = gravity(m,
                                    off ? "{\"preset\":\"balanced\",\"temperature\":{\"base\":0},"
                                          "\"escape\":{\"repeat_penalty\":0}}"
                                        : "{\"preset\":\"balanced\",\"temperature\":{\"base\":0},"
                                          "\"escape\":{\"repeat_penalty\":0,\"rollback\":32}}",
                                    1, entropy_by_step, &seen);
        const auto prompt = m.chat(q);
        m.clear();
        m.decode(prompt);
        std::vector<llama_token> out;
        while (out.size() < 160) {
            const llama_token t = llama_sampler_sample(g, m.ctx, -1);
            out.push_back(t);
            const uint32_t d = llama_sampler_infogravity_rollback_advice(g);
            if (d > 0) {
                // Decoded: the prompt and every sampled token but t.
                const llama_pos n_past = (llama_pos) (prompt.size() + out.size() - 1);
                if (llama_sampler_infogravity_rollback(g, d) != IG_STATUS_OK ||
                    !llama_memory_seq_rm(llama_get_memory(m.ctx), 0, n_past - (llama_pos) d, -1)) {
                    std::fprintf(stderr, "rollback failed: %s\n", ig_last_error());
                    return 2;
                }
                out.resize(out.size() - d);
                m.decode({out.empty() ? prompt.back() : out.back()});
                rewinds++;
                dropped += (int) d;
                continue;
            }
            if (llama_vocab_is_eog(m.vocab, t)) break;
            m.decode({t});
        }
        llama_sampler_free(g);
        // One fresh decode of the prompt and the kept tokens, logits at every answer position.
        std::vector<llama_token> all(prompt);
        all.insert(all.end(), out.begin(), out.end());
        if (!m.decode_fresh(all, prompt.size() - 1)) return 2;
        for (size_t k = 0; k < out.size() && k < seen.size(); k++) {
            const float * z = llama_get_logits_ith(m.ctx, (int32_t) (prompt.size() - 1 + k));
            worst = std::max(worst, std::fabs(entropy_of(z, n_vocab) - seen[k]));
        }
    }
    std::printf("rollback rewinds %d dropped %d max_dH %.3g\n", rewinds, dropped, worst);
    return 0;
}

void flags_by_step(const IgStepReport * r, void * user) {
    static_cast<std::vector<uint32_t> *>(user)->push_back(r->flags);
}

std::string text_of(const Model & m, const std::vector<llama_token> & ids) {
    std::string s;
    char buf[256];
    for (llama_token t : ids) {
        const int n = llama_token_to_piece(m.vocab, t, buf, sizeof buf, 0, false);
        if (n > 0) s.append(buf, (size_t) n);
    }
    return s;
}

// The null-query contrast through llama_sampler_infogravity_set_null_prompt: an item of
// eval/qa_bank.jsonl where greedy answers " the Nordic region" and the gated contrast (" the" is
// also the null query's top) " Europe" (the reference engine's `eval pmi`). Prints each run's
// text and contrast flags per step, then the error statuses of bad calls.
int contrast(Model & m) {
    const char * cfg = "{\"preset\":\"neutral\",\"temperature\":{\"base\":0},"
                       "\"contrast\":{\"enabled\":true}}";
    const auto prompt = m.chat("Which continent is Norway in?", "Norway is in");
    const auto null = m.chat("Which continent is N/A in?", "N/A is in");
    auto cp = llama_context_default_params();
    cp.n_ctx = 256;
    cp.n_batch = 256;
    cp.n_threads = cp.n_threads_batch = 2;
    llama_context * nctx = llama_init_from_model(m.model, cp);
    for (int with = 0; with < 2; with++) {
        std::vector<uint32_t> flags;
        llama_sampler * g = gravity(m, cfg, 1, flags_by_step, &flags);
        if (with && llama_sampler_infogravity_set_null_prompt(g, nctx, null.data(), null.size()) !=
                        IG_STATUS_OK) {
            std::fprintf(stderr, "set_null_prompt: %s\n", ig_last_error());
            return 2;
        }
        const auto out = m.generate(prompt, g, 6);
        std::string f;
        for (uint32_t x : flags) f += (x & IG_FLAG_CONTRAST) ? "1" : "0";
        std::printf("contrast %s text=\"%s\" flags=%s\n", with ? "null" : "plain",
                    text_of(m, out).c_str(), f.c_str());
        llama_sampler_free(g);
    }
    // Fed every token (`until_content` off): the row the sampler gives at step k is the null
    // context's after the null prompt and the first k tokens; a third context decodes each of
    // those at once, and their entropies are compared (llama.cpp's own gap between a prompt at
    // once and token by token is ~0.01 nats, see `rollback`).
    {
        const char * feed = "{\"preset\":\"neutral\",\"temperature\":{\"base\":0},"
                            "\"contrast\":{\"enabled\":true,\"until_content\":false}}";
        std::vector<uint32_t> flags;
        llama_sampler * g = gravity(m, feed, 1, flags_by_step, &flags);
        if (llama_sampler_infogravity_set_null_prompt(g, nctx, null.data(), null.size()) !=
            IG_STATUS_OK) {
            return 2;
        }
        const int n_vocab = llama_vocab_n_tokens(m.vocab);
        std::vector<double> seen = {entropy_of(llama_get_logits_ith(nctx, -1), n_vocab)};
        m.clear();
        m.decode(prompt);
        std::vector<llama_token> out;
        for (int i = 0; i < 6; i++) {
            const llama_token t = llama_sampler_sample(g, m.ctx, -1);
            out.push_back(t);
            if (i < 5) seen.push_back(entropy_of(llama_get_logits_ith(nctx, -1), n_vocab));
            m.decode({t});
        }
        llama_sampler_free(g);
        llama_context * fresh = llama_init_from_model(m.model, cp);
        double worst = 0;
        for (size_t k = 0; k < seen.size(); k++) {
            std::vector<llama_token> ids(null);
            ids.insert(ids.end(), out.begin(), out.begin() + (long) k);
            llama_memory_clear(llama_get_memory(fresh), true);
            if (llama_decode(fresh, llama_batch_get_one(ids.data(), (int32_t) ids.size())) != 0) {
                return 2;
            }
            worst = std::max(worst, std::fabs(entropy_of(llama_get_logits_ith(fresh, -1), n_vocab) -
                                              seen[k]));
        }
        llama_free(fresh);
        std::string f;
        for (uint32_t x : flags) f += (x & IG_FLAG_CONTRAST) ? "1" : "0";
        std::printf("contrast feed steps %zu max_dH %.3g flags=%s\n", seen.size(), worst, f.c_str());
    }
    llama_sampler * g = gravity(m, cfg);
    llama_sampler * host = llama_sampler_init_greedy();
    const llama_token bad[] = {-1};
    llama_sampler * off = gravity(m, kGreedy);  // `neutral`: the contrast is off
    std::printf("contrast errors empty=%d out_of_range=%d not_gravity=%d off=%d cleared=%d\n",
                (int) llama_sampler_infogravity_set_null_prompt(g, nctx, null.data(), 0),
                (int) llama_sampler_infogravity_set_null_prompt(g, nctx, bad, 1),
                (int) llama_sampler_infogravity_set_null_prompt(host, nctx, null.data(), null.size()),
                (int) llama_sampler_infogravity_set_null_prompt(off, nctx, null.data(), null.size()),
                (int) llama_sampler_infogravity_set_null_prompt(g, nullptr, nullptr, 0));
    llama_sampler_free(off);
    llama_sampler_free(host);
    llama_sampler_free(g);
    llama_free(nctx);
    return 0;
}

int main(int argc, char ** argv) {
    if (argc < 3) {
        std::fprintf(stderr, "usage: e2e greedy|report|clone|rollback|contrast|bench|tokenize|logits|decode MODEL [N|OUT]\n");
        return 2;
    }
    Model m(argv[2]);
    const std::string mode = argv[1];
    if (mode == "greedy") return greedy(m);
    if (mode == "report") return report(m, argc > 3 ? std::atoi(argv[3]) : 16);
    if (mode == "clone") return clone(m);
    if (mode == "rollback") return rollback(m, argc > 3 && std::strcmp(argv[3], "off") == 0);
    if (mode == "contrast") return contrast(m);
    if (mode == "bench") return bench(m);
    if (mode == "tokenize") return tokenize(m);
    if (mode == "logits" && argc > 3) return logits(m, argv[3]);
    if (mode == "decode") return decode_timed(m, argc > 3 ? std::atoi(argv[3]) : 128);
    std::fprintf(stderr, "unknown mode %s\n", argv[1]);
    return 2;
}
