//! Bounded-work repetition detection for the black-hole score (docs/DESIGN.md §1 "Regimes").
//!
//! For every period p ≤ P, `run[p]` counts how many consecutive most recent tokens equal the
//! token p positions before them. A cycle of period p repeated R times leaves run(p) ≥ (R − 1)·p.
//! Each accepted token updates all P counters: O(P) compares, no hashing, exact. The history
//! ring holds max(P, longest attractor phrase) tokens, so memory per sequence is bounded.
//!
//! The same counters drive the escape penalties before a loop completes (docs/DESIGN.md §1
//! "Interventions"): the token that would extend the running repeat of period p is `back(p)`,
//! and the repeat is `run[p]` tokens long, or fewer when a sequence breaker came since.

/// Per-sequence repetition state.
#[derive(Debug, Clone)]
pub struct LoopDetector {
    ring: Box<[u32]>,
    /// Tokens pushed so far (saturating view: only the last `ring.len()` are kept).
    len: u64,
    /// run[p − 1] for p = 1..=P.
    run: Box<[u32]>,
    /// Tokens accepted since the last sequence breaker (all of them when none came).
    since_break: u32,
}

/// A back-to-back repeat still running after the latest token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repeat {
    /// Its period p.
    pub period: u32,
    /// run(p): how many of the latest tokens equal the token p before them.
    pub run: u32,
    /// The token that would extend it: the one p positions before the next.
    pub next: u32,
}

/// What the detector sees after the latest token.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cycle {
    /// Cycle strength in [0, 1]: max over p of run(p) / ((R − 1)·p), capped at 1.
    pub strength: f32,
    /// Smallest period with a complete cycle (strength 1), or 0.
    pub period: u32,
    /// The token that would extend the complete cycle (valid when `period > 0`).
    pub next: u32,
}

impl Cycle {
    /// No cycle.
    pub const NONE: Cycle = Cycle {
        strength: 0.0,
        period: 0,
        next: 0,
    };
}

impl LoopDetector {
    /// `max_period` = P; `history` ≥ P is the ring size (for attractor phrases).
    pub fn new(max_period: usize, history: usize) -> LoopDetector {
        LoopDetector {
            ring: vec![0; history.max(max_period).max(1)].into_boxed_slice(),
            len: 0,
            run: vec![0; max_period].into_boxed_slice(),
            since_break: 0,
        }
    }

    /// The token `back` positions before the next one (back = 1 is the last token; at most
    /// the tokens pushed and the ring's size).
    #[inline]
    pub(crate) fn back(&self, back: usize) -> u32 {
        let n = self.ring.len() as u64;
        self.ring[((self.len - back as u64) % n) as usize]
    }

    /// Record an accepted token; `breaker`: it is a sequence breaker. O(P).
    pub fn push(&mut self, tok: u32, breaker: bool) {
        self.since_break = if breaker {
            0
        } else {
            self.since_break.saturating_add(1)
        };
        for p in 1..=self.run.len() {
            let same = self.len >= p as u64 && self.back(p) == tok;
            let r = &mut self.run[p - 1];
            *r = if same { r.saturating_add(1) } else { 0 };
        }
        let n = self.ring.len() as u64;
        self.ring[(self.len % n) as usize] = tok;
        self.len += 1;
    }

    /// Cycle strength and, if complete, its period and the token that would extend it. O(P).
    pub fn cycle(&self, repeats: u32) -> Cycle {
        let mut out = Cycle {
            strength: 0.0,
            period: 0,
            next: 0,
        };
        let reps = repeats.saturating_sub(1).max(1) as f32;
        for p in 1..=self.run.len() {
            let s = (self.run[p - 1] as f32 / (reps * p as f32)).min(1.0);
            if s > out.strength {
                out.strength = s;
            }
            if s >= 1.0 && out.period == 0 {
                out.period = p as u32;
                out.next = self.back(p);
            }
        }
        out
    }

    /// Every repeat still running (run(p) ≥ 1), shortest period first. O(P).
    pub fn repeats(&self) -> impl Iterator<Item = Repeat> + '_ {
        self.run
            .iter()
            .enumerate()
            .filter(|&(_, &r)| r > 0)
            .map(|(i, &run)| Repeat {
                period: i as u32 + 1,
                run,
                next: self.back(i + 1),
            })
    }

    /// DRY's matches (p-e-w, text-generation-webui #5677) over the last `window` tokens: for
    /// each earlier occurrence of the latest token, `f(next, n)` with the token that followed it
    /// and n, how many tokens the text before it and the text ending now agree (at most
    /// `max_match`, and never across a sequence breaker). Nothing when the latest token is a
    /// breaker. O(window · max_match) compares at worst, O(window) when little repeats.
    pub fn matches(&self, window: usize, max_match: usize, mut f: impl FnMut(u32, u32)) {
        let have = (self.len.min(self.ring.len() as u64) as usize).min(window);
        let limit = max_match.min(self.since_break as usize);
        if have < 2 || limit == 0 {
            return;
        }
        let last = self.back(1);
        for k in 2..=have {
            if self.back(k) != last {
                continue;
            }
            // back(k + j) == back(1 + j): the copy ending k − 1 tokens ago against the end.
            let mut n = 1;
            while n < limit && k + n <= have && self.back(k + n) == self.back(1 + n) {
                n += 1;
            }
            f(self.back(k - 1), n as u32);
        }
    }

    /// Tokens accepted since the last sequence breaker.
    pub fn since_break(&self) -> u32 {
        self.since_break
    }

    /// Does the history end with `phrase`? O(|phrase|).
    pub fn ends_with(&self, phrase: &[u32]) -> bool {
        let k = phrase.len();
        if k == 0 || k > self.ring.len() || (self.len as usize) < k {
            return false;
        }
        phrase
            .iter()
            .enumerate()
            .all(|(i, &t)| self.back(k - i) == t)
    }

    /// Tokens pushed so far.
    pub fn pushed(&self) -> u64 {
        self.len
    }

    /// The counters a rewind restores, into `run` (length P): returns (tokens pushed, tokens
    /// since the last breaker). The ring itself is not copied: a ring of H + D tokens still
    /// holds the last H of any point up to D tokens back. O(P).
    pub(crate) fn save(&self, run: &mut [u32]) -> (u64, u32) {
        run.copy_from_slice(&self.run);
        (self.len, self.since_break)
    }

    /// Back to what [`save`](Self::save) returned, at most `ring − H` tokens ago (the caller's
    /// bound). O(P).
    pub(crate) fn restore(&mut self, (len, since_break): (u64, u32), run: &[u32]) {
        debug_assert!(len <= self.len && self.len - len <= self.ring.len() as u64);
        self.len = len;
        self.since_break = since_break;
        self.run.copy_from_slice(run);
    }

    /// Forget everything.
    pub fn clear(&mut self) {
        self.len = 0;
        self.since_break = 0;
        self.run.iter_mut().for_each(|r| *r = 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_smallest_complete_period() {
        let mut d = LoopDetector::new(8, 8);
        for &t in &[9, 1, 2, 3, 1, 2, 3] {
            d.push(t, false);
        }
        let c = d.cycle(3);
        assert_eq!(c.period, 0, "two repeats are not three");
        assert_eq!(c.strength, 0.5, "run 3 of the 6 that three repeats need");
        for &t in &[1, 2, 3] {
            d.push(t, false);
        }
        let c = d.cycle(3);
        assert_eq!((c.period, c.next), (3, 1));
        d.push(7, false);
        assert_eq!(d.cycle(3).period, 0);
    }

    #[test]
    fn dry_matches_every_earlier_occurrence() {
        let mut d = LoopDetector::new(4, 16);
        // a b c d x a b c: "a b c" matches 3 back at the first copy → d; c alone nowhere else.
        for &t in &[1, 2, 3, 4, 9, 1, 2, 3] {
            d.push(t, false);
        }
        let mut got = vec![];
        d.matches(16, 50, |next, n| got.push((next, n)));
        assert_eq!(got, vec![(4, 3)]);
        // The window bounds how far back: the first copy starts 8 tokens back.
        got.clear();
        d.matches(5, 50, |next, n| got.push((next, n)));
        assert!(got.is_empty());
        // max_match caps n; a breaker cuts it.
        got.clear();
        d.matches(16, 2, |next, n| got.push((next, n)));
        assert_eq!(got, vec![(4, 2)]);
        d.push(4, true);
        got.clear();
        d.matches(16, 50, |next, n| got.push((next, n)));
        assert!(got.is_empty(), "the latest token is a breaker");
        d.push(9, false);
        got.clear();
        d.matches(16, 50, |next, n| got.push((next, n)));
        assert_eq!(got, vec![(1, 1)], "the match stops at the breaker");
    }

    #[test]
    fn period_one_and_phrases() {
        let mut d = LoopDetector::new(4, 6);
        for _ in 0..3 {
            d.push(5, false);
        }
        assert_eq!(d.cycle(3).period, 1);
        assert_eq!(d.cycle(3).next, 5);
        d.push(6, false);
        assert!(d.ends_with(&[5, 5, 6]));
        assert!(!d.ends_with(&[5, 6, 6]));
        assert!(!d.ends_with(&[1, 2, 3, 4, 5, 6, 7]));
    }
}
