#include "qforge/model/weights.h"

#include "qforge/core/error.h"

namespace qforge {

Matrix Matrix::slice_rows(int64_t begin, int64_t count, std::string slice_name) const {
  check(begin >= 0 && count >= 0 && begin + count <= rows,
        "{}: row slice [{}, {}) out of range for {} rows", name, begin, begin + count, rows);
  Matrix m = *this;
  m.name = std::move(slice_name);
  m.rows = count;
  m.data = data + static_cast<size_t>(begin) * row_bytes();
  return m;
}

Matrix matrix_from(const TensorView& t) {
  check(t.shape.size() == 2, "tensor {}: expected a 2-D matrix, got shape {}", t.name,
        t.shape_string());
  check(is_float_weight_dtype(t.dtype), "tensor {}: dtype {} is not a float weight dtype", t.name,
        dtype_name(t.dtype));
  return Matrix{t.name, t.dtype, t.shape[0], t.shape[1], t.data};
}

Vector vector_from(const TensorView& t) {
  check(t.shape.size() == 1, "tensor {}: expected a 1-D vector, got shape {}", t.name,
        t.shape_string());
  check(is_float_weight_dtype(t.dtype), "tensor {}: dtype {} is not a float weight dtype", t.name,
        dtype_name(t.dtype));
  return Vector{t.name, t.dtype, t.shape[0], t.data};
}

}  // namespace qforge
