//! Stable C status codes. Numbers are part of the ABI: never renumber, never reuse a retired one.

use crate::error::Error;
use crate::field::FieldError;

/// Result of every fallible `ig_*` call. `IG_STATUS_OK` is 0; the message of the last failure
/// on the calling thread is `ig_last_error()`.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IgStatus {
    /// Success.
    Ok = 0,
    /// A required pointer argument was NULL.
    NullPointer = 1,
    /// An argument is invalid (e.g. vocabulary size 0, misaligned logits, bad anchor count).
    InvalidArgument = 2,
    /// The logits contain NaN. The row was not modified.
    NanLogits = 3,
    /// The logits contain +inf (no distribution is defined). The row was not modified.
    InfiniteLogits = 4,
    /// Every logit is -inf, or the row is empty. The row was not modified.
    AllMasked = 5,
    /// A buffer length does not match the handle's vocabulary or the batch size.
    SizeMismatch = 6,
    /// The sequence id was never begun, or has ended.
    UnknownSequence = 7,
    /// The sequence id is already live (begin), or repeats within one batch.
    DuplicateSequence = 8,
    /// The live-sequence limit (`limits.max_sequences`) is reached.
    TooManySequences = 9,
    /// The configuration JSON is malformed or has the wrong shape, or is not UTF-8.
    ConfigParse = 10,
    /// The configuration names an unknown key (the message names it).
    ConfigUnknownKey = 11,
    /// A configuration value is out of range (the message names the key and range).
    ConfigOutOfRange = 12,
    /// A caller-filled struct's `struct_size` is smaller than its first version.
    StructTooSmall = 13,
    /// A token id is not below the vocabulary size.
    TokenOutOfRange = 14,
    /// A Prior or calibration file failed validation.
    CorruptFile = 15,
    /// A file could not be read.
    Io = 16,
    /// The dtype code is not one of IG_DTYPE_*.
    UnsupportedDtype = 17,
    /// A Rust panic was caught at the boundary; the handle is poisoned and must be freed.
    Panic = 18,
    /// The output buffer is too small; the needed size was written.
    BufferTooSmall = 19,
    /// Not returned by the C library: the Rust reference engine (`infogravity-engine`) reports
    /// its runtime, model and run failures with it.
    Engine = 20,
    /// An allocation the call needs failed (a vocabulary or batch too large for memory).
    OutOfMemory = 21,
    /// The mode code is not one of IG_MODE_*.
    UnsupportedMode = 22,
}

impl IgStatus {
    /// Every status, for tests and `ig_status_str`.
    pub fn all() -> [IgStatus; 23] {
        [
            IgStatus::Ok,
            IgStatus::NullPointer,
            IgStatus::InvalidArgument,
            IgStatus::NanLogits,
            IgStatus::InfiniteLogits,
            IgStatus::AllMasked,
            IgStatus::SizeMismatch,
            IgStatus::UnknownSequence,
            IgStatus::DuplicateSequence,
            IgStatus::TooManySequences,
            IgStatus::ConfigParse,
            IgStatus::ConfigUnknownKey,
            IgStatus::ConfigOutOfRange,
            IgStatus::StructTooSmall,
            IgStatus::TokenOutOfRange,
            IgStatus::CorruptFile,
            IgStatus::Io,
            IgStatus::UnsupportedDtype,
            IgStatus::Panic,
            IgStatus::BufferTooSmall,
            IgStatus::Engine,
            IgStatus::OutOfMemory,
            IgStatus::UnsupportedMode,
        ]
    }

    /// Static NUL-terminated description.
    pub fn as_cstr(self) -> &'static std::ffi::CStr {
        match self {
            IgStatus::Ok => c"ok",
            IgStatus::NullPointer => c"null pointer",
            IgStatus::InvalidArgument => c"invalid argument",
            IgStatus::NanLogits => c"logits contain NaN",
            IgStatus::InfiniteLogits => c"logits contain +inf",
            IgStatus::AllMasked => c"all logits masked or row empty",
            IgStatus::SizeMismatch => c"size mismatch",
            IgStatus::UnknownSequence => c"unknown sequence id",
            IgStatus::DuplicateSequence => c"duplicate sequence id",
            IgStatus::TooManySequences => c"too many live sequences",
            IgStatus::ConfigParse => c"malformed configuration",
            IgStatus::ConfigUnknownKey => c"unknown configuration key",
            IgStatus::ConfigOutOfRange => c"configuration value out of range",
            IgStatus::StructTooSmall => c"struct_size too small",
            IgStatus::TokenOutOfRange => c"token id out of range",
            IgStatus::CorruptFile => c"corrupt file",
            IgStatus::Io => c"i/o error",
            IgStatus::UnsupportedDtype => c"unsupported dtype",
            IgStatus::Panic => c"internal panic (handle poisoned)",
            IgStatus::BufferTooSmall => c"buffer too small",
            IgStatus::Engine => c"engine error",
            IgStatus::OutOfMemory => c"out of memory",
            IgStatus::UnsupportedMode => c"unsupported mode",
        }
    }
}

impl From<&Error> for IgStatus {
    fn from(e: &Error) -> IgStatus {
        match e {
            Error::InvalidLogits(FieldError::NaN) => IgStatus::NanLogits,
            Error::InvalidLogits(FieldError::PositiveInfinity) => IgStatus::InfiniteLogits,
            Error::InvalidLogits(FieldError::AllMasked | FieldError::Empty) => IgStatus::AllMasked,
            Error::SizeMismatch { .. } => IgStatus::SizeMismatch,
            Error::UnknownSequence(_) => IgStatus::UnknownSequence,
            Error::DuplicateSequence(_) => IgStatus::DuplicateSequence,
            Error::TooManySequences { .. } => IgStatus::TooManySequences,
            Error::ConfigParse(_) => IgStatus::ConfigParse,
            Error::ConfigUnknownKey(_) => IgStatus::ConfigUnknownKey,
            Error::ConfigOutOfRange { .. } => IgStatus::ConfigOutOfRange,
            Error::TokenOutOfRange { .. } => IgStatus::TokenOutOfRange,
            Error::CorruptFile { .. } => IgStatus::CorruptFile,
            Error::Io(_) => IgStatus::Io,
            Error::InvalidArgument(_) => IgStatus::InvalidArgument,
            Error::BatchRow { source, .. } => IgStatus::from(&**source),
            Error::OutOfMemory { .. } => IgStatus::OutOfMemory,
            // Plugins belong to the Rust API: the C library never loads one.
            Error::Plugin(_) => IgStatus::InvalidArgument,
            Error::Engine(_) => IgStatus::Engine,
        }
    }
}
