// `qforge quantize ... -o out.gguf`: the native output, then written as GGUF.
#include <filesystem>
#include <optional>

#include "qforge/core/error.h"
#include "qforge/io/gguf_model.h"
#include "qforge/io/model_loader.h"
#include "qforge/quant/quantize_model.h"

namespace qforge {
namespace {

// The native directory quantize_model writes first, beside the output.
std::filesystem::path intermediate_of(const std::filesystem::path& output) {
  return output.string() + ".native-tmp-qforge";
}

}  // namespace

uint64_t gguf_output_overhead_bytes(const LoadedModel& model, const std::filesystem::path& output) {
  // write_gguf_model names the model after the directory it loads: the intermediate one.
  return gguf_overhead_bytes(model,
                             intermediate_of(output).filename().replace_extension().string());
}

QuantizeReport quantize_model_to_gguf(const QuantizeOptions& options,
                                      const std::function<void(int, int)>& progress) {
  namespace fs = std::filesystem;
  check(options.overwrite || !fs::exists(options.output),
        "{}: output exists (use --force to replace it)", options.output.string());
  QuantizeOptions o = options;
  o.gguf_types_only = true;
  o.output = intermediate_of(options.output);
  o.overwrite = true;
  o.max_output_bytes = 0;  // the budget bounds the GGUF file, checked below
  // The intermediate directory goes whatever happens (quantize_model cleans up its own failures).
  struct RemoveOnExit {
    fs::path path;
    ~RemoveOnExit() {
      std::error_code ec;
      fs::remove_all(path, ec);
    }
  } intermediate{o.output};
  QuantizeReport report = quantize_model(o, progress);
  LoadOptions lo;
  std::optional<LoadedModel> source;  // a .gguf source: its config and vocabulary
  if (!fs::is_directory(options.model)) {
    lo.require_tokenizer = false;
    source = load_model(options.model, lo);
    lo.config = &source->config;
  }
  LoadedModel quantized = load_model(o.output, lo);
  if (source) quantized.tokenizer = std::move(source->tokenizer);
  write_gguf_model(quantized, options.output, std::nullopt);
  report.output_bytes = fs::file_size(options.output);
  if (options.max_output_bytes != 0 && report.output_bytes > options.max_output_bytes) {
    fs::remove(options.output);
    fail("{}: the output would be {} bytes, over the budget of {}", options.output.string(),
         report.output_bytes, options.max_output_bytes);
  }
  return report;
}

}  // namespace qforge
