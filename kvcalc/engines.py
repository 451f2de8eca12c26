"""Engine profiles: how each inference engine lays out and rounds the KV cache, as data.

Each profile is a handful of settings read from the engine's source (each profile's
`sources` names the files; docs/engines.md lists them); formula.py applies them. A new engine is a new
entry here, not a branch in the formulas.
"""

from dataclasses import field, replace
from fractions import Fraction
from typing import Literal

from kvcalc.errors import KvcalcError, did_you_mean
from kvcalc.records import record

# How KV heads are spread over tensor-parallel ranks.
#   replicate: max(1, n_kv // tp), heads copied when tp > n_kv (vLLM, SGLang)
#   ceil:      ceil(n_kv / tp) (TensorRT-LLM runtime model config)
#   none:      the engine has no tensor parallelism (layer split only)
HeadRule = Literal["replicate", "ceil", "none"]

# How many tokens a sliding-window layer holds for one sequence.
#   full:             no window savings (the whole context is cached)
#   window:           min(seq, W), then block rounding
#   window_minus_one: min(seq, W - 1) (transformers' DynamicSlidingWindowLayer)
#   vllm_planning:    (cdiv(min(W - 1 + N, seq), B) + 1) · B, N = max_num_batched_tokens
#   llama_cpp:        GGML_PAD(min(n_ctx, W + n_ubatch), 256)
#   freed_blocks:     (cdiv(seq, B) − max(0, (seq − W) // B)) · B: blocks wholly behind the
#                     window are freed (TensorRT-LLM KVCacheManagerV2, AttnLifeCycle)
SlidingRule = Literal[
    "full", "window", "window_minus_one", "vllm_planning", "llama_cpp", "freed_blocks"
]

# How MLA is cached: the joint latent (kv_lora_rank + qk_rope_head_dim, one "head"), or
# expanded per head as K = n_heads·(nope + rope), V = n_heads·v_head_dim (transformers 4.x).
MlaLayout = Literal["latent", "expanded"]

# How the engine turns device memory into a KV budget (planner.py applies it).
#   vllm:   ceil(capacity · util) − weights − reserve       (util: gpu_memory_utilization)
#   sglang: free_before · util − weights, free_before = capacity − CUDA context
#           (util: mem_fraction_static, default from SGLang's own heuristic)
#   trtllm: (capacity − CUDA context − weights − reserve) · util  (free_gpu_memory_fraction)
#   whole:  capacity − weights − reserve                      (llama.cpp, transformers)
BudgetRule = Literal["vllm", "sglang", "trtllm", "whole"]

# How wide a recurrent layer's conv state is: the whole kernel (transformers'
# LinearAttentionLayer keeps conv_kernel columns) or kernel - 1 (vLLM
# MambaStateShapeCalculator, SGLang's Mamba pool, llama.cpp n_embd_r).
ConvWidth = Literal["kernel", "kernel_minus_one"]

# How tensor parallelism splits a conv state's channels:
#   parts: the inner channels evenly, the groups by whole groups, replicated when fewer
#          than the ranks (vLLM MambaStateShapeCalculator, SGLang)
#   whole: all the channels together, conv_dim // tp, which must divide (TensorRT-LLM's
#          mamba cache managers: conv_dim = d_inner + 2 · n_groups · d_state)
ConvSplit = Literal["parts", "whole"]

# Which dtype a state tensor takes:
#   config: the config's own (mamba_ssm_cache_dtype), else the model's dtype (vLLM, SGLang)
#   fp32:   always float32 (llama.cpp type_r / type_s; transformers' recurrent state)
#   model:  the model's dtype
StateDtypeRule = Literal["config", "fp32", "model"]


# Kimi-K3 (kimi_k3) is sized only where its implementation was read (SGLang's
# models/kimi_k3.py, llama.cpp's src/models/kimi-k3.cpp, vLLM V1's vllm/models/kimi_k3,
# TensorRT-LLM's _torch/models/modeling_kimi_linear.py); these engines refuse it, each
# saying why.
_KIMI_K3_VLLM_V0 = (
    "kimi_k3",
    "vLLM's Kimi-K3 model (vllm/models/kimi_k3) runs on the V1 engine only",
)
_KIMI_K3_HF = (
    "kimi_k3",
    "transformers has no kimi_k3 model: Kimi-K3 runs the checkpoint's remote code "
    "(modeling_kimi_linear.py with its own KimiDynamicCache), whose cache kvcalc has not read",
)


# DeepSeek-V3.2 / GLM-5 (DSA: MLA with a lightning indexer) under engines whose indexer cache
# was not pinned down: refused, each saying why
_DSA_TRTLLM_REASON = (
    "TensorRT-LLM's DSACacheManager keeps the indexer keys in pools the read versions lay out "
    "differently (NVIDIA/TensorRT-LLM@eaf502624e92146c48724b22f90735d999e5a097:tensorrt_llm/"
    "_torch/attention_backend/sparse/dsa.py: one 64-token indexer block per KV block; later, "
    "unpinned versions: indexer rows in the KV blocks, an fp4 indexer option, "
    "DSACacheManagerV2, fp8_ds_mla on SM120), which kvcalc has not pinned down"
)
_DSA_TRTLLM = (("deepseek_v32", _DSA_TRTLLM_REASON), ("glm_moe_dsa", _DSA_TRTLLM_REASON))
_DSA_VLLM_V0_REASON = (
    "vLLM's DSA support (DeepseekV32IndexerCache, vllm/v1/attention/backends/mla/"
    "flashmla_sparse.py) is V1 engine code: the V0 engine does not run it"
)
_DSA_VLLM_V0 = (("deepseek_v32", _DSA_VLLM_V0_REASON), ("glm_moe_dsa", _DSA_VLLM_V0_REASON))


# MiniMax-Text-01 / M1 in transformers' format (model_type minimax, kvcalc/hf/_lightning.py)
# is sized only where its lightning state was read (transformers' MiniMaxCache, vLLM V1's
# minimax_text_01.py); these engines refuse it, each saying why.
_MINIMAX_SGLANG = (
    "minimax",
    "SGLang sizes MiniMax-Text-01's lightning state through its own MiniMaxText01Config, "
    "read only for the remote-code model_types minimax_text_01 / minimax_m1 (attn_type_list; "
    "fp32 [heads / attn_tp, head_dim, head_dim] per layer: sgl-project/sglang@"
    "753309568afbec936b873b2343fd9935f0cc06ee:python/sglang/srt/configs/minimax_text_01.py "
    "minimax_cache_per_req); how it pools transformers' model_type minimax is not read",
)
_MINIMAX_LLAMA_CPP = (
    "minimax",
    "llama.cpp converts MiniMax-Text-01 / M1 only from the remote-code checkpoints "
    "(MiniMaxText01ForCausalLM / MiniMaxM1ForCausalLM, arch minimax01: ggml-org/llama.cpp@"
    "051139f511300aaf6159294433fab91c73ef7455:conversion/minimax.py MiniMaxText01Model), not "
    "transformers' MiniMaxForCausalLM, and its lightning-state cache is not read",
)
_MINIMAX_HF4 = (
    "minimax",
    "transformers 4.x's MiniMaxCache is not read (the hf profile follows 5.25.0's)",
)
_MINIMAX_VLLM_V0 = (
    "minimax",
    "vLLM V0 kept MiniMax's lightning state in its own MinimaxCacheManager (max_num_seqs "
    "slots), which is not read; the V1 engine's is (--engine vllm)",
)
# The remote-code form (model_type minimax_m1 / minimax_text_01, attn_type_list) is sized
# only under vLLM V1 (minimax_text_01.py reads attn_type_list first) and the formula engine
_MINIMAX_M1_SGLANG = (
    "minimax_m1",
    "SGLang keeps the remote-code MiniMax lightning state in fp32 ([heads / attn_tp, head_dim, "
    "head_dim] per layer: sgl-project/sglang@753309568afbec936b873b2343fd9935f0cc06ee:python/"
    "sglang/srt/configs/minimax_text_01.py minimax_cache_per_req), a pool kvcalc does not size",
)
_MINIMAX_M1_LLAMA_CPP = (
    "minimax_m1",
    "llama.cpp converts the remote-code MiniMax checkpoints (arch minimax01: ggml-org/llama.cpp@"
    "051139f511300aaf6159294433fab91c73ef7455:conversion/minimax.py MiniMaxText01Model), but "
    "its lightning-state cache is not read",
)
_MINIMAX_M1_HF = (
    "minimax_m1",
    "transformers has no model_type minimax_m1 / minimax_text_01: the checkpoint runs its own "
    "remote code (auto_map modeling_minimax_m1.py), whose cache is not read; the transformers-"
    "format -hf release (model_type minimax) is",
)
_MINIMAX_M1_VLLM_V0 = ("minimax_m1", _MINIMAX_VLLM_V0[1])


@record
class FamilyRules:
    """How an engine treats one model family apart from its general rules.

    Each reason is the one line kvcalc refuses with ("": not refused).
    """

    family: str  # HF model_type
    # the rule for the family's sliding layers, windows given (--max-attention-window) or not
    sliding: SlidingRule | None = None
    note: str = ""  # what the engine does with the family, listed with the assumptions
    no_pp: str = ""  # why pipeline parallelism is refused
    no_kv_shared: str = ""  # why KV-shared layers (NoCacheKind kv_shared) are refused
    no_capacity: str = ""  # why budget, max batch and fit are refused
    # the tokens per KV block the family runs with unless --block-size is given (TensorRT-LLM's
    # Kimi-K3: 64, its get_model_defaults tokens_per_block); None: the engine's block_size
    block_size: int | None = None
    # the width of the family's conv state where it differs from the engine's conv_width
    # (TensorRT-LLM's Kimi-K3: the full short-conv window, conv_kernel columns)
    conv_width: ConvWidth | None = None
    # the dtype of the family's recurrent state where the engine forces one whatever the
    # config says (TensorRT-LLM's Kimi-K3: float32); None: the engine's state_dtype rules
    state_dtype: Literal["fp32"] | None = None
    # True: the engine allocates the family's state pool ((max_batch_size + state_spare_slots)
    # slots) beside the KV pool before it measures free memory, so the state comes out of the
    # memory before free_gpu_memory_fraction (TensorRT-LLM's MixedMambaHybridCacheManager);
    # False: out of the KV budget (CppMambaHybridCacheManager's affine cost)
    state_before_fraction: bool = False
    # True: the engine keeps a slot for each KV-shared layer anyway, sized as the kind the
    # layer is `like` (TensorRT-LLM's Gemma 4: the KV manager is built for every layer);
    # a shared layer without `like` is refused with no_kv_shared
    kv_shared_slots: bool = False
    fp32_lm_head: bool = False  # the engine holds the LM head in float32 (its weights)
    # the note says how the family's state layers are held: the engine's general [state]
    # assumptions (written for conv + recurrent mixers) are left out
    replaces_state_notes: bool = False


@record
class EngineProfile:
    """One engine's KV-cache layout rules, with the sources they were read from."""

    name: str
    summary: str
    block_size: int = 1
    mla_block_size: int | None = None
    context_pad: int = 1
    head_rule: HeadRule = "replicate"
    mla_layout: MlaLayout = "latent"
    sliding: SlidingRule = "window"
    # None: every model's sliding layers follow `sliding`; otherwise only models whose HF
    # model_type or architecture is listed do, and the rest are cached in full.
    sliding_families: frozenset[str] | None = None
    # which size a sliding layer's window takes: "attention", the span the model attends
    # (LayerPattern.sliding_window); "config", the checkpoint config's own sliding_window
    # where it records another (LayerPattern.config_sliding_window: llama.cpp's converter
    # copies it into n_swa)
    window_source: Literal["attention", "config"] = "attention"
    # (model_type, what the engine does with it) for families whose cache layout this
    # profile has not read: refused in one line rather than sized by the rules above
    unread_families: tuple[tuple[str, str], ...] = ()
    max_num_batched_tokens: int | None = None
    ubatch: int | None = None
    # HF model_types whose implementation caches GQA K/V expanded to every query head
    # (transformers' Falcon with new_decoder_architecture repeats KV heads before caching).
    expanded_kv_families: frozenset[str] = frozenset()
    default_kv_dtype: str | None = None  # what "auto" means; None: the model's dtype
    # what "auto" makes of the KV quantisation a checkpoint publishes (ModelSpec.checkpoint_kv):
    # "vllm" / "sglang" / "trtllm" follow it as that engine reads it (kvcalc/checkpoint_kv.py),
    # "ignored" keeps default_kv_dtype / the model's dtype, "unread" refuses
    checkpoint_kv: Literal["vllm", "sglang", "trtllm", "ignored", "unread"] = "ignored"
    accepts_attention_windows: bool = False  # TRT-LLM's max_attention_window
    # vLLM: layers form equal-size groups (short hybrid groups padded) sharing one pool of
    # blocks; capacity is counted in blocks of page · group_size bytes
    pads_hybrid_groups: bool = False
    budget_rule: BudgetRule = "whole"
    default_util: float | None = None
    # transformers: what one decode step allocates per sequence beside the cache counts
    # against the budget (planner.hf_decode_working_set, measured: tests/data/hf_peak)
    decode_working_set: bool = False
    # the engine release (or branch / commit) whose rules this profile follows
    version: str = ""
    # recurrent / linear-attention state (StateKind layers)
    conv_width: ConvWidth = "kernel_minus_one"
    conv_dtype_rule: StateDtypeRule = "config"
    state_dtype_rule: StateDtypeRule = "config"
    conv_split: ConvSplit = "parts"
    # (mixer, rule) for state mixers whose recurrent state takes another dtype than
    # state_dtype_rule says (transformers keeps MiniMax's lightning state in the model dtype)
    mixer_state_dtype_rules: tuple[tuple[str, StateDtypeRule], ...] = ()
    # None: state layers of every family are sized by the rules above; otherwise only those
    # of the listed HF model_types are, and the rest are refused (the engine cannot cache them)
    state_families: frozenset[str] | None = None
    # the engine reserves state for this many slots beyond the batch out of the KV budget
    # (TensorRT-LLM: one CUDA-graph padding slot)
    state_spare_slots: int = 0
    # the config keys whose state dtype the engine honours (StateKind.state_dtype_key);
    # a state dtype from another key, or from no key (a default), gives state_dtype_default.
    # None: every key
    state_dtype_keys: frozenset[str] | None = None
    state_dtype_default: Literal["model", "fp32", "bf16", "fp16"] = "model"  # specs.StateDtype
    # prefix caching (vLLM --enable-prefix-caching) with state layers: (model_type, the
    # mamba_cache_mode the engine picks for it) for the model classes read; None: the
    # engine's prefix caching is not modelled (refused)
    mamba_cache_modes: tuple[tuple[str, Literal["align", "all"]], ...] | None = None
    # SGLang's pool splits (planner._sglang_pools): the full / sliding token ratio of hybrid
    # sliding-window models, the state / KV memory ratio and state slots per running request
    # of Mamba hybrids, DeepSeek-V4's own ratio and max_running_requests; None / 0: no split
    swa_full_tokens_ratio: Fraction | None = None
    mamba_full_memory_ratio: Fraction | None = None
    mamba_slots_per_request: int = 0
    dsv4_swa_full_tokens_ratio: Fraction | None = None
    dsv4_max_running_requests: int = 0
    # bytes the engine stores per DSA indexer key: "model" (index_head_dim values in the K
    # cache dtype: transformers, llama.cpp) or "fp8_scaled" (fp8 e4m3 + one fp32 scale per
    # 128 values: vLLM, SGLang, TensorRT-LLM)
    indexer_layout: Literal["model", "fp8_scaled"] = "model"
    indexer_block_size: int | None = None  # page size for DSA (indexer) models, if different
    # DSA models (MLA with a lightning indexer: DeepSeek-V3.2, GLM-5): per HF architecture
    # ("" for any other DSA architecture), each KV dtype the engine takes and the layout it
    # stores it in ("fp8_ds_mla": the 656 B FlashMLA row of 512 fp8 + 4 fp32 scales + 64
    # bf16 rope); a dtype not listed is refused. None: the engine's general rules apply
    dsa_kv_dtypes: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] | None = None
    dsa_kv_dtypes_source: str = ""  # where dsa_kv_dtypes was read, quoted when refusing
    # DSA models whose config shares some layers' indexer (GLM-5.2+: indexer_types "shared",
    # AttentionKind.indexer False): "own", only the layers that run their own indexer cache
    # its key; "every", the engine's pool gives every layer an indexer key all the same
    # (SGLang: SGLANG_DSA_SOURCES, DSATokenToKVPool and _compute_cell_size on CUDA)
    dsa_indexer_layers: Literal["own", "every"] = "own"
    # what "auto" gives a DSA model, per HF architecture, where the engine decides it without
    # the checkpoint (SGLang: _dsa_kv_cache_dtype_default rewrites auto before the model is
    # loaded); an architecture not listed is refused under auto. None: the general rules
    # (the checkpoint's published KV cache, the engine's default, the model dtype)
    dsa_auto_kv_dtypes: tuple[tuple[str, str], ...] | None = None
    dsa_auto_kv_dtypes_source: str = ""  # where dsa_auto_kv_dtypes was read, in words
    # the engine's DSA defaults depend on the GPU (engine_for_gpu): "sglang", its auto dtype
    # and backends follow the CUDA capability major (SGLANG_DSA_SOURCES); None: they do not
    dsa_gpu_rule: Literal["sglang"] | None = None
    # layers with K = V (Gemma 4 attention_k_eq_v): "both" caches K and V (transformers:
    # values hold a copy of the keys, measured), "k_only" caches K once, None: not read yet
    k_eq_v: Literal["both", "k_only"] | None = None
    # GQA layers' own indexer keys (MiniMax-M3 sparse layers), one head of index_head_dim per
    # token beside K and V: "kv" in the K cache dtype (transformers
    # MiniMaxM3VLSparseCacheLayer.idx_keys), "model" in the model's dtype whatever the KV
    # dtype (SGLang MiniMaxSparseKVPool index_dtype), "bf16" in bf16 whatever the KV dtype
    # (vLLM MiniMaxM3IndexerCache, indexer_kv_dtype default), "llama_cpp" in a one-head cache
    # that also keeps an unused V row (llama_kv_cache_msa); None: not read for this engine
    gqa_indexer_dtype: Literal["kv", "model", "bf16", "llama_cpp"] | None = None
    # page size for GQA-indexer models, if different; under vLLM (pads_hybrid_groups) also the
    # only page its sparse backends take, so --block-size must be a multiple of it
    gqa_indexer_block_size: int | None = None
    # DeepSeek-V4 compressed layers (CompressedKind): "hf", transformers 5.24's
    # DeepseekV4CSACache / DeepseekV4HCACache tensors; "vllm", vLLM's per-layer specs in
    # KV-cache groups sharing one block pool (kvcalc/vllm_compressed.py); "sglang", SGLang's
    # DeepSeekV4TokenToKVPool (fp8 FlashMLA rows in paged SWA / C4 / C128 pools, fp32
    # compress-state rings); "llama_cpp", llama_kv_cache_dsv4 (a K-only raw sliding cache,
    # padded compressed K / indexer caches and f32 compressor state, every one per sequence:
    # kvcalc/llamacpp_compressed.py); None: not read for this engine yet
    compressed_layout: Literal["hf", "vllm", "sglang", "llama_cpp"] | None = None
    # the page size the engine forces for compressed-attention models (SGLang: 256)
    compressed_block_size: int | None = None
    family_rules: tuple[FamilyRules, ...] = ()
    assumptions: tuple[str, ...] = field(default_factory=tuple)
    sources: tuple[str, ...] = field(default_factory=tuple)

    def honours_window(self, family: str | None, architecture: str | None) -> bool:
        """Return True when this engine sizes a model's sliding layers by their window."""
        if self.sliding_families is None:
            return True
        return family in self.sliding_families or architecture in self.sliding_families

    def rules_for(self, family: str | None) -> FamilyRules | None:
        """Return this engine's rules for a model family, if it has any."""
        return next((r for r in self.family_rules if r.family == family), None)

    def dsa_layouts(self, architecture: str | None) -> dict[str, str]:
        """Return the KV dtypes this engine takes for a DSA model of `architecture` and the
        layout each is stored in (dsa_kv_dtypes: its own row, else the "" row); {} for an
        engine without DSA rules."""
        rules = dict(self.dsa_kv_dtypes or ())
        return dict(rules.get(architecture or "", rules.get("", ())))

    def sliding_rule(
        self, family: str | None, architecture: str | None, windows_given: bool
    ) -> SlidingRule:
        """Return how this engine sizes a model's sliding layers.

        windows_given: the user gave TRT-LLM's max_attention_window, which sizes every
        model's layers by those windows (the C++ manager's min(seq, W)).
        """
        rules = self.rules_for(family)
        if rules is not None and rules.sliding is not None:
            return rules.sliding
        if windows_given:
            return "window"
        if not self.honours_window(family, architecture):
            return "full"
        return self.sliding

    def assumptions_for(self, topics: set[str]) -> tuple[str, ...]:
        """Return the assumptions that apply: untagged ones, and '[topic] ...' ones in topics."""
        kept = []
        for text in self.assumptions:
            if text.startswith("["):
                topic, _, rest = text[1:].partition("] ")
                if topic not in topics:
                    continue
                text = rest
            kept.append(text)
        return tuple(kept)

    def block_for(self, is_mla: bool) -> int:
        """Return the tokens per KV block this engine uses for the model's attention kind."""
        if is_mla and self.mla_block_size is not None:
            return self.mla_block_size
        return self.block_size


_TRTLLM = "NVIDIA/TensorRT-LLM@7d49440385133045fb433480e79d37cd691586d2:tensorrt_llm/"
_TRTLLM_V2 = "tensorrt_llm/runtime/kv_cache_manager_v2/"

# TensorRT-LLM serves Gemma 4 (global_head_dim != head_dim: config_utils.is_gemma4_hybrid)
# on KVCacheManagerV2 (_util.py _non_hybrid_kv_cache_manager_cls), built with per-layer KV
# heads and head_dim and, unless max_attention_window is given, the window sliding_window
# for sliding layers and max_seq_len (no window) for full ones (_create_kv_cache_manager).
TRTLLM_GEMMA4 = FamilyRules(
    family="gemma4_text",
    sliding="freed_blocks",
    note=(
        "Gemma 4 runs on KVCacheManagerV2 (per-layer KV heads and head_dim): each layer "
        "holds cdiv(seq, 32) blocks, less, in a sliding layer, the blocks wholly behind its "
        "window (sliding_window, or --max-attention-window), which are freed; K = V full "
        "layers cache both K and V (k_proj copied into v_proj); KV-shared layers "
        "(num_kv_shared_layers) keep slots of their own, sized as the sliding or full "
        "layers of their type, which they never write (the manager is built for every "
        "layer; a shared layer reads its source layer's slot: cache_layer_idx)"
    ),
    no_pp=(
        "Gemma 4 under pipeline parallelism: TensorRT-LLM asserts pp_size == 1 "
        "(Gemma4ForCausalLM); use --tp"
    ),
    no_kv_shared=(
        "Gemma 4's KV-shared layers keep their own unused slots in TensorRT-LLM's pools, "
        "sized as the layers of their type; this spec does not say which type a shared "
        "layer is (kinds.<name>.like)"
    ),
    kv_shared_slots=True,
    no_capacity=(
        "Gemma 4's KVCacheManagerV2 splits the KV budget between its window pools (a "
        "ratio from a 2,049-token typical request, pools rounded to 2-32 MiB, rebalanced at "
        "run time in newer releases), which is not modelled: no max batch or fit (calc "
        "sizes a batch exactly)"
    ),
)
TRTLLM_GEMMA4_SOURCES = (
    f"{_TRTLLM}_torch/models/modeling_gemma4.py:Gemma4Attention (per-layer heads, "
    "head_dim; K = V layers: k_proj copied into v_proj)",
    f"{_TRTLLM}_torch/pyexecutor/_util.py:_non_hybrid_kv_cache_manager_cls, "
    "_create_kv_cache_manager (Gemma 4: KVCacheManagerV2, per-layer windows)",
    "NVIDIA/TensorRT-LLM@0004396720054fd8e205cbf616f21f0b57c6b412:tensorrt_llm/_torch/"
    "pyexecutor/_util.py:_create_kv_cache_manager (Gemma 4 KV sharing: no layer_mask, "
    "num_hidden_layers = config.num_hidden_layers, per-layer heads and head_dim from "
    "layer_types for every layer)",
    "NVIDIA/TensorRT-LLM@00e7d1037d247c72af2da216998cd7cf9e846461:tensorrt_llm/_torch/"
    "models/modeling_gemma4.py:Gemma4DecoderLayer (is_kv_shared_layer, cache_layer_idx: the "
    "last non-shared layer of its type), Gemma4Attention (Q-only projection, reads "
    "cache_layer_idx's slot)",
    f"{_TRTLLM}_torch/pyexecutor/resource_manager.py:KVCacheManagerV2.__init__, "
    "_build_cache_config, get_layer_bytes_per_token (ceil(n_kv / tp) heads per layer)",
    "NVIDIA/TensorRT-LLM@00e7d1037d247c72af2da216998cd7cf9e846461:tensorrt_llm/_torch/"
    "models/modeling_gemma4.py:Gemma4ForCausalLM.__init__ (asserts pp_size == 1)",
    f"NVIDIA/TensorRT-LLM@1548780d8b82c1d5fb3c8052d2127179a88e18b7:{_TRTLLM_V2}"
    "_life_cycle_registry.py:AttnLifeCycle.get_stale_range (blocks freed behind the window)",
    f"NVIDIA/TensorRT-LLM@0004396720054fd8e205cbf616f21f0b57c6b412:{_TRTLLM_V2}"
    "_config.py:KVCacheManagerConfig (typical_step, rebalance_*), "
    "_core/_kv_cache_manager.py:KVCacheManager._try_update_target_ratios",
    f"NVIDIA/TensorRT-LLM@00f6bd61f297eaefd98fcabd562d3a8e3df12a96:{_TRTLLM_V2}"
    "_storage_manager.py:StorageManager.__init__ (initial pool ratio from a "
    "capacity-2,049 request), CacheLevelManager.cache_tier_granularity, adjust_cache_level",
)


# TensorRT-LLM's Kimi-K3 (KimiLinearForCausalLM; a kimi_k3 config is flattened to its
# text_config): the KDA layers' state on the mamba side of a MixedMambaHybridCacheManager
# (without block reuse), the MLA layers' latent on the paged-KV side (SELFKONLY, one
# 576-wide head, as DeepSeek's MLA). extract_mamba_kv_cache_params maps KDA onto the Mamba
# parametrisation: conv_dim = 3 · heads · head_dim, conv_kernel = short_conv_kernel_size + 1
# (so the pool's conv_kernel − 1 columns hold the full short-conv window), SSM state
# [heads, head_dim, head_dim] forced to float32; PythonMambaCacheManager splits conv_dim and
# heads by tp (attention DP off). The state pool (max_batch_size + 1 slots,
# _get_mamba_hybrid_pool_size) is torch memory allocated with the estimation manager, so the
# profiled peak holds it and only the C++ KV pool's bytes are added back
# (kv_stats.allocated_bytes): the KV budget is (free − state pool) × fraction.
_TRTLLM_K3_CONFIG = (
    "NVIDIA/TensorRT-LLM@00679c66c3e38f6d2651ad0a5bef0f94d862e36c:tensorrt_llm/_torch/"
    "pyexecutor/config_utils.py"
)
_TRTLLM_K3_UTIL = (
    "NVIDIA/TensorRT-LLM@0004396720054fd8e205cbf616f21f0b57c6b412:tensorrt_llm/_torch/"
    "pyexecutor/_util.py"
)
TRTLLM_KIMI_K3 = FamilyRules(
    family="kimi_k3",
    note=(
        "Kimi-K3 as TensorRT-LLM's get_model_defaults sets it (tokens_per_block 64, "
        "enable_block_reuse false) with use_kv_cache_manager_v2 false, the compatibility "
        "manager kvcalc models for state layers: MixedMambaHybridCacheManager (its own "
        "default, use_kv_cache_manager_v2 true, is MambaHybridCacheManagerV2, whose pool "
        "split is not modelled; block reuse on picks CppMambaHybridCacheManager with state "
        "snapshots, not modelled either). KDA conv 3 · heads · head_dim / tp channels × "
        "short_conv_kernel_size (the full window) in the model dtype, recurrent heads / tp "
        "× head_dim × head_dim in float32 (forced); MLA latent 576 wide on every rank, in "
        "64-token blocks; the state pool of max_batch_size + 1 slots is allocated before the "
        "free memory is measured, so the KV budget is (free memory − state pool) × "
        "free_gpu_memory_fraction and max batch is the max_batch_size to set (attention DP "
        "off, no speculative decoding)"
    ),
    no_pp=(
        "Kimi-K3 under pipeline parallelism: TensorRT-LLM's KimiLinearForCausalLM asserts "
        "pp_size == 1 (modeling_kimi_linear.py); use --tp"
    ),
    block_size=64,
    conv_width="kernel",
    state_dtype="fp32",
    state_before_fraction=True,
)
TRTLLM_KIMI_K3_SOURCES = (
    "NVIDIA/TensorRT-LLM@000a860db1d1b990742ff55e8230d1ddc5672e39:tensorrt_llm/_torch/models/"
    "modeling_kimi_linear.py (caching: KDA on the mamba side, MLA SELFKONLY 576; "
    "KimiKDARuntime: heads / tp unless attention DP; KimiLinearForCausalLM: pp_size == 1, "
    "get_model_defaults: enable_block_reuse false, tokens_per_block 64, "
    "use_kv_cache_manager_v2 true)",
    f"{_TRTLLM_K3_CONFIG}:is_kimi_linear, extract_mamba_kv_cache_params (Kimi K3 branch: "
    "conv_kernel = short_conv_kernel_size + 1, n_groups = num_heads, fp32 SSM state), "
    "MambaKVCacheParams.get_states_bytes_per_layer",
    f"{_TRTLLM_K3_UTIL}:get_kv_cache_manager_cls (Kimi K3: Mixed without block reuse, Cpp "
    "with), KvCacheCreator._get_kv_size_per_token, configure_kv_cache_capacity "
    "(allocated_bytes = kv_stats.allocated_bytes), _cal_max_memory",
    "NVIDIA/TensorRT-LLM:tensorrt_llm/_torch/pyexecutor/kv_cache/mamba_cache_manager.py:"
    "_get_mamba_hybrid_pool_size (max_batch_size + 1, + 1 more with attention DP), "
    "MixedMambaHybridCacheManager (KVCacheManager.get_cache_size_per_token: no state "
    "term), PythonMambaCacheManager.__init__ (conv [pool, conv_dim / tp, d_conv − 1] in the "
    "model dtype, ssm [pool, heads / tp, head_dim, d_state])",
)

# where vLLM's DeepSeek-V4 cache layout was read (kvcalc/vllm_compressed.py); the index
# stores each file at its own commit, so each is cited at the commit it was read at
VLLM_DEEPSEEK_V4_SOURCES = (
    "vllm-project/vllm@b92a330e057db9b8c2895ba862de2a03589adce8:vllm/model_executor/layers/"
    "deepseek_v4_attention.py:DeepseekV4MLAAttention.get_kv_cache_spec, "
    "DeepseekV4IndexerCache.get_kv_cache_spec, DeepseekV4Indexer (fp8 assert, C4A / C128A / "
    "C4I pages)",
    "vllm-project/vllm@023da1fc828eb07787cf0734a1ba32f0a0f11887:vllm/model_executor/models/"
    "deepseek_v4.py:DeepseekV4Attention (compress_ratio = max(1, compress_ratios[i]), "
    "indexer for ratio 4 only)",
    "vllm-project/vllm@0de10a276eced6036e9752a223cba53c996d31cd:vllm/model_executor/layers/"
    "deepseek_compressor.py:CompressorStateCache (fp32 kv + score state, 4 / 8-token blocks)",
    "vllm-project/vllm@03dc564956172b5b2835be7a84ddde5de1d5dba6:vllm/v1/attention/backends/"
    "mla/sparse_swa.py:DeepseekV4SWACache (SWA 64-token blocks, 584 B a token)",
    "vllm-project/vllm:vllm/v1/kv_cache_interface.py:MLAAttentionSpec, SlidingWindowMLASpec, "
    "_apply_alignment_padding (the DeepSeek-V4 version; the index names no commit for it)",
    "vllm-project/vllm@fc23e695549c20902e1500441a56745396b9bdd0:vllm/v1/core/"
    "kv_cache_planning.py:group_and_unify_kv_cache_specs, _approximate_gcd, "
    "_get_kv_cache_groups_uniform_groups, _get_kv_cache_config_deepseek_v4, "
    "_max_memory_usage_bytes_from_groups, _report_kv_cache_config",
)


# where vLLM's MiniMax-M3 cache layout was read: pinned at
# vllm-project/vllm@0484480bc73081c4a5133b3cb53018323fce632d, the files the index stores only
# at another commit cited at that one
_VLLM_M3_PIN = "vllm-project/vllm@0484480bc73081c4a5133b3cb53018323fce632d:"
VLLM_MINIMAX_M3_SOURCES = (
    f"{_VLLM_M3_PIN}vllm/models/minimax_m3/common/indexer.py:MiniMaxM3IndexerCache."
    "get_kv_cache_spec (MLAAttentionSpec, one head of index_head_dim, indexer_kv_dtype bf16 "
    "or fp8), MiniMaxM3IndexerBackend.get_supported_kernel_block_sizes ([128])",
    f"{_VLLM_M3_PIN}vllm/v1/kv_cache_interface.py:AttentionSpec.page_size_bytes, "
    "MLAAttentionSpec (head_size_v 0), UniformTypeKVCacheSpecs, get_kv_cache_spec_kind "
    "(MLA and full-attention specs in one FULL_ATTENTION group)",
    "vllm-project/vllm@0443308aa3e9e621c911ac891cac4f3170a83af5:vllm/models/minimax_m3/"
    "nvidia/model.py:MiniMaxM3SparseAttention.get_kv_cache_spec (FullAttentionSpec, "
    "max(1, n_kv // tp) heads), MiniMaxM3Attention (dense layers: Attention)",
    "vllm-project/vllm@040e4601a1068271a771772f22bb2910a2633a72:vllm/models/minimax_m3/"
    "common/sparse_attention.py:MiniMaxM3SparseBackend (supported_kv_cache_dtypes bf16 / "
    "fp8, get_supported_kernel_block_sizes [128])",
    "vllm-project/vllm@006d6045cf1602a3e05bad8f8e7d0d62cbd51e8c:vllm/v1/"
    "kv_cache_spec_registry.py:KVCacheSpecRegistry.get_uniform_type_base_spec",
)


# where vLLM's Kimi-K3 cache layout was read; the index stores these files at
# vllm-project/vllm@055e47c28003156421365af985d676fc921cb075, not at the MiniMax-M3 pin
_VLLM_K3 = "vllm-project/vllm@055e47c28003156421365af985d676fc921cb075:"
VLLM_KIMI_K3_SOURCES = (
    f"{_VLLM_K3}vllm/models/kimi_k3/nvidia/kda.py:KimiK3DeltaAttention.get_state_shape, "
    "get_state_dtype (KDA state; use_kda_recoverssm adds records)",
    f"{_VLLM_K3}vllm/model_executor/layers/mamba/mamba_utils.py:MambaStateShapeCalculator."
    "kda_state_shape (conv (3 · heads · head_dim / tp) × (kernel - 1 + num_spec), recurrent "
    "heads / tp × head_dim × head_dim), MambaStateDtypeCalculator.kda_state_dtype "
    "(conv in mamba_cache_dtype, recurrent float32)",
    f"{_VLLM_K3}vllm/models/kimi_k3/nvidia/mla.py:MultiHeadLatentAttention.get_kv_cache_spec "
    "(MLAAttentionSpec, one head of kv_lora_rank + qk_rope_head_dim; fp8_ds_mla 656 B)",
    f"{_VLLM_K3}vllm/models/kimi_k3/nvidia/model.py:KimiLinearForCausalLM (IsHybrid, not "
    "SupportsMambaPrefixCaching), get_mamba_state_shape_from_config",
)

# where vLLM's DSA (DeepSeek-V3.2, GLM-5) cache dtypes were read: each file at the commit the
# index stores it at
VLLM_DSA_SOURCES = (
    "vllm-project/vllm@1936cf3841edb9781b06c50fc4daf4bac9d3b23e:vllm/model_executor/models/"
    "config.py:DeepseekV32ForCausalLM.verify_and_update_config (--kv-cache-dtype fp8* -> "
    "fp8_ds_mla, bfloat16 -> auto), MODELS_CONFIG_MAP (DeepseekV32ForCausalLM only: "
    "GlmMoeDsaForCausalLM keeps its fp8)",
    "vllm-project/vllm@bc8282e61df21719b12b391c3a976b1c900dfbb4:vllm/v1/kv_cache_interface.py:"
    "MLAAttentionSpec.real_page_size_bytes (fp8_ds_mla: block_size · 656)",
    "vllm-project/vllm@60191e18faee97b8d70c19b14f934bdf73a6ac6b:vllm/v1/attention/backends/mla/"
    "flashmla_sparse.py:FlashMLASparseBackend (656 B: 512 fp8 + 4 fp32 scales + 64 bf16 rope; "
    "supported_kv_cache_dtypes auto, bfloat16, fp8_ds_mla; kernel block 64)",
    "vllm-project/vllm@b863fe5bf4e19680572603b4e166faefc5725551:vllm/model_executor/models/"
    "deepseek_v2.py:Indexer (DeepseekV32IndexerCache: index_head_dim + index_head_dim // 128 · 4 "
    "uint8, whatever the KV dtype), GlmMoeDsaForCausalLM(DeepseekV2ForCausalLM)",
    "vllm-project/vllm@cba8383d23277a5bb3e522903c594dd037ea5a22:vllm/models/deepseek_v32/nvidia/"
    "attention.py:DeepseekV32Attention (the DSA model of DeepSeek-V3.2 and GLM-5: plain fp8 "
    "rows on FlashInfer sparse MLA unless fp8_ds_mla; indexer caches on indexer layers only)",
)
_VLLM_DSA_TAKES = (
    "vllm/model_executor/models/config.py DeepseekV32ForCausalLM.verify_and_update_config, "
    "FlashMLASparseBackend.supported_kv_cache_dtypes"
)

# where SGLang's DSA pool was read
SGLANG_DSA_SOURCES = (
    "sgl-project/sglang@5435ebae187bc31d849ccb073292bf38ff69e8ea:python/sglang/srt/mem_cache/"
    "kv_cache_configurator.py:calculate_mla_kv_cache_dim (fp8_e4m3 DSA rows kv_lora_rank + "
    "kv_lora_rank // 128 · 4 + qk_rope_head_dim · 2 = 656, raw 576 for the trtllm DSA "
    "backends and HIP tilelang / aiter)",
    "sgl-project/sglang@003fca8027387a3d6565b2c08e497e3020ac6211:python/sglang/srt/"
    "model_executor/pool_configurator.py:DefaultPoolConfigurator._compute_cell_size (DSA: "
    "calculate_mla_kv_cache_dim + 132 B indexer times effective_num_layers, every layer on "
    "CUDA; only the Ascend branch counts resolve_dsa_indexer_layer_ids)",
    "sgl-project/sglang@5435ebae187bc31d849ccb073292bf38ff69e8ea:python/sglang/srt/mem_cache/"
    "kv_cache_configurator.py:KVCacheConfigurator._build_dsa_kv_pool (DSATokenToKVPool, "
    "layer_num = num_effective_layers)",
    "sgl-project/sglang:python/sglang/srt/mem_cache/memory_pool.py:DSATokenToKVPool.__init__ "
    "(formerly NSATokenToKVPool: kv_cache_dim override, one index_k_with_scale_buffer per "
    "layer in range(layer_num), page_size 64)",
    "sgl-project/sglang@bc0c93b5e4955c5b27133ca587401e91cf628d27:python/sglang/srt/arg_groups/"
    "overrides.py:_dsa_kv_cache_dtype_default (a server-args post-process, before the model "
    "loads: DSA architectures of _DEEPSEEK_FAMILY_ARCHS take bfloat16 or fp8_e4m3 only; auto "
    "becomes fp8_e4m3 if the CUDA capability major >= 10 else bfloat16, whatever the "
    "checkpoint), _dsa_split_backend_resolution (fp8_e4m3: flashmla_kv below SM100, trtllm "
    "from SM100; bfloat16: flashmla_sparse prefill, fa3 / trtllm decode; HIP: tilelang)",
    "sgl-project/sglang:python/sglang/srt/model_executor/model_runner.py:ModelRunner."
    "configure_kv_cache_dtype (reads the quant config's kv_cache_quant_algo only when "
    "--kv-cache-dtype is still auto)",
)

# SGLang's DSA architectures in _DEEPSEEK_FAMILY_ARCHS (sgl-project/sglang@bc0c93b5e4955c5b27
# 133ca587401e91cf628d27:python/sglang/srt/arg_groups/overrides.py) and what its
# _dsa_kv_cache_dtype_default makes of "auto" for them on Hopper (major < 10: bfloat16)
SGLANG_DSA_ARCHS = ("DeepseekV32ForCausalLM", "GlmMoeDsaForCausalLM")
SGLANG_DSA_AUTO_SM90 = tuple((arch, "bf16") for arch in SGLANG_DSA_ARCHS)
SGLANG_DSA_AUTO_SOURCE = (
    "SGLang's DSA default, {rule} (arg_groups/overrides.py _dsa_kv_cache_dtype_default, a "
    "server-args pass that rewrites auto before the model loads)"
)

SGLANG_DSA_SM90_NOTE = (
    "[indexer] DSA (DeepSeek-V3.2, GLM-5) as SGLang serves it on Hopper (SM90, and any "
    "GPU below SM100; calc assumes it, fit --gpu follows the GPU's CUDA capability): "
    "bfloat16 or fp8_e4m3 KV only, auto bfloat16 (a checkpoint's published fp8 KV cache is "
    "passed over); fp8_e4m3 rows in the FlashMLA scaled layout of the flashmla_kv backends, "
    "656 B (kvcalc's fp8_ds_mla: 512 fp8 + 4 fp32 scales + 64 bf16 rope); every layer adds "
    "a 132 B indexer key (128 fp8 + fp32 scale), GLM-5.2's shared-indexer layers too "
    "(DSATokenToKVPool allocates one for each layer); pages of 64 tokens. On SM100+ auto is "
    "fp8_e4m3 and the trtllm DSA backends keep raw 576 B fp8 rows"
)
SGLANG_DSA_SM100_NOTE = (
    "[indexer] DSA (DeepSeek-V3.2, GLM-5) as SGLang serves it on a GPU of CUDA capability "
    "10 or more (B200; the RTX 5090's 12 too, as the source tests major >= 10): bfloat16 or "
    "fp8_e4m3 KV only, auto fp8_e4m3 (a checkpoint's published KV cache is passed over); "
    "fp8_e4m3 rows raw, 576 B (the trtllm DSA backends SGLang picks for fp8_e4m3 there: "
    "calculate_mla_kv_cache_dim keeps kv_lora_rank + qk_rope_head_dim), bfloat16 1,152 B; "
    "every layer adds a 132 B indexer key (128 fp8 + fp32 scale), GLM-5.2's shared-indexer "
    "layers too; pages of 64 tokens"
)


def engine_for_gpu(
    engine: EngineProfile, *, dsa: bool, vendor: str, cuda_major: int | None, gpu: str
) -> EngineProfile:
    """Return the profile the engine serves a model with on a GPU of that vendor and CUDA
    capability major: SGLang's DSA defaults follow the GPU (EngineProfile.dsa_gpu_rule),
    every other engine and model keeps its profile.

    SGLang (SGLANG_DSA_SOURCES): _dsa_kv_cache_dtype_default makes auto fp8_e4m3 when the
    capability major is 10 or more (bfloat16 below), _dsa_split_backend_resolution then
    picks the trtllm DSA backends for fp8_e4m3 (flashmla_kv below SM100), and
    calculate_mla_kv_cache_dim keeps trtllm's rows raw (576 fp8). A GPU without a known
    capability keeps the Hopper profile (its [indexer] note says so). On ROCm the HIP DSA
    path (tilelang / aiter kernels, raw fp8 rows, DSATokenToKVPool's page size 1 or a
    multiple of 16) is not pinned down: refused.
    """
    if not dsa or engine.dsa_gpu_rule != "sglang":
        return engine
    if vendor == "amd":
        raise KvcalcError(
            f"engine {engine.name}: DSA models on AMD GPUs ({gpu}) are not modelled: SGLang's "
            "HIP DSA path (tilelang / aiter backends, raw fp8 rows, a page size of 1 or a "
            "multiple of 16) is not read"
        )
    if cuda_major is None or cuda_major < 10:
        return engine
    notes = tuple(
        SGLANG_DSA_SM100_NOTE if text == SGLANG_DSA_SM90_NOTE else text
        for text in engine.assumptions
    )
    return replace(
        engine,
        dsa_kv_dtypes=(("", (("bf16", "bf16"), ("fp8_e4m3", "fp8_e4m3"))),),
        dsa_auto_kv_dtypes=tuple((arch, "fp8_e4m3") for arch in SGLANG_DSA_ARCHS),
        dsa_auto_kv_dtypes_source=SGLANG_DSA_AUTO_SOURCE.format(
            rule=f"fp8_e4m3 from SM100 ({gpu}: capability {cuda_major}.x)"
        ),
        assumptions=notes,
    )


VLLM_KIMI_K3 = FamilyRules(
    family="kimi_k3",
    note=(
        "Kimi-K3: MLA layers in 64-token-aligned blocks grown until one page covers a KDA "
        "state page (conv bf16 + recurrent fp32, padded to it); no speculative decoding and "
        "--use-kda-recoverssm off (their extra conv columns and records are not counted)"
    ),
)


VLLM_MINIMAX = FamilyRules(
    family="minimax",
    note=(
        "MiniMax lightning layers (MiniMaxText01LinearAttention): one (heads / tp) × head_dim "
        "× head_dim state a sequence in --mamba-cache-dtype (auto: the model dtype), no conv "
        "state; the softmax layers' blocks grown until one page covers it; the LM head is "
        "held in float32 (MiniMaxText01ForCausalLM: self.lm_head.float())"
    ),
    fp32_lm_head=True,
    replaces_state_notes=True,
)
VLLM_MINIMAX_SOURCES = (
    "vllm-project/vllm@98370df70c1813f5f9c9c127e8baed660cd09280:vllm/model_executor/models/"
    "minimax_text_01.py:MiniMaxText01ForCausalLM.get_mamba_state_shape_from_config, "
    "get_mamba_state_dtype_from_config (IsHybrid; layer_types linear_attention = 0), "
    "MiniMaxText01Attention (max(1, n_kv // tp) KV heads), MiniMaxText01ForCausalLM.__init__ "
    "(lm_head.float())",
    "vllm-project/vllm:vllm/model_executor/layers/mamba/mamba_utils.py:"
    "MambaStateShapeCalculator.linear_attention_state_shape ((num_heads // tp, head_dim, "
    "head_dim)), MambaStateDtypeCalculator.linear_attention_state_dtype (mamba_cache_dtype)",
)
# vLLM builds the remote-code release with the same MiniMaxText01ForCausalLM (registry
# MiniMaxText01ForCausalLM / MiniMaxM1ForCausalLM), its layers from attn_type_list
VLLM_MINIMAX_M1 = replace(VLLM_MINIMAX, family="minimax_m1")
HF_MINIMAX = FamilyRules(
    family="minimax",
    note=(
        "MiniMax lightning layers (MiniMaxCache.linear_cache): one [heads, head_dim, "
        "head_dim] state a sequence in the model dtype (not fp32), no conv state"
    ),
    replaces_state_notes=True,
)


# where vLLM's prefix caching of state layers (mamba_cache_mode align) was read; pinned at
# vllm-project/vllm@129ab7c60cbb (the one stored version of single_type_kv_cache_manager.py),
# each other file at the commit the index stores it at; two files it stores without a commit
_VLLM_PIN = "vllm-project/vllm@129ab7c60cbb8eb11e875373e67f7e521b74aa30:"
VLLM_MAMBA_PREFIX_SOURCES = (
    f"{_VLLM_PIN}vllm/v1/core/single_type_kv_cache_manager.py:MambaManager "
    "(align: get_num_blocks_to_allocate, allocate_new_blocks, remove_skipped_blocks)",
    "vllm-project/vllm@001cabc1be16a59a70d720ed61a13b678c060a18:vllm/v1/kv_cache_interface.py:"
    "MambaSpec.max_memory_usage_bytes (align: 2 + num_speculative_blocks pages; all: "
    "cdiv(max_model_len, block_size))",
    "vllm-project/vllm@002f10e0cfa1373a19a0d2756598a34b700d20e5:vllm/config/cache.py:"
    "CacheConfig.mamba_cache_mode, mamba_block_size",
    "vllm-project/vllm@6365b387890f7aa74b0fe65b81705d4730fcc763:vllm/model_executor/models/"
    "qwen3_next.py:Qwen3NextForCausalLM (not SupportsMambaPrefixCaching; all raises, but "
    "MambaModelConfig has turned an asked-for all into align before the model is built)",
    "vllm-project/vllm@8744bb0924a53c0d16867426b8b17428d41e4002:vllm/model_executor/models/"
    "nemotron_h.py:NemotronHForCausalLM (SupportsMambaPrefixCaching)",
    "vllm-project/vllm@0195c9ec6ea9cda412d1c69034fc5926a2c29528:vllm/model_executor/models/"
    "granitemoehybrid.py:GraniteMoeHybridForCausalLM (SupportsMambaPrefixCaching)",
    f"{_VLLM_PIN}vllm/v1/core/single_type_kv_cache_manager.py:MambaManager (all: the base "
    "class's get_num_blocks_to_allocate / allocate_new_blocks, cdiv(tokens, block_size) "
    "blocks; remove_skipped_blocks with get_num_skipped_tokens = computed - 1)",
    "vllm-project/vllm@c77619938d1cca436ad7e674241811f9e6ea539f:vllm/platforms/interface.py:"
    "Platform._align_hybrid_block_size (all: chunk = lcm(mamba_block_size or "
    "get_mamba_chunk_size(), kernel_block_alignment_size), block = chunk · "
    "cdiv(cdiv(mamba_page, attn_page_1_token), chunk) = mamba_block_size)",
    "vllm-project/vllm:vllm/config/model.py:ModelConfig.get_mamba_chunk_size "
    "(hf_text_config.mamba_chunk_size, else chunk_size; newer releases default 2048)",
    "vllm-project/vllm:vllm/model_executor/layers/mamba/abstract.py:MambaBase."
    "get_kv_cache_spec (MambaSpec block_size = cache_config.mamba_block_size)",
    "vllm-project/vllm@36c110bd9a02c369eb906607a0503a583429ea22:vllm/model_executor/models/"
    "qwen3_5.py (imports no SupportsMambaPrefixCaching: Qwen3.5 / Qwen3.5-MoE run align)",
    "vllm-project/vllm:vllm/model_executor/models/config.py:MambaModelConfig."
    "verify_and_update_config (all if supports_mamba_prefix_caching else align), "
    "HybridAttentionMambaModelConfig (align: mamba_block_size = block_size; all: a "
    "chunk-aligned block; an asked-for all falls back to align on a class that is not "
    "SupportsMambaPrefixCaching) (the index's versions of this file with these rules name no "
    "commit)",
)


# "auto" KV dtype of a checkpoint that publishes an fp8 KV cache (kvcalc/checkpoint_kv.py)
VLLM_CHECKPOINT_KV_SOURCES = (
    "vllm-project/vllm@0024350b5da3ad174435e62a15273c0d3caba57b:vllm/utils/torch_utils.py:"
    "resolve_kv_cache_dtype_string, get_kv_cache_quant_algo_string (auto, quant_method "
    "modelopt*: quantization.kv_cache_scheme, kv_cache_scheme, quantization.kv_cache_quant_algo, "
    "kv_cache_quant_algo; {dynamic false, num_bits 8, type float} or 'fp8' -> fp8_e4m3, "
    "MODELOPT_TO_VLLM_KV_CACHE_DTYPE_MAP)",
    "vllm-project/vllm:vllm/engine/arg_utils.py:EngineArgs.create_engine_config "
    "(CacheConfig.cache_dtype = resolve_kv_cache_dtype_string(kv_cache_dtype, model_config))",
    "vllm-project/vllm:vllm/transformers_utils/config.py:get_config (hf_quant_config.json only "
    "when config.json has no quantization_config), _normalize_quantization_config (its "
    "quant_method modelopt / modelopt_fp4 from producer.name)",
    "vllm-project/vllm:vllm/model_executor/models/config.py:DeepseekV32ForCausalLM."
    "verify_and_update_config (a cache_dtype starting with fp8 becomes fp8_ds_mla)",
)
SGLANG_CHECKPOINT_KV_SOURCES = (
    "sgl-project/sglang:python/sglang/srt/model_executor/model_runner.py:ModelRunner."
    "configure_kv_cache_dtype (auto: quant_config.kv_cache_quant_algo 'FP8' -> "
    "torch.float8_e4m3fn, else the model dtype)",
    "sgl-project/sglang:python/sglang/srt/layers/quantization/modelopt_quant.py:"
    "ModelOptQuantConfig (kv_cache_quant_algo), ModelOptFp8Config / ModelOptFp4Config / "
    "ModelOptMixedPrecisionConfig.from_config (config.json: kv_cache_scheme type float, "
    "num_bits 8 -> 'FP8'; hf_quant_config.json: quantization.kv_cache_quant_algo)",
    "sgl-project/sglang:python/sglang/srt/model_loader/weight_utils.py:get_quant_config "
    "(config.json's quantization_config, else hf_quant_config.json)",
)
TRTLLM_CHECKPOINT_KV_SOURCES = (
    "NVIDIA/TensorRT-LLM@008e0af8980fc560003631ba4ac37828836a91c8:tensorrt_llm/_torch/"
    "model_config.py:ModelConfig.from_pretrained (hf_quant_config.json authoritative), "
    "_build_modelopt_quant_config (QuantConfig.kv_cache_quant_algo, global under "
    "MIXED_PRECISION)",
    "NVIDIA/TensorRT-LLM:tensorrt_llm/_torch/pyexecutor/model_loader.py:"
    "validate_and_set_kv_cache_quant (kv_cache_dtype auto: the checkpoint's KV quantization)",
    "NVIDIA/TensorRT-LLM@2edf354d4b92161efd50b10b71e8e20fb6c5925a:tensorrt_llm/quantization/"
    "modelopt_config.py:_read_flat (config.json's flat kv_cache_scheme type float, num_bits 8 "
    "-> FP8), _read_legacy (quantization.kv_cache_quant_algo)",
)


ENGINES: dict[str, EngineProfile] = {
    p.name: p
    for p in (
        EngineProfile(
            name="formula",
            version="none (textbook formula)",
            summary="textbook: exactly seq tokens, sliding layers hold the window, MLA as latent",
            k_eq_v="both",
            gqa_indexer_dtype="kv",
            # no other layout of DeepSeek-V4's compressed layers is read: transformers'
            compressed_layout="hf",
            head_rule="replicate",
            sliding="window",
            assumptions=(
                "no paging or padding: every layer holds exactly seq tokens (window for sliding)",
                "KV heads per GPU = max(1, n_kv // tp)",
                "[compressed] DeepSeek-V4 compressed layers as transformers 5.24 keeps them "
                "(compressed entries, buffers, overlap; K = V held once), the window min(seq, W)",
            ),
            sources=(
                "arXiv 2405.04434 Table 1 (per-token KV elements by attention kind)",
                "huggingface/transformers:src/transformers/models/deepseek_v4/"
                "modeling_deepseek_v4.py (compressed layers)",
            ),
        ),
        EngineProfile(
            name="vllm",
            version="V1 engine release line (gpu_memory_utilization default 0.9)",
            budget_rule="vllm",
            checkpoint_kv="vllm",
            pads_hybrid_groups=True,
            default_util=0.9,
            summary="vLLM V1: 16-token pages (64 for MLA/FlashMLA), heads replicated when tp > n_kv",
            block_size=16,
            mla_block_size=64,
            head_rule="replicate",
            sliding="vllm_planning",
            max_num_batched_tokens=8192,
            indexer_layout="fp8_scaled",
            # DSA (VLLM_DSA_SOURCES): DeepseekV32ForCausalLM's verify_and_update_config turns
            # every fp8* --kv-cache-dtype into fp8_ds_mla (656 B rows); MODELS_CONFIG_MAP maps
            # no other architecture, so GLM-5 (GlmMoeDsaForCausalLM) keeps plain fp8 rows
            # (576 B) unless fp8_ds_mla is asked for; FlashMLASparseBackend takes auto,
            # bfloat16 and fp8_ds_mla
            dsa_kv_dtypes=(
                (
                    "DeepseekV32ForCausalLM",
                    (
                        ("bf16", "bf16"),
                        ("fp8_e4m3", "fp8_ds_mla"),
                        ("fp8_e5m2", "fp8_ds_mla"),
                        ("fp8_ds_mla", "fp8_ds_mla"),
                    ),
                ),
                ("", (("bf16", "bf16"), ("fp8_e4m3", "fp8_e4m3"), ("fp8_ds_mla", "fp8_ds_mla"))),
            ),
            dsa_kv_dtypes_source=_VLLM_DSA_TAKES,
            # MiniMax-M3 (VLLM_MINIMAX_M3_SOURCES): each sparse layer's MiniMaxM3IndexerCache is
            # an MLAAttentionSpec of one head of index_head_dim in indexer_kv_dtype (bf16 by
            # default, whatever --kv-cache-dtype); it and the layers' FullAttentionSpec K/V
            # share one KV-cache group (UniformTypeKVCacheSpecs: MLAAttentionSpec groups as
            # FullAttentionSpec), whose block is 128: the only kernel block the sparse and
            # indexer backends take (get_supported_kernel_block_sizes)
            gqa_indexer_dtype="bf16",
            gqa_indexer_block_size=128,
            compressed_layout="vllm",
            # MambaModelConfig.verify_and_update_config: with prefix caching, "all" where the
            # model class is SupportsMambaPrefixCaching, else "align" (VLLM_MAMBA_PREFIX_SOURCES)
            mamba_cache_modes=(
                ("nemotron_h", "all"),
                ("granitemoehybrid", "all"),
                ("qwen3_next", "align"),
                ("qwen3_5_text", "align"),
                ("qwen3_5_moe_text", "align"),
                ("kimi_k3", "align"),
            ),
            family_rules=(VLLM_KIMI_K3, VLLM_MINIMAX, VLLM_MINIMAX_M1),
            # Gemma 4 attention_k_eq_v: vllm/model_executor/models/gemma4.py Gemma4Attention
            # loads the K weights into both the K and V slots of qkv_proj and calls
            # Attention(q, k, v) like any layer, so the cache keeps both planes
            # (FullAttentionSpec, page 2 · B · heads · head_dim · dtype)
            k_eq_v="both",
            assumptions=(
                "each sequence rounds up to whole 16-token blocks (64 for MLA: FlashMLA backend)",
                "KV heads per GPU = max(1, n_kv // tp); MLA latent replicated on every TP rank",
                "[sliding] sliding layers: planning bound cdiv(min(W-1+N, seq), B) + 1 blocks, "
                "N = max_num_batched_tokens (8192, vllm serve on large GPUs)",
                "[chunked] chunked layers (ChunkedLocalAttentionSpec): cdiv(min(C+N, seq), B) "
                "blocks",
                "[pp] pipeline stages hold their own layers (get_pp_indices split)",
                "[state] state layers: conv (kernel - 1) × channels/tp in the model dtype, "
                "recurrent heads/tp × elems in mamba_ssm_cache_dtype (MambaStateShapeCalculator)",
                "[prefix] prefix caching on: mamba_cache_mode align keeps two state pages per "
                "sequence and layer (the running state and the last step's, MambaManager; "
                "MambaSpec.max_memory_usage_bytes), mamba_block_size = the attention block; "
                "mode all (Nemotron-H, Granite-4.0-H: SupportsMambaPrefixCaching) one page per "
                "block of the sequence, cdiv(seq, B), B the smallest multiple of lcm(the "
                "config's mamba chunk size, kernel block) whose KV page covers a state page",
                "[gqa_indexer] MiniMax-M3: 128-token blocks, the only kernel block its "
                "sparse attention and indexer backends take (serve it with --block-size 128); "
                "each sparse layer adds one index_head_dim key per token in bf16 "
                "(MiniMaxM3IndexerCache, indexer_kv_dtype bf16) whatever the KV dtype, on "
                "every TP rank, in the layers' one KV-cache group",
                "[indexer] DSA (DeepSeek-V3.2, GLM-5): each layer adds its indexer key, 128 fp8 "
                "+ one fp32 scale per 128 = 132 B whatever the KV dtype (DeepseekV32IndexerCache), "
                "in the latent's 64-token blocks; DeepSeek-V3.2's fp8 KV is stored as fp8_ds_mla "
                "(656 B: DeepseekV32ForCausalLM rewrites --kv-cache-dtype fp8*), GLM-5's as "
                "plain fp8 rows (576 B, the FlashInfer sparse MLA path) unless --kv-dtype "
                "fp8_ds_mla (FlashMLA sparse, which takes no plain fp8); other KV dtypes refused",
                "[compressed] DeepSeek-V4: fp8_ds_mla cache (--kv-cache-dtype fp8*; auto fails "
                "vLLM's assert), every layer on every TP rank; a full-MLA KV-cache group "
                "(256-token blocks: C4A, C4I, C128A pages) and sliding groups (SWA 64-token, "
                "compressor states 4 / 8-token blocks) draw blocks from one pool whose block "
                "is layer_tuples × the full-MLA pages; sliding groups at the planning bound "
                "cdiv(min(W-1+N, seq), B) + 1 blocks; hybrid KV cache manager on",
            ),
            sources=(
                *VLLM_CHECKPOINT_KV_SOURCES,
                "vllm-project/vllm:vllm/v1/kv_cache_interface.py:AttentionSpec.real_page_size_bytes",
                "vllm-project/vllm:vllm/v1/kv_cache_interface.py:MambaSpec.page_size_bytes",
                "vllm-project/vllm:vllm/model_executor/layers/mamba/mamba_utils.py"
                ":MambaStateShapeCalculator",
                "vllm-project/vllm:vllm/platforms/interface.py:Platform._align_hybrid_block_size "
                "(older: vllm/model_executor/models/config.py:HybridAttentionMambaModelConfig)",
                "vllm-project/vllm:vllm/v1/kv_cache_interface.py:SlidingWindowSpec.max_memory_usage_bytes",
                "vllm-project/vllm:vllm/v1/kv_cache_interface.py:ChunkedLocalAttentionSpec",
                "vllm-project/vllm:vllm/config/model.py:ModelConfig.get_num_kv_heads",
                "vllm-project/vllm:vllm/platforms/cuda.py:CudaPlatform.check_and_update_config "
                "(newer: vllm/platforms/interface.py:Platform.update_block_size_for_backend)",
                "vllm-project/vllm:vllm/distributed/utils.py:get_pp_indices",
                "vllm-project/vllm:vllm/model_executor/models/gemma4.py:Gemma4Attention "
                "(attention_k_eq_v: K and V both cached)",
                *VLLM_DEEPSEEK_V4_SOURCES,
                *VLLM_DSA_SOURCES,
                *VLLM_MAMBA_PREFIX_SOURCES,
                *VLLM_MINIMAX_M3_SOURCES,
                *VLLM_KIMI_K3_SOURCES,
                *VLLM_MINIMAX_SOURCES,
            ),
        ),
        EngineProfile(
            name="sglang",
            unread_families=(_MINIMAX_SGLANG, _MINIMAX_M1_SGLANG),
            version="main, read Nov 2026",
            checkpoint_kv="sglang",
            # SSM / recurrent state dtype: SGLANG_MAMBA_SSM_DTYPE, else the config's
            # mamba_ssm_dtype, else float32 (configs/mamba_utils.py mamba2_state_dtype; the
            # conv state is bf16 unless SGLANG_MAMBA_CONV_DTYPE says otherwise, the model
            # dtype of every state preset); mamba_ssm_cache_dtype (Nemotron-H) is not read
            state_dtype_keys=frozenset({"mamba_ssm_dtype"}),
            state_dtype_default="fp32",
            # --swa-full-tokens-ratio default (server_args.py ServerArgs.swa_full_tokens_ratio)
            swa_full_tokens_ratio=Fraction(4, 5),
            # --mamba-full-memory-ratio default (ServerArgs.mamba_full_memory_ratio)
            mamba_full_memory_ratio=Fraction(9, 10),
            # model_runner_kv_cache_mixin.py calculate_mamba_ratio with the radix cache on, no
            # mamba extra buffer (--mamba-scheduler-strategy auto resolves to no_buffer) and
            # no speculative decoding: MAMBA_CACHE_SIZE_MAX_RUNNING_REQUESTS_RATIO
            mamba_slots_per_request=3,
            # DeepSeek-V4 (sgl-project/sglang@v0.5.23): the model override's
            # --swa-full-tokens-ratio (arg_groups/model_overrides/deepseek_v4.py, declared
            # before handle_cache_compatibility, so DSV4PoolConfigurator sizes the sliding pool
            # by ratio) and the hook's max_running_requests (arg_groups/deepseek_v4_hook.py
            # apply_deepseek_v4_defaults)
            dsv4_swa_full_tokens_ratio=Fraction(1, 10),
            dsv4_max_running_requests=256,
            budget_rule="sglang",
            default_util=None,
            summary="SGLang: token pages (page 1), window only for hybrid-SWA architectures",
            block_size=1,
            indexer_layout="fp8_scaled",
            # NSATokenToKVPool asserts page_size 64 (python/sglang/srt/mem_cache/memory_pool.py)
            indexer_block_size=64,
            # DSA (SGLANG_DSA_SOURCES): bfloat16 or fp8_e4m3 only (server_args asserts it);
            # fp8_e4m3 rows in the FlashMLA scaled layout (calculate_mla_kv_cache_dim: 656 B,
            # kvcalc's fp8_ds_mla) under the Hopper default flashmla_kv backends
            dsa_kv_dtypes=(("", (("bf16", "bf16"), ("fp8_e4m3", "fp8_ds_mla"))),),
            dsa_kv_dtypes_source="arg_groups/overrides.py _dsa_kv_cache_dtype_default asserts it",
            # CUDA: DSATokenToKVPool allocates index_k_with_scale_buffer for each of its
            # layer_num (num_effective_layers) layers and _compute_cell_size counts 132 B for
            # every one; only the Ascend (NPU) pool counts resolve_dsa_indexer_layer_ids
            dsa_indexer_layers="every",
            # auto: _dsa_kv_cache_dtype_default turns it into bfloat16 below SM100 (kvcalc's
            # Hopper default) for the DSA architectures of _DEEPSEEK_FAMILY_ARCHS, as a
            # server-args pass before the model loads, so configure_kv_cache_dtype never
            # sees auto and a checkpoint's kv_cache_quant_algo FP8 is not read
            dsa_auto_kv_dtypes=SGLANG_DSA_AUTO_SM90,
            dsa_auto_kv_dtypes_source=SGLANG_DSA_AUTO_SOURCE.format(rule="bfloat16 below SM100"),
            # a plan on a GPU of capability 10+ takes engine_for_gpu's SM100 profile
            dsa_gpu_rule="sglang",
            # MiniMax-M3 (MiniMaxSparseKVPool): K/V for every layer in the KV dtype, and each
            # sparse layer's one-head indexer key (K only: sparse_disable_index_value) in the
            # model dtype whatever --kv-cache-dtype (index_dtype=model_dtype; fp8 only in the
            # SM100 fp8_e4m3 + trtllm_mha mode, whose token count the pool configurator still
            # sizes with the model dtype), not split by tp (head_num=1)
            gqa_indexer_dtype="model",
            # the page_size its MiniMax-M3 overrides set when none is given: Hopper (fa3) and
            # Blackwell (fa4, trtllm_mha) (arg_groups/model_overrides/minimax_m3.py)
            gqa_indexer_block_size=128,
            head_rule="replicate",
            sliding="window",
            # Gemma 4 attention_k_eq_v: Gemma4ForCausalLM.load_weights loads each K = V
            # layer's k_proj into both the "k" and "v" shards of qkv_proj, and the layer
            # saves K and V like any other (sgl-project/sglang@03826cdd9594dba59282dd0411841506ff3a26ad
            # python/sglang/srt/models/gemma4_causal.py); get_cell_size_per_token counts
            # num_kv_heads · (head_dim + v_head_dim) for them, with head_dim / num_kv_heads
            # remapped to global_head_dim / num_global_key_value_heads
            # (python/sglang/srt/utils/hf_transformers/config.py, gemma4 branch)
            k_eq_v="both",
            # DeepSeek-V4 (sglang_compressed.sglang_compressed_parts, planner._dsv4_pools): sglang
            # v0.5.23's model_overrides/deepseek_v4.py forces page_size 256
            compressed_layout="sglang",
            compressed_block_size=256,
            # is_hybrid_swa_model's architectures (sglang configs/model_config.py, read Nov 2026)
            sliding_families=frozenset(
                {
                    "Llama4ForConditionalGeneration",
                    "DeepseekV4ForCausalLM",
                    "GptOssForCausalLM",
                    "MiMoV2FlashForCausalLM",
                    "Step3p5ForCausalLM",
                    "Step3p7ForConditionalGeneration",
                    "Gemma4ForCausalLM",
                    "Gemma4ForConditionalGeneration",
                    "Gemma4UnifiedForConditionalGeneration",
                    "LagunaForCausalLM",
                }
            ),
            assumptions=(
                "[uncompressed] page size 1 (DSA models 64, MiniMax-M3 128; the pool's one extra "
                "dummy page is not counted)",
                "KV heads per GPU = max(1, n_kv // attn_tp); MLA latent on every rank",
                "[sliding] sliding windows only for its hybrid-SWA architectures "
                "(not Mistral-7B-v0.1 or Gemma-2); their budget splits into a full-attention "
                "pool and a sliding-window pool of --swa-full-tokens-ratio (0.8, SGLang's "
                "default) times its tokens; a request holds its tokens in the first and "
                "between its window and 2·W + 2 pages in the second (the eviction "
                "schedule): where that range decides the batch (short sequences), and with "
                "pipeline parallelism, refused",
                "[state] state layers: one MambaPool slot (mamba_cache_per_req) per request, "
                "conv (kernel - 1) wide; the state pool takes rest · 0.9 / 1.9 "
                "(--mamba-full-memory-ratio 0.9, SGLang's default) in whole slots and "
                "running requests are capped at slots // 3 (radix cache on, "
                "--mamba-scheduler-strategy no_buffer, no speculative decoding); with "
                "pipeline parallelism refused",
                "[gqa_indexer] MiniMax-M3: pages of 128 tokens, the page_size SGLang sets for it "
                "on Hopper and Blackwell (ROCm's triton backend keeps 1: --block-size 1); each "
                "sparse layer adds one index_head_dim key per token in the model dtype (bf16) "
                "whatever the KV dtype, on every TP rank",
                SGLANG_DSA_SM90_NOTE,
                "[compressed] DeepSeek-V4 as sglang 0.5.23 pools it (CUDA, FlashMLA V4 rows, "
                "fp8_e4m3 KV, page 256, --swa-full-tokens-ratio 0.1, "
                "max_running_requests 256, fp32 compress state, no MTP): a request holds "
                "whole 256-token pages of the logical full pool, its window's page(s) of "
                "the sliding pool (585 B a layer, + 320 B of C4 compress state a CSA layer; "
                "counted here at the least, one page), a C4 row (585 B KV + 132 B indexer) "
                "per 4 paged tokens, a C128 row (864 B) per 128, and a 128-row fp32 C128 "
                "compress-state ring; attention TP replicates it on every rank; the pools' "
                "reserved page each and ring padding, which DSV4PoolConfigurator leaves out "
                "of its budget too, are not counted",
            ),
            sources=(
                *SGLANG_CHECKPOINT_KV_SOURCES,
                "sgl-project/sglang:python/sglang/srt/model_executor/model_runner_kv_cache_mixin.py"
                ":get_cell_size_per_token",
                "sgl-project/sglang@003fca8027387a3d6565b2c08e497e3020ac6211:python/sglang/srt/"
                "model_executor/pool_configurator.py:DefaultPoolConfigurator._compute_cell_size "
                "(is_minimax_sparse: main pool + one-head indexer pool)",
                "sgl-project/sglang@003fca8027387a3d6565b2c08e497e3020ac6211:python/sglang/srt/"
                "mem_cache/kv_cache_configurator.py:KVCacheConfigurator."
                "_build_minimax_sparse_kv_pool (index_dtype, head_num)",
                "sgl-project/sglang@1ee3fb2aa1cae4ae576917b6ac10c0a0e6512298:python/sglang/srt/"
                "arg_groups/model_overrides/minimax_m3.py:_minimax_m3_overrides (page_size 128)",
                "sgl-project/sglang@73353bf69e0f908e98a74e45b5c1c90fcd511f24:python/sglang/srt/"
                "models/minimax_m3.py:MiniMaxM3Attention (idx_k one head of sparse_index_dim)",
                *SGLANG_DSA_SOURCES,
                "sgl-project/sglang:python/sglang/srt/configs/model_config.py:is_hybrid_swa_model",
                "sgl-project/sglang:python/sglang/srt/models/gemma4_causal.py"
                ":Gemma4ForCausalLM.load_weights (attention_k_eq_v: K and V both cached)",
                "sgl-project/sglang:python/sglang/srt/utils/hf_transformers/config.py "
                "(gemma4: head_dim, num_key_value_heads from global_head_dim, "
                "num_global_key_value_heads)",
                "sgl-project/sglang@001ccef0072a4537d4ec6bdd50a73e6feb2c907d:python/sglang/srt/"
                "model_executor/model_runner_kv_cache_mixin.py:handle_max_mamba_cache, "
                "profile_max_num_token, init_memory, calculate_mamba_ratio (state pool)",
                "sgl-project/sglang@001ccef0072a4537d4ec6bdd50a73e6feb2c907d:python/sglang/srt/"
                "model_executor/model_runner_kv_cache_mixin.py:set_num_tokens_hybrid_swa "
                "(full / sliding-window pools)",
                "sgl-project/sglang@001ccef0072a4537d4ec6bdd50a73e6feb2c907d:python/sglang/srt/"
                "model_executor/model_runner_kv_cache_mixin.py:get_cell_size_per_token, "
                "init_memory (pp: model-wide hybrid-SWA layer ids, tokens MIN over ranks)",
                "sgl-project/sglang@00381c02b8ad9f78982f46986b63aeab5fc71fe9:python/sglang/srt/"
                "mem_cache/swa_memory_pool.py:SWAKVPool (one buffer per listed layer id; the "
                "stored copy, not at 001ccef)",
                "sgl-project/sglang:python/sglang/srt/mem_cache/swa_memory_pool.py"
                ":SWATokenToKVPoolAllocator (every token in both pools; free_swa)",
                "sgl-project/sglang@e44a41c1c413ce470c66445745f380a50203c286:python/sglang/srt/"
                "models/kimi_k3.py:KimiK3DecoderLayer, KimiK3MLAAttention, KimiK3DeltaAttention "
                "(Kimi-K3: MLA latent in the full layers, KDA state in the others; the "
                "Attention-Residual bank lives one forward pass)",
                "sgl-project/sglang:python/sglang/srt/configs/mamba_utils.py:KimiLinearStateShape, "
                "mamba2_state_dtype (stored at 02e208ded6769bd3332cbdc6cf0da939f541514f: KDA "
                "conv (kernel - 1) × 3 · heads · head_dim / tp in bf16, recurrent state fp32)",
                "sgl-project/sglang@v0.5.23 (PyPI wheel sglang 0.5.23):python/sglang/srt/"
                "model_executor/pool_configurator.py:DSV4PoolConfigurator (DeepSeek-V4 pools)",
                "sgl-project/sglang@v0.5.23:python/sglang/srt/mem_cache/deepseek_v4_memory_pool.py"
                ":DeepSeekV4TokenToKVPool, DeepSeekV4SingleKVPool, DeepSeekV4IndexerPool",
                "sgl-project/sglang@v0.5.23:python/sglang/kernels/ops/attention/dsv4/kv_layout.py"
                ":KVLayout.V4 (584 B rows, pages padded to 576 B)",
                "sgl-project/sglang@v0.5.23:python/sglang/srt/arg_groups/model_overrides/"
                "deepseek_v4.py, deepseek_v4_hook.py, overrides.py:_deepseek_v4_kv_cache_dtype "
                "(page 256, swa ratio 0.1, max_running_requests 256, fp8_e4m3)",
            ),
        ),
        EngineProfile(
            name="llama.cpp",
            unread_families=(_MINIMAX_LLAMA_CPP, _MINIMAX_M1_LLAMA_CPP),
            version="0c1e57098 (tests/data/llamacpp)",
            summary="llama.cpp: n_ctx padded to 256, iSWA layers n_swa + n_ubatch, MLA latent K only",
            context_pad=256,
            default_kv_dtype="fp16",  # --cache-type-k/-v default f16
            head_rule="none",
            sliding="llama_cpp",
            # DeepSeek-V3.2 / GLM-5 (deepseek32, glm-dsa): llama_kv_cache_dsa keeps the MLA
            # latent in one llama_kv_cache and the lightning indexer's keys in a second one
            # built from the model's hparams with n_head_kv 1 and head size
            # indexer_head_size, in the same type_k and cells (K only: is_mla)
            indexer_layout="model",
            # MiniMax-M3 (src/models/minimax-m3.cpp): llama_kv_cache_msa keeps the usual
            # cache for every layer and a second llama_kv_cache, one KV head, K of
            # indexer_head_size, for the layers past n_layer_dense_lead; that cache's V
            # tensor keeps n_embd_head_v per cell (src/llama-kv-cache-msa.cpp)
            gqa_indexer_dtype="llama_cpp",
            # Gemma 4 attention_k_eq_v: src/models/gemma4.cpp builds Vcur = Kcur where a layer
            # has no v_proj and build_attn stores K and V in their own cache tensors; the
            # converter (conversion/gemma.py Gemma4Model) writes the full layers' head count
            # (num_global_key_value_heads) and head length (global_head_dim) per layer, and
            # the num_kv_shared_layers last layers get no KV (n_layer_kv_from_start)
            k_eq_v="both",
            conv_dtype_rule="fp32",
            state_dtype_rule="fp32",
            # olmo3: convert_hf_to_gguf writes Olmo3ForCausalLM as the olmo2 architecture with
            # its sliding window and layer_types pattern (conversion/olmo.py Olmo2Model), and
            # src/models/olmo2.cpp loads it as LLAMA_SWA_TYPE_STANDARD (iSWA cache); gemma4:
            # src/models/gemma4.cpp loads LLAMA_SWA_TYPE_STANDARD and its pattern;
            # mimo_v2_flash: src/models/mimo2.cpp loads LLAMA_SWA_TYPE_STANDARD with the
            # converter's sliding_window and hybrid_layer_pattern (conversion/mimo.py)
            sliding_families=frozenset(
                {
                    "gemma2",
                    "gemma3",
                    "gemma3_text",
                    "gemma4_text",
                    "cohere2",
                    "gpt_oss",
                    "llama4",
                    "llama4_text",
                    "mimo_v2_flash",
                    "olmo3",
                }
            ),
            compressed_layout="llama_cpp",
            window_source="config",
            ubatch=512,
            assumptions=(
                "-c padded to 256 cells; without --kv-unified each of the -np slots holds "
                "GGML_PAD(n_ctx / np, 256) cells (-c defaults to --seq × slots here)",
                "[sliding] iSWA layers hold GGML_PAD(min(n_ctx_seq, n_swa·(np if --kv-unified "
                "else 1) + n_ubatch), 256) cells per stream, n_ubatch = min(-c, -b, -ub) (512)",
                "[mla] MLA GGUFs store the 576-wide latent as K and no V; K and V types must match",
                "[indexer] DSA (deepseek32, glm-dsa): the lightning indexer's keys in a second "
                "cache of the same cells, one head of index_head_dim in the K type, in every "
                "trunk layer (GLM-5.2's shared-indexer layers keep none)",
                "[config_window] n_swa is config.json's own sliding_window (MiMo-V2-Flash: 128, "
                "transformers' window 129 less the query), which convert_hf_to_gguf copies "
                "(its pinned transformers 4.57.6 has no config class for the model)",
                "a quantised V cache needs flash attention (-fa auto turns it on)",
                "compute buffer: an estimate fitted to llama.cpp's own (CPU) figures, see "
                "docs/engines.md",
                "no tensor parallelism: layers are split across GPUs (use --pp)",
                "[state] recurrent layers: one state cell per sequence (n_seq_max), r = "
                "(d_conv - 1) × channels and s = state elems, both f32",
                "[gqa_indexer] MiniMax-M3: the indexer cache (llama_kv_cache_msa) has the main "
                "cache's cells; per cell and sparse layer a K row of index_head_dim in the K "
                "type and a V row of head_dim in the V type (allocated, unused); its layers "
                "(past the leading dense ones of moe_layer_freq) taken to be the sparse ones",
                "[compressed] DeepSeek-V4 (llama_kv_cache_dsv4): n_seq_max streams even with "
                "--kv-unified; per stream a raw K-only cache of GGML_PAD(min(n_ctx_seq, W + "
                "n_ubatch), 256) cells (head_dim row of -ctk), CSA K + indexer K and HCA K caches "
                "of GGML_PAD(max(1, ceil(n_ctx_seq / m)), 256) cells, and f32 compressor state "
                "(kv + score: CSA 8 rows of 2·head_dim, indexer 8 of 2·index_head_dim, HCA 128 "
                "of head_dim); no rollback snapshots (n_rs_seq 0: no speculative decoding)",
                "[state] Kimi-K3 (kimi-k3): llama_memory_hybrid, the MLA layers' 576-wide latent "
                "as K (no V), the KDA layers' conv r = 3·(d_conv − 1)·heads·head_dim and state "
                "s = heads·head_dim² in f32, one cell per slot",
            ),
            sources=(
                "ggml-org/llama.cpp:src/llama-kv-cache.cpp:llama_kv_cache::llama_kv_cache",
                "ggml-org/llama.cpp:src/llama-memory-recurrent.cpp:llama_memory_recurrent",
                "ggml-org/llama.cpp:src/llama-hparams.cpp:n_embd_r, n_embd_s",
                "ggml-org/llama.cpp:src/llama-model.cpp:create_memory (type_r, type_s F32)",
                "ggml-org/llama.cpp:src/llama-kv-cache-iswa.cpp:llama_kv_cache_iswa",
                "ggml-org/llama.cpp:src/models/gemma4.cpp (Vcur = Kcur without v_proj; "
                "n_layer_kv_from_start) and conversion/gemma.py:Gemma4Model.set_gguf_parameters",
                "ggml-org/llama.cpp@0c1e57098:src/llama-kv-cache-dsa.cpp:llama_kv_cache_dsa "
                "(indexer keys: n_head_kv 1, indexer_head_size, type_k) and src/llama-model.cpp"
                ":create_memory (filter_mla / filter_lid: trunk layers, GLM is_indexer_full)",
                "ggml-org/llama.cpp@0c1e57098:src/models/glm-dsa.cpp:load_arch_hparams "
                "(indexer_types, else every layer below n_ctx_train 1,048,576, else "
                "GLM_5_2_DEFAULT_INDEXER_TYPES) and conversion/glm.py:GlmMoeDsaModel",
                "ggml-org/llama.cpp@0c1e57098:src/models/mimo2.cpp:load_arch_hparams "
                "(LLAMA_SWA_TYPE_STANDARD) and conversion/mimo.py:MimoV2Model."
                "set_gguf_parameters (head_count_kv per layer, sliding_window as n_swa)",
                "ggml-org/llama.cpp@0c1e57098:src/llama-kv-cache.cpp:llama_kv_cache::"
                "llama_kv_cache (TAG_V_CACHE_VARIABLE: n_embd_v_gqa_max without flash attention)",
                "ggml-org/llama.cpp:src/llama-context.cpp:llama_context (GGML_PAD(n_ctx, 256))",
                "ggml-org/llama.cpp:src/llama-context.cpp:llama_init_from_model (K/V type rules)",
                "checked against llama.cpp 0c1e57098: tests/data/llamacpp/cases.json",
                "ggml-org/llama.cpp@0c1e57098bba43ac29e6e3b677cdceebdd22334f (vendored by "
                "llama-cpp-python 0.3.36):src/llama-kv-cache-msa.cpp:llama_kv_cache_msa, "
                "src/llama-model.cpp:create_memory (LLM_ARCH_MINIMAX_M3 filter_idx)",
                "ggml-org/llama.cpp@0c1e57098bba43ac29e6e3b677cdceebdd22334f:src/"
                "llama-kv-cache-dsv4.cpp:llama_kv_cache_dsv4, llama_dsv4_comp_state, "
                "dsv4_comp_size, dsv4_make_k_only; src/llama-model.cpp:create_memory "
                "(LLM_ARCH_DEEPSEEK4); src/models/deepseek4.cpp:load_arch_hparams; "
                "conversion/deepseek.py:DeepseekV4Model (no MTP layers unless --mtp-only)",
                "ggml-org/llama.cpp@0c1e57098bba43ac29e6e3b677cdceebdd22334f:src/models/"
                "kimi-k3.cpp:load_arch_hparams (n_head_kv 0 marks KDA), src/llama-hparams.cpp:"
                "n_embd_r, n_embd_s (n_embd_head_kda), conversion/kimi_k3.py:KimiK3Model",
            ),
        ),
        EngineProfile(
            name="trtllm",
            version="PyTorch backend (_torch/pyexecutor), read Nov 2026",
            budget_rule="trtllm",
            checkpoint_kv="trtllm",
            accepts_attention_windows=True,
            default_util=0.9,
            summary="TensorRT-LLM: 32-token blocks, ceil(n_kv / tp) heads, no window unless given "
            "(Gemma 4: its own)",
            block_size=32,
            head_rule="ceil",
            # DSACacheManager: fp8 indexer K + fp32 scale per 128 (tensorrt_llm/_torch/attention_backend/sparse/dsa.py)
            indexer_layout="fp8_scaled",
            unread_families=(
                *_DSA_TRTLLM,
                (
                    "minimax_m3",
                    "TensorRT-LLM runs it (NVIDIA/TensorRT-LLM@c0261efa8a466afd645d71ffe1d1867e81e19303"
                    ":tensorrt_llm/_torch/models/modeling_minimaxm3.py) with each sparse layer's "
                    "indexer keys as an INDEX_KEY buffer of MiniMaxM3KVCacheManagerV2 (bf16 or fp8 "
                    "by indexer_kv_dtype), a KVCacheManagerV2 pool kvcalc has not modelled",
                ),
            ),
            sliding="full",
            # state layers: extract_mamba_kv_cache_params maps only Nemotron-H, Qwen3-Next
            # / Qwen3.5 and Kimi-K3 configs (others raise "not a supported hybrid Mamba
            # config"; Kimi-K3's own rules: TRTLLM_KIMI_K3); the conv
            # state is in the model dtype (resolve_hf_torch_dtype), the SSM state in
            # mamba_ssm_cache_dtype (KvCacheConfig, else the config's, else the model dtype)
            conv_dtype_rule="model",
            state_dtype_rule="config",
            conv_split="whole",
            state_families=frozenset(
                {"nemotron_h", "qwen3_next", "qwen3_5_text", "qwen3_5_moe_text", "kimi_k3"}
            ),
            state_spare_slots=1,
            # config_utils.resolve_ssm_cache_dtype honours only mamba_ssm_cache_dtype and
            # ignores Qwen3.5's mamba_ssm_dtype (cache in the model dtype), and without it
            # keeps the model dtype (not vLLM's float32 default for Nemotron-H)
            state_dtype_keys=frozenset({"mamba_ssm_cache_dtype"}),
            # Gemma 4 attention_k_eq_v: Gemma4Attention builds the full layers with
            # num_global_key_value_heads × global_head_dim and the weight mapper copies k_proj
            # into v_proj, so the cache (CacheType.SELF, kv_factor 2) keeps both planes
            k_eq_v="both",
            family_rules=(TRTLLM_GEMMA4, TRTLLM_KIMI_K3),
            assumptions=(
                "[block] each sequence rounds up to whole 32-token blocks (tokens_per_block)",
                "KV heads per GPU = ceil(n_kv / tp); MLA latent (kv_factor 1) on every rank",
                "[sliding] sliding layers sized for the full context unless max_attention_window is "
                "given (--max-attention-window, cycled over layers)",
                "[state] state layers (CppMambaHybridCacheManager, use_kv_cache_manager_v2 "
                "false): conv (conv_dim / tp) × (kernel - 1) in the model dtype, SSM "
                "heads/tp × head_dim × d_state in mamba_ssm_cache_dtype (else the model "
                "dtype: Qwen3.5's mamba_ssm_dtype is not read); the KV budget pays "
                "(max_batch_size + 1) state slots before tokens (one CUDA-graph padding slot; "
                "no speculative decoding, no attention DP, no periodic state snapshots), so "
                "max batch is the max_batch_size to set (TRT-LLM's default 2048 reserves 2049)",
            ),
            sources=(
                *TRTLLM_CHECKPOINT_KV_SOURCES,
                "NVIDIA/TensorRT-LLM:tensorrt_llm/_torch/pyexecutor/resource_manager.py"
                ":KVCacheManager.get_cache_size_per_token",
                "NVIDIA/TensorRT-LLM:tensorrt_llm/llmapi/llm_args.py:KvCacheConfig",
                "NVIDIA/TensorRT-LLM@00bce92cbb90929bc2357a7d5855858604e1ac7e:tensorrt_llm/"
                "_torch/pyexecutor/mamba_cache_manager.py:CppMambaHybridCacheManager.__init__, "
                "get_cache_size_per_token, _estimate_mamba_hybrid_cache_cost (state slots)",
                "NVIDIA/TensorRT-LLM@0004396720054fd8e205cbf616f21f0b57c6b412:tensorrt_llm/"
                "_torch/pyexecutor/_util.py:get_kv_cache_manager_cls, CacheCost.tokens_for_budget "
                "(tokens = (budget - intercept) // slope)",
                "NVIDIA/TensorRT-LLM@00679c66c3e38f6d2651ad0a5bef0f94d862e36c:tensorrt_llm/"
                "_torch/pyexecutor/config_utils.py:extract_mamba_kv_cache_params, "
                "MambaKVCacheParams.get_states_bytes_per_layer (shapes, dtypes, tp split)",
                *TRTLLM_GEMMA4_SOURCES,
                *TRTLLM_KIMI_K3_SOURCES,
            ),
        ),
        EngineProfile(
            name="hf",
            unread_families=(_KIMI_K3_HF, _MINIMAX_M1_HF),
            # MiniMaxLightningAttention builds its linear_cache in the dtype of its values,
            # the model dtype (its decay buffers are built in it): transformers 5.25.0
            # models/minimax/modeling_minimax.py, measured on the meta device
            mixer_state_dtype_rules=(("lightning", "model"),),
            family_rules=(HF_MINIMAX,),
            version="5.25.0 (cache layout cross-checked in CI on that pinned release; decode "
            "working set measured on 5.17.0)",
            decode_working_set=True,
            summary="Hugging Face transformers 5.x DynamicCache: exact tokens, sliding keep W-1",
            head_rule="none",
            sliding="window_minus_one",
            mla_layout="latent",
            conv_width="kernel",
            conv_dtype_rule="model",
            state_dtype_rule="fp32",
            k_eq_v="both",
            gqa_indexer_dtype="kv",
            compressed_layout="hf",
            assumptions=(
                "DynamicCache: exactly seq tokens per full layer, no paging",
                "[sliding] sliding layers keep the last W-1 tokens (DynamicSlidingWindowLayer), "
                "a view over the W-token tensor the step concatenated: the token more is "
                "counted in the decode working set; right after a long prefill the "
                "full-length tensors stay allocated until the next step",
                "[mla] MLA: transformers 5.x caches the latent (key: kv_lora_rank, value: rope key)",
                "no tensor parallelism (device_map splits layers: use --pp)",
                "[falcon] Falcon: K/V cached for its num_kv_heads (transformers 5.25.0 on; "
                "5.0 to 5.24 cached them broadcast to every query head: kvcalc does not model "
                "those releases)",
                "[state] state layers (LinearAttentionLayer): conv state conv_kernel wide in the "
                "model dtype, recurrent state in fp32 (measured: transformers 5.24, torch path)",
                "[compressed] DeepSeek-V4 compressed layers (transformers 5.24 DeepseekV4CSACache "
                "/ DeepseekV4HCACache): sliding keys min(seq, W-1) held once (values is the same "
                "tensor), floor(seq/m) compressed entries, seq mod m buffered kv + gate rows, "
                "CSA overlap kv + fp32 gate of m rows once seq >= m",
            ),
            sources=(
                "huggingface/transformers:src/transformers/cache_utils.py",
                "huggingface/transformers:src/transformers/models/deepseek_v4/"
                "modeling_deepseek_v4.py:DeepseekV4CSACache, DeepseekV4HCACache",
                "huggingface/transformers (5.25.0):src/transformers/models/minimax/"
                "modeling_minimax.py:MiniMaxCache (linear_cache), MiniMaxLightningAttention",
            ),
        ),
        EngineProfile(
            name="hf@4",
            unread_families=(_KIMI_K3_HF, _MINIMAX_HF4, _MINIMAX_M1_HF),
            version="4.x (MLA expanded); decode working set as measured on 5.17.0",
            decode_working_set=True,
            summary="transformers 4.x: as hf, but DeepSeek MLA cached expanded per head (71x)",
            head_rule="none",
            sliding="window_minus_one",
            mla_layout="expanded",
            conv_width="kernel",
            conv_dtype_rule="model",
            state_dtype_rule="fp32",
            k_eq_v="both",
            expanded_kv_families=frozenset({"falcon"}),
            assumptions=(
                "[mla] as hf, except MLA: K = n_heads·(qk_nope + qk_rope), V = n_heads·v_head_dim",
            ),
            sources=(
                "huggingface/transformers (4.x):src/transformers/models/deepseek_v3/"
                "modeling_deepseek_v3.py:DeepseekV3Attention.forward",
            ),
        ),
    )
}

# vLLM's newest main defaults gpu_memory_utilization to 0.92 (vllm/config/cache.py)
ENGINES["vllm@main"] = replace(
    ENGINES["vllm"],
    name="vllm@main",
    version="main branch, read Nov 2026 (gpu_memory_utilization default 0.92)",
    summary="vLLM main branch: as vllm, with gpu_memory_utilization 0.92 by default",
    default_util=0.92,
)


# vLLM's V0 engine (0.6.4-0.6.x, the "Memory profiling results" log line): without chunked
# prefill its profile run covers max(max_model_len, 2048) tokens (vllm/config.py
# SchedulerConfig), so the reserve grows with the context; same KV layout
ENGINES["vllm@v0"] = replace(
    ENGINES["vllm"],
    name="vllm@v0",
    version="0.6.4-0.6.x (V0 engine, no chunked prefill)",
    summary="vLLM V0 engine: as vllm, profile run over max(max_model_len, 2048) tokens",
    max_num_batched_tokens=None,
    # Gemma 4, DeepSeek-V4, MiniMax-M3 and Kimi-K3 postdate the V0 engine: not read for V0
    k_eq_v=None,
    compressed_layout=None,
    gqa_indexer_dtype=None,
    gqa_indexer_block_size=None,
    unread_families=(_KIMI_K3_VLLM_V0, _MINIMAX_VLLM_V0, _MINIMAX_M1_VLLM_V0, *_DSA_VLLM_V0),
    dsa_kv_dtypes=None,
    dsa_kv_dtypes_source="",
    # resolve_kv_cache_dtype_string postdates the V0 engine; what V0's auto made of a
    # checkpoint's published KV cache is not read
    checkpoint_kv="unread",
    family_rules=(),
    mamba_cache_modes=None,  # V0 has no mamba_cache_mode: its prefix caching is not read
    assumptions=tuple(
        a
        for a in ENGINES["vllm"].assumptions
        if not a.startswith(("[compressed]", "[prefix]", "[gqa_indexer]", "[indexer]"))
    ),
    sources=tuple(
        s
        for s in ENGINES["vllm"].sources
        if "gemma4.py" not in s
        and s not in VLLM_DEEPSEEK_V4_SOURCES
        and s not in VLLM_MAMBA_PREFIX_SOURCES
        and s not in VLLM_MINIMAX_M3_SOURCES
        and s not in VLLM_KIMI_K3_SOURCES
        and s not in VLLM_DSA_SOURCES
        and s not in VLLM_MINIMAX_SOURCES
        and s not in VLLM_CHECKPOINT_KV_SOURCES
    ),
)

# llama-server: without -np it runs 4 slots with a unified KV cache (tools/server/server.cpp)
ENGINES["llama-server"] = replace(
    ENGINES["llama.cpp"],
    name="llama-server",
    version=ENGINES["llama.cpp"].version,
    summary="llama-server: as llama.cpp; without -np 4 slots sharing one unified KV cache",
    assumptions=(
        *ENGINES["llama.cpp"].assumptions,
        "without -np (and --batch): 4 slots, --kv-unified (n_parallel auto)",
    ),
    sources=(*ENGINES["llama.cpp"].sources, "ggml-org/llama.cpp:tools/server/server.cpp"),
)


def engine_profile(name: str) -> EngineProfile:
    """Return the profile for an engine name (case-insensitive); KvcalcError if unknown."""
    key = name.strip().lower()
    key = {"llamacpp": "llama.cpp", "llama-cpp": "llama.cpp", "tensorrt-llm": "trtllm"}.get(
        key, key
    )
    if key in ENGINES:
        return ENGINES[key]
    raise KvcalcError(
        f"unknown engine {name!r}{did_you_mean(name, list(ENGINES))}; known: " + ", ".join(ENGINES)
    )
