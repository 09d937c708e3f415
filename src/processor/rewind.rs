//! Rollback (SCIENCE.md §2.3 item 4; docs/DESIGN.md §1 "Interventions"): a sequence can be
//! rewound by up to `escape.rollback` = D accepted tokens, exactly — to the state it had
//! before them, as if they had never been accepted.
//!
//! Each accept saves what it is about to change into a ring of D snapshots, allocated once per
//! sequence: the position, sampling stream, hysteresis and abstention state ([`Dyn`]), the answer
//! aggregates, the surprisal trend and the loop detector's counters (the detector's ring is D
//! tokens longer, so its history survives a rewind). A rewind the processor advised also bans
//! the token that began the repeated copy at the position it returns to: the next step there
//! masks it, as antislop's backtracking does (Paech et al., arXiv:2510.15061).

use crate::policy::{LoopDetector, Trend};

use super::state::{Answer, Dyn};

/// Bans remembered per sequence (the oldest is forgotten first).
pub(crate) const BANS: usize = 8;

/// What one accept changes, as it was before.
#[derive(Debug, Clone, Copy)]
struct Snap {
    now: Dyn,
    answer: Answer,
    trend: Trend,
    loops: (u64, u32),
}

/// A sequence's snapshots and bans.
#[derive(Debug, Clone)]
pub(crate) struct Rewind {
    /// Ring of at most D snapshots, oldest first from `head − held`.
    snaps: Vec<Snap>,
    /// The detector's run counters per snapshot: D × P.
    runs: Box<[u32]>,
    depth: usize,
    period: usize,
    /// Next slot to write.
    head: usize,
    /// Snapshots held (≤ D): the most a rewind may drop now.
    held: usize,
    /// Tokens rewound on the processor's advice so far (against `rollback_budget`).
    pub(crate) spent: u32,
    /// (position, token) pairs: `token` is masked at the step of index `position`.
    bans: [(u32, u32); BANS],
    n_bans: usize,
    /// Slot of the next ban to overwrite once all are used.
    ban_head: usize,
}

impl Rewind {
    /// Snapshots for `depth` tokens of a detector with `period` = P counters; nothing is
    /// allocated when `depth` is 0.
    pub(crate) fn new(depth: usize, period: usize) -> Rewind {
        Rewind {
            snaps: Vec::with_capacity(depth),
            runs: vec![0; depth * period].into_boxed_slice(),
            depth,
            period,
            head: 0,
            held: 0,
            spent: 0,
            bans: [(0, 0); BANS],
            n_bans: 0,
            ban_head: 0,
        }
    }

    /// Tokens a rewind may drop now.
    pub(crate) fn held(&self) -> usize {
        self.held
    }

    /// Save the state an accept is about to change. O(P), no allocation.
    pub(crate) fn save(&mut self, now: &Dyn, answer: &Answer, trend: &Trend, loops: &LoopDetector) {
        if self.depth == 0 {
            return;
        }
        let run = &mut self.runs[self.head * self.period..(self.head + 1) * self.period];
        let snap = Snap {
            now: *now,
            answer: *answer,
            trend: *trend,
            loops: loops.save(run),
        };
        // The ring fills once (no allocation: capacity D); after a rewind `head` is inside it.
        if self.head < self.snaps.len() {
            self.snaps[self.head] = snap;
        } else {
            self.snaps.push(snap);
        }
        self.head = (self.head + 1) % self.depth;
        self.held = (self.held + 1).min(self.depth);
    }

    /// Back `n` (1 ≤ n ≤ held) accepts: restores what the n-th last accept saved.
    pub(crate) fn restore(
        &mut self,
        n: usize,
        now: &mut Dyn,
        answer: &mut Answer,
        trend: &mut Trend,
        loops: &mut LoopDetector,
    ) {
        debug_assert!(n >= 1 && n <= self.held);
        let slot = (self.head + self.depth - n) % self.depth;
        let s = self.snaps[slot];
        *now = s.now;
        *answer = s.answer;
        *trend = s.trend;
        loops.restore(
            s.loops,
            &self.runs[slot * self.period..(slot + 1) * self.period],
        );
        self.head = slot;
        self.held -= n;
        // Bans past the new position belonged to the dropped path.
        let mut k = 0;
        for i in 0..self.n_bans {
            if self.bans[i].0 <= now.step {
                self.bans[k] = self.bans[i];
                k += 1;
            }
        }
        self.n_bans = k;
        self.ban_head = k % BANS;
    }

    /// Mask `token` at the step of index `position`.
    pub(crate) fn ban(&mut self, position: u32, token: u32) {
        if self.n_bans < BANS {
            self.bans[self.n_bans] = (position, token);
            self.n_bans += 1;
        } else {
            self.bans[self.ban_head] = (position, token);
            self.ban_head = (self.ban_head + 1) % BANS;
        }
    }

    /// The tokens banned at the step of index `position`, into `out`; returns how many.
    pub(crate) fn banned(&self, position: u32, out: &mut [u32; BANS]) -> usize {
        let mut k = 0;
        for &(p, t) in &self.bans[..self.n_bans] {
            if p == position {
                out[k] = t;
                k += 1;
            }
        }
        k
    }
}

/// Scratch for [`Rewind::banned`].
pub(crate) type Banned = [u32; BANS];

#[cfg(test)]
mod tests {
    use super::*;

    /// The per-token memory `escape.rollback` documents: a snapshot (160 bytes on x86-64) plus 4
    /// bytes per period.
    #[test]
    fn a_snapshot_is_small() {
        let n = std::mem::size_of::<Snap>();
        assert!(n <= 160, "{n} bytes");
        // The figures the docs state (x86-64).
        #[cfg(target_arch = "x86_64")]
        assert_eq!((n, std::mem::size_of::<Answer>()), (160, 88));
    }
}
