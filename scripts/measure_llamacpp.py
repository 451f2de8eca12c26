"""Record what a real llama.cpp allocates for the KV cache, as test data for kvcalc.

Builds scripts/llamacpp_harness.cpp against a llama.cpp build, writes for each geometry a
GGUF with the model's real shapes (hidden size, FFN, experts, vocabulary, attention) whose
tensor data is a sparse hole (no weights: the harness loads with llama.cpp's no_alloc
memory-fit mode, which reads only metadata), creates contexts with each set of options
and writes every cache's exact K/V bytes, cells and the compute buffer to
tests/data/llamacpp/cases.json (state_cases.json for recurrent/hybrid models).

usage:
  python scripts/measure_llamacpp.py --llama-cpp DIR [--build DIR] [--out tests/data/llamacpp]
      [--only PRESET ...]  (re-record these presets' cases in cases.json, keep the others)

DIR is a llama.cpp source tree (for example the one vendored in the llama-cpp-python
sdist, vendor/llama.cpp) built with `cmake -B build -DLLAMA_BUILD_TESTS=OFF
-DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF && cmake --build build --target llama`.
Its gguf-py is used to write the GGUF files. The commit is read from --commit, else from
the tree's git HEAD.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
HF_CONFIGS = ROOT / "tests" / "data" / "hf_configs"


def hf_config(name: str) -> dict[str, Any]:
    """Return the published config.json kept in tests/data/hf_configs (text part)."""
    cfg = json.loads((HF_CONFIGS / f"{name}.json").read_text())
    return cfg.get("text_config", cfg)


# glm-dsa's indexer tensors are optional to the loader (shared layers have none), needed
# by the graph of the full ones (src/models/glm-dsa.cpp)
GLM_DSA_INDEXER = [
    f"indexer.{t}" for t in ("k_norm.weight", "k_norm.bias", "proj.weight", "attn_k.weight",
                             "attn_q_b.weight")
]  # fmt: skip


# One entry per geometry: the kvcalc preset (whose attention geometry, layer pattern and
# source URL are used), the llama.cpp architecture, and the FFN/expert shapes.
def geometries() -> list[dict[str, Any]]:
    """Return the geometries to record, with their GGUF metadata (arch-specific keys)."""
    return [
        {"preset": "llama-3.1-8b", "arch": "llama"},
        {"preset": "llama-3.2-1b", "arch": "llama"},
        {"preset": "mistral-7b-v0.1", "arch": "llama"},
        {"preset": "qwen3-8b", "arch": "qwen3"},
        {"preset": "qwen2.5-7b", "arch": "qwen2"},
        {"preset": "gemma-2-9b", "arch": "gemma2"},
        {"preset": "gemma-3-4b", "arch": "gemma3"},
        {"preset": "gemma-3-1b", "arch": "gemma3"},
        {"preset": "phi-3-mini-4k", "arch": "phi3", "seed": ["attn_qkv.weight"]},
        {"preset": "falcon-7b", "arch": "falcon"},
        {"preset": "deepseek-v2-lite", "arch": "deepseek2"},
        {"preset": "gpt-oss-20b", "arch": "gpt-oss"},
        {"preset": "llama-4-scout", "arch": "llama4"},
        # DSA and MiMo-V2 GGUFs from convert_hf_to_gguf append the NextN/MTP blocks; these
        # leave them out (a context on such a file crashed, SIGSEGV, in this no_alloc mode);
        # create_memory filters them from the trunk's cache (il < n_layer()) either way
        {"preset": "deepseek-v3.2", "arch": "deepseek32"},
        {"preset": "glm-5", "arch": "glm-dsa", "seed": GLM_DSA_INDEXER},
        {"preset": "glm-5.2", "arch": "glm-dsa", "seed": GLM_DSA_INDEXER},
        {
            "preset": "mimo-v2-flash",
            "arch": "mimo2",  # the FFN tensors are optional to the loader, needed by the graph
            "seed": [f"ffn_{t}.weight" for t in ("gate_inp", "gate_exps", "up_exps", "down_exps")],
        },
        # conversion/deepseek.py DeepseekV4Model writes the trunk only (MTP with --mtp-only)
        {"preset": "deepseek-v4-flash", "arch": "deepseek4"},
        {"preset": "deepseek-v4-pro", "arch": "deepseek4"},
    ]


def gguf_metadata(entry: dict[str, Any]) -> tuple[dict[str, Any], int, int]:
    """Return (GGUF key/values without the arch prefix, n_layer, n_vocab) for a geometry."""
    from kvcalc.presets import load_model

    spec = load_model(entry["preset"])
    cfg = hf_config(entry["preset"])
    att = spec.attention
    kv: dict[str, Any] = {
        "context_length": spec.max_position_embeddings or 4096,
        "embedding_length": spec.d_model,
        "block_count": spec.n_layers,
        "vocab_size": spec.vocab_size,
        "attention.head_count": att.n_heads,
    }
    ffn = cfg.get("intermediate_size") or cfg.get("ffn_hidden_size") or 4 * spec.d_model
    if entry["arch"] == "llama4":
        ffn = cfg["intermediate_size_mlp"]
    kv["feed_forward_length"] = ffn
    eps_key = (
        "attention.layer_norm_epsilon"
        if entry["arch"] == "falcon"
        else ("attention.layer_norm_rms_epsilon")
    )
    kv[eps_key] = 1e-5
    if att.kind == "mla":
        kv["attention.head_count_kv"] = 1
        kv["attention.kv_lora_rank"] = att.kv_lora_rank
        kv["attention.key_length"] = att.kv_lora_rank + att.qk_rope_head_dim
        kv["attention.value_length"] = att.kv_lora_rank
        kv["attention.key_length_mla"] = att.qk_nope_head_dim + att.qk_rope_head_dim
        kv["attention.value_length_mla"] = att.v_head_dim
        kv["rope.dimension_count"] = att.qk_rope_head_dim
        kv["leading_dense_block_count"] = cfg.get("first_k_dense_replace", 0)
        kv["expert_count"] = cfg["n_routed_experts"]
        kv["expert_used_count"] = cfg["num_experts_per_tok"]
        kv["expert_shared_count"] = cfg["n_shared_experts"]
        kv["expert_feed_forward_length"] = cfg["moe_intermediate_size"]
        kv["expert_weights_scale"] = float(cfg.get("routed_scaling_factor", 1.0))
        if att.index_head_dim is not None:  # DSA: conversion/deepseek.py, conversion/glm.py
            kv["attention.q_lora_rank"] = cfg["q_lora_rank"]
            kv["attention.indexer.head_count"] = cfg["index_n_heads"]
            kv["attention.indexer.key_length"] = cfg["index_head_dim"]
            kv["attention.indexer.top_k"] = cfg["index_topk"]
            kv["expert_gating_func"] = 2  # sigmoid
            if "indexer_types" in cfg:
                kv["attention.indexer.types"] = [t == "full" for t in cfg["indexer_types"]]
    else:
        kv["attention.head_count_kv"] = att.n_kv_heads
        kv["attention.key_length"] = att.head_dim
        kv["attention.value_length"] = att.head_dim_v or att.head_dim
        kv["rope.dimension_count"] = att.head_dim
    windows = spec.layer_windows()
    if any(w is not None for w in windows):
        size = next(w.size for w in windows if w is not None)
        kv["attention.sliding_window"] = size
        if entry["arch"] != "llama4":
            kv["attention.sliding_window_pattern"] = [w is not None for w in windows]
        else:
            kv["attention.sliding_window_pattern"] = [w is not None for w in windows]
    if entry["arch"] == "mimo2":  # conversion/mimo.py MimoV2Model.set_gguf_parameters
        hybrid = list(cfg["hybrid_layer_pattern"])
        kv["attention.head_count_kv"] = [
            cfg["swa_num_key_value_heads"] if swa else cfg["num_key_value_heads"] for swa in hybrid
        ]
        kv["attention.sliding_window"] = cfg["sliding_window"]
        kv["attention.sliding_window_pattern"] = [bool(swa) for swa in hybrid]
        kv["attention.value_length"] = cfg["v_head_dim"]
        kv["rope.dimension_count"] = int(cfg["head_dim"] * cfg["partial_rotary_factor"])
        kv["expert_count"] = cfg["n_routed_experts"]
        kv["expert_used_count"] = cfg["num_experts_per_tok"]
        kv["expert_feed_forward_length"] = cfg["moe_intermediate_size"]
    if entry["arch"] == "deepseek4":  # conversion/deepseek.py DeepseekV4Model.set_gguf_parameters
        n = cfg["num_hidden_layers"]
        kv |= {
            "attention.head_count_kv": cfg["num_key_value_heads"],
            "attention.key_length": cfg["head_dim"],
            "attention.value_length": cfg["head_dim"],
            "rope.dimension_count": cfg["qk_rope_head_dim"],
            "attention.q_lora_rank": cfg["q_lora_rank"],
            "attention.sliding_window": cfg["sliding_window"],
            "expert_count": cfg["n_routed_experts"],
            "expert_used_count": cfg["num_experts_per_tok"],
            "expert_feed_forward_length": cfg["moe_intermediate_size"],
            "expert_shared_count": cfg["n_shared_experts"],
            "expert_weights_scale": float(cfg["routed_scaling_factor"]),
            "expert_weights_norm": bool(cfg["norm_topk_prob"]),
            "swiglu_clamp_exp": [float(cfg["swiglu_limit"])] * n,
            "swiglu_clamp_shexp": [float(cfg["swiglu_limit"])] * n,
            "attention.indexer.head_count": cfg["index_n_heads"],
            "attention.indexer.key_length": cfg["index_head_dim"],
            "attention.indexer.top_k": cfg["index_topk"],
            "attention.output_group_count": cfg["o_groups"],
            "attention.output_lora_rank": cfg["o_lora_rank"],
            "attention.compress_ratios": cfg["compress_ratios"],
            "attention.compress_rope_freq_base": float(cfg["compress_rope_theta"]),
            "hyper_connection.count": cfg["hc_mult"],
            "hyper_connection.sinkhorn_iterations": cfg["hc_sinkhorn_iters"],
            "hyper_connection.epsilon": float(cfg["hc_eps"]),
            "hash_layer_count": cfg["num_hash_layers"],
            "embedding_length_out": cfg["hidden_size"] * cfg["hc_mult"],
            "expert_gating_func": 4,  # LLAMA_EXPERT_GATING_FUNC_TYPE_SQRT_SOFTPLUS
            "feed_forward_length": cfg["moe_intermediate_size"],
        }
        kv.pop("attention.sliding_window_pattern", None)
    if entry["preset"] == "phi-3-mini-4k":
        kv["attention.sliding_window"] = cfg["sliding_window"]  # llama.cpp disables it
    if entry["arch"] == "gpt-oss":
        kv["expert_count"] = cfg["num_local_experts"]
        kv["expert_used_count"] = cfg["num_experts_per_tok"]
        kv["expert_feed_forward_length"] = cfg["intermediate_size"]
    if entry["arch"] == "llama4":
        kv["expert_count"] = cfg["num_local_experts"]
        kv["expert_used_count"] = cfg["num_experts_per_tok"]
        kv["expert_feed_forward_length"] = cfg["intermediate_size"]
        kv["interleave_moe_layer_step"] = cfg["interleave_moe_layer_step"]
        kv["expert_shared_count"] = 1
    return kv, kv["block_count"], spec.vocab_size


def state_geometries() -> list[dict[str, Any]]:
    """Return hybrid (recurrent + attention) geometries, GGUF keys built from the config."""
    out = []
    for name, arch in (
        ("qwen3-next-80b-a3b", "qwen3next"),
        ("qwen3.5-27b", "qwen35"),
        ("qwen3.5-35b-a3b", "qwen35moe"),
    ):
        c = hf_config(name)
        n = c["num_hidden_layers"]
        kinds = c.get("layer_types") or [
            "full_attention" if (i + 1) % c["full_attention_interval"] == 0 else "linear_attention"
            for i in range(n)
        ]
        kv: dict[str, Any] = {
            "context_length": c["max_position_embeddings"],
            "embedding_length": c["hidden_size"],
            "block_count": n,
            "vocab_size": c["vocab_size"],
            "feed_forward_length": c.get("intermediate_size") or c["moe_intermediate_size"],
            "attention.head_count": c["num_attention_heads"],
            "attention.head_count_kv": c["num_key_value_heads"],
            "attention.key_length": c["head_dim"],
            "attention.value_length": c["head_dim"],
            "attention.layer_norm_rms_epsilon": 1e-6,
            "rope.dimension_count": c["head_dim"] // 4,
            "ssm.conv_kernel": c["linear_conv_kernel_dim"],
            "ssm.state_size": c["linear_key_head_dim"],
            "ssm.group_count": c["linear_num_key_heads"],
            "ssm.time_step_rank": c["linear_num_value_heads"],
            "ssm.inner_size": c["linear_value_head_dim"] * c["linear_num_value_heads"],
            "attention.recurrent_layers": [k == "linear_attention" for k in kinds],
            "full_attention_interval": c["full_attention_interval"],
        }
        if arch in ("qwen35", "qwen35moe"):
            kv["rope.dimension_sections"] = [11, 11, 10, 0]
        if "num_experts" in c:
            kv["expert_count"] = c["num_experts"]
            kv["expert_used_count"] = c["num_experts_per_tok"]
            kv["expert_feed_forward_length"] = c["moe_intermediate_size"]
            kv["expert_shared_feed_forward_length"] = c["shared_expert_intermediate_size"]
        seed = ["attn_qkv.weight", "attn_gate.weight"]  # the fused GDN projections
        out.append({"preset": name, "arch": arch, "kv": kv, "n_layer": n, "seed": seed})
    for name, arch in (
        ("nemotron-h-56b", "nemotron_h"),
        ("nemotron-3-nano-30b-a3b", "nemotron_h_moe"),
    ):
        c = hf_config(name)
        pattern = c["hybrid_override_pattern"]  # M mamba2, * attention, - MLP, E MoE
        head_dim = c.get("attention_head_dim") or c["head_dim"]
        ffn = c.get("moe_intermediate_size") or c["intermediate_size"]
        kv = {
            "context_length": c["max_position_embeddings"],
            "embedding_length": c["hidden_size"],
            "block_count": len(pattern),
            "vocab_size": c["vocab_size"],
            "feed_forward_length": [ffn if p in "-E" else 0 for p in pattern],
            "attention.head_count": c["num_attention_heads"],
            "attention.head_count_kv": [
                c["num_key_value_heads"] if p == "*" else 0 for p in pattern
            ],
            "attention.key_length": head_dim,
            "attention.value_length": head_dim,
            "attention.layer_norm_epsilon": 1e-5,
            "attention.layer_norm_rms_epsilon": 1e-5,
            "rope.dimension_count": head_dim,
            "ssm.conv_kernel": c["conv_kernel"],
            "ssm.state_size": c["ssm_state_size"],
            "ssm.group_count": c["n_groups"],
            "ssm.time_step_rank": c["mamba_num_heads"],
            "ssm.inner_size": c["mamba_num_heads"] * c["mamba_head_dim"],
        }
        if "n_routed_experts" in c:
            kv["expert_count"] = c["n_routed_experts"]
            kv["expert_used_count"] = c["num_experts_per_tok"]
            kv["expert_feed_forward_length"] = c["moe_intermediate_size"]
            kv["expert_shared_feed_forward_length"] = c["moe_shared_expert_intermediate_size"]
            kv["expert_shared_count"] = c["n_shared_experts"]
            kv["expert_weights_scale"] = float(c["routed_scaling_factor"])
        out.append(
            {
                "preset": name,
                "arch": arch,
                "seed": ["ssm_conv1d.bias"],  # use_conv_bias: true
                "n_layer": len(pattern),
                "kv": kv,
            }
        )
    # Kimi-K3 (conversion/kimi_k3.py KimiK3Model.set_gguf_parameters): MLA served as MQA
    # (head_count_kv 1 on full layers, 0 marks a KDA layer), KDA conv kernel and head dim
    c = hf_config("kimi-k3")
    la = c["linear_attn_config"]
    n = c["num_hidden_layers"]
    kv = {
        "context_length": c["max_position_embeddings"],
        "embedding_length": c["hidden_size"],
        "block_count": n,
        "vocab_size": c["vocab_size"],
        "feed_forward_length": c["intermediate_size"],
        "attention.head_count": c["num_attention_heads"],
        "attention.head_count_kv": [1 if i + 1 in la["full_attn_layers"] else 0 for i in range(n)],
        "attention.layer_norm_rms_epsilon": float(c["rms_norm_eps"]),
        "ssm.conv_kernel": la["short_conv_kernel_size"],
        "kda.head_dim": la["head_dim"],
        "kda.gate_lower_bound": float(la["gate_lower_bound"]),
        "attention.q_lora_rank": c["q_lora_rank"],
        "attention.kv_lora_rank": c["kv_lora_rank"],
        "rope.dimension_count": c["qk_rope_head_dim"],
        "attention.key_length": c["kv_lora_rank"] + c["qk_rope_head_dim"],
        "attention.value_length": c["kv_lora_rank"],
        "attention.key_length_mla": c["qk_nope_head_dim"] + c["qk_rope_head_dim"],
        "attention.value_length_mla": c["v_head_dim"],
        "expert_count": c["num_experts"],
        "expert_used_count": c["num_experts_per_token"],
        "expert_feed_forward_length": c["moe_intermediate_size"],
        "expert_shared_count": c["num_shared_experts"],
        "leading_dense_block_count": c["first_k_dense_replace"],
        "expert_weights_scale": float(c["routed_scaling_factor"]),
        "expert_weights_norm": bool(c["moe_renormalize"]),
        "expert_gating_func": 2,  # sigmoid
        "expert_latent_length": c["routed_expert_hidden_size"],
        "activation.situ_beta": float(c["activation_situ_beta"]),
        "activation.situ_linear_beta": float(c["activation_situ_linear_beta"]),
        "attn_res.block_size": c["attn_res_block_size"],
    }
    out.append({"preset": "kimi-k3", "arch": "kimi-k3", "kv": kv, "n_layer": n})
    return out


STATE_CONFIGS: list[tuple[int, int, int]] = [  # n_ctx, n_seq_max, kv_unified
    (4096, 1, 0), (8192, 1, 0), (8192, 4, 0), (8192, 4, 1), (32768, 2, 0), (4096, 8, 1),
]  # fmt: skip


# tensors the graph reads as indices (ggml_get_rows wants I32): DeepSeek-V4's hash-routing
# table of expert ids (src/models/deepseek4.cpp ffn_gate_tid2eid)
INDEX_TENSORS = ("ffn_gate_tid2eid.weight",)


def write_gguf(path: Path, arch: str, kv: dict[str, Any], tensors: dict[str, list[int]]) -> None:
    """Write a GGUF with these keys and tensor shapes (ggml order) whose data is a sparse hole."""
    import gguf
    import numpy as np

    w = gguf.GGUFWriter(str(path), arch)
    for key, value in kv.items():
        full = f"{arch}.{key}"
        if isinstance(value, bool):
            w.add_bool(full, value)
        elif isinstance(value, list) and value and isinstance(value[0], (bool, float)):
            w.add_array(full, value)
        elif isinstance(value, list):
            w.add_array(full, [int(v) for v in value])
        elif isinstance(value, float):
            w.add_float32(full, value)
        else:
            w.add_uint32(full, int(value))
    w.add_string("tokenizer.ggml.model", "none")
    total = 0
    for name, ne in tensors.items():
        dtype = np.float32 if len(ne) == 1 else np.float16
        if name.endswith(INDEX_TENSORS):
            dtype = np.int32
        n = 1
        for d in ne:
            n *= d
        nbytes = n * np.dtype(dtype).itemsize
        w.add_tensor_info(name, list(reversed(ne)), np.dtype(dtype), nbytes)
        total += -(-nbytes // w.data_alignment) * w.data_alignment
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    fout = w.fout[0]
    fout.flush()
    pos = fout.tell()
    start = -(-pos // w.data_alignment) * w.data_alignment
    fout.truncate(start + total)
    fout.close()


MISSING = re.compile(r"missing tensor '([^']+)'|tensor '([^']+)' not found")
SHAPE = re.compile(r"tensor '([^']+)' has wrong shape; expected ([0-9, ]+), got")


def discover_tensors(
    harness: Path, arch: str, kv: dict[str, Any], n_layer: int, workdir: Path, seed: list[str]
) -> dict[str, list[int]]:
    """Return the tensors llama.cpp requires, found by asking its loader until it accepts.

    `seed` names per-layer tensors the loader treats as optional but the graph needs (a
    fused QKV, say); they start as placeholders and take the shape the loader asks for.
    """
    tensors = {f"blk.{i}.{name}": [1] for name in seed for i in range(n_layer)}
    guessed = set(tensors)
    path = workdir / "model.gguf"
    for _ in range(2000):
        write_gguf(path, arch, kv, tensors)
        out = run_harness(harness, path, [])
        if out and out[0].get("loaded"):
            return tensors
        log = out[0].get("load_error", "") if out else ""
        if m := SHAPE.search(log):
            name, shape = m.group(1), [int(x) for x in m.group(2).split(",")]
            tensors[name] = shape
            guessed.discard(name)
            layer = re.match(r"blk\.(\d+)\.(.+)", name)
            if layer:  # propagate the shape to later layers still at their guess
                for i in range(int(layer.group(1)) + 1, n_layer):
                    other = f"blk.{i}.{layer.group(2)}"
                    if other in guessed:
                        tensors[other] = shape
            continue
        if m := MISSING.search(log):
            name = m.group(1) or m.group(2)
            layer = re.match(r"blk\.(\d+)\.(.+)", name)
            names = [name]
            if layer:
                names = [f"blk.{i}.{layer.group(2)}" for i in range(int(layer.group(1)), n_layer)]
            for n in names:
                if n not in tensors:
                    tensors[n] = [1]
                    guessed.add(n)
            continue
        if "wrong number of tensors" in log:  # drop placeholders no layer asked for
            asked = set(re.findall(r"loading tensor (\S+)", log))
            tensors = {k: v for k, v in tensors.items() if k in asked}
            guessed &= set(tensors)
            continue
        raise RuntimeError(f"llama.cpp refused the model: {log[-2000:]}")
    raise RuntimeError("tensor discovery did not converge")


def run_harness(harness: Path, model: Path, configs: list[str]) -> list[dict[str, Any]]:
    """Run the harness on a model with these config lines; return its JSON lines."""
    proc = subprocess.run(
        [str(harness), str(model)],
        input="".join(c + "\n" for c in configs),
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"harness failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]


def build_harness(src: Path, build: Path, out: Path) -> None:
    """Compile the harness against the llama.cpp tree and its built libllama."""
    libdir = build / "bin"
    cmd = [
        "g++", "-std=c++17", "-O1",
        f"-I{src / 'include'}", f"-I{src / 'ggml' / 'include'}", f"-I{src / 'src'}",
        str(ROOT / "scripts" / "llamacpp_harness.cpp"),
        f"-L{libdir}", "-lllama", "-lggml", "-lggml-base", f"-Wl,-rpath,{libdir}",
        "-o", str(out),
    ]  # fmt: skip
    subprocess.run(cmd, check=True)


# (n_ctx, n_seq_max, kv_unified, n_batch, n_ubatch, swa_full, flash_attn, type_k, type_v)
Config = tuple[int, int, int, int, int, int, int, str, str]

CACHE_TYPES = ["f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "iq4_nl", "q5_0", "q5_1"]


def configs_for(entry: dict[str, Any], head_dims: tuple[int, int], is_mla: bool) -> list[Config]:
    """Return the option sets to record for one geometry."""
    out: list[Config] = []
    for n_ctx, n_seq, unified in [
        (4096, 1, 0), (8192, 1, 0), (1000, 1, 0), (8192, 4, 1), (8192, 4, 0),
        (32768, 1, 0), (32768, 4, 1), (10000, 3, 0), (10000, 3, 1), (131072, 1, 0),
    ]:  # fmt: skip
        out.append((n_ctx, n_seq, unified, 2048, 512, 0, -1, "f16", "f16"))
    for ub in (1, 64, 256, 1024, 2048):
        out.append((8192, 2, 1, 2048, ub, 0, -1, "f16", "f16"))
    out.append((8192, 2, 0, 256, 512, 0, -1, "f16", "f16"))  # n_ubatch = min(n_batch, ub)
    out.append((300, 1, 0, 2048, 512, 0, -1, "f16", "f16"))  # n_batch = min(n_ctx, b)
    out.append((8192, 4, 1, 2048, 512, 1, -1, "f16", "f16"))
    out.append((8192, 4, 0, 2048, 512, 1, -1, "f16", "f16"))
    for t in CACHE_TYPES:
        if is_mla:
            out.append((8192, 1, 0, 2048, 512, 0, 1, t, t))
            continue
        out.append((8192, 1, 0, 2048, 512, 0, 1, t, "f16"))
        if t != "f16":
            out.append((8192, 1, 0, 2048, 512, 0, 1, "f16", t))
    out.append((8192, 1, 0, 2048, 512, 0, 0, "q8_0", "f16"))  # quantised K needs no FA
    out.append((8192, 1, 0, 2048, 512, 0, 0, "f16", "f16"))
    out.append((8192, 1, 0, 2048, 512, 0, 0, "f16", "q8_0"))  # refused: quantised V, FA off
    if is_mla:
        out.append((8192, 1, 0, 2048, 512, 0, 1, "q8_0", "f16"))  # refused: MLA K != V
    return out


def git_commit(src: Path) -> str | None:
    """Return the llama.cpp tree's git HEAD, or None when it is not a git checkout."""
    try:
        return subprocess.run(
            ["git", "-C", str(src), "rev-parse", "HEAD"], capture_output=True, text=True,
            check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--llama-cpp", type=Path, required=True, help="llama.cpp source tree")
    parser.add_argument("--build", type=Path, help="its cmake build dir (default DIR/build)")
    parser.add_argument("--commit", help="the llama.cpp commit, when DIR is not a git checkout")
    parser.add_argument("--version-note", default="", help="where the tree came from")
    parser.add_argument("--out", type=Path, default=ROOT / "tests" / "data" / "llamacpp")
    parser.add_argument("--only", nargs="*", help="record only these presets")
    args = parser.parse_args()
    src = args.llama_cpp.resolve()
    build = (args.build or src / "build").resolve()
    sys.path.insert(0, str(src / "gguf-py"))
    sys.path.insert(0, str(ROOT))
    commit = args.commit or git_commit(src)
    work = Path(tempfile.mkdtemp(prefix="kvcalc-llamacpp-"))
    harness = work / "llamacpp_harness"
    build_harness(src, build, harness)

    from kvcalc.presets import load_model

    cases: list[dict[str, Any]] = []
    for entry in geometries():
        if args.only and entry["preset"] not in args.only:
            continue
        kv, n_layer, _ = gguf_metadata(entry)
        arch = entry["arch"]
        tensors = discover_tensors(harness, arch, kv, n_layer, work, entry.get("seed", []))
        model_path = work / "model.gguf"
        write_gguf(model_path, arch, kv, tensors)
        spec = load_model(entry["preset"])
        is_mla = spec.attention.kind == "mla"
        cfgs = configs_for(entry, (0, 0), is_mla)
        lines = [" ".join(str(x) for x in c) for c in cfgs]
        try:
            results = run_harness(harness, model_path, lines)[1:]
        except RuntimeError as exc:
            print(f"{entry['preset']}: skipped, {exc}", file=sys.stderr)
            continue
        for cfg, res in zip(cfgs, results, strict=True):
            n_ctx, n_seq, unified, n_batch, n_ubatch, swa_full, fa, tk, tv = cfg
            case: dict[str, Any] = {
                "preset": entry["preset"],
                "source": spec.source,
                "gguf_arch": arch,
                "options": {
                    "n_ctx": n_ctx,
                    "n_seq_max": n_seq,
                    "kv_unified": bool(unified),
                    "n_batch": n_batch,
                    "n_ubatch": n_ubatch,
                    "swa_full": bool(swa_full),
                    "flash_attn": {-1: "auto", 0: "off", 1: "on"}[fa],
                    "type_k": tk,
                    "type_v": tv,
                },
            }
            if "error" in res:
                case["refused"] = True
                errs = [ln for ln in res["log"].splitlines() if "llama_init_from_model" in ln]
                case["error"] = errs[-1].strip() if errs else res["error"]
            else:
                case["refused"] = False
                case["measured"] = {
                    k: res[k]
                    for k in (
                        "n_ctx",
                        "n_ctx_seq",
                        "n_batch",
                        "n_ubatch",
                        "n_seq_max",
                        "flash_attn",
                    )
                }
                case["caches"] = res["caches"]
                case["kv_bytes"] = sum(
                    c.get("k_bytes", 0) + c.get("v_bytes", 0) for c in res["caches"]
                )
                states = [c for c in res["caches"] if c["kind"] == "state"]  # DeepSeek-V4
                if states:
                    case["state_bytes"] = sum(c["total_bytes"] for c in states)
                case["context_bytes"] = sum(b["context"] for b in res["breakdown"])
                case["compute_bytes"] = sum(b["compute"] for b in res["breakdown"])
            cases.append(case)
        print(f"{entry['preset']}: {len(results)} cases", file=sys.stderr)
    doc = {
        "llama_cpp": {"commit": commit, "note": args.version_note},
        "how": "scripts/measure_llamacpp.py: llama.cpp CPU build, model loaded with no_alloc "
        "(llama.cpp's memory-fit mode), bytes from llama_get_memory_breakdown and the caches' "
        "own size_k_bytes/size_v_bytes",
        "cases": cases,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    recorded = args.out / "cases.json"
    if args.only and cases and recorded.is_file():  # replace these presets' cases, keep the rest
        kept = [
            c for c in json.loads(recorded.read_text())["cases"] if c["preset"] not in args.only
        ]
        doc["cases"] = kept + cases
    if cases or not args.only:
        recorded.write_text(json.dumps(doc, indent=1) + "\n")
    states: list[dict[str, Any]] = []
    for entry in state_geometries():
        if args.only and entry["preset"] not in args.only:
            continue
        tensors = discover_tensors(
            harness, entry["arch"], entry["kv"], entry["n_layer"], work, entry.get("seed", [])
        )
        model_path = work / "model.gguf"
        write_gguf(model_path, entry["arch"], entry["kv"], tensors)
        lines = [f"{c} {n} {u} 2048 512 0 -1 f16 f16" for c, n, u in STATE_CONFIGS]
        results = run_harness(harness, model_path, lines)[1:]
        for (n_ctx, n_seq, unified), res in zip(STATE_CONFIGS, results, strict=True):
            states.append(
                {
                    "preset": entry["preset"],
                    "gguf_arch": entry["arch"],
                    "gguf_metadata": entry["kv"],
                    "options": {"n_ctx": n_ctx, "n_seq_max": n_seq, "kv_unified": bool(unified),
                                "n_batch": 2048, "n_ubatch": 512, "flash_attn": "auto",
                                "type_k": "f16", "type_v": "f16"},
                    "caches": res.get("caches"),
                    "error": res.get("error"),
                    "compute_bytes": sum(b["compute"] for b in res.get("breakdown", [])),
                }
            )  # fmt: skip
        print(f"{entry['preset']}: {len(results)} state cases", file=sys.stderr)
    recorded_states = args.out / "state_cases.json"
    if args.only and states and recorded_states.is_file():  # keep the other presets' cases
        kept = [
            c
            for c in json.loads(recorded_states.read_text())["cases"]
            if c["preset"] not in args.only
        ]
        states = kept + states
    if states:
        (args.out / "state_cases.json").write_text(
            json.dumps({**{k: doc[k] for k in ("llama_cpp", "how")}, "cases": states}, indent=1)
            + "\n"
        )
    os.remove(work / "model.gguf")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
