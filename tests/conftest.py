"""Shared fixtures: specs built inline from published configs, and a CLI runner."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import settings

from kvcalc.specs import ModelSpec

# The suite gates on fixed examples: derandomized, each property test draws the same examples
# every run (they follow from the test's name), so a commit that passed still passes on a
# fresh machine. KVCALC_HYPOTHESIS=explore draws new ones each run, to hunt for bugs.
settings.register_profile("gate", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile("explore" if os.environ.get("KVCALC_HYPOTHESIS") == "explore" else "gate")

ROOT = Path(__file__).resolve().parent.parent
HF_CONFIGS = ROOT / "tests" / "data" / "hf_configs"


def spec(**fields: object) -> ModelSpec:
    """Return a ModelSpec with a placeholder source and the given fields."""
    data = {"name": "test", "source": "test", "vocab_size": 32000, **fields}
    return ModelSpec.model_validate(data)


@dataclass
class Result:
    exit_code: int
    stdout: str
    stderr: str


@pytest.fixture
def run_cli(monkeypatch: pytest.MonkeyPatch) -> Callable[..., Result]:
    """Run `kvcalc ARGS` in-process through typer's CliRunner; stdout and stderr apart."""
    from typer.testing import CliRunner

    from kvcalc.cli import app

    monkeypatch.setenv("COLUMNS", "120")
    monkeypatch.delenv("KVCALC_PRESETS", raising=False)

    def run(*args: str, env: dict[str, str] | None = None) -> Result:
        runner = CliRunner()
        result = runner.invoke(app, list(args), env=env or {}, catch_exceptions=False)
        return Result(result.exit_code, result.stdout, result.stderr)

    return run


@pytest.fixture(autouse=True)
def _no_user_presets(monkeypatch: pytest.MonkeyPatch) -> None:
    if "KVCALC_PRESETS" in os.environ:
        monkeypatch.delenv("KVCALC_PRESETS")
    # no test touches the network: Hub ids resolve from the local cache only, unless a
    # test fakes huggingface_hub and lifts this (tests/test_hub.py)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


# DeepSeek-V4 presets, shared by the transformers, vLLM and SGLang layout tests
@pytest.fixture(scope="session")
def flash() -> ModelSpec:
    from kvcalc.presets import load_model

    return load_model("deepseek-v4-flash")


@pytest.fixture(scope="session")
def pro() -> ModelSpec:
    from kvcalc.presets import load_model

    return load_model("deepseek-v4-pro")
