// A weight matrix as the kernels read it: rows of a float dtype (F32/F16/BF16), or rows packed in
// a registered numeric format, viewed where they are stored (a mapped file, a loader's buffer).
// It sits below both kernels/ and model/: the kernels read it, the model holds it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "qforge/core/dtype.h"

namespace qforge {

namespace formats {
class Format;
}

// A matrix [rows, cols] (rows = output features) stored row-major, or absent.
// Plain: `dtype` elements. Packed: `format`'s bytes, which every format lays out as an optional
// tensor header (a per-tensor scale, NVFP4's global scale) followed by the rows, each
// format->row_bytes(cols) long; so any range of rows can be read alone.
struct Matrix {
  std::string name;
  DType dtype = DType::F32;  // U8 when packed
  int64_t rows = 0;
  int64_t cols = 0;
  const std::byte* data = nullptr;          // row 0
  const formats::Format* format = nullptr;  // null: plain dtype elements
  const std::byte* header = nullptr;        // packed: the tensor header (null when it has none)

  bool present() const { return data != nullptr; }
  bool packed() const { return format != nullptr; }
  size_t row_bytes() const;
  // Bytes of the rows (without a packed tensor's header).
  size_t nbytes() const { return static_cast<size_t>(rows) * row_bytes(); }
  const std::byte* row(int64_t r) const { return data + static_cast<size_t>(r) * row_bytes(); }
  // Rows [begin, begin + count) of this matrix, as a matrix.
  Matrix slice_rows(int64_t begin, int64_t count, std::string slice_name) const;
  // Rows [row0, row0 + n) as f32 (widened or decoded; SIMD), into out [n, cols].
  void rows_to_f32(int64_t row0, int64_t n, float* out) const;
  // The whole matrix as f32 (for quantization and tests; the forward pass reads tiles instead).
  std::vector<float> to_f32() const;
};

// A packed matrix over a whole encoded tensor (header included), as Format::encode writes it.
Matrix packed_matrix(std::string name, const formats::Format& format, int64_t rows, int64_t cols,
                     const std::byte* encoded);

// A 1-D parameter (norm weight or bias), or absent.
struct Vector {
  std::string name;
  DType dtype = DType::F32;
  int64_t size = 0;
  const std::byte* data = nullptr;
  bool present() const { return data != nullptr; }
};

}  // namespace qforge
