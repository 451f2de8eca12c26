"""fit --emit: the engine command line that realises a plan (kvcalc/emit.py builders and the
CLI), with the engines' own flag names (vllm/engine/arg_utils.py, sglang/srt/server_args.py,
llama.cpp common/arg.cpp, the trtllm-serve reference)."""

from __future__ import annotations

import shlex

import pytest
from typer.testing import CliRunner

from kvcalc.cli import app
from kvcalc.emit import ServeSettings, engine_command, hf_repo_of
from kvcalc.errors import KvcalcError
from kvcalc.llamacpp import LlamaCppOptions


def _fit(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["fit", *args], env={"COLUMNS": "100"})
    return result.exit_code, result.stdout, result.stderr


def _flags(argv: list[str]) -> dict[str, str]:
    """Return {flag: value} of an argv's '--flag value' pairs (bare flags map to '')."""
    out: dict[str, str] = {}
    i = 0
    while i < len(argv):
        if argv[i].startswith("-"):
            value = argv[i + 1] if i + 1 < len(argv) and not argv[i + 1].startswith("-") else ""
            out[argv[i]] = value
            i += 2 if value else 1
        else:
            i += 1
    return out


def test_acceptance_vllm_serve_carries_exactly_the_settings() -> None:
    """`fit llama-3.1-8b --gpu h100 --max-model-len 32768 --gpu-memory-utilization 0.9 --emit
    vllm` prints one `vllm serve` line of the preset's Hugging Face repo (its source is
    huggingface.co/meta-llama/Llama-3.1-8B) with exactly those two settings."""
    code, out, err = _fit(
        "llama-3.1-8b", "--gpu", "h100", "--max-model-len", "32768",
        "--gpu-memory-utilization", "0.9", "--emit", "vllm",
    )  # fmt: skip
    assert code == 0, err
    assert out.count("\n") == 1
    argv = shlex.split(out)
    assert argv[:3] == ["vllm", "serve", "meta-llama/Llama-3.1-8B"]
    assert _flags(argv[3:]) == {"--max-model-len": "32768", "--gpu-memory-utilization": "0.9"}


def test_vllm_carries_batch_cache_dtype_and_parallelism() -> None:
    """--max-num-seqs, an fp8 cache (vLLM's name fp8_e4m3), TP and PP are carried over."""
    code, out, err = _fit(
        "llama-3.1-70b", "--gpu", "h100", "--max-model-len", "8192", "--max-num-seqs", "32",
        "--kv-cache-dtype", "fp8", "-tp", "4", "-pp", "2", "--max-num-batched-tokens", "4096",
        "--emit", "vllm",
    )  # fmt: skip
    assert code == 0, err
    flags = _flags(shlex.split(out)[3:])
    assert flags == {
        "--max-model-len": "8192",
        "--gpu-memory-utilization": "0.9",
        "--max-num-seqs": "32",
        "--kv-cache-dtype": "fp8_e4m3",
        "--tensor-parallel-size": "4",
        "--pipeline-parallel-size": "2",
        "--max-num-batched-tokens": "4096",
    }


def test_sglang_command_uses_its_flags_and_its_own_fraction() -> None:
    """SGLang: --context-length, --mem-fraction-static (the fraction the plan used),
    --max-running-requests, --tp-size."""
    code, out, err = _fit(
        "qwen3-8b", "--engine", "sglang", "--gpu", "h100", "--seq", "16k", "--batch", "8",
        "--util", "0.85", "--tp", "2", "--emit", "sglang",
    )  # fmt: skip
    assert code == 0, err
    argv = shlex.split(out)
    assert argv[:5] == ["python", "-m", "sglang.launch_server", "--model-path", "Qwen/Qwen3-8B"]
    assert _flags(argv[5:]) == {
        "--context-length": "16384",
        "--mem-fraction-static": "0.85",
        "--max-running-requests": "8",
        "--tp-size": "2",
    }


def test_llama_cpp_context_is_all_slots_and_cache_types_are_ggml_names() -> None:
    """llama-server -c counts the cells of all slots: --seq 8k × 4 slots = -c 32768 -np 4;
    q8_0 K/V caches are -ctk q8_0 -ctv q8_0 (flash attention left at llama.cpp's auto)."""
    code, out, err = _fit(
        "llama-3.1-8b", "--engine", "llama.cpp", "--gpu", "rtx-4090", "--seq", "8k",
        "--batch", "4", "-ctk", "q8_0", "-ctv", "q8_0", "--emit", "llama.cpp",
    )  # fmt: skip
    assert code == 0, err
    argv = shlex.split(out)
    assert argv[:3] == ["llama-server", "-m", "Llama-3.1-8B.gguf"]
    flags = _flags(argv[3:])
    assert flags["-c"] == "32768" and flags["-np"] == "4"
    assert (flags["-ctk"], flags["-ctv"]) == ("q8_0", "q8_0")
    assert "-fa" not in flags
    assert "GGUF" in err


def test_trtllm_command_and_the_dtype_it_cannot_say() -> None:
    """trtllm-serve: --max_seq_len, --max_batch_size, --tp_size, the free-memory fraction;
    an fp8 cache is noted on stderr (it goes in the --extra_llm_api_options YAML)."""
    code, out, err = _fit(
        "llama-3.1-8b", "--engine", "trtllm", "--gpu", "h100", "--seq", "4096", "--batch", "64",
        "--kv-dtype", "fp8", "--emit", "trtllm",
    )  # fmt: skip
    assert code == 0, err
    argv = shlex.split(out)
    assert argv[:2] == ["trtllm-serve", "meta-llama/Llama-3.1-8B"]
    flags = _flags(argv[2:])
    assert flags["--max_seq_len"] == "4096" and flags["--max_batch_size"] == "64"
    assert flags["--kv_cache_free_gpu_memory_fraction"] == "0.9"
    assert "kv_cache_config.dtype" in err


def test_trtllm_command_for_a_state_model_always_sets_max_batch_size() -> None:
    """TensorRT-LLM reserves state for max_batch_size + 1 slots before its KV pool, so a
    state model's command carries --max_batch_size even at batch 1 (the default 2048 would
    reserve 2,049 slots of 49 MB for NVIDIA-Nemotron-3-Nano, more than an H200's budget)."""
    code, out, err = _fit(
        "nemotron-3-nano-30b-a3b", "--engine", "trtllm", "--gpu", "h200", "--emit", "trtllm",
    )  # fmt: skip
    assert code == 0, err
    flags = _flags(shlex.split(out)[2:])
    assert flags["--max_batch_size"] == "1"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["llama-3.1-8b", "--emit", "vllm"], "--gpu"),
        (["llama-3.1-8b", "--gpu", "h100", "--emit", "ollama"], "--emit takes"),
        (["llama-3.1-8b", "--gpu", "h100", "--emit", "sglang"], "--engine sglang"),
        (
            [
                "llama-3.1-8b",
                "--gpu",
                "h100",
                "--engine",
                "llama.cpp",
                "--tp",
                "2",
                "--emit",
                "llama.cpp",
            ],
            "tensor",
        ),
        (["llama-3.1-8b", "--gpu", "h100", "--kv-dtype", "q8_0", "--emit", "vllm"], "q8_0"),
    ],
)
def test_emit_refusals_are_one_error_line(args: list[str], message: str) -> None:
    """What an engine cannot express, or a plan for another engine, is refused: exit 2."""
    code, out, err = _fit(*args)
    assert code == 2
    assert out == ""
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err


def test_builder_leaves_engine_defaults_out() -> None:
    """With batch 1, the model's own cache dtype and one GPU, only the length and the
    fraction are written."""
    command = engine_command(
        ServeSettings("vllm", "org/m", "bf16", 4096, util=0.95, k_dtype="bf16", v_dtype="bf16")
    )
    assert command.argv == (
        "vllm", "serve", "org/m", "--max-model-len", "4096", "--gpu-memory-utilization", "0.95",
    )  # fmt: skip


def test_builder_llama_cpp_options_pass_through() -> None:
    """-b, -ub, --kv-unified and --swa-full are written when the plan sets them; an explicit
    -c wins over seq × slots."""
    options = LlamaCppOptions(
        ctx_size=20000, kv_unified=True, n_batch=1024, n_ubatch=256, swa_full=True
    )
    command = engine_command(
        ServeSettings("llama.cpp", "x.gguf", "bf16", 8192, max_num_seqs=2, llamacpp=options)
    )
    flags = _flags(list(command.argv[1:]))
    assert flags["-c"] == "20000" and flags["-b"] == "1024" and flags["-ub"] == "256"
    assert "--kv-unified" in flags and "--swa-full" in flags


def test_different_k_and_v_types_only_for_llama_cpp() -> None:
    """vLLM has one cache dtype: K q8_0 / V f16 cannot be said there."""
    with pytest.raises(KvcalcError):
        engine_command(ServeSettings("vllm", "m", "bf16", 1024, k_dtype="fp8", v_dtype="bf16"))
    command = engine_command(
        ServeSettings("llama.cpp", "m.gguf", "bf16", 1024, k_dtype="q8_0", v_dtype="fp16")
    )
    assert "-ctk" in command.argv and "-ctv" not in command.argv


@pytest.mark.parametrize(
    ("source", "repo"),
    [
        (
            "https://huggingface.co/meta-llama/Llama-3.1-8B/blob/main/config.json",
            "meta-llama/Llama-3.1-8B",
        ),
        ("https://huggingface.co/openai/gpt-oss-120b/raw/main/config.json", "openai/gpt-oss-120b"),
        ("https://arxiv.org/abs/2307.09288", None),
        (None, None),
    ],
)
def test_hf_repo_of_a_preset_source(source: str | None, repo: str | None) -> None:
    """The repo id is the two path parts after huggingface.co/."""
    assert hf_repo_of(source) == repo


def test_vllm_minimax_m3_carries_its_128_token_block() -> None:
    """MiniMax-M3's sparse attention and indexer backends take 128-token kernel blocks only
    (kvcalc/engines.py VLLM_MINIMAX_M3_SOURCES) and the plan pages it in 128: the command
    carries --block-size 128 though none was asked for."""
    code, out, err = _fit(
        "minimax-m3", "--gpu", "h200", "-tp", "8", "--max-model-len", "8192", "--emit", "vllm"
    )
    assert code == 0, err
    assert _flags(shlex.split(out)[3:])["--block-size"] == "128"
