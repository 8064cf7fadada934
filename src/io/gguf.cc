#include "qforge/io/gguf.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <limits>

#include "qforge/core/error.h"
#include "qforge/io/atomic_tensor_file.h"

namespace qforge::gguf {
namespace {

// ggml's type table (ggml/include/ggml.h, ggml.c type_traits): ids, block sizes and bytes.
// Removed ids (4, 5, 31-33, 36-38) are left out, so a file using them is refused as unknown.
constexpr std::array<TypeTraits, 30> kTypes{{
    {0, "f32", 1, 4, DType::F32, ""},
    {1, "f16", 1, 2, DType::F16, ""},
    {2, "q4_0", 32, 18, std::nullopt, "q4_0"},
    {3, "q4_1", 32, 20, std::nullopt, "q4_1"},
    {6, "q5_0", 32, 22, std::nullopt, "q5_0"},
    {7, "q5_1", 32, 24, std::nullopt, "q5_1"},
    {8, "q8_0", 32, 34, std::nullopt, "q8_0"},
    {9, "q8_1", 32, 36, std::nullopt, ""},
    {10, "q2_K", 256, 84, std::nullopt, "q2_k"},
    {11, "q3_K", 256, 110, std::nullopt, "q3_k"},
    {12, "q4_K", 256, 144, std::nullopt, "q4_k"},
    {13, "q5_K", 256, 176, std::nullopt, "q5_k"},
    {14, "q6_K", 256, 210, std::nullopt, "q6_k"},
    {15, "q8_K", 256, 292, std::nullopt, ""},
    {16, "iq2_xxs", 256, 66, std::nullopt, ""},
    {17, "iq2_xs", 256, 74, std::nullopt, ""},
    {18, "iq3_xxs", 256, 98, std::nullopt, ""},
    {19, "iq1_s", 256, 50, std::nullopt, ""},
    {20, "iq4_nl", 32, 18, std::nullopt, "iq4_nl"},
    {21, "iq3_s", 256, 110, std::nullopt, ""},
    {22, "iq2_s", 256, 82, std::nullopt, ""},
    {23, "iq4_xs", 256, 136, std::nullopt, "iq4_xs"},
    {24, "i8", 1, 1, std::nullopt, ""},
    {25, "i16", 1, 2, std::nullopt, ""},
    {26, "i32", 1, 4, std::nullopt, ""},
    {27, "i64", 1, 8, std::nullopt, ""},
    {28, "f64", 1, 8, std::nullopt, ""},
    {29, "iq1_m", 256, 56, std::nullopt, ""},
    {30, "bf16", 1, 2, DType::BF16, ""},
    {39, "mxfp4", 32, 17, std::nullopt, ""},
}};

constexpr std::array<std::string_view, 13> kValueTypeNames{
    "u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "string", "array", "u64", "i64", "f64"};

// Bytes of a fixed-size value type; 0 for string and array.
size_t scalar_size(ValueType t) {
  switch (t) {
    case ValueType::U8:
    case ValueType::I8:
    case ValueType::Bool:
      return 1;
    case ValueType::U16:
    case ValueType::I16:
      return 2;
    case ValueType::U32:
    case ValueType::I32:
    case ValueType::F32:
      return 4;
    case ValueType::U64:
    case ValueType::I64:
    case ValueType::F64:
      return 8;
    default:
      return 0;
  }
}

bool is_integer(ValueType t) {
  return t != ValueType::F32 && t != ValueType::F64 && t != ValueType::Bool && scalar_size(t) > 0;
}

template <typename T>
T load(const std::byte* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// Reads a fixed-size scalar at p as int64 (integers) or double (floats).
int64_t load_integer(ValueType t, const std::byte* p, const std::string& what) {
  switch (t) {
    case ValueType::U8:
      return load<uint8_t>(p);
    case ValueType::I8:
      return load<int8_t>(p);
    case ValueType::U16:
      return load<uint16_t>(p);
    case ValueType::I16:
      return load<int16_t>(p);
    case ValueType::U32:
      return load<uint32_t>(p);
    case ValueType::I32:
      return load<int32_t>(p);
    case ValueType::I64:
      return load<int64_t>(p);
    case ValueType::U64: {
      const auto v = load<uint64_t>(p);
      check(v <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()),
            "{}: value {} is too large", what, v);
      return static_cast<int64_t>(v);
    }
    default:
      fail("{}: is {}, expected an integer", what, value_type_name(t));
  }
}

double load_number(ValueType t, const std::byte* p, const std::string& what) {
  if (t == ValueType::F32) return load<float>(p);
  if (t == ValueType::F64) return load<double>(p);
  return static_cast<double>(load_integer(t, p, what));
}

// A bounds-checked cursor over the header. Every read names the file and what it was reading.
class Cursor {
 public:
  Cursor(const std::byte* data, size_t size, const std::string& label)
      : data_(data), size_(size), label_(label) {}
  size_t pos() const { return pos_; }
  size_t remaining() const { return size_ - pos_; }
  const std::byte* here() const { return data_ + pos_; }

  const std::byte* take(uint64_t n, std::string_view what) {
    check(n <= remaining(), "{}: truncated: {} needs {} bytes at offset {} but {} remain", label_,
          what, n, pos_, remaining());
    const std::byte* p = here();
    pos_ += n;
    return p;
  }
  template <typename T>
  T read(std::string_view what) {
    return load<T>(take(sizeof(T), what));
  }
  std::string_view string(std::string_view what) {
    const auto n = read<uint64_t>(what);
    check(n <= remaining(), "{}: {} has length {} but only {} bytes remain", label_, what, n,
          remaining());
    return {reinterpret_cast<const char*>(take(n, what)), n};
  }
  // A count of items each at least `min_item_bytes` long must fit in what remains.
  uint64_t count(std::string_view what, uint64_t min_item_bytes) {
    const auto n = read<uint64_t>(what);
    check(n <= remaining() / min_item_bytes,
          "{}: {} is {}, more than the {} remaining bytes can hold (truncated or corrupt file)",
          label_, what, n, remaining());
    return n;
  }

 private:
  const std::byte* data_;
  size_t size_;
  size_t pos_ = 0;
  const std::string& label_;
};

ValueType read_value_type(Cursor& c, const std::string& label, const std::string& key) {
  const auto t = c.read<uint32_t>("a value type");
  check(t < kValueTypeNames.size(), "{}: metadata '{}' has unknown value type {}", label, key, t);
  return static_cast<ValueType>(t);
}

Value read_value(Cursor& c, const std::string& label, const std::string& key) {
  Value v;
  v.type = read_value_type(c, label, key);
  const std::string what = "metadata '" + key + "'";
  if (v.type == ValueType::String) {
    v.string = c.string(what);
  } else if (v.type == ValueType::Array) {
    v.element_type = read_value_type(c, label, key);
    check(v.element_type != ValueType::Array, "{}: {} is an array of arrays (not supported)", label,
          what);
    if (v.element_type == ValueType::String) {
      v.count = c.count(what + " (array length)", 8);
      v.strings.reserve(v.count);
      for (uint64_t i = 0; i < v.count; ++i) v.strings.push_back(c.string(what));
    } else {
      const size_t size = scalar_size(v.element_type);
      v.count = c.count(what + " (array length)", size);
      v.raw = c.take(v.count * size, what);
    }
  } else {
    v.raw = c.take(scalar_size(v.type), what);
  }
  return v;
}

uint64_t align_up(uint64_t x, uint64_t alignment) {
  return x + (alignment - x % alignment) % alignment;
}

TensorInfo read_tensor_info(Cursor& c, const std::string& label, size_t index) {
  TensorInfo t;
  t.name = std::string(c.string(fmt::format("the name of tensor #{}", index)));
  const std::string what = fmt::format("tensor '{}'", t.name);
  const auto n_dims = c.read<uint32_t>(what);
  check(n_dims >= 1 && n_dims <= 4, "{}: {} has {} dimensions (1 to 4 allowed)", label, what,
        n_dims);
  for (uint32_t d = 0; d < n_dims; ++d) {
    const auto ne = c.read<uint64_t>(what);
    check(ne <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()),
          "{}: {} has dimension {} = {}, too large", label, what, d, ne);
    t.ne.push_back(static_cast<int64_t>(ne));
  }
  const auto type = c.read<uint32_t>(what);
  t.type = find_type(type);
  check(t.type != nullptr, "{}: {} has unknown tensor type {}", label, what, type);
  t.offset = c.read<uint64_t>(what);
  t.nbytes = tensor_bytes(*t.type, t.ne, label + ": " + what);
  return t;
}

// Tensor data must lie inside the file, aligned, without two tensors sharing bytes.
void place_tensors(std::vector<TensorInfo>& tensors, const std::byte* data, size_t size,
                   uint64_t data_start, uint64_t alignment, const std::string& label) {
  check(data_start <= size || tensors.empty(),
        "{}: truncated: the tensor data would start at offset {} but the file has {} bytes", label,
        data_start, size);
  const uint64_t data_size = data_start <= size ? size - data_start : 0;
  for (TensorInfo& t : tensors) {
    check(t.offset % alignment == 0, "{}: tensor '{}' has offset {}, not a multiple of {}", label,
          t.name, t.offset, alignment);
    check(t.offset <= data_size && t.nbytes <= data_size - t.offset,
          "{}: tensor '{}' ({} bytes at data offset {}) extends past the end of the file", label,
          t.name, t.nbytes, t.offset);
    t.data = data + data_start + t.offset;
  }
  std::vector<const TensorInfo*> order;
  for (const TensorInfo& t : tensors) order.push_back(&t);
  std::sort(order.begin(), order.end(),
            [](const TensorInfo* a, const TensorInfo* b) { return a->offset < b->offset; });
  for (size_t i = 1; i < order.size(); ++i)
    check(order[i - 1]->offset + order[i - 1]->nbytes <= order[i]->offset,
          "{}: tensors '{}' and '{}' overlap", label, order[i - 1]->name, order[i]->name);
}

}  // namespace

std::string_view value_type_name(ValueType t) {
  const auto i = static_cast<uint32_t>(t);
  return i < kValueTypeNames.size() ? kValueTypeNames[i] : "unknown";
}

const TypeTraits* find_type(uint32_t id) {
  for (const TypeTraits& t : kTypes)
    if (t.id == id) return &t;
  return nullptr;
}

const TypeTraits* type_of_dtype(DType dtype) {
  for (const TypeTraits& t : kTypes)
    if (t.dtype == dtype) return &t;
  return nullptr;
}

const TypeTraits* type_of_format(std::string_view format) {
  for (const TypeTraits& t : kTypes)
    if (!t.format.empty() && t.format == format) return &t;
  return nullptr;
}

uint64_t tensor_bytes(const TypeTraits& type, const std::vector<int64_t>& ne,
                      const std::string& what) {
  check(!ne.empty() && ne[0] % type.block == 0, "{}: {} rows of {} are not whole {} blocks of {}",
        what, type.name, ne.empty() ? 0 : ne[0], type.name, type.block);
  const uint64_t limit = std::numeric_limits<int64_t>::max();
  const auto blocks = static_cast<uint64_t>(ne[0] / type.block);
  check(blocks <= limit / type.block_bytes, "{}: dimensions overflow", what);
  uint64_t bytes = blocks * type.block_bytes;
  for (size_t d = 1; d < ne.size(); ++d) {
    const auto n = static_cast<uint64_t>(ne[d]);
    check(n == 0 || bytes <= limit / n, "{}: dimensions overflow", what);
    bytes *= n;
  }
  return bytes;
}

std::shared_ptr<File> File::open(const std::filesystem::path& path) {
  MappedFile mapped(path);
  auto f = parse(mapped.data(), mapped.size(), path.string());
  f->file_ = std::move(mapped);  // the views stay valid: moving a mapping keeps its address
  return f;
}

std::shared_ptr<File> File::parse(const std::byte* data, size_t size, const std::string& label) {
  std::shared_ptr<File> f(new File());
  f->label_ = label;
  Cursor c(data, size, f->label_);
  const std::byte* magic = c.take(4, "the magic");
  check(std::memcmp(magic, "GGUF", 4) == 0, "{}: not a GGUF file (bad magic)", label);
  f->version_ = c.read<uint32_t>("the version");
  check(f->version_ != 0x03000000 && f->version_ != 0x02000000,
        "{}: big-endian GGUF is not supported", label);
  check(f->version_ == 2 || f->version_ == 3, "{}: unsupported GGUF version {} (2 and 3 are)",
        label, f->version_);
  // Minimal sizes: a tensor info is >= 8+4+8+4+8 bytes, a metadata entry >= 8+4+1.
  const uint64_t n_tensors = c.count("the tensor count", 32);
  const uint64_t n_kv = c.count("the metadata count", 13);
  for (uint64_t i = 0; i < n_kv; ++i) {
    std::string key(c.string(fmt::format("metadata key #{}", i)));
    Value v = read_value(c, label, key);
    check(!f->metadata_.contains(key), "{}: metadata '{}' appears twice", label, key);
    f->metadata_.emplace(std::move(key), std::move(v));
  }
  if (const Value* a = f->find("general.alignment")) {
    check(a->type == ValueType::U32, "{}: general.alignment must be u32", label);
    f->alignment_ = load<uint32_t>(a->raw);
    check(f->alignment_ > 0 && (f->alignment_ & (f->alignment_ - 1)) == 0,
          "{}: general.alignment {} is not a power of two", label, f->alignment_);
  }
  for (uint64_t i = 0; i < n_tensors; ++i) {
    TensorInfo t = read_tensor_info(c, label, i);
    check(!f->tensor_index_.contains(t.name), "{}: tensor '{}' appears twice", label, t.name);
    f->tensor_index_.emplace(t.name, f->tensors_.size());
    f->tensors_.push_back(std::move(t));
  }
  place_tensors(f->tensors_, data, size, align_up(c.pos(), f->alignment_), f->alignment_, label);
  return f;
}

const TensorInfo* File::find_tensor(std::string_view name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

const Value* File::find(std::string_view key) const {
  auto it = metadata_.find(key);
  return it == metadata_.end() ? nullptr : &it->second;
}

const Value& File::get(std::string_view key) const {
  const Value* v = find(key);
  check(v != nullptr, "{}: missing metadata '{}'", label_, key);
  return *v;
}

int64_t File::integer(std::string_view key) const {
  const Value& v = get(key);
  return load_integer(v.type, v.raw, label_ + ": metadata '" + std::string(key) + "'");
}

std::optional<int64_t> File::optional_integer(std::string_view key) const {
  if (!find(key)) return std::nullopt;
  return integer(key);
}

double File::number(std::string_view key) const {
  const Value& v = get(key);
  return load_number(v.type, v.raw, label_ + ": metadata '" + std::string(key) + "'");
}

std::optional<double> File::optional_number(std::string_view key) const {
  if (!find(key)) return std::nullopt;
  return number(key);
}

std::string_view File::string(std::string_view key) const {
  const Value& v = get(key);
  check(v.type == ValueType::String, "{}: metadata '{}' is {}, expected a string", label_, key,
        value_type_name(v.type));
  return v.string;
}

std::optional<std::string_view> File::optional_string(std::string_view key) const {
  if (!find(key)) return std::nullopt;
  return string(key);
}

std::optional<bool> File::optional_bool(std::string_view key) const {
  const Value* v = find(key);
  if (!v) return std::nullopt;
  check(v->type == ValueType::Bool, "{}: metadata '{}' is {}, expected bool", label_, key,
        value_type_name(v->type));
  return load<uint8_t>(v->raw) != 0;
}

const std::vector<std::string_view>& File::strings(std::string_view key) const {
  const Value& v = get(key);
  check(v.type == ValueType::Array && v.element_type == ValueType::String,
        "{}: metadata '{}' is not an array of strings", label_, key);
  return v.strings;
}

std::vector<double> File::numbers(std::string_view key) const {
  const Value& v = get(key);
  const std::string what = label_ + ": metadata '" + std::string(key) + "'";
  check(v.type == ValueType::Array && v.element_type != ValueType::String &&
            v.element_type != ValueType::Bool,
        "{} is not an array of numbers", what);
  const size_t size = scalar_size(v.element_type);
  std::vector<double> out(v.count);
  for (uint64_t i = 0; i < v.count; ++i)
    out[i] = load_number(v.element_type, v.raw + i * size, what);
  return out;
}

std::vector<int64_t> File::integers(std::string_view key) const {
  const Value& v = get(key);
  const std::string what = label_ + ": metadata '" + std::string(key) + "'";
  check(v.type == ValueType::Array && is_integer(v.element_type), "{} is not an array of integers",
        what);
  const size_t size = scalar_size(v.element_type);
  std::vector<int64_t> out(v.count);
  for (uint64_t i = 0; i < v.count; ++i)
    out[i] = load_integer(v.element_type, v.raw + i * size, what);
  return out;
}

// ---- writing ----

namespace {

template <typename T>
void put(std::string& out, T v) {
  char b[sizeof(T)];
  std::memcpy(b, &v, sizeof v);
  out.append(b, sizeof v);
}

void put_string(std::string& out, std::string_view s) {
  put<uint64_t>(out, s.size());
  out.append(s);
}

}  // namespace

void MetadataWriter::key(std::string_view k, ValueType t) {
  check(keys_.emplace(std::string(k), 0).second, "GGUF metadata '{}' added twice", k);
  put_string(bytes_, k);
  put<uint32_t>(bytes_, static_cast<uint32_t>(t));
  ++count_;
}

void MetadataWriter::add_u32(std::string_view k, uint32_t v) {
  key(k, ValueType::U32);
  put(bytes_, v);
}

void MetadataWriter::add_i32(std::string_view k, int32_t v) {
  key(k, ValueType::I32);
  put(bytes_, v);
}

void MetadataWriter::add_f32(std::string_view k, float v) {
  key(k, ValueType::F32);
  put(bytes_, v);
}

void MetadataWriter::add_bool(std::string_view k, bool v) {
  key(k, ValueType::Bool);
  put<uint8_t>(bytes_, v ? 1 : 0);
}

void MetadataWriter::add_string(std::string_view k, std::string_view v) {
  key(k, ValueType::String);
  put_string(bytes_, v);
}

void MetadataWriter::add_strings(std::string_view k, const std::vector<std::string>& v) {
  key(k, ValueType::Array);
  put<uint32_t>(bytes_, static_cast<uint32_t>(ValueType::String));
  put<uint64_t>(bytes_, v.size());
  for (const auto& s : v) put_string(bytes_, s);
}

void MetadataWriter::add_f32s(std::string_view k, const std::vector<float>& v) {
  key(k, ValueType::Array);
  put<uint32_t>(bytes_, static_cast<uint32_t>(ValueType::F32));
  put<uint64_t>(bytes_, v.size());
  for (float x : v) put(bytes_, x);
}

void MetadataWriter::add_i32s(std::string_view k, const std::vector<int32_t>& v) {
  key(k, ValueType::Array);
  put<uint32_t>(bytes_, static_cast<uint32_t>(ValueType::I32));
  put<uint64_t>(bytes_, v.size());
  for (int32_t x : v) put(bytes_, x);
}

namespace {

// The header of a GGUF v3 file (magic, counts, metadata, tensor infos, padded to the alignment)
// and where each tensor's bytes go after it.
struct GgufLayout {
  std::string header;
  std::map<std::string, AtomicTensorFile::Slot> slots;
  uint64_t data_bytes = 0;
};

GgufLayout gguf_layout(const std::filesystem::path& path, const MetadataWriter& metadata,
                       const std::vector<Writer::Entry>& tensors) {
  check(!metadata.has("general.alignment"), "{}: general.alignment is set by the writer",
        path.string());
  GgufLayout out;
  std::string& header = out.header;
  header = "GGUF";
  put<uint32_t>(header, 3);
  put<uint64_t>(header, tensors.size());
  put<uint64_t>(header, metadata.count());
  header += metadata.bytes();
  uint64_t& offset = out.data_bytes;
  for (const Writer::Entry& e : tensors) {
    check(e.type != nullptr, "{}: tensor '{}' has no type", path.string(), e.name);
    check(!out.slots.contains(e.name), "{}: tensor '{}' listed twice", path.string(), e.name);
    const uint64_t size = tensor_bytes(*e.type, e.ne, path.string() + ": tensor '" + e.name + "'");
    put_string(header, e.name);
    put<uint32_t>(header, static_cast<uint32_t>(e.ne.size()));
    for (int64_t n : e.ne) put<uint64_t>(header, static_cast<uint64_t>(n));
    put<uint32_t>(header, e.type->id);
    put<uint64_t>(header, offset);
    out.slots[e.name] = {offset, size};
    offset = align_up(offset + size, kDefaultAlignment);  // the padding after the last one too
  }
  header.append(align_up(header.size(), kDefaultAlignment) - header.size(), '\0');
  return out;
}

AtomicTensorFile open_gguf(std::filesystem::path path, const MetadataWriter& metadata,
                           const std::vector<Writer::Entry>& tensors) {
  GgufLayout l = gguf_layout(path, metadata, tensors);
  return AtomicTensorFile(std::move(path), l.header, std::move(l.slots), l.data_bytes);
}

}  // namespace

Writer::Writer(std::filesystem::path path, const MetadataWriter& metadata,
               const std::vector<Entry>& tensors)
    : file_(open_gguf(std::move(path), metadata, tensors)) {}

void Writer::write(const std::string& name, const void* data, size_t bytes, size_t offset) {
  file_.write(name, data, bytes, offset);
}

void Writer::commit() {
  file_.commit();
}

}  // namespace qforge::gguf
