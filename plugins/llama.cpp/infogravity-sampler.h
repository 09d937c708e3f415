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

#ifdef __cplusplus
}
#endif
