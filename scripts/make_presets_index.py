"""Regenerate kvcalc/presets_index.py: every bundled preset, validated, with its SHA-256.

Run after adding or editing a file under presets/: python scripts/make_presets_index.py
(tests/test_startup.py fails while the index is stale; a stale index is only slower).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kvcalc.presets import INDEX_FILE, build_index


def render() -> str:
    """Return the index module's text: a dict literal, loaded from cached bytecode.

    Each entry's spec is JSON text, parsed only when that preset is asked for: importing
    the module costs about 0.4 ms where json.loads of the whole index cost 1 ms.
    """
    lines = [
        '"""The bundled presets, validated: written by scripts/make_presets_index.py.',
        "",
        "Each entry: (the preset file's SHA-256, its validated spec as JSON text); kvcalc/presets.py",
        "builds a bundled preset from it when the file's bytes still match.",
        '"""',
        "",
        "INDEX: dict[str, dict[str, tuple[str, str]]] = {",
    ]
    for kind, entries in sorted(build_index().items()):
        lines.append(f"    {kind!r}: {{")
        for name, entry in sorted(entries.items()):
            lines.append(f"        {name!r}: ({entry['sha256']!r}, {entry['data']!r}),")
        lines.append("    },")
    lines.append("}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    INDEX_FILE.write_text(render(), encoding="utf-8")
    print(f"wrote {INDEX_FILE}")
