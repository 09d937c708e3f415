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

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::metrics::{self, Interval};
use super::qa::{self, Item};
use crate::Engine;
use infogravity::{ContentTable, Error, GravityProcessor, Result, flags};

/// The two decodes of every item, in order.
pub const CONDITIONS: [&str; 2] = ["greedy", "pmi"];

/// What replaces the subject in the null query (calibrate-before-use's content-free input).
pub const NULL_SUBJECT: &str = "N/A";

/// An answer at least this many items of a relation receive …
pub const ATTRACTOR_ITEMS: usize = 3;
/// … at least this many of them wrongly, is an attractor.
pub const ATTRACTOR_WRONG: usize = 2;

/// The contrast's knobs (the `contrast` configuration section).
#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub beta: f32,
    pub plausibility: f32,
    /// Tokens per answer (the first sentence ends it sooner).
    pub max_tokens: usize,
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
}

/// The decode configuration: greedy, nothing but the contrast (which acts only where a row is
/// given: the plain decode gives none).
pub fn config(o: &Options) -> String {
    format!(
        r#"{{"preset":"neutral","temperature":{{"base":0}},"contrast":{{"enabled":true,"beta":{},"plausibility":{},"until_content":true}}}}"#,
        o.beta, o.plausibility
    )
}

/// The item's question and stem with its subject replaced by [`NULL_SUBJECT`]; an item whose
/// question does not name its subject has no null query and is refused.
pub fn null_query(item: &Item) -> Result<(String, String)> {
    if item.subject.trim().is_empty() || !item.question.contains(&item.subject) {
        return Err(Error::InvalidArgument(format!(
            "item {}: the question {:?} does not name its subject {:?}, so it has no null query",
            item.id, item.question, item.subject
        )));
    }
    Ok((
        item.question.replace(&item.subject, NULL_SUBJECT),
        item.stem.replace(&item.subject, NULL_SUBJECT),
    ))
}

/// One greedy decode of `item` through `p`, with the null-query row until the first content
/// token when `pmi`.
fn decode(
    e: &mut Engine,
    p: &mut GravityProcessor,
    table: &ContentTable,
    item: &Item,
    pmi: bool,
    o: &Options,
) -> Result<Record> {
    let Options {
        beta,
        plausibility,
        max_tokens,
    } = *o;
    let seq = item.id as u64;
    let v = e.lm.info().vocab;
    let (ids, _, _) = crate::prompt_with_span(e, None, &item.question, &item.stem)?;
    let (logits, mut cache) = e.prefill(&ids)?;
    let row = logits[logits.len() - v..].to_vec();
    drop(logits);
    // The null sequence: its row and cache while the answer has no content token yet.
    let mut null = if pmi {
        let (q, stem) = null_query(item)?;
        let (ids, _, _) = crate::prompt_with_span(e, None, &q, &stem)?;
        let (logits, cache) = e.prefill(&ids)?;
        Some((logits[logits.len() - v..].to_vec(), cache))
    } else {
        None
    };
    p.begin(seq, &Default::default())?;
    let (mut steps, mut contrasted) = (0u32, 0u32);
    let before = |e: &mut Engine, p: &mut GravityProcessor, prev: Option<u32>| {
        if let Some(t) = prev {
            if table.is_content(t) {
                null = None;
            } else if let Some((row, cache)) = &mut null {
                *row = e.lm.forward(cache, &[t])?;
            }
        }
        match &null {
            Some((row, _)) => p.set_contrast(seq, row),
            None => Ok(()),
        }
    };
    let answer =
        qa::decode_answer_with(e, p, seq, row, &mut cache, max_tokens, before, |_, r, _| {
            steps += 1;
            contrasted += (r.flags & flags::CONTRAST != 0) as u32;
            Ok(())
        })?;
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
    })
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
    for it in items {
        null_query(it)?;
    }
    let ids: HashSet<u32> = items.iter().map(|i| i.id).collect();
    let mut have: Vec<Record> = super::read_jsonl(out, "pmi results")?;
    have.retain(|r| ids.contains(&r.id));
    // Resuming under other knobs would mix two configurations in one table.
    let want = [o.beta, o.plausibility];
    if let Some(r) = have
        .iter()
        .find(|r| r.condition == CONDITIONS[1] && r.contrast != Some(want))
    {
        return Err(Error::InvalidArgument(format!(
            "{}: item {} was decoded with the contrast {:?} ([β, α]), this run asks for {want:?}; \
             use another --out",
            out.display(),
            r.id,
            r.contrast
        )));
    }
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
                let r = decode(e, &mut p, &table, item, k == 1, o)?;
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

/// The markdown and JSON report.
pub struct Report {
    pub markdown: String,
    pub json: serde_json::Value,
}

/// Accuracy and the attractor-error rate per condition and relation, the paired differences with
/// bootstrap intervals (over items, with each condition's attractors held fixed), and the
/// attractors themselves.
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
    let attr: Vec<BTreeMap<(String, String), (usize, usize)>> = (0..2)
        .map(|k| attractors(&complete.iter().map(|r| r[k]).collect::<Vec<_>>()))
        .collect();
    // An attractor error: a wrong answer that is an attractor (a right one is not counted:
    // on a many-to-one relation such as region, many right answers share one).
    let is_attr = |k: usize, r: &Record| {
        !r.correct && attr[k].contains_key(&(r.relation.clone(), key(&r.answer)))
    };
    let mut groups: Vec<(String, Vec<usize>)> =
        vec![("pooled".into(), (0..complete.len()).collect())];
    let rels: std::collections::BTreeSet<&String> =
        complete.iter().map(|r| &r[0].relation).collect();
    for rel in rels {
        groups.push((
            rel.clone(),
            (0..complete.len())
                .filter(|&i| &complete[i][0].relation == rel)
                .collect(),
        ));
    }
    let mut md = format!(
        "# Null-query PMI against attractor answers (SCIENCE.md §4.3 d)\n\n{provenance}\n\n\
         Greedy decoding; the contrast: each step until the answer's first content token reorders \
         the tokens with p ≥ {}·p_max by log p − {}·log q, q the next-token distribution of the \
         same prompt with the subject replaced by \"{NULL_SUBJECT}\"; at most {} tokens per \
         answer. An attractor answer: the head of a first sentence (to a comma, normalised, \
         without a leading \"the\") that ≥ {ATTRACTOR_ITEMS} items \
         of a relation receive, ≥ {ATTRACTOR_WRONG} of them wrongly, found among each \
         condition's own answers; the attractor-error rate: the fraction of items answered \
         wrongly with one; intervals: paired bootstrap over items ({resamples} \
         resamples) with each condition's attractors held fixed.\n\n\
         | group | n | accuracy greedy | PMI | Δ (95% CI) | attractor errors greedy | PMI | Δ (95% CI) | relative |\n\
         |---|---|---|---|---|---|---|---|---|\n",
        o.plausibility, o.beta, o.max_tokens
    );
    let mut json_groups = serde_json::Map::new();
    for (gi, (name, idx)) in groups.iter().enumerate() {
        let col = |f: &dyn Fn(usize, &Record) -> bool, k: usize| -> Vec<f64> {
            idx.iter()
                .map(|&i| f(k, complete[i][k]) as u8 as f64)
                .collect()
        };
        let acc: Vec<Vec<f64>> = (0..2).map(|k| col(&|_, r| r.correct, k)).collect();
        let att: Vec<Vec<f64>> = (0..2).map(|k| col(&is_attr, k)).collect();
        let mean = |x: &[f64]| x.iter().sum::<f64>() / x.len().max(1) as f64;
        let diff = |x: &[Vec<f64>], seed: u64| metrics::paired_diff(&x[1], &x[0], resamples, seed);
        let seed = 0x9e1 + gi as u64;
        let (da, dt) = (diff(&acc, seed), diff(&att, seed));
        let (t0, t1) = (mean(&att[0]), mean(&att[1]));
        let relative = (t0 > 0.0).then(|| (t1 - t0) / t0);
        md.push_str(&format!(
            "| {name} | {} | {:.3} | {:.3} | {} | {t0:.3} | {t1:.3} | {} | {} |\n",
            idx.len(),
            mean(&acc[0]),
            mean(&acc[1]),
            Interval::signed(&da),
            Interval::signed(&dt),
            relative.map_or("–".into(), |r| format!("{:+.0}%", 100.0 * r)),
        ));
        let iv = Interval::json;
        json_groups.insert(
            name.clone(),
            serde_json::json!({
                "n": idx.len(),
                "accuracy": [mean(&acc[0]), mean(&acc[1])],
                "accuracy_delta": iv(&da),
                "attractor_error_rate": [t0, t1],
                "attractor_delta": iv(&dt),
                "attractor_relative": relative,
            }),
        );
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
            "null_subject": NULL_SUBJECT,
            "max_tokens": o.max_tokens,
            "items": by_rel,
            "groups": json_groups,
            "attractors": json_attr,
            "steps": steps,
            "contrasted": contrasted,
            "changed": changed,
            "wrong_to_right": fixed,
            "right_to_wrong": broke,
        }),
    }
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
        let (q, s) = null_query(&it).unwrap();
        assert_eq!(q, "What is the capital of N/A?");
        assert_eq!(s, "The capital of N/A is");
        let bad = Item {
            subject: "Niger".into(),
            ..it
        };
        assert!(null_query(&bad).is_err());
    }
}
