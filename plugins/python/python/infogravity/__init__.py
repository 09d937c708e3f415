"""Gravity-aware sampling for LLM inference (docs/DESIGN.md of the infogravity repository).

Per decoding step the processor measures the next-token field of each row (entropy,
varentropy, p_max, the potential -log p), sets the temperature from the query's information
mass and the live field, classifies the regime (orbit / void / black hole), applies the
anchoring interventions, and either selects a token (``mode="sample"``) or rewrites the row to
the final logits for the host to select from (``mode="logits"``). Every step returns its
diagnostics.

    import numpy as np, infogravity as ig
    p = ig.Processor(vocab=32000, preset="factual")
    p.begin(7, seed=42, query_tokens=prompt_ids)
    r = p.step(7, logits_row)          # numpy f32/f16/bf16 or a CPU torch tensor, in place
    p.accept(7, r.token)

Engine adapters: ``infogravity.transformers``, ``infogravity.vllm``, ``infogravity.llama_cpp``.
"""

from __future__ import annotations

import json
import os
from typing import Any, Iterable, Mapping, Optional, Sequence, Union

import numpy as np

from . import _native
from ._native import StepReport

__all__ = [
    "InfogravityError",
    "Processor",
    "StepReport",
    "REPORT_DTYPE",
    "PRESETS",
    "VERSION",
    "config_json",
    "check_config",
    "as_logits",
    "content_table",
]

VERSION: str = _native.VERSION
PRESETS: tuple = tuple(_native.PRESETS)


class InfogravityError(Exception):
    """A processor call failed. ``status`` is the C ABI's status code (``ig_status_str``),
    ``status_name`` its name (e.g. ``"NanLogits"``), ``message`` what went wrong."""

    def __init__(self, message: str, status: int, status_name: str):
        super().__init__(message, status, status_name)
        self.message = message
        self.status = status
        self.status_name = status_name

    def __str__(self) -> str:
        return f"{self.message} ({self.status_name})"


def _report_dtype() -> np.dtype:
    fields, itemsize = _native.report_fields()
    return np.dtype(
        {
            "names": [f[0] for f in fields],
            "formats": [f[1] for f in fields],
            "offsets": [f[2] for f in fields],
            "itemsize": itemsize,
        }
    )


#: One record per row of ``Processor.step_batch``: the C ABI's ``IgStepReport`` (version 1)
#: field for field. ``token`` is -1 when none was selected; ``regime`` 0 orbit, 1 void,
#: 2 black hole; ``flags`` the bits of ``FLAG_NAMES``; ``stop`` nonzero when the sequence
#: abstains; ``task_mass`` NaN without a task space.
REPORT_DTYPE: np.dtype = _report_dtype()

#: (bit, name) of the intervention flags.
FLAG_NAMES: tuple = tuple(_native.FLAG_NAMES)

REGIME_NAMES = ("orbit", "void", "black-hole")


def config_json(config: Union[None, str, Mapping[str, Any]] = None, preset: Optional[str] = None) -> str:
    """A configuration as JSON text: ``config`` as a JSON string or a mapping, or just a preset
    name (``preset="factual"``). Both given: the preset is the base the mapping overrides."""
    if config is None:
        cfg: dict = {}
    elif isinstance(config, str):
        if preset is None:
            return config  # parsed (and its errors reported) by the processor itself
        try:
            cfg = json.loads(config)
        except json.JSONDecodeError as e:
            raise InfogravityError(f"config: {e}", 10, "ConfigParse") from None
        if not isinstance(cfg, dict):
            raise InfogravityError("config: expected a JSON object", 10, "ConfigParse")
    elif isinstance(config, Mapping):
        cfg = dict(config)
    else:
        raise TypeError(f"config must be None, a JSON string or a mapping, not {type(config).__name__}")
    if preset is not None:
        cfg = {"preset": preset, **cfg}
    return json.dumps(cfg)


def check_config(config: Union[None, str, Mapping[str, Any]] = None, preset: Optional[str] = None) -> dict:
    """Validate a configuration without a processor; returns the resolved configuration."""
    return json.loads(_native.check_config(config_json(config, preset)))


def _token(x: Any, what: str) -> int:
    """A token id as the native layer takes it (a 32-bit unsigned id): one outside that range
    is TokenOutOfRange here, where the conversion would raise OverflowError."""
    t = int(x)
    if not 0 <= t <= 0xFFFFFFFF:
        raise InfogravityError(f"token out of range: {what} {t}", 14, "TokenOutOfRange")
    return t


def as_logits(x: Any) -> tuple[np.ndarray, Optional[str]]:
    """A zero-copy numpy view of logits for the processor, and its dtype tag.

    Accepts numpy float32/float16 arrays, bfloat16 arrays (ml_dtypes) and CPU torch tensors of
    float32/float16/bfloat16. Never copies: a non-contiguous or GPU input is an error (the
    processor writes the row in place in logits mode, and a copy would lose that).
    """
    if isinstance(x, np.ndarray):
        if x.dtype.name == "bfloat16":
            return x.view(np.uint16), "bf16"
        return x, None
    mod = type(x).__module__
    if mod.startswith("torch"):
        import torch

        if x.device.type != "cpu":
            raise InfogravityError(
                f"logits on {x.device}: the processor runs on the CPU; copy the rows with .cpu() "
                "and write them back (the adapters do)",
                2,
                "InvalidArgument",
            )
        if not x.is_contiguous():
            raise InfogravityError(
                "logits tensor must be contiguous (it is used in place)", 2, "InvalidArgument"
            )
        if x.requires_grad:
            raise InfogravityError(
                "logits tensor requires grad: step under torch.no_grad(), or pass x.detach()",
                2,
                "InvalidArgument",
            )
        # x.numpy() (not x.detach().numpy()): the array's base is the caller's tensor itself,
        # so numpy's borrow tracking sees two uses of one tensor in the same call.
        if x.dtype == torch.bfloat16:
            return x.view(torch.int16).numpy().view(np.uint16), "bf16"
        return x.numpy(), None
    raise TypeError(f"logits must be a numpy array or a CPU torch tensor, not {type(x).__name__}")


def _ids(x: Optional[Iterable[int]], what: str) -> Optional[np.ndarray]:
    if x is None:
        return None
    a = np.asarray(x)
    if a.size == 0:
        return np.zeros(0, dtype=np.uint32)
    if not np.issubdtype(a.dtype, np.integer):
        raise InfogravityError(f"{what} must be integer token ids", 2, "InvalidArgument")
    if a.ndim != 1:
        raise InfogravityError(f"{what} must be 1-D", 2, "InvalidArgument")
    if a.min() < 0 or a.max() > 0xFFFFFFFF:
        raise InfogravityError(f"{what}: token ids must be in 0..2^32", 14, "TokenOutOfRange")
    return np.ascontiguousarray(a, dtype=np.uint32)


class Processor:
    """The gravity processor over one vocabulary (the Rust ``GravityProcessor``).

    One processor serves many sequences, each with its own state (``begin`` … ``end``). Calls
    release the GIL while they run; one processor is used by one thread at a time (a call made
    while another runs raises ``RuntimeError``). The buffers a call is given must not be written
    by another thread while it runs (as with any extension that releases the GIL).
    """

    def __init__(
        self,
        vocab: int,
        config: Union[None, str, Mapping[str, Any]] = None,
        *,
        preset: Optional[str] = None,
    ):
        self._p = _native.Processor(int(vocab), config_json(config, preset))

    @property
    def vocab(self) -> int:
        return self._p.vocab

    @property
    def live(self) -> int:
        """Live sequences."""
        return self._p.live

    @property
    def config(self) -> dict:
        """The effective configuration (every key, the preset resolved)."""
        return json.loads(self._p.config_json())

    def begin(
        self,
        seq: int,
        *,
        seed: int = 0,
        anchors: Optional[Iterable[int]] = None,
        query_tokens: Optional[Iterable[int]] = None,
        context: Optional[Iterable[int]] = None,
        context_gain: Optional[float] = None,
        prompt_logits: Any = None,
        prompt_entropies: Any = None,
    ) -> dict:
        """Begin sequence ``seq``. ``query_tokens``: the prompt's ids (N(Q)); ``context``: the
        tokens before the first step, for host processors that look back (DRY);
        ``context_gain``: D(Q) in nats; ``prompt_logits`` ([P, V] float32) or
        ``prompt_entropies`` (P floats, nats): H(Q). Returns M(Q) and its components."""
        pl = None
        if prompt_logits is not None:
            pl, tag = as_logits(prompt_logits)
            pl = np.ascontiguousarray(pl, dtype=np.float32) if tag is None else None
            if pl is None:
                raise InfogravityError("prompt_logits must be float32 or float16", 2, "InvalidArgument")
        pe = None if prompt_entropies is None else np.ascontiguousarray(prompt_entropies, dtype=np.float32)
        return self._p.begin(
            int(seq),
            int(seed),
            _ids(anchors, "anchors"),
            _ids(query_tokens, "query_tokens"),
            _ids(context, "context"),
            None if context_gain is None else float(context_gain),
            pl,
            pe,
        )

    def step(self, seq: int, row: Any, mode: str = "sample") -> StepReport:
        """One step of ``seq`` on ``row`` (V logits, used in place: ``mode="logits"`` rewrites
        it to the final logits). Returns the step's ``StepReport``."""
        a, tag = as_logits(row)
        return self._p.step(int(seq), a, mode, tag)

    def step_batch(
        self,
        seqs: Sequence[int],
        logits: Any,
        mode: str = "sample",
        *,
        rows: Optional[Sequence[int]] = None,
        out: Optional[np.ndarray] = None,
    ) -> np.ndarray:
        """One step on a batch: ``logits`` [N, V] (used in place), row ``rows[b]`` (default b)
        for ``seqs[b]``. Atomic: on an error no row is written and no sequence moves. Returns
        the reports as a ``REPORT_DTYPE`` array (``out`` if given: B records)."""
        s = np.ascontiguousarray(np.asarray(seqs, dtype=np.uint64))
        a, tag = as_logits(logits)
        b = s.shape[0]
        if out is None:
            out = np.empty(b, dtype=REPORT_DTYPE)
        elif out.dtype != REPORT_DTYPE or out.shape != (b,):
            raise InfogravityError(
                f"out must be a ({b},) array of REPORT_DTYPE", 6, "SizeMismatch"
            )
        r = None if rows is None else np.ascontiguousarray(np.asarray(rows, dtype=np.int64))
        self._p.step_batch(s, a, out.view(np.uint8).reshape(-1), mode, r, tag)
        return out

    def accept(self, seq: int, token: int) -> None:
        """The token ``seq`` emitted (after each step, whichever mode)."""
        self._p.accept(int(seq), _token(token, "accepted token"))

    def rollback(self, seq: int, n: int) -> None:
        """Rewind ``seq`` by its last ``n`` accepted tokens, after the host truncated its KV
        cache (``escape.rollback``: a report whose ``rollback`` is n advises it, instead of
        accepting that step's token; ``step_batch`` records carry the flag only, and
        ``rollback_advice(seq)`` the count). At most ``escape.rollback`` tokens."""
        self._p.rollback(int(seq), int(n))

    def rollback_advice(self, seq: int) -> int:
        """The rewind the last step of ``seq`` advised (0: none)."""
        return self._p.rollback_advice(int(seq))

    def end(self, seq: int) -> None:
        """End ``seq`` and free its state."""
        self._p.end(int(seq))

    def end_all(self) -> int:
        """End every live sequence; returns how many."""
        return self._p.end_all()

    def fork(self, src: int, dst: int) -> None:
        """``dst`` begins as a copy of ``src`` (beams, parallel samples)."""
        self._p.fork(int(src), int(dst))

    def reset(self, seq: int) -> None:
        """Forget what ``seq`` generated; it stays live with its query."""
        self._p.reset(int(seq))

    def mass(self, seq: int) -> dict:
        """M(Q) and its components for a live sequence."""
        return self._p.mass(int(seq))

    def answer(self, seq: int) -> dict:
        """The answer-level aggregates of a live sequence over its accepted tokens (read them
        before ``end``): ``tokens``, ``mean_entropy``, ``max_entropy``,
        ``mean_sqrt_varentropy``, ``sum_potential``, ``mean_potential``, ``max_potential`` and
        ``first_content`` (``step``, ``entropy``, ``one_minus_pmax``, ``potential``; or None),
        the hidden-state probe's ``probe_first`` and ``probe_mean`` (NaN without one), the
        first token's ``first_entropy`` and ``first_one_minus_pmax``, ``potential_tokens``
        (tokens whose Φ is known), and ``void``: the answer-level void, P(the answer is wrong)
        by the processor's answer weights (NaN before the first token or where a weighted
        input is unknown)."""
        return self._p.answer(int(seq))

    def set_probe(self, tokens: Any, weights: Any = None, bias: float = 0.0) -> None:
        """Read a linear probe of the final hidden state at every step: ``bias +
        Σ weights[k]·logits[tokens[k]]`` on the raw logits (z = Γh makes any probe θ·h such a
        function of 2d logits; ``infogravity eval qa --hidden`` writes one as ``probe.json``).
        Each report's ``probe`` and ``answer()``'s ``probe_first``/``probe_mean`` carry it;
        None clears it."""
        if tokens is None and weights is None:
            self._p.set_probe(None, None, 0.0)
            return
        t = None if tokens is None else np.ascontiguousarray(np.asarray(tokens, dtype=np.uint32))
        w = None if weights is None else np.ascontiguousarray(np.asarray(weights, dtype=np.float32))
        self._p.set_probe(t, w, float(bias))

    def load_probe(self, path: Any) -> None:
        """Load a probe file (``probe.json`` of ``infogravity eval qa --hidden``, same model)."""
        self._p.load_probe(os.fspath(path))

    def set_concept(self, bias: Any, seq: Optional[int] = None, tokens: Any = None) -> None:
        """Tilt rows toward a concept: one finite logit bias per token (e.g. ``W @ direction``
        for the unembedding ``W`` and a direction in its space; standardised to mean 0, SD 1),
        for every sequence or only for live sequence ``seq``; None clears it. While the void
        score v ≥ ``concept.min_void`` the row becomes z + α·b, α = min(λ·v, the largest α
        whose KL stays ≤ ``concept.max_kl``); reports carry the ``concept`` flag and
        ``concept_kl``. ``tokens``: the concept's own token ids (the answer type it stands
        for), read by the ``concept.max_type_mass`` gate: a step whose probability already lies
        on them is left alone."""
        b = None if bias is None else np.ascontiguousarray(np.asarray(bias, dtype=np.float32))
        t = None if tokens is None else [_token(x, "concept token") for x in tokens]
        self._p.set_concept(b, None if seq is None else int(seq), t)

    def set_contrast(self, seq: int, row: Any) -> None:
        """Give live sequence ``seq``'s next step the logits of a content-free query, for the
        null-query contrast against attractor answers (the ``contrast`` configuration section;
        domain-conditional PMI): run a second sequence on the same prompt with its content
        removed (the subject replaced by "N/A"), feed it the same tokens, and pass its row here
        before ``step``. The step at this position reorders the tokens within
        ``contrast.plausibility`` of its best by log p − β·log q (reports carry the
        ``contrast`` flag) — under ``contrast.prior_top_only`` (the default) only where its
        best token is also the null row's; accepting a token, a rollback or a reset drops the row, and under
        ``contrast.until_content`` (the default) a row given after the first content token is
        not used. ``row``: V logits, float32 as is; float16 or bfloat16 (numpy, ml_dtypes or a
        CPU torch tensor) are read through a float32 copy."""
        a, tag = as_logits(row)
        if tag == "bf16":
            a = (a.astype(np.uint32) << 16).view(np.float32)
        self._p.set_contrast(int(seq), np.ascontiguousarray(a, dtype=np.float32))

    def set_content_tokens(self, table: Any) -> None:
        """Which tokens carry content, for ``answer()``'s first content token: one bool per
        token of the vocabulary (see ``content_table``); None clears it."""
        if table is None:
            self._p.set_content_tokens(None)
        else:
            self._p.set_content_tokens(np.ascontiguousarray(np.asarray(table, dtype=bool)))


def content_table(tokenizer: Any, vocab: Optional[int] = None) -> np.ndarray:
    """The content table of a tokenizer (transformers' or anything with ``decode([id])`` or
    ``batch_decode``): each token's decoded piece is content when it holds a letter or digit
    and is not an English function word. ``vocab`` (default ``len(tokenizer)``) pads with
    non-content rows for a model whose logits are wider than the tokenizer."""
    n = len(tokenizer) if vocab is None else int(vocab)
    ids = [[i] for i in range(min(n, len(tokenizer)))]
    if hasattr(tokenizer, "batch_decode"):
        pieces = tokenizer.batch_decode(ids)
    else:
        pieces = [tokenizer.decode(i) for i in ids]
    flags = np.zeros(n, dtype=bool)
    flags[: len(pieces)] = _native.content_flags([str(p) for p in pieces])
    return flags


def regime_name(code: int) -> str:
    """The name of a ``REPORT_DTYPE`` regime code."""
    return REGIME_NAMES[int(code)]


def flag_names(bits: int) -> list:
    """The names of the intervention flags set in ``bits``."""
    return [n for b, n in FLAG_NAMES if int(bits) & b]
