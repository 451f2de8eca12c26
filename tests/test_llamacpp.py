"""kvcalc's llama.cpp rules against a real llama.cpp, byte for byte.

tests/data/llamacpp/cases.json was recorded by scripts/measure_llamacpp.py from llama.cpp
commit 0c1e57098 (vendored in llama-cpp-python 0.3.36), CPU build: each case is a real
llama_context created with the options shown on a GGUF with the preset's real geometry,
its KV bytes read from the caches' own size_k_bytes/size_v_bytes.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kvcalc.dtypes import kv_dtype
from kvcalc.engines import engine_profile
from kvcalc.errors import KvcalcError
from kvcalc.formula import Workload, kv_cache
from kvcalc.llamacpp import LlamaCppOptions, compute_buffer_bytes, llama_context
from kvcalc.presets import load_model
from tests.conftest import Result

Run = Callable[..., Result]

DATA = json.loads((Path(__file__).parent / "data" / "llamacpp" / "cases.json").read_text())
CASES: list[dict[str, Any]] = DATA["cases"]
LLAMA = engine_profile("llama.cpp")


def _case_id(case: dict[str, Any]) -> str:
    o = case["options"]
    return (
        f"{case['preset']}-c{o['n_ctx']}-np{o['n_seq_max']}-kvu{int(o['kv_unified'])}"
        f"-b{o['n_batch']}-ub{o['n_ubatch']}-swafull{int(o['swa_full'])}-fa{o['flash_attn']}"
        f"-{o['type_k']}-{o['type_v']}"
    )


def _workload(case: dict[str, Any]) -> Workload:
    o = case["options"]
    return Workload(
        seq_len=max(1, o["n_ctx"] // o["n_seq_max"]),
        batch=o["n_seq_max"],
        k_dtype=kv_dtype(o["type_k"]),
        v_dtype=kv_dtype(o["type_v"]),
        llamacpp=LlamaCppOptions(
            ctx_size=o["n_ctx"],
            kv_unified=o["kv_unified"],
            n_batch=o["n_batch"],
            n_ubatch=o["n_ubatch"],
            swa_full=o["swa_full"],
            flash_attn=o["flash_attn"],
        ),
    )


def test_the_recording_floor() -> None:
    """The recording covers at least 200 cases, 10 geometries, and every option it must."""
    accepted = [c for c in CASES if not c["refused"]]
    assert len(accepted) >= 200
    assert len({c["preset"] for c in CASES}) >= 10
    opts = [c["options"] for c in accepted]
    assert {o["kv_unified"] for o in opts} == {True, False}
    assert {o["swa_full"] for o in opts} == {True, False}
    assert len({o["n_ubatch"] for o in opts}) >= 5
    types = {o["type_k"] for o in opts} | {o["type_v"] for o in opts}
    assert types == {"f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "iq4_nl", "q5_0", "q5_1"}
    assert DATA["llama_cpp"]["commit"].startswith("0c1e57098")


DSV4 = "deepseek4"  # llama_kv_cache_dsv4: its own caches, test_deepseek_v4_matches_real_llama_cpp


@pytest.mark.parametrize(
    "case", [c for c in CASES if not c["refused"] and c["gguf_arch"] != DSV4], ids=_case_id
)
def test_kv_bytes_match_real_llama_cpp(case: dict[str, Any]) -> None:
    """kvcalc's KV bytes, per layer kind and in total, equal what llama.cpp allocated."""
    model = load_model(case["preset"])
    kv = kv_cache(model, _workload(case), LLAMA)
    assert kv.total_bytes == case["kv_bytes"]
    by_role = {c["role"]: c for c in case["caches"]}
    # llama.cpp caches sliding layers in full for families without its iSWA cache (Mistral)
    windowed = LLAMA.honours_window(model.family, model.architecture)
    full = [g for g in kv.groups if g.kind == "full" or not windowed]
    local = [g for g in kv.groups if g.kind != "full" and windowed]
    base = by_role["base"]["k_bytes"] + by_role["base"]["v_bytes"]
    # DSA: the indexer keys are a second cache (llama_kv_cache_dsa); kvcalc counts them in
    # their layers' bytes per token
    indexer = by_role.get("indexer", {"k_bytes": 0, "v_bytes": 0, "layers": []})
    assert sum(g.bytes for g in full) == base + indexer["k_bytes"] + indexer["v_bytes"]
    indexed = [i for i, n in enumerate(model.layer_kind_names()) if _indexed(model, n)]
    assert indexer["layers"] == indexed
    assert sum(g.count for g in full) == by_role["base"]["n_layers"]
    if "swa" in by_role:
        swa = by_role["swa"]
        assert sum(g.bytes for g in local) == swa["k_bytes"] + swa["v_bytes"]
        assert sum(g.count for g in local) == swa["n_layers"]
        assert {g.tokens for g in local} == {swa["cells"]}
    else:
        assert not local
    assert {g.tokens for g in full} == {by_role["base"]["cells"]}


def _indexed(model: Any, name: str) -> bool:
    """True for a layer that keeps DSA indexer keys (an MLA model's indexer, kind not shared)."""
    kind = model.layer_kind(name)
    index = getattr(model.attention, "index_head_dim", None)
    return index is not None and getattr(kind, "indexer", False)


@pytest.mark.parametrize("case", [c for c in CASES if not c["refused"]], ids=_case_id)
def test_context_sizes_match_real_llama_cpp(case: dict[str, Any]) -> None:
    """n_ctx, n_ctx_seq, n_batch and n_ubatch derive as llama_context derived them."""
    w = _workload(case)
    ctx = llama_context(w.llamacpp, w.seq_len, w.batch)
    measured = case["measured"]
    assert (ctx.n_ctx, ctx.n_ctx_seq, ctx.n_batch, ctx.n_ubatch, ctx.n_seq) == (
        measured["n_ctx"],
        measured["n_ctx_seq"],
        measured["n_batch"],
        measured["n_ubatch"],
        measured["n_seq_max"],
    )
    assert ctx.flash_attn == measured["flash_attn"]
    # llama_kv_cache_dsv4 keeps one stream per sequence even under --kv-unified
    streams = ctx.n_seq if case["gguf_arch"] == DSV4 else ctx.n_stream
    assert {c["n_stream"] for c in case["caches"]} == {streams}


@pytest.mark.parametrize("case", [c for c in CASES if c["refused"]], ids=_case_id)
def test_refused_where_llama_cpp_refuses(case: dict[str, Any]) -> None:
    """Cache types llama.cpp refuses (quantised V without flash attention, MLA K != V)."""
    model = load_model(case["preset"])
    words = "different K" if "different K" in case["error"] else "requires flash_attn"
    assert words in case["error"]
    with pytest.raises(KvcalcError, match=words):
        kv_cache(model, _workload(case), LLAMA)


def test_llama_server_default_on_gemma_3_4b() -> None:
    """`llama-server -m gemma-3-4b -c 8192` (4 unified slots) holds 715,128,832 B of KV.

    Hand-derived from google/gemma-3-4b-it config.json (34 layers, every 6th global, window
    1024, 4 KV heads of 256): 2·4·256·2 B = 4,096 B per token and layer; 5 global layers ×
    8,192 cells + 29 sliding layers × GGML_PAD(min(8192, 1024·4 + 512), 256) = 4,608 cells
    (src/llama-kv-cache-iswa.cpp) = (40,960 + 133,632) × 4,096 B.
    """
    model = load_model("gemma-3-4b")
    server = LlamaCppOptions(ctx_size=8192, kv_unified=True)
    kv = kv_cache(model, Workload(seq_len=2048, batch=4, llamacpp=server), LLAMA)
    assert kv.total_bytes == (5 * 8192 + 29 * 4608) * 4096 == 715_128_832
    one_slot = kv_cache(model, Workload(seq_len=8192, batch=1), LLAMA)
    assert one_slot.total_bytes == (5 * 8192 + 29 * 1536) * 4096 == 350_224_384


def test_gemma_4_k_eq_v_layers_keep_k_and_v() -> None:
    """`llama-cli -m gemma-4-31b -c 8192`: src/models/gemma4.cpp sets Vcur = Kcur in the full
    layers (attention_k_eq_v, no v_proj) and build_attn stores V in its own cache tensor, so
    K and V are both held; conversion/gemma.py writes the full layers' KV heads and head
    length (num_global_key_value_heads, global_head_dim) per layer, and gemma4 is an iSWA
    model (LLAMA_SWA_TYPE_STANDARD). google/gemma-4-31B-it config.json: 60 layers, 50
    sliding (16 KV heads of 256, window 1,024) and 10 full (4 KV heads of 512), f16 cache:
    sliding 2·16·256·2 B = 16,384 B a token and layer over GGML_PAD(1,024 + 512, 256) =
    1,536 cells; full 2·4·512·2 B = 8,192 B over 8,192 cells:
    50·1,536·16,384 + 10·8,192·8,192 = 1,929,379,840 B. Gemma-4-26B-A4B (25 sliding of 8
    heads × 256, 5 full of 2 × 512): 25·1,536·8,192 + 5·8,192·4,096 = 482,344,960 B."""
    one = Workload(seq_len=8192, batch=1)
    assert (
        kv_cache(load_model("gemma-4-31b"), one, LLAMA).total_bytes
        == (50 * 1536 * 16_384 + 10 * 8192 * 8192)
        == 1_929_379_840
    )
    assert (
        kv_cache(load_model("gemma-4-26b-a4b"), one, LLAMA).total_bytes
        == (25 * 1536 * 8192 + 5 * 8192 * 4096)
        == 482_344_960
    )


def test_llama_server_default_on_llama_4_scout() -> None:
    """`llama-server -m Llama-4-Scout -c 32768`: chunked layers hold the whole context.

    meta-llama/Llama-4-Scout-17B-16E-Instruct config.json: 48 layers, 3 of 4 chunked
    (chunk 8192), 8 KV heads of 128: 4,096 B per token and layer. Four unified slots:
    GGML_PAD(min(32768, 8192·4 + 512), 256) = 32,768 cells in all 48 layers; one slot:
    36 chunked layers × 8,704 cells + 12 × 32,768.
    """
    model = load_model("llama-4-scout")
    server = LlamaCppOptions(ctx_size=32768, kv_unified=True)
    kv = kv_cache(model, Workload(seq_len=8192, batch=4, llamacpp=server), LLAMA)
    assert kv.total_bytes == 48 * 32768 * 4096 == 6_442_450_944
    single = kv_cache(model, Workload(seq_len=32768, batch=1), LLAMA)
    assert single.total_bytes == (36 * 8704 + 12 * 32768) * 4096 == 2_894_069_760


def test_ubatch_is_capped_by_batch_and_context() -> None:
    """n_ubatch = min(min(-c, -b), -ub), before -c is padded (src/llama-context.cpp)."""
    ctx = llama_context(LlamaCppOptions(ctx_size=300, n_batch=2048, n_ubatch=512), 300, 1)
    assert (ctx.n_ctx, ctx.n_batch, ctx.n_ubatch) == (512, 300, 300)
    ctx = llama_context(LlamaCppOptions(n_batch=256, n_ubatch=1024), 4096, 2)
    assert (ctx.n_batch, ctx.n_ubatch) == (256, 256)


def test_non_unified_slots_round_each_stream() -> None:
    """-c 10000 -np 3: n_ctx_seq = GGML_PAD(10240 / 3, 256) = 3,584 cells in each of 3 streams."""
    ctx = llama_context(LlamaCppOptions(ctx_size=10000), 1, 3)
    assert (ctx.n_ctx_seq, ctx.n_stream, ctx.n_ctx) == (3584, 3, 10752)


def test_mla_refuses_different_k_and_v_types() -> None:
    """DeepSeek-V2-Lite (MLA) in llama.cpp: -ctk q8_0 -ctv f16 is refused; equal types are not."""
    model = load_model("deepseek-v2-lite")
    with pytest.raises(KvcalcError, match="different K"):
        kv_cache(model, Workload(seq_len=4096, k_dtype=kv_dtype("q8_0")), LLAMA)
    same = Workload(seq_len=4096, k_dtype=kv_dtype("q8_0"), v_dtype=kv_dtype("q8_0"))
    # 27 layers × 4,096 cells × 576 latent values in q8_0 (18 blocks of 34 B = 612 B), no V
    assert kv_cache(model, same, LLAMA).total_bytes == 27 * 4096 * 612


def test_llama_cpp_options_need_the_llama_cpp_engine() -> None:
    """Passing llama.cpp context flags to another engine is an error, not silently ignored."""
    model = load_model("llama-3.1-8b")
    with pytest.raises(KvcalcError, match=r"apply to --engine llama\.cpp"):
        kv_cache(
            model,
            Workload(seq_len=4096, llamacpp=LlamaCppOptions(kv_unified=True)),
            engine_profile("vllm"),
        )


def _ctx_of(case: dict[str, Any]) -> Any:
    w = _workload(case)
    return llama_context(w.llamacpp, w.seq_len, w.batch)


def test_compute_buffer_estimate_tracks_llama_cpp() -> None:
    """The compute-buffer estimate is within -15%/+25% of llama.cpp's (n_ubatch ≥ 64), 5% mean.

    llama.cpp's own figure (llama_get_memory_breakdown 'compute', CPU backend) for every
    recorded context; the estimate is a fitted model, not exact (kvcalc/llamacpp.py).
    """
    errors = []
    for case in CASES:
        if case["refused"] or case["gguf_arch"] in ("deepseek32", "glm-dsa", DSV4):
            continue  # not estimated: test_dsa_compute_buffer_is_refused_without_reserve
        ctx = _ctx_of(case)
        estimate = compute_buffer_bytes(load_model(case["preset"]), ctx)
        error = (estimate - case["compute_bytes"]) / case["compute_bytes"]
        errors.append(abs(error))
        if ctx.n_ubatch >= 64:
            assert -0.15 <= error <= 0.25, (_case_id(case), estimate, case["compute_bytes"])
        else:  # a one-token ubatch: under 1 MiB either way
            assert abs(estimate - case["compute_bytes"]) < 2**20
    assert sum(errors) / len(errors) < 0.05


def _csv_row(stdout: str) -> dict[str, str]:
    return next(csv.DictReader(io.StringIO(stdout)))


def test_cli_llama_server_default_slots(run_cli: Run) -> None:
    """`calc --engine llama-server -c 8192` is llama-server's 4 unified slots: 715,128,832 B."""
    result = run_cli("calc", "gemma-3-4b", "--engine", "llama-server", "-c", "8192", "-f", "csv")
    assert result.exit_code == 0, result.stderr
    row = _csv_row(result.stdout)
    assert (row["batch"], row["total_bytes"]) == ("4", "715128832")
    one = run_cli(
        "calc", "gemma-3-4b", "--engine", "llama-server", "-c", "8192", "-np", "1", "-f", "csv"
    )
    assert _csv_row(one.stdout)["total_bytes"] == "350224384"
    flags = run_cli(
        "calc", "gemma-3-4b", "--engine", "llama.cpp", "-c", "8192", "-np", "4",
        "--kv-unified", "-ub", "512", "--batch-size", "2048", "-f", "csv",
    )  # fmt: skip
    assert _csv_row(flags.stdout)["total_bytes"] == "715128832"


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["llama-3.1-8b", "-np", "4"], "llama.cpp options"),
        (["deepseek-v2-lite", "-e", "llama.cpp", "--k-dtype", "q8_0"], "different K"),
        (["llama-3.1-8b", "-e", "llama.cpp", "--v-dtype", "q4_0", "-fa", "off"], "flash_attn"),
        (["llama-3.1-8b", "-e", "llama.cpp", "-fa", "maybe"], "--flash-attn"),
        (["llama-3.1-8b", "-e", "llama.cpp", "--batch", "2", "-np", "3"], "give one"),
        (["llama-3.1-8b", "-e", "llama.cpp", "--kv-dtype", "fp8"], "no fp8_e4m3 K cache type"),
    ],
)
def test_cli_refuses_bad_llama_cpp_flags(run_cli: Run, args: list[str], words: str) -> None:
    """Bad llama.cpp flag combinations: one `error:` line, exit 2, no traceback."""
    result = run_cli("calc", *args)
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ") and words in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stdout + result.stderr


def test_fit_speaks_llama_cpp(run_cli: Run) -> None:
    """fit --engine llama.cpp counts the compute buffer and reports context and slots.

    The verdict is exact: KV + compute buffer at the limits fits, one slot more does not.
    """
    result = run_cli(
        "fit", "llama-3.1-8b", "--gpu", "h100", "--engine", "llama.cpp", "-c", "32k", "-f", "json"
    )
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    ll = report["llamacpp"]
    assert (ll["n_ctx"], ll["slots"], ll["n_ubatch"]) == (32768, 1, 512)
    assert report["kv_bytes"] == 32 * 32768 * 2 * 8 * 128 * 2  # 32 layers, 8 KV heads of 128
    terms = {t["term"]: t["bytes"] for t in report["reserve_terms"]}
    assert any(t.startswith("compute buffer (llama.cpp") for t in terms)
    assert report["headroom_bytes"] == ll["room_bytes"] - report["kv_bytes"] - ll["compute_bytes"]
    model = load_model("llama-3.1-8b")

    def needed(slots: int) -> int:
        w = Workload(seq_len=32768, batch=slots, llamacpp=LlamaCppOptions(ctx_size=32768 * slots))
        ctx = llama_context(w.llamacpp, w.seq_len, w.batch)
        return kv_cache(model, w, LLAMA).total_bytes + compute_buffer_bytes(model, ctx)

    assert needed(ll["max_slots"]) <= ll["room_bytes"] < needed(ll["max_slots"] + 1)
    table = run_cli("fit", "llama-3.1-8b", "--gpu", "h100", "--engine", "llama.cpp", "-c", "32k")
    assert "max slots (-np)" in table.stdout and "maximum concurrency" not in table.stdout


STATE = json.loads((Path(__file__).parent / "data" / "llamacpp" / "state_cases.json").read_text())


@pytest.mark.parametrize(
    "case",
    STATE["cases"],
    ids=lambda c: (
        f"{c['preset']}-c{c['options']['n_ctx']}-np{c['options']['n_seq_max']}"
        f"-kvu{int(c['options']['kv_unified'])}"
    ),
)
def test_hybrid_kv_and_state_match_real_llama_cpp(case: dict[str, Any]) -> None:
    """Hybrid models (Gated DeltaNet, Mamba2 + attention): KV and recurrent state bytes equal
    what llama.cpp 0c1e57098 allocated (tests/data/llamacpp/state_cases.json): one state cell
    per slot (llama_memory_recurrent, rs_size = n_seq_max), conv and SSM state in f32."""
    o = case["options"]
    model = load_model(case["preset"])
    w = Workload(
        seq_len=max(1, o["n_ctx"] // o["n_seq_max"]),
        batch=o["n_seq_max"],
        llamacpp=LlamaCppOptions(ctx_size=o["n_ctx"], kv_unified=o["kv_unified"]),
    )
    kv = kv_cache(model, w, LLAMA)
    attn = [c for c in case["caches"] if c["kind"] == "kv"]
    state = [c for c in case["caches"] if c["kind"] == "recurrent"]
    assert kv.total_bytes == sum(c["k_bytes"] + c["v_bytes"] for c in attn)
    assert kv.state_total_bytes == sum(c["total_bytes"] for c in state)
    assert [c["cells"] for c in state] == [o["n_seq_max"]]


@settings(max_examples=60, deadline=None)
@given(
    name=st.sampled_from(["gemma-3-4b", "gpt-oss-20b", "llama-4-scout", "deepseek-v2-lite"]),
    seq=st.integers(1, 70_000),
    slots=st.integers(1, 8),
    ubatch=st.sampled_from([None, 1, 100, 512, 4096]),
)
def test_separate_slots_are_linear(name: str, seq: int, slots: int, ubatch: int | None) -> None:
    """Without --kv-unified, `-c seq·np -np np` holds np times one slot of seq tokens.

    GGML_PAD(GGML_PAD(seq·np, 256) / np, 256) = GGML_PAD(seq, 256), so kvcalc's --seq/--batch
    reading of llama.cpp is exact (at the same n_ubatch, which -c caps).
    """
    model = load_model(name)

    def total(n: int, n_ubatch: int | None) -> int:
        opts = LlamaCppOptions(ctx_size=seq * n, n_ubatch=n_ubatch)
        return kv_cache(model, Workload(seq_len=seq, batch=n, llamacpp=opts), LLAMA).total_bytes

    one_slot_ubatch = llama_context(LlamaCppOptions(n_ubatch=ubatch), seq, 1).n_ubatch
    assert total(slots, one_slot_ubatch) == slots * total(1, ubatch)


def test_olmo3_sliding_layers_are_iswa_in_llama_cpp() -> None:
    """OLMo 3 converts to llama.cpp's olmo2 architecture with its window and layer_types
    (conversion/olmo.py Olmo2Model), loaded as standard SWA (src/models/olmo2.cpp): its
    sliding layers hold n_swa + n_ubatch cells, not the context.

    allenai/Olmo-3.1-32B-Instruct config.json: 64 layers, 3 sliding (window 4,096) to 1
    full, 8 KV heads of 128, fp16 cache: 2·8·128·2 B = 4,096 B per token and layer. At
    -c 32768, one slot: 16 full layers × 32,768 cells + 48 sliding layers ×
    GGML_PAD(4,096 + 512, 256) = 4,608 cells.
    """
    kv = kv_cache(load_model("olmo-3.1-32b"), Workload(seq_len=32768, batch=1), LLAMA)
    assert kv.total_bytes == (16 * 32768 + 48 * 4608) * 4096 == 3_053_453_312


HF_CONFIGS = Path(__file__).parent / "data" / "hf_configs"


def _import(stem: str, **overrides: Any) -> Any:
    from kvcalc import hf

    config = {**json.loads((HF_CONFIGS / f"{stem}.json").read_text()), **overrides}
    return hf.import_config(config, stem).spec


def test_deepseek_v32_indexer_keys_are_a_second_cache_in_llama_cpp() -> None:
    """DeepSeek-V3.2 (deepseek32): llama_kv_cache_dsa (src/llama-kv-cache-dsa.cpp) keeps the
    MLA latent in one llama_kv_cache and the lightning indexer's keys in a second one built
    from the model's hparams with n_head_kv 1 and head size indexer_head_size, same type_k
    and cells, K only (is_mla); both filtered to the trunk layers (src/llama-model.cpp
    create_memory: il < n_layer(), the converter's appended MTP block left out).

    Published config: 61 layers, kv_lora_rank 512 + qk_rope_head_dim 64, index_head_dim 128.
    f16, -c 8192: latent 576·2 = 1,152 B + indexer 128·2 = 256 B = 1,408 B per token and
    layer; 61 × 8,192 × 1,408 = 703,594,496 B (575,668,224 latent + 127,926,272 indexer).
    q8_0 K and V (-fa on): 576/32·34 = 612 B + 128/32·34 = 136 B = 748 B;
    61 × 8,192 × 748 = 373,784,576 B.
    """
    model = load_model("deepseek-v3.2")
    kv = kv_cache(model, Workload(seq_len=8192), LLAMA)
    assert kv.bytes_per_token == 61 * (576 * 2 + 128 * 2) == 85_888
    assert kv.total_bytes == 61 * 8192 * 1408 == 575_668_224 + 127_926_272 == 703_594_496
    q8 = kv_dtype("q8_0")
    w = Workload(seq_len=8192, k_dtype=q8, v_dtype=q8)
    assert kv_cache(model, w, LLAMA).total_bytes == 61 * 8192 * (612 + 136) == 373_784_576


def test_glm5_indexer_layers_follow_llama_cpps_glm_dsa_rule() -> None:
    """GLM-5 (glm-dsa): its config lists no indexer_types, so conversion/glm.py writes none
    and src/models/glm-dsa.cpp keeps indexer keys in every layer (n_ctx_train 202,752 <
    1,048,576): 78 × 8,192 × (576·2 + 128·2) = 899,678,208 B at -c 8192.

    GLM-5.2 lists indexer_types (21 full: layers 0, 1, then every fourth from 2; 57 shared),
    which the converter writes and llama.cpp reads: 8,192 × (21 × 1,408 + 57 × 1,152) =
    8,192 × 95,232 = 780,140,544 B.
    """
    glm5 = kv_cache(load_model("glm-5"), Workload(seq_len=8192), LLAMA)
    assert glm5.total_bytes == 78 * 8192 * 1408 == 899_678_208
    glm52 = kv_cache(load_model("glm-5.2"), Workload(seq_len=8192), LLAMA)
    assert glm52.total_bytes == 8192 * (21 * 1408 + 57 * 1152) == 780_140_544


def test_glm_dsa_pattern_llama_cpp_cannot_tell_is_refused() -> None:
    """A GLM config whose shared-indexer layers come from index_topk_freq alone (no
    indexer_types: the converter writes none) below a 1,048,576 context: llama.cpp indexes
    every layer, kvcalc's reading of transformers shares some; refused in one line. The
    same keys at GLM-5.2's context give GLM_5_2_DEFAULT_INDEXER_TYPES, which they match."""
    shared = _import("glm-5", index_topk_freq=4, index_skip_topk_offset=3)
    assert shared.layer_kind_names().count("shared") == 57
    with pytest.raises(KvcalcError, match="neither fallback") as err:
        kv_cache(shared, Workload(seq_len=8192), LLAMA)
    assert "\n" not in str(err.value)
    long = _import(
        "glm-5", index_topk_freq=4, index_skip_topk_offset=3, max_position_embeddings=1048576
    )
    assert kv_cache(long, Workload(seq_len=8192), LLAMA).total_bytes == 780_140_544


def test_dsa_mtp_layers_are_refused_under_llama_cpp() -> None:
    """llama.cpp runs a DSA model's NextN block in its own MTP context (dense MLA, no
    indexer cache: src/llama-model.cpp create_memory), which kvcalc has not sized."""
    with pytest.raises(KvcalcError, match="drop --mtp"):
        kv_cache(load_model("deepseek-v3.2"), Workload(seq_len=8192, mtp=True), LLAMA)


@pytest.mark.parametrize("engine", ["llama.cpp", "llama-server"])
def test_mimo_v2_flash_sliding_layers_are_iswa_in_llama_cpp(engine: str) -> None:
    """MiMo-V2-Flash (mimo2) loads as LLAMA_SWA_TYPE_STANDARD (src/models/mimo2.cpp) with
    what conversion/mimo.py writes: head_count_kv per layer (num_key_value_heads 4 for the
    9 full layers, swa_num_key_value_heads 8 for the 39 sliding), key_length head_dim 192,
    value_length v_head_dim 128 in every layer, n_swa = config.json's sliding_window 128
    (not transformers' 129 = sliding_window_size + 1: the converter's pinned transformers
    4.57.6 has no MiMo-V2 config class, so it reads config.json), and the pattern; the 3
    appended MTP blocks are filtered out (il < n_layer()).

    f16: full 4·(192+128)·2 = 2,560 B and sliding 8·(192+128)·2 = 5,120 B per token. One
    slot at -c 8192, n_ubatch 512: sliding cells GGML_PAD(min(8192, 128 + 512), 256) = 768;
    9 × 8,192 × 2,560 + 39 × 768 × 5,120 = 188,743,680 + 153,354,240 = 342,097,920 B.
    Two slots, --kv-unified, -c 16384: GGML_PAD(128·2 + 512, 256) = 768 cells (129 would
    give 770 → 1,024); 9 × 16,384 × 2,560 + 153,354,240 = 530,841,600 B.
    """
    model = load_model("mimo-v2-flash")
    profile = engine_profile(engine)
    kv = kv_cache(model, Workload(seq_len=8192, llamacpp=LlamaCppOptions()), profile)
    assert kv.total_bytes == 9 * 8192 * 2560 + 39 * 768 * 5120 == 342_097_920
    unified = LlamaCppOptions(ctx_size=16384, kv_unified=True)
    kv = kv_cache(model, Workload(seq_len=8192, batch=2, llamacpp=unified), profile)
    assert kv.total_bytes == 9 * 16384 * 2560 + 39 * 768 * 5120 == 530_841_600


def test_mimo_v2_flash_keeps_its_config_window_beside_the_attended_span() -> None:
    """The import keeps transformers' window (sliding_window_size + 1 = 129) for the engines
    that attend by it, and config.json's own sliding_window (128) for llama.cpp's n_swa."""
    layers = load_model("mimo-v2-flash").layers
    assert layers is not None
    assert (layers.sliding_window, layers.config_sliding_window) == (128 + 1, 128)
    sglang = kv_cache(load_model("mimo-v2-flash"), Workload(seq_len=8192), engine_profile("sglang"))
    assert {g.window for g in sglang.groups} == {None, 129}


def test_variable_v_widths_without_flash_attention_are_padded() -> None:
    """Without flash attention llama_kv_cache stores V transposed and makes every layer's V
    n_embd_v_gqa_max wide (src/llama-kv-cache.cpp TAG_V_CACHE_VARIABLE): MiMo-V2-Flash's
    full layers' V rows, 4·128 = 512, take the sliding layers' 8·128 = 1,024. -c 8192 f16:
    full 4·192·2 + 1,024·2 = 3,584 B per token; 9 × 8,192 × 3,584 + 39 × 768 × 5,120 =
    264,241,152 + 153,354,240 = 417,595,392 B (what llama.cpp allocated, cases.json)."""
    off = Workload(seq_len=8192, llamacpp=LlamaCppOptions(flash_attn="off"))
    kv = kv_cache(load_model("mimo-v2-flash"), off, LLAMA)
    assert kv.total_bytes == 9 * 8192 * 3584 + 39 * 768 * 5120 == 417_595_392
    assert kv_cache(load_model("llama-3.1-8b"), off, LLAMA).total_bytes == 1_073_741_824


def test_dsa_compute_buffer_is_refused_without_reserve(run_cli: Run) -> None:
    """The estimate leaves out a DSA model's lightning-indexer scores (llama.cpp measured
    557,922,304 to 1,220,622,336 B at n_ubatch 512 with flash attention for DeepSeek-V3.2,
    1.9-3.9× the estimate: cases.json),
    so fit without --reserve refuses in one line; with --reserve the fit runs and says the
    compute buffer is in it."""
    args = ["fit", "deepseek-v3.2", "--gpu", "h200", "--pp", "8", "-e", "llama.cpp", "-s", "32k"]
    refused = run_cli(*args)
    assert refused.exit_code == 2
    assert refused.stderr.count("error:") == 1 and "pass --reserve" in refused.stderr
    given = run_cli(*args, "--reserve", "8GiB")
    assert given.exit_code == 0 and "compute buffer in --reserve" in given.stdout
    measured = [
        c["compute_bytes"]
        for c in CASES
        if c["preset"] == "deepseek-v3.2" and not c["refused"] and c["measured"]["n_ubatch"] == 512
        and c["options"]["flash_attn"] != "off"
    ]  # fmt: skip
    assert (min(measured), max(measured)) == (557_922_304, 1_220_622_336)


@pytest.mark.parametrize(
    "case", [c for c in CASES if not c["refused"] and c["gguf_arch"] == DSV4], ids=_case_id
)
def test_deepseek_v4_matches_real_llama_cpp(case: dict[str, Any]) -> None:
    """DeepSeek-V4 (llama_kv_cache_dsv4, src/llama-kv-cache-dsv4.cpp): every cache llama.cpp
    made, cells and bytes, equals kvcalc's: the raw K-only sliding cache (its non-SWA half
    empty), the CSA / HCA compressed K caches, the indexer keys and the f32 compressor state."""
    model = load_model(case["preset"])
    kv = kv_cache(model, _workload(case), LLAMA)
    assert kv.total_bytes == case["kv_bytes"] + case["state_bytes"]
    by_role = {c["role"]: c for c in case["caches"]}
    assert by_role["base"]["n_layers"] == by_role["base"]["k_bytes"] == 0
    assert by_role["swa"]["v_bytes"] == by_role["csa"]["v_bytes"] == by_role["hca"]["v_bytes"] == 0
    sliding = [g for g in kv.groups if g.kind == "sliding"]
    assert sum(g.bytes for g in sliding) == by_role["swa"]["k_bytes"]
    assert {g.tokens for g in sliding} == {by_role["swa"]["cells"]}
    cells = {g.layer_kind: g for g in kv.groups if g.kind == "cells"}
    assert cells["csa"].bytes == by_role["csa"]["k_bytes"] + by_role["indexer"]["k_bytes"]
    assert cells["hca"].bytes == by_role["hca"]["k_bytes"]
    assert cells["csa"].tokens == by_role["csa"]["cells"] == by_role["indexer"]["cells"]
    assert cells["hca"].tokens == by_role["hca"]["cells"]
    names = model.layer_kind_names()
    assert by_role["csa"]["layers"] == [i for i, n in enumerate(names) if n == "csa"]
    assert by_role["hca"]["layers"] == [i for i, n in enumerate(names) if n == "hca"]
    states = [c for c in case["caches"] if c["kind"] == "state"]
    assert sum(g.bytes for g in kv.groups if g.kind == "ring") == sum(
        c["total_bytes"] for c in states
    )
    assert {c["n_rs_seq"] for c in states} == {0}


def test_deepseek_v4_flash_in_llama_cpp_by_hand() -> None:
    """DeepSeek-V4-Flash (tests/data/hf_configs/deepseek-v4-flash.json): 43 layers, compress
    ratios 0, 0, then 4 / 128 alternating (21 CSA, 20 HCA, 2 sliding), head_dim 512,
    index_head_dim 128, sliding_window 128, one KV head. llama_kv_cache_dsv4, f16, -c 8192,
    one slot, n_ubatch 512:
      raw (every layer): GGML_PAD(min(8192, 128 + 512), 256) = 768 cells × 512·2 B
        = 43 × 768 × 1,024 = 33,816,576 B
      CSA K + indexer K: GGML_PAD(ceil(8192 / 4), 256) = 2,048 cells × (512 + 128)·2 B
        = 21 × 2,048 × 1,280 = 55,050,240 B
      HCA K: GGML_PAD(ceil(8192 / 128) = 64, 256) = 256 cells × 1,024 B = 20 × 262,144
        = 5,242,880 B
      state (f32, kv + score): CSA 8 rows × 2·(2·512 + 2·128)·4 = 81,920 B per layer,
        21 × 81,920 = 1,720,320 B; HCA 128 rows × 2·512·4 = 524,288 B, 20 × = 10,485,760 B
      total 33,816,576 + 55,050,240 + 5,242,880 + 1,720,320 + 10,485,760 = 106,315,776 B.
    -c 8192 -np 4 --kv-unified: n_ctx_seq = 8192 still, and every part is kept per slot
    (four streams), 4 × 106,315,776 = 425,263,104 B; without --kv-unified n_ctx_seq is 2,048:
    raw min(2048, 640) → 768 cells, CSA ceil(2048/4) = 512 cells, HCA 16 → 256 cells:
    4 × (43·768·1,024 + 21·512·1,280 + 20·256·1,024 + 1,720,320 + 10,485,760).
    """
    model = load_model("deepseek-v4-flash")
    opts = LlamaCppOptions(ctx_size=8192)
    kv = kv_cache(model, Workload(seq_len=8192, llamacpp=opts), LLAMA)
    one = (
        43 * 768 * 1024 + 21 * 2048 * 1280 + 20 * 256 * 1024 + 21 * 8 * 2 * (2 * 512 + 2 * 128) * 4
    )
    one += 20 * 128 * 2 * 512 * 4
    assert kv.total_bytes == one == 106_315_776
    unified = LlamaCppOptions(ctx_size=8192, kv_unified=True)
    kv4 = kv_cache(model, Workload(seq_len=2048, batch=4, llamacpp=unified), LLAMA)
    assert kv4.total_bytes == 4 * 106_315_776 == 425_263_104
    split = LlamaCppOptions(ctx_size=8192)
    kv4 = kv_cache(model, Workload(seq_len=2048, batch=4, llamacpp=split), LLAMA)
    state = 21 * 8 * 2 * (2 * 512 + 2 * 128) * 4 + 20 * 128 * 2 * 512 * 4
    assert kv4.total_bytes == 4 * (43 * 768 * 1024 + 21 * 512 * 1280 + 20 * 256 * 1024 + state)


def test_deepseek_v4_pro_q8_0_in_llama_cpp_by_hand() -> None:
    """DeepSeek-V4-Pro (tests/data/hf_configs/deepseek-v4-pro.json): 61 layers, compress ratios
    128, 128, then 4 / 128 alternating (30 CSA, 31 HCA), head_dim 512, index_head_dim 128,
    sliding_window 128. -ctk q8_0 -ctv q8_0 (-fa on), -c 32768: q8_0 rows 512/32·34 = 544 B
    and 128/32·34 = 136 B; raw GGML_PAD(min(32768, 640), 256) = 768 cells, CSA
    ceil(32768/4) = 8,192 cells, HCA ceil(32768/128) = 256 cells; the state stays f32:
      61·768·544 + 30·8,192·(544 + 136) + 31·256·544
      + 30·8·2·(2·512 + 2·128)·4 + 31·128·2·512·4 B.
    K and V types must match (llama_init_from_model refuses DEEPSEEK4 otherwise).
    """
    model = load_model("deepseek-v4-pro")
    q8 = kv_dtype("q8_0")
    opts = LlamaCppOptions(ctx_size=32768, flash_attn="on")
    w = Workload(seq_len=32768, k_dtype=q8, v_dtype=q8, llamacpp=opts)
    expected = 61 * 768 * 544 + 30 * 8192 * (544 + 136) + 31 * 256 * 544
    expected += 30 * 8 * 2 * (2 * 512 + 2 * 128) * 4 + 31 * 128 * 2 * 512 * 4
    assert kv_cache(model, w, LLAMA).total_bytes == expected
    with pytest.raises(KvcalcError, match="different K"):
        kv_cache(model, Workload(seq_len=8192, k_dtype=q8, llamacpp=opts), LLAMA)


def test_deepseek_v4_mtp_and_compute_buffer_are_refused_under_llama_cpp() -> None:
    """llama.cpp runs DeepSeek-V4's MTP block in its own context (not modelled), and the
    compute-buffer estimate is not fitted to DeepSeek-V4 (measured 1.0-2.0× it)."""
    model = load_model("deepseek-v4-flash")
    with pytest.raises(KvcalcError, match="MTP"):
        kv_cache(model, Workload(seq_len=8192, mtp=True), LLAMA)
    with pytest.raises(KvcalcError, match="pass --reserve"):
        compute_buffer_bytes(model, llama_context(None, 8192, 1))


def test_fit_says_deepseek_v4_keeps_a_stream_per_slot_under_kv_unified(run_cli: Run) -> None:
    """llama_kv_cache_dsv4 allocates each of its caches per sequence even with --kv-unified
    (llama.cpp 0c1e57098 src/llama-kv-cache-dsv4.cpp), so fit reports -np streams, not one;
    a model of ordinary caches keeps one unified stream."""

    def streams(model: str) -> int:
        args = ["--gpu", "h200", "-e", "llama.cpp", "--seq", "8192", "-np", "4", "--kv-unified"]
        result = run_cli("fit", model, *args, "--reserve", "4GiB", "-f", "json")
        assert result.exit_code == 0, result.stderr
        stream_count: int = json.loads(result.stdout)["llamacpp"]["n_stream"]
        return stream_count

    assert streams("deepseek-v4-flash") == 4
    assert streams("llama-3.1-8b") == 1
