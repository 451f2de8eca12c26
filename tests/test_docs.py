"""Docs that stay true: every `$ kvcalc ...` example in README.md and docs/ runs and prints
what the page shows; docs/cli.md matches every command's --help."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_BLOCK = re.compile(r"```console\n(.*?)```", re.DOTALL)


def _examples() -> list[tuple[str, str, str]]:
    found = []
    for page in PAGES:
        for block in _BLOCK.findall(page.read_text()):
            command, output = None, []
            for line in block.splitlines():
                if line.startswith("$ "):
                    if command is not None:
                        found.append((page.name, command, "\n".join(output)))
                    command, output = line[2:], []
                else:
                    output.append(line)
            if command is not None:
                found.append((page.name, command, "\n".join(output)))
    return found


EXAMPLES = _examples()


def test_docs_have_examples() -> None:
    """The README and docs carry runnable examples (so this suite checks something)."""
    assert len(EXAMPLES) >= 5


@pytest.mark.parametrize(("page", "command", "expected"), EXAMPLES)
def test_example_output_matches(
    page: str, command: str, expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Running the example's command prints exactly the output shown on the page."""
    from typer.testing import CliRunner

    from kvcalc.cli import app

    argv = shlex.split(command)
    assert argv[0] == "kvcalc"
    monkeypatch.chdir(ROOT)
    result = CliRunner().invoke(app, argv[1:], env={"COLUMNS": "100", "NO_COLOR": "1"})
    shown = "\n".join(line.rstrip() for line in (result.stdout + result.stderr).splitlines())
    assert shown.strip() == "\n".join(line.rstrip() for line in expected.splitlines()).strip()


def test_cli_reference_is_current() -> None:
    """docs/cli.md equals what scripts/make_cli_docs.py generates now."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "make_cli_docs", ROOT / "scripts" / "make_cli_docs.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert (ROOT / "docs" / "cli.md").read_text() == module.render()


def test_every_command_is_documented() -> None:
    """Every command has a section in docs/cli.md."""
    text = (ROOT / "docs" / "cli.md").read_text()
    for command in (
        "calc",
        "fit",
        "check",
        "gpus list",
        "presets list",
        "presets show",
        "engines",
        "import",
    ):
        assert f"## `kvcalc {command}`" in text


def _help_examples() -> list[str]:
    from kvcalc.cli import EXAMPLES

    return [example for examples in EXAMPLES.values() for example in examples]


@pytest.mark.parametrize("example", _help_examples())
def test_help_examples_run(example: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every example in a command's --help runs from the repository root: exit 0, or 1 for a
    documented 'does not fit' (the L4 example), never an error."""
    from typer.testing import CliRunner

    from kvcalc.cli import app

    argv = shlex.split(example)
    monkeypatch.chdir(ROOT)
    result = CliRunner().invoke(app, argv[1:], env={"COLUMNS": "100", "NO_COLOR": "1"})
    assert result.exit_code in (0, 1), result.output
    assert "error:" not in result.stderr


def test_help_shows_no_typer_internals() -> None:
    """No `<str>`, `<list[Path]>`, `{FILE...}...` and no summary cut with '...' in any help."""
    text = (ROOT / "docs" / "cli.md").read_text()
    for internal in ("<str>", "<list[", "<path>", "{FILE", "{MODEL", "}...", "<table|"):
        assert internal not in text, internal
    commands_block = text.split("Commands:", 1)[1].split("```", 1)[0]
    assert "..." not in commands_block


def test_pre_commit_hook_matches_the_docs_deployments_file() -> None:
    """.pre-commit-hooks.yaml's `files:` pattern matches the docs' own deployments file (and
    kvcalc*.yaml), not other YAML; the docs pin `rev: v0.2.0`, the release tag."""
    import yaml

    (hook,) = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    pattern = re.compile(hook["files"])
    for path in ("docs/examples/deployments.yaml", "deployments.yml", "deploy/prod-deployments.yaml",
                 "kvcalc.yaml", "ci/kvcalc-checks.yml"):  # fmt: skip
        assert pattern.search(path), path
    for path in ("presets/models/opt-30b.yaml", "mkdocs.yml", ".pre-commit-config.yaml"):
        assert not pattern.search(path), path
    assert (ROOT / "docs" / "examples" / "deployments.yaml").is_file()
    assert "rev: v0.2.0" in (ROOT / "docs" / "planning.md").read_text()


def test_docs_point_at_no_machine_or_private_path() -> None:
    """No page, preset, GPU note or module refers to ../shared, a /work or /home path, or a
    search id."""
    pages = [
        ROOT / "README.md",
        *(ROOT / "docs").rglob("*.md"),
        ROOT / "presets" / "gpus" / "README.md",
    ]
    pages += sorted((ROOT / "presets" / "gpus").glob("*.yaml"))
    pages += sorted((ROOT / "presets" / "models").glob("*.yaml"))
    pages += sorted((ROOT / "kvcalc").rglob("*.py"))
    for page in pages:
        text = page.read_text()
        for bad in ("../shared", "/work/", "/home/", "ENGINES.md", "find_string", "read_file id"):
            assert bad not in text, f"{page.name}: {bad}"


SCHEMA_COMMANDS = {
    "calc": ["calc", "gemma-2-9b", "--tp", "2"],
    "fit": ["fit", "llama-3.1-8b", "-g", "h100-80gb"],
    "check": ["check", "docs/examples/deployments.yaml"],
    "gpus list": ["gpus", "list"],
    "presets list": ["presets", "list"],
    "engines": ["engines"],
    "explain": ["explain", "opt-30b"],
    "compare": ["compare", "opt-30b", "llama-3.1-8b", "-g", "h100-80gb"],
    "sweep": ["sweep", "-m", "opt-30b", "--seq", "1k,2k"],
}


@pytest.mark.parametrize("name", sorted(SCHEMA_COMMANDS))
def test_every_output_key_is_documented(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every top-level key a command prints as JSON, and every CSV column, is named (in
    backticks) in docs/schemas.md."""
    import csv
    import io
    import json

    from typer.testing import CliRunner

    from kvcalc.cli import app

    monkeypatch.chdir(ROOT)
    text = (ROOT / "docs" / "schemas.md").read_text()
    argv = SCHEMA_COMMANDS[name]
    result = CliRunner().invoke(app, [*argv, "-f", "json"])
    assert result.exit_code in (0, 1), result.output
    data = json.loads(result.stdout)
    keys = {k for row in (data if isinstance(data, list) else [data]) for k in row}
    result = CliRunner().invoke(app, [*argv, "-f", "csv"])
    if result.exit_code in (0, 1) and result.stdout.strip():  # explain has no CSV form
        keys |= set(next(csv.reader(io.StringIO(result.stdout))))
    missing = sorted(k for k in keys if f"`{k}`" not in text)
    assert not missing, f"{name}: undocumented keys {missing}"


def test_every_page_is_in_the_site_nav() -> None:
    """mkdocs.yml's nav lists every page under docs/ (mkdocs build --strict in .ci/run fails
    otherwise; this says so without mkdocs installed)."""
    import yaml

    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())

    def pages(nav: object) -> list[str]:
        if isinstance(nav, str):
            return [nav]
        if isinstance(nav, list):
            return [p for item in nav for p in pages(item)]
        if isinstance(nav, dict):
            return [p for value in nav.values() for p in pages(value)]
        return []

    listed = set(pages(config["nav"]))
    on_disk = {p.relative_to(ROOT / "docs").as_posix() for p in (ROOT / "docs").rglob("*.md")}
    assert on_disk == listed, (on_disk - listed, listed - on_disk)


def test_engine_sources_are_current() -> None:
    """docs/engines.md lists every profile's sources as scripts/make_engine_sources.py
    generates them from kvcalc.engines (so the page cites what the code was read from)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "make_engine_sources", ROOT / "scripts" / "make_engine_sources.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    text = (ROOT / "docs" / "engines.md").read_text()
    assert module.updated(text) == text
