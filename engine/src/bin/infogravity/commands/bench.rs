//! `infogravity bench`: the field kernel, the C reference kernel, the full step and batches
//! timed against the floor kernel of the same run, and each batch against one plain read of it
//! on the same threads (its memory floor), at real vocabulary sizes.

use std::io::Write;

use infogravity::field;
use infogravity_engine::bench;

use crate::CliError;

#[derive(clap::Args)]
pub struct Args {
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
}

/// `--quick`: timed calls per single-row case, and the most rows per batch.
const QUICK_ITERS: usize = 20;
const QUICK_BATCH: usize = 8;
/// The fewest timed calls per single-row case whatever `--iters` says (a median needs some).
const MIN_ITERS: usize = 5;

pub fn exec(a: Args) -> Result<(), CliError> {
    let json = a.json;
    let mut out = std::io::stdout().lock();
    let plan = bench::Plan {
        vocabs: if a.vocab.is_empty() {
            bench::VOCABS.to_vec()
        } else {
            a.vocab
        },
        iters: if a.quick {
            QUICK_ITERS
        } else {
            a.iters.max(MIN_ITERS)
        },
        batch: if a.quick {
            a.batch.min(QUICK_BATCH)
        } else {
            a.batch.max(1)
        },
        preset: a.preset,
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
            // What `bench::run` times per batch case.
            (plan.iters / 8).max(5),
            plan.preset
        )?;
        writeln!(
            out,
            "{:<10} {:>7} {:>5} {:>7} {:>12} {:>12} {:>9} {:>10}",
            "case", "vocab", "batch", "threads", "median µs", "floor µs", "÷ floor", "2nd pass"
        )?;
    }
    let mut last_batch_1 = None;
    // The memory floor (one plain read of the batch) on the same threads, for the batch line.
    let mut last_read: Option<f64> = None;
    let mut failed: Option<std::io::Error> = None;
    bench::run(&plan, |c| {
        if failed.is_some() {
            return;
        }
        let r = (|| -> std::io::Result<()> {
            if json {
                writeln!(out, "{}", c.to_json())?;
            } else {
                let mut extra = String::new();
                if c.case == "batch" {
                    if let Some(r) = last_read {
                        extra = format!("  {:.2}× the read", c.median_ns / r);
                    }
                    if let (2, Some(t1)) = (c.threads, last_batch_1) {
                        extra += &format!(", {:.2}× speed-up vs 1 thread", t1 / c.median_ns);
                    }
                }
                writeln!(
                    out,
                    "{:<10} {:>7} {:>5} {:>7} {:>12.1} {:>12.1} {:>9.3} {:>9.1}%{extra}",
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
        if c.case == "read" {
            last_read = Some(c.median_ns);
        }
    })?;
    failed.map_or(Ok(()), |e| Err(e.into()))
}
