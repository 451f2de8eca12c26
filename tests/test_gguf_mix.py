"""llama.cpp k-quant file types sized tensor by tensor (kvcalc/gguf_mix.py).

Expected bytes are derived by hand from the published config.json (tests/data/hf_configs)
and ggml's block sizes (ggml/src/ggml-common.h: Q4_K 144 B, Q6_K 210 B per 256 weights);
the per-tensor types are checked against llama.cpp's own snapshots of its type choice,
tests/snapshots/*.schema of ggml-org/llama.cpp at commit
0c1e57098bba43ac29e6e3b677cdceebdd22334f (the k-quant sections copied to
tests/data/llamacpp_quant; MIT licence), which list each tensor whose type differs from the
file type's default.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from kvcalc.cli import app
from kvcalc.dtypes import GGUF_FILE_TYPES, WEIGHT_DTYPES, weight_dtype
from kvcalc.engines import ENGINES
from kvcalc.errors import KvcalcError
from kvcalc.gguf_mix import FTYPES, GgufTensor, _fallback, gguf_mix
from kvcalc.planner import weights_per_stage
from kvcalc.presets import load_model

SNAPSHOTS = Path(__file__).parent / "data" / "llamacpp_quant"


def test_llama_3_1_8b_q4_k_m_tensor_by_tensor() -> None:
    """Llama-3.1-8B (hidden 4096, 32 layers, 32 heads / 8 KV heads of 128, intermediate
    14336, vocab 128256, untied) in Q4_K_M. Row bytes: Q4_K 4096/256·144 = 2,304,
    14336/256·144 = 8,064; Q6_K 4096/256·210 = 3,360, 14336/256·210 = 11,760.
    use_more_bits(i, 32): i < 4, i ≥ 28 or (i − 4) % 3 == 2: 16 layers (0-3, 6, 9 … 27,
    28-31) take attn_v and ffn_down in Q6_K.
      every layer, Q4_K: attn_q 4096·2,304 = 9,437,184, attn_k 1024·2,304 = 2,359,296,
        attn_v 2,359,296, attn_output 9,437,184, ffn_gate = ffn_up = 14336·2,304 =
        33,030,144, ffn_down 4096·8,064 = 33,030,144: 122,683,392; norms 2·4096·4 = 32,768
      a use_more_bits layer adds attn_v 1024·(3,360 − 2,304) = 1,081,344 and ffn_down
        4096·(11,760 − 8,064) = 15,138,816: 16,220,160
      token_embd Q4_K 128256·2,304 = 295,501,824; output Q6_K 128256·3,360 = 430,940,160;
      output_norm 16,384
    32·122,716,160 + 16·16,220,160 + 295,501,824 + 430,940,160 + 16,384 = 4,912,898,048."""
    spec = load_model("llama-3.1-8b")
    expected = 32 * 122_716_160 + 16 * 16_220_160 + 295_501_824 + 430_940_160 + 16_384
    assert expected == 4_912_898_048
    dtype = weight_dtype("q4_k_m")
    assert weights_per_stage(spec, ENGINES["llama.cpp"], 1, 1, dtype) == (expected,)
    mix = gguf_mix(spec, "q4_k_m")
    types = {t.tensor.name: t.ggml_type for t in mix.tensors}
    assert types["output.weight"] == "q6_K" and types["token_embd.weight"] == "q4_K"
    assert [i for i in range(32) if types[f"blk.{i}.ffn_down.weight"] == "q6_K"] == [
        *range(4),
        6,
        9,
        12,
        15,
        18,
        21,
        24,
        27,
        28,
        29,
        30,
        31,
    ]


def test_llama_3_1_8b_q4_k_m_against_the_published_file() -> None:
    """bartowski/Meta-Llama-3.1-8B-Instruct-GGUF, Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf at
    revision bf5b95e96dac0462e2a09145ec66cae9a3f12067 is 4,920,739,232 B (its LFS pointer,
    sha256 7b064f58…3557c). The tensors are 4,912,898,048 B plus rope_freqs.weight (64 f32,
    256 B, which kvcalc does not count): 7,840,928 B remain for the GGUF header, the
    metadata and the tensor index. The tokenizer alone takes more than 3.78 MB of it:
    128,256 token strings and 280,147 merges with an 8-byte length each (3,267,224 B) plus
    128,256 int32 token types (513,024 B); the rest is their characters (about 4 MB)."""
    tensors = gguf_mix(load_model("llama-3.1-8b"), "q4_k_m").total_bytes + 256
    metadata = 4_920_739_232 - tensors
    assert metadata == 7_840_928
    assert 8 * (128_256 + 280_147) + 4 * 128_256 < metadata < 8 * 2**20


def test_mistral_7b_v0_1_q4_k_m_against_the_published_file() -> None:
    """Mistral-7B-v0.1 (sliding-window layers, the same tensors) has Llama-3.1-8B's layers
    (hidden 4096, 32 layers, 32 / 8 heads of 128, intermediate 14336: 4,186,439,680 B of
    layers in Q4_K_M, above) and a 32,000 vocab: token_embd Q4_K 32000·2,304 = 73,728,000,
    output Q6_K 32000·3,360 = 107,520,000, output_norm 16,384: 4,367,704,064 B.
    TheBloke/Mistral-7B-v0.1-GGUF's mistral-7b-v0.1.Q4_K_M.gguf (made in 2023) is
    4,368,438,912 B (sha256 ce6253d2…be40c): 734,848 B for the header and metadata, of which
    the 32,000 tokens' lengths, scores and types take 32000·(8 + 4 + 4) = 512,000 B."""
    expected = 4_186_439_680 + 73_728_000 + 107_520_000 + 16_384
    assert gguf_mix(load_model("mistral-7b-v0.1"), "q4_k_m").total_bytes == expected
    metadata = 4_368_438_912 - expected
    assert metadata == 734_848
    assert 32_000 * (8 + 4 + 4) < metadata < 2**20


def test_qwen3_0_6b_q4_k_m_tied_embedding_takes_the_output_rule() -> None:
    """Qwen3-0.6B (hidden 1024, 28 layers, 16 heads / 8 KV heads of 128, intermediate 3072,
    vocab 151936, tied): no output.weight, so token_embd takes the output rule (Q6_K).
    Row bytes: Q4_K 1024 → 576, 2048 → 1,152, 3072 → 1,728; Q6_K 1024 → 840, 3072 → 2,520.
    use_more_bits(i, 28): i < 3, i ≥ 24 or (i − 3) % 3 == 2: 14 layers.
      every layer: attn_q 2048·576 = 1,179,648, attn_k = attn_v = 1024·576 = 589,824,
        attn_output 1024·1,152 = 1,179,648, ffn_gate = ffn_up = ffn_down = 1,769,472:
        8,847,360; f32 norms (2·1024 + 2·128)·4 = 9,216
      a use_more_bits layer adds 1024·(840 − 576) + 1024·(2,520 − 1,728) = 1,081,344
      token_embd Q6_K 151936·840 = 127,626,240; output_norm 4,096
    28·8,856,576 + 14·1,081,344 + 127,626,240 + 4,096 = 390,753,280."""
    spec = load_model("qwen3-0.6b")
    expected = 28 * 8_856_576 + 14 * 1_081_344 + 127_626_240 + 4_096
    assert expected == 390_753_280
    assert gguf_mix(spec, "q4_k_m").total_bytes == expected


def test_qwen3_30b_a3b_q4_k_m_experts_tensor_by_tensor() -> None:
    """Qwen3-30B-A3B (hidden 2048, 48 layers, 32 heads / 4 KV heads of 128, 128 experts of
    768, vocab 151936, untied) in Q4_K_M. Row bytes: Q4_K 2048 → 1,152, 4096 → 2,304,
    768 → 432; Q6_K 2048 → 1,680, 768 → 630. use_more_bits(i, 48): i < 6, i ≥ 42 or
    (i − 6) % 3 == 2: 24 layers; ffn_down_exps reads its layer from the name (128 experts).
      every layer: attn_q 4096·1,152 = 4,718,592, attn_k = attn_v = 512·1,152 = 589,824,
        attn_output 2048·2,304 = 4,718,592, ffn_gate_exps = ffn_up_exps = 768·128·1,152 =
        113,246,208, ffn_down_exps 2048·128·432 = 113,246,208: 350,355,456; f32: norms
        2·2048 + 2·128 and the router 2048·128: 266,496·4 = 1,065,984
      a use_more_bits layer adds 512·(1,680 − 1,152) + 2048·128·(630 − 432) = 52,174,848
      token_embd Q4_K 151936·1,152 = 175,030,272; output Q6_K 151936·1,680 = 255,252,480;
      output_norm 8,192
    48·351,421,440 + 24·52,174,848 + 175,030,272 + 255,252,480 + 8,192 = 18,550,716,416.
    Qwen/Qwen3-30B-A3B-GGUF's Qwen3-30B-A3B-Q4_K_M.gguf (revision
    e4d4bafdfb96a411a163846265362aceb0b9c63a, sha256 0d003f66…aa8f5) is 18,556,685,824 B:
    5,969,408 B of header and metadata, more than its tokenizer's fixed-size part (151,936
    tokens and 151,387 merges with 8-byte lengths, 151,936 int32 types: 3,034,328 B)."""
    spec = load_model("qwen3-30b-a3b")
    expected = 48 * 351_421_440 + 24 * 52_174_848 + 175_030_272 + 255_252_480 + 8_192
    assert expected == 18_550_716_416
    assert weights_per_stage(spec, ENGINES["llama.cpp"], 1, 1, weight_dtype("q4_k_m")) == (
        expected,
    )
    metadata = 18_556_685_824 - expected
    assert metadata == 5_969_408
    assert 8 * (151_936 + 151_387) + 4 * 151_936 < metadata < 8 * 2**20


def _snapshot(path: Path) -> dict[str, tuple[str, dict[str, str]]]:
    sections: dict[str, tuple[str, dict[str, str]]] = {}
    current: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            name, default = line[1:].split("] ")
            current = {}
            sections[name.lower()] = (default, current)
        else:
            tensor, kind = line.rsplit(" ", 1)
            current[tensor] = kind
    return sections


@pytest.mark.parametrize(
    ("preset", "snapshot"),
    [("llama-3.1-70b", "meta-llama-3.1-70b-instruct"), ("qwen3-14b", "qwen3-14b")],
)
def test_types_match_llama_cpp_snapshots(preset: str, snapshot: str) -> None:
    """Every file type gives each tensor the type llama.cpp's test snapshot lists
    (tests/snapshots, generated by tests/test-quant-type-selection.cpp from the real GGUF
    files: bartowski's Llama-3.1-70B-Instruct, ggml-org's Qwen3-14B, computed without an
    importance matrix): the 70B attn_v bump, use_more_bits, Q3_K_M's first two attn_v and
    first sixteenth of ffn_down, the IQ types' embeddings, attn_q/attn_k and ffn rules."""
    sections = _snapshot(SNAPSHOTS / f"{snapshot}.schema")
    static = {"iq4_xs": "iq4_xs_static", "iq4_nl": "iq4_nl_static"}
    names = {static.get(k, k) for k in sections}
    assert names == set(FTYPES) - {"iq4_xs_imatrix", "iq4_nl_imatrix"}
    spec = load_model(preset)
    for section, (default, listed) in sections.items():
        ftype = static.get(section, section)
        mix = gguf_mix(spec, ftype, imatrix=False)
        assert FTYPES[ftype].default == default
        ours = {
            t.tensor.name: t.ggml_type
            for t in mix.tensors
            if t.tensor.quantizable and t.ggml_type != default
        }
        assert ours == listed, ftype


def test_phi3_fused_qkv_takes_the_attn_v_rules() -> None:
    """Phi-3-mini-4k (hidden 3072, 32 layers, 32 heads of 96 and as many KV heads,
    intermediate 8192, vocab 32064, untied) in Q4_K_M: llama.cpp stores the fused attn_qkv
    (9216 rows) and ffn_up (gate and up, 16384 rows); attn_qkv is an attn_v category
    (category_is_attn_v), so it takes Q6_K on the use_more_bits layers. Row bytes: Q4_K
    3072 → 1,728, 8192 → 4,608; Q6_K 3072 → 2,520, 8192 → 6,720.
      every layer: attn_qkv 9216·1,728 = 15,925,248, attn_output 3072·1,728 = 5,308,416,
        ffn_up 16384·1,728 = 28,311,552, ffn_down 3072·4,608 = 14,155,776; norms 24,576
      a use_more_bits layer adds 9216·(2,520 − 1,728) + 3072·(6,720 − 4,608) = 13,787,136
      token_embd 32064·1,728 = 55,406,592; output 32064·2,520 = 80,801,280; norm 12,288
    32·63,725,568 + 16·13,787,136 + 55,406,592 + 80,801,280 + 12,288 = 2,396,032,512."""
    mix = gguf_mix(load_model("phi-3-mini-4k"), "q4_k_m")
    expected = 32 * 63_725_568 + 16 * 13_787_136 + 55_406_592 + 80_801_280 + 12_288
    assert mix.total_bytes == expected == 2_396_032_512
    types = {t.tensor.name: t.ggml_type for t in mix.tensors}
    assert types["blk.0.attn_qkv.weight"] == "q6_K" and types["blk.4.attn_qkv.weight"] == "q4_K"


def test_mixtral_eight_experts_bump_attention() -> None:
    """Mixtral-8x7B (n_expert 8) in Q4_K_M: attn_k and attn_v in Q8_0, attn_output in Q5_K
    (llama_tensor_get_type_impl's 8-expert rules); ffn_down_exps takes use_more_bits by the
    layer read from its name."""
    mix = gguf_mix(load_model("mixtral-8x7b"), "q4_k_m")
    types = {t.tensor.name: t.ggml_type for t in mix.tensors}
    assert types["blk.5.attn_k.weight"] == types["blk.5.attn_v.weight"] == "q8_0"
    assert types["blk.5.attn_output.weight"] == "q5_K"
    assert types["blk.6.ffn_down_exps.weight"] == "q6_K"
    assert types["blk.5.ffn_down_exps.weight"] == "q4_K"
    assert types["blk.5.ffn_gate_inp.weight"] == "f32"


def test_row_fallback() -> None:
    """tensor_type_fallback: a 4000-wide row is not whole Q4_K blocks (256) but is whole
    Q5_0 blocks (32): Q5_0; a 100-wide row fits neither: f16."""
    assert _fallback(GgufTensor("blk.0.ffn_down.weight", (4000, 8), 0), "q4_K") == "q5_0"
    assert _fallback(GgufTensor("blk.0.ffn_down.weight", (100, 8), 0), "q6_K") == "f16"
    assert _fallback(GgufTensor("blk.0.ffn_down.weight", (4096, 8), 0), "q6_K") == "q6_K"


def test_pipeline_stages_add_up_to_the_file() -> None:
    """With pp 2 each stage holds its layers, the first token_embd, the last output: the
    stages add up to the whole file's tensors."""
    spec = load_model("llama-3.1-8b")
    dtype = weight_dtype("q5_k_m")
    whole = gguf_mix(spec, "q5_k_m").total_bytes
    assert sum(weights_per_stage(spec, ENGINES["vllm"], 1, 2, dtype)) == whole


def test_iq4_with_an_importance_matrix_keeps_ffn_down() -> None:
    """IQ4_XS without an imatrix puts ffn_down of the first eighth (layers 0-3 of 32) in
    Q5_K; with one it stays IQ4_XS. attn_v is Q5_K either way (GQA 4 ≥ 4). A Q5_K ffn_down
    row is 14336/256·176 = 9,856 B against IQ4_XS's 14336/256·136 = 7,616 B: the static file
    is 4 · 4096 · (9,856 − 7,616) = 36,700,160 B larger."""
    spec = load_model("llama-3.1-8b")
    static = gguf_mix(spec, "iq4_xs_static")
    imatrix = gguf_mix(spec, "iq4_xs_imatrix")
    assert static.total_bytes - imatrix.total_bytes == 4 * 4096 * (9_856 - 7_616)
    types = {t.tensor.name: t.ggml_type for t in imatrix.tensors}
    assert types["blk.0.ffn_down.weight"] == "iq4_xs" and types["blk.0.attn_v.weight"] == "q5_K"
    with pytest.raises(KvcalcError, match="iq4_xs-imatrix or iq4_xs-static") as info:
        weight_dtype("iq4_xs")
    assert "\n" not in str(info.value)


def test_file_type_tables_agree() -> None:
    """dtypes' names of the file types and their default types are gguf_mix's."""
    assert set(GGUF_FILE_TYPES) == set(FTYPES)
    for name, base in GGUF_FILE_TYPES.items():
        assert FTYPES[name].default.lower() == base


def test_tensor_parallel_ranks_split_matrices_and_keep_norms() -> None:
    """With tp 2 (vLLM: 8 KV heads, 4 a rank) each rank holds half of every quantised
    matrix (all of Llama-3.1-8B's are an even number of bytes) and every f32 norm:
    (4,912,898,048 − 1,064,960) / 2 + 1,064,960 = 2,457,981,504."""
    spec = load_model("llama-3.1-8b")
    ranks = weights_per_stage(spec, ENGINES["vllm"], 2, 1, weight_dtype("q4_k_m"))
    assert ranks == ((4_912_898_048 - 1_064_960) // 2 + 1_064_960,)


def test_pure_names_keep_every_tensor_in_the_type() -> None:
    """q6_k is the llama-quantize file type; q6_k-pure stays `--pure` (one type)."""
    assert weight_dtype("q6_k").mix and not weight_dtype("q6_k-pure").mix
    assert weight_dtype("Q6_K-pure") is WEIGHT_DTYPES["q6_k"]


@pytest.mark.parametrize(
    ("preset", "needle"),
    [("deepseek-v3", "not 'deepseek_v3'"), ("gemma-3-4b", "not 'gemma3_text'")],
)
def test_unmodelled_families_are_refused_in_one_line(preset: str, needle: str) -> None:
    """A family kvcalc does not lay out as GGUF tensors is refused, naming it."""
    with pytest.raises(KvcalcError, match=needle) as info:
        gguf_mix(load_model(preset), "q4_k_m")
    assert "\n" not in str(info.value)


def test_fit_says_which_tensors_get_which_type() -> None:
    """`kvcalc fit … --weights-dtype q4_k_m` works and its note names the types by role."""
    result = CliRunner().invoke(
        app,
        ["fit", "llama-3.1-8b", "--gpu", "h100", "-e", "llama.cpp", "--weights-dtype", "q4_k_m"],
    )
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "llama.cpp Q4_K_M" in text and "q6_K 33 tensors" in text
