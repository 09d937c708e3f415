//! `infogravity`: the command-line front end of the reference engine. `generate` answers a
//! prompt with the gravity processor in the loop and prints per-token diagnostics; `mass`
//! measures a query's information mass M(Q); `scan` is the phase scan of the answer position's
//! field (heat capacity C(T) and its peak T*); `sensitivity` compares the field of a query
//! with its rewordings (field stability S); `prior` builds and shows the unigram Priors of
//! N(Q); `landscape` projects a set of queries' fields to a potential map; `eval` runs the evaluation on the real model (docs/EVALUATION.md); `demo` runs the
//! processor alone over an embedded decoding trace; `bench` times the field kernel, the full
//! step and batches against the floor kernel. Each command is one file in `commands/`: its
//! flags and its `exec`; the flag groups several commands share are in `args`, the output
//! they share (diagnostics, progress bars) in `output`.

mod args;
mod commands;
mod output;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use commands::{bench, demo, eval, generate, landscape, mass, prior, scan, sensitivity};

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

#[derive(Subcommand)]
enum Cmd {
    /// Generate an answer with the gravity processor in the loop (the reference engine).
    ///
    /// With no --model, uses Qwen2.5-Coder-1.5B-Instruct (4-bit) from the cache, setting it up
    /// first (scripts/setup-engine.sh --model qwen2.5-coder-1.5b --weights q4) when it is
    /// missing.
    Generate(generate::Args),
    /// Query information mass M(Q) and its components H, D, N for a prompt (and context).
    Mass(mass::Args),
    /// Phase scan of the next-token field at the answer position (heat capacity C(T) and its
    /// peak T*, docs/DESIGN.md §1): entropy, heat capacity and Jensen–Shannon distance between
    /// neighbouring temperatures on a log grid; peaks are reported as critical temperatures.
    /// Writes CSV and an SVG plot.
    Scan(scan::Args),
    /// Prompt sensitivity (field stability over rewordings, docs/DESIGN.md §1): the next-token
    /// field of a query against paraphrases — JS distance, ΔΦ of the top tokens, and the field
    /// stability S = 1 − mean JSD / ln 2.
    Sensitivity(sensitivity::Args),
    /// Reference unigram Priors (for N(Q)).
    Prior(prior::Args),
    /// The semantic landscape of a set of queries (seed 000 §3.1): their logit vectors at the
    /// answer position projected by t-SNE and drawn as a potential map (darker = lower
    /// potential), wrong answers marked. Writes an SVG and an HTML page to explore.
    Landscape(landscape::Args),
    /// The evaluation on the real model (docs/EVALUATION.md); resumes where it stopped.
    Eval(eval::Args),
    /// Run the processor over an embedded decoding trace and print per-step diagnostics.
    Demo(demo::Args),
    /// Time measure / full step / batch against the floor kernel at real vocabulary sizes.
    Bench(bench::Args),
}

fn main() -> ExitCode {
    let r = match Cli::parse().cmd {
        Cmd::Generate(a) => generate::exec(a),
        Cmd::Mass(a) => mass::exec(a),
        Cmd::Scan(a) => scan::exec(a),
        Cmd::Sensitivity(a) => sensitivity::exec(a),
        Cmd::Prior(a) => prior::exec(a),
        Cmd::Landscape(a) => landscape::exec(a),
        Cmd::Eval(a) => eval::exec(a),
        Cmd::Demo(a) => demo::exec(a),
        Cmd::Bench(a) => bench::exec(a),
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

/// What a command can fail with.
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
