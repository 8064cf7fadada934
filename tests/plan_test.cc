// Mixed precision to a size budget: the exact knapsack, the planner's budgets and refusals, plan
// files, quantizing by a plan, and the sensitivity measurement on the embedded model.
#include "qforge/quant/plan.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <random>

#include "qforge/core/error.h"
#include "qforge/core/thread_pool.h"
#include "qforge/eval/compare.h"
#include "qforge/io/safetensors.h"
#include "qforge/kernels/kl.h"
#include "qforge/plan/knapsack.h"
#include "qforge/plan/planner.h"
#include "qforge/plan/sensitivity.h"
#include "quantize_test_util.h"

namespace qforge {
namespace {

namespace fs = std::filesystem;
using plan::Budget;
using plan::KnapsackOption;

using Items = std::vector<std::vector<KnapsackOption>>;

// The probes' KL kernel against the definition in double: small KL (a close q) and large, with
// vector lengths that leave a tail.
TEST(ProbeKl, MatchesTheDefinitionInDouble) {
  std::mt19937 rng(7);
  std::normal_distribution<float> z(0.0f, 3.0f);
  for (int n : {1, 5, 17, 1000, 16384 + 3}) {
    for (float noise : {1e-3f, 0.3f}) {
      std::vector<float> ref(n), x(n), p(n), logp(n);
      for (int i = 0; i < n; ++i) ref[i] = z(rng);
      for (int i = 0; i < n; ++i) x[i] = ref[i] + noise * z(rng);
      auto lse = [&](const std::vector<float>& v) {
        double m = *std::max_element(v.begin(), v.end()), s = 0;
        for (float f : v) s += std::exp(f - m);
        return m + std::log(s);
      };
      const double lr = lse(ref), lx = lse(x);
      double want = 0;
      for (int i = 0; i < n; ++i) {
        logp[i] = static_cast<float>(ref[i] - lr);
        p[i] = static_cast<float>(std::exp(ref[i] - lr));
        want += std::exp(ref[i] - lr) * ((ref[i] - lr) - (x[i] - lx));
      }
      const double got = kernels::kl_from_logits(p.data(), logp.data(), x.data(), n);
      EXPECT_NEAR(got, std::max(0.0, want), 1e-6 + 1e-4 * want) << n << " " << noise;
    }
  }
}

// The smallest loss over every combination within the capacity (nullopt: none fits).
std::optional<double> brute_force(const Items& items, uint64_t capacity) {
  std::optional<double> best;
  std::vector<size_t> at(items.size(), 0);
  while (true) {
    uint64_t cost = 0;
    double loss = 0;
    for (size_t i = 0; i < items.size(); ++i) {
      cost += items[i][at[i]].cost;
      loss += items[i][at[i]].loss;
    }
    if (cost <= capacity && (!best || loss < *best)) best = loss;
    size_t i = 0;
    while (i < items.size() && ++at[i] == items[i].size()) at[i++] = 0;
    if (i == items.size()) return best;
  }
}

TEST(Knapsack, OptimumEqualsBruteForceOnRandomInstances) {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 300; ++trial) {
    Items items(1 + rng() % 6);
    uint64_t total = 0;
    for (auto& options : items) {
      options.resize(1 + rng() % 4);
      for (auto& o : options) {
        o.cost = rng() % 40;  // equal costs and zero costs happen
        o.loss = static_cast<double>(rng() % 1000) / 7.0;
      }
      total += 40;
    }
    const uint64_t capacity = rng() % total;
    const auto dp = plan::solve_knapsack(items, capacity);
    const auto expected = brute_force(items, capacity);
    ASSERT_EQ(dp.has_value(), expected.has_value()) << "trial " << trial;
    if (!dp) continue;
    EXPECT_NEAR(dp->loss, *expected, 1e-9) << "trial " << trial;
    uint64_t cost = 0;
    double loss = 0;
    for (size_t i = 0; i < items.size(); ++i) {
      cost += items[i][dp->choice[i]].cost;
      loss += items[i][dp->choice[i]].loss;
    }
    EXPECT_EQ(cost, dp->cost);
    EXPECT_LE(cost, capacity);
    EXPECT_NEAR(loss, dp->loss, 1e-9);
  }
}

TEST(Knapsack, NothingFitsBelowTheCheapestChoice) {
  const Items items = {{{10, 1.0}, {20, 0.5}}, {{5, 2.0}}};
  EXPECT_FALSE(plan::solve_knapsack(items, 14).has_value());
  ASSERT_TRUE(plan::solve_knapsack(items, 15).has_value());
  EXPECT_EQ(plan::solve_knapsack(items, 25)->choice, (std::vector<int>{1, 0}));
}

// A measurement of n tensors [rows, 256] whose candidates lose less with more bytes, the later
// tensors more sensitive than the earlier ones.
plan::Measurement synthetic_measurement(int n) {
  plan::Measurement m;
  m.model = "synthetic";
  m.other_bytes = 1000;
  for (int i = 0; i < n; ++i) {
    plan::TensorMeasure t;
    t.name = "t" + std::to_string(i);
    t.rows = 64 * (1 + i % 3);
    t.cols = 256;
    t.kept_bytes = static_cast<uint64_t>(t.rows * t.cols) * 2;
    for (int bits : {2, 3, 4, 5, 6, 8}) {
      const uint64_t bytes = static_cast<uint64_t>(t.rows * t.cols) * bits / 8 + t.rows * 2;
      const double loss = (1 + i) * std::pow(4.0, -bits);
      t.candidates.push_back({"int" + std::to_string(bits), bytes, loss, -1, loss});
    }
    m.tensors.push_back(t);
  }
  return m;
}

TEST(Planner, MeetsEveryBudgetAndLeavesLessThanOneUpgradeStep) {
  const plan::Measurement m = synthetic_measurement(12);
  double previous = 1e30;
  for (double bpw = 2.2; bpw <= 9; bpw += 0.35) {
    const QuantPlan p = plan::plan_for_budget(m, {Budget::Kind::BitsPerWeight, bpw});
    EXPECT_LE(p.budget.used_bytes, p.budget.max_bytes) << bpw;
    EXPECT_LE(p.budget.bits_per_weight, bpw);
    EXPECT_LE(p.predicted_kld, previous) << "a larger budget never predicts worse";
    previous = p.predicted_kld;
    // Every tensor's next larger option would overflow the budget (else the plan is not optimal:
    // losses fall strictly with bytes here).
    const uint64_t slack = p.budget.max_bytes - p.budget.used_bytes;
    for (const plan::TensorMeasure& t : m.tensors) {
      auto it = p.tensors.find(t.name);
      if (it == p.tensors.end()) continue;  // kept: nothing larger
      for (const auto& c : t.candidates) {
        if (c.bytes > it->second.bytes) {
          EXPECT_GT(c.bytes - it->second.bytes, slack) << t.name;
        }
      }
    }
  }
}

TEST(Planner, SizeBudgetCountsTheWholeFile) {
  const plan::Measurement m = synthetic_measurement(6);
  const uint64_t overhead = plan::file_overhead_bytes(m);
  EXPECT_GT(overhead, m.other_bytes);
  const QuantPlan p = plan::plan_for_budget(m, {Budget::Kind::FileBytes, 60000.0 + overhead});
  EXPECT_EQ(p.budget.max_bytes, 60000u);
  EXPECT_LE(p.budget.used_bytes, 60000u);
}

TEST(Planner, RefusesBudgetsOutOfRangeNamingBothLimits) {
  const plan::Measurement m = synthetic_measurement(4);
  for (double bpw : {1.0, 17.0}) {
    try {
      plan::plan_for_budget(m, {Budget::Kind::BitsPerWeight, bpw});
      FAIL() << bpw << " accepted";
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find("smallest possible is 2.0625"), std::string::npos) << msg;
      EXPECT_NE(msg.find("largest 16.0000"), std::string::npos) << msg;
    }
  }
  EXPECT_THROW(plan::plan_for_budget(m, {Budget::Kind::FileBytes, 100.0}), Error);
}

TEST(PlanFile, RoundTripsAndRefusesUnknownFormatsAndOtherModels) {
  QuantPlan p;
  p.tensors["a.weight"] = {"int4-g128", 256, 512, 69632, 0.001, 2.5};
  p.predicted_kld = 0.001;
  p.budget = {"--bpw 4", 70000, 69632, 4.25};
  const QuantPlan back = plan_from_json(plan_to_json(p), "p.json");
  EXPECT_EQ(back.tensors.at("a.weight").format, "int4-g128");
  EXPECT_EQ(back.tensors.at("a.weight").bytes, 69632u);
  EXPECT_EQ(back.budget.request, "--bpw 4");

  nlohmann::json bad = plan_to_json(p);
  bad["tensors"]["a.weight"]["format"] = "int4-g100x";
  EXPECT_THROW(
      {
        try {
          plan_from_json(bad, "p.json");
        } catch (const Error& e) {
          EXPECT_NE(std::string(e.what()).find("p.json: tensor a.weight: unknown format"),
                    std::string::npos)
              << e.what();
          throw;
        }
      },
      Error);

  std::vector<QuantizableTensor> model = {
      {"a.weight", QuantizableTensor::Kind::Linear, 0, LinearGroup::AttnIn, 256, 256}};
  EXPECT_THROW(check_plan_fits(p, model, "p.json"), Error);  // shape differs
  model[0].name = "b.weight";
  model[0].cols = 512;
  EXPECT_THROW(check_plan_fits(p, model, "p.json"), Error);  // name differs
}

// qforge's record in a quantized model's config.json (under "qforge" in compressed-tensors').
nlohmann::json qforge_record(const fs::path& dir) {
  const auto config = nlohmann::json::parse(read_text_file(dir / "config.json"));
  const auto& qc = config["quantization_config"];
  return qc.contains("qforge") ? qc["qforge"] : qc;
}

// Every tensor of two model directories' model.safetensors with the same bytes.
void expect_same_tensors(const fs::path& a, const fs::path& b) {
  const TensorStore sa = TensorStore::open(a), sb = TensorStore::open(b);
  ASSERT_EQ(sa.all().size(), sb.all().size());
  for (const TensorView* t : sa.all()) {
    const TensorView* u = sb.find(t->name);
    ASSERT_NE(u, nullptr) << t->name;
    ASSERT_EQ(t->nbytes(), u->nbytes()) << t->name;
    EXPECT_EQ(std::memcmp(t->data, u->data, t->nbytes()), 0) << t->name;
  }
}

TEST(QuantizeWithPlan, APlanOfTheRulesWritesTheSameTensors) {
  QuantizeOptions rules = testing::embedded_quantize_options("rules", "int4-g64", QuantMethod::RTN);
  rules.tensor_formats = {{"down_proj", "int8-channel"}, {"embed_tokens", "q8_0"}};
  quantize_model(rules);
  // The same choice as a plan read from the record.
  QuantPlan p;
  const nlohmann::json record = qforge_record(rules.output);
  for (const auto& [name, t] : record["tensors"].items())
    p.tensors[name] = {t["format"].get<std::string>(), t["shape"][0].get<int64_t>(),
                       t["shape"][1].get<int64_t>()};
  ASSERT_TRUE(p.tensors.contains("model.embed_tokens.weight"));
  QuantizeOptions planned = testing::embedded_quantize_options("planned", "", QuantMethod::RTN);
  planned.plan = p;
  planned.plan_source = "test plan";
  quantize_model(planned);
  expect_same_tensors(rules.output, planned.output);
}

TEST(QuantizeWithPlan, RefusesAPlanForAnotherModelBeforeWritingAnything) {
  QuantizeOptions o = testing::embedded_quantize_options("other", "", QuantMethod::RTN);
  QuantPlan p;
  p.tensors["model.layers.0.self_attn.q_proj.weight"] = {"int4-g64", 999, 256};
  o.plan = p;
  o.plan_source = "other.json";
  EXPECT_THROW(quantize_model(o), Error);
  EXPECT_FALSE(fs::exists(o.output));
  p.tensors.clear();
  p.tensors["model.layers.99.mlp.up_proj.weight"] = {"int4-g64", 256, 256};
  o.plan = p;
  EXPECT_THROW(quantize_model(o), Error);
  EXPECT_FALSE(fs::exists(o.output));
}

TEST(Sensitivity, MeasuresEveryTensorAndPlansWithinTheBudget) {
  if (testing::sanitized()) GTEST_SKIP() << "slow under sanitizers";
  plan::MeasureOptions o;
  o.model = testing::embedded_model_dir();
  o.calib = testing::source_dir() / "data/sample.txt";
  o.calib_tokens = 256;
  o.seq_len = 64;
  o.probe_tokens = 64;
  o.formats = "int3-g64,int4-g64,int8-channel";
  const int threads = ThreadPool::global().size();
  ThreadPool::set_global_threads(3);  // candidates side by side (compared with 1 thread below)
  const plan::Measurement m = plan::measure_sensitivity(o);
  ASSERT_FALSE(m.tensors.empty());
  EXPECT_TRUE(plan::measurement_matches(m, o, m.calib_hash));
  plan::Measurement fewer = m;  // as if made when the list named fewer formats
  fewer.tensors[3].candidates.pop_back();
  EXPECT_FALSE(plan::measurement_matches(fewer, o, m.calib_hash));
  int tables = 0;
  for (const plan::TensorMeasure& t : m.tensors) {
    ASSERT_EQ(t.candidates.size(), 3u) << t.name;
    if (t.kind == QuantizableTensor::Kind::Linear) {
      EXPECT_EQ(t.probe_format, "int3-g64") << t.name;  // nearest 3.5 bits
      EXPECT_GT(t.kld_per_objective, 0) << t.name;
      // More bits: a smaller objective, so a smaller predicted KLD.
      EXPECT_GT(t.candidates[0].objective, t.candidates[1].objective) << t.name;
      EXPECT_GT(t.candidates[1].objective, t.candidates[2].objective) << t.name;
    } else {
      ++tables;
      for (const auto& c : t.candidates) EXPECT_GE(c.kld_measured, 0) << t.name << " " << c.format;
    }
    for (const auto& c : t.candidates) EXPECT_GE(c.kld_predicted, 0);
  }
  EXPECT_EQ(tables, 1);  // tied: the embedding is the head
  const plan::Measurement back = plan::measurement_from_json(plan::measurement_to_json(m), "m");
  EXPECT_EQ(back.tensors.size(), m.tensors.size());
  EXPECT_EQ(back.tensors[3].candidates[1].objective, m.tensors[3].candidates[1].objective);

  EXPECT_GT(m.phase_seconds.quantize, 0);
  EXPECT_GT(m.phase_seconds.probes, 0);
  EXPECT_LE(m.phase_seconds.tables + m.phase_seconds.statistics + m.phase_seconds.quantize +
                m.phase_seconds.probes,
            m.seconds);

  // The candidates run side by side on the pool's threads: one thread gives the same numbers.
  ThreadPool::set_global_threads(1);
  const plan::Measurement serial = plan::measure_sensitivity(o);
  ThreadPool::set_global_threads(threads);
  ASSERT_EQ(serial.tensors.size(), m.tensors.size());
  for (size_t i = 0; i < m.tensors.size(); ++i)
    for (size_t c = 0; c < m.tensors[i].candidates.size(); ++c) {
      const plan::CandidateMeasure &a = m.tensors[i].candidates[c],
                                   &b = serial.tensors[i].candidates[c];
      EXPECT_EQ(a.objective, b.objective) << m.tensors[i].name << " " << a.format;
      EXPECT_NEAR(a.kld_predicted, b.kld_predicted, 1e-6 * a.kld_predicted + 1e-12)
          << m.tensors[i].name << " " << a.format;
    }

  plan::Measurement older = m;  // made before the head was measured by GPTQ: measured again
  older.version = 1;
  EXPECT_FALSE(plan::measurement_matches(older, o, m.calib_hash));
  older.version = 2;  // before GGUF embeddings were measured as written: no GGUF candidate here
  EXPECT_TRUE(plan::measurement_matches(older, o, m.calib_hash));
  older.version = 3;  // before GGUF's GPTQ changed (version 4): no GGUF candidate here either
  EXPECT_TRUE(plan::measurement_matches(older, o, m.calib_hash));

  // The tied table is quantized by GPTQ as the head (quantize_model's rule), so it is measured
  // so: against the RTN measurement, GPTQ lowers the table's damage at 3 bits (the probe tokens
  // are calibration tokens, whose logits GPTQ's objective protects).
  plan::MeasureOptions rtn = o;
  rtn.method = QuantMethod::RTN;
  const plan::Measurement by_rtn = plan::measure_sensitivity(rtn);
  for (size_t i = 0; i < m.tensors.size(); ++i) {
    if (m.tensors[i].kind != QuantizableTensor::Kind::Linear) {
      EXPECT_LT(m.tensors[i].candidates[0].kld_measured,
                0.95 * by_rtn.tensors[i].candidates[0].kld_measured)
          << m.tensors[i].name;
    }
  }

  const QuantPlan p = plan::plan_for_budget(m, {Budget::Kind::BitsPerWeight, 4.5});
  EXPECT_LE(p.budget.bits_per_weight, 4.5);
  EXPECT_GT(p.predicted_kld, 0);
  QuantizeOptions q = testing::embedded_quantize_options("measured", "", QuantMethod::GPTQ);
  q.plan = p;
  const QuantizeReport r = quantize_model(q);
  EXPECT_NEAR(qforge_record(q.output)["plan"]["predicted_kld"].get<double>(), p.predicted_kld,
              1e-12);
  EXPECT_GT(r.linears.size(), 0u);
}

// quantize with GPTQ writes an (untied) embedding in a GGUF type with the rows of calibration
// tokens re-encoded by the weighted search; the measurement measures it so: its KLD for the
// embedding in q3_k is the KLD of the file quantize writes with only the embedding in q3_k, on
// the probe tokens. The RTN measurement (plain encoder, as quantize without calibration writes
// it) differs from that by about 1%; the GPTQ measurement did too before it re-encoded seen rows.
TEST(Sensitivity, MeasuresAGgufEmbeddingAsQuantizeWritesIt) {
  if (testing::sanitized()) GTEST_SKIP() << "slow under sanitizers";
  // An untied model: the embedded one rotated (the head then carries the final norm), unquantized.
  QuantizeOptions untie =
      testing::embedded_quantize_options("plan_untied", "int4-g64", QuantMethod::RTN);
  untie.keep = {"."};
  untie.rotate = RotationOptions{false, 7};
  quantize_model(untie);
  plan::MeasureOptions o;
  o.model = untie.output;
  o.calib = testing::source_dir() / "data/sample.txt";
  o.calib_tokens = 256;
  o.seq_len = 64;
  o.probe_tokens = 64;
  o.formats = "q3_k";
  const plan::Measurement by_gptq = plan::measure_sensitivity(o);
  plan::MeasureOptions rtn = o;
  rtn.method = QuantMethod::RTN;
  const plan::Measurement by_rtn = plan::measure_sensitivity(rtn);
  const auto embedding = std::find_if(by_gptq.tensors.begin(), by_gptq.tensors.end(), [](auto& t) {
    return t.kind == QuantizableTensor::Kind::Embedding;
  });
  ASSERT_NE(embedding, by_gptq.tensors.end());
  ASSERT_EQ(embedding->candidates.size(), 1u);
  const double measured = embedding->candidates[0].kld_measured;
  const double plain =
      by_rtn.tensors[embedding - by_gptq.tensors.begin()].candidates[0].kld_measured;

  // The truth: quantize (GPTQ, same calibration) with a plan of the embedding alone, and the
  // written model's KLD against the unquantized one on the probe tokens (the first sequence).
  QuantizeOptions q = testing::embedded_quantize_options("plan_embedding", "", QuantMethod::GPTQ);
  q.model = untie.output;
  q.calib_tokens = o.calib_tokens;
  q.seq_len = o.seq_len;
  q.plan = QuantPlan{};
  q.plan->method = "gptq";
  q.plan->tensors[embedding->name] = {
      "q3_k", embedding->rows, embedding->cols, embedding->candidates[0].bytes, measured, 0};
  quantize_model(q);
  LoadedModel written = load_model(q.output), original = load_model(untie.output);
  uint64_t hash = 0;
  const std::vector<int32_t> probe =
      calibration_sequences(o.calib, *original.tokenizer, o.calib_tokens, o.seq_len, &hash).front();
  ThreadPool pool(2);
  Transformer tw(written.config, written.weights, pool, written.inference),
      tr(original.config, original.weights, pool, original.inference);
  const double truth = compare_models(tw, tr, probe, {o.seq_len - 1, 0}).kld_mean;
  EXPECT_NEAR(measured, truth, 1e-3 * truth);
  EXPECT_GT(std::abs(plain - truth), 5e-3 * truth);  // the test can tell the two encodings apart

  plan::Measurement older = by_gptq;  // version 2 encoded every row plainly: measured again
  older.version = 2;
  EXPECT_FALSE(plan::measurement_matches(older, o, by_gptq.calib_hash));
  older.version = 3;  // GGUF candidates before GPTQ's sub-block levels: measured again
  EXPECT_FALSE(plan::measurement_matches(older, o, by_gptq.calib_hash));
  EXPECT_TRUE(plan::measurement_matches(by_gptq, o, by_gptq.calib_hash));
}

}  // namespace
}  // namespace qforge
