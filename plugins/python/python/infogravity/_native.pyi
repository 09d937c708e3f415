# Type stubs of the native module (src/lib.rs). The public API is infogravity/__init__.py.
import os
from typing import Any, Optional

import numpy as np
import numpy.typing as npt

VERSION: str
PRESETS: list[str]
FLAG_NAMES: list[tuple[int, str]]
MAX_VOCAB: int
LLAMA_GLUE_CPP: str
LLAMA_GLUE_H: str
C_HEADER: str

class StepReport:
    """The diagnostics of one row at one step (docs/DESIGN.md §1)."""

    seq: int
    step: int
    entropy: float
    entropy_norm: float
    varentropy: float
    log_z: float
    p_max: float
    margin: float
    token: Optional[int]
    token_potential: float
    temperature: float
    regime: str
    void_score: float
    black_hole_score: float
    task_mass: Optional[float]
    flag_bits: int
    flags: list[str]
    cycle_period: int
    stop: bool
    concept_kl: float
    rollback: int
    probe: float

class Processor:
    def __init__(self, vocab: int, config_json: str) -> None: ...
    @property
    def vocab(self) -> int: ...
    @property
    def live(self) -> int: ...
    def config_json(self) -> str: ...
    def begin(
        self,
        seq: int,
        seed: int = 0,
        anchors: Optional[npt.NDArray[np.uint32]] = None,
        query_tokens: Optional[npt.NDArray[np.uint32]] = None,
        context: Optional[npt.NDArray[np.uint32]] = None,
        context_gain: Optional[float] = None,
        prompt_logits: Optional[npt.NDArray[np.float32]] = None,
        prompt_entropies: Optional[npt.NDArray[np.float32]] = None,
    ) -> dict[str, Optional[float]]: ...
    def step(self, seq: int, row: np.ndarray, mode: str = "sample", dtype: Optional[str] = None) -> StepReport: ...
    def step_batch(
        self,
        seqs: npt.NDArray[np.uint64],
        logits: np.ndarray,
        out: npt.NDArray[np.uint8],
        mode: str = "sample",
        rows: Optional[npt.NDArray[np.int64]] = None,
        dtype: Optional[str] = None,
    ) -> None: ...
    def accept(self, seq: int, token: int) -> None: ...
    def rollback(self, seq: int, n: int) -> None: ...
    def rollback_advice(self, seq: int) -> int: ...
    def end(self, seq: int) -> None: ...
    def end_all(self) -> int: ...
    def fork(self, src: int, dst: int) -> None: ...
    def reset(self, seq: int) -> None: ...
    def mass(self, seq: int) -> dict[str, Optional[float]]: ...
    def answer(self, seq: int) -> dict[str, Any]: ...
    def set_content_tokens(self, table: Optional[npt.NDArray[np.bool_]]) -> None: ...
    def set_probe(
        self,
        tokens: Optional[npt.NDArray[np.uint32]],
        weights: Optional[npt.NDArray[np.float32]] = None,
        bias: float = 0.0,
    ) -> None: ...
    def load_probe(self, path: str | os.PathLike[str]) -> None: ...
    def set_concept(
        self,
        bias: Optional[npt.NDArray[np.float32]],
        seq: Optional[int] = None,
        tokens: Optional[list[int]] = None,
    ) -> None: ...
    def set_contrast(self, seq: int, row: npt.NDArray[np.float32]) -> None: ...

class ReportSink:
    def __init__(self) -> None: ...
    @property
    def address(self) -> int: ...
    def take(self) -> bytes: ...
    def __len__(self) -> int: ...

def report_fields() -> tuple[list[tuple[str, str, int]], int]: ...
def check_config(config_json: str) -> str: ...
def report_sink_fn() -> int: ...

def content_flags(pieces: list[str]) -> list[bool]: ...
