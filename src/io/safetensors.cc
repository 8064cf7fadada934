#include "qforge/io/safetensors.h"

#include <algorithm>
#include <cstring>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>

#include "qforge/core/error.h"
#include "qforge/io/atomic_tensor_file.h"

namespace qforge {
namespace {

// A header larger than this is certainly corrupt (real headers are well below 10 MB).
constexpr uint64_t kMaxHeaderBytes = 100ull << 20;

uint64_t read_u64_le(const std::byte* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

}  // namespace

std::shared_ptr<SafetensorsFile> SafetensorsFile::open(const std::filesystem::path& path) {
  MappedFile file(path);
  auto st = parse(file.data(), file.size(), path.string());
  st->file_ = std::move(file);  // the views keep pointing into the same mapping
  st->path_ = path;
  return st;
}

std::shared_ptr<SafetensorsFile> SafetensorsFile::parse(const std::byte* data, size_t size,
                                                        const std::string& label) {
  std::shared_ptr<SafetensorsFile> st(new SafetensorsFile());
  st->path_ = label;
  check(size >= 8, "{}: truncated: {} bytes, a safetensors file needs at least 8", label, size);
  const uint64_t header_len = read_u64_le(data);
  check(header_len <= kMaxHeaderBytes, "{}: header length {} is implausibly large (corrupt file?)",
        label, header_len);
  check(header_len <= size - 8, "{}: header length {} runs past the end of the file ({} bytes)",
        label, header_len, size);
  const char* hp = reinterpret_cast<const char*>(data + 8);
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(hp, hp + header_len);
  } catch (const nlohmann::json::exception& e) {
    fail("{}: malformed JSON header: {}", label, e.what());
  }
  check(header.is_object(), "{}: header is not a JSON object", label);
  const std::byte* buffer = data + 8 + header_len;
  const uint64_t buffer_size = size - 8 - header_len;

  struct Span {
    uint64_t begin, end;
    size_t index;
  };
  std::vector<Span> spans;
  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      check(entry.is_object(), "{}: __metadata__ is not an object", label);
      for (const auto& [k, v] : entry.items()) {
        check(v.is_string(), "{}: __metadata__ value for '{}' is not a string", label, k);
        st->metadata_[k] = v.get<std::string>();
      }
      continue;
    }
    check(entry.is_object(), "{}: tensor '{}': entry is not an object", label, name);
    check(entry.contains("dtype") && entry["dtype"].is_string(),
          "{}: tensor '{}': missing or non-string dtype", label, name);
    check(entry.contains("shape") && entry["shape"].is_array(),
          "{}: tensor '{}': missing or non-array shape", label, name);
    check(entry.contains("data_offsets") && entry["data_offsets"].is_array() &&
              entry["data_offsets"].size() == 2,
          "{}: tensor '{}': data_offsets must be an array of two integers", label, name);
    const std::string dt = entry["dtype"].get<std::string>();
    const auto dtype = dtype_from_name(dt);
    check(dtype.has_value(), "{}: tensor '{}': unsupported dtype '{}'", label, name, dt);
    TensorView tv;
    tv.name = name;
    tv.dtype = *dtype;
    uint64_t numel = 1;
    for (const auto& d : entry["shape"]) {
      check(d.is_number_integer() && d.get<int64_t>() >= 0,
            "{}: tensor '{}': shape entries must be non-negative integers", label, name);
      const auto v = d.get<uint64_t>();
      check(v == 0 || numel <= std::numeric_limits<uint64_t>::max() / 16 / v,
            "{}: tensor '{}': shape {} overflows", label, name, entry["shape"].dump());
      numel *= v;
      tv.shape.push_back(static_cast<int64_t>(v));
    }
    const auto& off = entry["data_offsets"];
    check(off[0].is_number_unsigned() && off[1].is_number_unsigned(),
          "{}: tensor '{}': data_offsets must be non-negative integers", label, name);
    const auto begin = off[0].get<uint64_t>(), end = off[1].get<uint64_t>();
    check(begin <= end, "{}: tensor '{}': data_offsets [{}, {}) are reversed", label, name, begin,
          end);
    check(end <= buffer_size,
          "{}: tensor '{}': data_offsets [{}, {}) end past the data buffer ({} bytes)", label, name,
          begin, end, buffer_size);
    const uint64_t expected = numel * dtype_size(*dtype);
    check(end - begin == expected,
          "{}: tensor '{}': {} bytes in the file but shape {} of {} needs {}", label, name,
          end - begin, tv.shape_string(), dt, expected);
    tv.data = buffer + begin;
    spans.push_back({begin, end, st->tensors_.size()});
    st->index_[name] = st->tensors_.size();
    st->tensors_.push_back(std::move(tv));
  }
  std::sort(spans.begin(), spans.end(), [](const Span& a, const Span& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  for (size_t i = 1; i < spans.size(); ++i) {
    const Span &a = spans[i - 1], &b = spans[i];
    check(b.begin >= a.end || a.begin == a.end || b.begin == b.end,
          "{}: tensors '{}' and '{}' overlap (bytes [{}, {}) and [{}, {}))", label,
          st->tensors_[a.index].name, st->tensors_[b.index].name, a.begin, a.end, b.begin, b.end);
  }
  // File order = data order, which is what users expect to see listed.
  std::vector<TensorView> ordered;
  ordered.reserve(spans.size());
  for (const Span& s : spans) ordered.push_back(std::move(st->tensors_[s.index]));
  st->tensors_ = std::move(ordered);
  st->index_.clear();
  for (size_t i = 0; i < st->tensors_.size(); ++i) st->index_[st->tensors_[i].name] = i;
  return st;
}

const TensorView* SafetensorsFile::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

TensorStore TensorStore::open(const std::filesystem::path& path) {
  namespace fs = std::filesystem;
  TensorStore store;
  store.source_ = path;
  fs::path file = path;
  if (fs::is_directory(path)) {
    if (fs::exists(path / "model.safetensors.index.json")) {
      file = path / "model.safetensors.index.json";
    } else if (fs::exists(path / "model.safetensors")) {
      file = path / "model.safetensors";
    } else {
      std::vector<fs::path> found;
      for (const auto& e : fs::directory_iterator(path))
        if (e.path().extension() == ".safetensors") found.push_back(e.path());
      check(!found.empty(), "{}: no .safetensors files found", path.string());
      check(found.size() == 1,
            "{}: {} .safetensors files but no model.safetensors.index.json to say which to use",
            path.string(), found.size());
      file = found[0];
    }
  } else {
    check(fs::exists(path), "{}: no such file or directory", path.string());
  }
  if (file.extension() == ".json") {
    const std::string text = read_text_file(file);
    nlohmann::json index;
    try {
      index = nlohmann::json::parse(text);
    } catch (const nlohmann::json::exception& e) {
      fail("{}: malformed JSON: {}", file.string(), e.what());
    }
    check(index.is_object() && index.contains("weight_map") && index["weight_map"].is_object(),
          "{}: missing 'weight_map' object", file.string());
    std::map<std::string, std::shared_ptr<SafetensorsFile>> shards;
    std::vector<std::pair<std::string, std::string>> wanted;
    for (const auto& [tensor, shard] : index["weight_map"].items()) {
      check(shard.is_string(), "{}: weight_map entry '{}' is not a file name", file.string(),
            tensor);
      const std::string s = shard.get<std::string>();
      check(s.find('/') == std::string::npos && s.find("..") == std::string::npos,
            "{}: shard name '{}' must be a plain file name", file.string(), s);
      if (!shards.count(s)) {
        auto f = SafetensorsFile::open(file.parent_path() / s);
        shards[s] = f;
        store.files_.push_back(f);
      }
      wanted.emplace_back(tensor, s);
    }
    for (const auto& [tensor, s] : wanted) {
      const TensorView* tv = shards[s]->find(tensor);
      check(tv != nullptr, "{}: tensor '{}' is listed in the index but missing from {}",
            file.string(), tensor, s);
    }
  } else {
    store.files_.push_back(SafetensorsFile::open(file));
  }
  for (const auto& f : store.files_)
    for (const TensorView& tv : f->tensors()) {
      check(!store.by_name_.count(tv.name), "{}: tensor '{}' appears in more than one shard",
            path.string(), tv.name);
      store.by_name_[tv.name] = &tv;
    }
  return store;
}

bool TensorStore::has(const std::string& name) const {
  return by_name_.count(name) > 0;
}

const TensorView* TensorStore::find(const std::string& name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : it->second;
}

const TensorView& TensorStore::get(const std::string& name) const {
  const TensorView* tv = find(name);
  check(tv != nullptr, "{}: missing tensor '{}'", source_.string(), name);
  return *tv;
}

std::vector<const TensorView*> TensorStore::all() const {
  std::vector<const TensorView*> out;
  for (const auto& f : files_)
    for (const TensorView& tv : f->tensors()) out.push_back(&tv);
  return out;
}

namespace {

// The header of a safetensors file (8-byte length, JSON, padded to 8 bytes) and where each
// tensor's bytes go after it.
struct SafetensorsLayout {
  std::string header;
  std::map<std::string, AtomicTensorFile::Slot> slots;
  uint64_t data_bytes = 0;
};

SafetensorsLayout safetensors_layout(const std::filesystem::path& path,
                                     const std::vector<SafetensorsWriter::Entry>& entries,
                                     const std::map<std::string, std::string>& metadata) {
  SafetensorsLayout out;
  nlohmann::ordered_json header;
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t& offset = out.data_bytes;
  for (const SafetensorsWriter::Entry& e : entries) {
    check(!out.slots.contains(e.name), "{}: tensor '{}' listed twice", path.string(), e.name);
    uint64_t numel = 1;
    for (int64_t d : e.shape) {
      check(d >= 0, "{}: tensor '{}': negative dimension", path.string(), e.name);
      numel *= static_cast<uint64_t>(d);
    }
    const uint64_t size = numel * dtype_size(e.dtype);
    header[e.name] = {{"dtype", dtype_name(e.dtype)},
                      {"shape", e.shape},
                      {"data_offsets", {offset, offset + size}}};
    out.slots[e.name] = {offset, size};
    offset += size;
  }
  std::string h = header.dump();
  h.append((8 - h.size() % 8) % 8, ' ');  // data buffer starts 8-byte aligned
  out.header.resize(8);
  for (int i = 0; i < 8; ++i) out.header[i] = static_cast<char>((h.size() >> (8 * i)) & 0xff);
  out.header += h;
  return out;
}

AtomicTensorFile open_safetensors(std::filesystem::path path,
                                  const std::vector<SafetensorsWriter::Entry>& entries,
                                  const std::map<std::string, std::string>& metadata) {
  SafetensorsLayout l = safetensors_layout(path, entries, metadata);
  return AtomicTensorFile(std::move(path), l.header, std::move(l.slots), l.data_bytes);
}

}  // namespace

SafetensorsWriter::SafetensorsWriter(std::filesystem::path path, const std::vector<Entry>& entries,
                                     const std::map<std::string, std::string>& metadata)
    : file_(open_safetensors(std::move(path), entries, metadata)) {}

void SafetensorsWriter::write(const std::string& name, const void* data, size_t bytes,
                              size_t offset) {
  file_.write(name, data, bytes, offset);
}

void SafetensorsWriter::commit() {
  file_.commit();
}

void write_safetensors(const std::filesystem::path& path, const std::vector<TensorToWrite>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  std::vector<SafetensorsWriter::Entry> entries;
  for (const auto& t : tensors) {
    int64_t numel = 1;
    for (int64_t d : t.shape) numel *= d;
    check(t.bytes.size() == static_cast<size_t>(numel) * dtype_size(t.dtype),
          "{}: tensor '{}': {} bytes given but shape {} of {} needs {}", path.string(), t.name,
          t.bytes.size(), shape_to_string(t.shape), dtype_name(t.dtype),
          static_cast<size_t>(numel) * dtype_size(t.dtype));
    entries.push_back({t.name, t.dtype, t.shape});
  }
  SafetensorsWriter w(path, entries, metadata);
  for (const auto& t : tensors) w.write(t.name, t.bytes.data(), t.bytes.size());
  w.commit();
}

}  // namespace qforge
