#include "qforge/formats/matrix.h"

#include "qforge/core/error.h"
#include "qforge/formats/format.h"

namespace qforge {

size_t Matrix::row_bytes() const {
  return format ? format->row_bytes(cols) : static_cast<size_t>(cols) * dtype_size(dtype);
}

Matrix Matrix::slice_rows(int64_t begin, int64_t count, std::string slice_name) const {
  check(begin >= 0 && count >= 0 && begin + count <= rows,
        "{}: row slice [{}, {}) out of range for {} rows", name, begin, begin + count, rows);
  Matrix m = *this;
  m.name = std::move(slice_name);
  m.rows = count;
  m.data = data + static_cast<size_t>(begin) * row_bytes();
  return m;
}

void Matrix::rows_to_f32(int64_t row0, int64_t n, float* out) const {
  check(row0 >= 0 && n >= 0 && row0 + n <= rows, "{}: rows [{}, {}) out of range for {} rows", name,
        row0, row0 + n, rows);
  if (format)
    format->decode_rows(header, row(row0), n, cols, out);
  else
    convert_to_f32(dtype, row(row0), out, static_cast<size_t>(n * cols));
}

std::vector<float> Matrix::to_f32() const {
  std::vector<float> out(static_cast<size_t>(rows * cols));
  rows_to_f32(0, rows, out.data());
  return out;
}

Matrix packed_matrix(std::string name, const formats::Format& format, int64_t rows, int64_t cols,
                     const std::byte* encoded) {
  Matrix m;
  m.name = std::move(name);
  m.dtype = DType::U8;
  m.rows = rows;
  m.cols = cols;
  m.format = &format;
  m.header = format.header_bytes() ? encoded : nullptr;
  m.data = encoded + format.header_bytes();
  return m;
}

}  // namespace qforge
