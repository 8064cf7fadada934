#include "qforge/model/weights.h"

#include "qforge/core/error.h"

namespace qforge {

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
