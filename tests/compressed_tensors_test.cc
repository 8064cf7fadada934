// compressed-tensors repacking: lossless both ways, and the packed tensors mean what
// compressed-tensors says they mean (dequantized here by its rules, independently of qforge's
// decoder, they give qforge's values).
#include "qforge/formats/compressed_tensors.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>

#include "qforge/core/dtype.h"
#include "qforge/core/error.h"
#include "qforge/formats/minifloat.h"

namespace qforge::formats {
namespace {

std::vector<float> gaussian(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, 0.05f);
  std::vector<float> w(static_cast<size_t>(n));
  for (auto& x : w) x = nd(rng);
  return w;
}

const CtTensor& tensor(const std::vector<CtTensor>& ts, const std::string& suffix) {
  for (const auto& t : ts)
    if (t.suffix == suffix) return t;
  throw std::runtime_error("missing " + suffix);
}

template <typename T>
T at(const CtTensor& t, size_t i) {
  T v;
  std::memcpy(&v, t.data.data() + i * sizeof(T), sizeof(T));
  return v;
}

float scale_at(const CtTensor& t, size_t i) {
  switch (t.dtype) {
    case DType::F16:
      return f16_to_f32(at<uint16_t>(t, i));
    case DType::BF16:
      return bf16_to_f32(at<uint16_t>(t, i));
    case DType::F32:
      return at<float>(t, i);
    default:
      ADD_FAILURE() << "unexpected scale dtype";
      return 0;
  }
}

// Encode, repack to compressed-tensors, dequantize by compressed-tensors' rules, compare with
// qforge's decode; then repack back and compare bytes.
void check(const std::string& name, int64_t rows, int64_t cols, const std::string& want_format,
           bool activations_quantized = false) {
  const Format& f = find_format(name);
  const auto w = gaussian(rows * cols, 3);
  const auto bytes = f.encode(w.data(), rows, cols);
  std::vector<float> ours(w.size());
  f.decode(bytes.data(), rows, cols, ours.data());

  const auto scheme = compressed_tensors_scheme(f, rows, cols, activations_quantized);
  ASSERT_TRUE(scheme.has_value()) << name;
  EXPECT_EQ(scheme->format, want_format) << name;
  const auto ct = to_compressed_tensors(f, bytes.data(), rows, cols, activations_quantized);
  std::vector<float> theirs(w.size());
  if (scheme->format == "pack-quantized") {
    const CtTensor& packed = tensor(ct, "weight_packed");
    const CtTensor& scale = tensor(ct, "weight_scale");
    const int bits = scheme->num_bits, per_word = 32 / bits;
    EXPECT_EQ(packed.shape, (std::vector<int64_t>{rows, cols / per_word}));
    EXPECT_EQ(at<int64_t>(tensor(ct, "weight_shape"), 1), cols);
    const int64_t group = scheme->group_size ? scheme->group_size : cols;
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c) {
        const auto word =
            static_cast<uint32_t>(at<int32_t>(packed, r * (cols / per_word) + c / per_word));
        const int code = static_cast<int>((word >> (bits * (c % per_word))) & ((1u << bits) - 1));
        const int q = code - (1 << (bits - 1));
        const size_t si = scheme->strategy == "tensor" ? 0 : r * (cols / group) + c / group;
        theirs[r * cols + c] = static_cast<float>(q) * scale_at(scale, si);
      }
  } else if (scheme->format == "int-quantized") {  // x = int8 weight * scale
    const CtTensor& weight = tensor(ct, "weight");
    const CtTensor& scale = tensor(ct, "weight_scale");
    EXPECT_EQ(weight.dtype, DType::I8);
    const int64_t group = scheme->group_size ? scheme->group_size : cols;
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c) {
        const size_t si = scheme->strategy == "tensor" ? 0 : r * (cols / group) + c / group;
        theirs[r * cols + c] = at<int8_t>(weight, r * cols + c) * scale_at(scale, si);
      }
  } else if (scheme->format == "float-quantized") {
    const CtTensor& weight = tensor(ct, "weight");
    const CtTensor& scale = tensor(ct, "weight_scale");
    EXPECT_EQ(weight.dtype, DType::F8_E4M3);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c)
        theirs[r * cols + c] = kE4M3.decode(at<uint8_t>(weight, r * cols + c)) *
                               scale_at(scale, scheme->strategy == "tensor" ? 0 : r);
  } else {  // nvfp4: x = e2m1 * (e4m3 block scale / global_scale)
    const CtTensor& packed = tensor(ct, "weight_packed");
    const CtTensor& scale = tensor(ct, "weight_scale");
    const float global = at<float>(tensor(ct, "weight_global_scale"), 0);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c) {
        const uint8_t b = at<uint8_t>(packed, r * cols / 2 + c / 2);
        const float e2m1 = kE2M1.decode(c % 2 ? b >> 4 : b & 15);
        const float block = kE4M3.decode(at<uint8_t>(scale, r * cols / 16 + c / 16));
        theirs[r * cols + c] = e2m1 * (block / global);
      }
  }
  for (size_t i = 0; i < w.size(); ++i)
    ASSERT_NEAR(theirs[i], ours[i], std::fabs(ours[i]) * 2e-7f) << name << " element " << i;

  const auto back = from_compressed_tensors(
      f, rows, cols,
      [&](const std::string& suffix) {
        const CtTensor& t = tensor(ct, suffix);
        return std::span<const std::byte>(t.data);
      },
      activations_quantized);
  EXPECT_EQ(back, bytes) << name << ": repacking is not lossless";
}

TEST(CompressedTensors, PackQuantizedIntegers) {
  check("int4-g128", 5, 256, "pack-quantized");
  check("int4-g32", 3, 64, "pack-quantized");
  check("int4-channel", 4, 72, "pack-quantized");
  check("int8-channel", 4, 72, "pack-quantized");
  check("int8-g128", 2, 256, "pack-quantized");
  check("int4-g128-bf16", 2, 256, "pack-quantized");
}

TEST(CompressedTensors, IntQuantizedInt8ForW8A8) {
  check("int8-channel", 4, 72, "int-quantized", true);
  check("int8-g128", 2, 256, "int-quantized", true);
  check("int8-tensor", 3, 40, "int-quantized", true);
  check("int4-g128", 5, 256, "pack-quantized", true);  // W4A8 keeps int4 packed
  check("fp8-e4m3", 4, 100, "float-quantized", true);
}

TEST(CompressedTensors, FloatQuantizedFp8) {
  check("fp8-e4m3", 4, 100, "float-quantized");
  check("fp8-e4m3-tensor", 4, 100, "float-quantized");
}

TEST(CompressedTensors, Nvfp4) {
  check("nvfp4", 6, 64, "nvfp4-pack-quantized");
}

TEST(CompressedTensors, FormatsWithoutAScheme) {
  for (const char* name : {"int4-asym-g128", "int3-g128", "mxfp4", "nf4", "q4_k", "fp8-e4m3-g128"})
    EXPECT_FALSE(compressed_tensors_scheme(find_format(name), 4, 256).has_value()) << name;
  // int4 per channel needs whole int32 words per row.
  EXPECT_FALSE(compressed_tensors_scheme(find_format("int4-channel"), 4, 36).has_value());
  EXPECT_THROW(compressed_tensors_layout(find_format("q4_k"), 4, 256), qforge::Error);
}

}  // namespace
}  // namespace qforge::formats
