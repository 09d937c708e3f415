//! Temperature rules under the protocol of SCIENCE.md §3.4 (docs/EVALUATION.md §3): each rule
//! — fixed T, EDT, llama.cpp dynatemp, and the gravity temperature T_base(M) = T0·e^{±0.5·M} in
//! each direction (docs/DESIGN.md §1 "Adaptive temperature") — is swept over the same base
//! temperatures T0, with the same truncation for every rule (top-nσ by default), on a mixed bank:
//! the QA items and the open-ended prompts run under one configuration per rule and T0. Quality
//! (QA accuracy) is read against diversity (disagreement between an item's samples; 1 − self-BLEU
//! across a prompt's samples), and the rules are compared at matched diversity by interpolating
//! each rule's sweep, with paired bootstrap intervals. Greedy is the reference; fixed T without
//! truncation at the top of the sweep shows what the cut buys.
//!
//! M(Q) is standardised as the processor does by default (`mass.scale = auto`): against the
//! running statistics of the queries it has seen, which on this bank converge to the mean and
//! SD of the raw components over every row of the mixed bank. The evaluation computes those
//! once, from the greedy pass, and hands them to every gravity run as a calibration (the eval's
//! processors are rebuilt per batch, so their own running statistics would never warm up).
//! So M is in standard deviations of this workload, and ±0.5 is a factor e^{±0.5} per SD.
//!
//! Tuning budget: every rule gets the same T0 grid and nothing else is tuned (the gravity gain
//! is fixed at ±0.5 per SD, EDT and dynatemp at their published defaults), so no dev/test split
//! is needed: nothing is selected on the data.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::metrics::{self, Interval};
use super::qa::{self, Item};
use super::{Prompt, read_jsonl, run_batches, write_line};
use crate::{Engine, Generation};
use infogravity::sampler::Rng;
use infogravity::{Calibration, Result};

/// The rules compared: (key for `--rules`, name, the temperature settings besides `base`).
/// Fixed T comes first: it is what every other rule is compared with.
pub const RULES: [(&str, &str, &str); 5] = [
    ("fixed", "fixed T", r#""response":"none""#),
    ("edt", "EDT (θ = 1, n = 0.8)", r#""response":"edt""#),
    (
        "dynatemp",
        "dynatemp (range ±50%)",
        r#""response":"dynatemp","dyn_range":0.5"#,
    ),
    (
        "hotter",
        "gravity, heavy → hotter (+0.5/SD)",
        r#""response":"none","mass_gain":0.5,"mass_ref":0"#,
    ),
    (
        "colder",
        "gravity, heavy → colder (−0.5/SD)",
        r#""response":"none","mass_gain":-0.5,"mass_ref":0"#,
    ),
];

/// The rules of `keys` (fixed T always included, first), or an error naming an unknown key.
pub fn rules(keys: &[String]) -> std::result::Result<Vec<(&'static str, &'static str)>, String> {
    if let Some(k) = keys
        .iter()
        .find(|k| !RULES.iter().any(|r| r.0 == k.as_str()))
    {
        let known: Vec<&str> = RULES.iter().map(|r| r.0).collect();
        return Err(format!("unknown rule `{k}` (known: {})", known.join(", ")));
    }
    Ok(RULES
        .iter()
        .filter(|r| r.0 == "fixed" || keys.is_empty() || keys.iter().any(|k| k == r.0))
        .map(|r| (r.1, r.2))
        .collect())
}

/// The reference rule's name (greedy decoding).
pub const GREEDY: &str = "greedy";
/// The name of fixed T without truncation.
pub const NO_CUT: &str = "fixed T, no truncation";

/// The truncation every rule runs with.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub enum Cut {
    #[default]
    None,
    /// top-nσ with this n.
    NSigma(f32),
    /// min-p with this threshold.
    MinP(f32),
}

impl Cut {
    /// Parse `none`, `nsigma:N` or `minp:P`.
    pub fn parse(s: &str) -> std::result::Result<Cut, String> {
        let num = |v: &str| {
            v.parse::<f32>()
                .ok()
                .filter(|x| x.is_finite() && *x > 0.0)
                .ok_or_else(|| format!("`{v}` is not a positive number"))
        };
        match s.split_once(':') {
            None if s == "none" => Ok(Cut::None),
            Some(("nsigma", v)) => Ok(Cut::NSigma(num(v)?)),
            Some(("minp", v)) => Ok(Cut::MinP(num(v)?.min(1.0))),
            _ => Err(format!("`{s}`: expected none, nsigma:N or minp:P")),
        }
    }
    fn sampler(&self) -> String {
        match self {
            Cut::None => r#""min_p":0"#.into(),
            Cut::NSigma(n) => format!(r#""min_p":0,"top_nsigma":{n}"#),
            Cut::MinP(p) => format!(r#""min_p":{p}"#),
        }
    }
    /// A label for tables.
    pub fn label(&self) -> String {
        match self {
            Cut::None => "no truncation".into(),
            Cut::NSigma(n) => format!("top-nσ, n = {n}"),
            Cut::MinP(p) => format!("min-p {p}"),
        }
    }
}

/// The processor configuration of a rule at base temperature `base` under `cut`: the neutral
/// preset (no interventions) with the clamps opened to [0.01, 4].
pub fn config(settings: &str, base: f64, cut: Cut) -> String {
    format!(
        r#"{{"preset":"neutral","temperature":{{"base":{base},"min":0.01,"max":4,{settings}}},"sampler":{{{}}}}}"#,
        cut.sampler()
    )
}

/// Settings of a run.
#[derive(Debug, Clone)]
pub struct Options {
    /// The rules swept (name, settings), fixed T first.
    pub rules: Vec<(&'static str, &'static str)>,
    /// The T0 grid every rule is swept over.
    pub bases: Vec<f64>,
    /// The truncation of every rule.
    pub cut: Cut,
    /// Samples per QA item and per open-ended prompt (≥ 2: diversity is across samples).
    pub qa_samples: usize,
    pub open_samples: usize,
    /// Tokens generated per QA answer (graded on its first sentence) and per open-ended text.
    pub qa_tokens: usize,
    pub open_tokens: usize,
    /// Rows per batch.
    pub batch: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            rules: RULES.iter().map(|r| (r.1, r.2)).collect(),
            bases: vec![0.3, 0.5, 0.7, 1.0, 1.4, 2.0],
            cut: Cut::NSigma(1.0),
            qa_samples: 2,
            open_samples: 3,
            qa_tokens: 12,
            open_tokens: 48,
            batch: 24,
        }
    }
}

/// One configuration of the sweep.
#[derive(Debug, Clone, PartialEq)]
struct Run {
    rule: String,
    settings: String,
    base: f64,
    cut: Cut,
}

fn runs(o: &Options) -> Vec<Run> {
    let mut v = vec![Run {
        rule: GREEDY.into(),
        settings: r#""response":"none""#.into(),
        base: 0.0,
        cut: Cut::None,
    }];
    for &(rule, settings) in &o.rules {
        for &base in &o.bases {
            v.push(Run {
                rule: rule.into(),
                settings: settings.into(),
                base,
                cut: o.cut,
            });
        }
    }
    if o.cut != Cut::None {
        let top = o.bases.iter().copied().fold(f64::NAN, f64::max);
        v.push(Run {
            rule: NO_CUT.into(),
            settings: RULES[0].2.into(),
            base: top,
            cut: Cut::None,
        });
    }
    v
}

/// One sampled output.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TempRecord {
    /// "qa" or "open".
    pub task: String,
    pub rule: String,
    pub base: f64,
    pub cut: Cut,
    /// Row index within the task (item or prompt × samples).
    pub row: usize,
    /// QA item id, or open-ended prompt index.
    pub source: u32,
    pub tokens: Vec<u32>,
    pub text: String,
    /// QA: graded by alias match.
    pub correct: Option<bool>,
    /// Counted steps (QA: up to the end of the first sentence; open: all) and their sums of
    /// temperature and of log p(token) under the unmodified field at T = 1.
    pub steps: usize,
    pub t_sum: f64,
    pub logp_sum: f64,
    /// The query's raw M(Q) components as the processor measured them (H at the answer
    /// position, normalised; N), for the standardisation.
    pub h: Option<f32>,
    pub n: Option<f32>,
}

/// Counted steps of a generation and (steps, ΣT, Σ log p).
fn counted(e: &Engine, task: &str, g: &Generation) -> Result<(usize, f64, f64)> {
    let n = if task == "qa" {
        qa::sentence_tokens(e, &g.tokens)?
            .max(1)
            .min(g.reports.len())
    } else {
        g.reports.len()
    };
    let r = &g.reports[..n];
    Ok((
        n,
        r.iter().map(|x| x.temperature as f64).sum(),
        r.iter().map(|x| -x.token_potential as f64).sum(),
    ))
}

/// The rows of one task.
struct Task<'a> {
    name: &'static str,
    rows: Vec<Prompt>,
    source: Vec<u32>,
    tokens: usize,
    items: Option<&'a [Item]>,
}

fn tasks<'a>(
    e: &Engine,
    items: &'a [Item],
    prompts: &[String],
    o: &Options,
) -> Result<Vec<Task<'a>>> {
    let mut qa_rows = vec![];
    let mut qa_src = vec![];
    for it in items {
        let p = qa::item_prompt(e, &it.question, &it.stem)?;
        for _ in 0..o.qa_samples {
            qa_rows.push(p.clone());
            qa_src.push(it.id);
        }
    }
    let mut open_rows = vec![];
    let mut open_src = vec![];
    for (i, text) in prompts.iter().enumerate() {
        let (ids, s, t) = crate::prompt_with_span(e, None, text, "")?;
        for _ in 0..o.open_samples {
            open_rows.push((ids.clone(), s..t));
            open_src.push(i as u32);
        }
    }
    Ok(vec![
        Task {
            name: "qa",
            rows: qa_rows,
            source: qa_src,
            tokens: o.qa_tokens,
            items: Some(items),
        },
        Task {
            name: "open",
            rows: open_rows,
            source: open_src,
            tokens: o.open_tokens,
            items: None,
        },
    ])
}

/// Seed of the sampling rows (the same for every rule and T0: common random numbers).
const SEED: u64 = 20_241_123;

/// The M(Q) standardisation of the mixed bank: the mean and SD of each raw component over every
/// row of both tasks (what the processor's running statistics converge to on this stream).
pub fn bank_standardisation(records: &[TempRecord]) -> Calibration {
    let mut run = infogravity::mass::RunningMass::default();
    for r in records.iter().filter(|r| r.rule == GREEDY) {
        run.push(&infogravity::QueryMass {
            h: r.h,
            n_kl: r.n,
            ..Default::default()
        });
    }
    let std = |w: &infogravity::mass::Welford| w.standard(2);
    Calibration {
        format: infogravity::calibration::CALIBRATION_FORMAT.into(),
        version: infogravity::calibration::CALIBRATION_VERSION,
        provenance: "eval temperature: mean and SD of M(Q)'s components over the mixed bank".into(),
        void: None,
        answer: None,
        mass: Some(infogravity::calibration::MassStats {
            h: std(&run.h),
            d: None,
            n: std(&run.n),
        }),
    }
}

/// Run the sweep: greedy first (its records give the M(Q) standardisation), then every rule at
/// every T0, appending to `temperature.jsonl` (resumable). `progress(done, total)` counts rows.
#[allow(clippy::too_many_arguments)]
pub fn run(
    e: &mut Engine,
    items: &[Item],
    prompts: &[String],
    prior: Option<&infogravity::Prior>,
    o: &Options,
    dir: &Path,
    mut progress: impl FnMut(usize, usize),
) -> Result<Vec<TempRecord>> {
    let tasks = tasks(e, items, prompts, o)?;
    let path = dir.join("temperature.jsonl");
    let mut have: Vec<TempRecord> = read_jsonl(&path, "temperature results")?;
    let mut file = super::append(&path)?;
    let runs = runs(o);
    let total: usize = tasks.iter().map(|t| t.rows.len()).sum::<usize>() * runs.len();
    let mut calib: Option<Calibration> = None;
    for run in &runs {
        if run.rule != GREEDY && calib.is_none() {
            let c = bank_standardisation(&have);
            let p = dir.join("temperature_standardisation.json");
            std::fs::write(&p, serde_json::to_string_pretty(&c).expect("serialises"))
                .map_err(|err| infogravity::Error::Io(format!("{}: {err}", p.display())))?;
            calib = Some(c);
        }
        let json = config(&run.settings, run.base, run.cut);
        for t in &tasks {
            let mut done = vec![false; t.rows.len()];
            for r in have.iter().filter(|r| {
                r.task == t.name && r.rule == run.rule && r.base == run.base && r.cut == run.cut
            }) {
                if let Some(d) = done.get_mut(r.row) {
                    *d = true;
                }
            }
            run_batches(
                e,
                &json,
                prior,
                calib.as_ref(),
                &t.rows,
                t.tokens,
                o.batch,
                SEED,
                &done,
                |_| None,
                |e, row, g| {
                    let (steps, t_sum, logp_sum) = counted(e, t.name, &g)?;
                    let correct = t.items.map(|items| {
                        let it = items
                            .iter()
                            .find(|i| i.id == t.source[row])
                            .expect("row of an item");
                        qa::grade(&g.text, &it.answers)
                    });
                    let r = TempRecord {
                        task: t.name.into(),
                        rule: run.rule.clone(),
                        base: run.base,
                        cut: run.cut,
                        row,
                        source: t.source[row],
                        text: g.text,
                        tokens: g.tokens,
                        correct,
                        steps,
                        t_sum,
                        logp_sum,
                        h: g.mass.h,
                        n: g.mass.n_kl.or(g.mass.n_surprisal),
                    };
                    write_line(&mut file, &path, &r)?;
                    have.push(r);
                    progress(have.len().min(total), total);
                    Ok(())
                },
            )?;
        }
    }
    // Keep the rows of this run (a smaller --limit reuses a bigger run's file).
    have.retain(|r| {
        runs.iter()
            .any(|x| x.rule == r.rule && x.base == r.base && x.cut == r.cut)
            && tasks
                .iter()
                .find(|t| t.name == r.task)
                .is_some_and(|t| r.row < t.rows.len() && t.source[r.row] == r.source)
    });
    Ok(have)
}

/// Per-unit values of one configuration: QA items (accuracy, disagreement) and open-ended
/// prompts (1 − self-BLEU, distinct-2, log-likelihood per token), each in a fixed unit order.
#[derive(Debug, Clone, Default)]
struct Point {
    rule: String,
    base: f64,
    cut: Cut,
    acc: Vec<f64>,
    disagree: Vec<f64>,
    div: Vec<f64>,
    d2: Vec<f64>,
    ll_sum: Vec<f64>,
    ll_n: Vec<f64>,
    mean_t: f64,
}

fn points(records: &[TempRecord], items: &[u32], prompts: &[u32]) -> Vec<Point> {
    let mut keys: Vec<(String, f64, Cut)> = vec![];
    for r in records {
        if !keys
            .iter()
            .any(|k| k.0 == r.rule && k.1 == r.base && k.2 == r.cut)
        {
            keys.push((r.rule.clone(), r.base, r.cut));
        }
    }
    keys.iter()
        .map(|(rule, base, cut)| {
            let rs: Vec<&TempRecord> = records
                .iter()
                .filter(|r| &r.rule == rule && r.base == *base && r.cut == *cut)
                .collect();
            let mut p = Point {
                rule: rule.clone(),
                base: *base,
                cut: *cut,
                ..Default::default()
            };
            for &s in items {
                let xs: Vec<&&TempRecord> = rs
                    .iter()
                    .filter(|r| r.task == "qa" && r.source == s)
                    .collect();
                let right = xs.iter().filter(|r| r.correct == Some(true)).count();
                p.acc.push(right as f64 / xs.len().max(1) as f64);
                let answers: Vec<String> = xs.iter().map(|r| answer_key(&r.text)).collect();
                let pairs = answers.len() * answers.len().saturating_sub(1) / 2;
                let differ = (0..answers.len())
                    .flat_map(|i| (i + 1..answers.len()).map(move |j| (i, j)))
                    .filter(|&(i, j)| answers[i] != answers[j])
                    .count();
                p.disagree.push(differ as f64 / pairs.max(1) as f64);
            }
            for &s in prompts {
                let xs: Vec<&&TempRecord> = rs
                    .iter()
                    .filter(|r| r.task == "open" && r.source == s)
                    .collect();
                let toks: Vec<&[u32]> = xs.iter().map(|r| r.tokens.as_slice()).collect();
                p.div.push(1.0 - metrics::self_bleu(&toks));
                p.d2.push(
                    toks.iter()
                        .map(|t| metrics::distinct_n(&[t], 2))
                        .sum::<f64>()
                        / toks.len().max(1) as f64,
                );
                p.ll_sum.push(xs.iter().map(|r| r.logp_sum).sum());
                p.ll_n.push(xs.iter().map(|r| r.steps as f64).sum());
            }
            let steps: usize = rs.iter().map(|r| r.steps).sum();
            p.mean_t = rs.iter().map(|r| r.t_sum).sum::<f64>() / steps.max(1) as f64;
            p
        })
        .collect()
}

/// What two samples of an item are compared on: the first sentence up to its first clause
/// break (`,` `;` `:` `(`), normalised — the named answer, not the words sampled after it
/// (" Sao Paulo." and " Sao Paulo, a vibrant city" give the same answer).
fn answer_key(text: &str) -> String {
    let s = qa::first_sentence(text);
    let end = s.find([',', ';', ':', '(']).unwrap_or(s.len());
    qa::normalise(&s[..end])
}

/// Quality at diversity `level` on a rule's sweep (points in T0 order), by linear
/// interpolation on the first segment that brackets it; None outside the sweep's range.
fn at_level(curve: &[(f64, f64)], level: f64) -> Option<f64> {
    curve.windows(2).find_map(|w| {
        let ((d0, q0), (d1, q1)) = (w[0], w[1]);
        let (lo, hi) = (d0.min(d1), d0.max(d1));
        (lo <= level && level <= hi).then(|| {
            if d1 == d0 {
                (q0 + q1) / 2.0
            } else {
                q0 + (q1 - q0) * (level - d0) / (d1 - d0)
            }
        })
    })
}

/// A resample: indices into the QA items and into the open-ended prompts.
struct Draw<'a> {
    items: &'a [usize],
    prompts: &'a [usize],
}

/// Paired bootstrap over items and prompts, resampled independently.
fn bootstrap2(
    n_items: usize,
    n_prompts: usize,
    resamples: usize,
    seed: u64,
    mut stat: impl FnMut(&Draw<'_>) -> Option<f64>,
) -> Option<Interval> {
    let (ai, ap): (Vec<usize>, Vec<usize>) = ((0..n_items).collect(), (0..n_prompts).collect());
    let value = stat(&Draw {
        items: &ai,
        prompts: &ap,
    })?;
    let mut rng = Rng::new(seed);
    let (mut ii, mut pp) = (vec![0; n_items], vec![0; n_prompts]);
    let mut d = vec![];
    let mut tries = 0;
    while d.len() < resamples && tries < resamples * 10 {
        tries += 1;
        for i in ii.iter_mut() {
            *i = (rng.uniform() * n_items as f64) as usize % n_items.max(1);
        }
        for i in pp.iter_mut() {
            *i = (rng.uniform() * n_prompts as f64) as usize % n_prompts.max(1);
        }
        if let Some(v) = stat(&Draw {
            items: &ii,
            prompts: &pp,
        }) {
            d.push(v);
        }
    }
    metrics::percentile_interval(value, d)
}

/// The diversity axes the rules are matched on.
#[derive(Clone, Copy)]
enum Axis {
    /// QA alone: the disagreement between an item's samples on the named answer (T9).
    QaDisagreement,
    /// The mixed bank: QA accuracy against the open-ended prompts' 1 − self-BLEU (T10).
    OpenDiversity,
}

impl Axis {
    fn label(self) -> &'static str {
        match self {
            Axis::QaDisagreement => "QA disagreement between samples",
            Axis::OpenDiversity => "open-ended 1 − self-BLEU (mixed bank)",
        }
    }
    fn key(self) -> &'static str {
        match self {
            Axis::QaDisagreement => "qa_disagreement",
            Axis::OpenDiversity => "open_diversity",
        }
    }
    fn value(self, p: &Point, d: &Draw<'_>) -> f64 {
        match self {
            Axis::QaDisagreement => metrics::mean_at(&p.disagree, d.items),
            Axis::OpenDiversity => metrics::mean_at(&p.div, d.prompts),
        }
    }
}

/// The report (markdown) and its numbers (JSON): the sweep table, the matched-diversity
/// comparisons against fixed T on both axes (three levels at 25/50/75% of fixed T's range),
/// and the truncation check (fixed T at the top of the grid against greedy, with and without
/// the cut).
pub fn report(
    records: &[TempRecord],
    items: &[Item],
    o: &Options,
    resamples: usize,
) -> (String, serde_json::Value) {
    use std::fmt::Write;
    let mut md = String::new();
    let mut json = serde_json::json!({ "bases": o.bases, "cut": o.cut.label() });
    // The items (QA) or prompts (open) of a task, sorted, once each.
    let sources = |task: &str| {
        let mut v: Vec<u32> = records
            .iter()
            .filter(|r| r.task == task)
            .map(|r| r.source)
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    };
    let (qa_src, open_src) = (sources("qa"), sources("open"));
    let pts = points(records, &qa_src, &open_src);
    let (ni, np) = (qa_src.len(), open_src.len());
    let all_i: Vec<usize> = (0..ni).collect();
    let all_p: Vec<usize> = (0..np).collect();
    let full = Draw {
        items: &all_i,
        prompts: &all_p,
    };
    let fmt = |i: &Option<Interval>| {
        i.map_or("–".into(), |i| {
            format!("{:+.3} [{:+.3}, {:+.3}]", i.value, i.lo, i.hi)
        })
    };
    let ll = |p: &Point, d: &Draw<'_>| {
        let s: f64 = d.prompts.iter().map(|&k| p.ll_sum[k]).sum();
        let n: f64 = d.prompts.iter().map(|&k| p.ll_n[k]).sum();
        s / n.max(1.0)
    };

    let _ = writeln!(
        md,
        "**The sweep** ({ni} QA items × {} samples, {np} open-ended prompts × {} samples of {} \
         tokens; every rule under {}; realised mean T over the counted tokens of both tasks; QA disagreement: \
         the share of an item's sample pairs that name different answers; 1 − self-BLEU: BLEU-4 of \
         each sample against the prompt's others)\n\n\
         | rule | T0 | mean T | QA accuracy | QA disagreement | open 1 − self-BLEU | open distinct-2 | open log-lik (nats/token) |\n\
         |---|---|---|---|---|---|---|---|",
        o.qa_samples,
        o.open_samples,
        o.open_tokens,
        o.cut.label()
    );
    let mut sweep = vec![];
    for p in &pts {
        let row = (
            metrics::mean_at(&p.acc, &all_i),
            metrics::mean_at(&p.disagree, &all_i),
            metrics::mean_at(&p.div, &all_p),
            metrics::mean_at(&p.d2, &all_p),
            ll(p, &full),
        );
        let rule = if p.rule == NO_CUT || p.rule == GREEDY {
            format!("*{}*", p.rule)
        } else {
            p.rule.clone()
        };
        let _ = writeln!(
            md,
            "| {rule} | {:.2} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} |",
            p.base, p.mean_t, row.0, row.1, row.2, row.3, row.4
        );
        sweep.push(serde_json::json!({
            "rule": p.rule, "base": p.base, "cut": p.cut.label(), "mean_t": p.mean_t,
            "accuracy": row.0, "qa_disagreement": row.1, "open_diversity": row.2,
            "open_distinct2": row.3, "open_loglik": row.4,
        }));
    }
    json["sweep"] = serde_json::json!(sweep);

    // Matched diversity: per rule, the sweep as (diversity, accuracy) in T0 order.
    let curve = |rule: &str, axis: Axis, d: &Draw<'_>| -> Vec<(f64, f64)> {
        let mut c: Vec<&Point> = pts
            .iter()
            .filter(|p| p.rule == rule && p.cut == o.cut)
            .collect();
        c.sort_by(|a, b| a.base.total_cmp(&b.base));
        c.iter()
            .map(|p| (axis.value(p, d), metrics::mean_at(&p.acc, d.items)))
            .collect()
    };
    let fixed = RULES[0].1;
    for (ai, axis) in [Axis::QaDisagreement, Axis::OpenDiversity]
        .into_iter()
        .enumerate()
    {
        let fc = curve(fixed, axis, &full);
        let (lo, hi) = fc
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), p| {
                (l.min(p.0), h.max(p.0))
            });
        let levels: Vec<f64> = [0.25, 0.5, 0.75]
            .iter()
            .map(|f| lo + f * (hi - lo))
            .collect();
        let _ = writeln!(
            md,
            "\n**QA accuracy at matched {}** (levels at 25/50/75% of fixed T's range; each rule's \
             sweep interpolated linearly; difference to fixed T, paired bootstrap over items and \
             prompts)\n\n| rule | {} | wins (interval above 0) |\n|---|{}---|",
            axis.label(),
            levels
                .iter()
                .map(|l| format!("at {l:.3}"))
                .collect::<Vec<_>>()
                .join(" | "),
            "---|".repeat(levels.len())
        );
        let mut aj = serde_json::json!({ "levels": levels });
        for (ri, (rule, _)) in o.rules.iter().enumerate().skip(1) {
            let diffs: Vec<Option<Interval>> = levels
                .iter()
                .enumerate()
                .map(|(li, &level)| {
                    bootstrap2(
                        ni,
                        np,
                        resamples,
                        101 + (ai * 100 + ri * 10 + li) as u64,
                        |d| {
                            let a = at_level(&curve(rule, axis, d), level)?;
                            let f = at_level(&curve(fixed, axis, d), level)?;
                            Some(a - f)
                        },
                    )
                })
                .collect();
            let wins = diffs.iter().flatten().filter(|i| i.lo > 0.0).count();
            let _ = writeln!(
                md,
                "| {rule} | {} | {wins} of {} |",
                diffs.iter().map(fmt).collect::<Vec<_>>().join(" | "),
                levels.len()
            );
            aj[*rule] = serde_json::json!({ "minus_fixed": diffs, "wins": wins });
        }
        json[axis.key()] = aj;
    }

    // The cut: fixed T at the top of the grid, with and without it, against greedy.
    let greedy = pts.iter().find(|p| p.rule == GREEDY);
    let top = o.bases.iter().copied().fold(f64::NAN, f64::max);
    let with_cut = pts
        .iter()
        .find(|p| p.rule == fixed && p.base == top && p.cut == o.cut);
    let no_cut = pts.iter().find(|p| p.rule == NO_CUT);
    if let Some(g) = greedy {
        let _ = writeln!(
            md,
            "\n**Truncation at T0 = {top}** (QA accuracy minus greedy's {:.3}, paired over items)\n",
            metrics::mean_at(&g.acc, &all_i)
        );
        for (label, p) in [
            (format!("fixed T, {}", o.cut.label()), with_cut),
            ("fixed T, no truncation".to_string(), no_cut),
        ] {
            let Some(p) = p else { continue };
            let d = metrics::bootstrap(ni, resamples, 203, |idx| {
                Some(metrics::mean_at(&p.acc, idx) - metrics::mean_at(&g.acc, idx))
            });
            let _ = writeln!(md, "- {label}: {}", fmt(&d));
            json["truncation"][&label] = serde_json::json!(d);
        }
    }

    // Per relation, each rule's accuracy at every T0.
    let mut rels: Vec<&str> = items.iter().map(|i| i.relation.as_str()).collect();
    rels.sort_unstable();
    rels.dedup();
    let rel_of = |s: u32| {
        items
            .iter()
            .find(|i| i.id == s)
            .map(|i| i.relation.as_str())
    };
    let _ = writeln!(
        md,
        "\n**QA accuracy per relation** (T0 across)\n\n| rule | relation | {} |\n|---|---|{}",
        o.bases
            .iter()
            .map(|b| format!("{b}"))
            .collect::<Vec<_>>()
            .join(" | "),
        "---|".repeat(o.bases.len())
    );
    for &(rule, _) in &o.rules {
        for rel in &rels {
            let idx: Vec<usize> = (0..ni)
                .filter(|&k| rel_of(qa_src[k]) == Some(rel))
                .collect();
            let cells: Vec<String> = o
                .bases
                .iter()
                .map(|&b| {
                    pts.iter()
                        .find(|p| p.rule == rule && p.base == b && p.cut == o.cut)
                        .map_or("–".into(), |p| {
                            format!("{:.3}", metrics::mean_at(&p.acc, &idx))
                        })
                })
                .collect();
            let _ = writeln!(md, "| {rule} | {rel} | {} |", cells.join(" | "));
        }
    }
    md.push('\n');
    (md, json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpolation_reads_the_bracketing_segment() {
        let c = [(0.1, 0.9), (0.3, 0.7), (0.5, 0.3)];
        assert!((at_level(&c, 0.2).unwrap() - 0.8).abs() < 1e-12);
        assert!((at_level(&c, 0.4).unwrap() - 0.5).abs() < 1e-12);
        assert_eq!(at_level(&c, 0.6), None);
        assert_eq!(at_level(&c, 0.05), None);
    }

    #[test]
    fn samples_are_compared_on_the_named_answer() {
        assert_eq!(
            answer_key(" Sao Paulo."),
            answer_key(" São Paulo, a vibrant city")
        );
        assert_ne!(answer_key(" Port-au-Prince."), answer_key(" Bridgetown."));
        assert_eq!(
            answer_key(" the island of Andorra"),
            " the island of andorra "
        );
    }

    #[test]
    fn cuts_parse() {
        assert_eq!(Cut::parse("none"), Ok(Cut::None));
        assert_eq!(Cut::parse("nsigma:1"), Ok(Cut::NSigma(1.0)));
        assert_eq!(Cut::parse("minp:0.1"), Ok(Cut::MinP(0.1)));
        assert!(Cut::parse("nsigma:-1").is_err());
        assert!(Cut::parse("topk:3").is_err());
        assert_eq!(rules(&[]).unwrap().len(), RULES.len());
        let r = rules(&["colder".into()]).unwrap();
        assert_eq!((r[0].0, r[1].0, r.len()), (RULES[0].1, RULES[4].1, 2));
        assert!(rules(&["warmer".into()]).is_err());
        let c = config(RULES[0].2, 0.7, Cut::NSigma(1.0));
        let cfg = infogravity::Config::from_json(&c).unwrap();
        assert_eq!(cfg.sampler.top_nsigma, 1.0);
        assert_eq!(cfg.sampler.min_p, 0.0);
    }
}
