#!/usr/bin/env python3
"""infogravity in ONNX Runtime GenAI's Python loop: get_logits -> infogravity step -> set_logits
-> generate_next_token -> accept, with the C library through ctypes (no Python package of
infogravity exists yet). Prints the answer, then per token the entropy, p_max and temperature
infogravity reported.

    python example.py [--model DIR] [--lib libinfogravity.so.1] [--mode sample|logits]
                      [--config JSON] [--seed N] [--max-tokens N] ["question"]

Needs: onnxruntime-genai (0.18.0 tested) and the onnxruntime it loads, numpy, tokenizers (the
converted model has tokenizer.json but no tokenizer_config.json, which GenAI's own tokenizer
wants). scripts/setup-genai.sh makes such a venv. The model directory is one written by
tools/gguf2onnx.py (model.onnx, genai_config.json, tokenizer.json, model.json).
"""

import argparse
import ctypes
import json
import math
import os
import sys

import numpy as np
import onnxruntime_genai as og
from tokenizers import Tokenizer

IG_DTYPE_F32 = 0
IG_MODE_SAMPLE, IG_MODE_LOGITS = 0, 1
REGIMES = {0: "orbit", 1: "void", 2: "black_hole"}


class IgSeqParams(ctypes.Structure):  # include/infogravity.h, ABI v1 (88 bytes on LP64)
    _fields_ = [("struct_size", ctypes.c_size_t), ("seed", ctypes.c_uint64),
                ("anchors", ctypes.POINTER(ctypes.c_uint32)), ("n_anchors", ctypes.c_size_t),
                ("prompt_logits", ctypes.POINTER(ctypes.c_float)), ("n_prompt_logits", ctypes.c_size_t),
                ("prompt_entropies", ctypes.POINTER(ctypes.c_float)), ("n_prompt_entropies", ctypes.c_size_t),
                ("has_context_gain", ctypes.c_uint32), ("context_gain", ctypes.c_float),
                ("query_tokens", ctypes.POINTER(ctypes.c_uint32)), ("n_query_tokens", ctypes.c_size_t)]


class IgStepReport(ctypes.Structure):  # include/infogravity.h, ABI v1 (88 bytes on LP64)
    _fields_ = [("struct_size", ctypes.c_size_t), ("seq", ctypes.c_uint64), ("token", ctypes.c_int64),
                ("step", ctypes.c_uint32), ("regime", ctypes.c_uint32), ("flags", ctypes.c_uint32),
                ("cycle_period", ctypes.c_uint32), ("stop", ctypes.c_uint32)] + [
                (f, ctypes.c_float) for f in ("entropy", "entropy_norm", "varentropy", "log_z", "p_max",
                                              "margin", "token_potential", "temperature", "void_score",
                                              "black_hole_score", "task_mass")]


def load_infogravity(path):
    assert ctypes.sizeof(IgSeqParams) == 88 and ctypes.sizeof(IgStepReport) == 88
    lib = ctypes.CDLL(path)
    P, u32, u64, sz = ctypes.c_void_p, ctypes.c_uint32, ctypes.c_uint64, ctypes.c_size_t
    sigs = {
        "ig_last_error": ([], ctypes.c_char_p),
        "ig_processor_new": ([ctypes.c_char_p, sz, ctypes.POINTER(P)], u32),
        "ig_processor_free": ([P], None),
        "ig_seq_params_init": ([ctypes.POINTER(IgSeqParams)], None),
        "ig_step_report_init": ([ctypes.POINTER(IgStepReport)], None),
        "ig_processor_begin": ([P, u64, ctypes.POINTER(IgSeqParams), P], u32),
        "ig_processor_step": ([P, u64, P, u32, sz, u32, ctypes.POINTER(IgStepReport)], u32),
        "ig_processor_accept": ([P, u64, u32], u32),
        "ig_processor_end": ([P, u64], u32),
    }
    for name, (args, res) in sigs.items():
        f = getattr(lib, name)
        f.argtypes, f.restype = args, res
    return lib


def check(lib, status, what):
    if status != 0:
        sys.exit(f"{what}: {lib.ig_last_error().decode()}")


def chat_prompt(model_dir, question):
    """SmolLM2's ChatML template with its default system message, as the reference engine
    renders it (engine/src/generate.rs)."""
    with open(os.path.join(model_dir, "model.json")) as f:
        template = json.load(f)["chat_template"]
    start = "<|im_start|>system\n"
    system = ""
    if start in template:
        rest = template[template.index(start) + len(start):]
        system = f"{start}{rest[:rest.index('<|im_end|>')]}<|im_end|>\n"
    return f"{system}<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n"


def main():
    cache = os.environ.get("INFOGRAVITY_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "infogravity")
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("question", nargs="?", default="What is the capital of France?")
    ap.add_argument("--model", default=os.path.join(cache, "models/smollm2-135m-instruct"))
    ap.add_argument("--lib", default=os.environ.get("INFOGRAVITY_LIB", "libinfogravity.so.1"))
    ap.add_argument("--mode", choices=["sample", "logits"], default="sample")
    ap.add_argument("--config", default='{"preset":"balanced"}', help="infogravity configuration")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--max-tokens", type=int, default=64)
    a = ap.parse_args()

    ig = load_infogravity(a.lib)
    tok = Tokenizer.from_file(os.path.join(a.model, "tokenizer.json"))
    prompt = tok.encode(chat_prompt(a.model, a.question), add_special_tokens=False).ids

    model = og.Model(a.model)
    with open(os.path.join(a.model, "genai_config.json")) as f:
        gc = json.load(f)["model"]
    vocab, eos = gc["vocab_size"], gc["eos_token_id"]

    # The infogravity side: a processor for the model's vocabulary, one sequence.
    proc = ctypes.c_void_p()
    check(ig, ig.ig_processor_new(a.config.encode(), vocab, ctypes.byref(proc)), "ig_processor_new")
    sp = IgSeqParams()
    ig.ig_seq_params_init(ctypes.byref(sp))
    sp.seed = a.seed
    seq = 1
    check(ig, ig.ig_processor_begin(proc, seq, ctypes.byref(sp), None), "ig_processor_begin")

    # The GenAI side. SAMPLE: greedy search on a one-hot row emits exactly infogravity's token.
    # LOGITS: GenAI samples infogravity's final logits unchanged only with top_k 0, top_p 1 and
    # temperature 1 (0.18.0; its built-in top_p default 0 would make it greedy).
    params = og.GeneratorParams(model)
    search = dict(max_length=len(prompt) + a.max_tokens, repetition_penalty=1.0, min_length=0)
    if a.mode == "sample":
        search.update(do_sample=False)
    else:
        search.update(do_sample=True, top_k=0, top_p=1.0, temperature=1.0, random_seed=a.seed)
    params.set_search_options(**search)
    gen = og.Generator(model, params)
    gen.append_tokens(np.array(prompt, dtype=np.int32))

    mode = IG_MODE_SAMPLE if a.mode == "sample" else IG_MODE_LOGITS
    rep = IgStepReport()
    out, rows = [], []
    while not gen.is_done():  # checked every step: after EOS, get_logits fails inside ORT
        logits = np.ascontiguousarray(gen.get_logits(), dtype=np.float32)  # [1, 1, V]
        row = logits.reshape(-1)
        ig.ig_step_report_init(ctypes.byref(rep))
        check(ig, ig.ig_processor_step(proc, seq, row.ctypes.data_as(ctypes.c_void_p), IG_DTYPE_F32,
                                       vocab, mode, ctypes.byref(rep)), "ig_processor_step")
        if mode == IG_MODE_SAMPLE or rep.token >= 0:  # hand GenAI a one-hot row
            row[:] = -np.inf
            row[rep.token] = 0.0
        gen.set_logits(logits)
        gen.generate_next_token()
        t = int(gen.get_next_tokens()[0])
        if mode == IG_MODE_SAMPLE and t != rep.token:
            sys.exit(f"GenAI emitted {t}, infogravity chose {rep.token}")
        check(ig, ig.ig_processor_accept(proc, seq, t), "ig_processor_accept")
        out.append(t)
        rows.append((t, rep.entropy, rep.p_max, rep.temperature, REGIMES.get(rep.regime, "?")))
    check(ig, ig.ig_processor_end(proc, seq), "ig_processor_end")
    ig.ig_processor_free(proc)

    print(f"Q: {a.question}")
    print(f"A: {tok.decode(out, skip_special_tokens=True)}")
    print(f"({len(out)} tokens, mode {a.mode}, {'EOS' if out and out[-1] == eos else 'token limit'})")
    print(f"{'token':>16} {'H (nats)':>9} {'p_max':>6} {'T':>6}  regime")
    for t, h, p, temp, regime in rows:
        piece = tok.decode([t], skip_special_tokens=False)
        assert math.isfinite(h) and math.isfinite(temp)
        print(f"{piece!r:>16} {h:9.3f} {p:6.3f} {temp:6.3f}  {regime}")


if __name__ == "__main__":
    main()
