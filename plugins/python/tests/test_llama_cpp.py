"""End to end in llama-cpp-python 0.3.36 (its Python package from the PyPI sdist, its libllama
built from the same sdist's llama.cpp by scripts/setup-llama.sh) on the SmolLM2 GGUFs: the
C-level gravity sampler chooses every token."""

import json
import os
import subprocess

import numpy as np
import pytest

llama_cpp = pytest.importorskip("llama_cpp", reason="llama-cpp-python is in the test venv (scripts/setup-python.sh)")

import infogravity as ig  # noqa: E402
from infogravity.llama_cpp import install  # noqa: E402

# SmolLM2's own chat template (the one transformers and the reference engine apply).
SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
PROMPTS = ["What is the capital of France?", "Name three primary colours.", "Write one sentence about the sea."]


def chat(text):
    return (f"<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\n{text}<|im_end|>\n"
            "<|im_start|>assistant\n").encode()


@pytest.fixture(autouse=True, scope="module")
def include_dirs():
    if not os.environ.get("INFOGRAVITY_LLAMA_INCLUDE"):
        pytest.skip("INFOGRAVITY_LLAMA_INCLUDE is not set (llama.h of the llama.cpp tree; scripts/check.sh sets it)")


def load(path):
    return llama_cpp.Llama(str(path), verbose=False, seed=1, n_ctx=512)


def tokens(llm, text, n, **kw):
    ids = llm.tokenize(chat(text), add_bos=False, special=True)
    out = []
    for t in llm.generate(ids, **kw):
        if llm.token_eos() == t or len(out) == n:
            break
        out.append(t)
    return out


@pytest.mark.parametrize("mode", ["sample", "logits"])
def test_neutral_greedy_equals_llama_cpp_greedy(gguf_q4, mode):
    llm = load(gguf_q4)
    plain = [tokens(llm, t, 32, temp=0.0) for t in PROMPTS]
    g = install(llm, {"temperature": {"base": 0}}, preset="neutral", mode=mode)
    ours = [tokens(llm, t, 32) for t in PROMPTS]
    assert ours == plain
    assert len(g.reports) >= len(ours[-1]) and (g.reports["step"] == np.arange(len(g.reports))).all()
    g.uninstall()
    assert [tokens(llm, t, 32, temp=0.0) for t in PROMPTS] == plain


def test_entropies_match_the_onnx_reference_engine(gguf_f32, engine_bin):
    llm = load(gguf_f32)
    g = install(llm, preset="neutral", mode="logits", seed=0)
    text = PROMPTS[0]
    got = tokens(llm, text, 12, temp=0.0)
    mine = g.reports
    run = subprocess.run(
        [str(engine_bin), "generate", "--model", "smollm2-135m", "--weights", "fp32", "--preset", "neutral",
         "--temperature", "0", "--max-tokens", "12", "--diagnostics", "jsonl", text],
        capture_output=True, text=True, check=True)
    ref = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
    n = min(len(ref), len(mine))
    assert n >= 7
    # neutral at T = 1 in logits mode, then llama.cpp's dist: the first token is sampled, so
    # compare the field at step 0 (same prompt) and, below, every step of a greedy run
    assert abs(ref[0]["entropy"] - float(mine[0]["entropy"])) <= 0.01 + 0.01 * ref[0]["entropy"]
    g.uninstall()
    g = install(llm, {"temperature": {"base": 0}}, preset="neutral", seed=0)
    got = tokens(llm, text, 12)
    mine = g.reports
    assert got == [r["token"] for r in ref][: len(got)]
    dh = dp = 0.0
    for i in range(min(len(ref), len(mine))):
        dh = max(dh, abs(ref[i]["entropy"] - float(mine[i]["entropy"])))
        dp = max(dp, abs(ref[i]["p_max"] - float(mine[i]["p_max"])))
        assert abs(ref[i]["entropy"] - float(mine[i]["entropy"])) <= 0.01 + 0.01 * ref[i]["entropy"], i
        assert abs(ref[i]["p_max"] - float(mine[i]["p_max"])) <= 0.01, i
    print(f"max |dH| = {dh:.2e} nats, max |dp_max| = {dp:.2e}")


def test_seeded_sampling_repeats_and_reports_every_token(gguf_q4):
    llm = load(gguf_q4)
    g = install(llm, preset="creative", seed=7)
    a = tokens(llm, PROMPTS[2], 24)
    ra = g.reports.copy()
    # Without the reset, llama-cpp-python keeps the cached prompt and decodes its last token
    # again alone: a one-row batch takes another matmul path than the prompt's, so the logits
    # differ in the last bits on some CPUs, and a sampled run may part from the first. The
    # claim here is ours (same logits, same seed: same tokens), so both runs decode the same.
    llm.reset()
    b = tokens(llm, PROMPTS[2], 24)
    assert a == b and len(ra) >= len(a)
    assert ra["token"][: len(a)].tolist() == a
    assert (ra["temperature"] > 0).all() and np.isfinite(ra["entropy"]).all()


def test_prompt_is_the_query_and_abstention_ends_generation(gguf_q4):
    llm = load(gguf_q4)
    text_ids = llm.tokenize(b" I don't know.", add_bos=False)
    g = install(llm, {"abstain": {"enabled": True, "target": 0.999, "tokens": text_ids}}, preset="factual")
    out = tokens(llm, "Who won the 2087 chess olympiad?", 30)
    assert out == text_ids  # then end of generation
    assert g.reports["stop"][-1] != 0


def test_bad_config_fails_at_install(gguf_q4):
    llm = load(gguf_q4)
    with pytest.raises(ig.InfogravityError, match="temperature.base"):
        install(llm, {"temperature": {"base": -1}})
    with pytest.raises(ValueError):
        install(llm, mode="greedy")


def test_uninstall_drops_the_chain_and_sample_continues_one_sequence(gguf_q4):
    import gc

    llm = load(gguf_q4)
    ids = llm.tokenize(chat(PROMPTS[0]), add_bos=False, special=True)
    g = install(llm, preset="balanced", seed=3)
    tokens(llm, PROMPTS[0], 3)
    g.uninstall()
    assert llm._sampler is None
    del g
    gc.collect()
    llm.eval(ids)
    llm.sample(temp=0.0)  # the Llama's own sampling again; no gravity sampler writes anywhere
    # sample() on its own, token by token: one gravity sequence across the calls
    g = install(llm, preset="balanced", seed=3)
    llm.reset()
    llm.eval(ids)
    for _ in range(5):
        t = llm.sample()
        llm.eval([t])
    assert g.reports["step"].tolist() == [0, 1, 2, 3, 4]


def test_the_null_query_contrast_runs_in_a_second_context(gguf_f32):
    # An item of eval/qa_bank.jsonl: greedy answers " the Nordic region"; " the" is also the
    # null query's top, so the gated contrast reorders the first step (plugins/llama.cpp's e2e
    # `contrast` mode checks the same in C).
    llm = load(gguf_f32)

    def item(subject):
        text = chat(f"Which continent is {subject} in?") + f"{subject} is in".encode()
        return llm.tokenize(text, add_bos=False, special=True)

    def answer(n):
        out = []
        for t in llm.generate(item("Norway")):
            if llm.token_eos() == t or len(out) == n:
                break
            out.append(t)
        return llm.detokenize(out)

    bit = next(1 << b for b in range(32) if ig.flag_names(1 << b) == ["contrast"])
    g = install(llm, {"temperature": {"base": 0}, "contrast": {"enabled": True}}, preset="neutral")
    assert answer(4).startswith(b" the Nordic")
    assert not (g.reports["flags"] & bit).any()
    g.null_prompt = item("N/A")
    text = answer(4)
    assert b"Europe" in text and not text.startswith(b" the"), text
    flags = g.reports["flags"] & bit
    assert flags[0] and not flags[1:].any()
    # Bad null prompts are refused when the generation starts.
    g.null_prompt = [llm.n_vocab() + 5]
    with pytest.raises(RuntimeError, match="status 14"):
        answer(2)
    g.null_prompt = []
    with pytest.raises(ValueError, match="null_prompt holds 0 tokens"):
        answer(2)
    g.null_prompt = None
    assert answer(4).startswith(b" the Nordic")
    g.uninstall()
    assert g._null_ctx is None
    # Closing the Llama frees the null context first (before its model).
    g = install(llm, {"temperature": {"base": 0}, "contrast": {"enabled": True}}, preset="neutral")
    g.null_prompt = item("N/A")
    answer(2)
    assert g._null_ctx is not None
    llm.close()
    assert g._null_ctx is None
