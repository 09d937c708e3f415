//! Black holes (docs/EVALUATION.md §2): open-ended prompts decoded greedily, with a
//! repetition-stop rule, with a DRY penalty, and with the processor's escape intervention.
//! Loops are judged by [`loops`], a rule independent of the processor's detector.

use crate::Engine;
use infogravity::Result;

/// A generation loops when some unit of p ≤ 32 tokens repeats back to back over at least
/// max(3p, 16) tokens (s[i] = s[i − p] along the whole stretch).
pub fn loops(tokens: &[u32]) -> bool {
    (1..=32).any(|p| {
        let need = (3 * p).max(16);
        let mut run = 0;
        for i in p..tokens.len() {
            if tokens[i] == tokens[i - p] {
                run += 1;
                if run + p >= need {
                    return true;
                }
            } else {
                run = 0;
            }
        }
        false
    })
}

/// vLLM's `repetition_detection` rule: stop once the output ends with a pattern of
/// `min_size..=max_size` tokens repeated `min_count` times back to back. Returns the length at
/// which a sequence generated without the rule would have been stopped (greedy decoding does
/// not depend on later tokens, so cutting afterwards equals stopping then).
pub fn repetition_stop(
    tokens: &[u32],
    min_size: usize,
    max_size: usize,
    min_count: usize,
) -> usize {
    for end in 1..=tokens.len() {
        let t = &tokens[..end];
        for p in min_size.max(1)..=max_size {
            if p * min_count > end {
                break;
            }
            let unit = &t[end - p..];
            if (1..min_count).all(|k| &t[end - (k + 1) * p..end - k * p] == unit) {
                return end;
            }
        }
    }
    tokens.len()
}

/// DRY ("Don't Repeat Yourself", p-e-w, text-generation-webui #5677 / llama.cpp): for each
/// earlier position i whose token equals the last one, the match length n is how far the
/// contexts before i and before the end agree going back (stopping at a sequence breaker);
/// the token that followed i would extend a repeat of length n, and when n ≥ `allowed_length`
/// its logit is lowered by `multiplier · base^(n − allowed_length)` (the largest n per token).
#[derive(Clone)]
pub struct Dry {
    pub multiplier: f32,
    pub base: f32,
    pub allowed_length: usize,
    /// Longest match looked for (bounds the work per step and the exponent).
    pub max_match: usize,
    /// breaker[t]: token t contains a sequence breaker ("\n", ":", "\"", "*").
    breaker: Vec<bool>,
    penalty: Vec<(u32, usize)>,
}

/// DRY as a host logits processor: each sequence's context is its prompt (from `begin`) and
/// the tokens accepted since.
pub struct DryProcessor {
    dry: Dry,
    context: std::collections::HashMap<u64, Vec<u32>>,
}

impl DryProcessor {
    pub fn new(dry: Dry) -> DryProcessor {
        DryProcessor {
            dry,
            context: Default::default(),
        }
    }
}

impl infogravity::LogitsProcessor for DryProcessor {
    fn apply(&mut self, seq: u64, logits: &mut [f32]) -> Result<()> {
        let ctx = self.context.get(&seq).map_or(&[][..], Vec::as_slice);
        self.dry.apply(ctx, logits);
        Ok(())
    }
    fn accept(&mut self, seq: u64, token: u32) -> Result<()> {
        self.context.entry(seq).or_default().push(token);
        Ok(())
    }
    fn begin(&mut self, seq: u64, context: &[u32]) {
        self.context.insert(seq, context.to_vec());
    }
    fn reset(&mut self, seq: u64) {
        self.context.remove(&seq);
    }
}

impl Dry {
    /// DRY with its published defaults (multiplier 0.8, base 1.75, allowed length 2, breakers
    /// "\n", ":", "\"", "*") for `e`'s vocabulary.
    pub fn new(e: &Engine) -> Result<Dry> {
        let v = e.lm.info().vocab;
        let mut breaker = vec![false; v];
        for (t, b) in breaker.iter_mut().enumerate() {
            let s = e.decode(&[t as u32])?;
            *b = ["\n", ":", "\"", "*"].iter().any(|x| s.contains(x));
        }
        Ok(Dry::with_breakers(breaker))
    }

    /// DRY's defaults with an explicit breaker table (breaker[t] for each token t).
    pub fn with_breakers(breaker: Vec<bool>) -> Dry {
        Dry {
            multiplier: 0.8,
            base: 1.75,
            allowed_length: 2,
            max_match: 50,
            breaker,
            penalty: vec![],
        }
    }

    /// Lower the logits of the tokens that would extend a repeat of `context`.
    pub fn apply(&mut self, context: &[u32], logits: &mut [f32]) {
        let n = context.len();
        if n < 2 {
            return;
        }
        let last = context[n - 1];
        if self.breaker[last as usize] {
            return;
        }
        self.penalty.clear();
        for i in (0..n - 1).rev() {
            if context[i] != last {
                continue;
            }
            let mut m = 0;
            while m <= i
                && m < self.max_match
                && context[i - m] == context[n - 1 - m]
                && !self.breaker[context[i - m] as usize]
            {
                m += 1;
            }
            if m >= self.allowed_length {
                self.penalty.push((context[i + 1], m));
            }
        }
        // Largest match per token.
        self.penalty.sort_unstable();
        let mut k = 0;
        while k < self.penalty.len() {
            let (t, mut m) = self.penalty[k];
            while k + 1 < self.penalty.len() && self.penalty[k + 1].0 == t {
                k += 1;
                m = m.max(self.penalty[k].1);
            }
            logits[t as usize] -=
                self.multiplier * self.base.powi((m - self.allowed_length) as i32);
            k += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loop_judge() {
        let cyc: Vec<u32> = (0..40).map(|i| [1, 2, 3][i % 3]).collect();
        assert!(loops(&cyc));
        assert!(!loops(&cyc[..15])); // 15 < 16 tokens
        let varied: Vec<u32> = (0..200).collect();
        assert!(!loops(&varied));
        let mut tail = varied.clone();
        tail.extend((0..60).map(|i| 500 + (i % 20) as u32)); // a 20-token unit, 3 times
        assert!(loops(&tail));
    }

    #[test]
    fn dry_penalises_the_token_that_extends_a_repeat() {
        let mut breaker = vec![false; 10];
        breaker[9] = true;
        let mut dry = Dry::with_breakers(breaker);
        // a b c d a b c → d would extend a repeat of length 3: 0.8 · 1.75^(3 − 2).
        let mut z = vec![0f32; 10];
        dry.apply(&[0, 1, 2, 3, 0, 1, 2], &mut z);
        assert!((z[3] + 0.8 * 1.75).abs() < 1e-6, "{z:?}");
        assert_eq!(z.iter().filter(|&&x| x != 0.0).count(), 1);
        // A repeat of length 1 (< allowed length 2) is free; a breaker ends the match.
        let mut z = vec![0f32; 10];
        dry.apply(&[5, 3, 4, 5], &mut z);
        assert!(z.iter().all(|&x| x == 0.0));
        let mut z = vec![0f32; 10];
        dry.apply(&[0, 9, 1, 2, 4, 0, 9, 1, 2], &mut z);
        assert!((z[4] + 0.8).abs() < 1e-6, "{z:?}"); // match "1 2" only: 0.8 · 1.75⁰
    }

    /// As a host processor of the gravity processor, DRY sees the prompt given at `begin` and
    /// every accepted token, and edits the row first in the pipeline.
    #[test]
    fn dry_runs_first_in_the_gravity_pipeline() {
        use infogravity::{Config, GravityProcessor, SeqParams, StepMode};
        let mut breaker = vec![false; 10];
        breaker[9] = true;
        let cfg = Config::from_json(r#"{"preset":"neutral"}"#).unwrap();
        let mut p = GravityProcessor::new(cfg, 10).unwrap();
        p.push_pre(Box::new(DryProcessor::new(Dry::with_breakers(breaker))));
        let params = SeqParams {
            context: &[0, 1, 2, 3, 0, 1],
            ..Default::default()
        };
        p.begin(1, &params).unwrap();
        // The prompt "a b c d a b": c would extend a repeat of length 2 (0.8 · 1.75⁰).
        let mut z = vec![0f32; 10];
        p.step(1, &mut z, StepMode::Logits).unwrap();
        assert!((z[2] + 0.8).abs() < 1e-6, "{z:?}");
        // Then the accepted "c": d would extend a repeat of length 3.
        p.accept(1, 2).unwrap();
        let mut z = vec![0f32; 10];
        p.step(1, &mut z, StepMode::Logits).unwrap();
        assert!((z[3] + 0.8 * 1.75).abs() < 1e-6, "{z:?}");
    }

    #[test]
    fn repetition_stop_cuts_at_the_third_repeat() {
        let t: Vec<u32> = vec![9, 8, 1, 2, 1, 2, 1, 2, 1, 2];
        assert_eq!(repetition_stop(&t, 2, 4, 3), 8);
        assert_eq!(repetition_stop(&t, 3, 4, 3), t.len());
    }
}

/// One open-ended generation.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct LoopRecord {
    pub method: String,
    pub prompt: usize,
    pub tokens: Vec<u32>,
    pub text: String,
    pub stop: String,
    /// log p(token | context) under the unmodified model at T = 1, per generated token.
    pub logprobs: Vec<f32>,
    /// Rewinds taken (`escape.rollback`) and the tokens they dropped.
    #[serde(default)]
    pub rollbacks: usize,
    #[serde(default)]
    pub rewound: usize,
}

/// The methods compared, with the processor configuration each runs under. `balanced` carries
/// the escape's defaults (graded repeat penalty, would-close guard, black-hole kick and cycle
/// penalty); the two ablations keep one of the two parts that act before a loop completes; the
/// fifth runs the graded penalty under DRY's own rule over the last 64 tokens (`repeat_window`);
/// the last two rewind where the guard fires (`escape.rollback`, the host truncating its KV
/// cache), with and without the graded penalty.
pub const METHODS: [(&str, &str); 8] = [
    ("greedy", r#"{"preset":"neutral","temperature":{"base":0}}"#),
    ("DRY", r#"{"preset":"neutral","temperature":{"base":0}}"#),
    (
        "escape (balanced, T = 0)",
        r#"{"preset":"balanced","temperature":{"base":0}}"#,
    ),
    (
        "escape: graded penalty only",
        r#"{"preset":"balanced","temperature":{"base":0},"escape":{"guard_min_period":0}}"#,
    ),
    (
        "escape: guard only",
        r#"{"preset":"balanced","temperature":{"base":0},"escape":{"repeat_penalty":0}}"#,
    ),
    (
        "escape: DRY rule, window 64",
        r#"{"preset":"balanced","temperature":{"base":0},"escape":{"repeat_window":64,"repeat_allowed":3}}"#,
    ),
    (
        "escape + rollback (balanced, T = 0)",
        r#"{"preset":"balanced","temperature":{"base":0},"escape":{"rollback":32}}"#,
    ),
    (
        "rollback only (T = 0)",
        r#"{"preset":"balanced","temperature":{"base":0},"escape":{"repeat_penalty":0,"rollback":32}}"#,
    ),
];

/// vLLM-style repetition stop applied to greedy: pattern sizes 2..=32, 3 repeats.
pub const REP_STOP: (usize, usize, usize) = (2, 32, 3);

/// log p of each of `tokens` after `prompt` under the model (one teacher-forced prefill).
pub fn logprobs(e: &mut Engine, prompt: &[u32], tokens: &[u32]) -> Result<Vec<f32>> {
    if tokens.is_empty() {
        return Ok(vec![]);
    }
    let v = e.lm.info().vocab;
    let all: Vec<u32> = prompt.iter().chain(tokens).copied().collect();
    let (logits, _) = e.prefill(&all[..all.len() - 1])?;
    let mut out = Vec::with_capacity(tokens.len());
    for (k, &t) in tokens.iter().enumerate() {
        let row = &logits[(prompt.len() - 1 + k) * v..(prompt.len() + k) * v];
        let f = infogravity::field::measure(row)?;
        out.push(-f.potential(row[t as usize]) as f32);
    }
    Ok(out)
}

/// Generate every prompt with every method (batches of `batch` prompts), appending records to
/// `out` as each batch finishes and skipping what is already there.
pub fn run_loops(
    e: &mut Engine,
    methods: &[(String, String)],
    prompts: &[String],
    max_tokens: usize,
    batch: usize,
    out: &std::path::Path,
    mut progress: impl FnMut(usize, usize),
) -> Result<Vec<LoopRecord>> {
    let mut have: Vec<LoopRecord> = super::read_jsonl(out, "loop results")?;
    let mut file = super::append(out)?;
    let ids: Vec<Vec<u32>> = prompts
        .iter()
        .map(|p| e.chat_prompt(&[crate::Message::new("user", p)], ""))
        .collect::<Result<_>>()?;
    let dry = Dry::new(e)?;
    let total = methods.len() * prompts.len();
    for (method, json) in methods {
        for start in (0..prompts.len()).step_by(batch.max(1)) {
            let rows: Vec<usize> = (start..(start + batch).min(prompts.len()))
                .filter(|&i| !have.iter().any(|r| r.method == *method && r.prompt == i))
                .collect();
            if rows.is_empty() {
                continue;
            }
            let batch_ids: Vec<Vec<u32>> = rows.iter().map(|&i| ids[i].clone()).collect();
            let mut p = crate::processor_for(e, json)?;
            if method == "DRY" {
                p.push_pre(Box::new(DryProcessor::new(dry.clone())));
            }
            let opts = crate::GenerateOptions {
                max_tokens,
                rollback: p.config().escape.rollback > 0,
                ..Default::default()
            };
            let gens = e.generate_batch(&mut p, &batch_ids, &opts, |_, _, _| {})?;
            for (&i, g) in rows.iter().zip(gens) {
                let lp = logprobs(e, &ids[i], &g.tokens)?;
                let r = LoopRecord {
                    method: method.clone(),
                    prompt: i,
                    text: g.text,
                    stop: g.stop.as_str().into(),
                    tokens: g.tokens,
                    logprobs: lp,
                    rollbacks: g.rollbacks,
                    rewound: g.rewound,
                };
                super::write_line(&mut file, out, &r)?;
                have.push(r);
            }
            progress(have.len().min(total), total);
        }
    }
    have.retain(|r| r.prompt < prompts.len());
    have.sort_by(|a, b| (a.method.as_str(), a.prompt).cmp(&(b.method.as_str(), b.prompt)));
    Ok(have)
}

/// One output's log-likelihood under another model (the judge, docs/EVALUATION.md §2.5): its
/// text re-tokenised by the judge after the judge's own chat prompt for the same request.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct JudgeRecord {
    pub method: String,
    pub prompt: usize,
    /// log p of each of the judge's tokens of the text.
    pub logprobs: Vec<f32>,
}

/// Score every record under `judge`, appending to `out` and skipping what is already there.
pub fn run_judge(
    judge: &mut Engine,
    prompts: &[String],
    records: &[LoopRecord],
    out: &std::path::Path,
    mut progress: impl FnMut(usize, usize),
) -> Result<Vec<JudgeRecord>> {
    use std::io::Write;
    let mut have: Vec<JudgeRecord> = super::read_jsonl(out, "judge results")?;
    let mut file = super::append(out)?;
    for r in records {
        if have
            .iter()
            .any(|j| j.method == r.method && j.prompt == r.prompt)
        {
            continue;
        }
        let ids = judge.chat_prompt(&[crate::Message::new("user", &prompts[r.prompt])], "")?;
        let text = judge.encode(&r.text)?;
        let j = JudgeRecord {
            method: r.method.clone(),
            prompt: r.prompt,
            logprobs: logprobs(judge, &ids, &text)?,
        };
        let line = serde_json::to_string(&j).expect("records serialise");
        writeln!(file, "{line}")
            .map_err(|err| infogravity::Error::Io(format!("{}: {err}", out.display())))?;
        have.push(j);
        progress(have.len(), records.len());
    }
    Ok(have)
}

/// The no-loop control (SCIENCE.md §2.4): greedy QA answers replayed through the processor
/// under an escape configuration. Each step's row keeps the recorded top logit on the greedy
/// token and the runner-up's logit everywhere else, so a penalty changes the answer exactly when
/// it would have changed the greedy choice.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct Control {
    pub answers: usize,
    pub steps: usize,
    /// Steps with an escape penalty (graded, guard or cycle).
    pub events: usize,
    /// Answers with at least one.
    pub answers_touched: usize,
    /// Steps whose greedy token the penalty replaced.
    pub changed: usize,
}

/// Replay `records` (an `eval qa` run's `qa.jsonl`) through a processor built from `json`.
pub fn qa_control(json: &str, records: &[super::qa::Record]) -> Result<Control> {
    use infogravity::{GravityProcessor, SeqParams, StepMode, flags};
    let escape = flags::REPEAT_PENALTY | flags::GUARD | flags::CYCLE_PENALTY;
    let mut c = Control::default();
    let Some(v) = records.first().map(|r| r.vocab) else {
        return Ok(c);
    };
    let mut p = GravityProcessor::new(infogravity::Config::from_json(json)?, v)?;
    let mut row = vec![0f32; v];
    for (k, r) in records.iter().enumerate() {
        let seq = k as u64;
        p.begin(seq, &SeqParams::default())?;
        let mut touched = false;
        for s in &r.steps {
            row.fill(s.second);
            row[s.argmax as usize] = s.max;
            let rep = p.step(seq, &mut row, StepMode::Sample)?;
            c.steps += 1;
            if rep.flags & escape != 0 {
                c.events += 1;
                touched = true;
            }
            if rep.token != Some(s.argmax) {
                c.changed += 1;
            }
            p.accept(seq, s.argmax)?;
        }
        p.end(seq)?;
        c.answers += 1;
        c.answers_touched += touched as usize;
    }
    Ok(c)
}

/// The black-hole table: per method, loop rate, distinct-2/3 (mean over outputs), mean
/// log-likelihood per token and mean length; plus the repetition stop derived from greedy.
pub fn report(
    methods: &[(String, String)],
    records: &[LoopRecord],
    judge: &[JudgeRecord],
) -> (String, serde_json::Value) {
    use std::fmt::Write;
    /// (tokens, log-probs, ended by EOS, the judge's log-probs, tokens decoded beyond the kept
    /// ones: each rewind's dropped tokens and the one fed again) of one output.
    type Output = (Vec<u32>, Vec<f32>, bool, Option<Vec<f32>>, usize);
    let mut rows: Vec<(String, Vec<Output>)> = vec![];
    for (m, _) in methods {
        let rs: Vec<Output> = records
            .iter()
            .filter(|r| r.method == *m)
            .map(|r| {
                let j = judge
                    .iter()
                    .find(|j| j.method == *m && j.prompt == r.prompt)
                    .map(|j| j.logprobs.clone());
                let extra = r.rewound + r.rollbacks;
                (
                    r.tokens.clone(),
                    r.logprobs.clone(),
                    r.stop == "eos",
                    j,
                    extra,
                )
            })
            .collect();
        if m == "greedy" {
            let (a, b, c) = REP_STOP;
            let cut = rs
                .iter()
                .map(|(t, lp, eos, _, _)| {
                    let n = repetition_stop(t, a, b, c);
                    // The judge re-tokenises the whole text; a cut one has no judge score.
                    let j = None;
                    (
                        t[..n].to_vec(),
                        lp[..n].to_vec(),
                        *eos && n == t.len(),
                        j,
                        0,
                    )
                })
                .collect();
            rows.push((m.to_string(), rs));
            rows.push((format!("repetition stop (sizes {a}–{b}, {c} repeats)"), cut));
        } else {
            rows.push((m.to_string(), rs));
        }
    }
    let mut md = String::from(
        "| method | outputs | loop rate | distinct-2 | distinct-3 | mean log-likelihood (nats/token) | under the judge model | mean length (tokens) | ended by EOS | extra tokens decoded |\n|---|---|---|---|---|---|---|---|---|---|\n",
    );
    let mut json = serde_json::json!({});
    for (name, rs) in &rows {
        let n = rs.len().max(1) as f64;
        let loop_rate = rs.iter().filter(|r| loops(&r.0)).count() as f64 / n;
        let d = |k: usize| {
            rs.iter()
                .map(|r| super::metrics::distinct_n(&[&r.0], k))
                .sum::<f64>()
                / n
        };
        let (lp_sum, lp_n) = rs.iter().fold((0.0, 0usize), |(s, c), r| {
            (
                s + r.1.iter().map(|&x| x as f64).sum::<f64>(),
                c + r.1.len(),
            )
        });
        let ll = lp_sum / lp_n.max(1) as f64;
        // Per token of the judge's tokenisation, over the outputs it scored.
        let (j_sum, j_n) = rs
            .iter()
            .filter_map(|r| r.3.as_ref())
            .fold((0.0, 0usize), |(s, c), lp| {
                (s + lp.iter().map(|&x| x as f64).sum::<f64>(), c + lp.len())
            });
        let judged = (j_n > 0).then(|| j_sum / j_n as f64);
        let judged_md = judged.map_or("–".to_string(), |x| format!("{x:.3}"));
        let len = rs.iter().map(|r| r.0.len()).sum::<usize>() as f64 / n;
        let eos = rs.iter().filter(|r| r.2).count() as f64 / n;
        let (d2, d3) = (d(2), d(3));
        // Rewinds' recompute: tokens decoded beyond those kept, per kept token.
        let kept = rs.iter().map(|r| r.0.len()).sum::<usize>();
        let extra = rs.iter().map(|r| r.4).sum::<usize>();
        let overhead = extra as f64 / kept.max(1) as f64;
        let extra_md = if extra == 0 {
            "–".to_string()
        } else {
            format!("{:.1}%", 100.0 * overhead)
        };
        let _ = writeln!(
            md,
            "| {name} | {} | {loop_rate:.3} | {d2:.3} | {d3:.3} | {ll:.3} | {judged_md} | {len:.1} | {eos:.2} | {extra_md} |",
            rs.len()
        );
        json[name] = serde_json::json!({
            "outputs": rs.len(), "loop_rate": loop_rate, "distinct2": d2, "distinct3": d3,
            "loglik": ll, "judge_loglik": judged, "length": len, "eos": eos,
            "extra_tokens": overhead,
        });
    }
    (md, json)
}
