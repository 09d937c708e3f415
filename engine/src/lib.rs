//! The infogravity reference engine: ONNX causal LMs through ONNX Runtime (`ort`, loaded at
//! run time) with the gravity processor in the loop; the evaluation ([`eval`]) and the
//! processor benchmark ([`bench`]) behind the `infogravity` CLI. The C library a host links is
//! the `infogravity` crate alone: nothing here is in it.
//!
//! - [`runtime`]: one ORT environment per process, loaded from an explicit path,
//!   `ORT_DYLIB_PATH`, or the cache that `scripts/setup-engine.sh` fills (the library from the
//!   PyPI wheel `onnxruntime==1.31.1`). A missing or unloadable library is an error that says
//!   how to get the right one.
//! - [`CausalLm`]: a model directory as written by `tools/gguf2onnx.py` (`model.onnx`,
//!   `tokenizer.json`, `model.json`); input and output names are discovered and checked;
//!   prefill returns the logits of every prompt position (for H(Q)), decode steps reuse the
//!   KV cache.
//!
//! The math of the processor never names `ort` types: this module hands it `&mut [f32]` rows.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ort::session::Session;
use ort::value::{DynValue, Tensor};
use serde::Deserialize;

use infogravity::{Error, Result};

pub mod bench;
mod content;
pub mod eval;
mod generate;
mod mass;
pub mod unembed;
pub mod view;
pub use content::content_table;
pub use generate::{
    Engine, GenerateOptions, Generation, Message, StopReason, processor_for, render_chat,
};
pub use mass::{Conductivity, conductivity, kl_logits, prompt_mass, prompt_with_span, query_mass};

/// The ONNX Runtime release the engine is built and tested against.
pub const ORT_VERSION: &str = "1.31.1";

fn engine(msg: impl Into<String>) -> Error {
    Error::Engine(msg.into())
}

/// Where `scripts/setup-engine.sh` puts the runtime library and models:
/// `$INFOGRAVITY_HOME`, else `$XDG_CACHE_HOME/infogravity`, else `~/.cache/infogravity`.
pub fn cache_dir() -> PathBuf {
    if let Some(h) = std::env::var_os("INFOGRAVITY_HOME") {
        return PathBuf::from(h);
    }
    if let Some(x) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(x).join("infogravity");
    }
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
        .join(".cache/infogravity")
}

/// The runtime library to load: `explicit`, else `ORT_DYLIB_PATH`, else the cache.
pub fn ort_library(explicit: Option<&Path>) -> PathBuf {
    explicit
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os("ORT_DYLIB_PATH").map(PathBuf::from))
        .unwrap_or_else(|| {
            cache_dir()
                .join("ort")
                .join(format!("libonnxruntime.so.{ORT_VERSION}"))
        })
}

static ENVIRONMENT: OnceLock<ort::environment::Environment> = OnceLock::new();
static INIT: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The process's ORT environment, created on first success from [`ort_library`]`(explicit)`.
/// Later calls return the same environment whatever path they name (ORT allows one per
/// process). A failure is not remembered: a later call may name a library that works.
pub fn runtime(explicit: Option<&Path>) -> Result<&'static ort::environment::Environment> {
    if let Some(env) = ENVIRONMENT.get() {
        return Ok(env);
    }
    let _one_at_a_time = INIT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(env) = ENVIRONMENT.get() {
        return Ok(env);
    }
    let lib = ort_library(explicit);
    let how = format!(
        "get ONNX Runtime {ORT_VERSION} with `scripts/setup-engine.sh` (it takes \
         onnxruntime/capi/libonnxruntime.so.{ORT_VERSION} from the PyPI wheel \
         onnxruntime=={ORT_VERSION}) or point ORT_DYLIB_PATH at that file"
    );
    if !lib.exists() {
        return Err(engine(format!(
            "ONNX Runtime library not found at {}: {how}",
            lib.display()
        )));
    }
    let env = ort::init_from(&lib)
        .map_err(|e| {
            engine(format!(
                "cannot load ONNX Runtime from {}: {e}; {how}",
                lib.display()
            ))
        })?
        .with_name("infogravity")
        .build()
        .map_err(|e| engine(format!("cannot create the ONNX Runtime environment: {e}")))?;
    Ok(ENVIRONMENT.get_or_init(|| env))
}

/// `model.json`, written by the converter.
#[derive(Debug, Clone, Deserialize)]
pub struct ModelInfo {
    pub format: String,
    pub version: u32,
    pub source: String,
    pub layers: usize,
    pub hidden: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub vocab: usize,
    pub context: usize,
    pub bos_token_id: u32,
    pub eos_token_id: u32,
    pub chat_template: String,
    /// The converter's `--weights` (fp32, q4), when it says.
    #[serde(default)]
    pub weights: Option<String>,
}

impl ModelInfo {
    /// The source GGUF and the build, as pages and reports name the model
    /// (`SmolLM2-135M-Instruct.Q4_1.gguf, fp32 build`).
    pub fn describe(&self) -> String {
        match &self.weights {
            Some(w) => format!("{}, {w} build", self.source),
            None => self.source.clone(),
        }
    }

    /// Read and check `model.json`: a regular file of at most 1 MiB, format
    /// `infogravity-model` v1, every dimension within a bound no real model reaches (so a
    /// corrupt file is an error, never a huge allocation).
    pub fn load(path: &Path) -> Result<ModelInfo> {
        let bytes = infogravity::io::read_bounded(path, 1 << 20, "model.json").map_err(|e| {
            engine(format!(
                "{e} (a model directory holds model.onnx, model.json and tokenizer.json, as \
                 tools/gguf2onnx.py writes them)"
            ))
        })?;
        let info: ModelInfo = serde_json::from_slice(&bytes)
            .map_err(|e| engine(format!("{}: malformed: {e}", path.display())))?;
        if info.format != "infogravity-model" || info.version != 1 {
            return Err(engine(format!(
                "{}: format {} v{} is not infogravity-model v1",
                path.display(),
                info.format,
                info.version
            )));
        }
        let bounds = [
            ("layers", info.layers, 4096),
            ("hidden", info.hidden, 1 << 16),
            ("heads", info.heads, 1024),
            ("kv_heads", info.kv_heads, 1024),
            ("head_dim", info.head_dim, 1024),
            ("vocab", info.vocab, infogravity::processor::MAX_VOCAB),
            ("context", info.context, 1 << 24),
        ];
        for (what, n, max) in bounds {
            if n == 0 || n > max {
                return Err(engine(format!(
                    "{}: {what} = {n} is outside [1, {max}]",
                    path.display()
                )));
            }
        }
        if !info.heads.is_multiple_of(info.kv_heads) {
            return Err(engine(format!(
                "{}: heads = {} is not a multiple of kv_heads = {}",
                path.display(),
                info.heads,
                info.kv_heads
            )));
        }
        let ids = [
            ("bos_token_id", info.bos_token_id),
            ("eos_token_id", info.eos_token_id),
        ];
        for (what, id) in ids {
            if id as usize >= info.vocab {
                return Err(engine(format!(
                    "{}: {what} = {id} is not below vocab = {}",
                    path.display(),
                    info.vocab
                )));
            }
        }
        Ok(info)
    }
}

/// An ONNX Runtime execution provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    TensorRt,
    Cuda,
    Cpu,
}

impl Provider {
    /// Lower-case name, as in `--providers`.
    pub fn name(self) -> &'static str {
        match self {
            Provider::TensorRt => "tensorrt",
            Provider::Cuda => "cuda",
            Provider::Cpu => "cpu",
        }
    }
    /// Parse a name (`tensorrt`, `cuda`, `cpu`).
    pub fn parse(s: &str) -> Result<Provider> {
        match s.trim().to_ascii_lowercase().as_str() {
            "tensorrt" | "trt" => Ok(Provider::TensorRt),
            "cuda" => Ok(Provider::Cuda),
            "cpu" => Ok(Provider::Cpu),
            other => Err(Error::InvalidArgument(format!(
                "unknown execution provider `{other}` (tensorrt, cuda, cpu)"
            ))),
        }
    }
}

/// Session settings.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// The ORT library (default: [`ort_library`]).
    pub ort_library: Option<PathBuf>,
    /// Intra-op threads (0 = ORT's default).
    pub threads: usize,
    /// Execution providers to try, in order; each is registered with `error_on_failure`, and
    /// the first that registers runs the model ([`CausalLm::provider`] says which).
    pub providers: Vec<Provider>,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            ort_library: None,
            threads: 0,
            providers: vec![Provider::Cpu],
        }
    }
}

/// The KV cache of one sequence: a one-row [`BatchCache`].
pub struct KvCache(BatchCache);

impl KvCache {
    /// Tokens in the cache.
    pub fn len(&self) -> usize {
        self.0.len(0)
    }
    /// No tokens yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The KV cache of a batch of sequences sharing one run: `[B, n_kv, T, head_dim]` tensors and
/// a per-row mask of which of the T slots hold that row's tokens (rows of different lengths are
/// left-padded; padded slots stay masked for good).
pub struct BatchCache {
    values: Vec<DynValue>,
    mask: Vec<Vec<i64>>,
    next_pos: Vec<i64>,
    /// Each row's tokens, kept for models without a KV cache.
    history: Vec<Vec<u32>>,
}

impl BatchCache {
    /// Rows in the batch.
    pub fn rows(&self) -> usize {
        self.mask.len()
    }
    /// Tokens held by row `b`.
    pub fn len(&self, b: usize) -> usize {
        self.next_pos[b] as usize
    }

    /// Drop row `b`'s last `k` tokens (`llama_memory_seq_rm` for this cache): their slots are
    /// masked for good, as padding is, and the row's next position is theirs again. The other
    /// rows are untouched; the slots stay allocated until the cache is dropped.
    pub fn rewind(&mut self, b: usize, k: usize) -> Result<()> {
        if b >= self.rows() || k > self.len(b) {
            return Err(Error::InvalidArgument(format!(
                "cannot rewind row {b} by {k} tokens ({} rows, {} tokens in it)",
                self.rows(),
                self.next_pos.get(b).copied().unwrap_or(0)
            )));
        }
        let mut left = k;
        for m in self.mask[b].iter_mut().rev() {
            if left == 0 {
                break;
            }
            if *m != 0 {
                *m = 0;
                left -= 1;
            }
        }
        self.next_pos[b] -= k as i64;
        let h = &mut self.history[b];
        h.truncate(h.len().saturating_sub(k));
        Ok(())
    }
}

/// A causal LM session.
pub struct CausalLm {
    session: Session,
    info: ModelInfo,
    /// Empty for a model without a KV cache (then every call re-runs the whole history).
    past: Vec<String>,
    present: Vec<String>,
    provider: Provider,
    fallbacks: Vec<(Provider, String)>,
}

impl CausalLm {
    /// Load `dir/model.onnx` with `dir/model.json`; checks the interface.
    pub fn load(dir: &Path, opts: &EngineOptions) -> Result<CausalLm> {
        let info = ModelInfo::load(&dir.join("model.json"))?;
        let env = runtime(opts.ort_library.as_deref())?;
        let model = dir.join("model.onnx");
        if !model.exists() {
            return Err(engine(format!("{} not found", model.display())));
        }
        if opts.providers.is_empty() {
            return Err(Error::InvalidArgument(
                "no execution provider requested".into(),
            ));
        }
        // Our own fallback: each provider is registered with error_on_failure, so a provider
        // that cannot run (no GPU, an ORT build without it) is known, not silently replaced.
        let mut fallbacks = vec![];
        let mut chosen = None;
        for &p in &opts.providers {
            let mut b = Session::builder(env).map_err(|e| engine(e.to_string()))?;
            if opts.threads > 0 {
                b = b
                    .with_intra_threads(opts.threads)
                    .map_err(|e| engine(e.to_string()))?;
            }
            let ep = match p {
                Provider::TensorRt => ort::ep::TensorRT::default().build().error_on_failure(),
                Provider::Cuda => ort::ep::CUDA::default().build().error_on_failure(),
                Provider::Cpu => ort::ep::CPU::default().build().error_on_failure(),
            };
            match b.with_execution_providers([ep]) {
                Ok(b) => {
                    chosen = Some((p, b));
                    break;
                }
                Err(e) => fallbacks.push((p, e.to_string())),
            }
        }
        let Some((provider, mut b)) = chosen else {
            let why: Vec<String> = fallbacks
                .iter()
                .map(|(p, e)| format!("{}: {e}", p.name()))
                .collect();
            return Err(engine(format!(
                "no requested execution provider could be registered ({}); add cpu to the list",
                why.join("; ")
            )));
        };
        let session = b
            .commit_from_file(&model)
            .map_err(|e| engine(format!("cannot load {}: {e}", model.display())))?;
        let names: Vec<&str> = session.inputs().iter().map(|i| i.name()).collect();
        let outs: Vec<&str> = session.outputs().iter().map(|o| o.name()).collect();
        let cache_layers = names
            .iter()
            .filter(|n| n.starts_with("past_key_values.") && n.ends_with(".key"))
            .count();
        if cache_layers > 0 && cache_layers != info.layers {
            return Err(engine(format!(
                "{}: model.json says {} layers, the graph has a KV cache for {cache_layers}",
                model.display(),
                info.layers
            )));
        }
        let mut past = vec![];
        let mut present = vec![];
        for i in 0..info.layers {
            for kind in ["key", "value"] {
                past.push(format!("past_key_values.{i}.{kind}"));
                present.push(format!("present.{i}.{kind}"));
            }
        }
        // With a KV cache every past/present tensor must be there; without one, none of them.
        let has_past = past.iter().filter(|p| names.contains(&p.as_str())).count();
        if has_past == 0 {
            past.clear();
            present.clear();
        }
        let want_in = ["input_ids", "attention_mask", "position_ids"]
            .into_iter()
            .map(String::from)
            .chain(past.iter().cloned());
        for w in want_in {
            if !names.contains(&w.as_str()) {
                return Err(engine(format!(
                    "{}: unexpected inputs {names:?}: expected input_ids, attention_mask, \
                     position_ids and, for a KV cache, past_key_values.N.key/value for {} \
                     layers (missing {w})",
                    model.display(),
                    info.layers
                )));
            }
        }
        for w in std::iter::once("logits".to_string()).chain(present.iter().cloned()) {
            if !outs.contains(&w.as_str()) {
                return Err(engine(format!(
                    "{}: unexpected outputs {outs:?}: expected logits and present.N.key/value \
                     (missing {w})",
                    model.display()
                )));
            }
        }
        Ok(CausalLm {
            session,
            info,
            past,
            present,
            provider,
            fallbacks,
        })
    }

    /// The execution provider that really runs the model.
    pub fn provider(&self) -> Provider {
        self.provider
    }

    /// Providers tried before it, with the reason each could not be registered.
    pub fn fallbacks(&self) -> &[(Provider, String)] {
        &self.fallbacks
    }

    /// Whether the model has a KV cache (without one, each call re-runs the whole history).
    pub fn has_kv_cache(&self) -> bool {
        !self.past.is_empty()
    }

    /// The model's metadata.
    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// An empty cache for one sequence.
    pub fn new_cache(&self) -> Result<KvCache> {
        Ok(KvCache(self.new_batch_cache(1)?))
    }

    /// An empty cache for `rows` sequences run together.
    pub fn new_batch_cache(&self, rows: usize) -> Result<BatchCache> {
        if rows == 0 {
            return Err(Error::InvalidArgument(
                "a batch needs at least one row".into(),
            ));
        }
        let (kv, hd) = (self.info.kv_heads as i64, self.info.head_dim as i64);
        let values = (0..2 * self.info.layers)
            .map(|_| {
                Tensor::from_array((vec![rows as i64, kv, 0, hd], Vec::<f32>::new()))
                    .map(|t| t.into_dyn())
                    .map_err(|e| engine(e.to_string()))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(BatchCache {
            values,
            mask: vec![vec![]; rows],
            next_pos: vec![0; rows],
            history: vec![vec![]; rows],
        })
    }

    /// Run one chunk per row (`tokens[b]` after what row b holds; lengths may differ, rows are
    /// left-padded) in a single session run. Returns per row the logits of its new positions
    /// (`[tokens[b].len(), V]`).
    pub fn forward_batch(
        &mut self,
        cache: &mut BatchCache,
        tokens: &[&[u32]],
    ) -> Result<Vec<Vec<f32>>> {
        if tokens.iter().any(|t| t.is_empty()) {
            return Err(Error::InvalidArgument(
                "every batch row needs at least one token".into(),
            ));
        }
        if !self.has_kv_cache() && cache.next_pos.iter().any(|&p| p > 0) {
            // No KV cache: run each row's whole history again and keep the new positions.
            if tokens.len() != cache.rows() {
                return Err(Error::SizeMismatch {
                    what: "batch rows",
                    expected: cache.rows(),
                    got: tokens.len(),
                });
            }
            let full: Vec<Vec<u32>> = cache
                .history
                .iter()
                .zip(tokens)
                .map(|(h, t)| h.iter().chain(t.iter()).copied().collect())
                .collect();
            let mut fresh = self.new_batch_cache(cache.rows())?;
            let refs: Vec<&[u32]> = full.iter().map(Vec::as_slice).collect();
            let all = self.forward_batch(&mut fresh, &refs)?;
            let v = self.info.vocab;
            let rows = all
                .into_iter()
                .zip(tokens)
                .map(|(r, t)| r[r.len() - t.len() * v..].to_vec())
                .collect();
            *cache = fresh;
            return Ok(rows);
        }
        let v = self.info.vocab;
        let b = cache.rows();
        let cached = self.has_kv_cache();
        if tokens.len() != b {
            return Err(Error::SizeMismatch {
                what: "batch rows",
                expected: b,
                got: tokens.len(),
            });
        }
        if let Some(&t) = tokens
            .iter()
            .flat_map(|r| r.iter())
            .find(|&&t| t as usize >= v)
        {
            return Err(Error::TokenOutOfRange {
                what: "model input",
                id: t as u64,
                vocab: v,
            });
        }
        let s = tokens.iter().map(|r| r.len()).max().unwrap_or(0);
        let p = cache.mask[0].len();
        if let Some(r) = (0..b).find(|&r| cache.len(r) + tokens[r].len() > self.info.context) {
            return Err(engine(format!(
                "row {r}: {} tokens exceed the model's context of {}",
                cache.len(r) + tokens[r].len(),
                self.info.context
            )));
        }
        let (mut ids, mut pos, mut mask) = (vec![0i64; b * s], vec![0i64; b * s], vec![]);
        for (r, row) in tokens.iter().enumerate() {
            let pad = s - row.len();
            for (j, &t) in row.iter().enumerate() {
                ids[r * s + pad + j] = t as i64;
                pos[r * s + pad + j] = cache.next_pos[r] + j as i64;
            }
            mask.extend_from_slice(&cache.mask[r]);
            mask.extend((0..s).map(|j| (j >= pad) as i64));
        }
        let t = |r: ort::Result<Tensor<i64>>| r.map_err(|e| engine(e.to_string()));
        let ids = t(Tensor::from_array((vec![b as i64, s as i64], ids)))?;
        let pos = t(Tensor::from_array((vec![b as i64, s as i64], pos)))?;
        let mask_t = t(Tensor::from_array((
            vec![b as i64, (p + s) as i64],
            mask.clone(),
        )))?;
        let mut inputs: Vec<(
            std::borrow::Cow<'_, str>,
            ort::session::SessionInputValue<'_>,
        )> = vec![
            ("input_ids".into(), ids.into()),
            ("attention_mask".into(), mask_t.into()),
            ("position_ids".into(), pos.into()),
        ];
        for (name, value) in self.past.iter().zip(&cache.values) {
            inputs.push((name.as_str().into(), value.into()));
        }
        let mut out = self
            .session
            .run(inputs)
            .map_err(|e| engine(format!("inference failed: {e}")))?;
        let rows = {
            let (shape, data) = out["logits"]
                .try_extract_tensor::<f32>()
                .map_err(|e| engine(e.to_string()))?;
            if shape.len() != 3
                || shape[0] as usize != b
                || shape[1] as usize != s
                || shape[2] as usize != v
            {
                return Err(engine(format!(
                    "logits have shape {shape:?}, expected [{b}, {s}, {v}]"
                )));
            }
            tokens
                .iter()
                .enumerate()
                .map(|(r, row)| {
                    let start = (r * s + s - row.len()) * v;
                    data[start..start + row.len() * v].to_vec()
                })
                .collect::<Vec<_>>()
        };
        let mut values = Vec::with_capacity(self.present.len());
        for name in &self.present {
            values.push(
                out.remove(name.as_str())
                    .ok_or_else(|| engine(format!("output {name} missing")))?,
            );
        }
        cache.values = values;
        for (r, row) in tokens.iter().enumerate() {
            cache.mask[r] = mask[r * (p + s)..(r + 1) * (p + s)].to_vec();
            cache.next_pos[r] += row.len() as i64;
            if !cached {
                cache.history[r].extend_from_slice(row);
            }
        }
        Ok(rows)
    }

    /// Run `tokens` after what `cache` holds; returns the logits of every new position
    /// (row-major `[tokens.len(), V]`) and advances the cache. A failed call leaves the cache
    /// as it was.
    pub fn forward(&mut self, cache: &mut KvCache, tokens: &[u32]) -> Result<Vec<f32>> {
        let mut rows = self.forward_batch(&mut cache.0, &[tokens])?;
        Ok(rows.pop().expect("one row in, one row out"))
    }
}
