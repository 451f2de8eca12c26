"""Regenerate docs/verify.md: `kvcalc verify` on every log in tests/data/logs/ (tests/test_verify.py
fails on drift). Run after changing the planner, the presets or the logs."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "verify.md"
LOGS = ROOT / "tests" / "data" / "logs"
EXAMPLE = ["verify", "tests/data/logs/llama.cpp-gpt-oss-120b-rocm.log", "--model", "gpt-oss-120b"]
EMIT_EXAMPLE = [
    "fit", "llama-3.1-8b", "--gpu", "h100", "--max-model-len", "32768",
    "--gpu-memory-utilization", "0.9", "--emit", "vllm",
]  # fmt: skip

INTRO = """\
# Checking kvcalc against an engine's own log: `kvcalc verify`

`kvcalc verify LOG` reads a start-up log of vLLM, SGLang, llama.cpp (llama-server,
llama-cli) or TensorRT-LLM (a file, or `-` for stdin), extracts what the engine says about
itself, runs kvcalc for the same settings and prints both side by side, term by term. It
exits 0 when every compared term agrees within `--tolerance` (1 % by default), 1 when one
does not, and 2 when the log cannot be read (one `error:` line).

What each engine's log gives (kvcalc/logs.py, one parser per engine):

| engine | settings read | figures read |
|---|---|---|
| vLLM (V0 summary, V1) | model, dtype, max model len, tensor/pipeline parallel size, gpu_memory_utilization, kv_cache_dtype, block size, max_num_batched_tokens, max_num_seqs, quantization; a `vllm serve` line's flags | `Model loading took X GiB`, `Available KV cache memory: X GiB`, `GPU KV cache size: N tokens`, `# GPU blocks` / `num_gpu_blocks`, `Maximum concurrency for N tokens per request: X x`, the device total of `Free memory on device (a/b GiB)` |
| SGLang | model_path, tp/pp size, mem_fraction_static, kv_cache_dtype, context length, page size | `KV Cache is allocated. #tokens: N, K size: X GB, V size: X GB` (SGLang's GB is 2^30 B), `Load weight end ... mem usage=X GB` |
| llama.cpp | n_seq_max (`-np`), n_ctx (`-c`), n_ctx_seq, n_batch (`-b`), n_ubatch (`-ub`), flash_attn, kv_unified | each `llama_kv_cache: size = X MiB (N cells, L layers, S seqs), K (type) ..., V (type) ...` (named non-SWA / SWA by the `creating ... KV cache` line before it, or read from its `KV buffer size` lines), the older `KV self size`, model buffers |
| TensorRT-LLM | tokens per block | `Memory usage when calculating max tokens in paged kv cache: total: X GiB, available: Y GiB`, `Number of blocks in KV cache primary pool`, `Allocated X GiB for max tokens in paged KV cache (N)` |

Two kinds of rows (kvcalc/verify.py):

- **from the engine's own memory**: kvcalc takes one figure of the log as its input (vLLM's
  available KV memory, TensorRT-LLM's free memory, SGLang's token count, llama.cpp's context)
  and computes the rest with its KV layout: bytes per token on one GPU, blocks, hybrid
  groups, streams, padding. These rows test kvcalc's formulas.
- **kvcalc's budget**: kvcalc predicts the figure end to end from the GPU's memory, the
  utilisation, the weights and its reserve model (docs/planning.md). Where the log reports
  the weights (`Model loading took ...`), that figure is the weights term of the budget by
  default, and the row says so (`--weights kvcalc` uses kvcalc's own estimate instead);
  kvcalc's weight estimate is compared on its own `weights` row either way.

Every printed figure is rounded ("5.01 GiB" is anything in [5.005, 5.015) GiB); kvcalc
carries that interval through, and a row's error is how far kvcalc's interval lies from the
engine's, relative to the engine's figure: 0 when they overlap. The settings come from the
log; anything it does not print takes an option (`--model`, `--gpu`, `--gpu-mem`, `--tp`,
`--max-model-len`, `--util` or `--gpu-memory-utilization`, `--kv-cache-dtype`,
`--weights-dtype`, `--block-size`, `--reserve`) or the engine's default, and the output
lists which, with its source.

```console
$ kvcalc {example}
{example_output}
```

`--format json` prints one object: `schema_version` (1), `engine`, `engine_version`,
`log_model` (as the log names it), `model` (the kvcalc preset used), `gpu`, `tolerance`,
`agrees`, `settings` (each `name`, `value`, `source`: log, option, engine default, model),
`terms` (each `term`, `unit`, `engine` and `engine_text` as printed, `kvcalc`,
`kvcalc_low` / `kvcalc_high` (the interval the inputs' rounding allows), `difference`,
`error` (beyond the rounding, a fraction of the engine's figure), `within_tolerance`,
`counts` (part of the verdict), `basis`) and `notes`. Bytes, tokens, blocks and cells are
integers; concurrency is a float. `--format csv` prints the terms.

## The engines' vocabulary, in and out

`calc` and `fit` take the engines' own flag names where they mean what kvcalc's option
means, so a command line can be pasted from an engine's:

| engine's flag | kvcalc's option | on |
|---|---|---|
| `--max-model-len` (vLLM) | `--seq` | calc, fit |
| `--gpu-memory-utilization` (vLLM) | `--util` | fit |
| `--kv-cache-dtype` (vLLM, SGLang) | `--kv-dtype` | calc, fit |
| `--tensor-parallel-size`, `-tp` | `--tp` | calc, fit |
| `--pipeline-parallel-size`, `-pp` | `--pp` | calc, fit |
| `--max-num-batched-tokens` (vLLM) | `--max-batched-tokens` | calc, fit |
| `--max-num-seqs` (vLLM) | `--batch` | fit |
| `--block-size` (vLLM) | `--block-size` | calc, fit |
| `--cache-type-k`, `-ctk` / `--cache-type-v`, `-ctv` (llama.cpp) | `--k-dtype` / `--v-dtype` | calc, fit |
| `-c`, `-np`, `-b`, `-ub`, `-fa`, `--kv-unified`, `--swa-full` (llama.cpp) | the same names, with llama.cpp's meaning | calc, fit |

`fit ... --emit vllm|sglang|llama.cpp|trtllm` prints, instead of the plan, the engine
command line that realises it (kvcalc/emit.py): the model's Hugging Face repo (from the
preset's source), the max model len, the utilisation the budget used (vLLM
`--gpu-memory-utilization`, SGLang `--mem-fraction-static`, TensorRT-LLM
`--kv_cache_free_gpu_memory_fraction`), the batch as `--max-num-seqs` /
`--max-running-requests` / `--max_batch_size` when above 1, the cache dtype in the engine's
spelling, the parallelism; for llama-server the context of all slots (`-c` = seq × slots),
`-np`, `-ctk`/`-ctv`, `-b`/`-ub`, `-fa`, `--kv-unified`. It needs `--gpu` and a plan made
for the same engine (`--engine`); what the engine cannot express is refused in one
`error:` line, what its command line cannot carry is said on stderr.

```console
$ kvcalc {emit_example}
{emit_output}
```
"""

SUMMARY = """
## The collected logs

Real start-up logs from public issues and repositories, kept verbatim (trimmed to the lines
verify reads) in `tests/data/logs/`, each with a `.meta.yaml` giving its source, the engine
version, the GPU, the command line and the options `verify` needs beside the log. The table
is `kvcalc verify LOG <verify_args>` on each (regenerated by `python scripts/make_verify_docs.py`,
checked by tests/test_verify.py). "KV tokens (engine's memory)": kvcalc's token count from
the engine's own available KV memory; "KV tokens (budget)": kvcalc's end-to-end
prediction; "reserve": the engine's non-KV, non-weight memory derived from its own figures
(budget − weights − available KV memory) beside kvcalc's reserve model (informational: the
budget rows already carry its error); errors are beyond the printed rounding.

| log | engine | GPU | model (kvcalc preset) | weights | KV tokens (engine's memory) | KV tokens (budget) | reserve: engine's (derived) vs kvcalc's | verdict at 1 % |
|---|---|---|---|---|---|---|---|---|
"""


FINDINGS = """
What the rows fed with the engine's own memory show: kvcalc's KV layout (bytes per token on
one GPU, 16-token blocks, TP head split, gpt-oss's sliding/full groups in vLLM, llama.cpp's
iSWA streams and padding, SGLang's pool, TensorRT-LLM's blocks rounded up) reproduces the
engines' token, block, cell and byte counts within the printed rounding on every log but
one: the Qwen3-235B vLLM issue quotes one worker's available memory, and vLLM sizes the
cache by the smallest of its workers' (kv_cache_utils.get_kv_cache_configs). The budget rows
measure kvcalc's reserve model against real start-ups: the "reserve" column is the gap to
close (docs/planning.md). Weights agree to a fraction of a percent for the dense 16-bit
checkpoints; gpt-oss-120b on A100 (vLLM's Marlin path for mxfp4 on GPUs without FP4) loads
more than its published bytes, and the multimodal checkpoints (llava, Qwen3-VL) also load a
vision tower: the Qwen3-VL log is read with the qwen3-vl-30b-a3b preset, which counts its
tower (`tower` in the spec, docs/weights.md: 2.0% under the logged weights, 3.7% with the
text preset qwen3-30b-a3b); no llava preset counts one.
"""


def _run(args: list[str]) -> tuple[int, str]:
    from typer.testing import CliRunner

    from kvcalc.cli import app

    result = CliRunner().invoke(app, args, env={"COLUMNS": "100", "NO_COLOR": "1"})
    return result.exit_code, result.stdout + result.stderr


def _pct(term: dict[str, Any] | None) -> str:
    if term is None or term["error"] is None:
        return "-"
    return f"{term['engine_text']} vs {_value(term)} ({term['error']:+.2%})"


def _value(term: dict[str, Any]) -> str:
    value = term["kvcalc"]
    if value is None:
        return "-"
    if term["unit"] == "bytes":
        if abs(value) >= 2**30:
            return f"{value / 2**30:,.2f} GiB"
        return f"{value / 2**20:,.2f} MiB"
    if term["unit"] == "x":
        return f"{value:,.2f}x"
    return f"{value:,}"


def _find(terms: list[dict[str, Any]], name: str, budget: bool) -> dict[str, Any] | None:
    for t in terms:
        if t["term"] == name and t["basis"].startswith("kvcalc's budget") == budget:
            return t
    return None


def render() -> str:
    """Return docs/verify.md as generated now."""
    shown = "\n".join(line.rstrip() for line in _run(EXAMPLE)[1].splitlines()).strip()
    emitted = "\n".join(line.rstrip() for line in _run(EMIT_EXAMPLE)[1].splitlines()).strip()
    intro = INTRO.format(
        example=" ".join(EXAMPLE),
        example_output=shown,
        emit_example=" ".join(EMIT_EXAMPLE),
        emit_output=emitted,
    )
    parts = [intro, SUMMARY]
    details = ["\n## Term by term\n"]
    for path in sorted(LOGS.glob("*.log")):
        meta = yaml.safe_load(path.with_suffix(".meta.yaml").read_text())
        args = ["verify", str(path.relative_to(ROOT)), *meta["verify_args"], "--format", "json"]
        code, out = _run(args)
        data = json.loads(out)
        terms = data["terms"]
        main = "KV pool bytes" if data["engine"] == "sglang" else "KV tokens"
        if data["engine"] == "llama.cpp":
            main = "all KV bytes"
        if data["engine"] == "trtllm":
            main = "KV blocks"
        own = _find(terms, main, budget=False)
        end = _find(terms, "KV tokens" if data["engine"] != "sglang" else "KV pool tokens", True)
        weights = _find(terms, "weights", budget=False)
        reserve = _find(terms, "reserve", budget=False)
        version = str(meta["engine_version"])
        short = version.split(" ")[0] if version[:1].isdigit() else "?"
        verdict = "agrees" if code == 0 else "does not agree"
        parts.append(
            f"| [{path.stem}]({meta['source']}) | {meta['engine']} {short} "
            f"| {meta['gpu'].split(' (')[0]} | {meta['model'].split(' (')[0]} ({data['model']}) "
            f"| {_pct(weights)} | {_pct(own)} | {_pct(end)} | {_pct(reserve)} | {verdict} |\n"
        )
        details.append(
            f"\n### {path.stem}\n\n{meta['engine']} {version} · {meta['gpu']} · "
            f"{meta['model']} · [source]({meta['source']})\n\n"
            f"`{meta['command'].strip()}`\n\n"
            f"`kvcalc verify {path.relative_to(ROOT)} {' '.join(meta['verify_args'])}`\n\n"
            "| term | engine | kvcalc | error | kvcalc from |\n|---|---|---|---|---|\n"
        )
        for t in terms:
            error = "-" if t["error"] is None else f"{t['error']:+.2%}"
            basis = t["basis"].replace("|", "\\|")
            details.append(
                f"| {t['term']} | {t['engine_text'] or '-'} | {_value(t)} | {error} | {basis} |\n"
            )
        if data["notes"]:
            details.append("\n" + "\n".join(f"Note: {n}" for n in data["notes"]) + "\n")
    return "".join(parts) + FINDINGS + "".join(details)


def main() -> int:
    DOC.write_text(render())
    sys.stdout.write(f"wrote {DOC.relative_to(ROOT)}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
