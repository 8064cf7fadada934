// Helpers for end-to-end `quantize` tests on the embedded model (tests/quantize*_test.cc).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "qforge/core/mapped_file.h"
#include "qforge/core/thread_pool.h"
#include "qforge/eval/compare.h"
#include "qforge/io/model_loader.h"
#include "qforge/quant/quantize_model.h"
#include "test_util.h"

namespace qforge::testing {

// Quantizes the embedded model into a fresh temporary directory named after `name`, calibrated
// on data/sample.txt (384 tokens in sequences of 64: small, so the tests stay fast).
inline QuantizeOptions embedded_quantize_options(const std::string& name, const std::string& format,
                                                 QuantMethod method) {
  QuantizeOptions o;
  o.model = embedded_model_dir();
  o.output = std::filesystem::path(::testing::TempDir()) / ("qforge_quant_" + name);
  std::filesystem::remove_all(o.output);
  o.format = format;
  o.method = method;
  o.calib = source_dir() / "data/sample.txt";
  o.calib_tokens = 384;
  o.seq_len = 64;
  return o;
}

inline std::vector<int32_t> sample_ids(const LoadedModel& m) {
  return m.tokenizer->encode(read_text_file(source_dir() / "data/sample.txt"), false);
}

// A quantized model (run as its record says: activations, online rotation, KV cache) against the
// embedded original on the first 128 tokens of data/sample.txt.
inline ComparisonResult compare_to_embedded(const std::filesystem::path& quantized) {
  LoadedModel q = load_model(quantized), ref = load_model(embedded_model_dir());
  ThreadPool pool(2);
  Transformer tq(q.config, q.weights, pool, q.inference), tr(ref.config, ref.weights, pool);
  return compare_models(tq, tr, sample_ids(ref), {128, 0});
}

}  // namespace qforge::testing
