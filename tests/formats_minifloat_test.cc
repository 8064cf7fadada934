// Minifloat element types against ml_dtypes' reference vectors (../shared/formats) and their
// defining properties, exhaustively over every code.
#include <bit>
#include <cmath>
#include <cstring>

#include "qforge/formats/minifloat.h"
#include "qforge/io/safetensors.h"
#include "test_util.h"

namespace qforge::formats {
namespace {

struct Named {
  const char* file_name;
  const MiniFloat* type;
};
const Named kTypes[] = {{"fp8_e4m3fn", &kE4M3},
                        {"fp8_e5m2", &kE5M2},
                        {"fp6_e2m3fn", &kE2M3},
                        {"fp6_e3m2fn", &kE3M2},
                        {"fp4_e2m1fn", &kE2M1}};

bool same_float(float a, float b) {
  if (std::isnan(a) || std::isnan(b)) return std::isnan(a) && std::isnan(b);
  return std::bit_cast<uint32_t>(a) == std::bit_cast<uint32_t>(b);  // -0 != +0
}

TEST(MiniFloat, EveryCodeDecodesToTheReferenceValueAndEveryRneCaseConverts) {
  QFORGE_REQUIRE_SHARED(shared);
  auto f = SafetensorsFile::open(shared / "formats" / "minifloat_vectors.safetensors");
  for (const Named& n : kTypes) {
    const std::string p = n.file_name;
    const auto decode = f->find(p + ".decode")->to_f32();
    ASSERT_EQ(static_cast<int>(decode.size()), n.type->codes()) << p;
    for (int c = 0; c < n.type->codes(); ++c)
      EXPECT_TRUE(same_float(n.type->decode(c), decode[c])) << p << " code " << c;
    const auto in = f->find(p + ".rne_input")->to_f32();
    const auto out = f->find(p + ".rne_output")->to_f32();
    int wrong = 0;
    for (size_t i = 0; i < in.size(); ++i)
      if (!same_float(n.type->decode(n.type->encode(in[i], false)), out[i]) && ++wrong < 5)
        ADD_FAILURE() << p << ": " << in[i] << " -> "
                      << n.type->decode(n.type->encode(in[i], false)) << ", expected " << out[i];
    EXPECT_EQ(wrong, 0) << p;
  }
  const auto e8 = f->find("e8m0fnu.decode")->to_f32();
  for (int c = 0; c < 256; ++c) EXPECT_TRUE(same_float(e8m0_decode(c), e8[c])) << "e8m0 code " << c;
  const auto in = f->find("e8m0fnu.rne_input")->to_f32();
  const auto out = f->find("e8m0fnu.rne_output")->to_f32();
  int wrong = 0;
  for (size_t i = 0; i < in.size(); ++i)
    if (!same_float(e8m0_decode(e8m0_encode(in[i])), out[i]) && ++wrong < 5)
      ADD_FAILURE() << "e8m0: " << in[i] << " -> " << e8m0_decode(e8m0_encode(in[i]))
                    << ", expected " << out[i];
  EXPECT_EQ(wrong, 0);
}

TEST(MiniFloat, EncodeOfDecodeIsTheIdentityOnEveryCode) {
  for (const Named& n : kTypes)
    for (int c = 0; c < n.type->codes(); ++c) {
      const float v = n.type->decode(c);
      if (std::isnan(v)) {
        EXPECT_TRUE(std::isnan(n.type->decode(n.type->encode(v, false)))) << n.type->name;
        continue;
      }
      EXPECT_EQ(n.type->encode(v, false), static_cast<uint32_t>(c)) << n.type->name << " " << c;
    }
}

TEST(MiniFloat, E4M3SaturatesTo448AndKeepsNaN) {
  EXPECT_EQ(kE4M3.max_finite(), 448.0f);
  EXPECT_EQ(kE4M3.decode(kE4M3.encode(449.0f, true)), 448.0f);
  EXPECT_EQ(kE4M3.decode(kE4M3.encode(1e9f, true)), 448.0f);
  EXPECT_EQ(kE4M3.decode(kE4M3.encode(-1e9f, true)), -448.0f);
  EXPECT_EQ(kE4M3.decode(kE4M3.encode(464.0f, false)),
            448.0f);  // rounds down to 448 (tie? no: 464 is the midpoint 448..480 -> even)
  EXPECT_TRUE(std::isnan(kE4M3.decode(kE4M3.encode(NAN, true))));
  EXPECT_EQ(kE4M3.encode(NAN, true) & 0x7F, 0x7Fu);  // S.1111.111
}

TEST(MiniFloat, E5M2HasInfinitiesButQuantizersSaturate) {
  EXPECT_EQ(kE5M2.max_finite(), 57344.0f);
  EXPECT_TRUE(std::isinf(kE5M2.decode(kE5M2.encode(1e6f, false))));
  EXPECT_EQ(kE5M2.decode(kE5M2.encode(1e6f, true)), 57344.0f);
  EXPECT_TRUE(std::isinf(kE5M2.decode(0x7C)));
}

TEST(MiniFloat, SignedZeroAndSubnormals) {
  for (const Named& n : kTypes) {
    EXPECT_EQ(n.type->encode(0.0f, true), 0u) << n.type->name;
    EXPECT_TRUE(std::signbit(n.type->decode(n.type->encode(-0.0f, true)))) << n.type->name;
    const float smallest = n.type->decode(1);  // smallest subnormal
    EXPECT_EQ(smallest, std::ldexp(1.0f, 1 - n.type->bias - n.type->man_bits)) << n.type->name;
    EXPECT_EQ(n.type->encode(smallest * 0.5f, true), 0u) << n.type->name;  // tie -> even (0)
    EXPECT_EQ(n.type->encode(smallest * 0.51f, true), 1u) << n.type->name;
  }
  EXPECT_EQ(kE2M1.max_finite(), 6.0f);
  EXPECT_EQ(kE3M2.max_finite(), 28.0f);
  EXPECT_EQ(kE2M3.max_finite(), 7.5f);
}

}  // namespace
}  // namespace qforge::formats
