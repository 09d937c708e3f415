//! The boundary every export goes through: the panic catch, the last-error slots, and the
//! pointer, length and versioned-struct helpers. Each helper checks everything it can before it
//! builds a reference (lengths against `isize::MAX`, NULL, alignment), so an export body never
//! creates a slice from an unchecked length.

use std::cell::RefCell;
use std::ffi::{CStr, CString, c_char};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Mutex, MutexGuard};

use super::status::IgStatus;
use super::types::IG_MAX_STRUCT_SIZE;
use crate::error::Error;
use crate::processor::{GravityProcessor, StepMode};
use crate::report::StepReport;

/// Opaque processor handle. Create with `ig_processor_new`, release with `ig_processor_free`.
/// Thread-safe: calls on one handle are serialised by an internal lock.
pub struct IgProcessor {
    pub(super) inner: Mutex<Inner>,
    /// The message of the last failing call on this handle (`ig_processor_last_error`).
    pub(super) error: Mutex<String>,
}

pub(super) struct Inner {
    pub proc: GravityProcessor,
    /// Reused by batch calls (no allocation once grown).
    pub reports: Vec<StepReport>,
    /// Reused by row-pointer batches: the rows' addresses, sorted to check they are disjoint.
    pub addrs: Vec<usize>,
}

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

/// A failure on its way to the caller.
pub(super) struct Fail(pub IgStatus, pub String);

impl From<Error> for Fail {
    fn from(e: Error) -> Fail {
        Fail(IgStatus::from(&e), e.to_string())
    }
}

impl Fail {
    pub fn new(status: IgStatus, msg: impl Into<String>) -> Fail {
        Fail(status, msg.into())
    }
}

/// The thread's last error ("" after a successful call). Never panics, even while the
/// thread's locals are being destroyed (then the message is dropped).
pub(super) fn last_error_ptr() -> *const c_char {
    LAST_ERROR
        .try_with(|l| l.borrow().as_ptr())
        .unwrap_or(c"".as_ptr())
}

fn set_last_error(msg: &str) {
    let c = CString::new(msg.replace('\0', " ")).unwrap_or_default();
    let _ = LAST_ERROR.try_with(|l| *l.borrow_mut() = c);
}

fn clear_last_error() {
    let _ = LAST_ERROR.try_with(|l| {
        if !l.borrow().is_empty() {
            *l.borrow_mut() = CString::default();
        }
    });
}

/// Run `f`, turning errors into a status + the thread's message and panics into
/// `IgStatus::Panic`; a success clears the thread's message. Every export goes through here.
pub(super) fn boundary(f: impl FnOnce() -> Result<(), Fail>) -> IgStatus {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => {
            clear_last_error();
            IgStatus::Ok
        }
        Ok(Err(Fail(status, msg))) => {
            set_last_error(&msg);
            status
        }
        Err(payload) => {
            let msg = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            set_last_error(&format!("internal panic: {msg}"));
            IgStatus::Panic
        }
    }
}

/// [`boundary`] for calls on a handle: a failure's message is also kept in the handle, for
/// hosts that hop threads between a call and reading the error.
///
/// # Safety
/// `p` must be NULL or a live handle.
pub(super) unsafe fn on_handle(
    p: *const IgProcessor,
    f: impl FnOnce() -> Result<(), Fail>,
) -> IgStatus {
    let st = boundary(f);
    if st != IgStatus::Ok && !p.is_null() {
        let _ = catch_unwind(AssertUnwindSafe(|| {
            // SAFETY: a live handle per the contract.
            let h = unsafe { &*p };
            let msg = last_error_ptr();
            // SAFETY: the thread's message is a NUL-terminated string we own.
            let msg = unsafe { CStr::from_ptr(msg) }.to_string_lossy();
            let mut slot = h.error.lock().unwrap_or_else(|e| e.into_inner());
            slot.clear();
            slot.push_str(&msg);
        }));
    }
    st
}

pub(super) fn null(what: &str) -> Fail {
    Fail::new(IgStatus::NullPointer, format!("{what} is NULL"))
}

/// Check a (pointer, length) pair for `T` without building anything: `(NULL, 0)` is empty, a
/// length whose byte size exceeds `isize::MAX` is refused (no Rust slice may be that long),
/// NULL with a length is NULL_POINTER, misalignment INVALID_ARGUMENT.
fn check_array<T>(ptr: *const T, len: usize, what: &str) -> Result<bool, Fail> {
    if len == 0 {
        return Ok(false);
    }
    if len > isize::MAX as usize / std::mem::size_of::<T>().max(1) {
        return Err(Fail::new(
            IgStatus::InvalidArgument,
            format!("{what}: length {len} is larger than any buffer can be"),
        ));
    }
    if ptr.is_null() {
        return Err(null(what));
    }
    if !ptr.is_aligned() {
        return Err(Fail::new(
            IgStatus::InvalidArgument,
            format!(
                "{what} is misaligned (needs {}-byte alignment)",
                std::mem::align_of::<T>()
            ),
        ));
    }
    Ok(true)
}

/// A slice from a C (pointer, length) pair; (NULL, 0) is empty.
///
/// # Safety
/// A non-NULL `ptr` must point to `len` valid, initialised `T` that outlive the returned slice.
pub(super) unsafe fn slice<'a, T>(ptr: *const T, len: usize, what: &str) -> Result<&'a [T], Fail> {
    if !check_array(ptr, len, what)? {
        return Ok(&[]);
    }
    // SAFETY: non-NULL, aligned, len·size ≤ isize::MAX, and the caller promises `len` elements.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// Mutable variant of [`slice`].
///
/// # Safety
/// As [`slice`], and the memory must not be accessed through other pointers meanwhile.
pub(super) unsafe fn slice_mut<'a, T>(
    ptr: *mut T,
    len: usize,
    what: &str,
) -> Result<&'a mut [T], Fail> {
    if !check_array(ptr, len, what)? {
        return Ok(&mut []);
    }
    // SAFETY: as in `slice`, plus exclusive access for the call's duration.
    Ok(unsafe { std::slice::from_raw_parts_mut(ptr, len) })
}

/// A UTF-8 string from a NUL-terminated C string.
///
/// # Safety
/// A non-NULL `ptr` must point to a NUL-terminated string.
pub(super) unsafe fn str_arg<'a>(
    ptr: *const c_char,
    what: &str,
    status: IgStatus,
) -> Result<&'a str, Fail> {
    if ptr.is_null() {
        return Err(null(what));
    }
    // SAFETY: the caller promises a NUL-terminated string.
    let c = unsafe { CStr::from_ptr(ptr) };
    c.to_str()
        .map_err(|_| Fail::new(status, format!("{what} is not valid UTF-8")))
}

/// Read a versioned struct's `struct_size` and check it: at least the v1 size, at most
/// [`IG_MAX_STRUCT_SIZE`]. Zero is refused with a hint: it is what `T x = {0};` leaves, and
/// accepting it would silently drop every field the caller set.
///
/// # Safety
/// `ptr` must be non-NULL and aligned, pointing to at least a readable `size_t`.
unsafe fn struct_size<T>(ptr: *const T, v1: usize, what: &str, init: &str) -> Result<usize, Fail> {
    // SAFETY: aligned and non-NULL (the callers check); every versioned struct starts with a
    // size_t.
    let size = unsafe { ptr.cast::<usize>().read() };
    if size == 0 {
        return Err(Fail::new(
            IgStatus::StructTooSmall,
            format!("{what}.struct_size is 0: initialise it with {init}() first"),
        ));
    }
    if size < v1 || size > IG_MAX_STRUCT_SIZE {
        return Err(Fail::new(
            IgStatus::StructTooSmall,
            format!(
                "{what}.struct_size = {size}: must be in [{v1}, {IG_MAX_STRUCT_SIZE}] (the first version is {v1} bytes)"
            ),
        ));
    }
    Ok(size)
}

fn aligned<T>(ptr: *const T, what: &str) -> Result<(), Fail> {
    if ptr.is_aligned() {
        Ok(())
    } else {
        Err(Fail::new(
            IgStatus::InvalidArgument,
            format!("{what} is misaligned"),
        ))
    }
}

/// Read a caller-filled versioned input struct: NULL = all defaults; otherwise the first
/// `min(struct_size, sizeof(T))` bytes are the caller's and the rest keep their defaults (a
/// struct from an older header), or the extra bytes are ignored (a newer header).
///
/// # Safety
/// A non-NULL `ptr` must point to at least `struct_size` readable bytes starting with a
/// `size_t struct_size`; `T` must be a `repr(C)` struct of plain data starting with that field.
pub(super) unsafe fn read_versioned<T: Copy + Default>(
    ptr: *const T,
    v1: usize,
    what: &str,
    init: &str,
) -> Result<T, Fail> {
    if ptr.is_null() {
        return Ok(T::default());
    }
    aligned(ptr, what)?;
    // SAFETY: non-NULL and aligned; forwarded contract.
    let size = unsafe { struct_size(ptr, v1, what, init)? };
    let n = size.min(std::mem::size_of::<T>());
    let mut out = T::default();
    // SAFETY: `n` bytes are readable at `ptr` (n ≤ struct_size) and writable in `out`
    // (n ≤ sizeof T); T is plain data, so any bytes the caller wrote form a valid T.
    unsafe {
        std::ptr::copy_nonoverlapping(ptr.cast::<u8>(), (&raw mut out).cast::<u8>(), n);
    }
    Ok(out)
}

/// Check an output struct before any state changes: non-NULL, aligned, `struct_size` valid.
/// Returns how many bytes to write.
///
/// # Safety
/// A non-NULL `ptr` must point to at least a readable `size_t`.
pub(super) unsafe fn check_out<T>(
    ptr: *mut T,
    v1: usize,
    what: &str,
    init: &str,
) -> Result<usize, Fail> {
    if ptr.is_null() {
        return Err(null(what));
    }
    aligned(ptr, what)?;
    // SAFETY: non-NULL and aligned; forwarded contract.
    let size = unsafe { struct_size(ptr, v1, what, init)? };
    Ok(size.min(std::mem::size_of::<T>()))
}

/// Write a versioned output struct's first `n` bytes (from [`check_out`]), keeping the
/// caller's `struct_size`.
///
/// # Safety
/// `ptr` must be non-NULL, aligned, and point to at least `n` writable bytes; n ≤ sizeof(T).
pub(super) unsafe fn write_versioned<T: Copy>(ptr: *mut T, val: &T, n: usize) {
    let skip = std::mem::size_of::<usize>();
    // SAFETY: both regions hold at least `n` bytes; they do not overlap (val is ours).
    unsafe {
        std::ptr::copy_nonoverlapping(
            std::ptr::from_ref(val).cast::<u8>().add(skip),
            ptr.cast::<u8>().add(skip),
            n - skip,
        );
    }
}

/// Write one value through an optional out pointer (no alignment needed).
///
/// # Safety
/// `ptr` must be NULL or point to a writable `T`.
pub(super) unsafe fn write_opt<T>(ptr: *mut T, val: T) {
    if !ptr.is_null() {
        // SAFETY: non-NULL and writable per the contract; unaligned writes are allowed.
        unsafe { ptr.write_unaligned(val) };
    }
}

/// Lock a handle; a poisoned lock (an earlier panic) is `IgStatus::Panic`.
///
/// # Safety
/// `p` must be NULL or a live handle from `ig_processor_new`.
pub(super) unsafe fn lock<'a>(p: *const IgProcessor) -> Result<MutexGuard<'a, Inner>, Fail> {
    if p.is_null() {
        return Err(null("processor"));
    }
    // SAFETY: the caller promises a live handle.
    let h = unsafe { &*p };
    h.inner.lock().map_err(|_| {
        Fail::new(
            IgStatus::Panic,
            "handle poisoned by an earlier panic; free it and create a new one",
        )
    })
}

/// An IG_MODE_* code.
pub(super) fn mode(m: u32) -> Result<StepMode, Fail> {
    match m {
        super::IG_MODE_SAMPLE => Ok(StepMode::Sample),
        super::IG_MODE_LOGITS => Ok(StepMode::Logits),
        _ => Err(Fail::new(
            IgStatus::UnsupportedMode,
            format!("unknown mode {m} (IG_MODE_SAMPLE = 0, IG_MODE_LOGITS = 1)"),
        )),
    }
}

/// The element size of an IG_DTYPE_* code.
pub(super) fn dtype_size(dtype: u32) -> Result<usize, Fail> {
    match dtype {
        super::IG_DTYPE_F32 => Ok(4),
        super::IG_DTYPE_F16 | super::IG_DTYPE_BF16 => Ok(2),
        _ => Err(Fail::new(
            IgStatus::UnsupportedDtype,
            format!("unknown dtype {dtype} (IG_DTYPE_F32 = 0, F16 = 1, BF16 = 2)"),
        )),
    }
}
