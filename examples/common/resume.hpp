#pragma once
// Resuming training from a checkpoint saved by an example.
#include <charconv>
#include <concepts>
#include <cstddef>
#include <filesystem>
#include <map>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "sumi/nn/state_dict.hpp"
#include "sumi/optim/optimizer.hpp"
#include "sumi/util/cli.hpp"
#include "sumi/util/csv.hpp"

namespace sumi::examples {

// A setting a checkpoint records and a resumed run must repeat: another --seed, for instance, would redraw
// the split and train on validation images, and another --lr would make the run's summary describe a run
// that never happened. The metadata key is the flag without its dashes ("--weight-decay": "weight_decay").
struct RunSetting {
  std::string flag, value;

  template <class V>
  RunSetting(std::string flag, const V& v) : flag(std::move(flag)) {
    if constexpr (std::floating_point<V>) {
      char text[64];
      // The shortest text that reads back as v, in %g style: 1e-3 and 0.001 both give "0.001".
      value.assign(text, std::to_chars(text, text + sizeof text, v, std::chars_format::general).ptr);
    } else if constexpr (std::integral<V>) {
      value = std::to_string(v);
    } else {
      value = v;
    }
  }
  std::string key() const {
    std::string k = flag.substr(flag.find_first_not_of('-'));
    for (char& c : k)
      if (c == '-') c = '_';
    return k;
  }
};

inline void record_settings(std::map<std::string, std::string>& metadata,
                            const std::vector<RunSetting>& settings) {
  for (const RunSetting& s : settings) metadata[s.key()] = s.value;
}

// The first of `settings` whose value differs from the one `metadata` records, or null. A setting the
// metadata lacks differs when `missing_differs`.
inline const RunSetting* first_differing_setting(const std::map<std::string, std::string>& metadata,
                                                 const std::vector<RunSetting>& settings,
                                                 bool missing_differs) {
  for (const RunSetting& s : settings) {
    const auto it = metadata.find(s.key());
    if (it == metadata.end() ? missing_differs : it->second != s.value) return &s;
  }
  return nullptr;
}

// Throws CliError naming the first flag whose value differs from the checkpoint's. A setting the checkpoint
// does not record (it was written before the setting was) is not checked.
inline void check_resumed_settings(const std::map<std::string, std::string>& metadata,
                                   const std::vector<RunSetting>& settings,
                                   const std::filesystem::path& checkpoint) {
  if (const RunSetting* s = first_differing_setting(metadata, settings, false))
    throw util::CliError(s->flag, checkpoint.string() + " was trained with " + s->flag + " " +
                                      metadata.at(s->key()) + ", not " + s->value +
                                      ": resume with the same value, or train into another --out");
}

// Loads `state` (the checkpoint's "optimizer." entries, prefix stripped) into `optimizer` and requires state
// for every parameter: each one has Adam moments after a step, so a checkpoint without them would silently
// restart Adam for those parameters.
template <class T>
void load_complete_optimizer_state(optim::Optimizer<T>& optimizer, const nn::StateDict<T>& state,
                                   const std::filesystem::path& checkpoint) {
  optimizer.load_state_dict(state);
  const std::size_t n_params = optimizer.num_params();
  for (std::size_t i = 0; i < n_params; ++i)
    if (!state.contains(std::to_string(i) + ".step"))
      throw std::runtime_error(checkpoint.string() + ": no optimizer state for parameter " +
                               std::to_string(i) + " of " + std::to_string(n_params) + " (optimizer." +
                               std::to_string(i) + ".step missing): the checkpoint is incomplete");
}

// The rows of a metrics CSV an example wrote (empty when there is none), each made by read_row(table, i);
// errors (a cell that is not a number, a missing column) name the file.
template <class ReadRow>
auto read_metrics_rows(const std::filesystem::path& path, ReadRow&& read_row) {
  std::vector<decltype(read_row(std::declval<const util::CsvTable&>(), std::size_t{0}))> rows;
  if (!std::filesystem::exists(path)) return rows;
  const util::CsvTable table = util::read_csv(path);
  try {
    for (std::size_t i = 0; i < table.size(); ++i) rows.push_back(read_row(table, i));
  } catch (const std::exception& e) {
    throw std::runtime_error("'" + path.string() + "': " + e.what());
  }
  return rows;
}

}  // namespace sumi::examples
