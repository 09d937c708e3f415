//! Adaptive temperature (docs/EVALUATION.md §3): accuracy on the QA bank and diversity on
//! open-ended prompts for temperature rules compared at a matched mean temperature — fixed T,
//! EDT, llama.cpp dynatemp, and the gravity temperature T_base(M) in each direction (docs/DESIGN.md
//! §1 "Adaptive temperature"). Pure temperature sampling: no interventions, no truncation.
//! M(Q) is standardised by the calibration `eval qa` fits (z-scores of H and N over the
//! training split), so a gain of ±0.5 moves T by a factor e^{±0.5} per standard deviation of M;
//! with the default min–max scaling M varies too little over the bank (its standard deviation
//! is under 0.1) for any moderate gain to matter.
//!
//! Matching: each rule's base T0 is tuned on a pilot set (the first rows of each task) so that
//! its mean temperature over the counted tokens equals the target, by the fixed-point update
//! T0 ← T0 · target / mean T (T is proportional to T0 away from the clamps); the full run then
//! reports the mean temperature it actually realised.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::metrics::{self, Interval};
use super::qa::{self, Item};
use super::{Prompt, read_jsonl, run_batches, write_line};
use crate::{Engine, Generation};
use infogravity::Result;

/// The rules compared: (name, the temperature settings besides `base`).
pub const METHODS: [(&str, &str); 5] = [
    ("fixed T", r#""response":"none""#),
    ("EDT (θ = 1, n = 0.8)", r#""response":"edt""#),
    (
        "dynatemp (range ±50%)",
        r#""response":"dynatemp","dyn_range":0.5"#,
    ),
    (
        "gravity, heavy → hotter (gain +0.5)",
        r#""response":"none","mass_gain":0.5,"mass_ref":0"#,
    ),
    (
        "gravity, heavy → colder (gain −0.5)",
        r#""response":"none","mass_gain":-0.5,"mass_ref":0"#,
    ),
];

/// The processor configuration of a rule at base temperature `base`: the neutral preset (no
/// interventions, no truncation) with the clamps opened to [0.01, 4].
pub fn config(settings: &str, base: f64) -> String {
    format!(
        r#"{{"preset":"neutral","temperature":{{"base":{base},"min":0.01,"max":4,{settings}}}}}"#
    )
}

/// Settings of a run.
#[derive(Debug, Clone)]
pub struct Options {
    /// The mean temperature every rule is matched to.
    pub target: f64,
    /// Samples per QA item and per open-ended prompt.
    pub qa_samples: usize,
    pub open_samples: usize,
    /// Tokens generated per QA answer (graded on its first sentence) and per open-ended text.
    pub qa_tokens: usize,
    pub open_tokens: usize,
    /// Rows per batch.
    pub batch: usize,
    /// Pilot rows per task for the matching.
    pub pilot: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            target: 0.7,
            qa_samples: 2,
            open_samples: 5,
            qa_tokens: 12,
            open_tokens: 64,
            batch: 24,
            pilot: 24,
        }
    }
}

/// One sampled output.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TempRecord {
    /// "qa" or "open".
    pub task: String,
    pub method: String,
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
}

/// The base temperatures found by the matching, per task and rule.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Bases {
    pub target: f64,
    /// (task, method, base, pilot mean T).
    pub bases: Vec<(String, String, f64, f64)>,
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

/// The rows of both tasks: (task, rows, source of each row, max tokens).
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

/// Seed of the sampling rows (the same for every rule: common random numbers).
const SEED: u64 = 20_241_123;

/// Match every rule's base to `o.target` on the pilot rows of each task (3 fixed-point steps).
fn match_bases(
    e: &mut Engine,
    tasks: &[Task<'_>],
    prior: Option<&infogravity::Prior>,
    calib: Option<&infogravity::Calibration>,
    o: &Options,
) -> Result<Bases> {
    let mut bases = vec![];
    for t in tasks {
        // Pilot: evenly spaced rows, one per source.
        let step = (t.rows.len() / o.pilot.max(1)).max(1);
        let pilot: Vec<Prompt> = t.rows.iter().step_by(step).take(o.pilot).cloned().collect();
        for (name, settings) in METHODS {
            let mut base = o.target;
            let mut mean = f64::NAN;
            for _ in 0..3 {
                let (mut n, mut sum) = (0usize, 0.0);
                let done = vec![false; pilot.len()];
                run_batches(
                    e,
                    &config(settings, base),
                    prior,
                    calib,
                    &pilot,
                    t.tokens,
                    o.batch,
                    SEED + 1_000_000,
                    &done,
                    |_| None,
                    |e, _, g| {
                        let (k, ts, _) = counted(e, t.name, &g)?;
                        n += k;
                        sum += ts;
                        Ok(())
                    },
                )?;
                mean = sum / n.max(1) as f64;
                if mean.is_nan() || mean <= 0.0 {
                    break;
                }
                base *= o.target / mean;
            }
            bases.push((t.name.to_string(), name.to_string(), base, mean));
        }
    }
    Ok(Bases {
        target: o.target,
        bases,
    })
}

/// Run part 3: match the bases (or reuse `temperature_bases.json` in `dir` when it was made for
/// the same target), then sample every row of both tasks with every rule, appending to
/// `temperature.jsonl` (resumable). `progress(done, total)` counts rows.
#[allow(clippy::too_many_arguments)]
pub fn run(
    e: &mut Engine,
    items: &[Item],
    prompts: &[String],
    prior: Option<&infogravity::Prior>,
    calib: Option<&infogravity::Calibration>,
    o: &Options,
    dir: &Path,
    mut progress: impl FnMut(usize, usize),
) -> Result<(Bases, Vec<TempRecord>)> {
    let tasks = tasks(e, items, prompts, o)?;
    let bases_path = dir.join("temperature_bases.json");
    let bases = match std::fs::read_to_string(&bases_path)
        .ok()
        .and_then(|s| serde_json::from_str::<Bases>(&s).ok())
    {
        Some(b) if b.target == o.target && b.bases.len() == tasks.len() * METHODS.len() => b,
        _ => {
            let b = match_bases(e, &tasks, prior, calib, o)?;
            std::fs::write(
                &bases_path,
                serde_json::to_string_pretty(&b).expect("serialises"),
            )
            .map_err(|err| infogravity::Error::Io(format!("{}: {err}", bases_path.display())))?;
            b
        }
    };
    let path = dir.join("temperature.jsonl");
    let mut have: Vec<TempRecord> = read_jsonl(&path, "temperature results")?;
    let mut file = super::append(&path)?;
    let total: usize = tasks.iter().map(|t| t.rows.len()).sum::<usize>() * METHODS.len();
    for t in &tasks {
        for (name, settings) in METHODS {
            let base = bases
                .bases
                .iter()
                .find(|b| b.0 == t.name && b.1 == name)
                .map(|b| b.2)
                .expect("a base per task and rule");
            let mut done = vec![false; t.rows.len()];
            for r in have.iter().filter(|r| r.task == t.name && r.method == name) {
                if let Some(d) = done.get_mut(r.row) {
                    *d = true;
                }
            }
            run_batches(
                e,
                &config(settings, base),
                prior,
                calib,
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
                        method: name.into(),
                        row,
                        source: t.source[row],
                        text: g.text,
                        tokens: g.tokens,
                        correct,
                        steps,
                        t_sum,
                        logp_sum,
                    };
                    write_line(&mut file, &path, &r)?;
                    have.push(r);
                    progress(have.len().min(total), total);
                    Ok(())
                },
            )?;
        }
    }
    // Keep the rows of this run's tasks (a smaller --limit reuses a bigger run's file).
    have.retain(|r| {
        tasks
            .iter()
            .find(|t| t.name == r.task)
            .is_some_and(|t| r.row < t.rows.len() && t.source[r.row] == r.source)
    });
    Ok((bases, have))
}

/// The part-3 tables (markdown) and their numbers (JSON). QA: realised mean T, accuracy with a
/// bootstrap interval over items, and the paired difference to fixed T; open-ended: distinct-2,
/// self-BLEU over each prompt's samples, log-likelihood per token, with paired differences to
/// fixed T over prompts. The two gravity directions are also compared with each other.
pub fn report(
    bases: &Bases,
    records: &[TempRecord],
    items: &[Item],
    resamples: usize,
) -> (String, serde_json::Value) {
    use std::fmt::Write;
    let mut md = String::new();
    let mut json = serde_json::json!({ "target_mean_t": bases.target });
    let base_of = |task: &str, m: &str| {
        bases
            .bases
            .iter()
            .find(|b| b.0 == task && b.1 == m)
            .map_or(f64::NAN, |b| b.2)
    };
    let fmt = |i: &Option<Interval>| {
        i.map_or("–".into(), |i| {
            format!("{:.3} [{:.3}, {:.3}]", i.value, i.lo, i.hi)
        })
    };
    let mean_t = |rs: &[&TempRecord]| {
        rs.iter().map(|r| r.t_sum).sum::<f64>()
            / rs.iter().map(|r| r.steps).sum::<usize>().max(1) as f64
    };
    let loglik = |rs: &[&TempRecord]| {
        rs.iter().map(|r| r.logp_sum).sum::<f64>()
            / rs.iter().map(|r| r.steps).sum::<usize>().max(1) as f64
    };

    // QA: per item, the fraction of its samples that are right, per rule.
    let qa: Vec<&TempRecord> = records.iter().filter(|r| r.task == "qa").collect();
    let mut sources: Vec<u32> = qa.iter().map(|r| r.source).collect();
    sources.sort_unstable();
    sources.dedup();
    let per_item = |m: &str| -> Vec<f64> {
        sources
            .iter()
            .map(|&s| {
                let rs: Vec<bool> = qa
                    .iter()
                    .filter(|r| r.method == m && r.source == s)
                    .filter_map(|r| r.correct)
                    .collect();
                rs.iter().filter(|&&c| c).count() as f64 / rs.len().max(1) as f64
            })
            .collect()
    };
    let fixed = per_item(METHODS[0].0);
    let _ = writeln!(
        md,
        "**QA bank** ({} items × samples; accuracy of sampled answers; differences paired by item)\n\n\
         | rule | base T0 | realised mean T | accuracy [95% CI] | − fixed T [95% CI] |\n|---|---|---|---|---|",
        sources.len()
    );
    let mut qa_json = serde_json::json!({});
    let mut acc_of = vec![];
    for (i, (m, _)) in METHODS.iter().enumerate() {
        let rs: Vec<&TempRecord> = qa.iter().copied().filter(|r| r.method == *m).collect();
        let a = per_item(m);
        let acc = metrics::bootstrap(a.len(), resamples, 31 + i as u64, |idx| {
            Some(metrics::mean_at(&a, idx))
        });
        let diff = metrics::bootstrap(a.len(), resamples, 31, |idx| {
            Some(metrics::mean_at(&a, idx) - metrics::mean_at(&fixed, idx))
        });
        let t = mean_t(&rs);
        let _ = writeln!(
            md,
            "| {m} | {:.3} | {t:.3} | {} | {} |",
            base_of("qa", m),
            fmt(&acc),
            if i == 0 { "–".into() } else { fmt(&diff) }
        );
        qa_json[*m] = serde_json::json!({
            "base": base_of("qa", m), "mean_t": t, "accuracy": acc, "minus_fixed": diff,
            "samples": rs.len(),
        });
        acc_of.push(a);
    }
    let (hot, cold) = (&acc_of[3], &acc_of[4]);
    let dir = metrics::bootstrap(hot.len(), resamples, 37, |idx| {
        Some(metrics::mean_at(hot, idx) - metrics::mean_at(cold, idx))
    });
    let _ = writeln!(md, "\nGravity hotter − colder, accuracy: {}", fmt(&dir));
    qa_json["hotter_minus_colder"] = serde_json::json!(dir);
    // Per relation: each rule's accuracy, and the direction's difference.
    let relation = |s: u32| {
        items
            .iter()
            .find(|i| i.id == s)
            .map(|i| i.relation.as_str())
    };
    let _ = writeln!(md, "\n| rule | capital | region |\n|---|---|---|");
    for (i, (m, _)) in METHODS.iter().enumerate() {
        let by = |rel: &str| {
            let idx: Vec<usize> = (0..sources.len())
                .filter(|&k| relation(sources[k]) == Some(rel))
                .collect();
            metrics::mean_at(&acc_of[i], &idx)
        };
        let _ = writeln!(md, "| {m} | {:.3} | {:.3} |", by("capital"), by("region"));
    }
    for rel in ["capital", "region"] {
        let idx: Vec<usize> = (0..sources.len())
            .filter(|&k| relation(sources[k]) == Some(rel))
            .collect();
        let (h, c): (Vec<f64>, Vec<f64>) = idx.iter().map(|&k| (hot[k], cold[k])).unzip();
        let d = metrics::bootstrap(idx.len(), resamples, 39, |ix| {
            Some(metrics::mean_at(&h, ix) - metrics::mean_at(&c, ix))
        });
        let _ = writeln!(md, "\nGravity hotter − colder, {rel}: {}", fmt(&d));
        qa_json[format!("hotter_minus_colder_{rel}")] = serde_json::json!(d);
    }
    md.push('\n');
    json["qa"] = qa_json;

    // Open-ended: per prompt, over its samples.
    let open: Vec<&TempRecord> = records.iter().filter(|r| r.task == "open").collect();
    let mut prompts: Vec<u32> = open.iter().map(|r| r.source).collect();
    prompts.sort_unstable();
    prompts.dedup();
    let per_prompt = |m: &str| -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let mut d2 = vec![];
        let mut sb = vec![];
        let mut ll = vec![];
        for &p in &prompts {
            let rs: Vec<&TempRecord> = open
                .iter()
                .copied()
                .filter(|r| r.method == m && r.source == p)
                .collect();
            let toks: Vec<&[u32]> = rs.iter().map(|r| r.tokens.as_slice()).collect();
            d2.push(
                toks.iter()
                    .map(|t| metrics::distinct_n(&[t], 2))
                    .sum::<f64>()
                    / toks.len().max(1) as f64,
            );
            sb.push(metrics::self_bleu(&toks));
            ll.push(loglik(&rs));
        }
        (d2, sb, ll)
    };
    let (fd2, fsb, _) = per_prompt(METHODS[0].0);
    let _ = writeln!(
        md,
        "**Open-ended prompts** ({} prompts × samples; differences paired by prompt; self-BLEU: \
         lower = more diverse across a prompt's samples)\n\n\
         | rule | base T0 | realised mean T | distinct-2 | − fixed T | self-BLEU | − fixed T | log-lik (nats/token) |\n\
         |---|---|---|---|---|---|---|---|",
        prompts.len()
    );
    let mut open_json = serde_json::json!({});
    let mut per = vec![];
    for (i, (m, _)) in METHODS.iter().enumerate() {
        let rs: Vec<&TempRecord> = open.iter().copied().filter(|r| r.method == *m).collect();
        let (d2, sb, _) = per_prompt(m);
        let n = d2.len();
        let dd2 = metrics::bootstrap(n, resamples, 41, |idx| {
            Some(metrics::mean_at(&d2, idx) - metrics::mean_at(&fd2, idx))
        });
        let dsb = metrics::bootstrap(n, resamples, 43, |idx| {
            Some(metrics::mean_at(&sb, idx) - metrics::mean_at(&fsb, idx))
        });
        let all: Vec<usize> = (0..n).collect();
        let (md2, msb, t, ll) = (
            metrics::mean_at(&d2, &all),
            metrics::mean_at(&sb, &all),
            mean_t(&rs),
            loglik(&rs),
        );
        let _ = writeln!(
            md,
            "| {m} | {:.3} | {t:.3} | {md2:.3} | {} | {msb:.3} | {} | {ll:.3} |",
            base_of("open", m),
            if i == 0 { "–".into() } else { fmt(&dd2) },
            if i == 0 { "–".into() } else { fmt(&dsb) },
        );
        open_json[*m] = serde_json::json!({
            "base": base_of("open", m), "mean_t": t, "distinct2": md2, "self_bleu": msb,
            "loglik": ll, "distinct2_minus_fixed": dd2, "self_bleu_minus_fixed": dsb,
            "samples": rs.len(),
        });
        per.push((d2, sb));
    }
    let dsb = metrics::bootstrap(per[3].1.len(), resamples, 47, |idx| {
        Some(metrics::mean_at(&per[3].1, idx) - metrics::mean_at(&per[4].1, idx))
    });
    let _ = writeln!(md, "\nGravity hotter − colder, self-BLEU: {}", fmt(&dsb));
    open_json["hotter_minus_colder_self_bleu"] = serde_json::json!(dsb);
    json["open"] = open_json;
    (md, json)
}
