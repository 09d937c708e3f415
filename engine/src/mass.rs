//! Query mass from the model (docs/DESIGN.md §1): H(Q) at the answer position and over the prompt,
//! D(Q) = KL(p(·|C⊕Q) ‖ p(·|Q)) with one extra pass without the context, N(Q) against a Prior
//! and as the mean surprisal of the query's tokens.

use super::generate::{Engine, Message};
use infogravity::Result;
use infogravity::calibration::Calibration;
use infogravity::config::MassConfig;
use infogravity::field;
use infogravity::mass::{self, Prior, QueryMass};

/// KL(p ‖ q) in nats between the softmaxes of two logits rows (f64, exact two-pass).
pub fn kl_logits(p: &[f32], q: &[f32]) -> f64 {
    let lse = |z: &[f32]| {
        let m = z.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64;
        m + z.iter().map(|&x| (x as f64 - m).exp()).sum::<f64>().ln()
    };
    let (lp, lq) = (lse(p), lse(q));
    p.iter()
        .zip(q)
        .map(|(&a, &b)| {
            let la = a as f64 - lp;
            let pa = la.exp();
            if pa > 0.0 {
                pa * (la - (b as f64 - lq))
            } else {
                0.0
            }
        })
        .sum::<f64>()
        .max(0.0)
}

/// The chat prompt for `user` content, tokenised in three parts so the content's tokens are a
/// known span, with `stem` after the assistant prompt: (ids, span start, span end).
pub fn prompt_with_span(
    e: &Engine,
    system: Option<&str>,
    user: &str,
    stem: &str,
) -> Result<(Vec<u32>, usize, usize)> {
    let mut msgs = vec![];
    if let Some(s) = system {
        msgs.push(Message::new("system", s));
    }
    msgs.push(Message::new("user", "\u{0}"));
    let full = super::render_chat(&e.lm.info().chat_template, &msgs);
    let (pre, post) = full.split_once('\u{0}').expect("placeholder present");
    let mut ids = e.encode(pre)?;
    let start = ids.len();
    ids.extend(e.encode(user)?);
    let end = ids.len();
    ids.extend(e.encode(&format!("{post}{stem}"))?);
    Ok((ids, start, end))
}

/// M(Q) and its components for `query`, with an optional `context` placed before it in the
/// user message (separated by a blank line). The answer position is right after the assistant
/// prompt, or after `stem` (a prefilled answer start such as "The capital of France is") when
/// it is not empty: with a stem, D measures what the context changes about the answer's
/// content rather than about its first word.
pub fn query_mass(
    e: &mut Engine,
    query: &str,
    context: Option<&str>,
    stem: &str,
    prior: Option<&Prior>,
    cfg: &MassConfig,
    calib: Option<&Calibration>,
) -> Result<QueryMass> {
    let v = e.lm.info().vocab;
    let (ids, start, end) = prompt_with_span(e, None, query, stem)?;
    let (logits, _) = e.prefill(&ids)?;
    let mut q = prompt_mass(&ids, start, end, &logits, v, prior, cfg)?;
    let answer = &logits[logits.len() - v..];
    q.d = Some(match context {
        None => 0.0,
        Some(c) => {
            let (ids_c, _, _) = prompt_with_span(e, None, &format!("{c}\n\n{query}"), stem)?;
            let (lc, _) = e.prefill(&ids_c)?;
            let with_c = &lc[lc.len() - v..];
            kl_logits(with_c, answer) as f32
        }
    });
    Ok(mass::with_mass(q, cfg, calib.and_then(|c| c.mass.as_ref())))
}

/// The prompt-side components of M(Q) from the prefill logits `[P, V]` of `ids` (the query's
/// tokens are `ids[start..end]`): H at the answer position (last row) and over the prompt, the
/// mean surprisal of the query tokens, N_KL against `prior`. D and M are left unset.
pub fn prompt_mass(
    ids: &[u32],
    start: usize,
    end: usize,
    logits: &[f32],
    v: usize,
    prior: Option<&Prior>,
    cfg: &MassConfig,
) -> Result<QueryMass> {
    let rows = ids.len();
    let answer = &logits[(rows - 1) * v..];
    let fa = field::measure(answer)?;
    let mut q = QueryMass {
        h: Some(fa.entropy_norm() as f32),
        ..Default::default()
    };
    let mut h_sum = 0.0;
    for r in logits.chunks_exact(v) {
        h_sum += field::measure(r)?.entropy;
    }
    q.h_prompt_mean = Some((h_sum / rows as f64) as f32);
    // Surprisal of each query token given what precedes it (row i predicts token i + 1).
    if end > start && start > 0 {
        let mut s = 0.0;
        for i in start..end {
            let row = &logits[(i - 1) * v..i * v];
            s += field::measure(row)?.potential(row[ids[i] as usize]);
        }
        q.n_surprisal = Some((s / (end - start) as f64) as f32);
    }
    if let Some(p) = prior {
        let qt = &ids[start..end];
        if !qt.is_empty() {
            let mut scratch = Vec::new();
            q.n_kl = Some(p.novelty_kl(qt, cfg.prior_smoothing as f64, &mut scratch)? as f32);
        }
    }
    Ok(q)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kl_identities() {
        let a = [1.0f32, 2.0, 3.0];
        assert!(kl_logits(&a, &a).abs() < 1e-12);
        let b = [3.0f32, 2.0, 1.0];
        let p: Vec<f64> = {
            let z: f64 = a.iter().map(|&x| (x as f64).exp()).sum();
            a.iter().map(|&x| (x as f64).exp() / z).collect()
        };
        let q: Vec<f64> = {
            let z: f64 = b.iter().map(|&x| (x as f64).exp()).sum();
            b.iter().map(|&x| (x as f64).exp() / z).collect()
        };
        let want: f64 = p.iter().zip(&q).map(|(p, q)| p * (p / q).ln()).sum();
        assert!((kl_logits(&a, &b) - want).abs() < 1e-12);
    }
}

/// Information conductivity of an answer (docs/DESIGN.md §1): how much the query, rather than the
/// model's prior, determines the answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Conductivity {
    /// The answer y: the model's greedy reply to the query (token ids, without the end token).
    pub answer: Vec<u32>,
    /// σ = (1/L)[log p(y|Q) − log p(y|Q_null)], nats per token.
    pub sigma: f64,
    /// h_null: mean predictive entropy over y's positions under Q_null, nats.
    pub h_null: f64,
    /// ρ = σ / h_null.
    pub rho: f64,
    /// c̄: mean probability of y's tokens under Q.
    pub confidence: f64,
    /// Canned-answer score B = c̄·(1 − ρ), clamped to [0, 1]: confident yet independent of Q.
    pub canned: f64,
}

/// Log-probabilities and entropies of `answer` after the chat prompt for `user`.
fn score(e: &mut Engine, user: &str, answer: &[u32]) -> Result<(Vec<f64>, Vec<f64>)> {
    let (mut ids, _, _) = prompt_with_span(e, None, user, "")?;
    let p = ids.len();
    ids.extend_from_slice(answer);
    let (logits, _) = e.prefill(&ids)?;
    let v = e.lm.info().vocab;
    let (mut lp, mut h) = (vec![], vec![]);
    for (k, &tok) in answer.iter().enumerate() {
        let row = &logits[(p + k - 1) * v..(p + k) * v];
        let f = field::measure(row)?;
        lp.push(-f.potential(row[tok as usize]));
        h.push(f.entropy);
    }
    Ok((lp, h))
}

/// σ, ρ and B for the greedy answer (at most `max_tokens`) to `query`, against the content-free
/// query `null_query` (e.g. "N/A", as in calibrate-before-use).
pub fn conductivity(
    e: &mut Engine,
    query: &str,
    null_query: &str,
    max_tokens: usize,
) -> Result<Conductivity> {
    let v = e.lm.info().vocab;
    let eos = e.lm.info().eos_token_id;
    let (ids, _, _) = prompt_with_span(e, None, query, "")?;
    let mut cache = e.lm.new_cache()?;
    let mut row =
        e.lm.forward(&mut cache, &ids)?
            .split_off((ids.len() - 1) * v);
    let mut answer = vec![];
    for _ in 0..max_tokens {
        let tok = field::measure(&row)?.argmax;
        if tok == eos {
            break;
        }
        answer.push(tok);
        row = e.lm.forward(&mut cache, &[tok])?;
    }
    if answer.is_empty() {
        return Err(infogravity::Error::InvalidArgument(
            "the model's answer is empty: no conductivity to measure".into(),
        ));
    }
    let (lq, _) = score(e, query, &answer)?;
    let (ln, hn) = score(e, null_query, &answer)?;
    let l = answer.len() as f64;
    let sigma = (lq.iter().sum::<f64>() - ln.iter().sum::<f64>()) / l;
    let h_null = hn.iter().sum::<f64>() / l;
    let rho = if h_null > 0.0 { sigma / h_null } else { 0.0 };
    let confidence = lq.iter().map(|x| x.exp()).sum::<f64>() / l;
    Ok(Conductivity {
        answer,
        sigma,
        h_null,
        rho,
        confidence,
        canned: (confidence * (1.0 - rho)).clamp(0.0, 1.0),
    })
}
