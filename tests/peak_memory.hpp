#pragma once
// The test process's peak resident memory, for tests that bound what an operation may allocate.
#include <sys/resource.h>

namespace sumi::test {

// The process's peak resident memory so far, in MiB.
inline double peak_memory_mib() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return double(usage.ru_maxrss) / 1024.0;
}

}  // namespace sumi::test
