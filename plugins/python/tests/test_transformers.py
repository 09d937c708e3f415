"""End to end in real transformers + torch on the CPU: SmolLM2-135M-Instruct (the F32 GGUF,
the same weights as the project's fp32 ONNX model) generating with the gravity processor."""

import json
import subprocess

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch is in the test venv (scripts/setup-python.sh)")
transformers = pytest.importorskip("transformers", reason="transformers is in the test venv")

import infogravity as ig  # noqa: E402
from infogravity.transformers import GravityLogitsProcessor  # noqa: E402

PROMPTS = [
    "What is the capital of France?",
    "Name three primary colours.",
    "Write one sentence about the sea.",
]


@pytest.fixture(scope="module")
def model(gguf_f32):
    torch.manual_seed(0)
    d, f = str(gguf_f32.parent), gguf_f32.name
    tok = transformers.AutoTokenizer.from_pretrained(d, gguf_file=f)
    m = transformers.AutoModelForCausalLM.from_pretrained(d, gguf_file=f, dtype=torch.float32)
    m.eval()
    return tok, m


def prompt_ids(tok, text):
    enc = tok.apply_chat_template([{"role": "user", "content": text}], add_generation_prompt=True,
                                  return_tensors="pt", return_dict=True)
    return enc["input_ids"]


def new_tokens(out, ids):
    return out[0, ids.shape[1]:].tolist()


@pytest.mark.parametrize("mode", ["sample", "logits"])
def test_neutral_greedy_equals_transformers_greedy(model, mode):
    tok, m = model
    for text in PROMPTS:
        ids = prompt_ids(tok, text)
        plain = m.generate(ids, max_new_tokens=24, do_sample=False)
        # sample mode: neutral at T = 0 selects the argmax itself and forces it; logits mode:
        # neutral at T = 1 hands the scores back unchanged, and transformers argmaxes them
        cfg = {"temperature": {"base": 0}} if mode == "sample" else None
        g = GravityLogitsProcessor(cfg, preset="neutral", mode=mode)
        ours = m.generate(ids, max_new_tokens=24, logits_processor=[g], do_sample=False)
        assert new_tokens(ours, ids) == new_tokens(plain, ids), text
        r = g.reports[0]
        assert len(r) == len(new_tokens(ours, ids))
        if mode == "sample":
            assert (r["token"] == np.array(new_tokens(ours, ids))).all()
        else:
            assert (r["token"] == -1).all() and (r["temperature"] == 1.0).all()


def test_sample_mode_forces_the_processors_choice(model):
    tok, m = model
    ids = prompt_ids(tok, PROMPTS[2])
    g = GravityLogitsProcessor(preset="creative", seed=3)
    out = m.generate(ids, max_new_tokens=20, logits_processor=[g], **g.generate_kwargs())
    r = g.reports[0]
    assert (r["token"] == np.array(new_tokens(out, ids))).all()
    # the same seed repeats the answer; other seeds give others
    g2 = GravityLogitsProcessor(preset="creative", seed=3)
    out2 = m.generate(ids, max_new_tokens=20, logits_processor=[g2], **g2.generate_kwargs())
    assert new_tokens(out2, ids) == new_tokens(out, ids)
    others = []
    for seed in (4, 5, 6):
        g3 = GravityLogitsProcessor(preset="creative", seed=seed)
        others.append(new_tokens(m.generate(ids, max_new_tokens=20, logits_processor=[g3], **g3.generate_kwargs()), ids))
    assert any(o != new_tokens(out, ids) for o in others)


def test_entropies_match_the_onnx_reference_engine(model, engine_bin):
    tok, m = model
    text = PROMPTS[0]
    ids = prompt_ids(tok, text)
    g = GravityLogitsProcessor(preset="neutral", mode="logits")
    out = m.generate(ids, max_new_tokens=12, logits_processor=[g], do_sample=False)
    mine = g.reports[0]
    run = subprocess.run(
        [str(engine_bin), "generate", "--model", "smollm2-135m", "--weights", "fp32", "--preset",
         "neutral", "--temperature", "0", "--max-tokens", "12", "--diagnostics", "jsonl", text],
        capture_output=True, text=True, check=True,
    )
    ref = [json.loads(l) for l in run.stdout.splitlines() if l.startswith("{")]
    assert [r["token"] for r in ref] == new_tokens(out, ids)
    n = min(len(ref), len(mine))
    assert n >= 7
    dh = max(abs(ref[i]["entropy"] - float(mine[i]["entropy"])) for i in range(n))
    dp = max(abs(ref[i]["p_max"] - float(mine[i]["p_max"])) for i in range(n))
    for i in range(n):
        tol = 0.01 + 0.01 * ref[i]["entropy"]
        assert abs(ref[i]["entropy"] - float(mine[i]["entropy"])) <= tol, (i, ref[i], mine[i])
        assert abs(ref[i]["p_max"] - float(mine[i]["p_max"])) <= 0.01, (i, ref[i], mine[i])
    print(f"max |dH| = {dh:.2e} nats, max |dp_max| = {dp:.2e} over {n} steps")


def test_batch_rows_are_tracked_and_a_new_call_starts_new_sequences(model):
    tok, m = model
    tok.padding_side = "left"
    texts = [tok.apply_chat_template([{"role": "user", "content": t}], add_generation_prompt=True,
                                     tokenize=False) for t in PROMPTS[:2]]
    enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    g = GravityLogitsProcessor(preset="balanced", seed=1, pad_token_id=tok.pad_token_id)
    out = m.generate(**enc, max_new_tokens=10, logits_processor=[g], **g.generate_kwargs(),
                     pad_token_id=tok.pad_token_id)
    L = enc["input_ids"].shape[1]
    for b in range(2):
        toks = out[b, L:].tolist()
        r = g.reports[b]
        k = len(r)
        assert k >= 1 and r["token"].tolist() == toks[:k]
        assert (r["step"] == np.arange(k)).all()  # one sequence per row, accepted in order
    assert g.processor.live == 2
    out = m.generate(**enc, max_new_tokens=4, logits_processor=[g], **g.generate_kwargs(),
                     pad_token_id=tok.pad_token_id)
    assert g.processor.live == 2 and all(len(r) == 4 for r in g.reports)
    assert all(r["step"][0] == 0 for r in g.reports)
    g.close()
    assert g.processor.live == 0


def test_abstention_stops_the_row(model):
    tok, m = model
    ids = prompt_ids(tok, "Who won the 2087 chess olympiad?")
    text_ids = tok.encode(" I don't know.", add_special_tokens=False)
    g = GravityLogitsProcessor({"abstain": {"enabled": True, "target": 0.999, "tokens": text_ids}},
                               preset="factual", eos_token_id=tok.eos_token_id)
    out = m.generate(ids, max_new_tokens=30, logits_processor=[g],
                     stopping_criteria=[g.stopping_criteria()], **g.generate_kwargs())
    assert new_tokens(out, ids) == text_ids + [tok.eos_token_id]
    r = g.reports[0]
    assert r["stop"][-1] != 0 and all(f & 16 for f in r["flags"][:-1])  # FORCED


def test_the_stopping_criteria_end_an_abstaining_row_without_eos(model):
    tok, m = model
    ids = prompt_ids(tok, "Who won the 2087 chess olympiad?")
    text_ids = tok.encode(" I don't know.", add_special_tokens=False)
    cfg = {"abstain": {"enabled": True, "target": 0.999, "tokens": text_ids}}
    g = GravityLogitsProcessor(cfg, preset="factual")  # no eos_token_id: only the criteria stop it
    out = m.generate(ids, max_new_tokens=30, logits_processor=[g],
                     stopping_criteria=[g.stopping_criteria()], **g.generate_kwargs())
    # the text, then the one step whose report says stop (the model's own token), then stopped
    assert new_tokens(out, ids)[: len(text_ids)] == text_ids and len(new_tokens(out, ids)) == len(text_ids) + 1
    g = GravityLogitsProcessor(cfg, preset="factual")
    out = m.generate(ids, max_new_tokens=30, min_new_tokens=30, logits_processor=[g], **g.generate_kwargs())
    assert len(new_tokens(out, ids)) == 30  # without the criteria it runs on


def test_beam_search_and_unpadded_batches_are_refused(model):
    tok, m = model
    ids = prompt_ids(tok, PROMPTS[0])
    g = GravityLogitsProcessor(preset="balanced", mode="logits", pad_token_id=tok.pad_token_id)
    with pytest.raises(ValueError, match="beam search"):
        m.generate(ids, max_new_tokens=12, num_beams=3, do_sample=False, logits_processor=[g])
    tok.padding_side = "left"
    texts = [tok.apply_chat_template([{"role": "user", "content": t}], add_generation_prompt=True,
                                     tokenize=False) for t in PROMPTS[:2]]
    enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    g = GravityLogitsProcessor(preset="balanced")
    with pytest.raises(ValueError, match="pad_token_id"):
        m.generate(**enc, max_new_tokens=3, logits_processor=[g], **g.generate_kwargs(),
                   pad_token_id=tok.pad_token_id)


def test_bad_config_is_a_clear_error(model):
    tok, m = model
    ids = prompt_ids(tok, PROMPTS[0])
    g = GravityLogitsProcessor({"temperature": {"base": -2}})
    with pytest.raises(ig.InfogravityError, match="temperature.base"):
        m.generate(ids, max_new_tokens=2, logits_processor=[g], do_sample=False)


# An item of eval/qa_bank.jsonl where `eval pmi` (SmolLM2, the reference engine) shows the gated
# contrast at work: greedy answers " the Nordic region, …" (wrong); at the first step " the" is
# also the null query's top, so the step is reordered by PMI and the answer is " Europe, …".
NORWAY = ("Which continent is Norway in?", "Norway is in", "Norway")
CHAD = ("What is the capital of Chad?", "The capital of Chad is", "Chad")
CONTRAST = {"temperature": {"base": 0}, "contrast": {"enabled": True}}


def stem_ids(tok, question, stem):
    """The reference engine's prompt: the chat template's user turn, then the answer's stem."""
    text = tok.apply_chat_template([{"role": "user", "content": question}], add_generation_prompt=True,
                                   tokenize=False)
    return tok(text + stem, return_tensors="pt", add_special_tokens=False)["input_ids"]


def null_ids(tok, item):
    q, stem, subject = item
    return stem_ids(tok, q.replace(subject, "N/A"), stem.replace(subject, "N/A"))


class Counting:
    """The model, counting its forward calls."""

    def __init__(self, m):
        self.m, self.calls, self.rows = m, 0, []

    @property
    def device(self):
        return self.m.device

    def __call__(self, **kw):
        self.calls += 1
        out = self.m(**kw)
        self.rows.append(out.logits[:, -1, :].detach().float().clone())
        return out

    rows: list


def contrast_bit():
    return next(b for b in range(32) if ig.flag_names(1 << b) == ["contrast"])


def test_the_null_query_contrast_reorders_an_attractor_onset(model):
    tok, m = model
    ids = stem_ids(tok, NORWAY[0], NORWAY[1])
    plain = m.generate(ids, max_new_tokens=4, do_sample=False)
    assert tok.decode(new_tokens(plain, ids)).startswith(" the Nordic")
    table = ig.content_table(tok, vocab=m.config.vocab_size)
    null = Counting(m)
    g = GravityLogitsProcessor(CONTRAST, preset="neutral", null_model=null,
                               null_input_ids=null_ids(tok, NORWAY), content_tokens=table)
    out = m.generate(ids, max_new_tokens=4, logits_processor=[g], do_sample=False)
    text = tok.decode(new_tokens(out, ids))
    assert text.startswith(" Europe"), text
    flags = g.reports[0]["flags"]
    bit = 1 << contrast_bit()
    assert flags[0] & bit and not (flags[1:] & bit).any()
    # The first token is content: the null prompt's prefill is the only null forward.
    assert null.calls == 1
    # The same with the contrast off in the configuration is refused, not silently plain.
    off = GravityLogitsProcessor({"temperature": {"base": 0}}, preset="neutral", null_model=m,
                                 null_input_ids=null_ids(tok, NORWAY))
    for _ in range(2):  # and again: the refused processor is not kept
        with pytest.raises(ValueError, match="contrast is off"):
            m.generate(ids, max_new_tokens=2, logits_processor=[off], do_sample=False)


def test_the_null_rows_follow_a_padded_batch_and_end_at_content(model):
    tok, m = model
    table = ig.content_table(tok, vocab=m.config.vocab_size)
    items = [NORWAY, CHAD]
    alone = []
    for it in items:
        g = GravityLogitsProcessor(CONTRAST, preset="neutral", null_model=m,
                                   null_input_ids=null_ids(tok, it), content_tokens=table)
        ids = stem_ids(tok, it[0], it[1])
        out = m.generate(ids, max_new_tokens=5, logits_processor=[g], do_sample=False)
        alone.append((new_tokens(out, ids), g.reports[0]))
    # Both batched: prompts and null prompts left-padded to their longest (the null prompts
    # differ in length: the relations' templates do).
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id

    def left(rows):
        n = max(r.shape[1] for r in rows)
        ids = torch.full((len(rows), n), pad, dtype=torch.long)
        mask = torch.zeros((len(rows), n), dtype=torch.long)
        for b, r in enumerate(rows):
            ids[b, n - r.shape[1]:] = r[0]
            mask[b, n - r.shape[1]:] = 1
        return ids, mask

    ids, mask = left([stem_ids(tok, it[0], it[1]) for it in items])
    nids, nmask = left([null_ids(tok, it) for it in items])
    assert (nmask == 0).any()
    null = Counting(m)
    g = GravityLogitsProcessor(CONTRAST, preset="neutral", pad_token_id=pad, null_model=null,
                               null_input_ids=nids, null_attention_mask=nmask, content_tokens=table)
    out = m.generate(ids, attention_mask=mask, max_new_tokens=5, logits_processor=[g], do_sample=False,
                     pad_token_id=pad)
    bit = 1 << contrast_bit()
    for b, (tokens, rep) in enumerate(alone):
        assert out[b, ids.shape[1]:].tolist() == tokens, items[b]
        assert (g.reports[b]["token"] == rep["token"]).all()
        assert ((g.reports[b]["flags"] & bit) == (rep["flags"] & bit)).all()
    # Null forwards: the prefill, then one step per token until every row has a content token.
    firsts = [next(i for i, t in enumerate(tokens) if table[t]) for tokens, _ in alone]
    assert null.calls == 1 + max(firsts)
    with pytest.raises(ValueError, match="2 rows, the generation 1"):
        m.generate(ids[:1], max_new_tokens=2, logits_processor=[g], do_sample=False)
    with pytest.raises(ValueError, match="both null_model and null_input_ids"):
        GravityLogitsProcessor(CONTRAST, null_input_ids=nids)
    with pytest.raises(ValueError, match="all padding"):
        GravityLogitsProcessor(CONTRAST, null_model=m, null_input_ids=nids,
                               null_attention_mask=torch.zeros_like(nmask))


def test_the_null_prompt_is_fed_every_token_until_content(model):
    # No token counts as content: the null prompt takes every emitted token, and the row it
    # gives at step k is the model's own on the null prompt plus the first k tokens.
    tok, m = model
    ids = stem_ids(tok, NORWAY[0], NORWAY[1])
    nids = null_ids(tok, NORWAY)
    null = Counting(m)
    g = GravityLogitsProcessor(CONTRAST, preset="neutral", null_model=null, null_input_ids=nids,
                               content_tokens=np.zeros(m.config.vocab_size, dtype=bool))
    out = m.generate(ids, max_new_tokens=6, logits_processor=[g], do_sample=False)
    toks = new_tokens(out, ids)
    assert len(toks) == 6 and null.calls == len(toks)  # the prefill, then one per token fed
    with torch.no_grad():
        for k, row in enumerate(null.rows):
            fresh = m(input_ids=torch.cat([nids, torch.tensor([toks[:k]], dtype=torch.long)], dim=1)).logits[0, -1]
            assert torch.allclose(row[0], fresh, atol=1e-3), k
    bit = 1 << contrast_bit()
    assert (g.reports[0]["flags"][1:] & bit).any()  # contrasted beyond the first step too
    # Right-padded null prompts would give a pad position's row: refused.
    pad = torch.full((1, 2), tok.eos_token_id, dtype=torch.long)
    right = torch.cat([nids, pad], dim=1)
    mask = torch.cat([torch.ones_like(nids), torch.zeros_like(pad)], dim=1)
    with pytest.raises(ValueError, match="right-padded"):
        GravityLogitsProcessor(CONTRAST, null_model=m, null_input_ids=right, null_attention_mask=mask)
