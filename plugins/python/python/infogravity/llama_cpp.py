"""Gravity sampling in llama-cpp-python, at the C level: no Python runs per token.

    from llama_cpp import Llama
    from infogravity.llama_cpp import install
    llm = Llama("SmolLM2-135M-Instruct.Q4_1.gguf")
    g = install(llm, preset="factual")
    llm.create_chat_completion([{"role": "user", "content": "What is the capital of France?"}])
    g.reports          # the last generation's diagnostics, one REPORT_DTYPE record per token

``install`` compiles the llama.cpp sampler of ``plugins/llama.cpp`` (``infogravity-sampler.cpp``,
embedded in this package) against the host's own ``llama.h`` once, into the cache, linked to
the libllama that llama-cpp-python loaded and to this package's native module (which exports
the infogravity C API). Then every sampler chain llama-cpp-python builds (each ``generate``,
``create_completion``, ``create_chat_completion``) is the gravity sampler:

- ``mode="sample"`` (default): the chain is the gravity sampler alone; it selects the token.
- ``mode="logits"``: the chain is the gravity sampler, writing the final logits z'/T (−inf where
  truncated), then llama.cpp's ``dist`` sampler (seeded) choosing from them.

Either way the chain replaces llama-cpp-python's own (temperature, top-k/p, min-p, penalties,
grammar and ``logits_processor`` are not applied), as ``--infogravity`` does in llama-server.
The prompt is accepted into the sampler before the first step, so it is the query (M(Q)).
When the processor abstains, the sampler selects end of generation. Reports go to a C sink in
the native module (kept alive by every chain that writes to it); with the environment variable
``INFOGRAVITY_LOG=FILE`` set before the first generation, the sampler also appends them to FILE
as JSON lines. ``llm.sample()`` called on its own (without ``generate``) continues one sequence
across calls, with no query.

**Null-query contrast** (``g.null_prompt = ids``, the configuration's ``contrast`` section;
docs/EVALUATION.md §7): the token ids of a content-free prompt (the question with its subject
replaced by "N/A"), for every following generation until set to None. The sampler decodes it
in a second context of the same model (made once, ``null_n_ctx`` tokens; freed by
``uninstall`` or when the ``Llama`` closes; refused with a LoRA adapter, which that context
would not apply), feeds it each generated token until the first content token and contrasts each
step with it (``llama_sampler_infogravity_set_null_prompt``), still with no Python per token.

The compiler needs ``llama.h``: pass ``include_dirs`` (the llama.cpp tree's ``include`` and
``ggml/include``), or set ``INFOGRAVITY_LLAMA_INCLUDE`` (``:``-separated); the package's own
``include`` folder is tried first, where a llama-cpp-python build installed the headers there.
A C++17 compiler (``c++``, or ``CXX``) is needed once; llama-cpp-python's own install already
needed one.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence, Union

import numpy as np

from . import REPORT_DTYPE, _native, config_json

__all__ = ["install", "GravitySampler", "build_glue"]

IG_MODE = {"sample": 0, "logits": 1}


def _cache() -> Path:
    home = os.environ.get("INFOGRAVITY_HOME")
    base = Path(home) if home else Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "infogravity"
    return base / "llama-cpp-python"


def _llama_lib() -> Path:
    from llama_cpp import llama_cpp as lc

    return Path(lc._lib._name).resolve()


def _include_dirs(extra: Optional[Sequence[Union[str, Path]]]) -> list[Path]:
    import llama_cpp

    dirs = [Path(d) for d in (extra or [])]
    dirs += [Path(d) for d in os.environ.get("INFOGRAVITY_LLAMA_INCLUDE", "").split(":") if d]
    pkg = Path(llama_cpp.__file__).parent
    dirs += [pkg / "include", pkg.parent / "include"]
    found = [d for d in dirs if (d / "llama.h").exists()]
    if not found:
        raise FileNotFoundError(
            "llama.h not found: pass include_dirs=[<llama.cpp>/include, <llama.cpp>/ggml/include] "
            "or set INFOGRAVITY_LLAMA_INCLUDE (the llama.cpp tree llama-cpp-python was built from: "
            "its sdist's vendor/llama.cpp)"
        )
    return dirs


def build_glue(include_dirs: Optional[Sequence[Union[str, Path]]] = None) -> Path:
    """Compile the sampler glue for the loaded libllama (once; cached by content). Returns the
    shared library's path."""
    lib = _llama_lib()
    native = Path(_native.__file__).resolve()
    dirs = _include_dirs(include_dirs)
    llama_h = next(d / "llama.h" for d in dirs if (d / "llama.h").exists())
    key = hashlib.sha256()
    for part in (_native.LLAMA_GLUE_CPP, _native.LLAMA_GLUE_H, _native.C_HEADER, llama_h.read_text(),
                 str(lib), str(native), str(native.stat().st_mtime_ns)):
        key.update(part.encode())
    out = _cache() / f"infogravity-llama-{key.hexdigest()[:16]}.so"
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    cxx = os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++") or shutil.which("clang++")
    if not cxx:
        raise RuntimeError("no C++ compiler found (set CXX): the sampler glue is compiled once against llama.h")
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        (t / "infogravity-sampler.cpp").write_text(_native.LLAMA_GLUE_CPP)
        (t / "infogravity-sampler.h").write_text(_native.LLAMA_GLUE_H)
        (t / "infogravity.h").write_text(_native.C_HEADER)
        part = t / out.name
        cmd = [cxx, "-std=c++17", "-O2", "-shared", "-fPIC", "-o", str(part), str(t / "infogravity-sampler.cpp"),
               f"-I{t}", *[f"-I{d}" for d in dirs], str(native), str(lib),
               f"-Wl,-rpath,{lib.parent}", f"-Wl,-rpath,{native.parent}"]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"compiling the llama.cpp sampler glue failed:\n{' '.join(cmd)}\n{r.stderr[-4000:]}")
        os.replace(part, out)
    return out


class GravitySampler:
    """The gravity sampler installed in a ``llama_cpp.Llama`` (see ``install``)."""

    def __init__(self, llm: Any, config: Union[None, str, Mapping[str, Any]] = None, *,
                 preset: Optional[str] = None, mode: str = "sample", seed: Optional[int] = None,
                 include_dirs: Optional[Sequence[Union[str, Path]]] = None, null_n_ctx: int = 512):
        from llama_cpp import _internals
        from llama_cpp import llama_cpp as lc

        if mode not in IG_MODE:
            raise ValueError(f'mode must be "sample" or "logits", not {mode!r}')
        self.llm, self.mode = llm, mode
        self.config = config_json(config, preset)
        from . import check_config

        check_config(self.config)  # a bad configuration fails here, not at the first token
        self.seed = None if seed is None else int(seed) & 0xFFFFFFFF
        self._glue = ctypes.CDLL(str(build_glue(include_dirs)))
        f = self._glue.llama_sampler_init_infogravity
        f.restype = lc.llama_sampler_p_ctypes
        f.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_uint32, ctypes.c_uint32, ctypes.c_void_p,
                      ctypes.c_void_p]
        f = self._glue.llama_sampler_infogravity_set_null_prompt
        f.restype = ctypes.c_int
        f.argtypes = [lc.llama_sampler_p_ctypes, ctypes.c_void_p, ctypes.POINTER(ctypes.c_int32), ctypes.c_size_t]
        self.null_prompt: Optional[Sequence[int]] = None
        self._null_ctx = None
        self._null_n_ctx = int(null_n_ctx)
        self._sink = _native.ReportSink()
        self._fn = _native.report_sink_fn()
        self._lc, self._internals = lc, _internals
        self._vocab = lc.llama_model_get_vocab(llm._model.model)
        self._prompt: list[int] = []
        self._chunks: list[np.ndarray] = []
        self._chain = None  # the chain of the current generation
        self._smpl = None  # its gravity sampler (the chain owns it)
        self._fresh = True
        self._orig_init = llm._init_sampler
        self._orig_generate = llm.generate
        llm._init_sampler = self._init_sampler
        llm.generate = self._generate

    def _generate(self, tokens: Sequence[int], *args: Any, **kwargs: Any):
        self._prompt = list(tokens)
        self._sink.take()  # a new generation: its reports only
        self._chunks = []
        self._fresh = True
        return self._orig_generate(tokens, *args, **kwargs)

    def _init_sampler(self, *args: Any, **kwargs: Any):
        # `generate` builds a chain per generation; `sample()` called on its own builds one per
        # token and drops it: the same chain serves those calls, so the sequence goes on.
        if not self._fresh and self._chain is not None:
            return self._chain
        lc = self._lc
        seed = (self.llm._seed if self.seed is None else self.seed) & 0xFFFFFFFF
        chain = self._internals.LlamaSampler()
        smpl = self._glue.llama_sampler_init_infogravity(
            self._vocab, self.config.encode(), IG_MODE[self.mode], seed, self._fn, self._sink.address)
        if not smpl:  # a NULL pointer
            raise RuntimeError(f"llama_sampler_init_infogravity: {lc_last_error()}")
        lc.llama_sampler_chain_add(chain.sampler, smpl)  # the chain owns it from here
        # The sampler writes reports into the sink through a raw address: the chain keeps the
        # sink alive for as long as it lives, whoever holds the chain.
        chain._infogravity_sink = self._sink
        if self.mode == "logits":
            chain.add_dist(seed)
        for t in self._prompt:  # the query, as llama-server primes its chain
            lc.llama_sampler_accept(smpl, t)
        # The previous chain lets go of the null context before the new one takes it over.
        self._release_null()
        if self.null_prompt is not None:
            self._set_null(smpl)  # raises: the new chain is dropped, nothing else changed
        self._fresh = False
        self._chain, self._smpl = chain, smpl
        return chain

    def _release_null(self) -> None:
        if self._smpl is not None and self._null_ctx is not None:
            self._glue.llama_sampler_infogravity_set_null_prompt(self._smpl, None, None, 0)

    def _set_null(self, smpl: Any) -> None:
        lc = self._lc
        ids = [int(t) for t in self.null_prompt]
        if not ids or len(ids) > self._null_n_ctx:
            raise ValueError(f"null_prompt holds {len(ids)} tokens: give 1 to null_n_ctx ({self._null_n_ctx})")
        if getattr(self.llm, "lora_path", None):
            raise ValueError("null_prompt with a LoRA adapter: the null context would run the model "
                             "without it")
        if self._null_ctx is None:
            p = lc.llama_context_default_params()
            p.n_ctx = p.n_batch = p.n_ubatch = self._null_n_ctx
            p.n_threads = p.n_threads_batch = self.llm.n_threads
            ctx = lc.llama_init_from_model(self.llm._model.model, p)
            if not ctx:
                raise RuntimeError("llama_init_from_model failed for the null prompt's context")
            self._null_ctx = ctx
            # Freed before the model when the Llama closes (its exit stack runs last in, first
            # out), or by uninstall, whichever comes first.
            self.llm._stack.callback(self._free_null)
        arr = (ctypes.c_int32 * len(ids))(*ids)
        st = self._glue.llama_sampler_infogravity_set_null_prompt(smpl, self._null_ctx, arr, len(ids))
        if st != 0:
            raise RuntimeError(f"llama_sampler_infogravity_set_null_prompt: status {st} (the reason is on "
                               "stderr)")

    def _free_null(self) -> None:
        if self._null_ctx is not None:
            self._release_null()
            self._lc.llama_free(self._null_ctx)
            self._null_ctx = None

    @property
    def reports(self) -> np.ndarray:
        """The current or last generation's reports (REPORT_DTYPE records, one per token)."""
        new = self._sink.take()
        if new:
            self._chunks.append(np.frombuffer(new, dtype=REPORT_DTYPE))
        return np.concatenate(self._chunks) if self._chunks else np.empty(0, REPORT_DTYPE)

    def uninstall(self) -> None:
        """Give the ``Llama`` its own sampling back (the gravity chain is dropped)."""
        self.llm._init_sampler = self._orig_init
        self.llm.generate = self._orig_generate
        if self.llm._sampler is self._chain:
            self.llm._sampler = None
        # No sampler may keep the null context: the last chain's lets go of it; earlier chains
        # let go when the next was built.
        self._free_null()
        self._chain = self._smpl = None


def lc_last_error() -> str:
    lib = ctypes.CDLL(_native.__file__)
    lib.ig_last_error.restype = ctypes.c_char_p
    return (lib.ig_last_error() or b"").decode(errors="replace")


def install(llm: Any, config: Union[None, str, Mapping[str, Any]] = None, **kwargs: Any) -> GravitySampler:
    """Make the gravity sampler choose every token of ``llm`` (a ``llama_cpp.Llama``). Keyword
    arguments: ``preset``, ``mode`` ("sample" or "logits"), ``seed`` (default: the Llama's seed
    when each generation starts, so ``create_completion(seed=...)`` applies), ``include_dirs``
    (where llama.h is), ``null_n_ctx`` (the null prompt's context size)."""
    return GravitySampler(llm, config, **kwargs)
