#pragma once
// How many threads sumi's kernels use, and parallel_for over independent items.
//
// Every OpenMP parallel region in sumi (the conv kernels' one region per call, the element-wise, reduction,
// batch-norm, softmax and loss loops, the data loaders) asks get_num_threads() for its team size. By default
// that is omp_get_max_threads(), which honours OMP_NUM_THREADS; set_num_threads() overrides it for the whole
// process, including threads the caller starts itself (OpenMP's own setting is per thread: a std::thread
// would otherwise start teams of the default size).
//
// Eigen: set_num_threads() also calls Eigen::setNbThreads() with the same count, so Eigen's own parallel
// products (used elsewhere in sumi) follow the same setting. There is no nested oversubscription: Eigen runs
// single-threaded when called from inside an OpenMP parallel region (it checks omp_get_num_threads() > 1),
// as where a batch of double matmul products is split across threads. Kernels called from inside
// a user's parallel region run on one thread, even where the user enables nested parallelism: the kernels'
// per-thread partial results live in thread_local workspaces, and nested workers that exit before the
// caller reduces them would take those with them.
#include <Eigen/Core>
#include <atomic>
#include <cstdint>
#include <exception>
#include <stdexcept>
#include <string>

#include <omp.h>

namespace sumi {

namespace detail {
inline std::atomic<int>& num_threads_setting() {
  static std::atomic<int> n{0};  // 0: not set, use OpenMP's default
  return n;
}
}  // namespace detail

// Sets the number of threads the kernels use (n >= 1).
inline void set_num_threads(int n) {
  if (n < 1) throw std::invalid_argument("sumi::set_num_threads: need n >= 1, got " + std::to_string(n));
  detail::num_threads_setting().store(n, std::memory_order_relaxed);
  Eigen::setNbThreads(n);
}

// The number of threads the kernels use: set_num_threads()'s value, else OMP_NUM_THREADS / the core count;
// 1 inside an active parallel region.
inline int get_num_threads() {
  if (omp_in_parallel()) return 1;
  const int n = detail::num_threads_setting().load(std::memory_order_relaxed);
  return n > 0 ? n : omp_get_max_threads();
}

namespace kernels {

// Below this many elements of work a loop runs on one thread: the fork/join would cost more than it saves.
inline constexpr int64_t kParallelThreshold = 1 << 15;

// f(i) for every i in [0, count): independent items, split evenly across the kernels' threads when there are
// several and together they touch at least kParallelThreshold elements (`work`).
// Below that, a plain loop rather than an `if (false)` region, so that kernels f calls run as at top level:
// regions nested in an inactive one get new threads each time (libgomp keeps only top-level teams), without
// the thread_local workspaces of the last call.
template <class F>
void parallel_for(int64_t count, int64_t work, F&& f) {
  const int threads = get_num_threads();
  if (count < 2 || work < kParallelThreshold || threads < 2) {
    for (int64_t i = 0; i < count; ++i) f(i);
    return;
  }
  // An exception may not leave a parallel region (it would end the process): the first one is kept and
  // thrown here once every thread has finished.
  std::exception_ptr error;
#pragma omp parallel for schedule(static) num_threads(threads)
  for (int64_t i = 0; i < count; ++i) {
    try {
      f(i);
    } catch (...) {
#pragma omp critical(sumi_parallel_for_error)
      if (!error) error = std::current_exception();
    }
  }
  if (error) std::rethrow_exception(error);
}

}  // namespace kernels

}  // namespace sumi
