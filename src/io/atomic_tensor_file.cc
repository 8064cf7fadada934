#include "qforge/io/atomic_tensor_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "qforge/core/error.h"

namespace qforge {

AtomicTensorFile::AtomicTensorFile(std::filesystem::path path, std::string_view header,
                                   std::map<std::string, Slot> slots, uint64_t data_bytes)
    : path_(std::move(path)), tmp_(path_.string() + ".tmp-qforge"), data_start_(header.size()) {
  for (const auto& [name, s] : slots) {
    check(s.begin <= data_bytes && s.size <= data_bytes - s.begin,
          "{}: tensor '{}' ends past the data ({} bytes)", path_.string(), name, data_bytes);
    slots_[name] = Progress{s, 0};
  }
  fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) fail("{}: cannot create: {}", tmp_.string(), std::strerror(errno));
  try {
    write_at(header.data(), header.size(), 0);
    if (::ftruncate(fd_, static_cast<off_t>(data_start_ + data_bytes)) != 0)
      fail("{}: cannot size to {} bytes: {}", tmp_.string(), data_start_ + data_bytes,
           std::strerror(errno));
  } catch (...) {
    discard();  // the destructor does not run for a constructor that throws
    throw;
  }
}

AtomicTensorFile::~AtomicTensorFile() {
  discard();
}

void AtomicTensorFile::discard() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  if (committed_) return;
  std::error_code ec;
  std::filesystem::remove(tmp_, ec);
}

void AtomicTensorFile::write_at(const void* data, size_t bytes, uint64_t pos) {
  const char* p = static_cast<const char*>(data);
  while (bytes > 0) {
    const ssize_t n = ::pwrite(fd_, p, std::min<size_t>(bytes, 1u << 30), static_cast<off_t>(pos));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) fail("{}: write failed: {}", tmp_.string(), std::strerror(errno));
    p += n;
    pos += static_cast<uint64_t>(n);
    bytes -= static_cast<size_t>(n);
  }
}

void AtomicTensorFile::write(const std::string& name, const void* data, size_t bytes,
                             size_t offset) {
  check(fd_ >= 0, "{}: written after commit", path_.string());
  auto it = slots_.find(name);
  check(it != slots_.end(), "{}: tensor '{}' is not in the header", path_.string(), name);
  Progress& p = it->second;
  check(offset <= p.slot.size && bytes <= p.slot.size - offset,
        "{}: tensor '{}': writing {} bytes at {} overflows its {} bytes", path_.string(), name,
        bytes, offset, p.slot.size);
  write_at(data, bytes, data_start_ + p.slot.begin + offset);
  p.written += bytes;
}

void AtomicTensorFile::commit() {
  check(!committed_, "{}: already committed", path_.string());
  check(fd_ >= 0, "{}: a failed commit cannot be retried", path_.string());
  try {
    for (const auto& [name, p] : slots_)
      check(p.written == p.slot.size, "{}: tensor '{}': {} of {} bytes written", path_.string(),
            name, p.written, p.slot.size);
    if (::fsync(fd_) != 0) fail("{}: cannot flush: {}", tmp_.string(), std::strerror(errno));
    ::close(fd_);
    fd_ = -1;
    std::error_code ec;
    std::filesystem::rename(tmp_, path_, ec);
    if (ec) fail("{}: cannot rename into place: {}", path_.string(), ec.message());
    committed_ = true;
  } catch (...) {
    discard();  // a failed commit leaves nothing behind
    throw;
  }
}

}  // namespace qforge
