// A registered format as the algorithms' ColumnQuantizer (GPTQ, RTN, AWQ): the format's
// GroupQuantizer holds the scales; pack() writes the format's bytes.
#pragma once

#include <memory>
#include <vector>

#include "qforge/formats/format.h"
#include "qforge/quant/awq.h"
#include "qforge/quant/gptq.h"

namespace qforge {

class FormatColumnQuantizer final : public ColumnQuantizer {
 public:
  explicit FormatColumnQuantizer(std::unique_ptr<formats::GroupQuantizer> q) : q_(std::move(q)) {}
  int64_t group_size() const override { return q_->group_size(); }
  void choose_scales(int64_t group, int64_t first_row, const float* w, int64_t rows, int64_t width,
                     int64_t ld, const float* h_diag) override {
    q_->choose_scales(group, first_row, w, rows, width, ld, h_diag);
  }
  float round(int64_t row, int64_t col, float value) const override {
    return q_->round(row, col, value);
  }
  bool group_codes(int64_t row, int64_t group, const float* values,
                   formats::GroupCodes& out) const override {
    return q_->group_codes(row, group, values, out);
  }
  void try_scales(int64_t row, int64_t group, const formats::GroupCodes& g,
                  float* values) override {
    q_->try_scales(row, group, g, values);
  }
  void keep_candidate(int64_t row, int64_t group) override { q_->keep_candidate(row, group); }
  int64_t sub_group_size() const override { return q_->sub_group_size(); }
  void choose_sub_scales(int64_t group, int64_t sub, int64_t first_row, const float* w,
                         int64_t rows, int64_t ld, const float* h_diag) override {
    q_->choose_sub_scales(group, sub, first_row, w, rows, ld, h_diag);
  }
  std::vector<std::byte> pack(const float* values) const { return q_->pack(values); }

 private:
  std::unique_ptr<formats::GroupQuantizer> q_;
};

// Fresh quantizers of format f (its scale state from each weight given).
inline QuantizerMaker quantizer_maker(const formats::Format& f) {
  return [&f](const float* w, int64_t rows, int64_t cols) -> std::unique_ptr<ColumnQuantizer> {
    return std::make_unique<FormatColumnQuantizer>(f.make_quantizer(w, rows, cols));
  };
}

}  // namespace qforge
