// Read-only memory mapping of a whole file (RAII, movable). Weights are never copied into the heap:
// tensors are views into these mappings, so the OS pages them in on demand and shares them.
#pragma once

#include <cstddef>
#include <filesystem>
#include <functional>
#include <ostream>
#include <span>
#include <string>

namespace qforge {

class MappedFile {
 public:
  MappedFile() = default;
  // Throws Error naming the file if it cannot be opened or mapped. Empty files map to size 0.
  explicit MappedFile(const std::filesystem::path& path);
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile();

  const std::byte* data() const { return data_; }
  size_t size() const { return size_; }
  std::span<const std::byte> bytes() const { return {data_, size_}; }
  const std::filesystem::path& path() const { return path_; }
  // Drops this process's resident pages of [p, p + n) (whole pages inside the range only); they
  // are re-read from the file if touched again. Streaming passes call it when done with a layer,
  // so mapped weights do not pile up in RSS. False (and nothing done) if the range is not inside
  // this mapping.
  bool release(const std::byte* p, size_t n) const;

 private:
  void reset();
  std::filesystem::path path_;
  const std::byte* data_ = nullptr;
  size_t size_ = 0;
};

// Reads a whole (small) text file; throws Error naming the file on failure.
std::string read_text_file(const std::filesystem::path& path);

// Writes `contents` to `path` atomically: to a temporary sibling, then rename. No half-written file
// is ever visible under `path`.
void write_file_atomic(const std::filesystem::path& path, std::string_view contents);
// The same, streaming: `write` fills the temporary file.
void write_file_atomic(const std::filesystem::path& path,
                       const std::function<void(std::ostream&)>& write);

}  // namespace qforge
