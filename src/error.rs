//! The crate's one error type. The C ABI maps each variant to a stable status code
//! (`src/ffi/status.rs`); the message of [`Error`]'s `Display` is what `ig_last_error` returns.

use crate::field::FieldError;

/// Everything that can go wrong, with enough detail for a readable message.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The logits row is unusable (NaN, +inf, empty, all masked). The row is left untouched.
    #[error("invalid logits: {0}")]
    InvalidLogits(FieldError),
    /// A buffer length does not match what the handle or call expects.
    #[error("size mismatch: {what}: expected {expected}, got {got}")]
    SizeMismatch {
        what: &'static str,
        expected: usize,
        got: usize,
    },
    /// `step`/`accept`/`end` for a sequence id that was never begun (or already ended).
    #[error("unknown sequence id {0}")]
    UnknownSequence(u64),
    /// `begin` for a sequence id that is live, or the same id twice in one batch.
    #[error("sequence id {0} is already live")]
    DuplicateSequence(u64),
    /// More live sequences than `limits.max_sequences`.
    #[error("too many live sequences (limit {limit}; raise limits.max_sequences or end some)")]
    TooManySequences { limit: usize },
    /// The configuration is not valid JSON or has the wrong shape.
    #[error("config: {0}")]
    ConfigParse(String),
    /// The configuration names a key that does not exist.
    #[error("config: unknown key `{0}`")]
    ConfigUnknownKey(String),
    /// A configuration value is outside its allowed range.
    #[error("config: `{key}` {msg}")]
    ConfigOutOfRange { key: String, msg: String },
    /// A token id is not below the vocabulary size.
    #[error("{what}: token id {id} is out of range for vocabulary size {vocab}")]
    TokenOutOfRange {
        what: &'static str,
        id: u64,
        vocab: usize,
    },
    /// A Prior or calibration file failed validation.
    #[error("corrupt {what} file: {msg}")]
    CorruptFile { what: &'static str, msg: String },
    /// Reading or writing a file failed.
    #[error("i/o: {0}")]
    Io(String),
    /// The inference engine failed: runtime library, model files, or a run.
    #[error("engine: {0}")]
    Engine(String),
    /// One row of a batch failed; no row of the batch was stepped.
    #[error("batch row {row} (sequence {seq}): {source}")]
    BatchRow {
        row: usize,
        seq: u64,
        source: Box<Error>,
    },
    /// An allocation the call needs could not be made (e.g. a huge vocabulary or batch).
    #[error("out of memory: {what} needs {bytes} bytes")]
    OutOfMemory { what: &'static str, bytes: usize },
    /// A third-party plugin failed (to load, to be created, or in a call); the message names it.
    #[error("{0}")]
    Plugin(String),
    /// Any other argument the call cannot use.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The error itself, or for a batch row the error of the row.
    pub fn root(&self) -> &Error {
        match self {
            Error::BatchRow { source, .. } => source.root(),
            e => e,
        }
    }
}

/// Reserve room for `n` more elements, or [`Error::OutOfMemory`] instead of aborting.
pub(crate) fn try_reserve<T>(v: &mut Vec<T>, n: usize, what: &'static str) -> Result<()> {
    v.try_reserve_exact(n).map_err(|_| Error::OutOfMemory {
        what,
        bytes: n.saturating_mul(std::mem::size_of::<T>()),
    })
}

impl From<FieldError> for Error {
    fn from(e: FieldError) -> Self {
        Error::InvalidLogits(e)
    }
}
