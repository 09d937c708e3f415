//! Compiles the C reference kernel the field kernel is benchmarked against
//! (benches/c/ref_kernel.c, AVX2/FMA; x86-64 only), linked into the `bench` module.

fn main() {
    println!("cargo:rerun-if-changed=benches/c/ref_kernel.c");
    if std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("x86_64") {
        cc::Build::new()
            .file("benches/c/ref_kernel.c")
            .opt_level(3)
            .flag("-std=c11")
            .compile("ig_ref_kernel");
        println!("cargo:rustc-cfg=ref_kernel");
    }
    println!("cargo::rustc-check-cfg=cfg(ref_kernel)");
}
