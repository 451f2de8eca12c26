"""Why a KV cache is the size it is: a KvBreakdown as structured steps of words and numbers (pure).

Each step carries its text lines and the integers behind them, so the same explanation is
rendered as prose (render_insight.py) or emitted as JSON. The engine step reconciles
exactly: the textbook bytes plus every engine addition equal the breakdown's total.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import field, replace
from fractions import Fraction
from typing import Any, Literal

from kvcalc.dtypes import KvDtype
from kvcalc.engines import ENGINES, EngineProfile
from kvcalc.formula import (
    COMPRESSED_PARTS,
    KvBreakdown,
    LayerGroup,
    Workload,
    indexer_bytes_per_token,
    kv_cache,
    kv_heads_per_gpu,
)
from kvcalc.records import record
from kvcalc.specs import MHA, MLA, MQA, AttentionKind, CompressedKind, ModelSpec, Window

Origin = Literal["preset", "config", "spec"]

# Spec field -> the config.json keys kvcalc/hf.py reads it from, in the order it tries them.
# tests/test_explain.py checks every bundled config against this table.
CONFIG_KEYS: dict[str, tuple[str, ...]] = {
    "n_layers": ("num_hidden_layers", "n_layer", "num_layers"),
    "d_model": ("hidden_size", "n_embd", "d_model"),
    "attention.n_heads": ("num_attention_heads", "n_head", "num_heads"),
    "attention.n_kv_heads": ("num_key_value_heads", "num_kv_heads", "n_head_kv"),
    "attention.head_dim": ("head_dim",),
    "attention.kv_lora_rank": ("kv_lora_rank",),
    "attention.qk_rope_head_dim": ("qk_rope_head_dim",),
    "attention.qk_nope_head_dim": ("qk_nope_head_dim",),
    "attention.v_head_dim": ("v_head_dim",),
    "attention.index_head_dim": ("index_head_dim",),
    "layers.sliding_window": ("sliding_window",),
    "layers.config_sliding_window": ("sliding_window",),
    "layers.chunk_size": ("attention_chunk_size",),
    "dtype": ("torch_dtype", "dtype"),
    "max_position_embeddings": ("max_position_embeddings", "n_positions"),
}
# Families whose adapter derives a field from another key (kvcalc/hf/): the key CONFIG_KEYS
# names would cite the wrong number for them.
FAMILY_KEYS: dict[str, dict[str, str]] = {
    # transformers MiMoV2FlashConfig: sliding_window = sliding_window_size + 1 (the query too)
    "mimo_v2_flash": {"layers.sliding_window": "sliding_window_size + 1"},
}
# What hf.py does when the config has none of a field's keys.
_DERIVED = {
    "attention.head_dim": "hidden_size / num_attention_heads",
}
_HF_DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


@record
class Factor:
    """One factor of the formula: its value, what it is, and where the value came from."""

    symbol: str
    value: int
    meaning: str
    source: str


@record
class Step:
    """One step of the explanation: a title, lines of text, and the numbers behind them."""

    key: str
    title: str
    lines: tuple[str, ...]
    factors: tuple[Factor, ...] = ()
    values: Mapping[str, int | str | None] = field(default_factory=dict)
    terms: tuple[tuple[str, int], ...] = ()  # signed byte terms (the engine's additions)


@record
class Explanation:
    """Every step that explains one KV breakdown, in reading order."""

    kv: KvBreakdown
    steps: tuple[Step, ...]
    textbook_bytes: int
    output_tokens: int
    prompt_tokens: int

    def step(self, key: str) -> Step:
        """Return the step with this key."""
        return next(s for s in self.steps if s.key == key)


def config_source(
    spec_field: str,
    origin: Origin,
    model_label: str,
    config: Mapping[str, object] | None = None,
    family: str | None = None,
) -> str:
    """Return where a spec field's value came from: the config key, or the preset/spec field.

    'config.json num_hidden_layers' for a config; 'preset n_layers ← config.json
    num_hidden_layers' for a bundled preset (generated from that key by kvcalc/hf.py).
    """
    derived = FAMILY_KEYS.get(family or "", {}).get(spec_field)
    if derived is not None:
        if origin == "preset":
            return f"preset {spec_field} ← config.json {derived}"
        if origin == "config":
            return f"config.json {derived}"
    keys = CONFIG_KEYS.get(spec_field, ())
    if config is not None:
        present = [k for k in keys if config.get(k) is not None]
        if present:
            return f"config.json {present[0]}"
        if spec_field in _DERIVED:
            return f"config.json {_DERIVED[spec_field]}"
    imported = keys[0] if keys else ""
    if spec_field in _DERIVED:
        imported = f"{imported} (or {_DERIVED[spec_field]})" if imported else _DERIVED[spec_field]
    if origin == "spec":
        return f"spec {spec_field} ({model_label})"
    if origin == "config":
        return f"config.json {imported}"
    return f"preset {spec_field} ← config.json {imported}" if imported else f"preset {spec_field}"


def layout_text(model: ModelSpec) -> str:
    """Return the model's cache layout in a few words, e.g. 'GQA 8 KV / 64 heads × 128'."""
    a = model.attention
    if isinstance(a, MLA):
        text = f"MLA latent {a.latent_dim} ({a.kv_lora_rank} + {a.qk_rope_head_dim} rope)"
    else:
        dims = f"{a.head_dim}" if a.v_dim == a.head_dim else f"K {a.head_dim} / V {a.v_dim}"
        if isinstance(a, MHA):
            text = f"MHA {a.n_heads} heads × {dims}"
        elif isinstance(a, MQA):
            text = f"MQA 1 KV / {a.n_heads} heads × {dims}"
        else:
            text = f"GQA {a.n_kv_heads} KV / {a.n_heads} heads × {dims}"
    if model.layers is not None and any(k != "full" for k in model.layers.pattern):
        pattern = model.layers.pattern
        names = list(dict.fromkeys(pattern))
        text += ", " + " : ".join(f"{pattern.count(n)} {_kind_label(model, n)}" for n in names)
    return text


def _kind_label(model: ModelSpec, name: str) -> str:
    """Return a pattern entry in words: 'sliding W=1,024', 'linear (gated_deltanet state)'."""
    layers = model.layers
    if name == "sliding" and layers is not None and layers.sliding_window:
        return f"sliding W={layers.sliding_window:,}"
    if name == "chunked" and layers is not None and layers.chunk_size:
        return f"chunked chunk={layers.chunk_size:,}"
    kind = (getattr(model, "kinds", None) or {}).get(name)
    if kind is None:
        return name
    if kind.kind == "state":
        return f"{name} ({kind.mixer} state)"
    if kind.kind == "none":
        return f"{name} (no cache: {kind.reason})"
    if kind.kind == "compressed":
        what = "CSA, indexer" if kind.index_head_dim else "HCA"
        return f"{name} (compressed m={kind.rate}, {what})"
    return f"{name} ({kind.window} attention)"


def _dtype_text(dtype: KvDtype) -> str:
    if dtype.block_elems == 1 and not dtype.scale_bytes_per_head:
        return f"{dtype.name} {dtype.block_bytes} B"
    if dtype.block_elems == 1:
        return f"{dtype.name} {dtype.block_bytes} B + {dtype.scale_bytes_per_head} B scale per head"
    return f"{dtype.name} {dtype.block_bytes} B per {dtype.block_elems} values"


def _dtype_source(kv: KvBreakdown, which: Literal["k", "v"], origin: Origin, label: str) -> str:
    asked = kv.workload.k_dtype if which == "k" else kv.workload.v_dtype
    dtype = kv.k_dtype if which == "k" else kv.v_dtype
    if asked is not None:
        option = "--kv-dtype" if kv.workload.k_dtype == kv.workload.v_dtype else f"--{which}-dtype"
        if asked != dtype:  # a DSA model's fp8, stored as fp8_ds_mla (formula.dsa_stored_dtypes)
            return f"{option} {asked.name}, stored by {kv.engine.name} as {dtype.name}"
        return f"{option} {dtype.name}"
    if kv.model.checkpoint_kv is not None:  # the checkpoint publishes its KV cache's dtype
        return kv.kv_dtype_source.split("; V ")[-1].split("; K ")[-1]
    if kv.engine.default_kv_dtype is not None:
        return f"auto: engine {kv.engine.name}'s default cache type {dtype.name}"
    source = config_source("dtype", origin, label)
    return f"auto: the model's dtype {kv.model.dtype} ({_HF_DTYPES[kv.model.dtype]}; {source})"


def _why_step(kv: KvBreakdown) -> Step:
    is_mla = isinstance(kv.model.attention, MLA)
    lines = [
        "Decoding step t computes attention for the newest token only: it needs q_t, but the "
        "keys and values of every earlier token, k_i and v_i for all i ≤ t.",
        "So the engine keeps K and V of every token in every layer (Q is used once and "
        "dropped): the cache grows by one row per token per layer.",
        "Caching is exact: it changes the cost, not the result.",
    ]
    if getattr(kv, "state_groups", ()):
        lines.append(
            "Recurrent and linear-attention layers keep no K and V: they fold the past into a "
            "fixed-size state per sequence, updated each step, so their memory does not grow."
        )
    if is_mla:
        lines.append(
            "MLA caches one compressed latent per token and layer instead, from which K and V "
            "are rebuilt (no separate K and V, no factor 2)."
        )
    return Step("why", "Why K and V are cached, not Q", tuple(lines))


def _layout_step(
    kv: KvBreakdown, origin: Origin, label: str, config: Mapping[str, object] | None
) -> Step:
    model = kv.model
    a = model.attention
    lines = [f"{model.name}: {model.n_layers} layers, {layout_text(model)}."]
    values: dict[str, int | str | None] = {"kind": a.kind, "n_layers": model.n_layers}
    src = {f: config_source(f, origin, label, config, model.family) for f in CONFIG_KEYS}
    if isinstance(a, MLA):
        mha_elems = a.n_heads * (a.qk_nope_head_dim + a.v_head_dim)
        expanded = a.n_heads * (a.qk_nope_head_dim + a.qk_rope_head_dim + a.v_head_dim)
        latent_bytes = model.n_layers * kv.k_dtype.row_bytes(a.latent_dim)
        mha_bytes = model.n_layers * kv.k_dtype.row_bytes(mha_elems)
        lines += [
            f"Per token and layer MLA caches the latent c_KV (kv_lora_rank {a.kv_lora_rank}) "
            f"plus the shared RoPE key k^R (qk_rope_head_dim {a.qk_rope_head_dim}): "
            f"{a.kv_lora_rank} + {a.qk_rope_head_dim} = {a.latent_dim} elements.",
            f"Plain MHA with the same {a.n_heads} heads of d_h = {a.qk_nope_head_dim} "
            f"(qk_nope_head_dim; V {a.v_head_dim}) would cache n_h·(d_h + d_v) = "
            f"{a.n_heads} × ({a.qk_nope_head_dim} + {a.v_head_dim}) = {mha_elems:,} elements "
            f"(2·n_h·d_h, arXiv 2405.04434 Table 1): {_ratio(mha_elems, a.latent_dim)}× "
            "the latent.",
            f"Per token, all {model.n_layers} layers, {_dtype_text(kv.k_dtype)}: MLA "
            f"{kv.model.n_layers} × {a.latent_dim} × {kv.k_dtype.block_bytes} = "
            f"{latent_bytes:,} B; that MHA {model.n_layers} × {mha_elems:,} × "
            f"{kv.k_dtype.block_bytes} = {mha_bytes:,} B.",
            f"Expanded per head as transformers 4.x caches it, K {a.qk_nope_head_dim} + "
            f"{a.qk_rope_head_dim} rope and V {a.v_head_dim} per head: {a.n_heads} × "
            f"({a.qk_nope_head_dim + a.qk_rope_head_dim} + {a.v_head_dim}) = {expanded:,} "
            f"elements, {_ratio(expanded, a.latent_dim)}× the latent.",
        ]
        if a.index_head_dim is not None:
            lines.append(
                f"DSA sparse attention adds its indexer's key: index_head_dim "
                f"{a.index_head_dim} elements per token and layer, cached beside the latent "
                "(arXiv 2512.02556)."
            )
        values.update(
            latent_elems=a.latent_dim,
            kv_lora_rank=a.kv_lora_rank,
            qk_rope_head_dim=a.qk_rope_head_dim,
            mha_equivalent_elems=mha_elems,
            expanded_elems=expanded,
            mha_ratio=str(_ratio(mha_elems, a.latent_dim)),
            latent_bytes_per_token=latent_bytes,
            mha_bytes_per_token=mha_bytes,
        )
    else:
        n_kv = a.n_kv_heads
        rows = n_kv * (a.head_dim + a.v_dim)
        mha_rows = a.n_heads * (a.head_dim + a.v_dim)
        values.update(n_heads=a.n_heads, n_kv_heads=n_kv, head_dim=a.head_dim, elems=rows)
        if isinstance(a, MHA):
            lines.append(
                f"MHA: every one of the {a.n_heads} query heads has its own K and V head "
                f"of {a.head_dim} elements."
            )
        else:
            kind = "MQA: one K/V head" if isinstance(a, MQA) else f"GQA: {n_kv} K/V heads"
            lines.append(
                f"{kind} shared by {a.n_heads} query heads, {a.n_heads // n_kv} per group: "
                f"{rows:,} cached elements per token and layer instead of MHA's {mha_rows:,} "
                f"({_ratio(mha_rows, rows)}× less)."
            )
            values["mha_equivalent_elems"] = mha_rows
        for name, layer_kind in (model.kinds or {}).items():
            if isinstance(layer_kind, AttentionKind) and layer_kind.index_head_dim is not None:
                count = model.layer_kind_names().count(name)
                lines.append(
                    f"{count} {name} layers also cache their sparse-attention indexer's key: "
                    f"one head of index_head_dim {layer_kind.index_head_dim} elements per token "
                    "(MiniMax-M3's lightning indexer), used to pick the key blocks attended."
                )
    windows = {g.key for g in kv.groups if g.key is not None}
    windows = {w for w in windows if w.kind not in COMPRESSED_PARTS}
    for w in sorted(windows, key=lambda w: (w.kind, w.size)):
        count = kv.layer_windows.count(w)
        field_name = _window_field(model, w.kind, w.size)
        what = "a sliding window" if w.kind == "sliding" else "a chunk"
        lines.append(
            f"{count} of {model.n_layers} layers are {w.kind}: each attends to {what} of "
            f"{w.size:,} tokens ({src[field_name]}), so it needs at most that many cached."
        )
    lines += _compressed_lines(kv)
    lines += [f"{line}" for line in _state_lines(kv)]
    return Step("layout", "Layout", tuple(lines), values=values)


def _compressed_lines(kv: KvBreakdown) -> list[str]:
    """Return a line per compressed layer kind (DeepSeek-V4 CSA / HCA), when there are any."""
    lines = []
    for name, kind in sorted((kv.model.kinds or {}).items()):
        if not isinstance(kind, CompressedKind):
            continue
        overlap = (
            ", and m overlap rows (kv + fp32 gate) once seq ≥ m" if kind.index_head_dim else ""
        )
        lines.append(
            f"{kv.layer_kinds.count(name)} of {kv.model.n_layers} layers are {name} "
            f"(compressed, m = {kind.rate}): beside their sliding keys (K = V, held once) they "
            f"keep ⌊seq/m⌋ compressed entries and seq mod m buffered rows (kv + gate){overlap}."
        )
    return lines


def _rows_rule(g: Any) -> str:
    """Return how a group's held tokens (or rows) follow from seq, in words."""
    if g.kind == "compressed":
        return f"⌊seq/{g.window}⌋"
    if g.kind == "buffered":
        return f"seq mod {g.window}"
    if g.kind == "overlap":
        return f"{g.window} once seq ≥ {g.window}"
    return f"min(seq, {g.window:,})" if g.window is not None else "seq"


def _state_lines(kv: KvBreakdown) -> list[str]:
    """Return lines for fixed-size per-sequence state layers, when the breakdown has any."""
    groups = getattr(kv, "state_groups", ())
    lines = []
    for g in groups:
        lines.append(
            f"{g.count} {g.layer_kind} layers ({g.mixer}) keep a fixed state of "
            f"{g.bytes_per_sequence_per_layer:,} B per sequence each (conv "
            f"{g.conv_bytes_per_layer:,} B + recurrent {g.recurrent_bytes_per_layer:,} B on one "
            "GPU): it does not grow with the context."
        )
    return lines


def _ratio(a: int, b: int) -> Fraction | float:
    """Return a/b rounded to 2 decimals (exact Fraction when it is whole)."""
    value = Fraction(a, b)
    return value if value.denominator == 1 else round(float(value), 2)


def _per_layer_factors(
    kv: KvBreakdown, origin: Origin, label: str, config: Mapping[str, object] | None
) -> tuple[list[Factor], int]:
    """Return the factors of one layer's bytes per token (textbook layout, one GPU), and their product."""
    model, k = kv.model, kv.k_dtype
    a = model.attention
    src = {f: config_source(f, origin, label, config, model.family) for f in CONFIG_KEYS}
    k_src = _dtype_source(kv, "k", origin, label)
    if isinstance(a, MLA):
        factors, per_layer = _mla_factors(a, k, k_src, src)
        if a.index_head_dim is None:
            return factors, per_layer
        index = indexer_bytes_per_token(a, ENGINES["formula"], k)
        return [
            Factor(
                "B/token/layer",
                per_layer + index,
                f"latent {' × '.join(f'{f.value:,}' for f in factors)} = {per_layer:,} B + "
                f"DSA indexer key of index_head_dim {a.index_head_dim} = {index:,} B",
                f"{'; '.join(f.source for f in factors)}; {src['attention.index_head_dim']}",
            )
        ], per_layer + index
    return _headed_factors(kv, origin, label, config, src, k_src)


def _mla_factors(a: MLA, k: KvDtype, k_src: str, src: dict[str, str]) -> tuple[list[Factor], int]:
    """Return the factors of one MLA layer's latent bytes per token, and their product."""
    if k.name == "fp8_ds_mla":
        per_layer = a.kv_lora_rank + a.kv_lora_rank // 128 * 4 + a.qk_rope_head_dim * 2
        return [
            Factor(
                "B/token/layer",
                per_layer,
                f"fp8_ds_mla row: {a.kv_lora_rank} fp8 latent + {a.kv_lora_rank // 128 * 4} B "
                f"scales + {a.qk_rope_head_dim}·2 B rope",
                k_src,
            )
        ], per_layer
    if k.block_elems > 1:
        blocks = -(-a.latent_dim // k.block_elems)
        return [
            Factor(
                "B/token/layer",
                blocks * k.block_bytes,
                f"latent of kv_lora_rank {a.kv_lora_rank} + qk_rope_head_dim "
                f"{a.qk_rope_head_dim} = {a.latent_dim} elements in {blocks} {k.name} "
                f"blocks of {k.block_bytes} B",
                f"{src['attention.kv_lora_rank']}; {src['attention.qk_rope_head_dim']}; {k_src}",
            )
        ], blocks * k.block_bytes
    return [
        Factor(
            "latent",
            a.latent_dim,
            f"elements per token and layer: kv_lora_rank {a.kv_lora_rank} + "
            f"qk_rope_head_dim {a.qk_rope_head_dim}",
            f"{src['attention.kv_lora_rank']}; {src['attention.qk_rope_head_dim']}",
        ),
        *_elem_factor(k, k_src),
    ], k.row_bytes(a.latent_dim)


def _headed_factors(
    kv: KvBreakdown,
    origin: Origin,
    label: str,
    config: Mapping[str, object] | None,
    src: dict[str, str],
    k_src: str,
) -> tuple[list[Factor], int]:
    """Return the factors of one MHA/GQA/MQA layer's K and V bytes per token, and their product."""
    model, k, v = kv.model, kv.k_dtype, kv.v_dtype
    a = model.attention
    if isinstance(a, MLA):  # callers dispatch MLA first
        raise TypeError("MLA has no K/V heads")
    n_kv = a.n_kv_heads
    plain = k == v and a.head_dim == a.v_dim and k.block_elems == 1 and not k.scale_bytes_per_head
    if plain:
        factors = [Factor("2", 2, "K and V", "one K and one V row per token and layer")]
        factors += _elem_factor(k, k_src)
        if isinstance(a, MHA) and a.n_heads * a.head_dim == model.d_model:
            factors.append(
                Factor(
                    "d_model",
                    model.d_model,
                    f"K (and V) width = {a.n_heads} heads × {a.head_dim} head_dim",
                    src["d_model"],
                )
            )
        else:
            heads_field = "attention.n_heads" if isinstance(a, MHA) else "attention.n_kv_heads"
            heads_src = "MQA: one K/V head" if isinstance(a, MQA) else src[heads_field]
            factors += [
                Factor("n_kv_heads", n_kv, "K/V heads per layer", heads_src),
                Factor("head_dim", a.head_dim, "elements per head row", src["attention.head_dim"]),
            ]
        product = 1
        for f in factors:
            product *= f.value
        return factors, product
    row = (
        k.row_bytes(a.head_dim)
        + k.scale_bytes_per_head
        + v.row_bytes(a.v_dim)
        + v.scale_bytes_per_head
    )
    heads_src = "MQA: one K/V head" if isinstance(a, MQA) else src["attention.n_kv_heads"]
    if isinstance(a, MHA):
        heads_src = src["attention.n_heads"]
    return [
        Factor("n_kv_heads", n_kv, "K/V heads per layer", heads_src),
        Factor(
            "B/head",
            row,
            f"K {a.head_dim} × {_dtype_text(k)} + V {a.v_dim} × {_dtype_text(v)}, "
            "block scales included",
            f"{src['attention.head_dim']}; K {k_src}; V {_dtype_source(kv, 'v', origin, label)}",
        ),
    ], n_kv * row


def _elem_factor(dtype: KvDtype, source: str) -> list[Factor]:
    if dtype.block_elems == 1:
        return [Factor("bytes", dtype.block_bytes, f"bytes per element ({dtype.name})", source)]
    return []  # block types are counted per row in the row factor


def _group_key(
    g: LayerGroup, renamed: Mapping[Window, Window] | None = None
) -> tuple[str, int | None, str]:
    window = g.window
    if renamed and g.key is not None and g.key in renamed:
        window = renamed[g.key].size
    return g.kind, window, str(getattr(g, "layer_kind", "") or "")


def _window_field(model: ModelSpec, kind: str, size: int) -> str:
    """Return the spec field a window of this kind and size was read from."""
    if kind != "sliding":
        return "layers.chunk_size"
    layers = model.layers
    if layers is not None and layers.config_sliding_window == size != layers.sliding_window:
        return "layers.config_sliding_window"
    return "layers.sliding_window"


def _renamed_windows(textbook_kv: KvBreakdown, kv: KvBreakdown) -> dict[Window, Window]:
    """Return the engine's window for each textbook window it sizes otherwise, layer by layer
    (llama.cpp's n_swa is the config's own sliding_window); {} unless one to one."""
    pairs = {
        (t, e)
        for t, e in zip(textbook_kv.layer_windows, kv.layer_windows, strict=False)
        if t is not None and e is not None and t != e and t.kind == e.kind
    }
    renamed = dict(pairs)
    return renamed if len(renamed) == len(pairs) else {}


def _reference(kv: KvBreakdown, engine: EngineProfile) -> KvBreakdown:
    """Return the breakdown on one GPU under `engine`, same model, point and dtypes."""
    if engine.name == "formula":  # the textbook: only the point and the dtypes carry over
        w = Workload(kv.workload.seq_len, kv.workload.batch, kv.k_dtype, kv.v_dtype)
    else:
        # the dtypes asked for, which the engine maps again (DSA fp8: fp8_ds_mla)
        k = kv.workload.k_dtype or kv.k_dtype
        v = kv.workload.v_dtype or kv.v_dtype
        w = replace(kv.workload, tp=1, pp=1, k_dtype=k, v_dtype=v)
    return kv_cache(kv.model, w, engine)


def _formula_step(
    kv: KvBreakdown,
    textbook_kv: KvBreakdown,
    origin: Origin,
    label: str,
    config: Mapping[str, object] | None,
) -> tuple[Step, int]:
    """Return the textbook formula step (exact tokens, logical heads, no engine rounding).

    The textbook is the `formula` engine on one GPU: every layer holds exactly seq tokens
    (a local layer min(seq, window)), K/V heads as the config gives them.
    """
    w = kv.workload
    textbook = textbook_kv.total_bytes
    factors, per_layer = _per_layer_factors(kv, origin, label, config)
    src = config_source("n_layers", origin, label, config)
    groups = [(g, g.tokens) for g in textbook_kv.groups]
    uniform = all(g.bytes_per_token_per_layer == per_layer for g, _ in groups)
    per_layer_text = " × ".join(f"{f.value:,}" for f in factors)
    lines = []
    if uniform:
        lines.append(
            f"one layer, one token: {per_layer_text} = {per_layer:,} B; the cache is that "
            "times layers × tokens × sequences."
        )
    if uniform and len(groups) == 1:
        factors = [
            *factors,
            _layers_factor(kv, groups[0][0].count, src),
            _tokens_factor(kv, groups[0][0], groups[0][1], origin, label, config),
            Factor("batch", w.batch, "sequences", f"--batch {w.batch}"),
        ]
        lines.append(" × ".join(f"{f.value:,}" for f in factors) + f" = {textbook:,} B")
    else:
        terms = []
        for g, tokens in groups:
            how = _rows_rule(g)
            name = str(getattr(g, "layer_kind", "") or g.kind)
            if g.kind in COMPRESSED_PARTS:
                name = f"{name} {g.kind}"
            each = "" if uniform else f" × {g.bytes_per_token_per_layer:,} B"
            terms.append(f"{g.count} {name} layers × {tokens:,} tokens ({how}){each}")
        lead = f"{per_layer_text} B per token per layer × " if uniform else ""
        lines.append(f"{lead}({' + '.join(terms)}) × {w.batch:,} seq = {textbook:,} B")
        if not uniform:
            lines.append(f"per layer kind: {textbook_kv.layer_formula}")
        factors = [
            *(factors if uniform else []),
            Factor("layers", kv.model.n_layers, "layers, split by kind above", src),
            Factor("seq", w.seq_len, "tokens per sequence (full layers)", f"--seq {w.seq_len}"),
            Factor("batch", w.batch, "sequences", f"--batch {w.batch}"),
        ]
    lines += _state_formula_lines(kv)
    step = Step(
        "formula",
        "The formula, factor by factor",
        tuple(lines),
        factors=tuple(factors),
        values={"bytes_per_token_per_layer": per_layer, "textbook_bytes": textbook},
    )
    return step, textbook


def _layers_factor(kv: KvBreakdown, count: int, source: str) -> Factor:
    n_layers = kv.model.n_layers
    if count == n_layers:
        return Factor("layers", count, "layers", source)
    return Factor(
        "layers",
        count,
        f"layers that cache K and V, of {n_layers}",
        f"{source}; the layer pattern (layers.pattern)",
    )


def _state_formula_lines(kv: KvBreakdown) -> list[str]:
    """Return one line per fixed-size state layer kind (recurrent, linear attention), if any."""
    lines = []
    for g in getattr(kv, "state_groups", ()):
        lines.append(
            f"state, not per token: {g.count} {g.layer_kind} ({g.mixer}) layers × "
            f"{g.bytes_per_sequence_per_layer:,} B per sequence per layer ({g.formula}) = "
            f"{g.bytes:,} B for the workload"
        )
    return lines


def _tokens_factor(
    kv: KvBreakdown,
    group: LayerGroup,
    tokens: int,
    origin: Origin,
    label: str,
    config: Mapping[str, object] | None,
) -> Factor:
    seq = kv.workload.seq_len
    if group.window is None:
        return Factor("seq", seq, "tokens per sequence", f"--seq {seq}")
    field_name = _window_field(kv.model, group.kind, group.window)
    return Factor(
        "tokens",
        tokens,
        f"tokens each {group.kind} layer holds: min(seq {seq:,}, window {group.window:,})",
        f"--seq {seq}; {config_source(field_name, origin, label, config, kv.model.family)}",
    )


def _engine_step(kv: KvBreakdown, textbook_kv: KvBreakdown, engine_kv: KvBreakdown) -> Step:
    """Return what the engine adds to the textbook bytes, each term and why; they sum exactly.

    Applied in order: the engine's layout on one GPU, tensor-parallel copies, the tokens
    each layer holds (blocks, padding, window rule), then padding layers; each term is the
    change in total bytes, so textbook + Σ terms = the engine's total.
    """
    engine, w = kv.engine, kv.workload
    keys = [_group_key(g) for g in kv.groups]
    renamed = _renamed_windows(textbook_kv, kv)
    t0 = {_group_key(g, renamed): g.tokens for g in textbook_kv.groups}
    b0 = {_group_key(g, renamed): g.bytes_per_token_per_layer for g in textbook_kv.groups}
    b1 = {_group_key(g): g.bytes_per_token_per_layer for g in engine_kv.groups}
    t0 = {k: t0.get(k, 0) for k in keys}
    t1 = {_group_key(g): g.tokens for g in kv.groups}
    c0 = {_group_key(g): g.count for g in kv.groups}
    c1 = {_group_key(g): g.padded_count for g in kv.groups}
    p1 = {k: b1.get(k, 0) for k in keys}
    p2 = {_group_key(g): w.tp * g.bytes_per_token_per_layer for g in kv.groups}

    def total(per_layer: dict[Any, int], tokens: dict[Any, int], counts: dict[Any, int]) -> int:
        return sum(counts[k] * tokens[k] * w.batch * per_layer[k] for k in keys)

    changed = [k for k in keys if p1[k] != b0.get(k, 0)]  # name a layer kind that differs
    first = changed[0] if changed else next(iter(keys), None)
    why = ""
    if isinstance(kv.model.attention, MLA) and engine.mla_layout == "expanded":
        why = " (MLA expanded per head: K n_h·(nope + rope) + V n_h·v)"
    elif kv.model.family in engine.expanded_kv_families:
        why = " (K/V heads repeated to every query head before caching)"
    elif engine.gqa_indexer_dtype == "model" and first is not None and first[2]:
        why = f" (its indexer key in the model dtype, {kv.model.dtype})"
    elif engine.gqa_indexer_dtype == "llama_cpp" and first is not None and first[2]:
        why = " (its indexer cache also keeps a V row)"
    layout = (
        f"layout: {engine.name} caches {p1[first]:,} B per token per {first[2] or first[0]} "
        f"layer, not {b0.get(first, 0):,}{why}"
        if first is not None
        else "layout"
    )
    steps = [
        (p1, t0, c0, layout),
        (p2, t0, c0, _tp_text(kv)),
        (p2, t1, c0, "tokens held: " + _tokens_text(kv, t0, t1)),
        (p2, t1, c1, "padding layers of vLLM's equal-size hybrid groups"),
    ]
    terms: list[tuple[str, int]] = []
    textbook = textbook_kv.total_bytes
    previous = textbook
    for per_layer, tokens, counts, text in steps:
        now = total(per_layer, tokens, counts)
        if now != previous:
            terms.append((text, now - previous))
        previous = now
    if previous != kv.total_bytes:  # a layer kind the textbook lacks: say so, keep it exact
        terms.append((f"other {engine.name} allocation", kv.total_bytes - previous))
    lines = [f"textbook: {textbook:,} B"]
    lines += [f"{'+' if b >= 0 else '−'} {abs(b):,} B  {t}" for t, b in terms]
    lines.append(f"= {kv.total_bytes:,} B under {engine.name} ({engine.summary})")
    if not terms:
        lines.insert(
            1, f"{engine.name} adds nothing at this point: no rounding, padding or copies."
        )
    scale = _scale_line(kv)
    if scale:
        lines.append(scale)
    lines += [f"why: {a}" for a in kv.assumptions]
    values: dict[str, int | str | None] = {
        "textbook_bytes": textbook,
        "total_bytes": kv.total_bytes,
    }
    return Step(
        "engine",
        f"What {engine.name} adds, and why",
        tuple(lines),
        values=values,
        terms=tuple(terms),
    )


def _tp_text(kv: KvBreakdown) -> str:
    tp = kv.workload.tp
    if isinstance(kv.model.attention, MLA):
        return f"tensor parallelism: each of {tp} ranks holds the whole latent (replicated)"
    logical = kv_heads_per_gpu(kv.model, kv.engine, 1)
    return (
        f"tensor parallelism: {tp} ranks × {kv.kv_heads_per_gpu} KV "
        f"head{'s' if kv.kv_heads_per_gpu > 1 else ''} each, "
        f"{logical} distinct (heads copied when tp exceeds them)"
    )


def _tokens_text(kv: KvBreakdown, t0: dict[Any, int], t1: dict[Any, int]) -> str:
    parts = []
    for g in kv.groups:
        k = _group_key(g)
        if t0[k] != t1[k]:
            name = f"{g.layer_kind} " if g.layer_kind else ""
            parts.append(f"{name}{g.kind} layers {t0[k]:,} → {t1[k]:,}")
    block = f"block {kv.block_size} tokens" if kv.block_size > 1 else "no blocks"
    pad = f", context padded to {kv.engine.context_pad}" if kv.engine.context_pad > 1 else ""
    rule = kv.engine.sliding_rule(
        kv.model.family, kv.model.architecture, kv.workload.attention_windows is not None
    )
    return f"{', '.join(parts)} ({block}{pad}, sliding rule {rule})"


def _scale_line(kv: KvBreakdown) -> str | None:
    texts = []
    for dtype in {kv.k_dtype, kv.v_dtype}:
        if dtype.block_elems > 1 or dtype.scale_bytes_per_head or dtype.name == "fp8_ds_mla":
            texts.append(f"{dtype.name}: {dtype.description}")
    if not texts:
        return None
    return "scales: stored with the cache and counted above (" + "; ".join(sorted(texts)) + ")"


def _where_step(kv: KvBreakdown) -> Step:
    lines = []
    values: dict[str, int | str | None] = {}
    whole = kv.total_bytes + int(getattr(kv, "state_total_bytes", 0) or 0)
    for g in kv.groups:
        name = g.kind if g.window is None else f"{g.kind} (window {g.window:,})"
        if g.kind in COMPRESSED_PARTS:
            name = f"{g.layer_kind} {g.kind} (m = {g.window}, {_rows_rule(g)} rows)"
        share = Fraction(g.bytes, whole) if whole else Fraction(0)
        count = (
            f"{g.count}"
            if g.padded_count == g.count
            else f"{g.count} (+{g.padded_count - g.count} padding)"
        )
        lines.append(
            f"{count} {name} layers × {g.tokens:,} tokens: {g.bytes:,} B "
            f"({float(share) * 100:.1f} %)"
        )
        values[f"{g.kind}_{g.window or 0}_bytes"] = g.bytes
    state_total = int(getattr(kv, "state_total_bytes", 0) or 0)
    for sg in getattr(kv, "state_groups", ()):
        lines.append(
            f"{sg.padded_count} {sg.layer_kind} state layers ({sg.mixer}): {sg.bytes:,} B, "
            "fixed per sequence"
        )
    if state_total:
        lines.append(
            f"growing KV {kv.total_bytes:,} B + fixed state {state_total:,} B = "
            f"{kv.total_bytes + state_total:,} B"
        )
        values["state_total_bytes"] = state_total
    state_seq = int(getattr(kv, "state_bytes_per_sequence", 0) or 0)
    plus = f" KV + {state_seq:,} B state" if state_seq else ""
    lines.append(
        f"per sequence {kv.per_sequence_bytes:,} B{plus}; total {kv.total_bytes:,} B on "
        f"{kv.n_gpus} GPU(s); busiest GPU {kv.per_gpu_bytes:,} B"
    )
    if kv.workload.pp > 1:
        for s, ((a, b), n) in enumerate(zip(kv.stage_layers, kv.stage_bytes, strict=True)):
            lines.append(f"stage {s}: layers {a}–{b - 1}, {n:,} B per GPU")
    values.update(per_sequence_bytes=kv.per_sequence_bytes, total_bytes=kv.total_bytes,
                  per_gpu_bytes=kv.per_gpu_bytes)  # fmt: skip
    return Step("where", "Where the memory goes", tuple(lines), values=values)


def recompute_positions(prompt_tokens: int, output_tokens: int) -> tuple[int, int]:
    """Return (token positions computed without a KV cache, with one) for M tokens after L.

    Without a cache the prefill and each of the M decode steps re-run the whole sequence so
    far: L + (L + 1) + ... + (L + M) = (M + 1)·L + M(M + 1)/2. With it the prompt is
    computed once and each step computes only its new token: L + M.
    """
    m, n = output_tokens, prompt_tokens
    return (m + 1) * n + m * (m + 1) // 2, n + m


def _buys_step(kv: KvBreakdown, prompt: int, output: int) -> Step:
    without, with_cache = recompute_positions(prompt, output)
    lines = [
        f"Generating M = {output:,} tokens after an L = {prompt:,}-token prompt "
        f"(L + M = {prompt + output:,} = --seq):",
        f"without a cache every step recomputes the whole prefix: (M+1)·L + M(M+1)/2 = "
        f"{output + 1:,} × {prompt:,} + {output:,} × {output + 1:,} / 2 = {without:,} token "
        "positions per layer;",
        f"with it: L + M = {with_cache:,} positions, {_ratio(without, with_cache)}× fewer, "
        f"for {kv.per_sequence_bytes:,} B of cache per sequence.",
    ]
    return Step(
        "buys",
        "What the cache buys",
        tuple(lines),
        values={
            "prompt_tokens": prompt,
            "output_tokens": output,
            "positions_without_cache": without,
            "positions_with_cache": with_cache,
        },
    )


def explain(
    kv: KvBreakdown,
    model_label: str,
    origin: Origin = "preset",
    output_tokens: int | None = None,
    config: Mapping[str, object] | None = None,
) -> Explanation:
    """Return the explanation of a KV breakdown: why, layout, formula, engine, where, what it buys.

    `output_tokens` (M) splits --seq into an L = seq − M prompt and M generated tokens;
    by default M = min(256, seq − 1). `config` is the config.json dict when the model came
    from one, so each factor names the key that was actually present.
    """
    from kvcalc.errors import KvcalcError

    if kv.block_pool is not None:
        raise KvcalcError(
            f"explain: {kv.engine.name}'s DeepSeek-V4 block pool is not explained yet (the "
            "textbook reference keeps the model dtype, vLLM needs fp8): use calc, or --engine hf"
        )
    seq = kv.workload.seq_len
    output = min(256, seq - 1) if output_tokens is None else output_tokens
    if output < 0 or output >= seq:
        raise KvcalcError(
            f"--output-tokens must be from 0 to seq − 1 ({seq - 1:,}), got {output:,}"
        )
    if kv.engine.compressed_layout == "sglang" and any(g.kind == "paged" for g in kv.groups):
        raise KvcalcError(
            "explain: SGLang's DeepSeek-V4 pools (fp8 FlashMLA rows, paged compressed rows) "
            "have no textbook counterpart to explain against (use calc, or --engine hf)"
        )
    if kv.engine.compressed_layout == "llama_cpp" and any(g.kind == "cells" for g in kv.groups):
        raise KvcalcError(
            "explain: llama.cpp's DeepSeek-V4 caches (padded compressed cells, f32 compressor "
            "state) have no textbook counterpart to explain against (use calc, or --engine hf)"
        )
    textbook_kv = _reference(kv, ENGINES["formula"])
    formula, textbook = _formula_step(kv, textbook_kv, origin, model_label, config)
    steps = (
        _why_step(kv),
        _layout_step(kv, origin, model_label, config),
        formula,
        _engine_step(kv, textbook_kv, _reference(kv, kv.engine)),
        _where_step(kv),
        _buys_step(kv, seq - output, output),
    )
    return Explanation(kv, steps, textbook, output, seq - output)


def explanation_data(e: Explanation, model_label: str) -> dict[str, object]:
    """Return the explanation as plain JSON-ready data; every byte value is an int."""
    kv = e.kv
    return {
        "schema_version": 1,
        "model": model_label,
        "model_name": kv.model.name,
        "engine": kv.engine.name,
        "k_dtype": kv.k_dtype.name,
        "v_dtype": kv.v_dtype.name,
        "kv_dtype_source": kv.kv_dtype_source,
        "seq_len": kv.workload.seq_len,
        "batch": kv.workload.batch,
        "tp": kv.workload.tp,
        "pp": kv.workload.pp,
        "layout": layout_text(kv.model),
        "textbook_bytes": e.textbook_bytes,
        "bytes_per_token": kv.bytes_per_token,
        "per_sequence_bytes": kv.per_sequence_bytes,
        "total_bytes": kv.total_bytes,
        "per_gpu_bytes": kv.per_gpu_bytes,
        "state_total_bytes": int(getattr(kv, "state_total_bytes", 0) or 0),
        "state_per_gpu_bytes": int(getattr(kv, "state_per_gpu_bytes", 0) or 0),
        "steps": [
            {
                "key": s.key,
                "title": s.title,
                "lines": list(s.lines),
                "factors": [
                    {"symbol": f.symbol, "value": f.value, "meaning": f.meaning, "source": f.source}
                    for f in s.factors
                ],
                "values": dict(s.values),
                "terms": [{"term": t, "bytes": b} for t, b in s.terms],
            }
            for s in e.steps
        ],
    }
