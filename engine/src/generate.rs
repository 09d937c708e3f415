//! Tokenizer, chat template and the generation loop with the gravity processor in it.
//!
//! Chat template: the converted models carry ChatML (SmolLM2's GGUF template is ChatML with a
//! default system message). It is rendered here, not by a Jinja engine, exactly as that template
//! does: if the first message is not a system message the default one is prepended, then every
//! message becomes `<|im_start|>{role}\n{content}<|im_end|>\n`, and the generation prompt
//! `<|im_start|>assistant\n` follows. The default system text is read from the template in
//! `model.json`, so a model without one gets none.

use std::path::Path;

use super::{CausalLm, EngineOptions, KvCache};
use infogravity::processor::{GravityProcessor, SeqParams, StepMode, StepReport};
use infogravity::{Config, QueryInput};
use infogravity::{Error, Result};

fn engine(msg: impl Into<String>) -> Error {
    Error::Engine(msg.into())
}

/// A chat message.
#[derive(Debug, Clone)]
pub struct Message {
    pub role: String,
    pub content: String,
}

impl Message {
    pub fn new(role: &str, content: &str) -> Message {
        Message {
            role: role.into(),
            content: content.into(),
        }
    }
}

/// The default system message inside a ChatML Jinja template, if it has one: the first
/// `<|im_start|>system` + newline (a real one, or the `\n` escape of a Jinja string) whose text
/// up to `<|im_end|>` is literal (SmolLM2's has one such string; Qwen2.5's first two are Jinja
/// expressions, the third is its default "You are Qwen, …").
fn default_system(template: &str) -> Option<String> {
    let start = "<|im_start|>system";
    let mut rest = template;
    while let Some(i) = rest.find(start) {
        rest = &rest[i + start.len()..];
        let Some(body) = rest.strip_prefix('\n').or_else(|| rest.strip_prefix("\\n")) else {
            continue;
        };
        let Some(end) = body.find("<|im_end|>") else {
            break;
        };
        let text = &body[..end];
        if !text.contains(['\'', '"', '{', '}', '\\']) {
            return Some(text.to_string());
        }
    }
    None
}

/// Render `messages` with the model's ChatML template, ending with the assistant prompt.
pub fn render_chat(template: &str, messages: &[Message]) -> String {
    let mut s = String::new();
    if messages.first().is_none_or(|m| m.role != "system")
        && let Some(sys) = default_system(template)
    {
        s.push_str(&format!("<|im_start|>system\n{sys}<|im_end|>\n"));
    }
    for m in messages {
        s.push_str(&format!(
            "<|im_start|>{}\n{}<|im_end|>\n",
            m.role, m.content
        ));
    }
    s.push_str("<|im_start|>assistant\n");
    s
}

/// Generation settings.
#[derive(Debug, Clone)]
pub struct GenerateOptions {
    pub max_tokens: usize,
    pub seed: u64,
    /// Anchor texts: their tokens become the sequence's anchors.
    pub anchors: Vec<String>,
    /// Also compute each token's critical temperature T* (the argmax of the heat capacity of
    /// the raw next-token field over [0.02, 4], [`infogravity::field::thermo::CriticalTemperature`]).
    /// Costs about 50 kernel passes over the vocabulary per token (see the CLI's `--tstar`).
    pub critical_temperature: bool,
    /// Empty, or one range per prompt: where the query's tokens are in it (e.g. from
    /// [`crate::prompt_with_span`]). They are passed to the processor's `begin`, so M(Q)
    /// includes the novelty N_KL when the processor has a Prior (docs/DESIGN.md §1); without them
    /// M(Q) comes from the prompt's entropy alone.
    pub query_spans: Vec<std::ops::Range<usize>>,
    /// Rewind when the processor advises it (`escape.rollback`, [`StepReport::rollback`]): the
    /// row's KV cache drops the copy (its slots are masked for good, as padding is), the
    /// processor is rolled back, and decoding resumes where the copy began. `max_tokens` still
    /// counts the tokens kept. Pieces of a rewound span were already passed to `on_token`; the
    /// returned [`Generation`] holds the final text and what was rewound.
    pub rollback: bool,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions {
            max_tokens: 128,
            seed: 0,
            anchors: vec![],
            critical_temperature: false,
            query_spans: vec![],
            rollback: false,
        }
    }
}

/// Why a generation stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// The model emitted its end-of-sequence token.
    Eos,
    /// `max_tokens` were generated.
    MaxTokens,
    /// The processor abstained (its report said stop).
    Abstain,
    /// The next model call would pass the model's context.
    Context,
}

impl StopReason {
    /// `eos`, `max_tokens`, `abstain` or `context`: how reports and results files name it.
    pub fn as_str(self) -> &'static str {
        match self {
            StopReason::Eos => "eos",
            StopReason::MaxTokens => "max_tokens",
            StopReason::Abstain => "abstain",
            StopReason::Context => "context",
        }
    }
}

/// Compare with the name (`stop == "eos"`).
impl PartialEq<&str> for StopReason {
    fn eq(&self, name: &&str) -> bool {
        self.as_str() == *name
    }
}

impl std::fmt::Display for StopReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a generation produced.
#[derive(Debug, Clone)]
pub struct Generation {
    pub text: String,
    pub tokens: Vec<u32>,
    pub reports: Vec<StepReport>,
    /// Per report, T* of the raw field (only with `critical_temperature`).
    pub t_star: Vec<f32>,
    pub prompt_tokens: usize,
    /// M(Q) and its raw components as the processor computed them at `begin`.
    pub mass: infogravity::QueryMass,
    /// Why it stopped.
    pub stop: StopReason,
    /// Rewinds taken ([`GenerateOptions::rollback`]) and the tokens they dropped.
    pub rollbacks: usize,
    pub rewound: usize,
    /// Wall time of the prompt's prefill.
    pub prefill: std::time::Duration,
    /// Wall time in the model's decode steps.
    pub model: std::time::Duration,
    /// Wall time in the processor (step + accept).
    pub processor: std::time::Duration,
}

/// A model, its tokenizer and a gravity processor.
pub struct Engine {
    pub lm: CausalLm,
    pub tokenizer: tokenizers::Tokenizer,
}

impl Engine {
    /// Load a model directory (see [`CausalLm::load`]) and its `tokenizer.json`; the tokenizer's
    /// vocabulary must fit the model's.
    pub fn load(dir: &Path, opts: &EngineOptions) -> Result<Engine> {
        let lm = CausalLm::load(dir, opts)?;
        let path = dir.join("tokenizer.json");
        let tokenizer = tokenizers::Tokenizer::from_file(&path)
            .map_err(|e| engine(format!("{}: {e}", path.display())))?;
        let tv = tokenizer.get_vocab_size(true);
        if tv > lm.info().vocab {
            return Err(engine(format!(
                "tokenizer/model vocabulary mismatch: {} has {tv} tokens, the model {}",
                path.display(),
                lm.info().vocab
            )));
        }
        Ok(Engine { lm, tokenizer })
    }

    /// Token ids of `text` (special tokens in the text are recognised, nothing is added).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        Ok(self
            .tokenizer
            .encode(text, false)
            .map_err(|e| engine(format!("tokenize: {e}")))?
            .get_ids()
            .to_vec())
    }

    /// Text of `ids` (special tokens skipped).
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.tokenizer
            .decode(ids, true)
            .map_err(|e| engine(format!("detokenize: {e}")))
    }

    /// Prefill `prompt`: the logits of every position `[P, V]` and the cache after it.
    pub fn prefill(&mut self, prompt: &[u32]) -> Result<(Vec<f32>, KvCache)> {
        let mut cache = self.lm.new_cache()?;
        let logits = self.lm.forward(&mut cache, prompt)?;
        Ok((logits, cache))
    }

    /// The token ids of the chat prompt for `messages` (template of `model.json`), followed by
    /// `stem`: text the answer is made to start with (e.g. "The capital of Peru is"), so the
    /// first generated token continues it.
    pub fn chat_prompt(&self, messages: &[Message], stem: &str) -> Result<Vec<u32>> {
        self.encode(&(render_chat(&self.lm.info().chat_template, messages) + stem))
    }

    /// Generate a reply to `messages` with `processor` (whose vocabulary must be the model's),
    /// calling `on_token(text_piece, report)` as each token is accepted.
    pub fn generate(
        &mut self,
        processor: &mut GravityProcessor,
        messages: &[Message],
        opts: &GenerateOptions,
        mut on_token: impl FnMut(&str, &StepReport),
    ) -> Result<Generation> {
        let prompt = self.chat_prompt(messages, "")?;
        let mut g =
            self.generate_batch(processor, &[prompt], opts, |_, piece, r| on_token(piece, r))?;
        Ok(g.pop().expect("one prompt in, one generation out"))
    }

    /// Generate continuations of several token prompts in one batch: row `r` is sequence
    /// `r + 1` of `processor` with seed `opts.seed + r`. Each model call runs every row (prompts
    /// of different lengths are left-padded, see [`CausalLm::forward_batch`]); the processor steps
    /// the live rows with [`GravityProcessor::step_batch`]. A row that has finished still takes
    /// part in the model calls (fed its last token, its logits ignored) until every row is done:
    /// that is the cost of a static batch, as in a plain static-batch server.
    /// `on_token(row, text_piece, report)` is called as each token is accepted. The timing fields
    /// of every [`Generation`] are those of the whole batch.
    pub fn generate_batch(
        &mut self,
        processor: &mut GravityProcessor,
        prompts: &[Vec<u32>],
        opts: &GenerateOptions,
        on_token: impl FnMut(usize, &str, &StepReport),
    ) -> Result<Vec<Generation>> {
        self.run_batch(processor, prompts, opts, on_token)
    }

    /// The body of [`Engine::generate_batch`]. Host logits processors (a DRY penalty, a
    /// recorder) go where every host's do: [`GravityProcessor::push_pre`], first in the
    /// pipeline (docs/DESIGN.md §1 "Pipeline order"); each sequence's prompt reaches them as
    /// [`SeqParams::context`].
    fn run_batch(
        &mut self,
        processor: &mut GravityProcessor,
        prompts: &[Vec<u32>],
        opts: &GenerateOptions,
        mut on_token: impl FnMut(usize, &str, &StepReport),
    ) -> Result<Vec<Generation>> {
        let v = self.lm.info().vocab;
        if processor.vocab() != v {
            return Err(Error::SizeMismatch {
                what: "processor vocabulary",
                expected: v,
                got: processor.vocab(),
            });
        }
        let b = prompts.len();
        if b == 0 {
            return Ok(vec![]);
        }
        if !opts.query_spans.is_empty() {
            if opts.query_spans.len() != b {
                return Err(Error::SizeMismatch {
                    what: "query spans (one per prompt)",
                    expected: b,
                    got: opts.query_spans.len(),
                });
            }
            if let Some((r, s)) = (opts.query_spans.iter().enumerate())
                .find(|(r, s)| s.start > s.end || s.end > prompts[*r].len())
            {
                return Err(Error::InvalidArgument(format!(
                    "query span {s:?} of prompt {r} is outside its {} tokens",
                    prompts[r].len()
                )));
            }
        }
        let mut anchors = vec![];
        for a in &opts.anchors {
            anchors.extend(self.encode(a)?);
        }
        anchors.sort_unstable();
        anchors.dedup();
        let t0 = std::time::Instant::now();
        let mut cache = self.lm.new_batch_cache(b)?;
        let refs: Vec<&[u32]> = prompts.iter().map(Vec::as_slice).collect();
        let prompt_logits = self.lm.forward_batch(&mut cache, &refs)?;
        let prefill = t0.elapsed();
        let mut rows = vec![0f32; b * v];
        let mut masses = Vec::with_capacity(b);
        for (r, logits) in prompt_logits.iter().enumerate() {
            let seq = r as u64 + 1;
            let _ = processor.end(seq);
            // The last prompt row is the first answer position: H(Q) comes from the prompt logits.
            let mass = processor.begin(
                seq,
                &SeqParams {
                    seed: opts.seed.wrapping_add(r as u64),
                    anchors: &anchors,
                    query: QueryInput {
                        prompt_logits: Some(logits),
                        query_tokens: opts.query_spans.get(r).map(|s| &prompts[r][s.clone()]),
                        ..Default::default()
                    },
                    context: &prompts[r],
                },
            )?;
            masses.push(mass);
            rows[r * v..(r + 1) * v].copy_from_slice(&logits[logits.len() - v..]);
        }
        drop(prompt_logits);
        let eos = self.lm.info().eos_token_id;
        let mut out: Vec<Generation> = prompts
            .iter()
            .zip(masses)
            .map(|(p, mass)| Generation {
                text: String::new(),
                tokens: vec![],
                reports: vec![],
                t_star: vec![],
                prompt_tokens: p.len(),
                mass,
                stop: StopReason::MaxTokens,
                rollbacks: 0,
                rewound: 0,
                prefill,
                model: std::time::Duration::ZERO,
                processor: std::time::Duration::ZERO,
            })
            .collect();
        let (mut model, mut proc) = (std::time::Duration::ZERO, std::time::Duration::ZERO);
        // Live rows, in order; their logits are packed at the front of `rows` for step_batch.
        let mut live: Vec<usize> = (0..b).collect();
        let mut seqs: Vec<u64> = live.iter().map(|&r| r as u64 + 1).collect();
        let mut reports = vec![StepReport::default(); b];
        let mut shown = vec![0usize; b];
        let mut next: Vec<u32> = vec![eos; b];
        let mut t_star = infogravity::field::thermo::CriticalTemperature::default();
        // Per row, tokens to drop from the cache before the next call (a rewind), else 0.
        let mut rewind = vec![0usize; b];
        // A row ends at `max_tokens` kept tokens; each step keeps one or (rewinding) spends the
        // processor's rollback budget, so this ends.
        if opts.max_tokens == 0 {
            live.clear();
        }
        while !live.is_empty() {
            let n = live.len();
            if opts.critical_temperature {
                for (i, &r) in live.iter().enumerate() {
                    let row = &rows[i * v..(i + 1) * v];
                    let (ts, _) = t_star.find(row, 0.02, 4.0);
                    out[r].t_star.push(ts as f32);
                }
            }
            let t = std::time::Instant::now();
            processor.step_batch(
                &seqs[..n],
                &mut rows[..n * v],
                StepMode::Sample,
                &mut reports[..n],
            )?;
            let mut done = vec![];
            for (i, &r) in live.iter().enumerate() {
                let rep = reports[i];
                let g = &mut out[r];
                if rep.stop {
                    g.t_star.truncate(g.reports.len());
                    g.stop = StopReason::Abstain;
                    done.push(r);
                    continue;
                }
                if opts.rollback && rep.rollback > 0 {
                    // Drop the copy: the processor and the cache go back to where it began;
                    // the last kept token is fed again for that position's logits.
                    let k = rep.rollback as usize;
                    processor.rollback(seqs[i], rep.rollback)?;
                    g.tokens.truncate(g.tokens.len() - k);
                    g.reports.truncate(g.reports.len() - k);
                    g.t_star.truncate(g.reports.len());
                    g.rollbacks += 1;
                    g.rewound += k;
                    rewind[r] = k + 1;
                    next[r] = *g.tokens.last().unwrap_or(&prompts[r][prompts[r].len() - 1]);
                    continue;
                }
                let tok = rep.token.expect("Sample mode selects a token");
                processor.accept(seqs[i], tok)?;
                g.reports.push(rep);
                next[r] = tok;
                if tok == eos {
                    g.stop = StopReason::Eos;
                    done.push(r);
                    continue;
                }
                g.tokens.push(tok);
                if g.tokens.len() >= opts.max_tokens {
                    done.push(r);
                }
                // Stream whole characters: decode the tail and print what is new.
                let text = self.decode(&g.tokens)?;
                if !text.ends_with('\u{fffd}') {
                    // A decode that is not prefix-stable could put the old length inside a
                    // character: print from the next boundary rather than panic.
                    let mut from = shown[r].min(text.len());
                    while !text.is_char_boundary(from) {
                        from += 1;
                    }
                    on_token(r, &text[from..], &rep);
                    shown[r] = text.len();
                }
            }
            proc += t.elapsed();
            live.retain(|r| !done.contains(r));
            if live.is_empty() {
                break;
            }
            seqs = live.iter().map(|&r| r as u64 + 1).collect();
            // Every row takes the next model call; when one would pass the model's context the
            // batch ends and the live rows stop with "context".
            if (0..b).any(|r| cache.len(r) + 1 > self.lm.info().context) {
                for &r in &live {
                    out[r].stop = StopReason::Context;
                }
                break;
            }
            for (r, k) in rewind.iter_mut().enumerate() {
                if *k > 0 {
                    cache.rewind(r, *k)?;
                    *k = 0;
                }
            }
            let t = std::time::Instant::now();
            let feed: Vec<[u32; 1]> = next.iter().map(|&t| [t]).collect();
            let refs: Vec<&[u32]> = feed.iter().map(|t| t.as_slice()).collect();
            let logits = self.lm.forward_batch(&mut cache, &refs)?;
            model += t.elapsed();
            for (i, &r) in live.iter().enumerate() {
                rows[i * v..(i + 1) * v].copy_from_slice(&logits[r]);
            }
        }
        for (r, g) in out.iter_mut().enumerate() {
            g.text = self.decode(&g.tokens)?;
            g.model = model;
            g.processor = proc;
            processor.end(r as u64 + 1)?;
        }
        Ok(out)
    }
}

/// A processor for `engine`'s vocabulary from a preset name or JSON configuration.
pub fn processor_for(engine: &Engine, config_json: &str) -> Result<GravityProcessor> {
    GravityProcessor::new(Config::from_json(config_json)?, engine.lm.info().vocab)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chatml_rendering() {
        let t = "{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are SmolLM.<|im_end|>\n' }}{% endif %}";
        let got = render_chat(t, &[Message::new("user", "Hi")]);
        assert_eq!(
            got,
            "<|im_start|>system\nYou are SmolLM.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
        let own = render_chat(
            t,
            &[
                Message::new("system", "Be brief."),
                Message::new("user", "Hi"),
            ],
        );
        assert!(own.starts_with("<|im_start|>system\nBe brief.<|im_end|>"));
        // Qwen2.5's template: Jinja-escaped newlines, two expressions before its default.
        let qwen = "{%- if tools %}{{- '<|im_start|>system\\n' }}{%- if messages[0]['role'] == 'system' %}\
            {{- messages[0]['content'] }}{%- else %}{{- 'You are Qwen.' }}{%- endif %}{%- else %}\
            {%- if messages[0]['role'] == 'system' %}{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}\
            {%- else %}{{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\\n' }}";
        assert_eq!(
            render_chat(qwen, &[Message::new("user", "Hi")]),
            "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
        assert_eq!(
            render_chat("chatml", &[Message::new("user", "x")]),
            "<|im_start|>user\nx<|im_end|>\n<|im_start|>assistant\n"
        );
    }
}
