"""The table of model families kvcalc imports, by Hugging Face model_type, in one place.

Each family names the config keys it reads that change what is cached. A config whose
model_type is not in the table, or that sets a cache-changing key its family does not
read, is refused in one line naming it (`--assume-standard` reads it the standard way,
with a warning). Keys that do not change the cache (router settings, `moe_layer_freq`
lists, rope scaling ...) are accepted as they are.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import field
from typing import TYPE_CHECKING, Any

from kvcalc.hf import _compressed, _lightning, _linear, _mamba, _minimax_m3, _per_layer
from kvcalc.records import record

if TYPE_CHECKING:
    from kvcalc.hf._config import _Config

# Keys that change what a model caches, across the families kvcalc has read. A family
# reads some of them; any other one set in a config is refused.
CACHE_KEYS = frozenset(
    {
        # local attention
        "sliding_window", "sliding_window_size", "sliding_window_pattern", "use_sliding_window",
        "max_window_layers", "layer_types", "attention_chunk_size", "no_rope_layers",
        "no_rope_layer_interval", "attn_type_list", "hybrid_layer_pattern",
        # KV geometry per layer kind
        "num_kv_heads", "n_head_kv", "multi_query", "new_decoder_architecture",
        "kv_lora_rank", "qk_rope_head_dim", "v_head_dim", "global_head_dim",
        "num_global_key_value_heads", "attention_k_eq_v", "num_kv_shared_layers",
        "block_configs", "kv_channels", "per_layer_config", "hidden_size_per_layer_input",
        # recurrent / linear-attention mixers
        "hybrid_override_pattern", "layers_block_type", "attn_layer_period",
        "attn_layer_offset", "full_attention_interval", "linear_attn_config",
        "conv_L_cache", "conv_kernel", "expand", "n_groups",
        # sparse / compressed attention
        "index_head_dim", "indexer_types", "compress_ratios", "sparse_attention_config",
        # MTP / next-n layers
        "num_nextn_predict_layers", "mtp_num_hidden_layers", "num_mtp_modules",
        "mtp_transformer_layers", "use_mtp",
    }
)  # fmt: skip
CACHE_KEY_PREFIXES = (
    "mamba_", "ssm_", "linear_", "kda_", "compress_", "index_", "indexer_", "swa_",
    "hybrid_", "mtp_", "lightning_",
)  # fmt: skip
# Keys under those prefixes that change compute or weights but not what is cached.
NEUTRAL_KEYS = frozenset(
    {
        "mamba_hidden_act", "mamba_proj_bias", "mamba_conv_bias", "use_mamba_kernels",
        "mamba_chunk_size", "mamba_dt_rank", "mamba_rms_norm", "mamba_norm_before_gate",
        "index_topk", "index_n_heads", "index_topk_freq", "index_topk_pattern",
        "index_share_for_mtp_iteration", "index_skip_topk_offset", "indexer_rope_interleave",
        "swa_rope_theta", "mtp_use_dedicated_embeddings", "linear_attn_bias",
        "ssm_in_multiplier", "ssm_out_multiplier", "ssm_multipliers", "mamba_use_mlp",
        "hybrid_override_pattern_mtp",
    }
)  # fmt: skip


def is_cache_key(key: str) -> bool:
    """Return True when a config key changes what a model caches (kvcalc's reading)."""
    if key in NEUTRAL_KEYS:
        return False
    return key in CACHE_KEYS or key.startswith(CACHE_KEY_PREFIXES)


def is_set(value: Any) -> bool:
    """Return True when a config value says something (not None, False, 0 or empty)."""
    return value not in (None, False, 0, "", [], {})


# The keys every standard family reads (sliding and chunked layers, head geometry).
STANDARD_READS = frozenset(
    {
        "sliding_window", "sliding_window_pattern", "use_sliding_window", "max_window_layers",
        "layer_types", "attention_chunk_size",
    }
)  # fmt: skip
MLA_READS = frozenset({"kv_lora_rank", "qk_rope_head_dim", "v_head_dim"})


@record
class Family:
    """One supported model_type: what it is, which cache keys it reads, how it is read.

    `build` returns the spec's fields (attention, layers, kinds, params ...) from the
    config; None means the standard reading.
    """

    model_type: str
    summary: str
    reads: frozenset[str] = STANDARD_READS
    build: Callable[[_Config, str], dict[str, Any]] | None = None
    aliases: tuple[str, ...] = ()
    crosschecked: bool = True  # cache and parameter count proven against transformers
    notes: tuple[str, ...] = field(default_factory=tuple)


def _standard(model_type: str, summary: str, *extra: str, **kw: Any) -> Family:
    return Family(model_type, summary, STANDARD_READS | frozenset(extra), **kw)


_FAMILIES: list[Family] = [
    _standard("llama", "Llama 1-3: GQA"),
    _standard(
        "llama4_text",
        "Llama 4: chunked local attention 3 in 4 layers",
        "no_rope_layers",
        "no_rope_layer_interval",
        aliases=("llama4",),
    ),
    _standard("mistral", "Mistral: GQA, optional sliding window"),
    _standard("mixtral", "Mixtral MoE: GQA, optional sliding window"),
    # transformers models/ministral3 (Ministral3Config): Mistral's attention, every layer
    # sliding when sliding_window is set; Ministral3Config has no layer_types (it warns and
    # keeps it), so the family reads sliding_window only and refuses the other keys.
    Family("ministral3", "Ministral 3 / Devstral 2 (flat or inside mistral3): GQA, optional "
           "sliding window on every layer (inside mistral3 the Pixtral vision tower is counted "
           "apart, in tower)", frozenset({"sliding_window"})),
    _standard("qwen2", "Qwen2 / Qwen2.5: GQA, sliding window above max_window_layers"),
    _standard("qwen2_moe", "Qwen2-MoE"),
    _standard("qwen3", "Qwen3: GQA with q/k norm"),
    _standard("qwen3_moe", "Qwen3 MoE"),
    # Qwen3VLTextConfig has no sliding or layer_types keys (every layer is full GQA in
    # transformers), so the family reads none and a config setting one is refused.
    Family("qwen3_vl_text", "Qwen3-VL text model: GQA with q/k norm (the vision tower is "
           "counted apart, in tower)", frozenset(), aliases=("qwen3_vl",)),
    Family("qwen3_vl_moe_text", "Qwen3-VL MoE text model: GQA with q/k norm, MoE (the vision "
           "tower is counted apart, in tower)", frozenset(), aliases=("qwen3_vl_moe",)),
    _standard("gemma", "Gemma: MHA/MQA"),
    _standard("gemma2", "Gemma 2: sliding and full layers alternate", "sliding_window_size"),
    _standard("gemma3_text", "Gemma 3: 5 sliding layers to 1 full", aliases=("gemma3",)),
    _standard("phi3", "Phi-3 / Phi-4"),
    _standard(
        "falcon",
        "Falcon: MQA or GQA (new_decoder_architecture)",
        "num_kv_heads",
        "n_head_kv",
        "multi_query",
        "new_decoder_architecture",
        aliases=("RefinedWebModel", "RefinedWeb"),
    ),
    _standard("gpt2", "GPT-2: MHA, learned positions"),
    _standard("gpt_bigcode", "StarCoder / GPT-BigCode: MQA", "multi_query"),
    _standard("gpt_neox", "GPT-NeoX / Pythia"),
    _standard("opt", "OPT: MHA"),
    _standard("deepseek_v2", "DeepSeek-V2: MLA", *MLA_READS, "num_nextn_predict_layers"),
    _standard(
        "deepseek_v3", "DeepSeek-V3 / R1: MLA, MTP layer", *MLA_READS, "num_nextn_predict_layers"
    ),
    _standard(
        "kimi_k2",
        "Kimi-K2: DeepSeek-V3 architecture (Kimi-K2.5's MoonViT vision tower is not counted)",
        *MLA_READS,
        "num_nextn_predict_layers",
    ),
    _standard("gpt_oss", "gpt-oss: sliding and full layers alternate, attention sinks"),
    _standard("cohere", "Command-R: MHA/GQA"),
    _standard("cohere2", "Command-R7B / A: 3 sliding layers to 1 full"),
    _standard("starcoder2", "StarCoder2: GQA, sliding window"),
    _standard("olmo2", "OLMo 2: q/k norm over all heads"),
    # transformers models/olmo3 (Olmo3Config): only sliding_window (default 4096) and
    # layer_types (default 3 sliding layers to 1 full) shape the cache; the other
    # sliding keys are not Olmo3Config's, so a config setting one is refused.
    Family("olmo3", "OLMo 3: 3 sliding layers to 1 full, q/k norm over all heads",
           frozenset({"sliding_window", "layer_types"})),
    _standard("smollm3", "SmolLM3: GQA, some layers without RoPE"),
    _standard("granite", "Granite 3: GQA"),
    _standard("glm4_moe", "GLM-4.5 / 4.6 / 4.7: GQA MoE, MTP layer", "num_nextn_predict_layers"),
    Family(
        "nemotron_h",
        "Nemotron-H / Nemotron-3: Mamba2 + attention + MLP/MoE layers",
        _mamba.NEMOTRON_H_READS,
        _mamba.nemotron_h,
    ),
    Family("qwen3_next", "Qwen3-Next: Gated DeltaNet state, gated full attention 1 in 4, MoE",
           _linear.QWEN_GDN_READS, _linear.qwen_gated_deltanet),
    Family("qwen3_5_text", "Qwen3.5 / 3.6 dense: Gated DeltaNet state, full attention 1 in 4 (the vision "
           "tower is counted apart, in tower)",
           _linear.QWEN_GDN_READS, _linear.qwen_gated_deltanet, aliases=("qwen3_5",)),
    Family("qwen3_5_moe_text", "Qwen3.5 / 3.6 MoE: Gated DeltaNet state, full attention 1 in 4 (the vision "
           "tower is counted apart, in tower)",
           _linear.QWEN_GDN_READS, _linear.qwen_gated_deltanet, aliases=("qwen3_5_moe",)),
    Family("deepseek_v32", "DeepSeek-V3.2: MLA + sparse-attention indexer keys, MTP layer",
           _per_layer.DSA_READS, _per_layer.dsa),
    Family("deepseek_v4", "DeepSeek-V4: shared-KV sliding window in every layer, CSA (m = 4, "
           "indexer) and HCA (m' = 128) compressed layers", _compressed.DEEPSEEK_V4_READS,
           _compressed.deepseek_v4),
    Family("glm_moe_dsa", "GLM-5: MLA + indexer keys (shared-indexer layers keep none)",
           _per_layer.DSA_READS, _per_layer.dsa),
    Family("gemma4_text", "Gemma 4: sliding layers, full layers of their own KV geometry, "
           "K = V, KV-shared layers", _per_layer.GEMMA4_READS, _per_layer.gemma4, aliases=("gemma4",)),
    Family("nemotron-nas", "Llama-Nemotron NAS (DeciLM): per-layer GQA, no-op and linear "
           "attention blocks", _per_layer.NAS_READS, _per_layer.nemotron_nas, crosschecked=False,
           notes=("remote code (modeling_decilm.py), not in transformers: not cross-checked",)),
    # MiMo-7B: XiaomiMiMo/MiMo-7B-Base's modeling_mimo.py subclasses transformers' Qwen2
    # model and adds num_nextn_predict_layers MTP layers, each one more Qwen2 decoder layer
    # (the same KV per token). use_sliding_window is not read, so a config setting it is
    # refused (that path of the remote code is not modelled); unset, Qwen2 caches every
    # layer in full whatever sliding_window and max_window_layers say.
    Family("mimo", "MiMo-7B: Qwen2 body (GQA, q/k/v biases), MTP layers",
           frozenset({"sliding_window", "max_window_layers", "num_nextn_predict_layers"}),
           crosschecked=False,
           notes=("remote code (modeling_mimo.py), not in transformers: its Qwen2 body is "
                  "cross-checked as qwen2, its MTP layers are not; their weights are not counted",)),
    Family("mimo_v2_flash", "MiMo-V2-Flash: sliding layers with twice the KV heads, K ≠ V dims",
           _per_layer.MIMO_V2_READS, _per_layer.mimo_v2_flash),
    Family("minimax", "MiniMax-Text-01 / MiniMax-M1 (transformers' format): lightning-attention "
           "state layers, GQA softmax layers, MoE (sized under the hf, formula and vllm engines; "
           "sglang, llama.cpp and trtllm refuse it)",
           _lightning.MINIMAX_READS, _lightning.minimax),
    # The remote-code release (MiniMaxAI/MiniMax-M1-40k / -80k, MiniMax-Text-01: auto_map
    # modeling_minimax_m1.py / modeling_minimax_text_01.py) spells the layer list
    # attn_type_list (0 lightning, 1 softmax), which vLLM's MiniMaxText01ForCausalLM reads
    Family("minimax_m1", "MiniMax-M1 / MiniMax-Text-01 (remote code, attn_type_list): "
           "lightning-attention state layers, GQA softmax layers, MoE (sized under the formula "
           "and vllm engines; hf, sglang, llama.cpp and trtllm refuse it)",
           _lightning.MINIMAX_M1_READS, _lightning.minimax_m1,
           aliases=("minimax_text_01",), crosschecked=False,
           notes=("remote code, not in transformers: its layers are read from attn_type_list as "
                  "vLLM reads them, its weights as transformers' MiniMax modules (the names and "
                  "sizes of the checkpoint's model.safetensors.index.json)",)),
    Family("minimax_m2", "MiniMax-M2.x: GQA MoE, q/k norm over all heads, MTP modules",
           _per_layer.MINIMAX_M2_READS, _per_layer.minimax_m2),
    Family("minimax_m3", "MiniMax-M3: GQA MoE; sparse layers also cache a lightning-indexer key "
           "(one head) per token, sized under the hf, formula, sglang, vllm and llama.cpp "
           "engines (trtllm refuses it: its cache for it not read; the VL model's vision "
           "tower is not counted; the MTP modules, which transformers does not build, are "
           "neither counted nor cached)",
           _minimax_m3.MINIMAX_M3_READS, _minimax_m3.minimax_m3,
           aliases=("minimax_m3_vl_text", "minimax_m3_vl")),
    Family("jamba", "Jamba: Mamba state layers, attention 1 in attn_layer_period, MoE",
           _mamba.JAMBA_READS, _mamba.jamba),
    Family("lfm2", "LFM2: short-convolution state layers and GQA attention",
           _linear.LFM2_READS, _linear.lfm2),
    Family("granitemoehybrid", "Granite-4.0-H: Mamba2 state layers, attention, MoE + shared MLP",
           _mamba.GRANITE_H_READS, _mamba.granitemoehybrid),
    Family("kimi_linear", "Kimi Linear: MLA layers and Kimi Delta Attention state layers, MoE",
           _linear.KIMI_LINEAR_READS, _linear.kimi_linear),
    Family("kimi_k3", "Kimi-K3: Kimi Linear's MLA and KDA state layers with output gates, "
           "latent MoE and Attention Residuals (no cache of their own); the MoonViT3d vision "
           "tower is counted apart, in tower", _linear.KIMI_LINEAR_READS, _linear.kimi_k3,
           crosschecked=False,
           notes=("remote code, not in transformers: counted from SGLang's models/kimi_k3.py",)),
    Family("falcon_h1", "Falcon-H1: attention and Mamba2 side by side in every layer (KV + state)",
           _mamba.FALCON_H1_READS, _mamba.falcon_h1),
]  # fmt: skip

# model_types kvcalc knows and refuses, each with the reason (what it cannot size yet).
REFUSED: dict[str, str] = {
    "deepseek_ref": "DeepSeek-V4 reference config (compressed attention) is not modelled yet",
}


def families() -> dict[str, Family]:
    """Return every supported family by model_type and alias."""
    table: dict[str, Family] = {}
    for family in _FAMILIES:
        table[family.model_type] = family
        for alias in family.aliases:
            table.setdefault(alias, family)
    return table


def supported() -> list[Family]:
    """Return the supported families, sorted by model_type."""
    return sorted(_FAMILIES, key=lambda f: f.model_type)


def families_text() -> str:
    """Return the supported and refused families as plain text lines (`import --list-families`)."""
    lines = []
    for family in supported():
        aliases = f" (also {', '.join(family.aliases)})" if family.aliases else ""
        lines.append(f"{family.model_type}{aliases}: {family.summary}")
    lines.append("")
    lines.append("refused (known, not modelled yet):")
    lines.extend(f"{name}: {reason}" for name, reason in sorted(REFUSED.items()))
    return "\n".join(lines) + "\n"


def families_markdown() -> str:
    """Return docs/families.md: the family table as markdown (tests/test_hf.py checks drift)."""
    lines = [
        "# Model families",
        "",
        "<!-- generated by scripts/make_families_doc.py from kvcalc/hf/families.py; do not edit -->",
        "",
        "`kvcalc import`, `calc` and `fit` read a Hugging Face config.json through one adapter per",
        "`model_type`. A config of any other `model_type`, or one that sets a key changing what is",
        "cached that its family does not read, is refused in one line naming it; `--assume-standard`",
        "reads it with the standard keys instead, with a warning. Cross-checked families have their",
        "parameter count and every cache tensor per layer (K, V, indexer keys, conv and recurrent",
        "state) proven equal to transformers' on the meta device (tests/test_crosscheck.py).",
        "",
        "| model_type | also | layers and what they cache | cross-checked | cache keys read |",
        "|---|---|---|---|---|",
    ]
    for family in supported():
        keys = ", ".join(f"`{k}`" for k in sorted(family.reads))
        also = ", ".join(f"`{a}`" for a in family.aliases)
        checked = "yes" if family.crosschecked else "no: " + "; ".join(family.notes)
        lines.append(f"| `{family.model_type}` | {also} | {family.summary} | {checked} | {keys} |")
    lines += ["", "## Refused", "", "| model_type | why |", "|---|---|"]
    lines += [f"| `{name}` | {reason} |" for name, reason in sorted(REFUSED.items())]
    return "\n".join(lines) + "\n"
