//! A Rust engine with the gravity processor in its loop: candle's quantized llama
//! (`candle_transformers::models::quantized_llama`) runs a GGUF on the CPU, and at every step
//! the last position's logits go through [`GravityProcessor`] — the same processor, presets
//! and step reports as `infogravity generate`, here without ONNX Runtime.
//!
//! Two ways to put the processor in the loop ([`Select`]): it selects the token itself
//! (`StepMode::Sample`, seeded), or it writes the final logits (`StepMode::Logits`: z′/T,
//! −inf below the cut) and candle's own `LogitsProcessor` selects from them — the shape of a
//! host that keeps its sampler. With the `neutral` preset at T = 0 both give exactly candle's
//! greedy tokens (tests/greedy.rs).

use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file;
use candle_core::{Device, Tensor};
use candle_transformers::generation::LogitsProcessor;
use candle_transformers::models::quantized_llama::ModelWeights;
use infogravity::processor::{GravityProcessor, SeqParams, StepMode};
use infogravity::{QueryInput, StepReport};

/// Errors of this example: candle's, the tokenizer's, the processor's, I/O.
pub type Error = Box<dyn std::error::Error + Send + Sync>;
pub type Result<T> = std::result::Result<T, Error>;

/// Where `scripts/setup-engine.sh` keeps its files: `$INFOGRAVITY_HOME`, else
/// `$XDG_CACHE_HOME/infogravity`, else `~/.cache/infogravity` (the rule of
/// `infogravity_engine::cache_dir`, which this example does not link).
pub fn cache_dir() -> PathBuf {
    if let Some(h) = std::env::var_os("INFOGRAVITY_HOME") {
        return PathBuf::from(h);
    }
    if let Some(x) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(x).join("infogravity");
    }
    let home = std::env::var_os("HOME").map(PathBuf::from);
    home.unwrap_or_else(|| PathBuf::from("."))
        .join(".cache/infogravity")
}

/// The SmolLM2 GGUF and tokenizer `scripts/setup-engine.sh --real` provisions.
pub fn default_files() -> (PathBuf, PathBuf) {
    let c = cache_dir();
    (
        c.join("gguf/SmolLM2-135M-Instruct.Q4_1.gguf"),
        c.join("models/smollm2-135m-instruct/tokenizer.json"),
    )
}

/// A GGUF model on candle, its tokenizer and chat template.
pub struct Model {
    weights: ModelWeights,
    tokenizer: tokenizers::Tokenizer,
    device: Device,
    eos: u32,
    vocab: usize,
    /// The default system message of the GGUF's ChatML template, if it has one.
    system: Option<String>,
}

impl Model {
    /// Load a llama-architecture GGUF and a `tokenizer.json` whose vocabulary fits it.
    pub fn load(gguf: &Path, tokenizer: &Path) -> Result<Model> {
        let device = Device::Cpu;
        let mut file = std::fs::File::open(gguf).map_err(|e| format!("{}: {e}", gguf.display()))?;
        let content = gguf_file::Content::read(&mut file)
            .map_err(|e| format!("{}: not a GGUF file: {e}", gguf.display()))?;
        let md = |k: &str| content.metadata.get(k);
        let eos = md("tokenizer.ggml.eos_token_id")
            .and_then(|v| v.to_u32().ok())
            .ok_or_else(|| format!("{}: no tokenizer.ggml.eos_token_id", gguf.display()))?;
        // Rows of the output matrix (tied to the embedding when there is no output.weight).
        let vocab = ["output.weight", "token_embd.weight"]
            .iter()
            .find_map(|n| content.tensor_infos.get(*n))
            .map(|t| t.shape.dims()[0])
            .ok_or_else(|| format!("{}: no output or embedding matrix", gguf.display()))?;
        let template = md("tokenizer.chat_template").and_then(|v| v.to_string().ok());
        let system = template.and_then(|t| default_system(t));
        let weights = ModelWeights::from_gguf(content, &mut file, &device)
            .map_err(|e| format!("{}: {e}", gguf.display()))?;
        let tokenizer = tokenizers::Tokenizer::from_file(tokenizer)
            .map_err(|e| format!("{}: {e}", tokenizer.display()))?;
        Ok(Model {
            weights,
            tokenizer,
            device,
            eos,
            vocab,
            system,
        })
    }

    /// Logits per step (the output matrix's rows).
    pub fn vocab(&self) -> usize {
        self.vocab
    }

    /// The end-of-sequence token.
    pub fn eos(&self) -> u32 {
        self.eos
    }

    /// The ChatML prompt for `user` (system message: `system`, else the template's default).
    pub fn chat_prompt(&self, user: &str, system: Option<&str>) -> Result<Vec<u32>> {
        let mut text = String::new();
        if let Some(s) = system.or(self.system.as_deref()) {
            text.push_str(&format!("<|im_start|>system\n{s}<|im_end|>\n"));
        }
        text.push_str(&format!(
            "<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n"
        ));
        self.encode(&text)
    }

    /// Token ids of `text` (special tokens recognised, nothing added).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        Ok(self.tokenizer.encode(text, false)?.get_ids().to_vec())
    }

    /// Text of `ids` (special tokens skipped).
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.tokenizer.decode(ids, true)
    }

    /// The logits of the last position after feeding `tokens` at position `pos` (0 starts a
    /// new sequence: candle's cache is reset).
    pub fn forward(&mut self, tokens: &[u32], pos: usize) -> Result<Tensor> {
        let input = Tensor::new(tokens, &self.device)?.unsqueeze(0)?;
        Ok(self.weights.forward(&input, pos)?.squeeze(0)?)
    }
}

/// The default system message of a ChatML Jinja template: the first literal
/// `<|im_start|>system` block (the rule `infogravity generate` uses, engine/src/generate.rs).
fn default_system(template: &str) -> Option<String> {
    let start = "<|im_start|>system";
    let mut rest = template;
    while let Some(i) = rest.find(start) {
        rest = &rest[i + start.len()..];
        let Some(body) = rest.strip_prefix('\n').or_else(|| rest.strip_prefix("\\n")) else {
            continue;
        };
        let end = body.find("<|im_end|>")?;
        let text = &body[..end];
        if !text.contains(['\'', '"', '{', '}', '\\']) {
            return Some(text.to_string());
        }
    }
    None
}

/// Who selects the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Select {
    /// The processor (`StepMode::Sample`, seeded by the sequence's seed).
    Processor,
    /// candle's `LogitsProcessor`, sampling at temperature 1 from the logits the processor
    /// wrote (`StepMode::Logits`: already divided by the processor's T, −inf below its cut;
    /// at T = 0 only the chosen token is finite).
    Candle,
}

/// A generation: its tokens (the end-of-sequence token not included) and one report per step.
pub struct Generation {
    pub tokens: Vec<u32>,
    pub reports: Vec<StepReport>,
}

/// Generate from `prompt` with `processor` in the loop (sequence 1, seed `seed`), at most
/// `max_tokens` tokens, stopping at end of sequence or when the processor abstains.
pub fn generate(
    model: &mut Model,
    processor: &mut GravityProcessor,
    prompt: &[u32],
    max_tokens: usize,
    seed: u64,
    select: Select,
) -> Result<Generation> {
    let mut logits = model.forward(prompt, 0)?;
    let mut row: Vec<f32> = logits.to_vec1()?;
    if row.len() != processor.vocab() {
        return Err(format!(
            "the model has {} logits per step, the processor a vocabulary of {}",
            row.len(),
            processor.vocab()
        )
        .into());
    }
    let _ = processor.end(1);
    processor.begin(
        1,
        &SeqParams {
            seed,
            anchors: &[],
            query: QueryInput::default(),
            context: prompt,
        },
    )?;
    let mut candle_select = LogitsProcessor::new(seed, Some(1.0), None);
    let (mut tokens, mut reports) = (vec![], vec![]);
    for pos in prompt.len()..prompt.len() + max_tokens {
        let rep = match select {
            Select::Processor => processor.step(1, &mut row, StepMode::Sample)?,
            Select::Candle => processor.step(1, &mut row, StepMode::Logits)?,
        };
        if rep.stop {
            break;
        }
        let tok = match select {
            Select::Processor => rep.token.ok_or("Sample mode selects a token")?,
            Select::Candle => {
                logits = Tensor::new(row.as_slice(), &Device::Cpu)?;
                candle_select.sample(&logits)?
            }
        };
        processor.accept(1, tok)?;
        reports.push(StepReport {
            token: Some(tok),
            ..rep
        });
        if tok == model.eos() {
            break;
        }
        tokens.push(tok);
        row = model.forward(&[tok], pos)?.to_vec1()?;
    }
    processor.end(1)?;
    Ok(Generation { tokens, reports })
}

/// candle's own greedy decoding (its `LogitsProcessor` with no temperature: argmax), no
/// processor anywhere: the reference the gravity loop must equal with `neutral` at T = 0.
pub fn candle_greedy(model: &mut Model, prompt: &[u32], max_tokens: usize) -> Result<Vec<u32>> {
    let mut select = LogitsProcessor::new(0, None, None);
    let mut logits = model.forward(prompt, 0)?;
    let mut tokens = vec![];
    for pos in prompt.len()..prompt.len() + max_tokens {
        let tok = select.sample(&logits)?;
        if tok == model.eos() {
            break;
        }
        tokens.push(tok);
        logits = model.forward(&[tok], pos)?;
    }
    Ok(tokens)
}

/// The per-token table `infogravity generate` prints (the core's columns, then the
/// interventions).
pub fn diagnostics(model: &Model, reports: &[StepReport]) -> Result<String> {
    let mut out = format!("{}  interventions\n", infogravity::report::table_header());
    for (i, r) in reports.iter().enumerate() {
        let piece = match r.token {
            Some(t) => model.decode(&[t])?,
            None => String::new(),
        };
        out.push_str(&format!(
            "{}  {}\n",
            infogravity::report::table_cells(i, &piece, r),
            infogravity::flags::describe(r.flags, ","),
        ));
    }
    Ok(out)
}
