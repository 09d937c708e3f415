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

**Null-query contrast** (``null_model``, ``null_input_ids``; the configuration's ``contrast``
section, docs/EVALUATION.md §7): like transformers' ``UnbatchedClassifierFreeGuidanceLogitsProcessor``
the adapter runs a second, content-free prompt per row (the question with its subject replaced
by "N/A") through the model with its own KV cache, feeds it the tokens ``generate()`` emits, and
gives each step's null row to the processor (``set_contrast``), which reorders the plausible
tokens by log p − β·log q where the row's most likely token is also the null row's. Under
``contrast.until_content`` (the default) a row takes null rows until its first content token,
as ``content_tokens`` (``infogravity.content_table(tokenizer)``) tells — without it every token
counts as one, so only the first step has a null row — and the null model is not run once every
row is done; with it off, every step. Cost: the null prompts' prefill, then one batched forward
of one token per step while any row takes null rows, and the null prompts' KV cache.

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

    ``null_model``, ``null_input_ids`` ([B, L] ids, one content-free prompt per row, left-padded
    with ``null_attention_mask`` 0 where padded), ``content_tokens``: the null-query contrast
    (module docstring); the configuration must enable it (``{"contrast": {"enabled": true}}``).
    ``content_tokens`` is also given to the processor (its answer-level aggregates use it).
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
        null_model: Any = None,
        null_input_ids: Optional[torch.Tensor] = None,
        null_attention_mask: Optional[torch.Tensor] = None,
        content_tokens: Any = None,
    ):
        if mode not in ("sample", "logits"):
            raise ValueError(f'mode must be "sample" or "logits", not {mode!r}')
        if (null_model is None) != (null_input_ids is None):
            raise ValueError("infogravity: the null-query contrast needs both null_model and null_input_ids")
        self._null: Optional[_NullPrompts] = None
        if null_input_ids is not None:
            self._null = _NullPrompts(null_model, null_input_ids, null_attention_mask)
        self._content = None if content_tokens is None else np.asarray(content_tokens, dtype=bool)
        self._config = (config, preset)
        self.mode = mode
        self.seed = int(seed)
        self.pad_token_id = pad_token_id
        self.anchors = None if anchors is None else list(anchors)
        self.eos_token_id = eos_token_id
        self.processor: Optional[Processor] = None
        if vocab_size is not None:
            self._make(vocab_size)
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

    def _make(self, vocab: int) -> None:
        # Checked before it is kept: a processor that fails here is not used by a later call.
        cfg, preset = self._config
        proc = Processor(vocab, cfg, preset=preset)
        if self._content is not None:
            if self._content.shape != (vocab,):
                raise ValueError(
                    f"infogravity: content_tokens holds {self._content.size} flags, the scores {vocab}"
                )
            proc.set_content_tokens(self._content)
        if self._null is not None and not proc.config["contrast"]["enabled"]:
            raise ValueError(
                'infogravity: null_input_ids given but the configuration\'s contrast is off: add '
                '{"contrast": {"enabled": true}}'
            )
        self.processor = proc

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
        if self._null is not None:
            # Under until_content the rows end at the first content token; without a table
            # every token counts as one (the processor's rule), so only the first step takes one.
            content = None
            if self.processor.config["contrast"]["until_content"]:
                content = self._content
                if content is None:
                    content = np.ones(self.processor.vocab, dtype=bool)
            self._null.start(len(self._seqs), content)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self.processor is None:
            self._make(scores.shape[-1])
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
            if self._null is not None:
                self._null.feed(input_ids[:, -1])
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
        if self._null is not None:
            for b, row in self._null.rows():
                self.processor.set_contrast(self._seqs[b], row)
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
        if self._null is not None:
            self._null.stop()

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


class _NullPrompts:
    """The content-free prompts of a generation, one per row, run through the model with their
    own KV cache and fed the tokens the rows emit (left padding handled by explicit positions,
    as ``generate()`` itself does)."""

    def __init__(self, model: Any, ids: torch.Tensor, mask: Optional[torch.Tensor]):
        if not isinstance(ids, torch.Tensor) or ids.dim() != 2 or ids.shape[1] == 0:
            raise ValueError("infogravity: null_input_ids must be a [B, L] tensor of token ids, L > 0")
        if mask is None:
            mask = torch.ones_like(ids, dtype=torch.long)
        if mask.shape != ids.shape:
            raise ValueError(
                f"infogravity: null_attention_mask is {tuple(mask.shape)}, null_input_ids {tuple(ids.shape)}"
            )
        if not bool((mask.sum(dim=1) > 0).all()):
            raise ValueError("infogravity: a null prompt is all padding")
        if not bool(mask[:, -1].all()):
            raise ValueError(
                "infogravity: the null prompts are right-padded: pad them on the left "
                "(tokenizer.padding_side = \"left\"), as generate() wants its prompts"
            )
        self.model, self.ids, self.mask0 = model, ids, mask.to(torch.long)
        self.stop()

    def start(self, batch: int, content: Optional[np.ndarray]) -> None:
        if batch != self.ids.shape[0]:
            raise ValueError(
                f"infogravity: null_input_ids has {self.ids.shape[0]} rows, the generation {batch}"
            )
        self.content = content
        self.live = np.ones(batch, dtype=bool)
        dev = self.model.device
        self.mask = self.mask0.to(dev)
        self.pos = (self.mask.cumsum(dim=1) - 1).clamp(min=0)
        self._forward(self.ids.to(dev))

    def _forward(self, ids: torch.Tensor) -> None:
        with torch.no_grad():
            out = self.model(input_ids=ids, attention_mask=self.mask, position_ids=self.pos,
                             past_key_values=self.cache, use_cache=True)
        self.cache = out.past_key_values
        self.logits = out.logits[:, -1, :].float().cpu().numpy()

    def feed(self, tokens: torch.Tensor) -> None:
        """The rows emitted ``tokens``: rows past their first content token are done; while any
        row is not, one forward step of every row."""
        if self.logits is None:
            return
        if self.content is not None:
            t = tokens.detach().cpu().numpy()
            self.live &= ~self.content[np.clip(t, 0, self.content.size - 1)]
        if not self.live.any():
            self.stop()
            return
        self.mask = torch.cat([self.mask, torch.ones_like(self.mask[:, :1])], dim=1)
        self.pos = self.pos[:, -1:] + 1
        self._forward(tokens.to(self.mask.device).view(-1, 1))

    def rows(self):
        """(row, null logits) of the rows that still take one."""
        if self.logits is None:
            return []
        return [(b, self.logits[b]) for b in np.flatnonzero(self.live)]

    def stop(self) -> None:
        self.cache, self.logits, self.live, self.content = None, None, None, None
