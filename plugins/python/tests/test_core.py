"""The Python API: the sampling invariants of the Rust proptests (tests/proptests.rs) on
hypothesis-drawn rows, agreement with the C library row by row, dtypes, zero copy, errors."""

import ctypes
import json
import math
import os
import threading
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import infogravity as ig

finite = st.floats(-30, 30, allow_nan=False, allow_infinity=False, width=32)
rows = arrays(np.float32, st.integers(2, 300), elements=finite)
seeds = st.integers(0, 2**64 - 1)
presets = st.sampled_from(ig.PRESETS)


def proc(vocab, **cfg):
    return ig.Processor(vocab, cfg or None)


def softmax(z):
    z = z.astype(np.float64)
    m = z[np.isfinite(z)].max()
    e = np.exp(z - m)
    return e / e.sum()


@settings(max_examples=60, deadline=None)
@given(r=rows, preset=presets)
def test_processed_logits_are_a_distribution(r, preset):
    p = ig.Processor(len(r), preset=preset)
    p.begin(1, seed=9, anchors=[0])
    out = r.copy()
    rep = p.step(1, out, "logits")
    assert not np.isnan(out).any() and not (out == np.inf).any()
    assert abs(softmax(out).sum() - 1) < 1e-9
    for x in (rep.entropy, rep.varentropy, rep.log_z, rep.p_max, rep.temperature, rep.void_score):
        assert np.isfinite(x)


@settings(max_examples=60, deadline=None)
@given(r=rows, k=st.integers(-80, 80), seed=seeds)
def test_shift_invariance(r, k, seed):
    r = np.round(r * 8) / 8  # a grid, so the shift is exact in f32
    c = np.float32(k / 8)
    reps = []
    for row in (r, r + c):
        p = ig.Processor(len(r), preset="neutral")
        p.begin(1, seed=seed)
        reps.append(p.step(1, row.copy()))
    a, b = reps
    assert abs(a.entropy - b.entropy) <= 1e-5 * max(a.entropy, 1e-3)
    assert abs((b.log_z - a.log_z) - c) <= 1e-5 * max(abs(a.log_z), 1.0)
    assert a.token == b.token


@settings(max_examples=60, deadline=None)
@given(r=rows, seed=seeds)
def test_zero_temperature_is_argmax(r, seed):
    p = ig.Processor(len(r), {"preset": "neutral", "temperature": {"base": 0}})
    p.begin(1, seed=seed)
    rep = p.step(1, r.copy())
    assert rep.token == int(np.argmax(r)) and rep.temperature == 0.0


@settings(max_examples=60, deadline=None)
@given(r=rows, seed=seeds)
def test_neutral_is_identity_in_both_modes(r, seed):
    p = ig.Processor(len(r), preset="neutral")
    p.begin(1, seed=seed)
    for mode in ("logits", "sample"):
        out = r.copy()
        rep = p.step(1, out, mode)
        assert out.tobytes() == r.tobytes()
        assert rep.temperature == 1.0 and set(rep.flags) <= {"full-pass"}


@settings(max_examples=30, deadline=None)
@given(r=rows, seed=seeds)
def test_same_seed_same_tokens(r, seed):
    def run():
        p = ig.Processor(len(r), preset="creative")
        p.begin(1, seed=seed)
        toks = []
        for _ in range(8):
            t = p.step(1, r.copy()).token
            p.accept(1, t)
            toks.append(t)
        return toks

    assert run() == run()


@settings(max_examples=40, deadline=None)
@given(
    block=arrays(np.float32, st.tuples(st.integers(1, 6), st.just(64)), elements=st.floats(-8, 8, width=32)),
    threads=st.integers(1, 2),
    mode=st.sampled_from(["sample", "logits"]),
    data=st.data(),
)
def test_batch_equals_row_by_row(block, threads, mode, data):
    cfg = {"preset": "balanced", "limits": {"threads": threads}}
    a, b = ig.Processor(64, cfg), ig.Processor(64, cfg)
    ids = [100 + i for i in range(block.shape[0])]
    for i in ids:
        a.begin(i, seed=i, anchors=[1, 2])
        b.begin(i, seed=i, anchors=[1, 2])
    # The rows of a larger block, picked out of order (what the vLLM adapter hands over).
    order = data.draw(st.permutations(range(block.shape[0])))
    big = np.zeros((block.shape[0] + 1, 64), np.float32)
    big[np.array(order)] = block
    reps = a.step_batch(ids, big, mode, rows=order)
    for i, row in enumerate(block):
        one = row.copy()
        rep = b.step(ids[i], one, mode)
        got = reps[i]
        assert got["token"] == (-1 if rep.token is None else rep.token)
        assert got["entropy"] == rep.entropy and got["temperature"] == rep.temperature
        assert got["void_score"] == rep.void_score and got["flags"] == rep.flag_bits
        assert big[order[i]].tobytes() == one.tobytes()
    spare = [j for j in range(big.shape[0]) if j not in order]
    assert all(not big[j].any() for j in spare)


@settings(max_examples=40, deadline=None)
@given(r=rows, seed=seeds, preset=st.sampled_from(["balanced", "factual", "creative"]),
       top_k=st.integers(0, 4), top_p=st.floats(0.3, 1.0))
def test_sampled_token_is_kept(r, seed, preset, top_k, top_p):
    cfg = {"preset": preset, "sampler": {"top_k": top_k, "top_p": top_p}}
    s, lg = ig.Processor(len(r), cfg), ig.Processor(len(r), cfg)
    s.begin(1, seed=seed)
    lg.begin(1, seed=seed)
    tok = s.step(1, r.copy()).token
    out = r.copy()
    lg.step(1, out, "logits")
    assert np.isfinite(out[tok])


def test_half_types_agree_with_f32_and_torch_is_zero_copy():
    torch = pytest.importorskip("torch", reason="torch is in the test venv (scripts/setup-python.sh)")
    rng = np.random.default_rng(1)
    r = (rng.normal(size=500) * 3).astype(np.float32)
    want = {}
    for name, row in [
        ("f32", r.copy()),
        ("f16", r.astype(np.float16)),
        ("torch-f32", torch.from_numpy(r.copy())),
        ("torch-bf16", torch.from_numpy(r.copy()).to(torch.bfloat16)),
        ("torch-f16", torch.from_numpy(r.copy()).to(torch.float16)),
    ]:
        p = ig.Processor(500, preset="factual")
        p.begin(1, seed=5)
        before = row.clone() if hasattr(row, "clone") else row.copy()
        rep = p.step(1, row, "logits")
        want[name] = rep
        # logits mode rewrote the caller's own buffer (no copy was made)
        changed = (row != before).any()
        assert bool(changed), name
    # rounding the row to 16 bits moves H by little
    for name in ("f16", "torch-bf16", "torch-f16"):
        assert abs(want[name].entropy - want["f32"].entropy) < 0.05, name
    assert want["torch-f32"].entropy == want["f32"].entropy


def test_errors_carry_status_and_message():
    p = ig.Processor(10, preset="balanced")
    with pytest.raises(ig.InfogravityError) as e:
        p.step(1, np.zeros(10, np.float32))
    assert e.value.status == 7 and e.value.status_name == "UnknownSequence"
    p.begin(1)
    with pytest.raises(ig.InfogravityError) as e:
        p.begin(1)
    assert e.value.status_name == "DuplicateSequence"
    row = np.zeros(10, np.float32)
    row[3] = np.nan
    with pytest.raises(ig.InfogravityError) as e:
        p.step(1, row)
    assert e.value.status_name == "NanLogits" and "NaN" in e.value.message
    row[3] = np.inf
    with pytest.raises(ig.InfogravityError, match="InfiniteLogits"):
        p.step(1, row)
    with pytest.raises(ig.InfogravityError, match="SizeMismatch"):
        p.step(1, np.zeros(11, np.float32))
    with pytest.raises(ig.InfogravityError, match="C-contiguous"):
        p.step(1, np.zeros(20, np.float32)[::2])
    with pytest.raises(ig.InfogravityError, match="float32, float16 or bfloat16"):
        p.step(1, np.zeros(10, np.float64))
    ro = np.zeros(10, np.float32)
    ro.flags.writeable = False
    with pytest.raises(ig.InfogravityError, match="in place"):
        p.step(1, ro)
    with pytest.raises(ig.InfogravityError, match="mode"):
        p.step(1, np.zeros(10, np.float32), "greedy")
    with pytest.raises(ig.InfogravityError, match="TokenOutOfRange"):
        p.accept(1, 10)
    with pytest.raises(ig.InfogravityError, match="ConfigUnknownKey"):
        ig.Processor(10, {"no_such_key": 1})
    with pytest.raises(ig.InfogravityError, match="ConfigParse"):
        ig.Processor(10, "{not json")
    with pytest.raises(ig.InfogravityError, match="InvalidArgument|SizeMismatch"):
        ig.Processor(0)
    with pytest.raises(ig.InfogravityError, match="TokenOutOfRange"):
        p.begin(2, anchors=[-1])
    # a failed batch writes nothing and moves nothing
    p.begin(2)
    block = np.zeros((2, 10), np.float32)
    block[1, 0] = np.nan
    before = block.copy()
    with pytest.raises(ig.InfogravityError, match="batch row 1"):
        p.step_batch([1, 2], block, "logits")
    assert np.array_equal(before, block, equal_nan=True)
    with pytest.raises(ig.InfogravityError, match="appears twice"):
        p.step_batch([1, 2], np.zeros((3, 10), np.float32), rows=[0, 0])
    with pytest.raises(ig.InfogravityError, match="not in 0..3"):
        p.step_batch([1, 2], np.zeros((3, 10), np.float32), rows=[0, 3])
    with pytest.raises(ig.InfogravityError, match="SizeMismatch"):
        p.step_batch([1, 2], np.zeros((3, 10), np.float32))


def test_fork_and_lifecycle():
    rng = np.random.default_rng(2)
    r = rng.normal(size=50).astype(np.float32)
    p = ig.Processor(50, preset="creative")
    p.begin(1, seed=4, query_tokens=[1, 2, 3])
    t = p.step(1, r.copy()).token
    p.accept(1, t)
    p.fork(1, 2)
    assert p.live == 2
    a, b = p.step(1, r.copy()), p.step(2, r.copy())
    assert a.step == b.step == 1
    p.end(1)
    assert p.live == 1 and p.end_all() == 1 and p.live == 0


def test_rollback_rewinds_and_bans_the_copy_start():
    v = 64
    p = ig.Processor(v, {"temperature": {"base": 0}, "escape": {"rollback": 8, "repeat_penalty": 0}})
    p.begin(1)

    def peak(at):
        row = np.zeros(v, np.float32)
        row[at] = 25.0
        return row

    for t in (10, 11, 12, 13, 10, 11, 12):
        r = p.step(1, peak(t))
        assert r.token == t and r.rollback == 0
        p.accept(1, t)
    r = p.step(1, peak(13))
    assert "rollback" in r.flags and "guard" in r.flags and r.token != 13
    assert r.rollback == 3 and p.rollback_advice(1) == 3
    with pytest.raises(ig.InfogravityError, match="cannot rewind"):
        p.rollback(1, 9)
    p.rollback(1, 3)
    r = p.step(1, peak(10))
    assert r.step == 4 and "banned" in r.flags and r.token != 10


def r_first_entropy(v):
    """H of a row of zeros with 25 at one token, nats."""
    z = np.zeros(v)
    z[0] = 25.0
    p = np.exp(z - z.max())
    p /= p.sum()
    return float(-(p * np.log(p)).sum())


def test_probe_streams_a_linear_read_out_of_the_logits(tmp_path):
    v = 16
    # The answer-level void over the probe alone: σ(−2 + 0.1 · probe mean).
    only_probe = {"bias": -2, "mean_entropy": 0, "mean_potential": 0, "max_potential": 0,
                  "probe": 0.1}
    p = ig.Processor(v, {"temperature": {"base": 0}, "answer": only_probe})
    p.set_probe(np.array([3, 10], np.uint32), np.array([2.0, 0.5], np.float32), bias=1.0)
    p.begin(1)
    assert math.isnan(p.answer(1)["probe_first"])
    seen = []
    for at in (3, 10, 7):
        row = np.zeros(v, np.float32)
        row[at] = 25.0
        r = p.step(1, row)
        seen.append(1.0 + 2.0 * row[3] + 0.5 * row[10])
        assert r.probe == pytest.approx(seen[-1])
        p.accept(1, r.token)
    a = p.answer(1)
    assert a["probe_first"] == pytest.approx(seen[0])
    assert a["probe_mean"] == pytest.approx(sum(seen) / 3)
    assert a["void"] == pytest.approx(1 / (1 + math.exp(2 - 0.1 * sum(seen) / 3)), rel=1e-5)
    assert a["first_entropy"] == pytest.approx(r_first_entropy(v), abs=1e-6)
    with pytest.raises(ig.InfogravityError, match="outside the vocabulary"):
        p.set_probe(np.array([v], np.uint32), np.array([1.0], np.float32))
    with pytest.raises(ig.InfogravityError, match="tokens and weights"):
        p.set_probe(np.array([1], np.uint32))
    # The file form: the same probe, loaded; another vocabulary's is refused.
    f = tmp_path / "probe.json"
    doc = {"format": "infogravity-probe", "version": 1, "vocab": v, "bias": 1.0,
           "tokens": [3, 10], "weights": [2.0, 0.5]}
    f.write_text(json.dumps(doc))
    q = ig.Processor(v, {"temperature": {"base": 0}})
    q.load_probe(str(f))
    q.begin(1)
    row = np.zeros(v, np.float32)
    row[3] = 25.0
    assert q.step(1, row).probe == pytest.approx(51.0)
    f.write_text(json.dumps({**doc, "vocab": v + 1}))
    with pytest.raises(ig.InfogravityError):
        q.load_probe(str(f))
    p.set_probe(None)
    p.begin(2)
    assert math.isnan(p.step(2, row).probe)


def test_answer_aggregates_and_content_table():
    """The streamed answer aggregates equal the ones computed from the step reports; the
    content table moves the first content token past a function token; bad tables raise."""
    v = 6
    rows = [
        np.array([0, 2.0, 0, 0, 0, 0], np.float32),  # argmax 1: a function token
        np.array([0, 0, 0, 0, 3.0, 1.0], np.float32),  # argmax 4: content
    ]

    class Tok:
        pieces = [" the", " of", ".", " Paris", " Asia", " 1989"]

        def __len__(self):
            return len(self.pieces)

        def batch_decode(self, ids):
            return [self.pieces[i[0]] for i in ids]

    table = ig.content_table(Tok())
    assert table.tolist() == [False, False, False, True, True, True]
    p = ig.Processor(v, config={"preset": "neutral", "temperature": {"base": 0}})
    with pytest.raises(ig.InfogravityError) as e:
        p.set_content_tokens(table[:3])
    assert e.value.status_name == "SizeMismatch"
    p.set_content_tokens(table)
    p.begin(1)
    reps = []
    for r in rows:
        rep = p.step(1, r.copy())
        reps.append(rep)
        p.accept(1, rep.token)
    a = p.answer(1)
    assert a["tokens"] == 2
    assert a["mean_entropy"] == pytest.approx(np.mean([x.entropy for x in reps]), rel=1e-5)
    assert a["max_entropy"] == pytest.approx(max(x.entropy for x in reps), rel=1e-5)
    assert a["mean_potential"] == pytest.approx(np.mean([x.token_potential for x in reps]), rel=1e-5)
    fc = a["first_content"]
    assert fc["step"] == 1 and fc["entropy"] == pytest.approx(reps[1].entropy, rel=1e-5)
    p.set_content_tokens(None)
    p.begin(2)
    p.accept(2, p.step(2, rows[0].copy()).token)
    assert p.answer(2)["first_content"]["step"] == 0
    with pytest.raises(ig.InfogravityError):
        p.answer(99)


def test_gil_is_released_while_a_batch_runs():
    # Thread B ticks while thread A runs one long step_batch call. Holding the GIL for the whole
    # call, B could tick only around it (within a switch interval, 5 ms, of its ends), never in
    # the middle half of a call of 40 ms or more; releasing it lets B tick throughout.
    rng = np.random.default_rng(3)
    v = 262144
    block = rng.normal(size=(48, v)).astype(np.float32)
    p = ig.Processor(v, preset="balanced")
    ids = list(range(48))
    for i in ids:
        p.begin(i, seed=i)
    seen = []
    for _ in range(5):
        ticks, stop = [], threading.Event()

        def count():
            while not stop.is_set():
                ticks.append(time.perf_counter())

        t = threading.Thread(target=count)
        t.start()
        time.sleep(0.01)
        start = time.perf_counter()
        p.step_batch(ids, block)
        end = time.perf_counter()
        stop.set()
        t.join()
        d = end - start
        if d < 0.04:
            block = np.concatenate([block, block])  # too fast to tell: a longer call
            ids = list(range(block.shape[0]))
            p = ig.Processor(v, preset="balanced")
            for i in ids:
                p.begin(i, seed=i)
            continue
        seen.append(sum(start + d / 4 < x < end - d / 4 for x in ticks))
        if seen[-1]:
            break
    assert seen and max(seen) > 0, seen


def test_threads_each_with_a_processor_agree():
    rng = np.random.default_rng(3)
    block = rng.normal(size=(8, 20000)).astype(np.float32)
    results = {}

    def run(k):
        p = ig.Processor(20000, preset="balanced")
        ids = list(range(8))
        for i in ids:
            p.begin(i, seed=i)
        toks = []
        for _ in range(20):
            rep = p.step_batch(ids, block.copy())
            toks.append(rep["token"].tolist())
            for i, t in zip(ids, rep["token"]):
                p.accept(i, int(t))
        results[k] = toks

    ts = [threading.Thread(target=run, args=(k,)) for k in range(2)]
    [t.start() for t in ts]
    [t.join() for t in ts]
    assert results[0] == results[1]


def test_buffers_sharing_memory_are_refused():
    torch = pytest.importorskip("torch", reason="torch is in the test venv (scripts/setup-python.sh)")
    t = torch.zeros(4 * 64, dtype=torch.float32)
    p = ig.Processor(64)
    p.begin(1)
    logits = t[:64].view(1, 64).numpy()
    out = t.view(torch.uint8)[: ig.REPORT_DTYPE.itemsize].numpy()  # another tensor over the same bytes
    with pytest.raises(ig.InfogravityError, match="share memory"):
        p._p.step_batch(np.array([1], np.uint64), logits, out, "sample", None, None)
    # and numpy's own borrow tracking: the same array twice
    a = np.zeros((1, 64), np.float32)
    with pytest.raises(ig.InfogravityError):
        p._p.step_batch(np.array([1], np.uint64), a, a.view(np.uint8).reshape(-1)[: ig.REPORT_DTYPE.itemsize], "sample", None, None)
    with pytest.raises(ig.InfogravityError, match="requires grad"):
        p.step(1, torch.zeros(64, requires_grad=True))


def test_config_helpers():
    c = ig.check_config(preset="factual")
    assert "temperature" in c
    p = ig.Processor(10, {"sampler": {"top_k": 3}}, preset="factual")
    assert p.config["sampler"]["top_k"] == 3
    with pytest.raises(ig.InfogravityError):
        ig.check_config({"temperature": {"base": -1}})


# --- the C library, row by row ---------------------------------------------------------------


def c_library():
    path = os.environ.get("INFOGRAVITY_C_LIB")
    if not path:
        pytest.skip("INFOGRAVITY_C_LIB is not set (scripts/check.sh sets it to the installed libinfogravity.so)")
    return ctypes.CDLL(path)


def test_agrees_with_the_c_library_row_by_row():
    lib = c_library()
    rec = ig.REPORT_DTYPE.itemsize
    lib.ig_processor_new.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_void_p)]
    lib.ig_processor_begin.argtypes = [ctypes.c_void_p, ctypes.c_uint64, ctypes.c_void_p, ctypes.c_void_p]
    lib.ig_seq_params_init.argtypes = [ctypes.c_void_p]
    lib.ig_step_report_init.argtypes = [ctypes.c_void_p]
    lib.ig_processor_step.argtypes = [ctypes.c_void_p, ctypes.c_uint64, ctypes.c_void_p, ctypes.c_uint32,
                                      ctypes.c_size_t, ctypes.c_uint32, ctypes.c_void_p]
    lib.ig_processor_accept.argtypes = [ctypes.c_void_p, ctypes.c_uint64, ctypes.c_uint32]
    lib.ig_processor_free.argtypes = [ctypes.c_void_p]
    rng = np.random.default_rng(7)
    v = 1000
    for preset in ig.PRESETS:
        cfg = json.dumps({"preset": preset})
        h = ctypes.c_void_p()
        assert lib.ig_processor_new(cfg.encode(), v, ctypes.byref(h)) == 0
        params = ctypes.create_string_buffer(88)
        lib.ig_seq_params_init(params)
        ctypes.c_uint64.from_buffer(params, 8).value = 11  # seed
        assert lib.ig_processor_begin(h, 1, params, None) == 0
        p = ig.Processor(v, preset=preset)
        p.begin(1, seed=11)
        for step in range(30):
            row = (rng.normal(size=v) * (1 + step % 5)).astype(np.float32)
            if step % 7 == 3:
                row[:5] = row.max() + 4  # a peaked field now and then
            mode = "logits" if step % 2 else "sample"
            mine, theirs = row.copy(), row.copy()
            rep = p.step(1, mine, mode)
            buf = ctypes.create_string_buffer(rec)
            lib.ig_step_report_init(buf)
            assert lib.ig_processor_step(h, 1, theirs.ctypes.data, 0, v, 1 if mode == "logits" else 0, buf) == 0
            c = np.frombuffer(buf.raw, dtype=ig.REPORT_DTYPE)[0]
            assert mine.tobytes() == theirs.tobytes()
            assert c["token"] == (-1 if rep.token is None else rep.token)
            for f in ("entropy", "varentropy", "log_z", "p_max", "temperature", "void_score",
                      "black_hole_score", "token_potential"):
                a, b = getattr(rep, f), c[f]
                assert (np.isnan(a) and np.isnan(b)) or a == b, (preset, step, f, a, b)
            assert c["flags"] == rep.flag_bits and c["regime"] == ig.REGIME_NAMES.index(rep.regime)
            tok = rep.token if rep.token is not None else int(np.argmax(mine))
            p.accept(1, tok)
            assert lib.ig_processor_accept(h, 1, tok) == 0
        lib.ig_processor_free(h)


def test_concept_tilt():
    v = 50
    row = np.zeros(v, dtype=np.float32)
    row[3], row[12] = 1.0, 0.99
    bias = np.zeros(v, dtype=np.float32)
    bias[10:20] = 1.0
    p = ig.Processor(v, config={"temperature": {"base": 0}, "concept": {"lambda": 4, "max_kl": 0.1}})
    p.begin(1)
    p.begin(2)
    assert p.step(1, row.copy()).token == 3
    p.set_concept(bias, seq=1)
    r = p.step(1, row.copy())
    assert r.token == 12 and "concept" in r.flags and 0 < r.concept_kl <= 0.1 + 1e-6
    assert p.step(2, row.copy()).token == 3
    with pytest.raises(ig.InfogravityError) as e:
        p.set_concept(bias[:30])
    assert e.value.status_name == "SizeMismatch"
    with pytest.raises(ig.InfogravityError):
        p.set_concept(np.ones(v, dtype=np.float32))
    with pytest.raises(ig.InfogravityError):
        p.set_concept(bias, seq=99)
    p.set_concept(None, seq=1)
    assert p.step(1, row.copy()).token == 3


def test_concept_type_mass_gate():
    # The type is tokens 10..20: a row already naming it is left alone under max_type_mass.
    v = 50
    bias = np.zeros(v, dtype=np.float32)
    bias[10:20] = 1.0
    named = np.zeros(v, dtype=np.float32)
    named[12] = 8.0
    absent = np.zeros(v, dtype=np.float32)
    absent[3] = 8.0
    cfg = {"temperature": {"base": 1, "response": "none"}, "sampler": {"min_p": 0},
           "concept": {"lambda": 4, "max_type_mass": 0.5}}
    p = ig.Processor(v, config=cfg)
    p.begin(1)
    p.set_concept(bias, tokens=range(10, 20))
    assert "concept" not in p.step(1, named.copy(), mode="logits").flags
    assert "concept" in p.step(1, absent.copy(), mode="logits").flags
    p.set_concept(bias)  # no tokens: the gate has nothing to read
    assert "concept" in p.step(1, named.copy(), mode="logits").flags
    with pytest.raises(ig.InfogravityError) as e:
        p.set_concept(bias, tokens=[v])
    assert e.value.status_name == "TokenOutOfRange"
    with pytest.raises(ig.InfogravityError):
        p.set_concept(None, tokens=[3])


def test_null_query_contrast():
    # Token 3 is the attractor: the query puts it just ahead of token 12, and the content-free
    # query makes it the answer whatever is asked. The contrast reorders by log p − log q.
    v = 50
    row = np.zeros(v, dtype=np.float32)
    row[3], row[12] = 6.0, 5.9
    null = np.zeros(v, dtype=np.float32)
    null[3] = 8.0
    p = ig.Processor(v, config={"temperature": {"base": 0}})
    p.begin(1)
    assert p.step(1, row.copy()).token == 3
    p.set_contrast(1, null)
    r = p.step(1, row.copy())
    assert r.token == 12 and "contrast" in r.flags
    # float16 rows are read through a float32 copy.
    p.set_contrast(1, null.astype(np.float16))
    assert p.step(1, row.copy()).token == 12
    p.accept(1, 12)
    assert "contrast" not in p.step(1, row.copy()).flags
    for bad, name in [(null[:30], "SizeMismatch"), (np.full(v, np.nan, np.float32), "NanLogits")]:
        with pytest.raises(ig.InfogravityError) as e:
            p.set_contrast(1, bad)
        assert e.value.status_name == name
    with pytest.raises(ig.InfogravityError) as e:
        p.set_contrast(99, null)
    assert e.value.status_name == "UnknownSequence"
    # Token ids outside 0..2^32 are TokenOutOfRange, not OverflowError.
    for t in (-1, 2**32):
        with pytest.raises(ig.InfogravityError) as e:
            p.accept(1, t)
        assert e.value.status_name == "TokenOutOfRange"
    with pytest.raises(ig.InfogravityError) as e:
        p.set_concept(np.arange(v, dtype=np.float32), tokens=[-1])
    assert e.value.status_name == "TokenOutOfRange"
