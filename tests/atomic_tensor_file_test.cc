// io/atomic_tensor_file: the temp file + fsync + rename commit that the safetensors and GGUF
// writers share. A file appears under its path only complete; every failure leaves neither the
// file nor its temporary behind.
#include "qforge/io/atomic_tensor_file.h"

#include <sys/resource.h>

#include <csignal>
#include <fstream>
#include <iterator>

#include "qforge/core/error.h"
#include "qforge/io/gguf.h"
#include "qforge/io/safetensors.h"
#include "test_util.h"

namespace qforge {
namespace {

namespace fs = std::filesystem;

fs::path fresh_path(const std::string& name) {
  const fs::path p = fs::path(::testing::TempDir()) / ("qforge_atomic_" + name);
  fs::remove(p);
  fs::remove(p.string() + ".tmp-qforge");
  return p;
}

void expect_nothing_left(const fs::path& p) {
  EXPECT_FALSE(fs::exists(p)) << p;
  EXPECT_FALSE(fs::exists(p.string() + ".tmp-qforge")) << p;
}

std::string contents(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// While alive, files can grow to `bytes` at most: writing past it fails with EFBIG (SIGXFSZ
// ignored), a write failure that needs neither root nor a full disk.
class FileSizeLimit {
 public:
  explicit FileSizeLimit(rlim_t bytes) {
    getrlimit(RLIMIT_FSIZE, &saved_);
    old_handler_ = std::signal(SIGXFSZ, SIG_IGN);
    rlimit l = saved_;
    l.rlim_cur = bytes;
    setrlimit(RLIMIT_FSIZE, &l);
  }
  ~FileSizeLimit() {
    setrlimit(RLIMIT_FSIZE, &saved_);
    std::signal(SIGXFSZ, old_handler_);
  }

 private:
  rlimit saved_{};
  void (*old_handler_)(int) = nullptr;
};

TEST(AtomicTensorFile, CommitPlacesTheHeaderAndEachTensorAtItsSlot) {
  const fs::path p = fresh_path("ok.bin");
  {
    AtomicTensorFile f(p, "HEAD", {{"a", {0, 3}}, {"b", {4, 2}}}, 8);
    f.write("b", "xy", 2);
    f.write("a", "c", 1, 2);  // in pieces, in any order
    f.write("a", "ab", 2);
    EXPECT_FALSE(fs::exists(p));  // nothing visible before commit
    f.commit();
    EXPECT_THROW(f.commit(), Error);
  }
  EXPECT_EQ(contents(p), std::string("HEADabc\0xy\0\0", 12));
  EXPECT_FALSE(fs::exists(p.string() + ".tmp-qforge"));
}

TEST(AtomicTensorFile, AFailedCommitLeavesNoFileAndNoTempFileAtOnce) {
  const fs::path p = fresh_path("incomplete.bin");
  AtomicTensorFile f(p, "H", {{"a", {0, 4}}, {"b", {4, 4}}}, 8);
  f.write("a", "abcd", 4);
  try {
    f.commit();
    ADD_FAILURE() << "commit must refuse an incomplete file";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("tensor 'b': 0 of 4 bytes written"), std::string::npos)
        << e.what();
  }
  expect_nothing_left(p);  // before the destructor runs
  EXPECT_THROW(f.write("b", "abcd", 4), Error);
  EXPECT_THROW(f.commit(), Error);
}

TEST(AtomicTensorFile, WritesOutsideASlotAreRefusedNamingTheTensor) {
  const fs::path p = fresh_path("overflow.bin");
  {
    AtomicTensorFile f(p, "", {{"a", {0, 4}}}, 4);
    EXPECT_THROW(f.write("zzz", "a", 1), Error);
    try {
      f.write("a", "abcde", 5);
      ADD_FAILURE() << "an overflowing write must be refused";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("tensor 'a': writing 5 bytes at 0 overflows its 4"),
                std::string::npos)
          << e.what();
    }
    EXPECT_THROW(AtomicTensorFile(fresh_path("bad_slot.bin"), "", {{"a", {2, 4}}}, 4), Error);
  }
  expect_nothing_left(p);
  expect_nothing_left(fresh_path("bad_slot.bin"));
}

TEST(AtomicTensorFile, AWriteFailureInTheFileSystemLeavesNothing) {
  const fs::path p = fresh_path("efbig.bin");
  {
    const FileSizeLimit limit(1024);
    // Sizing the file up front fails: the constructor throws and removes its temporary.
    try {
      AtomicTensorFile f(p, "H", {{"a", {0, 4096}}}, 4096);
      ADD_FAILURE() << "sizing past the limit must fail";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("cannot size"), std::string::npos) << e.what();
    }
    expect_nothing_left(p);
    // Both writers commit through it.
    EXPECT_THROW(SafetensorsWriter(p, {{"a", DType::F32, {1024}}}), Error);
    expect_nothing_left(p);
    EXPECT_THROW(gguf::Writer(p, {}, {{"a", gguf::type_of_dtype(DType::F32), {1024}}}), Error);
    expect_nothing_left(p);
  }
  // A folder that does not exist: nothing to create.
  const fs::path missing = fs::path(::testing::TempDir()) / "qforge_atomic_no_such_dir" / "x.bin";
  try {
    AtomicTensorFile f(missing, "H", {}, 0);
    ADD_FAILURE() << "creating in a missing folder must fail";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("x.bin.tmp-qforge: cannot create"), std::string::npos)
        << e.what();
  }
}

TEST(AtomicTensorFile, AbandonedWritersOfBothFormatsLeaveNothing) {
  const fs::path st = fresh_path("abandoned.safetensors"), gg = fresh_path("abandoned.gguf");
  {
    SafetensorsWriter w(st, {{"a", DType::F32, {2}}});
    const float v[2] = {1, 2};
    w.write("a", v, sizeof v);  // complete, but never committed
    gguf::Writer g(gg, {}, {{"a", gguf::type_of_dtype(DType::F32), {2}}});
    g.write("a", v, sizeof v);
    EXPECT_TRUE(fs::exists(st.string() + ".tmp-qforge"));
    EXPECT_TRUE(fs::exists(gg.string() + ".tmp-qforge"));
  }
  expect_nothing_left(st);
  expect_nothing_left(gg);
}

}  // namespace
}  // namespace qforge
