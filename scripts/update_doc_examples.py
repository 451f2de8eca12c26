"""Rewrite the output shown under every `$ kvcalc ...` line of README.md and docs/*.md with
what the command prints now (as tests/test_docs.py runs it: 100 columns, no colour).

    python scripts/update_doc_examples.py [PAGE.md ...]   (default: every page)

Review the diff: a changed number is a changed answer and needs a reason.
"""

from __future__ import annotations

import os
import re
import shlex
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BLOCK = re.compile(r"```console\n(.*?)```", re.DOTALL)


def run(command: str) -> str:
    from typer.testing import CliRunner

    from kvcalc.cli import app

    result = CliRunner().invoke(
        app, shlex.split(command)[1:], env={"COLUMNS": "100", "NO_COLOR": "1"}
    )
    lines = (result.stdout + result.stderr).splitlines()
    return "\n".join(line.rstrip() for line in lines).strip()


def rewrite(block: str) -> str:
    out: list[str] = []
    for line in block.splitlines():
        if line.startswith("$ "):
            out += [line, run(line[2:])]
    return "\n".join(out) + "\n"


def main() -> None:
    os.chdir(ROOT)
    pages = [Path(a).resolve() for a in sys.argv[1:]] or [
        ROOT / "README.md",
        *sorted((ROOT / "docs").rglob("*.md")),
    ]
    for page in pages:
        text = page.read_text()
        new = BLOCK.sub(lambda m: "```console\n" + rewrite(m.group(1)) + "```", text)
        if new != text:
            page.write_text(new)
            print(f"updated {page.relative_to(ROOT)}", file=sys.stderr)


if __name__ == "__main__":
    main()
