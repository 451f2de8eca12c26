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
from kvcalc.presets import load_model

if os.environ.get("KVCALC_SKIP_CROSSCHECK") == "1":
    pytest.importorskip("torch")
    pytest.importorskip("transformers")

from tests.crosscheck import measure

pytestmark = pytest.mark.crosscheck

CONFIGS = Path(__file__).parent / "data" / "hf_configs"
PRESETS = Path(__file__).parent.parent / "presets" / "models"
# published configs with a bundled preset (configs waiting for an importer have none yet)
STEMS = sorted(p.stem for p in CONFIGS.glob("*.json") if (PRESETS / f"{p.stem}.yaml").is_file())
# shape-only configs for families without a bundled preset (unknown_llama_like cannot be built)
SYNTHETIC = sorted(
    p for p in (CONFIGS.parent / "hf_synthetic").glob("*.json") if p.stem != "unknown_llama_like"
)


def _points(stem: str) -> list[tuple[int, int]]:
    """(seq, batch) points: odd sizes, a long one, and one past every sliding window or chunk."""
    spec = load_model(stem)
    points = [(777, 3), (8192, 1)]
    if spec.layers is not None:
        span = max(spec.layers.sliding_window or 0, spec.layers.chunk_size or 0)
        points.append((span + 333, 2))
    return points


def _predicted_per_layer(stem: str, seq: int, batch: int) -> list[int]:
    spec = load_model(stem)
    result = kv_cache(
        spec,
        Workload(seq_len=seq, batch=batch, k_dtype=kv_dtype("bf16"), v_dtype=kv_dtype("bf16")),
        ENGINES["hf"],
    )
    by_window = {g.key: g for g in result.groups}
    return [
        by_window[w].tokens * batch * by_window[w].bytes_per_token_per_layer
        for w in spec.layer_windows()
    ]


@pytest.mark.parametrize("stem", STEMS)
def test_hf_engine_matches_transformers_cache(stem: str) -> None:
    """Every layer's K+V bytes in transformers' DynamicCache equal kvcalc's `hf` prediction."""
    config = json.loads((CONFIGS / f"{stem}.json").read_text())
    for seq, batch in _points(stem):
        measured = [k + v for k, v in measure.measure_cache(config, seq, batch)]
        predicted = _predicted_per_layer(stem, seq, batch)
        assert measured == predicted, f"{stem} at seq {seq}, batch {batch}"


@pytest.mark.parametrize("stem", STEMS)
def test_parameter_count_matches_meta_model(stem: str) -> None:
    """The preset's exact parameter count equals sum(p.numel()) of the transformers model."""
    config = json.loads((CONFIGS / f"{stem}.json").read_text())
    assert load_model(stem).n_params == measure.count_params(config)


@pytest.mark.parametrize("path", SYNTHETIC, ids=lambda p: p.stem)
def test_import_matches_transformers_on_other_families(path: Path) -> None:
    """Families without a bundled preset: imported cache bytes and parameter count match transformers."""
    from kvcalc import hf

    config = json.loads(path.read_text())
    spec = hf.import_config(config, source="test").spec
    assert spec.n_params == measure.count_params(config)
    for seq, batch in ((777, 3), (300, 2)):
        result = kv_cache(
            spec,
            Workload(seq_len=seq, batch=batch, k_dtype=kv_dtype("bf16"), v_dtype=kv_dtype("bf16")),
            ENGINES["hf"],
        )
        by_window = {g.key: g for g in result.groups}
        predicted = [
            by_window[w].tokens * batch * by_window[w].bytes_per_token_per_layer
            for w in spec.layer_windows()
        ]
        measured = [k + v for k, v in measure.measure_cache(config, seq, batch)]
        assert measured == predicted, f"{path.stem} at seq {seq}, batch {batch}"
