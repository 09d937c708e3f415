//! Configuration: every knob of the processor, its default, unit, disabling value and cost.
//!
//! A configuration is JSON. It may name a preset (`"preset": "balanced"`, the default) and
//! override any key of it; unknown keys are errors that name the full key path, and every value
//! is range-checked in [`Config::validate`]. Presets:
//!
//! | preset | what it is |
//! |---|---|
//! | `neutral` | exact pass-through: temperature 1, no interventions, no truncation. Diagnostics are still computed. |
//! | `balanced` | mild gravity temperature, dynatemp-style entropy response, anchoring and loop escape on, min-p 0.05. |
//! | `factual` | colder, stronger anchoring, min-p 0.1. |
//! | `creative` | warmer, wider entropy response, light anchoring, min-p 0.02. |
//!
//! Each section (`sections.rs`) keeps its knobs' documentation — default, unit, the value
//! that disables it, its cost — beside its default values and its validation. "Cost" is per
//! step per row, on top of the one measurement pass every step makes; O(1) means a few
//! arithmetic operations. The presets are deltas from `balanced` ([`Config::preset`]).

mod check;
mod sections;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};

pub use sections::{
    AbstainConfig, AnchorConfig, AnswerWeights, BlackHoleConfig, ConceptConfig, ContrastConfig,
    EscapeConfig, LimitsConfig, MassConfig, MassScale, Response, SamplerConfig, TaskSpaceConfig,
    TemperatureConfig, VoidConfig, VoidWeights,
};

/// Top-level configuration. `Config::default()` is the `balanced` preset: each section's
/// `Default`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Adaptive temperature (docs/DESIGN.md §1 "Adaptive temperature").
    pub temperature: TemperatureConfig,
    /// Query information mass M(Q) (docs/DESIGN.md §1).
    pub mass: MassConfig,
    /// Void (hallucination-risk) score and its hysteresis.
    pub void: VoidConfig,
    /// The answer-level void over the streamed answer aggregates.
    #[serde(default)]
    pub answer: AnswerWeights,
    /// Black-hole (loop / attractor) score and its hysteresis.
    pub black_hole: BlackHoleConfig,
    /// Anchor-token bias scaled by the void score.
    pub anchor: AnchorConfig,
    /// Concept-direction tilt scaled by the void score, bounded in KL.
    #[serde(default)]
    pub concept: ConceptConfig,
    /// The null-query contrast (PMI) at steps the host gives a content-free query's row.
    #[serde(default)]
    pub contrast: ContrastConfig,
    /// Loop escape: temperature kick and cycle penalty while in a black hole.
    pub escape: EscapeConfig,
    /// Abstention at the start of an answer.
    pub abstain: AbstainConfig,
    /// Task space: label tokens whose mass is reported.
    pub task_space: TaskSpaceConfig,
    /// Truncation and selection.
    pub sampler: SamplerConfig,
    /// Memory bounds.
    pub limits: LimitsConfig,
}

/// The named presets.
pub const PRESETS: [&str; 4] = ["neutral", "balanced", "factual", "creative"];

impl Config {
    /// A preset by name (`neutral`, `balanced`, `factual`, `creative`).
    pub fn preset(name: &str) -> Result<Config> {
        let mut c = Config::default();
        match name {
            "balanced" => {}
            "neutral" => {
                let t = &mut c.temperature;
                t.base = 1.0;
                t.mass_gain = 0.0;
                t.response = Response::None;
                c.anchor.enabled = false;
                c.concept.enabled = false;
                c.contrast.enabled = false;
                c.escape.enabled = false;
                c.abstain.enabled = false;
                c.sampler.min_p = 0.0;
            }
            "factual" => {
                c.temperature.base = 0.5;
                c.temperature.dyn_range = 0.2;
                c.anchor.lambda = 3.0;
                c.sampler.min_p = 0.1;
            }
            "creative" => {
                c.temperature.base = 1.1;
                c.temperature.dyn_range = 0.5;
                c.anchor.lambda = 0.75;
                c.sampler.min_p = 0.02;
            }
            other => {
                return Err(Error::ConfigOutOfRange {
                    key: "preset".into(),
                    msg: format!("`{other}` is not one of {PRESETS:?}"),
                });
            }
        }
        Ok(c)
    }

    /// Parse a JSON configuration: an optional `"preset"` (default `balanced`) and overrides of
    /// any of its keys. Unknown keys are [`Error::ConfigUnknownKey`] with the full path; the
    /// result is validated.
    pub fn from_json(text: &str) -> Result<Config> {
        let mut v: Value =
            serde_json::from_str(text).map_err(|e| Error::ConfigParse(e.to_string()))?;
        let obj = v
            .as_object_mut()
            .ok_or_else(|| Error::ConfigParse("the configuration must be a JSON object".into()))?;
        let preset = match obj.remove("preset") {
            None => "balanced".to_string(),
            Some(Value::String(s)) => s,
            Some(_) => return Err(Error::ConfigParse("`preset` must be a string".into())),
        };
        let base = Config::preset(&preset)?;
        let mut merged = serde_json::to_value(&base).expect("config serialises");
        merge(&mut merged, v, "")?;
        let c: Config =
            serde_json::from_value(merged).map_err(|e| Error::ConfigParse(e.to_string()))?;
        c.validate()?;
        Ok(c)
    }

    /// This configuration as JSON (every key, explicit).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("config serialises")
    }

    /// Range-check every knob (each section checks its own).
    pub fn validate(&self) -> Result<()> {
        let l = &self.limits;
        self.temperature.validate()?;
        self.mass.validate()?;
        self.void.validate()?;
        self.black_hole.validate(l)?;
        self.anchor.validate(l)?;
        self.concept.validate()?;
        self.contrast.validate()?;
        self.answer.validate("answer")?;
        self.escape.validate()?;
        self.abstain.validate()?;
        self.task_space.validate(l)?;
        self.sampler.validate()?;
        l.validate()
    }

    /// Check every token id in the configuration against a vocabulary size.
    pub fn check_tokens(&self, vocab: usize) -> Result<()> {
        let lists: [(&'static str, &[u32]); 4] = [
            ("anchor.tokens", &self.anchor.tokens),
            ("escape.breakers", &self.escape.breakers),
            ("task_space.tokens", &self.task_space.tokens),
            ("abstain.tokens", &self.abstain.tokens),
        ];
        for (what, ids) in lists {
            if let Some(&id) = ids.iter().find(|&&id| id as usize >= vocab) {
                return Err(Error::TokenOutOfRange {
                    what,
                    id: id as u64,
                    vocab,
                });
            }
        }
        for p in &self.black_hole.attractors {
            if let Some(&id) = p.iter().find(|&&id| id as usize >= vocab) {
                return Err(Error::TokenOutOfRange {
                    what: "black_hole.attractors",
                    id: id as u64,
                    vocab,
                });
            }
        }
        Ok(())
    }
}

/// Overlay `over` onto `base`, refusing keys `base` does not have.
fn merge(base: &mut Value, over: Value, path: &str) -> Result<()> {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match b.get_mut(&k) {
                    Some(slot) => merge(slot, v, &p)?,
                    None => return Err(Error::ConfigUnknownKey(p)),
                }
            }
            Ok(())
        }
        // Only the weights object is nested beyond one level; a non-object where an object is
        // expected is left to serde, which reports the type error.
        (slot, v) => {
            *slot = v;
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_validate_and_roundtrip() {
        for p in PRESETS {
            let c = Config::preset(p).unwrap();
            c.validate().unwrap();
            let back = Config::from_json(&format!("{{\"preset\":\"{p}\"}}")).unwrap();
            assert_eq!(c, back);
            let full: Config = serde_json::from_str(&c.to_json()).unwrap();
            assert_eq!(c, full);
        }
    }

    #[test]
    fn overrides_apply() {
        let c = Config::from_json(r#"{"preset":"factual","temperature":{"base":0.3}}"#).unwrap();
        assert_eq!(c.temperature.base, 0.3);
        assert_eq!(c.sampler.min_p, 0.1);
    }

    #[test]
    fn unknown_keys_are_named() {
        let e = Config::from_json(r#"{"temperature":{"bse":0.3}}"#).unwrap_err();
        assert_eq!(e, Error::ConfigUnknownKey("temperature.bse".into()));
        let e = Config::from_json(r#"{"void":{"weights":{"x":1}}}"#).unwrap_err();
        assert_eq!(e, Error::ConfigUnknownKey("void.weights.x".into()));
    }

    #[test]
    fn bad_values_are_errors() {
        assert!(matches!(
            Config::from_json(r#"{"sampler":{"min_p":2}}"#),
            Err(Error::ConfigOutOfRange { key, .. }) if key == "sampler.min_p"
        ));
        assert!(matches!(
            Config::from_json(r#"{"temperature":{"base":"hot"}}"#),
            Err(Error::ConfigParse(_))
        ));
        assert!(matches!(
            Config::from_json("[1]"),
            Err(Error::ConfigParse(_))
        ));
        assert!(matches!(Config::from_json("{"), Err(Error::ConfigParse(_))));
        assert!(matches!(
            Config::from_json(r#"{"preset":"spicy"}"#),
            Err(Error::ConfigOutOfRange { .. })
        ));
    }
}
