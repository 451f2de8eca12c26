"""kvcalc verify: the log parsers on real start-up excerpts (tests/data/logs/, each with its
public source in a .meta.yaml), the term-by-term comparison, and the command's exit codes.

Expected values are read by hand from the log lines quoted in each test, or derived by
hand from the models' published config.json (cited where used), never from kvcalc's output.
"""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from kvcalc.cli import app
from kvcalc.engines import engine_profile
from kvcalc.errors import KvcalcError
from kvcalc.logs import Figure, detect_engine, figure, parse_log, unwrap
from kvcalc.presets import load_model
from kvcalc.verify import Term, Verification, match_preset, verify

LOGS = Path(__file__).parent / "data" / "logs"
GiB = 2**30
MiB = 2**20
ALL_LOGS = sorted(LOGS.glob("*.log"))


def _log(name: str) -> str:
    return (LOGS / name).read_text()


def _run(*args: str, stdin: str | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args), input=stdin, env={"COLUMNS": "100"})
    return result.exit_code, result.stdout, result.stderr


# ---- the collection -------------------------------------------------------------------


def test_collection_has_ten_vllm_logs_and_every_other_engine() -> None:
    """At least 10 real vLLM logs from several GPUs and models, plus SGLang, llama.cpp, TRT-LLM."""
    metas = [yaml.safe_load(p.with_suffix(".meta.yaml").read_text()) for p in ALL_LOGS]
    vllm = [m for m in metas if m["engine"] == "vllm"]
    assert len(vllm) >= 10
    assert len({m["gpu_preset"] for m in vllm if m["gpu_preset"]}) >= 3  # A100, H100, RTX 3090
    assert len({m["model"] for m in vllm}) >= 6
    assert {m["engine"] for m in metas} >= {"vllm", "sglang", "llama.cpp", "trtllm"}


@pytest.mark.parametrize("path", ALL_LOGS, ids=lambda p: p.name)
def test_every_log_has_a_public_source_and_is_read_as_its_engine(path: Path) -> None:
    """Each excerpt's meta names a public source URL, the GPU and command; the log parses as
    the engine the meta names."""
    meta = yaml.safe_load(path.with_suffix(".meta.yaml").read_text())
    assert meta["source"].startswith("https://github.com/")
    for key in ("engine", "engine_version", "gpu", "model", "command", "verify_args"):
        assert key in meta
    assert path.name.startswith(meta["engine"] + "-")
    assert detect_engine(path.read_text()) == meta["engine"]
    assert parse_log(path.read_text()).engine == meta["engine"]


# ---- parsers on real excerpts ---------------------------------------------------------


def test_vllm_v1_lines_of_qwen2_on_a100() -> None:
    """vLLM 0.10.1.1 (dennislee22/vLLM-benchmarking, util 0.25): every figure as printed.

    Lines: 'Model loading took 14.2488 GiB', 'Available KV cache memory: 5.01 GiB',
    'GPU KV cache size: 93,872 tokens', 'Maximum concurrency for 16,384 tokens per request:
    5.73x', 'num_gpu_blocks is\\n: 5867' (wrapped by the terminal).
    """
    log = parse_log(_log("vllm-qwen2-7b-a100-80gb-util0.25.log"))
    assert (log.engine, log.version, log.model) == ("vllm", "0.10.1.1", "Qwen2-7B-Instruct")
    s = log.settings
    assert (s["tp"], s["pp"], s["max_model_len"], s["util"]) == (1, 1, 16384, 0.25)
    assert (s["dtype"], s["kv_cache_dtype"], s["max_num_batched_tokens"]) == (
        "bfloat16",
        "auto",
        2048,
    )
    f = log.figures
    assert f["weights_bytes"].value == Fraction("14.2488") * GiB
    assert f["weights_bytes"].lo == Fraction("14.24875") * GiB
    assert f["available_kv_bytes"].value == Fraction("5.01") * GiB
    assert f["available_kv_bytes"].hi == Fraction("5.015") * GiB
    assert f["kv_tokens"].value == 93872
    assert f["max_concurrency"].value == Fraction("5.73")
    assert f["gpu_blocks"].value == 5867


def test_terminal_wrapped_settings_are_joined() -> None:
    """'tensor_parallel_si' + newline + 'ze=2' is read as tensor_parallel_size=2."""
    text = _log("vllm-qwen2-7b-a100-80gb-tp2-util0.5.log")
    assert "tensor_parallel_si\nze=2" in text
    assert "tensor_parallel_size=2" in unwrap(text)
    assert parse_log(text).settings["tp"] == 2


def test_vllm_device_line_and_default_utilisation() -> None:
    """vLLM 0.10.2 prints 'Free memory on device (78.66/79.19 GiB) ... utilization is (0.9, ...'."""
    log = parse_log(_log("vllm-llava-v1.6-mistral-7b-h100-80gb.log"))
    assert log.figures["device_bytes"].value == Fraction("79.19") * GiB
    assert log.settings["util"] == 0.9
    assert log.settings["dtype"] == "float16"
    assert log.settings["max_num_batched_tokens"] == 16384


def test_vllm_v1_early_blocks_line() -> None:
    """The January 2025 V1 engine printed '# GPU blocks: 1381' and 'Loading model weights
    took 67.7229 GB' (vLLM's GB is GiB: model_memory_usage / float(2**30))."""
    log = parse_log(_log("vllm-llama-3.1-70b-w8a8-unknown-gpu.log"))
    assert log.figures["gpu_blocks"].value == 1381
    assert log.figures["weights_bytes"].value == Fraction("67.7229") * GiB
    assert log.figures["max_concurrency"].value == Fraction("10.79")


def test_vllm_v0_profiling_summary() -> None:
    """vLLM V0 (issue 10517, RTX 3090): 'Loading model weights took 14.9888 GB', the
    'Memory profiling results: total_gpu_memory=23.58GiB ... kv_cache_size=3.81GiB
    gpu_memory_utilization=0.90' line, 'GPU blocks: 1952', concurrency 1.56x at 20000."""
    log = parse_log(_log("vllm-llama-3.1-8b-rtx-3090-len20000.log"))
    f = log.figures
    assert f["weights_bytes"].value == Fraction("14.9888") * GiB
    assert f["device_bytes"].value == Fraction("23.58") * GiB
    assert f["available_kv_bytes"].value == Fraction("3.81") * GiB
    assert f["gpu_blocks"].value == 1952
    assert log.settings["util"] == 0.9 and log.settings["concurrency_tokens"] == 20000
    refused = parse_log(_log("vllm-llama-3.1-8b-rtx-3090-len29000.log"))
    assert refused.figures["kv_tokens"].value == 23648  # "... stored in KV cache (23648)"


def test_vllm_serve_command_line_in_the_log() -> None:
    """A pasted `vllm serve MODEL --max-model-len 2048 --gpu-memory-utilization 0.98` line
    gives the model and both settings (PR 12569's log)."""
    log = parse_log(_log("vllm-llama-3.1-70b-w8a8-unknown-gpu.log"))
    assert log.model == "neuralmagic/Meta-Llama-3.1-70B-Instruct-quantized.w8a8"
    assert (log.settings["max_model_len"], log.settings["util"]) == (2048, 0.98)


def test_vllm_v0_blocks_from_available_memory_llama_3_1_8b() -> None:
    """Llama-3.1-8B (config: 32 layers, 8 KV heads, head_dim 128, bf16): 131,072 B per token,
    2 MiB per 16-token block; 3.81 GiB / 2 MiB = 1,950.7 → 1,950 blocks; vLLM's 1,952 lies
    within the rounding of '3.81' (3.815 GiB → 1,953 blocks)."""
    terms = _terms("vllm-llama-3.1-8b-rtx-3090-len20000.log")
    (blocks,) = terms["GPU blocks"]
    assert blocks.kvcalc is not None
    assert (blocks.kvcalc.value, blocks.kvcalc.hi) == (1950, 1953)
    assert blocks.error == 0


def test_sglang_pool_line() -> None:
    """'KV Cache is allocated. #tokens: 367404, K size: 8.23 GB, V size: 8.23 GB' (GB = 2^30)."""
    log = parse_log(_log("sglang-qwen3-235b-a22b-fp8-h100-tp4.log"))
    assert log.engine == "sglang"
    assert log.figures["kv_tokens"].value == 367404
    assert log.figures["k_bytes"].value == Fraction("8.23") * GiB
    assert log.figures["kv_bytes"].value == 2 * Fraction("8.23") * GiB


def test_llama_cpp_iswa_caches() -> None:
    """llama.cpp (ollama 0.30.2's runner): the non-SWA size line, and the SWA cache read from
    its creating and KV buffer lines (its size line is not in the excerpt)."""
    log = parse_log(_log("llama.cpp-gpt-oss-120b-rocm.log"))
    s = log.settings
    assert (s["n_seq_max"], s["n_ctx"], s["n_ctx_seq"], s["n_ubatch"]) == (2, 262144, 131072, 1024)
    assert s["kv_unified"] is False and s["flash_attn"] is True
    (cache,) = log.kv_caches
    assert (cache.kind, cache.cells, cache.layers, cache.seqs) == ("non-SWA", 131072, 18, 2)
    assert cache.size.value == 9216 * MiB
    assert (cache.k_type, cache.v_type) == ("f16", "f16")
    assert s["SWA_cells"] == 1280
    assert log.figures["SWA_kv_buffer_bytes"].value == 90 * MiB


def test_llama_cpp_older_kv_self_size_line() -> None:
    """The 2024 format (ollama issue 8310, llama.cpp of its runner): 'llama_kv_cache_init:
    CUDA0 KV buffer size = 224.00 MiB' and 'KV self size  =  224.00 MiB, K (f16):  112.00
    MiB, V (f16):  112.00 MiB' after 'n_seq_max = 1', 'n_ctx = 2048'."""
    text = (
        "llama_new_context_with_model: n_seq_max     = 1\n"
        "llama_new_context_with_model: n_ctx         = 2048\n"
        "llama_new_context_with_model: n_ctx_per_seq = 2048\n"
        "llama_new_context_with_model: n_batch       = 512\n"
        "llama_new_context_with_model: n_ubatch      = 512\n"
        "llama_new_context_with_model: flash_attn    = 0\n"
        "llama_kv_cache_init:      CUDA0 KV buffer size =   224.00 MiB\n"
        "llama_new_context_with_model: KV self size  =  224.00 MiB, K (f16):  112.00 MiB, "
        "V (f16):  112.00 MiB\n"
    )
    log = parse_log(text)
    assert log.engine == "llama.cpp"
    assert (log.settings["n_ctx"], log.settings["n_ctx_seq"], log.settings["n_seq_max"]) == (
        2048,
        2048,
        1,
    )
    assert log.settings["flash_attn"] is False
    assert log.figures["kv_bytes"].value == 224 * MiB
    assert (log.settings["k_type"], log.settings["v_type"]) == ("f16", "f16")


def test_trtllm_memory_and_blocks() -> None:
    """TRT-LLM 0.13: 'total: 39.39 GiB, available: 21.89 GiB' and 631 primary blocks."""
    log = parse_log(_log("trtllm-qwen1.5-7b-a100-40gb.log"))
    assert log.figures["free_bytes"].value == Fraction("21.89") * GiB
    assert log.figures["device_bytes"].value == Fraction("39.39") * GiB
    assert log.figures["kv_blocks"].value == 631


def test_ansi_colours_and_docker_prefixes_are_ignored() -> None:
    """Colour codes pasted without their ESC byte ('[1;36m(EngineCore_0 pid=82)[0;0m') and
    'service  | ' prefixes do not hide a line."""
    text = (
        "[1;36m(EngineCore_0 pid=82)[0;0m INFO 08-27 21:03:25 [gpu_worker.py:276] "
        "Available KV cache memory: 19.25 GiB\n"
        "qwen3-1  | (EngineCore_0 pid=82) INFO 08-27 21:03:26 [kv_cache_utils.py:849] "
        "GPU KV cache size: 157,648 tokens\n"
    )
    log = parse_log(text)
    assert log.figures["available_kv_bytes"].value == Fraction("19.25") * GiB
    assert log.figures["kv_tokens"].value == 157648


@pytest.mark.parametrize(
    "text",
    ["", "hello world\n", "INFO starting something else entirely\n"],
)
def test_text_that_is_no_engine_log_is_refused(text: str) -> None:
    """Text without any engine's KV-cache lines is a KvcalcError, not an empty answer."""
    with pytest.raises(KvcalcError):
        parse_log(text)


def test_figure_interval_is_half_the_last_printed_digit() -> None:
    """'5.01' GiB stands for [5.005, 5.015) GiB; '9216.00' MiB for ± 0.005 MiB."""
    f = figure("5.01", GiB, "bytes")
    assert (f.lo, f.hi) == (Fraction("5.005") * GiB, Fraction("5.015") * GiB)
    g = figure("9216.00", MiB, "bytes")
    assert g.hi - g.lo == Fraction("0.01") * MiB


# ---- comparisons, hand-derived ----------------------------------------------------------


def _terms(name: str, *args: str) -> dict[str, list[Term]]:
    meta = yaml.safe_load((LOGS / name).with_suffix(".meta.yaml").read_text())
    log = parse_log(_log(name))
    spec = load_model(meta["kvcalc_model"])
    from kvcalc.verify import VerifyOptions

    result = verify(log, spec, engine_profile(log.engine), None, VerifyOptions())
    by_name: dict[str, list[Term]] = {}
    for term in result.terms:
        by_name.setdefault(term.name, []).append(term)
    return by_name


def test_vllm_tokens_from_the_engines_own_memory_qwen2_7b() -> None:
    """Qwen2-7B (config: 28 layers, 4 KV heads, head_dim 3584/28 = 128, bf16) holds
    2·28·4·128·2 = 57,344 B per token, 917,504 B per 16-token block. From 5.01 GiB:
    floor(5.01·2^30 / 917,504) = 5,863 blocks = 93,808 tokens; vLLM's 93,872 (5,867 blocks)
    lies inside the rounding of '5.01' (5.015 GiB gives 5,868 blocks), so the error is 0."""
    terms = _terms("vllm-qwen2-7b-a100-80gb-util0.25.log")
    (tokens,) = terms["KV tokens"]
    assert tokens.kvcalc is not None and tokens.kvcalc.value == 93808
    assert tokens.kvcalc.hi == 5868 * 16
    assert tokens.error == 0
    (blocks,) = terms["GPU blocks"]
    assert blocks.kvcalc is not None and blocks.kvcalc.value == 5863


def test_vllm_tokens_per_gpu_with_tensor_parallel() -> None:
    """TP 2 halves Qwen2-7B's KV heads: 28,672 B per token per GPU; 31.83 GiB → 74,500
    blocks = 1,192,000 tokens (vLLM: 1,192,160, within the rounding of '31.83')."""
    terms = _terms("vllm-qwen2-7b-a100-80gb-tp2-util0.5.log")
    (tokens,) = terms["KV tokens"]
    assert tokens.kvcalc is not None
    assert tokens.kvcalc.value == (int(Fraction("31.83") * GiB) // (16 * 28672)) * 16 == 1192000
    assert tokens.error == 0


def test_llama_cpp_gpt_oss_cells_and_bytes_to_the_byte() -> None:
    """gpt-oss-120b (config: 36 layers alternating sliding_window 128 / full, 8 KV heads,
    head_dim 64): K+V = 2·8·64·2 = 2,048 B per token per layer. non-SWA: 131,072 cells ×
    2 streams × 18 layers × 2,048 = 9,663,676,416 B = 9216 MiB; SWA: GGML_PAD(min(131072,
    128 + n_ubatch 1024), 256) = 1,280 cells × 2 × 18 × 2,048 = 90 MiB (llama-kv-cache-iswa.cpp)."""
    terms = _terms("llama.cpp-gpt-oss-120b-rocm.log")
    assert terms["non-SWA cells"][0].kvcalc.value == 131072  # type: ignore[union-attr]
    assert terms["non-SWA bytes"][0].kvcalc.value == 9_663_676_416  # type: ignore[union-attr]
    assert terms["SWA cells"][0].kvcalc.value == 1280  # type: ignore[union-attr]
    assert terms["SWA bytes"][0].kvcalc.value == 94_371_840  # type: ignore[union-attr]
    assert all(t.error == 0 for ts in terms.values() for t in ts)


def test_sglang_pool_bytes_from_its_token_count() -> None:
    """Qwen3-235B-A22B (config: 94 layers, 4 KV heads, head_dim 128) at TP 4 keeps one KV
    head per GPU: K = 367,404 × 94 × 128 × 2 B = 8,841,209,856 B = 8.234 GiB ('8.23 GB')."""
    log = parse_log(_log("sglang-qwen3-235b-a22b-fp8-h100-tp4.log"))
    from kvcalc.verify import VerifyOptions

    result = verify(
        log, load_model("qwen3-235b-a22b"), engine_profile("sglang"), None, VerifyOptions(tp=4)
    )
    (pool,) = [t for t in result.terms if t.name == "KV pool bytes"]
    assert pool.kvcalc is not None and pool.kvcalc.value == 2 * 8_841_209_856
    assert pool.error == 0


def test_trtllm_blocks_from_its_free_memory() -> None:
    """Qwen1.5-7B is MHA (32 layers, 32 KV heads, head_dim 128): 524,288 B per fp16 token,
    33,554,432 B per 64-token block; 0.9 × 21.89 GiB / 33,554,432 = 630.4 → 631 blocks, as
    TensorRT-LLM rounds up."""
    log = parse_log(_log("trtllm-qwen1.5-7b-a100-40gb.log"))
    from kvcalc.verify import VerifyOptions

    result = verify(
        log,
        load_model("llama-2-7b"),
        engine_profile("trtllm"),
        None,
        VerifyOptions(kv_dtype="fp16", block_size=64),
    )
    (blocks,) = result.terms
    assert blocks.kvcalc is not None and blocks.kvcalc.value == 631
    assert blocks.error == 0


def test_error_is_measured_beyond_both_roundings() -> None:
    """Overlapping intervals are no error; apart, the gap over the engine's figure."""
    engine = Figure(Fraction(100), Fraction(99), Fraction(101), "tokens", "100")
    near = Figure(Fraction(102), Fraction(100), Fraction(104), "tokens", "102")
    far = Figure(Fraction(110), Fraction(108), Fraction(112), "tokens", "110")
    assert Term("t", "tokens", engine, near, "b").error == 0
    assert Term("t", "tokens", engine, far, "b").error == Fraction(7, 100)
    low = Figure(Fraction(90), Fraction(90), Fraction(90), "tokens", "90")
    assert Term("t", "tokens", engine, low, "b").error == Fraction(-9, 100)


def test_verdict_follows_the_tolerance_and_only_counting_terms() -> None:
    """A 7 % error fails at 1 % and passes at 10 %; an informational row never decides."""
    engine = Figure(Fraction(100), Fraction(99), Fraction(101), "tokens", "100")
    far = Figure(Fraction(110), Fraction(108), Fraction(112), "tokens", "110")
    rows = (Term("a", "tokens", engine, far, "b"), Term("b", "tokens", engine, engine, "b"))

    def result(tolerance: Fraction, terms: tuple[Term, ...]) -> Verification:
        return Verification("vllm", None, None, "m", None, (), terms, tolerance)

    assert not result(Fraction(1, 100), rows).agrees
    assert result(Fraction(10, 100), rows).agrees
    info = (Term("a", "tokens", engine, far, "b", counts=False), rows[1])
    assert result(Fraction(1, 100), info).agrees


@pytest.mark.parametrize(
    ("name", "preset"),
    [
        ("meta-llama/Llama-3.1-8B-Instruct", "llama-3.1-8b"),
        ("/path/to/Qwen3-235B-A22B-FP8", "qwen3-235b-a22b"),
        ("gpt-oss-120b", "gpt-oss-120b"),
        ("Qwen2-7B-Instruct", None),
        (None, None),
    ],
)
def test_log_model_names_map_to_presets(name: str | None, preset: str | None) -> None:
    """A log's model (repo id, path or bare name) maps to the preset whose source repo it is."""
    catalogue = {
        "llama-3.1-8b": "meta-llama/Llama-3.1-8B",
        "qwen3-235b-a22b": "Qwen/Qwen3-235B-A22B",
        "gpt-oss-120b": "openai/gpt-oss-120b",
        "qwen2.5-7b": "Qwen/Qwen2.5-7B",
    }
    assert match_preset(name, catalogue) == preset


# ---- the command ----------------------------------------------------------------------


def test_cli_exact_llama_cpp_log_agrees_exit_0() -> None:
    """The llama.cpp excerpt agrees to the byte: exit 0, the verdict line on stdout."""
    code, out, err = _run(
        "verify", str(LOGS / "llama.cpp-gpt-oss-120b-rocm.log"), "-m", "gpt-oss-120b"
    )
    assert code == 0, err
    assert "non-SWA bytes" in out and "agrees" in out


def test_cli_json_is_one_object_with_both_figures_and_the_error() -> None:
    """--format json prints one object: each term with the engine's and kvcalc's figures."""
    code, out, _ = _run(
        "verify",
        str(LOGS / "vllm-qwen2-7b-a100-80gb-util0.25.log"),
        "-m",
        "qwen2.5-7b",
        "-f",
        "json",
    )
    data = json.loads(out)
    tokens = next(t for t in data["terms"] if t["term"] == "KV tokens")
    assert (tokens["engine"], tokens["kvcalc"], tokens["error"]) == (93872, 93808, 0.0)
    assert code == (0 if data["agrees"] else 1)


def test_cli_reads_stdin() -> None:
    """LOG '-' reads the log from stdin."""
    code, out, err = _run(
        "verify",
        "-",
        "-m",
        "gpt-oss-120b",
        "-f",
        "json",
        stdin=_log("llama.cpp-gpt-oss-120b-rocm.log"),
    )
    assert code == 0, err
    assert json.loads(out)["engine"] == "llama.cpp"


def test_cli_disagreement_exits_1() -> None:
    """A term outside the tolerance exits 1: kvcalc's weights for llava-v1.6-mistral-7b
    from the Mistral-7B preset leave out the CLIP vision tower, 4 % under vLLM's
    'Model loading took 14.0786 GiB', so the 1 % default fails."""
    code, out, _ = _run(
        "verify", str(LOGS / "vllm-llava-v1.6-mistral-7b-h100-80gb.log"), "-m", "mistral-7b-v0.3"
    )
    assert code == 1
    assert "does not agree" in out


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (["verify", "/nonexistent/engine.log"], None, "cannot read"),
        (["verify", "-"], "hello\n", "not a start-up log"),
        (["verify", str(LOGS / "vllm-qwen3-235b-a22b-fp8-h100-tp4.log")], None, "--model"),
        (["verify", str(LOGS / "vllm-qwen2-7b-a100-80gb-util0.25.log")], None, "--model"),
        (
            [
                "verify",
                str(LOGS / "vllm-llama-3.1-70b-w8a8-unknown-gpu.log"),
                "-m",
                "qwen2.5-7b",
                "--tolerance",
                "x",
            ],
            None,
            "--tolerance",
        ),
        (["verify", str(LOGS / "llama.cpp-gpt-oss-120b-rocm.log"), "-m", "nope"], None, "nope"),
    ],
)
def test_cli_unreadable_input_is_one_error_line_exit_2(
    args: list[str], stdin: str | None, message: str
) -> None:
    """Unreadable logs, logs of no engine, unknown models and bad options: exit 2, one line."""
    code, out, err = _run(*args, stdin=stdin)
    assert code == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]
    assert "Traceback" not in err


@pytest.mark.parametrize("path", ALL_LOGS, ids=lambda p: p.name)
def test_verify_runs_on_every_collected_log(path: Path) -> None:
    """On each real log, verify (with the meta's options) prints the engine's figure,
    kvcalc's and the error for at least one term, and exits 0 or 1 by its verdict."""
    meta = yaml.safe_load(path.with_suffix(".meta.yaml").read_text())
    code, out, err = _run("verify", str(path), *meta["verify_args"], "-f", "json")
    assert code in (0, 1), err
    data = json.loads(out)
    compared = [t for t in data["terms"] if t["engine"] is not None and t["kvcalc"] is not None]
    assert compared and all(t["error"] is not None for t in compared)
    assert code == (0 if data["agrees"] else 1)


def test_verify_doc_is_current() -> None:
    """docs/verify.md equals what scripts/make_verify_docs.py generates now (run it after
    changing the planner, the presets or the logs)."""
    import importlib.util

    root = Path(__file__).resolve().parent.parent
    spec = importlib.util.spec_from_file_location(
        "make_verify_docs", root / "scripts" / "make_verify_docs.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert (root / "docs" / "verify.md").read_text() == module.render()
