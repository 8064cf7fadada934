// `qforge quantize`: a model in, a quantized model directory out (the native format: a Hugging
// Face directory whose quantized linears are stored packed, see docs/ARCHITECTURE.md).
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "qforge/quant/layerwise.h"

namespace qforge {

struct QuantizeOptions {
  std::filesystem::path model;
  std::filesystem::path output;
  std::string format;  // default format of every linear layer
  QuantMethod method = QuantMethod::GPTQ;
  std::filesystem::path calib;  // calibration text (required for GPTQ)
  int64_t calib_tokens = 128 * 512;
  int seq_len = 512;
  GptqOptions gptq;
  std::vector<std::pair<std::string, std::string>> tensor_formats;  // regex -> format
  std::vector<std::string> keep;  // regexes of linears left unquantized
  // For a linear whose row length the chosen format cannot take: another format's name, or
  // "keep" (leave it unquantized). Empty: refuse (the default). Every fallback is reported.
  std::string fallback;
  bool overwrite = false;
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
};

// Validates everything first (formats, row lengths, output writable, calibration long enough),
// then quantizes layer by layer and writes to a temporary directory renamed into place at the end.
QuantizeReport quantize_model(const QuantizeOptions& options,
                              const std::function<void(int, int)>& progress = {});

// FNV-1a 64-bit: a stable fingerprint of the calibration text for the metadata.
uint64_t fnv1a64(std::string_view data);

}  // namespace qforge
