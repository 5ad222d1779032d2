#pragma once
// How every example run begins: thread count, output folder, and the first line of its log.
#include <cstdio>
#include <filesystem>

#include "sumi/kernels/threading.hpp"
#include "sumi/version.hpp"

namespace sumi::examples {

// Sets the thread count (0 keeps OMP_NUM_THREADS or all cores), creates the output folder and prints where
// `program` writes. Returns the folder.
inline std::filesystem::path start_run(const char* program, int threads, const std::filesystem::path& out) {
  if (threads > 0) set_num_threads(threads);
  std::filesystem::create_directories(out);
  std::printf("sumi %s %s: writing to %s (threads: %d)\n", SUMI_VERSION, program,
              std::filesystem::absolute(out).c_str(), get_num_threads());
  return out;
}

}  // namespace sumi::examples
