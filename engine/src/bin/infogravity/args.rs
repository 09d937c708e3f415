//! Flag groups several commands share: the model (`--model`), an evaluation part's output
//! directory and model ([`EvalRun`]), and the diagnostics format of `generate`.

use std::path::{Path, PathBuf};

use infogravity_engine as engine;

use crate::CliError;

/// `--model`: which model a command runs.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct ModelArgs {
    /// Model directory (model.onnx, model.json, tokenizer.json; default: SmolLM2-135M-Instruct
    /// from the cache, set up on first use).
    #[arg(long)]
    pub model: Option<PathBuf>,
}

impl ModelArgs {
    /// The model directory: `--model`, or the default model (set up on first use).
    pub fn dir(&self) -> Result<PathBuf, CliError> {
        match &self.model {
            Some(d) => Ok(d.clone()),
            None => default_model(),
        }
    }

    /// The model loaded with the default engine options.
    pub fn load(&self) -> Result<engine::Engine, CliError> {
        Ok(engine::Engine::load(&self.dir()?, &Default::default())?)
    }
}

/// The default model, set up on first use when the setup script is at hand.
fn default_model() -> Result<PathBuf, CliError> {
    let dir = engine::cache_dir().join("models/smollm2-135m-instruct");
    if dir.join("model.onnx").exists() && engine::ort_library(None).exists() {
        return Ok(dir);
    }
    let script = Path::new("scripts/setup-engine.sh");
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
