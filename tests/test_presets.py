"""Bundled presets: every one validates, cites its source, matches its published config.json,
and its exact parameter count agrees with the published figure."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
import yaml

from kvcalc import hf, quant
from kvcalc.errors import KvcalcError
from kvcalc.presets import bundled_presets_dir, load_all_models, load_model, preset_files

CONFIGS = Path(__file__).parent / "data" / "hf_configs"
MODEL_PRESETS = sorted(preset_files("models"))
REQUIRED = [
    "opt-30b", "opt-6.7b", "llama-7b", "llama-65b", "llama-2-7b", "llama-2-70b", "llama-3.1-8b",
    "llama-3.1-70b", "llama-3.1-405b", "mistral-7b-v0.1", "mixtral-8x7b", "qwen2.5-7b",
    "gemma-2-9b", "gemma-3-27b", "falcon-7b", "deepseek-v2-lite", "deepseek-v3",
]  # fmt: skip

# Published figures that a config-exact count cannot meet, each with its reason.
PUBLISHED_FIGURE_EXCEPTIONS = {
    "llama-4-scout": (
        "the published 109.68B is 1.04B over the config's text model (107.77B) and vision tower "
        "(0.87B) together; where the rest comes from is not known"
    ),
    "phi-4": "'14B' is the model card's round figure (the config gives 14.66B)",
    "glm-4.5-air": "the card's 106B is rounded (config: 106.85B without the MTP layer)",
    "llama-3.1-405b": "410.1B is Meta's original checkpoint count; the HF model holds 405.85B",
    "falcon-40b": "'40B' is the model's name, not a count (the config gives 41.30B)",
    "starcoder2-15b": "'15B' is the model's name, not a count (the config gives 15.96B)",
    "falcon-180b": "'180B' is the model's name, not a count (the config gives 178.56B)",
    "llama-2-70b": "'70B' is the model's name, not a count (the config gives 68.98B)",
    "qwen2.5-32b": "the card's 32.5B disagrees with its own architecture (config gives 32.76B)",
    "gemma-4-26b-a4b-nvfp4": (
        "the card's 25.2B is the text model (config: 25.23B); its ~550M vision encoder "
        "(config: 0.57B) is on top"
    ),
    "glm-5.1-nvfp4": (
        "NVIDIA's 754B counts the MTP layer: the config's 743.91B without it + about 9.95B for "
        "it (one MoE decoder layer and eh_proj 2·6144 × 6144) = 753.86B"
    ),
}


def test_required_presets_are_bundled() -> None:
    """The presets the core issue names are all there, and there are at least 40."""
    assert set(REQUIRED) <= set(MODEL_PRESETS)
    assert len(MODEL_PRESETS) >= 40


@pytest.mark.parametrize("name", MODEL_PRESETS)
def test_preset_validates_and_cites_a_source(name: str) -> None:
    """Each preset loads as a valid spec, names a source URL and has a parameter breakdown."""
    spec = load_model(name)
    assert spec.source.startswith("https://")
    assert spec.n_params is not None and spec.params is not None
    assert spec.params.total == spec.n_params


@pytest.mark.parametrize("name", MODEL_PRESETS)
def test_preset_equals_its_published_config(name: str) -> None:
    """A preset is exactly what importing its published config.json gives (no hand edits drift)."""
    config = json.loads((CONFIGS / f"{name}.json").read_text())
    hf_quant = CONFIGS / "hf_quant" / f"{name}.json"  # ModelOpt's hf_quant_config.json
    if hf_quant.is_file():
        config = quant.with_hf_quant_config(config, json.loads(hf_quant.read_text()))
    imported = hf.import_config(config, source="x").spec
    preset = load_model(name)
    ignore = {"name", "source", "published_params"}
    assert imported.model_dump(exclude=ignore) == preset.model_dump(exclude=ignore)


def _tolerance(text: str, published: int) -> float:
    """Relative slack a published figure allows: 0.5%, or half its last stated digit."""
    import re

    match = re.search(r"(\d+(?:\.\d+)?)\s*([MBT])\b", text)
    if not match:
        return 0.005
    digits = Decimal(match.group(1))
    unit = {"M": 10**6, "B": 10**9, "T": 10**12}[match.group(2)]
    half_step = Decimal(1).scaleb(digits.as_tuple().exponent) / 2 * unit
    return max(0.005, float(half_step) / published)


@pytest.mark.parametrize("name", MODEL_PRESETS)
def test_parameter_count_near_published_figure(name: str) -> None:
    """The exact count (with the vision tower where the spec counts one, as the published
    multimodal figures do) is within 0.5% of the published figure (or its own rounding)."""
    meta = yaml.safe_load((CONFIGS / f"{name}.meta.yaml").read_text())
    published = meta.get("published_params")
    if not published or name in PUBLISHED_FIGURE_EXCEPTIONS:
        pytest.skip(PUBLISHED_FIGURE_EXCEPTIONS.get(name, "no published figure found"))
    spec = load_model(name)
    assert spec.n_params is not None
    n_params = spec.n_params + (spec.tower.params if spec.tower is not None else 0)
    slack = _tolerance(meta.get("published_params_text") or "", published)
    assert abs(n_params - published) <= slack * published, (n_params, published, slack)


def test_names_are_case_insensitive_with_did_you_mean() -> None:
    """Preset names ignore case; a typo suggests the closest name."""
    assert load_model("LLaMA-3.1-8B").name == load_model("llama-3.1-8b").name
    with pytest.raises(KvcalcError, match=r"did you mean 'llama-3\.1-8b'"):
        load_model("llama-3.1-8")


def test_user_preset_shadows_bundled(tmp_path: Path) -> None:
    """A user preset of the same name wins over the bundled one."""
    (tmp_path / "llama-3.1-8b.yaml").write_text(
        "name: Mine\nsource: test\nn_layers: 1\nd_model: 64\nvocab_size: 10\n"
        "attention: {kind: mha, n_heads: 4, head_dim: 16}\n"
    )
    assert load_model("llama-3.1-8b", tmp_path).name == "Mine"
    assert "llama-3.1-8b" in load_all_models(tmp_path)


def test_bundled_presets_dir_holds_models_and_gpus() -> None:
    """The source tree's presets/ is the fallback for editable installs."""
    root = bundled_presets_dir()
    assert (root / "models").is_dir()
    assert (root / "gpus").is_dir()


# Published quantisations whose module layout kvcalc has not read: counted in the model
# dtype (an upper bound) with a warning at import, each with the reason.
UNSIZED_QUANT: dict[str, str] = {}  # none now: DeepSeek-V4 is sized (docs/deepseek-v4.md)


@pytest.mark.parametrize("name", sorted(UNSIZED_QUANT))
def test_unsized_quantisations_warn_at_import(name: str) -> None:
    """A quantised checkpoint whose layout is not read warns that its weights are counted
    in the model dtype, naming the family (never silently bf16)."""
    config = json.loads((CONFIGS / f"{name}.json").read_text())
    imported = hf.import_config(config, source="t")
    assert imported.spec.weights_quant is None
    assert any("upper bound" in w and repr(UNSIZED_QUANT[name]) in w for w in imported.warnings), (
        imported.warnings
    )


@pytest.mark.parametrize("name", MODEL_PRESETS)
def test_quantised_checkpoints_are_sized_as_published(name: str) -> None:
    """A preset whose published config carries a quantization_config (or a ModelOpt
    hf_quant_config.json) records its weights as published, never silently as bf16; and a
    quantised part is never more than 2 B per weight nor less than 1/2 B."""
    path = CONFIGS / f"{name}.json"
    if not path.is_file():
        pytest.skip("no published config")
    config = json.loads(path.read_text())
    inner = config.get("text_config") if isinstance(config.get("text_config"), dict) else {}
    quantised = "quantization_config" in config or "quantization_config" in (inner or {})
    quantised = quantised or (CONFIGS / "hf_quant" / f"{name}.json").is_file()
    spec = load_model(name)
    if not quantised or name in UNSIZED_QUANT:
        assert spec.weights_quant is None
        return
    wq = spec.weights_quant
    assert wq is not None, f"{name}: published quantised but weights sized in {spec.dtype}"
    for part in (wq.attention, wq.mlp, wq.experts):
        assert part.quantized_weights <= part.weights
        if part.weights:
            assert part.weights // 2 <= part.bytes <= 2 * part.weights
