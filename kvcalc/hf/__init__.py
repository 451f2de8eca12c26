"""Hugging Face config.json (a dict) -> ModelSpec: the only package that knows HF key names.

One adapter per model_type, registered in kvcalc/hf/families.py; an unknown family or
cache-changing key is refused there (see docs/families.md). Parameter counts are exact:
`sum(p.numel() for p in model.parameters())` of the transformers model, checked by
tests/test_crosscheck.py on the `meta` device.
"""

from __future__ import annotations

from kvcalc.hf._config import text_config
from kvcalc.hf._import import Imported, import_config
from kvcalc.hf.families import Family, families, supported

__all__ = ["Family", "Imported", "families", "import_config", "supported", "text_config"]
