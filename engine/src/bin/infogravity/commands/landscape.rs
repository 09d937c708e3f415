//! `infogravity landscape`: the semantic landscape of a set of queries (seed 000 §3.1) — the
//! model's logit vectors at the answer position (and optionally along the greedy answer),
//! projected to 2-D by t-SNE and drawn as a potential map: an SVG for documents and an HTML
//! page to explore (`infogravity_engine::view::landscape` says how and what a projection
//! cannot show).

use std::path::PathBuf;

use infogravity::processor::{SeqParams, StepMode};
use infogravity::{Error, QueryInput};
use infogravity_engine as engine;

use engine::eval::qa;
use engine::view::landscape::{self, Init, Landscape, Point, Quantity, Query, TsneOptions};

use crate::CliError;
use crate::args::{ModelArgs, shipped_prior};
use crate::output::progress;

/// `--colour`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Colour {
    Potential,
    Void,
    Entropy,
}

/// `--init`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    // (Plain comments: a doc comment here would be listed in `--help`.)
    // The classical-MDS layout of the distances.
    Pca,
    // Gaussian from --seed.
    Random,
}

/// The flags of `landscape`.
#[derive(clap::Args)]
pub struct Args {
    /// A QA bank (JSON lines with question, stem and answers, as eval/qa_bank.jsonl): each item
    /// is asked with its answer stem and its answer graded. The default, with
    /// eval/qa_bank.jsonl, when no --prompts is given.
    #[arg(long, conflicts_with = "prompts")]
    bank: Option<PathBuf>,
    /// A prompt file instead: one user message per line (blank lines and lines starting with #
    /// are skipped).
    #[arg(long)]
    prompts: Option<PathBuf>,
    /// Only the first N queries (0 = all).
    #[arg(long, default_value_t = 0)]
    limit: usize,
    /// Also project the fields at the next N positions of each greedy answer (drawn as a
    /// path from the answer position).
    #[arg(long, default_value_t = 0)]
    along: usize,
    /// What the SVG colours the points by (the HTML page can switch).
    #[arg(long, value_enum, default_value_t = Colour::Potential)]
    colour: Colour,
    /// t-SNE perplexity (lowered to (points − 1) / 3 for few points).
    #[arg(long, default_value_t = 30.0)]
    perplexity: f64,
    /// t-SNE epochs.
    #[arg(long, default_value_t = 1000)]
    epochs: usize,
    /// t-SNE start: pca (the classical-MDS layout; deterministic) or random (from --seed).
    #[arg(long, value_enum, default_value_t = Start::Pca)]
    init: Start,
    /// Seed of a random start.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Preset whose void score the points carry.
    #[arg(long, default_value = "balanced")]
    preset: String,
    /// Most tokens of each greedy answer (it also ends at its first sentence).
    #[arg(long, default_value_t = 16)]
    max_tokens: usize,
    /// Where the SVG goes.
    #[arg(long, default_value = "landscape.svg")]
    svg: PathBuf,
    /// Where the HTML page goes.
    #[arg(long, default_value = "landscape.html")]
    html: PathBuf,
    #[command(flatten)]
    model: ModelArgs,
}

/// A query to place: the user message, the answer stem, the bank's relation and answers.
struct Ask {
    question: String,
    stem: String,
    relation: Option<String>,
    answers: Option<Vec<String>>,
}

fn read_queries(a: &Args) -> Result<(Vec<Ask>, String), CliError> {
    let (mut asks, source) = if let Some(p) = &a.prompts {
        let text =
            std::fs::read_to_string(p).map_err(|e| Error::Io(format!("{}: {e}", p.display())))?;
        let asks: Vec<Ask> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|l| Ask {
                question: l.to_string(),
                stem: String::new(),
                relation: None,
                answers: None,
            })
            .collect();
        (asks, p.display().to_string())
    } else {
        let p = a
            .bank
            .clone()
            .unwrap_or_else(|| PathBuf::from("eval/qa_bank.jsonl"));
        let asks = qa::load_bank(&p)?
            .into_iter()
            .map(|i| Ask {
                question: i.question,
                stem: i.stem,
                relation: Some(i.relation),
                answers: Some(i.answers),
            })
            .collect();
        (asks, p.display().to_string())
    };
    if a.limit > 0 {
        asks.truncate(a.limit);
    }
    if asks.len() < landscape::MIN_POINTS {
        return Err(Error::InvalidArgument(format!(
            "{source}: {} quer{} — a landscape needs at least {} queries",
            asks.len(),
            if asks.len() == 1 { "y" } else { "ies" },
            landscape::MIN_POINTS
        ))
        .into());
    }
    Ok((asks, source))
}

pub fn exec(a: Args) -> Result<(), CliError> {
    // Everything that can be checked before the model runs is.
    let (asks, source) = read_queries(&a)?;
    // An answer has at most max_tokens positions.
    let along = a.along.min(a.max_tokens.max(1) - 1);
    let points_max = asks.len().saturating_mul(1 + along);
    if points_max > landscape::MAX_POINTS {
        return Err(Error::InvalidArgument(format!(
            "{} queries × {} positions may reach {points_max} points, above {}: use --limit or \
             a shorter --along",
            asks.len(),
            1 + along,
            landscape::MAX_POINTS
        ))
        .into());
    }
    for (flag, p) in [("--svg", &a.svg), ("--html", &a.html)] {
        engine::view::check_output(flag, p)?;
    }
    let mut eng = a.model.load()?;
    let v = eng.lm.info().vocab;
    let eos = eng.lm.info().eos_token_id;
    let mut proc =
        engine::processor_for(&eng, &serde_json::json!({"preset": a.preset}).to_string())?;
    let prior = shipped_prior(v)?;
    proc.set_prior(prior.clone())?;
    let mass_cfg = proc.config().mass.clone();
    let (mut queries, mut points, mut vectors) = (vec![], vec![], vec![]);
    let bar = progress(asks.len() as u64, "queries");
    let started = std::time::Instant::now();
    for (qi, ask) in asks.iter().enumerate() {
        let (ids, start, end) = engine::prompt_with_span(&eng, None, &ask.question, &ask.stem)?;
        let (logits, mut cache) = eng.prefill(&ids)?;
        // The prompt-side mass as the evaluation computes it (H at the answer and over the
        // prompt, N against the Prior and as the query's surprisal; D needs a context and is
        // left out), combined into M with the processor's mass weights.
        let mass = engine::prompt_mass(&ids, start, end, &logits, v, prior.as_ref(), &mass_cfg)?;
        let mass = infogravity::mass::with_mass(mass, &mass_cfg, None);
        proc.begin(
            1,
            &SeqParams {
                seed: 0,
                anchors: &[],
                query: QueryInput {
                    prompt_logits: Some(&logits),
                    query_tokens: Some(&ids[start..end]),
                    ..Default::default()
                },
                context: &ids,
            },
        )?;
        let mut row = logits[logits.len() - v..].to_vec();
        drop(logits);
        let mut tokens = vec![];
        let mut answer = String::new();
        let query_error = |e: Error| -> CliError {
            Error::InvalidArgument(format!("query {} ({:?}): {e}", qi + 1, ask.question)).into()
        };
        for step in 0..a.max_tokens.max(1) {
            let f = infogravity::field::measure(&row[..]).map_err(|e| query_error(e.into()))?;
            let report = proc
                .step(1, &mut row, StepMode::Sample)
                .map_err(query_error)?;
            let tok = f.argmax;
            if step <= along {
                points.push(Point {
                    query: qi,
                    step,
                    token: eng.decode(&[tok])?,
                    potential: -(f.p_max().ln()) as f32,
                    void_score: report.void_score,
                    entropy: f.entropy as f32,
                });
                vectors.push(row.clone());
            }
            proc.accept(1, tok)?;
            if tok == eos {
                break;
            }
            tokens.push(tok);
            answer = eng.decode(&tokens)?;
            let ended = qa::first_sentence(&answer).len() < answer.trim_end().len();
            if ended || step + 1 == a.max_tokens {
                break;
            }
            row = eng.lm.forward(&mut cache, &[tok])?;
        }
        proc.end(1)?;
        let shown = qa::first_sentence(&answer).trim().to_string();
        queries.push(Query {
            label: ask.question.clone(),
            relation: ask.relation.clone(),
            correct: ask.answers.as_ref().map(|acc| qa::grade(&answer, acc)),
            answer: format!(
                "{}{}",
                ask.stem,
                if ask.stem.is_empty() {
                    shown
                } else {
                    format!(" {shown}")
                }
            ),
            mass,
        });
        bar.inc(1);
    }
    bar.finish_and_clear();
    let model_secs = started.elapsed().as_secs_f64();
    let t = std::time::Instant::now();
    let opts = TsneOptions {
        perplexity: a.perplexity,
        epochs: a.epochs,
        init: match a.init {
            Start::Pca => Init::Pca,
            Start::Random => Init::Random,
        },
        seed: a.seed,
    };
    let proj = landscape::project(&vectors, v, &opts)?;
    drop(vectors);
    let tsne_secs = t.elapsed().as_secs_f64();
    let graded: Vec<bool> = queries.iter().filter_map(|q| q.correct).collect();
    // How far the map can be trusted, and what sits together (k = 5 neighbours; with --along
    // a query's own positions are among its neighbours).
    const K: usize = 5;
    let n = points.len();
    let mut notes = vec![format!(
        "neighbourhoods kept: {:.2} of each point's {K} nearest neighbours in logit space are among its {K} nearest in the map (a random map: {:.2})",
        proj.overlap(K),
        K.min(n - 1) as f64 / (n - 1) as f64
    )];
    if queries.iter().any(|q| q.relation.is_some()) {
        let mut names: Vec<&str> = vec![];
        let label: Vec<usize> = (points.iter())
            .map(|p| {
                let r = queries[p.query].relation.as_deref().unwrap_or("");
                names.iter().position(|&x| x == r).unwrap_or_else(|| {
                    names.push(r);
                    names.len() - 1
                })
            })
            .collect();
        let (space, map) = proj.label_agreement(K, &label);
        notes.push(format!(
            "same relation among the {K} nearest: {space:.2} in logit space, {map:.2} in the map ({} relations)",
            names.len()
        ));
    }
    if graded.iter().any(|&c| !c) {
        let wrong: Vec<bool> = (points.iter())
            .map(|p| queries[p.query].correct == Some(false))
            .collect();
        let (space, map) = proj.flagged_neighbours(K, &wrong);
        let base = wrong.iter().filter(|&&w| w).count() as f64 / n as f64;
        notes.push(format!(
            "wrong answers together: of a wrong answer's {K} nearest, {space:.2} are wrong in logit space and {map:.2} in the map (base rate {base:.2})"
        ));
    }
    let coords = proj.coords;
    let land = Landscape {
        title: format!(
            "Semantic landscape of {} ({} queries{})",
            source,
            queries.len(),
            if along > 0 {
                format!(", {along} positions along each answer")
            } else {
                String::new()
            }
        ),
        model: eng.lm.info().describe(),
        queries,
        points,
        coords,
        colour: match a.colour {
            Colour::Potential => Quantity::Potential,
            Colour::Void => Quantity::Void,
            Colour::Entropy => Quantity::Entropy,
        },
        notes,
    };
    // Both drawn, then both written (each whole; the second only if the first succeeded).
    let (svg, html) = (land.svg()?, land.html()?);
    engine::view::write_atomic(&a.svg, svg.as_bytes())?;
    engine::view::write_atomic(&a.html, html.as_bytes())?;
    println!(
        "{} queries, {} points{}; model {:.1} s, distances + t-SNE {:.1} s; wrote {} and {}",
        land.queries.len(),
        land.points.len(),
        if graded.is_empty() {
            String::new()
        } else {
            format!(
                ", {}/{} answered right",
                graded.iter().filter(|&&c| c).count(),
                graded.len()
            )
        },
        model_secs,
        tsne_secs,
        a.svg.display(),
        a.html.display()
    );
    for line in &land.notes {
        println!("{line}");
    }
    Ok(())
}
