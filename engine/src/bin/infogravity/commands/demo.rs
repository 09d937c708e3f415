//! `infogravity demo`: the processor alone over an embedded decoding trace, with per-step
//! diagnostics (no model needed).

use std::io::Write;

use infogravity::{Config, GravityProcessor, QueryInput, SeqParams, StepMode, field, sampler};

use crate::CliError;
use crate::output::interventions;

#[derive(clap::Args)]
pub struct Args {
    /// Preset: neutral, balanced, factual or creative.
    #[arg(long, default_value = "balanced")]
    preset: String,
    /// Sampling seed.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Print one JSON object per step instead of a table.
    #[arg(long)]
    json: bool,
}

/// The trace's vocabulary size and length.
const VOCAB: usize = 32_000;
const STEPS: usize = 48;
/// Seed of the trace's logits (the sampling seed is `--seed`).
const TRACE_SEED: u64 = 2024;
/// The query's context gain D(Q) in nats: the only component of M(Q) the demo sets.
const CONTEXT_GAIN: f32 = 1.2;
/// Anchor tokens: they stand for the host's grounding text (e.g. retrieved context); they are
/// the peaks of the trace's first four steps.
const ANCHORS: [u32; 4] = [100, 117, 134, 151];

/// The embedded trace: logits of a 48-step decode over a 32,000-token vocabulary in three
/// phases — confident text (peaked rows), a weakly supported stretch (flat rows: the void),
/// and a collapse into a repeated 3-token phrase (the black hole).
fn trace_row(step: usize, v: usize, rng: &mut sampler::Rng) -> Vec<f32> {
    let mut r: Vec<f32> = (0..v).map(|_| (rng.uniform() as f32) * 4.0 - 2.0).collect();
    match step {
        0..=15 => {
            r[100 + step * 17] += 16.0;
            r[200 + step * 5] += 13.0;
        }
        16..=29 => {
            for k in 0..40 {
                r[1000 + k * 13 + step] += 2.0;
            }
        }
        _ => {
            r[7 + step % 3] += 16.0;
            r[3000 + step] += 12.0;
        }
    }
    r
}

pub fn exec(a: Args) -> Result<(), CliError> {
    let Args { preset, seed, json } = a;
    let mut out = std::io::stdout().lock();
    let v = VOCAB;
    let cfg = Config::from_json(&format!(r#"{{"preset":"{preset}"}}"#))?;
    let mut p = GravityProcessor::new(cfg, v)?;
    let mass = p.begin(
        1,
        &SeqParams {
            seed,
            anchors: &ANCHORS,
            query: QueryInput {
                context_gain: Some(CONTEXT_GAIN),
                ..Default::default()
            },
            ..Default::default()
        },
    )?;
    let mut rng = sampler::Rng::new(TRACE_SEED);
    if !json {
        writeln!(
            out,
            "infogravity demo: preset {preset}, V = {v}, kernel {}, M(Q) = {:.3} (D = {CONTEXT_GAIN} nats only)",
            field::kernel_name(),
            mass.m.unwrap_or(f32::NAN)
        )?;
        writeln!(
            out,
            "{:>4} {:>7} {:>6} {:>6} {:>6} {:>6} {:>6} {:>10} {:>6} {:>6}  interventions",
            "step", "token", "H", "h", "p_max", "T", "Φ", "regime", "void", "bh"
        )?;
    }
    let mut counts = [0usize; 3];
    for step in 0..STEPS {
        let mut row = trace_row(step, v, &mut rng);
        let r = p.step(1, &mut row, StepMode::Sample)?;
        let tok = r.token.unwrap_or(0);
        p.accept(1, tok)?;
        counts[r.regime as usize] += 1;
        let iv = interventions(r.flags);
        let regime = r.regime.name();
        if json {
            writeln!(
                out,
                "{{\"step\":{step},\"token\":{tok},\"entropy\":{:.4},\"entropy_norm\":{:.4},\"varentropy\":{:.4},\"p_max\":{:.4},\"temperature\":{:.4},\"potential\":{:.4},\"regime\":\"{regime}\",\"void_score\":{:.4},\"black_hole_score\":{:.4},\"cycle_period\":{},\"interventions\":{:?}}}",
                r.entropy,
                r.entropy_norm,
                r.varentropy,
                r.p_max,
                r.temperature,
                r.token_potential,
                r.void_score,
                r.black_hole_score,
                r.cycle_period,
                iv
            )?;
        } else {
            writeln!(
                out,
                "{step:>4} {tok:>7} {:>6.3} {:>6.3} {:>6.3} {:>6.3} {:>6.2} {regime:>10} {:>6.3} {:>6.3}  {}",
                r.entropy,
                r.entropy_norm,
                r.p_max,
                r.temperature,
                r.token_potential,
                r.void_score,
                r.black_hole_score,
                iv.join(",")
            )?;
        }
    }
    if !json {
        writeln!(
            out,
            "regimes: orbit {} steps, void {}, black hole {}",
            counts[0], counts[1], counts[2]
        )?;
    }
    Ok(p.end(1)?)
}
