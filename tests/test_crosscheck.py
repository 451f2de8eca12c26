"""Proof against a real implementation: `--engine hf` vs transformers' actual cache tensors.

For every bundled preset with a published config.json in tests/data/hf_configs, build the
transformers model on the `meta` device (no weights, no compute), run a forward pass with
a cache, and compare the bytes of every layer's key and value tensors with kvcalc's
prediction; also compare the parameter count with sum(p.numel()). Needs torch and
transformers (`pip install -e '.[crosscheck]'`, as the README's test command does); their
absence fails the run unless KVCALC_SKIP_CROSSCHECK=1 says to skip it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from kvcalc.dtypes import kv_dtype
from kvcalc.engines import ENGINES
from kvcalc.formula import Workload, kv_cache
from kvcalc.hf.families import families
from kvcalc.presets import load_model
from kvcalc.specs import MLA, AttentionKind, ModelSpec, StateKind

if os.environ.get("KVCALC_SKIP_CROSSCHECK") == "1":
    pytest.importorskip("torch")
    pytest.importorskip("transformers")

from tests.crosscheck import measure, state

pytestmark = pytest.mark.crosscheck

CONFIGS = Path(__file__).parent / "data" / "hf_configs"
PRESETS = Path(__file__).parent.parent / "presets" / "models"


def _crosscheckable(stem: str) -> bool:
    """A config with a bundled preset (configs waiting for an importer have none yet) of a
    family transformers implements (remote-code families are marked crosschecked=False)."""
    if not (PRESETS / f"{stem}.yaml").is_file():
        return False
    family = families().get(load_model(stem).family or "")
    return family is None or family.crosschecked


STEMS = sorted(p.stem for p in CONFIGS.glob("*.json") if _crosscheckable(p.stem))
# shape-only configs for families without a bundled preset (unknown_llama_like cannot be built)
SYNTHETIC = sorted(
    p for p in (CONFIGS.parent / "hf_synthetic").glob("*.json") if p.stem != "unknown_llama_like"
)


def _points(stem: str) -> list[tuple[int, int]]:
    """(seq, batch) points: odd sizes, a long one, and one past every sliding window or chunk.

    Models with recurrent state layers take shorter points: their state does not grow with
    the sequence, and transformers' reference scans (Mamba's slow path, Gated DeltaNet's
    chunked loop) run on the meta device in time proportional to it (Jamba at 8,192 tokens:
    minutes), while the attention layers' KV is as linear in seq at 1,031 tokens.
    """
    spec = load_model(stem)
    has_state = any(isinstance(k, StateKind) for k in (spec.kinds or {}).values())
    points = [(255, 3), (1031, 1)] if has_state else [(777, 3), (8192, 1)]
    if spec.layers is not None:
        span = max(spec.layers.sliding_window or 0, spec.layers.chunk_size or 0)
        points.append((span + 333, 2))
    return points


def _predicted(spec: ModelSpec, seq: int, batch: int) -> list[dict[str, int]]:
    """kvcalc's `hf` prediction per layer: bytes of K+V, indexer keys, conv and recurrent state."""
    result = kv_cache(
        spec,
        Workload(seq_len=seq, batch=batch, k_dtype=kv_dtype("bf16"), v_dtype=kv_dtype("bf16")),
        ENGINES["hf"],
    )
    tokens = {g.key: g.tokens for g in result.groups}
    states = {g.layer_kind: g for g in result.state_groups}
    attention = spec.attention
    full_index = (
        2 * attention.index_head_dim
        if isinstance(attention, MLA) and attention.index_head_dim
        else 0
    )
    layers = []
    for i, name in enumerate(result.layer_kinds[: spec.n_layers]):
        found: dict[str, int] = {}
        per_token = result.layer_bytes_per_token[i]
        kind = spec.layer_kind("full" if name == "mtp" else name)
        index = 0 if isinstance(kind, AttentionKind) and not kind.indexer else full_index
        if isinstance(kind, AttentionKind) and kind.index_head_dim:
            index = 2 * kind.index_head_dim  # a GQA layer's own indexer key (MiniMax-M3)
        if per_token:
            held = tokens[result.layer_windows[i]] * batch
            found["kv"] = held * (per_token - index)
            found["indexer"] = held * index
        for part, per in result.layer_parts[i] if result.layer_parts else ():
            # a compressed layer's compressed entries, buffered kv + gate, overlap kv + gate
            found[part.kind] = found.get(part.kind, 0) + tokens[part] * batch * per
        state = states.get(name)
        if state is not None:
            found["conv"] = state.conv_bytes_per_layer * batch
            found["recurrent"] = state.recurrent_bytes_per_layer * batch
        layers.append({k: v for k, v in found.items() if v})
    return layers


# DeepSeek-V4's cache dicts (by branch: compressor, indexer) as kvcalc's compressed parts
_COMPRESSED_DICTS = {
    "compressed_kv": "compressed",
    "buffer_kv": "buffered",
    "buffer_gate": "buffered",
    "overlap_kv": "overlap",
    "overlap_gate": "overlap",
}


def _measured(
    config: dict[str, object], seq: int, batch: int, decode: bool = False
) -> list[dict[str, int]]:
    """transformers' cache per layer, in the same categories as _predicted."""
    layers = []
    for tensors in state.measure_layers(config, seq, batch, decode):
        found: dict[str, int] = {}
        for name, n_bytes in tensors.items():
            key = {
                "keys": "kv",
                "values": "kv",
                "indexer_keys": "indexer",
                "idx_keys": "indexer",
            }.get(name)
            for prefix, part in _COMPRESSED_DICTS.items():
                if name.startswith(prefix):
                    key = part
            key = key or ("conv" if name.startswith("conv") else "recurrent")
            found[key] = found.get(key, 0) + n_bytes
        layers.append(found)
    return layers


@pytest.mark.parametrize("stem", STEMS)
def test_hf_engine_matches_transformers_cache(stem: str) -> None:
    """Every layer's cache tensors in transformers' DynamicCache equal kvcalc's `hf` prediction."""
    config = json.loads((CONFIGS / f"{stem}.json").read_text())
    spec = load_model(stem)
    for seq, batch in _points(stem):
        assert _measured(config, seq, batch) == _predicted(spec, seq, batch), (
            f"{stem} at seq {seq}, batch {batch}"
        )


@pytest.mark.parametrize("stem", STEMS)
def test_parameter_count_matches_meta_model(stem: str) -> None:
    """The preset's exact parameter count equals sum(p.numel()) of the transformers model."""
    config = json.loads((CONFIGS / f"{stem}.json").read_text())
    assert load_model(stem).n_params == measure.count_params(config)


TOWER_STEMS = sorted(stem for stem in STEMS if load_model(stem).tower is not None)


def test_every_counted_tower_is_checked() -> None:
    """The tower check below covers every Qwen3-VL, Qwen3.5 and Qwen3.6 preset (dense and
    MoE) and the multimodal Devstral (Pixtral), Gemma 3, Gemma 4 and Llama 4 presets, the
    families whose towers kvcalc counts (NVIDIA's NVFP4 checkpoints too: the Gemma 4 and Qwen3.5 ignore lists
    name the tower, Qwen3.6's per-module lists leave it out, so it stays 16-bit)."""
    expected = [
        p.stem
        for pattern in ("qwen3-vl-*", "qwen3.5-*", "qwen3.6-*")
        for p in PRESETS.glob(f"{pattern}.yaml")
    ] + [
        "devstral-small-2-24b",
        "gemma-3-27b",
        "gemma-3-4b",
        "gemma-4-26b-a4b",
        "gemma-4-26b-a4b-nvfp4",
        "gemma-4-31b",
        "llama-4-maverick",
        "llama-4-scout",
    ]
    assert sorted(expected) == TOWER_STEMS


@pytest.mark.parametrize("stem", TOWER_STEMS)
def test_vision_tower_count_matches_meta_model(stem: str) -> None:
    """The preset's vision tower equals sum(p.numel()) over the whole transformers model
    outside its language model, and the part kvcalc holds whole on every tp rank equals
    what vLLM builds unsplit there (measure._WHOLE_ON_EVERY_RANK)."""
    config = json.loads((CONFIGS / f"{stem}.json").read_text())
    tower = load_model(stem).tower
    assert tower is not None
    assert tower.params == measure.count_tower_params(config)
    assert tower.replicated == measure.count_tower_whole_on_every_rank(config)


def test_gemma_4_audio_tower_count_matches_meta_model() -> None:
    """A Gemma 4 config with an audio_config (tests/data/hf_synthetic/gemma4_audio.json, E2B's
    shape at toy sizes): kvcalc's tower equals sum(p.numel()) outside the language model
    (vision tower, embed_vision, audio tower, embed_audio), its audio part the parameters
    under model.audio_tower and model.embed_audio, all of it whole on every rank as vLLM
    builds it, and its whole_linears the weights of every nn.Linear in the towers (those
    vLLM's recursive_replace_linear makes ReplicatedLinear under tower_quant)."""
    from kvcalc import hf

    config = json.loads((CONFIGS.parent / "hf_synthetic" / "gemma4_audio.json").read_text())
    tower = hf.import_config(config, source="test").spec.tower
    assert tower is not None and tower.audio is not None
    assert tower.params == measure.count_tower_params(config)
    assert tower.replicated == measure.count_tower_whole_on_every_rank(config)
    audio, audio_linears = measure.count_tower_parts(
        config, ("model.audio_tower.", "model.embed_audio.")
    )
    assert tower.audio == audio
    _, all_linears = measure.count_tower_parts(
        config,
        ("model.vision_tower.", "model.embed_vision.", "model.audio_tower.", "model.embed_audio."),
    )
    assert tower.whole_linears == all_linears
    assert audio_linears < all_linears


def test_released_gemma_4_audio_config_matches_meta_model() -> None:
    """The released E2B audio_config and E2B's vision_config (tests/test_towers_v4tp.py
    RELEASED_AUDIO, E2B_VISION) around a toy text model of E2B's hidden size 1,536: kvcalc's
    towers, audio share and whole linears equal transformers' (475,728,160, 307,183,904 and
    459,735,040 by hand there)."""
    from kvcalc import hf
    from tests.test_towers_v4tp import E2B_VISION, RELEASED_AUDIO

    config = json.loads((CONFIGS.parent / "hf_synthetic" / "gemma4_audio.json").read_text())
    config["text_config"]["hidden_size"] = 1_536
    config["vision_config"] = E2B_VISION
    config["audio_config"] = {"model_type": "gemma4_audio", **RELEASED_AUDIO}
    tower = hf.import_config(config, source="test").spec.tower
    assert tower is not None
    assert tower.params == measure.count_tower_params(config) == 475_728_160
    prefixes = ("model.audio_tower.", "model.embed_audio.")
    assert tower.audio == measure.count_tower_parts(config, prefixes)[0] == 307_183_904
    every = ("model.vision_tower.", "model.embed_vision.", *prefixes)
    assert tower.whole_linears == measure.count_tower_parts(config, every)[1] == 459_735_040


@pytest.mark.parametrize("path", SYNTHETIC, ids=lambda p: p.stem)
def test_import_matches_transformers_on_other_families(path: Path) -> None:
    """Shape-only configs of every family: the parameter count, and every layer's cache tensors
    (K+V, indexer keys, conv and recurrent state) after a prefill at several (seq, batch)
    points and after one decode step, equal transformers'."""
    from kvcalc import hf

    config = json.loads(path.read_text())
    spec = hf.import_config(config, source="test").spec
    assert spec.n_params == measure.count_params(config)
    for seq, batch in ((777, 3), (300, 2), (5, 1)):
        assert _measured(config, seq, batch) == _predicted(spec, seq, batch), (
            f"{path.stem} at seq {seq}, batch {batch}"
        )
    assert _measured(config, 300, 2, decode=True) == _predicted(spec, 301, 2), (
        f"{path.stem} after one decode step"
    )


@pytest.mark.parametrize("stem", ["deepseek-v4-flash", "deepseek-v4-pro"])
@pytest.mark.parametrize(
    ("seq", "batch", "decode"),
    [(1, 2, False), (3, 2, True), (4, 3, False), (127, 1, True), (128, 1, False),
     (777, 3, False), (1031, 2, True)],
)  # fmt: skip
def test_deepseek_v4_compressed_layers_match_transformers(
    stem: str, seq: int, batch: int, decode: bool
) -> None:
    """Every V4 layer's tensors (sliding keys held once, compressed entries, buffered kv and
    gate, CSA overlap kv and fp32 gate) equal transformers' at seq < m, seq ≡ 0 mod m, seq
    below and above m' = 128, and after a decode step (seq + 1 tokens then)."""
    config = json.loads((CONFIGS / f"{stem}.json").read_text())
    spec = load_model(stem)
    assert _measured(config, seq, batch, decode) == _predicted(spec, seq + decode, batch), (
        f"{stem} at seq {seq}, batch {batch}, decode {decode}"
    )


def test_minimax_m3_sparse_layers_cache_an_indexer_key_beside_gqa() -> None:
    """MiniMax-M3 in transformers, by hand and as kvcalc's `hf` profile predicts it (issue 7):
    at seq 300, batch 2, bf16, every layer holds K and V of num_key_value_heads 4 × head_dim
    128 (2 · 4 · 300 · 128 · 2 B = 614,400 each); the 57 sparse layers (sparse_attention_freq
    1: layers 3-59) also hold the lightning indexer's key, one head of sparse_index_dim 128
    (2 · 1 · 300 · 128 · 2 B = 153,600). After one decode step every tensor holds 301 tokens."""
    config = json.loads((CONFIGS / "minimax-m3.json").read_text())
    spec = load_model("minimax-m3")
    layers = state.measure_layers(config, 300, 2)
    kv = {"keys": 2 * 4 * 300 * 128 * 2, "values": 2 * 4 * 300 * 128 * 2}
    assert layers == [kv] * 3 + [{**kv, "idx_keys": 2 * 1 * 300 * 128 * 2}] * 57
    full, sparse = {"kv": 2 * 614_400}, {"kv": 2 * 614_400, "indexer": 153_600}
    assert _predicted(spec, 300, 2) == [full] * 3 + [sparse] * 57
    for seq, batch in ((300, 2), (5, 1), (1025, 3)):
        assert _measured(config, seq, batch) == _predicted(spec, seq, batch), (seq, batch)
    assert _measured(config, 300, 2, decode=True) == _predicted(spec, 301, 2)


def test_minimax_lightning_layers_keep_a_fixed_state_beside_gqa_layers() -> None:
    """MiniMax (model_type minimax) in transformers, by hand (issue 7): the synthetic
    tests/data/hf_synthetic/minimax.json has layers lightning, full, lightning, lightning,
    full, lightning; at seq 300, batch 2, bf16 a full layer holds K and V of 2 KV heads × 16
    (2 · 2 · 300 · 16 · 2 B = 38,400 each), a lightning layer only MiniMaxCache.linear_cache,
    [2, 4 heads, 16, 16] in bf16 (2 · 4 · 16 · 16 · 2 B = 4,096). After one decode step the
    full layers hold 301 tokens (38,528 B each) and the state is the same size."""
    config = json.loads((CONFIGS.parent / "hf_synthetic" / "minimax.json").read_text())
    lightning = {"linear_cache": 2 * 4 * 16 * 16 * 2}
    assert lightning == {"linear_cache": 4096}

    def full(tokens: int) -> dict[str, int]:
        return {"keys": 2 * 2 * tokens * 16 * 2, "values": 2 * 2 * tokens * 16 * 2}

    pattern = ["L", "F", "L", "L", "F", "L"]
    assert state.measure_layers(config, 300, 2) == [
        lightning if p == "L" else full(300) for p in pattern
    ]
    assert state.measure_layers(config, 300, 2, decode=True) == [
        lightning if p == "L" else full(301) for p in pattern
    ]
    from kvcalc import hf

    spec = hf.import_config(config, source="test").spec
    assert _predicted(spec, 300, 2) == [
        {"recurrent": 4096} if p == "L" else {"kv": 2 * 38_400} for p in pattern
    ]
