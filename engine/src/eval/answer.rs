//! The answer-level void score, evaluated on `eval qa`'s records (issue 14 §1, first part): a
//! logistic calibration of "the answer is wrong" on aggregates of the field over the whole
//! answer, scored without any item seeing its own fit.
//!
//! - **Features** ([`FEATURES`]): the mean and the max of the entropy H over the answer's
//!   tokens, the mean of √varentropy, the sum, the mean and the max of the chosen tokens'
//!   potential Φ = −log p, the first answer token's H and 1 − p_max (the pre-generation signal), and the
//!   same two at the first content token (past a leading " the"). The processor streams them
//!   (`infogravity::AnswerStats`, with the engine's content table); `eval qa` records what it
//!   streamed beside each answer ([`super::qa::Streamed`]).
//! - **5×2 cross-fitting**: five times, the subjects are split in two halves (a subject's items
//!   of every relation stay together); each half is scored by the fit on the other; an item's
//!   score is the mean of its five out-of-fold probabilities. Every item is scored, none by a
//!   fit that saw it.
//! - **Leave one relation out**: each relation's items are scored by the fit on all the other
//!   relations' items: the transfer the shipped calibration needs.
//!

use std::fmt::Write;

use super::metrics;
use super::qa::Record;
use super::report::fmt_iv;

/// The features, in order.
pub const FEATURES: [&str; 10] = [
    "mean H",
    "max H",
    "mean √varentropy",
    "ΣΦ",
    "mean Φ",
    "max Φ",
    "first-token H",
    "first-token 1 − p_max",
    "first-content H",
    "first-content 1 − p_max",
];

/// The features of one record (see [`FEATURES`]): the processor's streamed aggregates, or
/// for a record that predates the streaming the same aggregates recomputed from its steps.
pub fn features(r: &Record) -> Vec<f64> {
    let (h0, q0) = (
        r.steps.first().map_or(0.0, |s| s.entropy),
        1.0 - r.field(0).p_max(),
    );
    let (hc, qc) = super::qa::first_content(r);
    let sum_phi = r.steps.iter().map(|s| s.potential).sum::<f64>();
    if let Some(s) = &r.streamed {
        let x = |v: f32| v as f64;
        return vec![
            x(s.mean_entropy),
            x(s.max_entropy),
            x(s.mean_sqrt_varentropy),
            s.sum_potential.map_or(sum_phi, x),
            x(s.mean_potential),
            x(s.max_potential),
            h0,
            q0,
            hc,
            qc,
        ];
    }
    let n = r.steps.len().max(1) as f64;
    let mean = |f: &dyn Fn(&super::qa::Step) -> f64| r.steps.iter().map(f).sum::<f64>() / n;
    let max = |f: &dyn Fn(&super::qa::Step) -> f64| r.steps.iter().map(f).fold(0.0, f64::max);
    vec![
        mean(&|s| s.entropy),
        max(&|s| s.entropy),
        mean(&|s| s.varentropy.max(0.0).sqrt()),
        sum_phi,
        mean(&|s| s.potential),
        max(&|s| s.potential),
        h0,
        q0,
        hc,
        qc,
    ]
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// Fit on `train` (indices into `x`), return P(wrong) for `test`.
fn fit_predict(x: &[Vec<f64>], wrong: &[bool], train: &[usize], test: &[usize]) -> Vec<f64> {
    let xt: Vec<Vec<f64>> = train.iter().map(|&i| x[i].clone()).collect();
    let yt: Vec<bool> = train.iter().map(|&i| wrong[i]).collect();
    if yt.iter().all(|&w| w) || !yt.iter().any(|&w| w) {
        let p = yt.iter().filter(|&&w| w).count() as f64 / yt.len().max(1) as f64;
        return vec![p; test.len()];
    }
    let (b, w) = metrics::logistic_fit(&xt, &yt, 1.0);
    test.iter()
        .map(|&i| sigmoid(b + x[i].iter().zip(&w).map(|(a, c)| a * c).sum::<f64>()))
        .collect()
}

fn fnv(s: &str, seed: u64) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ seed.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    for b in s.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// 5×2 cross-fitted answer-level void scores, one per record.
pub fn cross_fitted(records: &[Record]) -> Vec<f64> {
    let x: Vec<Vec<f64>> = records.iter().map(features).collect();
    let wrong: Vec<bool> = records.iter().map(|r| !r.correct).collect();
    let mut sum = vec![0.0; records.len()];
    for rep in 0..5u64 {
        let (a, b): (Vec<usize>, Vec<usize>) =
            (0..records.len()).partition(|&i| fnv(&records[i].subject, rep).is_multiple_of(2));
        for (train, test) in [(&a, &b), (&b, &a)] {
            for (&i, p) in test.iter().zip(fit_predict(&x, &wrong, train, test)) {
                sum[i] += p;
            }
        }
    }
    sum.iter().map(|s| s / 5.0).collect()
}

/// Leave-one-relation-out scores: each record scored by the fit on the other relations.
pub fn leave_one_relation_out(records: &[Record], relations: &[String]) -> Vec<f64> {
    let x: Vec<Vec<f64>> = records.iter().map(features).collect();
    let wrong: Vec<bool> = records.iter().map(|r| !r.correct).collect();
    let mut out = vec![0.0; records.len()];
    for rel in relations {
        let (test, train): (Vec<usize>, Vec<usize>) =
            (0..records.len()).partition(|&i| &records[i].relation == rel);
        for (&i, p) in test.iter().zip(fit_predict(&x, &wrong, &train, &test)) {
            out[i] = p;
        }
    }
    out
}

/// The section of the QA report: every item, the answer-level baselines beside the
/// cross-fitted and the leave-one-relation-out answer-level void, with the paired difference
/// to the best baseline.
pub fn section(
    records: &[Record],
    relations: &[String],
    resamples: usize,
    json: &mut serde_json::Value,
) -> String {
    let mut md = String::new();
    let base = super::qa::baselines(records);
    let mut names: Vec<String> = base.names.iter().map(|s| s.to_string()).collect();
    let mut values = base.values;
    let nb = names.len();
    names.push("**answer-level void, 5×2 cross-fitted**".into());
    values.push(cross_fitted(records));
    let loro = relations.len() > 1;
    if loro {
        names.push("**answer-level void, leave one relation out**".into());
        values.push(leave_one_relation_out(records, relations));
    }
    let wrong: Vec<bool> = records.iter().map(|r| !r.correct).collect();
    let best = (0..nb)
        .filter_map(|i| metrics::auroc(&values[i], &wrong).map(|a| (i, a)))
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(i, _)| i);
    let columns: Vec<String> = relations.iter().cloned().chain(["pooled".into()]).collect();
    let _ = writeln!(
        md,
        "\nAnswer-level void score (features: {}), every item, AUROC with 95% paired-bootstrap \
         intervals ({resamples} resamples):\n\n| score | {} |\n|{}",
        FEATURES.join(", "),
        columns.join(" | "),
        "---|".repeat(columns.len() + 1)
    );
    let pairs: Vec<(usize, usize)> = match best {
        Some(b) => (nb..values.len()).map(|v| (v, b)).collect(),
        None => vec![],
    };
    let per = super::report::per_relation(records, &columns, &values, &pairs, resamples, 2025);
    for (i, name) in names.iter().enumerate() {
        let cells: Vec<String> = per.iter().map(|p| fmt_iv(&p.0[i])).collect();
        let _ = writeln!(md, "| {name} | {} |", cells.join(" | "));
        for (rel, p) in columns.iter().zip(&per) {
            json["answer_level"]["auroc"][name.trim_matches('*')][rel] = serde_json::json!(p.0[i]);
        }
    }
    if let Some(b) = best {
        for (k, v) in (nb..values.len()).enumerate() {
            let cells: Vec<String> = columns
                .iter()
                .zip(&per)
                .map(|(rel, p)| format!("{rel} {}", fmt_iv(&p.1[k])))
                .collect();
            let _ = writeln!(
                md,
                "\n{} − best single baseline ({}): {}.",
                names[v].trim_matches('*'),
                names[b],
                cells.join(", ")
            );
            for (rel, p) in columns.iter().zip(&per) {
                json["answer_level"]["difference_vs_best_baseline"][names[v].trim_matches('*')]
                    [rel] = serde_json::json!(p.1[k]);
            }
        }
        json["answer_level"]["best_baseline"] = serde_json::json!(names[b]);
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::qa::Step;

    fn rec(subject: &str, relation: &str, h: f64, correct: bool) -> Record {
        let step = Step {
            max: 5.0,
            second: 1.0,
            argmax: 0,
            log_z: 5.1,
            entropy: h,
            varentropy: h,
            potential: h / 2.0,
        };
        Record {
            id: 0,
            relation: relation.into(),
            subject: subject.into(),
            answer: String::new(),
            correct,
            vocab: 10,
            steps: vec![step; 3],
            h: None,
            h_prompt_mean: None,
            n_kl: None,
            n_surprisal: None,
            streamed: None,
        }
    }

    #[test]
    fn every_item_is_scored_and_a_separable_bank_is_separated() {
        // Wrong answers have high entropy in every relation: the out-of-fold and the
        // leave-one-relation-out scores both rank them above the right ones.
        let rs: Vec<Record> = (0..60)
            .map(|i| {
                let wrong = i % 4 == 0;
                let h = if wrong { 3.0 } else { 0.5 } + i as f64 * 1e-3;
                rec(&format!("s{i}"), ["a", "b", "c"][i % 3], h, !wrong)
            })
            .collect();
        let wrong: Vec<bool> = rs.iter().map(|r| !r.correct).collect();
        let cf = cross_fitted(&rs);
        assert_eq!(cf.len(), rs.len());
        assert!(metrics::auroc(&cf, &wrong).unwrap() > 0.99);
        let rels: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let lo = leave_one_relation_out(&rs, &rels);
        assert!(lo.iter().all(|p| (0.0..=1.0).contains(p)));
        assert!(metrics::auroc(&lo, &wrong).unwrap() > 0.99);
        let mut json = serde_json::json!({});
        let md = section(&rs, &rels, 50, &mut json);
        assert!(md.contains("| score | a | b | c | pooled |"), "{md}");
        assert!(json["answer_level"]["best_baseline"].is_string());
    }
}
