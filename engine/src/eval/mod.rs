//! The evaluation of the seeds' claims on a real model (`infogravity eval`, docs/EVALUATION.md).
//! [`metrics`] holds the statistics; [`qa`] the closed-book QA run that tests the void score.

pub mod answer;
pub mod concept;
pub mod loops;
pub mod metrics;
pub mod phase;
pub mod plot;
pub mod pmi;
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
        Ok(t) => parse_jsonl(&t, path, what, " (delete it to start over)"),
        Err(_) => Ok(vec![]),
    }
}

/// Read the JSON-lines records of an earlier run (an absent file is an error).
pub fn read_records<T: serde::de::DeserializeOwned>(
    path: &std::path::Path,
    what: &'static str,
) -> Result<Vec<T>> {
    let t = std::fs::read_to_string(path)
        .map_err(|err| Error::Io(format!("{}: {err}", path.display())))?;
    parse_jsonl(&t, path, what, "")
}

fn parse_jsonl<T: serde::de::DeserializeOwned>(
    text: &str,
    path: &std::path::Path,
    what: &'static str,
    hint: &str,
) -> Result<Vec<T>> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(serde_json::from_str)
        .collect::<std::result::Result<_, _>>()
        .map_err(|err| Error::CorruptFile {
            what,
            msg: format!("{}: {err}{hint}", path.display()),
        })
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
/// its novelty term, and `calib`, which standardises M's components) in contiguous batches of
/// `batch` rows. Row g's seed is `seed + g` whatever batch it falls in, so methods run on the
/// same rows share their random numbers. A batch whose rows are all `done` (one flag per row)
/// is skipped (resuming); otherwise `record(engine, g, generation)` is called
/// for each of its rows not done. `pre(start)` may give a host logits processor for the batch
/// whose first row is `start` (sequence s of the batch is row `start + s − 1`); it runs first
/// in every step (`GravityProcessor::push_pre`).
#[allow(clippy::too_many_arguments)] // the run's parameters, each distinct; crate-internal
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
    mut pre: impl FnMut(usize) -> Option<Box<dyn infogravity::LogitsProcessor>>,
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
        if let Some(host) = pre(start) {
            p.push_pre(host);
        }
        let (ids, query_spans): (Vec<Vec<u32>>, Vec<_>) = rows[start..end].iter().cloned().unzip();
        let opts = crate::GenerateOptions {
            max_tokens,
            seed: seed + start as u64,
            query_spans,
            ..Default::default()
        };
        let gens = e.generate_batch(&mut p, &ids, &opts, |_, _, _| {})?;
        for (r, g) in gens.into_iter().enumerate() {
            if !done[start + r] {
                record(e, start + r, g)?;
            }
        }
    }
    Ok(())
}

/// A host logits processor that only looks: `f(row, first, logits)` on every step of every
/// sequence of a batch whose first row is `start` (sequence s is row `start + s − 1`), with
/// `first` true at a sequence's first step. For measurements taken where the pipeline starts.
pub(crate) struct Recorder<F> {
    start: usize,
    seen: std::collections::HashSet<u64>,
    f: F,
}

impl<F: FnMut(usize, bool, &[f32]) + Send> Recorder<F> {
    pub(crate) fn boxed(start: usize, f: F) -> Box<dyn infogravity::LogitsProcessor>
    where
        F: 'static,
    {
        Box::new(Recorder {
            start,
            seen: Default::default(),
            f,
        })
    }
}

impl<F: FnMut(usize, bool, &[f32]) + Send> infogravity::LogitsProcessor for Recorder<F> {
    fn apply(&mut self, seq: u64, logits: &mut [f32]) -> Result<()> {
        let first = self.seen.insert(seq);
        (self.f)(self.start + seq as usize - 1, first, logits);
        Ok(())
    }
    fn reset(&mut self, seq: u64) {
        self.seen.remove(&seq);
    }
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
