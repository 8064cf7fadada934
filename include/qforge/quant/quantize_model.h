// `qforge quantize`: a model in (a Hugging Face directory, or a .gguf into a .gguf), a quantized
// model out (the native format: a Hugging Face directory whose quantized linears are stored
// packed, see docs/ARCHITECTURE.md; or a GGUF for llama.cpp).
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "qforge/formats/format.h"
#include "qforge/io/tokenizer.h"
#include "qforge/quant/awq.h"
#include "qforge/quant/layer_transforms.h"
#include "qforge/quant/layerwise.h"
#include "qforge/quant/plan.h"
#include "qforge/quant/rotation.h"

namespace qforge {

struct LoadedModel;

struct QuantizeOptions {
  std::filesystem::path model;
  std::filesystem::path output;
  std::string format;  // default format of every linear layer (unused with a plan)
  // A plan (`qforge plan`): the format of each tensor it names; the others are kept. Replaces
  // format, tensor_formats, keep and fallback. plan_source names it (its file) in messages.
  std::optional<QuantPlan> plan;
  std::string plan_source;
  // When not 0, model.safetensors (quantize_model_to_gguf: the .gguf file) may not exceed this
  // many bytes (a --size budget): checked before the output is moved into place (GGUF: after).
  uint64_t max_output_bytes = 0;
  // How values are rounded: RTN or GPTQ. With `awq`, AWQ's scales (and, unless awq_clip is false,
  // its clipping) come first: "awq" = AWQ + RTN, "awq+gptq" = AWQ scales + GPTQ.
  QuantMethod method = QuantMethod::GPTQ;
  bool awq = false;
  AwqOptions awq_options;
  bool awq_clip = true;
  std::optional<double> smooth_alpha;     // SmoothQuant before quantization
  std::optional<RotationOptions> rotate;  // QuaRot rotation before quantization
  // Recorded in the output and simulated during calibration: per-token activation quantization
  // of the quantized linears' inputs, and the KV cache format.
  formats::ActivationFormat activations = formats::ActivationFormat::None;
  KvCacheFormat kv;
  std::filesystem::path calib;  // calibration text (GPTQ, AWQ, SmoothQuant)
  int64_t calib_tokens = 128 * 512;
  int seq_len = 512;
  GptqOptions gptq;
  std::vector<std::pair<std::string, std::string>> tensor_formats;  // regex -> format
  std::vector<std::string> keep;  // regexes of linears left unquantized
  // For a linear whose row length the chosen format cannot take: another format's name, or
  // "keep" (leave it unquantized). Empty: refuse (the default). Every fallback is reported.
  std::string fallback;
  bool overwrite = false;
  // Refuse, before any work, a quantized weight whose format GGUF has no type for, and what a
  // GGUF cannot record (activation quantization, a quantized KV cache, an online rotation).
  bool gguf_types_only = false;
  // A source whose weights are already block-quantized (a q8_0 / q4_k GGUF, a quantized
  // directory) is refused, naming the tensor and its type; with this, its weights are decoded to
  // f32 and quantized again (llama-quantize's --allow-requantize; the first rounding is not
  // undone).
  bool allow_requantize = false;
  const std::atomic<bool>* interrupted = nullptr;  // checked between layers (Ctrl-C)
};

struct Fallback {
  std::string tensor, format, fallback;  // fallback: a format name or "keep"
};

struct QuantizeReport {
  std::vector<LinearResult> linears;
  std::vector<std::string> formats;  // per linear, parallel to `linears`
  double seconds = 0;
  int64_t calib_tokens = 0;
  uint64_t calib_hash = 0;
  size_t output_bytes = 0;
  std::vector<Fallback> fallbacks;
  bool compressed_tensors = false;  // every quantized linear in compressed-tensors' layout
  std::vector<AwqGroupRecord> awq;
  std::string method;  // "rtn", "gptq", "awq", "awq+gptq"
  // With allow_requantize: each source weight that was already quantized, "tensor (type)".
  std::vector<std::string> requantized;
};

// Whether these options need calibration text.
bool needs_calibration(const QuantizeOptions& options);

// Validates everything first (formats, row lengths, output writable, calibration long enough),
// then quantizes layer by layer and writes to a temporary directory renamed into place at the end.
QuantizeReport quantize_model(const QuantizeOptions& options,
                              const std::function<void(int, int)>& progress = {});

// The first `tokens` tokens of a calibration text, cut into sequences of seq_len (a shorter tail is
// dropped). hash: FNV-1a of the text. Refuses a text with fewer tokens, naming the file.
std::vector<std::vector<int32_t>> calibration_sequences(const std::filesystem::path& file,
                                                        const Tokenizer& tokenizer, int64_t tokens,
                                                        int seq_len, uint64_t* hash);
// The same, written as one GGUF file (options.output) that llama.cpp runs: quantize_model into a
// temporary native directory beside it, then that directory as GGUF (packed weights as they
// are, q/k rows permuted for llama; io/gguf_model.h), the directory removed. Options that GGUF
// cannot express are refused before any work (gguf_types_only). The source may be a .gguf: its
// F32/F16/BF16 weights quantize exactly as the same weights from safetensors (the llama q/k
// permutation undone at load), and the output takes its hyperparameters and vocabulary.
// max_output_bytes bounds the GGUF file (a file over it is removed and refused).
QuantizeReport quantize_model_to_gguf(const QuantizeOptions& options,
                                      const std::function<void(int, int)>& progress = {});
// The bytes quantize_model_to_gguf writes to `output` besides the quantized matrices of `model`
// (io/gguf_model.h gguf_overhead_bytes, with the general.name it writes): the overhead of a --size
// budget for a .gguf output.
uint64_t gguf_output_overhead_bytes(const LoadedModel& model, const std::filesystem::path& output);

// How GPTQ takes an output head (or a tied table, quantized as the head) in format f: its vocab
// rows a chunk at a time (all at once for formats with per-tensor state); read and make are set,
// sink is the caller's. Shared by quantize_model and the planner's measurement, so the planner
// measures the head exactly as it will be written.
GptqChunks gptq_table_chunks(const Matrix& table, const formats::Format& f);

// The embedding rows of tokens the calibration text holds (token frequencies > 0).
std::vector<uint8_t> calibration_tokens_seen(const std::vector<std::vector<int32_t>>& sequences,
                                             int64_t vocab);
// Whether format f re-encodes an embedding's calibration-token rows with its weighted search (GGUF
// block types: llama.cpp's imatrix encoders).
bool reencodes_seen_rows(const formats::Format& f);
// The embedding (a table not quantized as the head) in format f as quantize_model writes it: the
// format's own encoder, then the rows of `seen` (calibration_tokens_seen; empty: none, as without
// calibration) re-encoded by the weighted search. Shared with the planner's measurement.
std::vector<std::byte> encode_embedding_table(const formats::Format& f, const float* w,
                                              int64_t rows, int64_t cols,
                                              const std::vector<uint8_t>& seen);

// FNV-1a 64-bit: a stable fingerprint of the calibration text for the metadata.
uint64_t fnv1a64(std::string_view data);

}  // namespace qforge
