#!/usr/bin/env python3
"""Measure what a transformers decode step holds at the out-of-memory boundary (issue 11, part 2).

Run on a CUDA GPU (no network needed): for each case, a model is built from a config in
tests/data/hf_configs with random bf16 weights and sdpa attention, a DynamicCache is filled to
seq_len - 2 tokens per sequence in its steady decode state (see Runner.fill), and two greedy
decode steps are run as generate() runs them (one new token per sequence, an all-ones
attention mask, fp32 copy of the last logits, argmax), so the cache ends at seq_len tokens. The batch is searched for the largest that runs
(OutOfMemoryError anywhere, fill or step, counts as not running); each trial records the CUDA
caching allocator's bytes.

    python scripts/measure_hf_peak.py --out DIR [--only NAME ...] [--budget-s 500]
    python scripts/measure_hf_peak.py --dry-run   # CPU, tiny layers: checks the code paths

Writes DIR/hf_peak.jsonl (one JSON object per model and seq_len, with versions and settings)
and DIR/log.txt. scripts/measure_hf_peak.py --split DIR/hf_peak.jsonl writes them to
tests/data/hf_peak/<model>-<seq>.json.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "tests" / "data" / "hf_configs"
# (config name, seq_lens): dense GQA, sliding-window (hybrid and all-sliding), MLA + MoE
CASES: tuple[tuple[str, tuple[int, ...]], ...] = (
    ("llama-3.2-1b", (1024, 8192, 32768)),
    ("qwen3-4b", (2048, 16384)),
    ("gemma-3-1b", (4096, 32768)),
    ("gemma-2-9b", (8192,)),
    ("mistral-7b-v0.1", (16384,)),
    ("deepseek-v2-lite", (4096, 16384)),
    ("llama-3.2-3b", (4096,)),
    # measured after the model was written, as a held-out check
    ("qwen2.5-7b", (8192,)),
    ("llama-3.1-8b", (32768,)),
    ("phi-3-mini-4k", (4096,)),
    ("mistral-nemo-12b", (16384,)),
    ("gemma-2-27b", (8192,)),
)


def log(msg: str, out: Path | None) -> None:
    line = f"[{time.strftime('%H:%M:%S')}] {msg}"
    print(line, flush=True)
    if out is not None:
        with (out / "log.txt").open("a") as f:
            f.write(line + "\n")


def versions(torch: Any, transformers: Any) -> dict[str, Any]:
    info: dict[str, Any] = {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "cuda_runtime": torch.version.cuda,
    }
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info["gpu_name"] = props.name
        info["gpu_total_memory_bytes"] = props.total_memory
        info["cudnn"] = torch.backends.cudnn.version()
        try:
            smi = subprocess.run(
                ["nvidia-smi", "--query-gpu=driver_version,memory.total", "--format=csv,noheader"],
                capture_output=True,
                text=True,
                timeout=30,
            ).stdout.strip()
            info["nvidia_smi"] = smi
            info["driver"] = smi.split(",")[0].strip()
        except (OSError, subprocess.SubprocessError):
            info["driver"] = None
    return info


def load_config(name: str, dry_run: bool) -> Any:
    from transformers import AutoConfig

    raw = json.loads((CONFIGS / f"{name}.json").read_text())
    raw.pop("auto_map", None)
    if dry_run:  # tiny but same attention geometry kinds
        raw["num_hidden_layers"] = min(raw.get("num_hidden_layers", 2), 6)
        for key in ("n_routed_experts",):
            if key in raw:
                raw[key] = min(raw[key], 8)
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "config.json").write_text(json.dumps(raw))
        config = AutoConfig.from_pretrained(tmp)
    return config


def is_oom(exc: BaseException) -> bool:
    text = str(exc)
    return "out of memory" in text.lower() or "CUBLAS_STATUS_ALLOC_FAILED" in text


class Runner:
    def __init__(self, torch: Any, model: Any, device: str, probe: list[dict[str, Any]]) -> None:
        self.torch = torch
        self.model = model
        self.device = device
        self.probe = probe  # per layer: key/value heads and dims, dtype, sliding window

    def kv_bytes_per_request(self, seq: int) -> int:
        total = 0
        for p in self.probe:
            tokens = seq if p["window"] is None else min(seq, p["window"])
            total += tokens * (p["k_heads"] * p["k_dim"] + p["v_heads"] * p["v_dim"]) * p["elt"]
        return total

    def fill(self, batch: int, seq: int) -> Any:
        """Return a DynamicCache holding seq - 2 tokens per sequence, allocated in place.

        Tensors are assigned directly (no torch.cat), so filling has no transient of its
        own: full layers hold exactly seq - 2 tokens, sliding layers (seq - 2 >= W) a view of
        the last W - 1 tokens over a W-token tensor, as DynamicSlidingWindowLayer leaves it
        after a decode step.
        """
        from transformers import DynamicCache

        torch = self.torch
        cache = DynamicCache(config=self.model.config)
        held = seq - 2
        for i, p in enumerate(self.probe):
            window = p["window"]
            n = held if window is None else min(held, window)
            dtype = getattr(torch, p["dtype"])
            k = torch.zeros((batch, p["k_heads"], n, p["k_dim"]), dtype=dtype, device=self.device)
            v = torch.zeros((batch, p["v_heads"], n, p["v_dim"]), dtype=dtype, device=self.device)
            if i >= len(cache.layers):  # a cache that grows its layer list lazily
                cache.update(k[:, :, :1], v[:, :, :1], i)
            layer = cache.layers[i]
            if not layer.is_initialized:
                layer.lazy_initialization(k, v)
            if window is not None and held >= window:
                k, v = k[:, :, 1:], v[:, :, 1:]
            layer.keys, layer.values = k, v
            if window is not None and hasattr(layer, "cumulative_length"):
                layer.cumulative_length = held
            del k, v
        return cache

    def step(self, cache: Any, batch: int, seq: int) -> Any:
        """Run one greedy decode step for the token at position seq - 1, as generate() does."""
        torch = self.torch
        ids = torch.zeros((batch, 1), dtype=torch.long, device=self.device)
        mask = torch.ones((batch, seq), dtype=torch.long, device=self.device)
        pos = torch.full((batch, 1), seq - 1, dtype=torch.long, device=self.device)
        out = self.model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=pos,
            past_key_values=cache,
            use_cache=True,
        )
        logits = out.logits[:, -1, :].to(copy=True, dtype=torch.float32)
        token = logits.argmax(dim=-1)
        del out, logits
        return token

    def trial(self, batch: int, seq: int) -> dict[str, Any]:
        torch = self.torch
        cuda = self.device == "cuda"
        result: dict[str, Any] = {"batch": batch}
        gc.collect()
        if cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
            result["allocated_start"] = torch.cuda.memory_allocated()
        phase = "fill"
        try:
            with torch.inference_mode():
                cache = self.fill(batch, seq)
                if cuda:
                    torch.cuda.synchronize()
                    result["allocated_after_fill"] = torch.cuda.memory_allocated()
                    result["peak_allocated_fill"] = torch.cuda.max_memory_allocated()
                    result["reserved_after_fill"] = torch.cuda.memory_reserved()
                    torch.cuda.reset_peak_memory_stats()
                phase = "decode"
                # two steps: seq - 2 -> seq - 1 -> seq tokens; the second one runs on the
                # allocator state a decode step leaves, as in the middle of generate()
                self.step(cache, batch, seq - 1)
                if cuda:
                    torch.cuda.synchronize()
                    result["peak_allocated_decode1"] = torch.cuda.max_memory_allocated()
                    result["peak_reserved_decode1"] = torch.cuda.max_memory_reserved()
                    torch.cuda.reset_peak_memory_stats()
                phase = "decode2"
                self.step(cache, batch, seq)
                if cuda:
                    torch.cuda.synchronize()
                    result["peak_allocated_decode"] = torch.cuda.max_memory_allocated()
                    result["peak_reserved_decode"] = torch.cuda.max_memory_reserved()
                    result["allocated_after_decode"] = torch.cuda.memory_allocated()
                    free, total = torch.cuda.mem_get_info()
                    result["free_after_decode"] = free
                    result["nontorch_after_decode"] = total - free - torch.cuda.memory_reserved()
                result["cache_tensor_bytes"] = sum(
                    t.untyped_storage().nbytes()
                    for layer in cache.layers
                    for t in (layer.keys, layer.values)
                    if t is not None
                )
            result["ok"] = True
        except Exception as exc:  # OOM from the allocator, cuBLAS or a kernel
            if not is_oom(exc):
                raise
            result["ok"] = False
            result["oom_phase"] = phase
            result["oom_message"] = str(exc).splitlines()[0][:300]
        cache = None
        gc.collect()
        if cuda:
            torch.cuda.empty_cache()
        return result


def probe_layers(torch: Any, model: Any, device: str) -> list[dict[str, Any]]:
    """Run two tokens through the model and read each cache layer's shapes."""
    from transformers import DynamicCache

    cache = DynamicCache(config=model.config)
    ids = torch.zeros((1, 2), dtype=torch.long, device=device)
    with torch.inference_mode():
        model(input_ids=ids, past_key_values=cache, use_cache=True)
    result = []
    for layer in cache.layers:
        k, v = layer.keys, layer.values
        window = (
            getattr(layer, "sliding_window", None) if getattr(layer, "is_sliding", False) else None
        )
        result.append(
            {
                "class": type(layer).__name__,
                "k_heads": k.shape[1],
                "k_dim": k.shape[3],
                "v_heads": v.shape[1],
                "v_dim": v.shape[3],
                "dtype": str(k.dtype).replace("torch.", ""),
                "elt": k.element_size(),
                "window": window,
            }
        )
    del cache
    return result


def search(runner: Runner, seq: int, free_bytes: int, out: Path | None, deadline: float) -> dict:
    """Return the largest batch that runs at seq and the trials that found it."""
    per_req = runner.kv_bytes_per_request(seq)
    estimate = max(1, free_bytes // per_req)
    trials: list[dict[str, Any]] = []

    def run(batch: int) -> bool:
        t0 = time.time()
        r = runner.trial(batch, seq)
        r["seconds"] = round(time.time() - t0, 3)
        trials.append(r)
        log(f"  seq {seq} batch {batch}: {'ok' if r['ok'] else 'OOM ' + r['oom_phase']}", out)
        return bool(r["ok"])

    lo, hi = 0, None  # lo runs (0 trivially), hi does not
    probe = estimate + 1
    while hi is None:
        if run(probe):
            lo = probe
            probe *= 2
        else:
            hi = probe
    # the boundary is usually a few percent below the cache-only estimate: try there first
    guess = int(min(hi - 1, estimate) * 0.97)
    if lo < guess < hi:
        if run(guess):
            lo = guess
        else:
            hi = guess
    while hi - lo > 1:
        if time.time() > deadline:
            break
        mid = (lo + hi) // 2
        if run(mid):
            lo = mid
        else:
            hi = mid
    return {
        "kv_bytes_per_request": per_req,
        "max_batch": lo,
        "first_failing_batch": hi,
        "exact": hi - lo == 1,
        "trials": trials,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path)
    parser.add_argument("--only", nargs="*")
    parser.add_argument("--budget-s", type=float, default=500.0)
    parser.add_argument("--dry-run", action="store_true")
    parser.add_argument("--split", type=Path, help="split a jsonl into tests/data/hf_peak")
    args = parser.parse_args()
    if args.split:
        dest = ROOT / "tests" / "data" / "hf_peak"
        dest.mkdir(parents=True, exist_ok=True)
        for line in args.split.read_text().splitlines():
            record = json.loads(line)
            conf = record["settings"].get("PYTORCH_CUDA_ALLOC_CONF") or ""
            tag = "-expandable" if "expandable_segments:True" in conf else ""
            path = dest / f"{record['model']}-{record['seq_len']}{tag}.json"
            path.write_text(json.dumps(record, indent=1) + "\n")
            print(path)
        return 0
    start = time.time()
    deadline = start + args.budget_s
    import torch
    import transformers
    from transformers import AutoModelForCausalLM

    device = "cpu" if args.dry_run else "cuda"
    out = args.out
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    info = versions(torch, transformers)
    log(f"versions {json.dumps(info)}", out)
    context = nontorch = None
    if device == "cuda":
        torch.cuda.init()
        torch.zeros(1, device="cuda")
        free, total = torch.cuda.mem_get_info()
        context = total - free - torch.cuda.memory_reserved()
        a = torch.randn(4096, 4096, device="cuda", dtype=torch.bfloat16)
        before = torch.cuda.memory_allocated()
        (a @ a).sum().item()
        cublas_alloc = torch.cuda.memory_allocated() - before
        free, total = torch.cuda.mem_get_info()
        nontorch = total - free - torch.cuda.memory_reserved()
        del a
        log(
            f"context {context} nontorch after matmul {nontorch} cublas via allocator {cublas_alloc}",
            out,
        )
        info["cuda_context_bytes"] = context
        info["nontorch_after_first_matmul_bytes"] = nontorch
        info["cublas_workspace_in_allocator_bytes"] = cublas_alloc
        info["total_bytes"] = total
    cases = [c for c in CASES if not args.only or c[0] in args.only]
    for name, seqs in cases:
        if time.time() > deadline:
            log(f"skip {name}: time budget spent", out)
            continue
        config = load_config(name, args.dry_run)
        t0 = time.time()
        attn = "sdpa"
        try:
            with torch.device(device):
                model = AutoModelForCausalLM.from_config(
                    config, dtype=torch.bfloat16, attn_implementation=attn
                )
        except ValueError as exc:  # e.g. Gemma-2: no sdpa (logit soft-capping)
            log(f"{name}: sdpa refused ({str(exc)[:80]}...), using eager", out)
            attn = "eager"
            with torch.device(device):
                model = AutoModelForCausalLM.from_config(
                    config, dtype=torch.bfloat16, attn_implementation=attn
                )
        model.eval()
        build_s = time.time() - t0
        params = sum(p.numel() * p.element_size() for p in model.parameters())
        buffers = sum(b.numel() * b.element_size() for b in model.buffers())
        weights_alloc = torch.cuda.memory_allocated() if device == "cuda" else None
        probe = probe_layers(torch, model, device)
        runner = Runner(torch, model, device, probe)
        log(f"{name}: built in {build_s:.1f}s, params {params} B, buffers {buffers} B", out)
        warm = runner.trial(1, 64)
        alloc_conf = os.environ.get("PYTORCH_CUDA_ALLOC_CONF", "")
        for seq in seqs:
            if time.time() > deadline:
                log(f"skip {name} seq {seq}: time budget spent", out)
                continue
            if device == "cuda":
                torch.cuda.empty_cache()
                free, total = torch.cuda.mem_get_info()
                nontorch_now = total - free - torch.cuda.memory_reserved()
                room = free
            else:
                nontorch_now, room = None, 8 * runner.kv_bytes_per_request(seq)
            if args.dry_run:  # no OOM on the CPU: one small trial per case
                seq = min(seq, 600)
                found = {"max_batch": None, "trials": [runner.trial(2, seq)]}
                found["first_failing_batch"] = None
            else:
                found = search(runner, seq, room, out, deadline)
            record = {
                "model": name,
                "config": f"tests/data/hf_configs/{name}.json",
                "seq_len": seq,
                "settings": {
                    "dtype": "bfloat16",
                    "attn_implementation": attn,
                    "weights": "random (from_config), no checkpoint",
                    "cache": "DynamicCache(config=model.config) filled in place to seq_len - 2 "
                    "tokens (zeros), then two decode steps",
                    "step": "model(input_ids[B,1], attention_mask ones[B,len], position_ids, "
                    "past_key_values) then logits[:, -1].float().argmax()",
                    "PYTORCH_CUDA_ALLOC_CONF": alloc_conf,
                    "kv_tokens_after_step": "seq_len per full layer, min(seq_len, W) per sliding",
                    "dry_run": args.dry_run,
                },
                "versions": info,
                "model_class": type(model).__name__,
                "param_bytes": params,
                "buffer_bytes": buffers,
                "allocated_after_build": weights_alloc,
                "nontorch_before_search": nontorch_now,
                "free_before_search": room,
                "layers": probe,
                "warmup_trial": warm,
                **found,
                "script": "scripts/measure_hf_peak.py",
                "measured_at_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }
            if out is not None:
                with (out / "hf_peak.jsonl").open("a") as f:
                    f.write(json.dumps(record) + "\n")
            log(
                f"{name} seq {seq}: max batch {found['max_batch']} (fails at "
                f"{found['first_failing_batch']}), {len(found['trials'])} trials",
                out,
            )
        del runner, model
        gc.collect()
        if device == "cuda":
            torch.cuda.empty_cache()
    log(f"done in {time.time() - start:.0f}s", out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
