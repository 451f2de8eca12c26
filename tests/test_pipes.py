"""Pipes and exit codes, through real processes: a closed stdout is never an error.

`kvcalc ... | head` must end quietly with the answer's exit code (0, or 1 for "does not fit"),
never rich's SystemExit(1) or Python's "Exception ignored ... BrokenPipeError" and exit 120.
Each case is reproduced deterministically (the reader gone before the first write; the
reader gone mid-output through a one-page pipe), and the racy `| head` itself is run 100
times per command in forked children so that it stays a matter of seconds.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # real processes / thousands of examples: not in the quick subset

ROOT = Path(__file__).resolve().parent.parent
KVCALC = [sys.executable, "-m", "kvcalc"]
DEPLOYMENTS = str(ROOT / "docs" / "examples" / "deployments.yaml")

# (argv, exit code when the whole answer is read): every command and output path
COMMANDS: list[tuple[list[str], int]] = [
    ([], 0),
    (["--help"], 0),
    (["-V"], 0),
    (["calc", "--help"], 0),
    (["engines"], 0),
    (["engines", "-f", "json"], 0),
    (["calc", "opt-30b"], 0),
    (["calc", "gemma-2-9b", "--tp", "2", "-f", "json"], 0),
    (["calc", "opt-30b", "-f", "csv"], 0),
    (["calc", "opt-30b", "-f", "yaml"], 0),
    (["presets", "list"], 0),
    (["presets", "list", "-f", "csv"], 0),
    (["presets", "show", "deepseek-v3"], 0),
    (["gpus", "list"], 0),
    (["fit", "llama-3.1-8b"], 0),
    (["fit", "llama-3.1-8b", "-g", "h100-80gb"], 0),
    (["fit", "llama-3.1-8b", "-g", "l4", "--batch", "64", "--check"], 1),
    (["fit", "llama-3.1-8b", "-f", "json"], 0),
    (["import", str(ROOT / "tests" / "data" / "hf_configs" / "llama-3.1-8b.json")], 0),
    (["check", DEPLOYMENTS], 1),
]
IDS = [" ".join(argv) or "(no args)" for argv, _ in COMMANDS]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("KVCALC_PRESETS", "COLUMNS")}
    env["PYTHONPATH"] = str(ROOT)
    return env


def _run_into_closed_pipe(argv: list[str], pipe_bytes: int | None, read: int) -> tuple[int, str]:
    """Run kvcalc with stdout on a pipe whose reader reads `read` bytes and leaves."""
    r, w = os.pipe()
    if pipe_bytes is not None:
        import fcntl

        fcntl.fcntl(w, 1031, pipe_bytes)  # F_SETPIPE_SZ: the writer blocks after one page
    if read == 0:
        os.close(r)
    proc = subprocess.Popen(
        [*KVCALC, *argv], stdout=w, stderr=subprocess.PIPE, env=_env(), cwd=ROOT
    )
    os.close(w)
    if read:
        os.read(r, read)
        os.close(r)
    _, stderr = proc.communicate(timeout=60)
    return proc.returncode, stderr.decode()


@pytest.mark.parametrize(("argv", "code"), COMMANDS, ids=IDS)
def test_reader_gone_before_any_output(argv: list[str], code: int) -> None:
    """The reader closed before the first write: exit with the answer's code, nothing on stderr."""
    returncode, stderr = _run_into_closed_pipe(argv, None, 0)
    assert (returncode, stderr) == (code, "")


@pytest.mark.skipif(sys.platform != "linux", reason="F_SETPIPE_SZ is Linux-only")
@pytest.mark.parametrize(
    ("argv", "code"),
    [
        (["engines"], 0),
        (["presets", "list"], 0),
        (["gpus", "list"], 0),
        (["fit", "llama-3.1-8b"], 0),
        (["fit", "llama-3.1-8b", "-f", "json"], 0),
        (["presets", "show", "deepseek-v3", "-f", "json"], 0),
    ],
)
def test_reader_gone_mid_output(argv: list[str], code: int) -> None:
    """The reader took 10 bytes of a one-page pipe and left mid-write: same quiet exit."""
    returncode, stderr = _run_into_closed_pipe(argv, 4096, 10)
    assert (returncode, stderr) == (code, "")


_FORKS = textwrap.dedent(
    """
    import os, sys
    from kvcalc.cli import main
    argv, read, runs = sys.argv[1].split(), int(sys.argv[2]), int(sys.argv[3])
    saved = os.dup(1)  # warm up once in this process (imports, preset caches) so forks are quick
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
    sys.argv = ["kvcalc", *argv]
    try:
        main()
    except SystemExit:
        pass
    sys.stdout.flush()
    os.dup2(saved, 1)
    codes = []
    for _ in range(runs):
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            os.dup2(w, 1)
            os.dup2(os.open(os.devnull, os.O_WRONLY), 2)
            sys.argv = ["kvcalc", *argv]
            try:
                main()
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            try:  # what the interpreter does on exit: a failing flush means exit 120
                sys.stdout.flush()
            except BrokenPipeError:
                code = 120
            os._exit(code)
        os.close(w)
        os.read(r, read)  # `head -c N`: take a little, then leave
        os.close(r)
        codes.append(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
    print(" ".join(map(str, codes)))
    """
)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
@pytest.mark.parametrize(
    "argv",
    ["engines", "calc opt-30b", "calc opt-30b -f json", "gpus list"],
)
def test_head_race_100_runs(argv: str) -> None:
    """`kvcalc ARGS | head -c 10`, 100 times: every run exits 0 (was 1 in 7 of 10 for calc)."""
    out = subprocess.run(
        [sys.executable, "-c", _FORKS, argv, "10", "100"],
        capture_output=True, text=True, env=_env(), cwd=ROOT, timeout=120, check=True,
    )  # fmt: skip
    codes = out.stdout.split()
    assert len(codes) == 100
    assert set(codes) == {"0"}, out.stdout


@pytest.mark.parametrize(
    ("argv", "code"),
    [
        (["calc", "opt-30b", "-f", "csv"], 0),
        (["fit", "llama-3.1-8b", "-g", "h100-80gb", "--check"], 0),
        (["fit", "llama-3.1-8b", "-g", "l4", "--batch", "64", "--check"], 1),
        (["fit", "llama-3.1-8b", "-g", "l4", "--batch", "64"], 0),
        (["check", DEPLOYMENTS], 1),
        (["calc", "opt-31b"], 2),
        (["calc", "opt-30b", "--seq", "lots"], 2),
        (["calc", "opt-30b", "--no-such-option"], 2),
        (["no-such-command"], 2),
        (["fit", "llama-3.1-8b", "--gpu-mem", "80"], 2),
    ],
)
def test_exit_codes_as_documented(argv: list[str], code: int) -> None:
    """A real process exits 0 ok/fits, 1 does not fit (--check and check only), 2 bad input;
    on 2 stderr is exactly one `error:` line."""
    proc = subprocess.run(
        [*KVCALC, *argv], capture_output=True, text=True, env=_env(), cwd=ROOT, timeout=60
    )
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr
    if code == 2:
        assert proc.stdout == ""
        lines = proc.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr


def test_check_failure_exits_1(tmp_path: Path) -> None:
    """`kvcalc check` on a deployment that does not fit exits 1, also when piped into a closed
    reader (pipefail CI must not pass): llama-3.1-8b bf16 weights alone are 16 GB > an L4's 24 GB
    budget once 64 × 8k tokens of KV (64 GiB, 2·8·128·32·2 B per token) are added."""
    path = tmp_path / "d.yaml"
    path.write_text("deployments:\n  - {model: llama-3.1-8b, gpu: l4, batch: 64}\n")
    proc = subprocess.run(
        [*KVCALC, "check", str(path)], capture_output=True, text=True, env=_env(), cwd=ROOT
    )
    assert proc.returncode == 1 and proc.stdout.startswith("FAIL")
    assert _run_into_closed_pipe(["check", str(path)], None, 0) == (1, "")
