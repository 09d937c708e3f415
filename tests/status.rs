//! One test per C status code, each with the bad input that produces it, through the C ABI.
//! Each also checks that `ig_last_error` says something useful.

use std::ffi::{CStr, CString};
use std::ptr;

use infogravity::ffi::*;

fn last_error() -> String {
    // SAFETY: ig_last_error never returns NULL and the string is NUL-terminated.
    unsafe { CStr::from_ptr(ig_last_error()) }
        .to_string_lossy()
        .into_owned()
}

fn new(json: &str, vocab: usize) -> (IgStatus, *mut IgProcessor) {
    let c = CString::new(json).unwrap();
    let mut p = ptr::null_mut();
    // SAFETY: valid string and out pointer.
    let st = unsafe { ig_processor_new(c.as_ptr(), vocab, &mut p) };
    (st, p)
}

struct Handle(*mut IgProcessor);
impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: created by ig_processor_new, freed once.
        unsafe { ig_processor_free(self.0) }
    }
}

fn handle(json: &str, vocab: usize) -> Handle {
    let (st, p) = new(json, vocab);
    assert_eq!(st, IgStatus::Ok, "{}", last_error());
    Handle(p)
}

fn begin(h: &Handle, seq: u64) -> IgStatus {
    // SAFETY: live handle, NULL params and output allowed.
    unsafe { ig_processor_begin(h.0, seq, ptr::null(), ptr::null_mut()) }
}

fn step(h: &Handle, seq: u64, row: &mut [f32]) -> IgStatus {
    let mut r = IgStepReport::default();
    // SAFETY: row and report are valid for the call.
    unsafe {
        ig_processor_step(
            h.0,
            seq,
            row.as_mut_ptr().cast(),
            IG_DTYPE_F32,
            row.len(),
            IG_MODE_SAMPLE,
            &mut r,
        )
    }
}

fn expect(st: IgStatus, want: IgStatus, msg_has: &str) {
    assert_eq!(st, want);
    let m = last_error();
    assert!(
        m.contains(msg_has),
        "message {m:?} should contain {msg_has:?}"
    );
    // The static description is there for every code.
    // SAFETY: static string.
    let s = unsafe { CStr::from_ptr(ig_status_str(want as u32)) };
    assert!(!s.to_bytes().is_empty() && s.to_bytes() != b"unknown status");
}

#[test]
fn ok() {
    let h = handle("{}", 10);
    assert_eq!(begin(&h, 1), IgStatus::Ok);
    assert_eq!(step(&h, 1, &mut [0.0; 10]), IgStatus::Ok);
}

#[test]
fn null_pointer() {
    // SAFETY: NULL out is the bad input under test.
    let st = unsafe { ig_processor_new(ptr::null(), 10, ptr::null_mut()) };
    expect(st, IgStatus::NullPointer, "out is NULL");
    // SAFETY: NULL handle is the bad input under test.
    let st = unsafe { ig_processor_accept(ptr::null_mut(), 1, 0) };
    expect(st, IgStatus::NullPointer, "processor is NULL");
}

#[test]
fn invalid_argument() {
    expect(new("{}", 0).0, IgStatus::InvalidArgument, "vocabulary size");
    let h = handle("{}", 10);
    begin(&h, 1);
    let mut buf = [0f32; 11];
    let mut r = IgStepReport::default();
    // SAFETY: a misaligned pointer into a valid buffer is the bad input under test.
    let st = unsafe {
        ig_processor_step(
            h.0,
            1,
            (buf.as_mut_ptr() as *mut u8).add(1).cast(),
            IG_DTYPE_F32,
            10,
            IG_MODE_SAMPLE,
            &mut r,
        )
    };
    expect(st, IgStatus::InvalidArgument, "misaligned");
}

#[test]
fn nan_logits_leave_the_row_untouched() {
    let h = handle(r#"{"preset":"factual"}"#, 10);
    begin(&h, 1);
    let mut row = [1.0f32, 2.0, f32::NAN, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 3.0];
    let before = row;
    expect(step(&h, 1, &mut row), IgStatus::NanLogits, "NaN");
    assert!(
        row.iter()
            .zip(before)
            .all(|(a, b)| a.to_bits() == b.to_bits())
    );
}

#[test]
fn infinite_logits() {
    let h = handle("{}", 4);
    begin(&h, 1);
    expect(
        step(&h, 1, &mut [0.0, f32::INFINITY, 0.0, 0.0]),
        IgStatus::InfiniteLogits,
        "+inf",
    );
}

#[test]
fn all_masked() {
    let h = handle("{}", 4);
    begin(&h, 1);
    expect(
        step(&h, 1, &mut [f32::NEG_INFINITY; 4]),
        IgStatus::AllMasked,
        "masked",
    );
    // -inf entries alone are allowed.
    let mut row = [f32::NEG_INFINITY, 1.0, f32::NEG_INFINITY, 0.0];
    assert_eq!(step(&h, 1, &mut row), IgStatus::Ok);
}

#[test]
fn size_mismatch() {
    let h = handle("{}", 10);
    begin(&h, 1);
    expect(
        step(&h, 1, &mut [0.0; 9]),
        IgStatus::SizeMismatch,
        "expected 10, got 9",
    );
    expect(step(&h, 1, &mut []), IgStatus::SizeMismatch, "got 0");
}

#[test]
fn unknown_sequence() {
    let h = handle("{}", 10);
    expect(step(&h, 5, &mut [0.0; 10]), IgStatus::UnknownSequence, "5");
    // SAFETY: live handle.
    expect(
        unsafe { ig_processor_end(h.0, 5) },
        IgStatus::UnknownSequence,
        "5",
    );
}

#[test]
fn duplicate_sequence() {
    let h = handle("{}", 10);
    assert_eq!(begin(&h, 3), IgStatus::Ok);
    expect(begin(&h, 3), IgStatus::DuplicateSequence, "3");
}

#[test]
fn too_many_sequences() {
    let h = handle(r#"{"limits":{"max_sequences":2}}"#, 10);
    assert_eq!(begin(&h, 1), IgStatus::Ok);
    assert_eq!(begin(&h, 2), IgStatus::Ok);
    expect(begin(&h, 3), IgStatus::TooManySequences, "limit 2");
    // Ending one frees a slot.
    // SAFETY: live handle.
    assert_eq!(unsafe { ig_processor_end(h.0, 1) }, IgStatus::Ok);
    assert_eq!(begin(&h, 3), IgStatus::Ok);
}

#[test]
fn config_parse() {
    expect(new("{", 10).0, IgStatus::ConfigParse, "config");
    expect(
        new(r#"{"temperature":{"base":"hot"}}"#, 10).0,
        IgStatus::ConfigParse,
        "invalid type",
    );
    // Not UTF-8.
    let bad = CString::new(vec![b'{', 0xff, b'}']).unwrap();
    let mut p = ptr::null_mut();
    // SAFETY: valid NUL-terminated bytes.
    let st = unsafe { ig_processor_new(bad.as_ptr(), 10, &mut p) };
    expect(st, IgStatus::ConfigParse, "UTF-8");
}

#[test]
fn config_unknown_key() {
    expect(
        new(r#"{"escape":{"kik":2}}"#, 10).0,
        IgStatus::ConfigUnknownKey,
        "escape.kik",
    );
}

#[test]
fn config_out_of_range() {
    expect(
        new(r#"{"temperature":{"min":1.5,"max":1.0}}"#, 10).0,
        IgStatus::ConfigOutOfRange,
        "temperature.max",
    );
}

#[test]
fn struct_too_small() {
    let h = handle("{}", 10);
    let mut sp = IgSeqParams {
        struct_size: 8,
        ..Default::default()
    };
    // SAFETY: valid struct with a too-small size, the bad input under test.
    let st = unsafe { ig_processor_begin(h.0, 1, &sp, ptr::null_mut()) };
    expect(st, IgStatus::StructTooSmall, "struct_size = 8");
    // Zero is what `IgSeqParams sp = {0};` leaves: refused, so the fields set after it are
    // never silently dropped (review F7). NULL still means defaults.
    sp.struct_size = 0;
    // SAFETY: as above.
    let st = unsafe { ig_processor_begin(h.0, 1, &sp, ptr::null_mut()) };
    expect(st, IgStatus::StructTooSmall, "ig_seq_params_init");
    assert_eq!(
        // SAFETY: live handle; NULL params are defaults.
        unsafe { ig_processor_begin(h.0, 1, ptr::null(), ptr::null_mut()) },
        IgStatus::Ok
    );
    // An output struct below its v1 size is refused before anything changes.
    let mut m = IgQueryMass {
        struct_size: IG_QUERY_MASS_V1_SIZE - 8,
        ..Default::default()
    };
    // SAFETY: valid struct with a too-small size.
    let st = unsafe { ig_processor_begin(h.0, 2, ptr::null(), &mut m) };
    expect(st, IgStatus::StructTooSmall, "mass_out.struct_size");
    assert_eq!(begin(&h, 2), IgStatus::Ok, "sequence 2 was not begun");
}

#[test]
fn token_out_of_range() {
    expect(
        new(r#"{"anchor":{"tokens":[3,10]}}"#, 10).0,
        IgStatus::TokenOutOfRange,
        "token id 10",
    );
    let h = handle("{}", 10);
    let anchors = [4u32, 12];
    let sp = IgSeqParams {
        anchors: anchors.as_ptr(),
        n_anchors: 2,
        ..Default::default()
    };
    // SAFETY: valid struct and arrays.
    let st = unsafe { ig_processor_begin(h.0, 1, &sp, ptr::null_mut()) };
    expect(st, IgStatus::TokenOutOfRange, "token id 12");
}

#[test]
fn corrupt_file() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
    let path = dir.join("corrupt.prior");
    let mut bytes = infogravity::Prior::from_counts(vec![1; 10], "test")
        .unwrap()
        .to_bytes();
    let n = bytes.len();
    bytes[n - 20] ^= 1;
    std::fs::write(&path, bytes).unwrap();
    let h = handle("{}", 10);
    let c = CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: live handle, valid string.
    let st = unsafe { ig_processor_load_prior(h.0, c.as_ptr()) };
    expect(st, IgStatus::CorruptFile, "checksum");
    let cal = dir.join("bad_calibration.json");
    std::fs::write(&cal, r#"{"format":"infogravity-calibration","version":7}"#).unwrap();
    let c = CString::new(cal.to_str().unwrap()).unwrap();
    // SAFETY: as above.
    let st = unsafe { ig_processor_load_calibration(h.0, c.as_ptr()) };
    expect(st, IgStatus::CorruptFile, "version 7");
}

#[test]
fn io() {
    let h = handle("{}", 10);
    let c = CString::new("no/such/dir/prior.bin").unwrap();
    // SAFETY: live handle, valid string.
    let st = unsafe { ig_processor_load_prior(h.0, c.as_ptr()) };
    expect(st, IgStatus::Io, "no/such/dir/prior.bin");
}

#[test]
fn unsupported_dtype() {
    let h = handle("{}", 4);
    begin(&h, 1);
    let mut row = [0f32; 4];
    let mut r = IgStepReport::default();
    // SAFETY: valid buffers; the dtype code is the bad input.
    let st = unsafe { ig_processor_step(h.0, 1, row.as_mut_ptr().cast(), 7, 4, 0, &mut r) };
    expect(st, IgStatus::UnsupportedDtype, "dtype 7");
}

#[test]
fn unsupported_mode() {
    let h = handle("{}", 4);
    begin(&h, 1);
    let mut row = [0f32; 4];
    let mut r = IgStepReport::default();
    // SAFETY: valid buffers; the mode code is the bad input.
    let st = unsafe { ig_processor_step(h.0, 1, row.as_mut_ptr().cast(), 0, 4, 5, &mut r) };
    expect(st, IgStatus::UnsupportedMode, "mode 5");
}

#[test]
fn panic_is_caught_and_poisons_the_handle() {
    let h = handle("{}", 4);
    // SAFETY: live handle.
    let st = unsafe { testing::panic_inside(h.0) };
    expect(st, IgStatus::Panic, "deliberate test panic");
    // The handle is poisoned: further calls say so instead of using inconsistent state.
    expect(begin(&h, 1), IgStatus::Panic, "poisoned");
}

#[test]
fn buffer_too_small() {
    let h = handle("{}", 4);
    let mut need = 0usize;
    let mut small = [0 as std::ffi::c_char; 4];
    // SAFETY: live handle, buffer of 4 bytes.
    let st = unsafe { ig_processor_config_json(h.0, small.as_mut_ptr(), 4, &mut need) };
    expect(st, IgStatus::BufferTooSmall, "needs");
    assert!(need > 100);
}

/// The answer aggregates and the content table through the C ABI: each bad input has its code.
#[test]
fn answer_stats_and_content_table() {
    let h = handle(r#"{"preset":"neutral","temperature":{"base":0}}"#, 4);
    begin(&h, 1);
    let mut a = IgAnswerStats::default();
    // SAFETY: live handle; `a` is a valid IgAnswerStats.
    expect(
        unsafe { ig_processor_answer(h.0, 9, &mut a) },
        IgStatus::UnknownSequence,
        "9",
    );
    // SAFETY: live handle; NULL out is the bad input.
    let st = unsafe { ig_processor_answer(h.0, 1, ptr::null_mut()) };
    expect(st, IgStatus::NullPointer, "out");
    a.struct_size = 0;
    // SAFETY: live handle; the zero struct_size is the bad input.
    let st = unsafe { ig_processor_answer(h.0, 1, &mut a) };
    expect(st, IgStatus::StructTooSmall, "ig_answer_stats_init");
    // SAFETY: `a` is writable.
    unsafe { ig_answer_stats_init(&mut a) };
    let mut row = [0f32, 3.0, 0.0, 0.0];
    assert_eq!(step(&h, 1, &mut row), IgStatus::Ok);
    // SAFETY: live handle, token in range.
    assert_eq!(unsafe { ig_processor_accept(h.0, 1, 1) }, IgStatus::Ok);
    // SAFETY: live handle; `a` initialised.
    assert_eq!(unsafe { ig_processor_answer(h.0, 1, &mut a) }, IgStatus::Ok);
    assert_eq!(a.tokens, 1);
    assert!(a.mean_entropy > 0.0 && a.mean_potential > 0.0);
    assert_eq!((a.has_first_content, a.first_content_step), (1, 0));
    // The content table: its size must be V; NULL with n > 0 is refused; NULL, 0 clears.
    let table = [0u8, 1, 1];
    // SAFETY: live handle, `table` holds 3 bytes.
    let st = unsafe { ig_processor_set_content_tokens(h.0, table.as_ptr(), 3) };
    expect(st, IgStatus::SizeMismatch, "content table");
    // SAFETY: live handle; NULL with n = 4 is the bad input.
    let st = unsafe { ig_processor_set_content_tokens(h.0, ptr::null(), 4) };
    expect(st, IgStatus::NullPointer, "content");
    let table = [0u8, 0, 1, 1];
    // SAFETY: live handle, `table` holds 4 bytes.
    let st = unsafe { ig_processor_set_content_tokens(h.0, table.as_ptr(), 4) };
    assert_eq!(st, IgStatus::Ok);
    begin(&h, 2);
    assert_eq!(step(&h, 2, &mut row), IgStatus::Ok);
    // SAFETY: live handle; token 1 is a function token now.
    assert_eq!(unsafe { ig_processor_accept(h.0, 2, 1) }, IgStatus::Ok);
    // SAFETY: live handle; `a` initialised.
    assert_eq!(unsafe { ig_processor_answer(h.0, 2, &mut a) }, IgStatus::Ok);
    assert_eq!(a.has_first_content, 0);
    // SAFETY: live handle; clearing.
    let st = unsafe { ig_processor_set_content_tokens(h.0, ptr::null(), 0) };
    assert_eq!(st, IgStatus::Ok);
}

#[test]
fn every_code_is_covered_and_numbered_stably() {
    // The numbers are ABI: this table is the contract.
    let table = [
        (IgStatus::Ok, 0),
        (IgStatus::NullPointer, 1),
        (IgStatus::InvalidArgument, 2),
        (IgStatus::NanLogits, 3),
        (IgStatus::InfiniteLogits, 4),
        (IgStatus::AllMasked, 5),
        (IgStatus::SizeMismatch, 6),
        (IgStatus::UnknownSequence, 7),
        (IgStatus::DuplicateSequence, 8),
        (IgStatus::TooManySequences, 9),
        (IgStatus::ConfigParse, 10),
        (IgStatus::ConfigUnknownKey, 11),
        (IgStatus::ConfigOutOfRange, 12),
        (IgStatus::StructTooSmall, 13),
        (IgStatus::TokenOutOfRange, 14),
        (IgStatus::CorruptFile, 15),
        (IgStatus::Io, 16),
        (IgStatus::UnsupportedDtype, 17),
        (IgStatus::Panic, 18),
        (IgStatus::BufferTooSmall, 19),
        (IgStatus::Engine, 20),
        (IgStatus::OutOfMemory, 21),
        (IgStatus::UnsupportedMode, 22),
    ];
    assert_eq!(table.len(), IgStatus::all().len());
    for (s, n) in table {
        assert_eq!(s as u32, n);
    }
    let header = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/include/infogravity.h"
    ))
    .unwrap();
    assert!(header.contains("IG_STATUS_BUFFER_TOO_SMALL = 19"));
    assert!(header.contains("IG_STATUS_ENGINE = 20"));
    assert!(header.contains("IG_STATUS_UNSUPPORTED_MODE = 22"));
    // A fixed width, whatever the C compiler makes of enums (e.g. -fshort-enums).
    assert!(header.contains("typedef uint32_t IgStatus;"));
}

#[test]
fn the_header_defines_only_prefixed_names() {
    let header = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/include/infogravity.h"
    ))
    .unwrap();
    for line in header.lines() {
        let name = if let Some(rest) = line.strip_prefix("#define ") {
            rest.split_whitespace().next()
        } else if let Some(rest) = line.strip_prefix("typedef ") {
            // A function pointer names itself inside `(*NAME)`; otherwise the
            // last word before `;` or `{` is the name (or the struct tag).
            match rest.split_once("(*") {
                Some((_, tail)) => tail.split(')').next(),
                None => rest
                    .split([';', '{'])
                    .next()
                    .and_then(|decl| decl.split_whitespace().last()),
            }
        } else {
            None
        };
        if let Some(n) = name {
            assert!(
                ["IG_", "Ig", "ig_", "INFOGRAVITY_H"]
                    .iter()
                    .any(|p| n.starts_with(p)),
                "{n} leaked into the C header: exclude it in cbindgen.toml"
            );
        }
    }
}

#[test]
fn versions_match_cargo() {
    // SAFETY: static NUL-terminated string.
    let v = unsafe { CStr::from_ptr(ig_version()) }.to_str().unwrap();
    assert_eq!(v, env!("CARGO_PKG_VERSION"));
    let num = |s: &str| s.parse::<u32>().unwrap();
    let (maj, min, pat) = (
        num(env!("CARGO_PKG_VERSION_MAJOR")),
        num(env!("CARGO_PKG_VERSION_MINOR")),
        num(env!("CARGO_PKG_VERSION_PATCH")),
    );
    assert_eq!(ig_version_number(), (maj << 16) | (min << 8) | pat);
    let header = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/include/infogravity.h"
    ))
    .unwrap();
    for (name, want) in [
        ("IG_VERSION_MAJOR", maj.to_string()),
        ("IG_VERSION_MINOR", min.to_string()),
        ("IG_VERSION_PATCH", pat.to_string()),
        (
            "IG_VERSION_STRING",
            format!("\"{}\"", env!("CARGO_PKG_VERSION")),
        ),
    ] {
        let line = header
            .lines()
            .find(|l| l.starts_with(&format!("#define {name} ")))
            .unwrap_or_else(|| panic!("{name} missing"));
        assert_eq!(line.split_whitespace().nth(2).unwrap(), want, "{name}");
    }
}

#[test]
fn concept_errors() {
    // ig_concept_bias: a 4 × 2 unembedding, tokens 0 and 1 along x.
    let g = [1.0f32, 0.0, 0.9, 0.1, 0.0, 1.0, 0.1, 0.9];
    let toward = [0u32, 1];
    let mut out = [0f32; 4];
    let bias = |g: *const f32, v: usize, d: usize, t: &[u32], out: &mut [f32]| {
        // SAFETY: every pointer holds the count passed with it (the bad inputs are the counts
        // and NULLs this test chooses, which the function must refuse).
        unsafe {
            ig_concept_bias(
                g,
                v,
                d,
                if t.is_empty() {
                    ptr::null()
                } else {
                    t.as_ptr()
                },
                t.len(),
                ptr::null(),
                0,
                out.as_mut_ptr(),
                out.len(),
            )
        }
    };
    assert_eq!(bias(g.as_ptr(), 4, 2, &toward, &mut out), IgStatus::Ok);
    assert!(out[0] > 0.0 && out[1] > 0.0 && out[2] < 0.0 && out[3] < 0.0);
    expect(
        bias(ptr::null(), 4, 2, &toward, &mut out),
        IgStatus::NullPointer,
        "unembed",
    );
    expect(
        bias(g.as_ptr(), 4, 2, &[], &mut out),
        IgStatus::InvalidArgument,
        "toward",
    );
    expect(
        bias(g.as_ptr(), 4, 2, &[7], &mut out),
        IgStatus::TokenOutOfRange,
        "7",
    );
    expect(
        bias(g.as_ptr(), 4, 2, &toward, &mut out[..3]),
        IgStatus::SizeMismatch,
        "output",
    );
    expect(
        bias(g.as_ptr(), 0, 2, &toward, &mut out[..0]),
        IgStatus::InvalidArgument,
        "empty",
    );
    expect(
        bias(g.as_ptr(), usize::MAX, 2, &toward, &mut out),
        IgStatus::InvalidArgument,
        "overflows",
    );
    let nan = [f32::NAN, 0.0, 0.9, 0.1, 0.0, 1.0, 0.1, 0.9];
    expect(
        bias(nan.as_ptr(), 4, 2, &toward, &mut out),
        IgStatus::InvalidArgument,
        "finite",
    );

    // ig_processor_set_concept / _set_seq_concept.
    let h = handle("{}", 4);
    // SAFETY: live handle; `out` holds 4 floats.
    let st = unsafe { ig_processor_set_concept(h.0, out.as_ptr(), 4) };
    assert_eq!(st, IgStatus::Ok);
    // SAFETY: live handle; the sizes are the bad inputs.
    let st = unsafe { ig_processor_set_concept(h.0, out.as_ptr(), 3) };
    expect(st, IgStatus::SizeMismatch, "concept bias");
    // SAFETY: live handle; NULL with n > 0 is the bad input.
    let st = unsafe { ig_processor_set_concept(h.0, ptr::null(), 4) };
    expect(st, IgStatus::NullPointer, "bias");
    let flat = [2.0f32; 4];
    // SAFETY: live handle; a constant bias is the bad input.
    let st = unsafe { ig_processor_set_concept(h.0, flat.as_ptr(), 4) };
    expect(st, IgStatus::InvalidArgument, "constant");
    let inf = [0.0f32, f32::INFINITY, 0.0, 0.0];
    // SAFETY: live handle; a non-finite bias is the bad input.
    let st = unsafe { ig_processor_set_concept(h.0, inf.as_ptr(), 4) };
    expect(st, IgStatus::InvalidArgument, "element 1");
    // SAFETY: NULL handle.
    let st = unsafe { ig_processor_set_concept(ptr::null_mut(), out.as_ptr(), 4) };
    expect(st, IgStatus::NullPointer, "processor");
    // SAFETY: live handle; sequence 5 is unknown.
    let st = unsafe { ig_processor_set_seq_concept(h.0, 5, out.as_ptr(), 4) };
    expect(st, IgStatus::UnknownSequence, "5");
    assert_eq!(begin(&h, 5), IgStatus::Ok);
    // SAFETY: live handle and sequence; `out` holds 4 floats.
    let st = unsafe { ig_processor_set_seq_concept(h.0, 5, out.as_ptr(), 4) };
    assert_eq!(st, IgStatus::Ok);
    let mut row = [0f32, 0.0, 0.0, 0.0];
    let mut r = IgStepReport::default();
    // SAFETY: row and report valid for the call.
    let st = unsafe {
        ig_processor_step(
            h.0,
            5,
            row.as_mut_ptr().cast(),
            IG_DTYPE_F32,
            4,
            IG_MODE_SAMPLE,
            &mut r,
        )
    };
    assert_eq!(st, IgStatus::Ok);
    assert!(r.flags & IG_FLAG_CONCEPT != 0);
    // SAFETY: live handle; clearing both.
    unsafe {
        assert_eq!(
            ig_processor_set_seq_concept(h.0, 5, ptr::null(), 0),
            IgStatus::Ok
        );
        assert_eq!(ig_processor_set_concept(h.0, ptr::null(), 0), IgStatus::Ok);
    }

    // ig_processor_set_concept_typed / _set_seq_concept_typed: the type-mass gate reads the
    // tokens (out favours tokens 0 and 1, the type).
    let h = handle(r#"{"concept":{"max_type_mass":0.5}}"#, 4);
    assert_eq!(begin(&h, 1), IgStatus::Ok);
    let step = |row: [f32; 4]| {
        let mut row = row;
        let mut r = IgStepReport::default();
        // SAFETY: row and report valid for the call.
        let st = unsafe {
            ig_processor_step(
                h.0,
                1,
                row.as_mut_ptr().cast(),
                IG_DTYPE_F32,
                4,
                IG_MODE_LOGITS,
                &mut r,
            )
        };
        assert_eq!(st, IgStatus::Ok);
        r.flags & IG_FLAG_CONCEPT != 0
    };
    let types = [1u32, 0, 1];
    // SAFETY: live handle; `out` holds 4 floats, `types` 3 ids.
    let st = unsafe { ig_processor_set_concept_typed(h.0, out.as_ptr(), 4, types.as_ptr(), 3) };
    assert_eq!(st, IgStatus::Ok);
    assert!(
        !step([10.0, 0.0, 0.0, 0.0]),
        "the type already holds the mass"
    );
    assert!(step([0.0, 0.0, 10.0, 0.0]), "the type is absent");
    // Without tokens the gate has nothing to read: tilted as before.
    // SAFETY: live handle; NULL tokens with 0.
    let st = unsafe { ig_processor_set_concept_typed(h.0, out.as_ptr(), 4, ptr::null(), 0) };
    assert_eq!(st, IgStatus::Ok);
    assert!(step([10.0, 0.0, 0.0, 0.0]));
    // A sequence's own typed concept.
    // SAFETY: live handle and sequence.
    let st =
        unsafe { ig_processor_set_seq_concept_typed(h.0, 1, out.as_ptr(), 4, types.as_ptr(), 3) };
    assert_eq!(st, IgStatus::Ok);
    assert!(!step([10.0, 0.0, 0.0, 0.0]));
    // Bad input.
    // SAFETY: live handle; each call's bad input is named.
    unsafe {
        expect(
            ig_processor_set_concept_typed(h.0, out.as_ptr(), 4, ptr::null(), 2),
            IgStatus::NullPointer,
            "tokens",
        );
        expect(
            ig_processor_set_concept_typed(h.0, out.as_ptr(), 4, [4u32].as_ptr(), 1),
            IgStatus::TokenOutOfRange,
            "concept tokens",
        );
        // The size is checked before the tokens are read against it.
        expect(
            ig_processor_set_concept_typed(h.0, out.as_ptr(), 3, [3u32].as_ptr(), 1),
            IgStatus::SizeMismatch,
            "concept bias",
        );
        expect(
            ig_processor_set_concept_typed(h.0, ptr::null(), 0, types.as_ptr(), 3),
            IgStatus::InvalidArgument,
            "without a concept bias",
        );
        expect(
            ig_processor_set_seq_concept_typed(h.0, 9, out.as_ptr(), 4, types.as_ptr(), 3),
            IgStatus::UnknownSequence,
            "9",
        );
        expect(
            ig_processor_set_concept_typed(ptr::null_mut(), out.as_ptr(), 4, types.as_ptr(), 3),
            IgStatus::NullPointer,
            "processor",
        );
        // Clearing with both NULL.
        assert_eq!(
            ig_processor_set_concept_typed(h.0, ptr::null(), 0, ptr::null(), 0),
            IgStatus::Ok
        );
    }
}

#[test]
fn contrast_errors() {
    // ig_processor_set_contrast: a null-query row for the next step of one sequence.
    let h = handle(r#"{"temperature":{"base":0}}"#, 4);
    assert_eq!(begin(&h, 1), IgStatus::Ok);
    let row = [6.0f32, 5.9, 0.0, 0.0];
    let null = [8.0f32, 0.0, 0.0, 0.0];
    let greedy = |null: Option<&[f32; 4]>| {
        if let Some(n) = null {
            // SAFETY: live handle and sequence; `n` holds 4 floats.
            let st =
                unsafe { ig_processor_set_contrast(h.0, 1, n.as_ptr().cast(), IG_DTYPE_F32, 4) };
            assert_eq!(st, IgStatus::Ok, "{}", last_error());
        }
        let mut r = IgStepReport::default();
        let mut row = row;
        // SAFETY: row and report valid for the call.
        let st = unsafe {
            ig_processor_step(
                h.0,
                1,
                row.as_mut_ptr().cast(),
                IG_DTYPE_F32,
                4,
                IG_MODE_SAMPLE,
                &mut r,
            )
        };
        assert_eq!(st, IgStatus::Ok);
        (r.token, r.flags & IG_FLAG_CONTRAST != 0)
    };
    assert_eq!(greedy(None), (0, false));
    assert_eq!(greedy(Some(&null)), (1, true));
    // An f16 row.
    let half: Vec<half::f16> = null.iter().map(|&z| half::f16::from_f32(z)).collect();
    // SAFETY: live handle; `half` holds 4 f16 values.
    let st = unsafe { ig_processor_set_contrast(h.0, 1, half.as_ptr().cast(), IG_DTYPE_F16, 4) };
    assert_eq!(st, IgStatus::Ok);
    // SAFETY: live handle; each call's bad input is named.
    unsafe {
        let nan = [f32::NAN, 0.0, 0.0, 0.0];
        let inf = [f32::INFINITY, 0.0, 0.0, 0.0];
        let masked = [f32::NEG_INFINITY; 4];
        let f = |r: &[f32; 4]| r.as_ptr().cast();
        expect(
            ig_processor_set_contrast(ptr::null_mut(), 1, f(&null), IG_DTYPE_F32, 4),
            IgStatus::NullPointer,
            "processor",
        );
        expect(
            ig_processor_set_contrast(h.0, 1, ptr::null(), IG_DTYPE_F32, 4),
            IgStatus::NullPointer,
            "logits",
        );
        expect(
            ig_processor_set_contrast(h.0, 9, f(&null), IG_DTYPE_F32, 4),
            IgStatus::UnknownSequence,
            "9",
        );
        expect(
            ig_processor_set_contrast(h.0, 1, f(&null), IG_DTYPE_F32, 3),
            IgStatus::SizeMismatch,
            "null-query row",
        );
        expect(
            ig_processor_set_contrast(h.0, 1, f(&null), 7, 4),
            IgStatus::UnsupportedDtype,
            "7",
        );
        expect(
            ig_processor_set_contrast(h.0, 1, f(&nan), IG_DTYPE_F32, 4),
            IgStatus::NanLogits,
            "NaN",
        );
        expect(
            ig_processor_set_contrast(h.0, 1, f(&inf), IG_DTYPE_F32, 4),
            IgStatus::InfiniteLogits,
            "inf",
        );
        expect(
            ig_processor_set_contrast(h.0, 1, f(&masked), IG_DTYPE_F32, 4),
            IgStatus::AllMasked,
            "mask",
        );
    }
    // The refused rows left the f16 one in place.
    assert_eq!(greedy(None), (1, true));
}

#[test]
fn content_piece() {
    // ig_content_piece: the content table's rule on one piece of text, not NUL-terminated.
    let is = |s: &[u8]| {
        let mut c = 7u32;
        // SAFETY: `s` holds `s.len()` bytes; `c` is writable.
        let st = unsafe { ig_content_piece(s.as_ptr().cast(), s.len(), &mut c) };
        expect(st, IgStatus::Ok, "");
        c
    };
    assert_eq!(is(b" Europe"), 1);
    assert_eq!(is(b" the"), 0);
    assert_eq!(is(b" The"), 0);
    assert_eq!(is(b"42"), 1);
    assert_eq!(is(b", "), 0);
    assert_eq!(is(b""), 0);
    // Only `len` bytes are read: " the" of " theory".
    assert_eq!(is(&b" theory"[..4]), 0);
    // Invalid UTF-8 reads as U+FFFD around the letters.
    assert_eq!(is(b"\xffParis"), 1);
    let mut c = 0u32;
    // SAFETY: the NULLs are what the function must refuse; (NULL, 0) is the empty piece.
    unsafe {
        expect(
            ig_content_piece(ptr::null(), 3, &mut c),
            IgStatus::NullPointer,
            "piece",
        );
        expect(
            ig_content_piece(b"x".as_ptr().cast(), 1, ptr::null_mut()),
            IgStatus::NullPointer,
            "is_content",
        );
        expect(ig_content_piece(ptr::null(), 0, &mut c), IgStatus::Ok, "");
    }
    assert_eq!(c, 0);
}
