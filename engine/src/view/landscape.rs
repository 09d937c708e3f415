//! The semantic landscape (seed 000 §3.1): for a set of queries, the model's logit vectors at
//! the answer position (and optionally along the greedy answer) projected to 2-D with t-SNE,
//! drawn as a potential map — darker where the potential Φ = −log p of the model's choice is
//! lower, i.e. where it is sure — so one sees which queries fall into the same gravity well.
//!
//! The vectors. Logits are defined up to a shift per row (softmax ignores it), so each row is
//! centred: the distance between two rows is the Euclidean distance of their potential
//! landscapes Φ(·) = log Z − z up to each one's mean, over the whole vocabulary
//! (docs/DESIGN.md §1 "potential"). Exact squared distances are computed once (n²/2 passes
//! over V floats) and handed to t-SNE.
//!
//! The projection is the `bhtsne` crate's exact t-SNE (van der Maaten & Hinton 2008). Why it:
//! it is kept up to date, pure Rust (no BLAS or Python), takes a precomputed metric, and can be
//! seeded with an initial embedding, which makes a run deterministic: the default start is
//! the classical-MDS (PCA) layout of the same distances, scaled to 1e-4 as Kobak & Linderman
//! (2021) recommend for keeping the global arrangement; `--init random` draws the start from
//! the seed instead. UMAP's Rust ports were not chosen: none is as kept up. Exact t-SNE is
//! O(n²) per epoch in one thread: 3.6 s for the 490-item bank (distances included); at the
//! 5,000-point cap it is about 100 times that (not measured).
//!
//! What a projection cannot show: t-SNE keeps neighbourhoods, not distances; the size of a
//! cluster and the gaps between clusters mean little, and two runs with different starts can
//! place clusters differently. Read the map as "which queries the model treats alike".
//!
//! Cost, for n points over a vocabulary of V: the vectors take 4·n·V bytes (490 queries of
//! Qwen2.5's V = 151,936: 298 MB; at the 5,000-point cap 3 GB), the distances n²·V/2
//! multiply-adds and 8·n² bytes, the t-SNE O(n²) per epoch (1,000 epochs) and three more n × n
//! matrices.

use infogravity::mass::QueryMass;
use infogravity::sampler::Rng;
use infogravity::{Error, Result};
use plotters::prelude::*;
use rayon::prelude::*;
use serde_json::{Value, json};

use super::{fill, num, round};

const TEMPLATE: &str = include_str!("landscape.html");

/// The fewest points t-SNE can place (its perplexity must stay below (n − 1) / 3 and above 1).
pub const MIN_POINTS: usize = 4;
/// The most points (the exact t-SNE holds three n × n matrices).
pub const MAX_POINTS: usize = 5000;

/// How the t-SNE starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Init {
    /// The classical-MDS (PCA) layout of the distances (deterministic; keeps global structure).
    Pca,
    /// Gaussian, σ = 1e-4, from the seed.
    Random,
}

/// t-SNE settings.
#[derive(Debug, Clone, Copy)]
pub struct TsneOptions {
    /// Effective number of neighbours; lowered to (n − 1) / 3 when there are few points.
    pub perplexity: f64,
    pub epochs: usize,
    pub init: Init,
    pub seed: u64,
}

impl Default for TsneOptions {
    fn default() -> Self {
        TsneOptions {
            perplexity: 30.0,
            epochs: 1000,
            init: Init::Pca,
            seed: 0,
        }
    }
}

/// Check the logit vectors: at least [`MIN_POINTS`], at most [`MAX_POINTS`], each of `vocab`
/// finite floats (−inf, a masked token, is refused too: it has no place in a distance).
pub fn check_vectors(vectors: &[Vec<f32>], vocab: usize) -> Result<()> {
    if vectors.len() < MIN_POINTS {
        return Err(Error::InvalidArgument(format!(
            "a landscape needs at least {MIN_POINTS} points (t-SNE's neighbourhoods), got {}",
            vectors.len()
        )));
    }
    if vectors.len() > MAX_POINTS {
        return Err(Error::InvalidArgument(format!(
            "a landscape takes at most {MAX_POINTS} points, got {} (use fewer queries or a \
             shorter --along)",
            vectors.len()
        )));
    }
    for (i, v) in vectors.iter().enumerate() {
        if v.len() != vocab {
            return Err(Error::InvalidArgument(format!(
                "point {i}: {} logits, the vocabulary has {vocab} (vocabulary mismatch)",
                v.len()
            )));
        }
        if let Some(k) = v.iter().position(|x| !x.is_finite()) {
            return Err(Error::InvalidArgument(format!(
                "point {i}: logit of token {k} is {} (logits must be finite)",
                v[k]
            )));
        }
    }
    Ok(())
}

/// Squared Euclidean distances between the centred vectors, n × n row-major.
pub fn distances(vectors: &[Vec<f32>]) -> Vec<f64> {
    let n = vectors.len();
    let means: Vec<f32> = vectors
        .iter()
        .map(|v| (v.iter().map(|&x| x as f64).sum::<f64>() / v.len().max(1) as f64) as f32)
        .collect();
    let mut d = vec![0f64; n * n];
    d.par_chunks_mut(n).enumerate().for_each(|(i, row)| {
        for j in i + 1..n {
            let shift = means[i] - means[j];
            let (a, b) = (&vectors[i], &vectors[j]);
            // Eight f32 lanes per 1,024-element block, each block summed in f64.
            let mut total = 0f64;
            for (ca, cb) in a.chunks(1024).zip(b.chunks(1024)) {
                let mut acc = [0f32; 8];
                let (ha, ta) = ca.split_at(ca.len() / 8 * 8);
                let (hb, tb) = cb.split_at(ha.len());
                for (xa, xb) in ha.chunks_exact(8).zip(hb.chunks_exact(8)) {
                    for l in 0..8 {
                        let e = xa[l] - xb[l] - shift;
                        acc[l] += e * e;
                    }
                }
                for (x, y) in ta.iter().zip(tb) {
                    let e = x - y - shift;
                    acc[0] += e * e;
                }
                total += acc.iter().map(|&x| x as f64).sum::<f64>();
            }
            row[j] = total;
        }
    });
    for i in 0..n {
        for j in 0..i {
            d[i * n + j] = d[j * n + i];
        }
    }
    d
}

/// The classical-MDS coordinates of squared distances `d` (n × n): the top two eigenvectors
/// of −½·J·d·J (J centres), by power iteration with deflation, each scaled by √λ.
fn mds(d: &[f64], n: usize) -> Vec<[f64; 2]> {
    let row_mean: Vec<f64> = (0..n)
        .map(|i| d[i * n..(i + 1) * n].iter().sum::<f64>() / n as f64)
        .collect();
    let all = row_mean.iter().sum::<f64>() / n as f64;
    let b: Vec<f64> = (0..n * n)
        .map(|k| {
            let (i, j) = (k / n, k % n);
            -0.5 * (d[k] - row_mean[i] - row_mean[j] + all)
        })
        .collect();
    let mut out = vec![[0f64; 2]; n];
    let mut found: Vec<(f64, Vec<f64>)> = vec![];
    for c in 0..2 {
        // A fixed, non-symmetric start: deterministic and not orthogonal to any eigenvector
        // in practice.
        let mut v: Vec<f64> = (0..n)
            .map(|i| 1.0 + ((i * 7 + c * 3) % 11) as f64)
            .collect();
        let mut lambda = 0.0;
        for _ in 0..500 {
            let mut w: Vec<f64> = (0..n)
                .into_par_iter()
                .map(|i| (0..n).map(|j| b[i * n + j] * v[j]).sum::<f64>())
                .collect();
            for (l, u) in &found {
                let dot: f64 = u.iter().zip(&v).map(|(a, b)| a * b).sum();
                w.iter_mut().zip(u).for_each(|(x, y)| *x -= l * dot * y);
            }
            let norm = w.iter().map(|x| x * x).sum::<f64>().sqrt();
            if norm == 0.0 || !norm.is_finite() {
                break;
            }
            let next: Vec<f64> = w.iter().map(|x| x / norm).collect();
            let delta: f64 = next.iter().zip(&v).map(|(a, b)| (a - b).abs()).sum();
            v = next;
            lambda = norm;
            if delta < 1e-10 * n as f64 {
                break;
            }
        }
        let scale = lambda.max(0.0).sqrt();
        for (o, x) in out.iter_mut().zip(&v) {
            o[c] = x * scale;
        }
        found.push((lambda, v));
    }
    out
}

/// A projection: the map and the distances it was made from, to say how far the map keeps
/// each point's neighbourhood.
#[derive(Debug, Clone)]
pub struct Projection {
    /// One 2-D point per vector.
    pub coords: Vec<[f64; 2]>,
    /// Squared distances between the centred vectors, n × n.
    pub distances: Vec<f64>,
}

impl Projection {
    fn n(&self) -> usize {
        self.coords.len()
    }

    /// The `k` nearest other points of `i` in logit space (`map` false) or in the map.
    pub fn neighbours(&self, i: usize, k: usize, map: bool) -> Vec<usize> {
        let n = self.n();
        let y = &self.coords;
        let d = |j: usize| {
            if map {
                (y[i][0] - y[j][0]).powi(2) + (y[i][1] - y[j][1]).powi(2)
            } else {
                self.distances[i * n + j]
            }
        };
        let mut idx: Vec<usize> = (0..n).filter(|&j| j != i).collect();
        idx.sort_by(|&a, &b| d(a).total_cmp(&d(b)).then(a.cmp(&b)));
        idx.truncate(k);
        idx
    }

    /// The share of each point's `k` nearest neighbours in logit space that are also among
    /// its `k` nearest in the map, averaged over the points (1 = every neighbourhood kept;
    /// k / (n − 1) is what a random map gives).
    pub fn overlap(&self, k: usize) -> f64 {
        let n = self.n();
        let k = k.min(n - 1);
        let kept: usize = (0..n)
            .map(|i| {
                let a = self.neighbours(i, k, false);
                let b = self.neighbours(i, k, true);
                a.iter().filter(|j| b.contains(j)).count()
            })
            .sum();
        kept as f64 / (n * k) as f64
    }

    /// The mean share of each point's `k` nearest neighbours with the same `label`: (in logit
    /// space, in the map).
    pub fn label_agreement(&self, k: usize, label: &[usize]) -> (f64, f64) {
        let n = self.n();
        let k = k.min(n - 1);
        let rate = |map: bool| {
            let same: usize = (0..n)
                .map(|i| {
                    let nb = self.neighbours(i, k, map);
                    nb.iter().filter(|&&j| label[j] == label[i]).count()
                })
                .sum();
            same as f64 / (n * k) as f64
        };
        (rate(false), rate(true))
    }

    /// Among the points with `flag` set, the mean share of their `k` nearest neighbours that
    /// have it too: (in logit space, in the map). With `flag` = "answered wrong" it says
    /// whether errors sit together, and whether the map shows what the space holds.
    pub fn flagged_neighbours(&self, k: usize, flag: &[bool]) -> (f64, f64) {
        let n = self.n();
        let k = k.min(n - 1);
        let rate = |map: bool| {
            let (mut hit, mut m) = (0usize, 0usize);
            for i in (0..n).filter(|&i| flag[i]) {
                hit += self
                    .neighbours(i, k, map)
                    .iter()
                    .filter(|&&j| flag[j])
                    .count();
                m += 1;
            }
            if m == 0 {
                f64::NAN
            } else {
                hit as f64 / (m * k) as f64
            }
        };
        (rate(false), rate(true))
    }
}

/// Project the logit vectors to 2-D (see the module's notes); deterministic for `opts`.
pub fn project(vectors: &[Vec<f32>], vocab: usize, opts: &TsneOptions) -> Result<Projection> {
    check_vectors(vectors, vocab)?;
    if !(opts.perplexity >= 1.0 && opts.perplexity.is_finite()) || opts.epochs == 0 {
        return Err(Error::InvalidArgument(format!(
            "t-SNE needs perplexity ≥ 1 and at least one epoch (got {} and {})",
            opts.perplexity, opts.epochs
        )));
    }
    let n = vectors.len();
    let distances = distances(vectors);
    let coords = embed(&distances, n, opts)?;
    if coords.iter().flatten().any(|c| !c.is_finite()) {
        return Err(Error::Engine(
            "t-SNE diverged (non-finite coordinates)".into(),
        ));
    }
    Ok(Projection { coords, distances })
}

/// What `bhtsne` is handed for a squared distance `d2`: the distance itself. The crate squares
/// the metric it is given (its `search_beta` weighs exp(−β·m·m)), so handing it `d2` would
/// make the input kernel exp(−β‖x − y‖⁴) — still the same neighbour ranking, but not t-SNE's
/// Gaussian.
fn crate_metric(d2: f64) -> f64 {
    d2.max(0.0).sqrt()
}

/// t-SNE of squared distances `d` (n × n, n ≥ [`MIN_POINTS`]).
fn embed(d: &[f64], n: usize, opts: &TsneOptions) -> Result<Vec<[f64; 2]>> {
    // bhtsne panics when n − 1 < 3·⌊perplexity⌋.
    let perplexity = opts.perplexity.min((n - 1) as f64 / 3.0).max(1.0);
    let start: Vec<[f64; 2]> = match opts.init {
        Init::Pca => mds(d, n),
        Init::Random => {
            let mut rng = Rng::new(opts.seed);
            (0..n)
                .map(|_| {
                    // Box–Muller.
                    let (u, v) = (1.0 - rng.uniform(), rng.uniform());
                    let r = (-2.0 * u.ln()).sqrt();
                    let t = std::f64::consts::TAU * v;
                    [r * t.cos(), r * t.sin()]
                })
                .collect()
        }
    };
    let sd = {
        let m = start.iter().map(|p| p[0]).sum::<f64>() / n as f64;
        (start.iter().map(|p| (p[0] - m).powi(2)).sum::<f64>() / n as f64).sqrt()
    };
    let scale = if sd > 0.0 { 1e-4 / sd } else { 1.0 };
    let init: Vec<f64> = start
        .iter()
        .flat_map(|p| [p[0] * scale, p[1] * scale])
        .collect();
    let idx: Vec<usize> = (0..n).collect();
    let fit = || {
        let mut t: bhtsne::tSNE<f64, usize> = bhtsne::tSNE::new(&idx);
        t.perplexity(perplexity)
            .epochs(opts.epochs)
            .initial_embedding(init)
            .exact(|&a, &b| crate_metric(d[a * n + b]));
        t.embedding()
    };
    // One thread: the crate's parallel sums (of P and of Q each epoch) reduce in an order that
    // depends on work stealing, and t-SNE amplifies the last-bit differences into a different
    // map. In one thread the fit is reproducible; it costs seconds at these sizes.
    let y = match rayon::ThreadPoolBuilder::new().num_threads(1).build() {
        Ok(pool) => pool.install(fit),
        Err(_) => return Err(Error::Engine("cannot start a thread for the t-SNE".into())),
    };
    Ok(y.chunks_exact(2).map(|p| [p[0], p[1]]).collect())
}

/// What each point is coloured by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quantity {
    /// Φ of the model's choice, −log p_max (the seed's potential).
    Potential,
    /// The processor's void score.
    Void,
    /// The entropy H.
    Entropy,
}

impl Quantity {
    pub fn name(self) -> &'static str {
        match self {
            Quantity::Potential => "potential",
            Quantity::Void => "void",
            Quantity::Entropy => "entropy",
        }
    }
    fn label(self) -> &'static str {
        match self {
            Quantity::Potential => "Φ = −log p_max (nats)",
            Quantity::Void => "void score",
            Quantity::Entropy => "entropy H (nats)",
        }
    }
    fn of(self, p: &Point) -> f64 {
        match self {
            Quantity::Potential => p.potential as f64,
            Quantity::Void => p.void_score as f64,
            Quantity::Entropy => p.entropy as f64,
        }
    }
}

/// One query: its text, what the model answered and the prompt-side mass (docs/DESIGN.md §1).
#[derive(Debug, Clone)]
pub struct Query {
    pub label: String,
    /// The bank's relation (capital, continent, …), when it came from a bank.
    pub relation: Option<String>,
    /// The greedy answer.
    pub answer: String,
    /// Graded against the bank's answers, when it came from a bank.
    pub correct: Option<bool>,
    pub mass: QueryMass,
}

/// One projected vector: the field of `query` at answer position `step` (0 = the answer
/// position right after the prompt).
#[derive(Debug, Clone)]
pub struct Point {
    pub query: usize,
    pub step: usize,
    /// The greedy token chosen there.
    pub token: String,
    pub potential: f32,
    pub void_score: f32,
    pub entropy: f32,
}

/// The potential map behind the points: on an nx × ny grid over the points' box, the
/// Gaussian-kernel (Nadaraya–Watson) average of the points' potential and the kernel density
/// (normalised to a maximum of 1; cells with next to no density are left blank).
#[derive(Debug, Clone)]
pub struct Grid {
    pub x: [f64; 2],
    pub y: [f64; 2],
    pub nx: usize,
    pub ny: usize,
    /// Row-major from the top-left cell; NaN (left blank) where the density is below 2% of
    /// its peak.
    pub value: Vec<f64>,
    pub density: Vec<f64>,
}

impl Grid {
    /// The map of `values` at `coords` (same length, at least one point).
    pub fn new(coords: &[[f64; 2]], values: &[f64], nx: usize, ny: usize) -> Grid {
        let lo_hi = |k: usize| {
            let lo = coords.iter().map(|p| p[k]).fold(f64::INFINITY, f64::min);
            let hi = coords
                .iter()
                .map(|p| p[k])
                .fold(f64::NEG_INFINITY, f64::max);
            let pad = ((hi - lo) * 0.08).max(1e-9);
            [lo - pad, hi + pad]
        };
        let (x, y) = (lo_hi(0), lo_hi(1));
        // Bandwidth: twice the median distance to the nearest neighbour. t-SNE packs points
        // into tight clusters with empty space between them, so a global rule (Scott's, on the
        // spread of the whole map) smears every well over the gaps.
        let mut nn: Vec<f64> = coords
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let d2 = coords
                    .iter()
                    .enumerate()
                    .filter(|&(j, _)| j != i)
                    .map(|(_, q)| (p[0] - q[0]).powi(2) + (p[1] - q[1]).powi(2))
                    .fold(f64::INFINITY, f64::min);
                d2.sqrt()
            })
            .filter(|d| d.is_finite())
            .collect();
        nn.sort_by(f64::total_cmp);
        let span = (x[1] - x[0]).max(y[1] - y[0]);
        let median = nn.get(nn.len() / 2).copied().unwrap_or(span / 10.0);
        let h = (2.0 * median).max(span / 200.0).max(1e-9);
        let (mut value, mut density) = (vec![0.0; nx * ny], vec![0.0; nx * ny]);
        for r in 0..ny {
            for c in 0..nx {
                let cx = x[0] + (c as f64 + 0.5) * (x[1] - x[0]) / nx as f64;
                let cy = y[1] - (r as f64 + 0.5) * (y[1] - y[0]) / ny as f64;
                let (mut w, mut wv) = (0.0, 0.0);
                for (p, v) in coords.iter().zip(values) {
                    let k = (-((p[0] - cx).powi(2) + (p[1] - cy).powi(2)) / (2.0 * h * h)).exp();
                    w += k;
                    wv += k * v;
                }
                density[r * nx + c] = w;
                value[r * nx + c] = if w > 0.0 { wv / w } else { f64::NAN };
            }
        }
        let top = density.iter().cloned().fold(0.0, f64::max);
        for (d, v) in density.iter_mut().zip(&mut value) {
            *d = if top > 0.0 { *d / top } else { 0.0 };
            if *d < 0.02 {
                *v = f64::NAN;
            }
        }
        Grid {
            x,
            y,
            nx,
            ny,
            value,
            density,
        }
    }
}

/// A projected set of queries, ready to draw.
#[derive(Debug, Clone)]
pub struct Landscape {
    pub title: String,
    pub model: String,
    pub queries: Vec<Query>,
    pub points: Vec<Point>,
    /// One per point.
    pub coords: Vec<[f64; 2]>,
    /// What the SVG colours the points by (the HTML can switch).
    pub colour: Quantity,
    /// Lines shown under the HTML map (e.g. how well the map keeps neighbourhoods).
    pub notes: Vec<String>,
}

/// Viridis at five stops (dark = low): the potential map's and the points' colours.
const VIRIDIS: [(u8, u8, u8); 5] = [
    (68, 1, 84),
    (59, 82, 139),
    (33, 145, 140),
    (94, 201, 98),
    (253, 231, 37),
];

fn viridis(t: f64) -> (u8, u8, u8) {
    let t = if t.is_finite() {
        t.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let s = t * 4.0;
    let i = (s.floor() as usize).min(3);
    let u = s - i as f64;
    let (a, b) = (VIRIDIS[i], VIRIDIS[i + 1]);
    let mix = |x: u8, y: u8| (x as f64 + (y as f64 - x as f64) * u).round() as u8;
    (mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// Grid resolution of the SVG's potential map (cells are rectangles in the file).
const SVG_GRID: (usize, usize) = (96, 72);
/// … and of the HTML's (drawn on a canvas).
const HTML_GRID: (usize, usize) = (160, 120);

impl Landscape {
    /// Check the parts agree: one coordinate per point, every point names a query, at least
    /// one point, finite coordinates.
    pub fn check(&self) -> Result<()> {
        if self.points.is_empty() || self.coords.len() != self.points.len() {
            return Err(Error::SizeMismatch {
                what: "landscape coordinates (one per point)",
                expected: self.points.len(),
                got: self.coords.len(),
            });
        }
        if let Some(p) = self.points.iter().find(|p| p.query >= self.queries.len()) {
            return Err(Error::InvalidArgument(format!(
                "a point names query {} of {}",
                p.query,
                self.queries.len()
            )));
        }
        if self.coords.iter().flatten().any(|c| !c.is_finite()) {
            return Err(Error::InvalidArgument(
                "the projection has non-finite coordinates".into(),
            ));
        }
        Ok(())
    }

    fn values(&self, q: Quantity) -> Vec<f64> {
        self.points.iter().map(|p| q.of(p)).collect()
    }

    /// The potential map's colour range: [min, max] of the points' potential.
    fn range(values: &[f64]) -> (f64, f64) {
        let lo = values.iter().cloned().fold(f64::INFINITY, f64::min);
        let hi = values.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        if hi > lo { (lo, hi) } else { (lo, lo + 1.0) }
    }

    /// The static map (for docs): potential map, trajectories along the answers, points
    /// coloured by [`Landscape::colour`], wrong answers ringed in red, a colour bar.
    pub fn svg(&self) -> Result<String> {
        self.check()?;
        let (w, h) = (900u32, 680u32);
        let mut out = String::new();
        {
            let root = SVGBackend::with_string(&mut out, (w, h)).into_drawing_area();
            let err = |e: String| Error::InvalidArgument(format!("drawing the landscape: {e}"));
            root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
            let (main, side) = root.split_horizontally(w - 150);
            let pot = self.values(Quantity::Potential);
            let grid = Grid::new(&self.coords, &pot, SVG_GRID.0, SVG_GRID.1);
            let mut chart = ChartBuilder::on(&main)
                .margin(12)
                .caption(&self.title, ("sans-serif", 18))
                .build_cartesian_2d(grid.x[0]..grid.x[1], grid.y[0]..grid.y[1])
                .map_err(|e| err(e.to_string()))?;
            let (plo, phi) = Self::range(&pot);
            let (dx, dy) = (
                (grid.x[1] - grid.x[0]) / grid.nx as f64,
                (grid.y[1] - grid.y[0]) / grid.ny as f64,
            );
            let cells = (0..grid.ny).flat_map(|r| (0..grid.nx).map(move |c| (r, c)));
            chart
                .draw_series(cells.filter_map(|(r, c)| {
                    let v = grid.value[r * grid.nx + c];
                    if !v.is_finite() {
                        return None;
                    }
                    let (cr, cg, cb) = viridis((v - plo) / (phi - plo));
                    let alpha = grid.density[r * grid.nx + c].sqrt() * 0.85;
                    let x0 = grid.x[0] + c as f64 * dx;
                    let y1 = grid.y[1] - r as f64 * dy;
                    Some(Rectangle::new(
                        [(x0, y1 - dy), (x0 + dx, y1)],
                        RGBAColor(cr, cg, cb, alpha).filled(),
                    ))
                }))
                .map_err(|e| err(e.to_string()))?;
            for path in self.trajectories() {
                chart
                    .draw_series(std::iter::once(PathElement::new(
                        path,
                        RGBAColor(40, 40, 40, 0.35).stroke_width(1),
                    )))
                    .map_err(|e| err(e.to_string()))?;
            }
            let vals = self.values(self.colour);
            let (lo, hi) = Self::range(&vals);
            chart
                .draw_series(
                    self.points
                        .iter()
                        .zip(&self.coords)
                        .zip(&vals)
                        .map(|((p, c), v)| {
                            let (r, g, b) = viridis((v - lo) / (hi - lo));
                            let size = if p.step == 0 { 4 } else { 2 };
                            EmptyElement::at((c[0], c[1]))
                                + Circle::new((0, 0), size, RGBColor(r, g, b).filled())
                                + Circle::new((0, 0), size, BLACK.stroke_width(1))
                        }),
                )
                .map_err(|e| err(e.to_string()))?;
            let red = RGBColor(214, 39, 40);
            chart
                .draw_series(
                    self.points
                        .iter()
                        .zip(&self.coords)
                        .filter(|(p, _)| {
                            p.step == 0 && self.queries[p.query].correct == Some(false)
                        })
                        .map(|(_, c)| Circle::new((c[0], c[1]), 7, red.stroke_width(2))),
                )
                .map_err(|e| err(e.to_string()))?;
            // The colour bar and the key.
            let text = |s: &str, x: i32, y: i32, size: u32| {
                side.draw(&Text::new(s.to_string(), (x, y), ("sans-serif", size)))
                    .map_err(|e| err(e.to_string()))
            };
            text("points:", 8, 60, 13)?;
            text(self.colour.label(), 8, 76, 12)?;
            let (bx, by, bh) = (12, 96, 300);
            for k in 0..bh {
                let (r, g, b) = viridis(1.0 - k as f64 / (bh - 1) as f64);
                side.draw(&Rectangle::new(
                    [(bx, by + k), (bx + 18, by + k + 1)],
                    RGBColor(r, g, b).filled(),
                ))
                .map_err(|e| err(e.to_string()))?;
            }
            text(&format!("{hi:.2}"), bx + 24, by + 4, 12)?;
            text(&format!("{lo:.2}"), bx + 24, by + bh, 12)?;
            text("shading: Φ map,", 8, by + bh + 30, 12)?;
            text("darker = lower Φ", 8, by + bh + 46, 12)?;
            if self.queries.iter().any(|q| q.correct == Some(false)) {
                side.draw(&Circle::new((16, by + bh + 72), 7, red.stroke_width(2)))
                    .map_err(|e| err(e.to_string()))?;
                text("wrong answer", 28, by + bh + 76, 12)?;
            }
            if self.points.iter().any(|p| p.step > 0) {
                text("lines: along", 8, by + bh + 100, 12)?;
                text("the answer", 8, by + bh + 116, 12)?;
            }
            root.present().map_err(|e| err(e.to_string()))?;
        }
        Ok(out)
    }

    /// Each query's points in answer order, when it has more than one.
    fn trajectories(&self) -> Vec<Vec<(f64, f64)>> {
        let mut by_query: Vec<Vec<(usize, (f64, f64))>> = vec![vec![]; self.queries.len()];
        for (p, c) in self.points.iter().zip(&self.coords) {
            by_query[p.query].push((p.step, (c[0], c[1])));
        }
        by_query
            .into_iter()
            .filter(|v| v.len() > 1)
            .map(|mut v| {
                v.sort_by_key(|s| s.0);
                v.into_iter().map(|s| s.1).collect()
            })
            .collect()
    }

    /// The page to explore: the same map on a canvas, points with their query, answer,
    /// field and M(Q) on hover, colour by potential, void score, entropy or relation.
    pub fn html(&self) -> Result<String> {
        Ok(fill(TEMPLATE, &self.data()?))
    }

    /// The JSON the page draws.
    pub fn data(&self) -> Result<Value> {
        self.check()?;
        let pot = self.values(Quantity::Potential);
        let grid = Grid::new(&self.coords, &pot, HTML_GRID.0, HTML_GRID.1);
        let f = |x: Option<f32>| x.map(|x| round(x as f64, 4)).unwrap_or(Value::Null);
        let queries: Vec<Value> = self
            .queries
            .iter()
            .map(|q| {
                json!({
                    "label": q.label, "relation": q.relation, "answer": q.answer,
                    "correct": q.correct,
                    "mass": {"M": f(q.mass.m), "H": f(q.mass.h), "H_prompt": f(q.mass.h_prompt_mean), "D": f(q.mass.d),
                             "N_KL": f(q.mass.n_kl), "N_surprisal": f(q.mass.n_surprisal)},
                })
            })
            .collect();
        let points: Vec<Value> = self
            .points
            .iter()
            .zip(&self.coords)
            .map(|(p, c)| {
                json!({
                    "q": p.query, "step": p.step, "token": p.token,
                    "x": round(c[0], 4), "y": round(c[1], 4),
                    "potential": round(p.potential as f64, 4),
                    "void": round(p.void_score as f64, 4),
                    "entropy": round(p.entropy as f64, 4),
                })
            })
            .collect();
        Ok(json!({
            "title": self.title, "model": self.model, "colour": self.colour.name(),
            "notes": self.notes,
            "queries": queries, "points": points,
            "grid": {
                "x": [num(grid.x[0]), num(grid.x[1])], "y": [num(grid.y[0]), num(grid.y[1])],
                "nx": grid.nx, "ny": grid.ny,
                "value": grid.value.iter().map(|&v| round(v, 3)).collect::<Vec<_>>(),
                "density": grid.density.iter().map(|&v| round(v, 3)).collect::<Vec<_>>(),
            },
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two Gaussian blobs of `k` points each in `dim` dimensions, centres 8σ apart, each
    /// vector given a random shift (which the centring must ignore).
    fn blobs(k: usize, dim: usize, seed: u64) -> Vec<Vec<f32>> {
        let mut rng = Rng::new(seed);
        let mut g = || {
            let (u, v) = (1.0 - rng.uniform(), rng.uniform());
            ((-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()) as f32
        };
        let centre: Vec<f32> = (0..dim).map(|_| g() * 8.0 / (2.0f32).sqrt()).collect();
        (0..2 * k)
            .map(|i| {
                let shift = g() * 50.0;
                (0..dim)
                    .map(|j| shift + g() + if i < k { centre[j] } else { -centre[j] } * 0.5)
                    .collect()
            })
            .collect()
    }

    #[test]
    fn distances_ignore_the_shift_of_a_row() {
        let a: Vec<f32> = (0..3000).map(|i| (i % 17) as f32 * 0.1).collect();
        let b: Vec<f32> = a.iter().map(|x| x + 5.0).collect();
        let c: Vec<f32> = a
            .iter()
            .enumerate()
            .map(|(i, x)| x + (i % 2) as f32)
            .collect();
        let d = distances(&[a.clone(), b, c]);
        assert!(d[1] < 1e-3, "a and a + 5 are the same landscape: {}", d[1]);
        // c − a alternates 0, 1: centred it is ±0.5, squared 0.25 per element.
        assert!((d[2] - 750.0).abs() < 0.05, "{}", d[2]);
        assert_eq!(d[2], d[2 * 3]);
    }

    #[test]
    fn two_clusters_are_separated_and_runs_repeat() {
        let v = blobs(15, 400, 7);
        for init in [Init::Pca, Init::Random] {
            let opts = TsneOptions {
                perplexity: 8.0,
                epochs: 500,
                init,
                seed: 3,
            };
            let p = project(&v, 400, &opts).unwrap();
            let y = p.coords.clone();
            assert_eq!(
                y,
                project(&v, 400, &opts).unwrap().coords,
                "{init:?}: deterministic"
            );
            // The blobs' neighbourhoods survive the projection, and the flag "first blob"
            // finds its own kind in both spaces.
            assert!(p.overlap(5) > 0.4, "{init:?}: {}", p.overlap(5));
            let first: Vec<bool> = (0..30).map(|i| i < 15).collect();
            assert_eq!(p.flagged_neighbours(5, &first), (1.0, 1.0));
            let label: Vec<usize> = (0..30).map(|i| i / 15).collect();
            assert_eq!(p.label_agreement(5, &label), (1.0, 1.0));
            // Every point's nearest neighbour in the map is from its own blob.
            for i in 0..y.len() {
                let nn = (0..y.len())
                    .filter(|&j| j != i)
                    .min_by(|&a, &b| {
                        let d =
                            |j: usize| (y[i][0] - y[j][0]).powi(2) + (y[i][1] - y[j][1]).powi(2);
                        d(a).total_cmp(&d(b))
                    })
                    .unwrap();
                assert_eq!(i < 15, nn < 15, "{init:?}: point {i}'s neighbour is {nn}");
            }
        }
        // Another seed moves a random start.
        let a = project(
            &v,
            400,
            &TsneOptions {
                init: Init::Random,
                seed: 1,
                ..Default::default()
            },
        );
        let b = project(
            &v,
            400,
            &TsneOptions {
                init: Init::Random,
                seed: 2,
                ..Default::default()
            },
        );
        assert_ne!(a.unwrap().coords, b.unwrap().coords);
    }

    #[test]
    fn bad_vectors_are_refused_with_the_reason() {
        let ok = |n: usize| vec![vec![0.5f32; 10]; n];
        let msg = |r: Result<Projection>| r.unwrap_err().to_string();
        let o = TsneOptions::default();
        assert!(msg(project(&[], 10, &o)).contains("at least 4"));
        assert!(msg(project(&ok(1), 10, &o)).contains("got 1"));
        let mut v = ok(5);
        v[3].pop();
        assert!(msg(project(&v, 10, &o)).contains("vocabulary mismatch"));
        let mut v = ok(5);
        v[2][7] = f32::NAN;
        assert!(msg(project(&v, 10, &o)).contains("token 7 is NaN"));
        v[2][7] = f32::NEG_INFINITY;
        assert!(msg(project(&v, 10, &o)).contains("finite"));
        let bad = TsneOptions {
            perplexity: 0.0,
            ..o
        };
        assert!(msg(project(&ok(5), 10, &bad)).contains("perplexity"));
        // Identical points: a degenerate but valid input, placed without NaN.
        let y = project(&ok(6), 10, &o).unwrap();
        assert!(y.coords.iter().flatten().all(|c| c.is_finite()));
    }

    fn landscape(n: usize) -> Landscape {
        let v = blobs(n / 2, 50, 1);
        let coords = project(&v, 50, &TsneOptions::default()).unwrap().coords;
        Landscape {
            title: "test".into(),
            model: "m".into(),
            queries: (0..n)
                .map(|i| Query {
                    label: format!("q{i} </script>"),
                    relation: Some(if i < n / 2 { "a" } else { "b" }.into()),
                    answer: "x".into(),
                    correct: Some(i % 3 != 0),
                    mass: QueryMass {
                        m: Some(0.5),
                        h: Some(0.1),
                        ..Default::default()
                    },
                })
                .collect(),
            points: (0..n)
                .map(|i| Point {
                    query: i,
                    step: 0,
                    token: "t".into(),
                    potential: i as f32 * 0.1,
                    void_score: 0.2,
                    entropy: 1.0,
                })
                .collect(),
            coords,
            colour: Quantity::Potential,
            notes: vec!["a note".into()],
        }
    }

    #[test]
    fn views_embed_the_points_and_draw_them() {
        let l = landscape(12);
        let data = super::super::read_data(&l.html().unwrap()).unwrap();
        let pts = data["points"].as_array().unwrap();
        assert_eq!(pts.len(), 12);
        for (p, c) in pts.iter().zip(&l.coords) {
            assert!((p["x"].as_f64().unwrap() - c[0]).abs() < 1e-3);
        }
        assert_eq!(data["queries"][0]["mass"]["M"], 0.5);
        assert_eq!(data["notes"][0], "a note");
        assert_eq!(data["grid"]["value"].as_array().unwrap().len(), 160 * 120);
        let svg = l.svg().unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..40]);
        // Two circles per point, a ring round each of the 4 wrong answers (i % 3 == 0), one
        // in the key.
        assert_eq!(svg.matches("<circle").count(), 24 + 4 + 1);
        let mut bad = l.clone();
        bad.coords.pop();
        assert!(bad.svg().is_err() && bad.html().is_err());
        let mut bad = l;
        bad.points[0].query = 99;
        assert!(bad.data().is_err());
    }

    #[test]
    fn grid_is_darker_where_the_potential_is_low() {
        let coords = [[0.0, 0.0], [0.1, 0.0], [10.0, 0.0], [10.1, 0.0]];
        let g = Grid::new(&coords, &[0.1, 0.1, 5.0, 5.0], 20, 3);
        let left = g.value[g.nx];
        let right = g.value[2 * g.nx - 1];
        assert!(left < 1.0 && right > 4.0, "{left} {right}");
        assert!(g.density.iter().all(|d| (0.0..=1.0).contains(d)));
    }
}
