#pragma once
// How every example run begins: thread count, output folder, and the first line of its log.
#include <cstdio>
#include <filesystem>
#include <initializer_list>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "sumi/kernels/cpu_features.hpp"
#include "sumi/kernels/threading.hpp"
#include "sumi/util/atomic_file.hpp"
#include "sumi/util/cli.hpp"
#include "sumi/util/folder_lock.hpp"
#include "sumi/util/printable.hpp"
#include "sumi/util/read_file.hpp"
#include "sumi/version.hpp"

namespace sumi::examples {

// What to do when the output folder is in use.
inline constexpr const char* kFolderInUseHint = "wait for the other run or give this one another --out";

// An upper bound for --threads: the OpenMP runtime crashes when asked for tens of thousands of threads,
// and a count this high is a typo on any machine these examples run on.
inline constexpr int kMaxThreads = 1024;

// Binds --threads (0 keeps OMP_NUM_THREADS or all cores) to `threads`, checked against kMaxThreads.
inline void bind_threads_flag(util::ArgParser& cli, int& threads,
                              const std::string& help = "threads (0: OMP_NUM_THREADS or all cores)") {
  cli.bind("--threads", threads, help).min(0).max(kMaxThreads);
}

// Sets the thread count (0 keeps OMP_NUM_THREADS or all cores) and creates the output folder. A bad SUMI_ISA
// is refused before the folder is made.
inline void create_output_folder(int threads, const std::filesystem::path& out) {
  if (out.empty()) throw util::CliError("--out", "--out: the output folder must not be empty");
  kernels::active_isa();
  if (threads > 0) set_num_threads(threads);
  std::error_code error;
  std::filesystem::create_directories(out, error);
  if (error || !std::filesystem::is_directory(out))
    throw std::runtime_error("--out '" + out.string() + "': cannot create the output folder" +
                             (error ? ": " + error.message() : std::string(": a file of that name exists")));
}

inline void print_run_start(const char* program, const std::filesystem::path& out) {
  std::printf("sumi %s %s: writing to %s (threads: %d)\n", SUMI_VERSION, program,
              std::filesystem::absolute(out).c_str(), get_num_threads());
}

// Says what a sweep for the leftovers of killed processes removed, if anything: "removed 2 temporary files
// an interrupted run left (a.csv.tmp.0123456789abcdef, ...)".
inline void print_removed_leftovers(const char* what, const char* left_by,
                                    const std::vector<std::string>& names) {
  if (names.empty()) return;
  std::printf("removed %zu %s%s %s left (%s%s)\n", names.size(), what, names.size() == 1 ? "" : "s", left_by,
              names.front().c_str(), names.size() > 1 ? ", ..." : "");
}

// An example's output folder, locked while the run owns it: a second run into the same folder is refused
// instead of mixing its files with this run's.
struct RunFolder {
  std::filesystem::path path;
  util::FolderLock lock;
};

// The file in an output folder that names the example whose outputs it holds.
inline constexpr const char* kProgramFile = ".sumi-program";

// Records that `out` holds `program`'s outputs, refusing a folder another example's run wrote: several write
// metrics.csv, loss.svg and model.txt and remove summary.json, so a run into another's folder (a --resume
// into the wrong one) would destroy that run's results.
inline void claim_output_folder(const std::filesystem::path& out, const std::string& program) {
  const std::filesystem::path file = out / kProgramFile;
  if (std::filesystem::exists(file)) {
    std::string owner = util::read_file_text(file, "program file");
    while (!owner.empty() && (owner.back() == '\n' || owner.back() == '\r')) owner.pop_back();
    if (owner == program) return;
    throw util::CliError("--out", "--out '" + out.string() + "' holds the outputs of " +
                                      util::with_article(util::printable(owner, 40)) + " run (" +
                                      file.string() + "): give this " + program + " run another folder");
  }
  util::write_file_atomically(file, program + "\n");
}

// Sets the thread count, creates and locks the output folder and prints where `program` writes. A folder in
// use is refused with `in_use_hint` (what to do instead), and one holding another example's outputs always.
// `held` is a lock the caller already took on an existing `out` (to read it first); it is kept instead of a
// second one. Temporary files that a run killed mid-write left in the folder are removed.
[[nodiscard]] inline RunFolder start_run(const char* program, int threads, const std::filesystem::path& out,
                                         const char* in_use_hint = kFolderInUseHint,
                                         std::optional<util::FolderLock> held = std::nullopt) {
  create_output_folder(threads, out);
  util::FolderLock lock = held ? std::move(*held) : util::FolderLock(out, in_use_hint);
  const std::string name = program;
  claim_output_folder(out, name.substr(0, name.find(' ')));  // "grid_search --merge" is grid_search's
  print_run_start(program, out);
  print_removed_leftovers("temporary file", "an interrupted run",
                          util::remove_abandoned_temporary_files(out));
  return {out, std::move(lock)};
}

// Removes outputs that a run writes only when it ends (its summary.json among them), so that an interrupted
// run does not leave an earlier run's next to its own files, passing for its results.
inline void remove_final_outputs(const std::filesystem::path& out, std::initializer_list<const char*> names) {
  for (const char* name : names) std::filesystem::remove(out / name);
}

// Writes a model's printed summary (its layers, their settings and parameter counts: the study's architecture
// figures) to `path`, and prints it unless `quiet`.
inline void write_model_summary(const std::filesystem::path& path, const std::string& summary, bool quiet) {
  util::write_file_atomically(path, summary + "\n");
  if (!quiet) std::printf("%s\n", summary.c_str());
}

}  // namespace sumi::examples
