//! The QA analysis: split, calibration fit, AUROC tables with bootstrap intervals,
//! risk–coverage, Kalai scores, the hand-audit sample and an SVG plot.

use std::fmt::Write;

use super::metrics::{self, Interval};
use super::qa::{self, Record};
use infogravity::calibration::{
    CALIBRATION_FORMAT, CALIBRATION_VERSION, Calibration, MassStats, Standard,
};
use infogravity::config::{AnswerWeights, Config, VoidWeights};

/// Everything `eval qa` writes besides the raw records.
pub struct QaReport {
    pub markdown: String,
    pub json: serde_json::Value,
    /// Fitted on the training split; `None` when the split has a single class.
    pub calibration: Option<Calibration>,
    pub svg: String,
    pub audit: String,
}

fn standard(xs: impl Iterator<Item = f64>) -> Option<Standard> {
    let v: Vec<f64> = xs.collect();
    if v.len() < 2 {
        return None;
    }
    let mean = v.iter().sum::<f64>() / v.len() as f64;
    let std = (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / v.len() as f64).sqrt();
    (std > 0.0).then_some(Standard { mean, std })
}

/// Fit the calibration on `train`: z-score statistics of H and N, then a logistic regression
/// of "wrong" on the void features at the first answer token (`l2` on standardised weights).
pub fn fit_calibration(train: &[Record], cfg: &Config, provenance: &str) -> Option<Calibration> {
    let wrong: Vec<bool> = train.iter().map(|r| !r.correct).collect();
    if wrong.iter().all(|&w| w) || !wrong.iter().any(|&w| w) {
        return None;
    }
    let stats = MassStats {
        h: standard(train.iter().filter_map(|r| r.h.map(f64::from))),
        d: None,
        n: standard(
            train
                .iter()
                .filter_map(|r| r.n_kl.or(r.n_surprisal).map(f64::from)),
        ),
    };
    let mut calib = Calibration {
        format: CALIBRATION_FORMAT.into(),
        version: CALIBRATION_VERSION,
        provenance: provenance.into(),
        void: None,
        answer: None,
        mass: Some(stats),
    };
    let x = qa::void_features(train, &cfg.mass, Some(&calib));
    let (bias, w) = metrics::logistic_fit(&x, &wrong, 1.0);
    calib.void = Some(VoidWeights {
        bias: bias as f32,
        entropy: w[0] as f32,
        energy: w[1] as f32,
        one_minus_pmax: w[2] as f32,
        varentropy: w[3] as f32,
        trend: 0.0,
        task: 0.0,
        mass: w[4] as f32,
    });
    Some(calib)
}

/// Paired-bootstrap AUROCs of `values` (one score vector per row, over `records`) for each of
/// `columns`: a relation of the records, or "pooled" (every record). Per column: the intervals
/// of each score and of each difference in `pairs` (see [`metrics::bootstrap_auroc`]).
pub(super) type PerColumn = (Vec<Option<Interval>>, Vec<Option<Interval>>);

pub(super) fn per_relation(
    records: &[Record],
    columns: &[String],
    values: &[Vec<f64>],
    pairs: &[(usize, usize)],
    resamples: usize,
    seed: u64,
) -> Vec<PerColumn> {
    columns
        .iter()
        .map(|rel| {
            let keep: Vec<usize> = (0..records.len())
                .filter(|&i| rel == "pooled" || &records[i].relation == rel)
                .collect();
            let y: Vec<bool> = keep.iter().map(|&i| !records[i].correct).collect();
            let cols: Vec<Vec<f64>> = values
                .iter()
                .map(|v| keep.iter().map(|&i| v[i]).collect())
                .collect();
            let refs: Vec<&[f64]> = cols.iter().map(Vec::as_slice).collect();
            metrics::bootstrap_auroc(&refs, &y, pairs, resamples, seed)
        })
        .collect()
}

pub(super) fn fmt_iv(i: &Option<Interval>) -> String {
    match i {
        Some(i) => format!("{:.3} [{:.3}, {:.3}]", i.value, i.lo, i.hi),
        None => "n/a".into(),
    }
}

/// The relations of `records`, in order of first appearance.
pub fn relations(records: &[Record]) -> Vec<String> {
    let mut out: Vec<String> = vec![];
    for r in records {
        if !out.contains(&r.relation) {
            out.push(r.relation.clone());
        }
    }
    out
}

/// Analyse the records. Without `given`, the calibration is fitted on the training split and
/// every held-out figure is computed on the other half; with a calibration `given` (fitted
/// elsewhere, e.g. on another bank), nothing is fitted and every item is scored with it.
pub fn analyse(
    records: &[Record],
    cfg: &Config,
    provenance: &str,
    resamples: usize,
    given: Option<&Calibration>,
) -> QaReport {
    let (train, test): (Vec<Record>, Vec<Record>) = match given {
        Some(_) => (vec![], records.to_vec()),
        None => records
            .iter()
            .cloned()
            .partition(|r| qa::is_train(&r.subject)),
    };
    let calib = match given {
        Some(c) => Some(c.clone()),
        None => fit_calibration(&train, cfg, provenance).map(|mut c| {
            let hidden = records.iter().all(|r| r.hidden.is_some());
            c.answer = super::answer::fitted_weights(records, hidden);
            c
        }),
    };
    let calibrated = match given {
        Some(_) => "**void score, given calibration**",
        None => "**void score, calibrated**",
    };
    let rels = relations(records);
    let mut md = String::new();
    let mut json = serde_json::json!({});
    // Accuracy.
    let _ = writeln!(
        md,
        "| relation | items | correct | accuracy |\n|---|---|---|---|"
    );
    for rel in rels.iter().map(String::as_str).chain(["all"]) {
        let rs: Vec<&Record> = records
            .iter()
            .filter(|r| rel == "all" || r.relation == rel)
            .collect();
        let ok = rs.iter().filter(|r| r.correct).count();
        let acc = ok as f64 / rs.len().max(1) as f64;
        let _ = writeln!(md, "| {rel} | {} | {ok} | {acc:.3} |", rs.len());
        json["accuracy"][rel] = serde_json::json!({"items": rs.len(), "correct": ok});
    }
    if given.is_some() {
        let _ = writeln!(
            md,
            "\nScored with a given calibration (not fitted here): all {} items.\n",
            test.len()
        );
    } else {
        let _ = writeln!(
            md,
            "\nSplit by subject (FNV-1a of the name): {} training items, {} held out.\n",
            train.len(),
            test.len()
        );
    }
    // Scores on the held-out split: baselines, default void, M(Q), calibrated void.
    let base = qa::baselines(&test);
    let mut names: Vec<String> = base.names.iter().map(|s| s.to_string()).collect();
    let mut values = base.values;
    let nb = names.len();
    names.push("void score, default weights".into());
    values.push(qa::void_scores(&test, &cfg.void.weights, &cfg.mass, None));
    names.push("M(Q) alone (z-scored)".into());
    values.push(
        test.iter()
            .map(|r| {
                infogravity::mass::with_mass(
                    r.mass(),
                    &cfg.mass,
                    calib.as_ref().and_then(|c| c.mass.as_ref()),
                )
                .m
                .unwrap_or(0.0) as f64
            })
            .collect(),
    );
    let has_void = calib.as_ref().is_some_and(|c| c.void.is_some());
    if let (Some(c), true) = (&calib, has_void) {
        names.push(calibrated.into());
        values.push(qa::void_scores(
            &test,
            c.void.as_ref().expect("checked"),
            &cfg.mass,
            Some(c),
        ));
    }
    let wrong: Vec<bool> = test.iter().map(|r| !r.correct).collect();
    // Best baseline by pooled held-out AUROC (chosen on the test split: favours the baseline).
    let best = (0..nb)
        .filter_map(|i| metrics::auroc(&values[i], &wrong).map(|a| (i, a)))
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(i, _)| i);
    let columns: Vec<String> = rels.iter().cloned().chain(["pooled".into()]).collect();
    let _ = writeln!(
        md,
        "AUROC for predicting a wrong answer, {}, with 95% paired-bootstrap intervals \
         ({resamples} resamples):\n\n| score | {} |\n|{}",
        if given.is_some() {
            "all items"
        } else {
            "held-out split"
        },
        columns.join(" | "),
        "---|".repeat(columns.len() + 1)
    );
    let pairs: Vec<(usize, usize)> = match (has_void, best) {
        (true, Some(b)) => vec![(values.len() - 1, b)],
        _ => vec![],
    };
    let per_rel = per_relation(&test, &columns, &values, &pairs, resamples, 2024);
    for (i, name) in names.iter().enumerate() {
        let cells: Vec<String> = per_rel.iter().map(|p| fmt_iv(&p.0[i])).collect();
        let _ = writeln!(md, "| {name} | {} |", cells.join(" | "));
        for (rel, p) in columns.iter().zip(&per_rel) {
            json["auroc"][name.trim_matches('*')][rel] = serde_json::json!(p.0[i]);
        }
    }
    if let (Some(b), true) = (best, has_void) {
        let cells: Vec<String> = columns
            .iter()
            .zip(&per_rel)
            .map(|(rel, p)| format!("{rel} {}", fmt_iv(&p.1[0])))
            .collect();
        let _ = writeln!(
            md,
            "\n{} − best single baseline ({}), AUROC difference: {}.",
            calibrated.trim_matches('*'),
            names[b],
            cells.join(", ")
        );
        json["difference_vs_best_baseline"]["baseline"] = serde_json::json!(names[b]);
        for (rel, p) in columns.iter().zip(&per_rel) {
            json["difference_vs_best_baseline"][rel] = serde_json::json!(p.1[0]);
        }
    }
    // The answer-level void: the weights the processor would use here (a given calibration's,
    // else the configuration's — the shipped fit by default), not refitted; and without a given
    // calibration, cross-fitted over every item.
    let (fixed, fixed_name) = match given.and_then(|c| c.answer.as_ref()) {
        Some(w) => (w, "the given calibration's weights"),
        None if cfg.answer == AnswerWeights::default() => (&cfg.answer, "shipped weights"),
        None => (&cfg.answer, "configured weights"),
    };
    md.push_str(&super::answer::section(
        records,
        &rels,
        resamples,
        &mut json,
        Some((fixed, fixed_name)),
        given.is_none(),
    ));
    if given.is_none() {
        md.push_str(&super::answer::pregeneration_section(
            records, &rels, resamples, &mut json,
        ));
    }
    // Risk–coverage (pooled, held out).
    let correct: Vec<bool> = test.iter().map(|r| r.correct).collect();
    let _ = writeln!(
        md,
        "\nRisk–coverage when abstaining by each score (held out, pooled; AURC lower is better):\n\n\
         | score | AURC | accuracy at 50% coverage | at 80% | at 100% |\n|---|---|---|---|---|"
    );
    let mut curves = vec![];
    for (name, v) in names.iter().zip(&values) {
        let c = metrics::risk_coverage(v, &correct);
        if c.is_empty() {
            continue;
        }
        let (a, a50, a80, a100) = (
            metrics::aurc(&c),
            metrics::accuracy_at(&c, 0.5),
            metrics::accuracy_at(&c, 0.8),
            metrics::accuracy_at(&c, 1.0),
        );
        let _ = writeln!(md, "| {name} | {a:.3} | {a50:.3} | {a80:.3} | {a100:.3} |");
        json["risk_coverage"][name.trim_matches('*')] =
            serde_json::json!({"aurc": a, "acc50": a50, "acc80": a80});
        curves.push((name.trim_matches('*').to_string(), c));
    }
    // Kalai-penalised score with the confidences that are probabilities.
    let mut conf: Vec<(String, Vec<f64>)> = vec![
        ("always answer".into(), vec![1.0; test.len()]),
        (
            "p_max, first token".into(),
            test.iter().map(|r| r.field(0).p_max()).collect(),
        ),
        (
            "exp(mean log-probability)".into(),
            test.iter()
                .map(|r| {
                    (-r.steps.iter().map(|s| s.potential).sum::<f64>()
                        / r.steps.len().max(1) as f64)
                        .exp()
                })
                .collect(),
        ),
    ];
    if has_void {
        let v = values.last().expect("calibrated score");
        conf.push((
            "1 − calibrated void score".into(),
            v.iter().map(|x| 1.0 - x).collect(),
        ));
    }
    let _ = writeln!(
        md,
        "\nKalai-penalised score (answer when confidence ≥ t; right +1, wrong −t/(1−t), \
         abstain 0; mean over held-out items):\n\n| confidence | t = 0.5 | t = 0.75 | t = 0.9 |\n|---|---|---|---|"
    );
    for (name, c) in &conf {
        let k: Vec<f64> = [0.5, 0.75, 0.9]
            .iter()
            .map(|&t| metrics::kalai_score(c, &correct, t) + 0.0) // + 0.0: no "-0.000"
            .collect();
        let _ = writeln!(md, "| {name} | {:.3} | {:.3} | {:.3} |", k[0], k[1], k[2]);
        json["kalai"][name] = serde_json::json!(k);
    }
    if let (Some(c), None) = (&calib, given) {
        let _ = writeln!(
            md,
            "\nFitted calibration (the first-token void and M(Q)'s statistics on the training \
             split, the answer-level void on every item — with the probe's weight when the \
             records have hidden states, for the `probe.json` written beside it; saved as \
             `calibration.json`, loadable by `GravityProcessor::set_calibration` / \
             `ig_processor_load_calibration`):\n\n```json\n{}\n```",
            serde_json::to_string_pretty(c).expect("serialises")
        );
    }
    QaReport {
        markdown: md,
        json,
        calibration: calib,
        svg: risk_coverage_svg(&curves),
        audit: audit(records, 50),
    }
}

/// A seeded sample of `n` gradings for a hand audit.
fn audit(records: &[Record], n: usize) -> String {
    let mut rng = infogravity::sampler::Rng::new(50);
    let mut idx: Vec<usize> = (0..records.len()).collect();
    for i in (1..idx.len()).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        idx.swap(i, j);
    }
    let mut s = String::from(
        "| id | subject | relation | model's answer (after the stem) | graded |\n|---|---|---|---|---|\n",
    );
    for &i in idx.iter().take(n) {
        let r = &records[i];
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} |",
            r.id,
            r.subject,
            r.relation,
            r.answer.replace('|', "\\|").replace('\n', "⏎"),
            if r.correct { "right" } else { "wrong" }
        );
    }
    s
}

/// Risk–coverage curves as a self-contained SVG.
pub fn risk_coverage_svg(curves: &[(String, Vec<(f64, f64)>)]) -> String {
    super::plot::Chart {
        title: "Risk–coverage, held-out QA items (lower is better)",
        x_label: "coverage",
        y_label: "risk",
        log_x: false,
        bold: "calibrated",
    }
    .svg(curves, &[])
}
