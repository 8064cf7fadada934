#include "qforge/quant/weight_arena.h"

#include "qforge/core/error.h"

namespace qforge {

float* WeightArena::own(const std::byte*& data, DType& dtype, size_t count) {
  check(data != nullptr, "internal: rewriting an absent weight");
  if (auto it = buffers_.find(data); it != buffers_.end()) return it->second->data();
  auto buf = std::make_shared<std::vector<float>>(count);
  convert_to_f32(dtype, data, buf->data(), count);
  data = reinterpret_cast<const std::byte*>(buf->data());
  dtype = DType::F32;
  buffers_[buf->data()] = buf;
  return buf->data();
}

float* WeightArena::matrix(Matrix& m) {
  if (!m.packed()) return own(m.data, m.dtype, static_cast<size_t>(m.rows * m.cols));
  if (auto it = buffers_.find(m.data); it != buffers_.end()) return it->second->data();
  auto buf = std::make_shared<std::vector<float>>(m.to_f32());
  m = Matrix{m.name, DType::F32, m.rows, m.cols, reinterpret_cast<const std::byte*>(buf->data())};
  buffers_[buf->data()] = buf;
  return buf->data();
}

float* WeightArena::vector(Vector& v) {
  return own(v.data, v.dtype, static_cast<size_t>(v.size));
}

float* WeightArena::new_matrix(Matrix& m) {
  auto buf = std::make_shared<std::vector<float>>(static_cast<size_t>(m.rows * m.cols));
  m.data = reinterpret_cast<const std::byte*>(buf->data());
  m.dtype = DType::F32;
  buffers_[buf->data()] = buf;
  return buf->data();
}

std::vector<std::shared_ptr<const void>> WeightArena::buffers() const {
  std::vector<std::shared_ptr<const void>> out;
  for (const auto& [p, b] : buffers_) out.push_back(b);
  return out;
}

}  // namespace qforge
