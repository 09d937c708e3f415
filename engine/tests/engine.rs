//! The reference engine on the tiny model (`scripts/setup-engine.sh` makes it; CI runs that
//! script first, so these tests do not skip there).

use infogravity::Error;
use infogravity_engine::{self as engine, CausalLm, EngineOptions};

mod common;
use common::tiny;

#[test]
fn decode_with_cache_matches_full_prefill() {
    let Some(dir) = tiny() else { return };
    let mut lm = CausalLm::load(&dir, &EngineOptions::default()).unwrap();
    let v = lm.info().vocab;
    let tokens: Vec<u32> = vec![5, 17, 33, 40, 8, 90, 120, 3];
    let mut full_cache = lm.new_cache().unwrap();
    let full = lm.forward(&mut full_cache, &tokens).unwrap();
    assert_eq!(full.len(), tokens.len() * v);
    assert_eq!(full_cache.len(), tokens.len());
    // Prefill the first 3, then decode one at a time: each row must equal the full prefill's.
    let mut cache = lm.new_cache().unwrap();
    let head = lm.forward(&mut cache, &tokens[..3]).unwrap();
    let mut worst = head
        .iter()
        .zip(&full[..3 * v])
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    for (t, &tok) in tokens.iter().enumerate().skip(3) {
        let row = lm.forward(&mut cache, &[tok]).unwrap();
        let want = &full[t * v..(t + 1) * v];
        worst = row
            .iter()
            .zip(want)
            .map(|(a, b)| (a - b).abs())
            .fold(worst, f32::max);
    }
    eprintln!("decode vs prefill: max |Δlogit| = {worst:e}");
    assert!(worst <= 1e-4, "decode vs prefill differ by {worst}");
    assert_eq!(cache.len(), tokens.len());
}

#[test]
fn bad_inputs_are_clear_errors() {
    let Some(dir) = tiny() else { return };
    let mut lm = CausalLm::load(&dir, &EngineOptions::default()).unwrap();
    let v = lm.info().vocab as u32;
    let mut cache = lm.new_cache().unwrap();
    assert!(matches!(
        lm.forward(&mut cache, &[1, v]),
        Err(Error::TokenOutOfRange { id, .. }) if id == v as u64
    ));
    assert!(lm.forward(&mut cache, &[]).is_err());
    let too_long = vec![1u32; lm.info().context + 1];
    let e = lm.forward(&mut cache, &too_long).unwrap_err().to_string();
    assert!(e.contains("context"), "{e}");
    // The cache is untouched by failed calls.
    assert!(cache.is_empty());

    let e = CausalLm::load(
        std::path::Path::new("no/such/model"),
        &EngineOptions::default(),
    )
    .err()
    .unwrap()
    .to_string();
    assert!(e.contains("model.json") && e.contains("gguf2onnx"), "{e}");

    // A corrupt model file.
    let bad = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("corrupt-model");
    std::fs::create_dir_all(&bad).unwrap();
    std::fs::copy(dir.join("model.json"), bad.join("model.json")).unwrap();
    std::fs::write(bad.join("model.onnx"), b"not an onnx model").unwrap();
    let e = CausalLm::load(&bad, &EngineOptions::default())
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("cannot load"), "{e}");

    // model.json dimensions are bounded before anything is built from them (review F10): a
    // trillion layers is an error naming the key, not an allocation abort.
    let json = std::fs::read_to_string(dir.join("model.json")).unwrap();
    for (key, bad_value) in [("layers", "1000000000000"), ("vocab", "0"), ("heads", "7")] {
        let mut v: serde_json::Value = serde_json::from_str(&json).unwrap();
        v[key] = serde_json::from_str(bad_value).unwrap();
        std::fs::write(bad.join("model.json"), v.to_string()).unwrap();
        let e = CausalLm::load(&bad, &EngineOptions::default())
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains(key), "{key}: {e}");
    }
    // A graph whose KV cache does not have model.json's layer count.
    let mut v: serde_json::Value = serde_json::from_str(&json).unwrap();
    v["layers"] = (v["layers"].as_u64().unwrap() + 1).into();
    let other = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("wrong-layers");
    std::fs::create_dir_all(&other).unwrap();
    for f in ["model.onnx", "model.onnx.data", "tokenizer.json"] {
        if dir.join(f).exists() {
            std::fs::copy(dir.join(f), other.join(f)).unwrap();
        }
    }
    std::fs::write(other.join("model.json"), v.to_string()).unwrap();
    let e = CausalLm::load(&other, &EngineOptions::default())
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("KV cache for"), "{e}");
    // model.json that is not a regular file.
    std::fs::remove_file(bad.join("model.json")).unwrap();
    std::fs::create_dir(bad.join("model.json")).unwrap();
    let e = CausalLm::load(&bad, &EngineOptions::default())
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("not a regular file"), "{e}");
    std::fs::remove_dir(bad.join("model.json")).unwrap();
}

#[test]
fn providers_fall_back_in_order_and_report_which_runs() {
    use infogravity_engine::Provider;
    let Some(dir) = tiny() else { return };
    // The PyPI onnxruntime wheel is a CPU build: CUDA and TensorRT cannot register.
    let opts = EngineOptions {
        providers: vec![Provider::TensorRt, Provider::Cuda, Provider::Cpu],
        ..Default::default()
    };
    let lm = CausalLm::load(&dir, &opts).unwrap();
    assert_eq!(lm.provider(), Provider::Cpu);
    let tried: Vec<Provider> = lm.fallbacks().iter().map(|(p, _)| *p).collect();
    assert_eq!(tried, vec![Provider::TensorRt, Provider::Cuda]);
    assert!(lm.fallbacks().iter().all(|(_, why)| !why.is_empty()));
    let only_gpu = EngineOptions {
        providers: vec![Provider::Cuda],
        ..Default::default()
    };
    let e = CausalLm::load(&dir, &only_gpu).err().unwrap().to_string();
    assert!(
        e.contains("no requested execution provider") && e.contains("cuda"),
        "{e}"
    );
    assert!(Provider::parse("npu").is_err());
}

#[test]
fn unexpected_input_names_are_named_in_the_error() {
    let Some(dir) = tiny() else { return };
    let renamed = dir.with_file_name("tiny-renamed");
    let e = CausalLm::load(&renamed, &EngineOptions::default())
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("unexpected inputs") && e.contains("tokens") && e.contains("input_ids"),
        "{e}"
    );
}

#[test]
fn tokenizer_model_vocabulary_mismatch_is_an_error() {
    let Some(dir) = tiny() else { return };
    // The tiny model's files with a tokenizer that has more tokens than the model.
    let tmp = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("vocab-mismatch");
    std::fs::create_dir_all(&tmp).unwrap();
    for f in ["model.onnx", "model.onnx.data", "model.json"] {
        std::fs::copy(dir.join(f), tmp.join(f)).unwrap();
    }
    let mut tok: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("tokenizer.json")).unwrap())
            .unwrap();
    let vocab = tok["model"]["vocab"].as_object_mut().unwrap();
    let n = vocab.len();
    for i in 0..1000 {
        vocab.insert(format!("extra{i}"), serde_json::json!(n + 10 + i));
    }
    std::fs::write(tmp.join("tokenizer.json"), tok.to_string()).unwrap();
    let e = infogravity_engine::Engine::load(&tmp, &EngineOptions::default())
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("vocabulary mismatch"), "{e}");
}

#[test]
fn a_batch_of_sequences_equals_one_by_one() {
    let Some(dir) = tiny() else { return };
    let mut lm = CausalLm::load(&dir, &EngineOptions::default()).unwrap();
    let v = lm.info().vocab;
    // Prompts of different lengths (left padding), then three decode steps per row.
    let prompts: [&[u32]; 3] = [&[5, 17, 33, 40, 8], &[90, 12], &[7, 7, 120, 3]];
    let steps: [[u32; 3]; 3] = [[11, 12, 13], [200, 3, 4], [9, 99, 150]];
    let mut batch = lm.new_batch_cache(3).unwrap();
    let mut batched: Vec<Vec<Vec<f32>>> = vec![lm.forward_batch(&mut batch, &prompts).unwrap()];
    for k in 0..3 {
        let toks: Vec<&[u32]> = (0..3).map(|r| &steps[r][k..k + 1]).collect();
        batched.push(lm.forward_batch(&mut batch, &toks).unwrap());
    }
    let mut worst = 0f32;
    for r in 0..3 {
        let mut cache = lm.new_cache().unwrap();
        let mut single = vec![lm.forward(&mut cache, prompts[r]).unwrap()];
        for k in 0..3 {
            single.push(lm.forward(&mut cache, &steps[r][k..k + 1]).unwrap());
        }
        for (call, one) in single.iter().enumerate() {
            let many = &batched[call][r];
            assert_eq!(one.len(), many.len());
            assert_eq!(one.len() % v, 0);
            worst = one
                .iter()
                .zip(many)
                .map(|(a, b)| (a - b).abs())
                .fold(worst, f32::max);
        }
        assert_eq!(batch.len(r), prompts[r].len() + 3);
    }
    eprintln!("batch vs one by one: max |Δlogit| = {worst:e}");
    assert!(worst <= 1e-4, "batch vs one by one differ by {worst}");
    // Wrong row count and empty rows are errors.
    assert!(lm.forward_batch(&mut batch, &[&[1]]).is_err());
    assert!(lm.forward_batch(&mut batch, &[&[1], &[], &[2]]).is_err());
}

#[test]
fn a_model_without_kv_cache_gives_the_same_logits() {
    let Some(dir) = tiny() else { return };
    let nocache = dir.with_file_name("tiny-nocache");
    let mut a = CausalLm::load(&dir, &EngineOptions::default()).unwrap();
    let mut b = CausalLm::load(&nocache, &EngineOptions::default()).unwrap();
    assert!(a.has_kv_cache() && !b.has_kv_cache());
    let (mut ca, mut cb) = (a.new_cache().unwrap(), b.new_cache().unwrap());
    let mut worst = 0f32;
    for chunk in [&[5u32, 17, 33][..], &[40], &[8], &[90, 120]] {
        let x = a.forward(&mut ca, chunk).unwrap();
        let y = b.forward(&mut cb, chunk).unwrap();
        assert_eq!(x.len(), y.len());
        worst = x
            .iter()
            .zip(&y)
            .map(|(p, q)| (p - q).abs())
            .fold(worst, f32::max);
    }
    assert_eq!((ca.len(), cb.len()), (7, 7));
    assert!(worst <= 1e-4, "with vs without KV cache differ by {worst}");
}

#[test]
fn generate_batch_equals_generating_one_by_one() {
    let Some(dir) = tiny() else { return };
    let mut eng = engine::Engine::load(&dir, &EngineOptions::default()).unwrap();
    let prompts: Vec<Vec<u32>> = ["hello there", "one two three four five", "x"]
        .iter()
        .map(|t| {
            eng.chat_prompt(&[engine::Message::new("user", t)], "")
                .unwrap()
        })
        .collect();
    let opts = engine::GenerateOptions {
        max_tokens: 12,
        seed: 40,
        critical_temperature: true,
        ..Default::default()
    };
    let mut p = engine::processor_for(&eng, r#"{"preset":"balanced"}"#).unwrap();
    let mut streamed = [0usize; 3];
    let batch = eng
        .generate_batch(&mut p, &prompts, &opts, |r, _, _| streamed[r] += 1)
        .unwrap();
    assert_eq!(batch.len(), 3);
    assert!(
        batch.iter().any(|g| g.tokens.len() >= 2),
        "nothing was generated"
    );
    for (r, g) in batch.iter().enumerate() {
        // Reports arrive per token: one per accepted token (+ the EOS step).
        assert_eq!(g.reports.len(), g.tokens.len() + (g.stop == "eos") as usize);
        assert_eq!(g.t_star.len(), g.reports.len());
        assert!(
            g.t_star.iter().all(|t| (0.02..=4.0).contains(t)),
            "{:?}",
            g.t_star
        );
        assert!(streamed[r] >= 1 || g.tokens.is_empty());
        // Row r alone, with row r's seed: the same tokens (logits agree to ~1e-5, far below
        // what would flip a sampled token except on a near-tie).
        let one = eng
            .generate_batch(
                &mut p,
                &prompts[r..r + 1],
                &engine::GenerateOptions {
                    seed: opts.seed + r as u64,
                    ..opts.clone()
                },
                |_, _, _| {},
            )
            .unwrap();
        assert_eq!(one[0].tokens, g.tokens, "row {r}");
        assert_eq!(one[0].stop, g.stop, "row {r}");
    }
    assert!(
        eng.generate_batch(&mut p, &[], &opts, |_, _, _| {})
            .unwrap()
            .is_empty()
    );
}

#[test]
fn query_spans_bring_novelty_into_the_temperature() {
    let Some(dir) = tiny() else { return };
    let mut eng = engine::Engine::load(&dir, &EngineOptions::default()).unwrap();
    let v = eng.lm.info().vocab;
    let (ids, start, end) =
        engine::prompt_with_span(&eng, None, "zebra quartz xylophone", "").unwrap();
    // T = base · exp(gain · (M − ref)) with no entropy response: T follows M(Q) alone.
    let json = r#"{"preset":"neutral","temperature":{"base":1,"mass_gain":2,"max":10},"mass":{"scale":"minmax"}}"#;
    let mut p = engine::processor_for(&eng, json).unwrap();
    // A prior that has seen only token 0: every query token is novel, N_KL is large.
    let mut counts = vec![0u32; v];
    counts[0] = 1000;
    p.set_prior(Some(
        infogravity::Prior::from_counts(counts, "test").unwrap(),
    ))
    .unwrap();
    let opts = engine::GenerateOptions {
        max_tokens: 1,
        ..Default::default()
    };
    let t = |eng: &mut engine::Engine, p: &mut infogravity::GravityProcessor, o| {
        let g = eng
            .generate_batch(p, std::slice::from_ref(&ids), o, |_, _, _| {})
            .unwrap();
        g[0].reports[0].temperature
    };
    let without = t(&mut eng, &mut p, &opts);
    let with_spans = engine::GenerateOptions {
        query_spans: std::iter::once(start..end).collect(),
        ..opts.clone()
    };
    let with = t(&mut eng, &mut p, &with_spans);
    assert!(
        with > without * 1.05,
        "N(Q) did not raise T: {without} → {with}"
    );
    // One span per prompt, inside it.
    let two = engine::GenerateOptions {
        query_spans: vec![start..end, start..end],
        ..opts.clone()
    };
    let e = eng.generate_batch(&mut p, std::slice::from_ref(&ids), &two, |_, _, _| {});
    assert!(matches!(e, Err(Error::SizeMismatch { .. })), "{e:?}");
    let outside = engine::GenerateOptions {
        query_spans: std::iter::once(start..ids.len() + 1).collect(),
        ..opts
    };
    let e = eng.generate_batch(&mut p, std::slice::from_ref(&ids), &outside, |_, _, _| {});
    assert!(matches!(e, Err(Error::InvalidArgument(_))), "{e:?}");
}

/// `BatchCache::rewind` drops a row's last tokens as if they had never been decoded: the next
/// logits equal those of a cache that never saw them, the other rows are untouched, and a model
/// without a KV cache (history re-run) agrees.
#[test]
fn a_rewound_cache_gives_the_logits_of_a_fresh_one() {
    let Some(dir) = tiny() else { return };
    for dir in [dir.clone(), dir.with_file_name("tiny-nocache")] {
        let mut lm = CausalLm::load(&dir, &EngineOptions::default()).unwrap();
        let prompts: [&[u32]; 2] = [&[5, 17, 33, 40, 8], &[90, 12]];
        let mut batch = lm.new_batch_cache(2).unwrap();
        lm.forward_batch(&mut batch, &prompts).unwrap();
        for k in 0..3u32 {
            lm.forward_batch(&mut batch, &[&[60 + k], &[70 + k]])
                .unwrap();
        }
        // Row 0 drops its three decoded tokens and its last prompt token, then re-feeds it.
        batch.rewind(0, 4).unwrap();
        assert_eq!((batch.len(0), batch.len(1)), (4, 5));
        let got = lm.forward_batch(&mut batch, &[&[8], &[99]]).unwrap();
        let mut fresh = lm.new_cache().unwrap();
        let want0 = lm.forward(&mut fresh, prompts[0]).unwrap();
        let v = lm.info().vocab;
        let mut fresh1 = lm.new_cache().unwrap();
        let want1 = lm.forward(&mut fresh1, &[90, 12, 70, 71, 72, 99]).unwrap();
        let worst = |a: &[f32], b: &[f32]| {
            a.iter()
                .zip(b)
                .map(|(x, y)| (x - y).abs())
                .fold(0f32, f32::max)
        };
        let (d0, d1) = (
            worst(&got[0], &want0[want0.len() - v..]),
            worst(&got[1], &want1[want1.len() - v..]),
        );
        assert!(
            d0 <= 1e-4 && d1 <= 1e-4,
            "{dir:?}: rewound {d0}, other row {d1}"
        );
        assert!(batch.rewind(0, 6).is_err() && batch.rewind(2, 1).is_err());
    }
}

/// With `rollback` on, generation rewinds where the processor advises: every kept token's
/// report was measured on the logits of exactly the kept prefix (checked against one fresh
/// prefill of the final text), and positions run without a gap.
#[test]
fn generation_rewinds_where_the_processor_advises() {
    let Some(dir) = tiny() else { return };
    let mut eng = engine::Engine::load(&dir, &EngineOptions::default()).unwrap();
    let prompts: Vec<Vec<u32>> = ["hello there", "one two three four five", "x y"]
        .iter()
        .map(|t| {
            eng.chat_prompt(&[engine::Message::new("user", t)], "")
                .unwrap()
        })
        .collect();
    let cfg = r#"{"preset":"balanced","temperature":{"base":0},"escape":{"rollback":32,"rollback_budget":64,"repeat_penalty":0}}"#;
    let opts = engine::GenerateOptions {
        max_tokens: 48,
        rollback: true,
        ..Default::default()
    };
    let mut p = engine::processor_for(&eng, cfg).unwrap();
    let gens = eng
        .generate_batch(&mut p, &prompts, &opts, |_, _, _| {})
        .unwrap();
    let v = eng.lm.info().vocab;
    let mut rewinds = 0;
    for (r, g) in gens.iter().enumerate() {
        rewinds += g.rollbacks;
        assert!(g.rewound >= g.rollbacks, "row {r}");
        assert!(
            g.tokens.len() == 48 || g.stop == "eos",
            "row {r}: {}",
            g.tokens.len()
        );
        let all: Vec<u32> = prompts[r].iter().chain(&g.tokens).copied().collect();
        let (logits, _) = eng.prefill(&all).unwrap();
        for (i, rep) in g.reports.iter().enumerate() {
            assert_eq!(rep.step as usize, i, "row {r}: positions run without a gap");
            if i < g.tokens.len() {
                assert_eq!(rep.token, Some(g.tokens[i]));
            }
            let at = prompts[r].len() - 1 + i;
            let f = infogravity::field::measure(&logits[at * v..(at + 1) * v]).unwrap();
            assert!(
                (rep.entropy - f.entropy as f32).abs() < 1e-3,
                "row {r} position {i}: the report's field is not the kept prefix's"
            );
        }
    }
    assert!(
        rewinds > 0,
        "the tiny model's greedy text never looped here"
    );
    // Off: the same configuration without the host rewinding takes the guarded token instead.
    let off = eng
        .generate_batch(
            &mut p,
            &prompts,
            &engine::GenerateOptions {
                rollback: false,
                ..opts.clone()
            },
            |_, _, _| {},
        )
        .unwrap();
    assert!(off.iter().all(|g| g.rollbacks == 0));
    assert_ne!(
        off.iter().map(|g| &g.tokens).collect::<Vec<_>>(),
        gens.iter().map(|g| &g.tokens).collect::<Vec<_>>()
    );
}
