// Refitting GGUF block scales to GPTQ's codes (quant/scale_refit.h), on random weights and random
// SPD Hessians: the layer objective never increases, the change it reports is the objective's
// real change, the refit values are exactly what the packed blocks decode to, and on these
// problems it does lower the objective for the k-quants.
#include "qforge/quant/scale_refit.h"

#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "gptq_problem.h"
#include "qforge/formats/format.h"
#include "qforge/quant/format_quantizer.h"
#include "qforge/quant/gptq.h"

namespace qforge {
namespace {

using testing::Problem;
using testing::random_problem;

class ScaleRefit : public ::testing::TestWithParam<std::string> {};

TEST_P(ScaleRefit, NeverRaisesTheObjectiveAndDecodesToItsValues) {
  const formats::Format& f = formats::find_format(GetParam());
  const int64_t rows = 6, cols = 512;
  const Problem p = random_problem(rows, cols, 7);
  FormatColumnQuantizer q(f.make_quantizer(p.w.data(), rows, cols));
  GptqOptions o;
  o.refit_rounds = 0;  // GPTQ's own scales
  // All of a k-quant's levels chosen at its super-block's first column, before the feedback (with
  // sub-block scales on, GPTQ leaves the refit little to find on these problems: < 0.1%).
  o.sub_block_scales = false;
  GptqResult g = gptq_quantize(p.w.data(), rows, cols, p.h, q, o);
  const double before = layer_objective(p.w.data(), g.q.data(), rows, cols, p.h);

  const ScaleRefitStats st = refit_scales(p.w.data(), g.q.data(), rows, cols, p.h, q);
  const double after = layer_objective(p.w.data(), g.q.data(), rows, cols, p.h);
  EXPECT_EQ(st.groups, rows * cols / f.info().block);
  // Never worse, up to float64 rounding of the two evaluations.
  EXPECT_LE(after, before * (1 + 1e-9)) << GetParam();
  // The reported change is the objective's real change (accumulated in float64 group by group).
  EXPECT_NEAR(after - before, st.objective_change, 1e-6 * before) << GetParam();
  // The k-quants' scales were chosen before GPTQ moved error into their later columns: a refit
  // finds better ones for many groups.
  if (f.info().block == 256) {
    EXPECT_GT(st.kept, 0) << GetParam();
    EXPECT_LT(after, before * 0.999) << GetParam();
  }
  // The packed blocks decode to exactly the refit values (the scales in the blocks are the ones
  // the values were computed with).
  const std::vector<std::byte> bytes = q.pack(g.q.data());
  std::vector<float> decoded(static_cast<size_t>(rows * cols));
  f.decode(bytes.data(), rows, cols, decoded.data());
  for (int64_t i = 0; i < rows * cols; ++i)
    ASSERT_EQ(decoded[i], g.q[i]) << GetParam() << " at " << i;
}

TEST_P(ScaleRefit, GptqWithRefitRoundsEqualsGptqThenRefit) {
  const formats::Format& f = formats::find_format(GetParam());
  const int64_t rows = 4, cols = 256;
  const Problem p = random_problem(rows, cols, 11);
  FormatColumnQuantizer a(f.make_quantizer(p.w.data(), rows, cols)),
      b(f.make_quantizer(p.w.data(), rows, cols));
  GptqOptions o;
  o.refit_rounds = 0;
  GptqResult plain = gptq_quantize(p.w.data(), rows, cols, p.h, a, o);
  refit_scales(p.w.data(), plain.q.data(), rows, cols, p.h, a);
  o.refit_rounds = 1;
  const GptqResult refit = gptq_quantize(p.w.data(), rows, cols, p.h, b, o);
  EXPECT_EQ(refit.q, plain.q);
  EXPECT_DOUBLE_EQ(refit.objective, layer_objective(p.w.data(), plain.q.data(), rows, cols, p.h));
  // More rounds (GPTQ again under the refit scales) never end worse than one.
  FormatColumnQuantizer c(f.make_quantizer(p.w.data(), rows, cols));
  o.refit_rounds = 3;
  EXPECT_LE(gptq_quantize(p.w.data(), rows, cols, p.h, c, o).objective,
            refit.objective * (1 + 1e-9));
}

INSTANTIATE_TEST_SUITE_P(GgufTypes, ScaleRefit,
                         ::testing::Values("q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "q3_k", "q4_k",
                                           "q5_k", "q6_k", "iq4_nl", "iq4_xs"));

// Choosing each k-quant sub-block's levels when GPTQ reaches it (GptqOptions::sub_block_scales)
// against keeping the levels chosen at the super-block's first column, on the same problems: the
// objective after GPTQ and the refit is lower on every seed. (On tiny-llama-bpe-7m's q4_k_m it is
// 11% lower, docs/RESULTS.md.)
class SubBlockScales : public ::testing::TestWithParam<std::string> {};

TEST_P(SubBlockScales, LowerTheGptqObjective) {
  const formats::Format& f = formats::find_format(GetParam());
  const int64_t rows = 16, cols = 512;
  for (uint32_t seed : {3u, 4u, 5u}) {
    const Problem p = random_problem(rows, cols, seed);
    double objective[2];
    for (bool sub : {false, true}) {
      FormatColumnQuantizer q(f.make_quantizer(p.w.data(), rows, cols));
      GptqOptions o;
      o.sub_block_scales = sub;
      objective[sub] = gptq_quantize(p.w.data(), rows, cols, p.h, q, o).objective;
    }
    EXPECT_LT(objective[1], objective[0]) << GetParam() << " seed " << seed;
  }
}

INSTANTIATE_TEST_SUITE_P(KQuants, SubBlockScales,
                         ::testing::Values("q3_k", "q4_k", "q5_k", "q6_k"));

TEST(ScaleRefitUnsupported, LeavesOtherFormatsAlone) {
  const formats::Format& f = formats::find_format("int4-g128");
  const Problem p = random_problem(2, 256, 3);
  FormatColumnQuantizer q(f.make_quantizer(p.w.data(), 2, 256));
  GptqResult g = gptq_quantize(p.w.data(), 2, 256, p.h, q, GptqOptions{});
  const std::vector<float> before = g.q;
  const ScaleRefitStats st = refit_scales(p.w.data(), g.q.data(), 2, 256, p.h, q);
  EXPECT_EQ(st.groups, 0);
  EXPECT_EQ(g.q, before);
}

}  // namespace
}  // namespace qforge
