"""KV-cache and weight dtypes: exact storage per element, with block scales counted."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

from kvcalc.errors import KvcalcError, did_you_mean

_T = TypeVar("_T")


@dataclass(frozen=True)
class KvDtype:
    """A KV-cache element type, stored in blocks of `block_elems` values taking `block_bytes`.

    Plain types are blocks of one element (bf16: 1 value in 2 bytes). llama.cpp's quantised
    cache types are 32-value blocks with an fp16 scale inside (q8_0: 34 bytes per 32 values,
    ggml `block_q8_0`). Per-token-head types (vLLM `int8_per_token_head`) add one fp32 scale
    per head and token, for K and for V.
    """

    name: str
    block_elems: int
    block_bytes: int
    scale_bytes_per_head: int = 0
    description: str = ""

    def row_bytes(self, n_elems: int) -> int:
        """Return the bytes of one row of n_elems values; a partial block takes a whole block."""
        blocks = -(-n_elems // self.block_elems)
        return blocks * self.block_bytes


_KV_DTYPES: tuple[KvDtype, ...] = (
    KvDtype("fp32", 1, 4, description="IEEE float32"),
    KvDtype("fp16", 1, 2, description="IEEE float16"),
    KvDtype("bf16", 1, 2, description="bfloat16"),
    KvDtype("fp8_e4m3", 1, 1, description="fp8 e4m3, per-tensor scale (vLLM/SGLang 'fp8')"),
    KvDtype("fp8_e5m2", 1, 1, description="fp8 e5m2, per-tensor scale"),
    KvDtype("int8", 1, 1, description="int8, per-tensor scale"),
    KvDtype("int8_per_token_head", 1, 1, 4, "int8 with an fp32 scale per token and head (vLLM)"),
    KvDtype("fp8_per_token_head", 1, 1, 4, "fp8 with an fp32 scale per token and head (vLLM)"),
    KvDtype("nvfp4", 16, 9, description="NVFP4: 16 fp4 values (8 B) + one fp8 scale"),
    KvDtype("q8_0", 32, 34, description="llama.cpp q8_0: fp16 scale + 32 int8"),
    KvDtype("q5_1", 32, 24, description="llama.cpp q5_1: fp16 scale and min + 32 5-bit"),
    KvDtype("q5_0", 32, 22, description="llama.cpp q5_0: fp16 scale + 32 5-bit"),
    KvDtype("q4_1", 32, 20, description="llama.cpp q4_1: fp16 scale and min + 32 4-bit"),
    KvDtype("q4_0", 32, 18, description="llama.cpp q4_0: fp16 scale + 32 4-bit"),
    KvDtype("iq4_nl", 32, 18, description="llama.cpp iq4_nl: fp16 scale + 32 4-bit, non-linear"),
    KvDtype(
        "fp8_ds_mla",
        1,
        1,
        description="DeepSeek sparse-MLA fp8 layout: 512 fp8 latent + 16 B scales + 64 bf16 "
        "rope = 656 B per token and layer (MLA only)",
    ),
)

KV_DTYPES: dict[str, KvDtype] = {d.name: d for d in _KV_DTYPES}

_ALIASES = {
    "float32": "fp32",
    "f32": "fp32",
    "float16": "fp16",
    "f16": "fp16",
    "half": "fp16",
    "bfloat16": "bf16",
    "fp8": "fp8_e4m3",
    "e4m3": "fp8_e4m3",
    "fp8_e4m3fn": "fp8_e4m3",
    "e5m2": "fp8_e5m2",
}


def _lookup(
    name: str, table: dict[str, _T], aliases: dict[str, str], what: str, also: tuple[str, ...] = ()
) -> _T:
    """Return table[name] by name or alias, ignoring case and '-' vs '_'; KvcalcError if unknown.

    `also` are names the caller accepts before the lookup (e.g. 'auto'), listed as known.
    """
    key = name.strip().lower().replace("-", "_")
    key = aliases.get(key, key)
    for candidate in (key, key.replace("_", "-")):
        if candidate in table:
            return table[candidate]
    raise KvcalcError(
        f"unknown {what} {name!r}{did_you_mean(name, [*also, *table, *aliases])}; known: "
        + ", ".join([*also, *table])
    )


def kv_dtype(name: str) -> KvDtype:
    """Return the KV dtype for a name or alias (case-insensitive); KvcalcError if unknown."""
    return _lookup(name, KV_DTYPES, _ALIASES, "KV dtype", also=("auto", "fp8"))


@dataclass(frozen=True)
class WeightDtype:
    """A weight storage format: bytes per quantised weight as a fraction num/den.

    int4 GPTQ/AWQ at group size 128 (vLLM gptq.py / awq.py create_weights): 4-bit weights
    (1/2 B) + int4 zeros per group (1/256 B) + fp16 scales per group (1/64 B) = 133/256 B.
    Embeddings, the LM head and norms stay 16-bit (ENGINES.md §7).
    """

    name: str
    num: int
    den: int
    description: str = ""

    def bytes_for(self, n_weights: int) -> int:
        """Return the bytes of n_weights stored in this format, rounded up."""
        return -(-n_weights * self.num // self.den)


WEIGHT_DTYPES: dict[str, WeightDtype] = {
    d.name: d
    for d in (
        WeightDtype("fp32", 4, 1, "float32"),
        WeightDtype("fp16", 2, 1, "float16"),
        WeightDtype("bf16", 2, 1, "bfloat16"),
        WeightDtype("fp8", 1, 1, "fp8 weights, per-tensor or per-channel scales (not counted)"),
        WeightDtype("int8", 1, 1, "int8 weights (W8A8), per-channel scales not counted"),
        WeightDtype("int4-gptq", 133, 256, "GPTQ int4, group 128: 0.5 + 1/64 + 1/256 B/weight"),
        WeightDtype("int4-awq", 133, 256, "AWQ int4, group 128: 0.5 + 1/64 + 1/256 B/weight"),
    )
}

_WEIGHT_ALIASES = {
    "float32": "fp32",
    "float16": "fp16",
    "bfloat16": "bf16",
    "gptq": "int4-gptq",
    "awq": "int4-awq",
    "int4": "int4-awq",
    "fp8_e4m3": "fp8",
    "int4_gptq": "int4-gptq",
    "int4_awq": "int4-awq",
}


def weight_dtype(name: str) -> WeightDtype:
    """Return the weight format for a name or alias (case-insensitive); KvcalcError if unknown."""
    return _lookup(name, WEIGHT_DTYPES, _WEIGHT_ALIASES, "weights dtype", also=("auto",))
