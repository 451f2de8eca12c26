"""Golden `--format json` outputs: any change to a machine-readable result shows up in review.

Regenerate only on purpose: KVCALC_UPDATE_GOLDEN=1 pytest tests/test_golden.py, then read
the diff. The key figures inside are hand-derived in test_formula.py and test_planner.py.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kvcalc.cli import app

GOLDEN = Path(__file__).parent / "golden"
CASES = {
    "verify-llama.cpp-gpt-oss-120b": [
        "verify",
        str(Path(__file__).parent / "data" / "logs" / "llama.cpp-gpt-oss-120b-rocm.log"),
        "--model",
        "gpt-oss-120b",
    ],
    "calc-llama-3.1-8b": ["calc", "llama-3.1-8b", "--seq", "8k"],
    "calc-gemma-2-9b-tp2": ["calc", "gemma-2-9b", "--seq", "8k", "--tp", "2"],
    "calc-deepseek-v3-tp8": ["calc", "deepseek-v3", "--seq", "8k", "--tp", "8"],
    "calc-llama-3.1-8b-llamacpp-q8": [
        "calc",
        "llama-3.1-8b",
        "--engine",
        "llama.cpp",
        "--kv-dtype",
        "q8_0",
    ],
    "fit-llama-3.1-8b-h100": ["fit", "llama-3.1-8b", "--gpu", "h100-80gb", "--reserve", "2GiB"],
    "fit-llama-3.1-70b-h100-tp4": [
        "fit",
        "llama-3.1-70b",
        "--gpu",
        "h100-80gb",
        "--tp",
        "4",
        "--seq",
        "32k",
        "--batch",
        "8",
    ],
    "fit-deepseek-v3-h200-tp8-fp8": [
        "fit",
        "deepseek-v3",
        "--gpu",
        "h200",
        "--tp",
        "8",
        "--weights-dtype",
        "fp8",
    ],
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden_json(name: str) -> None:
    """The JSON output equals the reviewed golden file."""
    result = CliRunner().invoke(app, [*CASES[name], "--format", "json"])
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    path = GOLDEN / f"{name}.json"
    if os.environ.get("KVCALC_UPDATE_GOLDEN") == "1":
        path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    assert data == json.loads(path.read_text())
