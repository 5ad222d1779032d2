#pragma once
// Saving and loading a module's state as a .safetensors file with PyTorch's names, so PyTorch (or the
// safetensors Python package) reads what sumi writes and the other way round.
//
//   nn::save_state(*model, "ckpt.safetensors", {{"epoch", "7"}},
//   optimizer.state_dict().with_prefix("optimizer.")); auto loaded = nn::load_state(*model,
//   "ckpt.safetensors"); optimizer.load_state_dict(loaded.extra.strip_prefix("optimizer."));
//
// Parameters and floating buffers are stored as F32 (Module<float>) or F64 (Module<double>); integer
// buffers such as num_batches_tracked as I64 scalars (shape []), as PyTorch stores them. Extra tensors (an
// optimiser's state) are stored next to the module's and listed in the metadata key "sumi.extra_tensors", so
// that loading tells them apart from unexpected names. Files are written atomically.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>

#include "sumi/io/safetensors.hpp"
#include "sumi/nn/module.hpp"
#include "sumi/util/number_text.hpp"

namespace sumi::nn {

// The metadata key listing the extra tensors' names (a JSON array).
inline constexpr const char* kExtraTensorsKey = "sumi.extra_tensors";

namespace detail {
// Records `name` in m.invalid_value when `t` holds a NaN or an infinity: a checkpoint of a diverged run, or a
// corrupt file, would otherwise load silently and poison every later step.
template <std::floating_point T>
void check_finite(const std::string& name, const Tensor<T>& t, StateMismatch& m) {
  const T* begin = t.data();
  const T* bad = std::find_if(begin, begin + t.numel(), [](T v) { return !std::isfinite(v); });
  if (bad != begin + t.numel())
    m.invalid_value.push_back(name + ": " + (std::isnan(*bad) ? "NaN" : "infinity") + " at element " +
                              std::to_string(bad - begin));
}

template <std::floating_point T>
const char* dtype_name() {
  return std::is_same_v<T, float> ? "F32" : "F64";
}
template <std::floating_point T>
io::TensorRecord to_record(const typename StateDict<T>::Entry& e) {
  return e.is_integer ? io::TensorRecord::from_int64(e.integer) : io::TensorRecord::from_tensor(e.tensor);
}
}  // namespace detail

// Writes the module's parameters and buffers under their state_dict() names, plus `extra` entries (their
// names must not clash with the module's), with `metadata` (all strings). Atomic: a reader sees the old
// file or the new one, never a part.
template <std::floating_point T>
void save_state(const Module<T>& module, const std::filesystem::path& path,
                std::map<std::string, std::string> metadata = {}, const StateDict<T>& extra = {}) {
  std::map<std::string, io::TensorRecord> records;
  for (const auto& e : module.state_dict()) records.emplace(e.name, detail::to_record<T>(e));
  nlohmann::json extra_names = nlohmann::json::array();
  for (const auto& e : extra) {
    if (!records.emplace(e.name, detail::to_record<T>(e)).second)
      throw std::invalid_argument("save_state: " + path.string() + ": extra tensor '" + e.name +
                                  "' has the name of a module tensor");
    extra_names.push_back(e.name);
  }
  if (!extra.empty()) metadata[kExtraTensorsKey] = extra_names.dump();
  metadata.try_emplace("format", "pt");  // what the safetensors package expects of PyTorch files
  io::write_safetensors(path, records, metadata);
}

struct LoadStateOptions {
  // Module names are looked up as prefix + name; file tensors outside the prefix are returned as extras
  // (e.g. "G." to load the generator from a file holding "G.*" and "D.*").
  std::string prefix{};
  // Without strict, missing and unexpected names are tolerated (shapes must still match).
  bool strict = true;
  // Accept F32 tensors for a double module and F64 for a float one (the extras too), converting them.
  bool convert_dtype = false;
};

template <std::floating_point T>
struct LoadedState {
  std::map<std::string, std::string> metadata;  // the file's metadata, including "sumi.extra_tensors"
  StateDict<T> extra;                           // the extra tensors, by their names in the file
  LoadStateResult skipped;                      // what a non-strict load skipped
};

// The metadata value `key` of `file` as a whole number >= `lowest`; a missing key or any other value is an
// error naming the file and the key (a hand-edited or foreign checkpoint must not resume at a wrong point).
inline int64_t metadata_integer(const std::map<std::string, std::string>& metadata, const std::string& key,
                                const std::filesystem::path& file, int64_t lowest = 0) {
  const auto it = metadata.find(key);
  if (it == metadata.end()) throw io::SafetensorsError(file.string() + ": metadata '" + key + "' is missing");
  const std::string& text = it->second;
  const std::optional<int64_t> value = util::parse_number<int64_t>(text);
  if (!value || *value < lowest)
    throw io::SafetensorsError(file.string() + ": metadata '" + key + "' is '" + util::printable(text) +
                               "', not a whole number >= " + std::to_string(lowest));
  return *value;
}

// Loads a file written by save_state (or PyTorch, with PyTorch's names) into the module in place. Checks
// every name, shape, dtype and value (NaN and infinities are refused) first and reports all differences at
// once, naming the file; the module is unchanged then. A missing, truncated or corrupt file is reported with
// its path.
template <std::floating_point T>
LoadedState<T> load_state(Module<T>& module, const std::filesystem::path& path,
                          const LoadStateOptions& options = {}) {
  const io::SafetensorsFile file = io::read_safetensors(path);
  std::set<std::string> declared_extras;
  if (auto it = file.metadata.find(kExtraTensorsKey); it != file.metadata.end()) {
    const auto refuse = [&](const std::string& why) {
      return io::SafetensorsError(path.string() + ": metadata " + kExtraTensorsKey +
                                  " is not a JSON list of names: " + why);
    };
    nlohmann::json names;
    try {
      names = nlohmann::json::parse(it->second);
    } catch (const nlohmann::json::exception& e) {
      throw refuse(e.what());
    }
    // Iterating an object or a string would read its values, or itself, as names.
    if (!names.is_array()) throw refuse(util::printable(it->second, 80));
    for (const auto& name : names) {
      if (!name.is_string()) throw refuse("it holds " + util::printable(name.dump(), 80));
      declared_extras.insert(name.get<std::string>());
    }
  }
  const std::string& prefix = options.prefix;
  auto in_prefix = [&](const std::string& name) { return name.compare(0, prefix.size(), prefix) == 0; };

  // A tensor of the other floating dtype, when options.convert_dtype allows it.
  const auto converted_ok = [&](const io::TensorRecord& r) {
    return options.convert_dtype && (r.dtype == "F32" || r.dtype == "F64");
  };
  StateMismatch m;
  StateDict<T> state;
  std::set<std::string> expected;
  for (const auto& ref : module.state_refs()) {
    const std::string key = prefix + ref.name;
    expected.insert(key);
    if (!file.contains(key)) {
      // A missing counter (num_batches_tracked) is set to 0, as Module::load_state_dict and torch 1.13 do.
      if (!ref.counter) m.missing.push_back(key);
      continue;
    }
    const io::TensorRecord& r = file.record(key);
    const std::string want = ref.counter ? "I64" : detail::dtype_name<T>();
    if (r.dtype != want && !(!ref.counter && converted_ok(r))) {
      m.wrong_type.push_back(key + ": expected " + want + ", found " + r.dtype);
      continue;
    }
    const Shape want_shape = ref.counter ? Shape{} : ref.tensor->shape();
    if (r.shape != want_shape) {
      m.mis_shaped.push_back(key + ": expected " + shape_str(want_shape) + ", found " + shape_str(r.shape));
      continue;
    }
    if (ref.counter)
      state.insert_integer(ref.name, file.int64_scalar(key));
    else {
      Tensor<T> tensor = file.tensor<T>(key);
      detail::check_finite(key, tensor, m);
      state.insert(ref.name, std::move(tensor));
    }
  }

  LoadedState<T> loaded;
  loaded.metadata = file.metadata;
  for (const auto& [name, record] : file.tensors) {
    if (expected.count(name)) continue;
    const bool extra = declared_extras.count(name) || (!prefix.empty() && !in_prefix(name));
    if (!extra) {
      m.unexpected.push_back(name);
      continue;
    }
    // The extras save_state writes: tensors of T and integer scalars (an optimiser's step counts).
    if (record.dtype == "I64" && record.shape.empty())
      loaded.extra.insert_integer(name, file.int64_scalar(name));
    else if (record.dtype != detail::dtype_name<T>() && !converted_ok(record))
      m.wrong_type.push_back(name + ": expected " + detail::dtype_name<T>() + " or an I64 scalar, found " +
                             record.dtype + " of shape " + shape_str(record.shape));
    else {
      Tensor<T> tensor = file.tensor<T>(name);
      detail::check_finite(name, tensor, m);
      loaded.extra.insert(name, std::move(tensor));
    }
  }
  loaded.skipped = {m.missing, m.unexpected};
  if (!options.strict) {
    m.missing.clear();
    m.unexpected.clear();
  }
  if (!m.empty())
    throw StateDictError(path.string() + ": the file's state does not match " + module.type_name() +
                             (prefix.empty() ? std::string() : " (prefix '" + prefix + "')") + ":",
                         m);
  module.load_state_dict(state, /*strict=*/false);  // names were checked above; absent ones are skipped
  return loaded;
}

}  // namespace sumi::nn
