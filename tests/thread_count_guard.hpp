#pragma once
// Restores sumi's process-wide thread count when a test that changes it ends, also when a check throws, so
// later tests in the binary run with the count they started with.
#include "sumi/kernels/threading.hpp"

namespace sumi::test {

struct ThreadCountGuard {
  int saved = sumi::get_num_threads();
  ThreadCountGuard() = default;
  ThreadCountGuard(const ThreadCountGuard&) = delete;
  ThreadCountGuard& operator=(const ThreadCountGuard&) = delete;
  ~ThreadCountGuard() { sumi::set_num_threads(saved); }
};

}  // namespace sumi::test
