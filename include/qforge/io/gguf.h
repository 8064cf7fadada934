// GGUF (llama.cpp's model file, versions 2 and 3, little-endian): reading (mmap, strictly
// validated) and streaming writing (temp file + rename).
// Layout: "GGUF", u32 version, u64 tensor count, u64 metadata count, the metadata (key string,
// u32 value type, value), the tensor infos (name string, u32 n_dims, u64 ne[n_dims] innermost
// first, u32 ggml type, u64 offset), padding to `general.alignment` (default 32), then the data;
// tensor offsets are relative to the data start. Strings are u64 length + bytes (no NUL).
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "qforge/core/dtype.h"
#include "qforge/core/mapped_file.h"
#include "qforge/io/atomic_tensor_file.h"

namespace qforge::gguf {

inline constexpr uint64_t kDefaultAlignment = 32;

enum class ValueType : uint32_t {
  U8 = 0,
  I8 = 1,
  U16 = 2,
  I16 = 3,
  U32 = 4,
  I32 = 5,
  F32 = 6,
  Bool = 7,
  String = 8,
  Array = 9,
  U64 = 10,
  I64 = 11,
  F64 = 12,
};
std::string_view value_type_name(ValueType t);

// One ggml tensor type: its id in the file, block geometry, and how qforge holds it (a dtype for
// the float types, a registered format name for block types qforge encodes bit-exactly, neither
// for types the file format knows but qforge cannot use).
struct TypeTraits {
  uint32_t id = 0;
  std::string_view name;  // ggml's spelling: "f32", "q4_K", ...
  int64_t block = 1;      // weights per block along a row
  int64_t block_bytes = 4;
  std::optional<DType> dtype;  // F32, F16, BF16
  std::string_view format;     // qforge format name ("q4_k"), empty if none
};
// nullptr for an id ggml does not define.
const TypeTraits* find_type(uint32_t id);
// The ggml type of a dtype (F32/F16/BF16) or of a qforge format name; nullptr when none.
const TypeTraits* type_of_dtype(DType dtype);
const TypeTraits* type_of_format(std::string_view format);

// A metadata value, pointing into the mapped file.
struct Value {
  ValueType type = ValueType::U8;
  ValueType element_type = ValueType::U8;  // arrays only
  uint64_t count = 0;                      // arrays only
  const std::byte* raw = nullptr;          // scalars and numeric arrays: the little-endian bytes
  std::string_view string;                 // String
  std::vector<std::string_view> strings;   // arrays of strings
};

struct TensorInfo {
  std::string name;
  const TypeTraits* type = nullptr;
  std::vector<int64_t> ne;  // dimensions, innermost (contiguous) first, as ggml stores them
  uint64_t offset = 0;      // from the data start
  const std::byte* data = nullptr;
  uint64_t nbytes = 0;
  // Row-major shape (outermost first), the PyTorch / safetensors convention.
  std::vector<int64_t> shape() const { return {ne.rbegin(), ne.rend()}; }
};

// One .gguf file, mapped. Opening validates everything up front: magic, version, every count,
// string length, array length and dimension against the bytes that remain (with overflow checks),
// known value and tensor types, rows that are whole blocks, alignment, and tensor data inside the
// file without overlap. Every error is one line naming the file and the problem.
class File {
 public:
  static std::shared_ptr<File> open(const std::filesystem::path& path);
  // Same validation on an in-memory buffer (the fuzzer); `label` names it in errors. The buffer
  // must outlive the returned object.
  static std::shared_ptr<File> parse(const std::byte* data, size_t size, const std::string& label);

  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  const std::string& label() const { return label_; }
  const std::map<std::string, Value, std::less<>>& metadata() const { return metadata_; }
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const TensorInfo* find_tensor(std::string_view name) const;
  bool release(const std::byte* p, size_t n) const { return file_.release(p, n); }

  // Typed metadata access. The plain forms throw "<file>: missing metadata 'key'" or a type error
  // naming the key; `optional_*` return nullopt when the key is absent (and still check the type).
  const Value* find(std::string_view key) const;
  int64_t integer(std::string_view key) const;  // any integer type (u64 above 2^63 refused)
  std::optional<int64_t> optional_integer(std::string_view key) const;
  double number(std::string_view key) const;  // f32, f64 or an integer
  std::optional<double> optional_number(std::string_view key) const;
  std::string_view string(std::string_view key) const;
  std::optional<std::string_view> optional_string(std::string_view key) const;
  std::optional<bool> optional_bool(std::string_view key) const;
  // Arrays: of strings; of numbers (f32/f64 or integers) widened to double; of integers.
  const std::vector<std::string_view>& strings(std::string_view key) const;
  std::vector<double> numbers(std::string_view key) const;
  std::vector<int64_t> integers(std::string_view key) const;

 private:
  File() = default;
  const Value& get(std::string_view key) const;
  MappedFile file_;
  std::string label_;
  uint32_t version_ = 0;
  uint64_t alignment_ = kDefaultAlignment;
  std::map<std::string, Value, std::less<>> metadata_;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, size_t, std::less<>> tensor_index_;
};

// Metadata to write, serialized as it is added (in order; keys must be unique).
class MetadataWriter {
 public:
  void add_u32(std::string_view key, uint32_t v);
  void add_i32(std::string_view key, int32_t v);
  void add_f32(std::string_view key, float v);
  void add_bool(std::string_view key, bool v);
  void add_string(std::string_view key, std::string_view v);
  void add_strings(std::string_view key, const std::vector<std::string>& v);
  void add_f32s(std::string_view key, const std::vector<float>& v);
  void add_i32s(std::string_view key, const std::vector<int32_t>& v);
  uint64_t count() const { return count_; }
  const std::string& bytes() const { return bytes_; }
  bool has(std::string_view key) const { return keys_.contains(std::string(key)); }

 private:
  void key(std::string_view k, ValueType t);
  std::string bytes_;
  uint64_t count_ = 0;
  std::map<std::string, int> keys_;
};

// Streams a GGUF file whose tensor list is known up front (GGUF v3, data aligned to 32 bytes):
// the header, metadata and tensor infos are written first, each tensor's bytes go straight to
// their offset in any order, and commit() renames the temporary file into place once every tensor
// is complete. Destroyed without commit(), the temporary file is removed.
class Writer {
 public:
  struct Entry {
    std::string name;
    const TypeTraits* type = nullptr;
    std::vector<int64_t> ne;  // innermost first
  };
  Writer(std::filesystem::path path, const MetadataWriter& metadata,
         const std::vector<Entry>& tensors);

  // The whole tensor at once, or in pieces at byte `offset` within it.
  void write(const std::string& name, const void* data, size_t bytes, size_t offset = 0);
  // Checks that every tensor was written in full, flushes and renames into place.
  void commit();

 private:
  AtomicTensorFile file_;
};

// Bytes of a tensor of `type` with dimensions `ne` (innermost first); throws Error naming `what`
// if ne[0] is not a whole number of blocks or the size overflows.
uint64_t tensor_bytes(const TypeTraits& type, const std::vector<int64_t>& ne,
                      const std::string& what);

}  // namespace qforge::gguf
