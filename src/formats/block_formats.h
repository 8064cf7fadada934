// Formats built from one element type and one level of scales (plus NVFP4's per-tensor scale):
// integers, scaled minifloats, OCP MX, NVFP4 and NF4. One class, parameterised by a Spec.
#pragma once

#include <memory>
#include <string>

#include "qforge/formats/format.h"
#include "qforge/formats/minifloat.h"

namespace qforge::formats {

enum class Element : uint8_t { IntSym, IntAsym, Mini, NF4, MxInt8 };
enum class ScaleType : uint8_t { F16, BF16, F32, E8M0, NvFp4 };
enum class Granularity : uint8_t { Tensor, Row, Block };

struct BlockSpec {
  std::string name;
  Element element = Element::IntSym;
  int bits = 4;
  const MiniFloat* mini = nullptr;  // Element::Mini
  Granularity granularity = Granularity::Block;
  int64_t block = 32;  // Granularity::Block
  ScaleType scale = ScaleType::F16;
};

std::unique_ptr<Format> make_block_format(const BlockSpec& spec);
// The spec of a format made by make_block_format; null for any other format.
const BlockSpec* block_spec(const Format& f);

// Bytes one stored scale of type t takes (NvFp4: its E4M3 byte; the f32 tensor scale is in the
// header).
int scale_bytes(ScaleType t);

// An NVFP4 group's scale: its E4M3 value times the tensor's f32 scale. A zero (written for an
// all-zero block, where any scale decodes the same) stands for the tensor scale itself.
inline float nvfp4_group_scale(float e4m3_value, float tensor_scale) {
  const float s = e4m3_value * tensor_scale;
  return s == 0.0f ? tensor_scale : s;
}

// Decoded values of every E8M0 and E4M3 scale code (what the formats compute, as lookups).
struct ScaleCodeValues {
  float e8m0[256], e4m3[256];
};
const ScaleCodeValues& scale_code_values();

// The 16 NormalFloat-4 levels of QLoRA (Dettmers et al. 2023, Appendix E), ascending.
extern const float kNf4Levels[16];

}  // namespace qforge::formats
