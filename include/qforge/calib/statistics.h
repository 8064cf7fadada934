// Statistics of the inputs of one group of linear layers over the calibration set: the
// (unnormalised) Gram matrix XᵀX that GPTQ uses as its Hessian, and per-channel mean |x| and
// max |x| that AWQ and SmoothQuant use.
#pragma once

#include <cstdint>
#include <vector>

namespace qforge {

class ThreadPool;

class InputStatistics {
 public:
  explicit InputStatistics(int dim);
  // Adds n input rows x [n, dim], on `pool`'s threads when given (the same sums either way).
  void add(const float* x, int n, ThreadPool* pool = nullptr);

  int dim() const { return dim_; }
  int64_t tokens() const { return tokens_; }
  // H = XᵀX / tokens (symmetric, full storage, row-major [dim, dim]). GPTQ's 2/n factor is a
  // constant scale that neither the solution nor the relative dampening depends on.
  std::vector<double> hessian() const;
  const std::vector<double>& sum_abs() const { return sum_abs_; }
  std::vector<double> mean_abs() const;
  const std::vector<float>& max_abs() const { return max_abs_; }

 private:
  int dim_;
  int64_t tokens_ = 0;
  std::vector<double> xtx_;   // upper triangle accumulated
  std::vector<float> chunk_;  // per-call fp32 Gram, added to xtx_ in double
  std::vector<double> sum_abs_;
  std::vector<float> max_abs_;
};

}  // namespace qforge
