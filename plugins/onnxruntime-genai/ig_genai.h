/*
 * infogravity inside ONNX Runtime GenAI's decoding loop (GenAI's C API, tested with the PyPI
 * wheel onnxruntime-genai 0.18.0 on CPU).
 *
 * GenAI is app-driven: the application calls OgaGenerator_GenerateNextToken once per token.
 * ig_genai_step replaces that call: it takes the generator's logits (every row of its batch),
 * steps the IgProcessor on them, hands GenAI back a row that makes it emit infogravity's choice,
 * lets GenAI generate, and accepts the tokens GenAI emitted. The processor and its sequences
 * are the application's: create the processor with the model's vocabulary, ig_processor_begin
 * one sequence id per batch row before the first step, ig_processor_end them after.
 *
 *   ig_genai_configure(params, IG_MODE_SAMPLE, err, sizeof err);     before OgaCreateGenerator
 *   ... OgaGenerator_AppendTokens(gen, prompt, n) ...
 *   while ((rc = ig_genai_step(gen, proc, &batch)) == IG_GENAI_STEPPED) { use batch.tokens }
 *   rc == IG_GENAI_DONE: GenAI is done (EOS on every row, or search.max_length reached)
 *
 * Modes (IgGenaiBatch.mode):
 * - IG_MODE_SAMPLE: infogravity selects the token; the row handed back is 0 at that token and
 *   -inf elsewhere, and GenAI runs greedy search (do_sample false), so it emits exactly that
 *   token. Checked every step: a different token is an error.
 * - IG_MODE_LOGITS: the row handed back is infogravity's final logits z'/T (-inf below its
 *   truncation cut) and GenAI samples it with do_sample true, top_k 0, top_p 1, temperature 1:
 *   in 0.18.0 that samples the row unchanged (top_k 0 = no top-k; top_p 1 = the whole
 *   distribution; top_p 0, GenAI's built-in default, would make it greedy; a temperature other
 *   than 1 would divide our logits a second time). Checked every step: a token infogravity
 *   masked is an error. GenAI's RNG (search.random_seed) draws the token.
 * ig_genai_configure sets those search options, and repetition_penalty 1, min_length 0 and
 * no_repeat_ngram_size 0, which would otherwise edit the row after infogravity.
 */
#ifndef IG_GENAI_H
#define IG_GENAI_H

#include <stddef.h>
#include <stdint.h>

#include "infogravity.h"
#include "oga_subset.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ig_genai_step results. */
#define IG_GENAI_STEPPED 1 /* one token per row generated and accepted */
#define IG_GENAI_DONE 0    /* GenAI is done; nothing was called but OgaGenerator_IsDone */
#define IG_GENAI_ERROR (-1) /* IgGenaiBatch.error says what failed */

/* The most rows ig_genai_step takes: its per-step scratch is on the stack, nothing is
   allocated per token. */
#define IG_GENAI_MAX_ROWS 64

/* The rows of one generator and what ig_genai_step reports about them. */
typedef struct IgGenaiBatch {
    /* In: the generator's batch size (search.batch_size). */
    size_t n_rows;
    /* In: seqs[b] is the (begun) infogravity sequence id of row b. */
    const uint64_t *seqs;
    /* In: IG_MODE_SAMPLE or IG_MODE_LOGITS, as the generator was configured. */
    uint32_t mode;
    /* In: the model's EOS ids (genai_config.json model.eos_token_id): a row that emits one is
       finished. GenAI then pads it; ig_genai_step no longer steps or accepts it. */
    const int32_t *eos;
    size_t n_eos;
    /* In/out, n_rows flags, zero at the start: nonzero = the row is finished (set on EOS; the
       application may set it, e.g. when IgStepReport.stop asks to stop: the row is then
       handed to GenAI unchanged and its tokens are not accepted). */
    unsigned char *finished;
    /* Out, n_rows entries, each initialised with ig_step_report_init: the report of row b for
       this step when stepped[b] is nonzero. */
    IgStepReport *reports;
    /* Out, n_rows: stepped[b] nonzero when row b was stepped and its token accepted. */
    unsigned char *stepped;
    /* Out, n_rows: the token GenAI emitted for each row this step (pad for finished rows). */
    int32_t *tokens;
    /* Out: the message of the last IG_GENAI_ERROR. */
    char error[256];
} IgGenaiBatch;

/*
 * Set the search options of `params` for `mode` (see above). Call it after any other
 * OgaGeneratorParamsSetSearch* call (batch_size, max_length, random_seed are yours).
 * Returns 0, or -1 with a message in err (cap bytes).
 */
int ig_genai_configure(OgaGeneratorParams *params, uint32_t mode, char *err, size_t cap);

/*
 * One decoding step of `gen` with `proc`, for every unfinished row: see the top of this file.
 * Checks OgaGenerator_IsDone first (after EOS, GenAI's GetLogits fails inside ONNX Runtime),
 * so calling it again after IG_GENAI_DONE is safe and returns IG_GENAI_DONE.
 * Every row's token is checked before any is accepted: when GenAI emitted something else than
 * infogravity handed it, IG_GENAI_ERROR says so and nothing is accepted.
 */
int ig_genai_step(OgaGenerator *gen, IgProcessor *proc, IgGenaiBatch *batch);

/*
 * ig_genai_step with the null-query contrast (the processor's `contrast` section;
 * docs/EVALUATION.md §7). `null_gen` is a second generator of the same model and batch size,
 * its params set with ig_genai_configure(IG_MODE_SAMPLE) and search.max_length room for the
 * null prompts plus the tokens it will be fed, the rows' null prompts appended (each prompt with
 * its content removed, e.g. the subject replaced by "N/A"); `null_live` (n_rows flags, nonzero
 * at the start) says which rows still take a null row. Before the step, each unfinished live
 * row gives the processor its row of null_gen's logits (ig_processor_set_contrast); after it, a
 * row is no longer live once it emitted a content token (`content`: V flags as for
 * ig_processor_set_content_tokens, which the processor should be given too; NULL: every token
 * counts, so only the first step) or finished, and while any row is live null_gen is advanced
 * by the tokens the rows emitted (a one-hot row each, as ig_genai_step drives `gen`: GenAI
 * takes AppendTokens on a batch only once). When no row is live this is ig_genai_step, and
 * null_gen may be destroyed. An IG_GENAI_ERROR after the main step (null_gen failed) leaves
 * that step taken: batch.stepped and batch.tokens say so; stop the contrast then. The rows
 * stop where `content` says, whatever the configuration: under `contrast.until_content` off
 * pass a table of zeros (no token ends a row); with `contrast.enabled` off the processor
 * ignores the rows (do not run a null generator then).
 * Cost: one null-generator step per step until every row has a content token.
 */
int ig_genai_step_contrast(OgaGenerator *gen, OgaGenerator *null_gen, IgProcessor *proc,
                           IgGenaiBatch *batch, const unsigned char *content,
                           unsigned char *null_live);

#ifdef __cplusplus
}
#endif

#endif /* IG_GENAI_H */
