// qforge info MODEL: architecture, parameter count, tensors with shapes and dtypes, bytes.
#include <fmt/format.h>

#include <map>

#include "cli/commands.h"
#include "cli/common.h"
#include "qforge/core/error.h"
#include "qforge/eval/evaluation_log.h"
#include "qforge/io/model_loader.h"
#include "qforge/model/transformer.h"

namespace qforge::cli {

namespace {

// The KLDs `qforge eval --ref` measured for this model (evaluation_log.h), newest last.
void print_evaluations(const std::filesystem::path& model) {
  try {
    for (const EvaluationEntry& e : read_evaluation_log(model))
      fmt::print(
          "evaluated:    mean KLD {:.6f} ± {:.6f}, top-1 {:.2f}%, PPL {:.4f} (reference {:.4f}) "
          "on {} tokens of {} against {} ({})\n",
          e.kld_mean, e.kld_mean_stderr, 100 * e.top1_agreement, e.ppl, e.ref_ppl, e.tokens, e.text,
          e.reference, e.date);
  } catch (const Error& err) {
    fmt::print("evaluated:    (unreadable: {})\n", err.what());
  }
}

}  // namespace

void add_info_command(CLI::App& app) {
  struct Opts {
    std::string model;
    bool no_tensors = false;
  };
  auto opts = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand("info", "Show a model's architecture, parameters and tensors");
  cmd->add_option("model", opts->model, "Model directory (Hugging Face layout) or llama2.c .bin")
      ->required();
  cmd->add_flag("--no-tensors", opts->no_tensors, "Do not list the tensors");
  cmd->callback([opts] {
    LoadOptions lo;
    lo.require_tokenizer = false;
    LoadedModel m = load_model(opts->model, lo);
    const ModelConfig& c = m.config;
    ThreadPool pool(1);
    Transformer t(c, m.weights, pool);
    fmt::print("model:        {}\n", m.source.string());
    fmt::print(
        "architecture: {} ({} layers, hidden {}, heads {}/{} kv, head_dim {}, ffn {}, "
        "vocab {})\n",
        c.model_type, c.num_layers, c.hidden_size, c.num_heads, c.num_kv_heads, c.head_dim,
        c.intermediate_size, c.vocab_size);
    fmt::print("rope:         theta {}, {} layout, rotary dim {}; norm eps {}\n", c.rope_theta,
               c.rope_layout == RopeLayout::Interleaved ? "interleaved" : "half-split",
               c.rotary_dim(), c.rms_norm_eps);
    fmt::print("features:     act {}{}{}{}{}{}\n",
               c.activation == Activation::GeluTanh ? "gelu-tanh" : "silu",
               c.tie_word_embeddings ? ", tied embeddings" : "", c.qkv_bias ? ", qkv bias" : "",
               c.qk_norm ? ", q/k norm" : "", c.norm_plus_one ? ", (1+w) norms" : "",
               c.scale_embeddings ? ", scaled embeddings" : "");
    fmt::print("tokenizer:    {}\n", m.tokenizer ? m.tokenizer->describe() : "none found");
    size_t total_bytes = 0;
    std::map<std::string, int64_t> by_dtype;
    for (const auto& tv : m.tensors) {
      total_bytes += tv.nbytes();
      by_dtype[std::string(dtype_name(tv.dtype))] += tv.numel();
    }
    fmt::print("parameters:   {} ({:.2f} M)\n", t.parameter_count(), t.parameter_count() / 1e6);
    std::string dt;
    for (const auto& [k, v] : by_dtype) dt += fmt::format("{}{} {}", dt.empty() ? "" : ", ", v, k);
    fmt::print("tensor bytes: {} ({} tensors: {})\n", human_bytes(static_cast<double>(total_bytes)),
               m.tensors.size(), dt);
    fmt::print("decode reads: {} of weights per token{}\n",
               human_bytes(static_cast<double>(t.weight_bytes_per_token())),
               m.quantization_record ? " (quantized weights read packed, as stored)" : "");
    if (m.quantization_record) {
      const QuantizationRecord& r = *m.quantization_record;
      std::map<std::string, int> formats;
      for (const auto& [name, t] : r.tensors) ++formats[t.format];
      std::string fs;
      for (const auto& [f, n] : formats)
        fs += fmt::format("{}{} x{}", fs.empty() ? "" : ", ", f, n);
      std::string how = r.method.empty() ? "?" : r.method;
      if (r.smooth_alpha) how = fmt::format("smooth {} + {}", *r.smooth_alpha, how);
      if (r.rotation) how += r.rotation->online_down ? " + rotation (online)" : " + rotation";
      fmt::print("quantized:    {} ({}; qforge {})\n", fs, how,
                 r.tool_version.empty() ? "?" : r.tool_version);
      fmt::print("inference:    {}\n", m.inference.describe());
      if (r.planned_kld() > 0)
        fmt::print("plan:         predicted mean KLD {:.6f} (qforge plan)\n", r.planned_kld());
      print_evaluations(m.source);
    }
    if (!opts->no_tensors) {
      fmt::print("\n{:<56} {:>6} {:>16} {:>12}\n", "tensor", "dtype", "shape", "bytes");
      for (const auto& tv : m.tensors)
        fmt::print("{:<56} {:>6} {:>16} {:>12}\n", tv.name, dtype_name(tv.dtype), tv.shape_string(),
                   tv.nbytes());
    }
  });
}

}  // namespace qforge::cli
