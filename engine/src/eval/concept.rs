//! Concept-direction anchoring on closed-book QA (docs/EVALUATION.md §4; SCIENCE.md §4.2–4.3
//! target (c), T13): every item answered greedily three times — plainly, tilted toward its
//! relation's answer-type direction, and tilted toward a random direction of the same norm —
//! each tilt bounded by the same KL per step. Answer-type compliance is the fraction of first
//! sentences that name any answer of the relation (any capital for capitals, any continent for
//! continents); accuracy is the bank's grade.
//!
//! The direction of a relation is ℓ = mean γ(t) over the first tokens of its answers (each
//! answer as it follows the stem, with a leading space) minus the mean γ over the vocabulary
//! (Park et al. 2024). It is **cross-fitted**: an item's direction is built from the answers of
//! the other half of the bank (the FNV-1a(subject) split of `eval qa`), so its own answer enters
//! only if another item shares it. The random control draws ℓ_r from a seeded Gaussian and
//! scales it to ‖ℓ‖; both biases Γℓ are then standardised, so λ and the KL bound treat them
//! alike.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::metrics::{self, Interval};
use super::qa::{self, Item};
use crate::Engine;
use crate::unembed::Unembedding;
use infogravity::concept;
use infogravity::sampler::Rng;
use infogravity::{Concept, Error, GravityProcessor, Result, flags};

/// The three decodes of every item, in order.
pub const CONDITIONS: [&str; 3] = ["greedy", "concept", "random"];

/// The tilt's knobs (the `concept` configuration section).
#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub lambda: f32,
    pub max_kl: f32,
    pub min_void: f32,
    /// Tilt only the first this many steps of an answer (0: every step).
    pub max_steps: u32,
    /// Tilt only while the relation's answer tokens hold less than this much of the step's
    /// probability (`concept.max_type_mass`; 1: off).
    pub max_type_mass: f32,
    /// The gate's set: every answer of the relation (true: the item's own included) or the
    /// other half's, the direction's own `toward` set (false).
    pub type_all: bool,
    /// Tilt only until the answer's first content token (`concept.until_content`).
    pub until_content: bool,
    /// What the answer type is contrasted with.
    pub away: Away,
    /// Tokens per answer (the first sentence ends it sooner).
    pub max_tokens: usize,
    /// Seed of the random directions.
    pub seed: u64,
}

/// The other side of the answer-type contrast ℓ = mean γ(answer tokens) − mean γ(away).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Away {
    /// The mean over the vocabulary.
    Vocab,
    /// What the model says instead: the first tokens of the plain greedy answers of the other
    /// half of the bank that are not answer tokens (the vocabulary mean when there are none).
    Model,
}

impl Away {
    pub fn name(self) -> &'static str {
        match self {
            Away::Vocab => "vocab",
            Away::Model => "model",
        }
    }
}

/// What one decode of one item produced.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub id: u32,
    pub relation: String,
    pub condition: String,
    pub answer: String,
    pub correct: bool,
    /// The first sentence names an answer of the relation.
    pub compliant: bool,
    /// Steps decoded, and how many of them were tilted.
    pub steps: u32,
    pub tilted: u32,
    /// Σ KL over the tilted steps, nats.
    pub sum_kl: f64,
    /// The knobs of a tilted decode ([`knobs`]; None: a plain one, or a record written before
    /// records carried them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub knobs: Option<String>,
}

/// Everything that shapes a tilted decode, as one string: the configuration, the direction's
/// `away` side, the gate's set, the random seed and the answer length.
pub fn knobs(o: &Options) -> String {
    format!(
        "{} away={} type_all={} seed={} max_tokens={}",
        config(o),
        o.away.name(),
        o.type_all,
        o.seed,
        o.max_tokens
    )
}

/// The two concepts (answer type, random) of each (relation, fold).
pub struct Directions {
    map: HashMap<(String, bool), (Concept, Concept)>,
    /// Distinct (toward, away) tokens per relation and fold.
    pub tokens: BTreeMap<String, [[usize; 2]; 2]>,
}

fn fold(item: &Item) -> bool {
    qa::is_train(&item.subject)
}

/// The cross-fitted directions of every relation of `items`; `plain` holds the greedy records
/// (read for [`Away::Model`]).
pub fn directions(
    e: &Engine,
    u: &Unembedding,
    items: &[Item],
    plain: &HashMap<u32, &Record>,
    o: &Options,
) -> Result<Directions> {
    let (v, d) = (u.vocab, u.dim);
    let row = |t: usize, o: &mut [f32]| u.row(t, o);
    let relations: Vec<String> = items
        .iter()
        .map(|i| i.relation.clone())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut out = Directions {
        map: HashMap::new(),
        tokens: BTreeMap::new(),
    };
    let mut rng = Rng::new(o.seed);
    for rel in &relations {
        // The type-mass gate's set under `type_all`: the first tokens of every answer of the
        // relation, both halves — a host's complete list (every capital), which holds each
        // item's own answer; otherwise the other half's, as the direction.
        let mut types = std::collections::BTreeSet::new();
        for it in items.iter().filter(|i| &i.relation == rel) {
            for a in &it.answers {
                if let Some(&t) = e.encode(&format!(" {a}"))?.first() {
                    types.insert(t);
                }
            }
        }
        let types: Vec<u32> = types.into_iter().collect();
        for f in [false, true] {
            let mut toward = std::collections::BTreeSet::new();
            for it in items.iter().filter(|i| &i.relation == rel && fold(i) != f) {
                for a in &it.answers {
                    if let Some(&t) = e.encode(&format!(" {a}"))?.first() {
                        toward.insert(t);
                    }
                }
            }
            if toward.is_empty() {
                return Err(Error::InvalidArgument(format!(
                    "relation {rel}: one half of the bank has no items to build its direction from"
                )));
            }
            let mut away = std::collections::BTreeSet::new();
            if o.away == Away::Model {
                for it in items.iter().filter(|i| &i.relation == rel && fold(i) != f) {
                    let first = match plain.get(&it.id) {
                        Some(r) => e.encode(&r.answer)?.first().copied(),
                        None => None,
                    };
                    if let Some(t) = first.filter(|t| !toward.contains(t)) {
                        away.insert(t);
                    }
                }
            }
            let toward: Vec<u32> = toward.into_iter().collect();
            let away: Vec<u32> = away.into_iter().collect();
            let dir = concept::direction(v, d, row, &toward, &away)?;
            let norm = dir.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
            let mut rand: Vec<f64> = (0..d).map(|_| gaussian(&mut rng)).collect();
            let rn = rand.iter().map(|x| x * x).sum::<f64>().sqrt();
            rand.iter_mut().for_each(|x| *x *= norm / rn);
            let rand: Vec<f32> = rand.iter().map(|&x| x as f32).collect();
            let gate = if o.type_all { &types } else { &toward };
            let concept = Concept::from_direction(v, row, &dir)?.with_tokens(gate)?;
            let random = Concept::from_direction(v, row, &rand)?.with_tokens(gate)?;
            out.map.insert((rel.clone(), f), (concept, random));
            out.tokens.entry(rel.clone()).or_insert([[0; 2]; 2])[f as usize] =
                [toward.len(), away.len()];
        }
    }
    Ok(out)
}

/// A standard normal draw (Box–Muller).
fn gaussian(rng: &mut Rng) -> f64 {
    let u1 = rng.uniform().max(f64::MIN_POSITIVE);
    let u2 = rng.uniform();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// The decode configuration: greedy, nothing but the tilt.
pub fn config(o: &Options) -> String {
    format!(
        r#"{{"preset":"neutral","temperature":{{"base":0}},"concept":{{"enabled":true,"lambda":{},"max_kl":{},"min_void":{},"max_steps":{},"max_type_mass":{},"until_content":{}}}}}"#,
        o.lambda, o.max_kl, o.min_void, o.max_steps, o.max_type_mass, o.until_content
    )
}

/// One greedy decode of `item` through `p` (its concept already set, or none).
fn decode(
    e: &mut Engine,
    p: &mut GravityProcessor,
    item: &Item,
    types: &[String],
    condition: &str,
    max_tokens: usize,
) -> Result<Record> {
    let seq = item.id as u64;
    p.begin(seq, &Default::default())?;
    let v = e.lm.info().vocab;
    let (ids, _, _) = crate::prompt_with_span(e, None, &item.question, &item.stem)?;
    let (logits, mut cache) = e.prefill(&ids)?;
    let row = logits[logits.len() - v..].to_vec();
    drop(logits);
    let (mut steps, mut tilted, mut sum_kl) = (0u32, 0u32, 0f64);
    let answer = qa::decode_answer(e, p, seq, row, &mut cache, max_tokens, |_, rep, _| {
        steps += 1;
        if rep.flags & flags::CONCEPT != 0 {
            tilted += 1;
            sum_kl += rep.concept_kl as f64;
        }
        Ok(())
    })?;
    p.end(seq)?;
    Ok(Record {
        id: item.id,
        relation: item.relation.clone(),
        condition: condition.to_string(),
        correct: qa::grade(&answer, &item.answers),
        compliant: qa::grade(&answer, types),
        answer,
        steps,
        tilted,
        sum_kl,
        knobs: None,
    })
}

/// Every answer of each relation (what compliance looks for).
fn answer_types(items: &[Item]) -> HashMap<String, Vec<String>> {
    let mut m: HashMap<String, Vec<String>> = HashMap::new();
    for i in items {
        m.entry(i.relation.clone())
            .or_default()
            .extend(i.answers.iter().cloned());
    }
    for v in m.values_mut() {
        v.sort();
        v.dedup();
    }
    m
}

/// Decode every item plainly, build the directions (from the plain answers too, for
/// [`Away::Model`]), then decode every item under the two tilts; (id, condition) pairs already
/// in `out` are skipped, so a run resumes. `progress(done, total)` per decode.
pub fn run(
    e: &mut Engine,
    u: &Unembedding,
    items: &[Item],
    o: &Options,
    out: &Path,
    mut progress: impl FnMut(usize, usize),
) -> Result<(Vec<Record>, Directions)> {
    let ids: HashSet<u32> = items.iter().map(|i| i.id).collect();
    let mut have: Vec<Record> = super::read_jsonl(out, "concept results")?;
    have.retain(|r| ids.contains(&r.id));
    // Resuming under other knobs would mix two configurations in one table.
    let want = knobs(o);
    if let Some(r) = have
        .iter()
        .find(|r| r.condition != CONDITIONS[0] && r.knobs.as_deref() != Some(want.as_str()))
    {
        return Err(Error::InvalidArgument(format!(
            "{}: item {} ({}) was decoded with the knobs {}, this run asks for {want}; use \
             another --out",
            out.display(),
            r.id,
            r.condition,
            r.knobs.as_deref().unwrap_or("(not recorded)"),
        )));
    }
    let mut file = super::append(out)?;
    let types = answer_types(items);
    let cfg = infogravity::Config::from_json(&config(o))?;
    let mut p = GravityProcessor::new(cfg, e.lm.info().vocab)?;
    p.set_content_tokens(Some(crate::content_table(e)?))?;
    let total = items.len() * CONDITIONS.len();
    let mut dirs = None;
    for (k, cond) in CONDITIONS.iter().enumerate() {
        let done: HashSet<u32> = have
            .iter()
            .filter(|r| r.condition == *cond)
            .map(|r| r.id)
            .collect();
        if k == 1 {
            let plain: HashMap<u32, &Record> = have
                .iter()
                .filter(|r| r.condition == CONDITIONS[0])
                .map(|r| (r.id, r))
                .collect();
            dirs = Some(directions(e, u, items, &plain, o)?);
        }
        for (n, item) in items.iter().enumerate() {
            if !done.contains(&item.id) {
                let concept = dirs
                    .as_ref()
                    .map(|d| &d.map[&(item.relation.clone(), fold(item))]);
                p.set_concept(match (k, concept) {
                    (1, Some(c)) => Some(c.0.clone()),
                    (2, Some(c)) => Some(c.1.clone()),
                    _ => None,
                })?;
                let mut r = decode(e, &mut p, item, &types[&item.relation], cond, o.max_tokens)?;
                r.knobs = (k > 0).then(|| want.clone());
                super::write_line(&mut file, out, &r)?;
                have.push(r);
            }
            progress(k * items.len() + n + 1, total);
        }
    }
    have.sort_by(|a, b| (a.id, &a.condition).cmp(&(b.id, &b.condition)));
    let dirs = dirs.expect("built before the first tilted decode");
    Ok((have, dirs))
}

/// The markdown and JSON report.
pub struct Report {
    pub markdown: String,
    pub json: serde_json::Value,
}

/// Compliance and accuracy per condition and relation, the paired differences from greedy
/// with bootstrap intervals, and the tilt's size. `residual` is the unembedding check
/// ([`crate::unembed::residual`]).
pub fn report(
    records: &[Record],
    dirs: &Directions,
    o: &Options,
    residual: f64,
    resamples: usize,
    provenance: &str,
) -> Report {
    // Per item: (relation, [condition] → record).
    let mut by_item: BTreeMap<u32, (String, [Option<&Record>; 3])> = BTreeMap::new();
    for r in records {
        let k = CONDITIONS.iter().position(|c| *c == r.condition);
        if let Some(k) = k {
            let e = by_item
                .entry(r.id)
                .or_insert_with(|| (r.relation.clone(), [None; 3]));
            e.1[k] = Some(r);
        }
    }
    let complete: Vec<(&String, [&Record; 3])> = by_item
        .values()
        .filter_map(|(rel, rs)| Some((rel, [rs[0]?, rs[1]?, rs[2]?])))
        .collect();
    let mut groups: Vec<(String, Vec<usize>)> =
        vec![("pooled".into(), (0..complete.len()).collect())];
    let rels: std::collections::BTreeSet<&String> = complete.iter().map(|(r, _)| *r).collect();
    for rel in rels {
        let idx = (0..complete.len())
            .filter(|&i| complete[i].0 == rel)
            .collect();
        groups.push((rel.clone(), idx));
    }
    let mut md = format!(
        "# Concept-direction anchoring (T13)\n\n{provenance}\n\nGreedy decoding; the tilt: λ = {}, \
         KL ≤ {} nats per step, min_void {}{}, {}; at most {} tokens per answer. Unembedding check: \
         ĥ fitted on 2·d tokens of the first item's prompt reproduces every logit with relative \
         residual {residual:.2e}.\n\n",
        o.lambda,
        o.max_kl,
        o.min_void,
        if o.max_type_mass < 1.0 {
            format!(
                ", only while {} hold less than {} of the step's probability",
                if o.type_all {
                    "the first tokens of every answer of the relation (the item's own included)"
                } else {
                    "the answer tokens of the direction (the other half's)"
                },
                o.max_type_mass
            )
        } else {
            String::new()
        },
        match (o.max_steps, o.until_content) {
            (0, false) => "every step".to_string(),
            (0, true) => "until the answer's first content token".to_string(),
            (n, false) => format!("the first {n} steps of each answer"),
            (n, true) =>
                format!("the first {n} steps of each answer, until its first content token"),
        },
        o.max_tokens
    );
    md.push_str(&format!(
        "Direction: the answer tokens (distinct first tokens of the other half's answers) against {}; tokens per fold (toward, away): ",
        match o.away {
            Away::Vocab => "the vocabulary mean",
            Away::Model => "the first tokens of the other half's plain answers that are not answer tokens",
        }
    ));
    md.push_str(
        &dirs
            .tokens
            .iter()
            .map(|(r, [[a, b], [c, d]])| format!("{r} ({a}, {b}) / ({c}, {d})"))
            .collect::<Vec<_>>()
            .join(", "),
    );
    md.push_str(".\n\n| group | n | compliance greedy | concept | random | Δ concept (95% CI) | Δ random | accuracy greedy | concept | random | Δ concept | Δ random |\n|---|---|---|---|---|---|---|---|---|---|---|\n");
    let mut json_groups = serde_json::Map::new();
    for (gi, (name, idx)) in groups.iter().enumerate() {
        let col = |k: usize, f: fn(&Record) -> bool| -> Vec<f64> {
            idx.iter()
                .map(|&i| f(complete[i].1[k]) as u8 as f64)
                .collect()
        };
        let comp: Vec<Vec<f64>> = (0..3).map(|k| col(k, |r| r.compliant)).collect();
        let acc: Vec<Vec<f64>> = (0..3).map(|k| col(k, |r| r.correct)).collect();
        let mean = |x: &[f64]| x.iter().sum::<f64>() / x.len().max(1) as f64;
        let diff = |x: &[Vec<f64>], k: usize, seed: u64| {
            metrics::paired_diff(&x[k], &x[0], resamples, seed)
        };
        let seed = 0x5eed + gi as u64;
        let (dc1, dc2) = (diff(&comp, 1, seed), diff(&comp, 2, seed));
        let (da1, da2) = (diff(&acc, 1, seed), diff(&acc, 2, seed));
        md.push_str(&format!(
            "| {name} | {} | {:.3} | {:.3} | {:.3} | {} | {} | {:.3} | {:.3} | {:.3} | {} | {} |\n",
            idx.len(),
            mean(&comp[0]),
            mean(&comp[1]),
            mean(&comp[2]),
            Interval::signed(&dc1),
            Interval::signed(&dc2),
            mean(&acc[0]),
            mean(&acc[1]),
            mean(&acc[2]),
            Interval::signed(&da1),
            Interval::signed(&da2),
        ));
        let iv = Interval::json;
        json_groups.insert(
            name.clone(),
            serde_json::json!({
                "n": idx.len(),
                "compliance": [mean(&comp[0]), mean(&comp[1]), mean(&comp[2])],
                "accuracy": [mean(&acc[0]), mean(&acc[1]), mean(&acc[2])],
                "compliance_delta_concept": iv(&dc1),
                "compliance_delta_random": iv(&dc2),
                "accuracy_delta_concept": iv(&da1),
                "accuracy_delta_random": iv(&da2),
            }),
        );
    }
    // The tilt's size and what it changed.
    md.push_str("\n| condition | steps | tilted | mean KL per tilted step | answers changed vs greedy |\n|---|---|---|---|---|\n");
    let mut json_tilt = serde_json::Map::new();
    for (k, cond) in CONDITIONS.iter().enumerate().skip(1) {
        let steps: u32 = complete.iter().map(|(_, r)| r[k].steps).sum();
        let tilted: u32 = complete.iter().map(|(_, r)| r[k].tilted).sum();
        let kl: f64 = complete.iter().map(|(_, r)| r[k].sum_kl).sum();
        let changed = complete
            .iter()
            .filter(|(_, r)| r[k].answer != r[0].answer)
            .count();
        let mean_kl = kl / tilted.max(1) as f64;
        md.push_str(&format!(
            "| {cond} | {steps} | {tilted} | {mean_kl:.4} | {changed} of {} |\n",
            complete.len()
        ));
        json_tilt.insert(
            cond.to_string(),
            serde_json::json!({"steps": steps, "tilted": tilted, "mean_kl": mean_kl, "changed": changed}),
        );
    }
    Report {
        markdown: md,
        json: serde_json::json!({
            "provenance": provenance,
            "lambda": o.lambda,
            "max_kl": o.max_kl,
            "min_void": o.min_void,
            "max_steps": o.max_steps,
            "max_type_mass": o.max_type_mass,
            "type_set": if o.type_all { "all" } else { "half" },
            "until_content": o.until_content,
            "away": o.away.name(),
            "max_tokens": o.max_tokens,
            "unembedding_residual": residual,
            "direction_tokens": dirs.tokens,
            "groups": json_groups,
            "tilt": json_tilt,
        }),
    }
}
