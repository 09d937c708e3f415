//! `infogravity mass`: a query's information mass M(Q) and its components, and optionally the
//! information conductivity of its greedy answer.

use std::io::Write;

use infogravity::Config;
use infogravity_engine as engine;

use crate::CliError;
use crate::args::{ModelArgs, shipped_prior};

#[derive(clap::Args)]
pub struct Args {
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
    #[command(flatten)]
    model: ModelArgs,
    /// Also measure the information conductivity of the greedy answer against this
    /// content-free query (e.g. "N/A"): σ, ρ and the canned-answer score B.
    #[arg(long)]
    conductivity: Option<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// The most tokens of the greedy answer whose conductivity `--conductivity` measures.
const CONDUCTIVITY_TOKENS: usize = 48;

pub fn exec(a: Args) -> Result<(), CliError> {
    let mut eng = a.model.load()?;
    let prior = match &a.prior {
        Some(p) => Some(infogravity::Prior::load(p)?),
        None => shipped_prior(eng.lm.info().vocab)?,
    };
    let cfg = Config::default();
    let context = a.context.as_deref();
    let q = engine::query_mass(
        &mut eng,
        &a.query,
        context,
        &a.stem,
        prior.as_ref(),
        &cfg.mass,
        None,
    )?;
    let cond = match &a.conductivity {
        Some(nq) => Some(engine::conductivity(
            &mut eng,
            &a.query,
            nq,
            CONDUCTIVITY_TOKENS,
        )?),
        None => None,
    };
    let mut out = std::io::stdout().lock();
    let f = |x: Option<f32>| x.map_or("null".to_string(), |v| format!("{v:.4}"));
    if a.json {
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
        return Ok(());
    }
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
    Ok(())
}
