// Refitting a quantized matrix's block scales to its codes. GPTQ chooses each group's scales when
// it reaches the group's first column, then keeps feeding rounding error into the group's later
// columns; the codes it ends with are no longer the ones those scales were chosen for. With the
// codes fixed, a group's values are linear in its scales (value = a·code ± m per sub-block), so
// the scales that minimise the layer objective tr((W−Q) H (W−Q)ᵀ) — with every other group held
// as it is — are a small least-squares problem under the group's block of H.
#pragma once

#include <cstdint>
#include <vector>

#include "qforge/quant/gptq.h"

namespace qforge {

struct ScaleRefitStats {
  int64_t groups = 0;           // (row, group) pairs visited, each sweep
  int64_t kept = 0;             // candidates kept (they lowered the objective)
  double objective_change = 0;  // summed over the kept candidates (<= 0)
};

// Block coordinate descent over the groups of q ([rows, cols], the quantized values of w, on the
// quantizer's grid under its current scales), in column order, `sweeps` times. Each group tries
// two candidates: (1) every sub-block's scale and offset solved by least squares under H's
// (group x group) block, then quantized to the format's scale fields; (2) the super-block scale
// and offset scales alone (a common factor on all scales, one on all offsets). A candidate is
// kept only when it lowers the objective, measured exactly with the decoded values, so the
// objective never increases. q and the quantizer's scales are updated together. Returns zeros
// (nothing done) when the quantizer does not support refitting.
ScaleRefitStats refit_scales(const float* w, float* q, int64_t rows, int64_t cols,
                             const std::vector<double>& h, ColumnQuantizer& quantizer,
                             int sweeps = 1);

}  // namespace qforge
