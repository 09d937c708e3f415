//! The token view (`generate --html`): a generation as the processor saw it. Each answer's
//! tokens coloured by a chosen quantity (potential Φ, void score, entropy, temperature,
//! black-hole score, p_max), strip charts of H, T and the void and black-hole scores with the
//! regime thresholds under each answer, the steps where an intervention fired marked, and the
//! whole step report on hover. Several sequences of a batch sit side by side; runs (`--compare`:
//! plain, then gravity) stack one above the other.

use infogravity::config::Config;
use infogravity::{Error, Result, StepReport, flags};
use serde_json::{Value, json};

use super::{fill, round};
use crate::{Engine, Generation};

const TEMPLATE: &str = include_str!("tokens.html");

/// One generated sequence: which prompt, its seed, its tokens' text and step reports.
#[derive(Debug, Clone)]
pub struct SeqView {
    /// Index into [`TokenView::prompts`].
    pub prompt: usize,
    pub seed: u64,
    /// Why it stopped (`eos`, `max_tokens`, …).
    pub stop: String,
    /// The text each report's token added (see [`pieces`]); as many as `reports`.
    pub pieces: Vec<String>,
    pub reports: Vec<StepReport>,
    /// Per report, T* of the raw field; empty when not computed.
    pub t_star: Vec<f32>,
}

impl SeqView {
    /// The view of `g`, sequence `seed` of prompt `prompt`, its pieces decoded by `eng`.
    pub fn from_generation(eng: &Engine, prompt: usize, seed: u64, g: &Generation) -> Result<Self> {
        let ids: Vec<u32> = g.reports.iter().filter_map(|r| r.token).collect();
        let eos = eng.lm.info().eos_token_id;
        let mut texts = pieces(&ids, |t| eng.decode(t))?;
        // The end-of-sequence token (kept in the reports, not in the text) reads as nothing.
        for (p, r) in texts.iter_mut().zip(&g.reports) {
            if r.token == Some(eos) {
                p.clear();
            }
        }
        Ok(SeqView {
            prompt,
            seed,
            stop: g.stop.to_string(),
            pieces: texts,
            reports: g.reports.clone(),
            t_star: g.t_star.clone(),
        })
    }
}

/// The text each token adds to the decoded answer: piece i is decode(ids[..=i]) minus
/// decode(ids[..i]). A token that ends inside a multi-byte character adds "" and the character
/// goes to the token that completes it, as a streaming detokeniser prints it.
pub fn pieces(ids: &[u32], decode: impl Fn(&[u32]) -> Result<String>) -> Result<Vec<String>> {
    let mut out = Vec::with_capacity(ids.len());
    let mut shown = 0usize;
    for k in 1..=ids.len() {
        let text = decode(&ids[..k])?;
        if text.ends_with('\u{fffd}') && k < ids.len() {
            out.push(String::new());
            continue;
        }
        let mut from = shown.min(text.len());
        while !text.is_char_boundary(from) {
            from += 1;
        }
        out.push(text[from..].to_string());
        shown = text.len();
    }
    Ok(out)
}

/// One run of the processor over the batch (`plain` or `gravity` with `--compare`).
#[derive(Debug, Clone)]
pub struct RunView {
    pub label: String,
    /// The preset or configuration it ran with, as shown.
    pub preset: String,
    /// The regime thresholds drawn on the strip charts: void (enter, exit), black hole
    /// (enter, exit).
    pub void: (f32, f32),
    pub black_hole: (f32, f32),
    pub sequences: Vec<SeqView>,
}

impl RunView {
    /// A run with the thresholds of `config`.
    pub fn new(label: &str, preset: &str, config: &Config, sequences: Vec<SeqView>) -> Self {
        RunView {
            label: label.into(),
            preset: preset.into(),
            void: (config.void.enter, config.void.exit),
            black_hole: (config.black_hole.enter, config.black_hole.exit),
            sequences,
        }
    }
}

/// A whole page.
#[derive(Debug, Clone)]
pub struct TokenView {
    pub title: String,
    /// The model, as named in the page.
    pub model: String,
    pub prompts: Vec<String>,
    pub runs: Vec<RunView>,
}

impl TokenView {
    /// The page as HTML. Checks what it was given: every sequence names a prompt, has one
    /// piece (and one T* when any) per report, and tokens below `vocab`.
    pub fn html(&self, vocab: usize) -> Result<String> {
        Ok(fill(TEMPLATE, &self.data(vocab)?))
    }

    /// The JSON the page draws (checked as [`TokenView::html`] says).
    pub fn data(&self, vocab: usize) -> Result<Value> {
        if self.runs.iter().all(|r| r.sequences.is_empty()) {
            return Err(Error::InvalidArgument(
                "a token view needs at least one sequence".into(),
            ));
        }
        let mut runs = vec![];
        for run in &self.runs {
            let mut seqs = vec![];
            for (i, s) in run.sequences.iter().enumerate() {
                let what = |msg: String| {
                    Error::InvalidArgument(format!("run {} sequence {i}: {msg}", run.label))
                };
                if s.prompt >= self.prompts.len() {
                    return Err(what(format!(
                        "prompt {} of {} prompts",
                        s.prompt,
                        self.prompts.len()
                    )));
                }
                if s.pieces.len() != s.reports.len() {
                    return Err(Error::SizeMismatch {
                        what: "token view pieces (one per report)",
                        expected: s.reports.len(),
                        got: s.pieces.len(),
                    });
                }
                if !s.t_star.is_empty() && s.t_star.len() != s.reports.len() {
                    return Err(Error::SizeMismatch {
                        what: "token view T* (one per report)",
                        expected: s.reports.len(),
                        got: s.t_star.len(),
                    });
                }
                let mut steps = vec![];
                for (k, (r, piece)) in s.reports.iter().zip(&s.pieces).enumerate() {
                    if let Some(t) = r.token
                        && t as usize >= vocab
                    {
                        return Err(Error::TokenOutOfRange {
                            what: "token view report",
                            id: t as u64,
                            vocab,
                        });
                    }
                    steps.push(step_json(r, piece, s.t_star.get(k).copied()));
                }
                seqs.push(json!({
                    "prompt": s.prompt, "seed": s.seed, "stop": s.stop, "steps": steps,
                }));
            }
            runs.push(json!({
                "label": run.label, "preset": run.preset,
                "void": [round(run.void.0 as f64, 4), round(run.void.1 as f64, 4)],
                "black_hole": [round(run.black_hole.0 as f64, 4), round(run.black_hole.1 as f64, 4)],
                "sequences": seqs,
            }));
        }
        Ok(json!({
            "title": self.title, "model": self.model, "prompts": self.prompts, "runs": runs,
            "flags": flags::NAMES.iter().map(|(_, n)| *n).collect::<Vec<_>>(),
        }))
    }
}

/// One step report as the page shows it (every field of [`StepReport`]).
fn step_json(r: &StepReport, piece: &str, t_star: Option<f32>) -> Value {
    let f = |x: f32| round(x as f64, 5);
    let mut j = json!({
        "text": piece,
        "token": r.token,
        "step": r.step,
        "entropy": f(r.entropy),
        "entropy_norm": f(r.entropy_norm),
        "varentropy": f(r.varentropy),
        "log_z": f(r.log_z),
        "p_max": f(r.p_max),
        "margin": f(r.margin),
        "potential": f(r.token_potential),
        "temperature": f(r.temperature),
        "regime": r.regime.name(),
        "void_score": f(r.void_score),
        "black_hole_score": f(r.black_hole_score),
        "task_mass": r.task_mass.map(f),
        "flags": flags::NAMES.iter().filter(|(b, _)| r.flags & b != 0).map(|(_, n)| *n)
            .collect::<Vec<_>>(),
        "cycle_period": r.cycle_period,
        "stop": r.stop,
    });
    if let Some(ts) = t_star {
        j["t_star"] = f(ts);
        j["phase_distance"] = f((r.temperature / ts).ln());
    }
    j
}

#[cfg(test)]
mod tests {
    use super::*;
    use infogravity::Regime;

    fn report(step: u32, token: u32) -> StepReport {
        StepReport {
            step,
            token: Some(token),
            entropy: 0.5 + step as f32,
            entropy_norm: 0.1,
            varentropy: 0.2,
            log_z: 3.0,
            p_max: 0.9,
            margin: f32::INFINITY,
            token_potential: 0.25 * step as f32,
            temperature: 0.7,
            regime: if step == 2 {
                Regime::Void
            } else {
                Regime::Orbit
            },
            void_score: 0.1 * step as f32,
            black_hole_score: 0.05,
            flags: if step == 2 { flags::ANCHOR } else { 0 },
            ..Default::default()
        }
    }

    fn view(n: usize, vocab_token: u32) -> TokenView {
        let seq = |prompt, seed| SeqView {
            prompt,
            seed,
            stop: "eos".into(),
            pieces: (0..n).map(|i| format!(" t{i}</script>")).collect(),
            reports: (0..n as u32).map(|i| report(i, vocab_token + i)).collect(),
            t_star: vec![],
        };
        let cfg = Config::default();
        TokenView {
            title: "t".into(),
            model: "m".into(),
            prompts: vec!["p0".into(), "p1".into()],
            runs: vec![
                RunView::new("plain", "neutral", &cfg, vec![seq(0, 1), seq(1, 2)]),
                RunView::new("gravity", "balanced", &cfg, vec![seq(0, 1), seq(1, 2)]),
            ],
        }
    }

    #[test]
    fn page_embeds_every_report_it_was_given() {
        let v = view(5, 10);
        let html = v.html(100).unwrap();
        let data = super::super::read_data(&html).unwrap();
        let runs = data["runs"].as_array().unwrap();
        assert_eq!(runs.len(), 2);
        assert_eq!(runs[1]["label"], "gravity");
        for (run, rv) in runs.iter().zip(&v.runs) {
            assert_eq!(run["void"][0].as_f64().unwrap() as f32, rv.void.0);
            for (s, sv) in run["sequences"]
                .as_array()
                .unwrap()
                .iter()
                .zip(&rv.sequences)
            {
                assert_eq!(s["prompt"], sv.prompt);
                let steps = s["steps"].as_array().unwrap();
                assert_eq!(steps.len(), sv.reports.len());
                for ((st, r), p) in steps.iter().zip(&sv.reports).zip(&sv.pieces) {
                    assert_eq!(st["text"], p.as_str());
                    assert_eq!(st["token"], r.token.unwrap());
                    assert_eq!(st["step"], r.step);
                    assert!((st["entropy"].as_f64().unwrap() - r.entropy as f64).abs() < 1e-5);
                    assert!(
                        (st["void_score"].as_f64().unwrap() - r.void_score as f64).abs() < 1e-5
                    );
                    assert_eq!(st["regime"], r.regime.name());
                    assert_eq!(st["margin"], Value::Null, "infinite margin is null");
                    let fl: Vec<&str> = st["flags"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|f| f.as_str().unwrap())
                        .collect();
                    assert_eq!(fl.join(","), flags::describe(r.flags, ","));
                }
            }
        }
        // The token text cannot close the data island.
        assert_eq!(html.matches("t0</script>").count(), 0);
    }

    #[test]
    fn bad_views_are_refused() {
        assert!(matches!(
            view(3, 98).html(100),
            Err(Error::TokenOutOfRange { id: 100, .. })
        ));
        let mut v = view(3, 0);
        v.runs[0].sequences[1].pieces.pop();
        assert!(matches!(v.html(100), Err(Error::SizeMismatch { .. })));
        let mut v = view(3, 0);
        v.runs[1].sequences[0].prompt = 7;
        assert!(v.html(100).unwrap_err().to_string().contains("prompt 7"));
        let mut v = view(3, 0);
        v.runs[0].sequences[0].t_star = vec![1.0];
        assert!(matches!(v.html(100), Err(Error::SizeMismatch { .. })));
        let mut v = view(3, 0);
        v.runs.iter_mut().for_each(|r| r.sequences.clear());
        assert!(v.html(100).is_err());
    }

    #[test]
    fn pieces_hold_split_characters_for_the_token_that_completes_them() {
        // "é" split over two byte tokens (ids 1, 2), then "x" (id 3).
        let dec = |ids: &[u32]| -> Result<String> {
            let mut bytes = vec![];
            for &i in ids {
                bytes.extend_from_slice(match i {
                    1 => &[0xC3u8][..],
                    2 => &[0xA9u8][..],
                    _ => b"x",
                });
            }
            Ok(String::from_utf8_lossy(&bytes).into_owned())
        };
        assert_eq!(pieces(&[3, 1, 2, 3], dec).unwrap(), ["x", "", "é", "x"]);
        // A sequence that ends inside a character keeps the replacement character.
        assert_eq!(pieces(&[3, 1], dec).unwrap(), ["x", "\u{fffd}"]);
    }
}
