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
use crate::error::{Error, Result};
use crate::processor::{GravityProcessor, SeqParams, StepMode, StepReport};
use crate::{Config, QueryInput};

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

/// The default system message inside a ChatML Jinja template, if it has one.
fn default_system(template: &str) -> Option<String> {
    let start = "<|im_start|>system\n";
    let i = template.find(start)? + start.len();
    let rest = &template[i..];
    let end = rest.find("<|im_end|>")?;
    Some(rest[..end].to_string())
}

/// Render `messages` with the model's ChatML template, ending with the assistant prompt.
pub fn render_chat(template: &str, messages: &[Message]) -> String {
    let mut s = String::new();
    if messages.first().is_none_or(|m| m.role != "system") {
        if let Some(sys) = default_system(template) {
            s.push_str(&format!("<|im_start|>system\n{sys}<|im_end|>\n"));
        }
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
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions {
            max_tokens: 128,
            seed: 0,
            anchors: vec![],
        }
    }
}

/// What a generation produced.
#[derive(Debug, Clone)]
pub struct Generation {
    pub text: String,
    pub tokens: Vec<u32>,
    pub reports: Vec<StepReport>,
    pub prompt_tokens: usize,
    /// Why it stopped: "eos", "max_tokens", "abstain", "context".
    pub stop: &'static str,
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

    /// Generate a reply to `messages` with `processor` (whose vocabulary must be the model's),
    /// calling `on_token(text_piece, report)` as each token is accepted.
    pub fn generate(
        &mut self,
        processor: &mut GravityProcessor,
        messages: &[Message],
        opts: &GenerateOptions,
        mut on_token: impl FnMut(&str, &StepReport),
    ) -> Result<Generation> {
        let v = self.lm.info().vocab;
        if processor.vocab() != v {
            return Err(Error::SizeMismatch {
                what: "processor vocabulary",
                expected: v,
                got: processor.vocab(),
            });
        }
        let prompt = self.encode(&render_chat(&self.lm.info().chat_template, messages))?;
        let t0 = std::time::Instant::now();
        let (logits, mut cache) = self.prefill(&prompt)?;
        let prefill = t0.elapsed();
        let mut anchors = vec![];
        for a in &opts.anchors {
            anchors.extend(self.encode(a)?);
        }
        anchors.sort_unstable();
        anchors.dedup();
        let seq = 1;
        let _ = processor.end(seq);
        // The last prompt row is the first answer position: H(Q) comes from the prompt logits.
        processor.begin(
            seq,
            &SeqParams {
                seed: opts.seed,
                anchors: &anchors,
                query: QueryInput {
                    prompt_logits: Some(&logits),
                    ..Default::default()
                },
            },
        )?;
        let mut row = logits[logits.len() - v..].to_vec();
        let eos = self.lm.info().eos_token_id;
        let mut out = Generation {
            text: String::new(),
            tokens: vec![],
            reports: vec![],
            prompt_tokens: prompt.len(),
            stop: "max_tokens",
            prefill,
            model: std::time::Duration::ZERO,
            processor: std::time::Duration::ZERO,
        };
        let mut shown = 0;
        for _ in 0..opts.max_tokens {
            let t = std::time::Instant::now();
            let r = processor.step(seq, &mut row, StepMode::Sample)?;
            if r.stop {
                out.stop = "abstain";
                break;
            }
            let tok = r.token.expect("Sample mode selects a token");
            processor.accept(seq, tok)?;
            out.processor += t.elapsed();
            out.reports.push(r);
            if tok == eos {
                out.stop = "eos";
                break;
            }
            out.tokens.push(tok);
            // Stream whole characters: decode the tail and print what is new.
            let text = self.decode(&out.tokens)?;
            if !text.ends_with('\u{fffd}') {
                on_token(&text[shown.min(text.len())..], &r);
                shown = text.len();
            }
            if cache.len() + 1 > self.lm.info().context {
                out.stop = "context";
                break;
            }
            let t = std::time::Instant::now();
            row = self.lm.forward(&mut cache, &[tok])?;
            out.model += t.elapsed();
        }
        out.text = self.decode(&out.tokens)?;
        processor.end(seq)?;
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
        assert_eq!(
            render_chat("chatml", &[Message::new("user", "x")]),
            "<|im_start|>user\nx<|im_end|>\n<|im_start|>assistant\n"
        );
    }
}
