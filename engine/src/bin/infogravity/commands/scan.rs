//! `infogravity scan`: the phase scan of the next-token field at the answer position — entropy,
//! heat capacity C(T) and its peak T*, and the Jensen–Shannon distance between neighbouring
//! temperatures on a log grid (docs/DESIGN.md §1). Writes CSV and an SVG chart.

use std::io::Write;
use std::path::PathBuf;

use infogravity::field::thermo;
use infogravity_engine::{self as engine, eval::plot};

use crate::CliError;
use crate::args::ModelArgs;

#[derive(clap::Args)]
pub struct Args {
    /// The user message.
    prompt: String,
    /// Answer stem prefilled after the assistant prompt.
    #[arg(long, default_value = "")]
    stem: String,
    /// Temperatures on the grid.
    #[arg(long, default_value_t = 24)]
    points: usize,
    /// Lowest temperature.
    #[arg(long, default_value_t = 0.02)]
    lo: f64,
    /// Highest temperature.
    #[arg(long, default_value_t = 4.0)]
    hi: f64,
    /// CSV output.
    #[arg(long, default_value = "scan.csv")]
    csv: PathBuf,
    /// SVG plot output.
    #[arg(long, default_value = "scan.svg")]
    svg: PathBuf,
    #[command(flatten)]
    model: ModelArgs,
}

/// The grid sizes `--points` accepts.
const POINTS: std::ops::RangeInclusive<usize> = 3..=1000;

/// One grid point: T, entropy (nats), heat capacity C(T), JS distance to the next point per
/// unit of ln T.
struct Row {
    t: f64,
    h: f64,
    c: f64,
    js: f64,
}

/// The answer-position logits row for `user` (+ `stem`).
pub(super) fn answer_row(
    eng: &mut engine::Engine,
    user: &str,
    stem: &str,
) -> Result<Vec<f32>, CliError> {
    let text = engine::render_chat(
        &eng.lm.info().chat_template,
        &[engine::Message::new("user", user)],
    ) + stem;
    let ids = eng.encode(&text)?;
    let (logits, _) = eng.prefill(&ids)?;
    let v = eng.lm.info().vocab;
    Ok(logits[logits.len() - v..].to_vec())
}

pub fn exec(a: Args) -> Result<(), CliError> {
    let (lo, hi, points) = (a.lo, a.hi, a.points);
    if !(lo > 0.0 && hi > lo && POINTS.contains(&points)) {
        return Err(infogravity::Error::InvalidArgument(
            "need 0 < --lo < --hi and 3 ≤ --points ≤ 1000".into(),
        )
        .into());
    }
    let mut eng = a.model.load()?;
    let z = answer_row(&mut eng, &a.prompt, &a.stem)?;
    let grid = thermo::log_grid(lo, hi, points);
    // JS distance (√JSD) between neighbours per unit of ln T, attributed to their geometric mean.
    let step = (hi / lo).ln() / (points - 1) as f64;
    let rows: Vec<Row> = grid
        .iter()
        .map(|&t| {
            let t2 = t * step.exp();
            Row {
                t,
                h: thermo::entropy_at(&z, t),
                c: thermo::heat_capacity(&z, t),
                js: thermo::js_divergence(&z, t, &z, t2).sqrt() / step,
            }
        })
        .collect();
    let (t_star, c_star) = thermo::critical_temperature(&z, lo, hi);
    let peaks: Vec<f64> = (1..rows.len() - 2)
        .filter(|&i| rows[i].js > rows[i - 1].js && rows[i].js >= rows[i + 1].js)
        .map(|i| (rows[i].t * rows[i].t * step.exp()).sqrt())
        .collect();
    // The last point has no next neighbour.
    let rows = &rows[..rows.len() - 1];
    let mut f = String::from("temperature,entropy_nats,heat_capacity,js_distance_per_lnT\n");
    for r in rows {
        f.push_str(&format!("{:.6},{:.6},{:.6},{:.6}\n", r.t, r.h, r.c, r.js));
    }
    std::fs::write(&a.csv, f).map_err(CliError::Io)?;
    std::fs::write(&a.svg, chart(rows, t_star, &a.prompt)).map_err(CliError::Io)?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{:>9} {:>9} {:>9} {:>11}",
        "T", "H nats", "C(T)", "JS/ln T"
    )?;
    for r in rows {
        writeln!(out, "{:>9.4} {:>9.4} {:>9.4} {:>11.4}", r.t, r.h, r.c, r.js)?;
    }
    writeln!(
        out,
        "T* = {t_star:.4} (C = {c_star:.4}), argmax of the heat capacity"
    )?;
    writeln!(
        out,
        "JS-distance peaks at T = {:?}",
        peaks
            .iter()
            .map(|t| (t * 1e4).round() / 1e4)
            .collect::<Vec<_>>()
    )?;
    writeln!(out, "wrote {} and {}", a.csv.display(), a.svg.display())?;
    Ok(())
}

/// Heat capacity and JS distance against log T, each scaled to its maximum, with T* marked.
fn chart(rows: &[Row], t_star: f64, prompt: &str) -> String {
    let scaled = |name: &str, pick: fn(&Row) -> f64| {
        let max = rows.iter().map(pick).fold(1e-12, f64::max);
        let pts = rows.iter().map(|r| (r.t, pick(r) / max)).collect();
        (name.to_string(), pts)
    };
    let curves = [
        scaled("heat capacity C(T)", |r| r.c),
        scaled("JS distance / ln T", |r| r.js),
    ];
    let (first, last) = (rows[0].t, rows[rows.len() - 1].t);
    let mark = (t_star.clamp(first, last), format!("T* = {t_star:.3}"));
    plot::Chart {
        title: &format!("Temperature scan: {prompt}"),
        x_label: "temperature T (log scale)",
        y_label: "value / its maximum",
        log_x: true,
        bold: "",
    }
    .svg(&curves, &[mark])
}
