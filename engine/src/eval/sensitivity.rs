//! Prompt sensitivity (docs/EVALUATION.md §5; docs/DESIGN.md §1 "Further field quantities":
//! semantic-field stability): each QA item is asked in its bank wording and three rewordings, with the same
//! answer stem. At the first answer position, S = 1 − mean_k JSD(p(·|Q), p(·|Q'_k)) / ln 2 and
//! ΔΦ = mean_k Φ(t|Q'_k) − Φ(t|Q) for the bank wording's greedy token t. Each wording is
//! answered greedily; the question is whether low S predicts that the answer changes.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::metrics;
use super::qa::{self, Item};
use super::{Prompt, read_jsonl, run_batches, write_line};
use infogravity::Result;

/// The three rewordings of each relation ({} = the subject). The stem is the bank's.
pub fn rewordings(item: &Item) -> [String; 3] {
    let x = &item.subject;
    if item.relation == "capital" {
        [
            format!("Which city is the capital of {x}?"),
            format!("Name the capital city of {x}."),
            format!("{x} has its seat of government in which city?"),
        ]
    } else {
        [
            format!("On which continent is {x} located?"),
            format!("Name the continent where {x} lies."),
            format!("{x} is a country on which continent?"),
        ]
    }
}

/// One item: its four greedy answers (bank wording first) and the field measures.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SensRecord {
    pub item: u32,
    pub relation: String,
    pub answers: Vec<String>,
    /// Per rewording: its answer differs from the bank wording's ([`answer_key`]).
    pub changed: Vec<bool>,
    /// Per wording: graded right.
    pub correct: Vec<bool>,
    /// JSD(p(·|Q), p(·|Q'_k)) in nats per rewording, and S.
    pub jsd: Vec<f64>,
    pub stability: f64,
    /// Mean over rewordings of Φ(t|Q'_k) − Φ(t|Q), t the bank wording's greedy first token.
    pub delta_phi: f64,
    /// Entropy (nats) and p_max of the bank wording's first answer position.
    pub entropy: f64,
    pub p_max: f64,
}

/// What an answer says: "=" (one of the accepted answers, so every right answer is the same
/// answer), else its first clause — up to the first comma of its first sentence — folded.
/// " San Marino, Italy." and " San Marino." are the same answer; " Biafra." and " Brugo, a city"
/// are not.
pub fn answer_key(answer: &str, accepted: &[String]) -> String {
    if qa::grade(answer, accepted) {
        return "=".into();
    }
    let s = qa::first_sentence(answer);
    qa::normalise(s.split(',').next().unwrap_or(s))
}

const GREEDY: &str = r#"{"preset":"neutral","temperature":{"base":0}}"#;

/// Run every item (four rows each, batches of `batch` rounded to a multiple of 4 so an item's
/// rows share a batch), appending to `dir/sensitivity.jsonl` (resumable).
pub fn run(
    e: &mut crate::Engine,
    items: &[Item],
    tokens: usize,
    batch: usize,
    dir: &std::path::Path,
    mut progress: impl FnMut(usize, usize),
) -> Result<Vec<SensRecord>> {
    let path = dir.join("sensitivity.jsonl");
    let mut have: Vec<SensRecord> = read_jsonl(&path, "sensitivity results")?;
    let mut file = super::append(&path)?;
    let mut rows: Vec<Prompt> = vec![];
    for it in items {
        rows.push(qa::item_prompt(e, &it.question, &it.stem)?);
        for q in rewordings(it) {
            rows.push(qa::item_prompt(e, &q, &it.stem)?);
        }
    }
    let mut done = vec![false; rows.len()];
    for (i, it) in items.iter().enumerate() {
        if have.iter().any(|r| r.item == it.id) {
            done[4 * i..4 * i + 4].fill(true);
        }
    }
    // First-position logits of each row (taken by the hook at the row's first step) and the
    // answers, until an item's four rows are in.
    let first = std::sync::Arc::new(std::sync::Mutex::new(HashMap::<usize, Vec<f32>>::new()));
    let mut answers: HashMap<usize, String> = HashMap::new();
    let total = items.len();
    run_batches(
        e,
        GREEDY,
        None,
        None,
        &rows,
        tokens,
        (batch.max(4) / 4) * 4,
        0,
        &done,
        |start| {
            let first = first.clone();
            Some(super::Recorder::boxed(start, move |g, at_first, z| {
                if at_first {
                    first
                        .lock()
                        .expect("no panic holds it")
                        .insert(g, z.to_vec());
                }
            }))
        },
        |_, g, out| {
            answers.insert(g, out.text);
            let i = g / 4;
            if (4 * i..4 * i + 4).any(|r| !answers.contains_key(&r)) {
                return Ok(());
            }
            let it = &items[i];
            let a: Vec<String> = (4 * i..4 * i + 4)
                .map(|r| answers.remove(&r).expect("present"))
                .collect();
            let mut f = first.lock().expect("no panic holds it");
            let z: Vec<Vec<f32>> = (4 * i..4 * i + 4)
                .map(|r| f.remove(&r).expect("the hook saw the first step"))
                .collect();
            let f0 = infogravity::field::measure(&z[0][..])?;
            let t = f0.argmax as usize;
            let jsd: Vec<f64> = (1..4)
                .map(|k| infogravity::field::thermo::js_divergence(&z[0], 1.0, &z[k], 1.0))
                .collect();
            let mut dphi = 0.0;
            for zk in &z[1..] {
                let fk = infogravity::field::measure(&zk[..])?;
                dphi += (fk.potential(zk[t]) - f0.potential(z[0][t])) / 3.0;
            }
            let key = |s: &str| answer_key(s, &it.answers);
            let rec = SensRecord {
                item: it.id,
                relation: it.relation.clone(),
                changed: a[1..].iter().map(|x| key(x) != key(&a[0])).collect(),
                correct: a.iter().map(|x| qa::grade(x, &it.answers)).collect(),
                stability: 1.0 - jsd.iter().sum::<f64>() / 3.0 / std::f64::consts::LN_2,
                jsd,
                delta_phi: dphi,
                entropy: f0.entropy,
                p_max: f0.p_max(),
                answers: a,
            };
            write_line(&mut file, &path, &rec)?;
            have.push(rec);
            progress(have.len().min(total), total);
            Ok(())
        },
    )?;
    let ids: std::collections::HashSet<u32> = items.iter().map(|i| i.id).collect();
    have.retain(|r| ids.contains(&r.item));
    have.sort_by_key(|r| r.item);
    Ok(have)
}

/// The part-5 table: AUROC of each score for "some rewording changes the answer" and for "the
/// correctness changes", and Spearman ρ with the fraction of rewordings that change it.
pub fn report(records: &[SensRecord], resamples: usize) -> (String, serde_json::Value) {
    use std::fmt::Write;
    let any: Vec<bool> = records
        .iter()
        .map(|r| r.changed.iter().any(|&c| c))
        .collect();
    let flip: Vec<bool> = records
        .iter()
        .map(|r| r.correct[1..].iter().any(|&c| c != r.correct[0]))
        .collect();
    let frac: Vec<f64> = records
        .iter()
        .map(|r| r.changed.iter().filter(|&&c| c).count() as f64 / 3.0)
        .collect();
    let scores: Vec<(&str, Vec<f64>)> = vec![
        (
            "1 − S (field instability)",
            records.iter().map(|r| 1.0 - r.stability).collect(),
        ),
        (
            "ΔΦ of the greedy token",
            records.iter().map(|r| r.delta_phi).collect(),
        ),
        (
            "entropy, bank wording (baseline)",
            records.iter().map(|r| r.entropy).collect(),
        ),
        (
            "1 − p_max, bank wording (baseline)",
            records.iter().map(|r| 1.0 - r.p_max).collect(),
        ),
    ];
    let fmt = |i: &Option<metrics::Interval>| {
        i.map_or("–".into(), |i| {
            format!("{:.3} [{:.3}, {:.3}]", i.value, i.lo, i.hi)
        })
    };
    let n = records.len();
    let rate = |v: &[bool]| v.iter().filter(|&&x| x).count() as f64 / n.max(1) as f64;
    let mut md = format!(
        "{n} items × 4 wordings, greedy answers. Some rewording changes the answer (`answer_key`: \
         another accepted answer counts as the same) for {:.3} of the items (the correctness for {:.3}); mean S = {:.3}.\n\n\
         | score (higher = less stable) | AUROC, answer changes | AUROC, correctness changes | Spearman ρ with fraction changed |\n|---|---|---|---|\n",
        rate(&any),
        rate(&flip),
        records.iter().map(|r| r.stability).sum::<f64>() / n.max(1) as f64
    );
    let mut json = serde_json::json!({
        "items": n, "answer_changes": rate(&any), "correctness_changes": rate(&flip),
    });
    let all: Vec<&[f64]> = scores.iter().map(|s| s.1.as_slice()).collect();
    let pairs: Vec<(usize, usize)> = (1..scores.len()).map(|j| (0, j)).collect();
    let (a_any, d_any) = metrics::bootstrap_auroc(&all, &any, &pairs, resamples, 61);
    let (a_flip, _) = metrics::bootstrap_auroc(&all, &flip, &[], resamples, 62);
    for (j, (name, s)) in scores.iter().enumerate() {
        let rho = metrics::bootstrap(n, resamples, 63, |idx| {
            let x: Vec<f64> = idx.iter().map(|&i| s[i]).collect();
            let y: Vec<f64> = idx.iter().map(|&i| frac[i]).collect();
            metrics::spearman(&x, &y)
        });
        let _ = writeln!(
            md,
            "| {name} | {} | {} | {} |",
            fmt(&a_any[j]),
            fmt(&a_flip[j]),
            fmt(&rho)
        );
        json[*name] = serde_json::json!({
            "auroc_change": a_any[j], "auroc_correctness": a_flip[j], "spearman_fraction": rho,
        });
    }
    for rel in ["capital", "region"] {
        let idx: Vec<usize> = (0..n).filter(|&i| records[i].relation == rel).collect();
        let y: Vec<bool> = idx.iter().map(|&i| any[i]).collect();
        let cells: Vec<String> = scores
            .iter()
            .map(|(_, sc)| {
                let x: Vec<f64> = idx.iter().map(|&i| sc[i]).collect();
                metrics::auroc(&x, &y).map_or("–".into(), |a| format!("{a:.3}"))
            })
            .collect();
        let _ = writeln!(
            md,
            "\n{rel} ({} items, answer changes for {:.3}), AUROC: {}",
            idx.len(),
            y.iter().filter(|&&c| c).count() as f64 / idx.len().max(1) as f64,
            scores
                .iter()
                .zip(&cells)
                .map(|((name, _), c)| format!("{name} {c}"))
                .collect::<Vec<_>>()
                .join("; ")
        );
        json["by_relation"][rel] = serde_json::json!(cells);
    }
    let _ = writeln!(
        md,
        "\nAUROC (answer changes) of 1 − S minus each other score [95% CI]:"
    );
    for (p, d) in pairs.iter().zip(&d_any) {
        let _ = writeln!(md, "- − {}: {}", scores[p.1].0, fmt(d));
        json["difference"][scores[p.1].0] = serde_json::json!(d);
    }
    (md, json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_compared_by_what_they_say() {
        let gold = vec!["San Marino".to_string()];
        assert_eq!(answer_key(" San Marino, Italy.", &gold), "=");
        assert_eq!(answer_key(" San Marino.", &gold), "=");
        let gold = vec!["Abuja".to_string()];
        assert_eq!(
            answer_key(" Biafra.", &gold),
            answer_key(" biafra, a city.", &gold)
        );
        assert_ne!(
            answer_key(" Biafra.", &gold),
            answer_key(" Brugo, a city", &gold)
        );
    }
}
