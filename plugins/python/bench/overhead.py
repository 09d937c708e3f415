"""Per-token overhead of the gravity processor in transformers and llama-cpp-python, measured
side by side in one run (plain decoding and gravity decoding interleaved, same prompt, same
number of tokens), on SmolLM2-135M-Instruct.

    python plugins/python/bench/overhead.py [--tokens 64] [--reps 5]

Needs the environment scripts/setup-python.sh makes (and, for llama-cpp-python,
LLAMA_CPP_LIB_PATH as scripts/check.sh sets it). Prints a Markdown table: median ms per token
of each configuration, and the gravity processor's own time per token (its calls timed inside
the adapter, for transformers).
"""

import argparse
import os
import statistics
import time
from pathlib import Path

import numpy as np

PROMPT = "Write a short paragraph about the history of the printing press."


def cache() -> Path:
    home = os.environ.get("INFOGRAVITY_HOME")
    return Path(home) if home else Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "infogravity"


def bench_transformers(n, reps):
    import torch
    import transformers

    from infogravity.transformers import GravityLogitsProcessor

    torch.set_num_threads(os.cpu_count() or 1)
    g = cache() / "gguf" / "SmolLM2-135M-Instruct.F32.gguf"
    tok = transformers.AutoTokenizer.from_pretrained(str(g.parent), gguf_file=g.name)
    m = transformers.AutoModelForCausalLM.from_pretrained(str(g.parent), gguf_file=g.name, dtype=torch.float32)
    ids = tok.apply_chat_template([{"role": "user", "content": PROMPT}], add_generation_prompt=True,
                                  return_tensors="pt", return_dict=True)["input_ids"]

    class Timed(GravityLogitsProcessor):
        spent = 0.0

        def __call__(self, input_ids, scores):
            t = time.perf_counter()
            out = super().__call__(input_ids, scores)
            Timed.spent += time.perf_counter() - t
            return out

    def plain():
        return m.generate(ids, min_new_tokens=n, max_new_tokens=n, do_sample=False)

    def gravity():
        p = Timed(preset="balanced", seed=1)
        return m.generate(ids, min_new_tokens=n, max_new_tokens=n, logits_processor=[p], **p.generate_kwargs())

    plain(), gravity()  # warm up
    Timed.spent = 0.0
    times = {"plain": [], "gravity": []}
    for _ in range(reps):
        for name, f in (("plain", plain), ("gravity", gravity)):
            t = time.perf_counter()
            out = f()
            times[name].append((time.perf_counter() - t) / (out.shape[1] - ids.shape[1]))
    own = Timed.spent / (reps * n)
    return times, own


def bench_llama_cpp(n, reps):
    import llama_cpp

    from infogravity.llama_cpp import install

    g = cache() / "gguf" / "SmolLM2-135M-Instruct.Q4_1.gguf"
    llm = llama_cpp.Llama(str(g), verbose=False, seed=1, n_ctx=512, n_threads=os.cpu_count())
    ids = llm.tokenize(PROMPT.encode())

    def run(**kw):
        out = 0
        t = time.perf_counter()
        for _ in llm.generate(ids, **kw):
            out += 1
            if out == n:
                break
        return (time.perf_counter() - t) / out

    def noop(input_ids, scores):
        return scores

    times = {"plain": [], "python no-op logits_processor": [], "gravity (C sampler)": []}
    sampler = None
    for _ in range(reps + 1):  # the first round warms up
        if sampler is not None:
            sampler.uninstall()
        times["plain"].append(run(temp=0.0))
        times["python no-op logits_processor"].append(run(temp=0.0, logits_processor=llama_cpp.LogitsProcessorList([noop])))
        sampler = install(llm, preset="balanced", seed=1)
        times["gravity (C sampler)"].append(run())
    for k in times:
        times[k] = times[k][1:]
    return times


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--only", choices=["transformers", "llama-cpp-python"])
    a = ap.parse_args()
    print(f"SmolLM2-135M-Instruct, {a.tokens} tokens per run, {a.reps} runs each, interleaved; "
          f"{os.cpu_count()} CPU threads\n")
    print("| engine | configuration | ms/token (median) | vs plain |")
    print("|---|---|---|---|")
    if a.only in (None, "transformers"):
        times, own = bench_transformers(a.tokens, a.reps)
        base = statistics.median(times["plain"])
        for k, v in times.items():
            med = statistics.median(v)
            print(f"| transformers (F32) | {k} | {1000 * med:.2f} | {med / base:.3f}× |")
        print(f"| transformers (F32) | the processor's own calls | {1000 * own:.3f} | |")
    if a.only in (None, "llama-cpp-python"):
        times = bench_llama_cpp(a.tokens, a.reps)
        base = statistics.median(times["plain"])
        for k, v in times.items():
            med = statistics.median(v)
            print(f"| llama-cpp-python (Q4_1) | {k} | {1000 * med:.2f} | {med / base:.3f}× |")


if __name__ == "__main__":
    main()
