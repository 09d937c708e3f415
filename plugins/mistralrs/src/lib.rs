//! The gravity processor in [mistral.rs](https://crates.io/crates/mistralrs) 0.8.1, as a
//! per-request `CustomLogitsProcessor`:
//!
//! ```no_run
//! # async fn run(model: mistralrs::Model) -> anyhow::Result<()> {
//! use std::sync::Arc;
//! use infogravity::{Config, StepMode};
//! use infogravity_mistralrs::GravityLogits;
//! use mistralrs::{RequestBuilder, TextMessageRole};
//!
//! let g = Arc::new(GravityLogits::new(Config::preset("factual")?, StepMode::Sample, 42));
//! let request = RequestBuilder::new()
//!     .add_logits_processor(g.clone())
//!     .add_message(TextMessageRole::User, "What is the capital of France?");
//! let response = model.send_chat_request(request).await?;
//! for r in g.reports() { println!("{:.3} {:.2} {}", r.entropy, r.temperature, r.regime.name()); }
//! # Ok(()) }
//! ```
//!
//! How it maps (mistral.rs 0.8.1, `mistralrs-core/src/sampler.rs`): the processor is called once
//! per generated token of each of the request's sequences, with the full-vocabulary logits (a
//! 1-D f32 CPU tensor) after mistral.rs's penalties and before its temperature, top-k/p and
//! selection, and `context` = prompt + generated tokens. One `GravityLogits` serves one request
//! (all its choices share it): a call whose context extends a live sequence's last context by one
//! token accepts that token; a call with the same context steps the same position again (a
//! grammar rejection; steps are provisional); any other context begins a new sequence whose
//! query is the context (the prompt).
//!
//! `StepMode::Sample`: the processor selects and the returned logits are −inf everywhere but the
//! chosen token, so mistral.rs emits it whatever its own sampling. `StepMode::Logits`: the
//! returned logits are the final z′/T (−inf where truncated), and mistral.rs's temperature must
//! then be 1 (`set_sampler_temperature(1.0)`), or 0 for argmax.
//!
//! Cost per token beyond the processor's step: mistral.rs hands the row over as a tensor, so
//! it is copied out once and back once (V floats each way), as mistral.rs's own sampler does.
//! Memory: per live sequence the processor's state plus its last context (4 bytes a token).

use std::sync::Mutex;

use candle_core::{Device, Tensor};
use infogravity::{Config, GravityProcessor, SeqParams, StepMode, StepReport};
use mistralrs::CustomLogitsProcessor;

/// The gravity processor for one mistral.rs request (see the crate docs).
pub struct GravityLogits {
    state: Mutex<State>,
}

struct State {
    config: Config,
    mode: StepMode,
    seed: u64,
    eos: Option<u32>,
    /// Made at the first call, when the vocabulary size is known.
    processor: Option<GravityProcessor>,
    live: Vec<Live>,
    next: u64,
    reports: Vec<StepReport>,
}

struct Live {
    seq: u64,
    /// The context of this sequence's last step.
    context: Vec<u32>,
}

fn err(e: infogravity::Error) -> candle_core::Error {
    candle_core::Error::Msg(format!("infogravity: {e}"))
}

impl GravityLogits {
    /// A processor with `config`, selecting (`StepMode::Sample`) or writing the final logits
    /// (`StepMode::Logits`); sequence k of the request samples with seed `seed + k`.
    pub fn new(config: Config, mode: StepMode, seed: u64) -> Self {
        GravityLogits {
            state: Mutex::new(State {
                config,
                mode,
                seed,
                eos: None,
                processor: None,
                live: Vec::new(),
                next: 0,
                reports: Vec::new(),
            }),
        }
    }

    /// What a sequence that abstains emits after its abstention text (mistral.rs then ends it
    /// as at any end of sequence); without it, the sequence runs on after its text.
    pub fn with_eos(self, eos: u32) -> Self {
        self.lock().eos = Some(eos);
        self
    }

    /// Every step report so far, in call order (`StepReport::seq` tells the sequences apart).
    pub fn reports(&self) -> Vec<StepReport> {
        self.lock().reports.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl State {
    /// The sequence this context belongs to, after accepting its newest token; a new sequence
    /// when it continues none.
    fn sequence(&mut self, vocab: usize, context: &[u32]) -> infogravity::Result<u64> {
        if self.processor.is_none() {
            self.processor = Some(GravityProcessor::new(self.config.clone(), vocab)?);
        }
        let p = self.processor.as_mut().expect("made above");
        if let Some(l) = self.live.iter_mut().find(|l| l.context == context) {
            return Ok(l.seq); // the same position again
        }
        if let Some((last, head)) = context.split_last()
            && let Some(l) = self.live.iter_mut().find(|l| l.context == head)
        {
            p.accept(l.seq, *last)?;
            l.context.push(*last);
            return Ok(l.seq);
        }
        let seq = self.next;
        self.next += 1;
        p.begin(
            seq,
            &SeqParams {
                seed: self.seed.wrapping_add(seq),
                context,
                query: infogravity::QueryInput {
                    query_tokens: Some(context),
                    ..Default::default()
                },
                ..Default::default()
            },
        )?;
        self.live.push(Live {
            seq,
            context: context.to_vec(),
        });
        Ok(seq)
    }
}

impl CustomLogitsProcessor for GravityLogits {
    fn apply(&self, logits: &Tensor, context: &[u32]) -> candle_core::Result<Tensor> {
        let mut row: Vec<f32> = logits
            .flatten_all()?
            .to_dtype(candle_core::DType::F32)?
            .to_vec1()?;
        let mut st = self.lock();
        let seq = st.sequence(row.len(), context).map_err(err)?;
        let mode = st.mode;
        let p = st.processor.as_mut().expect("made by sequence()");
        let r = p.step(seq, &mut row, mode).map_err(err)?;
        let eos = if r.stop { st.eos } else { None };
        if let Some(t) = r.token.or(eos) {
            // The processor's choice (Sample mode, or a forced token): the only finite logit.
            row.fill(f32::NEG_INFINITY);
            row[t as usize] = 0.0;
        }
        st.reports.push(r);
        let n = row.len();
        Tensor::from_vec(row, n, &Device::Cpu)?
            .to_dtype(logits.dtype())?
            .reshape(logits.shape())?
            .to_device(logits.device())
    }
}
