// Safetensors reading (mmap, strictly validated) and writing (atomic).
// Format: u64 little-endian header length N, N bytes of JSON {name: {dtype, shape, data_offsets},
// "__metadata__": {str: str}}, then the data buffer; offsets are relative to the buffer start.
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "qforge/core/mapped_file.h"
#include "qforge/core/tensor.h"
#include "qforge/io/atomic_tensor_file.h"

namespace qforge {

// One .safetensors file, mapped. Opening validates everything up front: header length sane and
// inside the file, JSON well-formed, dtypes known, offsets in range, non-overlapping, and
// byte size == numel * dtype size. Every error names the file (and the tensor).
class SafetensorsFile {
 public:
  static std::shared_ptr<SafetensorsFile> open(const std::filesystem::path& path);
  // Same validation on an in-memory buffer (used by the fuzzer); `label` names it in errors.
  // The buffer must outlive the returned object's views.
  static std::shared_ptr<SafetensorsFile> parse(const std::byte* data, size_t size,
                                                const std::string& label);

  const std::vector<TensorView>& tensors() const { return tensors_; }
  // nullptr when absent.
  const TensorView* find(const std::string& name) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const std::filesystem::path& path() const { return path_; }
  // See MappedFile::release.
  bool release(const std::byte* p, size_t n) const { return file_.release(p, n); }

 private:
  SafetensorsFile() = default;
  MappedFile file_;
  std::filesystem::path path_;
  std::vector<TensorView> tensors_;
  std::map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
};

// All tensors of a model: a single file, or the shards listed by model.safetensors.index.json.
class TensorStore {
 public:
  // `path` is a .safetensors file, an index .json, or a directory containing either
  // (model.safetensors.index.json preferred, else model.safetensors, else the only *.safetensors).
  static TensorStore open(const std::filesystem::path& path);

  bool has(const std::string& name) const;
  // Throws Error "<dir>: missing tensor <name>" when absent.
  const TensorView& get(const std::string& name) const;
  const TensorView* find(const std::string& name) const;
  // Tensors in a stable order (file order, shard by shard).
  std::vector<const TensorView*> all() const;
  const std::vector<std::shared_ptr<SafetensorsFile>>& files() const { return files_; }
  const std::filesystem::path& source() const { return source_; }

 private:
  std::filesystem::path source_;
  std::vector<std::shared_ptr<SafetensorsFile>> files_;
  std::map<std::string, const TensorView*> by_name_;
};

// A tensor to write: raw little-endian bytes, dtype and shape.
struct TensorToWrite {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  std::vector<std::byte> bytes;
};

// Streams a safetensors file whose tensor list is known up front while the data arrives in any
// order (a quantizer produces it layer by layer): the header is written first, each tensor's bytes
// go straight to their offset, and commit() renames the temporary file into place once every
// tensor has been written. Only the header is held in memory. Destroyed without commit(), the
// temporary file is removed: no half-written output is ever visible under `path`.
class SafetensorsWriter {
 public:
  struct Entry {
    std::string name;
    DType dtype = DType::F32;
    std::vector<int64_t> shape;
  };
  SafetensorsWriter(std::filesystem::path path, const std::vector<Entry>& entries,
                    const std::map<std::string, std::string>& metadata = {});

  // The whole tensor at once, or in pieces at byte `offset` within it.
  void write(const std::string& name, const void* data, size_t bytes, size_t offset = 0);
  // Checks that every tensor was written in full, flushes and renames into place.
  void commit();

 private:
  AtomicTensorFile file_;
};

// Writes a safetensors file atomically (temp file + rename). Tensors are written in the order
// given, 8-byte aligned header. Throws Error naming the file on failure or on a size mismatch.
void write_safetensors(const std::filesystem::path& path, const std::vector<TensorToWrite>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace qforge
