//! `infogravity eval`: the evaluation on the real model (docs/EVALUATION.md), one subcommand
//! per part and `all`. Every part runs in the same frame ([`run_part`]): its records are
//! appended to `<out>/<part>.jsonl` as they come (a rerun resumes), then its report is written
//! beside them and printed.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};
use indicatif::ProgressBar;
use infogravity::Config;
use infogravity_engine::Engine;
use infogravity_engine::eval::{concept, loops, phase, pmi, qa, report, sensitivity, temperature};

use crate::CliError;
use crate::args::{EvalRun, ModelArgs, shipped_prior};
use crate::output::progress;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    part: Part,
}

#[derive(Subcommand, Debug)]
enum Part {
    /// Closed-book QA: does the void score predict wrong answers? Answers every item of the
    /// bank greedily with its answer stem, grades it, fits calibrated void weights on a
    /// training split and reports AUROC, risk–coverage and Kalai scores on the held-out split.
    Qa(QaArgs),
    /// Black holes: open-ended prompts decoded greedily, with a repetition stop, with DRY and
    /// with the escape intervention; loop rate, distinct-2/3, model log-likelihood.
    Loops(LoopsArgs),
    /// Concept-direction anchoring: every QA item answered greedily, plainly, tilted toward its
    /// relation's answer-type direction in unembedding space (cross-fitted), and tilted toward
    /// a random direction of the same norm, each tilt bounded in KL; answer-type compliance and
    /// accuracy with paired intervals.
    Concept(ConceptArgs),
    /// Null-query PMI against attractor answers: every QA item answered greedily, plainly and
    /// with the processor's null-query contrast (the same prompt with its subject replaced by
    /// "N/A", run beside it until the answer's first content token); the attractor-answer rate
    /// and accuracy with paired intervals.
    Pmi(PmiArgs),
    /// Temperature rules swept over T0 under one truncation (top-nσ by default) on a mixed bank:
    /// fixed, EDT, dynatemp and the gravity temperature in each direction; QA accuracy against
    /// diversity (answer disagreement, open-ended 1 − self-BLEU) at matched diversity, and
    /// what the truncation keeps at the top of the sweep.
    Temperature(TemperatureArgs),
    /// Temperature phase scan: answers sampled on a log grid of temperatures over [0.02, 4];
    /// heat capacity and T*, accuracy per temperature, the dissimilarity indicator of arXiv
    /// 2405.17088, and whether T* predicts where each item's accuracy collapses.
    Phase(PhaseArgs),
    /// Prompt sensitivity: every QA item in its bank wording and three rewordings; does low
    /// field stability S predict that the greedy answer changes?
    Sensitivity(SensitivityArgs),
    /// Fit the answer-level void the processor ships (its `answer` weights) on the records of
    /// earlier `eval qa` runs — several models or banks pooled — and report how it transfers:
    /// to a set it was not fitted on, and to a relation left out. Loads no model.
    AnswerFit(AnswerFitArgs),
    /// Every part in turn with its defaults (qa, loops, temperature, phase, sensitivity); each
    /// part resumes (docs/EVALUATION.md gives each part's time).
    All(EvalRun),
}

#[derive(clap::Args, Debug)]
struct QaArgs {
    /// Only N items, evenly spaced over the bank (a smoke run).
    #[arg(long)]
    limit: Option<usize>,
    /// The item bank (JSON lines, see tools/build_qa_bank.py).
    #[arg(long, default_value = "eval/qa_bank.jsonl")]
    bank: PathBuf,
    /// Bootstrap resamples for the intervals.
    #[arg(long, default_value_t = 2000)]
    resamples: usize,
    /// Only these relations of the bank (comma-separated; default: all of them).
    #[arg(long, value_delimiter = ',')]
    relations: Vec<String>,
    /// Score this calibration (written by an earlier `eval qa`, e.g. on another bank) on every
    /// item instead of fitting one on a split of this bank; nothing is fitted or written.
    #[arg(long)]
    calibration: Option<PathBuf>,
    /// The processor configuration the answers are decoded under (default: greedy, `neutral`
    /// at T = 0), e.g. `{"temperature":{"base":0}}` for greedy with the balanced preset's
    /// interventions; the decode takes the token the processor selects. Use its own --out (the
    /// records do not say which configuration wrote them).
    #[arg(long, default_value = qa::GREEDY)]
    config: String,
    /// Also recover the final hidden state from each answer step's logits (h = Γ⁺z, with the
    /// unembedding read from the model) and record it, for the hidden-state probe. Use its own
    /// --out (records written without it have no states).
    #[arg(long)]
    hidden: bool,
    /// Stream this hidden-state probe (a `probe.json` written by an earlier `eval qa --hidden`,
    /// for the same model) while decoding, and score its mean over each answer as it is —
    /// fitted elsewhere, not refitted. Use its own --out (records say what was streamed).
    #[arg(long)]
    probe: Option<PathBuf>,
    #[command(flatten)]
    run: EvalRun,
}

#[derive(clap::Args, Debug)]
struct AnswerFitArgs {
    /// A set of records, NAME=PATH (repeatable): the `qa.jsonl` of an earlier `eval qa`, e.g.
    /// `--records 'Qwen2.5-Coder-1.5B=docs/eval/qwen-wide/qa.jsonl'`.
    #[arg(long = "records", value_parser = parse_set, required = true)]
    sets: Vec<(String, PathBuf)>,
    /// The features of the fit (comma-separated `answer` weight names).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "mean_entropy,mean_potential,max_potential"
    )]
    features: Vec<String>,
    /// Bootstrap resamples for the intervals.
    #[arg(long, default_value_t = 2000)]
    resamples: usize,
    /// Output directory: `answer-fit.md`, `answer-fit.json` and `calibration.json` (the fit's
    /// `answer` section, loadable by `ig_processor_load_calibration`).
    #[arg(long, default_value = "eval-out")]
    out: PathBuf,
}

fn parse_set(s: &str) -> Result<(String, PathBuf), String> {
    let (name, path) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?}: expected NAME=PATH"))?;
    Ok((name.trim().to_string(), PathBuf::from(path)))
}

#[derive(clap::Args, Debug)]
struct LoopsArgs {
    /// Only N prompts, evenly spaced (a smoke run).
    #[arg(long)]
    limit: Option<usize>,
    /// One prompt per line.
    #[arg(long, default_value = "eval/open_prompts.txt")]
    prompts: PathBuf,
    /// Tokens per generation.
    #[arg(long, default_value_t = 160)]
    max_tokens: usize,
    /// Prompts decoded together in one batch.
    #[arg(long, default_value_t = 20)]
    batch: usize,
    /// Also score every output under this other model (a model name or directory, as
    /// `--model`): its text re-tokenised after the judge's own chat prompt.
    #[arg(long)]
    judge_model: Option<String>,
    /// The judge's build (as `--weights`).
    #[arg(long, value_enum, default_value_t = crate::args::Weights::Q4)]
    judge_weights: crate::args::Weights,
    /// Another method to compare, NAME=CONFIG-JSON (repeatable): the processor configuration
    /// it runs under, e.g. `--method 'window 64={"escape":{"repeat_window":64}}'`.
    #[arg(long = "method", value_parser = parse_method)]
    methods: Vec<(String, String)>,
    /// Only this method (repeatable, one name each: names hold commas; default: every
    /// built-in one and each `--method`).
    #[arg(long)]
    only: Vec<String>,
    /// The no-loop control: replay an `eval qa` run's greedy answers (its qa.jsonl) through the
    /// escape and count the penalties.
    #[arg(long)]
    qa_records: Option<PathBuf>,
    #[command(flatten)]
    run: EvalRun,
}

#[derive(clap::Args, Debug)]
struct ConceptArgs {
    /// Only N items, evenly spaced over the bank (a smoke run).
    #[arg(long)]
    limit: Option<usize>,
    #[arg(long, default_value = "eval/qa_bank.jsonl")]
    bank: PathBuf,
    /// λ of the tilt (SDs of the standardised bias at void score 1).
    #[arg(long, default_value_t = 8.0)]
    lambda: f32,
    /// The KL bound per step, nats.
    #[arg(long, default_value_t = 0.1)]
    max_kl: f32,
    /// Tilt only while the void score is at least this.
    #[arg(long, default_value_t = 0.0)]
    min_void: f32,
    /// Tilt only the first N steps of each answer (0: every step).
    #[arg(long, default_value_t = 0)]
    max_steps: u32,
    /// Tilt only while the relation's answer tokens hold less than this much of the step's
    /// probability (1: off; the library's `concept.max_type_mass` defaults to 0.5, this to 1 so
    /// that the ungated runs of docs/EVALUATION.md §6 reproduce).
    #[arg(long, default_value_t = 1.0)]
    max_type_mass: f32,
    /// The answer tokens that gate: `half` (the first tokens of the other half's answers, the
    /// direction's own set: an item's answer counts only if another item shares it) or `all`
    /// (every answer of the relation, the item's own included: a host's complete list).
    #[arg(long, default_value = "half", value_parser = ["half", "all"])]
    type_set: String,
    /// Tilt only until the answer's first content token (past a leading " the").
    #[arg(long)]
    until_content: bool,
    /// What the answer type is contrasted with: `model` (the first tokens of the other half's
    /// plain answers that are not answer tokens) or `vocab` (the vocabulary mean).
    #[arg(long, default_value = "model", value_parser = ["model", "vocab"])]
    away: String,
    /// Seed of the random directions.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    #[arg(long, default_value_t = 2000)]
    resamples: usize,
    #[command(flatten)]
    run: EvalRun,
}

#[derive(clap::Args, Debug)]
struct PmiArgs {
    /// Only N items, evenly spaced over the bank (a smoke run).
    #[arg(long)]
    limit: Option<usize>,
    #[arg(long, default_value = "eval/qa_bank.jsonl")]
    bank: PathBuf,
    /// β: the weight of the null query's log-probability (1: PMI).
    #[arg(long, default_value_t = 1.0)]
    beta: f32,
    /// α: only tokens with p ≥ α·p_max are reordered.
    #[arg(long, default_value_t = 0.1)]
    plausibility: f32,
    /// Reorder every step until the first content token, not only those whose most likely
    /// token is also the null query's (`contrast.prior_top_only` off).
    #[arg(long)]
    ungated: bool,
    /// What replaces the subject in the null query.
    #[arg(long, default_value = pmi::NULL_SUBJECT)]
    null_subject: String,
    /// Instead of a null subject, the mean next-token distribution of this many other items of
    /// the item's relation, each asked as itself (the relation's prior from a batch of its
    /// questions); costs this many extra sequences per answer until its first content token.
    #[arg(long, default_value_t = 0)]
    null_others: usize,
    #[arg(long, default_value_t = 2000)]
    resamples: usize,
    #[command(flatten)]
    run: EvalRun,
}

#[derive(clap::Args, Debug)]
struct TemperatureArgs {
    /// Only N QA items, evenly spaced.
    #[arg(long)]
    limit: Option<usize>,
    /// Only N open-ended prompts, evenly spaced.
    #[arg(long)]
    open_limit: Option<usize>,
    /// The base temperatures T0 every rule is swept over.
    #[arg(long, value_delimiter = ',', default_value = "0.3,0.5,0.7,1.0,1.4,2.0")]
    bases: Vec<f64>,
    /// The rules besides fixed T (always run): fixed, edt, dynatemp, hotter, colder. Default:
    /// all.
    #[arg(long, value_delimiter = ',')]
    rules: Vec<String>,
    /// The truncation of every rule: `none`, `nsigma:N` (top-nσ) or `minp:P`.
    #[arg(long, default_value = "nsigma:1", value_parser = temperature::Cut::parse)]
    cut: temperature::Cut,
    /// Samples per QA item (≥ 2).
    #[arg(long, default_value_t = 2)]
    qa_samples: usize,
    /// Samples per open-ended prompt (≥ 2).
    #[arg(long, default_value_t = 3)]
    open_samples: usize,
    /// Tokens per open-ended sample.
    #[arg(long, default_value_t = 48)]
    open_tokens: usize,
    #[arg(long, default_value = "eval/qa_bank.jsonl")]
    bank: PathBuf,
    #[arg(long, default_value = "eval/open_prompts.txt")]
    prompts: PathBuf,
    #[arg(long, default_value_t = 2000)]
    resamples: usize,
    #[command(flatten)]
    run: EvalRun,
}

#[derive(clap::Args, Debug)]
struct PhaseArgs {
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
    bank: PathBuf,
    #[arg(long, default_value_t = 2000)]
    resamples: usize,
    #[command(flatten)]
    run: EvalRun,
}

#[derive(clap::Args, Debug)]
struct SensitivityArgs {
    /// Only N QA items, evenly spaced.
    #[arg(long)]
    limit: Option<usize>,
    #[arg(long, default_value = "eval/qa_bank.jsonl")]
    bank: PathBuf,
    #[arg(long, default_value_t = 2000)]
    resamples: usize,
    #[command(flatten)]
    run: EvalRun,
}

/// `eval sensitivity`: tokens per greedy answer (its first clause is all
/// `sensitivity::answer_key` compares), and rows per batch (eight items' four wordings).
const SENSITIVITY_TOKENS: usize = 12;
const SENSITIVITY_BATCH: usize = 32;

/// The parts `eval all` runs, in order.
const PARTS: [&str; 5] = ["qa", "loops", "temperature", "phase", "sensitivity"];

pub fn exec(a: Args) -> Result<(), CliError> {
    match a.part {
        Part::All(run) => {
            for part in PARTS {
                eprintln!("== eval {part}");
                exec(Args {
                    part: all_part(part, &run.out, &run.model),
                })?;
            }
            Ok(())
        }
        Part::Qa(a) => qa(a),
        Part::Loops(a) => loops(a),
        Part::Concept(a) => concept_part(a),
        Part::Pmi(a) => pmi_part(a),
        Part::Temperature(a) => temperature(a),
        Part::Phase(a) => phase(a),
        Part::Sensitivity(a) => sensitivity(a),
        Part::AnswerFit(a) => answer_fit(a),
    }
}

fn answer_fit(a: AnswerFitArgs) -> Result<(), CliError> {
    use infogravity_engine::eval::answer;
    let keep = a
        .features
        .iter()
        .map(|f| {
            answer::FEATURE_KEYS
                .iter()
                .position(|k| k == f)
                .ok_or_else(|| {
                    infogravity::Error::InvalidArgument(format!(
                        "--features: {f:?} is not one of {}",
                        answer::FEATURE_KEYS.join(", ")
                    ))
                })
        })
        .collect::<Result<Vec<usize>, _>>()?;
    if let Some(k) = (0..keep.len()).find(|&i| keep[..i].contains(&keep[i])) {
        return Err(infogravity::Error::InvalidArgument(format!(
            "--features: {} is given twice",
            a.features[k]
        ))
        .into());
    }
    let sets = a
        .sets
        .iter()
        .map(|(name, path)| {
            let records: Vec<qa::Record> =
                infogravity_engine::eval::read_records(path, "QA results")?;
            if records.is_empty() {
                return Err(infogravity::Error::InvalidArgument(format!(
                    "{}: no QA records",
                    path.display()
                )));
            }
            Ok((name.clone(), records))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let (mut md, json, weights) = answer::fit_sets(&sets, &keep, a.resamples);
    std::fs::create_dir_all(&a.out)?;
    let provenance = format!(
        "infogravity {} eval answer-fit: {} on {}",
        env!("CARGO_PKG_VERSION"),
        a.features.join(", "),
        a.sets
            .iter()
            .map(|(n, p)| format!("{n} ({})", p.display()))
            .collect::<Vec<_>>()
            .join(", ")
    );
    md.insert_str(0, &format!("# {provenance}\n\n"));
    write_report(&a.out, "answer-fit", &md, &json)?;
    if let Some(w) = weights {
        let calib = infogravity::Calibration {
            format: infogravity::calibration::CALIBRATION_FORMAT.into(),
            version: infogravity::calibration::CALIBRATION_VERSION,
            provenance,
            void: None,
            mass: None,
            answer: Some(w),
        };
        std::fs::write(
            a.out.join("calibration.json"),
            serde_json::to_string_pretty(&calib).expect("serialises"),
        )?;
    }
    writeln!(std::io::stdout().lock(), "{md}\nwrote {}", a.out.display())?;
    Ok(())
}

/// `eval`'s command line on its own: how `eval all` builds each part.
#[derive(Parser)]
struct EvalLine {
    #[command(subcommand)]
    part: Part,
}

/// One part of `eval all`, parsed from its own command line so its defaults are the ones of
/// its subcommand.
fn all_part(part: &str, out: &Path, model: &ModelArgs) -> Part {
    let mut args: Vec<std::ffi::OsString> = vec!["eval".into(), part.into()];
    args.extend(["--out".into(), out.into()]);
    args.extend(["--model".into(), (&model.model).into()]);
    args.extend(["--weights".into(), model.weights.name().into()]);
    match EvalLine::try_parse_from(args) {
        Ok(line) => line.part,
        Err(e) => unreachable!("eval {part} parses with its defaults: {e}"),
    }
}

/// What a part's report says it did, for the closing line (`4 items`, `2 prompts, 160 tokens
/// each,`), and its markdown.
struct Done {
    markdown: String,
    what: String,
}

/// The frame of every part: load the model, make the output directory, show a progress bar
/// over `total` `unit`s while `work` runs (with the engine, the output directory and the bar),
/// then `report` writes the part's files and the markdown is printed with what was done and
/// how long it took.
fn run_part<R>(
    run: &EvalRun,
    total: usize,
    unit: &str,
    work: impl FnOnce(&mut Engine, &Path, &ProgressBar) -> Result<R, CliError>,
    report: impl FnOnce(&Engine, &Path, R) -> Result<Done, CliError>,
) -> Result<(), CliError> {
    let mut eng = run.model.load()?;
    std::fs::create_dir_all(&run.out).map_err(CliError::Io)?;
    let bar = progress(total as u64, unit);
    let started = std::time::Instant::now();
    let records = work(&mut eng, &run.out, &bar)?;
    bar.finish_and_clear();
    let Done { markdown, what } = report(&eng, &run.out, records)?;
    writeln!(
        std::io::stdout().lock(),
        "{markdown}\n{what} in {:.0} s; wrote {}",
        started.elapsed().as_secs_f64(),
        run.out.display()
    )?;
    Ok(())
}

fn qa(a: QaArgs) -> Result<(), CliError> {
    Config::from_json(&a.config)?;
    // Evenly spaced over the bank, so a smoke run covers every relation.
    let mut bank = qa::load_bank(&a.bank)?;
    if !a.relations.is_empty() {
        let known: Vec<String> = bank.iter().map(|i| i.relation.clone()).collect();
        if let Some(r) = a.relations.iter().find(|r| !known.contains(r)) {
            return Err(infogravity::Error::InvalidArgument(format!(
                "--relations: {} has no relation {r:?}",
                a.bank.display()
            ))
            .into());
        }
        bank.retain(|i| a.relations.contains(&i.relation));
    }
    let items = evenly(bank, a.limit);
    let given = match &a.calibration {
        Some(path) => Some(infogravity::Calibration::load(path)?),
        None => None,
    };
    let probe = match &a.probe {
        Some(path) => Some(infogravity::Probe::load(path)?),
        None => None,
    };
    let cfg = Config::default();
    run_part(
        &a.run,
        items.len(),
        "items",
        |eng, out, bar| {
            let prior = shipped_prior(eng.lm.info().vocab)?;
            let recovery = match a.hidden {
                true => {
                    let info = eng.lm.info();
                    let u = infogravity_engine::unembed::Unembedding::load(
                        &a.run.model.dir()?,
                        info.vocab,
                        info.hidden,
                    )?;
                    Some(infogravity_engine::unembed::Recovery::new(
                        &u,
                        2 * info.hidden,
                    )?)
                }
                false => None,
            };
            let records = qa::run_bank(
                eng,
                &items,
                qa::Signals {
                    prior: prior.as_ref(),
                    mass: &cfg.mass,
                    recovery: recovery.as_ref(),
                    probe: probe.as_ref(),
                },
                &a.config,
                &out.join("qa.jsonl"),
                |done, _| bar.set_position(done as u64),
            )?;
            Ok((records, recovery))
        },
        |eng, out, (records, recovery)| {
            let provenance = format!(
                "infogravity {} eval qa: {} ({} items), model {}, decoded under {}, training split by FNV-1a(subject) even",
                env!("CARGO_PKG_VERSION"),
                a.bank.display(),
                records.len(),
                eng.lm.info().source,
                a.config
            );
            let rep = report::analyse(&records, &cfg, &provenance, a.resamples, given.as_ref());
            write_report(out, "qa", &rep.markdown, &rep.json)?;
            let write = |name: &str, text: &str| std::fs::write(out.join(name), text);
            write("qa_risk_coverage.svg", &rep.svg)?;
            write("qa_audit.md", &rep.audit)?;
            if let (Some(c), None) = (&rep.calibration, &given) {
                write(
                    "calibration.json",
                    &serde_json::to_string_pretty(c).expect("serialises"),
                )?;
            }
            // The hidden-state probe over every item, as weights on the logits
            // (`GravityProcessor::set_probe`, `ig_processor_load_probe`).
            if let (Some(rc), Some((theta, c))) = (
                &recovery,
                infogravity_engine::eval::answer::fitted_probe(&records),
            ) {
                let (tokens, weights) = rc.functional(&theta)?;
                let probe =
                    infogravity::Probe::new(eng.lm.info().vocab, &tokens, &weights, c as f32)?;
                let file = probe.to_file(&format!(
                    "{provenance}; mass-mean direction of the answer's mean hidden state over all {} items",
                    records.len()
                ));
                write(
                    "probe.json",
                    &serde_json::to_string(&file).expect("serialises"),
                )?;
            }
            Ok(Done {
                what: format!("{} items", records.len()),
                markdown: rep.markdown,
            })
        },
    )
}

fn concept_part(a: ConceptArgs) -> Result<(), CliError> {
    let o = concept::Options {
        lambda: a.lambda,
        max_kl: a.max_kl,
        min_void: a.min_void,
        max_steps: a.max_steps,
        max_type_mass: a.max_type_mass,
        type_all: a.type_set == "all",
        until_content: a.until_content,
        away: if a.away == "model" {
            concept::Away::Model
        } else {
            concept::Away::Vocab
        },
        max_tokens: 16,
        seed: a.seed,
    };
    Config::from_json(&concept::config(&o))?;
    let items = evenly(qa::load_bank(&a.bank)?, a.limit);
    let dir = a.run.model.dir()?;
    run_part(
        &a.run,
        items.len() * concept::CONDITIONS.len(),
        "decodes",
        |eng, out, bar| {
            let info = eng.lm.info().clone();
            let u = infogravity_engine::unembed::Unembedding::load(&dir, info.vocab, info.hidden)?;
            let first = items.first().ok_or_else(|| {
                infogravity::Error::InvalidArgument(format!("{}: no items", a.bank.display()))
            })?;
            let (ids, _, _) =
                infogravity_engine::prompt_with_span(eng, None, &first.question, &first.stem)?;
            let (logits, _) = eng.prefill(&ids)?;
            let z = &logits[logits.len() - info.vocab..];
            let residual = infogravity_engine::unembed::residual(&u, z, 2 * info.hidden)?;
            let (records, dirs) =
                concept::run(eng, &u, &items, &o, &out.join("concept.jsonl"), |d, _| {
                    bar.set_position(d as u64)
                })?;
            Ok((records, dirs, residual))
        },
        |eng, out, (records, dirs, residual)| {
            let provenance = format!(
                "infogravity {} eval concept: {} ({} items), model {}",
                env!("CARGO_PKG_VERSION"),
                a.bank.display(),
                items.len(),
                eng.lm.info().source,
            );
            let rep = concept::report(&records, &dirs, &o, residual, a.resamples, &provenance);
            write_report(out, "concept", &rep.markdown, &rep.json)?;
            Ok(Done {
                what: format!("{} items × 3 decodes", items.len()),
                markdown: rep.markdown,
            })
        },
    )
}

fn pmi_part(a: PmiArgs) -> Result<(), CliError> {
    let o = pmi::Options {
        beta: a.beta,
        plausibility: a.plausibility,
        prior_top_only: !a.ungated,
        max_tokens: 16,
        null_subject: a.null_subject.clone(),
        null_others: a.null_others,
    };
    Config::from_json(&pmi::config(&o))?;
    let items = evenly(qa::load_bank(&a.bank)?, a.limit);
    run_part(
        &a.run,
        items.len() * pmi::CONDITIONS.len(),
        "decodes",
        |eng, out, bar| {
            Ok(pmi::run(
                eng,
                &items,
                &o,
                &out.join("pmi.jsonl"),
                |d, _| bar.set_position(d as u64),
            )?)
        },
        |eng, out, records| {
            let provenance = format!(
                "infogravity {} eval pmi: {} ({} items), model {}",
                env!("CARGO_PKG_VERSION"),
                a.bank.display(),
                items.len(),
                eng.lm.info().source,
            );
            let rep = pmi::report(&records, &o, a.resamples, &provenance);
            write_report(out, "pmi", &rep.markdown, &rep.json)?;
            Ok(Done {
                what: format!("{} items × 2 decodes", items.len()),
                markdown: rep.markdown,
            })
        },
    )
}

/// `--method NAME=JSON`: the name and a configuration that parses.
fn parse_method(s: &str) -> Result<(String, String), String> {
    let (name, json) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?}: expected NAME=CONFIG-JSON"))?;
    Config::from_json(json).map_err(|e| format!("{name}: {e}"))?;
    Ok((name.trim().to_string(), json.to_string()))
}

fn loops(a: LoopsArgs) -> Result<(), CliError> {
    let list = evenly(read_prompts(&a.prompts)?, a.limit);
    let mut methods: Vec<(String, String)> = loops::METHODS
        .iter()
        .map(|&(n, j)| (n.to_string(), j.to_string()))
        .chain(a.methods.iter().cloned())
        .collect();
    if !a.only.is_empty() {
        if let Some(n) = a.only.iter().find(|n| !methods.iter().any(|m| &m.0 == *n)) {
            return Err(
                infogravity::Error::InvalidArgument(format!("--only: no method {n:?}")).into(),
            );
        }
        methods.retain(|m| a.only.contains(&m.0));
    }
    let judge = a.judge_model.as_ref().map(|m| ModelArgs {
        model: m.clone(),
        weights: a.judge_weights,
    });
    let control = match &a.qa_records {
        Some(path) => {
            let records: Vec<qa::Record> =
                infogravity_engine::eval::read_records(path, "QA records")?;
            let json = loops::METHODS[2].1;
            Some(loops::qa_control(json, &records)?)
        }
        None => None,
    };
    run_part(
        &a.run,
        methods.len() * list.len(),
        "generations",
        |eng, out, bar| {
            let records = loops::run_loops(
                eng,
                &methods,
                &list,
                a.max_tokens,
                a.batch,
                &out.join("loops.jsonl"),
                |done, _| bar.set_position(done as u64),
            )?;
            let judged = match &judge {
                Some(m) => {
                    let mut j = m.load()?;
                    bar.set_position(0);
                    bar.set_length(records.len() as u64);
                    loops::run_judge(
                        &mut j,
                        &list,
                        &records,
                        &out.join("loops_judge.jsonl"),
                        |done, _| bar.set_position(done as u64),
                    )?
                }
                None => vec![],
            };
            Ok((records, judged))
        },
        |_, out, (records, judged)| {
            let (mut markdown, mut json) = loops::report(&methods, &records, &judged);
            if let Some(m) = &judge {
                markdown.push_str(&format!(
                    "\nJudge model: {} ({}).\n",
                    m.model,
                    m.weights.name()
                ));
                json["judge"] = serde_json::json!(format!("{} {}", m.model, m.weights.name()));
            }
            if let (Some(c), Some(path)) = (control, &a.qa_records) {
                markdown.push_str(&format!(
                    "\nNo-loop control ({}, `{}` replayed under the escape's configuration): \
                     {} answers, {} steps; {} steps with an escape penalty in {} answers; {} \
                     greedy tokens changed.\n",
                    path.display(),
                    loops::METHODS[2].0,
                    c.answers,
                    c.steps,
                    c.events,
                    c.answers_touched,
                    c.changed
                ));
                json["qa_control"] = serde_json::to_value(c).expect("serialises");
            }
            write_report(out, "loops", &markdown, &json)?;
            Ok(Done {
                markdown,
                what: format!("{} prompts, {} tokens each,", list.len(), a.max_tokens),
            })
        },
    )
}

fn temperature(a: TemperatureArgs) -> Result<(), CliError> {
    let items = evenly(qa::load_bank(&a.bank)?, a.limit);
    let list = evenly(read_prompts(&a.prompts)?, a.open_limit);
    let mut bases = a.bases.clone();
    if bases.is_empty()
        || bases
            .iter()
            .any(|b| !(b.is_finite() && *b >= 0.01 && *b <= 4.0))
    {
        return Err(infogravity::Error::InvalidArgument(
            "--bases: every T0 must be in [0.01, 4]".into(),
        )
        .into());
    }
    bases.sort_by(f64::total_cmp);
    bases.dedup();
    let rules = temperature::rules(&a.rules).map_err(infogravity::Error::InvalidArgument)?;
    let o = temperature::Options {
        rules,
        bases,
        cut: a.cut,
        qa_samples: a.qa_samples.max(2),
        open_samples: a.open_samples.max(2),
        open_tokens: a.open_tokens.max(1),
        ..Default::default()
    };
    let configs = 1 + o.bases.len() * o.rules.len() + usize::from(o.cut != temperature::Cut::None);
    let rows = (items.len() * o.qa_samples + list.len() * o.open_samples) * configs;
    run_part(
        &a.run,
        rows,
        "samples",
        |eng, out, bar| {
            let prior = shipped_prior(eng.lm.info().vocab)?;
            Ok(temperature::run(
                eng,
                &items,
                &list,
                prior.as_ref(),
                &o,
                out,
                |done, _| bar.set_position(done as u64),
            )?)
        },
        |_, out, records| {
            let (markdown, json) = temperature::report(&records, &items, &o, a.resamples);
            write_report(out, "temperature", &markdown, &json)?;
            Ok(Done {
                markdown,
                what: format!("{} items, {} prompts", items.len(), list.len()),
            })
        },
    )
}

fn phase(a: PhaseArgs) -> Result<(), CliError> {
    let items = evenly(qa::load_bank(&a.bank)?, Some(a.limit));
    let o = phase::Options {
        samples: a.samples.max(1),
        few_samples: a.few_samples.max(1),
        // The dissimilarity indicator needs a full window on each side of a split.
        grid: a.grid.max(2 * phase::Options::default().window),
        ..Default::default()
    };
    let rows = (items.len() * o.samples + o.few.min(items.len()) * o.few_samples) * o.grid;
    // The phase scan samples at fixed temperatures: M(Q), and so the Prior, plays no part.
    let prior = None;
    run_part(
        &a.run,
        rows,
        "samples",
        |eng, out, bar| {
            Ok(phase::run(eng, &items, prior, &o, out, |done, _| {
                bar.set_position(done as u64)
            })?)
        },
        |_, out, records| {
            let rep = phase::report(&records, &o, a.resamples);
            write_report(out, "phase", &rep.markdown, &rep.json)?;
            for (name, svg) in &rep.svgs {
                std::fs::write(out.join(name), svg)?;
            }
            Ok(Done {
                markdown: rep.markdown,
                what: format!("{} answers", records.len()),
            })
        },
    )
}

fn sensitivity(a: SensitivityArgs) -> Result<(), CliError> {
    let items = evenly(qa::load_bank(&a.bank)?, a.limit);
    run_part(
        &a.run,
        items.len(),
        "items",
        |eng, out, bar| {
            Ok(sensitivity::run(
                eng,
                &items,
                SENSITIVITY_TOKENS,
                SENSITIVITY_BATCH,
                out,
                |done, _| bar.set_position(done as u64),
            )?)
        },
        |_, out, records| {
            let (markdown, json) = sensitivity::report(&records, a.resamples);
            write_report(out, "sensitivity", &markdown, &json)?;
            Ok(Done {
                markdown,
                what: format!("{} items", records.len()),
            })
        },
    )
}

/// At most `limit` of `items`, evenly spaced.
fn evenly<T: Clone>(items: Vec<T>, limit: Option<usize>) -> Vec<T> {
    match limit.filter(|&n| n < items.len()) {
        Some(n) => (0..n).map(|k| items[k * items.len() / n].clone()).collect(),
        None => items,
    }
}

/// One prompt per non-empty line.
fn read_prompts(path: &Path) -> Result<Vec<String>, CliError> {
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
    out: &Path,
    name: &str,
    md: &str,
    json: &serde_json::Value,
) -> Result<(), CliError> {
    std::fs::write(out.join(format!("{name}.md")), md)?;
    std::fs::write(
        out.join(format!("{name}.json")),
        serde_json::to_string_pretty(json).expect("serialises"),
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eval_all_builds_every_part_with_its_defaults() {
        let out = Path::new("o");
        for part in PARTS {
            let model = ModelArgs {
                model: "m".into(),
                weights: crate::args::Weights::Fp32,
            };
            let cmd = all_part(part, out, &model);
            let run = match &cmd {
                Part::Qa(QaArgs { run, .. })
                | Part::Loops(LoopsArgs { run, .. })
                | Part::Concept(ConceptArgs { run, .. })
                | Part::Pmi(PmiArgs { run, .. })
                | Part::Phase(PhaseArgs { run, .. })
                | Part::Sensitivity(SensitivityArgs { run, .. })
                | Part::Temperature(TemperatureArgs { run, .. }) => run,
                Part::All(_) | Part::AnswerFit(_) => panic!("eval all runs {part}: not a part"),
            };
            assert_eq!(run.out, out, "{part}");
            assert_eq!(run.model.model, "m", "{part}");
            assert_eq!(run.model.weights, crate::args::Weights::Fp32, "{part}");
        }
    }
}
