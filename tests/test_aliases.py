"""The engines' own flag names are aliases on calc and fit: each gives exactly what kvcalc's
own name gives (vLLM: --max-model-len, --gpu-memory-utilization, --kv-cache-dtype,
--tensor-parallel-size/-tp, --pipeline-parallel-size/-pp, --max-num-batched-tokens,
--max-num-seqs, --block-size; llama.cpp: -c, -np, -ctk, -ctv, -ub, --cache-type-k/-v)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from kvcalc.cli import app


def _out(*args: str) -> str:
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "100"})
    assert result.exit_code == 0, result.stderr
    return result.stdout


CALC = [
    (["--max-model-len", "32k"], ["--seq", "32k"]),
    (["--kv-cache-dtype", "fp8"], ["--kv-dtype", "fp8"]),
    (["--tensor-parallel-size", "4"], ["--tp", "4"]),
    (["-tp", "4"], ["--tp", "4"]),
    (["--pipeline-parallel-size", "2"], ["--pp", "2"]),
    (["-pp", "2"], ["--pp", "2"]),
    (["--max-num-batched-tokens", "2048"], ["--max-batched-tokens", "2048"]),
]


@pytest.mark.parametrize(("engine_flags", "kvcalc_flags"), CALC)
def test_calc_vllm_names(engine_flags: list[str], kvcalc_flags: list[str]) -> None:
    """calc: a vLLM flag name gives byte-for-byte the CSV of kvcalc's own name."""
    base = ["calc", "gemma-3-4b", "--format", "csv"]
    assert _out(*base, *engine_flags) == _out(*base, *kvcalc_flags)


LLAMA = [
    (
        ["-ctk", "q8_0", "-ctv", "q8_0", "-fa", "on"],
        ["--k-dtype", "q8_0", "--v-dtype", "q8_0", "-fa", "on"],
    ),
    (["--cache-type-k", "q4_0", "-fa", "on"], ["--k-dtype", "q4_0", "-fa", "on"]),
    (["-c", "16384", "-np", "2"], ["--ctx-size", "16384", "--parallel", "2"]),
    (["-ub", "1024"], ["--ubatch-size", "1024"]),
]


@pytest.mark.parametrize(("engine_flags", "kvcalc_flags"), LLAMA)
def test_calc_llama_cpp_names(engine_flags: list[str], kvcalc_flags: list[str]) -> None:
    """calc --engine llama.cpp: -ctk/-ctv/-c/-np/-ub mean what the long names mean."""
    base = ["calc", "gemma-3-4b", "--engine", "llama.cpp", "--seq", "8k", "--format", "csv"]
    assert _out(*base, *engine_flags) == _out(*base, *kvcalc_flags)


FIT = [
    (["--max-model-len", "16k"], ["--seq", "16k"]),
    (["--gpu-memory-utilization", "0.8"], ["--util", "0.8"]),
    (["--kv-cache-dtype", "fp8"], ["--kv-dtype", "fp8"]),
    (["--max-num-seqs", "32"], ["--batch", "32"]),
    (["-tp", "2"], ["--tp", "2"]),
    (["--tensor-parallel-size", "2"], ["--tp", "2"]),
    (["--pipeline-parallel-size", "2"], ["--pp", "2"]),
    (["--max-num-batched-tokens", "4096"], ["--max-batched-tokens", "4096"]),
]


@pytest.mark.parametrize(("engine_flags", "kvcalc_flags"), FIT)
def test_fit_vllm_names(engine_flags: list[str], kvcalc_flags: list[str]) -> None:
    """fit: a vLLM flag name gives the same JSON answer as kvcalc's own name."""
    base = ["fit", "llama-3.1-8b", "--gpu", "h100", "--format", "json"]
    assert _out(*base, *engine_flags) == _out(*base, *kvcalc_flags)


def test_fit_cache_type_k_and_v_apart() -> None:
    """fit takes --cache-type-k/-v (and -ctk/-ctv) too. Llama-3.1-8B (config.json: 32
    layers, 8 KV heads, head_dim 128) at 8,192 tokens: K in q8_0 (34 B per 32 values) is
    32 × 8 × 128/32 × 34 = 34,816 B per token, V in f16 32 × 8 × 128 × 2 = 65,536 B, so
    the KV at the asked point is 8,192 × 100,352 B."""
    import json

    base = ["fit", "llama-3.1-8b", "--engine", "llama.cpp", "--gpu", "rtx-4090", "--format", "json"]
    mixed = json.loads(_out(*base, "--cache-type-k", "q8_0", "--cache-type-v", "f16", "-fa", "on"))
    short = json.loads(_out(*base, "-ctk", "q8_0", "-ctv", "f16", "-fa", "on"))
    assert mixed == short
    assert mixed["kv_bytes"] == 8192 * (34_816 + 65_536)


@pytest.mark.parametrize("block", [16, 256])
def test_fit_block_size_is_taken(block: int) -> None:
    """fit --block-size sets vLLM's page: Llama-3.1-8B holds 2 × 32 × 8 × 128 × 2 = 131,072 B
    per token (config.json), so the capacity is budget // (block × 131,072) × block."""
    import json

    report = json.loads(
        _out("fit", "llama-3.1-8b", "--gpu", "h100", "--block-size", str(block), "--format", "json")
    )
    assert report["max_tokens"] == report["kv_budget_bytes"] // (block * 131_072) * block
