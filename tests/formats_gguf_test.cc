// GGUF block types against llama.cpp (../shared/formats/gguf_vectors.safetensors): decoding
// llama.cpp's own blocks reproduces its dequantization bit for bit, and our encoder's relative RMS
// error on the same input is within 2% of llama.cpp's.
#include <cmath>
#include <cstring>
#include <random>

#include "qforge/core/error.h"
#include "qforge/formats/format.h"
#include "qforge/io/safetensors.h"
#include "test_util.h"

namespace qforge::formats {
namespace {

const char* const kTypes[] = {"q4_0", "q4_1", "q5_0", "q5_1", "q8_0",   "q2_k",
                              "q3_k", "q4_k", "q5_k", "q6_k", "iq4_nl", "iq4_xs"};

double rel_rms(const std::vector<float>& a, const std::vector<float>& ref) {
  double e = 0, s = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    e += (double(a[i]) - ref[i]) * (double(a[i]) - ref[i]);
    s += double(ref[i]) * ref[i];
  }
  return std::sqrt(e / s);
}

TEST(GgufVectors, DecodeIsBitExactAndEncoderErrorMatchesLlamaCpp) {
  QFORGE_REQUIRE_SHARED(shared);
  auto f = SafetensorsFile::open(shared / "formats" / "gguf_vectors.safetensors");
  const TensorView& in = *f->find("input");
  const int64_t rows = in.dim(0), cols = in.dim(1);
  const std::vector<float> input = in.to_f32();
  for (const char* name : kTypes) {
    const Format& fmt = find_format(name);
    const TensorView* blocks = f->find(std::string(name) + ".blocks");
    ASSERT_NE(blocks, nullptr) << name;
    ASSERT_EQ(blocks->nbytes(), fmt.encoded_bytes(rows, cols)) << name;
    const std::vector<float> want = f->find(std::string(name) + ".dequant")->to_f32();
    std::vector<float> got(want.size());
    fmt.decode(blocks->data, rows, cols, got.data());
    EXPECT_EQ(std::memcmp(got.data(), want.data(), got.size() * 4), 0)
        << name << " decode is not bit-exact";

    const auto ours = fmt.encode(input.data(), rows, cols);
    std::vector<float> dec(want.size());
    fmt.decode(ours.data(), rows, cols, dec.data());
    const double e_ours = rel_rms(dec, input), e_ref = rel_rms(want, input);
    size_t same = 0;
    for (size_t i = 0; i < ours.size(); ++i) same += ours[i] == blocks->data[i];
    std::printf(
        "%-7s rel. RMS error: qforge %.5f, llama.cpp %.5f (%+.2f%%); %.1f%% of bytes identical\n",
        name, e_ours, e_ref, 100 * (e_ours / e_ref - 1), 100.0 * same / ours.size());
    EXPECT_LE(e_ours, e_ref * 1.02) << name;
  }
}

TEST(Gguf, BitsPerWeightAreExact) {
  const std::pair<const char*, double> expected[] = {
      {"q4_0", 4.5}, {"q4_1", 5.0},    {"q5_0", 5.5},    {"q5_1", 6.0},
      {"q8_0", 8.5}, {"q2_k", 2.625},  {"q3_k", 3.4375}, {"q4_k", 4.5},
      {"q5_k", 5.5}, {"q6_k", 6.5625}, {"iq4_nl", 4.5},  {"iq4_xs", 4.25}};
  for (const auto& [name, bpw] : expected)
    EXPECT_EQ(find_format(name).info().bits_per_weight, bpw) << name;
}

TEST(Gguf, ZeroRowsRandomRowsAndRowLengthRule) {
  std::mt19937 rng(4);
  std::normal_distribution<float> nd(0.f, 0.02f);
  for (const char* name : kTypes) {
    const Format& fmt = find_format(name);
    const int64_t rows = 3, cols = 512;
    std::vector<float> w(rows * cols, 0.0f);
    for (int64_t i = cols; i < rows * cols; ++i) w[i] = nd(rng);  // row 0 stays all zero
    const auto bytes = fmt.encode(w.data(), rows, cols);
    std::vector<float> out(w.size());
    fmt.decode(bytes.data(), rows, cols, out.data());
    for (int64_t c = 0; c < cols; ++c) ASSERT_EQ(out[c], 0.0f) << name;
    const std::vector<float> tail(w.begin() + cols, w.end()), dtail(out.begin() + cols, out.end());
    EXPECT_LT(rel_rms(dtail, tail), std::string(name) == "q2_k" ? 0.5 : 0.25) << name;
    EXPECT_THROW(fmt.check_shape("blk.0.ffn_down.weight", 4, cols + 16), Error) << name;
  }
}

TEST(Gguf, GroupQuantizerRoundMatchesPackedBytes) {
  std::mt19937 rng(8);
  std::normal_distribution<float> nd(0.f, 1.f);
  const int64_t rows = 2, cols = 256;
  std::vector<float> w(rows * cols);
  for (auto& v : w) v = nd(rng);
  for (const char* name : kTypes) {
    const Format& fmt = find_format(name);
    auto q = fmt.make_quantizer(w.data(), rows, cols);
    std::vector<float> vals(w.size());
    for (int64_t c0 = 0, g = 0; c0 < cols; c0 += q->group_size(), ++g) {
      q->choose_scales(g, w.data() + c0, rows, q->group_size(), cols, nullptr);
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = c0; c < c0 + q->group_size(); ++c)
          vals[r * cols + c] = q->round(r, c, w[r * cols + c]);
    }
    const auto bytes = q->pack(vals.data());
    std::vector<float> out(w.size());
    fmt.decode(bytes.data(), rows, cols, out.data());
    for (size_t i = 0; i < out.size(); ++i) ASSERT_EQ(out[i], vals[i]) << name << " at " << i;
  }
}

}  // namespace
}  // namespace qforge::formats
