#!/usr/bin/env python3
"""Validate tools/gguf2onnx.py against llama.cpp running the same GGUF.

    pip install llama-cpp-python onnxruntime==1.31.1   # builds llama.cpp from source (~10 min)
    python tools/validate_converter.py MODEL.gguf ONNX_DIR [--dequantised]

Compares, on a set of prompts: tokenisation (our tokenizer.json vs llama.cpp's), the logits of
every prompt position (top-1 agreement, max |Δlogit|, KL), and greedy continuations. llama.cpp
computes with the GGUF's quantised blocks (activations quantised on the fly); the ONNX model has
the same weights dequantised to fp32, so small logit differences are expected and top-1
agreement is the figure that matters. With --dequantised, llama.cpp runs an F32 copy of the GGUF
(the same dequantised weights as the ONNX model), which isolates the converter's own error.
"""

import json
import sys

import numpy as np


def dequantised_copy(src, dst):
    """Write `src` with every tensor dequantised to F32 (same metadata), so llama.cpp and the
    ONNX model run the very same weights and only the computation differs."""
    import gguf
    r = gguf.GGUFReader(src)
    w = gguf.GGUFWriter(dst, r.fields["general.architecture"].contents())
    for f in r.fields.values():
        if f.name == gguf.Keys.General.ARCHITECTURE or f.name.startswith("GGUF."):
            continue
        if f.name == "general.file_type":
            continue
        t0 = f.types[0]
        sub = f.types[-1] if t0 == gguf.GGUFValueType.ARRAY else None
        w.add_key_value(f.name, f.contents(), t0, sub_type=sub)
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    for t in r.tensors:
        a = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32)
        w.add_tensor(t.name, a, raw_dtype=gguf.GGMLQuantizationType.F32)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def main():
    gguf_path, onnx_dir = sys.argv[1], sys.argv[2]
    if len(sys.argv) > 3 and sys.argv[3] == "--dequantised":
        import os, tempfile
        f32 = os.path.join(tempfile.mkdtemp(), "f32.gguf")
        dequantised_copy(gguf_path, f32)
        print(f"llama.cpp runs a dequantised F32 copy: {f32}")
        gguf_path = f32
    import llama_cpp
    import onnxruntime as ort
    from tokenizers import Tokenizer

    cfg = json.load(open(f"{onnx_dir}/model.json"))
    tok = Tokenizer.from_file(f"{onnx_dir}/tokenizer.json")
    sess = ort.InferenceSession(f"{onnx_dir}/model.onnx")
    llm = llama_cpp.Llama(gguf_path, n_ctx=512, logits_all=True, verbose=False, seed=0)
    L, KV, hd = cfg["layers"], cfg["kv_heads"], cfg["head_dim"]

    def onnx_logits(ids):
        feeds = {"input_ids": np.array([ids], np.int64),
                 "attention_mask": np.ones((1, len(ids)), np.int64),
                 "position_ids": np.arange(len(ids), dtype=np.int64)[None]}
        for i in range(L):
            for k in ("key", "value"):
                feeds[f"past_key_values.{i}.{k}"] = np.zeros((1, KV, 0, hd), np.float32)
        return sess.run(["logits"], feeds)[0][0]

    def llama_logits(ids):
        llm.reset()
        llm.eval(ids)
        return np.array(llm.scores[: len(ids)], dtype=np.float32)

    def kl(p_logits, q_logits):
        lp = p_logits - np.logaddexp.reduce(p_logits, axis=-1, keepdims=True)
        lq = q_logits - np.logaddexp.reduce(q_logits, axis=-1, keepdims=True)
        return (np.exp(lp) * (lp - lq)).sum(-1)

    tricky = ["Hello world", " leading space", "numbers 12345 and 3.14159", "naïve café — déjà vu",
              "tabs\tand\nnewlines\n\n", "<|im_start|>user\nhi<|im_end|>", "emoji 🙂 and CJK 漢字",
              "x = f(y) + 2*z; // code", "UPPER lower MiXeD", "   many   spaces   ",
              "don't won't it's", "http://example.com/a?b=c", "1,000,000.00", "«quotes» \"and\" 'these'",
              "a\u00a0non-breaking", "end."]
    tok_ok = 0
    for s in tricky:
        ours = tok.encode(s, add_special_tokens=False).ids
        theirs = llm.tokenize(s.encode(), add_bos=False, special=True)
        tok_ok += ours == theirs
        if ours != theirs:
            print(f"tokenisation differs on {s!r}: {ours} vs {theirs}")
    print(f"tokenisation: {tok_ok}/{len(tricky)} strings identical")

    system = "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
    prompts = ["What is the capital of France?", "Write a haiku about the sea.",
               "Explain photosynthesis in one sentence.", "List three prime numbers.",
               "Who wrote Hamlet?", "Translate 'good morning' into Spanish."]
    agree = total = 0
    worst_diff = worst_kl = 0.0
    greedy_same = 0
    for p in prompts:
        text = f"{system}<|im_start|>user\n{p}<|im_end|>\n<|im_start|>assistant\n"
        ids = tok.encode(text, add_special_tokens=False).ids
        a, b = onnx_logits(ids), llama_logits(ids)
        agree += int((a.argmax(-1) == b.argmax(-1)).sum())
        total += len(ids)
        worst_diff = max(worst_diff, float(np.abs(a - b).max()))
        worst_kl = max(worst_kl, float(kl(b, a).max()))
        # Greedy continuations, 32 tokens each.
        seq_a, seq_b = list(ids), list(ids)
        for _ in range(32):
            seq_a.append(int(onnx_logits(seq_a)[-1].argmax()))
        llm.reset()
        for t in llm.generate(ids, temp=0.0, top_k=1):
            seq_b.append(int(t))
            if len(seq_b) == len(ids) + 32:
                break
        same = seq_a == seq_b
        greedy_same += same
        print(f"{p!r}: greedy {'identical' if same else 'DIFFERS'}: {tok.decode(seq_a[len(ids):])!r}")
        if not same:
            print(f"   llama.cpp: {tok.decode(seq_b[len(ids):])!r}")
    print(f"prompt positions: top-1 agreement {agree}/{total}; max |Δlogit| {worst_diff:.4f}; "
          f"max KL(llama.cpp ‖ onnx) {worst_kl:.5f} nats")
    print(f"greedy continuations (32 tokens): {greedy_same}/{len(prompts)} identical")


if __name__ == "__main__":
    main()
