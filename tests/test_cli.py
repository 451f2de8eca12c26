"""The CLI through typer's CliRunner: outputs, exit codes, and one-line errors for bad input."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import Result

Run = Callable[..., Result]


@pytest.mark.parametrize("flag", ["--version", "-V"])
def test_version(run_cli: Run, flag: str) -> None:
    """`kvcalc --version` and `-V` print the package version."""
    from kvcalc import __version__

    result = run_cli(flag)
    assert result.exit_code == 0
    assert result.stdout.strip() == f"kvcalc {__version__}"


def test_completion_is_on(run_cli: Run) -> None:
    """Shell completion can be installed (typer's --install-completion / --show-completion)."""
    result = run_cli("--help")
    assert "--install-completion" in result.stdout and "--show-completion" in result.stdout


def test_presets_show_csv_is_refused(run_cli: Run) -> None:
    """`presets show -f csv` does not print YAML: a nested spec has no CSV form (exit 2)."""
    result = run_cli("presets", "show", "opt-30b", "-f", "csv")
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.startswith("error: presets show has no CSV form")


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["fit", "llama-3.1-8b", "--gpu-mem", "80"], "80 what? say 80GB or 80GiB"),
        (["calc", "opt-30b", "--batch", "2.5"], "not a whole number of sequences"),
        (["fit", "llama-3.1-8b", "--weights-dtype", "bf17"], "did you mean 'bf16'?"),
        (["calc", "opt-30b", "--kv-dtype", "fp9"], "known: auto, fp8, fp32"),
        (["calc", "opt-30b", "--engine", "vlm"], "did you mean 'vllm'?"),
        (["fit", "opt-30b", "--gpu", "h10"], "did you mean 'h100'?"),
    ],
)
def test_hardened_messages(run_cli: Run, args: list[str], needle: str) -> None:
    """The issue's bad inputs each give one error line that says what to write instead."""
    result = run_cli(*args)
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and needle in result.stderr, result.stderr


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["calc", "opt-30b", "--format", "xml"], "'xml' is not one of 'table', 'json', 'csv'"),
        (["calc", "opt-30b", "--format", "JSON"], "'JSON' is not one of"),
        (["calc", "opt-30b", "--presets", "/nonexistent/dir"], "/nonexistent/dir"),
        (["calc", "opt-30b", "--presets", "a\x00b"], "embedded null byte"),
    ],
)
def test_coerced_options_refuse_in_one_line(run_cli: Run, args: list[str], needle: str) -> None:
    """Enum and Path options, coerced by kvcalc without typer's adapters, still refuse bad
    values in one line, exit 2, naming the value."""
    result = run_cli(*args)
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and needle in result.stderr, result.stderr


def test_coerced_options_parse_as_typer_did(run_cli: Run, tmp_path: Path) -> None:
    """str, bool flags, enum and Path options reach the command as typer would give them."""
    result = run_cli("calc", "opt-30b", "-f", "csv", "--mtp", "--presets", str(tmp_path))
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("model,engine,")


def test_negative_hidden_size_is_one_error(run_cli: Run, tmp_path: Path) -> None:
    """A config.json with hidden_size -4096 (was a pydantic traceback, exit 1) is exit 2."""
    from tests.conftest import HF_CONFIGS

    config = json.loads((HF_CONFIGS / "llama-3.1-8b.json").read_text())
    config["hidden_size"] = -4096
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    result = run_cli("calc", str(path))
    assert result.exit_code == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith("error: ") and "hidden_size" in result.stderr


def test_state_space_model_is_refused_clearly(run_cli: Run, tmp_path: Path) -> None:
    """A pure Mamba config (no attention heads) is refused as not modelled, not as 'lacks
    num_attention_heads'."""
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"model_type": "mamba", "hidden_size": 768,
                                "num_hidden_layers": 24, "vocab_size": 50280}))  # fmt: skip
    result = run_cli("calc", str(path))
    assert result.exit_code == 2
    assert "lacks" not in result.stderr and "mamba" in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["calc"],
        ["presets"],
        ["presets", "list"],
        ["presets", "show"],
        ["engines"],
        ["import"],
        ["fit"],
        ["check"],
        ["gpus"],
        ["gpus", "list"],
    ],
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
    assert data["total_human"] == "180.39 GB = 168.00 GiB"
    for key in ("model", "engine", "kv_dtype", "seq_len", "batch", "tp", "pp", "bytes_per_token",
                "total_bytes", "per_gpu_bytes", "layers", "formula"):  # fmt: skip
        assert key in data
    assert data["layers"] == [
        {
            "kind": "full",
            "window": None,
            "count": 48,
            "padded_count": 48,
            "tokens": 1024,
            "bytes_per_token_per_layer": 28_672,
            "bytes": 180_388_626_432,
            "layer_kind": None,
        }
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


# ---- planner commands ----------------------------------------------------------------------

DEPLOYMENTS_OK = """\
deployments:
  - name: chat-8b
    model: llama-3.1-8b
    gpu: h100-80gb
    seq: 8k
    batch: 16
    reserve: 2GiB
"""
DEPLOYMENTS_FAIL = (
    DEPLOYMENTS_OK
    + """\
  - name: too-big
    model: llama-3.1-70b
    gpu: h100
    tp: 4
    seq: 128k
    batch: 32
"""
)


def test_fit_json_acceptance(run_cli: Run) -> None:
    """fit --format json on H100: KV tokens = floor((76,515,744,154 − 16,060,522,496 − 2 GiB) / 65,536 / 32) · 16."""
    result = run_cli(
        "fit",
        "llama-3.1-8b",
        "--gpu",
        "H100-80GB",
        "--seq",
        "8k",
        "--reserve",
        "2GiB",
        "--format",
        "json",
    )
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["capacity_bytes"] == 85_017_493_504
    assert data["weights_bytes"] == 16_060_522_496  # 2 · 8,030,261,248
    assert data["reserve_bytes"] == 2 * 2**30
    assert data["kv_budget_bytes"] == 76_515_744_154 - 16_060_522_496 - 2 * 2**30
    assert data["max_tokens"] == (76_515_744_154 - 16_060_522_496 - 2 * 2**30) // 65_536 // 32 * 16
    assert data["kv_bytes"] == 1_073_741_824
    assert data["fits"] is True
    for key in ("model", "gpu", "engine", "tp", "pp", "headroom_bytes", "max_batch", "max_seq_len"):
        assert key in data


def test_fit_table_and_all_gpus(run_cli: Run) -> None:
    """The panel shows every budget term in GiB and GB and the vLLM-style log line; without
    --gpu there is one row per GPU preset."""
    panel = run_cli("fit", "llama-3.1-8b", "--gpu", "h100", "--reserve", "2GiB")
    assert panel.exit_code == 0
    for text in (
        "capacity",
        "weights",
        "KV budget",
        "GiB",
        "GB",
        "KV cache size",
        "maximum concurrency",
    ):
        assert text in panel.stdout
    rows = json.loads(run_cli("fit", "llama-3.1-8b", "--format", "json").stdout)
    names = {r["gpu"] for r in rows}
    assert {"h100-80gb", "a100-40gb", "l4", "mi300x"} <= names


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["--batch", "8"], 0),
        (["--batch", "100000"], 1),
        (["--gpu-mem", "16GiB"], 1),
        (["--weights-dtype", "int4-awq", "--gpu", "l4", "--batch", "4"], 0),
    ],
)
def test_fit_check_exit_codes(run_cli: Run, args: list[str], code: int) -> None:
    """fit --check exits 0 when it fits, 1 when it does not."""
    base = ["fit", "llama-3.1-8b", "--check", "--format", "json"]
    if "--gpu" not in args:
        base += ["--gpu", "h100-80gb"]
    result = run_cli(*base, *args)
    assert result.exit_code == code, result.stderr
    assert json.loads(result.stdout)["fits"] is (code == 0)


def test_check_exit_codes(run_cli: Run, tmp_path: Path) -> None:
    """check: 0 when every deployment fits, 1 when any does not; one line each and a summary."""
    ok = tmp_path / "ok.yaml"
    ok.write_text(DEPLOYMENTS_OK)
    result = run_cli("check", str(ok))
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines()[0].startswith("PASS chat-8b:")
    bad = tmp_path / "bad.yaml"
    bad.write_text(DEPLOYMENTS_FAIL)
    result = run_cli("check", str(bad))
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[0].startswith("PASS chat-8b")
    assert lines[1].startswith("FAIL too-big") and "short by" in lines[1]
    assert lines[-1] == "1 passed, 1 failed"


def test_check_min_headroom(run_cli: Run, tmp_path: Path) -> None:
    """A deployment that fits but leaves less than min_headroom fails with the reason."""
    f = tmp_path / "h.yaml"
    f.write_text(DEPLOYMENTS_OK + "    min_headroom: 60GB\n")
    result = run_cli("check", str(f))
    assert result.exit_code == 1
    assert "min_headroom" in result.stdout


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        (
            "deployments:\n  - model: llama-3.1-8b\n    gpu: h100\n    seq: lots\n",
            "deployments[0].seq",
        ),
        ("deployments:\n  - model: llama-3.1-8b\n    gpu: h10\n", "deployments[0].gpu"),
        (
            "deployments:\n  - model: llama-3.1-8b\n    gpu: h100\n    colour: red\n",
            "deployments[0].colour",
        ),
        ("deployments:\n  - gpu: h100\n", "deployments[0].model"),
        ("deployments:\n  - model: opt-31b\n    gpu: h100\n", "deployments[0].model"),
        ("deployments:\n  - model: llama-3.1-8b\n    gpu: h100\n    tp: 3\n", "deployments[0]"),
        ("deployments: [", "malformed YAML"),
        ("deployments: []\n", "non-empty list"),
    ],
)
def test_check_bad_file_names_file_entry_field(
    run_cli: Run, tmp_path: Path, text: str, needle: str
) -> None:
    """A broken deployments file: exit 2, one error line naming the file, the entry and the field."""
    f = tmp_path / "deploy.yaml"
    f.write_text(text)
    result = run_cli("check", str(f))
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert str(f) in lines[0]
    assert needle in lines[0]
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["fit", "llama-3.1-8b", "--gpu", "h1000"], "did you mean"),
        (["fit", "llama-3.1-8b", "--gpu", "h100", "--util", "1.5"], "--util"),
        (["fit", "llama-3.1-8b", "--gpu", "h100", "--reserve", "-1GB"], "--reserve"),
        (["fit", "llama-3.1-8b", "--gpu", "h100", "--gpu-mem", "80G"], "--gpu-mem"),
        (["fit", "llama-3.1-8b", "--gpu", "h100", "--weights-dtype", "int3"], "weights dtype"),
        (["fit", "llama-3.1-8b", "--gpus", "2", "--tp", "2"], "not both"),
        (
            ["fit", "llama-3.1-8b", "--gpu", "h100", "--engine", "llama.cpp", "--util", "0.5"],
            "does not apply",
        ),
    ],
)
def test_fit_bad_input(run_cli: Run, args: list[str], needle: str) -> None:
    """Bad planner input is one error line and exit 2."""
    result = run_cli(*args)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0]


def test_gpus_list(run_cli: Run) -> None:
    """gpus list shows the CUDA-reported H100 and H200 totals (ENGINES.md §6)."""
    rows = {r["name"]: r for r in json.loads(run_cli("gpus", "list", "--format", "json").stdout)}
    assert rows["h100-80gb"]["memory_bytes"] == 85_017_493_504
    assert rows["h200"]["memory_bytes"] == 150_109_880_320
    assert len(rows) >= 15
    # NVIDIA's compute capability (SGLang's DSA defaults follow it): Hopper 9.0, B200 10.0
    assert (rows["h100-80gb"]["compute_capability"], rows["b200"]["compute_capability"]) == (
        "9.0",
        "10.0",
    )
    assert all(r["compute_capability"] is None for r in rows.values() if r["vendor"] == "amd")


def test_llama_cpp_k_and_v_types_apart(run_cli: Run) -> None:
    """llama.cpp's cache defaults to f16; --cache-type-k q8_0 alone leaves V in f16:
    Llama-3.1-8B per layer K 8·(128/32·34) = 1,088 B + V 8·128·2 = 2,048 B; ×32 layers ×8192."""
    result = run_cli(
        "calc",
        "llama-3.1-8b",
        "--engine",
        "llama.cpp",
        "--cache-type-k",
        "q8_0",
        "--format",
        "json",
    )
    data = json.loads(result.stdout)
    assert (data["k_dtype"], data["v_dtype"]) == ("q8_0", "fp16")
    assert data["total_bytes"] == (1_088 + 2_048) * 32 * 8192


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    option=st.sampled_from(
        ["--seq", "--batch", "--tp", "--pp", "--kv-dtype", "--engine", "--block-size"]
    ),
    value=st.text(min_size=1, max_size=12).filter(lambda v: not v.startswith("-")),
)
def test_any_option_value_is_an_answer_or_one_error_line(
    run_cli: Run, option: str, value: str
) -> None:
    """Whatever text an option gets, calc answers (exit 0) or gives one error line (exit 2)."""
    result = run_cli("calc", "llama-3.1-8b", option, value, "--format", "json")
    assert result.exit_code in (0, 2)
    if result.exit_code == 2:
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ")
        assert result.stdout == ""
    else:
        json.loads(result.stdout)
