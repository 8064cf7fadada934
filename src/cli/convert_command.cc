// qforge convert MODEL -o model.gguf [--type f32|f16|bf16]: writes a model, unquantized, as a GGUF
// file llama.cpp loads (what llama.cpp's convert_hf_to_gguf.py does, without Python or torch).
#include <fmt/format.h>

#include "cli/commands.h"
#include "qforge/core/error.h"
#include "qforge/io/gguf_model.h"
#include "qforge/io/model_loader.h"

namespace qforge::cli {

void add_convert_command(CLI::App& app) {
  struct Opts {
    std::string model, output, type;
    bool force = false;
  };
  auto opts = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand("convert", "Write a model as an unquantized GGUF file");
  cmd->add_option("model", opts->model, "Model directory (Hugging Face layout) or .gguf")
      ->required();
  cmd->add_option("-o,--output", opts->output, "Output .gguf file")->required();
  cmd->add_option("--type", opts->type, "Weight type: f32, f16 or bf16 (default: the source's)")
      ->check(CLI::IsMember({"f32", "f16", "bf16"}));
  cmd->add_flag("--force", opts->force, "Overwrite an existing output file");
  cmd->callback([opts] {
    namespace fs = std::filesystem;
    check(fs::path(opts->output).extension() == ".gguf", "{}: the output must end in .gguf",
          opts->output);
    check(opts->force || !fs::exists(opts->output), "{}: exists (use --force to overwrite)",
          opts->output);
    std::optional<DType> type;
    if (!opts->type.empty())
      type = opts->type == "f32" ? DType::F32 : opts->type == "f16" ? DType::F16 : DType::BF16;
    LoadOptions lo;
    lo.require_tokenizer = false;  // a model without one converts, but llama.cpp needs one
    const LoadedModel m = load_model(opts->model, lo);
    write_gguf_model(m, opts->output, type);
    fmt::print("wrote {} ({} {}, {} bytes)\n", opts->output, gguf_architecture(m.config.model_type),
               opts->type.empty() ? "source dtype" : opts->type, fs::file_size(opts->output));
  });
}

}  // namespace qforge::cli
