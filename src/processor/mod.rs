//! The processor: per-sequence state and the per-step pipeline (docs/DESIGN.md §1 "Pipeline
//! order").
//!
//! One step on one row, in this order (tested in `tests/pipeline.rs`; `step::decide` reads as
//! this list):
//! 1. the host's own processors (`push_pre`), editing the row;
//! 2. measure the field in one pass, before any truncation (a truncated list's entropy is
//!    biased), gathering the candidates; a NaN/+inf row is rejected here, untouched (`field`);
//! 3. score the regimes: void score, black-hole score, hysteresis (`policy`);
//! 4. interventions: abstention; the dense rewrites, each into a copy of the row — the
//!    null-query contrast where the host gave a row (`set_contrast`), then the concept tilt
//!    (`set_concept`); anchor bias (λ·v), escape penalties — sparse edits (`interventions`);
//! 5. temperature T_t (`policy`);
//! 6. truncation (min-p → top-k → top-p, as one cut τ) and
//! 7. [`StepMode::Sample`]: seeded selection, the row only read; [`StepMode::Logits`]: the row
//!    is overwritten with the final logits z'/T (−inf below τ) for the host to select from
//!    (`sampler`);
//! 8. the host calls [`GravityProcessor::accept`] with the token it emitted.
//!
//! Tokens accepted **before the first step** are the query (hosts such as llama-server prime
//! their sampler with the prompt): they join N(Q), and M(Q) is recomputed before that step.
//!
//! **Steps are provisional**: a step reads the sequence's state as of its last `accept` and
//! leaves a proposal; `accept` commits it. Stepping the same position twice with the same row
//! gives the same report and token as stepping it once.
//!
//! **Batches are atomic**: [`GravityProcessor::step_batch`] measures every row before it
//! decides any, so on an error no row is written and no sequence moves.
//!
//! Cost per step: one pass over the row, plus O(candidates + anchors + max_period); a second
//! pass only in the cases listed in [`crate::sampler`], and in `Logits` mode a write pass
//! unless T = 1 and nothing is truncated.
//!
//! Memory: per live sequence ~200 bytes + 4 bytes per history token and per anchor, with
//! `escape.rollback` = D another D·(4·max_period + 140) bytes, bounded by the limits in the
//! configuration; per worker thread 8 bytes × (max_candidates + anchors) plus
//! 8 bytes × V for the exact fallback, and for batches 8 bytes per candidate of its rows (at
//! most max_candidates each); 4 bytes × V per worker thread once a concept or a null-query row
//! is set, and per sequence given a null-query row. Nothing is allocated per step once the
//! buffers have grown.

mod batch;
mod rewind;
mod state;
mod step;

pub(crate) use batch::RawRow;

use std::collections::HashMap;

use half::{bf16, f16};

use crate::calibration::Calibration;
use crate::concept::Concept;
use crate::config::{AnswerWeights, Config, VoidWeights};
use crate::error::{Error, Result, try_reserve};
use crate::field::{Candidates, Logit};
use crate::mass::{self, Prior, QueryInput, QueryMass};
use crate::probe::Probe;
use crate::sampler::Truncation;

pub use crate::report::{AnswerStats, FirstContent, Regime, StepReport, flags};
pub use crate::sampler::StepMode;
pub use state::SeqState;
use step::Scratch;

/// The largest vocabulary a processor accepts (2^24 tokens; real models have ≤ 262,144).
pub const MAX_VOCAB: usize = 1 << 24;

/// A host-side logits processor: edits one row in place. Only `apply` is required.
///
/// Host processors run first in every step (pipeline step 1), on single rows and on every row
/// of a batch, for every element type (f16/bf16 rows are handed over as f32 and written back
/// rounded to the type, finite values saturating). They are the host's own processing: if one
/// fails, or a later stage rejects the row, the edits already made stay in the row.
pub trait LogitsProcessor: Send {
    /// Edit the logits of sequence `seq` for its next token.
    fn apply(&mut self, seq: u64, logits: &mut [f32]) -> Result<()>;
    /// The token `seq` emitted.
    fn accept(&mut self, _seq: u64, _token: u32) -> Result<()> {
        Ok(())
    }
    /// Forget `seq`.
    fn reset(&mut self, _seq: u64) {}
    /// `seq` begins; `context` is the token history the host gave at `begin`
    /// ([`SeqParams::context`]: the prompt, for processors such as DRY that look back over
    /// it). The default forgets `seq`.
    fn begin(&mut self, seq: u64, _context: &[u32]) {
        self.reset(seq)
    }
    /// `dst` starts as a copy of `src` (see [`GravityProcessor::fork`]).
    fn fork(&mut self, _src: u64, _dst: u64) {}
    /// Whether [`rollback`](Self::rollback) works: a processor that keeps per-token state must
    /// be able to drop its last tokens for its host to rewind. The default: no.
    fn can_rollback(&self) -> bool {
        false
    }
    /// Forget the last `n` tokens `seq` accepted (see [`GravityProcessor::rollback`]); called
    /// only when [`can_rollback`](Self::can_rollback) is true.
    fn rollback(&mut self, _seq: u64, _n: u32) -> Result<()> {
        Ok(())
    }
}

/// Per-sequence inputs at `begin`.
#[derive(Debug, Clone, Copy, Default)]
pub struct SeqParams<'a> {
    /// Seed of the sequence's sampling stream.
    pub seed: u64,
    /// Anchor tokens of this sequence (added to the configured ones).
    pub anchors: &'a [u32],
    /// What is known of the query, for M(Q).
    pub query: QueryInput<'a>,
    /// The tokens before the first step (the whole prompt), handed to the host processors'
    /// [`LogitsProcessor::begin`]; the gravity processor itself does not read it.
    pub context: &'a [u32],
}

/// A row of logits in any supported element type.
pub enum LogitsMut<'a> {
    F32(&'a mut [f32]),
    F16(&'a mut [f16]),
    BF16(&'a mut [bf16]),
}

impl LogitsMut<'_> {
    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            LogitsMut::F32(r) => r.len(),
            LogitsMut::F16(r) => r.len(),
            LogitsMut::BF16(r) => r.len(),
        }
    }
    /// No elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What steps read and never write.
struct Core {
    cfg: Config,
    vocab: usize,
    weights: VoidWeights,
    /// The answer-level void's weights (`answer` section, or the calibration's).
    answer: AnswerWeights,
    window: f32,
    trunc: Truncation,
    /// Which tokens are content (for the answer aggregates' first content token).
    content: Option<ContentTable>,
    /// The concept every sequence without its own is tilted toward.
    concept: Option<Concept>,
    /// The hidden-state probe read at every step.
    probe: Option<Probe>,
}

/// Which tokens of a vocabulary carry content (words, names, numbers) rather than function
/// words, whitespace or punctuation: one bit per token (V/8 bytes per processor), built once
/// from the tokenizer by the host (`infogravity_engine::content_table` for the reference
/// engine; `infogravity.content_table` in Python) and read at every accepted token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentTable {
    bits: Box<[u64]>,
    len: usize,
}

/// English closed-class words, lowercase: articles, pronouns, prepositions, conjunctions,
/// auxiliaries and the commonest adverbs of degree. Written here rather than taken from a
/// stop-word crate: those lists are topic-level and also drop content words ("first",
/// "world") the answer-level void must see.
const FUNCTION_WORDS: &[&str] = &[
    "a", "an", "the", "this", "that", "these", "those", "some", "any", "each", "every", "no", "i",
    "me", "my", "we", "us", "our", "you", "your", "he", "him", "his", "she", "her", "it", "its",
    "they", "them", "their", "who", "whom", "whose", "which", "what", "there", "here", "of", "in",
    "on", "at", "to", "from", "by", "with", "for", "as", "into", "onto", "about", "over", "under",
    "between", "through", "during", "within", "without", "near", "off", "up", "and", "or", "but",
    "nor", "so", "yet", "if", "than", "then", "because", "while", "though", "is", "are", "was",
    "were", "be", "been", "being", "am", "do", "does", "did", "has", "have", "had", "will",
    "would", "shall", "should", "can", "could", "may", "might", "must", "not", "also", "very",
    "too", "just", "only", "s",
];

/// Does a decoded token piece carry content? It must hold a letter or digit, and its word
/// (letters and digits only, lowercased) must not be a function word.
pub fn is_content_piece(piece: &str) -> bool {
    let word: String = piece
        .chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect();
    !word.is_empty() && !FUNCTION_WORDS.contains(&word.as_str())
}

impl ContentTable {
    /// From one flag per token.
    pub fn from_bools(content: &[bool]) -> ContentTable {
        let mut bits = vec![0u64; content.len().div_ceil(64)].into_boxed_slice();
        for (i, _) in content.iter().enumerate().filter(|(_, c)| **c) {
            bits[i / 64] |= 1 << (i % 64);
        }
        ContentTable {
            bits,
            len: content.len(),
        }
    }

    /// From one byte per token (non-zero = content), as the C API takes it.
    pub fn from_bytes(content: &[u8]) -> ContentTable {
        let mut bits = vec![0u64; content.len().div_ceil(64)].into_boxed_slice();
        for (i, _) in content.iter().enumerate().filter(|(_, c)| **c != 0) {
            bits[i / 64] |= 1 << (i % 64);
        }
        ContentTable {
            bits,
            len: content.len(),
        }
    }

    /// From the decoded text of every token (one piece per token id, in order), each judged
    /// by [`is_content_piece`].
    pub fn from_pieces<S: AsRef<str>>(pieces: impl IntoIterator<Item = S>) -> ContentTable {
        let flags: Vec<bool> = pieces
            .into_iter()
            .map(|p| is_content_piece(p.as_ref()))
            .collect();
        ContentTable::from_bools(&flags)
    }

    /// Tokens covered.
    pub fn len(&self) -> usize {
        self.len
    }

    /// No token covered.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Is `token` content? (Out of range: no.)
    pub fn is_content(&self, token: u32) -> bool {
        let i = token as usize;
        i < self.len && self.bits[i / 64] >> (i % 64) & 1 == 1
    }
}

/// The live sequences: slots, the id → slot index, free slots, and the batch bookkeeping.
#[derive(Default)]
struct SeqTable {
    seqs: Vec<SeqState>,
    index: HashMap<u64, usize>,
    free: Vec<usize>,
    /// The slots of the current batch's rows, and its epoch mark (duplicate detection).
    batch: Vec<usize>,
    epoch: u64,
    /// Counts step calls (single or batch) on the processor: what `sweep` measures idleness in.
    clock: u64,
}

impl SeqTable {
    fn slot(&self, seq: u64) -> Result<usize> {
        self.index
            .get(&seq)
            .copied()
            .ok_or(Error::UnknownSequence(seq))
    }

    /// Look up every id of a batch (into `self.batch`), rejecting unknown and repeated ids.
    fn claim(&mut self, seqs: &[u64]) -> Result<()> {
        self.epoch += 1;
        self.batch.clear();
        for &id in seqs {
            let slot = self.slot(id)?;
            let st = &mut self.seqs[slot];
            if st.batch_epoch == self.epoch {
                return Err(Error::DuplicateSequence(id));
            }
            st.batch_epoch = self.epoch;
            self.batch.push(slot);
        }
        self.clock += 1;
        for &slot in &self.batch {
            self.seqs[slot].touched = self.clock;
        }
        Ok(())
    }

    /// A free slot for a new state.
    fn insert(&mut self, st: SeqState) {
        let id = st.id;
        let slot = match self.free.pop() {
            Some(i) => {
                self.seqs[i] = st;
                i
            }
            None => {
                self.seqs.push(st);
                self.seqs.len() - 1
            }
        };
        self.index.insert(id, slot);
    }

    /// Room for one more live sequence?
    fn check_new(&self, seq: u64, limit: usize) -> Result<()> {
        if self.index.contains_key(&seq) {
            return Err(Error::DuplicateSequence(seq));
        }
        if self.index.len() >= limit {
            return Err(Error::TooManySequences { limit });
        }
        Ok(())
    }
}

/// The gravity processor: configuration, loaded Prior/calibration, and live sequences.
///
/// Not `Sync`: calls on one processor must not overlap (it is `Send`: it may move between
/// threads). Batches may use its own worker pool (`limits.threads`).
pub struct GravityProcessor {
    core: Core,
    prior: Option<Prior>,
    calib: Option<Calibration>,
    /// Running statistics of M(Q)'s components (`mass.scale = auto`).
    running: mass::RunningMass,
    table: SeqTable,
    workers: Vec<Scratch>,
    pool: Option<rayon::ThreadPool>,
    pre: Vec<Box<dyn LogitsProcessor>>,
    /// f16/bf16 rows as f32 for the host processors (V floats once one is pushed).
    pre_row: Vec<f32>,
    sort_scratch: Vec<u32>,
    base_anchors: Vec<u32>,
}

impl GravityProcessor {
    /// A processor for vocabulary size `vocab` (1 ..= [`MAX_VOCAB`]). Its buffers are reserved
    /// here: an allocation that fails is [`Error::OutOfMemory`], never an abort.
    pub fn new(cfg: Config, vocab: usize) -> Result<GravityProcessor> {
        cfg.validate()?;
        if vocab == 0 || vocab > MAX_VOCAB {
            return Err(Error::InvalidArgument(format!(
                "vocabulary size must be in [1, {MAX_VOCAB}], got {vocab}"
            )));
        }
        cfg.check_tokens(vocab)?;
        let s = &cfg.sampler;
        let window = if s.window > 0.0 {
            s.window
        } else if s.min_p > 0.0 {
            // min-p at T ≤ T_max keeps z ≥ max + T·ln(min_p) ≥ max − T_max·ln(1/min_p): the
            // whole kept set is inside this window (plus a hair for rounding).
            (cfg.temperature.max * (1.0 / s.min_p).ln() * 1.001 + 1e-3).min(64.0)
        } else {
            10.0
        };
        let trunc = Truncation {
            min_p: s.min_p,
            nsigma_width: f32::INFINITY,
            top_k: s.top_k,
            top_p: s.top_p,
        };
        let mut base_anchors = cfg.anchor.tokens.clone();
        if cfg.anchor.use_task_space {
            base_anchors.extend_from_slice(&cfg.task_space.tokens);
        }
        base_anchors.sort_unstable();
        base_anchors.dedup();
        if base_anchors.len() > cfg.limits.max_anchors as usize {
            return Err(Error::ConfigOutOfRange {
                key: "anchor.tokens".into(),
                msg: "with the task space, more than limits.max_anchors".into(),
            });
        }
        let threads = match cfg.limits.threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n as usize,
        };
        let pool = if threads > 1 {
            Some(
                rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .thread_name(|i| format!("infogravity-{i}"))
                    .build()
                    .map_err(|e| Error::InvalidArgument(format!("thread pool: {e}")))?,
            )
        } else {
            None
        };
        let weights = cfg.void.weights.clone();
        let answer = cfg.answer.clone();
        let core = Core {
            cfg,
            vocab,
            weights,
            answer,
            window: window.min(64.0),
            trunc,
            content: None,
            concept: None,
            probe: None,
        };
        let workers = (0..threads)
            .map(|_| new_scratch(&core))
            .collect::<Result<Vec<_>>>()?;
        Ok(GravityProcessor {
            core,
            prior: None,
            calib: None,
            running: mass::RunningMass::default(),
            table: SeqTable::default(),
            workers,
            pool,
            pre: Vec::new(),
            pre_row: Vec::new(),
            sort_scratch: Vec::new(),
            base_anchors,
        })
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.core.cfg
    }
    /// Vocabulary size.
    pub fn vocab(&self) -> usize {
        self.core.vocab
    }
    /// Live sequences.
    pub fn live(&self) -> usize {
        self.table.index.len()
    }
    /// Candidate window in nats (see `sampler.window`).
    pub fn window(&self) -> f32 {
        self.core.window
    }

    /// Load (or clear) the Prior used for N(Q). Its vocabulary must match.
    pub fn set_prior(&mut self, prior: Option<Prior>) -> Result<()> {
        if let Some(p) = &prior {
            if p.vocab() != self.core.vocab {
                return Err(Error::SizeMismatch {
                    what: "prior vocabulary",
                    expected: self.core.vocab,
                    got: p.vocab(),
                });
            }
        }
        self.prior = prior;
        Ok(())
    }

    /// Set (or clear) the content table the answer aggregates use for their first content
    /// token; it must cover the vocabulary. Without one every token is content. Applies to the
    /// tokens accepted from now on.
    pub fn set_content_tokens(&mut self, table: Option<ContentTable>) -> Result<()> {
        if let Some(t) = &table {
            if t.len() != self.core.vocab {
                return Err(Error::SizeMismatch {
                    what: "content table",
                    expected: self.core.vocab,
                    got: t.len(),
                });
            }
        }
        self.core.content = table;
        Ok(())
    }

    /// Set (or clear) the hidden-state probe read at every step ([`Probe`]: a linear function
    /// of the raw logits; each report carries its value, the answer aggregates its first value
    /// and mean). It must be fitted for this vocabulary. Applies from the next step; |terms|
    /// multiply-adds per step.
    pub fn set_probe(&mut self, probe: Option<Probe>) -> Result<()> {
        if let Some(p) = &probe {
            if p.vocab() != self.core.vocab {
                return Err(Error::SizeMismatch {
                    what: "probe vocabulary",
                    expected: self.core.vocab,
                    got: p.vocab(),
                });
            }
        }
        self.core.probe = probe;
        Ok(())
    }

    /// The answer-level aggregates of a live sequence: over its tokens accepted so far (what
    /// the next step's report carries; read it before `end`).
    pub fn answer(&self, seq: u64) -> Result<AnswerStats> {
        Ok(self.table.seqs[self.table.slot(seq)?]
            .answer
            .stats(&self.core.answer))
    }

    /// Set (or clear) the concept every sequence is tilted toward (`concept` section; a
    /// sequence's own, [`set_sequence_concept`](Self::set_sequence_concept), takes precedence).
    /// It must cover the vocabulary. Reserves 4 bytes × V per worker thread on first use.
    pub fn set_concept(&mut self, concept: Option<Concept>) -> Result<()> {
        self.check_concept(concept.as_ref())?;
        self.core.concept = concept;
        Ok(())
    }

    /// Set (or clear) the concept of one live sequence; cleared, it follows the processor's
    /// ([`set_concept`](Self::set_concept)). Kept by `reset` and copied by `fork`.
    pub fn set_sequence_concept(&mut self, seq: u64, concept: Option<Concept>) -> Result<()> {
        let slot = self.table.slot(seq)?;
        self.check_concept(concept.as_ref())?;
        self.table.seqs[slot].concept = concept;
        Ok(())
    }

    /// The vocabulary check and the workers' tilted-row buffers, before a concept is stored.
    fn check_concept(&mut self, concept: Option<&Concept>) -> Result<()> {
        let Some(c) = concept else { return Ok(()) };
        if c.len() != self.core.vocab {
            return Err(Error::SizeMismatch {
                what: "concept bias",
                expected: self.core.vocab,
                got: c.len(),
            });
        }
        for w in &mut self.workers {
            try_reserve(&mut w.tilted, self.core.vocab, "tilted row (4 bytes × V)")?;
        }
        Ok(())
    }

    /// Give the logits of `seq`'s next step under a content-free query, for the null-query
    /// contrast (`contrast` section; domain-conditional PMI, see `crate::contrast`): the host
    /// runs a second sequence on the same prompt with its content removed (the subject replaced
    /// by "N/A"), feeds it the same tokens, and passes its row here before stepping `seq`. The
    /// step at this position (stepped again too: a grammar rejection, a verify) reorders the
    /// tokens within `contrast.plausibility` of its best by log p − β·log q — under
    /// `contrast.prior_top_only` (the default) only where its best token is also the null
    /// row's; accepting a token, a rewind or a reset drops the row. Under
    /// `contrast.until_content` (the default) a row given after the sequence's first content
    /// token is not used. The row must hold V values; NaN, +inf or every token masked is
    /// refused, and on error nothing changes. Reserves 4 bytes × V for the sequence on first
    /// use and per worker thread.
    pub fn set_contrast<E: Logit>(&mut self, seq: u64, row: &[E]) -> Result<()> {
        let slot = self.table.slot(seq)?;
        let v = self.core.vocab;
        if row.len() != v {
            return Err(Error::SizeMismatch {
                what: "null-query row",
                expected: v,
                got: row.len(),
            });
        }
        for w in &mut self.workers {
            if w.contrasted.capacity() < v {
                try_reserve(&mut w.contrasted, v, "contrasted row (4 bytes × V)")?;
            }
        }
        let st = &mut self.table.seqs[slot];
        st.touched = self.table.clock;
        st.contrast.set(row)
    }

    /// Load (or clear) a calibration: fitted void and answer-level void weights and M(Q)
    /// standardisation (a section the calibration lacks keeps the configuration's).
    pub fn set_calibration(&mut self, calib: Option<Calibration>) {
        self.core.weights = calib
            .as_ref()
            .and_then(|c| c.void.clone())
            .unwrap_or_else(|| self.core.cfg.void.weights.clone());
        self.core.answer = calib
            .as_ref()
            .and_then(|c| c.answer.clone())
            .unwrap_or_else(|| self.core.cfg.answer.clone());
        self.calib = calib;
    }

    /// Add a host processor that runs before the measurement (pipeline step 1).
    pub fn push_pre(&mut self, p: Box<dyn LogitsProcessor>) {
        if self.pre_row.is_empty() {
            // Needed only for f16/bf16 rows; reserved here so steps never allocate.
            self.pre_row = vec![0.0; self.core.vocab];
        }
        self.pre.push(p);
    }

    /// Start sequence `seq`: compute M(Q), set its seed and anchors. Tokens accepted before
    /// its first step join its query (see [`accept`](Self::accept)).
    pub fn begin(&mut self, seq: u64, params: &SeqParams<'_>) -> Result<QueryMass> {
        let limits = &self.core.cfg.limits;
        self.table.check_new(seq, limits.max_sequences as usize)?;
        let v = self.core.vocab;
        let max_anchors = limits.max_anchors as usize;
        if params.anchors.len() > max_anchors {
            return Err(Error::InvalidArgument(format!(
                "{} anchors exceed limits.max_anchors = {max_anchors}",
                params.anchors.len()
            )));
        }
        if let Some(&id) = params.anchors.iter().find(|&&id| id as usize >= v) {
            return Err(Error::TokenOutOfRange {
                what: "anchor token",
                id: id as u64,
                vocab: v,
            });
        }
        let keep = limits.max_query_tokens as usize;
        let mut input = params.query;
        input.query_tokens = input.query_tokens.map(|q| &q[..q.len().min(keep)]);
        let stats = mass::standards(&self.core.cfg.mass, self.calib.as_ref(), &self.running);
        let mass = mass::compute(
            &input,
            v,
            &self.core.cfg.mass,
            self.prior.as_ref(),
            stats.as_ref(),
            &mut self.sort_scratch,
        )?;
        let mut anchors = self.base_anchors.clone();
        anchors.extend_from_slice(params.anchors);
        anchors.sort_unstable();
        anchors.dedup();
        if anchors.len() > max_anchors {
            return Err(Error::InvalidArgument(format!(
                "{} anchors exceed limits.max_anchors = {max_anchors}",
                anchors.len()
            )));
        }
        let query = input.query_tokens.unwrap_or(&[]).to_vec();
        let mut st = SeqState::new(seq, params.seed, anchors, mass, query, &self.core.cfg);
        st.touched = self.table.clock;
        self.table.insert(st);
        for p in &mut self.pre {
            p.begin(seq, params.context);
        }
        Ok(mass)
    }

    /// Start `dst` as a copy of `src` in every respect (position, regimes, sampling stream,
    /// loop history, query, a pending step): llama.cpp's sampler `clone`, speculative
    /// decoding, beam search. The two then evolve independently.
    pub fn fork(&mut self, src: u64, dst: u64) -> Result<()> {
        let slot = self.table.slot(src)?;
        self.table
            .check_new(dst, self.core.cfg.limits.max_sequences as usize)?;
        let mut st = self.table.seqs[slot].clone();
        st.id = dst;
        st.batch_epoch = 0;
        // The same query: counted once, by its source.
        st.mass_counted = true;
        self.table.insert(st);
        for p in &mut self.pre {
            p.fork(src, dst);
        }
        Ok(())
    }

    /// Recompute N(Q) and M(Q) for sequences whose query grew since `begin` (tokens accepted
    /// before the first step). Once per sequence, before its first step.
    fn fold_queries(&mut self, seqs: &[u64]) -> Result<()> {
        for &id in seqs {
            let slot = self.table.slot(id)?;
            let st = &mut self.table.seqs[slot];
            if st.query_pending {
                st.query_pending = false;
                if let (Some(p), false) = (&self.prior, st.query.is_empty()) {
                    let s = self.core.cfg.mass.prior_smoothing as f64;
                    st.mass.n_kl = Some(p.novelty_kl(&st.query, s, &mut self.sort_scratch)? as f32);
                }
                let cfg = &self.core.cfg.mass;
                let stats = mass::standards(cfg, self.calib.as_ref(), &self.running);
                st.mass = mass::with_mass(st.mass, cfg, stats.as_ref());
            }
            // The query is complete at its first step: count it into the running statistics
            // (once: reset and fork keep the mark).
            if !st.mass_counted {
                st.mass_counted = true;
                self.running.push(&st.mass);
            }
        }
        Ok(())
    }

    /// The query mass computed at `begin`.
    pub fn mass(&self, seq: u64) -> Result<QueryMass> {
        Ok(self.table.seqs[self.table.slot(seq)?].mass)
    }

    /// One step on one row of f32 logits (see the module docs for the order).
    pub fn step(&mut self, seq: u64, row: &mut [f32], mode: StepMode) -> Result<StepReport> {
        self.step_row(seq, LogitsMut::F32(row), mode)
    }

    /// One step on one row of any element type.
    pub fn step_row(&mut self, seq: u64, row: LogitsMut<'_>, mode: StepMode) -> Result<StepReport> {
        match row {
            LogitsMut::F32(r) => self.step_typed(seq, r, mode),
            LogitsMut::F16(r) => self.step_typed(seq, r, mode),
            LogitsMut::BF16(r) => self.step_typed(seq, r, mode),
        }
    }

    fn step_typed<E: Logit>(
        &mut self,
        seq: u64,
        row: &mut [E],
        mode: StepMode,
    ) -> Result<StepReport> {
        let slot = self.table.slot(seq)?;
        if row.len() != self.core.vocab {
            return Err(Error::SizeMismatch {
                what: "logits row",
                expected: self.core.vocab,
                got: row.len(),
            });
        }
        self.fold_queries(&[seq])?;
        self.run_pre(seq, row)?;
        self.table.clock += 1;
        let st = &mut self.table.seqs[slot];
        st.touched = self.table.clock;
        step::step_one(&self.core, st, &mut self.workers[0], row, mode)
    }

    /// Pipeline step 1 on one row.
    pub(super) fn run_pre<E: Logit>(&mut self, seq: u64, row: &mut [E]) -> Result<()> {
        if self.pre.is_empty() {
            return Ok(());
        }
        if let Some(r) = E::as_f32_slice_mut(row) {
            for p in &mut self.pre {
                p.apply(seq, r)?;
            }
            return Ok(());
        }
        let buf = &mut self.pre_row[..row.len()];
        E::to_f32_block(row, buf);
        let applied = self.pre.iter_mut().try_for_each(|p| p.apply(seq, buf));
        for (e, &z) in row.iter_mut().zip(buf.iter()) {
            *e = if z.is_finite() {
                E::from_f32_finite(z)
            } else {
                E::from_f32(z)
            };
        }
        applied
    }

    /// The host emitted `token` for `seq`: commits the last step's proposal, feeds the loop
    /// detector and the surprisal trend.
    pub fn accept(&mut self, seq: u64, token: u32) -> Result<()> {
        let slot = self.table.slot(seq)?;
        if token as usize >= self.core.vocab {
            return Err(Error::TokenOutOfRange {
                what: "accepted token",
                id: token as u64,
                vocab: self.core.vocab,
            });
        }
        let st = &mut self.table.seqs[slot];
        st.touched = self.table.clock;
        let content = self
            .core
            .content
            .as_ref()
            .is_none_or(|t| t.is_content(token));
        st.accept(token, content, &self.core.cfg);
        for p in &mut self.pre {
            p.accept(seq, token)?;
        }
        Ok(())
    }

    /// Rewind `seq` by its last `n` accepted tokens, for a host that truncated its KV cache
    /// (`escape.rollback`; SCIENCE.md §2.3 item 4): every per-sequence state returns to what it
    /// was before them, exactly, and the pending step is discarded. When the rewind lands where
    /// the last step's advised copy began ([`rollback_advice`](Self::rollback_advice) tokens:
    /// [`StepReport::rollback`] before its token is accepted, one more after), the token that
    /// began the copy is masked when the position is stepped again, and n is charged to
    /// `escape.rollback_budget`. Any other rewind (a rejected speculative draft) bans nothing.
    /// At most
    /// `escape.rollback` tokens, none from before the first step or a reset; every host
    /// processor must be able to rewind too. Nothing changes on error.
    pub fn rollback(&mut self, seq: u64, n: u32) -> Result<()> {
        let slot = self.table.slot(seq)?;
        if let Some(i) = self
            .pre
            .iter()
            .position(|p| !p.can_rollback())
            .filter(|_| n > 0)
        {
            return Err(Error::InvalidArgument(format!(
                "sequence {seq}: host processor {i} in the chain cannot rewind"
            )));
        }
        let st = &mut self.table.seqs[slot];
        st.touched = self.table.clock;
        st.rollback(n, &self.core.cfg)?;
        if n > 0 {
            for p in &mut self.pre {
                p.rollback(seq, n)?;
            }
        }
        Ok(())
    }

    /// The tokens `seq` must drop now to return to where the copy its last step advised
    /// rewinding began: [`StepReport::rollback`] until the step's token is accepted, one more
    /// after (llama.cpp's `llama_sampler_sample` accepts at once); 0 when the last step advised
    /// nothing. For hosts that read the report through a channel without the count (the C
    /// report's flag `IG_FLAG_ROLLBACK`).
    pub fn rollback_advice(&self, seq: u64) -> Result<u32> {
        Ok(self.table.seqs[self.table.slot(seq)?].advice())
    }

    /// End sequence `seq` and free its slot.
    pub fn end(&mut self, seq: u64) -> Result<()> {
        let slot = self
            .table
            .index
            .remove(&seq)
            .ok_or(Error::UnknownSequence(seq))?;
        self.table.free.push(slot);
        for p in &mut self.pre {
            p.reset(seq);
        }
        Ok(())
    }

    /// End every live sequence (for engines with no per-sequence end). Returns how many.
    pub fn end_all(&mut self) -> usize {
        let ids: Vec<u64> = self.table.index.keys().copied().collect();
        for &id in &ids {
            let _ = self.end(id);
        }
        ids.len()
    }

    /// End every sequence not begun, stepped or accepted during the last `idle` step calls
    /// (single or batch) on this processor — for engines that recycle slots without telling
    /// (vLLM's model runner v2, SGLang). Returns how many were ended.
    pub fn sweep(&mut self, idle: u64) -> usize {
        let now = self.table.clock;
        let stale: Vec<u64> = self
            .table
            .index
            .iter()
            .filter(|&(_, &slot)| now.saturating_sub(self.table.seqs[slot].touched) > idle)
            .map(|(&id, _)| id)
            .collect();
        for &id in &stale {
            let _ = self.end(id);
        }
        stale.len()
    }

    /// Reset a live sequence to its state right after `begin` (same seed, anchors, mass).
    pub fn reset(&mut self, seq: u64) -> Result<()> {
        let slot = self.table.slot(seq)?;
        self.table.seqs[slot].reset(&self.core.cfg);
        Ok(())
    }
}

/// One worker's buffers, reserved without aborting.
fn new_scratch(core: &Core) -> Result<Scratch> {
    let c = &core.cfg;
    let cap = c.sampler.max_candidates as usize;
    // Edits: every anchor, one escape penalty per period or window position, the cycle
    // penalty and the rollback bans at this position.
    let pens = (c.black_hole.max_period + c.escape.repeat_window) as usize + 1 + rewind::BANS;
    let extra = c.limits.max_anchors as usize + pens;
    let cands =
        Candidates::try_with_capacity(cap, extra, core.vocab).map_err(|_| Error::OutOfMemory {
            what: "candidate buffer",
            bytes: (cap + extra) * std::mem::size_of::<crate::field::Cand>(),
        })?;
    let mut w = Scratch {
        cands,
        edits: Vec::new(),
        pens: Vec::new(),
        full: Vec::new(),
        measured: Vec::new(),
        arena: Vec::new(),
        failed: None,
        tilted: Vec::new(),
        contrasted: Vec::new(),
    };
    try_reserve(&mut w.edits, extra, "intervention edits")?;
    try_reserve(&mut w.pens, pens, "escape penalties")?;
    try_reserve(&mut w.full, core.vocab, "exact-pass buffer (8 bytes × V)")?;
    Ok(w)
}

impl LogitsProcessor for GravityProcessor {
    /// Runs a full step in `Logits` mode; sequences are begun on first sight with seed = id.
    fn apply(&mut self, seq: u64, logits: &mut [f32]) -> Result<()> {
        if !self.table.index.contains_key(&seq) {
            self.begin(
                seq,
                &SeqParams {
                    seed: seq,
                    ..Default::default()
                },
            )?;
        }
        self.step(seq, logits, StepMode::Logits).map(|_| ())
    }
    fn accept(&mut self, seq: u64, token: u32) -> Result<()> {
        GravityProcessor::accept(self, seq, token)
    }
    fn reset(&mut self, seq: u64) {
        let _ = self.end(seq);
    }
}
