//! Null-query PMI against attractor answers (docs/EVALUATION.md §7; SCIENCE.md §4.3
//! "Anchoring" 2 and target (d); Holtzman et al., EMNLP 2021, arXiv 2104.08315): every QA item
//! is answered greedily twice — plainly, and with the processor's null-query contrast
//! (`GravityProcessor::set_contrast`) given, at each step until the answer's first content
//! token, the row of the same prompt with its subject replaced by [`NULL_SUBJECT`], fed the same
//! tokens. That second prompt asks the relation's question of nothing, so its distribution is
//! the relation's prior: the answers the model gives whatever the country.
//!
//! An **attractor answer** (s2 §8.3) is an answer — the head of the first sentence, normalised
//! (`key`) — that at least [`ATTRACTOR_ITEMS`] items of one relation receive, at least
//! [`ATTRACTOR_WRONG`] of them wrongly. The attractor-error rate of a condition is the fraction
//! of items answered wrongly with one, the attractors found among that condition's own answers
//! (a right answer is not counted: on a many-to-one relation such as region many right answers
//! share one); the target is a rate lower by ≥ 30% with no accuracy loss.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::metrics::{self, Interval};
use super::qa::{self, Item};
use crate::Engine;
use infogravity::{ContentTable, Error, GravityProcessor, Result, field, flags};

/// The two decodes of every item, in order.
pub const CONDITIONS: [&str; 2] = ["greedy", "pmi"];

/// What replaces the subject in the null query by default (calibrate-before-use's content-free
/// input); [`Options::null_subject`] names another.
pub const NULL_SUBJECT: &str = "N/A";

/// An answer at least this many items of a relation receive …
pub const ATTRACTOR_ITEMS: usize = 3;
/// … at least this many of them wrongly, is an attractor.
pub const ATTRACTOR_WRONG: usize = 2;

/// The contrast's knobs (the `contrast` configuration section), and the null query's subject.
#[derive(Debug, Clone)]
pub struct Options {
    pub beta: f32,
    pub plausibility: f32,
    /// Reorder only steps whose most likely token is also the null row's
    /// (`contrast.prior_top_only`).
    pub prior_top_only: bool,
    /// Tokens per answer (the first sentence ends it sooner).
    pub max_tokens: usize,
    /// What replaces the subject in the null query ([`NULL_SUBJECT`] by default).
    pub null_subject: String,
    /// When > 0, the null row is instead the mean next-token distribution of this many other
    /// items of the item's relation, each asked as itself (the relation's prior estimated from a
    /// batch of its questions, as batch calibration does; Zhou et al., ICLR 2024): see
    /// [`others`].
    pub null_others: usize,
}

/// What one decode of one item produced.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub id: u32,
    pub relation: String,
    pub condition: String,
    pub answer: String,
    pub correct: bool,
    /// Steps decoded, and how many of them the contrast reordered.
    pub steps: u32,
    pub contrasted: u32,
    /// The contrast's (β, α) of a PMI decode (None: a plain one).
    #[serde(default)]
    pub contrast: Option<[f32; 2]>,
    /// A PMI decode reordered only steps whose most likely token was also the null row's
    /// (records written before the gate existed were ungated).
    #[serde(default)]
    pub prior_top_only: bool,
    /// The null query's subject of a PMI decode (None: written before it could be chosen, so
    /// [`NULL_SUBJECT`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub null_subject: Option<String>,
    /// A PMI decode whose null row was the mean of this many other items of the relation
    /// ([`Options::null_others`]; None: the null subject's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub null_others: Option<usize>,
    /// The decode's token limit (None: written before it was recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<usize>,
    /// Every step given a null row, in order (a PMI decode): what [`replay`] needs to tell
    /// what other knobs would have answered.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub heads: Vec<Head>,
}

/// A head is kept down to this fraction of p_max, or the run's α if smaller (so knobs with
/// α ≥ it can be replayed), every token of it (a flat row keeps many).
pub const HEAD_FLOOR: f32 = 0.1;
/// Records written before heads were complete kept at most this many tokens, down to 0.02.
const OLD_CAP: usize = 32;

/// One step given a null row, as the plain row p and the null row q saw it: the tokens with
/// p ≥ `floor`·p_max, most likely first.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Head {
    pub tokens: Vec<u32>,
    /// log p and log q of each token.
    pub lp: Vec<f32>,
    pub lq: Vec<f32>,
    /// Whether each token is a content token (the contrast stops after one).
    pub content: Vec<bool>,
    /// The null row's most likely token.
    pub null_top: u32,
    /// The token the decode took.
    pub chosen: u32,
    /// ln(p/p_max) down to which every token is kept (None: an older record, see
    /// [`Head::complete_to`]).
    #[serde(default)]
    pub floor: Option<f32>,
}

impl Head {
    fn of(
        row: &[f32],
        null: &[f32],
        table: &ContentTable,
        chosen: u32,
        floor: f32,
    ) -> Result<Head> {
        let (f, g) = (field::measure(row)?, field::measure(null)?);
        let cut = f.max + floor.ln();
        let mut tokens: Vec<u32> = (0..row.len() as u32)
            .filter(|&t| row[t as usize] >= cut)
            .collect();
        tokens.sort_by(|&a, &b| row[b as usize].total_cmp(&row[a as usize]).then(a.cmp(&b)));
        let log = |z: &[f32], t: u32, lz: f64| (z[t as usize] as f64 - lz) as f32;
        Ok(Head {
            lp: tokens.iter().map(|&t| log(row, t, f.log_z)).collect(),
            lq: tokens.iter().map(|&t| log(null, t, g.log_z)).collect(),
            content: tokens.iter().map(|&t| table.is_content(t)).collect(),
            tokens,
            null_top: g.argmax,
            chosen,
            floor: Some(floor.ln()),
        })
    }

    /// ln(p/p_max) down to which the head holds every token. An older record kept 0.02 of
    /// p_max but at most 32 tokens: a full one is complete only down to its last token.
    fn complete_to(&self) -> f32 {
        match (self.floor, self.lp.first(), self.lp.last()) {
            (Some(f), _, _) => f,
            (None, Some(top), Some(last)) if self.tokens.len() >= OLD_CAP => last - top,
            _ => 0.02f32.ln(),
        }
    }
}

/// The decode configuration: greedy, nothing but the contrast (which acts only where a row is
/// given: the plain decode gives none).
pub fn config(o: &Options) -> String {
    format!(
        r#"{{"preset":"neutral","temperature":{{"base":0}},"contrast":{{"enabled":true,"beta":{},"plausibility":{},"until_content":true,"prior_top_only":{}}}}}"#,
        o.beta, o.plausibility, o.prior_top_only
    )
}

/// The item's question and stem with its subject replaced by `subject`; an item whose question
/// does not name its subject has no null query and is refused.
pub fn null_query(item: &Item, subject: &str) -> Result<(String, String)> {
    if item.subject.trim().is_empty() || !item.question.contains(&item.subject) {
        return Err(Error::InvalidArgument(format!(
            "item {}: the question {:?} does not name its subject {:?}, so it has no null query",
            item.id, item.question, item.subject
        )));
    }
    Ok((
        item.question.replace(&item.subject, subject),
        item.stem.replace(&item.subject, subject),
    ))
}

/// The null rows of a PMI decode while the answer has no content token yet: one sequence per
/// null prompt, and the row the processor is given (the one row, or the mean distribution of
/// several as log-probabilities).
struct Null<C> {
    seqs: Vec<(Vec<f32>, C)>,
    row: Vec<f32>,
}

impl<C> Null<C> {
    /// The processor's row from the sequences' rows: the row itself for one; for K, the log of
    /// the mean of their distributions.
    fn mix(&mut self) -> Result<()> {
        if let [(row, _)] = &self.seqs[..] {
            self.row.clone_from(row);
            return Ok(());
        }
        let k = self.seqs.len() as f64;
        let zs: Vec<f64> = self
            .seqs
            .iter()
            .map(|(r, _)| Ok(field::measure(r)?.log_z))
            .collect::<Result<_>>()?;
        for (t, out) in self.row.iter_mut().enumerate() {
            let mut sum = 0f64;
            for ((r, _), lz) in self.seqs.iter().zip(&zs) {
                sum += (r[t] as f64 - lz).exp();
            }
            *out = (sum / k).ln() as f32;
        }
        Ok(())
    }
}

/// The other items whose questions estimate `item`'s relation prior under
/// [`Options::null_others`]: the next `k` items of its relation in the bank's order, wrapping
/// around (never the item itself; fewer when the relation has fewer).
pub fn others<'a>(items: &'a [Item], item: &Item, k: usize) -> Vec<&'a Item> {
    let rel: Vec<&Item> = items
        .iter()
        .filter(|i| i.relation == item.relation)
        .collect();
    let Some(at) = rel.iter().position(|i| i.id == item.id) else {
        return vec![];
    };
    (1..rel.len())
        .map(|d| rel[(at + d) % rel.len()])
        .take(k)
        .collect()
}

/// One greedy decode of `item` through `p`, with the null-query row until the first content
/// token when `pmi` (`others`: the items whose questions give the null rows under
/// [`Options::null_others`]).
fn decode(
    e: &mut Engine,
    p: &mut GravityProcessor,
    table: &ContentTable,
    item: &Item,
    others: &[&Item],
    pmi: bool,
    o: &Options,
) -> Result<Record> {
    let Options {
        beta,
        plausibility,
        prior_top_only,
        max_tokens,
        ref null_subject,
        null_others,
    } = *o;
    let seq = item.id as u64;
    let v = e.lm.info().vocab;
    let (ids, _, _) = crate::prompt_with_span(e, None, &item.question, &item.stem)?;
    let (logits, mut cache) = e.prefill(&ids)?;
    let row = logits[logits.len() - v..].to_vec();
    drop(logits);
    // The null sequences: their rows and caches while the answer has no content token yet.
    let null = RefCell::new(if pmi {
        let prompts = if null_others > 0 {
            others
                .iter()
                .map(|i| (i.question.clone(), i.stem.clone()))
                .collect()
        } else {
            vec![null_query(item, null_subject)?]
        };
        let mut seqs = vec![];
        for (q, stem) in &prompts {
            let (ids, _, _) = crate::prompt_with_span(e, None, q, stem)?;
            let (logits, cache) = e.prefill(&ids)?;
            seqs.push((logits[logits.len() - v..].to_vec(), cache));
        }
        let mut n = Null {
            seqs,
            row: vec![0.0; v],
        };
        n.mix()?;
        Some(n)
    } else {
        None
    });
    p.begin(seq, &Default::default())?;
    let (mut steps, mut contrasted, mut heads) = (0u32, 0u32, vec![]);
    let before = |e: &mut Engine, p: &mut GravityProcessor, prev: Option<u32>| {
        let mut null = null.borrow_mut();
        if let Some(t) = prev {
            if table.is_content(t) {
                *null = None;
            } else if let Some(n) = &mut *null {
                for (row, cache) in &mut n.seqs {
                    *row = e.lm.forward(cache, &[t])?;
                }
                n.mix()?;
            }
        }
        match &*null {
            Some(n) => p.set_contrast(seq, &n.row),
            None => Ok(()),
        }
    };
    let each = |row: &[f32], r: &infogravity::StepReport, tok: u32| {
        steps += 1;
        contrasted += (r.flags & flags::CONTRAST != 0) as u32;
        if let Some(n) = &*null.borrow() {
            heads.push(Head::of(
                row,
                &n.row,
                table,
                tok,
                HEAD_FLOOR.min(plausibility),
            )?);
        }
        Ok(())
    };
    let answer = qa::decode_answer_with(e, p, seq, row, &mut cache, max_tokens, before, each)?;
    p.end(seq)?;
    Ok(Record {
        id: item.id,
        relation: item.relation.clone(),
        condition: (if pmi { CONDITIONS[1] } else { CONDITIONS[0] }).to_string(),
        correct: qa::grade(&answer, &item.answers),
        answer,
        steps,
        contrasted,
        contrast: pmi.then_some([beta, plausibility]),
        prior_top_only: pmi && prior_top_only,
        null_subject: (pmi && null_others == 0).then(|| null_subject.clone()),
        null_others: (pmi && null_others > 0).then_some(null_others),
        max_tokens: Some(max_tokens),
        heads,
    })
}

/// Resuming under other knobs would mix two configurations in one table: refused, naming the
/// first record that differs (one written before the null subject or the token limit was
/// recorded carries the defaults of then).
fn resumable(have: &[Record], o: &Options, out: &Path) -> Result<()> {
    let want = [o.beta, o.plausibility];
    let knobs = |r: &Record| {
        format!(
            "the contrast {:?} ([β, α]), gated by the prior's top: {}, null {}, at most {} \
             tokens",
            r.contrast,
            r.prior_top_only,
            match r.null_others {
                Some(k) => format!("the mean of {k} other items"),
                None => format!(
                    "subject {:?}",
                    r.null_subject.as_deref().unwrap_or(NULL_SUBJECT)
                ),
            },
            r.max_tokens.map_or("?".into(), |m| m.to_string())
        )
    };
    if let Some(r) = have.iter().find(|r| {
        r.max_tokens.is_some_and(|m| m != o.max_tokens)
            || (r.condition == CONDITIONS[1]
                && (r.contrast != Some(want)
                    || r.prior_top_only != o.prior_top_only
                    || r.null_others.unwrap_or(0) != o.null_others
                    || (o.null_others == 0
                        && r.null_subject.as_deref().unwrap_or(NULL_SUBJECT) != o.null_subject)))
    }) {
        let asked = Record {
            contrast: Some(want),
            prior_top_only: o.prior_top_only,
            null_subject: Some(o.null_subject.clone()),
            null_others: (o.null_others > 0).then_some(o.null_others),
            max_tokens: Some(o.max_tokens),
            ..r.clone()
        };
        return Err(Error::InvalidArgument(format!(
            "{}: item {} ({}) was decoded with {}; this run asks for {}; use another --out",
            out.display(),
            r.id,
            r.condition,
            knobs(r),
            knobs(&asked)
        )));
    }
    Ok(())
}

/// Decode every item under both conditions; (id, condition) pairs already in `out` are
/// skipped, so a run resumes. `progress(done, total)` per decode.
pub fn run(
    e: &mut Engine,
    items: &[Item],
    o: &Options,
    out: &Path,
    mut progress: impl FnMut(usize, usize),
) -> Result<Vec<Record>> {
    if o.null_others == 0 {
        for it in items {
            null_query(it, &o.null_subject)?;
        }
    }
    let ids: HashSet<u32> = items.iter().map(|i| i.id).collect();
    let mut have: Vec<Record> = super::read_jsonl(out, "pmi results")?;
    have.retain(|r| ids.contains(&r.id));
    resumable(&have, o, out)?;
    let mut file = super::append(out)?;
    let cfg = infogravity::Config::from_json(&config(o))?;
    let mut p = GravityProcessor::new(cfg, e.lm.info().vocab)?;
    let table = crate::content_table(e)?;
    p.set_content_tokens(Some(table.clone()))?;
    let total = items.len() * CONDITIONS.len();
    for (k, cond) in CONDITIONS.iter().enumerate() {
        let done: HashSet<u32> = have
            .iter()
            .filter(|r| r.condition == *cond)
            .map(|r| r.id)
            .collect();
        for (n, item) in items.iter().enumerate() {
            if !done.contains(&item.id) {
                let others = others(items, item, o.null_others);
                let r = decode(e, &mut p, &table, item, &others, k == 1, o)?;
                super::write_line(&mut file, out, &r)?;
                have.push(r);
            }
            progress(k * items.len() + n + 1, total);
        }
    }
    have.sort_by(|a, b| (a.id, &a.condition).cmp(&(b.id, &b.condition)));
    Ok(have)
}

/// The answer as attractors are counted: the head of its first sentence (up to a comma, a
/// semicolon or a parenthesis), normalised, without a leading "the" — " the Middle East,
/// specifically …" and " Middle East." are one answer.
fn key(answer: &str) -> String {
    let head = qa::first_sentence(answer)
        .split([',', ';', '('])
        .next()
        .unwrap_or("");
    let k = qa::normalise(head);
    let k = k.trim();
    k.strip_prefix("the ").unwrap_or(k).to_string()
}

/// The attractor answers among `records` (one condition), per relation: key → (items, wrong).
fn attractors(records: &[&Record]) -> BTreeMap<(String, String), (usize, usize)> {
    let mut m: BTreeMap<(String, String), (usize, usize)> = BTreeMap::new();
    for r in records {
        let k = key(&r.answer);
        if k.is_empty() {
            continue;
        }
        let e = m.entry((r.relation.clone(), k)).or_default();
        e.0 += 1;
        e.1 += !r.correct as usize;
    }
    m.retain(|_, &mut (n, w)| n >= ATTRACTOR_ITEMS && w >= ATTRACTOR_WRONG);
    m
}

/// Knobs a recorded PMI run is replayed under ([`replay`]): the contrast's β and α, and two
/// gates that keep a step plain.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Gate {
    pub beta: f32,
    pub plausibility: f32,
    /// Reorder only a step whose p_max is below this (1: every step).
    pub max_p: f32,
    /// Reorder only a step whose most likely token is also the null row's (an attractor
    /// candidate: the answer the relation's prior gives).
    pub agree: bool,
}

/// The knobs every report replays (the run's own come first, as a check).
pub const REPLAYS: [Gate; 12] = {
    const fn g(beta: f32, plausibility: f32, max_p: f32, agree: bool) -> Gate {
        Gate {
            beta,
            plausibility,
            max_p,
            agree,
        }
    }
    [
        g(1.0, 0.1, 1.0, false),
        g(1.0, 0.2, 1.0, false),
        g(1.0, 0.3, 1.0, false),
        g(1.0, 0.5, 1.0, false),
        g(0.5, 0.1, 1.0, false),
        g(0.5, 0.3, 1.0, false),
        g(1.0, 0.1, 0.9, false),
        g(1.0, 0.1, 0.7, false),
        g(1.0, 0.1, 0.5, false),
        g(1.0, 0.1, 1.0, true),
        g(1.0, 0.3, 1.0, true),
        g(1.0, 0.1, 0.7, true),
    ]
};

impl Gate {
    fn label(&self) -> String {
        let mut s = format!("β {}, α {}", self.beta, self.plausibility);
        if self.max_p < 1.0 {
            s += &format!(", p_max < {}", self.max_p);
        }
        if self.agree {
            s += ", tops agree";
        }
        s
    }

    /// The token a greedy step with head `h` takes under these knobs.
    pub fn choose(&self, h: &Head) -> Option<u32> {
        let (&top, &lp_top) = (h.tokens.first()?, h.lp.first()?);
        if lp_top.exp() >= self.max_p || (self.agree && h.null_top != top) {
            return Some(top);
        }
        // A head recorded short of these knobs' own cannot tell.
        if self.plausibility.ln() < h.complete_to() {
            return None;
        }
        let cut = lp_top + self.plausibility.ln();
        let mut best: Option<(u32, f32)> = None;
        for ((&t, &lp), &lq) in h.tokens.iter().zip(&h.lp).zip(&h.lq) {
            let s = (-self.beta).mul_add(lq, lp);
            if lp >= cut && best.is_none_or(|(b, bs)| s > bs || (s == bs && t < b)) {
                best = Some((t, s));
            }
        }
        best.map(|(t, _)| t)
    }
}

/// What the PMI decode `run` of an item would have answered under `g`, read from its heads
/// without decoding: the run itself while `g` takes the run's token at every step it recorded;
/// the plain decode `plain` where `g` parts from the run on the plain path (every earlier step
/// took the plain token) by taking the plain token, a content token (after it both decode
/// plainly from the same prefix); None otherwise (that would need a decode), and for a run
/// without heads.
pub fn replay<'a>(plain: &'a Record, run: &'a Record, g: &Gate) -> Option<&'a Record> {
    if run.heads.is_empty() {
        return None;
    }
    let mut on_plain = true;
    for h in &run.heads {
        let top = *h.tokens.first()?;
        let s = g.choose(h)?;
        if s != h.chosen {
            return (on_plain && s == top && h.content[0]).then_some(plain);
        }
        on_plain &= h.chosen == top;
    }
    Some(run)
}

/// The markdown and JSON report.
pub struct Report {
    pub markdown: String,
    pub json: serde_json::Value,
}

/// Accuracy and attractor errors of one comparison (plain, other) in one group of items.
struct Stats {
    name: String,
    n: usize,
    accuracy: [f64; 2],
    accuracy_delta: Option<Interval>,
    attractor: [f64; 2],
    attractor_delta: Option<Interval>,
}

impl Stats {
    fn relative(&self) -> Option<f64> {
        let [t0, t1] = self.attractor;
        (t0 > 0.0).then(|| (t1 - t0) / t0)
    }

    fn relative_text(&self) -> String {
        self.relative()
            .map_or("–".into(), |r| format!("{:+.0}%", 100.0 * r))
    }

    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "n": self.n,
            "accuracy": self.accuracy,
            "accuracy_delta": Interval::json(&self.accuracy_delta),
            "attractor_error_rate": self.attractor,
            "attractor_delta": Interval::json(&self.attractor_delta),
            "attractor_relative": self.relative(),
        })
    }
}

/// Each condition's attractors (found among its own answers) and the paired differences,
/// pooled then per relation, over the item pairs `pairs` (plain, other).
type Attractors = BTreeMap<(String, String), (usize, usize)>;
fn compare(pairs: &[[&Record; 2]], resamples: usize) -> (Vec<Stats>, [Attractors; 2]) {
    let attr: [Attractors; 2] =
        [0, 1].map(|k| attractors(&pairs.iter().map(|r| r[k]).collect::<Vec<_>>()));
    // An attractor error: a wrong answer that is an attractor (a right one is not counted:
    // on a many-to-one relation such as region, many right answers share one).
    let is_attr = |k: usize, r: &Record| {
        !r.correct && attr[k].contains_key(&(r.relation.clone(), key(&r.answer)))
    };
    let mut groups: Vec<(String, Vec<usize>)> = vec![("pooled".into(), (0..pairs.len()).collect())];
    let rels: std::collections::BTreeSet<&String> = pairs.iter().map(|r| &r[0].relation).collect();
    for rel in rels {
        groups.push((
            rel.clone(),
            (0..pairs.len())
                .filter(|&i| &pairs[i][0].relation == rel)
                .collect(),
        ));
    }
    let stats = groups
        .into_iter()
        .enumerate()
        .map(|(gi, (name, idx))| {
            let col = |f: &dyn Fn(usize, &Record) -> bool, k: usize| -> Vec<f64> {
                idx.iter()
                    .map(|&i| f(k, pairs[i][k]) as u8 as f64)
                    .collect()
            };
            let acc = [0, 1].map(|k| col(&|_, r| r.correct, k));
            let att = [0, 1].map(|k| col(&is_attr, k));
            let mean = |x: &[f64]| x.iter().sum::<f64>() / x.len().max(1) as f64;
            let seed = 0x9e1 + gi as u64;
            let diff = |x: &[Vec<f64>; 2]| metrics::paired_diff(&x[1], &x[0], resamples, seed);
            Stats {
                n: idx.len(),
                accuracy: [mean(&acc[0]), mean(&acc[1])],
                accuracy_delta: diff(&acc),
                attractor: [mean(&att[0]), mean(&att[1])],
                attractor_delta: diff(&att),
                name,
            }
        })
        .collect();
    (stats, attr)
}

/// Accuracy and the attractor-error rate per condition and relation, the paired differences with
/// bootstrap intervals (over items, with each condition's attractors held fixed), the
/// attractors themselves, and the run replayed under [`REPLAYS`].
pub fn report(records: &[Record], o: &Options, resamples: usize, provenance: &str) -> Report {
    let mut by_item: BTreeMap<u32, [Option<&Record>; 2]> = BTreeMap::new();
    for r in records {
        if let Some(k) = CONDITIONS.iter().position(|c| *c == r.condition) {
            by_item.entry(r.id).or_insert([None; 2])[k] = Some(r);
        }
    }
    let complete: Vec<[&Record; 2]> = by_item
        .values()
        .filter_map(|rs| Some([rs[0]?, rs[1]?]))
        .collect();
    let (stats, attr) = compare(&complete, resamples);
    let mut md = format!(
        "# Null-query PMI against attractor answers (SCIENCE.md §4.3 d)\n\n{provenance}\n\n\
         Greedy decoding; the contrast: each step until the answer's first content token{} \
         reorders the tokens with p ≥ {}·p_max by log p − {}·log q, q the next-token \
         distribution of {}; at \
         most {} tokens per answer. An attractor answer: the head of a first sentence (to a comma, normalised, \
         without a leading \"the\") that ≥ {ATTRACTOR_ITEMS} items \
         of a relation receive, ≥ {ATTRACTOR_WRONG} of them wrongly, found among each \
         condition's own answers; the attractor-error rate: the fraction of items answered \
         wrongly with one; intervals: paired bootstrap over items ({resamples} \
         resamples) with each condition's attractors held fixed.\n\n\
         | group | n | accuracy greedy | PMI | Δ (95% CI) | attractor errors greedy | PMI | Δ (95% CI) | relative |\n\
         |---|---|---|---|---|---|---|---|---|\n",
        if o.prior_top_only {
            " whose most likely token is also the null query's"
        } else {
            ""
        },
        o.plausibility,
        o.beta,
        if o.null_others > 0 {
            format!(
                "the {} next items of the same relation, each asked as itself (their mean)",
                o.null_others
            )
        } else {
            format!(
                "the same prompt with the subject replaced by {:?}",
                o.null_subject
            )
        },
        o.max_tokens
    );
    let mut json_groups = serde_json::Map::new();
    for s in &stats {
        md.push_str(&format!(
            "| {} | {} | {:.3} | {:.3} | {} | {:.3} | {:.3} | {} | {} |\n",
            s.name,
            s.n,
            s.accuracy[0],
            s.accuracy[1],
            Interval::signed(&s.accuracy_delta),
            s.attractor[0],
            s.attractor[1],
            Interval::signed(&s.attractor_delta),
            s.relative_text(),
        ));
        json_groups.insert(s.name.clone(), s.json());
    }
    // The attractors of each condition, and what the contrast did.
    md.push_str(
        "\n| condition | attractor answers (relation: answer — items, wrong) |\n|---|---|\n",
    );
    let mut json_attr = serde_json::Map::new();
    for (k, cond) in CONDITIONS.iter().enumerate() {
        let list: Vec<String> = attr[k]
            .iter()
            .map(|((rel, a), (n, w))| format!("{rel}: {a} — {n}, {w}"))
            .collect();
        md.push_str(&format!(
            "| {cond} | {} |\n",
            if list.is_empty() {
                "none".to_string()
            } else {
                list.join("; ")
            }
        ));
        json_attr.insert(cond.to_string(), serde_json::json!(list));
    }
    let steps: u32 = complete.iter().map(|r| r[1].steps).sum();
    let contrasted: u32 = complete.iter().map(|r| r[1].contrasted).sum();
    let changed = complete
        .iter()
        .filter(|r| r[1].answer != r[0].answer)
        .count();
    let (fixed, broke) = complete.iter().fold((0, 0), |(f, b), r| {
        (
            f + (!r[0].correct && r[1].correct) as usize,
            b + (r[0].correct && !r[1].correct) as usize,
        )
    });
    md.push_str(&format!(
        "\nThe contrast reordered {contrasted} of {steps} steps and changed {changed} of {} \
         answers: {fixed} wrong → right, {broke} right → wrong.\n",
        complete.len()
    ));
    let (replay_md, replay_json) = replays(&complete, o, &stats, resamples);
    md.push_str(&replay_md);
    let by_rel: HashMap<&str, usize> = complete.iter().fold(HashMap::new(), |mut m, r| {
        *m.entry(r[0].relation.as_str()).or_default() += 1;
        m
    });
    Report {
        markdown: md,
        json: serde_json::json!({
            "provenance": provenance,
            "beta": o.beta,
            "plausibility": o.plausibility,
            "prior_top_only": o.prior_top_only,
            "null_subject": o.null_subject,
            "null_others": o.null_others,
            "max_tokens": o.max_tokens,
            "items": by_rel,
            "groups": json_groups,
            "attractors": json_attr,
            "steps": steps,
            "contrasted": contrasted,
            "changed": changed,
            "wrong_to_right": fixed,
            "right_to_wrong": broke,
            "replays": replay_json,
        }),
    }
}

/// The replay table: every knob set of [`REPLAYS`] against the plain decode, over the items it
/// can be replayed on. Empty when no record carries heads.
fn replays(
    complete: &[[&Record; 2]],
    o: &Options,
    run: &[Stats],
    resamples: usize,
) -> (String, serde_json::Value) {
    let with_heads = complete.iter().filter(|r| !r[1].heads.is_empty()).count();
    if with_heads == 0 {
        return (String::new(), serde_json::Value::Null);
    }
    let own = Gate {
        beta: o.beta,
        plausibility: o.plausibility,
        max_p: 1.0,
        agree: o.prior_top_only,
    };
    // The run's own knobs must replay to the run itself.
    let mismatched = complete
        .iter()
        .filter(|r| !r[1].heads.is_empty())
        .filter(|r| !replay(r[0], r[1], &own).is_some_and(|x| std::ptr::eq(x, r[1])))
        .count();
    let names: Vec<&str> = run.iter().map(|s| s.name.as_str()).collect();
    let mut md = format!(
        "\n## The run replayed under other knobs\n\n\
         Every PMI decode recorded, at each step given a null row, the tokens with p ≥ \
         {HEAD_FLOOR}·p_max (or α, if smaller) with their log p and log q, and the null row's \
         most likely token; from them each item's answer under other knobs is known without \
         decoding where those knobs take the run's token at every step, or leave the plain \
         path by taking the plain token, a content token. The other items are left out, and \
         they are not a random subset: they are where the knobs would have taken a token no \
         recorded path took, so knobs that act where the run did not are replayed mostly \
         where they change nothing. A row that replays every item is exact; read the others \
         as indications only. \"p_max < x\": reorder only a step less sure than x; \
         \"tops agree\": only a step whose most likely token is also the null query's. The \
         run's own knobs replay to the run on {} of {with_heads} items with heads. Accuracy Δ \
         and attractor errors against greedy on the same items, each condition's attractors \
         found among its own answers.\n\n\
         | knobs | replayed | {} | attractor errors greedy → replayed (relative) |\n|---|---|{}---|\n",
        with_heads - mismatched,
        names
            .iter()
            .map(|n| format!("Δ accuracy {n}"))
            .collect::<Vec<_>>()
            .join(" | "),
        "---|".repeat(names.len()),
    );
    let mut json = vec![];
    for g in &REPLAYS {
        let pairs: Vec<[&Record; 2]> = complete
            .iter()
            .filter_map(|r| Some([r[0], replay(r[0], r[1], g)?]))
            .collect();
        let (stats, _) = compare(&pairs, resamples);
        let cell = |name: &str| {
            stats
                .iter()
                .find(|s| s.name == name)
                .map_or("–".into(), |s| Interval::signed(&s.accuracy_delta))
        };
        let pooled = stats.first();
        md.push_str(&format!(
            "| {} | {} | {} | {} |\n",
            g.label(),
            if pairs.len() == complete.len() {
                format!("all {}", pairs.len())
            } else {
                format!("{} of {}", pairs.len(), complete.len())
            },
            names
                .iter()
                .map(|n| cell(n))
                .collect::<Vec<_>>()
                .join(" | "),
            pooled.map_or("–".into(), |s| format!(
                "{:.3} → {:.3} ({})",
                s.attractor[0],
                s.attractor[1],
                s.relative_text()
            )),
        ));
        json.push(serde_json::json!({
            "beta": g.beta,
            "plausibility": g.plausibility,
            "max_p": g.max_p,
            "agree": g.agree,
            "replayed": pairs.len(),
            "groups": stats.iter().map(|s| (s.name.clone(), s.json())).collect::<serde_json::Map<_, _>>(),
        }));
    }
    (
        md,
        serde_json::json!({"with_heads": with_heads, "own_knobs_mismatched": mismatched, "knobs": json}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: u32, rel: &str, answer: &str, correct: bool) -> Record {
        Record {
            id,
            relation: rel.into(),
            condition: "greedy".into(),
            answer: answer.into(),
            correct,
            steps: 1,
            contrasted: 0,
            contrast: None,
            prior_top_only: false,
            null_subject: None,
            null_others: None,
            max_tokens: None,
            heads: vec![],
        }
    }

    #[test]
    fn attractors_need_three_items_two_wrong_in_one_relation() {
        let rs = [
            rec(0, "capital", " Paris.", true),
            rec(1, "capital", " paris", false),
            rec(2, "capital", " the Paris, France. It is big.", false),
            rec(3, "capital", " Rome.", false),
            rec(4, "capital", " Rome.", false),
            rec(5, "capital", " Rome.", true),
            rec(6, "capital", " Bern.", false),
            rec(7, "capital", " Bern.", false),
            rec(8, "region", " Rome.", false),
            rec(9, "capital", " Oslo.", true),
            rec(10, "capital", " Oslo.", true),
            rec(11, "capital", " Oslo.", false),
        ];
        let refs: Vec<&Record> = rs.iter().collect();
        let a = attractors(&refs);
        let keys: Vec<&str> = a.keys().map(|(_, k)| k.as_str()).collect();
        // Bern: two items only; Oslo: one wrong; Rome counts only its three capital items.
        assert_eq!(keys, ["paris", "rome"]);
        assert_eq!(a[&("capital".into(), "rome".into())], (3, 2));
    }

    fn head(p: &[f64], q: &[f64], content: bool, null_top: u32, chosen: u32) -> Head {
        let ln = |x: &[f64]| x.iter().map(|v| v.ln() as f32).collect();
        Head {
            tokens: (10..10 + p.len() as u32).collect(),
            lp: ln(p),
            lq: ln(q),
            content: vec![content; p.len()],
            null_top,
            chosen,
            floor: None,
        }
    }

    #[test]
    fn replay_reads_other_knobs_from_the_heads() {
        let gate = |beta, plausibility, max_p, agree| Gate {
            beta,
            plausibility,
            max_p,
            agree,
        };
        let (p, q) = ([0.5, 0.3, 0.15], [0.7, 0.05, 0.05]);
        let plain = rec(0, "capital", " A.", false);
        let mut run = Record {
            condition: "pmi".into(),
            answer: " B.".into(),
            correct: true,
            contrasted: 1,
            heads: vec![head(&p, &q, true, 10, 11)],
            ..plain.clone()
        };
        let is = |x: Option<&Record>, want: &Record| x.is_some_and(|x| std::ptr::eq(x, want));
        // PMI: log 0.3 − log 0.05 leads; the run's own knobs give the run back.
        assert!(is(replay(&plain, &run, &REPLAYS[0]), &run));
        // β = 0.5 still picks token 11.
        assert!(is(replay(&plain, &run, &gate(0.5, 0.1, 1.0, false)), &run));
        // α = 0.7 leaves the plain token alone in the head; p_max 0.5 is not below 0.5; the
        // null row's top is not the step's: each keeps the plain token, a content token.
        for g in [
            gate(1.0, 0.7, 1.0, false),
            gate(1.0, 0.1, 0.5, false),
            gate(1.0, 0.1, 1.0, true),
        ] {
            let mut r = run.clone();
            r.heads[0].null_top = if g.agree { 12 } else { 10 };
            assert!(is(replay(&plain, &r, &g), &plain), "{g:?}");
        }
        assert!(is(replay(&plain, &run, &gate(1.0, 0.1, 1.0, true)), &run));
        // The plain token is not content: what follows would need a decode.
        run.heads[0].content = vec![false; 3];
        assert!(replay(&plain, &run, &gate(1.0, 0.7, 1.0, false)).is_none());
        // Two steps: the first took the plain token (" the": PMI keeps it), the second PMI's.
        run.contrasted = 2;
        run.heads = vec![
            head(&[0.9, 0.05], &[0.1, 0.1], false, 10, 10),
            head(&p, &q, true, 10, 11),
        ];
        assert!(is(
            replay(&plain, &run, &gate(1.0, 0.7, 1.0, false)),
            &plain
        ));
        assert!(is(replay(&plain, &run, &REPLAYS[0]), &run));
        // The first step left the plain path: a later difference cannot be read.
        run.heads[0].chosen = 11;
        assert!(replay(&plain, &run, &gate(1.0, 0.7, 1.0, false)).is_none());
        // A head kept only down to half of p_max cannot tell knobs with α = 0.1.
        run.heads[0].chosen = 10;
        run.heads[1].floor = Some(0.5f32.ln());
        assert!(is(
            replay(&plain, &run, &gate(1.0, 0.7, 1.0, false)),
            &plain
        ));
        assert!(replay(&plain, &run, &REPLAYS[0]).is_none());
        // A run without heads (written before they were kept) is not replayed.
        run.heads.clear();
        assert!(replay(&plain, &run, &REPLAYS[0]).is_none());
    }

    #[test]
    fn the_null_query_replaces_the_subject() {
        let it = Item {
            id: 3,
            relation: "capital".into(),
            subject: "Chad".into(),
            question: "What is the capital of Chad?".into(),
            stem: "The capital of Chad is".into(),
            answers: vec!["N'Djamena".into()],
        };
        let (q, s) = null_query(&it, NULL_SUBJECT).unwrap();
        assert_eq!(q, "What is the capital of N/A?");
        assert_eq!(s, "The capital of N/A is");
        let (q, _) = null_query(&it, "Zembla").unwrap();
        assert_eq!(q, "What is the capital of Zembla?");
        let bad = Item {
            subject: "Niger".into(),
            ..it
        };
        assert!(null_query(&bad, NULL_SUBJECT).is_err());
    }

    #[test]
    fn a_resume_under_other_knobs_is_refused() {
        let o = Options {
            beta: 1.0,
            plausibility: 0.1,
            prior_top_only: true,
            max_tokens: 16,
            null_subject: NULL_SUBJECT.into(),
            null_others: 0,
        };
        let plain = rec(0, "capital", " A.", false);
        let run = Record {
            condition: "pmi".into(),
            contrast: Some([1.0, 0.1]),
            prior_top_only: true,
            ..plain.clone()
        };
        let out = Path::new("pmi.jsonl");
        // Records of before (no subject, no limit recorded) carry the defaults.
        assert!(resumable(&[plain.clone(), run.clone()], &o, out).is_ok());
        let refused = |r: Record| resumable(&[plain.clone(), r], &o, out).is_err();
        assert!(refused(Record {
            null_subject: Some("Zembla".into()),
            ..run.clone()
        }));
        assert!(refused(Record {
            max_tokens: Some(32),
            ..run.clone()
        }));
        assert!(refused(Record {
            prior_top_only: false,
            ..run.clone()
        }));
        assert!(refused(Record {
            contrast: Some([0.5, 0.1]),
            ..run.clone()
        }));
        // A plain decode at another limit is refused too; its subject is not asked.
        assert!(refused(Record {
            max_tokens: Some(8),
            ..plain.clone()
        }));
        let other = Options {
            null_subject: "Zembla".into(),
            ..o.clone()
        };
        assert!(resumable(std::slice::from_ref(&plain), &other, out).is_ok());
        let msg = resumable(&[plain.clone(), run.clone()], &other, out)
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("\"Zembla\"") && msg.contains("another --out"),
            "{msg}"
        );
        // The mean of other items is another null row.
        let batch = Options {
            null_others: 4,
            ..o.clone()
        };
        assert!(resumable(&[plain.clone(), run.clone()], &batch, out).is_err());
        let run4 = Record {
            null_others: Some(4),
            ..run
        };
        assert!(resumable(&[plain.clone(), run4.clone()], &batch, out).is_ok());
        assert!(resumable(&[plain, run4], &o, out).is_err());
    }

    #[test]
    fn the_null_batch_is_the_next_items_of_the_relation() {
        let it = |id: u32, rel: &str| Item {
            id,
            relation: rel.into(),
            subject: format!("S{id}"),
            question: format!("Q{id}"),
            stem: String::new(),
            answers: vec![],
        };
        let items = [it(0, "a"), it(1, "b"), it(2, "a"), it(3, "a"), it(4, "b")];
        let ids = |v: Vec<&Item>| v.iter().map(|i| i.id).collect::<Vec<_>>();
        assert_eq!(ids(others(&items, &items[3], 2)), [0, 2]);
        assert_eq!(ids(others(&items, &items[0], 5)), [2, 3]);
        assert_eq!(ids(others(&items, &items[1], 1)), [4]);
        assert!(others(&items, &it(9, "a"), 2).is_empty());
    }

    #[test]
    fn the_mean_null_row_is_the_mean_distribution() {
        let a = [0.0f32, 2f32.ln(), f32::NEG_INFINITY]; // p = 1/3, 2/3, 0
        let b = [0.0f32, 0.0, 0.0]; // p = 1/3 each
        let mut n = Null {
            seqs: vec![(a.to_vec(), ()), (b.to_vec(), ())],
            row: vec![0.0; 3],
        };
        n.mix().unwrap();
        let want = [1.0 / 3.0, 0.5, 1.0 / 6.0];
        for (x, w) in n.row.iter().zip(want) {
            assert!((x.exp() as f64 - w).abs() < 1e-6, "{:?}", n.row);
        }
        // One row is given as it is.
        n.seqs.truncate(1);
        n.mix().unwrap();
        assert_eq!(n.row, a);
    }
}
