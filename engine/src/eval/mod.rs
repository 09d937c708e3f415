//! The evaluation of the seeds' claims on a real model (`infogravity eval`, docs/EVALUATION.md).
//! [`metrics`] holds the statistics; [`qa`] the closed-book QA run that tests the void score.

pub mod loops;
pub mod metrics;
pub mod phase;
pub mod plot;
pub mod qa;
pub mod report;
pub mod sensitivity;
pub mod temperature;

use infogravity::{Error, Result};

/// Read a JSON-lines results file (absent = empty).
pub(crate) fn read_jsonl<T: serde::de::DeserializeOwned>(
    path: &std::path::Path,
    what: &'static str,
) -> Result<Vec<T>> {
    match std::fs::read_to_string(path) {
        Ok(t) => t
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(serde_json::from_str)
            .collect::<std::result::Result<_, _>>()
            .map_err(|err| Error::CorruptFile {
                what,
                msg: format!("{}: {err} (delete it to start over)", path.display()),
            }),
        Err(_) => Ok(vec![]),
    }
}

/// Open a results file for appending.
pub(crate) fn append(path: &std::path::Path) -> Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|err| Error::Io(format!("{}: {err}", path.display())))
}

/// One prompt of a batch run: token ids and where the query's tokens are in them.
pub type Prompt = (Vec<u32>, std::ops::Range<usize>);

/// Generate `rows` under the processor configuration `json` (with `prior` loaded, so M(Q) has
/// its novelty term, and `calib`, which standardises M's components) in contiguous batches of `batch` rows. Row g's seed is `seed + g` whatever
/// batch it falls in, so methods run on the same rows share their random numbers. A batch whose
/// rows are all `done` (one flag per row) is skipped (resuming); otherwise `record(engine, g, generation)` is called
/// for each of its rows not done. `pre(g, context, logits)` is the host hook of
/// [`Engine::generate_batch_with`].
#[allow(clippy::too_many_arguments)]
pub(crate) fn run_batches(
    e: &mut crate::Engine,
    json: &str,
    prior: Option<&infogravity::Prior>,
    calib: Option<&infogravity::Calibration>,
    rows: &[Prompt],
    max_tokens: usize,
    batch: usize,
    seed: u64,
    done: &[bool],
    mut pre: impl FnMut(usize, &[u32], &mut [f32]),
    mut record: impl FnMut(&crate::Engine, usize, crate::Generation) -> Result<()>,
) -> Result<()> {
    let batch = batch.max(1);
    for start in (0..rows.len()).step_by(batch) {
        let end = (start + batch).min(rows.len());
        if done[start..end].iter().all(|&d| d) {
            continue;
        }
        let mut p = crate::processor_for(e, json)?;
        p.set_prior(prior.cloned())?;
        p.set_calibration(calib.cloned());
        let (ids, query_spans): (Vec<Vec<u32>>, Vec<_>) = rows[start..end].iter().cloned().unzip();
        let opts = crate::GenerateOptions {
            max_tokens,
            seed: seed + start as u64,
            query_spans,
            ..Default::default()
        };
        let gens = e.generate_batch_with(
            &mut p,
            &ids,
            &opts,
            |r, ctx, z| pre(start + r, ctx, z),
            |_, _, _| {},
        )?;
        for (r, g) in gens.into_iter().enumerate() {
            if !done[start + r] {
                record(e, start + r, g)?;
            }
        }
    }
    Ok(())
}

/// Append one record as a JSON line.
pub(crate) fn write_line<T: serde::Serialize>(
    file: &mut std::fs::File,
    path: &std::path::Path,
    record: &T,
) -> Result<()> {
    use std::io::Write;
    let line = serde_json::to_string(record).expect("records serialise");
    writeln!(file, "{line}").map_err(|err| Error::Io(format!("{}: {err}", path.display())))
}
