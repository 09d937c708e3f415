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
//! - **With the hidden state** (records of `eval qa --hidden`): the final hidden state ĥ = Γ⁺z
//!   recovered from each answer step's logits (SCIENCE.md §5), averaged over the answer, and
//!   projected on the **mass-mean direction** θ = mean ĥ(wrong) − mean ĥ(right) of the training
//!   items (Marks & Tegmark 2023, "The Geometry of Truth": the difference of class means, no
//!   covariance, the probe that transferred best across their data sets). The projection is
//!   scored alone and as an eleventh feature of the logistic fit; there the training items'
//!   projections are themselves out of fold (two halves of the training subjects, each
//!   projected on the other's θ), so the fit does not learn to trust an in-sample probe.
//! - **The pre-generation void** ([`Fit::PreGeneration`], issue 14 target T3): the same fits
//!   over what is known before the answer's first content token is chosen — H and 1 − p_max at
//!   the first answer token and at the first content token ([`PREGEN_FEATURES`]; on a " the"
//!   answer that is a look-ahead of one token) — with, under `--hidden`, a probe of the state
//!   before the first content token. That probe is **shrinkage LDA** ([`LDA_SHRINKAGE`]), not
//!   mass-mean: at a single position the wrong and right states differ along directions of
//!   high within-class variance, which the covariance discounts (explored on the 1.5B model's
//!   wide-bank records: mass-mean 0.765 pooled alone, shrinkage LDA 0.823).
//!

use std::fmt::Write;

use infogravity::config::AnswerWeights;
use infogravity::{AnswerStats, FirstContent};

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

/// The pre-generation features, in order: the last four of [`FEATURES`].
pub const PREGEN_FEATURES: [&str; 4] = [
    "first-token H",
    "first-token 1 − p_max",
    "first-content H",
    "first-content 1 − p_max",
];

/// Which void a fit makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fit {
    /// The answer-level void: [`FEATURES`], with the mass-mean probe of the answer's mean state.
    Answer,
    /// The pre-generation void: [`PREGEN_FEATURES`], with the shrinkage-LDA probe of the state
    /// before the first content token.
    PreGeneration,
}

/// The shrinkage λ of the pre-generation probe's covariance, Σ_λ = (1 − λ)·C + λ·(tr C / d)·I:
/// the midpoint, set before the fit was scored; on the 1.5B model's wide-bank records the
/// pooled cross-fitted pre-generation void moves between 0.842 (λ = 0.1) and 0.872 (0.8)
/// (EVALUATION.md §1e).
pub const LDA_SHRINKAGE: f64 = 0.5;

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

/// The mean states of the wrong and the right items of `train`, and of all of them (None when
/// a class is empty).
fn class_means(h: &[&[f32]], wrong: &[bool], train: &[usize]) -> Option<[Vec<f64>; 3]> {
    let d = h.first().map_or(0, |v| v.len());
    let (mut all, mut bad, mut good) = (vec![0f64; d], vec![0f64; d], vec![0f64; d]);
    let (mut nb, mut ng) = (0usize, 0usize);
    for &i in train {
        let sum = if wrong[i] { &mut bad } else { &mut good };
        for ((a, s), &x) in all.iter_mut().zip(sum.iter_mut()).zip(h[i]) {
            *a += x as f64;
            *s += x as f64;
        }
        if wrong[i] { nb += 1 } else { ng += 1 }
    }
    if nb == 0 || ng == 0 {
        return None;
    }
    let scale = |v: &mut Vec<f64>, n: usize| v.iter_mut().for_each(|x| *x /= n as f64);
    scale(&mut bad, nb);
    scale(&mut good, ng);
    scale(&mut all, train.len());
    Some([bad, good, all])
}

/// The mass-mean direction over `train`: θ, the difference of the wrong and the right items'
/// mean states, and μ, the mean state (None when a class is empty).
fn direction(h: &[&[f32]], wrong: &[bool], train: &[usize]) -> Option<(Vec<f64>, Vec<f64>)> {
    let [bad, good, mu] = class_means(h, wrong, train)?;
    Some((bad.iter().zip(&good).map(|(b, g)| b - g).collect(), mu))
}

/// The shrinkage-LDA direction over `train`: θ = Σ_λ⁻¹δ, δ the mass-mean direction,
/// Σ_λ = (1 − λ)·C + λ·(tr C / d)·I with C the within-class covariance and λ =
/// [`LDA_SHRINKAGE`]; and μ, the mean state. None when a class is empty or the states do not
/// vary.
///
/// Solved through the n × n Gram matrix of the n training states rather than the d × d
/// covariance (Woodbury): with X the within-class-centred states (n × d), C = XᵀX/n and
/// a = λ·tr C / d, Σ_λ⁻¹δ = (δ − Xᵀ(κI + XXᵀ)⁻¹Xδ) / a with κ = a·n / (1 − λ) — n²·d
/// multiply-adds instead of d³ (480 states of 1536 values: 0.18 G against 3.6 G).
fn lda_direction(h: &[&[f32]], wrong: &[bool], train: &[usize]) -> Option<(Vec<f64>, Vec<f64>)> {
    let [bad, good, mu] = class_means(h, wrong, train)?;
    let delta: Vec<f64> = bad.iter().zip(&good).map(|(b, g)| b - g).collect();
    let (n, d) = (train.len(), delta.len());
    let x: Vec<Vec<f64>> = train
        .iter()
        .map(|&i| {
            let m = if wrong[i] { &bad } else { &good };
            h[i].iter().zip(m).map(|(&v, m)| v as f64 - m).collect()
        })
        .collect();
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
    let trace = x.iter().map(|r| dot(r, r)).sum::<f64>() / n as f64;
    let a = LDA_SHRINKAGE * trace / d as f64;
    if !(a.is_finite() && a > 0.0) {
        return None;
    }
    let kappa = a * n as f64 / (1.0 - LDA_SHRINKAGE);
    let mut gram = vec![vec![0.0; n]; n];
    for i in 0..n {
        for j in 0..=i {
            let g = dot(&x[i], &x[j]) + if i == j { kappa } else { 0.0 };
            gram[i][j] = g;
            gram[j][i] = g;
        }
    }
    let u = metrics::solve(gram, x.iter().map(|r| dot(r, &delta)).collect());
    let mut theta = delta;
    for (r, c) in x.iter().zip(&u) {
        for (t, v) in theta.iter_mut().zip(r) {
            *t -= c * v;
        }
    }
    theta.iter_mut().for_each(|t| *t /= a);
    Some((theta, mu))
}

/// The probe fitted on `train` (mass-mean for the answer-level void, shrinkage LDA for the
/// pre-generation one): θ·(h − μ) for `test` (0 when a class is empty).
fn probe(fit: Fit, h: &[&[f32]], wrong: &[bool], train: &[usize], test: &[usize]) -> Vec<f64> {
    let found = match fit {
        Fit::Answer => direction(h, wrong, train),
        Fit::PreGeneration => lda_direction(h, wrong, train),
    };
    let Some((theta, mu)) = found else {
        return vec![0.0; test.len()];
    };
    test.iter()
        .map(|&i| {
            h[i].iter()
                .zip(&mu)
                .zip(&theta)
                .map(|((&x, m), t)| (x as f64 - m) * t)
                .sum()
        })
        .collect()
}

/// The probe to ship for this model: the mass-mean direction over **every** record's mean
/// state, as (θ, c) with the projection θ·ĥ + c, c = −θ·μ (what the processor streams once θ
/// is turned into weights on the logits, `unembed::Recovery::functional`). None when the
/// records have no states or one class is empty.
pub fn fitted_probe(records: &[Record]) -> Option<(Vec<f64>, f64)> {
    if records.is_empty() || records.iter().any(|r| r.hidden.is_none()) {
        return None;
    }
    let data = Data::new(records, Fit::Answer, true);
    let (h, _) = data.hidden.as_ref()?;
    let all: Vec<usize> = (0..records.len()).collect();
    let (theta, mu) = direction(h, &data.wrong, &all)?;
    let c = -theta.iter().zip(&mu).map(|(t, m)| t * m).sum::<f64>();
    Some((theta, c))
}

/// The inputs of one fit: the features, and the states its probe reads (the answers' mean
/// states, or those before the first content token) with the subjects that split the training
/// items for the out-of-fold probe (None: no states).
struct Data<'a> {
    fit: Fit,
    x: Vec<Vec<f64>>,
    wrong: Vec<bool>,
    hidden: Option<(Vec<&'a [f32]>, Vec<&'a str>)>,
}

impl<'a> Data<'a> {
    /// `with_hidden`: use the states (every record must have them).
    fn new(records: &'a [Record], fit: Fit, with_hidden: bool) -> Data<'a> {
        let hidden = with_hidden.then(|| {
            records
                .iter()
                .map(|r| {
                    let h = r.hidden.as_ref().expect("records with hidden states");
                    let state = match fit {
                        Fit::Answer => &h.mean,
                        Fit::PreGeneration => &h.content,
                    };
                    (state.as_slice(), r.subject.as_str())
                })
                .unzip()
        });
        let x = |r: &Record| match fit {
            Fit::Answer => features(r),
            Fit::PreGeneration => features(r).split_off(FEATURES.len() - PREGEN_FEATURES.len()),
        };
        Data {
            fit,
            x: records.iter().map(x).collect(),
            wrong: records.iter().map(|r| !r.correct).collect(),
            hidden,
        }
    }

    /// P(wrong) for `test` by the fit on `train`: the aggregates, plus the probe's projection
    /// when there are states (out of fold on `train`, from all of `train` on `test`).
    fn predict(&self, train: &[usize], test: &[usize]) -> Vec<f64> {
        fit_predict(&self.design(train, test), &self.wrong, train, test)
    }

    /// The features of `train` and `test`, with the probe's projection appended when there are
    /// states: out of fold on `train` (two halves of its subjects, each projected on the other's
    /// direction, so the fit does not learn to trust an in-sample probe), from all of `train` on
    /// `test`.
    fn design(&self, train: &[usize], test: &[usize]) -> Vec<Vec<f64>> {
        let Some((h, subjects)) = &self.hidden else {
            return self.x.clone();
        };
        let mut x = self.x.clone();
        let (a, b): (Vec<usize>, Vec<usize>) = train.iter().partition(|&&i| half(subjects[i], 17));
        for (fit, score) in [(&a, &b), (&b, &a)] {
            for (&i, p) in score
                .iter()
                .zip(probe(self.fit, h, &self.wrong, fit, score))
            {
                x[i].push(p);
            }
        }
        for (&i, p) in test
            .iter()
            .zip(probe(self.fit, h, &self.wrong, train, test))
        {
            x[i].push(p);
        }
        x
    }
}

/// The answer-level void fitted on **every** record, as the processor's answer weights (the
/// `answer` section of `calibration.json`): the logistic over [`FEATURES`], plus the probe's
/// projection when `with_hidden` (then the weight applies to the probe [`fitted_probe`] ships,
/// θ·ĥ + c = θ·(ĥ − μ) over every record; see [`weights`] for how its fit differs). None when
/// every answer is right or every one wrong.
pub fn fitted_weights(records: &[Record], with_hidden: bool) -> Option<AnswerWeights> {
    let data = Data::new(records, Fit::Answer, with_hidden);
    if data.wrong.iter().all(|&w| w) || !data.wrong.iter().any(|&w| w) {
        return None;
    }
    let all: Vec<usize> = (0..records.len()).collect();
    let x = data.design(&all, &[]);
    let (b, w) = metrics::logistic_fit(&x, &data.wrong, 1.0);
    Some(weights(b, &w))
}

/// Answer weights from a fit over [`FEATURES`] (and the probe's projection last, if present).
/// With states, the probe's weight was fitted on out-of-fold projections (each training item
/// projected on the direction of the half it was not in, as the cross-fitted scores are) and
/// applies to the probe fitted on every record: the two differ in scale and offset by the
/// halves' sampling noise, which the bias absorbs only on average.
fn weights(b: f64, w: &[f64]) -> AnswerWeights {
    let k = |i: usize| w.get(i).map_or(0.0, |&x| x as f32);
    AnswerWeights {
        bias: b as f32,
        mean_entropy: k(0),
        max_entropy: k(1),
        mean_sqrt_varentropy: k(2),
        sum_potential: k(3),
        mean_potential: k(4),
        max_potential: k(5),
        first_entropy: k(6),
        first_one_minus_pmax: k(7),
        content_entropy: k(8),
        content_one_minus_pmax: k(9),
        probe: k(10),
    }
}

/// The processor's aggregates of one record (what it streamed, or the same recomputed from the
/// record's steps), with the probe's mean where the processor streamed one.
fn stats(r: &Record) -> AnswerStats {
    let x: Vec<f32> = features(r).iter().map(|&v| v as f32).collect();
    AnswerStats {
        tokens: r.steps.len() as u32,
        // The evaluation decodes in `Sample` mode: every token's Φ is known (a NaN one would
        // make its features, and so the score, NaN).
        potential_tokens: r.steps.len() as u32,
        mean_entropy: x[0],
        max_entropy: x[1],
        mean_sqrt_varentropy: x[2],
        sum_potential: x[3],
        mean_potential: x[4],
        max_potential: x[5],
        first_entropy: x[6],
        first_one_minus_pmax: x[7],
        first_content: Some(FirstContent {
            step: 0,
            entropy: x[8],
            one_minus_pmax: x[9],
            potential: f32::NAN,
        }),
        probe_mean: r.streamed.and_then(|s| s.probe_mean).unwrap_or(f32::NAN),
        ..AnswerStats::default()
    }
}

/// Every record's answer-level void by fixed weights `w` (not refitted), exactly as the
/// processor computes it (`AnswerStats::void_score`). None when a weighted input is unknown for
/// some record (a probe weight on records streamed without a probe).
pub fn scored(records: &[Record], w: &AnswerWeights) -> Option<Vec<f64>> {
    let v: Vec<f64> = records
        .iter()
        .map(|r| stats(r).void_score(w) as f64)
        .collect();
    v.iter().all(|x| x.is_finite()).then_some(v)
}

/// Which half of split `seed` the subject `s` falls in: a bit of a seeded FNV-1a hash after
/// MurmurHash3's finaliser. (FNV-1a alone mixes badly at both ends: its multiplier is odd, so
/// its low bit is the parity of the bytes' low bits and the seed's — every seed gives the same
/// split or its complement — and its top bit barely moves when names differ in a last digit.)
fn half(s: &str, seed: u64) -> bool {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ seed.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    for b in s.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^= h >> 33;
    h & 1 == 0
}

/// The five splits of the subjects in halves.
fn splits(records: &[Record]) -> impl Iterator<Item = (Vec<usize>, Vec<usize>)> + '_ {
    (0..5u64).map(|rep| (0..records.len()).partition(|&i| half(&records[i].subject, rep)))
}

/// 5×2 cross-fitted void scores of kind `fit`, one per record; `with_hidden`: the hidden-state
/// probe is a feature too (every record must have states).
pub fn cross_fitted(records: &[Record], fit: Fit, with_hidden: bool) -> Vec<f64> {
    let data = Data::new(records, fit, with_hidden);
    let mut sum = vec![0.0; records.len()];
    for (a, b) in splits(records) {
        for (train, test) in [(&a, &b), (&b, &a)] {
            for (&i, p) in test.iter().zip(data.predict(train, test)) {
                sum[i] += p;
            }
        }
    }
    sum.iter().map(|s| s / 5.0).collect()
}

/// The hidden-state probe of kind `fit` alone, 5×2 cross-fitted: each item's mean projection
/// on the directions of the halves it was not in (every record must have states).
pub fn probe_cross_fitted(records: &[Record], fit: Fit) -> Vec<f64> {
    let data = Data::new(records, fit, true);
    let (h, _) = data.hidden.as_ref().expect("states");
    let mut sum = vec![0.0; records.len()];
    for (a, b) in splits(records) {
        for (train, test) in [(&a, &b), (&b, &a)] {
            for (&i, p) in test.iter().zip(probe(fit, h, &data.wrong, train, test)) {
                sum[i] += p;
            }
        }
    }
    sum.iter().map(|s| s / 5.0).collect()
}

/// Leave-one-relation-out scores: each record scored by the fit on the other relations.
pub fn leave_one_relation_out(
    records: &[Record],
    relations: &[String],
    fit: Fit,
    with_hidden: bool,
) -> Vec<f64> {
    let data = Data::new(records, fit, with_hidden);
    let mut out = vec![0.0; records.len()];
    for rel in relations {
        let (test, train): (Vec<usize>, Vec<usize>) =
            (0..records.len()).partition(|&i| &records[i].relation == rel);
        for (&i, p) in test.iter().zip(data.predict(&train, &test)) {
            out[i] = p;
        }
    }
    out
}

/// The section of the QA report: every item, the answer-level baselines beside the
/// cross-fitted and the leave-one-relation-out answer-level void, with the paired difference
/// to the best baseline.
///
/// `fixed`: weights scored as they are (the shipped ones, or a given calibration's), named;
/// `refit`: also fit here (cross-fitted, leave one relation out, the probe from the states).
pub fn section(
    records: &[Record],
    relations: &[String],
    resamples: usize,
    json: &mut serde_json::Value,
    fixed: Option<(&AnswerWeights, &str)>,
    refit: bool,
) -> String {
    let mut md = String::new();
    let base = super::qa::baselines(records);
    let mut names: Vec<String> = base.names.iter().map(|s| s.to_string()).collect();
    let mut values = base.values;
    let nb = names.len();
    if refit {
        names.push("**answer-level void, 5×2 cross-fitted**".into());
        values.push(cross_fitted(records, Fit::Answer, false));
    }
    let loro = refit && relations.len() > 1;
    if loro {
        names.push("**answer-level void, leave one relation out**".into());
        values.push(leave_one_relation_out(
            records,
            relations,
            Fit::Answer,
            false,
        ));
    }
    if records
        .iter()
        .all(|r| r.streamed.is_some_and(|s| s.probe_mean.is_some()))
    {
        // A probe fitted elsewhere (`eval qa --probe`), as the processor streamed it.
        names.push("**hidden-state probe (given), streamed**".into());
        values.push(
            records
                .iter()
                .map(|r| r.streamed.and_then(|s| s.probe_mean).unwrap_or(0.0) as f64)
                .collect(),
        );
    }
    if refit && records.iter().all(|r| r.hidden.is_some()) {
        names.push("**hidden-state probe (mass-mean), 5×2 cross-fitted**".into());
        values.push(probe_cross_fitted(records, Fit::Answer));
        names.push("**answer-level void + hidden-state probe, 5×2 cross-fitted**".into());
        values.push(cross_fitted(records, Fit::Answer, true));
        if loro {
            names.push("**answer-level void + hidden-state probe, leave one relation out**".into());
            values.push(leave_one_relation_out(
                records,
                relations,
                Fit::Answer,
                true,
            ));
        }
    }
    // Last, so the rows fitted here keep their bootstrap seeds with or without it.
    if let Some((w, name)) = fixed {
        match scored(records, w) {
            Some(v) => {
                names.push(format!("**answer-level void, {name} (not refitted)**"));
                values.push(v);
            }
            None => {
                let _ = writeln!(
                    md,
                    "\nThe {name} weigh an input some records lack (the hidden-state probe, \
                     unless they were streamed with `--probe FILE`): not scored."
                );
            }
        }
    }
    let title = format!(
        "Answer-level void score (features: {}), every item, AUROC with 95% paired-bootstrap \
         intervals ({resamples} resamples):",
        FEATURES.join(", ")
    );
    let table = Table {
        records,
        relations,
        names: &names,
        values: &values,
        nb,
    };
    table.write(&mut md, &mut json["answer_level"], &title, resamples, 2025);
    md.push_str(&selective(records, &names, nb, &values, resamples, json));
    md
}

/// The section of the QA report on the pre-generation void (T3): every item, the single
/// signals known before the first content token is chosen beside their 5×2 cross-fitted and
/// leave-one-relation-out fit and, with states, the shrinkage-LDA probe of the state before
/// the first content token alone and with the field; each against the best single signal.
pub fn pregeneration_section(
    records: &[Record],
    relations: &[String],
    resamples: usize,
    json: &mut serde_json::Value,
) -> String {
    let mut md = String::new();
    let x: Vec<(f64, f64, f64, f64)> = records
        .iter()
        .map(|r| {
            let (hc, qc) = super::qa::first_content(r);
            (r.steps[0].entropy, 1.0 - r.field(0).p_max(), hc, qc)
        })
        .collect();
    let mut names: Vec<String> = PREGEN_FEATURES
        .iter()
        .map(|f| {
            f.replacen("-token", " token", 1)
                .replacen("-content", " content token", 1)
        })
        .collect();
    let mut values: Vec<Vec<f64>> = vec![
        x.iter().map(|v| v.0).collect(),
        x.iter().map(|v| v.1).collect(),
        x.iter().map(|v| v.2).collect(),
        x.iter().map(|v| v.3).collect(),
    ];
    let nb = names.len();
    let fit = Fit::PreGeneration;
    names.push("**pre-generation void (field), 5×2 cross-fitted**".into());
    values.push(cross_fitted(records, fit, false));
    let loro = relations.len() > 1;
    if loro {
        names.push("**pre-generation void (field), leave one relation out**".into());
        values.push(leave_one_relation_out(records, relations, fit, false));
    }
    if records.iter().all(|r| r.hidden.is_some()) {
        names.push(
            "**hidden-state probe at the first content token (LDA), 5×2 cross-fitted**".into(),
        );
        values.push(probe_cross_fitted(records, fit));
        names.push("**pre-generation void + probe, 5×2 cross-fitted**".into());
        values.push(cross_fitted(records, fit, true));
        if loro {
            names.push("**pre-generation void + probe, leave one relation out**".into());
            values.push(leave_one_relation_out(records, relations, fit, true));
        }
    }
    let title = format!(
        "Pre-generation void (what is known before the first content token is chosen: {}; \
         the probe: shrinkage LDA, λ = {LDA_SHRINKAGE}, of the state before that token), every \
         item, AUROC with 95% paired-bootstrap intervals ({resamples} resamples):",
        PREGEN_FEATURES.join(", ")
    );
    let table = Table {
        records,
        relations,
        names: &names,
        values: &values,
        nb,
    };
    table.write(
        &mut md,
        &mut json["pre_generation"],
        &title,
        resamples,
        2026,
    );
    md
}

/// An AUROC table of every item: the first `nb` scores are the single baselines, the rest are
/// each compared with the best of them.
struct Table<'a> {
    records: &'a [Record],
    relations: &'a [String],
    names: &'a [String],
    values: &'a [Vec<f64>],
    nb: usize,
}

impl Table<'_> {
    /// `title` (a sentence), the table per relation and pooled, and the differences to the best
    /// baseline with paired bootstrap intervals (`resamples`, seeded by `seed`), into `md` and
    /// under `json`.
    fn write(
        &self,
        md: &mut String,
        json: &mut serde_json::Value,
        title: &str,
        resamples: usize,
        seed: u64,
    ) {
        let (values, nb) = (self.values, self.nb);
        let wrong: Vec<bool> = self.records.iter().map(|r| !r.correct).collect();
        let best = (0..nb)
            .filter_map(|i| metrics::auroc(&values[i], &wrong).map(|a| (i, a)))
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(i, _)| i);
        let columns: Vec<String> = self
            .relations
            .iter()
            .cloned()
            .chain(["pooled".into()])
            .collect();
        let _ = writeln!(
            md,
            "\n{title}\n\n| score | {} |\n|{}",
            columns.join(" | "),
            "---|".repeat(columns.len() + 1)
        );
        let pairs: Vec<(usize, usize)> = match best {
            Some(b) => (nb..values.len()).map(|v| (v, b)).collect(),
            None => vec![],
        };
        let per =
            super::report::per_relation(self.records, &columns, values, &pairs, resamples, seed);
        auroc_rows(md, json, self.names, nb, best, &columns, &per);
    }
}

/// The rows of an AUROC table (`per`: [`super::report::per_relation`] over `columns`, with
/// the pairs (v, best) for every score v from `nb` on), then each of those scores against the
/// best baseline `best`; into `md` and under `json` (`auroc`, `difference_vs_best_baseline`,
/// `best_baseline`).
fn auroc_rows(
    md: &mut String,
    json: &mut serde_json::Value,
    names: &[String],
    nb: usize,
    best: Option<usize>,
    columns: &[String],
    per: &[super::report::PerColumn],
) {
    for (i, name) in names.iter().enumerate() {
        let cells: Vec<String> = per.iter().map(|p| fmt_iv(&p.0[i])).collect();
        let _ = writeln!(md, "| {name} | {} |", cells.join(" | "));
        for (rel, p) in columns.iter().zip(per) {
            json["auroc"][name.trim_matches('*')][rel] = serde_json::json!(p.0[i]);
        }
    }
    let Some(b) = best else { return };
    for (k, v) in (nb..names.len()).enumerate() {
        let cells: Vec<String> = columns
            .iter()
            .zip(per)
            .map(|(rel, p)| format!("{rel} {}", fmt_iv(&p.1[k])))
            .collect();
        let _ = writeln!(
            md,
            "\n{} − best single baseline ({}): {}.",
            names[v].trim_matches('*'),
            names[b],
            cells.join(", ")
        );
        for (rel, p) in columns.iter().zip(per) {
            json["difference_vs_best_baseline"][names[v].trim_matches('*')][rel] =
                serde_json::json!(p.1[k]);
        }
    }
    json["best_baseline"] = serde_json::json!(names[b]);
}

/// Selective answering on every item (T4, T5): risk–coverage (AURC) for every score, and the
/// Kalai-penalised score for those that are probabilities — the answer-level voids (1 − P(wrong),
/// out of fold) beside the answer's own probability exp(−ΣΦ), its per-token geometric mean
/// exp(−mean Φ) and the least likely token's probability. Paired 95% bootstrap intervals for
/// each void's difference to the best baseline (AURC: lowest; Kalai S at t = 0.75: highest).
fn selective(
    records: &[Record],
    names: &[String],
    nb: usize,
    values: &[Vec<f64>],
    resamples: usize,
    json: &mut serde_json::Value,
) -> String {
    const TS: [f64; 3] = [0.5, 0.75, 0.9];
    let base = &names[..nb];
    let correct: Vec<bool> = records.iter().map(|r| r.correct).collect();
    let pick = |idx: &[usize], v: &[f64]| -> (Vec<f64>, Vec<bool>) {
        idx.iter().map(|&i| (v[i], correct[i])).unzip()
    };
    let aurc_at = |v: &[f64], idx: &[usize]| {
        let (s, c) = pick(idx, v);
        metrics::aurc(&metrics::risk_coverage(&s, &c))
    };
    let kalai_at = |conf: &[f64], idx: &[usize], t: f64| {
        let (s, c) = pick(idx, conf);
        metrics::kalai_score(&s, &c, t)
    };
    // Confidences: the baselines that are probabilities, then every void.
    let sum_phi = |r: &Record| r.steps.iter().map(|s| s.potential).sum::<f64>();
    let tok = |r: &Record| r.steps.len().max(1) as f64;
    let mut confs: Vec<(String, Vec<f64>)> = vec![
        (
            "exp(−ΣΦ): the answer's probability".into(),
            records.iter().map(|r| (-sum_phi(r)).exp()).collect(),
        ),
        (
            "exp(−mean Φ)".into(),
            records
                .iter()
                .map(|r| (-sum_phi(r) / tok(r)).exp())
                .collect(),
        ),
        (
            "min token probability".into(),
            records
                .iter()
                .map(|r| {
                    r.steps
                        .iter()
                        .map(|s| (-s.potential).exp())
                        .fold(1.0, f64::min)
                })
                .collect(),
        ),
    ];
    let nc = confs.len();
    let probability = |v: &[f64]| v.iter().all(|p| (0.0..=1.0).contains(p));
    for v in &values[nb..] {
        confs.push((String::new(), v.iter().map(|p| 1.0 - p).collect()));
    }
    let all: Vec<usize> = (0..records.len()).collect();
    let mut md = format!(
        "\nSelective answering on every item (answer when the score is low enough; AURC lower \
         is better; Kalai S: answer when the confidence ≥ t, right +1, wrong −t/(1−t), \
         abstain 0; a void's confidence is 1 − its out-of-fold P(wrong); the probe alone is \
         not a probability):\n\n\
         | score | AURC | accuracy at 50% coverage | at 80% | Kalai S, t = {} | t = {} | t = {} |\n\
         |---|---|---|---|---|---|---|\n",
        TS[0], TS[1], TS[2]
    );
    let row = |md: &mut String, name: &str, v: &[f64], conf: Option<&[f64]>| {
        let curve = metrics::risk_coverage(v, &correct);
        let k: Vec<String> = TS
            .iter()
            .map(|&t| {
                conf.map_or("–".into(), |c| {
                    format!("{:.3}", kalai_at(c, &all, t) + 0.0)
                })
            })
            .collect();
        let _ = writeln!(
            md,
            "| {name} | {:.4} | {:.3} | {:.3} | {} |",
            metrics::aurc(&curve),
            metrics::accuracy_at(&curve, 0.5),
            metrics::accuracy_at(&curve, 0.8),
            k.join(" | ")
        );
    };
    for (i, name) in base.iter().enumerate() {
        row(&mut md, name, &values[i], None);
    }
    for (name, c) in &confs[..nc] {
        let risk: Vec<f64> = c.iter().map(|p| -p).collect();
        row(&mut md, name, &risk, Some(c));
    }
    let void_names: Vec<&str> = names[nb..].iter().map(|n| n.trim_matches('*')).collect();
    for (k, v) in (nb..values.len()).enumerate() {
        let conf = probability(&values[v]).then_some(confs[nc + k].1.as_slice());
        row(&mut md, &names[v], &values[v], conf);
    }
    // The best baselines, by the point value on every item.
    let best_aurc = (0..nb)
        .min_by(|&a, &b| aurc_at(&values[a], &all).total_cmp(&aurc_at(&values[b], &all)))
        .expect("baselines");
    let best_kalai = (0..nc)
        .max_by(|&a, &b| {
            kalai_at(&confs[a].1, &all, 0.75).total_cmp(&kalai_at(&confs[b].1, &all, 0.75))
        })
        .expect("confidences");
    for (k, v) in (nb..values.len()).enumerate() {
        let d_aurc = metrics::bootstrap(records.len(), resamples, 2026 + k as u64, |idx| {
            Some(aurc_at(&values[v], idx) - aurc_at(&values[best_aurc], idx))
        });
        let d_kalai = probability(&values[v])
            .then(|| {
                metrics::bootstrap(records.len(), resamples, 2036 + k as u64, |idx| {
                    Some(
                        kalai_at(&confs[nc + k].1, idx, 0.75)
                            - kalai_at(&confs[best_kalai].1, idx, 0.75),
                    )
                })
            })
            .flatten();
        let _ = writeln!(
            md,
            "
{} − best baseline: AURC {} (against {}), Kalai S at t = 0.75 {} (against {}).",
            void_names[k],
            fmt_iv(&d_aurc),
            base[best_aurc],
            fmt_iv(&d_kalai),
            confs[best_kalai].0
        );
        json["answer_level"]["selective"][void_names[k]] = serde_json::json!({
            "aurc_difference": d_aurc,
            "kalai_075_difference": d_kalai,
        });
    }
    md
}

/// The keys of [`FEATURES`] as `AnswerWeights` names them (`eval answer-fit --features`).
pub const FEATURE_KEYS: [&str; 10] = [
    "mean_entropy",
    "max_entropy",
    "mean_sqrt_varentropy",
    "sum_potential",
    "mean_potential",
    "max_potential",
    "first_entropy",
    "first_one_minus_pmax",
    "content_entropy",
    "content_one_minus_pmax",
];

/// The answer-level void fitted on the records of every set on the features `keep` (indices
/// into [`FEATURES`]), as answer weights (the others 0); None with a single class.
fn fit_on(records: &[&Record], keep: &[usize]) -> Option<AnswerWeights> {
    let wrong: Vec<bool> = records.iter().map(|r| !r.correct).collect();
    if wrong.iter().all(|&w| w) || !wrong.iter().any(|&w| w) {
        return None;
    }
    let x: Vec<Vec<f64>> = records
        .iter()
        .map(|r| {
            let f = features(r);
            keep.iter().map(|&k| f[k]).collect()
        })
        .collect();
    let (b, w) = metrics::logistic_fit(&x, &wrong, 1.0);
    let mut full = vec![0.0; FEATURES.len()];
    debug_assert!(keep.iter().enumerate().all(|(i, k)| !keep[..i].contains(k)));
    for (&k, v) in keep.iter().zip(w) {
        full[k] = v;
    }
    Some(weights(b, &full))
}

/// The fit `eval answer-fit` ships (docs/EVALUATION.md §1d): one answer-level void over the
/// records of several sets (models, banks) on the features `keep`, and how it transfers. Per
/// set and relation, beside the single baselines: the fit on every set (in sample), the fit on
/// the **other** sets only (a model it never saw), leave one relation out (fit on every set
/// without that relation), and — the in-domain reference — 5×2 cross-fitted within the set on
/// the same features. Paired bootstrap intervals of each against the set's best baseline.
/// Returns the report, its JSON and the weights of the fit on everything.
pub fn fit_sets(
    sets: &[(String, Vec<Record>)],
    keep: &[usize],
    resamples: usize,
) -> (String, serde_json::Value, Option<AnswerWeights>) {
    let mut md = String::new();
    let mut json = serde_json::json!({});
    let every: Vec<&Record> = sets.iter().flat_map(|(_, r)| r).collect();
    let shipped = fit_on(&every, keep);
    let names: Vec<&str> = keep.iter().map(|&k| FEATURES[k]).collect();
    let _ = writeln!(
        md,
        "Answer-level void on {} over {} records of {} sets ({}).\n",
        names.join(", "),
        every.len(),
        sets.len(),
        sets.iter()
            .map(|(n, r)| format!("{n}: {}", r.len()))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let relations: Vec<String> = {
        let mut out: Vec<String> = vec![];
        for r in &every {
            if !out.contains(&r.relation) {
                out.push(r.relation.clone());
            }
        }
        out
    };
    // Leave one relation out over every set: one fit per relation.
    let loro: Vec<(String, Option<AnswerWeights>)> = relations
        .iter()
        .map(|rel| {
            let rest: Vec<&Record> = every
                .iter()
                .copied()
                .filter(|r| &r.relation != rel)
                .collect();
            (rel.clone(), fit_on(&rest, keep))
        })
        .collect();
    // One record's void by a fit (0.5 where a fit saw a single class).
    let one = |r: &Record, w: &Option<AnswerWeights>| {
        w.as_ref().map_or(0.5, |w| stats(r).void_score(w) as f64)
    };
    let score = |rs: &[Record], w: &Option<AnswerWeights>| -> Vec<f64> {
        rs.iter().map(|r| one(r, w)).collect()
    };
    for (si, (set, records)) in sets.iter().enumerate() {
        let base = super::qa::baselines(records);
        let mut rows: Vec<String> = base.names.iter().map(|s| s.to_string()).collect();
        let mut values = base.values;
        let nb = rows.len();
        rows.push("**fit on every set (in sample)**".into());
        values.push(score(records, &shipped));
        if sets.len() > 1 {
            let others: Vec<&Record> = sets
                .iter()
                .enumerate()
                .filter(|&(j, _)| j != si)
                .flat_map(|(_, (_, r))| r)
                .collect();
            rows.push("**fit on the other sets only**".into());
            values.push(score(records, &fit_on(&others, keep)));
        }
        if relations.len() > 1 {
            rows.push("**leave one relation out (every set)**".into());
            values.push(
                records
                    .iter()
                    .map(|r| {
                        let w = &loro.iter().find(|(rel, _)| rel == &r.relation);
                        one(r, &w.expect("a relation").1)
                    })
                    .collect(),
            );
        }
        // In-domain reference: 5×2 cross-fitted within the set on the same features.
        let data = Data {
            fit: Fit::Answer,
            x: records
                .iter()
                .map(|r| {
                    let f = features(r);
                    keep.iter().map(|&k| f[k]).collect()
                })
                .collect(),
            wrong: records.iter().map(|r| !r.correct).collect(),
            hidden: None,
        };
        let mut sum = vec![0.0; records.len()];
        for (a, b) in splits(records) {
            for (train, test) in [(&a, &b), (&b, &a)] {
                for (&i, p) in test.iter().zip(data.predict(train, test)) {
                    sum[i] += p / 5.0;
                }
            }
        }
        rows.push("**5×2 cross-fitted within this set (in domain)**".into());
        values.push(sum);
        let wrong: Vec<bool> = records.iter().map(|r| !r.correct).collect();
        let best = (0..nb)
            .filter_map(|i| metrics::auroc(&values[i], &wrong).map(|a| (i, a)))
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(i, _)| i);
        let rels: Vec<String> = super::report::relations(records);
        let columns: Vec<String> = rels.iter().cloned().chain(["pooled".into()]).collect();
        let pairs: Vec<(usize, usize)> = match best {
            Some(b) => (nb..values.len()).map(|v| (v, b)).collect(),
            None => vec![],
        };
        let per = super::report::per_relation(records, &columns, &values, &pairs, resamples, 2027);
        let _ = writeln!(
            md,
            "\n### {set}\n\nAUROC for a wrong answer, 95% paired-bootstrap intervals ({resamples} \
             resamples; the pooled leave-one-relation-out column mixes one fit per relation):\n\n\
             | score | {} |\n|{}",
            columns.join(" | "),
            "---|".repeat(columns.len() + 1)
        );
        auroc_rows(
            &mut md,
            &mut json["sets"][set],
            &rows,
            nb,
            best,
            &columns,
            &per,
        );
    }
    if let Some(w) = &shipped {
        json["weights"] = serde_json::json!(w);
        let _ = writeln!(
            md,
            "\nThe fit on every set (written as `calibration.json`'s `answer` section):\n\n```json\n{}\n```",
            serde_json::to_string_pretty(w).expect("serialises")
        );
    }
    (md, json, shipped)
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
            hidden: None,
        }
    }

    #[test]
    fn the_five_splits_differ() {
        // Each pair of splits (and the probe's inner split) must differ from each other and
        // from each other's complement: the same halves five times are one 2-fold split.
        let subjects: Vec<String> = (0..200).map(|i| format!("Country {i}")).collect();
        let seeds = [0u64, 1, 2, 3, 4, 17];
        let sides: Vec<Vec<bool>> = seeds
            .iter()
            .map(|&s| subjects.iter().map(|n| half(n, s)).collect())
            .collect();
        for (i, a) in sides.iter().enumerate() {
            let ones = a.iter().filter(|&&x| x).count();
            assert!(
                (70..130).contains(&ones),
                "seed {}: {ones} of 200",
                seeds[i]
            );
            for b in &sides[i + 1..] {
                let same = a.iter().zip(b).filter(|(x, y)| x == y).count();
                assert!((50..150).contains(&same), "{same} of 200 agree");
            }
        }
    }

    #[test]
    fn the_probe_finds_what_the_aggregates_miss() {
        // Aggregates carry nothing (same entropy for every item); the wrong answers' mean
        // states lie along a direction. The probe alone and the void with it separate them,
        // in and out of their relation; the void without it cannot.
        let rs: Vec<Record> = (0..120)
            .map(|i| {
                let wrong = i % 3 == 0;
                let mut r = rec(&format!("s{i}"), ["a", "b", "c"][(i / 3) % 3], 1.0, !wrong);
                let noise = ((i * 37) % 11) as f32 / 11.0 - 0.5;
                let s = if wrong { 1.0 } else { -1.0 };
                let mean = vec![s + 0.3 * noise, noise, 2.0];
                r.hidden = Some(crate::eval::qa::Hidden {
                    first: mean.clone(),
                    content: mean.clone(),
                    mean,
                });
                r
            })
            .collect();
        let wrong: Vec<bool> = rs.iter().map(|r| !r.correct).collect();
        let auc = |v: &[f64]| metrics::auroc(v, &wrong).unwrap();
        assert!(auc(&probe_cross_fitted(&rs, Fit::Answer)) > 0.99);
        assert!(auc(&cross_fitted(&rs, Fit::Answer, true)) > 0.99);
        assert!(auc(&cross_fitted(&rs, Fit::Answer, false)) < 0.7);
        let rels: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let lo = leave_one_relation_out(&rs, &rels, Fit::Answer, true);
        for rel in &rels {
            let keep: Vec<usize> = (0..rs.len()).filter(|&i| &rs[i].relation == rel).collect();
            let (v, w): (Vec<f64>, Vec<bool>) = keep.iter().map(|&i| (lo[i], wrong[i])).unzip();
            assert!(metrics::auroc(&v, &w).unwrap() > 0.99, "{rel}");
        }
        let mut json = serde_json::json!({});
        let md = section(&rs, &rels, 50, &mut json, None, true);
        assert!(md.contains("hidden-state probe"), "{md}");
        assert!(md.contains("Kalai S, t = 0.5"), "{md}");
    }

    /// States of 64 values where the classes differ along x₂ − x₁ while x₁ varies widely and
    /// x₂ follows it (the other 62 barely vary, as most of a model's do): the mass-mean
    /// direction (0, 1, 0, …) reads mostly x₁'s spread, LDA discounts it even shrunk halfway to
    /// the identity. Content states carry the signal, mean states nothing.
    fn correlated_states() -> Vec<Record> {
        (0..160)
            .map(|i| {
                let wrong = i % 4 == 0;
                let mut r = rec(&format!("s{i}"), ["a", "b"][(i / 4) % 2], 1.0, !wrong);
                let spread = ((i * 53) % 29) as f32 - 14.0;
                let jitter = ((i * 31) % 7) as f32 / 7.0 - 0.5;
                let shift = if wrong { 1.0 } else { -1.0 };
                let mut content = vec![spread, spread + shift + 0.2 * jitter];
                content.extend((0..62).map(|k| ((i * 7 + k * 13) % 5) as f32 * 0.01));
                r.hidden = Some(crate::eval::qa::Hidden {
                    first: content.clone(),
                    mean: vec![0.0, jitter],
                    content,
                });
                r
            })
            .collect()
    }

    #[test]
    fn the_pre_generation_probe_discounts_the_within_class_spread() {
        let rs = correlated_states();
        let wrong: Vec<bool> = rs.iter().map(|r| !r.correct).collect();
        let auc = |v: &[f64]| metrics::auroc(v, &wrong).unwrap();
        assert!(auc(&probe_cross_fitted(&rs, Fit::PreGeneration)) > 0.99);
        assert!(auc(&cross_fitted(&rs, Fit::PreGeneration, true)) > 0.99);
        // The field is the same for every item: without the probe, nothing.
        assert!(auc(&cross_fitted(&rs, Fit::PreGeneration, false)) < 0.7);
        // The mass-mean direction on the same states is much weaker.
        let h: Vec<&[f32]> = rs
            .iter()
            .map(|r| r.hidden.as_ref().unwrap().content.as_slice())
            .collect();
        let all: Vec<usize> = (0..rs.len()).collect();
        let mass_mean = probe(Fit::Answer, &h, &wrong, &all, &all);
        assert!(auc(&mass_mean) < 0.8, "{}", auc(&mass_mean));
        let rels: Vec<String> = ["a", "b"].iter().map(|s| s.to_string()).collect();
        let lo = leave_one_relation_out(&rs, &rels, Fit::PreGeneration, true);
        assert!(auc(&lo) > 0.99);
        let mut json = serde_json::json!({});
        let md = pregeneration_section(&rs, &rels, 50, &mut json);
        assert!(
            md.contains("| **pre-generation void + probe, leave one relation out** |"),
            "{md}"
        );
        assert!(json["pre_generation"]["best_baseline"].is_string());
    }

    #[test]
    fn the_lda_direction_solves_the_shrunk_covariance() {
        // θ from the n × n (Woodbury) solve satisfies Σ_λ θ = δ, Σ_λ built directly (d × d).
        let rs: Vec<Record> = (0..14)
            .map(|i| {
                let mut r = rec(&format!("s{i}"), "a", 1.0, i % 3 != 0);
                let v: Vec<f32> = (0..5)
                    .map(|k| ((i * 7 + k * 11 + i * k) % 13) as f32 / 3.0)
                    .collect();
                r.hidden = Some(crate::eval::qa::Hidden {
                    first: v.clone(),
                    mean: v.clone(),
                    content: v,
                });
                r
            })
            .collect();
        let wrong: Vec<bool> = rs.iter().map(|r| !r.correct).collect();
        let h: Vec<&[f32]> = rs
            .iter()
            .map(|r| r.hidden.as_ref().unwrap().mean.as_slice())
            .collect();
        let all: Vec<usize> = (0..rs.len()).collect();
        let (theta, _) = lda_direction(&h, &wrong, &all).unwrap();
        let [bad, good, _] = class_means(&h, &wrong, &all).unwrap();
        let d = 5;
        let mut c = vec![vec![0.0; d]; d];
        for (i, x) in h.iter().enumerate() {
            let m = if wrong[i] { &bad } else { &good };
            for a in 0..d {
                for b in 0..d {
                    c[a][b] += (x[a] as f64 - m[a]) * (x[b] as f64 - m[b]) / rs.len() as f64;
                }
            }
        }
        let tr: f64 = (0..d).map(|a| c[a][a]).sum();
        for a in 0..d {
            let sigma_theta: f64 = (0..d)
                .map(|b| {
                    let s = (1.0 - LDA_SHRINKAGE) * c[a][b]
                        + if a == b {
                            LDA_SHRINKAGE * tr / d as f64
                        } else {
                            0.0
                        };
                    s * theta[b]
                })
                .sum();
            let delta = bad[a] - good[a];
            assert!(
                (sigma_theta - delta).abs() < 1e-9 * (1.0 + delta.abs()),
                "{a}: {sigma_theta} vs {delta}"
            );
        }
        // States that do not vary: no direction.
        let flat: Vec<&[f32]> = vec![&[1.0, 2.0][..]; rs.len()];
        assert!(lda_direction(&flat, &wrong, &all).is_none());
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
        let cf = cross_fitted(&rs, Fit::Answer, false);
        assert_eq!(cf.len(), rs.len());
        assert!(metrics::auroc(&cf, &wrong).unwrap() > 0.99);
        let rels: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let lo = leave_one_relation_out(&rs, &rels, Fit::Answer, false);
        assert!(lo.iter().all(|p| (0.0..=1.0).contains(p)));
        assert!(metrics::auroc(&lo, &wrong).unwrap() > 0.99);
        let mut json = serde_json::json!({});
        let shipped = AnswerWeights::default();
        let md = section(
            &rs,
            &rels,
            50,
            &mut json,
            Some((&shipped, "shipped weights")),
            true,
        );
        assert!(md.contains("| score | a | b | c | pooled |"), "{md}");
        assert!(md.contains("shipped weights (not refitted)"), "{md}");
        assert!(json["answer_level"]["best_baseline"].is_string());
        // Scored alone (a given calibration): no fit here.
        let md = section(&rs, &rels, 50, &mut json, Some((&shipped, "given")), false);
        assert!(!md.contains("cross-fitted"), "{md}");
    }

    #[test]
    fn fitted_weights_score_as_their_fit_does() {
        // Ten features that vary independently: the weights written for the processor, applied
        // by `AnswerStats::void_score` to the records' aggregates, give the fit's own
        // probabilities — every feature lands on its own weight.
        let rs: Vec<Record> = (0..90)
            .map(|i| {
                let wrong = (i * 7) % 5 < 2;
                let mut r = rec(&format!("s{i}"), "a", 1.0, !wrong);
                let n = 2 + i % 4;
                r.steps = (0..n)
                    .map(|k| {
                        let x = ((i * 13 + k * 29) % 17) as f64 / 17.0;
                        Step {
                            max: 5.0 + x as f32,
                            second: 1.0 + ((i + k) % 3) as f32,
                            argmax: 0,
                            log_z: 5.5 + x * x + if wrong { 0.3 } else { 0.0 },
                            entropy: 0.2 + x + if wrong { 0.5 } else { 0.0 },
                            varentropy: ((i * 3 + k) % 7) as f64 / 3.0,
                            potential: 0.1 + ((i * 5 + k * 11) % 13) as f64 / 9.0,
                        }
                    })
                    .collect();
                // What the processor streamed: every aggregate its own value, and a first
                // content token at step 1 whose field differs from the first token's.
                let y = |k: usize| ((i * (k + 3) * 7 + k) % 19) as f32 / 7.0;
                r.streamed = Some(crate::eval::qa::Streamed {
                    tokens: n as u32,
                    mean_entropy: y(0),
                    max_entropy: y(1),
                    mean_sqrt_varentropy: y(2),
                    sum_potential: Some(y(3)),
                    mean_potential: y(4),
                    max_potential: y(5),
                    first_content: Some((1, y(6), y(7) / 3.0)),
                    probe_first: None,
                    probe_mean: None,
                });
                r
            })
            .collect();
        let w = fitted_weights(&rs, false).expect("two classes");
        let data = Data::new(&rs, Fit::Answer, false);
        let all: Vec<usize> = (0..rs.len()).collect();
        let want = fit_predict(&data.x, &data.wrong, &all, &all);
        let got = scored(&rs, &w).expect("no probe weight");
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() < 1e-4, "{g} vs {w}");
        }
        // A probe weight over records streamed without a probe: not scored (not a silent 0).
        let with_probe = AnswerWeights {
            probe: 1.0,
            ..w.clone()
        };
        assert!(scored(&rs, &with_probe).is_none());
    }

    #[test]
    fn the_shipped_answer_weights_are_the_committed_fit() {
        // `AnswerWeights::default()` is what `eval answer-fit` wrote (docs/EVALUATION.md §1d).
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../docs/eval/answer-fit/calibration.json");
        let c = infogravity::Calibration::load(&path).expect("the committed fit");
        assert_eq!(c.answer, Some(AnswerWeights::default()));
    }
}
