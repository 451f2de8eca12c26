"""KV-cache and weight dtypes: exact storage per element, with block scales counted."""

from typing import TypeVar

from kvcalc.errors import KvcalcError, did_you_mean
from kvcalc.records import record

_T = TypeVar("_T")


@record
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


@record
class WeightDtype:
    """A weight storage format: bytes per quantised weight as a fraction num/den.

    int4 GPTQ/AWQ at group size 128 (vLLM gptq.py / awq.py create_weights): 4-bit weights
    (1/2 B) + int4 zeros per group (1/256 B) + fp16 scales per group (1/64 B) = 133/256 B.
    Embeddings, the LM head and norms stay 16-bit (docs/weights.md), except for llama.cpp's
    GGUF types (`gguf`): `llama-quantize --pure TYPE` stores every 2-D weight, embeddings
    and output included, in TYPE and keeps 1-D tensors (norms) in f32 (src/llama-quant.cpp
    tensor_allows_quantization). A GGUF type is a block of `den` weights in `num` bytes
    (ggml/src/ggml-common.h block_* structs), exact for rows that are a whole number of
    blocks (llama.cpp falls back to another type for a row that is not).
    """

    name: str
    num: int
    den: int
    description: str = ""
    gguf: bool = False
    mix: bool = False  # a llama.cpp file type: the type of each tensor is chosen by its role

    def bytes_for(self, n_weights: int) -> int:
        """Return the bytes of n_weights stored in this format, rounded up."""
        return -(-n_weights * self.num // self.den)


def _gguf(name: str, block_bytes: int, block_elems: int, layout: str) -> WeightDtype:
    return WeightDtype(name, block_bytes, block_elems, f"GGUF {name}: {layout}", gguf=True)


WEIGHT_DTYPES: dict[str, WeightDtype] = {
    d.name: d
    for d in (
        WeightDtype("fp32", 4, 1, "float32"),
        WeightDtype("fp16", 2, 1, "float16"),
        WeightDtype("bf16", 2, 1, "bfloat16"),
        WeightDtype("fp8", 1, 1, "fp8 weights, per-tensor or per-channel scales (not counted)"),
        WeightDtype(
            "fp8-block",
            16385,
            16384,
            "fp8 weights + one fp32 scale per 128x128 block (DeepSeek-V3 layout)",
        ),
        WeightDtype("int8", 1, 1, "int8 weights (W8A8), per-channel scales not counted"),
        WeightDtype("int4-gptq", 133, 256, "GPTQ int4, group 128: 0.5 + 1/64 + 1/256 B/weight"),
        WeightDtype("int4-awq", 133, 256, "AWQ int4, group 128: 0.5 + 1/64 + 1/256 B/weight"),
        WeightDtype("mxfp4", 17, 32, "MXFP4: 32 fp4 values (16 B) + one e8m0 scale (1 B)"),
        WeightDtype(
            "nvfp4",
            9,
            16,
            "NVFP4: 16 fp4 values (8 B) + one fp8 scale; per-tensor fp32 not counted",
        ),
        # llama.cpp / ggml block layouts, ggml/src/ggml-common.h (QK_K = 256)
        _gguf("q8_0", 34, 32, "fp16 d + 32 int8 = 34 B per 32 (8.5 bits)"),
        _gguf("q6_k", 210, 256, "ql[128] + qh[64] + scales[16] + fp16 d = 210 B per 256"),
        _gguf("q5_k", 176, 256, "fp16 d, dmin + scales[12] + qh[32] + qs[128] = 176 B per 256"),
        _gguf("q5_1", 24, 32, "fp16 d, m + qh[4] + qs[16] = 24 B per 32"),
        _gguf("q5_0", 22, 32, "fp16 d + qh[4] + qs[16] = 22 B per 32"),
        _gguf("q4_k", 144, 256, "fp16 d, dmin + scales[12] + qs[128] = 144 B per 256"),
        _gguf("q4_1", 20, 32, "fp16 d, m + qs[16] = 20 B per 32"),
        _gguf("q4_0", 18, 32, "fp16 d + qs[16] = 18 B per 32 (4.5 bits)"),
        _gguf("iq4_nl", 18, 32, "fp16 d + qs[16] = 18 B per 32, non-linear"),
        _gguf("iq4_xs", 136, 256, "fp16 d + scales_h + scales_l[4] + qs[128] = 136 B per 256"),
        _gguf("q3_k", 110, 256, "hmask[32] + qs[64] + scales[12] + fp16 d = 110 B per 256"),
        _gguf("iq3_s", 110, 256, "fp16 d + qs[64] + qh[8] + signs[32] + scales[4] = 110 B per 256"),
        _gguf("iq3_xxs", 98, 256, "fp16 d + qs[96] = 98 B per 256"),
        _gguf("q2_k", 84, 256, "scales[16] + qs[64] + fp16 d, dmin = 84 B per 256"),
        _gguf("iq2_s", 82, 256, "fp16 d + qs[64] + qh[8] + scales[8] = 82 B per 256"),
        _gguf("iq2_xs", 74, 256, "fp16 d + qs[32] uint16 + scales[8] = 74 B per 256"),
        _gguf("iq2_xxs", 66, 256, "fp16 d + qs[32] uint16 = 66 B per 256"),
        _gguf("tq2_0", 66, 256, "qs[64] + fp16 d = 66 B per 256 (ternary)"),
        _gguf("tq1_0", 54, 256, "qs[48] + qh[4] + fp16 d = 54 B per 256 (ternary)"),
        _gguf("iq1_m", 56, 256, "qs[32] + qh[16] + scales[8] = 56 B per 256"),
        _gguf("iq1_s", 50, 256, "fp16 d + qs[32] + qh[16] uint16 = 50 B per 256"),
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
    "fp8_block": "fp8-block",
    "f32": "fp32",
    "f16": "fp16",
}

# llama.cpp file types that give each tensor its own type (src/llama-quant.cpp
# llama_tensor_get_type_impl), sized tensor by tensor in kvcalc/gguf_mix.py (FTYPES there):
# name -> the file type's default tensor type (llama_ftype_get_default_type).
GGUF_FILE_TYPES = {
    "q2_k": "q2_k",
    "q2_k_s": "q2_k",
    "q3_k_s": "q3_k",
    "q3_k_m": "q3_k",
    "q3_k_l": "q3_k",
    "q4_k_s": "q4_k",
    "q4_k_m": "q4_k",
    "q5_k_s": "q5_k",
    "q5_k_m": "q5_k",
    "q6_k": "q6_k",
    "iq4_xs_imatrix": "iq4_xs",
    "iq4_xs_static": "iq4_xs",
    "iq4_nl_imatrix": "iq4_nl",
    "iq4_nl_static": "iq4_nl",
    "iq3_m": "iq3_s",
    "iq3_s": "iq3_s",
    "iq3_xs": "iq3_s",
    "iq3_xxs": "iq3_xxs",
    "iq2_m": "iq2_s",
    "iq2_s": "iq2_xs",
    "iq2_xs": "iq2_xs",
    "iq2_xxs": "iq2_xxs",
    "iq1_m": "iq1_m",
    "iq1_s": "iq1_s",
}

# File types whose tensor types depend on whether an importance matrix was used: the name
# alone is refused, naming both.
_IMATRIX_OR_NOT = ("iq4_xs", "iq4_nl")


def weight_dtype(name: str) -> WeightDtype:
    """Return the weight format for a name or alias (case-insensitive); KvcalcError if unknown.

    llama.cpp's file types (q4_k_m, q5_k_s, q6_k, iq3_m ...) are a `mix`: each tensor's
    type is chosen in kvcalc/gguf_mix.py. `<type>-pure` (q6_k-pure) is `llama-quantize
    --pure`, every 2-D tensor in the type; so is a type that is no file type (q4_k, q8_0).
    iq4_xs / iq4_nl alone are refused: their mix depends on the importance matrix.
    """
    key = name.strip().lower().replace("-", "_")
    if key in GGUF_FILE_TYPES:
        base = WEIGHT_DTYPES[GGUF_FILE_TYPES[key]]
        return WeightDtype(
            key,
            base.num,
            base.den,
            f"llama.cpp {key.upper()} file type: a type per tensor (src/llama-quant.cpp)",
            gguf=True,
            mix=True,
        )
    if key.endswith("_pure") and key.removesuffix("_pure") in WEIGHT_DTYPES:
        pure = WEIGHT_DTYPES[key.removesuffix("_pure")]
        if pure.gguf:
            return pure
    if key in _IMATRIX_OR_NOT:
        raise KvcalcError(
            f"weights dtype {name!r}: llama.cpp's {key.upper()} file type puts ffn_down of "
            f"the first eighth of the layers in Q5_K unless an importance matrix was used; "
            f"say which: {key}-imatrix or {key}-static ({key}-pure: every tensor in "
            f"{key.upper()})"
        )
    file_types = tuple(k for k in GGUF_FILE_TYPES if k not in WEIGHT_DTYPES)
    return _lookup(
        name, WEIGHT_DTYPES, _WEIGHT_ALIASES, "weights dtype", also=("auto", *file_types)
    )
