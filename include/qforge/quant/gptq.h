// GPTQ (Frantar et al., "GPTQ: Accurate Post-Training Quantization for Generative Pre-trained
// Transformers", ICLR 2023; reference code IST-DASLab/gptq): quantize W column by column and
// spread each column's rounding error over the not-yet-quantized columns through the inverse
// Hessian H⁻¹ of the layer's reconstruction objective ||WX − QX||² (H = 2XXᵀ, up to scale).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "qforge/formats/format.h"

namespace qforge {

class ThreadPool;

// What GPTQ needs from a numeric format, independent of how it is stored: which columns share a
// scale, how to choose those scales from (already error-compensated) weights, and how to round
// one value to the format's grid under the chosen scales.
class ColumnQuantizer {
 public:
  virtual ~ColumnQuantizer() = default;
  // Columns that share one set of scales along a row (e.g. 128 for int4-g128, 256 for a k-quant
  // super-block); 0 means the whole row.
  virtual int64_t group_size() const = 0;
  // Chooses the scales of group `group` for rows [first_row, first_row + rows) from w (row-major
  // [rows, width], stride ld; width = group_size except for a short last group). `h_diag` (width
  // entries, may be null) is the diagonal of H for these columns: per-column importance for
  // weighted scale searches. Disjoint row ranges may be chosen from different threads at once.
  virtual void choose_scales(int64_t group, int64_t first_row, const float* w, int64_t rows,
                             int64_t width, int64_t ld, const float* h_diag) = 0;
  // Nearest representable value of `value` at (row, col) under the scales of col's group.
  virtual float round(int64_t row, int64_t col, float value) const = 0;
  // Optional: refitting a group's scales to its codes (see formats::GroupQuantizer).
  virtual bool group_codes(int64_t /*row*/, int64_t /*group*/, const float* /*values*/,
                           formats::GroupCodes& /*out*/) const {
    return false;
  }
  virtual void try_scales(int64_t /*row*/, int64_t /*group*/, const formats::GroupCodes& /*g*/,
                          float* /*values*/) {}
  virtual void keep_candidate(int64_t /*row*/, int64_t /*group*/) {}
  // Optional: re-choosing a sub-block's scales inside a group (see formats::GroupQuantizer).
  virtual int64_t sub_group_size() const { return 0; }
  virtual void choose_sub_scales(int64_t /*group*/, int64_t /*sub*/, int64_t /*first_row*/,
                                 const float* /*w*/, int64_t /*rows*/, int64_t /*ld*/,
                                 const float* /*h_diag*/) {}
};

struct GptqOptions {
  double damp = 0.01;        // dampening: λ = damp · mean(diag H) added to the diagonal (§4)
  int64_t block_size = 128;  // lazy batch update width ("Lazy Batch-Updates", §4 step 2)
  bool act_order = false;    // process columns by decreasing diag(H) ("desc_act")
  // Scale refits (quant/scale_refit.h, GGUF block types): 0 keeps the scales chosen before each
  // group's columns were quantized; 1 refits them to GPTQ's final codes; each further round runs
  // GPTQ again under the refit scales and refits again, while that lowers the objective.
  int refit_rounds = 1;
  // Formats with sub-block scale levels under a group scale (Q3_K-Q6_K): each sub-block's levels
  // are chosen again when GPTQ reaches its first column (the group's d and dmin kept), so that they
  // see the error feedback from the group's earlier sub-blocks. Without act-order only.
  bool sub_block_scales = true;
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
// so far. With a pool, tiles of rows run side by side (GPTQ never moves error between rows); the
// tiles are fixed, so the result is the same for any number of threads. Not from inside one of
// the pool's own jobs (ThreadPool is not re-entrant).
GptqResult gptq_quantize(const float* w, int64_t rows, int64_t cols, const std::vector<double>& h,
                         ColumnQuantizer& quantizer, const GptqOptions& options = {},
                         ThreadPool* pool = nullptr);

// What GPTQ derives from H alone, before it sees a weight: the dead inputs, the column order and
// the upper Cholesky factor U of the damped (H + λI)⁻¹. Every matrix and every format quantized
// against the same H and options shares it (q/k/v, gate/up, the planner's candidates), so the
// O(cols³) factorisation runs once, not once per call. Read-only once made: safe to share
// between threads.
struct GptqFactor {
  int64_t cols = 0;
  std::vector<bool> dead;     // H_ii = 0: inputs always zero in calibration
  std::vector<double> diag;   // diag(H), dead entries set to 1 (scale searches' importance)
  std::vector<int64_t> perm;  // processing order (act-order: decreasing H_ii; else identity)
  std::vector<double> u;      // [cols, cols] upper Cholesky factor of (P H Pᵀ + λI)⁻¹
  double damp_used = 0;       // λ actually used (raised if H was not positive definite)
  int64_t block_size = 128;   // lazy batch width (before rounding up to the group size)
  bool act_order = false;
  int refit_rounds = 1;          // GptqOptions::refit_rounds
  bool sub_block_scales = true;  // GptqOptions::sub_block_scales
};

GptqFactor gptq_factor(const std::vector<double>& h, int64_t cols, const GptqOptions& options = {});

// gptq_quantize with a factor made from the same h and options (h still gives the objective).
GptqResult gptq_quantize(const float* w, int64_t rows, const std::vector<double>& h,
                         const GptqFactor& factor, ColumnQuantizer& quantizer,
                         ThreadPool* pool = nullptr);

// GPTQ of a tall matrix a chunk of rows at a time, so that only `chunk_rows` rows live in f32/f64
// at once: an output head has vocab rows but its Hessian is only cols x cols. GPTQ never moves
// error between rows and every row uses the same H⁻¹ factor, so whenever a row's scales depend
// only on that row (every block format) the result equals one gptq_quantize of the whole matrix.
struct GptqChunks {
  int64_t rows = 0, cols = 0;
  int64_t chunk_rows = 4096;
  // Rows [r0, r1) of W as f32 into out [r1 - r0, cols].
  std::function<void(int64_t r0, int64_t r1, float* out)> read;
  // A fresh quantizer for a chunk w [rows, cols].
  std::function<std::unique_ptr<ColumnQuantizer>(const float* w, int64_t rows, int64_t cols)> make;
  // Each chunk's quantized values [r1 - r0, cols] and its quantizer (scales chosen), in order.
  std::function<void(int64_t r0, int64_t r1, const std::vector<float>& q, const ColumnQuantizer&)>
      sink;
};

struct GptqChunkedResult {
  double objective = 0;      // summed over the chunks: the whole matrix's tr((W−Q) H (W−Q)ᵀ)
  double objective_rtn = 0;  // the same for round-to-nearest (when measured)
  int64_t dead_columns = 0;
};

GptqChunkedResult gptq_quantize_chunked(const GptqChunks& chunks, const std::vector<double>& h,
                                        const GptqOptions& options = {}, bool measure_rtn = false,
                                        ThreadPool* pool = nullptr);

// Round-to-nearest with the same quantizer (the baseline): each group's scales from the original
// weights, every value rounded independently (tiles of rows on the pool, when given).
std::vector<float> rtn_quantize(const float* w, int64_t rows, int64_t cols,
                                ColumnQuantizer& quantizer, const double* h_diag = nullptr,
                                ThreadPool* pool = nullptr);

// tr((W−Q) H (W−Q)ᵀ): the layer's output reconstruction error on the calibration inputs (tiles of
// rows on the pool, when given, summed in a fixed order).
double layer_objective(const float* w, const float* q, int64_t rows, int64_t cols,
                       const std::vector<double>& h, ThreadPool* pool = nullptr);

}  // namespace qforge
