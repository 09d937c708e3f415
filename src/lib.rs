//! # infogravity
//!
//! A sampling-plugin middleware for LLM inference engines: per decoding step it measures the
//! next-token field in one pass (entropy, varentropy, log Z, p_max, margin), sets a
//! gravity-aware adaptive temperature from the query's information mass M(Q) and the live
//! field, classifies the regime (orbit / void / black hole) per sequence with hysteresis,
//! applies anchoring interventions (anchor bias, loop escape, abstention), optionally samples,
//! and returns a [`StepReport`] for every row. Definitions: docs/DESIGN.md §1.
//!
//! ## Pipeline order
//!
//! host processors → measure field (before any truncation) → sequence state and regime →
//! interventions (bias) → temperature → truncation (min-p → top-k → top-p) → seeded selection
//! (or the final logits for the host) → `accept(token)`. See [`processor`].
//!
//! ## Map
//!
//! | module | pipeline stage | holds | imports (besides data types) |
//! |---|---|---|---|
//! | [`field`] | 2 measure | one-pass statistics, SIMD kernels, f16/bf16, candidates, T* | — |
//! | [`mass`] | begin | M(Q) and the `Prior` file | `field` |
//! | [`policy`] | 3 regimes, 5 temperature | scores, hysteresis, loop detection, T | `field` |
//! | [`interventions`] | 4 interventions | abstention, anchor bias, cycle penalty → edits | `policy`, `sampler` |
//! | [`sampler`] | 6 truncation, 7 selection | the cut, the draw, the `Logits` row writers | `field` |
//! | [`processor`] | the chain | sequences, provisional steps, batches | every stage |
//! | [`report`] | — | `StepReport`, regimes, flags and their names | — |
//! | [`config`], [`calibration`], [`io`], [`error`] | — | configuration, calibration file, bounded reads, errors | — |
//! | [`ffi`] | — | the C ABI (the only `extern "C"` exports) | `processor` |
//! | [`plugin`] | 1 host processors | third-party processors from shared libraries | `ffi` (the plugin table), `processor` |
//!
//! No module imports one above it in the table. The reference engine, the evaluation and the
//! CLI are the `infogravity-engine` crate; the math here never names FFI or ONNX Runtime types.
//!
//! ## Use
//!
//! ```
//! use infogravity::{Config, GravityProcessor, SeqParams, StepMode};
//!
//! let vocab = 8;
//! let mut p = GravityProcessor::new(Config::preset("balanced")?, vocab)?;
//! p.begin(1, &SeqParams { seed: 42, ..Default::default() })?;
//! let mut logits = vec![0.5, 2.0, -1.0, 0.0, 0.3, 1.5, -2.0, 0.1];
//! let report = p.step(1, &mut logits, StepMode::Sample)?;
//! let token = report.token.expect("Sample mode selects");
//! p.accept(1, token)?;
//! println!("token {token}, entropy {:.3} nats, T = {:.2}", report.entropy, report.temperature);
//! p.end(1)?;
//! # Ok::<(), infogravity::Error>(())
//! ```
//!
//! The C ABI over the same API lives in `ffi` (header `include/infogravity.h`).

/// cbindgen:ignore
pub mod calibration;
/// cbindgen:ignore
pub mod concept;
/// cbindgen:ignore
pub mod config;
mod contrast;
/// cbindgen:ignore
pub mod error;
pub mod ffi;
/// cbindgen:ignore
pub mod field;
#[cfg(feature = "testing")]
#[doc(hidden)]
/// cbindgen:ignore
pub mod fuzzing;
/// cbindgen:ignore
pub mod interventions;
/// cbindgen:ignore
pub mod io;
/// cbindgen:ignore
pub mod mass;
/// cbindgen:ignore
pub mod plugin;
/// cbindgen:ignore
pub mod policy;
/// cbindgen:ignore
pub mod probe;
/// cbindgen:ignore
pub mod processor;
/// cbindgen:ignore
pub mod report;
/// cbindgen:ignore
pub mod sampler;

pub use calibration::Calibration;
pub use concept::Concept;
pub use config::Config;
pub use error::{Error, Result};
pub use field::{Field, FieldError};
pub use mass::{Prior, QueryInput, QueryMass};
pub use plugin::{Plugin, PluginProcessor};
pub use probe::Probe;
pub use processor::{ContentTable, GravityProcessor, LogitsMut, LogitsProcessor, SeqParams};
pub use report::{AnswerStats, FirstContent, Regime, StepReport, flags};
pub use sampler::StepMode;

/// The README's Rust example is compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

/// The crate version (Cargo's).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
