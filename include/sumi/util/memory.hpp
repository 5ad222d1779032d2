#pragma once
// Process memory statistics for run summaries.
#include <sys/resource.h>

namespace sumi::util {

// Peak resident set size of this process so far, in MiB (what the OS had to give us at the worst moment).
// Returns 0 when the kernel does not report it.
inline double max_rss_mb() {
  rusage usage{};
  if (getrusage(RUSAGE_SELF, &usage) != 0) return 0.0;
#if defined(__APPLE__)
  const double bytes = static_cast<double>(usage.ru_maxrss);  // macOS reports bytes
#else
  const double bytes = static_cast<double>(usage.ru_maxrss) * 1024.0;  // Linux reports KiB
#endif
  return bytes / (1024.0 * 1024.0);
}

}  // namespace sumi::util
