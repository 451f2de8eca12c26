"""Engine start-up logs -> what the engine says about itself (pure: text in, figures out).

One parser per engine (vLLM, SGLang, llama.cpp, TensorRT-LLM), each a table of regular
expressions over the lines the engine prints while it sizes its KV cache. Every figure
keeps the text it was read from and the interval its printed rounding allows
("5.01 GiB" is anything in [5.005, 5.015) GiB), so a comparison can tell rounding from
error. The regexes are tested on the real excerpts in tests/data/logs/.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import field
from fractions import Fraction

from kvcalc.errors import KvcalcError
from kvcalc.records import record
from kvcalc.units import GiB, MiB

ENGINES = ("vllm", "sglang", "llama.cpp", "trtllm")

# ANSI colours, as printed (ESC[...m) or as pasted into an issue without the ESC byte
_ANSI = re.compile(r"\x1b\[[0-9;]*m|(?<![\w\]])\[[0-9;]{1,8}m")
# What starts a new log record; anything else is a terminal-wrapped continuation
_RECORD_START = re.compile(
    r"^\s*(?:\(|\[|#|INFO\b|WARNING\b|ERROR\b|DEBUG\b|\d|[A-Za-z_][\w.-]*\s+\||[a-z_]+:\s"
    r"|[A-Z][\w'-]*\s+[a-z#(])"
)
_WRAP_WIDTH = 100


@record
class Figure:
    """A number the engine printed, exactly as an interval: value, and what rounding allows."""

    value: Fraction
    lo: Fraction
    hi: Fraction
    unit: str  # "bytes", "tokens", "blocks", "cells", "x", "layers", "seqs"
    text: str  # as printed, e.g. "5.01 GiB"

    @property
    def as_int(self) -> int:
        """Return the value rounded to an integer (bytes, tokens)."""
        return round(self.value)


@record
class KvCacheLine:
    """One llama.cpp KV cache as it reports itself (llama_kv_cache: size = ...)."""

    kind: str  # "non-SWA", "SWA" or "unified" (a cache without an iSWA split)
    cells: int  # per stream (llama.cpp's "size = N cells")
    layers: int
    seqs: int  # streams: n_seq_max without a unified cache, 1 with it
    size: Figure  # bytes, all streams
    k_type: str
    v_type: str
    k_size: Figure
    v_size: Figure


@record
class EngineLog:
    """What one engine start-up log says: settings, KV-cache figures, and where they came from."""

    engine: str  # one of ENGINES
    version: str | None
    model: str | None
    settings: dict[str, str | int | float | bool] = field(default_factory=dict)
    figures: dict[str, Figure] = field(default_factory=dict)
    kv_caches: tuple[KvCacheLine, ...] = ()  # llama.cpp
    lines: dict[str, str] = field(default_factory=dict)  # figure or setting -> the line read


def strip_ansi(text: str) -> str:
    """Return text without terminal colour codes."""
    return _ANSI.sub("", text)


def unwrap(text: str) -> str:
    """Return text with terminal-wrapped continuation lines joined to the line they continue.

    A wrapped line is long (a terminal wraps at 100 columns or more) and the line after it
    does not start a record of its own (a level, a process prefix, a timestamp, a sentence).
    """
    out: list[str] = []
    previous = 0
    for line in text.splitlines():
        if out and line and previous >= _WRAP_WIDTH and not _RECORD_START.match(line):
            out[-1] += line
        else:
            out.append(line)
        previous = len(line)
    return "\n".join(out)


def figure(number: str, scale: int | Fraction, unit: str, text: str | None = None) -> Figure:
    """Return the Figure of a printed decimal: number × scale, ± half its last printed digit."""
    clean = number.replace(",", "")
    decimals = len(clean.partition(".")[2])
    value = Fraction(clean) * scale
    half = Fraction(1, 2 * 10**decimals) * scale
    return Figure(value, value - half, value + half, unit, text or number)


def exact(value: int, unit: str, text: str) -> Figure:
    """Return the Figure of an exact integer the engine printed."""
    return Figure(Fraction(value), Fraction(value), Fraction(value), unit, text)


class _Reader:
    """Collects the first match of each named pattern, with the line it came from."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.log_lines = text.splitlines()
        self.settings: dict[str, str | int | float | bool] = {}
        self.figures: dict[str, Figure] = {}
        self.lines: dict[str, str] = {}

    def first(self, pattern: re.Pattern[str]) -> re.Match[str] | None:
        return pattern.search(self.text)

    def line_of(self, match: re.Match[str]) -> str:
        start = self.text.rfind("\n", 0, match.start()) + 1
        end = self.text.find("\n", match.end())
        return self.text[start : end if end >= 0 else len(self.text)].strip()

    def setting(
        self,
        name: str,
        pattern: re.Pattern[str],
        convert: Callable[[str], str | int | float | bool] = str,
    ) -> None:
        if name in self.settings:
            return
        match = self.first(pattern)
        if match is not None:
            self.settings[name] = convert(match.group(1))
            self.lines[name] = self.line_of(match)

    def put(self, name: str, value: Figure, match: re.Match[str]) -> None:
        if name not in self.figures:
            self.figures[name] = value
            self.lines[name] = self.line_of(match)


def _bool(text: str) -> bool:
    return text.strip().lower() in ("true", "1", "enabled", "yes", "on")


# ---- vLLM ---------------------------------------------------------------------------------

_VLLM = {
    "version": re.compile(
        r"vLLM API server version (\S+)|Initializing an? (?:V1 )?LLM engine \(v([^)\s]+)\)"
    ),
    "config_model": re.compile(r"with config: model='([^']*)'"),
    "arg_model": re.compile(r"non-default args: \{.*?'model': '([^']*)'|vllm serve (?!-)(\S+)"),
    "dtype": re.compile(r"\bdtype=torch\.(\w+)"),
    "arg_dtype": re.compile(r"non-default args: \{.*?'dtype': '(\w+)'"),
    "max_model_len": re.compile(
        r"'max_model_len': (\d+)|Using max model len (\d+)|\bmax_seq_len=(\d+)"
        r"|--max[-_]model[-_]len[= ](\d+)"
    ),
    "tp": re.compile(
        r"'tensor_parallel_size': (\d+)|\btensor_parallel_size=(\d+)"
        r"|--tensor[-_]parallel[-_]size[= ](\d+)|\s-tp[= ](\d+)"
    ),
    "pp": re.compile(
        r"'pipeline_parallel_size': (\d+)|\bpipeline_parallel_size=(\d+)"
        r"|--pipeline[-_]parallel[-_]size[= ](\d+)|\s-pp[= ](\d+)"
    ),
    "util": re.compile(
        r"'gpu_memory_utilization': (\d+(?:\.\d+)?)|gpu_memory_utilization[=\s(]+(\d+(?:\.\d+)?)"
        r"|Desired GPU memory utilization is \((\d+(?:\.\d+)?),|--gpu[-_]memory[-_]utilization[= ](\d+(?:\.\d+)?)"
    ),
    "kv_cache_dtype": re.compile(
        r"'kv_cache_dtype': '(\w+)'|\bkv_cache_dtype=(\w+)|--kv[-_]cache[-_]dtype[= ](\w+)"
    ),
    "quantization": re.compile(r"'quantization': '(\w+)'|\bquantization=(\w+)"),
    "block_size": re.compile(
        r"'block_size': (\d+)|Block size is set to (\d+)|--block[-_]size[= ](\d+)"
    ),
    "max_num_batched_tokens": re.compile(
        r"'max_num_batched_tokens': (\d+)|max_num_batched_tokens=(\d+)"
        r"|--max[-_]num[-_]batched[-_]tokens[= ](\d+)"
    ),
    "max_num_seqs": re.compile(
        r"'max_num_seqs': (\d+)|\bmax_num_seqs=(\d+)|--max[-_]num[-_]seqs[= ](\d+)"
    ),
    "enforce_eager": re.compile(r"'enforce_eager': (True|False)|\benforce_eager=(True|False)"),
    "device_name": re.compile(r"device_name=(NVIDIA_[A-Za-z0-9_-]+?)(?:\.json|,|\s|$)"),
}
_VLLM_WEIGHTS = re.compile(r"(?:Model loading took|Loading model weights took) ([\d.]+) ?(GiB|GB)")
_VLLM_AVAILABLE = re.compile(
    r"Available KV cache memory: (-?[\d.]+) GiB"
    r"|the rest of the memory reserved for KV Cache is (-?[\d.]+) ?GiB"
    r"|\bkv_cache_size=(-?[\d.]+)GiB"
)
_VLLM_TOKENS = re.compile(
    r"GPU KV cache size: ([\d,]+) tokens"
    r"|maximum number of tokens that can be stored in KV cache \((\d+)\)"
)
_VLLM_CONCURRENCY = re.compile(r"Maximum concurrency for ([\d,]+) tokens per request: ([\d.]+)x")
_VLLM_BLOCKS = re.compile(
    r"# GPU blocks: (\d+)|num_gpu_blocks is:? ?(\d+)|# cuda blocks: (\d+)|\bGPU blocks: (\d+)"
)
_VLLM_DEVICE = re.compile(r"Free memory on device \(([\d.]+)/([\d.]+) GiB\)")
_VLLM_TOTAL_V0 = re.compile(r"total_gpu_memory[=\s(]+([\d.]+) ?GiB")
_VLLM_GRAPHS = re.compile(r"Graph capturing finished in \d+ secs?, took ([\d.]+) GiB")


def _group(match: re.Match[str]) -> str:
    return next(g for g in match.groups() if g is not None)


def parse_vllm(text: str) -> EngineLog:
    """Return what a vLLM start-up log says (V1 engine lines, and the V0 profiling summary)."""
    flat = unwrap(text)
    reader = _Reader(flat)
    convert: dict[str, Callable[[str], str | int | float | bool]] = {
        "max_model_len": int,
        "tp": int,
        "pp": int,
        "util": float,
        "block_size": int,
        "max_num_batched_tokens": int,
        "max_num_seqs": int,
        "enforce_eager": _bool,
    }
    for name, pattern in _VLLM.items():
        match = pattern.search(flat)
        if match is not None and name not in ("version", "config_model", "arg_model"):
            reader.settings[name] = convert.get(name, str)(_group(match))
            reader.lines[name] = reader.line_of(match)
    if "dtype" not in reader.settings and "arg_dtype" in reader.settings:
        reader.settings["dtype"] = reader.settings["arg_dtype"]
    reader.settings.pop("arg_dtype", None)
    version_match = _VLLM["version"].search(flat)
    version = _group(version_match) if version_match else None
    model_match = _VLLM["config_model"].search(flat) or _VLLM["arg_model"].search(flat)
    model = _group(model_match) if model_match else None

    match = _VLLM_WEIGHTS.search(flat)
    if match:
        # vLLM's "GB" was always GiB: model_memory_usage / float(2**30)
        reader.put(
            "weights_bytes", figure(match.group(1), GiB, "bytes", f"{match.group(1)} GiB"), match
        )
    # every worker prints its own line; vLLM sizes the cache by the smallest
    # (vllm/v1/core/kv_cache_utils.py:get_kv_cache_configs takes the minimum over workers)
    matches = list(_VLLM_AVAILABLE.finditer(flat))
    if matches:
        match = min(matches, key=lambda m: Fraction(_group(m)))
        number = _group(match)
        reader.put("available_kv_bytes", figure(number, GiB, "bytes", f"{number} GiB"), match)
    match = _VLLM_TOKENS.search(flat)
    if match:
        number = _group(match)
        tokens = int(number.replace(",", ""))
        reader.put("kv_tokens", exact(tokens, "tokens", f"{number} tokens"), match)
    match = _VLLM_CONCURRENCY.search(flat)
    if match:
        reader.settings.setdefault("concurrency_tokens", int(match.group(1).replace(",", "")))
        reader.put("max_concurrency", figure(match.group(2), 1, "x", f"{match.group(2)}x"), match)
    match = _VLLM_BLOCKS.search(flat)
    if match:
        blocks = int(_group(match))
        reader.put("gpu_blocks", exact(blocks, "blocks", f"{blocks} blocks"), match)
    match = _VLLM_DEVICE.search(flat) or _VLLM_TOTAL_V0.search(flat)
    if match:
        number = match.group(match.lastindex or 1)
        reader.put("device_bytes", figure(number, GiB, "bytes", f"{number} GiB"), match)
    match = _VLLM_GRAPHS.search(flat)
    if match:
        reader.put(
            "cuda_graph_bytes", figure(match.group(1), GiB, "bytes", f"{match.group(1)} GiB"), match
        )
    return EngineLog("vllm", version, model, reader.settings, reader.figures, (), reader.lines)


# ---- SGLang -------------------------------------------------------------------------------

_SGLANG_KV = re.compile(
    r"KV Cache is allocated\. #tokens: (\d+), K size: ([\d.]+) GB, V size: ([\d.]+) GB"
)
_SGLANG_MLA = re.compile(r"KV Cache is allocated\. #tokens: (\d+), KV size: ([\d.]+) GB")
_SGLANG_WEIGHTS = re.compile(r"Load weight end\..*?mem usage=([\d.]+) GB")
_SGLANG = {
    "model": re.compile(r"model_path='([^']*)'"),
    "tp": re.compile(r"\btp_size=(\d+)"),
    "pp": re.compile(r"\bpp_size=(\d+)"),
    "mem_fraction_static": re.compile(r"\bmem_fraction_static=([\d.]+)"),
    "kv_cache_dtype": re.compile(r"\bkv_cache_dtype='(\w+)'"),
    "dtype": re.compile(r"\bdtype='(\w+)'"),
    "context_length": re.compile(r"\bcontext_len(?:gth)?=(\d+)"),
    "page_size": re.compile(r"\bpage_size=(\d+)"),
    "max_total_num_tokens": re.compile(r"\bmax_total_num_tokens=(\d+)"),
    "version": re.compile(r"sglang(?:==| version:? ?)(\d[\w.]*)"),
}


def parse_sglang(text: str) -> EngineLog:
    """Return what an SGLang start-up log says (server args, weights, the KV pool line).

    SGLang prints sizes with GB = 1024³ (sglang/srt/mem_cache/memory_pool.py), so its "GB"
    is read as GiB.
    """
    reader = _Reader(unwrap(text))
    ints = ("tp", "pp", "context_length", "page_size", "max_total_num_tokens")
    for name, pattern in _SGLANG.items():
        if name in ("model", "version"):
            continue
        convert: Callable[[str], str | int | float | bool] = (
            int if name in ints else float if name == "mem_fraction_static" else str
        )
        reader.setting(name, pattern, convert)
    match = _SGLANG_KV.search(reader.text)
    if match:
        tokens = int(match.group(1))
        reader.put("kv_tokens", exact(tokens, "tokens", f"#tokens: {tokens}"), match)
        k = figure(match.group(2), GiB, "bytes", f"{match.group(2)} GB")
        v = figure(match.group(3), GiB, "bytes", f"{match.group(3)} GB")
        reader.put("k_bytes", k, match)
        reader.put("v_bytes", v, match)
        text_kv = f"K {match.group(2)} GB + V {match.group(3)} GB"
        reader.put(
            "kv_bytes", Figure(k.value + v.value, k.lo + v.lo, k.hi + v.hi, "bytes", text_kv), match
        )
    match = _SGLANG_MLA.search(reader.text)
    if match:
        tokens = int(match.group(1))
        reader.put("kv_tokens", exact(tokens, "tokens", f"#tokens: {tokens}"), match)
        reader.put("kv_bytes", figure(match.group(2), GiB, "bytes", f"{match.group(2)} GB"), match)
    match = _SGLANG_WEIGHTS.search(reader.text)
    if match:
        reader.put(
            "weights_bytes", figure(match.group(1), GiB, "bytes", f"{match.group(1)} GB"), match
        )
    model = _SGLANG["model"].search(reader.text)
    version = _SGLANG["version"].search(reader.text)
    return EngineLog(
        "sglang",
        version.group(1) if version else None,
        model.group(1) if model else None,
        reader.settings,
        reader.figures,
        (),
        reader.lines,
    )


# ---- llama.cpp ----------------------------------------------------------------------------

_LLAMA = {
    "n_seq_max": re.compile(r"\bn_seq_max\s*=\s*(\d+)"),
    "n_ctx": re.compile(r"\bn_ctx\s*=\s*(\d+)"),
    "n_ctx_seq": re.compile(r"\bn_ctx_(?:seq|per_seq)\s*=\s*(\d+)"),
    "n_batch": re.compile(r"\bn_batch\s*=\s*(\d+)"),
    "n_ubatch": re.compile(r"\bn_ubatch\s*=\s*(\d+)"),
    "flash_attn": re.compile(r"\bflash_attn\s*=\s*(\w+)"),
    "kv_unified": re.compile(r"\bkv_unified\s*=\s*(\w+)"),
    "swa_full": re.compile(r"\bswa_full\s*=\s*(\w+)"),
}
_LLAMA_KV = re.compile(
    r"llama_kv_cache(?:_unified)?: size = +([\d.]+) MiB \( *(\d+) cells, +(\d+) layers, +"
    r"(\d+)(?:/(\d+))? seqs\), K \((\w+)\): +([\d.]+) MiB, V \((\w+)\): +([\d.]+) MiB"
)
_LLAMA_KV_OLD = re.compile(
    r"KV self size += +([\d.]+) MiB, K \((\w+)\): +([\d.]+) MiB, V \((\w+)\): +([\d.]+) MiB"
)
_LLAMA_CREATING = re.compile(r"creating +(non-SWA|SWA) KV cache, size = (\d+) cells")
_LLAMA_BUFFER = re.compile(
    r"llama_kv_cache(?:_unified|_init)?: +(\S+) KV buffer size = +([\d.]+) MiB"
)
_LLAMA_MODEL_BUFFER = re.compile(r"load_tensors: +(\S+) model buffer size = +([\d.]+) MiB")
_LLAMA_NAME = re.compile(r"general\.name\s+(?:str\s+)?=\s+(.+)")
_LLAMA_BUILD = re.compile(r"\bbuild[:=]\s*(\d+) \(([0-9a-f]+)\)")


def _mib(number: str, text: str | None = None) -> Figure:
    return figure(number, MiB, "bytes", text or f"{number} MiB")


def parse_llama_cpp(text: str) -> EngineLog:
    """Return what a llama.cpp (llama-server, llama-cli) start-up log says about its context.

    The KV caches are read from `llama_kv_cache: size = ...` (or the older `KV self size`);
    with an iSWA model the `creating non-SWA / SWA KV cache` line before each names it,
    and a cache whose size line is missing is read from its `KV buffer size` line.
    """
    reader = _Reader(text)
    for name, pattern in _LLAMA.items():
        reader.setting(
            name, pattern, _bool if name in ("flash_attn", "kv_unified", "swa_full") else int
        )
    caches: list[KvCacheLine] = []
    # walk the lines in order: a "creating X KV cache" names the next size or buffer line
    pending: tuple[str, int] | None = None
    buffers: dict[str, Fraction] = {}
    texts: dict[str, list[str]] = {}
    for line in reader.log_lines:
        created = _LLAMA_CREATING.search(line)
        if created:
            pending = (created.group(1), int(created.group(2)))
            continue
        buffer = _LLAMA_BUFFER.search(line)
        if buffer and pending is not None:
            buffers[pending[0]] = (
                buffers.get(pending[0], Fraction(0)) + Fraction(buffer.group(2)) * MiB
            )
            texts.setdefault(pending[0], []).append(f"{buffer.group(2)} MiB")
            reader.lines.setdefault(f"{pending[0]} buffer", line.strip())
        size = _LLAMA_KV.search(line)
        if size:
            kind = pending[0] if pending is not None else "unified"
            seqs = int(size.group(4))
            caches.append(
                KvCacheLine(
                    kind=kind,
                    cells=int(size.group(2)),
                    layers=int(size.group(3)),
                    seqs=seqs,
                    size=_mib(size.group(1)),
                    k_type=size.group(6),
                    v_type=size.group(8),
                    k_size=_mib(size.group(7)),
                    v_size=_mib(size.group(9)),
                )
            )
            reader.lines[f"{kind} KV cache"] = line.strip()
            pending = None
    done = {c.kind for c in caches}
    for kind, total in buffers.items():
        if kind not in done:
            shown = " + ".join(texts[kind])
            reader.figures[f"{kind}_kv_buffer_bytes"] = Figure(
                total, total, total, "bytes", f"{shown} (KV buffer)"
            )
    if pending is not None and pending[0] not in done:
        reader.settings[f"{pending[0]}_cells"] = pending[1]
    for kind, cells in (
        (m.group(1), int(m.group(2))) for m in _LLAMA_CREATING.finditer(reader.text)
    ):
        reader.settings.setdefault(f"{kind}_cells", cells)
    old = _LLAMA_KV_OLD.search(reader.text)
    if old and not caches:
        reader.put("kv_bytes", _mib(old.group(1)), old)
        reader.settings["k_type"] = old.group(2)
        reader.settings["v_type"] = old.group(4)
    if caches:
        total = sum((c.size.value for c in caches), Fraction(0))
        lo = sum((c.size.lo for c in caches), Fraction(0))
        hi = sum((c.size.hi for c in caches), Fraction(0))
        extra = [f for k, f in reader.figures.items() if k.endswith("_kv_buffer_bytes")]
        for f in extra:
            total, lo, hi = total + f.value, lo + f.lo, hi + f.hi
        text_total = " + ".join([c.size.text for c in caches] + [f.text for f in extra])
        reader.figures["kv_bytes"] = Figure(total, lo, hi, "bytes", text_total)
        reader.settings["k_type"] = caches[0].k_type
        reader.settings["v_type"] = caches[0].v_type
    weights = [Fraction(m.group(2)) for m in _LLAMA_MODEL_BUFFER.finditer(reader.text)]
    if weights:
        total_w = sum(weights, Fraction(0)) * MiB
        reader.figures["weights_bytes"] = Figure(
            total_w, total_w, total_w, "bytes", f"{sum(weights)} MiB (model buffers)"
        )
    general_name = _LLAMA_NAME.search(reader.text)
    build = _LLAMA_BUILD.search(reader.text)
    return EngineLog(
        "llama.cpp",
        f"b{build.group(1)} ({build.group(2)})" if build else None,
        general_name.group(1).strip() if general_name else None,
        reader.settings,
        reader.figures,
        tuple(caches),
        reader.lines,
    )


# ---- TensorRT-LLM -------------------------------------------------------------------------

_TRT_MEMORY = re.compile(
    r"Memory usage when calculating max tokens in paged kv cache: total: ([\d.]+) GiB, "
    r"available: ([\d.]+) GiB"
)
_TRT_BLOCKS = re.compile(r"Number of blocks in KV cache primary pool: (\d+)|primary blocks=(\d+)")
_TRT_TOKENS_PER_BLOCK = re.compile(r"Number of tokens per block: (\d+)|tokens per block=(\d+)")
_TRT_ALLOCATED = re.compile(r"Allocated ([\d.]+) GiB for max tokens in paged KV cache \((\d+)\)")
_TRT_USING = re.compile(r"Using (\d+) tokens in paged KV cache")
_TRT_ENGINE = re.compile(r"Loaded engine size: (\d+) MiB")
_TRT_VERSION = re.compile(r"TensorRT-LLM version: (\S+)|Engine version (\S+)")


def parse_trtllm(text: str) -> EngineLog:
    """Return what a TensorRT-LLM start-up log says about its paged KV cache."""
    reader = _Reader(text)
    match = _TRT_MEMORY.search(text)
    if match:
        reader.put(
            "device_bytes", figure(match.group(1), GiB, "bytes", f"{match.group(1)} GiB"), match
        )
        reader.put(
            "free_bytes", figure(match.group(2), GiB, "bytes", f"{match.group(2)} GiB"), match
        )
    match = _TRT_BLOCKS.search(text)
    if match:
        blocks = int(_group(match))
        reader.put("kv_blocks", exact(blocks, "blocks", f"{blocks} blocks"), match)
    match = _TRT_TOKENS_PER_BLOCK.search(text)
    if match:
        reader.settings["tokens_per_block"] = int(_group(match))
        reader.lines["tokens_per_block"] = reader.line_of(match)
    match = _TRT_ALLOCATED.search(text)
    if match:
        reader.put("kv_bytes", figure(match.group(1), GiB, "bytes", f"{match.group(1)} GiB"), match)
        tokens = int(match.group(2))
        reader.put("kv_tokens", exact(tokens, "tokens", f"{tokens} tokens"), match)
    match = _TRT_USING.search(text)
    if match:
        tokens = int(match.group(1))
        reader.put("kv_tokens", exact(tokens, "tokens", f"{tokens} tokens"), match)
    match = _TRT_ENGINE.search(text)
    if match:
        reader.put(
            "weights_bytes", figure(match.group(1), MiB, "bytes", f"{match.group(1)} MiB"), match
        )
    version = _TRT_VERSION.search(text)
    return EngineLog(
        "trtllm",
        _group(version) if version else None,
        None,
        reader.settings,
        reader.figures,
        (),
        reader.lines,
    )


# ---- detection ----------------------------------------------------------------------------

_MARKERS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("trtllm", re.compile(r"\[TensorRT-LLM\]|paged kv cache|KV cache primary pool", re.I)),
    ("sglang", re.compile(r"KV Cache is allocated\. #tokens|sglang|max_total_num_tokens=")),
    (
        "llama.cpp",
        re.compile(r"llama_kv_cache|llama_context|llama_new_context_with_model|llama_model_loader"),
    ),
    (
        "vllm",
        re.compile(
            r"GPU KV cache size:|Available KV cache memory|Model loading took|vLLM|"
            r"Maximum concurrency for|# GPU blocks:|gpu_model_runner"
        ),
    ),
)
PARSERS: dict[str, Callable[[str], EngineLog]] = {
    "vllm": parse_vllm,
    "sglang": parse_sglang,
    "llama.cpp": parse_llama_cpp,
    "trtllm": parse_trtllm,
}


def detect_engine(text: str) -> str | None:
    """Return which engine wrote the log (the first whose markers appear), or None."""
    for engine, marker in _MARKERS:
        if marker.search(text):
            return engine
    return None


def parse_log(text: str, engine: str | None = None) -> EngineLog:
    """Return what an engine start-up log says; engine=None detects it.

    Raises KvcalcError when the text is no log of a known engine, or holds no KV-cache
    figure at all.
    """
    text = strip_ansi(text)
    name = engine or detect_engine(text)
    if name is None:
        raise KvcalcError(
            "not a start-up log kvcalc can read: no vLLM, SGLang, llama.cpp or TensorRT-LLM "
            "line found"
        )
    if name not in PARSERS:
        raise KvcalcError(f"unknown engine {name!r} (choose from {', '.join(ENGINES)})")
    log = PARSERS[name](text)
    if not log.figures and not log.kv_caches:
        raise KvcalcError(
            f"the {name} log has no KV-cache figure kvcalc can compare (looked for its "
            "KV cache size, available KV memory, blocks and weights lines)"
        )
    return log


__all__ = [
    "ENGINES",
    "EngineLog",
    "Figure",
    "KvCacheLine",
    "detect_engine",
    "parse_log",
]
