// Layer-by-layer quantization in GPTQ's sequential fashion: calibration activations flow through
// the model one decoder layer at a time; inside a layer the linears are quantized group by group
// (q/k/v, then o, then gate/up, then down), each group's input statistics collected with the
// already-quantized earlier groups in place; the layer's quantized output feeds the next layer.
// Peak memory: the calibration activations plus one layer's weights in f32, whatever the depth.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "qforge/calib/statistics.h"
#include "qforge/model/transformer.h"
#include "qforge/quant/gptq.h"
#include "qforge/quant/weight_arena.h"

namespace qforge {

enum class QuantMethod { RTN, GPTQ };

// Which linears to quantize and how: returns a quantizer for the weight, or null to keep it.
using QuantizerFactory = std::function<std::unique_ptr<ColumnQuantizer>(const Matrix& weight)>;

struct LinearResult {
  std::string name;
  int layer = 0;
  LinearGroup group = LinearGroup::AttnIn;
  int64_t rows = 0, cols = 0;
  double objective_rtn = 0;  // tr((W−Q)H(W−Q)ᵀ) of round-to-nearest
  double objective = 0;      // the same for the chosen method (equal to RTN's for RTN)
  double seconds = 0;
  int64_t dead_columns = 0;
};

// Receives each quantized linear once: the original weight, its quantized values (dequantized,
// [rows, cols] f32) and the quantizer holding the chosen scales. Called in model order.
using QuantizedSink = std::function<void(const Matrix& original, const std::vector<float>& values,
                                         const ColumnQuantizer& quantizer, const LinearResult&)>;

// Input statistics of every linear group of one layer on the calibration set.
struct LayerStatistics {
  std::array<std::unique_ptr<InputStatistics>, kLinearGroups> group;
  const InputStatistics& of(LinearGroup g) const { return *group.at(static_cast<size_t>(g)); }
};

// A rewrite of each layer before it is quantized: QuaRot rotation, SmoothQuant or AWQ scaling.
// Transforms run in the order given; statistics are collected once per layer, just before the
// first transform that needs them, from the layer as the earlier transforms left it. They stay
// valid for later transforms of the same layer because every rewrite here preserves the inputs of
// the other groups (scaling group g changes only g's own input).
class LayerTransform {
 public:
  virtual ~LayerTransform() = default;
  virtual bool needs_statistics() const { return false; }
  // The residual stream entering layer 0 ([n, hidden]), e.g. rotated.
  virtual void embedded(float* x, int64_t n) const {}
  // Rewrites layer l in place (weights it changes get arena-owned f32 copies).
  virtual void apply(int layer, LayerWeights& weights, WeightArena& arena,
                     const LayerStatistics* stats) = 0;
  // The quantizer for a linear, given the format's (e.g. AWQ wraps it with clip ratios).
  virtual std::unique_ptr<ColumnQuantizer> wrap(const Matrix& weight,
                                                std::unique_ptr<ColumnQuantizer> q) const {
    return q;
  }
};

struct LayerwiseOptions {
  QuantMethod method = QuantMethod::GPTQ;
  GptqOptions gptq;
  // Also compute RTN's objective for GPTQ layers (for reports; costs one more rounding pass).
  bool measure_rtn = true;
  // Decides which linears are quantized without building a quantizer (for the progress total;
  // building one reads the weight, which would page the whole model in up front). Null: every
  // linear the factory accepts is counted by calling it.
  std::function<bool(const Matrix&)> selected;
  std::vector<LayerTransform*> transforms;
  // Called with each layer once it is quantized, before its rewritten weights are dropped (to
  // write the unquantized tensors a transform changed).
  std::function<void(int layer, const LayerWeights&)> layer_done;
  // Inference simulated during calibration (activation quantization, KV cache format).
  InferenceOptions inference;
  // Calibration keeps down_proj's inputs (sequences x tokens x intermediate_size floats) from its
  // statistics pass to the layer's propagation when they fit in this many bytes; beyond, gate/up
  // run a second time instead. The attention's outputs are always kept (as large as the hidden
  // states themselves).
  size_t activation_cache_bytes = size_t{1} << 30;
  // When set, receives the statistics of the output head's input once the last layer is
  // quantized: the final-normed hidden states of the quantized model on the calibration set.
  std::function<void(const InputStatistics& head_input)> head_input;
};

// Runs the calibration sequences (each of the same length) through `weights` layer by layer,
// quantizing every linear the factory accepts. While a layer is processed its quantized linears
// point at f32 copies of their quantized values; afterwards `weights` is as it was (the sink has
// the values), so only one layer's f32 copies exist at any time.
// Without sequences (data-free RTN) no statistics exist: transforms that need them are refused
// and objectives are reported as 0. progress(done_linears, total_linears).
std::vector<LinearResult> quantize_layerwise(const ModelConfig& config, ModelWeights& weights,
                                             const std::vector<std::vector<int32_t>>& sequences,
                                             const QuantizerFactory& factory,
                                             const QuantizedSink& sink,
                                             const LayerwiseOptions& options, ThreadPool& pool,
                                             const std::function<void(int, int)>& progress = {});

}  // namespace qforge
