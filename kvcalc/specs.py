"""Validated model and workload specs (pydantic v2, frozen, unknown keys rejected)."""

from __future__ import annotations

from typing import Annotated, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

PositiveInt = Annotated[int, Field(gt=0, strict=True)]
NonNegativeInt = Annotated[int, Field(ge=0, strict=True)]


class _Spec(BaseModel):
    # defer_build: the validators are built on the first validation (a user's file), not at
    # import; bundled presets come pre-validated from kvcalc/presets_index.json
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


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
    def _heads_group_evenly(self) -> GQA:
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
    """

    kind: Literal["mla"]
    n_heads: PositiveInt
    kv_lora_rank: PositiveInt
    qk_rope_head_dim: PositiveInt
    qk_nope_head_dim: PositiveInt
    v_head_dim: PositiveInt
    q_lora_rank: PositiveInt | None = None

    @property
    def latent_dim(self) -> int:
        return self.kv_lora_rank + self.qk_rope_head_dim

    @property
    def n_kv_heads(self) -> int:
        return 1


Attention = Annotated[MHA | GQA | MQA | MLA, Field(discriminator="kind")]

LayerKind = Literal["full", "sliding", "chunked"]


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
    chunk_size: PositiveInt | None = None
    pattern: Annotated[list[LayerKind], Field(min_length=1)]

    @model_validator(mode="after")
    def _sizes_given(self) -> LayerPattern:
        if "sliding" in self.pattern and self.sliding_window is None:
            raise ValueError("pattern has sliding layers but no sliding_window")
        if "chunked" in self.pattern and self.chunk_size is None:
            raise ValueError("pattern has chunked layers but no chunk_size")
        return self


class ParamBreakdown(_Spec):
    """Exact parameter counts by part; `embedding` and `lm_head` are kept in 16-bit when quantised."""

    embedding: NonNegativeInt
    lm_head: NonNegativeInt = Field(description="0 when tied to the embedding")
    attention: NonNegativeInt
    mlp: NonNegativeInt = Field(description="dense MLPs and shared experts")
    experts: NonNegativeInt = Field(default=0, description="routed MoE experts and routers")
    norms: NonNegativeInt = 0
    other: NonNegativeInt = 0

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
    checkpoint_bytes: PositiveInt | None = Field(
        default=None, description="exact bytes of the published weights (safetensors), if known"
    )
    max_position_embeddings: PositiveInt | None = None
    dtype: Literal["fp32", "fp16", "bf16"] = "bf16"
    tie_word_embeddings: bool = False
    attention: Attention
    layers: LayerPattern | None = None
    moe: MoE | None = None
    notes: str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> ModelSpec:
        if self.params is not None:
            if self.n_params is None:
                raise ValueError("params given without n_params")
            if self.params.total != self.n_params:
                raise ValueError(
                    f"params add up to {self.params.total:,}, not n_params {self.n_params:,}"
                )
        if self.layers is not None:
            if isinstance(self.attention, MLA):
                raise ValueError("sliding-window layers are not supported with MLA attention")
            period = len(self.layers.pattern)
            if period > self.n_layers:
                raise ValueError(
                    f"layers.pattern lists {period} layers but the model has {self.n_layers}"
                )
        if self.moe is not None and self.moe.n_experts_per_token > self.moe.n_experts:
            raise ValueError("moe.n_experts_per_token exceeds moe.n_experts")
        return self

    def to_data(self) -> dict[str, object]:
        """Return the spec as plain data for YAML/JSON, unset fields left out, attention kind first."""
        data = self.model_dump(mode="json", exclude_none=True)
        attention = data["attention"]
        data["attention"] = {"kind": attention.pop("kind"), **attention}
        return data

    def layer_windows(self) -> tuple[Window | None, ...]:
        """Return each layer's local-attention window, or None for a full-attention layer."""
        if self.layers is None:
            return (None,) * self.n_layers
        pattern = self.layers.pattern
        spans: dict[str, Window | None] = {"full": None}
        if self.layers.sliding_window is not None:
            spans["sliding"] = Window("sliding", self.layers.sliding_window)
        if self.layers.chunk_size is not None:
            spans["chunked"] = Window("chunked", self.layers.chunk_size)
        return tuple(spans[pattern[i % len(pattern)]] for i in range(self.n_layers))


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
    price_per_hour_usd: Annotated[float, Field(gt=0)] | None = None
    aliases: list[str] = Field(default_factory=list)
    source: str = Field(min_length=1)


def format_validation_error(exc: ValidationError) -> str:
    """Return pydantic errors as one line: 'field.path: message; ...'."""
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"] if not str(p).startswith(("function-", "tagged")))
        msg = err["msg"].removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(parts)
