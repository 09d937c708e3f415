//! Flag groups several commands share: the model (`--model`), an evaluation part's output
//! directory and model ([`EvalRun`]), and the diagnostics format of `generate`.

use std::path::{Path, PathBuf};

use infogravity_engine as engine;

use crate::CliError;

/// The models the CLI knows by name: (name, what it is, cache directory of its fp32 build).
/// Their q4 build is the same directory with `-q4`. `scripts/setup-engine.sh --model NAME`
/// provisions them.
const MODELS: [(&str, &str, &str); 2] = [
    (
        "qwen2.5-coder-1.5b",
        "Qwen2.5-Coder-1.5B-Instruct",
        "qwen2.5-coder-1.5b-instruct",
    ),
    (
        "smollm2-135m",
        "SmolLM2-135M-Instruct",
        "smollm2-135m-instruct",
    ),
];

/// The model the commands run without `--model`.
pub const DEFAULT_MODEL: &str = MODELS[0].0;

/// `--weights`: which build of a named model.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Weights {
    // (Plain comments: a doc comment here would be listed in `--help`.)
    // The GGUF's own quantised blocks in MatMulNBits (fast).
    Q4,
    // Every weight dequantised to float32 (the exact reference; 4–8× the memory traffic).
    Fp32,
}

impl Weights {
    pub fn name(self) -> &'static str {
        match self {
            Weights::Q4 => "q4",
            Weights::Fp32 => "fp32",
        }
    }
}

/// `--model` and `--weights`: which model a command runs.
#[derive(clap::Args, Clone, Debug)]
pub struct ModelArgs {
    /// qwen2.5-coder-1.5b or smollm2-135m (set up in the cache on first use: downloads, checks
    /// and converts the GGUF), or a model directory (model.onnx, model.json, tokenizer.json).
    #[arg(long, default_value = DEFAULT_MODEL)]
    pub model: String,
    /// Build of a named model: q4 (the GGUF's quantised blocks) or fp32 (dequantised, the exact
    /// reference). A directory is run as it is.
    #[arg(long, value_enum, default_value_t = Weights::Q4)]
    pub weights: Weights,
}

impl ModelArgs {
    /// The model directory: a named model's build in the cache (set up on first use), or the
    /// directory given.
    pub fn dir(&self) -> Result<PathBuf, CliError> {
        let Some(&(name, title, dir)) = MODELS.iter().find(|m| m.0 == self.model) else {
            let dir = PathBuf::from(&self.model);
            if !dir.is_dir() {
                let names: Vec<&str> = MODELS.iter().map(|m| m.0).collect();
                return Err(infogravity::Error::InvalidArgument(format!(
                    "--model {}: neither a model name ({}) nor a directory",
                    self.model,
                    names.join(", ")
                ))
                .into());
            }
            return Ok(dir);
        };
        let dir = match self.weights {
            Weights::Q4 => format!("{dir}-q4"),
            Weights::Fp32 => dir.to_string(),
        };
        let dir = engine::cache_dir().join("models").join(dir);
        if dir.join("model.onnx").exists() && engine::ort_library(None).exists() {
            return Ok(dir);
        }
        setup(name, title, self.weights)?;
        Ok(dir)
    }

    /// The model loaded with the default engine options.
    pub fn load(&self) -> Result<engine::Engine, CliError> {
        Ok(engine::Engine::load(&self.dir()?, &Default::default())?)
    }
}

/// Set up a named model with `scripts/setup-engine.sh` when it is at hand (a checkout).
fn setup(name: &str, title: &str, weights: Weights) -> Result<(), CliError> {
    let script = Path::new("scripts/setup-engine.sh");
    let cmd = format!(
        "scripts/setup-engine.sh --model {name} --weights {}",
        weights.name()
    );
    if !script.exists() {
        return Err(infogravity::Error::Engine(format!(
            "{title} ({}) is not set up: run {cmd} from the infogravity repository, or pass \
             --model DIR",
            weights.name()
        ))
        .into());
    }
    eprintln!("setting up {title} ({}): {cmd}; once only…", weights.name());
    let ok = std::process::Command::new("bash")
        .arg(script)
        .args(["--model", name, "--weights", weights.name()])
        .status()
        .map_err(CliError::Io)?
        .success();
    if !ok {
        return Err(infogravity::Error::Engine(format!("{cmd} failed")).into());
    }
    Ok(())
}

/// The Prior shipped for SmolLM2 (priors/README.md), when its vocabulary is `vocab`.
pub fn shipped_prior(vocab: usize) -> Result<Option<infogravity::Prior>, CliError> {
    const SHIPPED: &[u8] = include_bytes!("../../../../priors/smollm2-135m-kjv.prior");
    Ok(Some(infogravity::Prior::from_bytes(SHIPPED)?).filter(|p| p.vocab() == vocab))
}

/// Where an evaluation part writes and which model it runs.
#[derive(clap::Args, Clone, Debug)]
pub struct EvalRun {
    /// Output directory: the part's reports (see docs/EVALUATION.md) and its raw records
    /// (`<part>.jsonl`; an interrupted run resumes from them).
    #[arg(long, default_value = "eval-out")]
    pub out: PathBuf,
    #[command(flatten)]
    pub model: ModelArgs,
}

/// `generate --diagnostics`: how the per-token diagnostics are printed.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Diagnostics {
    // (Plain comments: a doc comment here would be listed in `--help`.)
    // One aligned row per token.
    Table,
    // One JSON object per token.
    Jsonl,
    // Nothing.
    None,
}
