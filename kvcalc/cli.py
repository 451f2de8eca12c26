"""The command line: wires the commands of kvcalc/commands/ into one typer app.

This module and kvcalc/commands/ are the only ones that import typer. Every user error is a
KvcalcError (or a click usage error) and becomes one `error: ...` line on stderr, exit code 2.
"""

from __future__ import annotations

import sys
from typing import Any

import typer

# typer 0.29 vendors click as typer._click; its exceptions are what commands raise
from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError
from typer.core import TyperGroup

from kvcalc import __version__
from kvcalc.commands import (
    calc,
    check,
    compare,
    engines,
    explain,
    fit,
    gpus,
    import_,
    plot,
    presets,
)
from kvcalc.errors import KvcalcError


class _Group(TyperGroup):
    """Runs commands so that every bad input becomes one `error:` line and exit code 2."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["standalone_mode"] = False
        try:
            result = super().main(*args, **kwargs)
        except KvcalcError as exc:
            _fail(str(exc))
        except NoArgsIsHelpError as exc:
            if exc.ctx is not None:
                sys.stdout.write(exc.ctx.get_help() + "\n")
            sys.exit(0)
        except UsageError as exc:
            _fail(_usage_message(exc))
        except ClickException as exc:
            _fail(exc.format_message())
        except typer.Abort:
            sys.stderr.write("aborted\n")
            sys.exit(130)
        except BrokenPipeError:  # `kvcalc ... | head`: the reader left, nothing is wrong
            import os

            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(0)
        sys.exit(result if isinstance(result, int) else 0)


def _usage_message(exc: UsageError) -> str:
    message = exc.format_message().replace("\n", " ").strip()
    if exc.ctx is not None and exc.ctx.command_path:
        return f"{message} (see `{exc.ctx.command_path} --help`)"
    return message


def _fail(message: str) -> None:
    sys.stderr.write(f"error: {' '.join(message.split())}\n")
    sys.exit(2)


app = typer.Typer(
    cls=_Group,
    help="Exact KV-cache memory calculator and capacity planner for LLM inference.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
    rich_markup_mode=None,
)
presets_app = typer.Typer(help="List and show model presets.", no_args_is_help=True)
app.add_typer(presets_app, name="presets")
gpus_app = typer.Typer(help="List GPU presets.", no_args_is_help=True)
app.add_typer(gpus_app, name="gpus")


def _version(value: bool) -> None:
    if value:
        print(f"kvcalc {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Show the version and exit."
    ),
) -> None:
    """Exact KV-cache memory calculator and capacity planner for LLM inference."""


app.command("calc")(calc.calc)
presets_app.command("list")(presets.presets_list)
presets_app.command("show")(presets.presets_show)
app.command("engines")(engines.engines)
app.command("import")(import_.import_)
app.command("fit")(fit.fit_command)
gpus_app.command("list")(gpus.gpus_list)
app.command("check")(check.check_command)
app.command("explain")(explain.explain_command)
app.command("compare")(compare.compare_command)
app.command("plot")(plot.plot_command)


def main() -> None:
    """Console-script entry point."""
    app()
