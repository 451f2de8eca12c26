"""Regenerate docs/families.md from the family table (kvcalc/hf/families.py).

Run: python scripts/make_families_doc.py; tests/test_hf.py fails when the page drifts.
"""

from __future__ import annotations

from pathlib import Path

from kvcalc.hf.families import families_markdown

DOC = Path(__file__).resolve().parent.parent / "docs" / "families.md"

if __name__ == "__main__":
    DOC.write_text(families_markdown(), encoding="utf-8")
    print(f"wrote {DOC.relative_to(DOC.parent.parent)}")
