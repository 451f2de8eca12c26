"""The CLI through typer's CliRunner: outputs, exit codes, and one-line errors for bad input."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import Result

Run = Callable[..., Result]


def test_version(run_cli: Run) -> None:
    """`kvcalc --version` prints the package version."""
    from kvcalc import __version__

    result = run_cli("--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"kvcalc {__version__}"


@pytest.mark.parametrize(
    "args",
    [[], ["calc"], ["presets"], ["presets", "list"], ["presets", "show"], ["engines"], ["import"]],
)
def test_every_command_has_help(run_cli: Run, args: list[str]) -> None:
    """Every command answers --help with exit 0 and a usage line."""
    result = run_cli(*args, "--help")
    assert result.exit_code == 0
    assert "Usage" in result.stdout


def test_calc_json_opt_30b_acceptance(run_cli: Run) -> None:
    """The seed example as JSON: 2·2·48·7168·1024·128 = 180,388,626,432 B, one object on stdout."""
    result = run_cli(
        "calc",
        "opt-30b",
        "--seq",
        "1024",
        "--batch",
        "128",
        "--kv-dtype",
        "fp16",
        "--format",
        "json",
    )
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["total_bytes"] == 180_388_626_432
    assert data["per_gpu_bytes"] == 180_388_626_432
    # 2·2·48·7168 = 1,376,256 B per token over all layers
    assert data["bytes_per_token"] == 1_376_256
    for key in ("model", "engine", "kv_dtype", "seq_len", "batch", "tp", "pp", "bytes_per_token",
                "total_bytes", "per_gpu_bytes", "layers", "formula"):  # fmt: skip
        assert key in data
    assert data["layers"] == [
        {"kind": "full", "window": None, "count": 48, "tokens": 1024,
         "bytes_per_token_per_layer": 28_672, "bytes": 180_388_626_432}
    ]  # fmt: skip
    assert all(
        isinstance(data[k], int) for k in ("total_bytes", "per_gpu_bytes", "bytes_per_token")
    )
    assert result.stderr == ""


def test_calc_table_shows_gb_and_gib(run_cli: Run) -> None:
    """The table shows the seed example as 180.39 GB and 168.00 GiB, and the formula."""
    result = run_cli("calc", "opt-30b", "--seq", "1024", "--batch", "128", "--kv-dtype", "fp16")
    assert result.exit_code == 0
    assert "180.39 GB" in result.stdout
    assert "168.00 GiB" in result.stdout
    assert "180,388,626,432" in result.stdout
    assert "48 layers × 1,024 tokens × 128 seq × 28,672 B" in result.stdout


def test_calc_accepts_k_suffix_and_tp(run_cli: Run) -> None:
    """--seq 8k is 8192; Llama-3.1-70B at tp 16 under vLLM holds 335,544,320 B per GPU."""
    result = run_cli("calc", "Llama-3.1-70B", "--seq", "8k", "--tp", "16", "--format", "json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["seq_len"] == 8192
    assert data["per_gpu_bytes"] == 335_544_320  # 2·1·128·2·80·8192
    assert data["kv_heads_per_gpu"] == 1


def test_calc_csv_and_yaml(run_cli: Run) -> None:
    """CSV has a header and one row; YAML parses to the same total as JSON."""
    import yaml

    csv_out = run_cli("calc", "llama-3.1-8b", "--format", "csv")
    lines = csv_out.stdout.strip().splitlines()
    assert lines[0].startswith("model,engine,kv_dtype")
    assert lines[1].split(",")[9] == "1073741824"  # total_bytes: 2·8·128·2·32·8192
    yaml_out = yaml.safe_load(run_cli("calc", "llama-3.1-8b", "--format", "yaml").stdout)
    assert yaml_out["total_bytes"] == 1_073_741_824


def test_presets_list_and_show(run_cli: Run) -> None:
    """presets list names the bundled presets with KV bytes/token in bf16; show prints valid YAML."""
    import yaml

    listing = run_cli("presets", "list", "--format", "json")
    rows = {r["name"]: r for r in json.loads(listing.stdout)}
    assert rows["llama-3.1-8b"]["kv_bytes_per_token_bf16"] == 131_072  # 2·8·128·2·32
    assert rows["deepseek-v3"]["kv_bytes_per_token_bf16"] == 70_272  # 576·2·61
    shown = yaml.safe_load(run_cli("presets", "show", "LLAMA-3.1-8B").stdout)
    assert shown["attention"] == {"kind": "gqa", "n_heads": 32, "head_dim": 128, "n_kv_heads": 8}


def test_user_presets_dir_and_env(run_cli: Run, tmp_path: Path) -> None:
    """A preset in --presets DIR or $KVCALC_PRESETS is found by name; a path works in place of a name."""
    (tmp_path / "tiny.yaml").write_text(
        "name: Tiny\nsource: test\nn_layers: 2\nd_model: 64\nvocab_size: 100\n"
        "attention: {kind: mha, n_heads: 4, head_dim: 16}\n"
    )
    # 2 (K,V) · 4 heads · 16 dims · 2 B · 2 layers · 10 tokens = 5,120
    for args, env in (
        (["calc", "tiny", "--seq", "10", "--engine", "formula", "--presets", str(tmp_path)], None),
        (["calc", "TINY", "--seq", "10", "--engine", "formula"], {"KVCALC_PRESETS": str(tmp_path)}),
        (["calc", str(tmp_path / "tiny.yaml"), "--seq", "10", "--engine", "formula"], None),
    ):
        result = run_cli(*args, "--format", "json", env=env)
        assert result.exit_code == 0, result.stderr
        assert json.loads(result.stdout)["total_bytes"] == 5_120


BAD_YAML = "name: [unclosed\n"
UNKNOWN_KEY = (
    "name: X\nsource: s\nn_layers: 2\nd_model: 64\nvocab_size: 10\nlayerz: 3\n"
    "attention: {kind: mha, n_heads: 4, head_dim: 16}\n"
)
BAD_HEADS = (
    "name: X\nsource: s\nn_layers: 2\nd_model: 64\nvocab_size: 10\n"
    "attention: {kind: gqa, n_heads: 32, n_kv_heads: 5, head_dim: 16}\n"
)
NEG_LAYERS = (
    "name: X\nsource: s\nn_layers: -2\nd_model: 64\nvocab_size: 10\n"
    "attention: {kind: mha, n_heads: 4, head_dim: 16}\n"
)
MLA_MISSING = (
    "name: X\nsource: s\nn_layers: 2\nd_model: 64\nvocab_size: 10\n"
    "attention: {kind: mla, n_heads: 4, kv_lora_rank: 512}\n"
)


@pytest.mark.parametrize(
    ("args", "files", "needle"),
    [
        (["calc", "opt-31b"], {}, "did you mean 'opt-30b'"),
        (["calc", "llama-3.1-8b", "--seq", "-5"], {}, "--seq"),
        (["calc", "llama-3.1-8b", "--seq", "0"], {}, "--seq"),
        (["calc", "llama-3.1-8b", "--seq", "lots"], {}, "--seq"),
        (["calc", "llama-3.1-8b", "--batch", "0"], {}, "--batch"),
        (["calc", "llama-3.1-8b", "--batch", "1.5"], {}, "--batch"),
        (["calc", "llama-3.1-8b", "--seq", "99999999999999999"], {}, "absurdly large"),
        (["calc", "llama-3.1-8b", "--kv-dtype", "fp7"], {}, "unknown KV dtype 'fp7'"),
        (["calc", "llama-3.1-8b", "--engine", "vlm"], {}, "did you mean 'vllm'"),
        (["calc", "llama-3.1-8b", "--tp", "3"], {}, "tp 3 does not divide"),
        (["calc", "llama-3.1-8b", "--format", "xml"], {}, "xml"),
        (["calc", "llama-3.1-8b", "--bogus"], {}, "--bogus"),
        (["calc", "llama-3.1-8b", "--engine", "hf", "--tp", "2"], {}, "no tensor parallelism"),
        (["calc", "{d}/bad.yaml"], {"bad.yaml": BAD_YAML}, "malformed YAML"),
        (["calc", "{d}/unknown.yaml"], {"unknown.yaml": UNKNOWN_KEY}, "layerz"),
        (["calc", "{d}/heads.yaml"], {"heads.yaml": BAD_HEADS}, "divisible"),
        (["calc", "{d}/neg.yaml"], {"neg.yaml": NEG_LAYERS}, "n_layers"),
        (["calc", "{d}/mla.yaml"], {"mla.yaml": MLA_MISSING}, "qk_rope_head_dim"),
        (["calc", "{d}/missing.yaml"], {}, "does not exist"),
        (["calc", "{d}/list.yaml"], {"list.yaml": "- 1\n- 2\n"}, "expected a mapping"),
        (["calc", "{d}/cfg.json"], {"cfg.json": "{not json"}, "malformed JSON"),
        (["calc", "{d}/cfg2.json"], {"cfg2.json": '{"model_type": "llama"}'}, "lacks"),
        (["presets", "show", "gemma-9"], {}, "unknown model preset"),
        (["calc", "x", "--presets", "{d}/nowhere"], {}, "does not exist"),
    ],
)
def test_bad_input_is_one_error_line_exit_2(
    run_cli: Run, tmp_path: Path, args: list[str], files: dict[str, str], needle: str
) -> None:
    """Bad input: exit 2, exactly one `error:` line on stderr naming the problem, no traceback."""
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    result = run_cli(*[a.replace("{d}", str(tmp_path)) for a in args])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert needle in lines[0]
    assert "Traceback" not in result.stdout + result.stderr
    assert result.stdout == ""


def test_import_writes_atomically(run_cli: Run, tmp_path: Path) -> None:
    """`kvcalc import` writes a preset that calc reads back to the same bytes as the config."""
    config = Path(__file__).parent / "data" / "hf_configs" / "llama-3.1-8b.json"
    out = tmp_path / "mine.yaml"
    result = run_cli("import", str(config), "-o", str(out))
    assert result.exit_code == 0, result.stderr
    from_yaml = json.loads(run_cli("calc", str(out), "--format", "json").stdout)["total_bytes"]
    from_json = json.loads(run_cli("calc", str(config), "--format", "json").stdout)["total_bytes"]
    assert from_yaml == from_json == 1_073_741_824
    bad = run_cli("import", str(tmp_path / "nope.json"), "-o", str(tmp_path / "never.yaml"))
    assert bad.exit_code == 2
    assert not (tmp_path / "never.yaml").exists()
