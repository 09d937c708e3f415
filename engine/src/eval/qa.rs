//! Closed-book factual QA (docs/EVALUATION.md §1): does the void score predict wrong
//! answers? The bank is `eval/qa_bank.jsonl` (built from the PyPI package `countryinfo` by
//! `tools/build_qa_bank.py`). Each item is prompted with the chat template and its answer stem
//! prefilled ("The capital of Peru is"), answered greedily, graded by alias match, and every
//! signal is recorded: the field at the first answer token (the void score's features), per-token
//! baselines over the answer and the prompt-side components of M(Q) (docs/DESIGN.md §1).

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::Engine;
use infogravity::config::{MassConfig, VoidWeights};
use infogravity::field::{self, Field};
use infogravity::mass::{self, Prior, QueryMass};
use infogravity::policy::VoidFeatures;
use infogravity::{Error, Result};

/// One item of the bank.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Item {
    pub id: u32,
    pub relation: String,
    pub subject: String,
    pub question: String,
    pub stem: String,
    pub answers: Vec<String>,
}

/// Read a bank (JSON lines); errors name the line.
pub fn load_bank(path: &Path) -> Result<Vec<Item>> {
    let text =
        std::fs::read_to_string(path).map_err(|e| Error::Io(format!("{}: {e}", path.display())))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| Error::CorruptFile {
                what: "QA bank",
                msg: format!("{}:{}: {e}", path.display(), i + 1),
            })
        })
        .collect()
}

/// The field statistics kept per step (enough to rebuild a [`Field`]).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Step {
    pub max: f32,
    pub second: f32,
    pub argmax: u32,
    pub log_z: f64,
    pub entropy: f64,
    pub varentropy: f64,
    /// Φ of the chosen token (greedy: the argmax).
    pub potential: f64,
}

/// What one item produced.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub id: u32,
    pub relation: String,
    pub subject: String,
    /// The generated continuation of the stem.
    pub answer: String,
    pub correct: bool,
    pub vocab: usize,
    /// One entry per generated token (the first is the first answer position).
    pub steps: Vec<Step>,
    /// Prompt-side mass components (raw): h, h_prompt_mean, n_kl, n_surprisal.
    pub h: Option<f32>,
    pub h_prompt_mean: Option<f32>,
    pub n_kl: Option<f32>,
    pub n_surprisal: Option<f32>,
    /// The answer aggregates the processor streamed while the answer was generated (absent in
    /// records written before it did).
    #[serde(default)]
    pub streamed: Option<Streamed>,
    /// The final hidden state recovered from the logits (`eval qa --hidden`; absent otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hidden: Option<Hidden>,
}

/// The final hidden state ĥ = Γ⁺z recovered from an answer's rows of logits
/// ([`crate::unembed::Recovery`]): the state before the first answer token (what the model
/// holds before it answers), the mean over the answer's steps, and the state before the first
/// content token (the first token's where the answer has none).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hidden {
    pub first: Vec<f32>,
    pub mean: Vec<f32>,
    pub content: Vec<f32>,
}

/// What [`Record::streamed`] keeps of the processor's `AnswerStats` at the end of the answer.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Streamed {
    pub tokens: u32,
    pub mean_entropy: f32,
    pub max_entropy: f32,
    pub mean_sqrt_varentropy: f32,
    /// ΣΦ: the answer's surprisal (absent in records of the first streaming runs).
    #[serde(default)]
    pub sum_potential: Option<f32>,
    pub mean_potential: f32,
    pub max_potential: f32,
    /// The first content token's step, H and 1 − p_max (None: the answer had none).
    pub first_content: Option<(u32, f32, f32)>,
    /// The processor's hidden-state probe at the first step and its mean over the answer
    /// (None: no probe was set, or its value was not finite).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe_first: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe_mean: Option<f32>,
}

impl From<&infogravity::AnswerStats> for Streamed {
    fn from(a: &infogravity::AnswerStats) -> Self {
        Streamed {
            tokens: a.tokens,
            mean_entropy: a.mean_entropy,
            max_entropy: a.max_entropy,
            mean_sqrt_varentropy: a.mean_sqrt_varentropy,
            sum_potential: Some(a.sum_potential),
            mean_potential: a.mean_potential,
            max_potential: a.max_potential,
            first_content: a
                .first_content
                .map(|f| (f.step, f.entropy, f.one_minus_pmax)),
            probe_first: a.probe_first.is_finite().then_some(a.probe_first),
            probe_mean: a.probe_mean.is_finite().then_some(a.probe_mean),
        }
    }
}

/// The decode's configuration by default: `neutral` at T = 0, plain greedy decoding.
pub const GREEDY: &str = r#"{"preset":"neutral","temperature":{"base":0}}"#;

/// The processor the decode runs through, which streams the answer aggregates: `config_json`
/// (default [`GREEDY`], where it selects the argmax and changes nothing), with `e`'s content
/// table. The decode takes the token it selects.
pub fn streaming_processor(e: &Engine, config_json: &str) -> Result<infogravity::GravityProcessor> {
    let cfg = infogravity::Config::from_json(config_json)?;
    let mut p = infogravity::GravityProcessor::new(cfg, e.lm.info().vocab)?;
    p.set_content_tokens(Some(crate::content_table(e)?))?;
    Ok(p)
}

impl Record {
    /// The field of step `i`.
    pub fn field(&self, i: usize) -> Field {
        let s = &self.steps[i];
        Field {
            vocab: self.vocab,
            max: s.max,
            argmax: s.argmax,
            second: s.second,
            log_z: s.log_z,
            entropy: s.entropy,
            varentropy: s.varentropy,
        }
    }

    /// The raw query mass (no M yet).
    pub fn mass(&self) -> QueryMass {
        QueryMass {
            h: self.h,
            h_prompt_mean: self.h_prompt_mean,
            n_kl: self.n_kl,
            n_surprisal: self.n_surprisal,
            ..Default::default()
        }
    }
}

/// Fold case and accents, keep letters and digits, single spaces, padded with spaces so that
/// whole-word containment is a substring test.
pub fn normalise(s: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    let mut out = String::from(" ");
    for c in s
        .nfkd()
        .filter(|c| !unicode_normalization::char::is_combining_mark(*c))
    {
        if c.is_alphanumeric() {
            out.extend(c.to_lowercase());
        } else if !out.ends_with(' ') {
            out.push(' ');
        }
    }
    if !out.ends_with(' ') {
        out.push(' ');
    }
    out
}

/// The answer's first sentence: up to a newline, `!`, `?`, or a `.` followed by a space or the
/// end whose word is longer than two letters (so "St." and "D.C." do not end it).
pub fn first_sentence(s: &str) -> &str {
    let b = s.as_bytes();
    for (i, &c) in b.iter().enumerate() {
        match c {
            b'\n' | b'!' | b'?' => return &s[..i],
            b'.' if b.get(i + 1).is_none_or(|n| n.is_ascii_whitespace()) => {
                let word = s[..i].rsplit(|c: char| !c.is_alphanumeric()).next();
                if word.is_some_and(|w| w.chars().count() > 2) {
                    return &s[..i];
                }
            }
            _ => {}
        }
    }
    s
}

/// Correct when an accepted answer occurs as whole words in the first sentence (case and
/// accents folded).
pub fn grade(answer: &str, accepted: &[String]) -> bool {
    let clause = normalise(first_sentence(answer));
    accepted.iter().any(|a| {
        let a = normalise(a);
        !a.trim().is_empty() && clause.contains(&a)
    })
}

/// What an item records beside its answer: M(Q)'s components under `mass` (N against `prior`),
/// with `recovery` the hidden states ([`Hidden`]), and with `probe` (set on the processor
/// [`run_bank`] makes) the probe's streamed values ([`Streamed`]).
#[derive(Clone, Copy)]
pub struct Signals<'a> {
    pub prior: Option<&'a Prior>,
    pub mass: &'a MassConfig,
    pub recovery: Option<&'a crate::unembed::Recovery>,
    pub probe: Option<&'a infogravity::Probe>,
}

/// Answer `item` greedily (at most `max_tokens`, stopping at the end of the first sentence),
/// with `stream` (see [`streaming_processor`]) stepping every row beside the decode.
pub fn run_item(
    e: &mut Engine,
    stream: &mut infogravity::GravityProcessor,
    item: &Item,
    signals: Signals,
    max_tokens: usize,
) -> Result<Record> {
    let Signals {
        prior,
        mass: cfg,
        recovery,
        ..
    } = signals;
    let seq = item.id as u64;
    stream.begin(seq, &Default::default())?;
    let v = e.lm.info().vocab;
    let (ids, start, end) = crate::prompt_with_span(e, None, &item.question, &item.stem)?;
    let (logits, mut cache) = e.prefill(&ids)?;
    let q = crate::prompt_mass(&ids, start, end, &logits, v, prior, cfg)?;
    let row = logits[logits.len() - v..].to_vec();
    drop(logits);
    let mut steps = vec![];
    let mut states: Vec<Vec<f64>> = vec![];
    let answer = decode_answer(
        e,
        stream,
        seq,
        row,
        &mut cache,
        max_tokens,
        |row, _, tok| {
            let f = field::measure(row)?;
            steps.push(Step {
                max: f.max,
                second: f.second,
                argmax: f.argmax,
                log_z: f.log_z,
                entropy: f.entropy,
                varentropy: f.varentropy,
                potential: f.potential(row[tok as usize]),
            });
            if let Some(rc) = recovery {
                states.push(rc.hidden(row)?);
            }
            Ok(())
        },
    )?;
    let stats = stream.answer(seq)?;
    let hidden = (!states.is_empty()).then(|| {
        let f32s = |h: &[f64]| h.iter().map(|&x| x as f32).collect::<Vec<f32>>();
        let n = states.len() as f64;
        let mean: Vec<f64> = (0..states[0].len())
            .map(|k| states.iter().map(|h| h[k]).sum::<f64>() / n)
            .collect();
        let c = stats.first_content.map_or(0, |f| f.step as usize);
        Hidden {
            first: f32s(&states[0]),
            mean: f32s(&mean),
            content: f32s(&states[c.min(states.len() - 1)]),
        }
    });
    let streamed = Some(Streamed::from(&stats));
    stream.end(seq)?;
    Ok(Record {
        id: item.id,
        relation: item.relation.clone(),
        subject: item.subject.clone(),
        correct: grade(&answer, &item.answers),
        answer,
        vocab: v,
        steps,
        h: q.h,
        h_prompt_mean: q.h_prompt_mean,
        n_kl: q.n_kl,
        n_surprisal: q.n_surprisal,
        streamed,
        hidden,
    })
}

/// Decode sequence `seq` (begun) through `stream` in `Sample` mode from `row`, the logits after
/// the prompt in `cache`, taking the token it selects, until EOS, `max_tokens` or the end of the
/// first sentence; `each(row, report, token)` after every step (the row as measured: `Sample`
/// mode only reads it). Returns the answer text.
pub fn decode_answer(
    e: &mut Engine,
    stream: &mut infogravity::GravityProcessor,
    seq: u64,
    row: Vec<f32>,
    cache: &mut crate::KvCache,
    max_tokens: usize,
    each: impl FnMut(&[f32], &infogravity::StepReport, u32) -> Result<()>,
) -> Result<String> {
    let before = |_: &mut Engine, _: &mut infogravity::GravityProcessor, _: Option<u32>| Ok(());
    decode_answer_with(e, stream, seq, row, cache, max_tokens, before, each)
}

/// [`decode_answer`] with `before(engine, processor, previous token)` called before every step
/// (None before the first): where a host hands the processor more than the row, e.g. the
/// null-query row of [`crate::eval::pmi`].
#[allow(clippy::too_many_arguments)] // decode_answer's inputs and the hook; crate-internal
pub fn decode_answer_with(
    e: &mut Engine,
    stream: &mut infogravity::GravityProcessor,
    seq: u64,
    mut row: Vec<f32>,
    cache: &mut crate::KvCache,
    max_tokens: usize,
    mut before: impl FnMut(&mut Engine, &mut infogravity::GravityProcessor, Option<u32>) -> Result<()>,
    mut each: impl FnMut(&[f32], &infogravity::StepReport, u32) -> Result<()>,
) -> Result<String> {
    let eos = e.lm.info().eos_token_id;
    let (mut tokens, mut answer) = (vec![], String::new());
    for _ in 0..max_tokens {
        before(e, stream, tokens.last().copied())?;
        let rep = stream.step(seq, &mut row, infogravity::StepMode::Sample)?;
        // No token only when an abstention stops the sequence: take the argmax then.
        let tok = match rep.token {
            Some(t) => t,
            None => field::measure(&row[..])?.argmax,
        };
        stream.accept(seq, tok)?;
        each(&row, &rep, tok)?;
        if tok == eos {
            break;
        }
        tokens.push(tok);
        answer = e.decode(&tokens)?;
        if first_sentence(&answer).len() < answer.trim_end().len() {
            break;
        }
        row = e.lm.forward(cache, &[tok])?;
    }
    Ok(answer)
}

/// How many of `tokens` the answer's first sentence takes: the prefix up to and including the
/// token where the decoded text goes past its first sentence (the cut [`run_item`] makes), all
/// of them when it never does.
pub fn sentence_tokens(e: &Engine, tokens: &[u32]) -> Result<usize> {
    for k in 1..=tokens.len() {
        let text = e.decode(&tokens[..k])?;
        if first_sentence(&text).len() < text.trim_end().len() {
            return Ok(k);
        }
    }
    Ok(tokens.len())
}

/// The prompt of `question` (chat template, `stem` after the assistant prompt) and the span of
/// the question's tokens in it, for batch runs ([`crate::GenerateOptions::query_spans`]).
pub fn item_prompt(
    e: &Engine,
    question: &str,
    stem: &str,
) -> Result<(Vec<u32>, std::ops::Range<usize>)> {
    let (ids, start, end) = crate::prompt_with_span(e, None, question, stem)?;
    Ok((ids, start..end))
}

/// Run `items` (skipping ids already in `out`, so an interrupted run resumes), appending one
/// JSON line per item to `out` as it finishes. `progress(done, total)` after each item.
pub fn run_bank(
    e: &mut Engine,
    items: &[Item],
    signals: Signals,
    decode: &str,
    out: &Path,
    mut progress: impl FnMut(usize, usize),
) -> Result<Vec<Record>> {
    let mut have: Vec<Record> = super::read_jsonl(out, "QA results")?;
    let done: std::collections::HashSet<u32> = have.iter().map(|r| r.id).collect();
    let mut file = super::append(out)?;
    let total = items.len();
    let mut n = items.iter().filter(|i| done.contains(&i.id)).count();
    progress(n, total);
    let mut stream = streaming_processor(e, decode)?;
    stream.set_probe(signals.probe.cloned())?;
    for item in items.iter().filter(|i| !done.contains(&i.id)) {
        let r = run_item(e, &mut stream, item, signals, 16)?;
        super::write_line(&mut file, out, &r)?;
        have.push(r);
        n += 1;
        progress(n, total);
    }
    // Grade again from the bank: a corrected answer list applies without re-running the model.
    let by_id: std::collections::HashMap<u32, &Item> = items.iter().map(|i| (i.id, i)).collect();
    have.retain_mut(|r| match by_id.get(&r.id) {
        Some(item) => {
            r.correct = grade(&r.answer, &item.answers);
            true
        }
        None => false,
    });
    have.sort_by_key(|r| r.id);
    Ok(have)
}

/// The per-item scores compared in the report; higher = more likely wrong.
pub struct Scores {
    pub names: Vec<&'static str>,
    pub values: Vec<Vec<f64>>,
}

/// The baselines of the issue, each oriented so that higher = more likely wrong.
pub fn baselines(records: &[Record]) -> Scores {
    let per = |f: &dyn Fn(&Record) -> f64| records.iter().map(f).collect::<Vec<f64>>();
    let tok = |r: &Record| r.steps.len().max(1) as f64;
    let names = vec![
        "entropy, first token",
        "1 − p_max, first token",
        "mean token entropy",
        "max token entropy",
        "1 − min token probability",
        "−mean log-probability",
        "−total log-probability",
        "energy −log Z, first token",
    ];
    let mut names = names;
    let mut values = vec![
        per(&|r| r.steps[0].entropy),
        per(&|r| 1.0 - r.field(0).p_max()),
        per(&|r| r.steps.iter().map(|s| s.entropy).sum::<f64>() / tok(r)),
        per(&|r| r.steps.iter().map(|s| s.entropy).fold(0.0, f64::max)),
        per(&|r| {
            1.0 - r
                .steps
                .iter()
                .map(|s| (-s.potential).exp())
                .fold(1.0, f64::min)
        }),
        per(&|r| r.steps.iter().map(|s| s.potential).sum::<f64>() / tok(r)),
        per(&|r| r.steps.iter().map(|s| s.potential).sum::<f64>()),
        per(&|r| -r.steps[0].log_z),
    ];
    // The field at the first content token, as the processor streamed it (records that predate
    // the streaming lack it).
    if records.iter().all(|r| r.streamed.is_some()) {
        names.push("entropy, first content token");
        values.push(per(&|r| first_content(r).0));
    }
    Scores { names, values }
}

/// H and 1 − p_max at the answer's first content token, as the processor streamed them; the
/// first token's when the answer had no content token or the record predates the streaming.
pub fn first_content(r: &Record) -> (f64, f64) {
    match r.streamed.and_then(|s| s.first_content) {
        Some((_, h, q)) => (h as f64, q as f64),
        None => (r.steps[0].entropy, 1.0 - r.field(0).p_max()),
    }
}

/// The void score at the first answer token, exactly as the processor computes it (trend 0 at
/// the first step, no task space), with weights `w` and M(Q) from `cfg` and `calib`.
pub fn void_scores(
    records: &[Record],
    w: &VoidWeights,
    cfg: &MassConfig,
    calib: Option<&infogravity::Calibration>,
) -> Vec<f64> {
    records
        .iter()
        .map(|r| {
            let m = mass::with_mass(r.mass(), cfg, calib.and_then(|c| c.mass.as_ref())).m;
            VoidFeatures::new(&r.field(0), 0.0, None, m).score(w) as f64
        })
        .collect()
}

/// The void features at the first answer token (entropy, energy, 1 − p_max, varentropy, mass),
/// the inputs of the calibration fit.
pub fn void_features(
    records: &[Record],
    cfg: &MassConfig,
    calib: Option<&infogravity::Calibration>,
) -> Vec<Vec<f64>> {
    records
        .iter()
        .map(|r| {
            let m = mass::with_mass(r.mass(), cfg, calib.and_then(|c| c.mass.as_ref())).m;
            let f = VoidFeatures::new(&r.field(0), 0.0, None, m);
            vec![
                f.entropy as f64,
                f.energy as f64,
                f.one_minus_pmax as f64,
                f.varentropy as f64,
                f.mass as f64,
            ]
        })
        .collect()
}

/// Train/test split by subject (a country's two items stay together): FNV-1a of the name, even
/// = train.
pub fn is_train(subject: &str) -> bool {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in subject.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h.is_multiple_of(2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grading_folds_case_accents_and_abbreviations() {
        let a = |xs: &[&str]| xs.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(grade(" Paris.", &a(&["Paris"])));
        assert!(grade(" bogota, the largest city.", &a(&["Bogotá"])));
        assert!(grade(" St. George's, on the coast.", &a(&["St. George's"])));
        assert!(grade(
            " Washington, D.C. It is",
            &a(&["Washington D.C.", "Washington"])
        ));
        assert!(!grade(" Lyon. Paris is not", &a(&["Paris"])));
        assert!(!grade(" Parisville.", &a(&["Paris"])));
        assert!(grade(
            " the continent of South America.",
            &a(&["South America"])
        ));
        assert!(!grade(" Europe.\nAsia", &a(&["Asia"])));
        assert_eq!(first_sentence(" Lima. Peru"), " Lima");
        assert_eq!(normalise("Chișinău!"), " chisinau ");
    }

    #[test]
    fn split_keeps_a_country_together_and_is_balanced() {
        let names: Vec<String> = (0..400).map(|i| format!("Country {i}")).collect();
        let train = names.iter().filter(|n| is_train(n)).count();
        assert!((150..250).contains(&train), "{train}");
        assert_eq!(is_train("France"), is_train("France"));
    }
}
