//! - Gives the shared library its SONAME, `libinfogravity.so.<ABI major>` (Linux), so hosts
//!   record the ABI they were linked against.
//! - With `--features generate-header`, regenerates `include/infogravity.h` from the sources
//!   with the pinned cbindgen. CI regenerates it and fails on any difference (`git diff
//!   --exit-code include/`), so the committed header always matches the code.

/// Must equal `ffi::IG_ABI_VERSION` (checked by `tests/status.rs`).
const ABI_MAJOR: u32 = 1;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libinfogravity.so.{ABI_MAJOR}");
    }
    #[cfg(feature = "generate-header")]
    header::generate();
}

#[cfg(feature = "generate-header")]
mod header {
    pub fn generate() {
        println!("cargo:rerun-if-changed=src");
        println!("cargo:rerun-if-changed=cbindgen.toml");
        let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
        let mut cfg = cbindgen::Config::from_file(format!("{dir}/cbindgen.toml"))
            .expect("cbindgen.toml parses");
        let v = |k: &str| std::env::var(k).expect("cargo sets the version variables");
        let (maj, min, pat) = (
            v("CARGO_PKG_VERSION_MAJOR"),
            v("CARGO_PKG_VERSION_MINOR"),
            v("CARGO_PKG_VERSION_PATCH"),
        );
        cfg.after_includes = Some(format!(
            "\n/* Version of the library this header was generated from. */\n\
             #define IG_VERSION_MAJOR {maj}\n#define IG_VERSION_MINOR {min}\n\
             #define IG_VERSION_PATCH {pat}\n#define IG_VERSION_STRING \"{}\"\n\
             /* (major << 16) | (minor << 8) | patch, as ig_version_number() returns. */\n\
             #define IG_VERSION_NUMBER ((IG_VERSION_MAJOR << 16) | (IG_VERSION_MINOR << 8) | IG_VERSION_PATCH)\n\
             \n/* Warn when a status is ignored. */\n\
             #if defined(__cplusplus) && __cplusplus >= 201703L\n\
             #define IG_NODISCARD [[nodiscard]]\n\
             #elif defined(__GNUC__) || defined(__clang__)\n\
             #define IG_NODISCARD __attribute__((warn_unused_result))\n\
             #else\n\
             #define IG_NODISCARD\n\
             #endif\n",
            v("CARGO_PKG_VERSION")
        ));
        let mut out = Vec::new();
        cbindgen::Builder::new()
            .with_crate(&dir)
            .with_config(cfg)
            .generate()
            .expect("cbindgen generates the header")
            .write(&mut out);
        // The Rust doc headings read oddly in C: "# Safety" becomes "Safety:".
        let text = String::from_utf8(out).expect("the header is UTF-8");
        let text = text.replace(" # Safety\n", " Safety:\n");
        let path = format!("{dir}/include/infogravity.h");
        if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
            std::fs::write(&path, text).expect("write include/infogravity.h");
        }
    }
}
