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
      q->choose_scales(g, 0, w.data() + c0, rows, q->group_size(), cols, nullptr);
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

// Σ imp_c (a − b)² over a [rows, cols] matrix, per row.
std::vector<double> weighted_row_errors(const std::vector<float>& a, const std::vector<float>& b,
                                        const std::vector<float>& imp, int64_t rows, int64_t cols) {
  std::vector<double> e(static_cast<size_t>(rows), 0.0);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) {
      const double d = double(a[r * cols + c]) - b[r * cols + c];
      e[r] += imp[c] * d * d;
    }
  return e;
}

// Weights like a layer's (normal with a few outlier rows) and an imatrix-like importance: the
// mean x² of input channels, a few of them 50x the rest.
void importance_problem(int64_t rows, int64_t cols, std::vector<float>& w,
                        std::vector<float>& imp) {
  std::mt19937 rng(21);
  std::normal_distribution<float> nd(0.f, 0.02f);
  std::uniform_real_distribution<float> u(0.2f, 1.0f);
  w.resize(rows * cols);
  for (auto& v : w) v = nd(rng);
  imp.resize(cols);
  for (int64_t c = 0; c < cols; ++c) imp[c] = c % 37 == 3 ? 50.0f : u(rng);
}

TEST(GgufImportance, WeightedEncodingIsNeverWorseThanPlainUnderItsWeightsAndClearlyBetterOverall) {
  const int64_t rows = 32, cols = 512;
  std::vector<float> w, imp;
  importance_problem(rows, cols, w, imp);
  const std::vector<float> ones(cols, 1.0f);
  for (const char* name : kTypes) {
    const Format& fmt = find_format(name);
    const std::string n = name;
    const bool weighted = n.find("_k") != std::string::npos
                              ? n != "q2_k"
                              : n.rfind("iq4", 0) == 0 || n == "q4_0" || n == "q5_0";
    const std::vector<float>* const importances[] = {&imp, &ones};
    for (const std::vector<float>* importance : importances) {
      std::vector<float> plain(w.size()), ours(w.size());
      const auto plain_bytes = fmt.encode(w.data(), rows, cols);
      const auto our_bytes = fmt.encode(w.data(), rows, cols, importance->data());
      fmt.decode(plain_bytes.data(), rows, cols, plain.data());
      fmt.decode(our_bytes.data(), rows, cols, ours.data());
      if (!weighted) {  // llama.cpp has no weighted search for this type: the plain encoder
        EXPECT_EQ(plain_bytes, our_bytes) << name;
        continue;
      }
      const auto e_plain = weighted_row_errors(plain, w, *importance, rows, cols);
      const auto e_ours = weighted_row_errors(ours, w, *importance, rows, cols);
      double sp = 0, so = 0;
      for (int64_t r = 0; r < rows; ++r) {
        // Block by block the better of the two is kept, so no row can get worse.
        EXPECT_LE(e_ours[r], e_plain[r] * (1 + 1e-9)) << name << " row " << r;
        sp += e_plain[r];
        so += e_ours[r];
      }
      std::printf("%-7s %s importance: weighted error %.4fx the plain encoder's\n", name,
                  importance == &imp ? "imatrix-like" : "all-equal   ", so / sp);
      if (importance == &imp) {
        EXPECT_LT(so, 0.97 * sp) << name;
      }
    }
  }
}

TEST(GgufImportance, GroupQuantizerChoosesWeightedScalesAndRoundStillMatchesPack) {
  const int64_t rows = 8, cols = 512;
  std::vector<float> w, imp;
  importance_problem(rows, cols, w, imp);
  for (const char* name : {"q3_k", "q4_k", "q5_k", "q6_k", "iq4_xs", "iq4_nl"}) {
    const Format& fmt = find_format(name);
    double err[2] = {0, 0};
    for (int weighted = 0; weighted < 2; ++weighted) {
      auto q = fmt.make_quantizer(w.data(), rows, cols);
      std::vector<float> vals(w.size());
      for (int64_t c0 = 0, g = 0; c0 < cols; c0 += q->group_size(), ++g) {
        q->choose_scales(g, 0, w.data() + c0, rows, q->group_size(), cols,
                         weighted ? imp.data() + c0 : nullptr);
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t c = c0; c < c0 + q->group_size(); ++c)
            vals[r * cols + c] = q->round(r, c, w[r * cols + c]);
      }
      const auto bytes = q->pack(vals.data());
      std::vector<float> out(w.size());
      fmt.decode(bytes.data(), rows, cols, out.data());
      for (size_t i = 0; i < out.size(); ++i) ASSERT_EQ(out[i], vals[i]) << name << " at " << i;
      for (double e : weighted_row_errors(out, w, imp, rows, cols)) err[weighted] += e;
    }
    EXPECT_LT(err[1], err[0]) << name;
  }
}

// GPTQ re-chooses a Q3_K/Q4_K/Q5_K/Q6_K sub-block's scale levels when it reaches the sub-block,
// after error feedback has moved its weights (GroupQuantizer::choose_sub_scales). Moved weights are
// simulated here by scaling and shifting one sub-block after the super-block's scales were chosen:
// the new levels never round that sub-block worse (under the importances) than the old ones, do
// better on most rows, leave the other sub-blocks alone, and the packed block decodes to the
// rounded values (its scale fields hold the new levels). Types without levels report no sub-blocks.
TEST(GgufSubBlockScales, ChosenAgainWithoutTouchingTheRestAndPackedBytesAgree) {
  const int64_t rows = 24, cols = 512, sub = 3;
  std::mt19937 rng(5);
  std::normal_distribution<float> nd;
  std::uniform_real_distribution<float> ud(0.2f, 3.0f);
  std::vector<float> w(static_cast<size_t>(rows * cols)), imp(static_cast<size_t>(cols));
  for (float& v : w) v = nd(rng);
  for (float& v : imp) v = ud(rng);
  for (const char* name : kTypes) {
    const Format& fmt = find_format(name);
    auto q = fmt.make_quantizer(w.data(), rows, cols);
    const std::string n = name;
    if (n != "q3_k" && n != "q4_k" && n != "q5_k" && n != "q6_k") {
      EXPECT_EQ(q->sub_group_size(), 0) << name;
      continue;
    }
    const int64_t sb = q->sub_group_size(), gs = q->group_size();
    ASSERT_EQ(sb, n == "q4_k" || n == "q5_k" ? 32 : 16) << name;
    for (int64_t g = 0; g < cols / gs; ++g)
      q->choose_scales(g, 0, w.data() + g * gs, rows, gs, cols, imp.data() + g * gs);
    // Super-block 1, sub-block 3 moves: larger and shifted.
    std::vector<float> moved = w;
    const int64_t c0 = gs + sub * sb;
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = c0; c < c0 + sb; ++c) moved[r * cols + c] = 1.4f * w[r * cols + c] + 0.3f;
    const auto row_error = [&](int64_t r) {
      double e = 0;
      for (int64_t c = c0; c < c0 + sb; ++c) {
        const double d = moved[r * cols + c] - q->round(r, c, moved[r * cols + c]);
        e += imp[c] * d * d;
      }
      return e;
    };
    std::vector<double> before(static_cast<size_t>(rows));
    std::vector<float> untouched(static_cast<size_t>(rows * cols));
    for (int64_t r = 0; r < rows; ++r) {
      before[r] = row_error(r);
      for (int64_t c = 0; c < cols; ++c)
        untouched[r * cols + c] = q->round(r, c, moved[r * cols + c]);
    }
    q->choose_sub_scales(1, sub, 0, moved.data() + c0, rows, cols, imp.data() + c0);
    int better = 0;
    std::vector<float> vals(w.size());
    for (int64_t r = 0; r < rows; ++r) {
      const double after = row_error(r);
      EXPECT_LE(after, before[r]) << name << " row " << r;
      better += after < before[r];
      for (int64_t c = 0; c < cols; ++c) {
        vals[r * cols + c] = q->round(r, c, moved[r * cols + c]);
        if (c < c0 || c >= c0 + sb) {
          ASSERT_EQ(vals[r * cols + c], untouched[r * cols + c])
              << name << " row " << r << " col " << c;
        }
      }
    }
    EXPECT_GE(better, rows / 2) << name;
    const auto bytes = q->pack(vals.data());
    std::vector<float> out(w.size());
    fmt.decode(bytes.data(), rows, cols, out.data());
    for (size_t i = 0; i < out.size(); ++i) ASSERT_EQ(out[i], vals[i]) << name << " at " << i;
  }
}

}  // namespace
}  // namespace qforge::formats
