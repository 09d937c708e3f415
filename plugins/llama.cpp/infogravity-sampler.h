// The infogravity gravity sampler as a llama.cpp sampler (`struct llama_sampler_i`).
//
// Compile infogravity-sampler.cpp with your llama.cpp build (it includes the host's own
// llama.h), link libinfogravity (scripts/install-c.sh), then:
//
//     llama_sampler * s = llama_sampler_init_infogravity(vocab, "{\"preset\":\"balanced\"}",
//                                                        IG_MODE_SAMPLE, seed, NULL, NULL);
//     llama_sampler_chain_add(chain, s);   // the chain's selector (replaces `dist`)
//
// IG_MODE_SAMPLE: the sampler selects the token (put it last, in place of `dist`, with nothing
// that truncates before it: the field is measured on the full vocabulary). IG_MODE_LOGITS: it
// rewrites the logits to the final z'/T (−inf where truncated) for the samplers after it; put it
// first (after `logit_bias` at most) and keep the host temperature at 1.
//
// Lifecycle: tokens accepted before the first apply are the query (llama-server primes the
// chain with the prompt): they feed M(Q). Applying the same position twice (a grammar
// rejection) equals applying it once. `clone` forks the sequence (speculative decoding, the
// server's slot copies); every clone shares one processor. Reports: `report(report, user)` is
// called after every apply, and with the environment variable INFOGRAVITY_LOG=FILE every report
// is appended to FILE as one JSON line.
#pragma once

#include "infogravity.h"
#include "llama.h"

#ifdef __cplusplus
extern "C" {
#endif

// Called after each apply with the step's diagnostics (seq is unique per sampler and clone).
typedef void (*ig_llama_report_fn)(const IgStepReport * report, void * user);

// A gravity sampler for `vocab`'s size. `config_json` is the processor configuration (NULL =
// the balanced preset); `mode` IG_MODE_SAMPLE or IG_MODE_LOGITS; `seed` the sampling seed
// (LLAMA_DEFAULT_SEED picks one at random). Returns NULL on a bad configuration, with the
// reason in ig_last_error(). Free it with llama_sampler_free (or let a chain own it).
struct llama_sampler * llama_sampler_init_infogravity(const struct llama_vocab * vocab,
                                                      const char * config_json, uint32_t mode,
                                                      uint32_t seed, ig_llama_report_fn report,
                                                      void * user);

// The processor handle behind a gravity sampler (for ig_processor_* calls such as loading a
// Prior), or NULL if `smpl` is not one.
IgProcessor * llama_sampler_infogravity_processor(const struct llama_sampler * smpl);

// Rollback (`escape.rollback` > 0; the host rewinds its KV cache). Where the would-close guard
// fires, the report carries IG_FLAG_ROLLBACK and this returns how many tokens to drop to return
// to where the repeated copy began (llama_sampler_sample has already accepted the guarded token,
// so it is counted too); 0 when the last apply advised nothing or `smpl` is not a gravity
// sampler.
uint32_t llama_sampler_infogravity_rollback_advice(const struct llama_sampler * smpl);

// Drop the sampler's last `n` accepted tokens (ig_processor_rollback; a rewind to where the
// advised copy began also bans its first token there). The host drops the same tokens: with
// `n_past` positions decoded (the last sampled token not yet), the last kept token sits at
// position n_past - n, so
//     llama_memory_seq_rm(llama_get_memory(ctx), seq_id, n_past - n, -1);
// then decode that token again for the logits where the copy began
// (plugins/llama.cpp/tests/e2e.cpp, mode `rollback`). Returns IG_STATUS_OK, or an error with
// the reason in ig_last_error() (nothing changed then).
IgStatus llama_sampler_infogravity_rollback(struct llama_sampler * smpl, uint32_t n);

// The null-query contrast (the configuration's `contrast` section, docs/EVALUATION.md §7):
// the sampler decodes `null_prompt` — the prompt with its content removed, e.g. the subject
// replaced by "N/A" — in `null_ctx`, a second context of the same model that the host owns and
// uses for nothing else while it is set (its memory is cleared; sequence 0), feeds it each
// token the sampler accepts — until the first content token under `contrast.until_content` —
// and gives the processor that context's last logits before each apply
// (ig_processor_set_contrast). Which tokens carry content: ig_content_piece of each token's
// piece, built on the first call (one pass over the vocabulary) and set on the processor
// (ig_processor_set_content_tokens: it replaces a table the host set). Call it when the answer
// starts: after the query's tokens were accepted, before the answer's first apply. The prompt
// is decoded here, so it must fit the context's n_batch. A reset, a rollback or NULL
// `null_ctx` ends it; a clone does not carry it. Cost: one single-token decode of `null_ctx`
// per step while it runs. Returns IG_STATUS_OK or an error, the reason on stderr (or in
// ig_last_error() for the library's own checks); on error no null prompt is set (an earlier
// one is ended, and `null_ctx`'s memory may have been cleared): NULL_POINTER (not a gravity
// sampler, an empty prompt), INVALID_ARGUMENT (the configuration's contrast is off),
// SIZE_MISMATCH (another vocabulary), TOKEN_OUT_OF_RANGE, ENGINE (the decode failed).
IgStatus llama_sampler_infogravity_set_null_prompt(struct llama_sampler * smpl,
                                                   struct llama_context * null_ctx,
                                                   const llama_token * null_prompt, size_t n);

#ifdef __cplusplus
}
#endif
