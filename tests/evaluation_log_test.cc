// The evaluation log beside a quantized model: what is recorded reads back, a repeated
// measurement replaces its older entry, and a log that is not one is refused, not overwritten.
#include "qforge/eval/evaluation_log.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "qforge/core/error.h"
#include "qforge/core/mapped_file.h"

namespace qforge {
namespace {

namespace fs = std::filesystem;

fs::path fresh_dir(const std::string& name) {
  const fs::path d = fs::path(::testing::TempDir()) / name;
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

EvaluationEntry entry(int64_t tokens, double kld) {
  EvaluationEntry e;
  e.reference = "models/original";
  e.text = "valid.txt";
  e.tokens = tokens;
  e.ctx = 512;
  e.inference = "none";
  e.kld_mean = kld;
  e.kld_mean_stderr = kld / 100;
  e.ppl = 34.5;
  e.ref_ppl = 33.9;
  e.top1_agreement = 0.9;
  e.predicted_kld = 0.8 * kld;
  e.date = "2026-12-07T10:00:00Z";
  e.tool_version = "test";
  return e;
}

TEST(EvaluationLog, LivesInsideADirectoryAndBesideAFile) {
  const fs::path d = fresh_dir("evallog_paths");
  EXPECT_EQ(evaluation_log_path(d), d / "qforge-evaluations.json");
  EXPECT_EQ(evaluation_log_path(d / "m.gguf"), d / "m.gguf.qforge-evaluations.json");
  EXPECT_TRUE(read_evaluation_log(d).empty());
}

TEST(EvaluationLog, KeepsEachMeasurementOnceWithItsNewestResult) {
  const fs::path d = fresh_dir("evallog_entries");
  record_evaluation(d, entry(16383, 0.02));
  record_evaluation(d, entry(65535, 0.019));
  record_evaluation(d, entry(16383, 0.021));  // the same measurement again
  EvaluationEntry decode = entry(16383, 0.03);
  decode.batch = 1;  // another way of running the model is another measurement
  record_evaluation(d, decode);
  const std::vector<EvaluationEntry> log = read_evaluation_log(d);
  ASSERT_EQ(log.size(), 3u);
  EXPECT_EQ(log[0].tokens, 65535);
  EXPECT_EQ(log[1].tokens, 16383);
  EXPECT_EQ(log[1].kld_mean, 0.021);
  EXPECT_EQ(log[1].predicted_kld, 0.8 * 0.021);
  EXPECT_EQ(log[1].inference, "none");
  EXPECT_EQ(log[2].batch, 1);
  EXPECT_EQ(log[2].date, "2026-12-07T10:00:00Z");
}

TEST(EvaluationLog, RefusesALogThatIsNotOneAndLeavesItAlone) {
  const fs::path d = fresh_dir("evallog_bad");
  for (const std::string bad : {"{not json", "[]", R"({"evaluations": [{"text": "x"}]})",
                                R"({"evaluations": [{"reference": 3}]})"}) {
    std::ofstream(evaluation_log_path(d)) << bad;
    EXPECT_THROW(read_evaluation_log(d), Error) << bad;
    EXPECT_THROW(record_evaluation(d, entry(10, 0.1)), Error) << bad;
    EXPECT_EQ(read_text_file(evaluation_log_path(d)), bad);
  }
  try {
    read_evaluation_log(d);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("qforge-evaluations.json"), std::string::npos);
  }
}

TEST(EvaluationLog, DatesAreUtcIso8601) {
  const std::string now = utc_now_iso8601();
  ASSERT_EQ(now.size(), 20u);
  EXPECT_EQ(now[4], '-');
  EXPECT_EQ(now[10], 'T');
  EXPECT_EQ(now.back(), 'Z');
}

}  // namespace
}  // namespace qforge
