#pragma once
// Resuming training from a checkpoint saved by an example.
#include <algorithm>
#include <charconv>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "sumi/io/safetensors.hpp"
#include "sumi/nn/serialize.hpp"
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

// A checkpoint of several files that a resume needs from one moment (the DCGAN's generator and
// discriminator). They are replaced one after the other, each atomically, so a kill between two leaves files
// of two moments; while a run saves, each file's last version is therefore kept as previous_version(file),
// and at any moment the current files or, where one was already replaced, its previous version form a
// complete set. restore_checkpoint_set finds it.
inline std::filesystem::path previous_version(const std::filesystem::path& file) {
  return file.parent_path() / (file.stem().string() + ".previous" + file.extension().string());
}

// Replaces files[i] by save(i, files[i]) in order. With `keep_previous` (the folder's files are this run's,
// saved or resumed from) each one is first renamed to its previous version; without, the previous versions
// are removed (they would belong to another run, and pass for this one's).
template <class Save>
void save_checkpoint_set(const std::vector<std::filesystem::path>& files, bool keep_previous, Save&& save) {
  for (std::size_t i = 0; i < files.size(); ++i) {
    if (keep_previous && std::filesystem::exists(files[i]))
      std::filesystem::rename(files[i], previous_version(files[i]));
    else if (!keep_previous)
      std::filesystem::remove(previous_version(files[i]));
    save(i, files[i]);
  }
}

// Makes `files` (written by save_checkpoint_set) the newest complete set: the versions saved at the largest
// metadata `counter` (e.g. "iteration") that every file has, current or previous, the latter renamed back.
// Returns that counter, or nullopt when none of the files exists in either version; files of several moments
// with no moment in common are an error naming each file's.
inline std::optional<int64_t> restore_checkpoint_set(const std::vector<std::filesystem::path>& files,
                                                     const std::string& counter) {
  std::vector<std::map<int64_t, std::filesystem::path>> versions(files.size());
  bool any = false;
  for (std::size_t i = 0; i < files.size(); ++i)
    for (const std::filesystem::path& version : {files[i], previous_version(files[i])})
      if (std::filesystem::exists(version)) {
        versions[i].emplace(nn::metadata_integer(io::read_safetensors(version).metadata, counter, version),
                            version);
        any = true;
      }
  if (!any) return std::nullopt;
  for (auto it = versions[0].rbegin(); it != versions[0].rend(); ++it) {
    const int64_t moment = it->first;
    const auto complete = [&](const auto& file_versions) { return file_versions.contains(moment); };
    if (!std::all_of(versions.begin(), versions.end(), complete)) continue;
    for (std::size_t i = 0; i < files.size(); ++i)
      if (const std::filesystem::path& version = versions[i].at(moment); version != files[i])
        std::filesystem::rename(version, files[i]);
    return moment;
  }
  std::string saved;
  for (std::size_t i = 0; i < files.size(); ++i) {
    saved += (i ? "; " : "") + files[i].string() + ":";
    if (versions[i].empty()) saved += " missing";
    for (const auto& [moment, version] : versions[i]) saved += " " + counter + " " + std::to_string(moment);
  }
  throw std::runtime_error("the checkpoint files were saved at no common " + counter + " (" + saved +
                           "): the run cannot be resumed");
}

}  // namespace sumi::examples
