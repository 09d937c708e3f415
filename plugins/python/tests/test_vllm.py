"""The vLLM adapter against the real vllm 0.33.0 package: its loaders, its interface classes
(BatchUpdate, MoveDirectionality, LogitsProcRequestState, LogitsContext) and SamplingParams,
driven with realistic add / remove / move / swap / slot-reuse / preemption sequences and torch
tensors. vLLM itself cannot serve on this CPU machine; nothing here runs a model in vLLM."""

import importlib.metadata

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch is in the test venv (scripts/setup-python.sh)")
vllm = pytest.importorskip("vllm", reason="vllm is in the test venv (scripts/setup-python.sh)")

from vllm import SamplingParams  # noqa: E402
from vllm.v1.sample import logits_processor as v1lp  # noqa: E402
from vllm.v1.sample.logits_processor.interface import BatchUpdate, MoveDirectionality  # noqa: E402
from vllm.v1.worker.gpu.sample.logits_processor import interface as v2i  # noqa: E402
from vllm.v1.worker.gpu.sample.logits_processor import loader as v2loader  # noqa: E402

import infogravity as ig  # noqa: E402
from infogravity.vllm import GravityLogitsProcessor  # noqa: E402

FQCN = "infogravity.vllm:GravityLogitsProcessor"
V = 96


class FakeConfig:
    """What the adapter reads of VllmConfig (the model's eos id)."""

    class model_config:
        class hf_config:
            eos_token_id = 2


def logits_for(req, step, n=V):
    """Each request's logits at each of its steps: the same whatever batch row it sits in."""
    rng = np.random.default_rng(1000 * req + step)
    z = rng.normal(size=n).astype(np.float32) * 2
    z[rng.integers(0, n)] += 3
    return z


def reference(cfg, seed, prompt, rows, tokens_before=()):
    """One request alone through the Python API: its tokens for `rows`."""
    p = ig.Processor(V, cfg)
    p.begin(0, seed=seed, query_tokens=np.asarray(prompt), context=np.asarray(prompt))
    for t in tokens_before:
        p.accept(0, t)
    out = []
    for z in rows:
        r = p.step(0, z.copy())
        out.append(r.token)
        p.accept(0, r.token)
    return out


def test_both_loaders_and_the_entry_point_accept_the_class():
    assert v1lp._load_custom_logitsprocs([FQCN]) [-1] is GravityLogitsProcessor
    assert v2loader._load_v2_logitsprocs([FQCN])[-1] is GravityLogitsProcessor
    eps = [e for e in importlib.metadata.entry_points(group="vllm.logits_processors")
           if e.value == FQCN]
    assert eps, "the package registers the vllm.logits_processors entry point"
    # the runners' own plugin loaders: each raises for a class without its interface
    assert GravityLogitsProcessor in v1lp._load_logitsprocs_plugins()
    assert GravityLogitsProcessor in v2loader._load_v2_logitsprocs_plugins()


def test_admission_validates_per_request_arguments():
    validate = v2loader.build_custom_logits_processors_params_validator([FQCN])
    validate(SamplingParams(extra_args={"infogravity": {"preset": "factual"}}))
    validate(SamplingParams())  # not asking for it
    bad = [
        SamplingParams(extra_args={"infogravity": {"preset": "nope"}}),
        SamplingParams(extra_args={"infogravity": "{not json"}),
        SamplingParams(extra_args={"infogravity": {}, "infogravity_mode": "greedy"}),
        SamplingParams(temperature=0.7, extra_args={"infogravity": {}, "infogravity_mode": "logits"}),
        SamplingParams(extra_args={"infogravity": {}, "infogravity_anchors": [-3]}),
        # the V1 runner applies penalties after the processors: not with final logits
        SamplingParams(repetition_penalty=1.2, extra_args={"infogravity": {}, "infogravity_mode": "logits"}),
    ]
    for params in bad:
        with pytest.raises(vllm.exceptions.VLLMValidationError):
            validate(params)


def run_v1(script, steps):
    """Drive the V1 interface like InputBatch + Sampler: `script[step]` is a BatchUpdate
    builder (or None) applied before that step; every step applies the processor to the batch's
    logits and appends the argmax (vLLM's greedy) to each request's output list."""
    proc = GravityLogitsProcessor(FakeConfig, torch.device("cpu"), False)
    batch = {}  # index -> request record
    history = {}
    for step in range(steps):
        upd = script.get(step)
        if upd is not None:
            bu = upd(batch)
            proc.update_state(bu)
        else:
            proc.update_state(None)
        n = max(batch) + 1 if batch else 0
        logits = torch.zeros((n, V), dtype=torch.float32)
        for i, r in batch.items():
            logits[i] = torch.from_numpy(logits_for(r["id"], len(r["out"])))
        before = logits.clone()
        out = proc.apply(logits)
        assert out is logits  # in place on the CPU
        for i, r in batch.items():
            if "infogravity" not in (r["params"].extra_args or {}):
                assert torch.equal(out[i], before[i]), "a request without gravity is untouched"
            tok = int(torch.argmax(out[i]))
            history.setdefault(r["id"], []).append(logits_for(r["id"], len(r["out"])))
            r["out"].append(tok)
    return proc, batch, history


def req(rid, cfg=None, seed=None, prompt=(5, 6, 7)):
    extra = None if cfg is None else {"infogravity": cfg}
    return {"id": rid, "params": SamplingParams(seed=seed, extra_args=extra), "prompt": list(prompt), "out": []}


def test_v1_adds_removes_moves_and_swaps_like_the_per_request_reference():
    reqs = {
        1: req(1, {"preset": "creative"}, seed=11, prompt=(1, 2, 3)),
        2: req(2, None),
        3: req(3, {"preset": "factual"}, seed=33),
        4: req(4, {"preset": "creative"}, seed=44, prompt=(9, 9)),
    }
    done = {}

    def add(pairs):
        def f(batch):
            added = []
            for i, rid in pairs:
                batch[i] = reqs[rid]
                added.append((i, reqs[rid]["params"], reqs[rid]["prompt"], reqs[rid]["out"]))
            return BatchUpdate(batch_size=len(batch), removed=[], added=added, moved=[])
        return f

    def remove_then_move(batch):
        done[3] = batch.pop(1)  # request 3 finishes
        batch[1] = batch.pop(2)  # condense: 2 -> 1
        return BatchUpdate(batch_size=len(batch), removed=[1], added=[],
                           moved=[(2, 1, MoveDirectionality.UNIDIRECTIONAL)])

    def swap_and_add(batch):
        # added first, then moved (vLLM's order): request 4 enters at 2 and swaps with 0
        batch[2] = reqs[4]
        batch[0], batch[2] = batch[2], batch[0]
        return BatchUpdate(batch_size=3, removed=[], added=[(2, reqs[4]["params"], reqs[4]["prompt"], reqs[4]["out"])],
                           moved=[(0, 2, MoveDirectionality.SWAP)])

    script = {0: add([(0, 1), (1, 3), (2, 2)]), 4: remove_then_move, 7: swap_and_add}
    proc, batch, history = run_v1(script, 12)
    for rid in (1, 3, 4):
        r = reqs[rid]
        want = reference(r["params"].extra_args["infogravity"], r["params"].seed or 0, r["prompt"], history[rid])
        assert r["out"] == want, rid
    assert {s.seq for s in proc._by_index.values()}  # live ones tracked
    # request 3 ended with its removal; 1 and 4 are live (request 2 never was)
    live = sum(p.live for p in proc._procs.values())
    assert live == 2


def test_v1_skips_async_placeholders_and_replays_a_preempted_request():
    proc = GravityLogitsProcessor(FakeConfig, torch.device("cpu"), False)
    # logits mode: vLLM chooses, so a placeholder is a token the adapter cannot know yet
    params = SamplingParams(seed=5, extra_args={"infogravity": {"preset": "balanced"}, "infogravity_mode": "logits"})
    out = []
    proc.update_state(BatchUpdate(1, [], [(0, params, [4, 5], out)], []))
    logits = torch.from_numpy(np.stack([logits_for(9, 0)]))
    proc.apply(logits)
    s = proc._by_index[0]
    out.append(-1)  # async scheduling: the token is not known yet
    proc.update_state(None)
    assert s.n_acc == 0
    out[-1] = int(torch.argmax(logits[0]))
    proc.update_state(None)
    assert s.n_acc == 1
    # preempted and re-added with its output so far: a new sequence that accepts it first
    proc.update_state(BatchUpdate(0, [0], [], []))
    assert sum(p.live for p in proc._procs.values()) == 0  # removal ends the sequence
    proc.update_state(BatchUpdate(1, [], [(0, params, [4, 5], out)], []))
    proc.apply(torch.from_numpy(np.stack([logits_for(9, 1)])))
    assert proc._by_index[0].n_acc == 1 and proc._by_index[0].seq != s.seq


class Host:
    """A CPU stand-in for vLLM's UvaBackedTensor / StagedWriteTensor (they need pinned memory
    and an accelerator): the two attributes the adapter reads, `.np` and `.gpu`."""

    def __init__(self, t):
        self.gpu, self.np = t, t.numpy()


def test_v2_slots_reordered_rows_and_reuse_like_the_reference():
    max_reqs, max_len = 4, 64
    tokens = torch.zeros((max_reqs, max_len), dtype=torch.int32)
    prompt_len = torch.zeros(max_reqs, dtype=torch.int32)
    total_len = torch.zeros(max_reqs, dtype=torch.int32)
    state = v2i.LogitsProcRequestState(
        device=torch.device("cpu"), max_num_reqs=max_reqs, vocab_size=V,
        all_token_ids=Host(tokens), prompt_len=Host(prompt_len), prefill_len=Host(prompt_len.clone()),
        total_len=Host(total_len))
    proc = GravityLogitsProcessor(FakeConfig, state)
    reqs = {}

    def admit(slot, rid, cfg, seed, prompt):
        params = SamplingParams(seed=seed, extra_args=None if cfg is None else {"infogravity": cfg})
        used = proc.add_request(slot, params)
        assert used == (cfg is not None)
        tokens[slot, :len(prompt)] = torch.tensor(prompt)
        prompt_len[slot] = total_len[slot] = len(prompt)
        reqs[slot] = {"id": rid, "cfg": cfg, "seed": seed, "prompt": list(prompt), "out": [], "rows": []}

    admit(0, 1, {"preset": "creative"}, 1, (3, 4))
    admit(2, 2, None, 0, (8,))
    admit(3, 3, {"preset": "factual"}, 3, (7, 7, 7))
    finished = []
    rng = np.random.default_rng(0)
    for step in range(10):
        if step == 5:  # slot 0 finishes; a new request takes the slot over
            finished.append(reqs.pop(0))
            admit(0, 4, {"preset": "creative"}, 4, (1,))
        proc.apply_staged_writes()
        slots = list(reqs)
        rng.shuffle(slots)  # rows are reordered every step
        rows, local = slots, [0] * len(slots)
        logits = torch.zeros((len(rows), V))
        for k, slot in enumerate(rows):
            r = reqs[slot]
            logits[k] = torch.from_numpy(logits_for(r["id"], len(r["out"])))
        before = logits.clone()
        ctx = v2i.LogitsContext(
            expanded_idx_mapping=torch.tensor(rows), idx_mapping=torch.tensor(slots),
            idx_mapping_np=np.array(slots), expanded_local_pos=torch.tensor(local),
            input_ids=torch.zeros(len(rows), dtype=torch.int64), pos=torch.zeros(len(rows), dtype=torch.int64),
            seq_lens_upper_bound_np=np.zeros(len(slots)))
        out = proc.apply(logits, ctx)
        for k, slot in enumerate(slots):
            r = reqs[slot]
            if r["cfg"] is None:
                assert torch.equal(out[k], before[k])
            tok = int(torch.argmax(out[k]))
            r["rows"].append(logits_for(r["id"], len(r["out"])))
            r["out"].append(tok)
            tokens[slot, total_len[slot]] = tok  # the runner commits the sampled token
            total_len[slot] += 1
    for r in finished + list(reqs.values()):
        if r["cfg"] is not None:
            assert r["out"] == reference(r["cfg"], r["seed"], r["prompt"], r["rows"]), r["id"]


def test_logits_mode_hands_vllm_the_final_logits():
    proc = GravityLogitsProcessor(FakeConfig, torch.device("cpu"), False)
    params = SamplingParams(seed=2, extra_args={"infogravity": {"preset": "factual"}, "infogravity_mode": "logits"})
    proc.update_state(BatchUpdate(1, [], [(0, params, [1], [])], []))
    z = logits_for(1, 0)
    logits = torch.from_numpy(z[None, :].copy())
    proc.apply(logits)
    ref = ig.Processor(V, {"preset": "factual"})
    ref.begin(0, seed=2, query_tokens=[1])
    want = z.copy()
    ref.step(0, want, "logits")
    assert np.array_equal(logits[0].numpy(), want)


def test_a_bad_row_or_request_leaves_the_others_stepped_and_the_engine_running(caplog):
    proc = GravityLogitsProcessor(FakeConfig, torch.device("cpu"), False)
    ok = SamplingParams(seed=1, extra_args={"infogravity": {"preset": "creative"}})
    bad_anchor = SamplingParams(seed=2, extra_args={"infogravity": {}, "infogravity_anchors": [V + 5]})
    outs = [[], [], []]
    proc.update_state(BatchUpdate(3, [], [(0, ok, [1], outs[0]), (1, ok, [2], outs[1]),
                                          (2, bad_anchor, [3], outs[2])], []))
    z = np.stack([logits_for(1, 0), logits_for(2, 0), logits_for(3, 0)])
    z[1, 5] = np.nan
    logits = torch.from_numpy(z.copy())
    proc.apply(logits)  # no exception
    assert 2 not in proc._by_index  # refused at begin: left to vLLM
    assert np.array_equal(logits[1].numpy(), z[1], equal_nan=True)  # the NaN row untouched
    assert np.array_equal(logits[2].numpy(), z[2])
    want = reference({"preset": "creative"}, 1, [1], [logits_for(1, 0)])[0]
    assert int(torch.argmax(logits[0])) == want and torch.isinf(logits[0]).sum() == V - 1
    assert "out of range" in caplog.text and "NaN" in caplog.text


def test_v1_placeholders_never_repaired_are_the_forced_tokens():
    # Entry-point-only processors under async scheduling see -1 forever (vllm#52461): in
    # sample mode the adapter accepts the token it forced, so the sequence still advances.
    proc = GravityLogitsProcessor(FakeConfig, torch.device("cpu"), False)
    params = SamplingParams(seed=4, extra_args={"infogravity": {"preset": "creative"}})
    out, rows = [], []
    proc.update_state(BatchUpdate(1, [], [(0, params, [4, 5], out)], []))
    for step in range(6):
        proc.update_state(None)
        z = logits_for(8, step)
        rows.append(z)
        logits = torch.from_numpy(z[None, :].copy())
        proc.apply(logits)
        out.append(-1)
        got = int(torch.argmax(logits[0]))
        rows[-1] = (z, got)
    s = proc._by_index[0]
    proc.update_state(None)
    assert s.n_acc == 6
    want = reference({"preset": "creative"}, 4, [4, 5], [z for z, _ in rows])
    assert [t for _, t in rows] == want


def test_speculative_decoding_serves_requests_without_gravity(caplog):
    class Spec(FakeConfig):
        speculative_config = object()

    proc = GravityLogitsProcessor(Spec, torch.device("cpu"), False)
    assert "speculative decoding" in caplog.text
    params = SamplingParams(extra_args={"infogravity": {}})
    proc.update_state(BatchUpdate(1, [], [(0, params, [1], [])], []))
    z = torch.from_numpy(logits_for(1, 0)[None, :].copy())
    before = z.clone()
    proc.apply(z)
    assert torch.equal(z, before)
