"""The Python API: docs/api.md's examples run and print what the page shows; exports resolve.

The figures on the page are hand-derived there from published configs (Llama-3.1-8B,
Llama-3.1-70B config.json) and the H100's CUDA-reported 85,017,493,504 bytes.
"""

from __future__ import annotations

import doctest
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import kvcalc

ROOT = Path(__file__).resolve().parent.parent
API_PAGE = ROOT / "docs" / "api.md"
_BLOCK = re.compile(r"```pycon\n(.*?)```", re.DOTALL)


def test_api_page_examples_run() -> None:
    """Every ```pycon block of docs/api.md runs as a doctest and prints what is shown."""
    text = "\n".join(_BLOCK.findall(API_PAGE.read_text()))
    assert text.count(">>>") >= 10
    parser = doctest.DocTestParser()
    test = parser.get_doctest(text, {}, "docs/api.md", str(API_PAGE), 0)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0
    assert result.attempted >= 10


def test_module_docstring_examples_run() -> None:
    """The examples in kvcalc/api.py's and kvcalc/__init__.py's docstrings run."""
    import kvcalc.api

    for module in (kvcalc.api, kvcalc):
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        assert result.failed == 0 and result.attempted >= 1


@pytest.mark.parametrize("name", kvcalc.__all__)
def test_every_export_resolves(name: str) -> None:
    """Each name in kvcalc.__all__ is importable with `from kvcalc import NAME`."""
    assert getattr(kvcalc, name) is not None


def test_unknown_attribute_is_an_attribute_error() -> None:
    """A name kvcalc does not export raises AttributeError (so hasattr() works)."""
    assert not hasattr(kvcalc, "no_such_function")


def test_api_equals_cli(run_cli: object) -> None:
    """kvcalc.fit and `kvcalc fit --format json` give the same numbers (the CLI is a shell)."""
    import json

    from typer.testing import CliRunner

    from kvcalc.cli import app

    args = ["fit", "llama-3.1-70b", "--gpu", "h100", "--tp", "4", "--seq", "32k", "-b", "8"]
    shown = json.loads(CliRunner().invoke(app, [*args, "--format", "json"]).stdout)
    result = kvcalc.fit("llama-3.1-70b", "h100", seq="32k", batch=8, tp=4)
    assert shown["max_batch"] == result.max_batch
    assert shown["headroom_bytes"] == result.headroom_bytes
    assert shown["kv_budget_bytes"] == result.budget.kv_budget_bytes
    assert shown["model"] == "llama-3.1-70b" and shown["gpu"] == "h100-80gb"
    got = kvcalc.min_gpus("llama-3.1-70b", "h100", seq="32k", batch=8)
    assert got is not None and shown["min_gpus"] == got.n_gpus


def test_import_kvcalc_is_light() -> None:
    """`import kvcalc` alone imports neither pydantic models nor the formula (lazy exports)."""
    code = (
        "import sys, kvcalc; "
        "print(any(m in sys.modules for m in ('kvcalc.specs', 'kvcalc.formula', 'pydantic.main')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_sweep_is_callable_after_its_module_is_imported() -> None:
    """`kvcalc.sweep(...)` works after `import kvcalc.sweep` made the module the attribute."""
    import importlib

    importlib.import_module("kvcalc.sweep")
    rows = list(kvcalc.sweep("llama-3.1-8b", seqs="1k", engines="formula"))
    assert [r["total_bytes"] for r in rows] == [131_072 * 1024]
    from kvcalc import sweep

    assert [r["seq_len"] for r in sweep("llama-3.1-8b", seqs="1k,2k")] == [1024, 2048]


def test_fit_and_check_say_what_they_were_computed_for(run_cli: Any, tmp_path: Path) -> None:
    """fit and check outputs carry dtypes, util, n_gpus, engine and canonical preset names.

    The H100 preset reports 85,017,493,504 B (CUDA) and vLLM's default utilisation is 0.9.
    """
    import csv
    import io
    import json

    shown = json.loads(run_cli("fit", "LLAMA-3.1-8B", "--gpu", "h100", "-f", "json").stdout)
    assert (shown["model"], shown["gpu"], shown["engine"]) == ("llama-3.1-8b", "h100-80gb", "vllm")
    assert (shown["kv_dtype"], shown["weights_dtype"], shown["util"]) == ("bf16", "bf16", 0.9)
    assert shown["n_gpus"] == 1 and shown["capacity_bytes"] == 85_017_493_504
    header = run_cli("fit", "llama-3.1-8b", "--gpu", "h100", "-f", "csv").stdout.splitlines()[0]
    for column in ("kv_dtype", "weights_dtype", "util", "n_gpus", "engine", "model", "gpu"):
        assert column in header.split(",")
    deployments = tmp_path / "d.yaml"
    deployments.write_text(
        "deployments:\n  - model: Llama-3.1-8B\n    gpu: h100\n    tp: 2\n    kv_dtype: fp8\n"
    )
    result = run_cli("check", str(deployments), "-f", "csv")
    (row,) = csv.DictReader(io.StringIO(result.stdout))
    assert (row["model"], row["gpu"], row["engine"]) == ("llama-3.1-8b", "h100-80gb", "vllm")
    assert (row["kv_dtype"], row["weights_dtype"], row["util"]) == ("fp8_e4m3", "bf16", "0.9")
    assert (row["tp"], row["pp"], row["n_gpus"]) == ("2", "1", "2")
