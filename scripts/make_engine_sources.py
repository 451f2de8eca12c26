"""Regenerate the "Sources, profile by profile" block of docs/engines.md from the engine
profiles themselves (kvcalc.engines.ENGINES); tests/test_docs.py fails on drift."""

from __future__ import annotations

import sys
from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "engines.md"
BEGIN, END = "<!-- sources:begin -->", "<!-- sources:end -->"


def render() -> str:
    """Return the block: for each profile its summary and every source it was read from."""
    from kvcalc.engines import ENGINES

    lines = [BEGIN, ""]
    for profile in ENGINES.values():
        lines += [f"### `{profile.name}`", "", profile.summary + ".", ""]
        lines += [f"- `{source}`" for source in profile.sources]
        lines.append("")
    lines.append(END)
    return "\n".join(lines)


def updated(text: str) -> str:
    """Return the page with its block replaced (or appended under its heading)."""
    if BEGIN in text:
        head, rest = text.split(BEGIN, 1)
        return head + render() + rest.split(END, 1)[1]
    return (
        text.rstrip("\n")
        + "\n\n## Sources, profile by profile\n\n"
        + "Each profile's rules were read from these files (`owner/repo:path:symbol` in the\n"
        + "engine's public repository); `kvcalc engines` prints the same list.\n\n"
        + render()
        + "\n"
    )


if __name__ == "__main__":
    DOC.write_text(updated(DOC.read_text()))
    print(f"wrote {DOC}", file=sys.stderr)
