"""kvcalc engines: the engine profiles and their assumptions."""

from typing import Any

from kvcalc.commands._shared import (
    FORMAT_OPTION,
    OutputFormat,
    _console,
    _emit,
)


def engines(fmt: OutputFormat = FORMAT_OPTION) -> None:
    """List the engine profiles and what each assumes."""
    from kvcalc.engines import ENGINES

    rows: list[dict[str, Any]] = [
        {
            "engine": p.name,
            "summary": p.summary,
            "version": p.version,
            "block_size": p.block_size,
            "assumptions": list(p.assumptions_for({"sliding", "chunked", "mla", "pp", "falcon"})),
            "sources": list(p.sources),
        }
        for p in ENGINES.values()
    ]
    if fmt is OutputFormat.table:
        from kvcalc.render import render_text

        console = _console()
        for row in rows:
            body = f"rules of: {row['version']}\n" if row["version"] else ""
            body += "\n".join(f"· {a}" for a in row["assumptions"])
            body += "\n" + "\n".join(f"source: {s}" for s in row["sources"])
            render_text(console, body, title=f"{row['engine']}: {row['summary']}")
    else:
        _emit(rows, fmt, ["engine", "summary", "block_size"])
