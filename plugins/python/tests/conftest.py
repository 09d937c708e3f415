"""Shared fixtures: where the models the end-to-end tests run live (the project's cache, which
scripts/setup-engine.sh --real and scripts/setup-llama.sh fill)."""

import os
from pathlib import Path

import pytest


def cache_dir() -> Path:
    home = os.environ.get("INFOGRAVITY_HOME")
    if home:
        return Path(home)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "infogravity"


def need(path: Path, how: str) -> Path:
    if not path.exists():
        pytest.skip(f"{path} is missing ({how}; scripts/check.sh provides it)")
    return path


@pytest.fixture(scope="session")
def gguf_f32() -> Path:
    return need(cache_dir() / "gguf" / "SmolLM2-135M-Instruct.F32.gguf", "scripts/setup-llama.sh makes it")


@pytest.fixture(scope="session")
def gguf_q4() -> Path:
    return need(cache_dir() / "gguf" / "SmolLM2-135M-Instruct.Q4_1.gguf", "scripts/setup-engine.sh --real fetches it")


@pytest.fixture(scope="session")
def engine_bin() -> Path:
    p = os.environ.get("INFOGRAVITY_BIN")
    if not p:
        pytest.skip("INFOGRAVITY_BIN is not set (the infogravity CLI; scripts/check.sh sets it)")
    return need(Path(p), "cargo build")


# Under CI (CI=1, set by .ci/run) everything a test needs is provided, so a skip is a failure.
@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if os.environ.get("CI") and rep.skipped:
        rep.outcome = "failed"
        rep.longrepr = f"skipped under CI, where everything the test needs is provided: {rep.longrepr}"


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    rep = outcome.get_result()
    if os.environ.get("CI") and rep.skipped:
        rep.outcome = "failed"
        rep.longrepr = f"skipped under CI, where everything the test needs is provided: {rep.longrepr}"
