"""The command line: wires the commands of kvcalc/commands/ into one typer app.

This module and kvcalc/commands/ are the only ones that import typer. Every user error is a
KvcalcError (or a click usage error) and becomes one `error: ...` line on stderr, exit code 2.
"""

import functools
import sys
from enum import EnumMeta
from pathlib import Path
from typing import Any

import typer

# typer 0.29 vendors click as typer._click; its exceptions are what commands raise
from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError
from typer.core import TyperArgument, TyperGroup, TyperOption

from kvcalc import __version__
from kvcalc.commands import _shared
from kvcalc.errors import KvcalcError


class _StdoutClosed(Exception):
    """stdout's reader left; not an OSError, so that typer's own EPIPE exit(1) lets it by."""


class _Argument(TyperArgument):
    """An argument whose help reads `MODEL`, `[MODEL]` or `FILE...`: no typer type tags."""

    def display_type_rich(self, ctx: Any) -> str | None:
        return None

    def _usage_display_name(self) -> str:
        name = self.display_name_raw.removesuffix("...")
        if self.nargs != 1:
            name += "..."
        return name if self.required else f"[{name}]"


class _Option(TyperOption):
    """An option whose choices read `table|json|csv|yaml`, not `<table|json|csv|yaml>`."""

    def display_type_rich(self, ctx: Any) -> str | None:
        shown = super().display_type_rich(ctx)
        return shown[1:-1] if shown and shown.startswith("<") and "|" in shown else shown


# Examples shown at the end of each command's --help (and so in docs/cli.md).
EXAMPLES: dict[str, list[str]] = {  # each runs from the repository root (tests/test_docs.py)
    "calc": [
        "kvcalc calc opt-30b --seq 1024 --batch 128 --kv-dtype fp16",
        "kvcalc calc deepseek-v3 --seq 128k --tp 8 --format json",
        "kvcalc calc tests/data/hf_configs/llama-3.1-8b.json --engine sglang",
    ],
    "fit": [
        "kvcalc fit llama-3.1-8b --gpu h100-80gb --seq 8k --batch 64",
        "kvcalc fit llama-3.1-70b --seq 32k --weights-dtype fp8",
        "kvcalc fit llama-3.1-8b --gpu l4 --batch 64 --check",
    ],
    "check": [
        "kvcalc check docs/examples/deployments.yaml",
        "kvcalc check docs/examples/deployments.yaml --format json",
    ],
    "import": [
        "kvcalc import tests/data/hf_configs/llama-3.1-8b.json",
        "kvcalc import tests/data/hf_configs/qwen3-8b.json --name 'My Qwen'",
    ],
    "engines": ["kvcalc engines", "kvcalc engines --format json"],
    "presets list": ["kvcalc presets list", "kvcalc presets list --format csv"],
    "presets show": ["kvcalc presets show llama-3.1-8b", "kvcalc presets show opt-30b -f json"],
    "gpus list": ["kvcalc gpus list", "kvcalc gpus list --format json"],
    "explain": ["kvcalc explain deepseek-v3 --seq 8k"],
    "compare": ["kvcalc compare deepseek-v3 llama-3.1-70b --seq 8k"],
    "sweep": ["kvcalc sweep -m llama-3.1-8b,deepseek-v3 --seq 1k,32k --engine formula"],
    "verify": [
        "kvcalc verify tests/data/logs/llama.cpp-gpt-oss-120b-rocm.log --model gpt-oss-120b"
    ],
    "plot": ["kvcalc plot llama-3.1-8b --seq 4k..16k --batch 8 --format csv"],
}


def _tidy(command: Any, path: tuple[str, ...] = ()) -> None:
    """Give every command its examples, an uncut summary, and plain argument/option help."""
    for param in command.params:
        if type(param) is TyperArgument:
            param.__class__ = _Argument
        elif type(param) is TyperOption:
            param.__class__ = _Option
    if path and command.help and not command.short_help:
        command.short_help = command.help.strip().split("\n\n")[0].replace("\n", " ")
    _refuse_repeats(command)
    examples = EXAMPLES.get(" ".join(path))
    if examples and not command.epilog:
        command.epilog = "\b\nExamples:\n" + "\n".join(f"  $ {e}" for e in examples)
    for name, sub in getattr(command, "commands", {}).items():
        _tidy(sub, (*path, name))


def _refuse_repeats(command: Any) -> None:
    """Make a single-valued option given twice a usage error, never "the last one wins".

    Options that take lists (sweep's) are `multiple` and accumulate; flags may repeat.
    """
    single = {
        opt: param.opts[0]
        for param in command.params
        if isinstance(param, TyperOption) and not param.multiple and not param.is_flag
        for opt in param.opts
    }
    if not single or getattr(command, "_repeats_refused", False):
        return
    original = command.parse_args

    def parse_args(ctx: Any, args: list[str]) -> Any:
        seen: set[str] = set()
        expects_value = False
        for arg in args:
            if arg == "--":
                break
            if expects_value:  # this token is the previous option's value
                expects_value = False
                continue
            name = single.get(arg.split("=", 1)[0] if arg.startswith("--") else arg)
            if name is None:
                continue
            if name in seen:
                raise UsageError(f"{name} given more than once; it takes one value", ctx)
            seen.add(name)
            expects_value = "=" not in arg
        return original(ctx, args)

    command.parse_args = parse_args
    command._repeats_refused = True


class _Group(TyperGroup):
    """Runs commands so that every bad input becomes one `error:` line and exit code 2.

    Exit codes: 0 success (and "fits"), 1 "does not fit" (fit --check, check), 2 bad input,
    130 interrupted. A closed stdout (`kvcalc ... | head`) is not an error: it exits quietly
    with the answer's code (0, or 1 when the answer being printed is "does not fit").
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _tidy(self)

    def main(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["standalone_mode"] = False
        try:
            code = self._run(*args, **kwargs)
            sys.stdout.flush()  # a reader that left shows up here, not at interpreter exit
        except (BrokenPipeError, _StdoutClosed):
            _stdout_gone()
        sys.exit(code)

    # typer's main turns a BrokenPipeError into sys.exit(1); carry it past as _StdoutClosed.
    # make_context covers --help (printed while parsing), invoke covers every command.
    def make_context(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().make_context(*args, **kwargs)
        except BrokenPipeError:
            raise _StdoutClosed from None

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except BrokenPipeError:
            raise _StdoutClosed from None

    def _run(self, *args: Any, **kwargs: Any) -> int:
        _shared._answer(0)
        try:
            result = super().main(*args, **kwargs)
        except KvcalcError as exc:
            return _fail(str(exc))
        except NoArgsIsHelpError as exc:
            if exc.ctx is not None:
                sys.stdout.write(exc.ctx.get_help() + "\n")
            return 0
        except UsageError as exc:
            return _fail(_usage_message(exc))
        except ClickException as exc:
            return _fail(exc.format_message())
        except (typer.Abort, KeyboardInterrupt):
            sys.stderr.write("aborted\n")
            return 130
        except Exception as exc:
            # the readers wrap what they expect; this is the backstop for bad input that
            # slipped past them (pydantic, YAML, JSON, Unicode and OS errors): still one line
            message = _input_error(exc)
            if message is None:
                raise
            return _fail(message)
        return result if isinstance(result, int) and not isinstance(result, bool) else 0


def _stdout_gone() -> None:
    """The reader of stdout left (`kvcalc ... | head`): nothing is wrong, exit quietly.

    The exit code is the answer's: 0, or 1 when a fit or check command's answer, recorded
    before printing, is "does not fit".

    stdout is pointed at /dev/null so that the interpreter's last flush cannot fail again
    (see https://docs.python.org/3/library/signal.html#note-on-sigpipe).
    """
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # not a real file (a test's capture): nothing to redirect
        pass
    sys.exit(_shared._answer_code[0])


def _input_error(exc: BaseException) -> str | None:
    """Return the one-line message for an error caused by bad input, or None for a bug."""
    from pydantic import ValidationError

    from kvcalc.specs import format_validation_error

    if isinstance(exc, ValidationError):
        return f"invalid {exc.title}: {format_validation_error(exc)}"
    if isinstance(exc, UnicodeDecodeError):
        return f"not UTF-8 text ({exc.reason} at byte {exc.start})"
    if isinstance(exc, RecursionError):
        return "input nested too deeply"
    if isinstance(exc, MemoryError):
        return "input too large to read"
    if isinstance(exc, OSError) and not isinstance(exc, BrokenPipeError):
        where = f"{exc.filename}: " if exc.filename else ""
        return f"{where}{exc.strerror or exc}"
    yaml = sys.modules.get("yaml")
    if yaml is not None and isinstance(exc, yaml.YAMLError):
        return f"malformed YAML: {str(exc).splitlines()[0]}"
    if type(exc).__name__ == "JSONDecodeError":
        return f"malformed JSON: {exc}"
    return None


def _usage_message(exc: UsageError) -> str:
    message = exc.format_message().replace("\n", " ").strip()
    if exc.ctx is not None and exc.ctx.command_path:
        return f"{message} (see `{exc.ctx.command_path} --help`)"
    return message


def _fail(message: str) -> int:
    sys.stderr.write(f"error: {' '.join(message.split())}\n")
    return 2


# Each command, in --help order: its name -> (module of kvcalc/commands, function), or for a
# group its help and sub-commands. A run imports only the module of the command it runs
# (see main); `app` (for tests and docs) holds them all.
_Where = tuple[str, str]
_COMMANDS: dict[str, _Where | tuple[str, dict[str, _Where]]] = {
    "calc": ("calc", "calc"),
    "presets": (
        "List and show model presets.",
        {"list": ("presets", "presets_list"), "show": ("presets", "presets_show")},
    ),
    "engines": ("engines", "engines"),
    "import": ("import_", "import_"),
    "fit": ("fit", "fit_command"),
    "gpus": ("List GPU presets.", {"list": ("gpus", "gpus_list")}),
    "check": ("check", "check_command"),
    "verify": ("verify", "verify_command"),
    "sweep": ("sweep", "sweep_command"),
    "explain": ("explain", "explain_command"),
    "compare": ("compare", "compare_command"),
    "plot": ("plot", "plot_command"),
}


def _version(value: bool) -> None:
    if value:
        sys.stdout.write(f"kvcalc {__version__}\n")
        raise typer.Exit(0)


def _root(
    version: bool = typer.Option(
        False,
        "--version",
        "-V",
        callback=_version,
        is_eager=True,
        help="Show the version and exit.",
    ),
) -> None:
    """Exact KV-cache memory calculator and capacity planner for LLM inference."""


def _function(where: tuple[str, str]) -> Any:
    from importlib import import_module

    module, name = where
    return getattr(import_module(f"kvcalc.commands.{module}"), name)


def _coerce_without_adapters() -> None:
    """Coerce kvcalc's option types without building a pydantic TypeAdapter for each.

    typer 0.29 coerces every parsed parameter through a pydantic TypeAdapter built for it
    (typer/_coercion.py build_runtime_param, about 1 ms each: a third of `calc`'s start-up
    over a bare typer command, and the first one imports pydantic's schema machinery).
    For str, bool, enum and Path parameters without a parser the adapter is
    `Annotated[..., BeforeValidator(f)]` (typer/_adapters.py build_leaf_adapter) around a
    value click has already parsed, f being typer's own `_parse_cli_str`, bool parsing,
    `coerce_cli_choice` or `coerce_cli_path`, and `_PlainParam` calls f itself; an int or
    float without bounds is int() / float(). Any other parameter (lists, dicts, bounded
    numbers), or a typer without these functions, is left to typer.
    """
    from typer import core

    original = getattr(core, "build_runtime_param", None)
    if original is None or getattr(original, "kvcalc_shared", False):
        return

    def build_runtime_param(descriptor: Any) -> Any:
        annotation = descriptor.annotation
        plain = _plain_param_class()  # built on first use: typer._adapters imports pydantic
        if (
            plain is None
            or not (
                annotation in (str, bool)
                or (annotation in (int, float) and _unbounded(descriptor.parameter_info))
                or isinstance(annotation, EnumMeta)
                or (isinstance(annotation, type) and issubclass(annotation, Path))
            )
            or descriptor.file_annotation is not None
            or getattr(descriptor.parameter_info, "parser", None) is not None
        ):
            return original(descriptor)
        return plain(parameter_info=descriptor.parameter_info, annotation=annotation)

    build_runtime_param.kvcalc_shared = True  # type: ignore[attr-defined]
    core.build_runtime_param = build_runtime_param  # type: ignore[attr-defined]


def _unbounded(info: Any) -> bool:
    """True for a number option without typer's min, max or clamp (a plain int() / float())."""
    return all(getattr(info, key, None) in (None, False) for key in ("min", "max", "clamp"))


# pydantic's lax bool strings (what typer's bool adapter accepts), lower-cased
_BOOL_WORDS = {
    **dict.fromkeys(("1", "on", "t", "true", "y", "yes"), True),
    **dict.fromkeys(("0", "off", "f", "false", "n", "no"), False),
}


@functools.cache
def _plain_param_class() -> Any:
    """Return a typer RuntimeParam coercing without an adapter (None: this typer has none)."""
    from dataclasses import dataclass

    try:
        from typer import _adapters
        from typer._click.exceptions import BadParameter
        from typer._coercion import RuntimeParam
        from typer._param_types import coerce_cli_choice, coerce_cli_path
    except ImportError:
        return None

    @dataclass(frozen=True)
    class _PlainParam(RuntimeParam):
        def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
            if self.annotation is str:
                try:
                    return _adapters._parse_cli_str(value)
                except ValueError as exc:
                    raise BadParameter(str(exc), ctx=ctx, param=param) from exc
            if isinstance(self.annotation, type) and issubclass(self.annotation, Path):
                path_type = self.parameter_info.path_type or self.annotation
                try:  # os.stat refuses a NUL byte with ValueError
                    return coerce_cli_path(
                        value, self.parameter_info, path_type=path_type, param=param, ctx=ctx
                    )
                except ValueError as exc:
                    raise BadParameter(str(exc), ctx=ctx, param=param) from exc
            if self.annotation in (int, float):
                if isinstance(value, self.annotation) and not isinstance(value, bool):
                    return value
                try:
                    return self.annotation(value)
                except (TypeError, ValueError):
                    kind = "an integer" if self.annotation is int else "a number"
                    raise BadParameter(f"{value!r} is not {kind}.", ctx=ctx, param=param) from None
            if self.annotation is not bool:
                choices = list(self.annotation)
                sensitive = self.parameter_info.case_sensitive
                try:
                    return coerce_cli_choice(
                        value, choices=choices, case_sensitive=sensitive, ctx=ctx
                    )
                except ValueError as exc:
                    raise BadParameter(str(exc), ctx=ctx, param=param) from exc
            parsed = _adapters._parse_cli_bool(value)
            if isinstance(parsed, bool):
                return parsed
            if isinstance(parsed, str) and parsed.lower() in _BOOL_WORDS:
                return _BOOL_WORDS[parsed.lower()]
            raise BadParameter(f"{value!r} is not a valid boolean.", ctx=ctx, param=param)

    return _PlainParam


def build_app(only: str | None = None) -> typer.Typer:
    """Return the typer app with every command, or with the one named `only` alone."""
    _coerce_without_adapters()
    root = typer.Typer(
        cls=_Group,
        help="Exact KV-cache memory calculator and capacity planner for LLM inference.",
        no_args_is_help=True,
        pretty_exceptions_show_locals=False,
        add_completion=True,
        rich_markup_mode=None,
    )
    root.callback()(_root)
    for name in _COMMANDS if only is None else (only,):
        first, second = _COMMANDS[name]
        if isinstance(second, dict):  # a group: its help, its sub-commands
            group = typer.Typer(help=first, no_args_is_help=True)
            root.add_typer(group, name=name)
            for sub, where in second.items():
                group.command(sub)(_function(where))
        else:
            root.command(name)(_function((first, second)))
    return root


def __getattr__(name: str) -> Any:
    if name == "app":  # built on first use: a run builds only its own command (main)
        full = globals()["app"] = build_app()
        return full
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# Commands whose work grows with their input (a million-row sweep, 100,000 deployments, a
# log): they run with the cycle collector on. The others answer one question.
_GC_COMMANDS = frozenset({"sweep", "check", "plot", "verify", "compare", "import"})


def _pause_gc() -> None:
    """Switch the cycle collector off for a one-answer command.

    Starting a command allocates tens of thousands of long-lived objects (typer's parameter
    coercion imports pydantic; kvcalc's specs, formulas and profiles are classes), and the
    collector walks them again and again, for nothing: they are modules and classes,
    which live to the end. A one-answer command creates little garbage, and reference
    counting frees it. (The interpreter frees everything at exit either way.)
    """
    import gc

    gc.disable()


def main() -> None:
    """Console-script entry point: builds only the command being run, when one is named.

    Building every command's options costs more start-up than most commands' own work;
    `--help`, a mistyped command (did-you-mean) and shell completion get the whole app.
    """
    import os

    first = sys.argv[1] if len(sys.argv) > 1 else None
    if first not in _GC_COMMANDS:
        _pause_gc()
    completing = any(key.endswith("_COMPLETE") for key in os.environ)
    build_app(first if first in _COMMANDS and not completing else None)()
