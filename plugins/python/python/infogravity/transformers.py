"""Gravity sampling in Hugging Face transformers' ``generate()``.

    from infogravity.transformers import GravityLogitsProcessor
    g = GravityLogitsProcessor(preset="factual", seed=0)
    out = model.generate(ids, logits_processor=[g], stopping_criteria=[g.stopping_criteria()],
                         **g.generate_kwargs())
    g.reports[0]        # the first row's diagnostics, one REPORT_DTYPE record per token

How it maps (ENGINES.md §3): transformers calls the processor once per step with the whole
``input_ids`` (prompt + generated, left padding included) and the step's float32 scores, after
its own built-in processors and before its warpers. The adapter keeps one gravity sequence per
row: a call whose ``input_ids`` do not continue the previous call's by one token starts a new
generation (the old sequences end, new ones begin with the row's prompt, pads removed, as the
query); otherwise each row's last token is accepted and the batch is stepped at once.

``mode="sample"`` (default): the processor selects each row's token and the scores become a
one-hot forcing it, so any host decoding (greedy or sampling, any warper) emits it; use
``do_sample=False`` (``generate_kwargs()``). ``mode="logits"``: the scores become the final
logits z'/T (−inf where truncated) and transformers samples from them; its own temperature and
truncation must then be neutral (``generate_kwargs()`` returns ``do_sample=True,
temperature=1.0, top_k=0, top_p=1.0``), else they apply on top.

Not supported: beam search (rows are reordered and scores are log-probabilities: a reordering
raises); continuous batching (``supports_continuous_batching = False``). A batch of more than
one row needs ``pad_token_id``. Scores on a GPU are copied to the host and
back each step.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Optional, Union

import numpy as np
import torch
from transformers import LogitsProcessor, StoppingCriteria

from . import REPORT_DTYPE, Processor

__all__ = ["GravityLogitsProcessor", "GravityStoppingCriteria"]


class GravityLogitsProcessor(LogitsProcessor):
    """The gravity processor as a transformers ``LogitsProcessor``.

    ``config``/``preset``: the processor configuration. ``seed``: row b samples with seed
    ``seed + b``. ``pad_token_id``: stripped from the left of each row to give its prompt.
    ``anchors``: anchor token ids for every row. ``eos_token_id``: what a row that abstains
    emits after its abstention text (then ``generate()`` ends it as at any end of sequence;
    without it the row's last token is the model's own and the stopping criteria end it).
    ``vocab_size``: the scores' width (default:
    taken from the first call).
    """

    supports_continuous_batching = False

    def __init__(
        self,
        config: Union[None, str, Mapping[str, Any]] = None,
        *,
        preset: Optional[str] = None,
        mode: str = "sample",
        seed: int = 0,
        pad_token_id: Optional[int] = None,
        anchors: Optional[Iterable[int]] = None,
        eos_token_id: Optional[int] = None,
        vocab_size: Optional[int] = None,
    ):
        if mode not in ("sample", "logits"):
            raise ValueError(f'mode must be "sample" or "logits", not {mode!r}')
        self._config = (config, preset)
        self.mode = mode
        self.seed = int(seed)
        self.pad_token_id = pad_token_id
        self.anchors = None if anchors is None else list(anchors)
        self.eos_token_id = eos_token_id
        self.processor: Optional[Processor] = None
        if vocab_size is not None:
            self.processor = Processor(vocab_size, config, preset=preset)
        self._seqs: list[int] = []
        self._next_id = 0
        self._prev: Optional[torch.Tensor] = None
        self._stop: Optional[np.ndarray] = None
        self._rows: list[list[np.ndarray]] = []

    def generate_kwargs(self) -> dict:
        """The ``generate()`` arguments that keep transformers' own decoding from acting on
        top of the processor's."""
        if self.mode == "sample":
            return {"do_sample": False, "num_beams": 1}
        return {"do_sample": True, "temperature": 1.0, "top_k": 0, "top_p": 1.0, "min_p": None,
                "num_beams": 1}

    def stopping_criteria(self) -> "GravityStoppingCriteria":
        """A ``StoppingCriteria`` that ends the rows whose sequence abstained."""
        return GravityStoppingCriteria(self)

    def _begin(self, input_ids: torch.Tensor) -> None:
        self.close()
        ids = input_ids.detach().cpu().numpy()
        self._seqs = []
        for b, row in enumerate(ids):
            if self.pad_token_id is not None:
                keep = np.flatnonzero(row != self.pad_token_id)
                row = row[keep[0]:] if keep.size else row[:0]
            seq = self._next_id
            self._next_id += 1
            self.processor.begin(seq, seed=self.seed + b, query_tokens=row, context=row,
                                 anchors=self.anchors)
            self._seqs.append(seq)
        self._rows = [[] for _ in self._seqs]

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self.processor is None:
            cfg, preset = self._config
            self.processor = Processor(scores.shape[-1], cfg, preset=preset)
        prev = self._prev
        # O(B·L) per step: nothing beside a model step. transformers builds a new input_ids
        # each step (torch.cat), so the previous one is kept by reference, not copied.
        step_on = (
            prev is not None
            and input_ids.shape[0] == prev.shape[0]
            and input_ids.shape[1] == prev.shape[1] + 1
        )
        if step_on and torch.equal(input_ids[:, :-1], prev):
            for seq, tok in zip(self._seqs, input_ids[:, -1].tolist()):
                self.processor.accept(seq, tok)
        else:
            if step_on and input_ids.shape[0] > 1 and all(
                any(torch.equal(row, p) for p in prev) for row in input_ids[:, :-1]
            ):
                raise ValueError(
                    "infogravity: the rows were reordered between steps (beam search?): one "
                    "gravity sequence per row cannot follow them; use num_beams=1"
                )
            if input_ids.shape[0] > 1 and self.pad_token_id is None:
                raise ValueError(
                    "infogravity: a batch is left-padded: pass pad_token_id (the tokenizer's) so "
                    "that pads are not taken for prompt tokens"
                )
            self._begin(input_ids)
        self._prev = input_ids

        host = scores if scores.device.type == "cpu" else scores.detach().cpu()
        if host.dtype != torch.float32 or not host.is_contiguous():
            host = host.to(torch.float32).contiguous()
        reps = self.processor.step_batch(self._seqs, host, self.mode)
        for b, r in enumerate(reps):
            self._rows[b].append(r)
        self._stop = reps["stop"] != 0
        tokens = reps["token"]
        if self.eos_token_id is not None:
            tokens = np.where((tokens < 0) & self._stop, self.eos_token_id, tokens)
        chosen = np.flatnonzero(tokens >= 0)  # sample mode: every row but a stop without a token
        if chosen.size:
            rows = torch.from_numpy(chosen)
            host[rows] = float("-inf")
            host[rows, torch.from_numpy(tokens[chosen])] = 0.0
        if host is not scores:
            scores.copy_(host.to(scores.device, scores.dtype))
        return scores

    @property
    def reports(self) -> list:
        """Per row of the current (or last) generation: its reports, one ``REPORT_DTYPE``
        record per generated token."""
        return [np.array(rows, dtype=REPORT_DTYPE) for rows in self._rows]

    def close(self) -> None:
        """End the current generation's sequences (a new ``generate()`` call does it too)."""
        if self.processor is not None:
            for seq in self._seqs:
                try:
                    self.processor.end(seq)
                except Exception:  # already ended
                    pass
        self._seqs = []
        self._prev = None
        self._stop = None

    def __enter__(self) -> "GravityLogitsProcessor":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class GravityStoppingCriteria(StoppingCriteria):
    """Stops the rows whose gravity sequence abstained (the report's ``stop`` flag)."""

    def __init__(self, processor: GravityLogitsProcessor):
        self.processor = processor

    def __call__(self, input_ids: torch.LongTensor, scores: Any = None, **kwargs) -> torch.BoolTensor:
        stop = self.processor._stop
        if stop is None or stop.shape[0] != input_ids.shape[0]:
            return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        return torch.from_numpy(stop.copy()).to(input_ids.device)
