//! Third-party plugins (`Plugin`, `IgPluginV1`): the example plugin in C
//! (plugins/examples/ban_phrases.c) built and loaded as a host processor, and one broken plugin
//! per thing a plugin can get wrong — each a clear error naming it, the host going on.

use std::path::{Path, PathBuf};
use std::process::Command;

use infogravity::{Error, Plugin, StepMode};

mod common;
use common::{begin_seeded, proc};

/// Compile a C plugin into a shared library under the test's scratch directory.
fn build(src: &str, name: &str, defines: &[&str]) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("lib{name}.so"));
    let status = Command::new("cc")
        .args([
            "-std=c11", "-Wall", "-Wextra", "-Werror", "-O2", "-shared", "-fPIC",
        ])
        .args(defines)
        .arg("-I")
        .arg(root.join("include"))
        .arg(root.join(src))
        .arg("-o")
        .arg(&out)
        .status()
        .expect("run cc");
    assert!(status.success(), "cc failed on {src} {defines:?}");
    out
}

fn err(r: infogravity::Result<impl Sized>) -> String {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => {
            assert!(matches!(e, Error::Plugin(_)), "{e:?}");
            e.to_string()
        }
    }
}

#[test]
fn the_example_plugin_bans_its_phrases_first_in_the_pipeline() {
    let v = 20;
    let lib = build("plugins/examples/ban_phrases.c", "ban_phrases", &[]);
    let plugin = Plugin::load(&lib).unwrap();
    assert_eq!(plugin.name(), "ban_phrases");
    let mut p = proc(r#"{"preset":"neutral"}"#, v);
    p.push_pre(Box::new(
        plugin
            .instance(Some(r#"{"phrases": [[1, 2, 3], [7]]}"#), v)
            .unwrap(),
    ));
    begin_seeded(&mut p, 1, 3, &[]);
    // Token 7 is banned outright; 3 only after "1 2".
    let mut row = vec![0.0f32; v];
    p.step(1, &mut row, StepMode::Logits).unwrap();
    assert_eq!(row[7], f32::NEG_INFINITY);
    assert!(row[3].is_finite());
    for t in [1, 2] {
        p.step(1, &mut vec![0.0; v], StepMode::Logits).unwrap();
        p.accept(1, t).unwrap();
    }
    let mut row = vec![0.0f32; v];
    row[3] = 50.0; // the model wants to complete the phrase
    let r = p.step(1, &mut row.clone(), StepMode::Sample).unwrap();
    assert_ne!(r.token, Some(3), "the banned completion was sampled");
    p.step(1, &mut row, StepMode::Logits).unwrap();
    assert_eq!(row[3], f32::NEG_INFINITY);
    // The field is measured after the plugin: token 3's probability is gone from it.
    assert!(r.p_max < 0.5, "{r:?}");
}

#[test]
fn a_bad_configuration_is_the_plugins_error() {
    let lib = build("plugins/examples/ban_phrases.c", "ban_phrases_cfg", &[]);
    let plugin = Plugin::load(&lib).unwrap();
    let e = err(plugin.instance(Some(r#"{"phrazes": []}"#), 10));
    assert!(
        e.contains("ban_phrases") && e.contains("unknown key"),
        "{e}"
    );
    let e = err(plugin.instance(Some(r#"{"phrases": [[99]]}"#), 10));
    assert!(e.contains("below the vocabulary size"), "{e}");
}

/// Every way a plugin can be wrong is an error that names it; the host loads the next one.
#[test]
fn broken_plugins_are_clear_errors() {
    let v = 10;
    let not_a_library = Path::new(env!("CARGO_TARGET_TMPDIR")).join("not-a-plugin.so");
    std::fs::write(&not_a_library, b"not an ELF file").unwrap();
    let e = err(Plugin::load(&not_a_library));
    assert!(e.contains("cannot load"), "{e}");

    for (define, wants) in [
        ("-DNO_ENTRY", "ig_plugin_entry"),
        ("-DBAD_SIZE", "struct_size = 16"),
        ("-DBAD_ABI", "ABI version 2"),
        ("-DNULL_APPLY", "`apply` is NULL"),
    ] {
        let lib = build(
            "tests/c/bad_plugin.c",
            &define[2..].to_lowercase(),
            &[define],
        );
        let e = err(Plugin::load(&lib));
        assert!(e.contains(wants), "{define}: {e}");
    }

    let lib = build("tests/c/bad_plugin.c", "fail_create", &["-DFAIL_CREATE"]);
    let e = err(Plugin::load(&lib).unwrap().instance(None, v));
    assert!(e.contains("bad_plugin") && e.contains("refuses"), "{e}");

    for (define, wants) in [
        ("-DFAIL_APPLY", "apply failed (3): the row displeases me"),
        ("-DWRITE_NAN", "apply wrote NaN at token 5"),
    ] {
        let lib = build(
            "tests/c/bad_plugin.c",
            &define[2..].to_lowercase(),
            &[define],
        );
        let plugin = Plugin::load(&lib).unwrap();
        let mut p = proc("{}", v);
        p.push_pre(Box::new(plugin.instance(None, v).unwrap()));
        begin_seeded(&mut p, 1, 1, &[]);
        let e = p
            .step(1, &mut vec![0.0; v], StepMode::Sample)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("bad_plugin") && e.contains(wants),
            "{define}: {e}"
        );
        // The processor goes on: without the plugin the same step works.
        let mut q = proc("{}", v);
        begin_seeded(&mut q, 1, 1, &[]);
        assert!(q.step(1, &mut vec![0.0; v], StepMode::Sample).is_ok());
    }

    // A plugin that does nothing works, and its library outlives the Plugin handle.
    let lib = build("tests/c/bad_plugin.c", "fine", &[]);
    let inst = Plugin::load(&lib).unwrap().instance(None, v).unwrap();
    let mut p = proc("{}", v);
    p.push_pre(Box::new(inst));
    begin_seeded(&mut p, 1, 1, &[]);
    assert!(p.step(1, &mut vec![0.0; v], StepMode::Sample).is_ok());
}
