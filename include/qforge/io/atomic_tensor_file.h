// The commit logic every tensor-file writer shares (safetensors, GGUF): a file of named byte
// ranges after a header, written in any order into "<path>.tmp-qforge" and renamed into place by
// commit() once every range is complete (after an fsync). Destroyed without commit(), or when
// commit() fails, the temporary file is removed: nothing half-written is ever left under `path`
// or beside it.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>

namespace qforge {

class AtomicTensorFile {
 public:
  // Where a tensor's bytes go, relative to the end of the header.
  struct Slot {
    uint64_t begin = 0, size = 0;
  };
  // Creates the temporary file, writes `header` at its start and sizes it to the header plus
  // `data_bytes` up front (a full disk fails here, before any work is spent).
  AtomicTensorFile(std::filesystem::path path, std::string_view header,
                   std::map<std::string, Slot> slots, uint64_t data_bytes);
  ~AtomicTensorFile();
  AtomicTensorFile(const AtomicTensorFile&) = delete;
  AtomicTensorFile& operator=(const AtomicTensorFile&) = delete;

  // The whole tensor at once, or in pieces at byte `offset` within it.
  void write(const std::string& name, const void* data, size_t bytes, size_t offset = 0);
  // Checks that every tensor was written in full, flushes and renames into place.
  void commit();

  const std::filesystem::path& path() const { return path_; }

 private:
  struct Progress {
    Slot slot;
    uint64_t written = 0;
  };
  void write_at(const void* data, size_t bytes, uint64_t pos);
  void discard();  // closes the temporary file and, unless committed, removes it
  std::filesystem::path path_, tmp_;
  int fd_ = -1;
  bool committed_ = false;
  uint64_t data_start_ = 0;
  std::map<std::string, Progress> slots_;
};

}  // namespace qforge
