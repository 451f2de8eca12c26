"""Hugging Face Hub ids as MODEL, through a fake huggingface_hub: no test touches the network.

The fake serves the published meta-llama/Llama-3.1-8B config.json (tests/data/hf_configs)
and safetensors headers given here; offline is forced with HF_HUB_OFFLINE=1 or an
unreachable Hub, and must be one error line, fast, without retries.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from kvcalc.hub import is_hub_id
from tests.conftest import HF_CONFIGS, Result

Run = Callable[..., Result]
REPO = "meta-llama/Llama-3.1-8B"


def _tensor(start: int, end: int) -> Any:
    return types.SimpleNamespace(data_offsets=(start, end))


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[tuple[str, str, bool]]:
    """A fake huggingface_hub online: records (repo, filename, local_files_only) asked."""
    asked: list[tuple[str, str, bool]] = []

    def hf_hub_download(repo: str, filename: str, **kwargs: Any) -> str:
        asked.append((repo, filename, bool(kwargs.get("local_files_only"))))
        if filename != "config.json":
            raise FileNotFoundError(filename)
        target = tmp_path / "cache" / "config.json"
        target.parent.mkdir(exist_ok=True)
        shutil.copy(HF_CONFIGS / "llama-3.1-8b.json", target)
        return str(target)

    def get_safetensors_metadata(repo: str, **kwargs: Any) -> Any:
        # two shards: 3 + 2 tensors; bytes = sum of (end - start) of every tensor
        files = {
            "model-00001-of-00002.safetensors": types.SimpleNamespace(
                tensors={"a": _tensor(0, 1000), "b": _tensor(1000, 3000), "c": _tensor(3000, 3500)}
            ),
            "model-00002-of-00002.safetensors": types.SimpleNamespace(
                tensors={"d": _tensor(0, 4096), "e": _tensor(4096, 5000)}
            ),
        }
        return types.SimpleNamespace(files_metadata=files, parameter_count={"BF16": 4250})

    fake = types.SimpleNamespace(
        hf_hub_download=hf_hub_download, get_safetensors_metadata=get_safetensors_metadata
    )
    monkeypatch.setitem(sys.modules, "huggingface_hub", fake)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr("kvcalc.hub._reachable", lambda: True)
    return asked


@pytest.mark.parametrize(
    ("name", "expected"),
    [("meta-llama/Llama-3.1-8B", True), ("org/name@main", True), ("Qwen/Qwen3-8B", True),
     ("opt-30b", False), ("./x/config.json", False), ("org/spec.yaml", False),
     ("/abs/path", False), ("a/b/c", False)],
)  # fmt: skip
def test_is_hub_id(name: str, expected: bool) -> None:
    """org/name (optionally @revision) is a Hub id; paths and spec files are not."""
    assert is_hub_id(name) is expected


def test_calc_takes_an_org_name_model(run_cli: Run, hub: list[tuple[str, str, bool]]) -> None:
    """`kvcalc calc meta-llama/Llama-3.1-8B` reads its config.json from the Hub: 32 layers ×
    8 KV heads × 128 × 2 (K, V) × 2 B × 8192 tokens = 1,073,741,824 B (the published config)."""
    result = run_cli("calc", REPO, "--format", "json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["model"] == REPO and data["total_bytes"] == 1_073_741_824
    assert hub[0] == (REPO, "config.json", False)


def test_modelopt_recipe_is_fetched_beside_the_config(
    run_cli: Run, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A ModelOpt checkpoint whose recipe lives only in hf_quant_config.json (nvidia/Llama-3.1-
    70B-Instruct-FP8: kv_cache_quant_algo FP8) is read with it: vLLM's auto KV dtype is then
    fp8, 80 layers × 8 KV heads × 128 × 2 (K, V) × 1 B = 163,840 B a token."""
    cache = tmp_path / "snapshot"
    cache.mkdir()
    stem = "llama-3.1-70b-fp8"
    sources = {
        "config.json": HF_CONFIGS / f"{stem}.json",
        "hf_quant_config.json": HF_CONFIGS / "hf_quant" / f"{stem}.json",
    }

    def hf_hub_download(repo: str, filename: str, **kwargs: Any) -> str:
        if filename not in sources:
            raise FileNotFoundError(filename)
        shutil.copy(sources[filename], cache / filename)
        return str(cache / filename)

    def no_safetensors(repo: str, **kwargs: Any) -> Any:
        raise FileNotFoundError("model.safetensors")

    fake = types.SimpleNamespace(
        hf_hub_download=hf_hub_download, get_safetensors_metadata=no_safetensors
    )
    monkeypatch.setitem(sys.modules, "huggingface_hub", fake)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr("kvcalc.hub._reachable", lambda: True)
    result = run_cli("calc", "nvidia/Llama-3.1-70B-Instruct-FP8", "--engine", "vllm",
                     "--seq", "1024", "--format", "json")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["kv_dtype"] == "fp8_e4m3"
    assert data["bytes_per_token"] == 80 * 8 * 128 * 2 * 1


def test_hf_option_still_works(run_cli: Run, hub: list[tuple[str, str, bool]]) -> None:
    """--hf ORG/NAME is the same as MODEL ORG/NAME."""
    result = run_cli("fit", "--hf", REPO, "--gpu", "h100-80gb", "--format", "json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["kv_bytes"] == 1_073_741_824


def test_presets_show_and_import_take_it(
    run_cli: Run, hub: list[tuple[str, str, bool]], tmp_path: Path
) -> None:
    """presets show and import take org/name; the spec cites the Hub URL, and the checkpoint
    size is the safetensors headers' exact sum: 1000 + 2000 + 500 + 4096 + 904 = 8,500 B."""
    shown = run_cli("presets", "show", REPO, "--format", "json")
    assert shown.exit_code == 0, shown.stderr
    data = json.loads(shown.stdout)
    assert data["source"] == f"https://huggingface.co/{REPO}/blob/main/config.json"
    assert data["checkpoint_bytes"] == 8_500
    out = tmp_path / "llama.yaml"
    imported = run_cli("import", REPO, "-o", str(out))
    assert imported.exit_code == 0, imported.stderr
    assert yaml.safe_load(out.read_text())["checkpoint_bytes"] == 8_500


def test_offline_flag_is_one_error_from_the_cache_only(
    run_cli: Run, hub: list[tuple[str, str, bool]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With HF_HUB_OFFLINE=1 only the cache is asked (local_files_only), the Hub is never
    probed, and a miss is one error line with a hint."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    def no_probe() -> bool:
        raise AssertionError("probed the network while offline")

    monkeypatch.setattr("kvcalc.hub._reachable", no_probe)

    def cache_miss(repo: str, filename: str, **kwargs: Any) -> str:
        hub.append((repo, filename, bool(kwargs.get("local_files_only"))))
        raise FileNotFoundError("not in the cache")

    monkeypatch.setattr(sys.modules["huggingface_hub"], "hf_hub_download", cache_miss)
    result = run_cli("calc", REPO)
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert "HF_HUB_OFFLINE is set" in result.stderr and "pass the file" in result.stderr
    assert hub == [(REPO, "config.json", True)]


def test_unreachable_hub_is_fast_and_quiet(
    run_cli: Run, hub: list[tuple[str, str, bool]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unreachable Hub (the probe fails) means the cache only: no retries, one line, fast."""
    monkeypatch.setattr("kvcalc.hub._reachable", lambda: False)

    def cache_miss(repo: str, filename: str, **kwargs: Any) -> str:
        assert kwargs.get("local_files_only") is True
        raise FileNotFoundError("not in the cache")

    monkeypatch.setattr(sys.modules["huggingface_hub"], "hf_hub_download", cache_miss)
    started = time.monotonic()
    result = run_cli("import", "org/name")
    assert time.monotonic() - started < 5
    assert result.exit_code == 2
    assert result.stderr.startswith("error: cannot fetch org/name/config.json: the Hub cannot")
    assert result.stderr.count("\n") == 1


def test_probe_times_out_quickly(monkeypatch: pytest.MonkeyPatch) -> None:
    """The reachability probe is one TCP connect with a 3 s timeout (socket faked here)."""
    import socket

    from kvcalc import hub

    seen: list[float] = []

    def connect(address: tuple[str, int], timeout: float) -> Any:
        seen.append(timeout)
        raise TimeoutError

    monkeypatch.setattr(socket, "create_connection", connect)
    for proxy in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(proxy, raising=False)
    assert hub._reachable() is False and seen == [hub.PROBE_TIMEOUT_S]


def test_without_huggingface_hub_says_which_extra(
    run_cli: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without huggingface_hub installed an org/name MODEL names the extra to install."""
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # import fails
    result = run_cli("calc", REPO)
    assert result.exit_code == 2 and "pip install 'kvcalc[hf]'" in result.stderr
    both = run_cli("calc", "llama-3.1-8b", "--hf", "org/name")
    assert both.exit_code == 2 and "exactly one" in both.stderr
