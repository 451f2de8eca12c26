"""Regenerate kvcalc/presets_index.json: every bundled preset, validated, with its SHA-256.

Run after adding or editing a file under presets/: python scripts/make_presets_index.py
(tests/test_startup.py fails while the index is stale; a stale index is only slower).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kvcalc.presets import INDEX_FILE, build_index


def render() -> str:
    """Return the index file's text."""
    return json.dumps(build_index(), indent=1, sort_keys=True, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    INDEX_FILE.write_text(render(), encoding="utf-8")
    print(f"wrote {INDEX_FILE}")
