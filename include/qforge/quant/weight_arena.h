// Rewriting weights in place. A model's matrices and vectors are views into read-only mapped
// files, so a transform first gives the one it rewrites an f32 copy that the arena owns; the view
// is pointed at the copy (once: later rewrites reuse it). Dropping the arena drops the copies, so
// layer-by-layer work holds one layer's rewritten weights at a time.
#pragma once

#include <map>
#include <memory>
#include <vector>

#include "qforge/model/weights.h"

namespace qforge {

class WeightArena {
 public:
  // The f32 values of m / v, owned by the arena, with the view pointing at them.
  float* matrix(Matrix& m);
  float* vector(Vector& v);
  // A new zero-filled f32 buffer of m's shape that m points at (m's old values are not copied).
  float* new_matrix(Matrix& m);
  // Keeps the arena's buffers alive elsewhere (e.g. in ModelWeights::storage).
  std::vector<std::shared_ptr<const void>> buffers() const;
  void clear() { buffers_.clear(); }

 private:
  float* own(const std::byte*& data, DType& dtype, size_t count);
  std::map<const void*, std::shared_ptr<std::vector<float>>> buffers_;
};

}  // namespace qforge
