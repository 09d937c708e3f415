//! With `--features generate-header`, regenerates `include/infogravity.h` from the sources with
//! the pinned cbindgen. CI regenerates it and fails on any difference (`git diff --exit-code
//! include/`), so the committed header always matches the code.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
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
             #define IG_VERSION_NUMBER ((IG_VERSION_MAJOR << 16) | (IG_VERSION_MINOR << 8) | IG_VERSION_PATCH)\n",
            v("CARGO_PKG_VERSION")
        ));
        cbindgen::Builder::new()
            .with_crate(&dir)
            .with_config(cfg)
            .generate()
            .expect("cbindgen generates the header")
            .write_to_file(format!("{dir}/include/infogravity.h"));
    }
}
