//! `infogravity-candle [PROMPT] [--gguf F] [--tokenizer F] [--preset P] [--temperature T]
//! [--seed N] [--max-tokens N] [--select processor|candle] [--system S] [--diagnostics
//! table|none]`: answer PROMPT with candle's quantized llama and the gravity processor in the
//! loop, then print the per-token diagnostics `infogravity generate` prints. Defaults: the
//! SmolLM2 GGUF and tokenizer that `scripts/setup-engine.sh --real` puts in the cache, the
//! `balanced` preset, "What is the capital of France?".

use std::path::PathBuf;

use infogravity::{Config, GravityProcessor};
use infogravity_candle::{Model, Result, Select, default_files, diagnostics, generate};

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    let (mut gguf, mut tok) = default_files();
    let mut prompt = "What is the capital of France?".to_string();
    let (mut preset, mut temperature) = ("balanced".to_string(), None::<f32>);
    let (mut seed, mut max_tokens, mut select) = (0u64, 64usize, Select::Processor);
    let (mut system, mut table) = (None::<String>, true);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "--gguf" => gguf = PathBuf::from(value()?),
            "--tokenizer" => tok = PathBuf::from(value()?),
            "--preset" => preset = value()?,
            "--temperature" => temperature = Some(value()?.parse()?),
            "--seed" => seed = value()?.parse()?,
            "--max-tokens" => max_tokens = value()?.parse()?,
            "--system" => system = Some(value()?),
            "--select" => {
                select = match value()?.as_str() {
                    "processor" => Select::Processor,
                    "candle" => Select::Candle,
                    s => return Err(format!("--select {s}: processor or candle").into()),
                }
            }
            "--diagnostics" => {
                table = match value()?.as_str() {
                    "table" => true,
                    "none" => false,
                    s => return Err(format!("--diagnostics {s}: table or none").into()),
                }
            }
            s if s.starts_with("--") => return Err(format!("unknown flag {s}").into()),
            s => prompt = s.to_string(),
        }
    }
    let mut model = Model::load(&gguf, &tok)?;
    let mut config = serde_json::json!({ "preset": preset });
    if let Some(t) = temperature {
        config["temperature"] = serde_json::json!({ "base": t });
    }
    let ids = model.chat_prompt(&prompt, system.as_deref())?;
    let mut processor =
        GravityProcessor::new(Config::from_json(&config.to_string())?, model.vocab())?;
    let started = std::time::Instant::now();
    let g = generate(&mut model, &mut processor, &ids, max_tokens, seed, select)?;
    let secs = started.elapsed().as_secs_f64();
    println!("{}", model.decode(&g.tokens)?);
    println!(
        "[{} tokens in {secs:.2} s, {:.1} tokens/s]",
        g.reports.len(),
        g.reports.len() as f64 / secs
    );
    if table {
        print!("{}", diagnostics(&model, &g.reports)?);
    }
    Ok(())
}
