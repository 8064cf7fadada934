#include "qforge/core/tensor.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace qforge {

int64_t TensorView::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string shape_to_string(const std::vector<int64_t>& shape) {
  return fmt::format("[{}]", fmt::join(shape, ", "));
}

std::string TensorView::shape_string() const {
  return shape_to_string(shape);
}

std::vector<float> TensorView::to_f32() const {
  std::vector<float> out(static_cast<size_t>(numel()));
  convert_to_f32(dtype, data, out.data(), out.size());
  return out;
}

}  // namespace qforge
