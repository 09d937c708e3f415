//! Batches: pipeline stage 2 for every row (on the worker pool), then stages 3–7 for every
//! row, so that a failing row stops the batch before any row is written or any sequence moves.

use crate::error::{Error, Result};
use crate::field::Logit;
use crate::report::StepReport;
use crate::sampler::StepMode;

use super::state::SeqState;
use super::step::{self, Measured, Scratch};
use super::{Core, GravityProcessor};

impl GravityProcessor {
    /// One step on a row-major `[B, V]` batch; row b belongs to `seqs[b]` (distinct live ids).
    /// Rows are split across the worker pool when `limits.threads` > 1.
    ///
    /// Atomic: every row is measured before any is decided, so on an error (an unknown or
    /// repeated id, a NaN/+inf/all-masked row: [`Error::BatchRow`] names the first failing row)
    /// no report is written, no row is rewritten and no sequence moves — on one thread or many.
    /// Host processors run on every row first (see [`LogitsProcessor`]).
    pub fn step_batch<E: Logit>(
        &mut self,
        seqs: &[u64],
        logits: &mut [E],
        mode: StepMode,
        reports: &mut [StepReport],
    ) -> Result<()> {
        let v = self.core.vocab;
        let b = seqs.len();
        let want = b.checked_mul(v).ok_or(Error::SizeMismatch {
            what: "batch logits (B × V overflows)",
            expected: usize::MAX,
            got: logits.len(),
        })?;
        if logits.len() != want {
            return Err(Error::SizeMismatch {
                what: "batch logits (B × V)",
                expected: want,
                got: logits.len(),
            });
        }
        if reports.len() != b {
            return Err(Error::SizeMismatch {
                what: "batch reports",
                expected: b,
                got: reports.len(),
            });
        }
        if b == 0 {
            return Ok(());
        }
        self.table.claim(seqs)?;
        for (&id, row) in seqs.iter().zip(logits.chunks_exact_mut(v)) {
            self.run_pre(id, row)?;
        }
        let core = &self.core;
        let states = StatePtr(self.table.seqs.as_mut_ptr());
        let slots = &self.table.batch;
        let workers = &mut self.workers;
        match &self.pool {
            Some(pool) if b > 1 => {
                use rayon::prelude::*;
                let per = b.div_ceil(workers.len());
                pool.install(|| {
                    logits
                        .par_chunks(per * v)
                        .zip(workers.par_iter_mut())
                        .enumerate()
                        .for_each(|(k, (rows, w))| measure_rows(core, w, rows, k * per))
                });
                first_failure(workers, seqs)?;
                pool.install(|| {
                    logits
                        .par_chunks_mut(per * v)
                        .zip(reports.par_chunks_mut(per))
                        .zip(slots.par_chunks(per))
                        .zip(workers.par_iter_mut())
                        .for_each(|(((rows, reps), sl), w)| {
                            decide_rows(core, &states, w, rows, reps, sl, mode)
                        })
                });
            }
            _ => {
                let w = &mut workers[0];
                measure_rows(core, w, logits, 0);
                first_failure(std::slice::from_mut(w), seqs)?;
                decide_rows(core, &states, w, logits, reports, slots, mode);
            }
        }
        Ok(())
    }
}

/// Batch stage 2 on one worker's rows (`first` = the batch index of its first row): measure
/// each, keeping its field and candidates; stop at the first failing row and keep its error.
fn measure_rows<E: Logit>(core: &Core, w: &mut Scratch, rows: &[E], first: usize) {
    w.measured.clear();
    w.arena.clear();
    w.failed = None;
    for (i, row) in rows.chunks_exact(core.vocab).enumerate() {
        match step::measure(core, &mut w.cands, row) {
            Ok(field) => {
                let start = w.arena.len();
                w.arena.extend_from_slice(&w.cands.items);
                w.measured.push(Measured {
                    field,
                    start,
                    len: w.cands.items.len(),
                    overflow: w.cands.overflow,
                });
            }
            Err(e) => {
                w.failed = Some((first + i, e));
                return;
            }
        }
    }
}

/// The error of the lowest failing batch row, if any (deterministic whatever the threads).
fn first_failure(workers: &mut [Scratch], seqs: &[u64]) -> Result<()> {
    let first = workers
        .iter_mut()
        .filter_map(|w| w.failed.take())
        .min_by_key(|(row, _)| *row);
    match first {
        None => Ok(()),
        Some((row, e)) => Err(Error::BatchRow {
            row,
            seq: seqs[row],
            source: Box::new(e),
        }),
    }
}

/// Batch stages 3–7 on one worker's measured rows.
fn decide_rows<E: Logit>(
    core: &Core,
    states: &StatePtr,
    w: &mut Scratch,
    rows: &mut [E],
    reports: &mut [StepReport],
    slots: &[usize],
    mode: StepMode,
) {
    for (i, ((row, rep), &slot)) in rows
        .chunks_exact_mut(core.vocab)
        .zip(reports.iter_mut())
        .zip(slots)
        .enumerate()
    {
        let m = w.measured[i];
        w.cands.items.clear();
        w.cands
            .items
            .extend_from_slice(&w.arena[m.start..m.start + m.len]);
        w.cands.overflow = m.overflow;
        // SAFETY: every slot index is < seqs.len() (from the index) and distinct within the
        // batch (checked with the epoch mark in `SeqTable::claim`), so each worker gets
        // exclusive access to the states of its own rows; `seqs` is not resized meanwhile.
        let st = unsafe { &mut *states.get().add(slot) };
        *rep = step::decide(core, st, w, &m.field, row, mode);
    }
}

struct StatePtr(*mut SeqState);
impl StatePtr {
    fn get(&self) -> *mut SeqState {
        self.0
    }
}
// SAFETY: the pointer is only dereferenced at distinct indices by different workers (see
// `decide_rows`), while `GravityProcessor` is mutably borrowed for the whole batch.
unsafe impl Send for StatePtr {}
// SAFETY: as above; shared access only hands out the base pointer.
unsafe impl Sync for StatePtr {}
