#include "qforge/quant/layerwise.h"

#include <chrono>
#include <optional>

#include "qforge/core/error.h"

namespace qforge {

namespace {

// Statistics of every group of layer l in one pass over the calibration inputs (x is left as is).
LayerStatistics collect_layer_statistics(Transformer& model, KVCache& cache, int layer,
                                         const std::vector<std::vector<float>>& x,
                                         std::vector<float>& scratch, int len) {
  LayerStatistics stats;
  ForwardHooks hooks;
  hooks.on_input = [&](int, LinearGroup g, const float* in, int n, int dim) {
    auto& s = stats.group[static_cast<size_t>(g)];
    if (!s) s = std::make_unique<InputStatistics>(dim);
    s->add(in, n, &model.pool());
  };
  for (const auto& xs : x) {
    std::copy(xs.begin(), xs.end(), scratch.begin());
    model.run_layer(layer, scratch.data(), len, 0, cache, &hooks);
  }
  return stats;
}

// How far the calibration sequences have gone through the current layer, so that each pass
// starts where the last one stopped instead of at the layer's beginning (each group's linears
// and the attention then run once per layer, as in inference, instead of once per later group).
// x[s] holds the residual stream at group `at`; `input[s]` holds that group's input where it
// cannot be recomputed from x: the attention's output (AttnOut) or down_proj's input (MlpAct).
struct LayerCheckpoint {
  LinearGroup at = LinearGroup::AttnIn;
  std::vector<std::vector<float>> input;
};

// Runs every calibration sequence from the checkpoint up to group `group`'s input, which
// `report` sees, and moves the checkpoint there. Every group before `group` must be final: a run
// past the attention block leaves x[s] at its output for good. down_proj's inputs are kept only
// when they fit in `cache_bytes` (otherwise the layer's last run computes them again).
void run_to_group(Transformer& model, KVCache& cache, int layer, LinearGroup group,
                  std::vector<std::vector<float>>& x, std::vector<float>& scratch, int len,
                  size_t cache_bytes, LayerCheckpoint& checkpoint,
                  const std::function<void(const float*, int, int)>& report) {
  const bool keeps_x = group <= LinearGroup::AttnOut;  // stops before x changes: work on a copy
  const size_t down_input_bytes =
      x.size() * len * static_cast<size_t>(model.config().intermediate_size) * sizeof(float);
  const bool saves_input = group == LinearGroup::AttnOut ||
                           (group == LinearGroup::MlpAct && down_input_bytes <= cache_bytes);
  std::vector<std::vector<float>> saved(saves_input ? x.size() : 0);
  size_t s = 0;  // the sequence being run, for the hook
  ForwardHooks hooks;
  hooks.stop_after = group;
  hooks.start_at = checkpoint.at;
  hooks.on_input = [&](int, LinearGroup seen, const float* in, int n, int dim) {
    if (seen != group) return;  // earlier groups of the layer are reported too
    report(in, n, dim);
    if (saves_input) saved[s].assign(in, in + static_cast<size_t>(n) * dim);
  };
  for (s = 0; s < x.size(); ++s) {
    float* xs = x[s].data();
    if (keeps_x) {
      std::copy(x[s].begin(), x[s].end(), scratch.begin());
      xs = scratch.data();
    }
    hooks.start_input = checkpoint.input.empty() ? nullptr : checkpoint.input[s].data();
    model.run_layer(layer, xs, len, 0, cache, &hooks);
  }
  if (saves_input)
    checkpoint = {group, std::move(saved)};
  else if (!keeps_x)
    checkpoint = {LinearGroup::MlpIn, {}};  // x[s] is the attention block's output now
}

// Runs every calibration sequence from the checkpoint to the end of the layer (in place).
void finish_layer(Transformer& model, KVCache& cache, int layer, std::vector<std::vector<float>>& x,
                  int len, const LayerCheckpoint& checkpoint) {
  ForwardHooks hooks;
  hooks.start_at = checkpoint.at;
  for (size_t s = 0; s < x.size(); ++s) {
    hooks.start_input = checkpoint.input.empty() ? nullptr : checkpoint.input[s].data();
    model.run_layer(layer, x[s].data(), len, 0, cache, &hooks);
  }
}

// One linear quantized with the Hessian h of its input (empty without calibration) and, for GPTQ,
// the factor of h that its group shares; tiles of its rows run side by side on the pool.
struct SolvedLinear {
  LinearResult result;
  std::vector<float> values;
};
SolvedLinear solve_linear(const Matrix& m, ColumnQuantizer& q, int layer, LinearGroup group,
                          const std::vector<double>& h, const std::vector<double>& h_diag,
                          const GptqFactor* factor, const LayerwiseOptions& options,
                          ThreadPool& pool) {
  const auto t0 = std::chrono::steady_clock::now();
  const std::vector<float> w = m.to_f32();
  SolvedLinear s{LinearResult{m.name, layer, group, m.rows, m.cols}, {}};
  LinearResult& r = s.result;
  const double* importance = h_diag.empty() ? nullptr : h_diag.data();
  if (options.method == QuantMethod::GPTQ) {
    if (options.measure_rtn) {
      const std::vector<float> rtn = rtn_quantize(w.data(), m.rows, m.cols, q, importance, &pool);
      r.objective_rtn = layer_objective(w.data(), rtn.data(), m.rows, m.cols, h, &pool);
    }
    GptqResult g = gptq_quantize(w.data(), m.rows, h, *factor, q, &pool);
    r.objective = g.objective;
    r.dead_columns = g.dead_columns;
    s.values = std::move(g.q);
  } else {
    s.values = rtn_quantize(w.data(), m.rows, m.cols, q, importance, &pool);
    if (!h.empty())
      r.objective = r.objective_rtn =
          layer_objective(w.data(), s.values.data(), m.rows, m.cols, h, &pool);
  }
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return s;
}

}  // namespace

std::vector<LinearResult> quantize_layerwise(const ModelConfig& config, ModelWeights& weights,
                                             const std::vector<std::vector<int32_t>>& sequences,
                                             const QuantizerFactory& factory,
                                             const QuantizedSink& sink,
                                             const LayerwiseOptions& options, ThreadPool& pool,
                                             const std::function<void(int, int)>& progress) {
  const bool calibrated = !sequences.empty();
  const int len = calibrated ? static_cast<int>(sequences.front().size()) : 1;
  for (const auto& s : sequences)
    check(static_cast<int>(s.size()) == len, "calibration: sequences must have equal length");
  for (const LayerTransform* t : options.transforms)
    check(calibrated || !t->needs_statistics(), "this transform needs calibration data");
  check(calibrated || options.method == QuantMethod::RTN, "GPTQ needs calibration data");
  const int d = config.hidden_size;
  Transformer model(config, weights, pool, options.inference);
  KVCache cache = model.new_cache(len, /*shared_layers=*/true);

  // Activations entering the current layer, for every calibration sequence.
  std::vector<std::vector<float>> x(sequences.size());
  for (size_t s = 0; s < sequences.size(); ++s) {
    x[s].resize(static_cast<size_t>(len) * d);
    model.embed(sequences[s], x[s].data());
    for (const LayerTransform* t : options.transforms) t->embedded(x[s].data(), len);
  }
  weights.release(weights.embedding);  // calibration touched most of its rows once
  int total = 0, done = 0;
  for (LayerWeights& lw : weights.layers)
    for (int g = 0; g < kLinearGroups; ++g)
      for (Matrix* m : linears_of_group(lw, static_cast<LinearGroup>(g)))
        if (options.selected ? options.selected(*m) : factory(*m) != nullptr) ++total;

  std::vector<LinearResult> results;
  std::vector<float> scratch(static_cast<size_t>(len) * d);
  for (int l = 0; l < config.num_layers; ++l) {
    LayerWeights& lw = weights.layers[l];
    const LayerWeights original = lw;
    WeightArena arena;  // the layer's rewritten weights, dropped with the layer
    std::unique_ptr<LayerStatistics> layer_stats;
    for (LayerTransform* t : options.transforms) {
      if (t->needs_statistics() && !layer_stats) {
        model.refresh_layer(l);
        layer_stats = std::make_unique<LayerStatistics>(
            collect_layer_statistics(model, cache, l, x, scratch, len));
      }
      t->apply(l, lw, arena, layer_stats.get());
    }
    layer_stats.reset();
    model.refresh_layer(l);
    std::vector<std::shared_ptr<std::vector<float>>> layer_buffers;  // freed after the layer
    LayerCheckpoint checkpoint;
    for (int gi = 0; gi < kLinearGroups; ++gi) {
      const auto group = static_cast<LinearGroup>(gi);
      std::vector<Matrix*> targets;
      std::vector<std::unique_ptr<ColumnQuantizer>> quantizers;
      for (Matrix* m : linears_of_group(lw, group))
        if (auto q = factory(*m)) {
          for (const LayerTransform* t : options.transforms) q = t->wrap(*m, std::move(q));
          targets.push_back(m);
          quantizers.push_back(std::move(q));
        }
      if (targets.empty()) continue;
      // Statistics of this group's input, with the earlier groups of this layer already quantized.
      std::unique_ptr<InputStatistics> stats;
      if (calibrated)
        run_to_group(model, cache, l, group, x, scratch, len, options.activation_cache_bytes,
                     checkpoint, [&](const float* in, int n, int dim) {
                       if (!stats) stats = std::make_unique<InputStatistics>(dim);
                       stats->add(in, n, &model.pool());
                     });
      const int dim = static_cast<int>(targets.front()->cols);
      std::vector<double> h, h_diag;
      if (stats) {
        h = stats->hessian();
        stats.reset();  // the accumulators are as large as H
        h_diag.resize(static_cast<size_t>(dim));
        for (int i = 0; i < dim; ++i) h_diag[i] = h[static_cast<size_t>(i) * dim + i];
      }

      // GPTQ's factor of H, made once for the group's linears (q/k/v, gate/up).
      std::optional<GptqFactor> factor;
      if (options.method == QuantMethod::GPTQ) factor = gptq_factor(h, dim, options.gptq);
      for (size_t t = 0; t < targets.size(); ++t) {
        Matrix& m = *targets[t];
        SolvedLinear solved = solve_linear(m, *quantizers[t], l, group, h, h_diag,
                                           factor ? &*factor : nullptr, options, pool);
        if (sink) sink(m, solved.values, *quantizers[t], solved.result);
        // From now on the model computes with the quantized values.
        auto owned = std::make_shared<std::vector<float>>(std::move(solved.values));
        m = Matrix{m.name, DType::F32, m.rows, m.cols,
                   reinterpret_cast<const std::byte*>(owned->data())};
        layer_buffers.push_back(owned);
        results.push_back(solved.result);
        if (progress) progress(++done, total);
      }
    }
    // The quantized layer's output is the next layer's calibration input.
    finish_layer(model, cache, l, x, len, checkpoint);
    if (options.layer_done) options.layer_done(l, lw);
    lw = original;  // the sink has the quantized values; keep only one layer in f32 at a time
    model.refresh_layer(l);
    // Done with this layer's source weights: mapped pages need not stay resident.
    for (int gi = 0; gi < kLinearGroups; ++gi)
      for (const Matrix* m : linears_of_group(lw, static_cast<LinearGroup>(gi)))
        weights.release(*m);
  }
  if (options.head_input && calibrated) {
    InputStatistics head(d);
    for (const auto& xs : x) {
      model.final_norm(xs.data(), len, scratch.data());
      head.add(scratch.data(), len, &model.pool());
    }
    options.head_input(head);
  }
  return results;
}

}  // namespace qforge
