//! Calibration file: fitted void-score weights and the standardisation of M(Q)'s components,
//! produced by the evaluation (never hard-coded to a data set).
//!
//! JSON, format version 1:
//!
//! ```json
//! {
//!   "format": "infogravity-calibration",
//!   "version": 2,
//!   "provenance": "what data and model the fit used",
//!   "void": { "bias": -3.1, "entropy": 4.2, "energy": 0.0, "one_minus_pmax": 1.5,
//!             "varentropy": 0.7, "trend": 0.0, "task": 0.0, "mass": 0.4 },
//!   "mass": { "h": {"mean": 0.31, "std": 0.12}, "d": {"mean": 0.8, "std": 0.6},
//!             "n": {"mean": 3.2, "std": 1.1} },
//!   "answer": { "bias": -3.4, "mean_entropy": 0.73, "mean_potential": 1.05,
//!               "max_potential": 0.66, "probe": 0.0, ... }
//! }
//! ```
//! `void` replaces `void.weights`; `answer` (version 2) replaces the `answer` section (the
//! answer-level void's weights, `config::AnswerWeights`; every weight listed, as in `void`:
//! abbreviated above); `mass` gives the means and SDs of M(Q)'s z-scores under
//! `mass.scale = auto` (each of `h`, `d`, `n` may be left out: that component then uses the
//! processor's running statistics).
//! Each is optional; unknown keys, a wrong format tag or version, non-finite numbers, void
//! or answer weights beyond ±1000, means beyond ±10^6 and standard deviations below 10^-6 are errors.

use serde::{Deserialize, Serialize};

use crate::config::{AnswerWeights, VoidWeights};
use crate::error::{Error, Result};

/// Format tag of calibration files.
pub const CALIBRATION_FORMAT: &str = "infogravity-calibration";
/// Format version this build writes: 2 added the `answer` section. It reads 1 and 2.
pub const CALIBRATION_VERSION: u32 = 2;
/// The largest calibration file read (a real one is well under 1 KiB).
pub const MAX_FILE_BYTES: u64 = 1 << 20;
/// The smallest standard deviation a calibration may give a component: below it, a z-score
/// is a division by (almost) zero.
pub const MIN_STD: f64 = 1e-6;

/// Mean and standard deviation of one component over a calibration set.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Standard {
    pub mean: f64,
    pub std: f64,
}

/// Standardisation of H, D and N. A component without statistics (e.g. D when the
/// calibration set had no contexts) falls back to the running statistics (`mass.scale`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MassStats {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub h: Option<Standard>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub d: Option<Standard>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<Standard>,
}

/// A loaded calibration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Calibration {
    pub format: String,
    pub version: u32,
    #[serde(default)]
    pub provenance: String,
    #[serde(default)]
    pub void: Option<VoidWeights>,
    #[serde(default)]
    pub mass: Option<MassStats>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<AnswerWeights>,
}

fn corrupt(msg: String) -> Error {
    Error::CorruptFile {
        what: "calibration",
        msg,
    }
}

impl Calibration {
    /// Parse and validate.
    pub fn from_json(text: &str) -> Result<Calibration> {
        let c: Calibration = serde_json::from_str(text).map_err(|e| corrupt(e.to_string()))?;
        if c.format != CALIBRATION_FORMAT {
            return Err(corrupt(format!(
                "format is `{}`, expected `{CALIBRATION_FORMAT}`",
                c.format
            )));
        }
        if !(1..=CALIBRATION_VERSION).contains(&c.version) {
            return Err(corrupt(format!(
                "version {}; this build reads versions 1 to {CALIBRATION_VERSION}",
                c.version
            )));
        }
        if c.answer.is_some() {
            if c.version < 2 {
                return Err(corrupt("an `answer` section needs version 2".into()));
            }
            // Every weight listed: a key left out would silently take the shipped default.
            let v: serde_json::Value =
                serde_json::from_str(text).map_err(|e| corrupt(e.to_string()))?;
            let given = &v["answer"];
            if let Some((k, _)) = AnswerWeights::default()
                .named()
                .into_iter()
                .find(|(k, _)| given.get(k).is_none())
            {
                return Err(corrupt(format!(
                    "the answer section lacks `{k}` (a calibration lists every weight)"
                )));
            }
        }
        if let Some(w) = &c.void {
            let all = [
                w.bias,
                w.entropy,
                w.energy,
                w.one_minus_pmax,
                w.varentropy,
                w.trend,
                w.task,
                w.mass,
            ];
            if all.iter().any(|x| !x.is_finite() || x.abs() > 1e3) {
                return Err(corrupt(
                    "void weights must be finite and within ±1000".into(),
                ));
            }
        }
        if let Some(a) = &c.answer {
            if a.named()
                .iter()
                .any(|(_, x)| !x.is_finite() || x.abs() > 1e3)
            {
                return Err(corrupt(
                    "answer weights must be finite and within ±1000".into(),
                ));
            }
        }
        if let Some(m) = &c.mass {
            for s in [m.h, m.d, m.n].into_iter().flatten() {
                if !s.mean.is_finite()
                    || s.mean.abs() > 1e6
                    || !s.std.is_finite()
                    || s.std < MIN_STD
                {
                    return Err(corrupt(format!(
                        "mass statistics need finite means within ±1e6 and std ≥ {MIN_STD} (got mean {}, std {})",
                        s.mean, s.std
                    )));
                }
            }
        }
        Ok(c)
    }

    /// Read and validate a file: a regular file of at most [`MAX_FILE_BYTES`].
    pub fn load(path: &std::path::Path) -> Result<Calibration> {
        let b = crate::io::read_bounded(path, MAX_FILE_BYTES, "calibration")?;
        let t = std::str::from_utf8(&b).map_err(|_| corrupt("not UTF-8".into()))?;
        Calibration::from_json(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects() {
        let ok = r#"{"format":"infogravity-calibration","version":1,
            "mass":{"h":{"mean":0.3,"std":0.1},"d":{"mean":1,"std":1},"n":{"mean":3,"std":1}}}"#;
        assert!(Calibration::from_json(ok).unwrap().mass.is_some());
        // An answer section lists every weight (version 2).
        let w = AnswerWeights {
            bias: -1.0,
            probe: 2.0,
            ..AnswerWeights::default()
        };
        let full = format!(
            r#"{{"format":"infogravity-calibration","version":2,"answer":{}}}"#,
            serde_json::to_string(&w).unwrap()
        );
        assert_eq!(Calibration::from_json(&full).unwrap().answer, Some(w));
        let v1 = full.replace(r#""version":2"#, r#""version":1"#);
        assert!(Calibration::from_json(&v1).is_err());
        let partial =
            r#"{"format":"infogravity-calibration","version":2,"answer":{"bias":-1,"probe":2}}"#;
        let e = Calibration::from_json(partial).unwrap_err().to_string();
        assert!(e.contains("lacks `mean_entropy`"), "{e}");
        for bad in [
            r#"{"format":"x","version":1}"#,
            r#"{"format":"infogravity-calibration","version":3}"#,
            r#"{"format":"infogravity-calibration","version":1,"extra":1}"#,
            r#"{"format":"infogravity-calibration","version":1,
               "mass":{"h":{"mean":0,"std":0},"d":{"mean":1,"std":1},"n":{"mean":3,"std":1}}}"#,
            r#"{"format":"infogravity-calibration","version":1,"mass":{"d":{"mean":0.8,"std":1e-300}}}"#,
            r#"{"format":"infogravity-calibration","version":1,"void":{"bias":1e30,"entropy":0,"energy":0,"one_minus_pmax":0,"varentropy":0,"trend":0,"task":0,"mass":0}}"#,
            r#"{"format":"infogravity-calibration","version":2,"answer":{"probe":1e4}}"#,
            r#"{"format":"infogravity-calibration","version":2,"answer":{"sum_entropy":1}}"#,
            "not json",
        ] {
            assert!(
                matches!(Calibration::from_json(bad), Err(Error::CorruptFile { .. })),
                "{bad}"
            );
        }
    }
}
