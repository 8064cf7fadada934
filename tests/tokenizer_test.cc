// Tokenizers against the reference tokenizer's ids (tokenizer_reference.json beside each model:
// the Hugging Face tokenizers library's output), round trips, and bad input.
#include "qforge/io/tokenizer.h"

#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "io/pretokenize.h"
#include "qforge/core/error.h"
#include "qforge/core/mapped_file.h"
#include "test_util.h"

namespace qforge {
namespace {

namespace fs = std::filesystem;

struct Case {
  std::string text;
  std::vector<int32_t> ids;
};

std::vector<Case> reference_cases(const fs::path& model_dir) {
  const auto j = nlohmann::json::parse(read_text_file(model_dir / "tokenizer_reference.json"));
  std::vector<Case> cases;
  for (const auto& c : j.at("cases"))
    cases.push_back({c.at("text").get<std::string>(), c.at("ids").get<std::vector<int32_t>>()});
  return cases;
}

void expect_reference_ids(const Tokenizer& tok, const fs::path& model_dir,
                          bool skip_whitespace_runs = false) {
  const auto cases = reference_cases(model_dir);
  ASSERT_FALSE(cases.empty());
  for (const Case& c : cases) {
    if (skip_whitespace_runs && (c.text.find("  ") != std::string::npos || c.text[0] == ' '))
      continue;
    EXPECT_EQ(tok.encode(c.text, false), c.ids) << tok.describe() << " text: " << c.text;
    EXPECT_EQ(tok.decode(c.ids), c.text) << tok.describe();
  }
}

// Random strings mixing ASCII words, punctuation, digits, runs of spaces, tabs, newlines,
// accented letters, CJK and emoji.
std::string random_text(std::mt19937& rng) {
  static const char* pieces[] = {
      "the",   "The",      " ",    "  ", "\t", "\n",  "\n\n", "\r\n", "'s",    "'LL",
      "don't", "42",       "3.14", "!",  "?!", "...", "(x)",  "é",    "naïve", "日本語",
      "🙂",  "👍🏽", "Ω",    "–",  "\"", "#",   "über", "  x",  "a\tb"};
  std::uniform_int_distribution<size_t> pick(0, std::size(pieces) - 1), len(0, 12);
  std::string s;
  for (size_t n = len(rng), i = 0; i < n; ++i) s += pieces[pick(rng)];
  return s;
}

void expect_round_trips(const Tokenizer& tok, bool strips_one_leading_space = false) {
  std::mt19937 rng(7);
  for (int i = 0; i < 300; ++i) {
    const std::string s = random_text(rng);
    EXPECT_EQ(tok.decode(tok.encode(s, false)), s) << tok.describe() << " on [" << s << "]";
  }
  (void)strips_one_leading_space;
}

TEST(HfTokenizer, EmbeddedByteLevelBpeMatchesReference) {
  // Always runs: the embedded model ships its tokenizer and reference ids.
  const auto tok = load_tokenizer(testing::embedded_model_dir());
  EXPECT_FALSE(tok->adds_bos());
  expect_reference_ids(*tok, testing::embedded_model_dir());
  expect_round_trips(*tok);
}

TEST(HfTokenizer, QwenByteLevelBpeMatchesReference) {
  QFORGE_REQUIRE_SHARED(shared);
  const auto dir = shared / "models" / "qwen-bpe-31m";
  const auto tok = load_tokenizer(dir / "tokenizer.json");
  expect_reference_ids(*tok, dir);
  expect_round_trips(*tok);
}

TEST(HfTokenizer, LlamaSentencePieceStyleBpeMatchesReferenceOutsideWhitespaceRuns) {
  // The reference ids come from SentencePiece, which splits runs of spaces into words before BPE;
  // a converted tokenizer.json applies BPE merges across them ("▁▁" has merge rank 0), as the
  // Hugging Face tokenizers library does. Directories therefore prefer tokenizer.model.
  QFORGE_REQUIRE_SHARED(shared);
  const auto dir = shared / "models" / "llama-sp-58m";
  const auto tok = load_tokenizer(dir / "tokenizer.json");
  EXPECT_TRUE(tok->adds_bos());
  EXPECT_EQ(tok->bos_id(), 1);
  EXPECT_EQ(tok->eos_id(), 2);
  expect_reference_ids(*tok, dir, /*skip_whitespace_runs=*/true);
}

TEST(LoadTokenizer, ModelDirectoryPrefersSentencePieceAndMatchesReference) {
  QFORGE_REQUIRE_SHARED(shared);
  const auto dir = shared / "models" / "llama-sp-58m";
  const auto tok = load_tokenizer(dir);
  EXPECT_NE(tok->describe().find("sentencepiece"), std::string::npos);
  expect_reference_ids(*tok, dir);
}

TEST(SentencePiece, LlamaTokenizerModelMatchesReference) {
  QFORGE_REQUIRE_SHARED(shared);
  const auto dir = shared / "models" / "llama-sp-58m";
  const auto tok = load_tokenizer(dir / "tokenizer.model");
  EXPECT_EQ(tok->bos_id(), 1);
  expect_reference_ids(*tok, dir);
}

TEST(SentencePiece, HfAndSentencePieceAgreeOnRandomTextWithSingleSpaces) {
  QFORGE_REQUIRE_SHARED(shared);
  const auto dir = shared / "models" / "llama-sp-58m";
  const auto hf = load_tokenizer(dir / "tokenizer.json");
  const auto sp = load_tokenizer(dir / "tokenizer.model");
  std::mt19937 rng(11);
  for (int i = 0; i < 300; ++i) {
    std::string s = random_text(rng);
    while (s.find("  ") != std::string::npos) s.erase(s.find("  "), 1);
    if (!s.empty() && s[0] == ' ') s.erase(0, 1);
    EXPECT_EQ(hf->encode(s, true), sp->encode(s, true)) << "[" << s << "]";
  }
}

TEST(Llama2cTokenizer, EncodesLikeRunC) {
  QFORGE_REQUIRE_SHARED(shared);
  const auto tok = load_tokenizer(shared / "models" / "stories260K" / "tok512.bin");
  EXPECT_EQ(tok->vocab_size(), 512);
  const auto ids = tok->encode("Once upon a time", true);
  ASSERT_GE(ids.size(), 3u);
  EXPECT_EQ(ids[0], 1);  // BOS
  EXPECT_EQ(tok->decode(ids), "Once upon a time");
  std::mt19937 rng(3);
  for (int i = 0; i < 200; ++i) {
    const std::string s = random_text(rng);
    if (s.empty()) continue;
    EXPECT_EQ(tok->decode(tok->encode(s, true)), s) << "[" << s << "]";
  }
}

TEST(HfTokenizer, EncodesALargeTextQuickly) {
  QFORGE_REQUIRE_SHARED(shared);
  if (testing::sanitized()) GTEST_SKIP() << "timing is meaningless under sanitizers";
  const std::string text = read_text_file(shared / "data" / "valid.txt");
  for (const char* model : {"qwen-bpe-31m", "llama-sp-58m"}) {
    const auto tok = load_tokenizer(shared / "models" / model / "tokenizer.json");
    const auto t0 = std::chrono::steady_clock::now();
    const auto ids = tok->encode(text, tok->adds_bos());
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("%s: %zu tokens in %.2f s\n", model, ids.size(), s);
    EXPECT_FALSE(ids.empty());
  }
}

// --- bad input: one-line errors naming the file and the problem

void expect_error(const std::string& json, const std::string& needle) {
  try {
    parse_hf_tokenizer(json, "bad/tokenizer.json");
    ADD_FAILURE() << "no error for " << json;
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("bad/tokenizer.json"), std::string::npos) << msg;
    EXPECT_NE(msg.find(needle), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  }
}

TEST(HfTokenizer, RejectsBadInputWithClearErrors) {
  expect_error("{\"model\": ", "malformed JSON");
  expect_error("[]", "not a JSON object");
  expect_error("{}", "missing 'model'");
  expect_error(R"({"model": {"type": "WordPiece", "vocab": {}}})",
               "unsupported tokenizer model type 'WordPiece'");
  expect_error(R"({"model": {"type": "BPE"}})", "missing 'model.vocab'");
  expect_error(
      R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a b"]}, "pre_tokenizer": {"type": "Metaspace"}})",
      "missing from the vocab");
  expect_error(
      R"({"model": {"type": "BPE", "vocab": {"a": 0}}, "pre_tokenizer": {"type": "Whitespace"}})",
      "unsupported pre-tokenizer 'Whitespace'");
  expect_error(R"({"model": {"type": "BPE", "vocab": {"a": "zero"}}})", "invalid id");
}

// What a .gguf carries (tokenizer.ggml.*) must rebuild the same tokenizer.
TEST(GgufVocabulary, RebuiltTokenizersMatchReference) {
  const auto embedded = load_tokenizer(testing::embedded_model_dir());
  const Vocabulary v = embedded->vocabulary();
  EXPECT_EQ(v.model, "gpt2");
  EXPECT_EQ(v.pre, "qwen2");
  EXPECT_EQ(v.merges.size(), 16384u - 256u - 1u);  // every token but the bytes and <|endoftext|>
  EXPECT_EQ(v.types[0], Vocabulary::Control);      // <|endoftext|>
  const auto rebuilt = make_tokenizer(v, "embedded.gguf");
  expect_reference_ids(*rebuilt, testing::embedded_model_dir());
  expect_round_trips(*rebuilt);
  EXPECT_EQ(rebuilt->adds_bos(), embedded->adds_bos());
  EXPECT_EQ(rebuilt->eos_id(), embedded->eos_id());
}

TEST(GgufVocabulary, RebuiltSharedTokenizersMatchReference) {
  QFORGE_REQUIRE_SHARED(shared);
  const auto llama = shared / "models" / "llama-sp-58m", qwen = shared / "models" / "qwen-bpe-31m";
  const Vocabulary sp = load_tokenizer(llama / "tokenizer.model")->vocabulary();
  EXPECT_EQ(sp.model, "llama");
  EXPECT_EQ(sp.types[0], Vocabulary::Unknown);
  EXPECT_EQ(sp.types[3], Vocabulary::Byte);  // <0x00>
  const auto sp_rebuilt = make_tokenizer(sp, "llama.gguf");
  EXPECT_EQ(sp_rebuilt->bos_id(), 1);
  EXPECT_EQ(sp_rebuilt->eos_id(), 2);
  expect_reference_ids(*sp_rebuilt, llama);  // whitespace runs included: SentencePiece itself
  expect_round_trips(*sp_rebuilt);
  const auto bpe_rebuilt =
      make_tokenizer(load_tokenizer(qwen / "tokenizer.json")->vocabulary(), "qwen.gguf");
  expect_reference_ids(*bpe_rebuilt, qwen);
}

TEST(GgufVocabulary, PreTokenizersByTheirGgufNames) {
  auto pieces = [](const char* name, std::string_view text) {
    const auto p = pretokenize(*pretokenizer_regex_from_gguf_name(name), text);
    return std::vector<std::string>(p.begin(), p.end());
  };
  using V = std::vector<std::string>;
  EXPECT_EQ(pieces("gpt-2", "ab 12345"), (V{"ab", " 12345"}));
  EXPECT_EQ(pieces("qwen2", "ab 12345"), (V{"ab", " ", "1", "2", "3", "4", "5"}));
  EXPECT_EQ(pieces("llama-bpe", "ab 12345"), (V{"ab", " ", "123", "45"}));
  EXPECT_EQ(pieces("smollm", "ab12 cd 7"), (V{"ab", "1", "2", " cd", " ", "7"}));
  EXPECT_FALSE(pretokenizer_regex_from_gguf_name("deepseek-llm").has_value());
}

TEST(GgufVocabulary, IncompleteVocabulariesAreRefusedByName) {
  Vocabulary v = load_tokenizer(testing::embedded_model_dir())->vocabulary();
  auto error = [](const Vocabulary& bad) {
    try {
      make_tokenizer(bad, "x.gguf");
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  Vocabulary no_merges = v;
  no_merges.merges.clear();
  EXPECT_EQ(error(no_merges), "x.gguf: a BPE (gpt2) tokenizer without merges");
  Vocabulary unknown_pre = v;
  unknown_pre.pre = "deepseek-llm";
  EXPECT_NE(error(unknown_pre).find("unsupported pre-tokenizer 'deepseek-llm'"), std::string::npos);
  Vocabulary unknown_model = v;
  unknown_model.model = "rwkv";
  EXPECT_NE(error(unknown_model).find("unsupported tokenizer model 'rwkv'"), std::string::npos);
  Vocabulary bad_bos = v;
  bad_bos.bos = 1 << 20;
  EXPECT_NE(error(bad_bos).find("special token id 1048576"), std::string::npos);
  Vocabulary bad_merge = v;
  bad_merge.merges[5] = "nosuchtoken x";
  EXPECT_NE(error(bad_merge).find("names a token missing from the vocab"), std::string::npos);
}

TEST(LoadTokenizer, DirectoryWithoutTokenizerIsRefused) {
  const fs::path dir = fs::path(::testing::TempDir()) / "qforge_no_tokenizer";
  fs::create_directories(dir);
  try {
    load_tokenizer(dir);
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no tokenizer found"), std::string::npos);
  }
}

}  // namespace
}  // namespace qforge
