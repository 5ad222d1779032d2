#pragma once
// How every example run begins: thread count, output folder, and the first line of its log.
#include <cstdio>
#include <filesystem>
#include <stdexcept>
#include <string>

#include "sumi/kernels/cpu_features.hpp"
#include "sumi/kernels/threading.hpp"
#include "sumi/util/atomic_file.hpp"
#include "sumi/util/cli.hpp"
#include "sumi/version.hpp"

namespace sumi::examples {

// An upper bound for --threads: the OpenMP runtime crashes when asked for tens of thousands of threads,
// and a count this high is a typo on any machine these examples run on.
inline constexpr int kMaxThreads = 1024;

// Binds --threads (0 keeps OMP_NUM_THREADS or all cores) to `threads`, checked against kMaxThreads.
inline void bind_threads_flag(util::ArgParser& cli, int& threads,
                              const std::string& help = "threads (0: OMP_NUM_THREADS or all cores)") {
  cli.bind("--threads", threads, help).min(0).max(kMaxThreads);
}

// Sets the thread count (0 keeps OMP_NUM_THREADS or all cores), creates the output folder and prints where
// `program` writes. Returns the folder. A bad SUMI_ISA is refused before the folder is made.
inline std::filesystem::path start_run(const char* program, int threads, const std::filesystem::path& out) {
  if (out.empty()) throw util::CliError("--out", "--out: the output folder must not be empty");
  kernels::active_isa();
  if (threads > 0) set_num_threads(threads);
  std::error_code error;
  std::filesystem::create_directories(out, error);
  if (error || !std::filesystem::is_directory(out))
    throw std::runtime_error("--out '" + out.string() + "': cannot create the output folder" +
                             (error ? ": " + error.message() : std::string(": a file of that name exists")));
  std::printf("sumi %s %s: writing to %s (threads: %d)\n", SUMI_VERSION, program,
              std::filesystem::absolute(out).c_str(), get_num_threads());
  return out;
}

// Writes a model's printed summary (its layers, their settings and parameter counts: the study's architecture
// figures) to `path`, and prints it unless `quiet`.
inline void write_model_summary(const std::filesystem::path& path, const std::string& summary, bool quiet) {
  util::write_file_atomically(path, summary + "\n");
  if (!quiet) std::printf("%s\n", summary.c_str());
}

}  // namespace sumi::examples
