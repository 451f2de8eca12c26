"""Engine profiles: how each inference engine lays out and rounds the KV cache, as data.

Each profile is a handful of settings read from the engine's source (each profile's
`sources` names the files; docs/engines.md lists them); formula.py applies them. A new engine is a new
entry here, not a branch in the formulas.
"""

from dataclasses import field, replace
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
SlidingRule = Literal["full", "window", "window_minus_one", "vllm_planning", "llama_cpp"]

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
    # (model_type, what the engine does with it) for families whose cache layout this
    # profile has not read: refused in one line rather than sized by the rules above
    unread_families: tuple[tuple[str, str], ...] = ()
    max_num_batched_tokens: int | None = None
    ubatch: int | None = None
    # HF model_types whose implementation caches GQA K/V expanded to every query head
    # (transformers' Falcon with new_decoder_architecture repeats KV heads before caching).
    expanded_kv_families: frozenset[str] = frozenset()
    default_kv_dtype: str | None = None  # what "auto" means; None: the model's dtype
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
    # None: state layers of every family are sized by the rules above; otherwise only those
    # of the listed HF model_types are, and the rest are refused (the engine cannot cache them)
    state_families: frozenset[str] | None = None
    # the engine reserves state for this many slots beyond the batch out of the KV budget
    # (TensorRT-LLM: one CUDA-graph padding slot)
    state_spare_slots: int = 0
    # the config keys whose state dtype the engine honours (StateKind.state_dtype_key);
    # a state dtype from another key, or from no key (a default), gives the model's dtype.
    # None: every key
    state_dtype_keys: frozenset[str] | None = None
    # bytes the engine stores per DSA indexer key: "bf16" (the model's keys as computed)
    # or "fp8_scaled" (fp8 e4m3 + one fp32 scale per 128 values: vLLM, SGLang)
    indexer_layout: Literal["model", "fp8_scaled", "unmodelled"] = "model"
    indexer_block_size: int | None = None  # page size for DSA (indexer) models, if different
    # layers with K = V (Gemma 4 attention_k_eq_v): "both" caches K and V (transformers:
    # values hold a copy of the keys, measured), "k_only" caches K once, None: not read yet
    k_eq_v: Literal["both", "k_only"] | None = None
    # GQA layers' own indexer keys (MiniMax-M3 sparse layers) cached one head wide in the KV
    # dtype (transformers MiniMaxM3VLSparseCacheLayer.idx_keys); False: not read for this engine
    gqa_indexer: bool = False
    # DeepSeek-V4 compressed layers (CompressedKind): "hf", transformers 5.24's
    # DeepseekV4CSACache / DeepseekV4HCACache tensors; "sglang", SGLang's
    # DeepSeekV4TokenToKVPool (fp8 FlashMLA rows in paged SWA / C4 / C128 pools, fp32
    # compress-state rings); None: not read for this engine yet
    compressed_layout: Literal["hf", "sglang"] | None = None
    # the page size the engine forces for compressed-attention models (SGLang: 256)
    compressed_block_size: int | None = None
    assumptions: tuple[str, ...] = field(default_factory=tuple)
    sources: tuple[str, ...] = field(default_factory=tuple)

    def honours_window(self, family: str | None, architecture: str | None) -> bool:
        """Return True when this engine sizes a model's sliding layers by their window."""
        if self.sliding_families is None:
            return True
        return family in self.sliding_families or architecture in self.sliding_families

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


ENGINES: dict[str, EngineProfile] = {
    p.name: p
    for p in (
        EngineProfile(
            name="formula",
            version="none (textbook formula)",
            summary="textbook: exactly seq tokens, sliding layers hold the window, MLA as latent",
            k_eq_v="both",
            gqa_indexer=True,
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
            pads_hybrid_groups=True,
            default_util=0.9,
            summary="vLLM V1: 16-token pages (64 for MLA/FlashMLA), heads replicated when tp > n_kv",
            block_size=16,
            mla_block_size=64,
            head_rule="replicate",
            sliding="vllm_planning",
            max_num_batched_tokens=8192,
            indexer_layout="fp8_scaled",
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
            ),
            sources=(
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
            ),
        ),
        EngineProfile(
            name="sglang",
            version="main, read Nov 2026",
            budget_rule="sglang",
            default_util=None,
            summary="SGLang: token pages (page 1), window only for hybrid-SWA architectures",
            block_size=1,
            indexer_layout="fp8_scaled",
            # NSATokenToKVPool asserts page_size 64 (python/sglang/srt/mem_cache/memory_pool.py)
            indexer_block_size=64,
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
            # DeepSeek-V4 (formula.sglang_compressed_parts, planner._dsv4_pools): sglang
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
                "[uncompressed] page size 1 (the pool's one extra dummy page is not counted)",
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
                "sgl-project/sglang:python/sglang/srt/model_executor/model_runner_kv_cache_mixin.py"
                ":get_cell_size_per_token",
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
                "sgl-project/sglang:python/sglang/srt/mem_cache/swa_memory_pool.py"
                ":SWATokenToKVPoolAllocator (every token in both pools; free_swa)",
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
            version="0c1e57098 (tests/data/llamacpp)",
            summary="llama.cpp: n_ctx padded to 256, iSWA layers n_swa + n_ubatch, MLA latent K only",
            context_pad=256,
            default_kv_dtype="fp16",  # --cache-type-k/-v default f16
            head_rule="none",
            sliding="llama_cpp",
            indexer_layout="unmodelled",  # src/llama-kv-cache-dsa.cpp: not read closely yet
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
            # src/models/gemma4.cpp loads LLAMA_SWA_TYPE_STANDARD and its pattern
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
                    "olmo3",
                }
            ),
            unread_families=(
                (
                    "mimo_v2_flash",
                    "its sliding layers are an iSWA cache (src/models/mimo2.cpp, "
                    "LLAMA_SWA_TYPE_STANDARD) whose window and per-layer heads kvcalc has not read",
                ),
            ),
            ubatch=512,
            assumptions=(
                "-c padded to 256 cells; without --kv-unified each of the -np slots holds "
                "GGML_PAD(n_ctx / np, 256) cells (-c defaults to --seq × slots here)",
                "[sliding] iSWA layers hold GGML_PAD(min(n_ctx_seq, n_swa·(np if --kv-unified "
                "else 1) + n_ubatch), 256) cells per stream, n_ubatch = min(-c, -b, -ub) (512)",
                "[mla] MLA GGUFs store the 576-wide latent as K and no V; K and V types must match",
                "a quantised V cache needs flash attention (-fa auto turns it on)",
                "compute buffer: an estimate fitted to llama.cpp's own (CPU) figures, see "
                "docs/engines.md",
                "no tensor parallelism: layers are split across GPUs (use --pp)",
                "[state] recurrent layers: one state cell per sequence (n_seq_max), r = "
                "(d_conv - 1) × channels and s = state elems, both f32",
            ),
            sources=(
                "ggml-org/llama.cpp:src/llama-kv-cache.cpp:llama_kv_cache::llama_kv_cache",
                "ggml-org/llama.cpp:src/llama-memory-recurrent.cpp:llama_memory_recurrent",
                "ggml-org/llama.cpp:src/llama-hparams.cpp:n_embd_r, n_embd_s",
                "ggml-org/llama.cpp:src/llama-model.cpp:create_memory (type_r, type_s F32)",
                "ggml-org/llama.cpp:src/llama-kv-cache-iswa.cpp:llama_kv_cache_iswa",
                "ggml-org/llama.cpp:src/models/gemma4.cpp (Vcur = Kcur without v_proj; "
                "n_layer_kv_from_start) and conversion/gemma.py:Gemma4Model.set_gguf_parameters",
                "ggml-org/llama.cpp:src/llama-context.cpp:llama_context (GGML_PAD(n_ctx, 256))",
                "ggml-org/llama.cpp:src/llama-context.cpp:llama_init_from_model (K/V type rules)",
                "checked against llama.cpp 0c1e57098: tests/data/llamacpp/cases.json",
            ),
        ),
        EngineProfile(
            name="trtllm",
            version="PyTorch backend (_torch/pyexecutor), read Nov 2026",
            budget_rule="trtllm",
            accepts_attention_windows=True,
            default_util=0.9,
            summary="TensorRT-LLM: 32-token blocks, ceil(n_kv / tp) heads, no window unless given",
            block_size=32,
            head_rule="ceil",
            # DSACacheManager: fp8 indexer K + fp32 scale per 128 (tensorrt_llm/_torch/attention_backend/sparse/dsa.py)
            indexer_layout="fp8_scaled",
            sliding="full",
            # state layers: extract_mamba_kv_cache_params maps only Nemotron-H and Qwen3-Next
            # / Qwen3.5 configs (others raise "not a supported hybrid Mamba config"); the conv
            # state is in the model dtype (resolve_hf_torch_dtype), the SSM state in
            # mamba_ssm_cache_dtype (KvCacheConfig, else the config's, else the model dtype)
            conv_dtype_rule="model",
            state_dtype_rule="config",
            conv_split="whole",
            state_families=frozenset(
                {"nemotron_h", "qwen3_next", "qwen3_5_text", "qwen3_5_moe_text"}
            ),
            state_spare_slots=1,
            # config_utils.resolve_ssm_cache_dtype honours only mamba_ssm_cache_dtype and
            # ignores Qwen3.5's mamba_ssm_dtype (cache in the model dtype), and without it
            # keeps the model dtype (not vLLM's float32 default for Nemotron-H)
            state_dtype_keys=frozenset({"mamba_ssm_cache_dtype"}),
            assumptions=(
                "each sequence rounds up to whole 32-token blocks (tokens_per_block)",
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
            ),
        ),
        EngineProfile(
            name="hf",
            version="5.17.0 (decode working set measured; cache layout 5.x)",
            decode_working_set=True,
            summary="Hugging Face transformers 5.x DynamicCache: exact tokens, sliding keep W-1",
            head_rule="none",
            sliding="window_minus_one",
            mla_layout="latent",
            conv_width="kernel",
            conv_dtype_rule="model",
            state_dtype_rule="fp32",
            k_eq_v="both",
            gqa_indexer=True,
            compressed_layout="hf",
            expanded_kv_families=frozenset({"falcon"}),
            assumptions=(
                "DynamicCache: exactly seq tokens per full layer, no paging",
                "[sliding] sliding layers keep the last W-1 tokens (DynamicSlidingWindowLayer); "
                "right after a long prefill the full-length tensors stay allocated until the "
                "next step",
                "[mla] MLA: transformers 5.x caches the latent (key: kv_lora_rank, value: rope key)",
                "no tensor parallelism (device_map splits layers: use --pp)",
                "[falcon] Falcon new_decoder_architecture: K/V cached for every query head",
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
            ),
        ),
        EngineProfile(
            name="hf@4",
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
    # Gemma 4 postdates the V0 engine (its KV-shared layers need V1): not read for V0
    k_eq_v=None,
    sources=tuple(s for s in ENGINES["vllm"].sources if "gemma4.py" not in s),
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
