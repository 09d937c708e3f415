//! `infogravity`: the command-line front end.
//!
//! - `infogravity demo` runs the gravity processor over an embedded decoding trace and prints
//!   what it sees and does at every step (the main job on an embedded default, until the
//!   reference engine lands).
//! - `infogravity bench` times the field kernel, the full step and batches at real vocabulary
//!   sizes, beside the floor kernel of the same run.

use std::io::Write;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use infogravity::{Config, GravityProcessor, Regime, SeqParams, StepMode, field};
use infogravity_engine::{self as engine, bench};

#[derive(Parser)]
#[command(
    name = "infogravity",
    version,
    about = "Gravity-aware sampling middleware for LLM inference engines"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

/// Where an evaluation part writes and which model it runs.
#[derive(clap::Args, Clone)]
struct EvalRun {
    /// Output directory: the part's reports (see docs/EVALUATION.md) and its raw records
    /// (`<part>.jsonl`; an interrupted run resumes from them).
    #[arg(long, default_value = "eval-out")]
    out: std::path::PathBuf,
    /// Model directory (default: SmolLM2-135M-Instruct, set up on first use).
    #[arg(long)]
    model: Option<std::path::PathBuf>,
}

#[derive(Subcommand)]
enum EvalCmd {
    /// Closed-book QA: does the void score predict wrong answers? Answers every item of the
    /// bank greedily with its answer stem, grades it, fits calibrated void weights on a
    /// training split and reports AUROC, risk–coverage and Kalai scores on the held-out split.
    Qa {
        /// Only N items, evenly spaced over the bank (a smoke run).
        #[arg(long)]
        limit: Option<usize>,
        /// The item bank (JSON lines, see tools/build_qa_bank.py).
        #[arg(long, default_value = "eval/qa_bank.jsonl")]
        bank: std::path::PathBuf,
        /// Bootstrap resamples for the intervals.
        #[arg(long, default_value_t = 2000)]
        resamples: usize,
        #[command(flatten)]
        run: EvalRun,
    },
    /// Black holes: open-ended prompts decoded greedily, with a repetition stop, with DRY and
    /// with the escape intervention; loop rate, distinct-2/3, model log-likelihood.
    Loops {
        /// Only N prompts, evenly spaced (a smoke run).
        #[arg(long)]
        limit: Option<usize>,
        /// One prompt per line.
        #[arg(long, default_value = "eval/open_prompts.txt")]
        prompts: std::path::PathBuf,
        /// Tokens per generation.
        #[arg(long, default_value_t = 160)]
        max_tokens: usize,
        /// Prompts decoded together in one batch.
        #[arg(long, default_value_t = 20)]
        batch: usize,
        #[command(flatten)]
        run: EvalRun,
    },
    /// Adaptive temperature at a matched mean T: fixed, EDT, dynatemp and the gravity
    /// temperature in each direction; accuracy on the QA bank, diversity (distinct-2, self-BLEU)
    /// on the open-ended prompts.
    Temperature {
        /// Only N QA items, evenly spaced.
        #[arg(long)]
        limit: Option<usize>,
        /// Only N open-ended prompts, evenly spaced.
        #[arg(long)]
        open_limit: Option<usize>,
        /// The mean temperature every rule is matched to.
        #[arg(long, default_value_t = 0.7)]
        target: f64,
        /// Tokens per open-ended sample.
        #[arg(long, default_value_t = 64)]
        open_tokens: usize,
        #[arg(long, default_value = "eval/qa_bank.jsonl")]
        bank: std::path::PathBuf,
        #[arg(long, default_value = "eval/open_prompts.txt")]
        prompts: std::path::PathBuf,
        #[arg(long, default_value_t = 2000)]
        resamples: usize,
        /// Calibration whose M(Q) standardisation the gravity rules use (written by `eval qa`).
        #[arg(long, default_value = "docs/eval/calibration.json")]
        calibration: std::path::PathBuf,
        #[command(flatten)]
        run: EvalRun,
    },
    /// Temperature phase scan: answers sampled on a log grid of temperatures over [0.02, 4];
    /// heat capacity and T*, accuracy per temperature, the dissimilarity indicator of arXiv
    /// 2405.17088, and whether T* predicts where each item's accuracy collapses.
    Phase {
        /// Only N QA items, evenly spaced (default 96).
        #[arg(long, default_value_t = 96)]
        limit: usize,
        /// Samples per item and temperature.
        #[arg(long, default_value_t = 4)]
        samples: usize,
        /// Grid points.
        #[arg(long, default_value_t = 16)]
        grid: usize,
        /// Samples per temperature for the few items the per-item indicator is drawn for.
        #[arg(long, default_value_t = 32)]
        few_samples: usize,
        #[arg(long, default_value = "eval/qa_bank.jsonl")]
        bank: std::path::PathBuf,
        #[arg(long, default_value_t = 2000)]
        resamples: usize,
        #[command(flatten)]
        run: EvalRun,
    },
    /// Prompt sensitivity: every QA item in its bank wording and three rewordings; does low
    /// field stability S predict that the greedy answer changes?
    Sensitivity {
        /// Only N QA items, evenly spaced.
        #[arg(long)]
        limit: Option<usize>,
        #[arg(long, default_value = "eval/qa_bank.jsonl")]
        bank: std::path::PathBuf,
        #[arg(long, default_value_t = 2000)]
        resamples: usize,
        #[command(flatten)]
        run: EvalRun,
    },
    /// Every part in turn with its defaults (qa, loops, temperature with the calibration qa
    /// just wrote, phase, sensitivity): about 75 minutes on a 2-core machine; each part resumes.
    All {
        #[command(flatten)]
        run: EvalRun,
    },
}

#[derive(Subcommand)]
enum PriorCmd {
    /// Count a tokenizer's tokens over text files into a Prior file (format: src/mass/prior.rs).
    Build {
        /// tokenizer.json of the model the Prior is for.
        #[arg(long)]
        tokenizer: std::path::PathBuf,
        /// Output file.
        #[arg(long)]
        out: std::path::PathBuf,
        /// Where the text comes from (stored in the file; default: the file names and sizes).
        #[arg(long)]
        provenance: Option<String>,
        /// UTF-8 text files ("-" for standard input).
        #[arg(required = true)]
        files: Vec<std::path::PathBuf>,
    },
    /// Print a Prior file's header and most frequent tokens.
    Show {
        file: std::path::PathBuf,
        /// tokenizer.json to print token texts.
        #[arg(long)]
        tokenizer: Option<std::path::PathBuf>,
    },
}

#[derive(Subcommand)]
enum Cmd {
    /// Generate an answer with the gravity processor in the loop (the reference engine).
    ///
    /// With no --model, uses SmolLM2-135M-Instruct from the cache, setting it up first
    /// (scripts/setup-engine.sh --real) when it is missing.
    Generate(GenArgs),
    /// Query information mass M(Q) and its components H, D, N for a prompt (and context).
    Mass {
        /// The query (the user's question).
        query: String,
        /// Context placed before the query; D(Q) = KL(p(·|C⊕Q) ‖ p(·|Q)) at the answer position.
        #[arg(long)]
        context: Option<String>,
        /// Answer stem prefilled after the assistant prompt (e.g. "The capital of France is"):
        /// the answer position is after it.
        #[arg(long, default_value = "")]
        stem: String,
        /// A Prior file for N_KL (default: priors/smollm2-135m-kjv.prior, built in, when the
        /// model's vocabulary matches it).
        #[arg(long)]
        prior: Option<std::path::PathBuf>,
        /// Model directory (default: SmolLM2-135M-Instruct from the cache, set up if missing).
        #[arg(long)]
        model: Option<std::path::PathBuf>,
        /// Also measure the information conductivity of the greedy answer against this
        /// content-free query (e.g. "N/A"): σ, ρ and the canned-answer score B.
        #[arg(long)]
        conductivity: Option<String>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Temperature phase scan (seed 004) of the next-token field at the answer position: entropy,
    /// heat capacity and Jensen–Shannon distance between neighbouring temperatures on a log grid;
    /// peaks are reported as critical temperatures. Writes CSV and an SVG plot.
    Scan {
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
        csv: std::path::PathBuf,
        /// SVG plot output.
        #[arg(long, default_value = "scan.svg")]
        svg: std::path::PathBuf,
        /// Model directory (default: SmolLM2-135M-Instruct, set up if missing).
        #[arg(long)]
        model: Option<std::path::PathBuf>,
    },
    /// Prompt sensitivity (seed 000 §2.2): the next-token field of a query against paraphrases —
    /// JS distance, ΔΦ of the top tokens, and the field stability S = 1 − mean JSD / ln 2.
    Sensitivity {
        /// The query.
        query: String,
        /// A rewording of it (repeatable, at least one).
        #[arg(long = "paraphrase", required = true)]
        paraphrases: Vec<String>,
        /// Answer stem prefilled after the assistant prompt.
        #[arg(long, default_value = "")]
        stem: String,
        /// Model directory (default: SmolLM2-135M-Instruct, set up if missing).
        #[arg(long)]
        model: Option<std::path::PathBuf>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Reference unigram Priors (for N(Q)).
    Prior {
        #[command(subcommand)]
        cmd: PriorCmd,
    },
    /// The evaluation on the real model (docs/EVALUATION.md); resumes where it stopped.
    Eval {
        #[command(subcommand)]
        cmd: EvalCmd,
    },
    /// Run the processor over an embedded decoding trace and print per-step diagnostics.
    Demo {
        /// Preset: neutral, balanced, factual or creative.
        #[arg(long, default_value = "balanced")]
        preset: String,
        /// Sampling seed.
        #[arg(long, default_value_t = 7)]
        seed: u64,
        /// Print one JSON object per step instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Time measure / full step / batch against the floor kernel at real vocabulary sizes.
    Bench {
        /// One JSON object per line per case (case, vocab, batch, threads, median_ns,
        /// floor_median_ns, …) instead of a table.
        #[arg(long)]
        json: bool,
        /// Vocabulary sizes (default: 32000, 128256, 151936, 262144).
        #[arg(long, value_delimiter = ',')]
        vocab: Vec<usize>,
        /// Timed calls per single-row case.
        #[arg(long, default_value_t = 400)]
        iters: usize,
        /// Rows per batch.
        #[arg(long, default_value_t = 64)]
        batch: usize,
        /// Preset of the step and batch cases.
        #[arg(long, default_value = "balanced")]
        preset: String,
        /// Few iterations (a smoke run).
        #[arg(long)]
        quick: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let r = match cli.cmd {
        Cmd::Scan {
            prompt,
            stem,
            points,
            lo,
            hi,
            csv,
            svg,
            model,
        } => scan_cmd(&prompt, &stem, points, lo, hi, &csv, &svg, model),
        Cmd::Sensitivity {
            query,
            paraphrases,
            stem,
            model,
            json,
        } => sensitivity_cmd(&query, &paraphrases, &stem, model, json),
        Cmd::Prior { cmd } => prior_cmd(cmd),
        Cmd::Eval { cmd } => eval_cmd(cmd),
        Cmd::Mass {
            query,
            context,
            stem,
            prior,
            model,
            conductivity,
            json,
        } => mass_cmd(
            &query,
            context.as_deref(),
            &stem,
            prior,
            model,
            conductivity.as_deref(),
            json,
        ),
        Cmd::Generate(a) => generate(a),
        Cmd::Demo { preset, seed, json } => demo(&preset, seed, json),
        Cmd::Bench {
            json,
            vocab,
            iters,
            batch,
            preset,
            quick,
        } => bench_cmd(json, vocab, iters, batch, preset, quick),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        // The reader went away (`| head`): not an error.
        Err(CliError::Io(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// What a subcommand can fail with.
#[derive(Debug)]
enum CliError {
    Ig(infogravity::Error),
    Io(std::io::Error),
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CliError::Ig(e) => e.fmt(f),
            CliError::Io(e) => write!(f, "writing output: {e}"),
        }
    }
}

impl From<infogravity::Error> for CliError {
    fn from(e: infogravity::Error) -> Self {
        CliError::Ig(e)
    }
}

impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> Self {
        CliError::Io(e)
    }
}

/// The embedded trace: logits of a 48-step decode over a 32,000-token vocabulary in three
/// phases — confident text (peaked rows), a weakly supported stretch (flat rows: the void),
/// and a collapse into a repeated 3-token phrase (the black hole).
fn trace_row(step: usize, v: usize, rng: &mut infogravity::sampler::Rng) -> Vec<f32> {
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

fn demo(preset: &str, seed: u64, json: bool) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    let v = 32_000;
    let cfg = Config::from_json(&format!(r#"{{"preset":"{preset}"}}"#))?;
    let mut p = GravityProcessor::new(cfg, v)?;
    // Anchor tokens stand for the host's grounding text (e.g. retrieved context).
    let anchors = [100u32, 117, 134, 151];
    let mass = p.begin(
        1,
        &SeqParams {
            seed,
            anchors: &anchors,
            query: infogravity::QueryInput {
                context_gain: Some(1.2),
                ..Default::default()
            },
        },
    )?;
    let mut rng = infogravity::sampler::Rng::new(2024);
    if !json {
        writeln!(
            out,
            "infogravity demo: preset {preset}, V = {v}, kernel {}, M(Q) = {:.3} (D = 1.2 nats only)",
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
    for step in 0..48 {
        let mut row = trace_row(step, v, &mut rng);
        let r = p.step(1, &mut row, StepMode::Sample)?;
        let tok = r.token.unwrap_or(0);
        p.accept(1, tok)?;
        counts[r.regime as usize] += 1;
        let mut iv = vec![];
        for (bit, name) in [
            (infogravity::flags::ANCHOR, "anchor"),
            (infogravity::flags::KICK, "kick"),
            (infogravity::flags::CYCLE_PENALTY, "cycle-penalty"),
            (infogravity::flags::ABSTAIN, "abstain"),
        ] {
            if r.flags & bit != 0 {
                iv.push(name);
            }
        }
        let regime = match r.regime {
            Regime::Orbit => "orbit",
            Regime::Void => "void",
            Regime::BlackHole => "black-hole",
        };
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

fn bench_cmd(
    json: bool,
    vocab: Vec<usize>,
    iters: usize,
    batch: usize,
    preset: String,
    quick: bool,
) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    let plan = bench::Plan {
        vocabs: if vocab.is_empty() {
            bench::VOCABS.to_vec()
        } else {
            vocab
        },
        iters: if quick { 20 } else { iters.max(5) },
        batch: if quick { batch.min(8) } else { batch.max(1) },
        preset,
    };
    if plan.vocabs.contains(&0) {
        return Err(infogravity::Error::InvalidArgument("--vocab must be ≥ 1".into()).into());
    }
    if !json {
        writeln!(
            out,
            "kernel {}; medians of {} calls ({} per batch case); preset {}",
            field::kernel_name(),
            plan.iters,
            (plan.iters / 8).max(5),
            plan.preset
        )?;
        writeln!(
            out,
            "{:<8} {:>7} {:>5} {:>7} {:>12} {:>12} {:>9} {:>10}",
            "case", "vocab", "batch", "threads", "median µs", "floor µs", "÷ floor", "2nd pass"
        )?;
    }
    let mut last_batch_1 = None;
    let mut failed: Option<std::io::Error> = None;
    bench::run(&plan, |c| {
        if failed.is_some() {
            return;
        }
        let r = (|| -> std::io::Result<()> {
            if json {
                writeln!(out, "{}", c.to_json())?;
            } else {
                let extra = if c.case == "batch" && c.threads == 2 {
                    last_batch_1
                        .map(|t1: f64| format!("  ({:.2}× vs 1 thread)", t1 / c.median_ns))
                        .unwrap_or_default()
                } else {
                    String::new()
                };
                writeln!(
                    out,
                    "{:<8} {:>7} {:>5} {:>7} {:>12.1} {:>12.1} {:>9.3} {:>9.1}%{extra}",
                    c.case,
                    c.vocab,
                    c.batch,
                    c.threads,
                    c.median_ns / 1e3,
                    c.floor_median_ns / 1e3,
                    c.median_ns / c.floor_median_ns,
                    c.full_pass_rate * 100.0
                )?;
            }
            Ok(())
        })();
        if let Err(e) = r {
            failed = Some(e);
        }
        if c.case == "batch" && c.threads == 1 {
            last_batch_1 = Some(c.median_ns);
        }
    })?;
    failed.map_or(Ok(()), |e| Err(e.into()))
}

/// The flags of `generate`.
#[derive(clap::Args)]
struct GenArgs {
    /// The user message; several run as one batch.
    #[arg(default_value = "What is the capital of France?")]
    prompt: Vec<String>,
    /// Sequences per prompt (seeds seed, seed+1, …), all in one batch with the prompts.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    samples: u32,
    /// Model directory (model.onnx, model.json, tokenizer.json).
    #[arg(long)]
    model: Option<std::path::PathBuf>,
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
    #[arg(long, value_parser = ["table", "jsonl", "none"], default_value = "table")]
    diagnostics: String,
    /// Also run plain sampling (neutral preset, same temperature and seed) for comparison.
    #[arg(long)]
    compare: bool,
    /// Add each token's critical temperature T* (argmax of the heat capacity over [0.02, 4])
    /// and the phase distance ln(T/T*) to the diagnostics. Costs about 90 passes over the
    /// vocabulary per token (~2 ms per token for SmolLM2 on a 2-core CPU, ~6% of its decode
    /// step).
    #[arg(long)]
    tstar: bool,
    /// ORT intra-op threads (0 = ORT's default).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Execution providers to try in order (tensorrt, cuda, cpu); the one that runs is
    /// reported.
    #[arg(long, value_delimiter = ',', default_value = "tensorrt,cuda,cpu")]
    providers: Vec<String>,
}

/// `--model`, or the default model (set up on first use).
fn model_dir(model: Option<std::path::PathBuf>) -> Result<std::path::PathBuf, CliError> {
    match model {
        Some(d) => Ok(d),
        None => default_model(),
    }
}

/// The default model, set up on first use when the setup script is at hand.
fn default_model() -> Result<std::path::PathBuf, CliError> {
    let dir = engine::cache_dir().join("models/smollm2-135m-instruct");
    if dir.join("model.onnx").exists() && engine::ort_library(None).exists() {
        return Ok(dir);
    }
    let script = std::path::Path::new("scripts/setup-engine.sh");
    if !script.exists() {
        return Err(infogravity::Error::Engine(format!(
            "no model at {}: run scripts/setup-engine.sh --real from the infogravity repository, \
             or pass --model DIR",
            dir.display()
        ))
        .into());
    }
    eprintln!("setting up the engine (ONNX Runtime, SmolLM2-135M-Instruct → ONNX); once only…");
    let ok = std::process::Command::new("bash")
        .arg(script)
        .arg("--real")
        .status()
        .map_err(CliError::Io)?
        .success();
    if !ok {
        return Err(
            infogravity::Error::Engine("scripts/setup-engine.sh --real failed".into()).into(),
        );
    }
    Ok(dir)
}

fn generate(a: GenArgs) -> Result<(), CliError> {
    let dir = model_dir(a.model.clone())?;
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
    let skipped: Vec<String> = eng
        .lm
        .fallbacks()
        .iter()
        .map(|(p, why)| {
            format!(
                "{} unavailable: {}",
                p.name(),
                why.lines().next().unwrap_or("")
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
    for (label, json) in runs {
        let mut p = engine::processor_for(&eng, &json)?;
        p.set_prior(prior.clone())?;
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
            diagnostics(&mut out, &eng, &a.diagnostics, label, r, g)?;
        }
        // Timings are the whole batch's.
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
    }
    Ok(())
}

/// Per-token diagnostics of one generated sequence (`row` of run `label`).
fn diagnostics(
    out: &mut impl Write,
    eng: &engine::Engine,
    format: &str,
    label: &str,
    row: usize,
    g: &engine::Generation,
) -> Result<(), CliError> {
    let piece = |r: &infogravity::StepReport| {
        r.token
            .map(|t| eng.decode(&[t]).unwrap_or_default())
            .unwrap_or_default()
    };
    let tstar = |i: usize| g.t_star.get(i).copied();
    match format {
        "table" => {
            write!(
                out,
                "{:>4} {:>14} {:>6} {:>6} {:>6} {:>6} {:>10} {:>6} {:>6}",
                "step", "token", "H", "p_max", "T", "Φ", "regime", "void", "bh"
            )?;
            if !g.t_star.is_empty() {
                write!(out, " {:>6} {:>8}", "T*", "ln T/T*")?;
            }
            writeln!(out, "  interventions")?;
            for (i, r) in g.reports.iter().enumerate() {
                write!(
                    out,
                    "{i:>4} {:>14} {:>6.3} {:>6.3} {:>6.3} {:>6.2} {:>10} {:>6.3} {:>6.3}",
                    format!("{:?}", piece(r)),
                    r.entropy,
                    r.p_max,
                    r.temperature,
                    r.token_potential,
                    regime_name(r.regime),
                    r.void_score,
                    r.black_hole_score,
                )?;
                if let Some(ts) = tstar(i) {
                    write!(out, " {ts:>6.3} {:>8.3}", (r.temperature / ts).ln())?;
                }
                writeln!(out, "  {}", flag_names(r.flags).join(","))?;
            }
        }
        "jsonl" => {
            for (i, r) in g.reports.iter().enumerate() {
                let mut j = serde_json::json!({
                    "run": label, "row": row, "step": i, "token": r.token,
                    "text": r.token.map(|_| piece(r)),
                    "entropy": r.entropy, "varentropy": r.varentropy, "p_max": r.p_max,
                    "temperature": r.temperature, "potential": r.token_potential,
                    "regime": regime_name(r.regime), "void_score": r.void_score,
                    "black_hole_score": r.black_hole_score,
                    "interventions": flag_names(r.flags),
                });
                if let Some(ts) = tstar(i) {
                    j["t_star"] = serde_json::json!(ts);
                    j["phase_distance"] = serde_json::json!((r.temperature / ts).ln());
                }
                writeln!(out, "{j}")?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// A progress bar on stderr (drawn only when stderr is a terminal).
fn progress(len: u64, unit: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(len);
    bar.set_style(
        indicatif::ProgressStyle::with_template(&format!(
            "{{bar:40}} {{pos}}/{{len}} {unit} [{{elapsed_precise}}, eta {{eta}}] {{msg}}"
        ))
        .expect("a valid template"),
    );
    bar
}

fn regime_name(r: Regime) -> &'static str {
    match r {
        Regime::Orbit => "orbit",
        Regime::Void => "void",
        Regime::BlackHole => "black-hole",
    }
}

fn flag_names(f: u32) -> Vec<&'static str> {
    [
        (infogravity::flags::ANCHOR, "anchor"),
        (infogravity::flags::KICK, "kick"),
        (infogravity::flags::CYCLE_PENALTY, "cycle-penalty"),
        (infogravity::flags::ABSTAIN, "abstain"),
        (infogravity::flags::FORCED, "forced"),
    ]
    .into_iter()
    .filter(|(b, _)| f & b != 0)
    .map(|(_, n)| n)
    .collect()
}

/// The Prior shipped for SmolLM2 (priors/README.md), when its vocabulary is `vocab`.
fn shipped_prior(vocab: usize) -> Result<Option<infogravity::Prior>, CliError> {
    const SHIPPED: &[u8] = include_bytes!("../../../priors/smollm2-135m-kjv.prior");
    Ok(Some(infogravity::Prior::from_bytes(SHIPPED)?).filter(|p| p.vocab() == vocab))
}

/// At most `limit` of `items`, evenly spaced.
fn evenly<T: Clone>(items: Vec<T>, limit: Option<usize>) -> Vec<T> {
    match limit.filter(|&n| n < items.len()) {
        Some(n) => (0..n).map(|k| items[k * items.len() / n].clone()).collect(),
        None => items,
    }
}

/// One prompt per non-empty line.
fn read_prompts(path: &std::path::Path) -> Result<Vec<String>, CliError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| infogravity::Error::Io(format!("{}: {e}", path.display())))?;
    Ok(text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect())
}

/// Write `name`.md and `name`.json into `out`.
fn write_report(
    out: &std::path::Path,
    name: &str,
    md: &str,
    json: &serde_json::Value,
) -> Result<(), CliError> {
    std::fs::write(out.join(format!("{name}.md")), md).map_err(CliError::Io)?;
    std::fs::write(
        out.join(format!("{name}.json")),
        serde_json::to_string_pretty(json).expect("serialises"),
    )
    .map_err(CliError::Io)
}

/// The parts `eval all` runs, in order (temperature uses the calibration qa writes).
const EVAL_PARTS: [&str; 5] = ["qa", "loops", "temperature", "phase", "sensitivity"];

/// One part of `eval all`, parsed from its own command line so its defaults are the ones of
/// its subcommand.
fn eval_part(part: &str, out: &std::path::Path, model: Option<&std::path::Path>) -> EvalCmd {
    let mut args: Vec<std::ffi::OsString> = vec!["infogravity".into(), "eval".into(), part.into()];
    args.extend(["--out".into(), out.into()]);
    if let Some(m) = model {
        args.extend(["--model".into(), m.into()]);
    }
    if part == "temperature" {
        args.extend(["--calibration".into(), out.join("calibration.json").into()]);
    }
    match Cli::try_parse_from(args) {
        Ok(Cli {
            cmd: Cmd::Eval { cmd },
        }) => cmd,
        _ => unreachable!("eval {part} parses with its defaults"),
    }
}

fn eval_cmd(cmd: EvalCmd) -> Result<(), CliError> {
    use infogravity_engine::eval::{loops, qa, report};
    match cmd {
        EvalCmd::All {
            run: EvalRun { out, model },
        } => {
            for part in EVAL_PARTS {
                eprintln!("== eval {part}");
                eval_cmd(eval_part(part, &out, model.as_deref()))?;
            }
            Ok(())
        }
        EvalCmd::Loops {
            limit,
            run: EvalRun { out, model },
            prompts,
            max_tokens,
            batch,
        } => {
            let list = evenly(read_prompts(&prompts)?, limit);
            let dir = model_dir(model)?;
            let mut eng = engine::Engine::load(&dir, &Default::default())?;
            std::fs::create_dir_all(&out).map_err(CliError::Io)?;
            let bar = progress((loops::METHODS.len() * list.len()) as u64, "generations");
            let started = std::time::Instant::now();
            let records = loops::run_loops(
                &mut eng,
                &list,
                max_tokens,
                batch,
                &out.join("loops.jsonl"),
                |done, _| bar.set_position(done as u64),
            )?;
            bar.finish_and_clear();
            let (md, json) = loops::report(&records);
            write_report(&out, "loops", &md, &json)?;
            let mut o = std::io::stdout().lock();
            writeln!(o, "{md}")?;
            writeln!(
                o,
                "{} prompts, {max_tokens} tokens each, in {:.0} s; wrote {}",
                list.len(),
                started.elapsed().as_secs_f64(),
                out.display()
            )?;
            Ok(())
        }
        EvalCmd::Phase {
            limit,
            samples,
            grid,
            few_samples,
            run: EvalRun { out, model },
            bank,
            resamples,
        } => {
            use infogravity_engine::eval::phase;
            let items = evenly(qa::load_bank(&bank)?, Some(limit));
            let dir = model_dir(model)?;
            let mut eng = engine::Engine::load(&dir, &Default::default())?;
            std::fs::create_dir_all(&out).map_err(CliError::Io)?;
            let o = phase::Options {
                samples: samples.max(1),
                few_samples: few_samples.max(1),
                grid: grid.max(2 * phase::Options::default().window),
                ..Default::default()
            };
            let rows = (items.len() * o.samples + o.few.min(items.len()) * o.few_samples) * o.grid;
            let bar = progress(rows as u64, "samples");
            let started = std::time::Instant::now();
            let records = phase::run(&mut eng, &items, None, &o, &out, |done, _| {
                bar.set_position(done as u64)
            })?;
            bar.finish_and_clear();
            let rep = phase::report(&records, &o, resamples);
            write_report(&out, "phase", &rep.markdown, &rep.json)?;
            for (name, svg) in &rep.svgs {
                std::fs::write(out.join(name), svg).map_err(CliError::Io)?;
            }
            writeln!(
                std::io::stdout().lock(),
                "{}\n{} answers in {:.0} s; wrote {}",
                rep.markdown,
                records.len(),
                started.elapsed().as_secs_f64(),
                out.display()
            )?;
            Ok(())
        }
        EvalCmd::Sensitivity {
            limit,
            run: EvalRun { out, model },
            bank,
            resamples,
        } => {
            use infogravity_engine::eval::sensitivity;
            let items = evenly(qa::load_bank(&bank)?, limit);
            let dir = model_dir(model)?;
            let mut eng = engine::Engine::load(&dir, &Default::default())?;
            std::fs::create_dir_all(&out).map_err(CliError::Io)?;
            let bar = progress(items.len() as u64, "items");
            let started = std::time::Instant::now();
            let records = sensitivity::run(&mut eng, &items, 12, 32, &out, |done, _| {
                bar.set_position(done as u64)
            })?;
            bar.finish_and_clear();
            let (md, json) = sensitivity::report(&records, resamples);
            write_report(&out, "sensitivity", &md, &json)?;
            writeln!(
                std::io::stdout().lock(),
                "{md}\n{} items in {:.0} s; wrote {}",
                records.len(),
                started.elapsed().as_secs_f64(),
                out.display()
            )?;
            Ok(())
        }
        EvalCmd::Temperature {
            limit,
            open_limit,
            target,
            open_tokens,
            run: EvalRun { out, model },
            bank,
            prompts,
            resamples,
            calibration,
        } => {
            use infogravity_engine::eval::temperature;
            let calib = infogravity::Calibration::load(&calibration)?;
            let items = evenly(qa::load_bank(&bank)?, limit);
            let list = evenly(read_prompts(&prompts)?, open_limit);
            let dir = model_dir(model)?;
            let mut eng = engine::Engine::load(&dir, &Default::default())?;
            let prior = shipped_prior(eng.lm.info().vocab)?;
            std::fs::create_dir_all(&out).map_err(CliError::Io)?;
            let o = temperature::Options {
                target,
                open_tokens: open_tokens.max(1),
                ..Default::default()
            };
            let rows = (items.len() * o.qa_samples + list.len() * o.open_samples)
                * temperature::METHODS.len();
            let bar = progress(rows as u64, "samples");
            bar.set_message("matching the mean temperature on the pilot rows");
            let started = std::time::Instant::now();
            let (bases, records) = temperature::run(
                &mut eng,
                &items,
                &list,
                prior.as_ref(),
                Some(&calib),
                &o,
                &out,
                |done, _| {
                    bar.set_message("");
                    bar.set_position(done as u64)
                },
            )?;
            bar.finish_and_clear();
            let (md, json) = temperature::report(&bases, &records, &items, resamples);
            write_report(&out, "temperature", &md, &json)?;
            writeln!(
                std::io::stdout().lock(),
                "{md}\n{} items, {} prompts in {:.0} s; wrote {}",
                items.len(),
                list.len(),
                started.elapsed().as_secs_f64(),
                out.display()
            )?;
            Ok(())
        }
        EvalCmd::Qa {
            limit,
            run: EvalRun { out, model },
            bank,
            resamples,
        } => {
            let mut items = qa::load_bank(&bank)?;
            // Evenly spaced over the bank, so a smoke run covers both relations.
            items = evenly(items, limit);
            let dir = model_dir(model)?;
            let mut eng = engine::Engine::load(&dir, &Default::default())?;
            let prior = shipped_prior(eng.lm.info().vocab)?;
            std::fs::create_dir_all(&out).map_err(CliError::Io)?;
            let cfg = Config::default();
            let bar = progress(items.len() as u64, "items");
            let started = std::time::Instant::now();
            let records = qa::run_bank(
                &mut eng,
                &items,
                prior.as_ref(),
                &cfg.mass,
                &out.join("qa.jsonl"),
                |done, _| bar.set_position(done as u64),
            )?;
            bar.finish_and_clear();
            let provenance = format!(
                "infogravity {} eval qa: {} ({} items), model {}, training split by FNV-1a(subject) even",
                env!("CARGO_PKG_VERSION"),
                bank.display(),
                records.len(),
                eng.lm.info().source
            );
            let rep = report::analyse(&records, &cfg, &provenance, resamples);
            let write =
                |name: &str, text: &str| std::fs::write(out.join(name), text).map_err(CliError::Io);
            write("qa.md", &rep.markdown)?;
            write(
                "qa.json",
                &serde_json::to_string_pretty(&rep.json).expect("serialises"),
            )?;
            write("qa_risk_coverage.svg", &rep.svg)?;
            write("qa_audit.md", &rep.audit)?;
            if let Some(c) = &rep.calibration {
                write(
                    "calibration.json",
                    &serde_json::to_string_pretty(c).expect("serialises"),
                )?;
            }
            let mut o = std::io::stdout().lock();
            writeln!(o, "{}", rep.markdown)?;
            writeln!(
                o,
                "{} items in {:.0} s; wrote {}",
                records.len(),
                started.elapsed().as_secs_f64(),
                out.display()
            )?;
            Ok(())
        }
    }
}

fn mass_cmd(
    query: &str,
    context: Option<&str>,
    stem: &str,
    prior: Option<std::path::PathBuf>,
    model: Option<std::path::PathBuf>,
    null_query: Option<&str>,
    json: bool,
) -> Result<(), CliError> {
    let dir = model_dir(model)?;
    let mut eng = engine::Engine::load(&dir, &Default::default())?;
    let prior = match prior {
        Some(p) => Some(infogravity::Prior::load(&p)?),
        None => shipped_prior(eng.lm.info().vocab)?,
    };
    let cfg = Config::default();
    let q = engine::query_mass(
        &mut eng,
        query,
        context,
        stem,
        prior.as_ref(),
        &cfg.mass,
        None,
    )?;
    let cond = match null_query {
        Some(nq) => Some(engine::conductivity(&mut eng, query, nq, 48)?),
        None => None,
    };
    let mut out = std::io::stdout().lock();
    let f = |x: Option<f32>| x.map_or("null".to_string(), |v| format!("{v:.4}"));
    if json {
        let mut v = serde_json::json!({
            "m": q.m, "h": q.h, "h_prompt_mean": q.h_prompt_mean, "d": q.d,
            "n_kl": q.n_kl, "n_surprisal": q.n_surprisal,
        });
        if let Some(c) = &cond {
            v["conductivity"] = serde_json::json!({
                "answer": eng.decode(&c.answer)?, "sigma": c.sigma, "h_null": c.h_null,
                "rho": c.rho, "confidence": c.confidence, "canned": c.canned,
            });
        }
        writeln!(out, "{v}")?;
    } else {
        writeln!(
            out,
            "M(Q)          {}   (components min-max scaled; see `config` mass.*)",
            f(q.m)
        )?;
        writeln!(
            out,
            "H(Q)          {}   normalised entropy at the answer position",
            f(q.h)
        )?;
        writeln!(
            out,
            "H̄ prompt      {}   nats, mean over prompt positions",
            f(q.h_prompt_mean)
        )?;
        writeln!(
            out,
            "D(Q)          {}   nats, KL(p(·|C⊕Q) ‖ p(·|Q)){}",
            f(q.d),
            if context.is_none() {
                " (no context: 0)"
            } else {
                ""
            }
        )?;
        writeln!(
            out,
            "N_KL(Q)       {}   nats against the Prior{}",
            f(q.n_kl),
            if q.n_kl.is_none() {
                " (no Prior for this vocabulary)"
            } else {
                ""
            }
        )?;
        writeln!(
            out,
            "N surprisal   {}   nats/token of the query under the model",
            f(q.n_surprisal)
        )?;
        if let Some(c) = &cond {
            writeln!(out, "answer y      {:?}", eng.decode(&c.answer)?)?;
            writeln!(
                out,
                "σ             {:.4}   nats/token, (log p(y|Q) − log p(y|Q_null)) / L",
                c.sigma
            )?;
            writeln!(
                out,
                "ρ             {:.4}   σ / h_null (h_null = {:.4} nats)",
                c.rho, c.h_null
            )?;
            writeln!(
                out,
                "B (canned)    {:.4}   c̄·(1 − ρ), c̄ = {:.4}",
                c.canned, c.confidence
            )?;
        }
    }
    Ok(())
}

fn prior_cmd(cmd: PriorCmd) -> Result<(), CliError> {
    let load_tok = |p: &std::path::Path| {
        tokenizers::Tokenizer::from_file(p)
            .map_err(|e| infogravity::Error::Engine(format!("{}: {e}", p.display())))
    };
    let mut out = std::io::stdout().lock();
    match cmd {
        PriorCmd::Build {
            tokenizer,
            out: path,
            provenance,
            files,
        } => {
            let tok = load_tok(&tokenizer)?;
            let v = tok.get_vocab_size(true);
            let mut counts = vec![0u32; v];
            let mut described = vec![];
            let mut total = 0u64;
            let bytes = files
                .iter()
                .filter_map(|f| std::fs::metadata(f).ok())
                .map(|m| m.len())
                .sum();
            let bar = progress(bytes, "bytes");
            for f in &files {
                let text = if f.as_os_str() == "-" {
                    let mut s = String::new();
                    std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)?;
                    s
                } else {
                    std::fs::read_to_string(f)
                        .map_err(|e| infogravity::Error::Io(format!("{}: {e}", f.display())))?
                };
                described.push(format!("{} ({} bytes)", f.display(), text.len()));
                // Paragraph by paragraph: bounded memory, no tokens across blank lines.
                for para in text.split("\n\n") {
                    bar.inc(para.len() as u64 + 2);
                    if para.trim().is_empty() {
                        continue;
                    }
                    let enc = tok
                        .encode(para, false)
                        .map_err(|e| infogravity::Error::Engine(format!("tokenize: {e}")))?;
                    for &id in enc.get_ids() {
                        let c = &mut counts[id as usize];
                        *c = c.saturating_add(1);
                        total += 1;
                    }
                }
            }
            bar.finish_and_clear();
            let prov = provenance.unwrap_or_else(|| {
                format!(
                    "corpus: {}; tokenizer: {}; infogravity {} prior build",
                    described.join(", "),
                    tokenizer.display(),
                    infogravity::VERSION
                )
            });
            let prior = infogravity::Prior::from_counts(counts, &prov)?;
            prior.save(&path)?;
            writeln!(
                out,
                "wrote {}: {total} tokens over a vocabulary of {v}, {} distinct",
                path.display(),
                (0..v as u32).filter(|&i| prior.count(i) > 0).count()
            )?;
        }
        PriorCmd::Show { file, tokenizer } => {
            let p = infogravity::Prior::load(&file)?;
            writeln!(
                out,
                "{}: vocabulary {}, {} tokens",
                file.display(),
                p.vocab(),
                p.total()
            )?;
            writeln!(out, "provenance: {}", p.provenance())?;
            let tok = tokenizer.map(|t| load_tok(&t)).transpose()?;
            let mut ids: Vec<u32> = (0..p.vocab() as u32).collect();
            ids.sort_by_key(|&i| std::cmp::Reverse(p.count(i)));
            for &i in ids.iter().take(10) {
                let text = tok
                    .as_ref()
                    .and_then(|t| t.id_to_token(i))
                    .unwrap_or_default();
                writeln!(out, "{i:>7} {:>9} {text:?}", p.count(i))?;
            }
        }
    }
    Ok(())
}

/// The answer-position logits row for `user` (+ `stem`).
fn answer_row(eng: &mut engine::Engine, user: &str, stem: &str) -> Result<Vec<f32>, CliError> {
    let text = engine::render_chat(
        &eng.lm.info().chat_template,
        &[engine::Message::new("user", user)],
    ) + stem;
    let ids = eng.encode(&text)?;
    let (logits, _) = eng.prefill(&ids)?;
    let v = eng.lm.info().vocab;
    Ok(logits[logits.len() - v..].to_vec())
}

#[allow(clippy::too_many_arguments)] // one call site, the subcommand's flags
fn scan_cmd(
    prompt: &str,
    stem: &str,
    points: usize,
    lo: f64,
    hi: f64,
    csv: &std::path::Path,
    svg: &std::path::Path,
    model: Option<std::path::PathBuf>,
) -> Result<(), CliError> {
    use infogravity::field::thermo;
    if !(lo > 0.0 && hi > lo && (3..=1000).contains(&points)) {
        return Err(infogravity::Error::InvalidArgument(
            "need 0 < --lo < --hi and 3 ≤ --points ≤ 1000".into(),
        )
        .into());
    }
    let dir = model_dir(model)?;
    let mut eng = engine::Engine::load(&dir, &Default::default())?;
    let z = answer_row(&mut eng, prompt, stem)?;
    let grid = thermo::log_grid(lo, hi, points);
    // JS distance (√JSD) between neighbours per unit of ln T, attributed to their geometric mean.
    let step = (hi / lo).ln() / (points - 1) as f64;
    let rows: Vec<(f64, f64, f64, f64)> = grid
        .iter()
        .map(|&t| {
            let t2 = t * step.exp();
            let js = thermo::js_divergence(&z, t, &z, t2).sqrt() / step;
            (
                t,
                thermo::entropy_at(&z, t),
                thermo::heat_capacity(&z, t),
                js,
            )
        })
        .collect();
    let (t_star, c_star) = thermo::critical_temperature(&z, lo, hi);
    let peaks: Vec<f64> = (1..rows.len() - 2)
        .filter(|&i| rows[i].3 > rows[i - 1].3 && rows[i].3 >= rows[i + 1].3)
        .map(|i| (rows[i].0 * rows[i].0 * step.exp()).sqrt())
        .collect();
    let mut f = String::from("temperature,entropy_nats,heat_capacity,js_distance_per_lnT\n");
    for (t, h, c, js) in &rows[..rows.len() - 1] {
        f.push_str(&format!("{t:.6},{h:.6},{c:.6},{js:.6}\n"));
    }
    std::fs::write(csv, f).map_err(CliError::Io)?;
    std::fs::write(svg, scan_svg(&rows[..rows.len() - 1], t_star, prompt)).map_err(CliError::Io)?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{:>9} {:>9} {:>9} {:>11}",
        "T", "H nats", "C(T)", "JS/ln T"
    )?;
    for (t, h, c, js) in &rows[..rows.len() - 1] {
        writeln!(out, "{t:>9.4} {h:>9.4} {c:>9.4} {js:>11.4}")?;
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
    writeln!(out, "wrote {} and {}", csv.display(), svg.display())?;
    Ok(())
}

/// A small self-contained SVG: heat capacity and JS distance against log T.
fn scan_svg(rows: &[(f64, f64, f64, f64)], t_star: f64, title: &str) -> String {
    let (w, h, pad) = (720.0, 360.0, 48.0);
    let (t0, t1) = (rows[0].0.ln(), rows[rows.len() - 1].0.ln());
    let x = |t: f64| pad + (t.ln() - t0) / (t1 - t0) * (w - 2.0 * pad);
    let series = |pick: fn(&(f64, f64, f64, f64)) -> f64, color: &str| {
        let max = rows.iter().map(pick).fold(1e-12, f64::max);
        let pts: Vec<String> = rows
            .iter()
            .map(|r| {
                format!(
                    "{:.1},{:.1}",
                    x(r.0),
                    h - pad - pick(r) / max * (h - 2.0 * pad)
                )
            })
            .collect();
        format!(
            "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{}\"/>",
            pts.join(" ")
        )
    };
    let esc = title
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\
<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\
<text x=\"{pad}\" y=\"20\">Temperature scan: {esc}</text>\
<line x1=\"{pad}\" y1=\"{b}\" x2=\"{r}\" y2=\"{b}\" stroke=\"black\"/>\
<text x=\"{pad}\" y=\"{lb}\">T = {:.3}</text><text x=\"{lr}\" y=\"{lb}\">T = {:.3} (log scale)</text>\
{}{}\
<line x1=\"{xs:.1}\" y1=\"{pad}\" x2=\"{xs:.1}\" y2=\"{b}\" stroke=\"gray\" stroke-dasharray=\"4\"/>\
<text x=\"{xs:.1}\" y=\"{ts}\">T* = {t_star:.3}</text>\
<text x=\"{lr}\" y=\"36\" fill=\"#c0392b\">heat capacity C(T)</text>\
<text x=\"{lr}\" y=\"52\" fill=\"#2471a3\">JS distance / ln T</text></svg>\n",
        rows[0].0,
        rows[rows.len() - 1].0,
        series(|r| r.2, "#c0392b"),
        series(|r| r.3, "#2471a3"),
        b = h - pad,
        r = w - pad,
        lb = h - pad + 20.0,
        lr = w - pad - 170.0,
        xs = x(t_star.clamp(rows[0].0, rows[rows.len() - 1].0)),
        ts = pad - 6.0,
    )
}

fn sensitivity_cmd(
    query: &str,
    paraphrases: &[String],
    stem: &str,
    model: Option<std::path::PathBuf>,
    json: bool,
) -> Result<(), CliError> {
    use infogravity::field::{self as fld, thermo};
    let dir = model_dir(model)?;
    let mut eng = engine::Engine::load(&dir, &Default::default())?;
    let z = answer_row(&mut eng, query, stem)?;
    let f0 = fld::measure(&z).map_err(infogravity::Error::from)?;
    let mut top: Vec<u32> = (0..z.len() as u32).collect();
    top.sort_by(|&a, &b| z[b as usize].total_cmp(&z[a as usize]));
    top.truncate(5);
    let mut out = std::io::stdout().lock();
    let mut jsds = vec![];
    let mut items = vec![];
    for p in paraphrases {
        let zp = answer_row(&mut eng, p, stem)?;
        let fp = fld::measure(&zp).map_err(infogravity::Error::from)?;
        let jsd = thermo::js_divergence(&z, 1.0, &zp, 1.0);
        jsds.push(jsd);
        // ΔΦ(t) = Φ(t|Q') − Φ(t|Q) for Q's top tokens (seed eq. 11).
        let dphi: Vec<(String, f64)> = top
            .iter()
            .map(|&t| {
                let d = fp.potential(zp[t as usize]) - f0.potential(z[t as usize]);
                (eng.decode(&[t]).unwrap_or_default(), d)
            })
            .collect();
        items.push((p.clone(), jsd, dphi));
    }
    let s = 1.0 - jsds.iter().sum::<f64>() / jsds.len() as f64 / std::f64::consts::LN_2;
    if json {
        let v = serde_json::json!({
            "query": query,
            "stability": s,
            "paraphrases": items.iter().map(|(p, j, d)| serde_json::json!({
                "text": p, "jsd_nats": j, "js_distance": j.sqrt(),
                "delta_phi": d.iter().map(|(t, x)| serde_json::json!({"token": t, "delta_phi": x})).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        });
        writeln!(out, "{v}")?;
    } else {
        for (p, j, d) in &items {
            writeln!(
                out,
                "{p:?}\n  JSD {j:.4} nats (JS distance {:.4})",
                j.sqrt()
            )?;
            let parts: Vec<String> = d.iter().map(|(t, x)| format!("{t:?} {x:+.3}")).collect();
            writeln!(out, "  ΔΦ of the query's top tokens: {}", parts.join(", "))?;
        }
        writeln!(
            out,
            "field stability S = {s:.4}  (1 = the same field for every rewording)"
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eval_all_builds_every_part_with_its_defaults() {
        let out = std::path::Path::new("o");
        for part in EVAL_PARTS {
            let cmd = eval_part(part, out, Some(std::path::Path::new("m")));
            let run = match &cmd {
                EvalCmd::Qa { run, .. }
                | EvalCmd::Loops { run, .. }
                | EvalCmd::Phase { run, .. }
                | EvalCmd::Sensitivity { run, .. } => run,
                EvalCmd::Temperature {
                    run, calibration, ..
                } => {
                    assert_eq!(calibration, &out.join("calibration.json"));
                    run
                }
                EvalCmd::All { .. } => panic!("eval all runs no eval all"),
            };
            assert_eq!(run.out, out, "{part}");
            assert_eq!(
                run.model.as_deref(),
                Some(std::path::Path::new("m")),
                "{part}"
            );
        }
    }
}
