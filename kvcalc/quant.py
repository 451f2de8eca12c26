"""Weights as published: a checkpoint's quantisation recipe -> exact bytes per module (pure).

A Hugging Face `quantization_config` (or ModelOpt's `hf_quant_config.json`) says which linear
layers ship in which format. Each format stores the 4- or 8-bit values plus its scale
tensors, counted here in the dtypes they ship in. For a linear of `out` × `in` weights:

| format | tensors in the checkpoint | bytes |
|---|---|---|
| fp8 block (bn × bk) | fp8 weight + fp32 `weight_scale_inv` per block | out·in + ⌈out/bn⌉·⌈in/bk⌉·4 |
| fp8 block, ue8m0 (DeepSeek-V4) | fp8 weight + e8m0 `scale` per block | out·in + ⌈out/bn⌉·⌈in/bk⌉ |
| fp8 per tensor (ModelOpt FP8) | fp8 weight + fp32 `weight_scale` + fp32 `input_scale` | out·in + 8 |
| mxfp4 (gpt-oss experts) | 4-bit `_blocks` + e8m0 `_scales`, one per 32 inputs | out·in/2 + out·⌈in/32⌉ |
| nvfp4 (ModelOpt) | 4-bit weight + fp8 `weight_scale` per 16 + fp32 `weight_scale_2` + fp32 `input_scale` | out·in/2 + out·⌈in/16⌉ + 8 |
| mxfp8 (ModelOpt) | fp8 weight + e8m0 `weight_scale` per 32 inputs | out·in + out·⌈in/32⌉ |
| int4 group g, compressed-tensors pack-quantized | int32 `weight_packed` + bf16 `weight_scale` per group + int64[2] `weight_shape` | out·in/2 + out·⌈in/g⌉·2 + 16 |
| GPTQ, b bits, group g | int32 `qweight`, `qzeros` + fp16 `scales` per group + int32 `g_idx` | out·in·b/8 + ⌈in/g⌉·out·(b/8 + 2) + 4·in |
| AWQ, b bits, group g | int32 `qweight`, `qzeros` + fp16 `scales` per group | out·in·b/8 + ⌈in/g⌉·out·(b/8 + 2) |

Sources: DeepSeek-V3's README_WEIGHTS.md (fp8 128×128 blocks, `weight_scale_inv` fp32);
transformers integrations/mxfp4.py (`*_blocks` (…, in/32, 16) uint8 and `*_scales`
(…, in/32) uint8 e8m0); vLLM modelopt.py ModelOptNvFp4LinearMethod.create_weights (packed
uint8 weight, fp8 `weight_scale` of in/16 per row, fp32 `weight_scale_2` and `input_scale`),
ModelOptMxFp8LinearMethod (fp8 E4M3 weight, uint8 e8m0 `weight_scale` of in/32 per row, no
per-tensor scale; vllm-project/vllm@00155cdecca722d98e34234c3d172725b7720b7d) and
ModelOptFp8LinearMethod (fp32 per-tensor scales); compressed-tensors
`pack_to_int32` (8 values per int32) and its `weight_shape`; vLLM gptq.py / awq.py
create_weights. Everything that is not a quantised linear weight (embeddings, LM head,
norms, biases, MoE routers, convolutions) ships in the checkpoint's own dtype. MoE routers
stay unquantised in every published recipe read (listed in the ignore lists, or kept out
by the engine's MoE gate with quant_config=None). DeepSeek-V4 also keeps tensors in a dtype
of its own (`Stored`: fp32 sinks and hyper-connections, int64 hash-routing tables).

This module reads the HF `quantization_config` keys and, in `hf_linears`, the config's
shape keys (it sits on the HF edge, like kvcalc/hf); the rest of the program sees only
`WeightsQuant`.
"""

from __future__ import annotations

import fnmatch
import functools
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Literal

from kvcalc.errors import KvcalcError
from kvcalc.records import record
from kvcalc.specs import PARTS, CheckpointKv, Part, PartBytes, WeightsQuant


class LayoutMismatch(KvcalcError):
    """The module layout listed for a family does not fit its parameter breakdown."""


# ---- formats ------------------------------------------------------------------------------


@record
class Format:
    """One quantised linear format: how many bytes a weight matrix of out × in takes."""

    name: str
    kind: Literal["fp8_block", "fp8_tensor", "mxfp4", "mxfp8", "nvfp4", "int_pack", "gptq", "awq"]
    bits: int = 8
    group: int = 0  # group / block size along the input dimension
    block_out: int = 0  # fp8 block: rows per block
    per_tensor_bytes: int = 0  # fp32 per-tensor scales (weight_scale_2, input_scale ...)
    scale_bytes: int = 4  # fp8 block: bytes of one block scale (fp32; e8m0 in DeepSeek-V4)

    def matrix_bytes(self, out_features: int, in_features: int) -> int:
        """Return the bytes of one out × in weight matrix and its scales in this format."""
        n = out_features * in_features
        # group -1 (GPTQ/AWQ per channel): one group spanning the inputs
        groups = 1 if self.group < 0 else (-(-in_features // self.group) if self.group else 0)
        if self.kind == "fp8_block":
            blocks = -(-out_features // self.block_out) * groups
            return n + self.scale_bytes * blocks + self.per_tensor_bytes
        if self.kind == "fp8_tensor":
            return n + self.per_tensor_bytes
        if self.kind == "mxfp4":
            return -(-n // 2) + out_features * groups
        if self.kind == "mxfp8":
            return n + out_features * groups
        if self.kind == "nvfp4":
            return -(-n // 2) + out_features * groups + self.per_tensor_bytes
        if self.kind == "int_pack":
            packed = out_features * -(-in_features * self.bits // 32) * 4
            return packed + out_features * groups * 2 + 16
        if self.kind == "gptq":  # qweight (in·b/32, out) int32
            packed = -(-in_features * self.bits // 32) * out_features * 4
        else:  # AWQ qweight (in, out·b/32) int32
            packed = in_features * -(-out_features * self.bits // 32) * 4
        zeros = groups * -(-out_features * self.bits // 32) * 4
        scales = groups * out_features * 2
        g_idx = 4 * in_features if self.kind == "gptq" else 0
        return packed + zeros + scales + g_idx


def _fp8_block(block: Sequence[int], static: bool, scale_bytes: int = 4) -> Format:
    if len(block) != 2 or not all(isinstance(b, int) and b > 0 for b in block):
        raise KvcalcError(f"quantization_config weight_block_size must be two sizes, got {block!r}")
    return Format(
        f"fp8 ({block[0]}x{block[1]} blocks, {'e8m0' if scale_bytes == 1 else 'fp32'} scales)",
        "fp8_block",
        8,
        block[1],
        block[0],
        per_tensor_bytes=4 if static else 0,  # a static activation scheme adds input_scale
        scale_bytes=scale_bytes,
    )


FP8_TENSOR = Format("fp8 (per-tensor fp32 scales)", "fp8_tensor", per_tensor_bytes=8)
MXFP4 = Format("mxfp4 (e8m0 scale per 32)", "mxfp4", 4, 32)
MXFP8 = Format("mxfp8 (e8m0 scale per 32)", "mxfp8", 8, 32)
NVFP4 = Format("nvfp4 (fp8 scale per 16 + fp32 global)", "nvfp4", 4, 16, per_tensor_bytes=8)
NVFP4_W4A16 = Format("nvfp4 weight-only (fp8 scale per 16)", "nvfp4", 4, 16, per_tensor_bytes=4)


# ---- module names and rules ---------------------------------------------------------------


@record
class Linear:
    """A linear layer's weight: `name` from 'layers.' on (HF module path), `count` stacked
    copies (routed experts: name has the expert index 0 standing for all of them)."""

    name: str
    part: Part
    out_features: int
    in_features: int
    count: int = 1
    expert: bool = False
    router: bool = False
    # held whole on every tensor-parallel rank (ReplicatedLinear, disable_tp=True): its
    # bytes go to the part's replicated_bytes (MLA_REPLICATED)
    replicated: bool = False

    @property
    def weights(self) -> int:
        return self.out_features * self.in_features * self.count


_PREFIXES = ("", "model.", "model.language_model.", "language_model.model.", "backbone.")
_GLOB = frozenset("*?[")


def _renderings(name: str) -> Iterator[tuple[str, set[str]]]:
    """Yield each wrapper rendering of a module path with its dot-prefixes and dot-suffixes."""
    for prefix in _PREFIXES:
        full = prefix + name
        parts = full.split(".")
        pieces = {".".join(parts[:i]) for i in range(1, len(parts) + 1)}
        pieces |= {".".join(parts[i:]) for i in range(1, len(parts))}
        yield full, pieces


class _Matcher:
    """Published ignore / target patterns, compiled once: a pattern names a module (or a
    parent of it) when it is an exact module path, a path prefix or suffix ('gate'), an
    fnmatch glob of the path or a parent, or a 're:' regex (compressed-tensors) matching from
    the start of the path to a path boundary. Model prefixes differ by wrapper, so each
    rendering of the name is tried."""

    def __init__(self, patterns: Sequence[str]) -> None:
        self.exact = {p for p in patterns if not p.startswith("re:") and not _GLOB & set(p)}
        globs = [p for p in patterns if not p.startswith("re:") and _GLOB & set(p)]
        regexes = [p[3:] for p in patterns if p.startswith("re:")]
        alternatives = [fnmatch.translate(g) for g in globs]
        alternatives += [fnmatch.translate(g + ".*") for g in globs]
        self.glob = re.compile("|".join(f"(?:{a})" for a in alternatives)) if globs else None
        self.regex = (
            re.compile("|".join(f"(?:(?:{r})(?:\\.|$))" for r in regexes)) if regexes else None
        )

    def __call__(self, name: str) -> bool:
        for full, pieces in _renderings(name):
            if self.exact & pieces:
                return True
            if self.glob is not None and self.glob.match(full):
                return True
            if self.regex is not None and self.regex.match(full):
                return True
        return False


def _matches(name: str, pattern: str) -> bool:
    """True when one published pattern names this module (see _Matcher)."""
    return _Matcher([pattern])(name)


@record
class Recipe:
    """A parsed quantisation recipe: the format each linear ships in (None: unquantised)."""

    method: str
    default: Format | None  # format of a targeted linear
    ignore: tuple[str, ...] = ()
    targets: tuple[str, ...] = ()  # module patterns; empty: every linear
    experts_only: bool = False  # mxfp4: the quantizer replaces the MoE experts only
    per_module: tuple[tuple[str, Format], ...] = ()  # ModelOpt MIXED_PRECISION
    expert_format: Format | None = None  # routed experts' own format (DeepSeek-V4 fp4)

    @functools.cached_property
    def _ignored(self) -> _Matcher:
        return _Matcher(self.ignore)

    @functools.cached_property
    def _targeted(self) -> _Matcher:
        return _Matcher(self.targets)

    @functools.cached_property
    def _table(self) -> tuple[dict[str, Format], tuple[tuple[_Matcher, Format], ...]]:
        exact = {p: f for p, f in reversed(self.per_module) if not _GLOB & set(p)}
        globs = tuple((_Matcher([p]), f) for p, f in self.per_module if _GLOB & set(p))
        return exact, globs

    def ignores(self, module: str) -> bool:
        """Return True when the ignore list names this module or a parent of it."""
        return self._ignored(module)

    def leaves_unquantised(self, module: str) -> bool:
        """Return True when no linear under this module ships quantised: the ignore list
        names it (or a parent), or the recipe lists the modules it quantises by name (ModelOpt
        MIXED_PRECISION's quantized_layers, or targets that are all module paths) and none is
        this module, under it or above it. A glob, a regex or a class-name target may name it:
        False."""
        if self.ignores(module):
            return True
        names = [p for p, _ in self.per_module]
        if not names and all("." in t for t in self.targets):  # module paths, not "Linear"
            names = list(self.targets)
        if not names or any(_GLOB & set(n) or n.startswith("re:") for n in names):
            return False
        return not any(
            n == module or n.startswith(module + ".") or module.startswith(n + ".") for n in names
        )

    def format_for(self, linear: Linear) -> Format | None:
        """Return the format this linear ships in, or None when it ships unquantised."""
        if linear.router:
            return None
        if self.per_module:  # the most specific listed module (or parent) gives the format
            exact, globs = self._table
            for full, _ in _renderings(linear.name):
                parts = full.split(".")
                for i in range(len(parts), 0, -1):
                    fmt = exact.get(".".join(parts[:i]))
                    if fmt is not None:
                        return fmt
            for matcher, fmt in globs:
                if matcher(linear.name):
                    return fmt
            return None
        if self.ignore and self._ignored(linear.name):
            return None
        if self.experts_only and not linear.expert:
            return None
        if self.targets and not self._targeted(linear.name):
            return None
        if linear.expert and self.expert_format is not None:
            return self.expert_format
        return self.default


@record
class Stored:
    """Tensors a model keeps in a dtype of its own whatever the recipe: `weights` of a part's
    parameters (0 for buffers the checkpoint holds outside the parameter breakdown) taking
    `bytes`; `what` names them and their dtype."""

    what: str
    part: Part | Literal["other"]
    weights: int
    bytes: int


def _strings(value: Any, key: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise KvcalcError(f"quantization_config {key!r} must be a list of module names")
    return tuple(value)


def _modelopt_format(algo: Any, group: Any) -> Format:
    if algo == "FP8":
        return FP8_TENSOR
    if algo == "MXFP8":
        return MXFP8
    if algo in ("NVFP4", "W4A16_NVFP4"):
        if group not in (None, 16):
            raise KvcalcError(f"ModelOpt {algo} with group_size {group!r} is not modelled (16 is)")
        return NVFP4 if algo == "NVFP4" else NVFP4_W4A16
    raise KvcalcError(
        f"ModelOpt quant_algo {algo!r} is not modelled (FP8, MXFP8, NVFP4, W4A16_NVFP4 and "
        "MIXED_PRECISION of those are); pass --weights-dtype to size the weights yourself"
    )


def _modelopt(q: Mapping[str, Any]) -> Recipe:
    algo = q.get("quant_algo")
    ignore = _strings(q.get("exclude_modules", q.get("ignore")), "exclude_modules")
    if algo == "MIXED_PRECISION":
        layers = q.get("quantized_layers")
        if not isinstance(layers, dict) or not layers:
            raise KvcalcError("ModelOpt MIXED_PRECISION without a quantized_layers table")
        per_module = tuple(
            (str(name), _modelopt_format(spec.get("quant_algo"), spec.get("group_size")))
            for name, spec in layers.items()
            if isinstance(spec, dict)
        )
        return Recipe("modelopt MIXED_PRECISION", None, ignore, per_module=per_module)
    return Recipe(f"modelopt {algo}", _modelopt_format(algo, q.get("group_size")), ignore)


def _compressed_tensors(q: Mapping[str, Any]) -> Recipe:
    groups = q.get("config_groups")
    if not isinstance(groups, dict) or len(groups) != 1:
        raise KvcalcError(
            "compressed-tensors config with other than one config group is not modelled"
        )
    (group,) = groups.values()
    weights = group.get("weights") or {}
    fmt_name = group.get("format") or q.get("format")
    bits, kind = weights.get("num_bits"), weights.get("type")
    strategy, size = weights.get("strategy"), weights.get("group_size")
    targets = _strings(group.get("targets"), "targets")
    if targets == ("Linear",):
        targets = ()
    ignore = _strings(q.get("ignore"), "ignore")
    n_bits = bits if isinstance(bits, int) and bits in (4, 8) else 0
    n_group = size if isinstance(size, int) and size > 0 else 0
    if fmt_name == "pack-quantized" and kind == "int" and strategy == "group" and n_bits * n_group:
        if not weights.get("symmetric", True):
            raise KvcalcError("asymmetric compressed-tensors int groups are not modelled")
        fmt = Format(f"int{bits} (bf16 scale per {size})", "int_pack", n_bits, n_group)
    elif fmt_name == "mxfp4-pack-quantized" and bits == 4 and size == 32:
        fmt = MXFP4
    elif fmt_name == "nvfp4-pack-quantized" and bits == 4 and size == 16:
        fmt = NVFP4
    else:
        raise KvcalcError(
            f"compressed-tensors format {fmt_name!r} ({bits}-bit {kind}, {strategy}) is not "
            "modelled; pass --weights-dtype to size the weights yourself"
        )
    return Recipe(f"compressed-tensors {fmt_name}", fmt, ignore, targets)


def _gptq_awq(q: Mapping[str, Any], method: str) -> Recipe:
    bits = q.get("bits", q.get("w_bit", 4))
    group = q.get("group_size", q.get("q_group_size", 128))
    if not isinstance(bits, int) or bits not in (2, 3, 4, 8):
        raise KvcalcError(f"{method} bits must be 2, 3, 4 or 8, got {bits!r}")
    if not isinstance(group, int) or (group <= 0 and group != -1):
        raise KvcalcError(f"{method} group_size must be positive or -1, got {group!r}")
    if method == "awq" and q.get("zero_point") is False:
        raise KvcalcError("AWQ without zero points is not modelled")
    kind: Literal["gptq", "awq"] = "gptq" if method == "gptq" else "awq"
    fmt = Format(f"{method} int{bits} group {group}", kind, bits, group)
    ignore = _strings(q.get("modules_to_not_convert"), "modules_to_not_convert")
    return Recipe(method, fmt, ignore)


def parse_recipe(quantization_config: Mapping[str, Any]) -> Recipe:
    """Return the recipe a `quantization_config` describes; KvcalcError if not modelled."""
    q = quantization_config
    method = str(q.get("quant_method") or "")
    if "quantized_layers" in q and q.get("quant_algo") == "MIXED_PRECISION":
        return _modelopt(q)  # ModelOpt mixed precision, whatever quant_method says
    if method == "fp8":
        ignore = _strings(q.get("modules_to_not_convert", q.get("ignored_layers")), "modules")
        block = q.get("weight_block_size")
        static = q.get("activation_scheme") == "static"  # an fp32 input_scale per linear
        if block is None:  # per-tensor fp32 weight_scale
            fmt = Format(
                "fp8 (per-tensor fp32 scale)", "fp8_tensor", per_tensor_bytes=8 if static else 4
            )
            return Recipe("fp8", fmt, ignore)
        return Recipe("fp8", _fp8_block(block, static), ignore)
    if method == "mxfp4":
        ignore = _strings(q.get("modules_to_not_convert"), "modules_to_not_convert")
        return Recipe("mxfp4", MXFP4, ignore, experts_only=True)
    if method == "modelopt":
        return _modelopt(q)
    if method == "compressed-tensors":
        return _compressed_tensors(q)
    if method in ("gptq", "awq"):
        return _gptq_awq(q, method)
    raise KvcalcError(
        f"quantization_config quant_method {method or '(none)'!r} is not modelled (fp8, mxfp4, "
        "modelopt, compressed-tensors, gptq, awq are); pass --weights-dtype to size the weights"
    )


def with_hf_quant_config(
    config: Mapping[str, Any], hf_quant_config: Mapping[str, Any] | None
) -> dict[str, Any]:
    """Return config with ModelOpt's hf_quant_config.json as its quantization_config.

    ModelOpt checkpoints publish their recipe in hf_quant_config.json (older ones only there);
    when it is given it is the recipe, as vLLM's ModelOptConfig reads it. But a config.json
    whose own quantization_config names another quant_method keeps it: vLLM takes config.json's
    quantization_config whenever there is one and reads a quantization config file only
    without it (vllm-project/vllm@0035bdf2b1ac243ef6f31eef27411b022461df8e:
    vllm/model_executor/model_loader/weight_utils.py:get_quant_config), and a method other
    than ModelOpt's never reads hf_quant_config.json (nvidia/DeepSeek-V4-Flash-NVFP4: its
    config.json's fp8 recipe with moe_quant_algo NVFP4, which the file would replace).
    """
    merged = dict(config)
    if hf_quant_config is None:
        return merged
    inner = hf_quant_config.get("quantization")
    if not isinstance(inner, dict):
        raise KvcalcError("hf_quant_config.json has no 'quantization' table")
    # engines differ in which file their KV dtype follows (checkpoint_kv): keep both, whichever
    # recipe the weights take (TensorRT-LLM reads the file's KV algo even beside another method)
    merged[_HF_QUANT_KEY] = dict(inner)
    merged[_CONFIG_QUANT_KEY] = config.get("quantization_config")
    text = config.get("text_config")
    own = config.get("quantization_config") or (
        text.get("quantization_config") if isinstance(text, dict) else None
    )
    if isinstance(own, dict) and own.get("quant_method") not in (None, "modelopt"):
        return merged
    merged["quantization_config"] = {"quant_method": "modelopt", **inner}
    return merged


# ---- the KV cache a checkpoint publishes --------------------------------------------------

# with_hf_quant_config's copies of the two files' recipes (not Hugging Face keys)
_HF_QUANT_KEY = "_kvcalc_hf_quant_config"
_CONFIG_QUANT_KEY = "_kvcalc_config_quantization_config"
# ModelOpt's static per-tensor fp8 KV scheme, as config.json's quantization_config spells it
_FP8_SCHEME = {"dynamic": False, "num_bits": 8, "type": "float"}
_KV_KEYS = ("kv_cache_scheme", "kv_cache_quant_algo")


def _kv_value(value: Any, where: str) -> Literal["fp8_e4m3"]:
    """Return the KV dtype a published KV scheme or algo names; KvcalcError naming `where`
    for anything but ModelOpt's fp8 (the only one every engine read maps the same way)."""
    if isinstance(value, str) and value.upper() == "FP8":
        return "fp8_e4m3"
    if isinstance(value, dict) and value == _FP8_SCHEME:
        return "fp8_e4m3"
    raise KvcalcError(
        f"{where} {value!r} is not modelled (only ModelOpt's static fp8 KV cache is: "
        "'FP8', or {'dynamic': false, 'num_bits': 8, 'type': 'float'}); pass --kv-dtype "
        "after checking what your engine makes of it"
    )


def _config_kv(q: Mapping[str, Any]) -> tuple[Literal["fp8_e4m3"], str] | None:
    """Return (KV dtype, key) config.json's quantization_config publishes for the KV cache,
    the key first in vLLM's order (get_kv_cache_quant_algo_string: quantization.kv_cache_scheme,
    kv_cache_scheme, quantization.kv_cache_quant_algo, kv_cache_quant_algo); None if none.
    Every KV key set is checked, so none not understood is ignored."""
    method = str(q.get("quant_method") or "")
    inner = q.get("quantization")
    tables: list[tuple[str, Mapping[str, Any]]] = [("", q)]
    if isinstance(inner, dict):
        tables.insert(0, ("quantization.", inner))
    found = [
        (f"quantization_config.{prefix}{key}", table[key])
        for key in _KV_KEYS
        for prefix, table in tables
        if table.get(key) is not None
    ]
    if not found:
        return None
    where, value = found[0]
    # vllm-project/vllm:vllm/model_executor/layers/attention/attention.py Attention.__init__:
    # "llm-compressor mdls need to set cache_dtype to fp8 manually" (any non-None
    # quant_config.kv_cache_scheme, whatever cache_config.cache_dtype was)
    if method.replace("_", "-") == "compressed-tensors":
        raise KvcalcError(
            f"{where} {value!r}: a compressed-tensors KV cache scheme is not modelled (vLLM's "
            "Attention switches such a checkpoint's cache to fp8 whatever --kv-cache-dtype says)"
        )
    if not method.startswith("modelopt"):
        raise KvcalcError(
            f"{where} {value!r} with quant_method {method or '(none)'!r} is not modelled "
            "(ModelOpt's is)"
        )
    dtypes = {_kv_value(v, w) for w, v in found}
    return dtypes.pop(), where.removeprefix("quantization_config.")


def checkpoint_kv(config: Mapping[str, Any]) -> CheckpointKv | None:
    """Return the KV-cache quantisation the checkpoint publishes, file by file; None if none.

    `config` is the whole config.json (with hf_quant_config.json merged in by
    with_hf_quant_config, which keeps both files' recipes); a multimodal config may carry its
    quantization_config in text_config (moonshotai/Kimi-K2.5). A KV scheme that is not ModelOpt's static fp8 is refused, naming its key: engines differ on
    the others (vLLM falls back to the model dtype with a warning, TensorRT-LLM raises).
    """
    if _HF_QUANT_KEY in config:
        q, hf_quant = config.get(_CONFIG_QUANT_KEY), config[_HF_QUANT_KEY]
    else:
        q, hf_quant = config.get("quantization_config"), None
    text = config.get("text_config")
    if q is None and isinstance(text, dict):
        q = text.get("quantization_config")
    if q is not None and not isinstance(q, dict):
        raise KvcalcError("config key 'quantization_config' must be a table")
    in_config = None if q is None else _config_kv(q)
    from_file = None
    if hf_quant is not None:
        if hf_quant.get("kv_cache_scheme") is not None:
            raise KvcalcError(
                "hf_quant_config.json quantization.kv_cache_scheme is not modelled "
                "(ModelOpt writes kv_cache_quant_algo there)"
            )
        algo = hf_quant.get("kv_cache_quant_algo")
        if algo is not None:
            from_file = _kv_value(algo, "hf_quant_config.json quantization.kv_cache_quant_algo")
    if in_config is None and from_file is None:
        return None
    return CheckpointKv(
        config_json=None if in_config is None else in_config[0],
        config_json_key=None if in_config is None else in_config[1],
        config_json_quantized=q is not None,
        hf_quant_config=from_file,
        hf_quant_config_file=hf_quant is not None,
    )


# ---- sizing -------------------------------------------------------------------------------


def weights_quant(
    recipe: Recipe,
    linears: Sequence[Linear],
    part_weights: Mapping[str, int],
    dtype_bytes: int,
    stored: Sequence[Stored] = (),
    lm_head: Linear | None = None,
) -> WeightsQuant:
    """Return the exact published bytes of each part: its quantised linears in their formats,
    the stored tensors at their own bytes, every other weight of the part (biases, norms,
    routers, unquantised linears) at dtype_bytes. The `other` part is sized only when stored
    tensors fall in it. Where part_weights gives a part's replicated_<part> (the weights
    every tensor-parallel rank holds whole), the part's replicated_bytes are its replicated
    linears in their own formats and the rest of those weights (norms, biases) at
    dtype_bytes. KvcalcError when the listed weights do not fit in the part's."""
    sized: tuple[str, ...] = PARTS + (("other",) if any(t.part == "other" for t in stored) else ())
    quantized = dict.fromkeys(sized, 0)
    quant_bytes = dict.fromkeys(sized, 0)
    listed = dict.fromkeys(sized, 0)
    whole = dict.fromkeys(sized, 0)  # weights of the replicated linears
    whole_bytes = dict.fromkeys(sized, 0)
    used: dict[str, int] = {}
    formats = [(linear, recipe.format_for(linear)) for linear in linears]
    for linear, fmt in formats:
        listed[linear.part] += linear.weights
        if linear.replicated:
            whole[linear.part] += linear.weights
        if fmt is None:
            if linear.replicated:
                whole_bytes[linear.part] += linear.weights * dtype_bytes
            continue
        quantized[linear.part] += linear.weights
        matrix = fmt.matrix_bytes(linear.out_features, linear.in_features)
        quant_bytes[linear.part] += matrix * linear.count
        if linear.replicated:
            whole_bytes[linear.part] += matrix * linear.count
        used[fmt.name] = used.get(fmt.name, 0) + linear.weights
    kept = dict.fromkeys(sized, 0)
    kept_bytes = dict.fromkeys(sized, 0)
    for tensors in stored:
        kept[tensors.part] += tensors.weights
        kept_bytes[tensors.part] += tensors.bytes
    parts = {}
    for part in sized:
        total = part_weights.get(part, 0)
        if listed[part] + kept[part] > total:
            raise LayoutMismatch(
                f"its {part} linears and stored tensors hold {listed[part] + kept[part]:,} "
                f"weights, more than the parameter breakdown's {total:,}"
            )
        rest = total - quantized[part] - kept[part]
        replicated = part_weights.get(f"replicated_{part}") or 0
        if whole[part] > replicated:
            raise LayoutMismatch(
                f"its replicated {part} linears hold {whole[part]:,} weights, more than the "
                f"parameter breakdown's replicated_{part} {replicated:,}"
            )
        parts[part] = PartBytes(
            weights=total,
            quantized_weights=quantized[part],
            bytes=quant_bytes[part] + kept_bytes[part] + rest * dtype_bytes,
            replicated_weights=replicated or None,
            replicated_bytes=(
                whole_bytes[part] + (replicated - whole[part]) * dtype_bytes if replicated else None
            ),
        )
    head = _lm_head_bytes(recipe, lm_head, part_weights.get("lm_head", 0))
    summary = _summary(recipe, formats, used, [t.what for t in stored], head)
    return WeightsQuant(method=recipe.method, summary=summary, lm_head=head[1], **parts)


def _lm_head_bytes(
    recipe: Recipe, lm_head: Linear | None, weights: int
) -> tuple[str, PartBytes] | tuple[None, None]:
    """Return (its format, its bytes) when a ModelOpt recipe ships the LM head quantised:
    MIXED_PRECISION's quantized_layers names `lm_head`, or a global quant_algo's
    exclude_modules does not (ModelOpt lists every module it leaves unquantised there).
    Other recipes leave it in the model dtype (the HF fp8 / mxfp4 / compressed-tensors
    checkpoints read keep it out). KvcalcError (LayoutMismatch) when its shape is not the
    parameter breakdown's LM head."""
    if lm_head is None or not weights or not recipe.method.startswith("modelopt"):
        return None, None
    fmt = recipe.format_for(lm_head)
    if fmt is None:
        return None, None
    if lm_head.weights != weights:
        raise LayoutMismatch(
            f"its LM head holds {lm_head.weights:,} weights, not the breakdown's {weights:,}"
        )
    shipped = fmt.matrix_bytes(lm_head.out_features, lm_head.in_features)
    return fmt.name, PartBytes(weights=weights, quantized_weights=weights, bytes=shipped)


def _summary(
    recipe: Recipe,
    formats: Sequence[tuple[Linear, Format | None]],
    used: Mapping[str, int],
    stored: Sequence[str] = (),
    lm_head: tuple[str, PartBytes] | tuple[None, None] = (None, None),
) -> str:
    """Return which kinds of linear ship in which format, in words ('some' where a kind is
    split between formats), quantised formats first, then the stored tensors."""
    if not used:
        return f"{recipe.method}: no linear of this model is quantised"
    where: dict[str, list[str]] = {}
    labels_of: dict[str, set[str]] = {}
    for linear, fmt in formats:
        label = fmt.name if fmt is not None else "the model dtype"
        kind = "routed experts" if linear.expert else ("routers" if linear.router else linear.part)
        if kind not in where.setdefault(label, []):
            where[label].append(kind)
        labels_of.setdefault(kind, set()).add(label)
    order = sorted(where, key=lambda label: label == "the model dtype")
    described = "; ".join(
        ", ".join(f"some {k}" if len(labels_of[k]) > 1 else k for k in where[label])
        + f" in {label}"
        for label in order
    )
    described += "".join(f"; {what}" for what in dict.fromkeys(stored))
    head_format = lm_head[0]
    if head_format is not None:
        return (
            f"{recipe.method}: {described}; LM head in {head_format}; embeddings, norms and "
            "biases in the model dtype"
        )
    return f"{recipe.method}: {described}; embeddings, LM head, norms and biases in the model dtype"


# ---- the HF models' linear layers ---------------------------------------------------------


def _int(c: Mapping[str, Any], *keys: str, default: int | None = None) -> int:
    for key in keys:
        value = c.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    if default is None:
        raise KvcalcError(f"config.json lacks {keys[0]!r}, which the weights sizing needs")
    return default


_DEEPSEEK_LIKE = frozenset(
    {"deepseek_v2", "deepseek_v3", "kimi_k2", "glm4_moe", "deepseek_v32", "glm_moe_dsa"}
)
# MLA_REPLICATED: the MLA families whose tensor-parallel split was read in the engines.
# Every rank holds q_a_proj, kv_a_proj_with_mqa, their norms, the MoE router and the DSA
# indexer whole; q_b_proj / q_proj and kv_b_proj are column-parallel, o_proj row-parallel,
# the shared experts and each routed expert's intermediate split by tp. Sources:
# vllm-project/vllm@b863fe5bf4e19680572603b4e166faefc5725551:vllm/model_executor/models/
# deepseek_v2.py (DeepseekV2MLAAttention: fused_qkv_a_proj a MergedColumnParallelLinear with
# disable_tp=True, or kv_a_proj_with_mqa a ReplicatedLinear; q_a_layernorm and
# kv_a_layernorm RMSNorm; DeepSeekV2Gate a ReplicatedLinear; Indexer wq_b, wk, weights_proj
# ReplicatedLinear, k_norm LayerNorm);
# sgl-project/sglang@3e4a39ee73308590c5c753108bdcb8d333f7f1c6:python/sglang/srt/models/
# deepseek_v2.py (DeepseekV2AttentionMLA: fused_qkv_a_proj_with_mqa a ReplicatedLinear;
# MoEGate a whole nn.Parameter) and
# sgl-project/sglang@005e8bf8abf447d93cd14427efbf0b10bf42a326:python/sglang/srt/layers/
# attention/nsa/nsa_indexer.py (Indexer: wq_b, wk, weights_proj ReplicatedLinear, k_norm).
# Kimi-K3's MLA layers the same (kvcalc/hf/_linear.py _mla_replicated).
MLA_REPLICATED = frozenset(
    {"deepseek_v2", "deepseek_v3", "kimi_k2", "deepseek_v32", "glm_moe_dsa", "kimi_k3"}
)
_QWEN_MOE = frozenset({"qwen2_moe", "qwen3_moe", "qwen3_vl_moe_text"})
_DENSE = frozenset(
    {"llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3", "gemma3_text",
     "granite", "olmo2", "olmo3", "smollm3", "cohere", "cohere2", "starcoder2", "qwen3_vl_text",
     "ministral3"}
)  # fmt: skip


_MAX_LAYERS = 4096


def hf_linears(c: Mapping[str, Any], family: str) -> tuple[Linear, ...] | None:
    """Return every linear weight of the transformers model for this text config, by module.

    None for a family whose module layout is not listed here (its published quantisation
    cannot then be sized exactly).
    """
    layers = c.get("num_hidden_layers")
    pattern = c.get("hybrid_override_pattern")
    if (isinstance(layers, int) and layers > _MAX_LAYERS) or (
        isinstance(pattern, str) and len(pattern) > _MAX_LAYERS
    ):
        return None  # no published model is that deep: not listed module by module
    if family == "nemotron_h":
        return _nemotron_h_linears(c)
    if family == "gemma4_text":
        return _gemma4_linears(c)
    if family == "mimo_v2_flash":
        return _mimo_v2_flash_linears(c)
    if family in ("qwen3_next", "qwen3_5_text", "qwen3_5_moe_text", "qwen3_5", "qwen3_5_moe"):
        return _qwen_gdn_linears(c, family)
    if family == "kimi_k3":
        return _kimi_k3_linears(c)
    if family == "minimax_m3":
        return _minimax_m3_linears(c)
    if family not in _DENSE | _DEEPSEEK_LIKE | _QWEN_MOE | {
        "mixtral",
        "minimax_m2",
        "gpt_oss",
        "phi3",
    }:
        return None
    h = _int(c, "hidden_size")
    n_layers = _int(c, "num_hidden_layers")
    n_heads = _int(c, "num_attention_heads")
    indexed = _indexer_layers(c, family, n_layers)
    out: list[Linear] = []
    for i in range(n_layers):
        out += _attention_linears(c, family, i, h, n_heads)
        if i in indexed:
            out += _indexer_linears(c, i, h)
        out += _mlp_linears(c, family, i, h, n_layers)
    return tuple(out)


def _indexer_layers(c: Mapping[str, Any], family: str, n_layers: int) -> set[int]:
    """Layers running their own sparse-attention indexer (DeepSeek-V3.2 all; GLM-5.2+ the
    'full' ones of indexer_types, as transformers GlmMoeDsaConfig derives them)."""
    if family not in ("deepseek_v32", "glm_moe_dsa"):
        return set()
    given = c.get("indexer_types")
    if given is None and family == "glm_moe_dsa":
        pattern = c.get("index_topk_pattern")
        if isinstance(pattern, str):
            given = [{"F": "full", "S": "shared"}.get(ch, ch) for ch in pattern]
        elif pattern is not None:
            given = list(pattern)
        else:
            freq = max(_int(c, "index_topk_freq", default=1), 1)
            offset = _int(c, "index_skip_topk_offset", default=2)
            given = [
                "full" if max(i - offset + 1, 0) % freq == 0 else "shared" for i in range(n_layers)
            ]
    if given is None:
        return set(range(n_layers))
    return {i for i, kind in enumerate(given) if kind == "full"}


def _indexer_linears(c: Mapping[str, Any], i: int, h: int) -> list[Linear]:
    """The lightning indexer's projections: wq_b and wk quantised like the attention,
    weights_proj unquantised (vLLM deepseek_v2.py Indexer: quant_config=None)."""
    a = f"layers.{i}.self_attn.indexer."
    heads, dim = _int(c, "index_n_heads"), _int(c, "index_head_dim")
    q_lora = _int(c, "q_lora_rank")
    # all three whole on every tensor-parallel rank (ReplicatedLinear in vLLM and SGLang)
    return [
        Linear(a + "wq_b", "attention", heads * dim, q_lora, replicated=True),
        Linear(a + "wk", "attention", dim, h, replicated=True),
        Linear(a + "weights_proj", "attention", heads, h, router=True, replicated=True),
    ]


def _mimo_v2_flash_linears(c: Mapping[str, Any]) -> tuple[Linear, ...]:
    """MiMo-V2-Flash's linears (transformers modeling_mimo_v2_flash.py): q/k/v/o with K head
    dim head_dim and V v_head_dim, twice the KV heads in sliding layers; dense MLP or MoE
    (router, experts, no shared expert) by moe_layer_freq."""
    h = _int(c, "hidden_size")
    n_layers = _int(c, "num_hidden_layers")
    n_heads, n_kv = _int(c, "num_attention_heads"), _int(c, "num_key_value_heads")
    d, dv = _int(c, "head_dim", default=192), _int(c, "v_head_dim", default=128)
    pattern = c.get("hybrid_layer_pattern")
    types = c.get("layer_types") or (
        ["sliding_attention" if flag else "full_attention" for flag in pattern]
        if isinstance(pattern, list)
        else [
            "full_attention" if (i == 0 or not (i + 1) % 6) else "sliding_attention"
            for i in range(n_layers)
        ]
    )
    flags = c.get("mlp_layer_types") or c.get("moe_layer_freq")
    moe = (
        [f in ("sparse", 1, True) for f in flags]
        if isinstance(flags, list)
        else [i > 0 for i in range(n_layers)]
    )
    n_experts = _int(c, "n_routed_experts", "num_local_experts")
    out: list[Linear] = []
    for i, kind in enumerate(types):
        kv = 2 * n_kv if kind == "sliding_attention" else n_kv
        a = f"layers.{i}.self_attn."
        out += [
            Linear(a + "q_proj", "attention", n_heads * d, h),
            Linear(a + "k_proj", "attention", kv * d, h),
            Linear(a + "v_proj", "attention", kv * dv, h),
            Linear(a + "o_proj", "attention", h, n_heads * dv),
        ]
        m = f"layers.{i}.mlp."
        if moe[i]:
            out.append(Linear(m + "gate", "experts", n_experts, h, router=True))
            out += _gated(
                m + "experts.0.", "experts", h, _int(c, "moe_intermediate_size"), n_experts, True
            )
        else:
            out += _gated(m, "mlp", h, _int(c, "intermediate_size"))
    return tuple(out)


def _gemma4_linears(c: Mapping[str, Any]) -> tuple[Linear, ...] | None:
    """Gemma 4's linears (transformers modeling_gemma4.py): q/o per layer, k/v in the layers
    that keep their own KV (no v_proj in full layers with attention_k_eq_v), the MLP doubled
    in KV-shared layers with use_double_wide_mlp; with enable_moe_block each layer's router
    proj (num_experts × hidden, unquantised) and its experts beside the dense MLP, each
    expert a gate_proj, up_proj (moe_intermediate_size × hidden) and down_proj, the 2-D
    per-expert matrices a quantised checkpoint ships (vllm-project/vllm@001cabc1be16a59a70d7
    20ed61a13b678c060a18:vllm/model_executor/models/gemma4.py:Gemma4Model.load_weights,
    expert_params_mapping: experts.{id}.gate_proj / up_proj / down_proj, each with its own
    scales). None with per-layer inputs (their module names are not listed here)."""
    if c.get("hidden_size_per_layer_input"):
        return None
    moe = bool(c.get("enable_moe_block"))
    h = _int(c, "hidden_size")
    n_layers = _int(c, "num_hidden_layers")
    n_heads, n_kv, d = (
        _int(c, "num_attention_heads"),
        _int(c, "num_key_value_heads"),
        _int(c, "head_dim"),
    )
    types = c.get("layer_types") or [
        "sliding_attention" if (i + 1) % 6 else "full_attention" for i in range(n_layers)
    ]
    types = [*types[:-1], "full_attention"]
    k_eq_v = bool(c.get("attention_k_eq_v", False))
    global_d = _int(c, "global_head_dim", default=512)
    global_kv = (_int(c, "num_global_key_value_heads", default=0) if k_eq_v else 0) or n_kv
    first_shared = n_layers - _int(c, "num_kv_shared_layers", default=0)
    inter = _int(c, "intermediate_size")
    double = bool(c.get("use_double_wide_mlp", False))
    out: list[Linear] = []
    for i, kind in enumerate(types):
        full = kind == "full_attention"
        dl, kvl = (global_d, global_kv) if full else (d, n_kv)
        a = f"layers.{i}.self_attn."
        out.append(Linear(a + "q_proj", "attention", n_heads * dl, h))
        if i < first_shared:
            out.append(Linear(a + "k_proj", "attention", kvl * dl, h))
            if not (k_eq_v and full):
                out.append(Linear(a + "v_proj", "attention", kvl * dl, h))
        out.append(Linear(a + "o_proj", "attention", h, n_heads * dl))
        width = inter * (2 if double and i >= first_shared else 1)
        out += _gated(f"layers.{i}.mlp.", "mlp", h, width)
        if moe:
            n_experts = _int(c, "num_experts")
            out.append(Linear(f"layers.{i}.router.proj", "experts", n_experts, h, router=True))
            out += _gated(
                f"layers.{i}.experts.0.",
                "experts",
                h,
                _int(c, "moe_intermediate_size"),
                n_experts,
                True,
            )
    return tuple(out)


def _attention_linears(
    c: Mapping[str, Any], family: str, i: int, h: int, n_heads: int
) -> list[Linear]:
    a = f"layers.{i}.self_attn."
    if c.get("kv_lora_rank"):
        rank, rope = _int(c, "kv_lora_rank"), _int(c, "qk_rope_head_dim")
        nope, v = _int(c, "qk_nope_head_dim"), _int(c, "v_head_dim")
        q_lora = c.get("q_lora_rank")
        # q_a_proj and kv_a_proj_with_mqa whole on every tensor-parallel rank in the MLA
        # families read (MLA_REPLICATED)
        whole = family in MLA_REPLICATED
        qs = (
            [Linear(a + "q_proj", "attention", n_heads * (nope + rope), h)]
            if not q_lora
            else [
                Linear(a + "q_a_proj", "attention", q_lora, h, replicated=whole),
                Linear(a + "q_b_proj", "attention", n_heads * (nope + rope), q_lora),
            ]
        )
        return [
            *qs,
            Linear(a + "kv_a_proj_with_mqa", "attention", rank + rope, h, replicated=whole),
            Linear(a + "kv_b_proj", "attention", n_heads * (nope + v), rank),
            Linear(a + "o_proj", "attention", h, n_heads * v),
        ]
    d = _int(c, "head_dim", default=0) or h // n_heads
    n_kv = _int(c, "num_key_value_heads", default=n_heads)
    if family == "phi3":
        return [
            Linear(a + "qkv_proj", "attention", (n_heads + 2 * n_kv) * d, h),
            Linear(a + "o_proj", "attention", h, n_heads * d),
        ]
    return [
        Linear(a + "q_proj", "attention", n_heads * d, h),
        Linear(a + "k_proj", "attention", n_kv * d, h),
        Linear(a + "v_proj", "attention", n_kv * d, h),
        Linear(a + "o_proj", "attention", h, n_heads * d),
    ]


def _gated(
    prefix: str, part: Part, h: int, width: int, count: int = 1, expert: bool = False
) -> list[Linear]:
    return [
        Linear(prefix + "gate_proj", part, width, h, count, expert),
        Linear(prefix + "up_proj", part, width, h, count, expert),
        Linear(prefix + "down_proj", part, h, width, count, expert),
    ]


def _mlp_linears(c: Mapping[str, Any], family: str, i: int, h: int, n_layers: int) -> list[Linear]:
    m = f"layers.{i}.mlp."
    inter = _int(c, "intermediate_size", default=0)
    if family == "phi3":
        return [
            Linear(m + "gate_up_proj", "mlp", 2 * inter, h),
            Linear(m + "down_proj", "mlp", h, inter),
        ]
    if family in _DENSE:
        return _gated(m, "mlp", h, inter)
    n_experts = _int(c, "num_local_experts", "n_routed_experts", "num_experts")
    moe_inter = _int(c, "moe_intermediate_size", default=inter)
    if family in ("mixtral", "minimax_m2"):  # block_sparse_moe.experts.N.w1/w3/w2
        b = f"layers.{i}.block_sparse_moe."
        e = b + "experts.0."
        return [
            Linear(b + "gate", "experts", n_experts, h, router=True),
            Linear(e + "w1", "experts", inter, h, n_experts, True),
            Linear(e + "w3", "experts", inter, h, n_experts, True),
            Linear(e + "w2", "experts", h, inter, n_experts, True),
        ]
    if family == "gpt_oss":
        return [
            Linear(m + "router", "experts", n_experts, h, router=True),
            Linear(m + "experts.gate_up_proj", "experts", 2 * moe_inter, h, n_experts, True),
            Linear(m + "experts.down_proj", "experts", h, moe_inter, n_experts, True),
        ]
    if family in _DEEPSEEK_LIKE:
        whole_router = family in MLA_REPLICATED  # DeepSeekV2Gate / MoEGate: whole per rank
        first_dense = _int(c, "first_k_dense_replace", default=0)
        step = _int(c, "moe_layer_freq", default=1)
        if not (i >= first_dense and i % step == 0):
            return _gated(m, "mlp", h, inter)
        shared = _int(c, "n_shared_experts", default=0)
        router = [Linear(m + "gate", "experts", n_experts, h, router=True, replicated=whole_router)]
        experts = _gated(m + "experts.0.", "experts", h, moe_inter, n_experts, True)
        shared_l = _gated(m + "shared_experts.", "mlp", h, moe_inter * shared) if shared else []
        return router + experts + shared_l
    # Qwen MoE
    step = _int(c, "decoder_sparse_step", default=1)
    mlp_only = set(c.get("mlp_only_layers") or [])
    if i in mlp_only or (i + 1) % step:
        return _gated(m, "mlp", h, inter)
    out = [Linear(m + "gate", "experts", n_experts, h, router=True)]
    out += _gated(m + "experts.0.", "experts", h, moe_inter, n_experts, True)
    shared_inter = _int(c, "shared_expert_intermediate_size", default=0)
    if shared_inter:
        out += _gated(m + "shared_expert.", "mlp", h, shared_inter)
        out.append(Linear(m + "shared_expert_gate", "mlp", 1, h, router=True))
    return out


def _qwen_gdn_linears(c: Mapping[str, Any], family: str) -> tuple[Linear, ...]:
    """Qwen3-Next / Qwen3.5 linears (transformers modeling_qwen3_next.py: in_proj_qkvz,
    in_proj_ba; modeling_qwen3_5.py: in_proj_qkv, in_proj_z, in_proj_b, in_proj_a; both
    out_proj; gated full attention with q_proj doubled; MoE with a gated shared expert)."""
    h = _int(c, "hidden_size")
    n_layers = _int(c, "num_hidden_layers")
    n_heads = _int(c, "num_attention_heads")
    n_kv = _int(c, "num_key_value_heads", default=n_heads)
    d = _int(c, "head_dim", default=h // n_heads)
    hk, dk = _int(c, "linear_num_key_heads"), _int(c, "linear_key_head_dim")
    hv, dv = _int(c, "linear_num_value_heads"), _int(c, "linear_value_head_dim")
    types = c.get("layer_types")
    if not isinstance(types, list):
        interval = _int(c, "full_attention_interval", default=4)
        types = [
            "full_attention" if (i + 1) % interval == 0 else "linear_attention"
            for i in range(n_layers)
        ]
    gate = 2 if family == "qwen3_next" or c.get("attn_output_gate", True) else 1
    n_experts = _int(c, "num_experts", default=0)
    mlp_only = set(c.get("mlp_only_layers") or [])
    step = _int(c, "decoder_sparse_step", default=1)
    out: list[Linear] = []
    for i, layer_type in enumerate(types):
        if layer_type == "full_attention":
            a = f"layers.{i}.self_attn."
            out += [
                Linear(a + "q_proj", "attention", gate * n_heads * d, h),
                Linear(a + "k_proj", "attention", n_kv * d, h),
                Linear(a + "v_proj", "attention", n_kv * d, h),
                Linear(a + "o_proj", "attention", h, n_heads * d),
            ]
        else:
            a = f"layers.{i}.linear_attn."
            if family == "qwen3_next":
                out += [
                    Linear(a + "in_proj_qkvz", "attention", 2 * hk * dk + 2 * hv * dv, h),
                    Linear(a + "in_proj_ba", "attention", 2 * hv, h),
                ]
            else:
                out += [
                    Linear(a + "in_proj_qkv", "attention", 2 * hk * dk + hv * dv, h),
                    Linear(a + "in_proj_z", "attention", hv * dv, h),
                    Linear(a + "in_proj_b", "attention", hv, h),
                    Linear(a + "in_proj_a", "attention", hv, h),
                ]
            out.append(Linear(a + "out_proj", "attention", h, hv * dv))
        m = f"layers.{i}.mlp."
        if n_experts and i not in mlp_only and (i + 1) % step == 0:
            moe_inter = _int(c, "moe_intermediate_size")
            out.append(Linear(m + "gate", "experts", n_experts, h, router=True))
            out += _gated(m + "experts.0.", "experts", h, moe_inter, n_experts, True)
            shared = _int(c, "shared_expert_intermediate_size", default=0)
            if shared:
                out += _gated(m + "shared_expert.", "mlp", h, shared)
                out.append(Linear(m + "shared_expert_gate", "mlp", 1, h, router=True))
        else:
            out += _gated(m, "mlp", h, _int(c, "intermediate_size"))
    return tuple(out)


def _minimax_m3_linears(c: Mapping[str, Any]) -> tuple[Linear, ...]:
    """MiniMax-M3's linears under the checkpoint's module names (language_model.model.layers.N.
    self_attn.q_proj, k_proj, v_proj, o_proj, in sparse layers index_q_proj and
    index_k_proj; block_sparse_moe.gate, experts.N.w1 / w3 / w2, shared_experts.gate_proj /
    up_proj / down_proj in MoE layers; mlp.gate_proj / up_proj / down_proj in dense ones, as
    nvidia/MiniMax-M3-NVFP4's quantized_layers names them), of the shapes and layer kinds
    kvcalc/hf/_minimax_m3.py counts the parameters by."""
    from kvcalc.hf._config import _Config
    from kvcalc.hf._minimax_m3 import _INDEX_KEYS, _layer_kinds, _moe_layers, _sparse_config

    cfg = _Config(dict(c))
    sparse = _sparse_config(cfg)
    h, n_layers = _int(c, "hidden_size"), _int(c, "num_hidden_layers")
    n_heads, n_kv = _int(c, "num_attention_heads"), _int(c, "num_key_value_heads")
    d = _int(c, "head_dim", default=128)
    index = {
        flat: sparse[legacy] if legacy in sparse else _int(c, flat, default=default)
        for flat, (legacy, default) in _INDEX_KEYS.items()
    }
    index_heads, index_dim = int(index["index_n_heads"]), int(index["index_head_dim"])
    kinds = _layer_kinds(cfg, sparse, n_layers)
    moe = _moe_layers(cfg, n_layers)
    n_experts = _int(c, "num_local_experts", default=128)
    expert_inter = _int(c, "intermediate_size", default=3072)
    shared_inter = _int(c, "shared_intermediate_size", default=3072)
    dense_inter = _int(c, "dense_intermediate_size", default=12288)
    out: list[Linear] = []
    for i in range(n_layers):
        a = f"layers.{i}.self_attn."
        out += [
            Linear(a + "q_proj", "attention", n_heads * d, h),
            Linear(a + "k_proj", "attention", n_kv * d, h),
            Linear(a + "v_proj", "attention", n_kv * d, h),
            Linear(a + "o_proj", "attention", h, n_heads * d),
        ]
        if kinds[i] == "sparse":
            out += [
                Linear(a + "index_q_proj", "attention", index_heads * index_dim, h),
                Linear(a + "index_k_proj", "attention", index_dim, h),
            ]
        if moe[i]:
            b = f"layers.{i}.block_sparse_moe."
            e = b + "experts.0."
            out += [
                Linear(b + "gate", "experts", n_experts, h, router=True),
                Linear(e + "w1", "experts", expert_inter, h, n_experts, True),
                Linear(e + "w3", "experts", expert_inter, h, n_experts, True),
                Linear(e + "w2", "experts", h, expert_inter, n_experts, True),
            ]
            out += _gated(b + "shared_experts.", "mlp", h, shared_inter)
        else:
            out += _gated(f"layers.{i}.mlp.", "mlp", h, dense_inter)
    return tuple(out)


def _kimi_k3_linears(c: Mapping[str, Any]) -> tuple[Linear, ...]:
    """Kimi-K3's linears under the checkpoint's module names (language_model.model.layers.N.
    self_attn.*, block_sparse_moe.gate / experts.N.w1, w3, w2 / shared_experts.*, mlp.* in
    the dense layers), as SGLang's models/kimi_k3.py loads them
    (sgl-project/sglang@e44a41c1c413ce470c66445745f380a50203c286,
    KimiK3LinearForCausalLM.load_weights; its hf_to_sglang_mapper renames block_sparse_moe
    to mlp). The routed experts work in the routed_expert_hidden_size latent.

    Not listed, so counted in the model dtype whatever the recipe's targets: the latent
    routed_expert_down_proj / routed_expert_up_proj and the Attention-Residual pseudo-queries
    (*_res_proj). SGLang builds them as ReplicatedLinear with quant_config=None and loads the
    checkpoint's tensors into those bf16 weights as they are (a packed tensor would not fit).
    """
    h = _int(c, "hidden_size")
    n_layers = _int(c, "num_hidden_layers")
    n_heads = _int(c, "num_attention_heads")
    la = c.get("linear_attn_config")
    if not isinstance(la, dict):
        raise KvcalcError("config key 'linear_attn_config' must be a table")
    kda = {int(i) - 1 for i in la.get("kda_layers") or []}
    heads, dim = int(la.get("num_heads") or n_heads), int(la.get("head_dim") or 128)
    proj = heads * dim
    n_experts = _int(c, "num_experts")
    first_dense = _int(c, "first_k_dense_replace", default=0)
    step = _int(c, "moe_layer_freq", default=1)
    moe_inter = _int(c, "moe_intermediate_size")
    latent = _int(c, "routed_expert_hidden_size", default=h)
    shared = _int(c, "num_shared_experts", default=0)
    v_dim = _int(c, "v_head_dim")
    out: list[Linear] = []
    for i in range(n_layers):
        a = f"layers.{i}.self_attn."
        if i in kda:
            gate = (
                [Linear(a + "g_proj", "attention", proj, h)]
                if la.get("use_full_rank_gate")
                else [
                    Linear(a + "g_a_proj", "attention", dim, h),
                    Linear(a + "g_b_proj", "attention", proj, dim),
                ]
            )
            out += [
                Linear(a + "q_proj", "attention", proj, h),
                Linear(a + "k_proj", "attention", proj, h),
                Linear(a + "v_proj", "attention", proj, h),
                Linear(a + "f_a_proj", "attention", dim, h),
                Linear(a + "f_b_proj", "attention", proj, dim),
                Linear(a + "b_proj", "attention", heads, h),
                *gate,
                Linear(a + "o_proj", "attention", h, proj),
            ]
        else:
            out += _attention_linears(c, "kimi_k3", i, h, n_heads)
            if c.get("mla_use_output_gate"):
                out.append(Linear(a + "g_proj", "attention", n_heads * v_dim, h))
        if i >= first_dense and i % step == 0:
            b = f"layers.{i}.block_sparse_moe."
            e = b + "experts.0."
            out += [
                Linear(b + "gate", "experts", n_experts, h, router=True, replicated=True),
                Linear(e + "w1", "experts", moe_inter, latent, n_experts, True),
                Linear(e + "w3", "experts", moe_inter, latent, n_experts, True),
                Linear(e + "w2", "experts", latent, moe_inter, n_experts, True),
            ]
            if shared:
                out += _gated(b + "shared_experts.", "mlp", h, moe_inter * shared)
        else:
            out += _gated(f"layers.{i}.mlp.", "mlp", h, _int(c, "intermediate_size"))
    return tuple(out)


# DeepSeek-V4 as its fp8 release ships (quant_method fp8, overridden to deepseek_v4_fp8).
# vllm-project/vllm@023da1fc828eb07787cf0734a1ba32f0a0f11887:vllm/model_executor/models/
# deepseek_v4.py:DeepseekV4FP8Config (expert_dtype "fp4", the default: routed experts MXFP4
# by Mxfp4MoEMethod and the fp8 linears' block scales e8m0, is_scale_e8m0; "fp8": fp8-block
# experts, fp32 scales), DeepseekV4Attention and DeepseekV4MLP (q, kv, o and shared-expert
# linears built with the quant config), DeepseekV4MoE (router: NormGateLinear's GateLinear,
# no quant config); vllm@0de10a276eced6036e9752a223cba53c996d31cd:vllm/model_executor/layers/
# deepseek_compressor.py:DeepseekCompressor.fused_wkv_wgate and
# vllm@b92a330e057db9b8c2895ba862de2a03589adce8:vllm/model_executor/layers/
# deepseek_v4_attention.py:DeepseekV4Indexer.weights_proj (quant_config=None; its wq_b with
# the quant config). The unquantised projections are transformers 5.24 modeling_deepseek_v4.py
# DeepseekV4PreTrainedModel._keep_in_fp32_modules ("ship in BF16 with no companion scale_inv").
# Dtypes in the checkpoint: deepseek-ai/DeepSeek-V4-Flash@60d8d70770c6776ff598c94bb586a859a38244f1:
# inference/model.py (Linear: e8m0 scale per 128×128 block, fp4 two to a byte with an e8m0
# scale per 32; RMSNorm, ParallelHead and Compressor.wkv / wgate "stored in bf16";
# Attention.attn_sink, Compressor.ape, Gate.bias and Block / Transformer hc_* in fp32) and
# ByteDance-Seed/VeOmni@fd412c7f9c68a8e09e59bc5df83a2b361a185de5:scripts/deepseek_v4/
# merge_dcp_to_deepseek.py:OutputFormat, whose release schema read from the safetensors headers
# holds 67,612 tensors for V4-Flash (the count the modules below give), tid2eid int64.
_DEEPSEEK_V4_EXPERT_DTYPES = ("fp4", "fp8")
_DEEPSEEK_V4_UNQUANTISED = (
    "self_attn.compressor.kv_proj",
    "self_attn.compressor.gate_proj",
    "self_attn.compressor.indexer.kv_proj",
    "self_attn.compressor.indexer.gate_proj",
    "self_attn.compressor.indexer.scorer.weights_proj",
)


def _deepseek_v4_recipe(q: Mapping[str, Any], expert_dtype: str) -> Recipe:
    """Return DeepSeek-V4's fp8 release recipe as vLLM's DeepseekV4FP8Config reads it: the
    linears built with the quant config in fp8 blocks, the routed experts by expert_dtype.

    With expert_dtype fp4 and the quantization_config's moe_quant_algo NVFP4 (NVIDIA's
    DeepSeek-V4 NVFP4 checkpoints: ModelOpt replaced the MXFP4 experts, everything else is
    the fp8 release) the routed experts are ModelOptNvFp4FusedMoE's NVFP4 of group 16, each
    expert's w1, w3 and w2 with its own fp8 scales per 16 and fp32 weight_scale_2 and
    input_scale (vllm-project/vllm@e95bf0dfd8bc0f66724b083d56021777d8ecdc12:vllm/models/
    deepseek_v4/quant_config.py:DeepseekV4FP8Config.get_quant_method, _get_nvfp4_config);
    that config's ModelOpt keys (quantized_layers, its `ignore` list) are not what vLLM reads
    for the rest, which stays the fp8 release's. Any other moe_quant_algo is refused."""
    block = q.get("weight_block_size")
    if block is None:
        raise KvcalcError("DeepSeek-V4 fp8 without weight_block_size is not modelled")
    static = q.get("activation_scheme") == "static"
    ignore = _strings(q.get("modules_to_not_convert", q.get("ignored_layers")), "modules")
    ignore += _DEEPSEEK_V4_UNQUANTISED
    moe_algo = str(q.get("moe_quant_algo") or "").upper()
    if expert_dtype == "fp4" and moe_algo == "NVFP4":
        if q.get("group_size") not in (None, 16):
            raise KvcalcError(
                f"DeepSeek-V4 NVFP4 experts with group_size {q.get('group_size')!r} are not "
                "modelled (vLLM's DeepseekV4FP8Config builds them with 16)"
            )
        linear = _fp8_block(block, static, scale_bytes=1)
        return Recipe("fp8 + nvfp4 experts", linear, ignore, expert_format=NVFP4)
    if expert_dtype == "fp4" and moe_algo:
        raise KvcalcError(
            f"DeepSeek-V4 moe_quant_algo {q.get('moe_quant_algo')!r} is not modelled (vLLM's "
            "DeepseekV4FP8Config reads NVFP4)"
        )
    if expert_dtype == "fp4":
        linear = _fp8_block(block, static, scale_bytes=1)
        return Recipe("fp8 + mxfp4 experts", linear, ignore, expert_format=MXFP4)
    return Recipe("fp8", _fp8_block(block, static), ignore)


def _deepseek_v4_linears(c: Mapping[str, Any]) -> tuple[Linear, ...]:
    """DeepSeek-V4's linears by transformers 5.24's module names (modeling_deepseek_v4.py; the
    checkpoint's names in brackets): each layer's q_a_proj [attn.wq_a], q_b_proj [wq_b],
    kv_proj [wkv], o_a_proj [wo_a, og·ol × nh·D/og] and o_b_proj [wo_b]; a compressor's
    kv_proj and gate_proj [compressor.wkv, wgate] of 2·D rows in CSA layers, D in HCA; a CSA
    layer's indexer q_b_proj [indexer.wq_b], kv_proj and gate_proj of 2·Di rows
    [indexer.compressor.wkv, wgate] and scorer.weights_proj; every layer's router [ffn.gate],
    experts [ffn.experts.N.w1, w3: 2·E matrices I × H; w2] and shared expert."""
    from kvcalc.hf._compressed import compressed_layers

    h = _int(c, "hidden_size")
    nh, d = _int(c, "num_attention_heads"), _int(c, "head_dim")
    q_lora, groups, o_lora = _int(c, "q_lora_rank"), _int(c, "o_groups"), _int(c, "o_lora_rank")
    index_heads, index_dim = _int(c, "index_n_heads"), _int(c, "index_head_dim")
    n_experts, inter = _int(c, "n_routed_experts"), _int(c, "moe_intermediate_size")
    shared = _int(c, "n_shared_experts", default=0)
    kinds, _, _ = compressed_layers(dict(c))
    out: list[Linear] = []
    for i, kind in enumerate(kinds):
        a = f"layers.{i}.self_attn."
        out += [
            Linear(a + "q_a_proj", "attention", q_lora, h),
            Linear(a + "q_b_proj", "attention", nh * d, q_lora),
            Linear(a + "kv_proj", "attention", d, h),
            Linear(a + "o_a_proj", "attention", groups * o_lora, nh * d // groups),
            Linear(a + "o_b_proj", "attention", h, groups * o_lora),
        ]
        if kind != "sliding":
            rows = 2 * d if kind == "csa" else d
            out += [
                Linear(a + "compressor.kv_proj", "attention", rows, h),
                Linear(a + "compressor.gate_proj", "attention", rows, h),
            ]
        if kind == "csa":
            x = a + "compressor.indexer."
            out += [
                Linear(x + "q_b_proj", "attention", index_heads * index_dim, q_lora),
                Linear(x + "kv_proj", "attention", 2 * index_dim, h),
                Linear(x + "gate_proj", "attention", 2 * index_dim, h),
                Linear(x + "scorer.weights_proj", "attention", index_heads, h),
            ]
        m = f"layers.{i}.mlp."
        out += [
            Linear(m + "gate", "experts", n_experts, h, router=True),
            Linear(m + "experts.gate_up_proj", "experts", inter, h, 2 * n_experts, True),
            Linear(m + "experts.down_proj", "experts", h, inter, n_experts, True),
        ]
        if shared:
            out += _gated(m + "shared_experts.", "mlp", h, inter * shared)
    return tuple(out)


def _deepseek_v4_stored(c: Mapping[str, Any]) -> tuple[Stored, ...]:
    """DeepSeek-V4's tensors in a dtype of their own: fp32 attention sinks (nh a layer) and
    compressor position biases (m·2D + m·2Di a CSA layer, m'·D an HCA one); the fp32
    hyper-connections (2 × ((2 + hc)·hc·hc·H + (2 + hc)·hc + 3) a layer, and the head's
    hc·hc·H + hc + 1); the router's buffers: an int64 tid2eid of V × top-k in each hash
    layer (mlp_layer_types' hash_moe, else the first num_hash_layers, 3 by default as in
    transformers' DeepseekV4Config), an fp32 bias of E in the others."""
    from kvcalc.hf._compressed import compressed_layers

    kinds, rate, rate_hca = compressed_layers(dict(c))
    n_layers = len(kinds)
    h, hc = _int(c, "hidden_size"), _int(c, "hc_mult")
    d, index_dim = _int(c, "head_dim"), _int(c, "index_head_dim")
    biases = n_layers * _int(c, "num_attention_heads")
    biases += kinds.count("csa") * rate * 2 * (d + index_dim) + kinds.count("hca") * rate_hca * d
    hyper = n_layers * 2 * ((2 + hc) * hc * hc * h + (2 + hc) * hc + 3) + hc * hc * h + hc + 1
    given = c.get("mlp_layer_types")
    n_hash = (
        list(given[:n_layers]).count("hash_moe")
        if isinstance(given, list)
        else min(_int(c, "num_hash_layers", default=3), n_layers)
    )
    table = _int(c, "vocab_size") * _int(c, "num_experts_per_tok")
    buffers = n_hash * table * 8 + (n_layers - n_hash) * _int(c, "n_routed_experts") * 4
    return (
        Stored(
            "attention sinks and compressor position biases in float32",
            "attention",
            biases,
            4 * biases,
        ),
        Stored("hyper-connections in float32", "other", hyper, 4 * hyper),
        Stored("hash-routing tables in int64, router biases in float32", "experts", 0, buffers),
    )


def _nemotron_h_linears(c: Mapping[str, Any]) -> tuple[Linear, ...] | None:
    """Nemotron-H's linears by hybrid_override_pattern letter, or by layers_block_type where
    the config names its layers so (Nemotron-3.5: mamba, attention, moe; the letters
    kvcalc/hf/_mamba.py reads the spec's layers by) (transformers modeling_nemotron_h.py:
    Mamba2 mixer in_proj/out_proj, attention, relu² MLP and MoE with up/down only, latent
    projections around the experts)."""
    from kvcalc.hf._mamba import _block_types_pattern

    pattern = c.get("hybrid_override_pattern")
    if pattern is None and c.get("layers_block_type") is not None:
        pattern = _block_types_pattern(c["layers_block_type"], "layers_block_type")
    if not isinstance(pattern, str):
        return None
    h = _int(c, "hidden_size")
    n_heads = _int(c, "num_attention_heads")
    n_kv = _int(c, "num_key_value_heads", default=n_heads)
    d = _int(c, "head_dim", "attention_head_dim", default=h // n_heads)
    m_heads, m_dim = _int(c, "mamba_num_heads"), _int(c, "mamba_head_dim")
    groups, d_state = _int(c, "n_groups", default=1), _int(c, "ssm_state_size")
    d_inner = m_heads * m_dim
    out: list[Linear] = []
    for i, letter in enumerate(pattern):
        m = f"layers.{i}.mixer."
        if letter == "M":
            in_out = 2 * d_inner + 2 * groups * d_state + m_heads
            out += [
                Linear(m + "in_proj", "attention", in_out, h),
                Linear(m + "out_proj", "attention", h, d_inner),
            ]
        elif letter == "*":
            out += [
                Linear(m + "q_proj", "attention", n_heads * d, h),
                Linear(m + "k_proj", "attention", n_kv * d, h),
                Linear(m + "v_proj", "attention", n_kv * d, h),
                Linear(m + "o_proj", "attention", h, n_heads * d),
            ]
        elif letter == "-":
            inter = _int(c, "intermediate_size")
            out += [
                Linear(m + "up_proj", "mlp", inter, h),
                Linear(m + "down_proj", "mlp", h, inter),
            ]
        elif letter == "E":
            n_experts = _int(c, "n_routed_experts", "num_local_experts")
            inter = _int(c, "moe_intermediate_size")
            shared = _int(c, "moe_shared_expert_intermediate_size")
            latent = _int(c, "moe_latent_size", default=0)
            width = latent or h
            e = m + "experts.0."
            out += [
                Linear(m + "gate", "experts", n_experts, h, router=True),
                Linear(e + "up_proj", "experts", inter, width, n_experts, True),
                Linear(e + "down_proj", "experts", width, inter, n_experts, True),
                Linear(m + "shared_experts.up_proj", "mlp", shared, h),
                Linear(m + "shared_experts.down_proj", "mlp", h, shared),
            ]
            if latent:
                out += [
                    Linear(m + "fc1_latent_proj", "mlp", latent, h),
                    Linear(m + "fc2_latent_proj", "mlp", h, latent),
                ]
    return tuple(out)


def _refuse_unsized_lm_head(recipe: Recipe, q: Mapping[str, Any], head_weights: int) -> None:
    """KvcalcError where a recipe may ship the LM head quantised in a way not sized here (a
    ModelOpt one is sized: `_lm_head_bytes`): GPTQ / AWQ `lm_head: true` (vLLM gptq.py /
    awq.py `lm_head_quantized` give ParallelLMHead the quantised method), a
    compressed-tensors recipe whose targets and ignore list leave lm_head quantised (vLLM's
    CompressedTensorsConfig may give ParallelLMHead a scheme), and a ModelOpt recipe that
    quantises the LM head of a model whose head is tied to the embedding."""
    method = recipe.method
    if method in ("gptq", "awq"):
        if q.get("lm_head") is True:
            raise KvcalcError(f"a {method} LM head (lm_head: true) is not sized")
        return
    if not method.startswith(("modelopt", "compressed-tensors")):
        return
    if recipe.format_for(Linear("lm_head", "mlp", 1, 1)) is None:
        return
    if method.startswith("compressed-tensors"):
        raise KvcalcError(
            "a compressed-tensors recipe whose ignore list leaves out lm_head is not sized "
            "(whether the LM head ships quantised is not modelled)"
        )
    if head_weights == 0:
        raise KvcalcError("the recipe quantises lm_head, which is tied to the embedding")


def published_weights(
    config: Mapping[str, Any],
    text: Mapping[str, Any],
    family: str,
    part_weights: Mapping[str, int],
    dtype_bytes: int,
) -> tuple[WeightsQuant | None, tuple[str, ...]]:
    """Return how the checkpoint's weights ship (None: in the model dtype) and any warning.

    `config` is the whole config.json (its quantization_config, maybe merged from
    hf_quant_config.json), `text` the language model's config. A recipe or a module layout
    that is not modelled gives None and a warning saying the weights are counted in the
    model dtype (an upper bound for a quantised checkpoint).
    """
    q = config.get("quantization_config") or text.get("quantization_config")
    if not q:
        return None, ()
    if not isinstance(q, dict):
        raise KvcalcError("config key 'quantization_config' must be a table")
    deepseek_v4 = family == "deepseek_v4" and q.get("quant_method") in ("fp8", "deepseek_v4_fp8")
    # transformers' DeepseekV4Config copies the top-level expert_dtype into the
    # quantization_config; vLLM reads it with the default "fp4" and refuses any other
    expert_dtype = q.get("expert_dtype", text.get("expert_dtype", "fp4"))
    if deepseek_v4 and expert_dtype not in _DEEPSEEK_V4_EXPERT_DTYPES:
        raise KvcalcError(
            f"DeepSeek-V4 expert_dtype {expert_dtype!r} is not modelled (vLLM's "
            "DeepseekV4FP8Config reads 'fp4' and 'fp8')"
        )
    stored: tuple[Stored, ...] = ()
    try:
        recipe = _deepseek_v4_recipe(q, expert_dtype) if deepseek_v4 else parse_recipe(q)
        _refuse_unsized_lm_head(recipe, q, part_weights.get("lm_head", 0))
    except KvcalcError as exc:
        return None, (f"weights counted in the model dtype, an upper bound: {exc}",)
    if deepseek_v4:
        linears: tuple[Linear, ...] | None = _deepseek_v4_linears(text)
        stored = _deepseek_v4_stored(text)
    else:
        linears = hf_linears(text, family)
    if linears is None:
        return None, (
            f"weights counted in the model dtype, an upper bound: the {recipe.method} "
            f"quantization of a {family!r} model is not sized (its module layout is not "
            "modelled); pass --weights-dtype to choose",
        )
    try:
        head = Linear("lm_head", "mlp", _int(text, "vocab_size"), _int(text, "hidden_size"))
        return weights_quant(recipe, linears, part_weights, dtype_bytes, stored, head), ()
    except LayoutMismatch as exc:
        return None, (
            f"weights counted in the model dtype, an upper bound: the {recipe.method} "
            f"quantization of a {family!r} model is not sized ({exc})",
        )
