//! Temperature phase scan (docs/EVALUATION.md §4; docs/DESIGN.md §1 "Further field
//! quantities"; Arnold et al., arXiv:2405.17088). (Over 600 lines on purpose: the scan, its
//! statistics and the report that reads them are one argument; the report's tables are half of
//! it.) Answers to QA items are sampled at every temperature of a log grid over [0.02, 4]. For every sampled step the log-probability of the chosen token is recorded at
//! every grid temperature (log p_T(x_t) = z_x/T − log Σ e^{z/T}), so each sampled answer x has
//! its exact log P(x | T) on the whole grid. From that:
//!
//! - the per-token heat capacity C(T) = Var_{p_T}(z)/T² and T* = argmax C on the low-T answers;
//! - sampled accuracy per temperature;
//! - the linear dissimilarity indicator of arXiv 2405.17088 between the output distributions of
//!   the `W` grid points left and right of each split, with the Bayes-optimal posterior from the
//!   exact log P(x | T) (see [`super::metrics::linear_dissimilarity`]), x being the answer's
//!   first sentence (past it, twelve tokens of free text at different temperatures are almost
//!   always told apart, and the indicator saturates at 1), on a few items with many
//!   samples and pooled over the bank (mean over items: the dissimilarity of the joint
//!   distribution of (item, answer) when items are equally likely);
//! - per item, the temperature T_c where the probability of re-sampling the low-T answer's first
//!   sentence falls to ½ (exact, interpolated in log T), against T* of its tokens.

use serde::{Deserialize, Serialize};

use super::metrics;
use super::qa::{self, Item};
use super::{Prompt, read_jsonl, run_batches, write_line};
use infogravity::Result;
use infogravity::field::thermo::{CriticalTemperature, log_grid};

/// Settings of the scan.
#[derive(Debug, Clone)]
pub struct Options {
    /// Grid points over [0.02, 4] (log-spaced).
    pub grid: usize,
    /// Samples per (bank item, temperature).
    pub samples: usize,
    /// The few items scanned with many samples, and their samples per temperature.
    pub few: usize,
    pub few_samples: usize,
    /// Tokens per answer.
    pub tokens: usize,
    /// Rows per batch.
    pub batch: usize,
    /// Grid points on each side of a split in the dissimilarity indicator.
    pub window: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            grid: 16,
            samples: 4,
            few: 4,
            few_samples: 32,
            tokens: 12,
            batch: 32,
            window: 2,
        }
    }
}

/// The grid's range (the same as `generate --tstar`).
const T_LO: f64 = 0.02;
const T_HI: f64 = 4.0;

/// One sampled answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PhaseRecord {
    /// "bank" (many items, few samples) or "few" (few items, many samples).
    pub set: String,
    /// Grid index of the sampling temperature.
    pub k: usize,
    /// Row within (set, k): item index × samples + sample.
    pub row: usize,
    pub item: u32,
    pub relation: String,
    pub text: String,
    pub correct: bool,
    /// Tokens of the answer's first sentence.
    pub sentence: usize,
    /// Per step, log p_{T_j}(x_t) for every grid temperature T_j.
    pub logp: Vec<Vec<f32>>,
    /// Lowest grid temperature only: per step, C(T_j) on the grid, T* and the logit margin.
    pub heat: Vec<Vec<f32>>,
    pub t_star: Vec<f32>,
    pub margin: Vec<f32>,
}

/// What the hook records per row and step until the row's generation is recorded.
struct Trace {
    lse: Vec<Vec<Vec<f64>>>,
    heat: Vec<Vec<Vec<f32>>>,
    t_star: Vec<Vec<f32>>,
    margin: Vec<Vec<f32>>,
}

/// Seed of the sampling rows.
const SEED: u64 = 4_004;

/// The items of each set: (set, items, samples per temperature).
fn sets<'a>(items: &'a [Item], o: &Options) -> Vec<(&'static str, Vec<&'a Item>, usize)> {
    let few: Vec<&Item> = (0..o.few.min(items.len()))
        .map(|i| &items[i * items.len() / o.few.max(1) + items.len() / (2 * o.few.max(1))])
        .collect();
    vec![
        ("bank", items.iter().collect(), o.samples),
        ("few", few, o.few_samples),
    ]
}

/// Run the scan, appending to `dir/phase.jsonl` (resumable). `progress(done, total)` counts
/// rows.
pub fn run(
    e: &mut crate::Engine,
    items: &[Item],
    prior: Option<&infogravity::Prior>,
    o: &Options,
    dir: &std::path::Path,
    mut progress: impl FnMut(usize, usize),
) -> Result<Vec<PhaseRecord>> {
    let grid = log_grid(T_LO, T_HI, o.grid);
    let path = dir.join("phase.jsonl");
    let mut have: Vec<PhaseRecord> = read_jsonl(&path, "phase scan results")?;
    let mut file = super::append(&path)?;
    let sets = sets(items, o);
    let total: usize = sets.iter().map(|s| s.1.len() * s.2).sum::<usize>() * grid.len();
    for (set, its, n) in &sets {
        let mut rows: Vec<Prompt> = vec![];
        for it in its {
            let p = qa::item_prompt(e, &it.question, &it.stem)?;
            rows.extend(std::iter::repeat_n(p, *n));
        }
        for (k, &t) in grid.iter().enumerate() {
            let mut done = vec![false; rows.len()];
            for r in have.iter().filter(|r| r.set == *set && r.k == k) {
                if let Some(d) = done.get_mut(r.row) {
                    *d = true;
                }
            }
            // Per row, per step: log Σ e^{z/T_j} for every grid T_j (and at k = 0 the heat
            // capacities, T* and the margin), filled by the hook before the step is sampled.
            // (The recorder fills them, the record callback takes them: one shared state.)
            let state = std::sync::Arc::new(std::sync::Mutex::new(Trace {
                lse: vec![vec![]; rows.len()],
                heat: vec![vec![]; rows.len()],
                t_star: vec![vec![]; rows.len()],
                margin: vec![vec![]; rows.len()],
            }));
            let json = format!(
                r#"{{"preset":"neutral","temperature":{{"base":{t},"min":0.001,"max":5}}}}"#
            );
            run_batches(
                e,
                &json,
                prior,
                None,
                &rows,
                o.tokens,
                o.batch,
                SEED + 100_000 * k as u64 + if *set == "few" { 50_000 } else { 0 },
                &done,
                |start| {
                    let (state, grid) = (state.clone(), grid.clone());
                    let mut ct = CriticalTemperature::default();
                    let mut scaled: Vec<f32> = vec![];
                    Some(super::Recorder::boxed(start, move |g, _, z| {
                        let mut st = state.lock().expect("no panic holds it");
                        let mut l = Vec::with_capacity(grid.len());
                        let mut c = Vec::with_capacity(grid.len());
                        scaled.resize(z.len(), 0.0);
                        for &tj in &grid {
                            let inv = (1.0 / tj) as f32;
                            for (d, &x) in scaled.iter_mut().zip(z.iter()) {
                                *d = x * inv;
                            }
                            let f = infogravity::field::measure(&scaled[..]);
                            l.push(f.as_ref().map_or(f64::NAN, |f| f.log_z));
                            c.push(f.map_or(f32::NAN, |f| f.varentropy as f32));
                        }
                        st.lse[g].push(l);
                        if k == 0 {
                            st.heat[g].push(c);
                            st.t_star[g].push(ct.find(z, T_LO, T_HI).0 as f32);
                            let f = infogravity::field::measure(z);
                            st.margin[g].push(f.map_or(f32::NAN, |f| f.margin()));
                        }
                    }))
                },
                |e, g, out| {
                    let mut st = state.lock().expect("no panic holds it");
                    let item = its[g / n];
                    let logp: Vec<Vec<f32>> = out
                        .reports
                        .iter()
                        .zip(&st.lse[g])
                        .map(|(r, l)| {
                            // z_x from the measured field: log Z − Φ.
                            let zx = r.log_z as f64 - r.token_potential as f64;
                            grid.iter()
                                .zip(l)
                                .map(|(tj, lz)| (zx / tj - lz) as f32)
                                .collect()
                        })
                        .collect();
                    let rec = PhaseRecord {
                        set: set.to_string(),
                        k,
                        row: g,
                        item: item.id,
                        relation: item.relation.clone(),
                        correct: qa::grade(&out.text, &item.answers),
                        sentence: qa::sentence_tokens(e, &out.tokens)?.max(1).min(logp.len()),
                        text: out.text,
                        logp,
                        heat: std::mem::take(&mut st.heat[g]),
                        t_star: std::mem::take(&mut st.t_star[g]),
                        margin: std::mem::take(&mut st.margin[g]),
                    };
                    write_line(&mut file, &path, &rec)?;
                    have.push(rec);
                    progress(have.len().min(total), total);
                    Ok(())
                },
            )?;
        }
    }
    have.retain(|r| {
        sets.iter()
            .find(|s| s.0 == r.set)
            .is_some_and(|s| s.1.get(r.row / s.2).is_some_and(|it| it.id == r.item))
            && r.k < grid.len()
    });
    Ok(have)
}

/// log of the mean of exp(xs).
fn log_mean_exp(xs: impl Iterator<Item = f64> + Clone) -> f64 {
    let m = xs.clone().fold(f64::NEG_INFINITY, f64::max);
    if m == f64::NEG_INFINITY {
        return m;
    }
    let (s, n) = xs.fold((0.0, 0usize), |(s, n), x| (s + (x - m).exp(), n + 1));
    m + (s / n as f64).ln()
}

/// The dissimilarity indicator of one item's samples, per split: split s lies between grid
/// points s − 1 and s, for s in window..=K − window; left = the `window` points below it,
/// right = the `window` points from it. `by_k[k]` = the samples drawn at T_k, each as its
/// log P(x | T_j) for every grid point j.
pub fn indicator(by_k: &[Vec<Vec<f64>>], window: usize) -> Vec<(usize, f64)> {
    let kk = by_k.len();
    let mut out = vec![];
    for s in window..=kk.saturating_sub(window) {
        let (left, right) = (s - window..s, s..s + window);
        let pair = |x: &Vec<f64>| {
            (
                log_mean_exp(left.clone().map(|j| x[j])),
                log_mean_exp(right.clone().map(|j| x[j])),
            )
        };
        let one: Vec<(f64, f64)> = left
            .clone()
            .flat_map(|k| by_k[k].iter().map(pair))
            .collect();
        let two: Vec<(f64, f64)> = right
            .clone()
            .flat_map(|k| by_k[k].iter().map(pair))
            .collect();
        if let Some(d) = metrics::linear_dissimilarity(&one, &two) {
            out.push((s, d));
        }
    }
    out
}

/// Temperature where a curve log P(T) (on `grid`, decreasing from ≈ 0) first falls below ln ½,
/// interpolated linearly in (log T, log P); None when it never does on the grid.
pub fn collapse(grid: &[f64], log_p: &[f64]) -> Option<f64> {
    let half = 0.5f64.ln();
    if log_p.first().is_none_or(|&p| p < half) {
        return None;
    }
    for j in 1..grid.len() {
        if log_p[j] < half {
            let (a, b) = (log_p[j - 1], log_p[j]);
            let f = if a > b { (a - half) / (a - b) } else { 0.0 };
            return Some((grid[j - 1].ln() + f * (grid[j].ln() - grid[j - 1].ln())).exp());
        }
    }
    None
}

/// The part-4 report: markdown, JSON and three SVG charts (heat capacity, accuracy per T,
/// dissimilarity indicator).
pub struct PhaseReport {
    pub markdown: String,
    pub json: serde_json::Value,
    pub svgs: Vec<(&'static str, String)>,
}

/// Analyse the scan.
pub fn report(records: &[PhaseRecord], o: &Options, resamples: usize) -> PhaseReport {
    use std::fmt::Write;
    let grid = log_grid(T_LO, T_HI, o.grid);
    let kk = grid.len();
    let mut md = String::new();
    let mut json = serde_json::json!({ "grid": grid });
    let bank: Vec<&PhaseRecord> = records.iter().filter(|r| r.set == "bank").collect();
    let mut items: Vec<u32> = bank.iter().map(|r| r.item).collect();
    items.sort_unstable();
    items.dedup();

    // Accuracy per temperature (pooled and per relation).
    let acc = |f: &dyn Fn(&PhaseRecord) -> bool, k: usize| {
        let rs: Vec<bool> = bank
            .iter()
            .filter(|r| r.k == k && f(r))
            .map(|r| r.correct)
            .collect();
        rs.iter().filter(|&&c| c).count() as f64 / rs.len().max(1) as f64
    };
    let rel = |name: &'static str| move |r: &PhaseRecord| r.relation == name;
    let acc_curves: Vec<(String, Vec<(f64, f64)>)> = [
        (
            "pooled",
            &(|_: &PhaseRecord| true) as &dyn Fn(&PhaseRecord) -> bool,
        ),
        ("capital", &rel("capital")),
        ("region", &rel("region")),
    ]
    .iter()
    .map(|(n, f)| {
        (
            format!("accuracy, {n}"),
            (0..kk).map(|k| (grid[k], acc(*f, k))).collect(),
        )
    })
    .collect();

    // The low-T answers (k = 0, first sample per item): heat capacity, T*, collapse.
    let low: Vec<&PhaseRecord> = bank
        .iter()
        .copied()
        .filter(|r| r.k == 0 && r.row % o.samples == 0)
        .collect();
    let mean_heat: Vec<(f64, f64)> = (0..kk)
        .map(|j| {
            let v: Vec<f64> = low
                .iter()
                .filter_map(|r| r.heat.first())
                .map(|h| {
                    let peak = h.iter().cloned().fold(f32::MIN, f32::max).max(1e-12) as f64;
                    h[j] as f64 / peak
                })
                .collect();
            (grid[j], v.iter().sum::<f64>() / v.len().max(1) as f64)
        })
        .collect();
    let median = |mut v: Vec<f64>| {
        v.retain(|x| x.is_finite());
        v.sort_by(f64::total_cmp);
        if v.is_empty() {
            f64::NAN
        } else {
            v[v.len() / 2]
        }
    };
    let ts_first: Vec<f64> = low
        .iter()
        .filter_map(|r| r.t_star.first().map(|&t| t as f64))
        .collect();
    let med_tstar = median(ts_first.clone());
    // Per item whose low-T answer is right: exact P(re-sample its first sentence | T).
    let mut rows = vec![]; // (T_c, T* first, T* min over sentence, margin first, H first)
    for r in low.iter().filter(|r| r.correct) {
        let n = r.sentence.min(r.logp.len());
        let lp: Vec<f64> = (0..kk)
            .map(|j| r.logp[..n].iter().map(|s| s[j] as f64).sum())
            .collect();
        let Some(tc) = collapse(&grid, &lp) else {
            continue;
        };
        let tmin = r.t_star[..n.min(r.t_star.len())]
            .iter()
            .cloned()
            .fold(f32::INFINITY, f32::min) as f64;
        rows.push((
            tc,
            r.t_star.first().map_or(f64::NAN, |&t| t as f64),
            tmin,
            r.margin.first().map_or(f64::NAN, |&m| m as f64),
        ));
    }
    let col = |i: usize| -> Vec<f64> {
        rows.iter()
            .map(|r| [r.0, r.1, r.2, r.3][i])
            .collect::<Vec<f64>>()
    };
    let (tc, t1, tm, mg) = (col(0), col(1), col(2), col(3));
    let corr = |a: &[f64], b: &[f64], seed: u64| {
        metrics::bootstrap(a.len(), resamples, seed, |idx| {
            let x: Vec<f64> = idx.iter().map(|&i| a[i]).collect();
            let y: Vec<f64> = idx.iter().map(|&i| b[i]).collect();
            metrics::spearman(&x, &y)
        })
    };
    let log_ratio = |a: &[f64]| {
        let v: Vec<f64> = a
            .iter()
            .zip(&tc)
            .map(|(x, c)| (x / c).ln().abs())
            .filter(|x| x.is_finite())
            .collect();
        median(v)
    };
    let fmt = |i: &Option<metrics::Interval>| {
        i.map_or("–".into(), |i| {
            format!("{:.3} [{:.3}, {:.3}]", i.value, i.lo, i.hi)
        })
    };
    let (c1, cm, cg) = (corr(&t1, &tc, 51), corr(&tm, &tc, 52), corr(&mg, &tc, 53));

    // Dissimilarity indicator: pooled (mean over bank items) and per few item.
    let per_item = |set: &str, item: u32| -> Vec<(usize, f64)> {
        let mut by_k: Vec<Vec<Vec<f64>>> = vec![vec![]; kk];
        for r in records.iter().filter(|r| r.set == set && r.item == item) {
            let n = r.sentence.min(r.logp.len());
            let lp: Vec<f64> = (0..kk)
                .map(|j| r.logp[..n].iter().map(|s| s[j] as f64).sum())
                .collect();
            by_k[r.k].push(lp);
        }
        indicator(&by_k, o.window)
    };
    let split_t = |s: usize| (grid[s - 1] * grid[s]).sqrt();
    let mut pooled: Vec<(f64, f64, usize)> = vec![];
    for &it in &items {
        for (s, d) in per_item("bank", it) {
            match pooled.iter_mut().find(|p| p.0 == split_t(s)) {
                Some(p) => {
                    p.1 += d;
                    p.2 += 1;
                }
                None => pooled.push((split_t(s), d, 1)),
            }
        }
    }
    let pooled: Vec<(f64, f64)> = pooled.iter().map(|p| (p.0, p.1 / p.2 as f64)).collect();
    let peak = |c: &[(f64, f64)]| {
        c.iter().cloned().fold(
            (f64::NAN, f64::NEG_INFINITY),
            |a, b| if b.1 > a.1 { b } else { a },
        )
    };
    let mut few: Vec<u32> = records
        .iter()
        .filter(|r| r.set == "few")
        .map(|r| r.item)
        .collect();
    few.sort_unstable();
    few.dedup();
    let mut ind_curves = vec![("pooled bank".to_string(), pooled.clone())];
    let mut heat_curves = vec![("mean over bank items".to_string(), mean_heat.clone())];
    let _ = writeln!(
        md,
        "Grid: {kk} temperatures, log-spaced over [{T_LO}, {T_HI}]; {} bank items × {} samples \
         per temperature, {} items × {} samples for the per-item indicator; answers of ≤ {} \
         tokens.\n",
        items.len(),
        o.samples,
        few.len(),
        o.few_samples,
        o.tokens
    );
    let _ = writeln!(
        md,
        "**Sampled accuracy per temperature** (bank)\n\n| T | pooled | capital | region |\n|---|---|---|---|"
    );
    for (k, t) in grid.iter().enumerate() {
        let _ = writeln!(
            md,
            "| {t:.3} | {:.3} | {:.3} | {:.3} |",
            acc_curves[0].1[k].1, acc_curves[1].1[k].1, acc_curves[2].1[k].1
        );
    }
    let (pt, pv) = peak(&pooled);
    let _ = writeln!(
        md,
        "\n**Heat capacity and T\\*** (first answer token of each item's low-T answer): median \
         T\\* = {med_tstar:.3} over {} items; the normalised mean C(T) peaks at T = {:.3}.\n\n\
         **Dissimilarity indicator** (linear, window {} grid points each side): pooled bank \
         peak at T = {pt:.3} (D = {pv:.3}).\n",
        ts_first.len(),
        peak(&mean_heat).0,
        o.window
    );
    let mut few_json = vec![];
    for &it in &few {
        let c: Vec<(f64, f64)> = per_item("few", it)
            .into_iter()
            .map(|(s, d)| (split_t(s), d))
            .collect();
        let subject = records
            .iter()
            .find(|r| r.set == "few" && r.item == it)
            .map(|r| format!("item {it} ({})", r.relation))
            .unwrap_or_default();
        let heat = records
            .iter()
            .find(|r| r.set == "few" && r.item == it && r.k == 0)
            .and_then(|r| r.heat.first().cloned().zip(r.t_star.first().copied()));
        let (p, v) = peak(&c);
        let _ = writeln!(
            md,
            "- {subject}: indicator peak at T = {p:.3} (D = {v:.3}); first-token T\\* = {}",
            heat.as_ref().map_or("–".into(), |h| format!("{:.3}", h.1))
        );
        if let Some((h, _)) = &heat {
            let peak_c = h.iter().cloned().fold(f32::MIN, f32::max).max(1e-12) as f64;
            heat_curves.push((
                subject.clone(),
                grid.iter()
                    .zip(h)
                    .map(|(&t, &c)| (t, c as f64 / peak_c))
                    .collect(),
            ));
        }
        few_json.push(serde_json::json!({ "item": it, "indicator": c, "peak": p }));
        ind_curves.push((subject, c));
    }
    let _ = writeln!(
        md,
        "\n**Does T\\* predict where an item's accuracy collapses?** For the {} items whose low-T \
         answer is right and whose probability of re-sampling that answer's first sentence falls \
         below ½ on the grid, T_c = where it does (exact, from log P(x | T)). Spearman \
         correlation with T_c [95% CI]:\n\n| predictor | Spearman ρ with T_c | median \\|ln(T\\*/T_c)\\| |\n|---|---|---|\n\
         | T\\* of the first answer token | {} | {:.3} |\n| min T\\* over the answer's tokens | {} | {:.3} |\n\
         | logit margin z₁ − z₂ of the first token (baseline) | {} | – |\n",
        rows.len(),
        fmt(&c1),
        log_ratio(&t1),
        fmt(&cm),
        log_ratio(&tm),
        fmt(&cg)
    );
    json["accuracy"] = serde_json::json!(acc_curves);
    json["mean_heat_capacity"] = serde_json::json!(mean_heat);
    json["median_t_star_first"] = serde_json::json!(med_tstar);
    json["indicator_pooled"] = serde_json::json!(pooled);
    json["indicator_few"] = serde_json::json!(few_json);
    json["collapse"] = serde_json::json!({
        "items": rows.len(), "spearman_t_star_first": c1, "spearman_t_star_min": cm,
        "spearman_margin": cg, "median_abs_log_ratio_first": log_ratio(&t1),
        "median_abs_log_ratio_min": log_ratio(&tm),
        "t_c": tc, "t_star_first": t1, "t_star_min": tm, "margin": mg,
    });
    let chart = |title, y_label| super::plot::Chart {
        title,
        x_label: "temperature T (log scale)",
        y_label,
        log_x: true,
        bold: "pooled",
    };
    let tmark = vec![(med_tstar, "median T*".to_string())];
    let svgs = vec![
        (
            "phase_accuracy.svg",
            chart("Sampled accuracy per temperature", "accuracy").svg(&acc_curves, &tmark),
        ),
        (
            "phase_heat_capacity.svg",
            chart(
                "Heat capacity C(T) of the first answer token (each curve / its peak)",
                "C / max C",
            )
            .svg(&heat_curves, &tmark),
        ),
        (
            "phase_indicator.svg",
            chart("Linear dissimilarity indicator (arXiv 2405.17088)", "D")
                .svg(&ind_curves, &tmark),
        ),
    ];
    PhaseReport {
        markdown: md,
        json,
        svgs,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collapse_interpolates_in_log_t() {
        let grid = [0.1, 1.0, 10.0];
        // log P falls from 0 to ln ¼; it crosses ln ½ between T = 1 and T = 10.
        let lp = [0.0, -0.1, 0.25f64.ln()];
        let tc = collapse(&grid, &lp).unwrap();
        let f = (-0.1 - 0.5f64.ln()) / (-0.1 - 0.25f64.ln());
        assert!((tc.ln() - f * 10f64.ln()).abs() < 1e-12, "{tc}");
        assert_eq!(collapse(&grid, &[0.0, -0.1, -0.2]), None);
        assert_eq!(collapse(&grid, &[-1.0, -2.0, -3.0]), None);
    }

    #[test]
    fn indicator_peaks_where_the_distribution_jumps() {
        // Two outcomes; below the jump (k < 3) P = (0.9, 0.1), from it P = (0.1, 0.9). Samples
        // in exact proportions; the indicator is largest at the split s = 3.
        let p = |k: usize| if k < 3 { [0.9f64, 0.1] } else { [0.1, 0.9] };
        let lp = |x: usize| (0..6).map(|j| p(j)[x].ln()).collect::<Vec<f64>>();
        let by_k: Vec<Vec<Vec<f64>>> = (0..6)
            .map(|k| {
                let n0 = (p(k)[0] * 10.0).round() as usize;
                (0..10).map(|i| lp(usize::from(i >= n0))).collect()
            })
            .collect();
        let ind = indicator(&by_k, 2);
        assert_eq!(ind.iter().map(|x| x.0).collect::<Vec<_>>(), vec![2, 3, 4]);
        let best = ind
            .iter()
            .cloned()
            .fold((0, -1.0), |a, b| if b.1 > a.1 { b } else { a });
        assert_eq!(best.0, 3, "{ind:?}");
        // At s = 3 the two sides are P and its mirror: ½Σ(P₁ − P₂)²/(P₁ + P₂) = 0.64.
        assert!((best.1 - 0.64).abs() < 1e-9, "{ind:?}");
    }
}
