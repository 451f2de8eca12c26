// Measures what a real llama.cpp allocates for its KV cache, recurrent state and compute
// buffers. Built and driven by scripts/measure_llamacpp.py; not part of kvcalc.
//
// usage: llamacpp_harness MODEL.gguf < configs
// Each stdin line: n_ctx n_seq_max kv_unified n_batch n_ubatch swa_full flash_attn type_k type_v
//   (flash_attn: 0 off, 1 on, -1 auto; types are ggml type names, e.g. f16 q8_0)
// Each stdout line: one JSON object with the exact bytes of every cache llama.cpp made.
// The model is loaded with no_alloc (llama.cpp's own memory-fit mode), so sizes are
// computed by llama.cpp itself without allocating them.
#define private public
#define protected public
#include "llama-kv-cache.h"
#include "llama-kv-cache-iswa.h"
#include "llama-kv-cache-dsa.h"
#include "llama-kv-cache-dsv4.h"
#include "llama-memory-hybrid.h"
#include "llama-memory-hybrid-iswa.h"
#include "llama-memory-recurrent.h"
#undef private
#undef protected
#include "llama-ext.h"
#include "llama.h"
#include "ggml.h"
#include "ggml-backend.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

static std::string g_log;

static bool g_echo = false;  // HARNESS_LOG set: the log on stderr too (a crash keeps it)

static void log_cb(ggml_log_level level, const char * text, void *) {
    (void) level;
    g_log += text;
    if (g_echo) {
        std::fputs(text, stderr);
    }
}

static ggml_type type_from_name(const std::string & name) {
    for (int t = 0; t < GGML_TYPE_COUNT; ++t) {
        const char * n = ggml_type_name((ggml_type) t);
        if (n && name == n) {
            return (ggml_type) t;
        }
    }
    return GGML_TYPE_COUNT;
}

static std::string json_str(const std::string & s) {
    std::string out = "\"";
    for (char c : s) {
        if (c == '"' || c == '\\') { out += '\\'; out += c; }
        else if (c == '\n') { out += "\\n"; }
        else if ((unsigned char) c < 0x20) { out += ' '; }
        else { out += c; }
    }
    return out + "\"";
}

static std::string kv_json(const char * role, const llama_kv_cache * kv) {
    std::ostringstream o;
    o << "{\"role\":\"" << role << "\",\"kind\":\"kv\",\"cells\":" << kv->get_size()
      << ",\"n_stream\":" << kv->get_n_stream() << ",\"n_layers\":" << kv->layers.size()
      << ",\"k_bytes\":" << kv->size_k_bytes() << ",\"v_bytes\":" << kv->size_v_bytes()
      << ",\"layers\":[";
    for (size_t i = 0; i < kv->layers.size(); ++i) {
        o << (i ? "," : "") << kv->layers[i].il;
    }
    o << "]}";
    return o.str();
}

static std::string rs_json(const char * role, const llama_memory_recurrent * rs) {
    std::ostringstream o;
    o << "{\"role\":\"" << role << "\",\"kind\":\"recurrent\",\"cells\":" << rs->size
      << ",\"r_bytes\":" << rs->size_r_bytes() << ",\"s_bytes\":" << rs->size_s_bytes()
      << ",\"total_bytes\":" << rs->total_size() << "}";
    return o.str();
}

static std::string state_json(const char * role, const llama_dsv4_comp_state * st) {
    std::ostringstream o;
    o << "{\"role\":\"" << role << "\",\"kind\":\"state\",\"rows\":" << st->state_size
      << ",\"n_embd_state\":" << st->n_embd_state << ",\"n_stream\":" << st->n_stream
      << ",\"n_rs_seq\":" << st->n_rs_seq << ",\"n_layers\":" << st->layers.size()
      << ",\"total_bytes\":" << st->total_size() << "}";
    return o.str();
}

static void caches_json(llama_memory_i * mem, std::vector<std::string> & out) {
    if (!mem) {
        return;
    }
    if (auto * m = dynamic_cast<llama_kv_cache_dsv4 *>(mem)) {
        out.push_back(kv_json("base", m->get_raw()->get_base()));
        out.push_back(kv_json("swa", m->get_raw()->get_swa()));
        out.push_back(kv_json("csa", m->get_csa()));
        out.push_back(kv_json("hca", m->get_hca()));
        out.push_back(kv_json("indexer", m->get_lid()));
        out.push_back(state_json("csa_state", m->get_csa_state()));
        out.push_back(state_json("hca_state", m->get_hca_state()));
        out.push_back(state_json("indexer_state", m->get_lid_state()));
    } else if (auto * m = dynamic_cast<llama_kv_cache_dsa *>(mem)) {
        out.push_back(kv_json("base", m->get_mla()));
        out.push_back(kv_json("indexer", m->get_lid()));
    } else if (auto * m = dynamic_cast<llama_kv_cache_iswa *>(mem)) {
        out.push_back(kv_json("base", m->get_base()));
        out.push_back(kv_json("swa", m->get_swa()));
    } else if (auto * m = dynamic_cast<llama_memory_hybrid_iswa *>(mem)) {
        out.push_back(kv_json("base", m->get_mem_attn()->get_base()));
        out.push_back(kv_json("swa", m->get_mem_attn()->get_swa()));
        out.push_back(rs_json("recurrent", m->get_mem_recr()));
    } else if (auto * m = dynamic_cast<llama_memory_hybrid *>(mem)) {
        out.push_back(kv_json("base", m->get_mem_attn()));
        out.push_back(rs_json("recurrent", m->get_mem_recr()));
    } else if (auto * m = dynamic_cast<llama_memory_recurrent *>(mem)) {
        out.push_back(rs_json("recurrent", m));
    } else if (auto * m = dynamic_cast<llama_kv_cache *>(mem)) {
        out.push_back(kv_json("base", m));
    } else {
        out.push_back("{\"role\":\"unknown\",\"kind\":\"unknown\"}");
    }
}

int main(int argc, char ** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s MODEL.gguf < configs\n", argv[0]);
        return 2;
    }
    g_echo = std::getenv("HARNESS_LOG") != nullptr;
    llama_log_set(log_cb, nullptr);
    llama_backend_init();

    llama_model_params mparams = llama_model_default_params();
    mparams.no_alloc = true;
    mparams.load_mode = LLAMA_LOAD_MODE_NONE;
    mparams.lazy_mode = LLAMA_LAZY_MODE_OFF;
    mparams.n_gpu_layers = 0;
    llama_model * model = llama_model_load_from_file(argv[1], mparams);
    if (!model) {
        std::printf("{\"load_error\":%s}\n", json_str(g_log).c_str());
        return 1;
    }
    std::printf("{\"loaded\":true,\"n_ctx_train\":%d}\n", llama_model_n_ctx_train(model));
    std::fflush(stdout);

    std::string line;
    while (std::getline(std::cin, line)) {
        if (line.empty()) {
            continue;
        }
        std::istringstream in(line);
        long n_ctx, n_seq_max, unified, n_batch, n_ubatch, swa_full, fa;
        std::string tk, tv;
        in >> n_ctx >> n_seq_max >> unified >> n_batch >> n_ubatch >> swa_full >> fa >> tk >> tv;

        llama_context_params cparams = llama_context_default_params();
        cparams.n_ctx = (uint32_t) n_ctx;
        cparams.n_seq_max = (uint32_t) n_seq_max;
        cparams.kv_unified = unified != 0;
        cparams.n_batch = (uint32_t) n_batch;
        cparams.n_ubatch = (uint32_t) n_ubatch;
        cparams.swa_full = swa_full != 0;
        cparams.flash_attn_type = fa < 0 ? LLAMA_FLASH_ATTN_TYPE_AUTO
                                         : (fa ? LLAMA_FLASH_ATTN_TYPE_ENABLED : LLAMA_FLASH_ATTN_TYPE_DISABLED);
        cparams.type_k = type_from_name(tk);
        cparams.type_v = type_from_name(tv);
        cparams.n_threads = 1;
        cparams.n_threads_batch = 1;

        g_log.clear();
        llama_context * ctx = nullptr;
        std::string err;
        if (cparams.type_k == GGML_TYPE_COUNT || cparams.type_v == GGML_TYPE_COUNT) {
            err = "unknown ggml type";
        } else {
            try {
                ctx = llama_init_from_model(model, cparams);
            } catch (const std::exception & e) {
                err = e.what();
            }
        }
        if (!ctx) {
            std::printf("{\"config\":%s,\"error\":%s,\"log\":%s}\n", json_str(line).c_str(),
                        json_str(err).c_str(), json_str(g_log).c_str());
            std::fflush(stdout);
            continue;
        }

        std::vector<std::string> caches;
        caches_json(llama_get_memory(ctx), caches);

        std::ostringstream o;
        o << "{\"config\":" << json_str(line) << ",\"n_ctx\":" << llama_n_ctx(ctx)
          << ",\"n_ctx_seq\":" << llama_n_ctx_seq(ctx) << ",\"n_batch\":" << llama_n_batch(ctx)
          << ",\"n_ubatch\":" << llama_n_ubatch(ctx) << ",\"n_seq_max\":" << llama_n_seq_max(ctx)
          << ",\"flash_attn\":" << (fa == 1 || (fa < 0 && g_log.find("Flash Attention enabled") != std::string::npos) ? "true" : "false")
          << ",\"caches\":[";
        for (size_t i = 0; i < caches.size(); ++i) {
            o << (i ? "," : "") << caches[i];
        }
        o << "],\"breakdown\":[";
        bool first = true;
        for (const auto & [buft, mb] : llama_get_memory_breakdown(ctx)) {
            o << (first ? "" : ",") << "{\"buft\":" << json_str(ggml_backend_buft_name(buft))
              << ",\"model\":" << mb.model << ",\"context\":" << mb.context << ",\"compute\":" << mb.compute << "}";
            first = false;
        }
        o << "]}";
        std::printf("%s\n", o.str().c_str());
        std::fflush(stdout);
        llama_free(ctx);
    }
    llama_model_free(model);
    return 0;
}
