"""Validated model and workload specs (pydantic v2, frozen, unknown keys rejected)."""

from typing import Annotated, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

PositiveInt = Annotated[int, Field(gt=0, strict=True)]
NonNegativeInt = Annotated[int, Field(ge=0, strict=True)]


class _Spec(BaseModel):
    # defer_build: the validators are built on the first validation (a user's file), not at
    # import; bundled presets come pre-validated from kvcalc/presets_index.py
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


# The parameter-breakdown parts that hold quantised linears (kvcalc/quant.py sizes them).
Part = Literal["attention", "mlp", "experts"]
PARTS: tuple[Part, ...] = ("attention", "mlp", "experts")


class PartBytes(_Spec):
    """Exact bytes of one parameter-breakdown part as published, and the weights they hold."""

    weights: int = Field(ge=0, description="parameters of this part (as counted in params)")
    quantized_weights: int = Field(ge=0, description="of which ship quantised")
    bytes: int = Field(ge=0, description="bytes of the part in the checkpoint, scales included")
    replicated_weights: PositiveInt | None = Field(
        default=None,
        description="of weights, those every tensor-parallel rank holds whole (params' "
        "replicated_<part>: MLA's q_a / kv_a projections and their norms, the MoE router)",
    )
    replicated_bytes: PositiveInt | None = Field(
        default=None,
        description="the bytes of replicated_weights as published (their linears in their "
        "own format, the rest in the model dtype); the rest of the part is split by tp",
    )

    @model_validator(mode="after")
    def _replicated_within(self) -> "PartBytes":
        if (self.replicated_weights is None) != (self.replicated_bytes is None):
            raise ValueError("replicated_weights and replicated_bytes go together")
        if self.replicated_weights is not None and self.replicated_weights > self.weights:
            raise ValueError(
                f"replicated_weights {self.replicated_weights:,} exceeds weights {self.weights:,}"
            )
        if self.replicated_bytes is not None and self.replicated_bytes > self.bytes:
            raise ValueError(
                f"replicated_bytes {self.replicated_bytes:,} exceeds bytes {self.bytes:,}"
            )
        return self


class WeightsQuant(_Spec):
    """How a checkpoint's weights are published: its recipe and the exact bytes it gives
    (kvcalc/quant.py reads the recipe from quantization_config).

    `parts` holds the attention, MLP and expert parts (the only parts with quantised
    linears); embeddings, the LM head, norms and the rest ship in the model's dtype, but
    for `other` when the model keeps those parameters in a dtype of its own (DeepSeek-V4's
    fp32 hyper-connections) and `lm_head` when a ModelOpt recipe quantises it.
    """

    method: str = Field(min_length=1, description="quant_method (modelopt: its quant_algo)")
    summary: str = Field(min_length=1, description="what ships in which format, in words")
    attention: PartBytes
    mlp: PartBytes
    experts: PartBytes
    other: PartBytes | None = Field(
        default=None, description="the `other` parameters, when not in the model dtype"
    )
    lm_head: PartBytes | None = Field(
        default=None, description="the LM head, when the recipe ships it quantised (ModelOpt)"
    )

    def part(self, name: Part) -> PartBytes:
        """Return the bytes of one part."""
        return {"attention": self.attention, "mlp": self.mlp, "experts": self.experts}[name]


class CheckpointKv(_Spec):
    """The KV-cache quantisation a ModelOpt checkpoint publishes, file by file: what each
    engine's "auto" KV dtype makes of it depends on which file it reads (kvcalc/checkpoint_kv.py).

    kvcalc/quant.py checkpoint_kv reads it and refuses any scheme it does not understand
    (only static per-tensor fp8 is), so a value here is always fp8_e4m3.
    """

    config_json: Literal["fp8_e4m3"] | None = Field(
        default=None,
        description="the KV dtype config.json's quantization_config publishes (its "
        "kv_cache_scheme or kv_cache_quant_algo); None: it publishes none",
    )
    config_json_key: str | None = Field(
        default=None, description="the quantization_config key that says so"
    )
    config_json_quantized: bool = Field(
        default=False,
        description="config.json has a quantization_config: vLLM and SGLang then read it and "
        "not hf_quant_config.json",
    )
    hf_quant_config: Literal["fp8_e4m3"] | None = Field(
        default=None,
        description="the KV dtype hf_quant_config.json's quantization.kv_cache_quant_algo "
        "publishes; None: no such file, or no KV algo in it",
    )
    hf_quant_config_file: bool = Field(
        default=False,
        description="an hf_quant_config.json ships beside config.json: TensorRT-LLM then "
        "reads it alone",
    )

    @model_validator(mode="after")
    def _consistent(self) -> "CheckpointKv":
        if self.config_json is None and self.hf_quant_config is None:
            raise ValueError("checkpoint_kv without a KV dtype in either file")
        if (self.config_json is None) != (self.config_json_key is None):
            raise ValueError("config_json and config_json_key go together")
        if self.config_json is not None and not self.config_json_quantized:
            raise ValueError("config_json given without config_json_quantized")
        if self.hf_quant_config is not None and not self.hf_quant_config_file:
            raise ValueError("hf_quant_config given without hf_quant_config_file")
        return self


class _HeadedAttention(_Spec):
    n_heads: PositiveInt
    head_dim: PositiveInt = Field(description="K head dim (and V's unless head_dim_v is set)")
    head_dim_v: PositiveInt | None = Field(default=None, description="V head dim when ≠ K's")

    @property
    def head_dim_k(self) -> int:
        return self.head_dim

    @property
    def v_dim(self) -> int:
        return self.head_dim if self.head_dim_v is None else self.head_dim_v


class MHA(_HeadedAttention):
    """Multi-head attention: one K and one V head per query head."""

    kind: Literal["mha"]

    @property
    def n_kv_heads(self) -> int:
        return self.n_heads


class GQA(_HeadedAttention):
    """Grouped-query attention: n_kv_heads K/V heads shared by groups of query heads."""

    kind: Literal["gqa"]
    n_kv_heads: PositiveInt

    @model_validator(mode="after")
    def _heads_group_evenly(self) -> "GQA":
        if self.n_kv_heads > self.n_heads:
            raise ValueError(
                f"n_kv_heads ({self.n_kv_heads}) must not exceed n_heads ({self.n_heads})"
            )
        if self.n_heads % self.n_kv_heads:
            raise ValueError(
                f"n_heads ({self.n_heads}) must be divisible by n_kv_heads ({self.n_kv_heads})"
            )
        return self


class MQA(_HeadedAttention):
    """Multi-query attention: a single K/V head shared by every query head."""

    kind: Literal["mqa"]

    @property
    def n_kv_heads(self) -> int:
        return 1


class MLA(_Spec):
    """DeepSeek multi-head latent attention: one compressed latent + one shared RoPE key cached.

    arXiv 2405.04434 §2.1: the cache holds c_KV (kv_lora_rank) and k^R (qk_rope_head_dim)
    per token and layer; K and V are reconstructed from the latent, so there is no factor 2.
    DeepSeek-V3.2's sparse attention (DSA, arXiv 2512.02556) adds its lightning indexer's
    key, one index_head_dim vector per token and layer, cached beside the latent.
    """

    kind: Literal["mla"]
    n_heads: PositiveInt
    kv_lora_rank: PositiveInt
    qk_rope_head_dim: PositiveInt
    qk_nope_head_dim: PositiveInt
    v_head_dim: PositiveInt
    q_lora_rank: PositiveInt | None = None
    index_head_dim: PositiveInt | None = Field(
        default=None, description="DSA indexer key width cached per token (None: no indexer)"
    )

    @property
    def latent_dim(self) -> int:
        return self.kv_lora_rank + self.qk_rope_head_dim

    @property
    def n_kv_heads(self) -> int:
        return 1


Attention = Annotated[MHA | GQA | MQA | MLA, Field(discriminator="kind")]

# The built-in layer kinds of a pattern; a model's own `kinds` add named ones.
LayerKind = Literal["full", "sliding", "chunked"]
BUILTIN_KINDS: tuple[str, ...] = ("full", "sliding", "chunked")
StateDtype = Literal["model", "fp32", "bf16", "fp16"]


class AttentionKind(_Spec):
    """Attention layers with their own KV geometry (Gemma-4's global layers, NAS per-layer GQA).

    Unset fields take the model's `attention`; `k_eq_v`: K is stored once and used as V
    too (Gemma-4 attention_k_eq_v), so the layer caches K only where the engine shares it.
    """

    kind: Literal["attention"]
    window: LayerKind = "full"
    n_kv_heads: PositiveInt | None = None
    head_dim: PositiveInt | None = None
    head_dim_v: PositiveInt | None = None
    k_eq_v: bool = False
    indexer: bool = Field(
        default=True,
        description="False: keeps no DSA indexer keys (reuses another layer's top-k, GLM-5)",
    )
    index_head_dim: PositiveInt | None = Field(
        default=None,
        description="GQA layers: the width of the one-head indexer key cached per token beside "
        "K and V (MiniMax-M3 sparse layers' lightning indexer; None: no indexer)",
    )


class NoCacheKind(_Spec):
    """Layers that add nothing to the cache: no attention (NAS no-op / linear replacement),
    or attention reading another layer's KV (Gemma-4 num_kv_shared_layers)."""

    kind: Literal["none"]
    reason: Literal["no_attention", "kv_shared"]
    like: str | None = Field(
        default=None,
        description="kv_shared layers: the pattern name (sliding, full or a kinds entry) "
        "whose KV geometry the layer would have, for engines that keep a slot for it anyway "
        "(TensorRT-LLM builds its KV manager for every layer)",
    )

    @model_validator(mode="after")
    def _like_only_for_shared(self) -> "NoCacheKind":
        if self.like is not None and self.reason != "kv_shared":
            raise ValueError("like is for kv_shared layers only")
        return self


class StateKind(_Spec):
    """A recurrent / linear-attention mixer: a fixed-size state per sequence, not per token.

    Two tensors per layer and sequence (the engines' cache shapes, see engines.py):
      conv state:      (conv_inner + conv_groups · conv_group_channels) × width, width the
                       conv kernel or kernel − 1 by engine;
      recurrent state: state_heads × state_head_elems.
    TP splits conv_inner and state_heads evenly, conv groups by whole groups (replicated
    when fewer than the ranks). Mamba2: inner d_inner, groups n_groups of 2·d_state,
    heads n_heads of head_dim·d_state. Gated DeltaNet: inner Hv·Dv, groups Hk of 2·Dk,
    heads Hv of Dk·Dv. Mamba1: inner d_inner, heads d_inner of d_state. Short conv (LFM2):
    inner hidden_size, no recurrent state. Lightning attention (MiniMax): no conv state,
    heads num_attention_heads of head_dim².
    """

    kind: Literal["state"]
    mixer: Literal["mamba", "mamba2", "gated_deltanet", "kda", "lightning", "short_conv"]
    conv_kernel: NonNegativeInt = 0
    conv_inner: NonNegativeInt = 0
    conv_groups: NonNegativeInt = 0
    conv_group_channels: NonNegativeInt = 0
    state_heads: NonNegativeInt = 0
    state_head_elems: NonNegativeInt = 0
    conv_dtype: StateDtype = "model"
    state_dtype: StateDtype = "model"
    state_dtype_key: str | None = Field(
        default=None,
        description="the config key state_dtype was read from (mamba_ssm_cache_dtype, "
        "mamba_ssm_dtype); an engine that honours only some keys keeps the model dtype for "
        "the others",
    )
    attention: AttentionKind | None = Field(
        default=None,
        description="attention beside the mixer in the same layer (Falcon-H1): KV per token too",
    )
    chunk_size: PositiveInt | None = Field(
        default=None,
        description="the mixer's scan chunk in tokens as the config publishes it (chunk_size, "
        "mamba_chunk_size); vLLM's mamba_cache_mode all aligns its block to it. None: not "
        "published",
    )

    @property
    def conv_channels(self) -> int:
        return self.conv_inner + self.conv_groups * self.conv_group_channels

    @model_validator(mode="after")
    def _holds_something(self) -> "StateKind":
        if not (self.conv_kernel and self.conv_channels) and not (
            self.state_heads and self.state_head_elems
        ):
            raise ValueError("a state layer needs a conv state or a recurrent state")
        return self


class CompressedKind(_Spec):
    """DeepSeek-V4 compressed attention: a sliding window plus the sequence compressed m to 1.

    transformers 5.24 models/deepseek_v4 (DeepseekV4HCACache, DeepseekV4CSACache), per
    sequence after S tokens, D = head_dim, e = bytes of the model dtype (docs/deepseek-v4.md):
      sliding branch: keys [min(S, W - 1), D] (values is the same tensor: held once);
      HCA (no index_head_dim): compressed [⌊S/m⌋, D], buffered kv and gate [S mod m, D];
      CSA (index_head_dim Di): compressed [⌊S/m⌋, D + Di], buffered kv and gate
        [S mod m, 2D + 2Di], overlap kv (model dtype) and gate (fp32) [m, D + Di] once S ≥ m.
    W is the pattern's sliding_window.
    """

    kind: Literal["compressed"]
    rate: Annotated[int, Field(gt=1, strict=True)] = Field(
        description="tokens compressed into one entry (m: 4 for CSA, 128 for HCA)"
    )
    head_dim: PositiveInt | None = Field(default=None, description="D (None: the model's)")
    index_head_dim: PositiveInt | None = Field(
        default=None,
        description="CSA indexer width Di; None: HCA (no indexer, no overlap tensors)",
    )


LayerKindSpec = Annotated[
    AttentionKind | NoCacheKind | StateKind | CompressedKind, Field(discriminator="kind")
]

# the built-in kinds as AttentionKind values (already valid: no validation at import)
_BUILTIN_KINDS: dict[str, AttentionKind] = {
    "full": AttentionKind.model_construct(kind="attention", window="full"),
    "sliding": AttentionKind.model_construct(kind="attention", window="sliding"),
    "chunked": AttentionKind.model_construct(kind="attention", window="chunked"),
}


class Window(NamedTuple):
    """A layer's local-attention span: a sliding window, or a chunk (Llama 4's chunked attention)."""

    kind: str  # "sliding" or "chunked"
    size: int  # tokens


class LayerPattern(_Spec):
    """Which layers are full attention and which local, as a pattern cycled over layers.

    Gemma-2: [sliding, full]; Gemma-3: [sliding ×5, full]; Mistral-7B-v0.1: [sliding];
    Llama 4: [chunked ×3, full] with chunk_size 8192. A pattern as long as the model lists
    every layer explicitly.
    """

    sliding_window: PositiveInt | None = None
    config_sliding_window: PositiveInt | None = Field(
        default=None,
        description="the sliding_window the checkpoint's config records where it differs from "
        "the span attended (MiMo-V2-Flash: 128 previous tokens, 129 with the query); "
        "converters that copy the key (llama.cpp's n_swa) size the cache by it",
    )
    chunk_size: PositiveInt | None = None
    pattern: Annotated[list[str], Field(min_length=1)] = Field(
        description="full, sliding, chunked, or a name of the model's `kinds`"
    )


class ParamBreakdown(_Spec):
    """Exact parameter counts by part; `embedding` and `lm_head` are kept in 16-bit when quantised."""

    embedding: NonNegativeInt
    lm_head: NonNegativeInt = Field(description="0 when tied to the embedding")
    attention: NonNegativeInt
    mlp: NonNegativeInt = Field(description="dense MLPs and shared experts")
    experts: NonNegativeInt = Field(default=0, description="routed MoE experts and routers")
    norms: NonNegativeInt = 0
    other: NonNegativeInt = 0
    # Of a part, the parameters every tensor-parallel rank holds whole (the rest of the part
    # is split by tp); None: none known. Counted inside the part, not beside it.
    replicated_attention: PositiveInt | None = Field(
        default=None,
        description="of attention, held whole on every TP rank (MLA: q_a_proj, "
        "kv_a_proj_with_mqa, q_a_layernorm, kv_a_layernorm; the DSA indexer)",
    )
    replicated_mlp: PositiveInt | None = Field(
        default=None,
        description="of mlp, held whole on every TP rank (Kimi-K3's latent projections)",
    )
    replicated_experts: PositiveInt | None = Field(
        default=None, description="of experts, held whole on every TP rank (the MoE router)"
    )

    @model_validator(mode="after")
    def _replicated_within(self) -> "ParamBreakdown":
        for part in ("attention", "mlp", "experts"):
            replicated = getattr(self, f"replicated_{part}")
            if replicated is not None and replicated > getattr(self, part):
                raise ValueError(
                    f"replicated_{part} {replicated:,} exceeds {part} {getattr(self, part):,}"
                )
        return self

    def replicated(self, part: "Part") -> int:
        """Return the parameters of a part that every tensor-parallel rank holds whole."""
        return getattr(self, f"replicated_{part}") or 0

    @property
    def total(self) -> int:
        return (
            self.embedding
            + self.lm_head
            + self.attention
            + self.mlp
            + self.experts
            + self.norms
            + self.other
        )


class VisionTower(_Spec):
    """Exact parameters of a multimodal checkpoint's vision tower (its projector included) and,
    where it has one, its audio tower, beside the language model that n_params counts; held
    in the model's dtype."""

    params: PositiveInt = Field(description="every parameter of the tower and its projector")
    replicated: NonNegativeInt = Field(
        description="of which every tensor-parallel rank holds whole (norms, patch and "
        "position embeddings, row-parallel biases); the rest is split by tp"
    )
    quantized: bool = Field(
        default=True,
        description="whether the engines build the tower with the model's quant config, so "
        "that --weights-dtype applies to its linears; false: 16-bit whatever the weights dtype",
    )
    whole_linears: PositiveInt | None = Field(
        default=None,
        description="of replicated, the linear weights that take --weights-dtype with the "
        "tower when quantized (vLLM's ReplicatedLinear under the tower's quant config: "
        "Gemma 4); the rest of replicated stays 16-bit",
    )
    audio: PositiveInt | None = Field(
        default=None,
        description="of params, the audio tower and its projector (Gemma 4 E2B / E4B's "
        "audio_config), held whole on every tensor-parallel rank; None: no audio tower",
    )

    @model_validator(mode="after")
    def _within(self) -> "VisionTower":
        if self.replicated > self.params:
            raise ValueError(f"replicated {self.replicated:,} exceeds params {self.params:,}")
        if self.whole_linears is not None and self.whole_linears > self.replicated:
            raise ValueError(
                f"whole_linears {self.whole_linears:,} exceeds replicated {self.replicated:,}"
            )
        if self.audio is not None and self.audio > self.replicated:
            raise ValueError(
                f"audio {self.audio:,} exceeds replicated {self.replicated:,} (the audio "
                "tower is whole on every rank)"
            )
        return self


class MoE(_Spec):
    """Mixture-of-experts shape (informative: all experts are resident in memory)."""

    n_experts: PositiveInt
    n_experts_per_token: PositiveInt
    n_shared_experts: NonNegativeInt = 0


class ModelSpec(_Spec):
    """A model's architecture as far as memory is concerned, each number from a cited source."""

    name: str = Field(min_length=1)
    source: str = Field(min_length=1, description="config.json URL or paper for every number")
    family: str | None = Field(default=None, description="Hugging Face model_type")
    architecture: str | None = Field(default=None, description="Hugging Face architecture")
    n_layers: PositiveInt
    d_model: PositiveInt
    vocab_size: PositiveInt
    n_params: PositiveInt | None = None
    params: ParamBreakdown | None = None
    published_params: str | None = Field(default=None, description="the published figure")
    tower: VisionTower | None = Field(
        default=None,
        description="a multimodal checkpoint's vision (and audio) tower, outside n_params",
    )
    multimodal: bool = Field(
        default=False,
        description="the checkpoint also holds a vision or audio tower (its config's "
        "vision_config / audio_config); with no `tower` kvcalc does not count it, and says so",
    )
    checkpoint_bytes: PositiveInt | None = Field(
        default=None, description="exact bytes of the published weights (safetensors), if known"
    )
    weights_quant: WeightsQuant | None = Field(
        default=None, description="how the published weights ship (quantization_config)"
    )
    max_position_embeddings: PositiveInt | None = None
    dtype: Literal["fp32", "fp16", "bf16"] = "bf16"
    tie_word_embeddings: bool = False
    attention: Attention
    layers: LayerPattern | None = None
    kinds: dict[str, LayerKindSpec] | None = Field(
        default=None, description="named layer kinds the pattern may use besides the built-ins"
    )
    mtp_layers: NonNegativeInt = Field(
        default=0, description="MTP / next-n layers: cached only with speculative decoding on"
    )
    mtp_unmodelled: str | None = Field(
        default=None,
        description="MTP modules the config declares whose cache kvcalc has not read: "
        "speculative decoding (--mtp) is refused with this reason",
    )
    moe: MoE | None = None
    checkpoint_kv: CheckpointKv | None = Field(
        default=None,
        description="the KV-cache quantisation the checkpoint publishes (ModelOpt "
        "kv_cache_scheme / kv_cache_quant_algo), which some engines' auto KV dtype follows",
    )
    notes: str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> "ModelSpec":
        if self.params is not None:
            if self.n_params is None:
                raise ValueError("params given without n_params")
            if self.params.total != self.n_params:
                raise ValueError(
                    f"params add up to {self.params.total:,}, not n_params {self.n_params:,}"
                )
        if self.layers is not None:
            self._check_pattern(self.layers)
        if self.moe is not None and self.moe.n_experts_per_token > self.moe.n_experts:
            raise ValueError("moe.n_experts_per_token exceeds moe.n_experts")
        return self

    def _check_pattern(self, layers: LayerPattern) -> None:
        kinds = self.kinds or {}
        for name in kinds:
            if name in BUILTIN_KINDS:
                raise ValueError(f"kinds.{name}: a built-in kind name cannot be redefined")
        for name in layers.pattern:
            if name not in BUILTIN_KINDS and name not in kinds:
                known = ", ".join([*BUILTIN_KINDS, *kinds])
                raise ValueError(f"layers.pattern names unknown kind {name!r} (known: {known})")
        windows = {self._window_name(name) for name in layers.pattern}
        if "sliding" in windows and layers.sliding_window is None:
            raise ValueError("pattern has sliding layers but no sliding_window")
        if layers.config_sliding_window is not None and layers.sliding_window is None:
            raise ValueError("config_sliding_window given without sliding_window")
        if "chunked" in windows and layers.chunk_size is None:
            raise ValueError("pattern has chunked layers but no chunk_size")
        compressed = any(isinstance(kind, CompressedKind) for kind in kinds.values())
        if compressed and not isinstance(self.attention, MQA):
            raise ValueError("compressed layers need MQA attention (one shared K = V head)")
        if isinstance(self.attention, MLA) and windows & {"sliding", "chunked"}:
            raise ValueError("sliding-window layers are not supported with MLA attention")
        for name, kind in kinds.items():
            if isinstance(kind, NoCacheKind) and kind.like is not None:
                target = _BUILTIN_KINDS.get(kind.like) or kinds.get(kind.like)
                if not isinstance(target, AttentionKind):
                    raise ValueError(f"kinds.{name}.like: {kind.like!r} is no attention kind")
            overrides = isinstance(kind, AttentionKind) and (
                kind.n_kv_heads or kind.head_dim or kind.head_dim_v or kind.k_eq_v
            )
            if overrides and isinstance(self.attention, MLA):
                raise ValueError(f"kinds.{name}: MLA layers have no per-kind KV heads")
            indexed = isinstance(kind, AttentionKind) and kind.index_head_dim
            if indexed and isinstance(self.attention, MLA):
                raise ValueError(
                    f"kinds.{name}: MLA layers take index_head_dim from attention, not a kind"
                )
        period = len(layers.pattern)
        if period > self.n_layers:
            raise ValueError(
                f"layers.pattern lists {period} layers but the model has {self.n_layers}"
            )

    def _window_name(self, name: str) -> str | None:
        """Return the window kind ('full', 'sliding', 'chunked') of a pattern entry, or None."""
        if name in BUILTIN_KINDS:
            return name
        kind = (self.kinds or {})[name]
        if isinstance(kind, CompressedKind):
            return "sliding"  # the sliding branch; the compressed parts are the kind's own
        return kind.window if isinstance(kind, AttentionKind) else None

    def layer_kind_names(self) -> tuple[str, ...]:
        """Return each layer's kind name: full, sliding, chunked, or one of `kinds`."""
        if self.layers is None:
            return ("full",) * self.n_layers
        pattern = self.layers.pattern
        return tuple(pattern[i % len(pattern)] for i in range(self.n_layers))

    def layer_kind(self, name: str) -> AttentionKind | NoCacheKind | StateKind | CompressedKind:
        """Return the kind a pattern name stands for (a built-in is plain attention)."""
        builtin = _BUILTIN_KINDS.get(name)
        if builtin is not None:
            return builtin
        return (self.kinds or {})[name]

    def to_data(self) -> dict[str, object]:
        """Return the spec as plain data for YAML/JSON, unset fields left out, attention kind first."""
        data = self.model_dump(mode="json", exclude_none=True)
        for default_off in ("mtp_layers", "multimodal"):
            if not data.get(default_off):
                data.pop(default_off, None)
        attention = data["attention"]
        data["attention"] = {"kind": attention.pop("kind"), **attention}
        return data

    def layer_windows(self, config_window: bool = False) -> tuple[Window | None, ...]:
        """Return each layer's local-attention window, or None for a full-attention layer.

        Layers that cache no attention KV (state or no-cache kinds) are None too: use
        layer_kind_names() to tell them apart. config_window: sliding layers take the
        config's own sliding_window where it records another (config_sliding_window).
        """
        if self.layers is None:
            return (None,) * self.n_layers
        spans: dict[str | None, Window | None] = {"full": None, None: None}
        sliding = self.layers.sliding_window
        if config_window and self.layers.config_sliding_window is not None:
            sliding = self.layers.config_sliding_window
        if sliding is not None:
            spans["sliding"] = Window("sliding", sliding)
        if self.layers.chunk_size is not None:
            spans["chunked"] = Window("chunked", self.layers.chunk_size)
        return tuple(spans[self._window_name(n)] for n in self.layer_kind_names())


class GpuSpec(_Spec):
    """One accelerator: the memory its driver reports (what engines size from), with sources."""

    name: str = Field(min_length=1)
    vendor: Literal["nvidia", "amd", "intel", "other"]
    memory_bytes: PositiveInt
    memory_kind: Literal["cuda", "nvidia-smi", "rocm-smi", "datasheet", "user"] = Field(
        description="what memory_bytes is: the CUDA/ROCm total, an nvidia-smi total, or marketing"
    )
    memory_note: str | None = None
    datasheet_memory: str | None = None
    bandwidth_bytes_per_s: PositiveInt | None = None
    # NVIDIA's CUDA compute capability, "major.minor" (H100 "9.0", B200 "10.0"); engines
    # whose defaults depend on it (SGLang's DSA KV dtype and backends) read the major
    compute_capability: str | None = Field(default=None, pattern=r"^[1-9][0-9]?\.[0-9]$")
    price_per_hour_usd: Annotated[float, Field(gt=0)] | None = None
    aliases: list[str] = Field(default_factory=list)
    source: str = Field(min_length=1)


def cuda_major(gpu: GpuSpec) -> int | None:
    """Return the GPU's CUDA compute capability major (9 for Hopper, 10 for B200), or None
    where the spec gives none (AMD, user-sized GPUs)."""
    if gpu.compute_capability is None:
        return None
    return int(gpu.compute_capability.split(".")[0])


def format_validation_error(exc: ValidationError) -> str:
    """Return pydantic errors as one line: 'field.path: message; ...'."""
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"] if not str(p).startswith(("function-", "tagged")))
        msg = err["msg"].removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(parts)
