"""Gravity sampling in vLLM: one logits processor class for both of vLLM's model runners.

    vllm serve MODEL --logits-processors infogravity.vllm:GravityLogitsProcessor
    # per request (OpenAI server: "vllm_xargs": {"infogravity": "{\\"preset\\":\\"factual\\"}"})
    SamplingParams(seed=1, extra_args={"infogravity": {"preset": "factual"}})

Installing the package also registers the class under vLLM's ``vllm.logits_processors`` entry
point, which both runners load. It subclasses both interfaces (ENGINES.md §2.1): the V1 runner's
(``update_state(BatchUpdate)`` + ``apply(logits)``) and Model Runner V2's (``add_request`` +
``apply(logits, ctx)``), because each runner refuses a class that lacks its own. Under the V1
runner with async scheduling, also name it in ``--logits-processors``: vLLM 0.33 hands
entry-point-only processors ``-1`` placeholders for output tokens (vllm-project/vllm#52461);
the adapter skips placeholders, but then it sees those tokens late.

Per request (``SamplingParams.extra_args``):

- ``"infogravity"``: the processor configuration, a mapping or JSON text (absent: the request is
  left alone). Requests with the same configuration share one processor.
- ``"infogravity_mode"``: ``"sample"`` (default) — the processor selects the token and the row
  becomes a one-hot forcing it, whatever vLLM's own sampling parameters; or ``"logits"`` — the row
  becomes the final logits z'/T (−inf where truncated) and vLLM samples from it, which needs
  ``temperature=1, top_p=1, top_k=0/-1, min_p=0`` (checked at admission).
- ``"infogravity_anchors"``: anchor token ids (a list of ints, or JSON text).
- The sampling seed is ``SamplingParams.seed`` (0 when unset).

The prompt's tokens are the query (M(Q)). A request resumed after preemption begins again with
its earlier output accepted before its first step, so that output counts as query too.
Abstention: vLLM has no hook to end a request, so an abstaining request is forced to the end of
sequence token when vLLM's config names one (``eos_token_id``), else it runs to its limits.

Failures never stop the engine: a request the processor refuses (an anchor outside the
vocabulary) or a row it cannot step (NaN logits) is left to vLLM's own sampling, with an error in
the ``infogravity.vllm`` log, and the other rows are stepped. With speculative decoding on, the
requests are served without gravity (a warning at start): drafts are accepted from rows the
processor never saw.

Rows on a GPU are copied to the host and back each step; Model Runner V2 also reads the
requests' lengths and newest tokens in two gathers. On the CPU the rows are stepped in place. Untested here: end-to-end serving (vLLM does not run on this machine's CPU);
the tests drive this class with the real vllm package's interface classes (``BatchUpdate``,
``LogitsProcRequestState``, ``LogitsContext``, its loaders) and real tensors.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Optional

import numpy as np
import torch

from vllm.v1.sample.logits_processor.interface import BatchUpdate, MoveDirectionality
from vllm.v1.sample.logits_processor.interface import LogitsProcessor as V1LogitsProcessor
from vllm.v1.worker.gpu.sample.logits_processor.interface import LogitsProcessor as V2LogitsProcessor

from . import REPORT_DTYPE, InfogravityError, Processor, check_config, config_json

__all__ = ["GravityLogitsProcessor", "request_settings"]

KEY = "infogravity"


def request_settings(params: Any) -> Optional[tuple[str, str, list[int], int]]:
    """(config JSON, mode, anchors, seed) of a request, or None when it does not ask for
    gravity sampling. Raises ``ValueError`` with the reason for malformed arguments."""
    extra = getattr(params, "extra_args", None) or {}
    if KEY not in extra:
        return None
    cfg = extra[KEY]
    try:
        text = config_json(cfg)
        check_config(text)
    except (InfogravityError, TypeError, ValueError) as e:
        raise ValueError(f"extra_args[{KEY!r}]: {e}") from None
    text = json.dumps(json.loads(text), sort_keys=True)
    mode = extra.get(f"{KEY}_mode", "sample")
    if mode not in ("sample", "logits"):
        raise ValueError(f'extra_args["{KEY}_mode"] must be "sample" or "logits", not {mode!r}')
    if mode == "logits":
        bad = []
        if params.temperature != 1.0:
            bad.append(f"temperature={params.temperature}")
        if params.top_p != 1.0:
            bad.append(f"top_p={params.top_p}")
        if params.top_k not in (0, -1):
            bad.append(f"top_k={params.top_k}")
        if params.min_p:
            bad.append(f"min_p={params.min_p}")
        # The V1 runner applies its penalties after the custom processors.
        if params.repetition_penalty != 1.0:
            bad.append(f"repetition_penalty={params.repetition_penalty}")
        if params.frequency_penalty or params.presence_penalty:
            bad.append(f"frequency_penalty={params.frequency_penalty}, presence_penalty={params.presence_penalty}")
        if bad:
            raise ValueError(
                f'extra_args["{KEY}_mode"]="logits" hands vLLM the final logits: its own '
                f"sampling must be neutral (temperature=1, top_p=1, top_k=0, min_p=0, no penalties), got "
                + ", ".join(bad)
            )
    anchors = extra.get(f"{KEY}_anchors", [])
    if isinstance(anchors, str):
        try:
            anchors = json.loads(anchors)
        except json.JSONDecodeError as e:
            raise ValueError(f'extra_args["{KEY}_anchors"]: {e}') from None
    if not isinstance(anchors, list) or not all(isinstance(a, int) and a >= 0 for a in anchors):
        raise ValueError(f'extra_args["{KEY}_anchors"] must be a list of token ids')
    seed = params.seed if params.seed is not None else 0
    return text, mode, anchors, int(seed) % 2**64


class _Seq:
    """One request's gravity sequence."""

    __slots__ = ("proc", "seq", "mode", "out", "n_acc", "begun", "settings", "prompt", "forced")

    def __init__(self, proc: Processor, seq: int, mode: str, settings: tuple):
        self.proc, self.seq, self.mode, self.settings = proc, seq, mode, settings
        self.out: Optional[list] = None
        self.prompt: list = []
        self.n_acc = 0
        self.begun = False
        self.forced: Optional[int] = None  # the token this step forced (sample mode)


log = logging.getLogger("infogravity.vllm")


class GravityLogitsProcessor(V1LogitsProcessor, V2LogitsProcessor):
    """The gravity processor for vLLM's V1 runner and Model Runner V2 (one class, both ABCs)."""

    def __init__(self, vllm_config: Any, *args: Any) -> None:
        # V1: (vllm_config, device, is_pin_memory); V2: (vllm_config, req_states).
        if len(args) == 2:
            self._v2, self._req_states = False, None
        elif len(args) == 1:
            self._v2, self._req_states = True, args[0]
        else:
            raise TypeError("GravityLogitsProcessor(vllm_config, device, is_pin_memory) or (vllm_config, req_states)")
        self._procs: dict[str, Processor] = {}
        self._vocab: Optional[int] = None
        self._by_index: dict[int, _Seq] = {}  # V1: batch index -> sequence; V2: slot -> sequence
        self._next = 0
        eos = None
        try:
            eos = vllm_config.model_config.hf_config.eos_token_id
        except AttributeError:
            pass
        self._eos = eos[0] if isinstance(eos, (list, tuple)) and eos else eos
        # Speculative decoding: drafts are accepted from rows the processor never saw, so its
        # state would not be what was emitted. Requests are then served without gravity.
        self._spec = getattr(vllm_config, "speculative_config", None) is not None
        if self._spec:
            log.warning("infogravity: speculative decoding is on; requests asking for gravity "
                        "sampling are served without it")

    # --- shared -----------------------------------------------------------------------------

    @classmethod
    def validate_params(cls, sampling_params: Any) -> None:
        request_settings(sampling_params)

    def is_argmax_invariant(self) -> bool:
        return False  # anchor bias, cycle penalty and forcing move the argmax

    def _new_seq(self, settings: tuple) -> _Seq:
        s = _Seq(None, self._next, settings[1], settings)
        self._next += 1
        return s

    def _processor(self, text: str) -> Processor:
        """The processor of a configuration (one per distinct configuration, made at first
        use, once the vocabulary is known)."""
        p = self._procs.get(text)
        if p is None:
            p = self._procs[text] = Processor(self._vocab, text)
        return p

    def _begin(self, s: _Seq, prompt: Optional[list]) -> bool:
        """Begin `s`; False (and an error in the log) when the processor refuses it, e.g. an
        anchor outside the vocabulary: the request is then served without gravity, as the
        llama.cpp sampler falls back to the host's choice."""
        _, _, anchors, seed = s.settings
        q = np.asarray(prompt if prompt is not None else [], dtype=np.int64)
        try:
            s.proc = self._processor(s.settings[0])
            s.proc.begin(s.seq, seed=seed, anchors=anchors, query_tokens=q, context=q)
        except InfogravityError as e:
            log.error("infogravity: request left to vLLM's own sampling: %s", e)
            return False
        s.begun = True
        return True

    def _end(self, s: Optional[_Seq]) -> None:
        if s is not None and s.begun:
            s.proc.end(s.seq)
            # Processors are per configuration; one left idle is dropped once there are many,
            # so that clients sending ever new configurations cannot grow memory without end.
            if s.proc.live == 0 and len(self._procs) > 16:
                self._procs = {k: p for k, p in self._procs.items() if p is not s.proc}

    def _step(self, logits: torch.Tensor, picks: list[tuple[int, _Seq]]) -> torch.Tensor:
        """Step the rows `picks` = [(row, seq)] of `logits` [N, V] float32, in place."""
        if not picks:
            return logits
        on_host = logits.device.type == "cpu" and logits.dtype == torch.float32 and logits.is_contiguous()
        if on_host:
            host, where = logits, [r for r, _ in picks]
        else:
            idx = torch.tensor([r for r, _ in picks], device=logits.device)
            host = logits.index_select(0, idx).to("cpu", torch.float32).contiguous()
            where = list(range(len(picks)))
        groups: dict[tuple[int, str], list[int]] = {}
        for k, (_, s) in enumerate(picks):
            groups.setdefault((id(s.proc), s.mode), []).append(k)
        for (_, mode), ks in groups.items():
            proc = picks[ks[0]][1].proc
            try:
                reps = proc.step_batch([picks[k][1].seq for k in ks], host, mode, rows=[where[k] for k in ks])
                done = list(zip(ks, reps))
            except InfogravityError:
                # A batch is atomic: step the rows one by one, so that one bad row (NaN logits)
                # leaves only its own request to vLLM's sampling.
                done = []
                for k in ks:
                    s = picks[k][1]
                    try:
                        out = np.empty(1, REPORT_DTYPE)
                        proc.step_batch([s.seq], host, mode, rows=[where[k]], out=out)
                        done.append((k, out[0]))
                    except InfogravityError as e:
                        s.forced = None
                        log.error("infogravity: row left to vLLM's own sampling: %s", e)
            for k, rep in done:
                tok = int(rep["token"])
                if tok < 0 and rep["stop"] and self._eos is not None:
                    tok = self._eos
                picks[k][1].forced = tok if tok >= 0 else None
                if tok >= 0:
                    row = host[where[k]]
                    row.fill_(float("-inf"))
                    row[tok] = 0.0
        if not on_host:
            logits.index_copy_(0, idx, host.to(logits.device, logits.dtype))
        return logits

    def _ensure_vocab(self, logits: torch.Tensor) -> None:
        if self._vocab is None:
            self._vocab = int(logits.shape[-1])

    # --- V1 runner --------------------------------------------------------------------------

    def update_state(self, batch_update: Optional[BatchUpdate]) -> None:
        if batch_update is not None:
            # vLLM's order: removed, added, moved.
            for i in batch_update.removed:
                self._end(self._by_index.pop(i, None))
            for i, params, prompt, out in batch_update.added:
                self._end(self._by_index.pop(i, None))
                settings = request_settings(params)
                if settings is None:
                    continue
                s = self._new_seq(settings)
                s.prompt = list(prompt) if prompt is not None else []
                s.out = out  # vLLM's running output list, read as it grows
                if self._spec or (self._vocab is not None and not self._begin(s, s.prompt)):
                    continue
                self._by_index[i] = s
            for a, b, direction in batch_update.moved:
                sa, sb = self._by_index.pop(a, None), self._by_index.pop(b, None)
                if sa is not None:
                    self._by_index[b] = sa
                if sb is not None:
                    if direction == MoveDirectionality.SWAP:
                        self._by_index[a] = sb
                    else:
                        self._end(sb)  # a one-way move overwrites b
        self._catch_up_v1()

    def _catch_up_v1(self) -> None:
        for s in self._by_index.values():
            if not s.begun:
                continue
            out = s.out or []
            while s.n_acc < len(out):
                tok = out[s.n_acc]
                if tok < 0:
                    # An async-scheduling placeholder. vLLM repairs it only for processors named
                    # in --logits-processors (vllm-project/vllm#52461); in sample mode the token
                    # is known anyway: the one this sequence forced.
                    if s.forced is None:
                        break
                    tok = s.forced
                s.forced = None
                s.proc.accept(s.seq, tok)
                s.n_acc += 1

    def _apply_v1(self, logits: torch.Tensor) -> torch.Tensor:
        self._ensure_vocab(logits)
        for i, s in list(self._by_index.items()):
            if not s.begun and not self._begin(s, s.prompt):
                del self._by_index[i]
        self._catch_up_v1()
        picks = sorted((i, s) for i, s in self._by_index.items() if i < logits.shape[0])
        return self._step(logits, picks)

    # --- Model Runner V2 --------------------------------------------------------------------

    def add_request(self, req_idx: int, sampling_params: Any) -> bool:
        self._end(self._by_index.pop(req_idx, None))
        settings = request_settings(sampling_params)
        if settings is None or self._spec:
            return False
        self._by_index[req_idx] = self._new_seq(settings)
        return True

    def apply_staged_writes(self) -> None:
        pass  # nothing staged: the adapter reads req_states on the host at apply

    def _apply_v2(self, logits: torch.Tensor, ctx: Any) -> torch.Tensor:
        self._ensure_vocab(logits)
        if not self._by_index:
            return logits
        rs = self._req_states
        # One row per request (no speculative decoding): the host copy of the mapping says which
        # slot each row holds, without a device sync.
        slots = [int(x) for x in ctx.idx_mapping_np]
        if len(slots) != logits.shape[0]:
            raise RuntimeError("infogravity: more logits rows than requests (speculative decoding?)")
        rows = [(r, slot) for r, slot in enumerate(slots) if slot in self._by_index]
        if not rows:
            return logits
        prompt_len = rs.prompt_len.np
        mine = torch.tensor([slot for _, slot in rows], dtype=torch.long, device=rs.total_len.gpu.device)
        total = rs.total_len.gpu.index_select(0, mine).tolist()  # one device read for all rows
        tokens = rs.all_token_ids.gpu
        picks, last = [], []
        for (row, slot), tot in zip(rows, total):
            s = self._by_index[slot]
            p = int(prompt_len[slot])
            if not s.begun:
                if not self._begin(s, tokens[slot, :p].tolist()):
                    del self._by_index[slot]
                    continue
            new = tot - p - s.n_acc
            if new == 1:
                last.append((s, slot, tot - 1))
            elif new > 1:  # first step after a resumption: the earlier output, as query
                for tok in tokens[slot, p + s.n_acc:tot].tolist():
                    s.proc.accept(s.seq, tok)
                s.n_acc = tot - p
            picks.append((row, s))
        if last:  # the usual case: one new token per request, read in one gather
            idx = torch.tensor([[slot, pos] for _, slot, pos in last], dtype=torch.long, device=tokens.device)
            for (s, _, _), tok in zip(last, tokens[idx[:, 0], idx[:, 1]].tolist()):
                s.proc.accept(s.seq, tok)
                s.n_acc += 1
        return self._step(logits, picks)

    def apply(self, logits: torch.Tensor, ctx: Any = None) -> torch.Tensor:
        if self._v2:
            if ctx is None:
                raise TypeError("Model Runner V2 calls apply(logits, ctx)")
            return self._apply_v2(logits, ctx)
        return self._apply_v1(logits)
