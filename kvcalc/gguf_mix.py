"""llama.cpp's file types (k-quant and IQ mixes): each tensor's GGUF type and exact bytes (pure).

`llama-quantize in.gguf out.gguf Q4_K_M` does not store every tensor in Q4_K: it picks a
type per tensor by its role, its layer and the model's shape. This module mirrors that
choice for the file types it names (`FTYPES`) and the model families it can lay out as
GGUF tensors (`ARCHS`), and counts each tensor's bytes from ggml's block sizes.

Source: llama.cpp at commit 0c1e57098bba43ac29e6e3b677cdceebdd22334f (vendored in the
llama-cpp-python 0.3.36 sdist), src/llama-quant.cpp:
- `tensor_allows_quantization`: 2-D and 3-D tensors named `*weight` are quantised, except
  norms (`*_norm.weight`) and MoE routers (`ffn_gate_inp.weight`), which keep the type the
  converter wrote: f32 (conversion/base.py prepare_tensors: 1-D tensors, norms and
  FFN_GATE_INP in f32), like biases (1-D).
- `llama_tensor_get_type_impl`: the per-role rules (output, attn_v, attn_k, attn_output,
  ffn_down), with the counters `i_attention_wv` / `i_ffn_down` taken in the loader's
  tensor order (llama-model-loader.h weight_name_comparer: by layer, then by name), the
  `use_more_bits` layers (first and last eighth, every third between), n_gqa, the
  8-expert and 70B bumps; `layer_info` reads the layer from the name when n_expert > 1.
- `tensor_type_fallback`: a row (ne[0]) that is not a whole number of the type's blocks
  takes another type (IQ types -> IQ4_NL, Q2_K/Q3_K -> Q4_0, Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0), or f16
  when that does not fit either.
- `llama_ftype_get_default_type`: the file type's base type.
Block sizes: ggml/src/ggml.c type_traits (blck_size, sizeof(block_*) of ggml-common.h).

The importance matrix: the IQ1 / IQ2 / IQ3_XXS types and Q2_K_S cannot be made without
one (tensor_requires_imatrix), so they are typed as made with one; the k-quants' choice does
not read it; IQ4_XS / IQ4_NL are named with and without one (`iq4_xs_imatrix`,
`iq4_xs_static`).

Refused in one line: families other than `ARCHS` (Falcon has its own rules; fused QKV,
MLA, hybrid and sliding-window families are not laid out). Not modelled: llama-quantize's
`--tensor-type` / `--output-tensor-type` / `--token-embedding-type` overrides, and the
Q4_0 … Q8_0 file types (kvcalc's q4_0 ... q8_0 are `--pure`). Not counted: the GGUF header
and metadata, the 32-byte alignment padding between tensors, and `rope_freqs.weight` (f32,
head_dim/2 values) that the converter adds for Llama 3.1's rope scaling.
"""

from __future__ import annotations

from collections.abc import Iterable

from kvcalc.errors import KvcalcError
from kvcalc.records import record
from kvcalc.specs import GQA, MHA, MQA, ModelSpec

LLAMA_CPP_COMMIT = "0c1e57098bba43ac29e6e3b677cdceebdd22334f"

# ggml type -> (weights per block, bytes per block): ggml/src/ggml.c type_traits
GGML_BLOCKS: dict[str, tuple[int, int]] = {
    "f32": (1, 4),
    "f16": (1, 2),
    "q8_0": (32, 34),
    "q5_1": (32, 24),
    "q5_0": (32, 22),
    "q4_0": (32, 18),
    "q6_K": (256, 210),
    "q5_K": (256, 176),
    "q4_K": (256, 144),
    "q3_K": (256, 110),
    "q2_K": (256, 84),
    "iq4_nl": (32, 18),
    "iq4_xs": (256, 136),
    "iq3_s": (256, 110),
    "iq3_xxs": (256, 98),
    "iq2_s": (256, 82),
    "iq2_xs": (256, 74),
    "iq2_xxs": (256, 66),
    "iq1_m": (256, 56),
    "iq1_s": (256, 50),
}


@record
class FileType:
    """A llama-quantize file type: its name there, its default tensor type
    (llama_ftype_get_default_type) and whether an importance matrix was used."""

    llama_name: str
    default: str
    imatrix: bool = False


# kvcalc name -> file type. The k-quants' choice does not read the importance matrix; the
# IQ1/IQ2/IQ3_XXS types and Q2_K_S cannot be made without one (tensor_requires_imatrix);
# IQ4_XS / IQ4_NL can, and then differ (ffn_down of the first eighth in Q5_K), so they are
# named either way.
FTYPES: dict[str, FileType] = {
    "q2_k": FileType("Q2_K", "q2_K"),
    "q2_k_s": FileType("Q2_K_S", "q2_K", imatrix=True),
    "q3_k_s": FileType("Q3_K_S", "q3_K"),
    "q3_k_m": FileType("Q3_K_M", "q3_K"),
    "q3_k_l": FileType("Q3_K_L", "q3_K"),
    "q4_k_s": FileType("Q4_K_S", "q4_K"),
    "q4_k_m": FileType("Q4_K_M", "q4_K"),
    "q5_k_s": FileType("Q5_K_S", "q5_K"),
    "q5_k_m": FileType("Q5_K_M", "q5_K"),
    "q6_k": FileType("Q6_K", "q6_K"),
    "iq4_xs_imatrix": FileType("IQ4_XS", "iq4_xs", imatrix=True),
    "iq4_xs_static": FileType("IQ4_XS", "iq4_xs"),
    "iq4_nl_imatrix": FileType("IQ4_NL", "iq4_nl", imatrix=True),
    "iq4_nl_static": FileType("IQ4_NL", "iq4_nl"),
    "iq3_m": FileType("IQ3_M", "iq3_s"),
    "iq3_s": FileType("IQ3_S", "iq3_s"),
    "iq3_xs": FileType("IQ3_XS", "iq3_s"),
    "iq3_xxs": FileType("IQ3_XXS", "iq3_xxs", imatrix=True),
    "iq2_m": FileType("IQ2_M", "iq2_s", imatrix=True),
    "iq2_s": FileType("IQ2_S", "iq2_xs", imatrix=True),
    "iq2_xs": FileType("IQ2_XS", "iq2_xs", imatrix=True),
    "iq2_xxs": FileType("IQ2_XXS", "iq2_xxs", imatrix=True),
    "iq1_m": FileType("IQ1_M", "iq1_m", imatrix=True),
    "iq1_s": FileType("IQ1_S", "iq1_s", imatrix=True),
}

# HF model_type -> llama.cpp architecture (conversion/__init__.py: Mistral and Mixtral
# convert to the llama architecture)
ARCHS: dict[str, str] = {
    "llama": "llama",
    "mistral": "llama",
    "mixtral": "llama",
    "qwen2": "qwen2",
    "qwen3": "qwen3",
    "qwen3_moe": "qwen3moe",
    "phi3": "phi3",
}

_FALLBACK = {
    **dict.fromkeys(
        ("iq1_s", "iq1_m", "iq2_xxs", "iq2_xs", "iq2_s", "iq3_xxs", "iq3_s", "iq4_xs"), "iq4_nl"
    ),
    **dict.fromkeys(("q2_K", "q3_K"), "q4_0"),
    "q4_K": "q5_0",
    "q5_K": "q5_1",
    "q6_K": "q8_0",
}


@record
class GgufTensor:
    """One tensor of the GGUF file: its name, ggml shape (ne[0] is the row) and layer."""

    name: str
    ne: tuple[int, ...]
    layer: int | None = None
    kv_rows: int = 0  # rows (ne[1]) that belong to K or V heads (attn_k, attn_v, attn_qkv)

    @property
    def elements(self) -> int:
        count = 1
        for n in self.ne:
            count *= n
        return count

    @property
    def quantizable(self) -> bool:
        """llama-quant.cpp tensor_allows_quantization, for the tensors laid out here."""
        return (
            len(self.ne) >= 2
            and self.name.endswith("weight")
            and "_norm.weight" not in self.name
            and "ffn_gate_inp.weight" not in self.name
        )


@record
class TypedTensor:
    """A tensor with the ggml type llama-quantize gives it, and its bytes."""

    tensor: GgufTensor
    ggml_type: str

    @property
    def bytes(self) -> int:
        return tensor_bytes(self.tensor, self.ggml_type)


@record
class GgufMix:
    """Every tensor of a model quantised to a llama.cpp file type."""

    ftype: str
    arch: str
    tensors: tuple[TypedTensor, ...]

    @property
    def total_bytes(self) -> int:
        return sum(t.bytes for t in self.tensors)

    def by_type(self) -> tuple[tuple[str, int, int], ...]:
        """Return (ggml type, tensors, bytes) per type, the most bytes first."""
        counts: dict[str, list[int]] = {}
        for t in self.tensors:
            entry = counts.setdefault(t.ggml_type, [0, 0])
            entry[0] += 1
            entry[1] += t.bytes
        return tuple(sorted(((k, n, b) for k, (n, b) in counts.items()), key=lambda row: -row[2]))

    def roles(self) -> str:
        """Return which roles leave the file type's default type, in words (layer ranges)."""
        default = FTYPES[self.ftype].default
        groups: dict[tuple[str, str], list[int]] = {}
        for t in self.tensors:
            if not t.tensor.quantizable or t.ggml_type == default:
                continue
            role = t.tensor.name.removeprefix(f"blk.{t.tensor.layer}.").removesuffix(".weight")
            groups.setdefault((role, t.ggml_type), []).append(
                -1 if t.tensor.layer is None else t.tensor.layer
            )
        parts = []
        for (role, kind), layers in groups.items():
            where = "" if layers == [-1] else f" [layers {_ranges(layers)}]"
            parts.append(f"{role}{where} {kind}")
        parts.append(f"the other matrices {default}, norms and routers f32")
        return "; ".join(parts)


def _ranges(layers: Iterable[int]) -> str:
    out: list[str] = []
    start = prev = None
    for i in sorted(layers):
        if start is None or prev is None or i != prev + 1:
            if start is not None and prev is not None:
                out.append(f"{start}" if start == prev else f"{start}-{prev}")
            start = i
        prev = i
    if start is not None and prev is not None:
        out.append(f"{start}" if start == prev else f"{start}-{prev}")
    return ",".join(out)


def tensor_bytes(tensor: GgufTensor, ggml_type: str) -> int:
    """Return a tensor's bytes in a ggml type: rows · (ne[0] / block) · block bytes."""
    block, block_bytes = GGML_BLOCKS[ggml_type]
    if tensor.ne[0] % block:
        raise KvcalcError(f"{tensor.name}: row of {tensor.ne[0]} is not whole {ggml_type} blocks")
    return tensor.elements // block * block_bytes


def _fallback(tensor: GgufTensor, ggml_type: str) -> str:
    """tensor_type_fallback: a type whose blocks divide the row, else f16."""
    block = GGML_BLOCKS[ggml_type][0]
    if tensor.ne[0] % block == 0:
        return ggml_type
    other = _FALLBACK.get(ggml_type, ggml_type)
    return other if tensor.ne[0] % GGML_BLOCKS[other][0] == 0 else "f16"


# ---- the model as GGUF tensors -----------------------------------------------------------


@record
class GgufLayout:
    """A model as llama.cpp lays it out: its architecture, hparams and tensors."""

    arch: str
    n_expert: int
    n_heads: int
    n_kv_heads: int
    tensors: tuple[GgufTensor, ...]


def gguf_tensors(model: ModelSpec) -> GgufLayout:
    """Return the model's GGUF architecture and tensors, in the loader's order.

    Shapes come from the spec; the feed-forward width from the parameter breakdown, which
    must divide exactly, and the tensors must add up to n_params: otherwise refused.
    """
    arch = ARCHS.get(model.family or "")
    if arch is None:
        known = ", ".join(sorted(ARCHS))
        raise KvcalcError(
            f"llama.cpp file types (per-tensor mixes) are modelled for the families {known}, not "
            f"{model.family!r} ({model.name}); a single GGUF type (q4_k, q8_0, q6_k-pure ...) "
            "sizes every tensor in that type"
        )
    attention = model.attention
    p = model.params
    # sliding-window layers keep the same tensors (Mistral-7B-v0.1); other kinds may not
    uniform = model.layers is None or (
        model.kinds is None and set(model.layers.pattern) <= {"full", "sliding"}
    )
    if not isinstance(attention, MHA | GQA | MQA) or p is None or not uniform:
        raise KvcalcError(
            f"{model.name}: a llama.cpp mix needs uniform attention layers with a parameter "
            "breakdown"
        )
    d, n_layers = model.d_model, model.n_layers
    moe = model.moe
    n_expert = moe.n_experts if moe is not None else 0
    q_out = attention.n_heads * attention.head_dim
    kv_k = attention.n_kv_heads * attention.head_dim
    kv_v = attention.n_kv_heads * attention.v_dim
    o_in = attention.n_heads * attention.v_dim
    if moe is None:
        ff, rest = divmod(p.mlp, 3 * d * n_layers)
    else:
        routers = n_layers * n_expert * d
        ff, rest = divmod(p.experts - routers, 3 * d * n_layers * n_expert)
        rest += p.mlp
    if rest or ff <= 0:
        raise KvcalcError(
            f"{model.name}: its MLP parameters are not {n_layers} layers of gate/up/down "
            "matrices of one width, which a llama.cpp mix is laid out from"
        )
    top = [GgufTensor("token_embd.weight", (d, model.vocab_size))]
    if not model.tie_word_embeddings:
        top.append(GgufTensor("output.weight", (d, model.vocab_size)))
    top.append(GgufTensor("output_norm.weight", (d,)))
    tensors = sorted(top, key=lambda t: t.name)
    for i in range(n_layers):
        b = f"blk.{i}."
        layer = [
            GgufTensor(b + "attn_norm.weight", (d,), i),
            GgufTensor(b + "attn_output.weight", (o_in, d), i),
            GgufTensor(b + "ffn_norm.weight", (d,), i),
        ]
        if arch == "phi3":  # fused qkv_proj and gate_up_proj (conversion/phi.py)
            qkv = q_out + kv_k + kv_v
            layer.append(GgufTensor(b + "attn_qkv.weight", (d, qkv), i, kv_rows=kv_k + kv_v))
        else:
            layer += [
                GgufTensor(b + "attn_q.weight", (d, q_out), i),
                GgufTensor(b + "attn_k.weight", (d, kv_k), i, kv_rows=kv_k),
                GgufTensor(b + "attn_v.weight", (d, kv_v), i, kv_rows=kv_v),
            ]
        if arch == "qwen2":
            layer += [
                GgufTensor(b + "attn_q.bias", (q_out,), i),
                GgufTensor(b + "attn_k.bias", (kv_k,), i),
                GgufTensor(b + "attn_v.bias", (kv_v,), i),
            ]
        if arch in ("qwen3", "qwen3moe"):
            layer += [
                GgufTensor(b + "attn_q_norm.weight", (attention.head_dim,), i),
                GgufTensor(b + "attn_k_norm.weight", (attention.head_dim,), i),
            ]
        if arch == "phi3":
            layer += [
                GgufTensor(b + "ffn_up.weight", (d, 2 * ff), i),
                GgufTensor(b + "ffn_down.weight", (ff, d), i),
            ]
        elif moe is None:
            layer += [
                GgufTensor(b + "ffn_gate.weight", (d, ff), i),
                GgufTensor(b + "ffn_up.weight", (d, ff), i),
                GgufTensor(b + "ffn_down.weight", (ff, d), i),
            ]
        else:
            layer += [
                GgufTensor(b + "ffn_gate_inp.weight", (d, n_expert), i),
                GgufTensor(b + "ffn_gate_exps.weight", (d, ff, n_expert), i),
                GgufTensor(b + "ffn_up_exps.weight", (d, ff, n_expert), i),
                GgufTensor(b + "ffn_down_exps.weight", (ff, d, n_expert), i),
            ]
        tensors += sorted(layer, key=lambda t: t.name)
    total = sum(t.elements for t in tensors)
    if total != model.n_params:
        raise KvcalcError(
            f"{model.name}: its GGUF tensors laid out for llama.cpp hold {total:,} weights, "
            f"not n_params {model.n_params:,}; its mix is not modelled"
        )
    return GgufLayout(arch, n_expert, attention.n_heads, attention.n_kv_heads, tuple(tensors))


# ---- llama_tensor_get_type ---------------------------------------------------------------


def _is_attn_v(name: str) -> bool:
    """category_is_attn_v: attn_v, and the fused attn_qkv (tensor_get_category)."""
    return "attn_v.weight" in name or "attn_qkv.weight" in name


def _use_more_bits(i_layer: int, n_layers: int) -> bool:
    return (
        i_layer < n_layers // 8
        or i_layer >= 7 * n_layers // 8
        or (i_layer - n_layers // 8) % 3 == 2
    )


def gguf_mix(model: ModelSpec, ftype: str, imatrix: bool | None = None) -> GgufMix:
    """Return every tensor of the model with the type `llama-quantize ... FTYPE` gives it.

    Mirrors llama_tensor_get_type / llama_tensor_get_type_impl / tensor_type_fallback of
    llama.cpp src/llama-quant.cpp (commit LLAMA_CPP_COMMIT), branch by branch, for the
    file types in FTYPES. `imatrix` overrides the file type's own (llama.cpp's snapshot
    test computes every type without one).
    """
    if ftype not in FTYPES:
        raise KvcalcError(f"unknown llama.cpp file type {ftype!r}")
    file_type = FTYPES[ftype]
    f = file_type.llama_name
    has_imatrix = file_type.imatrix if imatrix is None else imatrix
    layout = gguf_tensors(model)
    arch, n_expert, tensors = layout.arch, layout.n_expert, layout.tensors
    n_gqa = layout.n_heads // layout.n_kv_heads
    n_layer = model.n_layers
    # load_arch_hparams (src/models/llama.cpp, qwen2.cpp): the 70B type of 80-layer models
    is_70b = n_layer == 80 and (
        (arch == "llama" and n_expert != 8 and layout.n_heads != layout.n_kv_heads)
        or arch == "qwen2"
    )
    tied = model.tie_word_embeddings
    n_attention_wv = sum(1 for t in tensors if _is_attn_v(t.name))
    i_attention_wv = i_ffn_down = i_ffn_gate = i_ffn_up = 0
    low_bit = f in ("IQ2_XXS", "IQ2_XS", "IQ1_S", "IQ2_S", "IQ2_M", "IQ1_M")
    out = []
    for t in tensors:
        if not t.quantizable:
            out.append(TypedTensor(t, "f32"))
            continue
        new = file_type.default
        name = t.name
        # layer_info: with experts the layer is read from the name, else the counter
        by_name = n_expert > 1 and t.layer is not None
        if name == "output.weight" or (tied and name == "token_embd.weight"):
            if t.ne[0] % GGML_BLOCKS[new][0]:
                new = "q8_0"
            elif f in ("IQ2_XXS", "IQ2_XS", "IQ3_XXS", "IQ1_S", "IQ2_S", "IQ2_M", "IQ1_M"):
                new = "q5_K"
            elif new != "q8_0":
                new = "q6_K"
        elif name == "token_embd.weight":
            if f in ("IQ2_XXS", "IQ2_XS", "IQ1_S", "IQ1_M"):
                new = "q2_K"
            elif f in ("IQ2_S", "IQ2_M", "IQ3_XXS"):
                new = "iq3_s"
        elif low_bit:
            if _is_attn_v(name):
                if n_gqa >= 4 or n_expert >= 4:
                    new = "q4_K"
                else:
                    new = "iq3_s" if f in ("IQ2_S", "IQ2_M") else "q2_K"
                i_attention_wv += 1
            elif n_expert == 8 and "attn_k.weight" in name:
                new = "q4_K"
            elif "ffn_down" in name:
                if i_ffn_down < n_layer // 8:
                    new = "iq3_s" if f in ("IQ2_S", "IQ2_M") else "q2_K"
                i_ffn_down += 1
            elif "attn_output.weight" in name:
                if n_expert == 8:
                    new = "q5_K"
                elif f in ("IQ1_S", "IQ1_M"):
                    new = "iq2_xxs"
                elif f in ("IQ2_S", "IQ2_M"):
                    new = "iq3_s"
        elif _is_attn_v(name):
            if f == "Q2_K":
                new = "q4_K" if n_gqa >= 4 else "q3_K"
            elif f == "Q2_K_S" and n_gqa >= 4:
                new = "q4_K"
            elif f == "IQ3_XXS":
                new = "q4_K" if n_gqa >= 4 else "iq3_xxs" if has_imatrix else "iq3_s"
            elif (f in ("IQ3_XS", "IQ3_S") and n_gqa >= 4) or f == "IQ3_M":
                new = "q4_K"
            elif f == "Q3_K_M":
                new = "q5_K" if i_attention_wv < 2 else "q4_K"
            elif f == "Q3_K_L" or (f in ("IQ4_NL", "IQ4_XS") and n_gqa >= 4):
                new = "q5_K"
            elif f in ("Q4_K_M", "Q5_K_M") and _use_more_bits(i_attention_wv, n_attention_wv):
                new = "q6_K"
            elif f == "Q4_K_S" and i_attention_wv < 4:
                new = "q5_K"
            if is_70b and new in ("q3_K", "q4_K"):
                new = "q5_K"
            if n_expert == 8:
                new = "q8_0"
            i_attention_wv += 1
        elif "attn_k.weight" in name:
            if n_expert == 8:
                new = "q8_0"
            elif f == "IQ3_XS":
                new = "iq3_xxs"
            elif f == "IQ3_XXS":
                new = "iq2_s"
        elif "attn_q.weight" in name:
            if f == "IQ3_XS":
                new = "iq3_xxs"
            elif f == "IQ3_XXS":
                new = "iq2_s"
        elif "attn_output.weight" in name:
            if n_expert == 8:
                if f in (
                    "Q2_K", "IQ3_XS", "IQ3_XXS", "Q3_K_S", "Q3_K_M", "IQ4_NL", "Q4_K_S",
                    "Q4_K_M", "IQ3_S", "IQ3_M", "IQ4_XS",
                ):  # fmt: skip
                    new = "q5_K"
            else:
                new = {
                    "Q2_K": "q3_K", "IQ3_XXS": "iq3_s", "Q3_K_M": "q4_K", "Q3_K_L": "q5_K",
                    "IQ3_M": "q4_K",
                }.get(f, new)  # fmt: skip
        elif "ffn_up" in name or "ffn_gate" in name:
            up = "ffn_up" in name
            counter = i_ffn_up if up else i_ffn_gate
            i_layer = t.layer if (by_name and t.layer is not None) else counter
            if f == "IQ3_XS" and n_layer // 8 <= i_layer < 7 * n_layer // 8:
                new = "iq3_xxs"
            if up:
                i_ffn_up += 1
            else:
                i_ffn_gate += 1
        elif "ffn_down" in name:
            i_layer = t.layer if (by_name and t.layer is not None) else i_ffn_down
            eighth = i_layer < n_layer // 8
            if f == "Q2_K":
                new = "q3_K"
            elif f == "Q2_K_S":
                if eighth:
                    new = "q4_K"
            elif f == "IQ3_XXS" and not has_imatrix:
                new = "q4_K" if eighth else "q3_K"
            elif f == "Q3_K_M":
                new = "q5_K" if i_layer < n_layer // 16 else "q4_K"  # not Falcon
            elif f == "IQ3_M" and (eighth or (n_expert == 8 and _use_more_bits(i_layer, n_layer))):
                new = "q4_K"
            elif f == "Q3_K_L":
                new = "q5_K"
            elif f == "Q4_K_M":
                if _use_more_bits(i_layer, n_layer):
                    new = "q6_K"
            elif eighth and f in ("IQ4_NL", "IQ4_XS") and not has_imatrix:
                new = "q5_K"
            elif f == "Q5_K_M" and _use_more_bits(i_layer, n_layer):
                new = "q6_K"
            elif f == "Q4_K_S" and eighth:
                new = "q5_K"
            i_ffn_down += 1
        out.append(TypedTensor(t, _fallback(t, new)))
    return GgufMix(ftype, arch, tuple(out))
