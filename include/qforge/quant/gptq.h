// GPTQ (Frantar et al., "GPTQ: Accurate Post-Training Quantization for Generative Pre-trained
// Transformers", ICLR 2023; reference code IST-DASLab/gptq): quantize W column by column and
// spread each column's rounding error over the not-yet-quantized columns through the inverse
// Hessian H⁻¹ of the layer's reconstruction objective ||WX − QX||² (H = 2XXᵀ, up to scale).
#pragma once

#include <cstdint>
#include <vector>

namespace qforge {

// What GPTQ needs from a numeric format, independent of how it is stored: which columns share a
// scale, how to choose those scales from (already error-compensated) weights, and how to round
// one value to the format's grid under the chosen scales.
class ColumnQuantizer {
 public:
  virtual ~ColumnQuantizer() = default;
  // Columns that share one set of scales along a row (e.g. 128 for int4-g128, 256 for a k-quant
  // super-block); 0 means the whole row.
  virtual int64_t group_size() const = 0;
  // Chooses the scales of group `group` for every row from w (row-major [rows, width], stride ld;
  // width = group_size except for a short last group). `h_diag` (width entries, may be null) is the
  // diagonal of H for these columns: per-column importance for weighted scale searches.
  virtual void choose_scales(int64_t group, const float* w, int64_t rows, int64_t width, int64_t ld,
                             const float* h_diag) = 0;
  // Nearest representable value of `value` at (row, col) under the scales of col's group.
  virtual float round(int64_t row, int64_t col, float value) const = 0;
};

struct GptqOptions {
  double damp = 0.01;        // dampening: λ = damp · mean(diag H) added to the diagonal (§4)
  int64_t block_size = 128;  // lazy batch update width ("Lazy Batch-Updates", §4 step 2)
  bool act_order = false;    // process columns by decreasing diag(H) ("desc_act")
};

struct GptqResult {
  std::vector<float> q;      // quantized values (dequantized), [rows, cols], original order
  double objective = 0;      // tr((W−Q) H (W−Q)ᵀ) with the undamped H
  double damp_used = 0;      // λ actually used (raised if H was not positive definite)
  int64_t dead_columns = 0;  // columns with H_ii = 0 (input always zero): weights set to 0
};

// Quantizes w ([rows, cols], row-major) with Hessian h ([cols, cols], symmetric PSD).
// With act_order, group scales are fixed up front from the (dead-column-cleaned) weights, in the
// original column order ("static groups"), so no permutation is needed at inference. Without it,
// each group's scales are chosen when GPTQ reaches its first column, from the weights as updated
// so far.
GptqResult gptq_quantize(const float* w, int64_t rows, int64_t cols, const std::vector<double>& h,
                         ColumnQuantizer& quantizer, const GptqOptions& options = {});

// Round-to-nearest with the same quantizer (the baseline): each group's scales from the original
// weights, every value rounded independently.
std::vector<float> rtn_quantize(const float* w, int64_t rows, int64_t cols,
                                ColumnQuantizer& quantizer, const double* h_diag = nullptr);

// tr((W−Q) H (W−Q)ᵀ): the layer's output reconstruction error on the calibration inputs.
double layer_objective(const float* w, const float* q, int64_t rows, int64_t cols,
                       const std::vector<double>& h);

}  // namespace qforge
