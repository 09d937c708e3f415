//! `infogravity._native`: the processor for Python (PyO3, abi3).
//!
//! The Python package (`python/infogravity/__init__.py`) is the public face: it turns torch
//! tensors and bfloat16 arrays into the numpy views this module takes and builds the report
//! dtype from [`report_fields`]. Here:
//!
//! - rows are numpy arrays used **in place** (no copy): float32, float16, or uint16 holding
//!   bfloat16 bits (`dtype="bf16"`); a row that is not C-contiguous or not writeable is an
//!   error, never a silent copy (a copy would lose the `logits`-mode rewrite);
//! - the GIL is released while a step or a batch runs;
//! - every `infogravity::Error` becomes an `InfogravityError` carrying the C ABI's status code
//!   and name (the same numbers as `ig_status_str`) and the message.
//!
//! Cost per call beyond the processor's own: the Python call, and for `step_batch` with
//! `rows=` (rows picked out of a larger block) three small vectors: N flags to check the picks
//! are distinct, and N + B row slices.

use std::mem::{offset_of, size_of};

use half::bf16;
use infogravity::ffi::{IgStatus, IgStepReport};
use infogravity::{
    Concept, Config, ContentTable, Error, GravityProcessor, LogitsMut, Probe, QueryInput,
    QueryMass, SeqParams, StepMode, StepReport, flags,
};
use numpy::{
    PyArrayDescrMethods, PyArrayMethods, PyReadonlyArray1, PyReadonlyArray2, PyReadwriteArray1,
    PyReadwriteArray2, PyUntypedArray, PyUntypedArrayMethods,
};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyType};

/// `infogravity.InfogravityError` (defined in Python, so that it is an ordinary exception
/// class), imported once.
static ERROR_TYPE: PyOnceLock<Py<PyType>> = PyOnceLock::new();

/// An `infogravity::Error` as `InfogravityError(message, status, status_name)`: the status is
/// the C ABI's code (`ig_status_str`), the name its `IgStatus` variant.
fn raise(py: Python<'_>, e: Error) -> PyErr {
    let status = IgStatus::from(&e);
    let args = (e.to_string(), status as u32, format!("{status:?}"));
    match ERROR_TYPE.import(py, "infogravity", "InfogravityError") {
        Ok(t) => PyErr::from_type(t.clone(), args),
        Err(err) => err,
    }
}

fn invalid(py: Python<'_>, msg: impl Into<String>) -> PyErr {
    raise(py, Error::InvalidArgument(msg.into()))
}

fn mode_of(py: Python<'_>, mode: &str) -> PyResult<StepMode> {
    match mode {
        "sample" => Ok(StepMode::Sample),
        "logits" => Ok(StepMode::Logits),
        other => Err(invalid(
            py,
            format!("mode must be \"sample\" or \"logits\", not {other:?}"),
        )),
    }
}

/// The element type of a row: "f32", "f16", or "bf16" (uint16 bits).
#[derive(Clone, Copy)]
enum Dtype {
    F32,
    F16,
    Bf16,
}

fn dtype_of(py: Python<'_>, a: &Bound<'_, PyUntypedArray>, tag: Option<&str>) -> PyResult<Dtype> {
    let d = a.dtype();
    let d = (d.kind(), d.itemsize());
    match (tag, d) {
        (None | Some("f32"), (b'f', 4)) => Ok(Dtype::F32),
        (None | Some("f16"), (b'f', 2)) => Ok(Dtype::F16),
        (Some("bf16"), (b'u' | b'i', 2)) => Ok(Dtype::Bf16),
        _ => Err(raise(
            py,
            Error::InvalidArgument(format!(
                "logits must be float32, float16 or bfloat16 (uint16 bits with dtype=\"bf16\"), \
                 got kind {:?} of {} bytes{}",
                d.0 as char,
                d.1,
                tag.map_or(String::new(), |t| format!(" with dtype={t:?}"))
            )),
        )),
    }
}

fn check_layout(py: Python<'_>, a: &Bound<'_, PyUntypedArray>, what: &str) -> PyResult<()> {
    if !a.is_c_contiguous() {
        return Err(invalid(
            py,
            format!(
                "{what} must be C-contiguous (it is used in place; pass np.ascontiguousarray(x) and read the result from it)"
            ),
        ));
    }
    Ok(())
}

fn borrow_err(py: Python<'_>, what: &str, e: impl std::fmt::Display) -> PyErr {
    invalid(
        py,
        format!(
            "{what} cannot be used in place ({e}); pass a writeable array not in use elsewhere"
        ),
    )
}

/// Reinterpret bfloat16 bits.
fn as_bf16(bits: &mut [u16]) -> &mut [bf16] {
    use half::slice::HalfBitsSliceExt;
    bits.reinterpret_cast_mut::<bf16>()
}

/// The diagnostics of one row at one step (docs/DESIGN.md §1). `regime` is "orbit", "void"
/// or "black-hole"; `flags` the names of the interventions applied; `token` None when the host
/// selects (logits mode) and nothing was forced.
#[pyclass(module = "infogravity", name = "StepReport", frozen, get_all)]
#[derive(Clone)]
struct PyStepReport {
    seq: u64,
    step: u32,
    entropy: f32,
    entropy_norm: f32,
    varentropy: f32,
    log_z: f32,
    p_max: f32,
    margin: f32,
    token: Option<u32>,
    token_potential: f32,
    temperature: f32,
    regime: &'static str,
    void_score: f32,
    black_hole_score: f32,
    task_mass: Option<f32>,
    flag_bits: u32,
    flags: Vec<&'static str>,
    cycle_period: u32,
    stop: bool,
    /// KL(tilted ‖ measured) of the concept tilt, nats (0 when not tilted).
    concept_kl: f32,
    /// Tokens the processor advises rewinding (0: none; `escape.rollback`).
    rollback: u32,
    /// The hidden-state probe's value on this step's row (NaN without a probe).
    probe: f32,
}

impl From<&StepReport> for PyStepReport {
    fn from(r: &StepReport) -> Self {
        PyStepReport {
            seq: r.seq,
            step: r.step,
            entropy: r.entropy,
            entropy_norm: r.entropy_norm,
            varentropy: r.varentropy,
            log_z: r.log_z,
            p_max: r.p_max,
            margin: r.margin,
            token: r.token,
            token_potential: r.token_potential,
            temperature: r.temperature,
            regime: r.regime.name(),
            void_score: r.void_score,
            black_hole_score: r.black_hole_score,
            task_mass: r.task_mass,
            flag_bits: r.flags,
            flags: flags::NAMES
                .iter()
                .filter(|(b, _)| r.flags & b != 0)
                .map(|(_, n)| *n)
                .collect(),
            cycle_period: r.cycle_period,
            stop: r.stop,
            concept_kl: r.concept_kl,
            rollback: r.rollback,
            probe: r.probe,
        }
    }
}

#[pymethods]
impl PyStepReport {
    fn __repr__(&self) -> String {
        format!(
            "StepReport(seq={}, step={}, token={}, H={:.3}, p_max={:.3}, T={:.3}, phi={:.3}, \
             regime={}, void={:.3}, bh={:.3}, flags={:?}, stop={})",
            self.seq,
            self.step,
            self.token.map_or("None".to_string(), |t| t.to_string()),
            self.entropy,
            self.p_max,
            self.temperature,
            self.token_potential,
            self.regime,
            self.void_score,
            self.black_hole_score,
            self.flags,
            if self.stop { "True" } else { "False" }
        )
    }
}

fn mass_dict<'py>(py: Python<'py>, m: &QueryMass) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("h", m.h)?;
    d.set_item("h_prompt_mean", m.h_prompt_mean)?;
    d.set_item("d", m.d)?;
    d.set_item("n_kl", m.n_kl)?;
    d.set_item("n_surprisal", m.n_surprisal)?;
    d.set_item("m", m.m)?;
    Ok(d)
}

/// The gravity processor over one vocabulary. Not shareable between threads at the same time
/// (a second thread's call while one runs raises); one processor per engine loop.
#[pyclass(module = "infogravity._native", name = "Processor")]
struct Processor {
    /// A mutex only to make the class `Sync` (host processors are `Send`, not `Sync`); every
    /// method holds `&mut self`, so it is reached with `get_mut`, never locked.
    inner: std::sync::Mutex<GravityProcessor>,
    /// Scratch for batch reports (grows to the largest batch, then reused).
    reports: Vec<StepReport>,
}

#[pymethods]
impl Processor {
    /// `config_json`: the configuration (docs/DESIGN.md §2), e.g. `{"preset":"factual"}`.
    #[new]
    fn new(py: Python<'_>, vocab: usize, config_json: &str) -> PyResult<Self> {
        let cfg = Config::from_json(config_json).map_err(|e| raise(py, e))?;
        let inner = GravityProcessor::new(cfg, vocab).map_err(|e| raise(py, e))?;
        Ok(Processor {
            inner: std::sync::Mutex::new(inner),
            reports: Vec::new(),
        })
    }

    #[getter]
    fn vocab(&self) -> usize {
        self.inner().vocab()
    }

    /// Live sequences.
    #[getter]
    fn live(&self) -> usize {
        self.inner().live()
    }

    /// The effective configuration as JSON (every key, presets resolved).
    fn config_json(&self) -> String {
        self.inner().config().to_json()
    }

    /// Begin sequence `seq`; returns M(Q) and its components (None where not supplied).
    #[pyo3(signature = (seq, seed=0, anchors=None, query_tokens=None, context=None,
                        context_gain=None, prompt_logits=None, prompt_entropies=None))]
    #[allow(clippy::too_many_arguments)]
    fn begin<'py>(
        &mut self,
        py: Python<'py>,
        seq: u64,
        seed: u64,
        anchors: Option<PyReadonlyArray1<'py, u32>>,
        query_tokens: Option<PyReadonlyArray1<'py, u32>>,
        context: Option<PyReadonlyArray1<'py, u32>>,
        context_gain: Option<f32>,
        prompt_logits: Option<PyReadonlyArray2<'py, f32>>,
        prompt_entropies: Option<PyReadonlyArray1<'py, f32>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        fn slice<'a>(
            py: Python<'_>,
            a: &'a Option<PyReadonlyArray1<'_, u32>>,
            what: &str,
        ) -> PyResult<&'a [u32]> {
            a.as_ref()
                .map_or(Ok(&[][..]), |a| a.as_slice())
                .map_err(|e| invalid(py, format!("{what}: {e}")))
        }
        let anchors_s = slice(py, &anchors, "anchors")?;
        let context_s = slice(py, &context, "context")?;
        let query_s = match &query_tokens {
            Some(q) => Some(
                q.as_slice()
                    .map_err(|e| invalid(py, format!("query_tokens: {e}")))?,
            ),
            None => None,
        };
        let logits_s = match &prompt_logits {
            Some(l) => {
                if l.shape()[1] != self.inner().vocab() {
                    return Err(raise(
                        py,
                        Error::SizeMismatch {
                            what: "prompt logits columns",
                            expected: self.inner().vocab(),
                            got: l.shape()[1],
                        },
                    ));
                }
                Some(
                    l.as_slice()
                        .map_err(|e| invalid(py, format!("prompt_logits: {e}")))?,
                )
            }
            None => None,
        };
        let ent_s = match &prompt_entropies {
            Some(e) => Some(
                e.as_slice()
                    .map_err(|e| invalid(py, format!("prompt_entropies: {e}")))?,
            ),
            None => None,
        };
        let params = SeqParams {
            seed,
            anchors: anchors_s,
            query: QueryInput {
                prompt_logits: logits_s,
                prompt_entropies: ent_s,
                context_gain,
                query_tokens: query_s,
            },
            context: context_s,
        };
        let inner = self.inner_mut();
        let m = py
            .detach(|| inner.begin(seq, &params))
            .map_err(|e| raise(py, e))?;
        mass_dict(py, &m)
    }

    /// One step on one row (a 1-D array of V elements, used in place).
    #[pyo3(signature = (seq, row, mode="sample", dtype=None))]
    fn step(
        &mut self,
        py: Python<'_>,
        seq: u64,
        row: &Bound<'_, PyUntypedArray>,
        mode: &str,
        dtype: Option<&str>,
    ) -> PyResult<PyStepReport> {
        let mode = mode_of(py, mode)?;
        if row.ndim() != 1 {
            return Err(invalid(
                py,
                format!("row must be 1-D, got {} dimensions", row.ndim()),
            ));
        }
        check_layout(py, row, "row")?;
        let inner = self.inner_mut();
        let r = match dtype_of(py, row, dtype)? {
            Dtype::F32 => {
                let mut a: PyReadwriteArray1<f32> = row
                    .cast::<numpy::PyArray1<f32>>()?
                    .try_readwrite()
                    .map_err(|e| borrow_err(py, "row", e))?;
                let s = a.as_slice_mut().map_err(|e| borrow_err(py, "row", e))?;
                py.detach(|| inner.step_row(seq, LogitsMut::F32(s), mode))
            }
            Dtype::F16 => {
                let mut a: PyReadwriteArray1<half::f16> = row
                    .cast::<numpy::PyArray1<half::f16>>()?
                    .try_readwrite()
                    .map_err(|e| borrow_err(py, "row", e))?;
                let s = a.as_slice_mut().map_err(|e| borrow_err(py, "row", e))?;
                py.detach(|| inner.step_row(seq, LogitsMut::F16(s), mode))
            }
            Dtype::Bf16 => {
                let mut a = bits_view::<numpy::Ix1>(py, row, "row")?;
                let s = a.as_slice_mut().map_err(|e| borrow_err(py, "row", e))?;
                let s = as_bf16(s);
                py.detach(|| inner.step_row(seq, LogitsMut::BF16(s), mode))
            }
        };
        r.map(|r| PyStepReport::from(&r)).map_err(|e| raise(py, e))
    }

    /// One step on a batch: `logits` is a C-contiguous [N, V] array used in place; row
    /// `rows[b]` (default b, then N must equal len(seqs)) belongs to `seqs[b]`. The reports go
    /// into `out`, a uint8 view of B records of the report dtype (`report_fields`).
    #[pyo3(signature = (seqs, logits, out, mode="sample", rows=None, dtype=None))]
    #[allow(clippy::too_many_arguments)]
    fn step_batch<'py>(
        &mut self,
        py: Python<'py>,
        seqs: PyReadonlyArray1<'py, u64>,
        logits: &Bound<'py, PyUntypedArray>,
        out: &Bound<'py, PyUntypedArray>,
        mode: &str,
        rows: Option<PyReadonlyArray1<'py, i64>>,
        dtype: Option<&str>,
    ) -> PyResult<()> {
        let mode = mode_of(py, mode)?;
        let seqs = seqs
            .as_slice()
            .map_err(|e| invalid(py, format!("seqs: {e}")))?;
        let b = seqs.len();
        if logits.ndim() != 2 {
            return Err(invalid(
                py,
                format!(
                    "logits must be 2-D [rows, V], got {} dimensions",
                    logits.ndim()
                ),
            ));
        }
        check_layout(py, logits, "logits")?;
        let (n, v) = (logits.shape()[0], logits.shape()[1]);
        let rows = match &rows {
            Some(r) => Some(
                r.as_slice()
                    .map_err(|e| invalid(py, format!("rows: {e}")))?,
            ),
            None => None,
        };
        check_rows(py, rows, b, n)?;
        // Two arrays over one buffer (torch views have distinct bases, so numpy's borrow
        // tracking cannot see it) would be two `&mut` to the same memory: refused up front.
        if overlaps(logits, out) {
            return Err(invalid(py, "out and logits share memory"));
        }
        let mut out_a: PyReadwriteArray1<u8> = out
            .cast::<numpy::PyArray1<u8>>()
            .map_err(|_| invalid(py, "out must be a 1-D uint8 view of the report records"))?
            .try_readwrite()
            .map_err(|e| borrow_err(py, "out", e))?;
        let out_s = out_a.as_slice_mut().map_err(|e| borrow_err(py, "out", e))?;
        let rec = size_of::<IgStepReport>();
        if out_s.len() != b * rec {
            return Err(raise(
                py,
                Error::SizeMismatch {
                    what: "report records (bytes)",
                    expected: b * rec,
                    got: out_s.len(),
                },
            ));
        }
        if self.reports.len() < b {
            self.reports.resize(b, StepReport::default());
        }
        let reports = &mut self.reports[..b];
        let inner = self.inner.get_mut().unwrap_or_else(|e| e.into_inner());
        let res = match dtype_of(py, logits, dtype)? {
            Dtype::F32 => {
                let mut a: PyReadwriteArray2<f32> = logits
                    .cast::<numpy::PyArray2<f32>>()?
                    .try_readwrite()
                    .map_err(|e| borrow_err(py, "logits", e))?;
                let s = a.as_slice_mut().map_err(|e| borrow_err(py, "logits", e))?;
                py.detach(|| run_batch(inner, seqs, s, v, rows, mode, reports))
            }
            Dtype::F16 => {
                let mut a: PyReadwriteArray2<half::f16> = logits
                    .cast::<numpy::PyArray2<half::f16>>()?
                    .try_readwrite()
                    .map_err(|e| borrow_err(py, "logits", e))?;
                let s = a.as_slice_mut().map_err(|e| borrow_err(py, "logits", e))?;
                py.detach(|| run_batch(inner, seqs, s, v, rows, mode, reports))
            }
            Dtype::Bf16 => {
                let mut a = bits_view::<numpy::Ix2>(py, logits, "logits")?;
                let s = a.as_slice_mut().map_err(|e| borrow_err(py, "logits", e))?;
                let s = as_bf16(s);
                py.detach(|| run_batch(inner, seqs, s, v, rows, mode, reports))
            }
        };
        res.map_err(|e| raise(py, e))?;
        for (chunk, r) in out_s.chunks_exact_mut(rec).zip(self.reports[..b].iter()) {
            let c = IgStepReport::from(r);
            // SAFETY: `chunk` is exactly size_of::<IgStepReport>() bytes of a live, exclusively
            // borrowed buffer; an unaligned write of a plain `Copy` struct is always sound.
            unsafe { std::ptr::write_unaligned(chunk.as_mut_ptr().cast::<IgStepReport>(), c) };
        }
        Ok(())
    }

    /// Rewind `seq` by its last `n` accepted tokens (see `GravityProcessor::rollback`).
    fn rollback(&mut self, py: Python<'_>, seq: u64, n: u32) -> PyResult<()> {
        self.inner_mut().rollback(seq, n).map_err(|e| raise(py, e))
    }

    /// The rewind the last step of `seq` advised (0: none).
    fn rollback_advice(&self, py: Python<'_>, seq: u64) -> PyResult<u32> {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .rollback_advice(seq)
            .map_err(|e| raise(py, e))
    }

    /// The token sequence `seq` emitted (after a step, whichever mode).
    fn accept(&mut self, py: Python<'_>, seq: u64, token: u32) -> PyResult<()> {
        self.inner_mut()
            .accept(seq, token)
            .map_err(|e| raise(py, e))
    }

    /// End sequence `seq` (its state is freed).
    fn end(&mut self, py: Python<'_>, seq: u64) -> PyResult<()> {
        self.inner_mut().end(seq).map_err(|e| raise(py, e))
    }

    /// End every live sequence; returns how many.
    fn end_all(&mut self) -> usize {
        self.inner_mut().end_all()
    }

    /// `dst` begins as a copy of `src` (beams, parallel samples, speculative branches).
    fn fork(&mut self, py: Python<'_>, src: u64, dst: u64) -> PyResult<()> {
        self.inner_mut().fork(src, dst).map_err(|e| raise(py, e))
    }

    /// Forget what `seq` generated; it stays live with its query.
    fn reset(&mut self, py: Python<'_>, seq: u64) -> PyResult<()> {
        self.inner_mut().reset(seq).map_err(|e| raise(py, e))
    }

    /// M(Q) of a live sequence.
    fn mass<'py>(&self, py: Python<'py>, seq: u64) -> PyResult<Bound<'py, PyDict>> {
        let m = self.inner().mass(seq).map_err(|e| raise(py, e))?;
        mass_dict(py, &m)
    }

    /// The answer-level aggregates of a live sequence over its tokens accepted so far (read them
    /// before `end`): tokens, mean/max entropy, mean √varentropy, sum/mean/max potential, and
    /// `first_content` (a dict of step, entropy, one_minus_pmax, potential, or None), and the
    /// hidden-state probe's `probe_first` and `probe_mean` (NaN without a probe), the first
    /// token's `first_entropy` and `first_one_minus_pmax`, and `void`: the answer-level void,
    /// P(the answer is wrong) by the processor's answer weights (NaN before the first token).
    fn answer<'py>(&self, py: Python<'py>, seq: u64) -> PyResult<Bound<'py, PyDict>> {
        let a = self.inner().answer(seq).map_err(|e| raise(py, e))?;
        let d = PyDict::new(py);
        d.set_item("tokens", a.tokens)?;
        d.set_item("mean_entropy", a.mean_entropy)?;
        d.set_item("max_entropy", a.max_entropy)?;
        d.set_item("mean_sqrt_varentropy", a.mean_sqrt_varentropy)?;
        d.set_item("sum_potential", a.sum_potential)?;
        d.set_item("mean_potential", a.mean_potential)?;
        d.set_item("max_potential", a.max_potential)?;
        match a.first_content {
            Some(f) => {
                let c = PyDict::new(py);
                c.set_item("step", f.step)?;
                c.set_item("entropy", f.entropy)?;
                c.set_item("one_minus_pmax", f.one_minus_pmax)?;
                c.set_item("potential", f.potential)?;
                d.set_item("first_content", c)?;
            }
            None => d.set_item("first_content", py.None())?,
        }
        d.set_item("probe_first", a.probe_first)?;
        d.set_item("probe_mean", a.probe_mean)?;
        d.set_item("potential_tokens", a.potential_tokens)?;
        d.set_item("first_entropy", a.first_entropy)?;
        d.set_item("first_one_minus_pmax", a.first_one_minus_pmax)?;
        d.set_item("void", a.void)?;
        Ok(d)
    }

    /// Set (or clear, with None) the hidden-state probe read at every step: `bias +
    /// Σ weights[k]·logits[tokens[k]]` on the raw logits (`infogravity::Probe`; a linear probe
    /// of the final hidden state, written by `infogravity eval qa --hidden` as `probe.json`).
    #[pyo3(signature = (tokens, weights = None, bias = 0.0))]
    fn set_probe(
        &mut self,
        py: Python<'_>,
        tokens: Option<PyReadonlyArray1<'_, u32>>,
        weights: Option<PyReadonlyArray1<'_, f32>>,
        bias: f32,
    ) -> PyResult<()> {
        let vocab = self.inner_mut().vocab();
        let probe = match (&tokens, &weights) {
            (None, None) => None,
            (Some(t), Some(w)) => {
                let t = t
                    .as_slice()
                    .map_err(|e| invalid(py, format!("probe tokens: {e}")))?;
                let w = w
                    .as_slice()
                    .map_err(|e| invalid(py, format!("probe weights: {e}")))?;
                Some(Probe::new(vocab, t, w, bias).map_err(|e| raise(py, e))?)
            }
            _ => {
                return Err(invalid(py, "probe: give tokens and weights, or neither"));
            }
        };
        self.inner_mut().set_probe(probe).map_err(|e| raise(py, e))
    }

    /// Load a probe file (`probe.json` of `infogravity eval qa --hidden`) for this vocabulary.
    fn load_probe(&mut self, py: Python<'_>, path: std::path::PathBuf) -> PyResult<()> {
        let probe = Probe::load(&path).map_err(|e| raise(py, e))?;
        self.inner_mut()
            .set_probe(Some(probe))
            .map_err(|e| raise(py, e))
    }

    /// Set (or clear, with None) the concept the rows are tilted toward: one finite logit
    /// bias per token (standardised to mean 0, SD 1; see the `concept` configuration section),
    /// for every sequence, or for live sequence `seq` only (its own takes precedence).
    /// `tokens`: the concept's own tokens (the answer type it stands for), which the
    /// `concept.max_type_mass` gate reads.
    #[pyo3(signature = (bias, seq = None, tokens = None))]
    fn set_concept(
        &mut self,
        py: Python<'_>,
        bias: Option<PyReadonlyArray1<'_, f32>>,
        seq: Option<u64>,
        tokens: Option<Vec<u32>>,
    ) -> PyResult<()> {
        let c = match &bias {
            Some(a) => Some(
                Concept::from_bias(
                    a.as_slice()
                        .map_err(|e| invalid(py, format!("concept bias: {e}")))?,
                )
                .and_then(|c| c.with_tokens(tokens.as_deref().unwrap_or(&[])))
                .map_err(|e| raise(py, e))?,
            ),
            None if tokens.as_ref().is_some_and(|t| !t.is_empty()) => {
                return Err(invalid(
                    py,
                    "concept tokens without a concept bias (None clears the concept)",
                ));
            }
            None => None,
        };
        let p = self.inner_mut();
        match seq {
            Some(s) => p.set_sequence_concept(s, c),
            None => p.set_concept(c),
        }
        .map_err(|e| raise(py, e))
    }

    /// Give live sequence `seq`'s next step the logits of a content-free query (float32, V
    /// values), for the null-query contrast (the `contrast` configuration section): the step at
    /// this position reorders its plausible tokens by log p − β·log q; accepting a token, a
    /// rollback or a reset drops the row.
    #[pyo3(signature = (seq, row))]
    fn set_contrast(
        &mut self,
        py: Python<'_>,
        seq: u64,
        row: PyReadonlyArray1<'_, f32>,
    ) -> PyResult<()> {
        let s = row
            .as_slice()
            .map_err(|e| invalid(py, format!("null-query row: {e}")))?;
        self.inner_mut()
            .set_contrast(seq, s)
            .map_err(|e| raise(py, e))
    }

    /// Set the content table of the answer aggregates: one bool (or uint8, non-zero = content)
    /// per token of the vocabulary; None clears it (every token is content).
    #[pyo3(signature = (table))]
    fn set_content_tokens(
        &mut self,
        py: Python<'_>,
        table: Option<PyReadonlyArray1<'_, bool>>,
    ) -> PyResult<()> {
        let t = match &table {
            Some(a) => Some(ContentTable::from_bools(
                a.as_slice()
                    .map_err(|e| invalid(py, format!("content table: {e}")))?,
            )),
            None => None,
        };
        self.inner_mut()
            .set_content_tokens(t)
            .map_err(|e| raise(py, e))
    }
}

impl Processor {
    fn inner(&self) -> std::sync::MutexGuard<'_, GravityProcessor> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
    fn inner_mut(&mut self) -> &mut GravityProcessor {
        self.inner.get_mut().unwrap_or_else(|e| e.into_inner())
    }
}

/// Whether the data of two arrays overlap (byte ranges).
fn overlaps(a: &Bound<'_, PyUntypedArray>, b: &Bound<'_, PyUntypedArray>) -> bool {
    let range = |x: &Bound<'_, PyUntypedArray>| {
        // SAFETY: `as_array_ptr` is the live array object's own struct; reading its data pointer
        // field does not dereference the data.
        let start = unsafe { (*x.as_array_ptr()).fields.data } as usize;
        (start, start + x.len() * x.dtype().itemsize())
    };
    let ((a0, a1), (b0, b1)) = (range(a), range(b));
    a0 < b1 && b0 < a1
}

fn check_rows(py: Python<'_>, rows: Option<&[i64]>, b: usize, n: usize) -> PyResult<()> {
    match rows {
        None if n != b => Err(raise(
            py,
            Error::SizeMismatch {
                what: "logits rows (one per sequence)",
                expected: b,
                got: n,
            },
        )),
        None => Ok(()),
        Some(r) if r.len() != b => Err(raise(
            py,
            Error::SizeMismatch {
                what: "rows (one per sequence)",
                expected: b,
                got: r.len(),
            },
        )),
        Some(r) => {
            let mut seen = vec![false; n];
            for &i in r {
                let ok = usize::try_from(i).ok().filter(|&i| i < n);
                match ok {
                    Some(i) if !seen[i] => seen[i] = true,
                    Some(i) => return Err(invalid(py, format!("rows: row {i} appears twice"))),
                    None => return Err(invalid(py, format!("rows: {i} is not in 0..{n}"))),
                }
            }
            Ok(())
        }
    }
}

/// Step `seqs` on the rows of a `[N, v]` block: all N rows in order, or the rows `rows` picks
/// (distinct, checked by `check_rows`).
fn run_batch<E: infogravity::field::Logit>(
    p: &mut GravityProcessor,
    seqs: &[u64],
    block: &mut [E],
    v: usize,
    rows: Option<&[i64]>,
    mode: StepMode,
    reports: &mut [StepReport],
) -> infogravity::Result<()> {
    let Some(rows) = rows else {
        return p.step_batch(seqs, block, mode, reports);
    };
    if v == 0 {
        return Err(Error::SizeMismatch {
            what: "logits row",
            expected: p.vocab(),
            got: 0,
        });
    }
    let mut all: Vec<Option<&mut [E]>> = block.chunks_exact_mut(v).map(Some).collect();
    let mut picked: Vec<&mut [E]> = rows
        .iter()
        .map(|&i| {
            all[i as usize]
                .take()
                .expect("rows are distinct (check_rows)")
        })
        .collect();
    p.step_rows(seqs, &mut picked, mode, reports)
}

/// A bfloat16 array (its bits as uint16, or int16 viewed as uint16) of any rank, borrowed for
/// writing; `what` names it in errors.
fn bits_view<'py, D: numpy::ndarray::Dimension>(
    py: Python<'py>,
    a: &Bound<'py, PyUntypedArray>,
    what: &str,
) -> PyResult<numpy::PyReadwriteArray<'py, u16, D>> {
    let arr = if a.dtype().kind() == b'i' {
        a.call_method1("view", ("uint16",))?
    } else {
        a.clone().into_any()
    };
    arr.cast_into::<numpy::PyArray<u16, D>>()?
        .try_readwrite()
        .map_err(|e| borrow_err(py, what, e))
}

/// The report record's layout, for a numpy structured dtype: (name, numpy format, byte
/// offset) per field, and the record size. It is the C ABI's `IgStepReport` (version 1), so
/// records from the llama.cpp sampler's report callback read with the same dtype.
#[pyfunction]
fn report_fields() -> (Vec<(&'static str, &'static str, usize)>, usize) {
    macro_rules! f {
        ($name:ident, $fmt:literal) => {
            (stringify!($name), $fmt, offset_of!(IgStepReport, $name))
        };
    }
    (
        vec![
            f!(seq, "<u8"),
            f!(token, "<i8"),
            f!(step, "<u4"),
            f!(regime, "<u4"),
            f!(flags, "<u4"),
            f!(cycle_period, "<u4"),
            f!(stop, "<u4"),
            f!(entropy, "<f4"),
            f!(entropy_norm, "<f4"),
            f!(varentropy, "<f4"),
            f!(log_z, "<f4"),
            f!(p_max, "<f4"),
            f!(margin, "<f4"),
            f!(token_potential, "<f4"),
            f!(temperature, "<f4"),
            f!(void_score, "<f4"),
            f!(black_hole_score, "<f4"),
            f!(task_mass, "<f4"),
        ],
        size_of::<IgStepReport>(),
    )
}

/// Validate a configuration without creating a processor; returns the resolved JSON.
#[pyfunction]
fn check_config(py: Python<'_>, config_json: &str) -> PyResult<String> {
    Config::from_json(config_json)
        .map(|c| c.to_json())
        .map_err(|e| raise(py, e))
}

/// The address of a C function that copies each `IgStepReport` it is given into the
/// `ReportSink` passed as `user` (for the llama.cpp sampler's `report_fn`): no Python runs
/// per token.
#[pyfunction]
fn report_sink_fn() -> usize {
    sink_push as *const () as usize
}

/// Reports collected by C code through `report_sink_fn` (one sink per sampler).
#[pyclass(module = "infogravity._native", name = "ReportSink", frozen)]
struct ReportSink {
    records: std::sync::Mutex<Vec<IgStepReport>>,
}

extern "C" fn sink_push(report: *const IgStepReport, user: *mut std::ffi::c_void) {
    if report.is_null() || user.is_null() {
        return;
    }
    // SAFETY: `user` is the address `ReportSink.address` handed out: a live `ReportSink`
    // kept alive by the Python object that owns the sampler (`infogravity.llama_cpp`), and
    // `report` points to a complete report for the duration of the call (the sampler's
    // contract). The record is copied; `struct_size` tells how much of it the caller wrote.
    unsafe {
        let sink = &*(user as *const ReportSink);
        let mut r = IgStepReport::default();
        let n = (*report).struct_size.min(size_of::<IgStepReport>());
        std::ptr::copy_nonoverlapping(report.cast::<u8>(), (&raw mut r).cast::<u8>(), n);
        if let Ok(mut v) = sink.records.lock() {
            v.push(r);
        }
    }
}

#[pymethods]
impl ReportSink {
    #[new]
    fn new() -> Self {
        ReportSink {
            records: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// The address to pass as the C callback's `user` pointer (valid while this object lives).
    #[getter]
    fn address(slf: &Bound<'_, Self>) -> usize {
        slf.get() as *const ReportSink as usize
    }

    /// Take the collected records as bytes (report dtype records) and clear the sink.
    fn take<'py>(&self, py: Python<'py>) -> Bound<'py, pyo3::types::PyBytes> {
        let v = std::mem::take(&mut *self.records.lock().unwrap_or_else(|e| e.into_inner()));
        let rec = size_of::<IgStepReport>();
        pyo3::types::PyBytes::new_with(py, v.len() * rec, |buf| {
            for (chunk, r) in buf.chunks_exact_mut(rec).zip(&v) {
                // SAFETY: `chunk` is exactly one record's bytes of the new buffer.
                unsafe { std::ptr::write_unaligned(chunk.as_mut_ptr().cast::<IgStepReport>(), *r) };
            }
            Ok(())
        })
        .expect("filling a new bytes object cannot fail")
    }

    fn __len__(&self) -> usize {
        self.records.lock().map_or(0, |v| v.len())
    }
}

/// The content flag of each decoded token piece (`infogravity::processor::is_content_piece`).
#[pyfunction]
fn content_flags(pieces: Vec<String>) -> Vec<bool> {
    pieces
        .iter()
        .map(|p| infogravity::processor::is_content_piece(p))
        .collect()
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Processor>()?;
    m.add_class::<PyStepReport>()?;
    m.add_class::<ReportSink>()?;
    m.add_function(wrap_pyfunction!(report_fields, m)?)?;
    m.add_function(wrap_pyfunction!(check_config, m)?)?;
    m.add_function(wrap_pyfunction!(report_sink_fn, m)?)?;
    m.add_function(wrap_pyfunction!(content_flags, m)?)?;
    m.add("VERSION", infogravity::VERSION)?;
    m.add("PRESETS", infogravity::config::PRESETS.to_vec())?;
    m.add(
        "FLAG_NAMES",
        flags::NAMES
            .iter()
            .map(|(b, n)| (*b, *n))
            .collect::<Vec<_>>(),
    )?;
    m.add("MAX_VOCAB", infogravity::processor::MAX_VOCAB)?;
    // The glue of plugins/llama.cpp and the C header it includes, for `infogravity.llama_cpp`
    // to compile against the host's llama.h (one source of truth: the files in the repo).
    m.add(
        "LLAMA_GLUE_CPP",
        include_str!("../../llama.cpp/infogravity-sampler.cpp"),
    )?;
    m.add(
        "LLAMA_GLUE_H",
        include_str!("../../llama.cpp/infogravity-sampler.h"),
    )?;
    m.add("C_HEADER", include_str!("../../../include/infogravity.h"))?;
    Ok(())
}
