// Non-owning views of tensors, usually pointing into a memory-mapped file.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "qforge/core/dtype.h"

namespace qforge {

// A read-only, row-major, contiguous tensor living somewhere else (an mmap, a buffer).
struct TensorView {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  const std::byte* data = nullptr;

  int64_t numel() const;
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype); }
  int64_t dim(size_t i) const { return shape.at(i); }
  // "[512, 1536]"
  std::string shape_string() const;
  // Copies the whole tensor to f32 (F32/F16/BF16 only).
  std::vector<float> to_f32() const;
};

std::string shape_to_string(const std::vector<int64_t>& shape);

}  // namespace qforge
