#!/usr/bin/env python3
"""Validate tools/gguf2onnx.py against llama.cpp running the same GGUF.

    python tools/validate_converter.py MODEL.gguf ONNX_DIR --e2e E2E [--bank eval/qa_bank.jsonl]
        [--greedy N] [--json OUT]

E2E is the llama.cpp test program that scripts/setup-llama.sh builds (plugins/llama.cpp/tests/
e2e.cpp, in the cache's llama/ directory); its tokenize, logits and decode modes are llama.cpp's
own tokenizer, forward pass and greedy decoding. Compared:
- tokenisation: our tokenizer.json vs llama.cpp's on tricky strings, and on every question of
  the QA bank rendered with the chat template (the prompts the evaluation feeds);
- logits of every position of six chat prompts: top-1 agreement, mean and max KL(llama ‖ onnx);
- greedy continuations of N tokens on the same prompts: identical or not.
Run the fp32 export against an F32 copy of the GGUF (`--dequantise`, written beside the GGUF:
the same weights, so only the arithmetic differs), and the q4 export against the GGUF itself
(both then quantise activations to 8 bits, each its own way). Needs onnxruntime, tokenizers,
numpy (and gguf for --dequantise): the venv of scripts/setup-engine.sh has them.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np


def dequantised_copy(src, dst):
    """Write `src` with every tensor dequantised to F32 (same metadata), so llama.cpp and the
    fp32 ONNX model run the very same weights and only the computation differs."""
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


TRICKY = ["Hello world", " leading space", "numbers 12345 and 3.14159", "naïve café — déjà vu",
          "tabs\tand\nnewlines\n\n", "<|im_start|>user\nhi<|im_end|>", "emoji 🙂 and CJK 漢字",
          "x = f(y) + 2*z; // code", "UPPER lower MiXeD", "   many   spaces   ",
          "don't won't it's I'LL", "http://example.com/a?b=c", "1,000,000.00",
          "«quotes» \"and\" 'these'", "a\u00a0non-breaking", "end.", "  \n\n  indented\n",
          "def f(x):\n    return x**2\n", "Ünïcödé façade", "résumé naïve"]

PROMPTS = ["What is the capital of France?", "Write a haiku about the sea.",
           "Explain photosynthesis in one sentence.", "List three prime numbers.",
           "Who wrote Hamlet?", "Translate 'good morning' into Spanish."]


def default_system(template):
    """The first literal default system message of a ChatML template (as the engine finds it)."""
    start, rest = "<|im_start|>system", template
    while (i := rest.find(start)) >= 0:
        rest = rest[i + len(start):]
        for nl in ("\n", "\\n"):
            if rest.startswith(nl):
                body = rest[len(nl):]
                end = body.find("<|im_end|>")
                if end < 0:
                    return None
                text = body[:end]
                if not any(c in text for c in "'\"{}\\"):
                    return text
    return None


def chat(info, question):
    sys_msg = default_system(info["chat_template"])
    head = f"<|im_start|>system\n{sys_msg}<|im_end|>\n" if sys_msg else ""
    return f"{head}<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n"


class Llama:
    """llama.cpp through the e2e program."""

    def __init__(self, e2e, gguf):
        self.e2e, self.gguf = e2e, gguf

    def run(self, mode, stdin, *extra):
        r = subprocess.run([self.e2e, mode, self.gguf, *extra], input=stdin.encode(),
                           capture_output=True, check=False)
        if r.returncode != 0:
            sys.exit(f"e2e {mode} failed: {r.stderr.decode()[-2000:]}")
        return r.stdout.decode()

    def tokenize(self, texts):
        out = self.run("tokenize", "".join(t.encode().hex() + "\n" for t in texts))
        return [json.loads(line) for line in out.splitlines()]

    def logits(self, prompts, vocab):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "logits.bin")
            self.run("logits", "".join(" ".join(map(str, p)) + "\n" for p in prompts), path)
            flat = np.fromfile(path, dtype=np.float32)
        out, at = [], 0
        for p in prompts:
            out.append(flat[at:at + len(p) * vocab].reshape(len(p), vocab))
            at += len(p) * vocab
        return out

    def greedy(self, prompt, n):
        return json.loads(self.run("decode", " ".join(map(str, prompt)) + "\n", str(n)))["tokens"]


class Onnx:
    def __init__(self, d):
        import onnxruntime as ort
        self.info = json.load(open(f"{d}/model.json"))
        so = ort.SessionOptions()
        so.intra_op_num_threads = 2
        self.s = ort.InferenceSession(f"{d}/model.onnx", so, providers=["CPUExecutionProvider"])

    def forward(self, ids, past=None):
        L, KV, hd = self.info["layers"], self.info["kv_heads"], self.info["head_dim"]
        P = 0 if past is None else past[0].shape[2]
        feeds = {"input_ids": np.array([ids], np.int64),
                 "attention_mask": np.ones((1, P + len(ids)), np.int64),
                 "position_ids": np.arange(P, P + len(ids), dtype=np.int64)[None]}
        for i in range(L):
            for j, k in enumerate(("key", "value")):
                feeds[f"past_key_values.{i}.{k}"] = (np.zeros((1, KV, 0, hd), np.float32)
                                                     if past is None else past[2 * i + j])
        out = self.s.run(None, feeds)
        return out[0][0], out[1:]

    def greedy(self, logits, past, n):
        """n greedy tokens on from a prefill's logits and cache."""
        out = []
        for _ in range(n):
            t = int(logits[-1].argmax())
            out.append(t)
            logits, past = self.forward([t], past)
        return out


def log_softmax(x):
    x = x.astype(np.float64)
    return x - np.logaddexp.reduce(x, axis=-1, keepdims=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("gguf")
    ap.add_argument("onnx_dir")
    ap.add_argument("--e2e", required=True, help="llama.cpp's e2e program (scripts/setup-llama.sh)")
    ap.add_argument("--dequantise", action="store_true",
                    help="run llama.cpp on an F32 copy of the GGUF (for the fp32 export)")
    ap.add_argument("--bank", help="QA bank (JSON lines with a question): tokenise every prompt")
    ap.add_argument("--greedy", type=int, default=32, help="greedy tokens per prompt")
    ap.add_argument("--json", help="write the figures here as JSON")
    a = ap.parse_args()
    from tokenizers import Tokenizer

    gguf = a.gguf
    if a.dequantise:
        gguf = a.gguf.removesuffix(".gguf") + ".F32.gguf"
        if not os.path.exists(gguf) or os.path.getmtime(gguf) < os.path.getmtime(a.gguf):
            dequantised_copy(a.gguf, gguf + ".tmp")
            os.replace(gguf + ".tmp", gguf)
    llama = Llama(a.e2e, gguf)
    tok = Tokenizer.from_file(f"{a.onnx_dir}/tokenizer.json")
    info = json.load(open(f"{a.onnx_dir}/model.json"))
    res = {"gguf": os.path.basename(gguf), "weights": info.get("weights", "fp32")}

    # 1. Tokenisation.
    texts = list(TRICKY)
    if a.bank:
        with open(a.bank) as f:
            texts += [chat(info, json.loads(line)["question"]) for line in f if line.strip()]
    theirs = llama.tokenize(texts)
    same = 0
    for t, th in zip(texts, theirs):
        ours = tok.encode(t, add_special_tokens=False).ids
        same += ours == th
        if ours != th and len(texts) - same < 10:
            print(f"tokenisation differs on {t!r}: {ours} vs {th}")
    res["tokenize"] = {"same": same, "total": len(texts)}
    print(f"tokenisation: {same}/{len(texts)} strings identical "
          f"({len(TRICKY)} tricky{', the rest the QA bank prompts' if a.bank else ''})")

    # 2. Logits of every position, 3. greedy continuations.
    onnx = Onnx(a.onnx_dir)
    prompts = [tok.encode(chat(info, p), add_special_tokens=False).ids for p in PROMPTS]
    ref = llama.logits(prompts, info["vocab"])
    agree = total = agree_rest = 0
    kls, kls_rest, worst = [], [], 0.0
    greedy_same, prefixes = 0, []
    for p, ids, b in zip(PROMPTS, prompts, ref):
        ours, past = onnx.forward(ids)
        hits = ours.argmax(-1) == b.argmax(-1)
        agree += int(hits.sum())
        agree_rest += int(hits[1:].sum())
        total += len(ids)
        lp, lq = log_softmax(b), log_softmax(ours)
        kl = (np.exp(lp) * (lp - lq)).sum(-1)
        kls.extend(kl.tolist())
        # The first position predicts what follows the first token alone: generation never uses
        # it, and it is where quantised kernels part ways most (Qwen's attention sink).
        kls_rest.extend(kl[1:].tolist())
        worst = max(worst, float(np.abs(ours - b).max()))
        if a.greedy:
            g_ours, g_theirs = onnx.greedy(ours, past, a.greedy), llama.greedy(ids, a.greedy)
            greedy_same += g_ours == g_theirs
            prefixes.append(next((i for i, (x, y) in enumerate(zip(g_ours, g_theirs)) if x != y),
                                 len(g_ours)))
            print(f"{p!r}: greedy {'identical' if g_ours == g_theirs else 'DIFFERS'}: "
                  f"{tok.decode(g_ours)!r}")
            if g_ours != g_theirs:
                print(f"   llama.cpp: {tok.decode(g_theirs)!r}")
    res["logits"] = {"positions": total, "top1_agree": agree / total,
                     "mean_kl": float(np.mean(kls)), "max_kl": float(np.max(kls)),
                     "max_abs_diff": worst,
                     "top1_agree_after_first": agree_rest / (total - len(prompts)),
                     "mean_kl_after_first": float(np.mean(kls_rest)),
                     "max_kl_after_first": float(np.max(kls_rest))}
    res["greedy"] = {"same": greedy_same, "total": len(PROMPTS) if a.greedy else 0,
                     "tokens": a.greedy, "common_prefix": prefixes}
    print(f"prompt positions: top-1 agreement {agree}/{total}; mean KL(llama.cpp ‖ onnx) "
          f"{np.mean(kls):.2e}, max {np.max(kls):.2e} nats; max |Δlogit| {worst:.4f}")
    print(f"  without each prompt's first position: top-1 {agree_rest}/{total - len(prompts)}; "
          f"mean KL {np.mean(kls_rest):.2e}, max {np.max(kls_rest):.2e} nats")
    if a.greedy:
        print(f"greedy continuations ({a.greedy} tokens): {greedy_same}/{len(PROMPTS)} identical; "
              f"tokens before the first difference: {prefixes}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
