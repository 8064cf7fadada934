// The layer rewrites that `qforge quantize` applies before quantizing each layer (see
// LayerTransform in layerwise.h): QuaRot rotation, SmoothQuant and AWQ scaling (with AWQ's
// clipping passed on to the quantizers).
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "qforge/quant/awq.h"
#include "qforge/quant/layerwise.h"
#include "qforge/quant/rotation.h"

namespace qforge {

class RotationTransform final : public LayerTransform {
 public:
  RotationTransform(const ModelConfig& config, const RotationOptions& options)
      : rotation_(config, options) {}
  void embedded(float* x, int64_t n) const override { rotation_.rotate_residual(x, n); }
  void apply(int, LayerWeights& lw, WeightArena& arena, const LayerStatistics*) override {
    rotation_.rotate_layer(lw, arena);
  }
  const ModelRotation& rotation() const { return rotation_; }

 private:
  ModelRotation rotation_;
};

// Which linear groups channel scaling may touch. With QuaRot's online Hadamard before down_proj,
// down_proj's input channels are rotated ones: a scale folded into up_proj's rows would land
// before the rotation and the matching one in down_proj's columns after it, which is not the
// same function. Scaling transforms then leave that group alone.
inline bool scalable_group(LinearGroup g, bool online_hadamard_down) {
  return !(online_hadamard_down && g == LinearGroup::MlpAct);
}

// SmoothQuant on every group of linears (q/k/v, o, gate/up, down) with `alpha`.
class SmoothQuantTransform final : public LayerTransform {
 public:
  // `quantized(m)`: whether linear m will be quantized (only those shape the weight maxima).
  SmoothQuantTransform(const ModelConfig& config, double alpha,
                       std::function<bool(const Matrix&)> quantized,
                       bool online_hadamard_down = false)
      : config_(config),
        alpha_(alpha),
        quantized_(std::move(quantized)),
        online_hadamard_down_(online_hadamard_down) {}
  bool needs_statistics() const override { return true; }
  void apply(int layer, LayerWeights& lw, WeightArena& arena,
             const LayerStatistics* stats) override;

 private:
  ModelConfig config_;
  double alpha_;
  std::function<bool(const Matrix&)> quantized_;
  bool online_hadamard_down_;
};

// What AWQ decided for one group of one layer (recorded in the output's metadata).
struct AwqGroupRecord {
  int layer = 0;
  LinearGroup group = LinearGroup::AttnIn;
  double alpha = -1;  // the α applied; −1: none (no scaling beat RTN, or GPTQ rejected it)
  double objective_identity = 0, objective = 0;  // RTN objectives without / with AWQ's best scales
  // With a GPTQ check: GPTQ's objectives without / with those scales (0 when not checked).
  double gptq_objective_identity = 0, gptq_objective = 0;
  bool gptq_rejected = false;  // AWQ found scales, GPTQ did better without them
};

class AwqTransform final : public LayerTransform {
 public:
  // `maker(m)`: the quantizer maker of linear m's format, or an empty function when m is kept.
  // `gptq`: the linears will be quantized by GPTQ with these options; AWQ's scales (chosen for
  // round-to-nearest) are then kept for a group only if GPTQ's objective on the calibration
  // Hessian is lower with them than without, so awq+gptq never does worse than GPTQ there.
  AwqTransform(const ModelConfig& config, const AwqOptions& options, bool clip,
               std::function<QuantizerMaker(const Matrix&)> maker,
               std::optional<GptqOptions> gptq = std::nullopt, bool online_hadamard_down = false)
      : config_(config),
        options_(options),
        clip_(clip),
        maker_(std::move(maker)),
        gptq_(gptq),
        online_hadamard_down_(online_hadamard_down) {}
  bool needs_statistics() const override { return true; }
  void apply(int layer, LayerWeights& lw, WeightArena& arena,
             const LayerStatistics* stats) override;
  std::unique_ptr<ColumnQuantizer> wrap(const Matrix& weight,
                                        std::unique_ptr<ColumnQuantizer> q) const override;
  const std::vector<AwqGroupRecord>& records() const { return records_; }

 private:
  ModelConfig config_;
  AwqOptions options_;
  bool clip_;
  std::function<QuantizerMaker(const Matrix&)> maker_;
  std::optional<GptqOptions> gptq_;
  bool online_hadamard_down_;
  std::map<std::string, std::vector<float>> clip_ratios_;  // this layer's, by linear name
  std::vector<AwqGroupRecord> records_;
};

// "attn_in", "attn_out", "mlp_in", "mlp_act"
std::string linear_group_name(LinearGroup g);

}  // namespace qforge
