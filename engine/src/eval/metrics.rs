//! Statistics of the evaluation: AUROC with paired bootstrap intervals, risk–coverage curves,
//! the Kalai-penalised score, L2-regularised logistic regression (IRLS), distinct-n and
//! self-BLEU. Plain f64 code on at most a few thousand items.

use infogravity::sampler::Rng;

/// AUROC of `score` (higher = more likely positive) for the labels `positive`: the
/// Mann–Whitney U statistic over n₊·n₋ with ties counted ½. None when a class is empty.
/// Scores must be finite (NaN would have no rank).
pub fn auroc(score: &[f64], positive: &[bool]) -> Option<f64> {
    let n = score.len();
    assert_eq!(n, positive.len(), "one label per score");
    let np = positive.iter().filter(|&&p| p).count();
    let nn = n - np;
    if np == 0 || nn == 0 {
        return None;
    }
    let mut idx: Vec<usize> = (0..n).collect();
    idx.sort_by(|&a, &b| score[a].total_cmp(&score[b]));
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < n {
        let mut j = i;
        while j + 1 < n && score[idx[j + 1]] == score[idx[i]] {
            j += 1;
        }
        let mid = (i + j) as f64 / 2.0 + 1.0; // average 1-based rank of the tie group
        rank_sum += mid * idx[i..=j].iter().filter(|&&k| positive[k]).count() as f64;
        i = j + 1;
    }
    Some((rank_sum - (np * (np + 1)) as f64 / 2.0) / (np * nn) as f64)
}

/// A point estimate with a 95% percentile-bootstrap interval.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Interval {
    pub value: f64,
    pub lo: f64,
    pub hi: f64,
}

/// Paired bootstrap (`resamples` draws of n items with replacement, the same draws for every
/// score) of each score's AUROC and of the differences `score[a] − score[b]` for `pairs`.
/// Resamples with an empty class are redrawn. Returns (per-score intervals, per-pair intervals).
pub fn bootstrap_auroc(
    scores: &[&[f64]],
    positive: &[bool],
    pairs: &[(usize, usize)],
    resamples: usize,
    seed: u64,
) -> (Vec<Option<Interval>>, Vec<Option<Interval>>) {
    let n = positive.len();
    let point: Vec<Option<f64>> = scores.iter().map(|s| auroc(s, positive)).collect();
    let mut draws: Vec<Vec<f64>> = vec![vec![]; scores.len()];
    let mut rng = Rng::new(seed);
    let (mut s, mut y) = (vec![0.0; n], vec![false; n]);
    let mut idx = vec![0usize; n];
    let mut done = 0;
    let mut tries = 0;
    while done < resamples && tries < resamples * 10 && n > 0 {
        tries += 1;
        for i in idx.iter_mut() {
            *i = (rng.uniform() * n as f64) as usize % n;
        }
        for (k, &i) in idx.iter().enumerate() {
            y[k] = positive[i];
        }
        if y.iter().all(|&p| p) || !y.iter().any(|&p| p) {
            continue;
        }
        for (j, sc) in scores.iter().enumerate() {
            for (k, &i) in idx.iter().enumerate() {
                s[k] = sc[i];
            }
            draws[j].push(auroc(&s, &y).expect("both classes present"));
        }
        done += 1;
    }
    let interval = |value: Option<f64>, d: Vec<f64>| percentile_interval(value?, d);
    let single = point
        .iter()
        .zip(&draws)
        .map(|(&p, d)| interval(p, d.clone()))
        .collect();
    let diffs = pairs
        .iter()
        .map(|&(a, b)| {
            let v = point[a].zip(point[b]).map(|(x, y)| x - y);
            let d = draws[a].iter().zip(&draws[b]).map(|(x, y)| x - y).collect();
            interval(v, d)
        })
        .collect();
    (single, diffs)
}

/// A statistic of `n` paired observations with a 95% percentile-bootstrap interval:
/// `stat(indices)` is evaluated on all n first (the point), then on `resamples` draws of n
/// indices with replacement; draws where it returns None (e.g. an empty class) are redrawn, up
/// to ten times the resamples. None when the point is None or no draw succeeded.
pub fn bootstrap(
    n: usize,
    resamples: usize,
    seed: u64,
    mut stat: impl FnMut(&[usize]) -> Option<f64>,
) -> Option<Interval> {
    let all: Vec<usize> = (0..n).collect();
    let value = stat(&all)?;
    let mut rng = Rng::new(seed);
    let mut idx = vec![0usize; n];
    let mut d = Vec::with_capacity(resamples);
    let mut tries = 0;
    while d.len() < resamples && tries < resamples * 10 && n > 0 {
        tries += 1;
        for i in idx.iter_mut() {
            *i = (rng.uniform() * n as f64) as usize % n;
        }
        if let Some(v) = stat(&idx) {
            d.push(v);
        }
    }
    percentile_interval(value, d)
}

/// `value` with the 2.5% and 97.5% percentiles of the bootstrap draws `d` (None without draws).
pub(crate) fn percentile_interval(value: f64, mut d: Vec<f64>) -> Option<Interval> {
    if d.is_empty() {
        return None;
    }
    d.sort_by(f64::total_cmp);
    let q = |p: f64| d[((p * (d.len() - 1) as f64).round() as usize).min(d.len() - 1)];
    Some(Interval {
        value,
        lo: q(0.025),
        hi: q(0.975),
    })
}

/// The mean paired difference `a − b` over items with its bootstrap interval.
pub fn paired_diff(a: &[f64], b: &[f64], resamples: usize, seed: u64) -> Option<Interval> {
    let d: Vec<f64> = a.iter().zip(b).map(|(a, b)| a - b).collect();
    bootstrap(d.len(), resamples, seed, |s| {
        (!s.is_empty()).then(|| mean_at(&d, s))
    })
}

impl Interval {
    /// "+v [+lo, +hi]", or "–" for none.
    pub fn signed(i: &Option<Interval>) -> String {
        match i {
            Some(i) => format!("{:+.3} [{:+.3}, {:+.3}]", i.value, i.lo, i.hi),
            None => "–".into(),
        }
    }

    /// `[value, lo, hi]`, or null for none.
    pub fn json(i: &Option<Interval>) -> serde_json::Value {
        i.as_ref().map_or(serde_json::Value::Null, |i| {
            serde_json::json!([i.value, i.lo, i.hi])
        })
    }
}

/// Mean of `x` over `idx`.
pub fn mean_at(x: &[f64], idx: &[usize]) -> f64 {
    idx.iter().map(|&i| x[i]).sum::<f64>() / idx.len().max(1) as f64
}

/// Average ranks (1-based, ties share their mean rank).
fn ranks(x: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..x.len()).collect();
    idx.sort_by(|&a, &b| x[a].total_cmp(&x[b]));
    let mut r = vec![0.0; x.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && x[idx[j + 1]] == x[idx[i]] {
            j += 1;
        }
        for &k in &idx[i..=j] {
            r[k] = (i + j) as f64 / 2.0 + 1.0;
        }
        i = j + 1;
    }
    r
}

/// Pearson correlation; None with fewer than 3 points or a constant side.
pub fn pearson(x: &[f64], y: &[f64]) -> Option<f64> {
    let n = x.len();
    if n < 3 || n != y.len() {
        return None;
    }
    let (mx, my) = (
        x.iter().sum::<f64>() / n as f64,
        y.iter().sum::<f64>() / n as f64,
    );
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        sxy += (a - mx) * (b - my);
        sxx += (a - mx) * (a - mx);
        syy += (b - my) * (b - my);
    }
    (sxx > 0.0 && syy > 0.0).then(|| sxy / (sxx * syy).sqrt())
}

/// Spearman rank correlation (Pearson on average ranks).
pub fn spearman(x: &[f64], y: &[f64]) -> Option<f64> {
    pearson(&ranks(x), &ranks(y))
}

/// The linear dissimilarity of arXiv 2405.17088 between two sample sets, g(x) = 2x − 1:
/// D = ½·E_{x∼P₁}[2·P̂(1|x) − 1] + ½·E_{x∼P₂}[2·P̂(2|x) − 1], with the Bayes-optimal posterior
/// P̂(1|x) = P₁(x)/(P₁(x) + P₂(x)) computed from exact log-probabilities. Its expectation is
/// ½·Σ(P₁ − P₂)²/(P₁ + P₂) ∈ [0, 1] (0 for equal distributions, 1 for disjoint ones).
/// `one` and `two` are (log P₁(x), log P₂(x)) of the samples drawn from P₁ and from P₂.
pub fn linear_dissimilarity(one: &[(f64, f64)], two: &[(f64, f64)]) -> Option<f64> {
    if one.is_empty() || two.is_empty() {
        return None;
    }
    // P̂(1|x) = σ(log P₁ − log P₂), stable for any magnitudes.
    let post = |a: f64, b: f64| 1.0 / (1.0 + (b - a).exp());
    let e1 = one
        .iter()
        .map(|&(a, b)| 2.0 * post(a, b) - 1.0)
        .sum::<f64>()
        / one.len() as f64;
    let e2 = two
        .iter()
        .map(|&(a, b)| 2.0 * post(b, a) - 1.0)
        .sum::<f64>()
        / two.len() as f64;
    Some(0.5 * (e1 + e2))
}

/// Risk–coverage when answering only the items scored least risky first: point k (1-based)
/// is (coverage k/n, error rate among the k lowest scores). Ties are broken by index, so the
/// curve is deterministic.
pub fn risk_coverage(score: &[f64], correct: &[bool]) -> Vec<(f64, f64)> {
    let n = score.len();
    let mut idx: Vec<usize> = (0..n).collect();
    idx.sort_by(|&a, &b| score[a].total_cmp(&score[b]).then(a.cmp(&b)));
    let mut wrong = 0;
    idx.iter()
        .enumerate()
        .map(|(k, &i)| {
            wrong += !correct[i] as usize;
            ((k + 1) as f64 / n as f64, wrong as f64 / (k + 1) as f64)
        })
        .collect()
}

/// Area under the risk–coverage curve (mean risk over the n coverage points; lower is better).
pub fn aurc(curve: &[(f64, f64)]) -> f64 {
    curve.iter().map(|p| p.1).sum::<f64>() / curve.len().max(1) as f64
}

/// Accuracy among the answered items at `coverage` (the ⌈coverage·n⌉ least risky).
pub fn accuracy_at(curve: &[(f64, f64)], coverage: f64) -> f64 {
    let k = ((coverage * curve.len() as f64).ceil() as usize).clamp(1, curve.len());
    1.0 - curve[k - 1].1
}

/// The Kalai-penalised score at target t (Kalai et al. 2025, arXiv:2509.04664): answer when `confidence ≥ t`; a correct
/// answer scores 1, a wrong one −t/(1−t), an abstention 0; averaged over all items.
pub fn kalai_score(confidence: &[f64], correct: &[bool], t: f64) -> f64 {
    let penalty = t / (1.0 - t);
    let total: f64 = confidence
        .iter()
        .zip(correct)
        .filter(|(c, _)| **c >= t)
        .map(|(_, &ok)| if ok { 1.0 } else { -penalty })
        .sum();
    total / confidence.len().max(1) as f64
}

/// L2-regularised logistic regression by Newton–Raphson (IRLS) on standardised features.
/// Returns (bias, weights) in the original feature units, so that
/// P(y = 1 | x) = σ(bias + Σ w_k x_k). `l2` is the penalty on the standardised weights (the
/// bias is not penalised). Constant features get weight 0.
pub fn logistic_fit(x: &[Vec<f64>], y: &[bool], l2: f64) -> (f64, Vec<f64>) {
    let n = x.len();
    let d = x.first().map_or(0, Vec::len);
    let mean: Vec<f64> = (0..d)
        .map(|k| x.iter().map(|r| r[k]).sum::<f64>() / n.max(1) as f64)
        .collect();
    let sd: Vec<f64> = (0..d)
        .map(|k| {
            let v = x.iter().map(|r| (r[k] - mean[k]).powi(2)).sum::<f64>() / n.max(1) as f64;
            v.sqrt()
        })
        .collect();
    // Design matrix: intercept, then standardised columns (0 where constant).
    let z: Vec<Vec<f64>> = x
        .iter()
        .map(|r| {
            std::iter::once(1.0)
                .chain((0..d).map(|k| {
                    if sd[k] > 1e-12 {
                        (r[k] - mean[k]) / sd[k]
                    } else {
                        0.0
                    }
                }))
                .collect()
        })
        .collect();
    let m = d + 1;
    let mut w = vec![0.0; m];
    for _ in 0..50 {
        let mut h = vec![vec![0.0; m]; m];
        let mut g = vec![0.0; m];
        for (row, &yi) in z.iter().zip(y) {
            let s: f64 = row.iter().zip(&w).map(|(a, b)| a * b).sum();
            let p = 1.0 / (1.0 + (-s).exp());
            let r = yi as u8 as f64 - p;
            let wt = (p * (1.0 - p)).max(1e-12);
            for a in 0..m {
                g[a] += row[a] * r;
                for b in 0..m {
                    h[a][b] += wt * row[a] * row[b];
                }
            }
        }
        for a in 1..m {
            g[a] -= l2 * w[a];
            h[a][a] += l2;
        }
        h[0][0] += 1e-9;
        let step = solve(h, g);
        let size: f64 = step.iter().map(|s| s.abs()).fold(0.0, f64::max);
        for (wi, s) in w.iter_mut().zip(&step) {
            *wi += s;
        }
        if size < 1e-10 {
            break;
        }
    }
    let mut weights = vec![0.0; d];
    let mut bias = w[0];
    for k in 0..d {
        if sd[k] > 1e-12 {
            weights[k] = w[k + 1] / sd[k];
            bias -= weights[k] * mean[k];
        }
    }
    (bias, weights)
}

/// Solve A·x = b by Gaussian elimination with partial pivoting (A small and positive definite).
pub(super) fn solve(mut a: Vec<Vec<f64>>, mut b: Vec<f64>) -> Vec<f64> {
    let n = b.len();
    for c in 0..n {
        let p = (c..n)
            .max_by(|&i, &j| a[i][c].abs().total_cmp(&a[j][c].abs()))
            .expect("non-empty");
        a.swap(c, p);
        b.swap(c, p);
        let piv = a[c][c];
        if piv.abs() < 1e-300 {
            continue;
        }
        let (top, rest) = a.split_at_mut(c + 1);
        let pivot_row = &top[c];
        for (r, row) in rest.iter_mut().enumerate() {
            let f = row[c] / piv;
            for (x, &y) in row[c..].iter_mut().zip(&pivot_row[c..]) {
                *x -= f * y;
            }
            b[c + 1 + r] -= f * b[c];
        }
    }
    let mut x = vec![0.0; n];
    for c in (0..n).rev() {
        let s: f64 = (c + 1..n).map(|k| a[c][k] * x[k]).sum();
        x[c] = if a[c][c].abs() < 1e-300 {
            0.0
        } else {
            (b[c] - s) / a[c][c]
        };
    }
    x
}

/// Distinct-n: distinct n-grams over all n-grams of the given token sequences (pooled).
pub fn distinct_n(seqs: &[&[u32]], n: usize) -> f64 {
    let mut all = std::collections::HashSet::new();
    let mut total = 0usize;
    for s in seqs {
        for w in s.windows(n) {
            all.insert(w.to_vec());
            total += 1;
        }
    }
    if total == 0 {
        return 0.0;
    }
    all.len() as f64 / total as f64
}

/// BLEU-4 of `hyp` against `refs` (token ids): clipped n-gram precisions, geometric mean with
/// +1 smoothing for n > 1 (Lin & Och 2004), brevity penalty against the closest reference length.
pub fn bleu(hyp: &[u32], refs: &[&[u32]]) -> f64 {
    use std::collections::HashMap;
    if hyp.is_empty() || refs.is_empty() {
        return 0.0;
    }
    let mut log_p = 0.0;
    for n in 1..=4 {
        let mut h: HashMap<&[u32], usize> = HashMap::new();
        for w in hyp.windows(n) {
            *h.entry(w).or_default() += 1;
        }
        let mut max_ref: HashMap<&[u32], usize> = HashMap::new();
        for r in refs {
            let mut c: HashMap<&[u32], usize> = HashMap::new();
            for w in r.windows(n) {
                *c.entry(w).or_default() += 1;
            }
            for (k, v) in c {
                let e = max_ref.entry(k).or_default();
                *e = (*e).max(v);
            }
        }
        let clipped: usize = h
            .iter()
            .map(|(k, &v)| v.min(max_ref.get(k).copied().unwrap_or(0)))
            .sum();
        let total = hyp.len().saturating_sub(n - 1);
        let (num, den) = if n == 1 {
            (clipped as f64, total as f64)
        } else {
            (clipped as f64 + 1.0, total as f64 + 1.0)
        };
        if num == 0.0 || den == 0.0 {
            return 0.0;
        }
        log_p += (num / den).ln() / 4.0;
    }
    let closest = refs
        .iter()
        .map(|r| r.len())
        .min_by_key(|&l| (l as i64 - hyp.len() as i64).abs())
        .unwrap_or(0);
    let bp = if hyp.len() >= closest {
        1.0
    } else {
        (1.0 - closest as f64 / hyp.len() as f64).exp()
    };
    bp * log_p.exp()
}

/// Self-BLEU: mean BLEU-4 of each sample against the others (lower = more diverse).
pub fn self_bleu(samples: &[&[u32]]) -> f64 {
    if samples.len() < 2 {
        return 0.0;
    }
    let mut s = 0.0;
    for i in 0..samples.len() {
        let refs: Vec<&[u32]> = (0..samples.len())
            .filter(|&j| j != i)
            .map(|j| samples[j])
            .collect();
        s += bleu(samples[i], &refs);
    }
    s / samples.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auroc_matches_pair_counting() {
        let s = [0.1, 0.4, 0.35, 0.8, 0.4, 0.9, 0.2];
        let y = [false, true, false, true, false, true, true];
        // Brute force: P(score₊ > score₋) + ½ P(=).
        let (mut num, mut den) = (0.0, 0.0);
        for i in 0..s.len() {
            for j in 0..s.len() {
                if y[i] && !y[j] {
                    den += 1.0;
                    num += if s[i] > s[j] {
                        1.0
                    } else if s[i] == s[j] {
                        0.5
                    } else {
                        0.0
                    };
                }
            }
        }
        assert!((auroc(&s, &y).unwrap() - num / den).abs() < 1e-12);
        assert_eq!(auroc(&[1.0, 2.0], &[true, true]), None);
        assert_eq!(auroc(&[1.0, 2.0, 3.0], &[false, false, true]), Some(1.0));
    }

    #[test]
    fn bootstrap_interval_covers_the_point_and_pairs_are_antisymmetric() {
        let mut rng = Rng::new(3);
        let y: Vec<bool> = (0..300).map(|_| rng.uniform() < 0.4).collect();
        let a: Vec<f64> = y
            .iter()
            .map(|&p| p as u8 as f64 + 1.5 * rng.uniform())
            .collect();
        let b: Vec<f64> = y.iter().map(|_| rng.uniform()).collect();
        let (single, diff) = bootstrap_auroc(&[&a, &b], &y, &[(0, 1), (1, 0)], 500, 9);
        let ia = single[0].unwrap();
        assert!(ia.lo <= ia.value && ia.value <= ia.hi && ia.value > 0.7);
        let ib = single[1].unwrap();
        assert!(ib.lo < 0.5 && ib.hi > 0.5, "{ib:?}");
        let (d01, d10) = (diff[0].unwrap(), diff[1].unwrap());
        assert!(d01.lo > 0.0 && (d01.value + d10.value).abs() < 1e-12);
        assert!((d01.lo + d10.hi).abs() < 1e-12);
    }

    #[test]
    fn risk_coverage_and_kalai() {
        let s = [0.9, 0.1, 0.5, 0.3];
        let ok = [false, true, true, false];
        let c = risk_coverage(&s, &ok);
        assert_eq!(
            c,
            vec![(0.25, 0.0), (0.5, 0.5), (0.75, 1.0 / 3.0), (1.0, 0.5)]
        );
        assert!((aurc(&c) - (0.0 + 0.5 + 1.0 / 3.0 + 0.5) / 4.0).abs() < 1e-12);
        assert_eq!(accuracy_at(&c, 0.5), 0.5);
        // Confidence 1 − s; at t = 0.5 the answered items are 0.1, 0.5 (c ≥ 0.5), 0.3.
        let conf: Vec<f64> = s.iter().map(|x| 1.0 - x).collect();
        assert!((kalai_score(&conf, &ok, 0.5) - (2.0 - 1.0) / 4.0).abs() < 1e-12);
        // At t = 0.75 only 0.9 is answered (correct); a wrong answer would cost 3.
        assert!((kalai_score(&conf, &ok, 0.75) - 1.0 / 4.0).abs() < 1e-12);
        assert!((kalai_score(&conf, &ok, 0.6) - (1.0 - 1.5) / 4.0).abs() < 1e-12);
    }

    #[test]
    fn logistic_fit_recovers_known_weights() {
        let mut rng = Rng::new(11);
        let (b0, w) = (-0.5, [2.0, -1.0, 0.0]);
        let mut x = vec![];
        let mut y = vec![];
        for _ in 0..20_000 {
            let r = vec![
                rng.uniform() * 2.0,
                rng.uniform() * 4.0 - 1.0,
                rng.uniform() - 0.5,
            ];
            let s: f64 = b0 + r.iter().zip(&w).map(|(a, b)| a * b).sum::<f64>();
            y.push(rng.uniform() < 1.0 / (1.0 + (-s).exp()));
            x.push(r);
        }
        let (b, fit) = logistic_fit(&x, &y, 1e-6);
        assert!((b - b0).abs() < 0.2, "bias {b}");
        for (f, t) in fit.iter().zip(w) {
            assert!((f - t).abs() < 0.1, "{fit:?}");
        }
        // A constant column gets weight 0.
        let xc: Vec<Vec<f64>> = x.iter().map(|r| vec![r[0], 7.0]).collect();
        assert_eq!(logistic_fit(&xc, &y, 1e-6).1[1], 0.0);
    }

    #[test]
    fn correlations_and_bootstrap() {
        let x = [1.0, 2.0, 3.0, 4.0, 5.0];
        let y = [2.0, 4.0, 6.0, 8.0, 100.0];
        assert!((spearman(&x, &y).unwrap() - 1.0).abs() < 1e-12);
        assert!(pearson(&x, &y).unwrap() < 0.9);
        let rev: Vec<f64> = y.iter().map(|v| -v).collect();
        assert!((spearman(&x, &rev).unwrap() + 1.0).abs() < 1e-12);
        assert_eq!(spearman(&x, &[1.0; 5]), None);
        assert_eq!(ranks(&[3.0, 1.0, 3.0]), vec![2.5, 1.0, 2.5]);
        let v: Vec<f64> = (0..200).map(|i| (i % 10) as f64).collect();
        let iv = bootstrap(v.len(), 500, 1, |idx| Some(mean_at(&v, idx))).unwrap();
        assert!((iv.value - 4.5).abs() < 1e-12);
        assert!(iv.lo < 4.5 && iv.hi > 4.5 && iv.hi - iv.lo < 1.5, "{iv:?}");
        assert!(bootstrap(3, 10, 1, |_| None).is_none());
        // Paired differences: a − b is +1 on 30 of 100 items, −1 on 10, 0 elsewhere.
        let a: Vec<f64> = (0..100).map(|i| (i < 30) as u8 as f64).collect();
        let b: Vec<f64> = (0..100).map(|i| (i >= 90) as u8 as f64).collect();
        let d = paired_diff(&a, &b, 1000, 3);
        let iv = d.unwrap();
        assert!(
            (iv.value - 0.2).abs() < 1e-12 && iv.lo > 0.0 && iv.hi < 0.4,
            "{iv:?}"
        );
        assert_eq!(
            paired_diff(&a, &a, 100, 3).map(|i| (i.lo, i.hi)),
            Some((0.0, 0.0))
        );
        assert_eq!(
            Interval::signed(&d),
            format!("+0.200 [{:+.3}, {:+.3}]", iv.lo, iv.hi)
        );
        assert_eq!(Interval::signed(&None), "–");
        assert_eq!(Interval::json(&d), serde_json::json!([0.2, iv.lo, iv.hi]));
        assert!(Interval::json(&paired_diff(&[], &[], 10, 3)).is_null());
    }

    #[test]
    fn linear_dissimilarity_limits_and_expectation() {
        // Disjoint supports: posteriors are 1, D = 1. Equal distributions: D = 0.
        let one = [(0.0, f64::NEG_INFINITY); 4];
        let two = [(f64::NEG_INFINITY, 0.0); 4];
        assert!((linear_dissimilarity(&one, &two).unwrap() - 1.0).abs() < 1e-12);
        let same = [(-1.0, -1.0), (-2.0, -2.0)];
        assert_eq!(linear_dissimilarity(&same, &same), Some(0.0));
        // Exact expectation over a two-point space: P₁ = (0.8, 0.2), P₂ = (0.3, 0.7); weighting
        // each outcome's term by its probability gives ½Σ(P₁ − P₂)²/(P₁ + P₂).
        let (p1, p2) = ([0.8f64, 0.2], [0.3f64, 0.7]);
        let want = 0.5
            * (0..2)
                .map(|i| (p1[i] - p2[i]).powi(2) / (p1[i] + p2[i]))
                .sum::<f64>();
        let post = |a: f64, b: f64| a / (a + b);
        let got = 0.5
            * (0..2)
                .map(|i| p1[i] * (2.0 * post(p1[i], p2[i]) - 1.0))
                .sum::<f64>()
            + 0.5
                * (0..2)
                    .map(|i| p2[i] * (2.0 * post(p2[i], p1[i]) - 1.0))
                    .sum::<f64>();
        assert!((got - want).abs() < 1e-12);
        // Monte Carlo with the estimator converges to it.
        let mut rng = Rng::new(5);
        let draw = |p: &[f64; 2], rng: &mut Rng| usize::from(rng.uniform() >= p[0]);
        let lp = |i: usize| (p1[i].ln(), p2[i].ln());
        let one: Vec<_> = (0..20000).map(|_| lp(draw(&p1, &mut rng))).collect();
        let two: Vec<_> = (0..20000).map(|_| lp(draw(&p2, &mut rng))).collect();
        let est = linear_dissimilarity(&one, &two).unwrap();
        assert!((est - want).abs() < 0.01, "{est} vs {want}");
    }

    #[test]
    fn diversity_measures() {
        let a: &[u32] = &[1, 2, 3, 4, 5, 6];
        assert_eq!(distinct_n(&[a], 2), 1.0);
        assert_eq!(distinct_n(&[a, a], 2), 0.5);
        assert!((bleu(a, &[a]) - 1.0).abs() < 1e-12);
        assert_eq!(bleu(&[9, 9, 9, 9], &[a]), 0.0);
        assert!((self_bleu(&[a, a, a]) - 1.0).abs() < 1e-12);
        let b: &[u32] = &[7, 8, 9, 10, 11, 12];
        assert_eq!(self_bleu(&[a, b]), 0.0);
    }
}
