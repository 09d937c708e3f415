//! `infogravity generate`: answers with the gravity processor in the loop, per-token
//! diagnostics after each answer, and the timings of the batch.

use std::io::Write;

use infogravity_engine as engine;

use crate::CliError;
use crate::args::{Diagnostics, ModelArgs, shipped_prior};
use crate::output::diagnostics;

/// The flags of `generate`.
#[derive(clap::Args)]
pub struct Args {
    /// The user message; several run as one batch.
    #[arg(default_value = "What is the capital of France?")]
    prompt: Vec<String>,
    /// Sequences per prompt (seeds seed, seed+1, …), all in one batch with the prompts.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    samples: u32,
    #[command(flatten)]
    model: ModelArgs,
    /// Preset: neutral, balanced, factual or creative.
    #[arg(long, default_value = "balanced")]
    preset: String,
    /// Base temperature (overrides the preset's temperature.base; 0 = greedy).
    #[arg(long)]
    temperature: Option<f32>,
    /// Sampling seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Most tokens to generate.
    #[arg(long, default_value_t = 128)]
    max_tokens: usize,
    /// Anchor text (repeatable): its tokens are biased when the field goes void.
    #[arg(long)]
    anchor: Vec<String>,
    /// System message (default: the model's own).
    #[arg(long)]
    system: Option<String>,
    /// Per-token diagnostics after the answer: table or jsonl.
    #[arg(long, value_enum, default_value_t = Diagnostics::Table)]
    diagnostics: Diagnostics,
    /// Also run plain sampling (neutral preset, same temperature and seed) for comparison.
    #[arg(long)]
    compare: bool,
    /// Add each token's critical temperature T* (argmax of the heat capacity over [0.02, 4])
    /// and the phase distance ln(T/T*) to the diagnostics. Costs about 90 passes over the
    /// vocabulary per token (measured on a 2-core CPU: ~2 ms per token for SmolLM2, ~1.3 ms
    /// for Qwen2.5-Coder-1.5B on the default question, whose fields are peaked).
    #[arg(long)]
    tstar: bool,
    /// A third-party logits-processor plugin (a shared library exporting `ig_plugin_entry`, see
    /// plugins/examples/): it runs first in every step, before the field is measured.
    #[arg(long)]
    plugin: Option<std::path::PathBuf>,
    /// The plugin's JSON configuration (default: the plugin's own defaults).
    #[arg(long, requires = "plugin")]
    plugin_config: Option<String>,
    /// Also write the generation as a self-contained HTML page: each token coloured by a
    /// chosen quantity, strip charts of H, T and the regime scores, interventions marked, the
    /// full step report on hover (with --compare, plain above gravity).
    #[arg(long, value_name = "FILE")]
    html: Option<std::path::PathBuf>,
    /// ORT intra-op threads (0 = ORT's default).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Execution providers to try in order (tensorrt, cuda, cpu); the one that runs is
    /// reported.
    #[arg(long, value_delimiter = ',', default_value = "tensorrt,cuda,cpu")]
    providers: Vec<String>,
}

pub fn exec(a: Args) -> Result<(), CliError> {
    if let Some(p) = &a.html {
        engine::view::check_output("--html", p)?;
    }
    let dir = a.model.dir()?;
    let opts = engine::EngineOptions {
        threads: a.threads,
        providers: a
            .providers
            .iter()
            .map(|p| engine::Provider::parse(p))
            .collect::<infogravity::Result<_>>()?,
        ..Default::default()
    };
    let mut eng = engine::Engine::load(&dir, &opts)?;
    report_provider(&eng);
    // The user text's tokens are the query of M(Q) (N_KL against the shipped Prior).
    let mut prompts = vec![];
    for user in &a.prompt {
        let (ids, start, end) = engine::prompt_with_span(&eng, a.system.as_deref(), user, "")?;
        prompts.push((ids, start..end));
    }
    // Row r = prompt r / samples, seed seed + r.
    let (rows, query_spans): (Vec<Vec<u32>>, Vec<std::ops::Range<usize>>) = prompts
        .iter()
        .flat_map(|p| std::iter::repeat_n(p.clone(), a.samples as usize))
        .unzip();
    let gen_opts = engine::GenerateOptions {
        max_tokens: a.max_tokens,
        seed: a.seed,
        anchors: a.anchor.clone(),
        critical_temperature: a.tstar,
        query_spans,
        ..Default::default()
    };
    let prior = shipped_prior(eng.lm.info().vocab)?;
    let config = |preset: &str| {
        let mut v = serde_json::json!({ "preset": preset });
        if let Some(t) = a.temperature {
            v["temperature"] = serde_json::json!({ "base": t });
        }
        v.to_string()
    };
    let mut out = std::io::stdout().lock();
    let mut runs = vec![("gravity", config(&a.preset))];
    if a.compare {
        runs.insert(0, ("plain", config("neutral")));
    }
    let single = rows.len() == 1;
    let plugin = a
        .plugin
        .as_deref()
        .map(infogravity::Plugin::load)
        .transpose()?;
    let mut views = vec![];
    for (label, json) in runs {
        let mut p = engine::processor_for(&eng, &json)?;
        p.set_prior(prior.clone())?;
        if let Some(plugin) = &plugin {
            p.push_pre(Box::new(
                plugin.instance(a.plugin_config.as_deref(), p.vocab())?,
            ));
        }
        if a.compare {
            writeln!(
                out,
                "── {label} ({})",
                if label == "plain" {
                    "neutral"
                } else {
                    &a.preset
                }
            )?;
        }
        let mut werr = None;
        let started = std::time::Instant::now();
        // One sequence streams; a batch prints each answer when the batch is done.
        let gens = eng.generate_batch(&mut p, &rows, &gen_opts, |_, piece, _| {
            if single
                && werr.is_none()
                && let Err(e) = write!(out, "{piece}").and_then(|_| out.flush())
            {
                werr = Some(e);
            }
        })?;
        if let Some(e) = werr {
            return Err(e.into());
        }
        let secs = started.elapsed().as_secs_f64();
        for (r, g) in gens.iter().enumerate() {
            let tag = if single {
                String::new()
            } else {
                let (pi, si) = (r / a.samples as usize, r % a.samples as usize);
                format!(
                    "[prompt {} sample {} seed {}] ",
                    pi + 1,
                    si + 1,
                    a.seed + r as u64
                )
            };
            if single {
                writeln!(out)?;
            } else {
                writeln!(out, "{tag}{}", g.text)?;
            }
            writeln!(out, "{tag}[{} tokens, stop: {}]", g.tokens.len(), g.stop)?;
            diagnostics(&mut out, &eng, a.diagnostics, label, r, g)?;
        }
        timings(&mut out, &gens, secs)?;
        if a.html.is_some() {
            let preset = if label == "plain" {
                "neutral"
            } else {
                &a.preset
            };
            let seqs = (gens.iter().enumerate())
                .map(|(r, g)| {
                    let prompt = r / a.samples as usize;
                    engine::view::tokens::SeqView::from_generation(
                        &eng,
                        prompt,
                        a.seed + r as u64,
                        g,
                    )
                })
                .collect::<infogravity::Result<Vec<_>>>()?;
            views.push(engine::view::tokens::RunView::new(
                label,
                preset,
                p.config(),
                seqs,
            ));
        }
    }
    if let Some(path) = &a.html {
        let view = engine::view::tokens::TokenView {
            title: format!("infogravity generate: {}", a.prompt.join(" · ")),
            model: eng.lm.info().describe(),
            prompts: a.prompt.clone(),
            runs: views,
        };
        engine::view::write_atomic(path, view.html(eng.lm.info().vocab)?.as_bytes())?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

/// On stderr: the model and the execution provider that runs it, with why the ones tried
/// before it were unavailable.
fn report_provider(eng: &engine::Engine) {
    let skipped: Vec<String> = eng
        .lm
        .fallbacks()
        .iter()
        .map(|(p, why)| {
            format!(
                "{} unavailable: {}",
                p.name(),
                why.lines().next().unwrap_or("").trim_end_matches('.')
            )
        })
        .collect();
    eprintln!(
        "model {} on the {} execution provider{}",
        eng.lm.info().source,
        eng.lm.provider().name(),
        if skipped.is_empty() {
            String::new()
        } else {
            format!(" ({})", skipped.join("; "))
        }
    );
}

/// The timing line of one run: the whole batch's throughput, and the model's and the
/// processor's time per step.
fn timings(out: &mut impl Write, gens: &[engine::Generation], secs: f64) -> Result<(), CliError> {
    let tokens: usize = gens.iter().map(|g| g.reports.len()).sum();
    let prompt_tokens: usize = gens.iter().map(|g| g.prompt_tokens).sum();
    let g = &gens[0];
    let steps = gens.iter().map(|g| g.reports.len()).max().unwrap_or(0);
    let decode_steps = steps.saturating_sub(1).max(1) as f64;
    let n = steps.max(1) as f64;
    writeln!(
        out,
        "[{} sequence{}: {:.1} tokens/s; prefill {} tokens at {:.0} tokens/s; model {:.2} ms/step, processor {:.1} µs/step ({:.2}% of the model)]",
        gens.len(),
        if gens.len() == 1 { "" } else { "s" },
        tokens as f64 / secs,
        prompt_tokens,
        prompt_tokens as f64 / g.prefill.as_secs_f64(),
        g.model.as_secs_f64() * 1e3 / decode_steps,
        g.processor.as_secs_f64() * 1e6 / n,
        100.0 * (g.processor.as_secs_f64() / n) / (g.model.as_secs_f64() / decode_steps)
    )?;
    Ok(())
}
