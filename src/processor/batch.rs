//! Batches: pipeline stage 2 for every row (on the worker pool), then stages 3–7 for every
//! row, so that a failing row stops the batch before any row is written or any sequence moves.

use crate::error::{Error, Result};
use crate::field::Logit;
use crate::report::StepReport;
use crate::sampler::StepMode;

use super::state::SeqState;
use super::step::{self, Measured, Scratch};
use super::{Core, GravityProcessor};

/// The rows of a batch: one contiguous row-major `[B, V]` block, or B separate rows anywhere
/// in memory (a host's subset of its own batch, zero copy), as slices or as raw addresses (the
/// C ABI's row-pointer batches).
enum Rows<'a, 'b, E> {
    Block(&'a mut [E]),
    Each(&'a mut [&'b mut [E]]),
    Raw(&'a [RawRow], std::marker::PhantomData<E>),
}

/// The address of one row of V elements (the C ABI's row-pointer batches).
#[derive(Debug, Clone, Copy)]
#[repr(transparent)]
pub(crate) struct RawRow(pub *mut std::ffi::c_void);

// SAFETY: a `RawRow` is only dereferenced under `step_raw_rows`'s contract: distinct,
// non-overlapping rows that nothing else touches during the call, each used by one worker.
unsafe impl Send for RawRow {}
// SAFETY: as above; sharing the address itself is harmless.
unsafe impl Sync for RawRow {}

impl RawRow {
    /// # Safety
    /// The row must hold `v` valid `E` that nothing else accesses while the slice lives.
    unsafe fn get<'r, E>(self, v: usize) -> &'r mut [E] {
        // SAFETY: forwarded contract.
        unsafe { std::slice::from_raw_parts_mut(self.0.cast::<E>(), v) }
    }
}

impl GravityProcessor {
    /// One step on a row-major `[B, V]` batch; row b belongs to `seqs[b]` (distinct live ids).
    /// Rows are split across the worker pool when `limits.threads` > 1.
    ///
    /// Atomic: every row is measured before any is decided, so on an error (an unknown or
    /// repeated id, a NaN/+inf/all-masked row: [`Error::BatchRow`] names the first failing row)
    /// no report is written, no row is rewritten and no sequence moves — on one thread or many.
    /// Host processors run on every row first (see [`super::LogitsProcessor`]).
    pub fn step_batch<E: Logit>(
        &mut self,
        seqs: &[u64],
        logits: &mut [E],
        mode: StepMode,
        reports: &mut [StepReport],
    ) -> Result<()> {
        let want = seqs.len().checked_mul(self.core.vocab);
        if want != Some(logits.len()) {
            return Err(Error::SizeMismatch {
                what: "batch logits (B × V)",
                expected: want.unwrap_or(usize::MAX),
                got: logits.len(),
            });
        }
        self.run_batch(seqs, Rows::Block(logits), mode, reports)
    }

    /// [`step_batch`](Self::step_batch) on rows that are not one block: `rows[b]` (V elements)
    /// belongs to `seqs[b]`. The rows are used in place (no copy), on the worker pool.
    pub fn step_rows<E: Logit>(
        &mut self,
        seqs: &[u64],
        rows: &mut [&mut [E]],
        mode: StepMode,
        reports: &mut [StepReport],
    ) -> Result<()> {
        if rows.len() != seqs.len() {
            return Err(Error::SizeMismatch {
                what: "batch rows",
                expected: seqs.len(),
                got: rows.len(),
            });
        }
        if let Some(r) = rows.iter().find(|r| r.len() != self.core.vocab) {
            return Err(Error::SizeMismatch {
                what: "logits row",
                expected: self.core.vocab,
                got: r.len(),
            });
        }
        self.run_batch(seqs, Rows::Each(rows), mode, reports)
    }

    /// [`step_rows`](Self::step_rows) on rows given by address (what the C ABI's
    /// `ig_processor_step_rows` hands over).
    ///
    /// # Safety
    /// Each of `rows` must point to V valid, writable elements of `E`, aligned for `E`; the
    /// rows must not overlap one another, and nothing else may access them during the call.
    pub(crate) unsafe fn step_raw_rows<E: Logit>(
        &mut self,
        seqs: &[u64],
        rows: &[RawRow],
        mode: StepMode,
        reports: &mut [StepReport],
    ) -> Result<()> {
        if rows.len() != seqs.len() {
            return Err(Error::SizeMismatch {
                what: "batch rows",
                expected: seqs.len(),
                got: rows.len(),
            });
        }
        self.run_batch::<E>(
            seqs,
            Rows::Raw(rows, std::marker::PhantomData),
            mode,
            reports,
        )
    }

    fn run_batch<E: Logit>(
        &mut self,
        seqs: &[u64],
        mut rows: Rows<'_, '_, E>,
        mode: StepMode,
        reports: &mut [StepReport],
    ) -> Result<()> {
        let v = self.core.vocab;
        let b = seqs.len();
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
        self.fold_queries(seqs)?;
        match &mut rows {
            Rows::Block(block) => {
                for (&id, row) in seqs.iter().zip(block.chunks_exact_mut(v)) {
                    self.run_pre(id, row)?;
                }
            }
            Rows::Each(each) => {
                for (&id, row) in seqs.iter().zip(each.iter_mut()) {
                    self.run_pre(id, row)?;
                }
            }
            Rows::Raw(raw, _) => {
                for (&id, row) in seqs.iter().zip(raw.iter()) {
                    // SAFETY: `step_raw_rows`'s contract; one row at a time.
                    self.run_pre(id, unsafe { row.get::<E>(v) })?;
                }
            }
        }
        let core = &self.core;
        let states = StatePtr(self.table.seqs.as_mut_ptr());
        let slots = &self.table.batch;
        let workers = &mut self.workers;
        match (&self.pool, rows) {
            (Some(pool), Rows::Block(block)) if b > 1 => {
                use rayon::prelude::*;
                let per = b.div_ceil(workers.len());
                pool.install(|| {
                    block
                        .par_chunks(per * v)
                        .zip(workers.par_iter_mut())
                        .enumerate()
                        .for_each(|(k, (r, w))| measure_rows(core, w, r.chunks_exact(v), k * per))
                });
                first_failure(workers, seqs)?;
                pool.install(|| {
                    block
                        .par_chunks_mut(per * v)
                        .zip(reports.par_chunks_mut(per))
                        .zip(slots.par_chunks(per))
                        .zip(workers.par_iter_mut())
                        .for_each(|(((r, reps), sl), w)| {
                            decide_rows(core, &states, w, r.chunks_exact_mut(v), reps, sl, mode)
                        })
                });
            }
            (Some(pool), Rows::Each(each)) if b > 1 => {
                use rayon::prelude::*;
                let per = b.div_ceil(workers.len());
                pool.install(|| {
                    each.par_chunks(per)
                        .zip(workers.par_iter_mut())
                        .enumerate()
                        .for_each(|(k, (r, w))| {
                            measure_rows(core, w, r.iter().map(|x| &**x), k * per)
                        })
                });
                first_failure(workers, seqs)?;
                pool.install(|| {
                    each.par_chunks_mut(per)
                        .zip(reports.par_chunks_mut(per))
                        .zip(slots.par_chunks(per))
                        .zip(workers.par_iter_mut())
                        .for_each(|(((r, reps), sl), w)| {
                            let rows = r.iter_mut().map(|x| &mut **x);
                            decide_rows(core, &states, w, rows, reps, sl, mode)
                        })
                });
            }
            (Some(pool), Rows::Raw(raw, _)) if b > 1 => {
                use rayon::prelude::*;
                let per = b.div_ceil(workers.len());
                pool.install(|| {
                    raw.par_chunks(per)
                        .zip(workers.par_iter_mut())
                        .enumerate()
                        .for_each(|(k, (r, w))| {
                            // SAFETY: `step_raw_rows`'s contract: distinct rows, each in
                            // exactly one chunk; the measure pass only reads.
                            let rows = r.iter().map(|x| unsafe { &*x.get::<E>(v) });
                            measure_rows(core, w, rows, k * per)
                        })
                });
                first_failure(workers, seqs)?;
                pool.install(|| {
                    raw.par_chunks(per)
                        .zip(reports.par_chunks_mut(per))
                        .zip(slots.par_chunks(per))
                        .zip(workers.par_iter_mut())
                        .for_each(|(((r, reps), sl), w)| {
                            // SAFETY: as above: no two workers touch the same row.
                            let rows = r.iter().map(|x| unsafe { x.get::<E>(v) });
                            decide_rows(core, &states, w, rows, reps, sl, mode)
                        })
                });
            }
            (_, Rows::Raw(raw, _)) => {
                let w = &mut workers[0];
                // SAFETY: `step_raw_rows`'s contract; the measure pass only reads.
                let rows = raw.iter().map(|x| unsafe { &*x.get::<E>(v) });
                measure_rows(core, w, rows, 0);
                first_failure(std::slice::from_mut(w), seqs)?;
                // SAFETY: as above; each row is written by one decision, one at a time.
                let rows = raw.iter().map(|x| unsafe { x.get::<E>(v) });
                decide_rows(core, &states, w, rows, reports, slots, mode);
            }
            (_, Rows::Block(block)) => {
                let w = &mut workers[0];
                measure_rows(core, w, block.chunks_exact(v), 0);
                first_failure(std::slice::from_mut(w), seqs)?;
                decide_rows(
                    core,
                    &states,
                    w,
                    block.chunks_exact_mut(v),
                    reports,
                    slots,
                    mode,
                );
            }
            (_, Rows::Each(each)) => {
                let w = &mut workers[0];
                measure_rows(core, w, each.iter().map(|x| &**x), 0);
                first_failure(std::slice::from_mut(w), seqs)?;
                let rows = each.iter_mut().map(|x| &mut **x);
                decide_rows(core, &states, w, rows, reports, slots, mode);
            }
        }
        Ok(())
    }
}

/// Batch stage 2 on one worker's rows (`first` = the batch index of its first row): measure
/// each, keeping its field and candidates; stop at the first failing row and keep its error.
fn measure_rows<'r, E: Logit>(
    core: &Core,
    w: &mut Scratch,
    rows: impl Iterator<Item = &'r [E]>,
    first: usize,
) {
    w.measured.clear();
    w.arena.clear();
    w.failed = None;
    for (i, row) in rows.enumerate() {
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
fn decide_rows<'r, E: Logit>(
    core: &Core,
    states: &StatePtr,
    w: &mut Scratch,
    rows: impl Iterator<Item = &'r mut [E]>,
    reports: &mut [StepReport],
    slots: &[usize],
    mode: StepMode,
) {
    for (i, ((row, rep), &slot)) in rows.zip(reports.iter_mut()).zip(slots).enumerate() {
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
