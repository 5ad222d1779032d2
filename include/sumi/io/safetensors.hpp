#pragma once
// The safetensors file format (Hugging Face): an 8-byte little-endian header length, a JSON header naming
// each tensor's dtype, shape and byte range, then the raw little-endian data. Reading validates every field
// against the file so a truncated or corrupt file is reported, never half-loaded.
//
// Files written here also carry a CRC-32 of their content in the metadata (kChecksumKey), checked when they
// are read: a flipped bit in a weight or a metadata value (an epoch) would otherwise load as a different
// model. The format has no checksum of its own; other readers ignore the entry, and files without one
// (written by other tools) are read unverified, unless a key one byte from kChecksumKey shows its damage.
#include <zlib.h>
#include <algorithm>
#include <bit>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <numeric>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "sumi/tensor/tensor.hpp"
#include "sumi/util/atomic_file.hpp"
#include "sumi/util/printable.hpp"
#include "sumi/util/read_file.hpp"

namespace sumi::io {

static_assert(std::endian::native == std::endian::little, "safetensors I/O assumes a little-endian host");

class SafetensorsError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The metadata entry holding the content checksum: 8 lowercase hex digits.
inline constexpr const char* kChecksumKey = "sumi.crc32";

namespace detail {

// Whether a and b have the same length and differ in exactly one byte.
inline bool differ_in_one_byte(std::string_view a, std::string_view b) {
  return a.size() == b.size() &&
         std::transform_reduce(a.begin(), a.end(), b.begin(), 0, std::plus<>(), std::not_equal_to<>()) == 1;
}

// CRC-32 of a header without its checksum entry, then of the data section, which `for_each_chunk(feed)`
// passes to feed(pointer, size) in file order. The header is serialized as nlohmann::json (keys sorted, no
// spaces), so the writer's header and the reader's parsed copy of it give the same text whatever order and
// spacing the file has.
template <class ForEachChunk>
std::string content_checksum(const nlohmann::json& header, ForEachChunk&& for_each_chunk) {
  const std::string text = header.dump();
  uLong crc = crc32_z(0L, reinterpret_cast<const Bytef*>(text.data()), text.size());
  for_each_chunk([&crc](const char* data, std::size_t size) {
    // zlib reads a null buffer (an empty vector's data()) as a request for the initial value, 0
    if (size > 0) crc = crc32_z(crc, reinterpret_cast<const Bytef*>(data), size);
  });
  char hex[9];
  std::snprintf(hex, sizeof hex, "%08lx", crc & 0xffffffffUL);
  return hex;
}

}  // namespace detail

// One tensor as stored: dtype name ("F32", "F64", "I64"), shape and raw bytes.
struct TensorRecord {
  std::string dtype;
  Shape shape;
  std::vector<char> bytes;

  // Bytes per element of each dtype the format defines; 0 for a name it does not.
  static int64_t dtype_size(const std::string& dtype) {
    if (dtype == "F64" || dtype == "I64" || dtype == "U64") return 8;
    if (dtype == "F32" || dtype == "I32" || dtype == "U32") return 4;
    if (dtype == "F16" || dtype == "BF16" || dtype == "I16" || dtype == "U16") return 2;
    if (dtype == "U8" || dtype == "I8" || dtype == "BOOL" || dtype == "F8_E4M3" || dtype == "F8_E5M2")
      return 1;
    return 0;
  }

  template <std::floating_point T>
  static TensorRecord from_tensor(const Tensor<T>& t) {
    if (!t.defined()) throw std::invalid_argument("safetensors: cannot store an undefined tensor");
    TensorRecord r;
    r.dtype = std::is_same_v<T, float> ? "F32" : "F64";
    r.shape = t.shape();
    const Tensor<T> c = t.contiguous();
    r.bytes.resize(std::size_t(c.numel()) * sizeof(T));
    if (c.numel()) std::memcpy(r.bytes.data(), c.data(), r.bytes.size());
    return r;
  }
  static TensorRecord from_int64(int64_t value) {
    TensorRecord r;
    r.dtype = "I64";
    r.bytes.resize(sizeof value);
    std::memcpy(r.bytes.data(), &value, sizeof value);
    return r;
  }
};

namespace detail {
// The header for these tensors (data in name order) and metadata, as `Json`: ordered_json to write,
// nlohmann::json for the checksum.
template <class Json>
Json make_header(const std::map<std::string, TensorRecord>& tensors,
                 const std::map<std::string, std::string>& metadata) {
  Json header = Json::object();  // an empty file's header is {}, as the reader parses it
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const auto& [name, r] : tensors) {
    header[name] = {
        {"dtype", r.dtype}, {"shape", r.shape}, {"data_offsets", {offset, offset + r.bytes.size()}}};
    offset += r.bytes.size();
  }
  return header;
}
// Bytes of a tensor of `shape` with `element`-byte elements; nullopt for a negative size or a count that
// int64_t cannot hold.
inline std::optional<int64_t> byte_count(const Shape& shape, int64_t element) {
  if (std::any_of(shape.begin(), shape.end(), [](int64_t d) { return d < 0; })) return std::nullopt;
  int64_t bytes = 0;
  try {
    if (__builtin_mul_overflow(shape_numel(shape), element, &bytes)) return std::nullopt;
  } catch (const std::length_error&) {  // shape_numel's own overflow
    return std::nullopt;
  }
  return bytes;
}
}  // namespace detail

class SafetensorsFile {
 public:
  std::map<std::string, TensorRecord> tensors;
  std::map<std::string, std::string> metadata;
  std::filesystem::path path;  // where it was read from, for error messages

  bool contains(const std::string& name) const { return tensors.count(name) > 0; }

  const TensorRecord& record(const std::string& name) const {
    auto it = tensors.find(name);
    if (it == tensors.end()) throw SafetensorsError(path.string() + ": no tensor named '" + name + "'");
    return it->second;
  }

  // The tensor `name` converted to T (from a float or integer dtype; F16, BF16 and F8 are refused).
  template <std::floating_point T>
  Tensor<T> tensor(const std::string& name) const {
    const TensorRecord& r = record(name);
    Tensor<T> t = Tensor<T>::empty(r.shape);
    const int64_t n = t.numel();
    auto convert = [&]<class S>(S) {
      for (int64_t i = 0; i < n; ++i) {
        S v;
        std::memcpy(&v, r.bytes.data() + i * int64_t(sizeof(S)), sizeof(S));
        t.data()[i] = T(v);
      }
    };
    if (r.dtype == "F32")
      convert(float{});
    else if (r.dtype == "F64")
      convert(double{});
    else if (r.dtype == "I64")
      convert(int64_t{});
    else if (r.dtype == "I32")
      convert(int32_t{});
    else if (r.dtype == "I16")
      convert(int16_t{});
    else if (r.dtype == "I8")
      convert(int8_t{});
    else if (r.dtype == "U64")
      convert(uint64_t{});
    else if (r.dtype == "U32")
      convert(uint32_t{});
    else if (r.dtype == "U16")
      convert(uint16_t{});
    else if (r.dtype == "U8" || r.dtype == "BOOL")  // a bool is stored as one byte, 0 or 1
      convert(uint8_t{});
    else
      throw SafetensorsError(path.string() + ": tensor '" + name + "' has dtype " + r.dtype +
                             ", which sumi cannot convert to floating point");
    return t;
  }

  int64_t int64_scalar(const std::string& name) const {
    const TensorRecord& r = record(name);
    if (r.dtype != "I64" || r.bytes.size() != sizeof(int64_t))
      throw SafetensorsError(path.string() + ": tensor '" + name + "' is not an I64 scalar");
    int64_t v;
    std::memcpy(&v, r.bytes.data(), sizeof v);
    return v;
  }
};

inline SafetensorsFile read_safetensors(const std::filesystem::path& path) {
  auto fail = [&](const std::string& what) -> SafetensorsError {
    return SafetensorsError(path.string() + ": " + what);
  };
  // The whole file at once (the tensors are copied out of it): a checkpoint is read whole anyway.
  const std::string file_bytes = util::read_file_text<SafetensorsError>(path, "safetensors file");
  const uint64_t file_size = file_bytes.size();
  uint64_t header_size = 0;
  if (file_size < 8) throw fail("truncated: shorter than the 8-byte header length");
  std::memcpy(&header_size, file_bytes.data(), 8);
  // A safetensors header is a JSON object; anything else after the length is some other kind of file
  // (a CSV or checkpoint of another format passed by mistake), whose first bytes read as a huge length.
  if (file_size > 8 && file_bytes[8] != '{')
    throw fail("not a safetensors file: expected an 8-byte header length followed by a JSON header '{...}'");
  if (header_size > file_size - 8)
    throw fail("truncated: header of " + std::to_string(header_size) + " bytes but the file has " +
               std::to_string(file_size) + " bytes");
  const std::string_view header(file_bytes.data() + 8, header_size);
  // JSON text has no raw NUL (strings escape it), and the parser would stop at one, ignoring what follows.
  if (const auto nul = header.find('\0'); nul != std::string::npos)
    throw fail("header has a NUL byte at offset " + std::to_string(8 + nul) + " (a corrupt file?)");
  // The parser keeps the last of repeated keys, which the format forbids: a reader keeping the first would
  // see another tensor. And working with a deeply nested value (dump, copy) recurses once per level: a
  // header like [[[[...]]]] 100,000 deep would overflow the stack. A valid header nests 3 deep.
  constexpr int kMaxHeaderDepth = 8;
  std::vector<std::set<std::string>> keys_per_object;
  const auto check_structure = [&](int depth, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
    using Event = nlohmann::json::parse_event_t;
    if ((event == Event::object_start || event == Event::array_start) && depth >= kMaxHeaderDepth)
      throw fail("header nests deeper than " + std::to_string(kMaxHeaderDepth) + " levels (a corrupt file?)");
    if (event == Event::object_start) keys_per_object.emplace_back();
    if (event == Event::object_end) keys_per_object.pop_back();
    if (event == Event::key && !keys_per_object.back().insert(parsed.get<std::string>()).second)
      throw fail("header has the key '" + util::printable(parsed.get<std::string>()) +
                 "' twice in one object (the format forbids repeated keys)");
    return true;
  };
  nlohmann::json json;
  try {
    json = nlohmann::json::parse(header, check_structure);
  } catch (const nlohmann::json::exception& e) {
    throw fail(std::string("header is not valid JSON: ") + e.what());
  }
  if (!json.is_object()) throw fail("header is not a JSON object");

  SafetensorsFile file;
  file.path = path;
  const uint64_t data_size = file_size - 8 - header_size;
  const char* const data = file_bytes.data() + 8 + header_size;

  std::vector<std::tuple<uint64_t, uint64_t, std::string>> spans;  // each tensor's [begin, end) and name
  for (auto it = json.begin(); it != json.end(); ++it) {
    if (it.key() == "__metadata__") {
      if (!it->is_object()) throw fail("__metadata__ is not a JSON object");
      const bool has_checksum = it->contains(kChecksumKey);
      for (auto m = it->begin(); m != it->end(); ++m) {
        if (m.key() == kChecksumKey) continue;
        // A damaged checksum key would otherwise make the file read as one written without a checksum.
        if (!has_checksum && detail::differ_in_one_byte(m.key(), kChecksumKey))
          throw fail("the metadata key '" + util::printable(m.key()) + "' is the checksum key '" +
                     kChecksumKey +
                     "' with one byte changed: the header was damaged, and the content cannot be verified");
        file.metadata[m.key()] = m->is_string() ? m->get<std::string>() : m->dump();
      }
      continue;
    }
    const std::string& name = it.key();
    const auto tensor = [&name] { return "tensor '" + util::printable(name) + "'"; };  // for errors only
    try {
      TensorRecord r;
      r.dtype = it->at("dtype").get<std::string>();
      // Sizes and offsets must be JSON integers: get<> would truncate 2.9 to 2 and wrap -1 around.
      const auto integers = [&](const char* key, bool non_negative) {
        const nlohmann::json& value = it->at(key);
        if (!value.is_array() || !std::all_of(value.begin(), value.end(), [&](const nlohmann::json& v) {
              return non_negative ? v.is_number_unsigned() : v.is_number_integer();
            }))
          throw fail(tensor() + " has " + key + " " + util::printable(value.dump(), 80) + ", not a list of " +
                     (non_negative ? "non-negative " : "") + "integers");
        return value;
      };
      const nlohmann::json& shape = integers("shape", false);
      for (const nlohmann::json& size : shape)  // get<Shape> would wrap a size above INT64_MAX to a negative
        if (size.is_number_unsigned() && size.get<uint64_t>() > uint64_t(std::numeric_limits<int64_t>::max()))
          throw fail(tensor() + " has the size " + size.dump() + " in its shape, more than a file can hold");
      r.shape = shape.get<Shape>();
      const auto offsets = integers("data_offsets", true).get<std::vector<uint64_t>>();
      const int64_t element = TensorRecord::dtype_size(r.dtype);
      if (element == 0) throw fail(tensor() + " has unknown dtype " + util::printable(r.dtype));
      if (offsets.size() != 2 || offsets[0] > offsets[1] || offsets[1] > data_size)
        throw fail(tensor() + " has data offsets outside the " + std::to_string(data_size) +
                   "-byte data section (truncated file?)");
      if (std::any_of(r.shape.begin(), r.shape.end(), [](int64_t d) { return d < 0; }))
        throw fail(tensor() + " has a negative size in its shape " + shape_str(r.shape));
      const auto bytes = detail::byte_count(r.shape, element);
      if (!bytes)
        throw fail(tensor() + " of shape " + shape_str(r.shape) + " has more bytes than a file can hold");
      const auto expected = uint64_t(*bytes);
      if (offsets[1] - offsets[0] != expected)
        throw fail(tensor() + " of shape " + shape_str(r.shape) + " and dtype " + r.dtype + " needs " +
                   std::to_string(expected) + " bytes but has " + std::to_string(offsets[1] - offsets[0]));
      file.tensors.emplace(name, std::move(r));  // its bytes once the spans are known to tile the data
      spans.push_back({offsets[0], offsets[1], name});
    } catch (const nlohmann::json::exception& e) {
      throw fail(tensor() + " has a malformed header entry: " + e.what());
    }
  }
  // As the format requires, the tensors tile the data section: no overlap (two tensors sharing bytes, a
  // sign of a corrupt or hand-edited header), no gap and nothing after the last.
  std::sort(spans.begin(), spans.end());
  uint64_t end = 0;
  for (std::size_t i = 0; i < spans.size(); ++i) {
    const auto& [begin, finish, name] = spans[i];
    if (begin < end)
      throw fail("tensors '" + util::printable(std::get<2>(spans[i - 1])) + "' and '" +
                 util::printable(name) + "' overlap in the data section");
    if (begin > end)
      throw fail("the data section has " + std::to_string(begin - end) + " unused bytes before tensor '" +
                 util::printable(name) + "'");
    end = finish;
  }
  if (end != data_size)
    throw fail("the data section has " + std::to_string(data_size - end) + " bytes after the last tensor");
  // Copied only now: a small file whose entries all claimed the same large span would otherwise take that
  // span's memory once per entry before the overlap is found.
  for (const auto& [begin, finish, name] : spans)
    file.tensors.at(name).bytes.assign(data + begin, data + finish);
  if (const auto metadata = json.find("__metadata__");
      metadata != json.end() && metadata->contains(kChecksumKey)) {
    const nlohmann::json& recorded = metadata->at(kChecksumKey);
    nlohmann::json content = json;
    content["__metadata__"].erase(kChecksumKey);
    if (content["__metadata__"].empty()) content.erase("__metadata__");
    const std::string actual = detail::content_checksum(content, [&](auto&& feed) { feed(data, data_size); });
    if (!recorded.is_string() || recorded.get<std::string>() != actual)
      throw fail("checksum mismatch: the content has CRC-32 " + actual + " but the file records " +
                 util::printable(recorded.is_string() ? recorded.get<std::string>() : recorded.dump(), 40) +
                 " (the file was damaged after it was written)");
  }
  return file;
}

// Writes the tensors (in name order) and metadata atomically.
inline void write_safetensors(const std::filesystem::path& path,
                              const std::map<std::string, TensorRecord>& tensors,
                              const std::map<std::string, std::string>& metadata = {}) {
  const auto refuse = [&](const std::string& why) {
    return std::invalid_argument("cannot write '" + path.string() + "': " + why);
  };
  if (tensors.contains("__metadata__"))
    throw refuse("no tensor may be named '__metadata__' (safetensors keeps metadata there)");
  if (metadata.contains(kChecksumKey))
    throw refuse(std::string("the metadata key '") + kChecksumKey + "' is written by write_safetensors");
  // A record whose dtype, shape and bytes disagree would make a file that cannot be read back.
  std::size_t data_size = 0;
  for (const auto& [name, r] : tensors) {
    const int64_t element = TensorRecord::dtype_size(r.dtype);
    if (element == 0) throw refuse("tensor '" + util::printable(name) + "' has unknown dtype " + r.dtype);
    const auto bytes = detail::byte_count(r.shape, element);
    if (!bytes || uint64_t(*bytes) != r.bytes.size())
      throw refuse("tensor '" + util::printable(name) + "' of shape " + shape_str(r.shape) + " and dtype " +
                   r.dtype + " has " + std::to_string(r.bytes.size()) + " bytes of data");
    data_size += r.bytes.size();
  }
  const auto for_each_record = [&](auto&& feed) {
    for (const auto& [name, r] : tensors) feed(r.bytes.data(), r.bytes.size());
  };
  std::string text;
  try {
    auto with_checksum = metadata;
    with_checksum[kChecksumKey] =
        detail::content_checksum(detail::make_header<nlohmann::json>(tensors, metadata), for_each_record);
    text = detail::make_header<nlohmann::ordered_json>(tensors, with_checksum).dump();
  } catch (const nlohmann::json::exception& e) {  // a name or metadata string that is not UTF-8
    throw refuse(std::string("the tensor names and metadata must be UTF-8 text: ") + e.what());
  }
  text.append((8 - text.size() % 8) % 8, ' ');  // keeps the data 8-byte aligned
  std::string bytes(8, '\0');
  const uint64_t header_size = text.size();
  std::memcpy(bytes.data(), &header_size, 8);
  bytes += text;
  bytes.reserve(bytes.size() + data_size);
  for_each_record([&bytes](const char* data, std::size_t size) { bytes.append(data, size); });
  util::write_file_atomically(path, bytes);
}

}  // namespace sumi::io
