//! Builds the C and C++ consumers in `tests/c/` against `include/infogravity.h` and the built
//! `libinfogravity.so`, runs them (under valgrind when it is installed; CI installs it), and
//! checks what they print against the Rust API run on the same scenario.

use std::path::{Path, PathBuf};
use std::process::Command;

use infogravity::{Config, GravityProcessor, SeqParams, StepMode};

const VOCAB: usize = 3000;
const STEPS: u32 = 24;

/// Same rows as `tests/c/scenario.h`.
fn sc_row(seq: u64, step: u32, row: &mut [f32]) {
    let mut s: u64 = seq
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add((step as u64).wrapping_mul(0xBF58_476D_1CE4_E5B9))
        .wrapping_add(1);
    for x in row.iter_mut() {
        s = s
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        *x = ((s >> 40) as f64 / (1u64 << 24) as f64) as f32 * 6.0 - 3.0;
    }
    row[((step as u64 * 7 + seq) % VOCAB as u64) as usize] += 6.0;
    row[((step * 13 + 5) as usize) % VOCAB] += 4.0;
    if step >= 12 {
        row[100 + (step % 3) as usize] += 12.0;
    }
}

fn expected(json: &str, seq: u64) -> Vec<String> {
    let mut p = GravityProcessor::new(Config::from_json(json).unwrap(), VOCAB).unwrap();
    p.begin(
        seq,
        &SeqParams {
            seed: 1234 + seq,
            anchors: &[10, 20, 30],
            query: infogravity::QueryInput {
                context_gain: Some(1.5),
                ..Default::default()
            },
            ..Default::default()
        },
    )
    .unwrap();
    let mut row = vec![0f32; VOCAB];
    (0..STEPS)
        .map(|i| {
            sc_row(seq, i, &mut row);
            let r = p.step(seq, &mut row, StepMode::Sample).unwrap();
            let tok = r.token.unwrap();
            p.accept(seq, tok).unwrap();
            format!(
                "seq {seq} step {} token {tok} H {:.5} T {:.5} regime {} flags {}",
                r.step, r.entropy as f64, r.temperature as f64, r.regime as u32, r.flags
            )
        })
        .collect()
}

fn lib_dir() -> PathBuf {
    // target/<profile>/deps/c_api-… → target/<profile>
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().to_path_buf()
}

/// `cargo test` links the tests against the rlib and leaves the cdylib as it was: build it
/// now so the C programs never run a stale library.
fn build_cdylib() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let mut cmd = Command::new(env!("CARGO"));
        cmd.args(["build", "--lib", "--quiet"])
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        if lib_dir().file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("run cargo");
        assert!(status.success(), "cargo build --lib failed");
        // The library's SONAME is libinfogravity.so.1: what an install lays out beside it.
        let so = lib_dir().join("libinfogravity.so.1");
        let _ = std::fs::remove_file(&so);
        std::os::unix::fs::symlink("libinfogravity.so", &so).expect("symlink the SONAME");
    });
}

fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn build(compiler: &str, src: &str, out: &Path, extra: &[&str]) {
    build_cdylib();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let lib = lib_dir();
    assert!(
        lib.join("libinfogravity.so").exists(),
        "libinfogravity.so not found in {}",
        lib.display()
    );
    let status = Command::new(compiler)
        .args(extra)
        .arg("-Wall")
        .arg("-Wextra")
        .arg("-Werror")
        .arg("-g")
        .arg("-I")
        .arg(root.join("include"))
        .arg("-I")
        .arg(root.join("tests/c"))
        .arg(root.join("tests/c").join(src))
        .arg("-o")
        .arg(out)
        .arg("-L")
        .arg(&lib)
        .arg(format!("-Wl,-rpath,{}", lib.display()))
        .arg("-linfogravity")
        .arg("-lm")
        .status()
        .unwrap_or_else(|e| panic!("cannot run {compiler}: {e}"));
    assert!(status.success(), "{compiler} failed on {src}");
}

fn run(bin: &Path) -> String {
    run_args(bin, &[])
}

fn run_args(bin: &Path, args: &[&str]) -> String {
    let mut cmd = if have("valgrind") {
        let mut c = Command::new("valgrind");
        c.args([
            "--error-exitcode=99",
            "--leak-check=full",
            "--errors-for-leak-kinds=definite",
            "-q",
        ])
        .arg(bin);
        c
    } else {
        eprintln!(
            "valgrind not installed: running {} without it",
            bin.display()
        );
        Command::new(bin)
    };
    let out = cmd
        .args(args)
        .current_dir(env!("CARGO_TARGET_TMPDIR"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{} exited with {:?}\nstdout:\n{stdout}\nstderr:\n{}",
        bin.display(),
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn check_against_rust(stdout: &str) {
    let got: Vec<&str> = stdout.lines().filter(|l| l.starts_with("seq ")).collect();
    let mut want = expected(r#"{"preset":"neutral"}"#, 1);
    want.extend(expected(r#"{"preset":"balanced"}"#, 2));
    want.extend(expected(
        r#"{"preset":"factual","sampler":{"top_k":40,"top_p":0.9}}"#,
        3,
    ));
    assert_eq!(got.len(), want.len(), "output:\n{stdout}");
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(*g, w.as_str());
    }
}

#[test]
fn c_consumer_matches_rust() {
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("consumer_c");
    build("cc", "consumer.c", &out, &["-std=c11"]);
    let stdout = run(&out);
    assert!(stdout.contains("C OK"), "{stdout}");
    check_against_rust(&stdout);
}

#[test]
fn cpp_consumer_matches_rust() {
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("consumer_cpp");
    build("c++", "consumer.cpp", &out, &["-std=c++17"]);
    let stdout = run(&out);
    assert!(stdout.contains("C++ OK"), "{stdout}");
    check_against_rust(&stdout);
}

/// The C consumer also builds and runs with `-fshort-enums`: `IgStatus` is a fixed-width
/// integer, not a compiler-sized enum (review F13).
#[test]
fn c_consumer_with_short_enums() {
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("consumer_c_short_enums");
    build("cc", "consumer.c", &out, &["-std=c11", "-fshort-enums"]);
    let stdout = run(&out);
    assert!(stdout.contains("C OK"), "{stdout}");
    check_against_rust(&stdout);
}

/// Every reproducer of the reliability review, as a C host, against the debug library (its
/// precondition checks turn undefined behaviour into an abort), under valgrind when installed.
#[test]
fn review_reproducers() {
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("review");
    build("cc", "review.c", &out, &["-std=c11"]);
    let stdout = run(&out);
    assert!(stdout.contains("REVIEW OK"), "{stdout}");
}

/// An allocation that fails is OUT_OF_MEMORY, not an abort: the 2^24-token processor with 16
/// workers needs ~2.3 GB; the process is limited to 1 GB of address space.
#[test]
fn allocation_failure_is_a_status() {
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("review_oom");
    build("cc", "review.c", &out, &["-std=c11"]);
    let o = Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -v 1000000 && exec {} oom", out.display()))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success() && stdout.contains("OOM ok"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// The shared library exports exactly the C API (every dynamic symbol it defines is `ig_*`),
/// and carries the ABI major version in its SONAME.
#[test]
fn the_library_exports_only_the_c_api_under_its_soname() {
    build_cdylib();
    let so = lib_dir().join("libinfogravity.so");
    let out = Command::new("nm")
        .args(["-D", "--defined-only"])
        .arg(&so)
        .output()
        .expect("nm (binutils) runs");
    let syms = String::from_utf8_lossy(&out.stdout);
    let names: Vec<&str> = syms
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2))
        .collect();
    assert!(names.len() >= 20, "{syms}");
    for n in &names {
        assert!(n.starts_with("ig_"), "{n} is exported by the C library");
    }
    let out = Command::new("readelf")
        .arg("-d")
        .arg(&so)
        .output()
        .expect("readelf runs");
    let dynamic = String::from_utf8_lossy(&out.stdout);
    let abi = infogravity::ffi::IG_ABI_VERSION;
    assert!(
        dynamic.contains(&format!("Library soname: [libinfogravity.so.{abi}]")),
        "{dynamic}"
    );
}
